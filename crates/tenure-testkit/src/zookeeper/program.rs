//! [`LineProgram`]: a program the kit starts that talks in lines — commands on
//! stdin, reports on stdout, its log on stderr — such as the JVM peers
//! [`CuratorLatch`](crate::CuratorLatch) and
//! [`FlinkRetrievalProbe`](crate::FlinkRetrievalProbe).
//!
//! It lives here rather than at the crate root only because the crate root's
//! module list is edited elsewhere; nothing in it is ZooKeeper's.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::log;
use crate::process::{self, Signal};
use crate::TestkitError;

/// How long a program whose stdout closed may take to be reaped: stdout closes
/// as the process exits, so only a process that closed it on purpose takes long.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a program's stdout amounts to, filed line by line by the reader thread
/// of a [`LineProgram`].
pub(crate) trait Transcript: Default + Send + 'static {
    /// Files one line the program printed, trimmed.
    fn file(&mut self, line: &str);

    /// What the program has printed, for the message of a wait that ran out.
    fn printed(&self) -> String;

    /// Printed lines that may explain why the program exited, added to the log
    /// tail of [`TestkitError::Exited`]. None by default.
    fn exit_note(&self) -> Option<String> {
        None
    }
}

/// A running program, its stdin held open, its stdout filed into a `T` by a
/// reader thread, its stderr appended to a log file. Dropping it kills the
/// program (SIGKILL); a watchdog does it if the test process dies first.
#[derive(Debug)]
pub(crate) struct LineProgram<T> {
    /// Names the program in errors, e.g. `CuratorLatch "a"`.
    label: String,
    child: Mutex<Child>,
    /// `None` once a write found the pipe broken. Held open otherwise: a
    /// program may halt when it closes.
    stdin: Mutex<Option<ChildStdin>>,
    output: Arc<Output<T>>,
    log: PathBuf,
}

/// What the program printed, filled by the reader thread.
#[derive(Debug, Default)]
struct Output<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State<T> {
    transcript: T,
    /// stdout is closed: the program exited.
    closed: bool,
}

impl<T: Transcript> LineProgram<T> {
    /// Spawns `command` (the executable `program`, named in the error when it
    /// is not installed) with stdin and stdout piped and stderr appended to
    /// `log`, and starts filing its stdout.
    ///
    /// `watched` must appear on the command line and lie in the directory to
    /// remove once the test process exits: the watchdog recognises the
    /// program by it before killing it.
    pub(crate) fn spawn(
        command: &mut Command,
        program: &'static str,
        label: String,
        log: PathBuf,
        watched: &Path,
    ) -> Result<Self, TestkitError> {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| TestkitError::io(format!("cannot open {}", log.display()), e))?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn(program, e))?;
        process::watchdog(child.id(), watched);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        // Built before the thread so that if it cannot start, `Drop` kills
        // the program.
        let program = Self {
            label,
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            output: Arc::default(),
            log,
        };
        let reader = Arc::clone(&program.output);
        thread::Builder::new()
            .name(format!("{} stdout", program.label))
            .spawn(move || reader.read(stdout))
            .map_err(|e| TestkitError::io("cannot start a reader thread", e))?;
        Ok(program)
    }

    /// Waits up to `timeout` until `check` finds what it looks for in the
    /// transcript (it may consume it), failing at once with
    /// [`TestkitError::Exited`] if the program exits first. On timeout the
    /// error reads `<label> <what> (it printed: …)`.
    pub(crate) fn wait<R>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<R, TestkitError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.output.lock();
        loop {
            if let Some(found) = check(&mut state.transcript) {
                return Ok(found);
            }
            if state.closed {
                drop(state);
                return Err(self.exited());
            }
            let now = Instant::now();
            if now >= deadline {
                let printed = state.transcript.printed();
                drop(state);
                return Err(TestkitError::Timeout {
                    waiting_for: format!("{} {what} (it printed: {printed})", self.label),
                    after: timeout,
                    log_tail: self.log_tail(),
                });
            }
            state = self.output.wait(state, deadline - now);
        }
    }

    /// Reads the transcript as it is now.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.output.lock().transcript)
    }

    /// Writes `command` and a newline to the program's stdin. A program that
    /// is gone gets [`TestkitError::Exited`], not "broken pipe".
    pub(crate) fn send(&self, command: &str) -> Result<(), TestkitError> {
        let mut stdin = self.stdin.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pipe) = stdin.as_mut() else {
            return Err(self.exited());
        };
        let sent = pipe
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| pipe.flush());
        match sent {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                *stdin = None;
                drop(stdin);
                Err(self.exited())
            }
            Err(e) => Err(TestkitError::io(
                format!("cannot send {command} to {}", self.label),
                e,
            )),
        }
    }

    /// Waits up to `timeout` for the program to exit successfully: an
    /// unsuccessful exit is [`TestkitError::Exited`], and running on is a
    /// timeout reading `<label> <what>`.
    pub(crate) fn wait_for_exit(&self, timeout: Duration, what: &str) -> Result<(), TestkitError> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self
                .lock_child()
                .try_wait()
                .map_err(|e| TestkitError::io(format!("cannot check on {}", self.label), e))?;
            match exited {
                Some(status) if status.success() => return Ok(()),
                Some(_) => return Err(self.exited()),
                None if Instant::now() >= deadline => {
                    return Err(TestkitError::Timeout {
                        waiting_for: format!("{} {what}", self.label),
                        after: timeout,
                        log_tail: self.log_tail(),
                    })
                }
                None => thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Sends `signal` if the program still runs, and says whether it did.
    /// Checking and signalling under one lock means the pid cannot have been
    /// reaped, and reused, in between.
    pub(crate) fn signal(&self, signal: Signal) -> bool {
        let mut child = self.lock_child();
        let running = matches!(child.try_wait(), Ok(None));
        if running {
            process::signal(child.id(), signal);
        }
        running
    }

    /// The error for a program that has exited (or is about to: its stdout is
    /// closed), with its status once it is reaped.
    fn exited(&self) -> TestkitError {
        let status = {
            let mut child = self.lock_child();
            let deadline = Instant::now() + REAP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Ok(None) => break Err(io::Error::other("its stdout closed but it still runs")),
                    Err(e) => break Err(e),
                }
            }
        };
        match status {
            Ok(status) => {
                let mut log_tail = self.log_tail();
                if let Some(note) = self.output.lock().transcript.exit_note() {
                    log_tail = format!("{log_tail}\n{note}");
                }
                TestkitError::Exited {
                    process: self.label.clone(),
                    status,
                    log_tail,
                }
            }
            Err(e) => TestkitError::io(format!("cannot check on {}", self.label), e),
        }
    }
}

impl<T> LineProgram<T> {
    /// The process id of the program.
    pub(crate) fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// Kills the program with SIGKILL, which also ends a stopped one. Killing
    /// it again does nothing.
    pub(crate) fn kill(&self) {
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The file the program's stderr goes to.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    fn log_tail(&self) -> String {
        log::tail(&self.log, &self.label)
    }

    /// The process. A test that panicked while holding the lock must not stop
    /// `Drop` from killing it, hence no poisoning.
    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Drop for LineProgram<T> {
    fn drop(&mut self) {
        self.kill();
    }
}

impl<T: Transcript> Output<T> {
    /// Files stdout line by line until it closes, waking every waiter at each.
    fn read(&self, stdout: impl Read) {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            self.lock().transcript.file(line.trim());
            self.changed.notify_all();
        }
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

impl<T> Output<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State<T>>,
        timeout: Duration,
    ) -> MutexGuard<'a, State<T>> {
        self.changed
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}
