//! The command `tenure run` supervises: started in its own process group, so a
//! signal reaches everything it started, and stopped within a deadline.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::os::fd::AsRawFd;

use tokio::process::Command;
use tokio::time::Instant;

use crate::watchdog::{self, Leash};

/// A running command and its process group.
#[derive(Debug)]
pub(crate) struct Child {
    child: tokio::process::Child,
    pgid: i32,
    status: Option<ExitStatus>,
    leash: Leash,
}

impl Child {
    /// Starts `command` (program and arguments) with `env` added to tenure's
    /// own environment, behind a [watchdog](crate::watchdog) that stops it by
    /// `deadline` (then by every deadline [`Child::pet`] gives) even if tenure
    /// itself stalls; `grace` is the time it leaves between SIGTERM and SIGKILL
    /// when tenure dies.
    pub(crate) fn spawn(
        command: &[String],
        env: &[(&str, String)],
        grace: Duration,
        deadline: Option<Instant>,
    ) -> io::Result<Child> {
        let program = command
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command given"))?;
        find_program(program)?;
        let (leash, control) = Leash::new()?;
        // Written before the watchdog starts: it reads it before the command does.
        leash.pet(deadline);
        let control_fd = control.as_raw_fd();
        let mut cmd = Command::new(own_binary());
        cmd.args(watchdog::args(control_fd, grace, command))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::inherit())
            .process_group(0);
        // No parent-death signal for the watchdog: when tenure dies, the
        // watchdog sees its pipe close and stops the command's whole group.
        // SAFETY: runs in the forked child before exec and calls only fcntl,
        // which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // The watchdog alone keeps the read end across exec.
                libc::fcntl(control_fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(control);
        let pgid = child.id().map_or(0, |pid| pid as i32);
        Ok(Child {
            child,
            pgid,
            status: None,
            leash,
        })
    }

    /// Gives the watchdog a new deadline (`None`: none).
    pub(crate) fn pet(&self, deadline: Option<Instant>) {
        self.leash.pet(deadline);
    }

    /// A handle to give the watchdog deadlines while the command is stopped.
    pub(crate) fn leash(&self) -> Leash {
        self.leash.clone()
    }

    /// The command's process id.
    pub(crate) fn pid(&self) -> i32 {
        self.pgid
    }

    /// Sends `signal` to the command's whole process group.
    pub(crate) fn signal(&self, signal: i32) {
        if self.pgid <= 0 {
            return;
        }
        // SAFETY: kill(2) has no memory-safety preconditions. A negative pid
        // names the process group the command leads (it was started with
        // process_group(0)); ESRCH — the group is gone — is fine.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    /// Waits for the command to exit (cancel-safe; remembers the status).
    pub(crate) async fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let status = loop {
            match self.child.wait().await {
                Ok(status) => break status,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot wait for the command; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.status = Some(status);
        status
    }

    /// Kills whatever the command left running in its process group: nothing
    /// it started may go on acting once leadership is given back.
    pub(crate) fn kill_leftovers(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Stops the command: `first` now, SIGKILL to its process group at
    /// `kill_at` (which `tighten` may move earlier while we wait: it resolves
    /// with a new, earlier instant, e.g. when leadership is lost meanwhile).
    pub(crate) async fn stop(
        &mut self,
        first: i32,
        mut kill_at: Instant,
        tighten: impl std::future::Future<Output = Instant>,
    ) -> ExitStatus {
        self.signal(first);
        let mut tighten = std::pin::pin!(tighten);
        let mut tightened = false;
        let mut killed = false;
        loop {
            tokio::select! {
                status = self.wait() => {
                    self.kill_leftovers();
                    return status;
                }
                _ = tokio::time::sleep_until(kill_at), if !killed => {
                    tracing::warn!(pid = self.pgid, "the command did not stop in time: SIGKILL");
                    self.kill_leftovers();
                    killed = true;
                }
                at = &mut tighten, if !tightened => {
                    tightened = true;
                    kill_at = kill_at.min(at);
                }
            }
        }
    }
}

/// This very binary, to start the watchdog from: `/proc/self/exe` stays right
/// even if the file was replaced since tenure started.
fn own_binary() -> std::path::PathBuf {
    if cfg!(target_os = "linux") {
        "/proc/self/exe".into()
    } else {
        std::env::current_exe().unwrap_or_else(|_| "tenure".into())
    }
}

/// Fails as spawning would if `program` cannot be found or executed, so that
/// such a command is reported at once instead of by the watchdog's exit code.
fn find_program(program: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let denied = || io::Error::new(io::ErrorKind::PermissionDenied, "permission denied");
    if program.contains('/') {
        return match executable(program.as_ref()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(denied()),
            Err(e) => Err(e),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let mut found_unexecutable = false;
    for dir in std::env::split_paths(&path) {
        match executable(&dir.join(program)) {
            Ok(true) => return Ok(()),
            Ok(false) => found_unexecutable = true,
            Err(_) => {}
        }
    }
    Err(if found_unexecutable {
        denied()
    } else {
        io::Error::new(io::ErrorKind::NotFound, "not found in PATH")
    })
}
