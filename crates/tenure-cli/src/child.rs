//! The command `tenure run` supervises: started in its own process group, so a
//! signal reaches everything it started, and stopped within a deadline.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

/// A running command and its process group.
#[derive(Debug)]
pub(crate) struct Child {
    child: tokio::process::Child,
    pgid: i32,
    status: Option<ExitStatus>,
}

impl Child {
    /// Starts `command` (program and arguments) with `env` added to tenure's
    /// own environment.
    pub(crate) fn spawn(command: &[String], env: &[(&str, String)]) -> io::Result<Child> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command given"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::inherit())
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: runs in the forked child before exec and calls only
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                die_with_parent(parent);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pgid = child.id().map_or(0, |pid| pid as i32);
        Ok(Child {
            child,
            pgid,
            status: None,
        })
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

/// In the forked child: ask the kernel to SIGKILL this process when tenure dies
/// (even by SIGKILL), so the command never outlives its supervisor and with it
/// the leadership (Linux only; elsewhere a no-op).
fn die_with_parent(parent: libc::pid_t) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl, getppid and _exit are async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // tenure may have died before the prctl took effect.
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
}
