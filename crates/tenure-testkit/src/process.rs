//! Running helper programs and signalling processes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::TestkitError;

/// Runs `command` to completion; a non-zero exit is an error carrying stderr.
pub(crate) fn run(command: &mut Command, program: &'static str) -> Result<Output, TestkitError> {
    let output = command
        .output()
        .map_err(|e| TestkitError::spawn(program, e))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(TestkitError::CommandFailed {
            command: describe(command),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// The command line for error messages, with password arguments blanked.
fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        line.push(' ');
        match arg.split_once('=') {
            Some((flag, _)) if flag.contains("password") => {
                line.push_str(flag);
                line.push_str("=***");
            }
            _ => line.push_str(&arg),
        }
    }
    line
}

/// A process's signal to send, and the state `/proc/<pid>/stat` shows once the
/// signal has taken effect.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    /// SIGSTOP: the process is frozen, its sockets stay open.
    Stop,
    /// SIGCONT: a stopped process runs again.
    Cont,
}

/// Sends `signal` to `pid` and waits (up to 5 s) until the kernel shows its
/// effect, so that a test's next step really runs against a frozen (or running)
/// process.
///
/// # Panics
/// If `kill` cannot be run or refuses: the test cannot go on meaningfully.
pub(crate) fn signal(pid: u32, signal: Signal) {
    let name = match signal {
        Signal::Stop => "STOP",
        Signal::Cont => "CONT",
    };
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{}", TestkitError::spawn("kill", e)));
    assert!(status.success(), "kill -s {name} {pid} failed: {status}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match (signal, stopped(pid)) {
            (Signal::Stop, Some(false)) | (Signal::Cont, Some(true)) => {
                thread::sleep(Duration::from_millis(1));
            }
            // Done, or no /proc to tell.
            _ => return,
        }
    }
    panic!("process {pid} did not take SIG{name} within 5 s");
}

/// Whether `pid` is stopped by a signal, or `None` when /proc cannot tell.
pub(crate) fn stopped(pid: u32) -> Option<bool> {
    let stat = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The state follows the parenthesised command name, which may contain spaces.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    Some(state == "T")
}

/// Makes sure the server `pid` (whose command line names `dir`) dies with this
/// test process, even when the process dies without running destructors (a
/// shared server in a `static`, a SIGKILL): a small shell loop waits for this
/// process to end, then kills the server by PID — after checking that the PID
/// still belongs to that server — and removes `dir`'s parent, the cluster's
/// temporary directory.
pub(crate) fn watchdog(pid: u32, dir: &Path) {
    let Some(cluster_dir) = dir.parent() else {
        return;
    };
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.3; done; \
         if grep -q -- '{dir}' /proc/{pid}/cmdline 2>/dev/null; then kill -9 {pid}; fi; \
         sleep 0.2; rm -rf -- '{cluster}'",
        parent = std::process::id(),
        dir = dir.display(),
        cluster = cluster_dir.display(),
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
