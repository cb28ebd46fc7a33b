//! Helpers for tests that run the real `tenure` binary.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any awaited event may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tenure-cli-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// A local:// backend URL in a subdirectory (the backend creates it `0700`).
    pub fn backend(&self) -> String {
        format!("local://{}", self.0.join("backend").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `tenure` process started by a test, killed on drop.
pub struct Tenure {
    pub child: Child,
    pub stderr: PathBuf,
    pub stdout: PathBuf,
}

pub fn tenure() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenure"));
    cmd.env_remove("TENURE_BACKEND").env_remove("TENURE_LOG");
    cmd
}

impl Tenure {
    /// Starts `tenure ARGS`, its output going to files in `dir`.
    pub fn start(dir: &TempDir, name: &str, args: &[&str]) -> Self {
        Self::start_with(dir, name, args, Stdio::null())
    }

    pub fn start_with(dir: &TempDir, name: &str, args: &[&str], stdin: Stdio) -> Self {
        let stdout = dir.path(&format!("{name}.out"));
        let stderr = dir.path(&format!("{name}.err"));
        let child = tenure()
            .args(args)
            .stdin(stdin)
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("the tenure binary runs");
        Tenure {
            child,
            stderr,
            stdout,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "tenure did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Tenure {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, for at most [`PATIENCE`].
pub fn await_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines of a file (none if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has at least `n` complete lines and returns them.
pub fn await_lines(path: &Path, n: usize) -> Vec<String> {
    await_until(&format!("{n} lines in {}", path.display()), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (text.ends_with('\n') && lines.len() >= n).then_some(lines)
    })
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Runs `tenure ARGS` to completion.
pub fn output(args: &[&str]) -> std::process::Output {
    tenure()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the tenure binary runs")
}
