//! Running the peers' set-up commands with bounded waits, and caching what
//! they compile.

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `$TMPDIR/tenure-bench-<hash of content>`: where a program embedded in this
/// binary is written (and compiled), shared by runs of the same version.
pub(super) fn cache_dir(content: &str) -> Result<PathBuf, String> {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`'s promise.
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    hash.write(content.as_bytes());
    let dir = std::env::temp_dir().join(format!("tenure-bench-{:016x}", hash.finish()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

pub(super) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Writes `path` through a temporary file and a rename, so a reader never
/// sees it half-written.
pub(super) fn write_atomically(path: &Path, content: &str) -> Result<(), String> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temporary, content)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs `command` to its end (killed after `timeout`); its stdout if it
/// succeeded, else an error with its stderr.
pub(super) fn run(
    command: &mut std::process::Command,
    timeout: Duration,
) -> Result<String, String> {
    let (stdout, _) = run_output(command, timeout)?;
    Ok(stdout)
}

/// Like [`run`], with stderr too.
pub(super) fn run_output(
    command: &mut std::process::Command,
    timeout: Duration,
) -> Result<(String, String), String> {
    let name = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    // Read on threads while waiting, so a chatty command cannot block on a
    // full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = wait_bounded(&mut child, timeout, &name)?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok((stdout, stderr))
    } else {
        Err(format!("{name} failed ({status}): {}", stderr.trim()))
    }
}

/// Runs `command` with its own stdout and stderr; an error unless it succeeds.
pub(super) fn run_status(
    command: &mut std::process::Command,
    timeout: Duration,
) -> Result<(), String> {
    let name = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let status = wait_bounded(&mut child, timeout, &name)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

/// Waits for `child`, killing it after `timeout`.
pub(super) fn wait_bounded(
    child: &mut std::process::Child,
    timeout: Duration,
    name: &str,
) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} took over {timeout:?}"));
            }
            Err(e) => return Err(format!("cannot wait for {name}: {e}")),
        }
    }
}
