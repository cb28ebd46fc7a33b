//! [`CuratorLatch`]: a Curator `LeaderLatch` participant in its own JVM, the
//! reference peer for tenure's ZooKeeper interoperability tests.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::java;
use crate::log;
use crate::process::{self, Signal};
use crate::temp::TempDir;
use crate::{TestkitError, READY_TIMEOUT};

/// The program, compiled on first use.
const SOURCE: &str = include_str!("../../java/CuratorLatch.java");

/// How long `status` may take to answer: a local call in the program, so only
/// a frozen or overloaded JVM takes long.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// A Curator 5.4 `LeaderLatch` (`CloseMode.NOTIFY_LEADER`) competing for
/// leadership under a ZooKeeper path, in a `java` process of its own.
///
/// Its candidate node is `<latch path>/_c_<uuid>-latch-<10-digit sequence>`,
/// ephemeral and sequential, holding the participant id: what tenure's
/// ZooKeeper backend must recognise to share an election with Curator.
///
/// The program reports its state changes as lines — `READY` (connected, its
/// node exists), `LEADER`, `NOT_LEADER` — which [`wait_for`](Self::wait_for)
/// awaits. Dropping the value kills the process (SIGKILL); a watchdog does it if
/// the test process dies first.
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// use std::time::Duration;
/// use tenure_testkit::{CuratorLatch, ZkCluster};
///
/// let zk = ZkCluster::shared();
/// let first = CuratorLatch::start(&zk.connect_string(), "/doc/latch", "first", 2_000)?;
/// first.wait_for("LEADER", Duration::from_secs(10))?;
/// let second = CuratorLatch::start(&zk.connect_string(), "/doc/latch", "second", 2_000)?;
/// assert!(!second.has_leadership()?);
/// first.close()?;
/// second.wait_for("LEADER", Duration::from_secs(10))?;
/// # Ok(())
/// # }
/// ```
pub struct CuratorLatch {
    participant_id: String,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    output: Arc<Output>,
    /// The program's stderr: Curator's warnings and connection state changes.
    log: PathBuf,
    /// Dropped last, after `Drop` has killed the process writing into it.
    _dir: TempDir,
}

/// What the program printed, filled by a reader thread.
#[derive(Debug, Default)]
struct Output {
    lines: Mutex<Lines>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Lines {
    /// Every state change line, in order.
    events: Vec<String>,
    /// How many of `events` earlier waits have consumed.
    consumed: usize,
    /// Answers to `status` not yet read.
    statuses: VecDeque<bool>,
    /// stdout is closed: the program exited.
    closed: bool,
}

impl CuratorLatch {
    /// Starts a participant with id `participant_id` in the latch at
    /// `latch_path`, connecting to `connect_string` with a session of
    /// `session_timeout_ms` (the server clamps it to its limits), and waits (up
    /// to [`READY_TIMEOUT`]) until it is `READY`: connected, with its node
    /// created, so a participant started after it queues behind it.
    ///
    /// The first call in a process compiles the program with `javac`.
    pub fn start(
        connect_string: &str,
        latch_path: &str,
        participant_id: &str,
        session_timeout_ms: u32,
    ) -> Result<Self, TestkitError> {
        if !latch_path.starts_with('/') || (latch_path.len() > 1 && latch_path.ends_with('/')) {
            return Err(TestkitError::InvalidOptions {
                field: "latch_path",
                rule: "a ZooKeeper path starts with / and does not end with one",
            });
        }
        if session_timeout_ms == 0 {
            return Err(TestkitError::InvalidOptions {
                field: "session_timeout_ms",
                rule: "must be positive",
            });
        }
        let classpath = java::curator_classpath(Some(&compiled()?))?;
        let dir = TempDir::new("curator-latch")?;
        let log = dir.path().join("latch.log");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| TestkitError::io(format!("cannot open {}", log.display()), e))?;
        let mut child = java::java(&classpath, "128m")
            // Unused by the program: it puts the directory on the command line,
            // where the watchdog looks for it.
            .arg(format!("-Dtenure.testkit.log={}", log.display()))
            .arg("CuratorLatch")
            .arg(connect_string)
            .arg(latch_path)
            .arg(participant_id)
            .arg(session_timeout_ms.to_string())
            // Curator's connection timeout: how long an operation waits for a
            // connection before its retry policy takes over.
            .arg(session_timeout_ms.to_string())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn("java", e))?;
        process::watchdog(child.id(), &log);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let output = Arc::new(Output::default());
        let reader = Arc::clone(&output);
        thread::Builder::new()
            .name(format!("curator-latch-{participant_id}"))
            .spawn(move || read_lines(stdout, &reader))
            .map_err(|e| TestkitError::io("cannot start a reader thread", e))?;
        let latch = Self {
            participant_id: participant_id.to_owned(),
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            output,
            log,
            _dir: dir,
        };
        latch.wait_for("READY", READY_TIMEOUT)?;
        Ok(latch)
    }

    /// Waits up to `timeout` until the program prints `line` (`LEADER`,
    /// `NOT_LEADER`, `READY`), skipping other lines. Each printed line satisfies
    /// one wait: a wait looks only at lines after the one the previous wait
    /// matched (`start` has matched `READY`). Fails at once if the program
    /// exits first.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lock();
        loop {
            if let Some(at) = lines.events[lines.consumed..]
                .iter()
                .position(|event| event == line)
            {
                lines.consumed += at + 1;
                return Ok(());
            }
            if lines.closed {
                drop(lines);
                return Err(self.exited());
            }
            let now = Instant::now();
            if now >= deadline {
                let printed = lines.events.join(" ");
                drop(lines);
                return Err(TestkitError::Timeout {
                    waiting_for: format!(
                        "CuratorLatch {:?} to print {line} (it printed: {printed})",
                        self.participant_id
                    ),
                    after: timeout,
                    log_tail: self.log_tail(),
                });
            }
            lines = self.output.wait(lines, deadline - now);
        }
    }

    /// Whether the latch holds leadership now, by Curator's own account
    /// (`LeaderLatch.hasLeadership()`).
    pub fn has_leadership(&self) -> Result<bool, TestkitError> {
        self.send("status")?;
        let deadline = Instant::now() + STATUS_TIMEOUT;
        let mut lines = self.output.lock();
        loop {
            if let Some(leader) = lines.statuses.pop_front() {
                return Ok(leader);
            }
            if lines.closed {
                drop(lines);
                return Err(self.exited());
            }
            let now = Instant::now();
            if now >= deadline {
                drop(lines);
                return Err(TestkitError::Timeout {
                    waiting_for: format!("CuratorLatch {:?} to answer status", self.participant_id),
                    after: STATUS_TIMEOUT,
                    log_tail: self.log_tail(),
                });
            }
            lines = self.output.wait(lines, deadline - now);
        }
    }

    /// Closes the latch gracefully — Curator deletes its node and, since it
    /// was started with `CloseMode.NOTIFY_LEADER`, a leader prints
    /// `NOT_LEADER` — then closes the client and waits (up to
    /// [`READY_TIMEOUT`]) for the program to exit successfully. The printed
    /// lines stay readable with [`wait_for`](Self::wait_for).
    pub fn close(&self) -> Result<(), TestkitError> {
        self.send("close")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .lock_child()
                .try_wait()
                .map_err(|e| TestkitError::io("cannot check on the CuratorLatch program", e))?;
            match exited {
                Some(status) if status.success() => return Ok(()),
                Some(_) => return Err(self.exited()),
                None if Instant::now() >= deadline => {
                    return Err(TestkitError::Timeout {
                        waiting_for: format!(
                            "CuratorLatch {:?} to close and exit",
                            self.participant_id
                        ),
                        after: READY_TIMEOUT,
                        log_tail: self.log_tail(),
                    })
                }
                None => thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Kills the program with SIGKILL, like a crashed process: its session and
    /// node stay until the session expires. Killing it again does nothing.
    pub fn kill(&self) {
        let mut child = self.lock_child();
        // SIGKILL also ends a stopped process.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Freezes the program with SIGSTOP: it neither heartbeats nor notices
    /// anything until [`resume`](Self::resume).
    ///
    /// # Panics
    /// If it is no longer running.
    pub fn pause(&self) {
        let mut child = self.lock_child();
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "cannot pause CuratorLatch {:?}: it is not running",
            self.participant_id
        );
        process::signal(child.id(), Signal::Stop);
    }

    /// Lets a paused program run again (SIGCONT).
    pub fn resume(&self) {
        let mut child = self.lock_child();
        if matches!(child.try_wait(), Ok(None)) {
            process::signal(child.id(), Signal::Cont);
        }
    }

    /// The process id of the program.
    pub fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// The participant id, which is also the data of the latch's node.
    pub fn participant_id(&self) -> &str {
        &self.participant_id
    }

    /// Every state change line the program has printed so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().events.clone()
    }

    /// The program's stderr: connection state changes and Curator's warnings.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn send(&self, command: &str) -> Result<(), TestkitError> {
        let mut stdin = self.stdin.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pipe) = stdin.as_mut() else {
            return Err(self.exited());
        };
        let sent = pipe
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| pipe.flush());
        match sent {
            Ok(()) => Ok(()),
            // The program is gone; say how it ended rather than "broken pipe".
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                *stdin = None;
                drop(stdin);
                Err(self.exited())
            }
            Err(e) => Err(TestkitError::io(
                format!(
                    "cannot send {command} to CuratorLatch {:?}",
                    self.participant_id
                ),
                e,
            )),
        }
    }

    /// The error for a program that has exited (or is about to: its stdout is
    /// closed), with its status once it is reaped.
    fn exited(&self) -> TestkitError {
        let status = {
            let mut child = self.lock_child();
            let deadline = Instant::now() + Duration::from_secs(5);
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
        let process = format!("CuratorLatch {:?}", self.participant_id);
        match status {
            Ok(status) => TestkitError::Exited {
                process,
                status,
                log_tail: self.log_tail(),
            },
            Err(e) => TestkitError::io(format!("cannot check on {process}"), e),
        }
    }

    fn log_tail(&self) -> String {
        log::tail(
            &self.log,
            &format!("CuratorLatch {:?}", self.participant_id),
        )
    }

    /// The process. A test that panicked while holding the lock must not stop
    /// `Drop` from killing it, hence no poisoning.
    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for CuratorLatch {
    /// Kills the program; its directory goes after (field drop).
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for CuratorLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CuratorLatch")
            .field("participant_id", &self.participant_id)
            .field("pid", &self.pid())
            .field("lines", &self.lines())
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, lines: MutexGuard<'a, Lines>, timeout: Duration) -> MutexGuard<'a, Lines> {
        self.changed
            .wait_timeout(lines, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

/// Files the program's lines: `STATUS …` answers apart from state changes, so
/// a state change printed while `status` is asked cannot pass for its answer.
fn read_lines(stdout: impl io::Read, output: &Output) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut lines = output.lock();
        match line.trim() {
            "STATUS LEADER" => lines.statuses.push_back(true),
            "STATUS NOT_LEADER" => lines.statuses.push_back(false),
            event => lines.events.push(event.to_owned()),
        }
        output.changed.notify_all();
    }
    output.lock().closed = true;
    output.changed.notify_all();
}

/// The directory with the compiled program, compiling it on the first call.
///
/// A mutex rather than a `OnceLock`: a failed compilation is reported to every
/// caller and tried again, and concurrent first calls compile once. The
/// directory lives in the static, which is never dropped; a watchdog on this
/// process removes it when the process exits.
fn compiled() -> Result<PathBuf, TestkitError> {
    static CLASSES: Mutex<Option<TempDir>> = Mutex::new(None);
    let mut classes = CLASSES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = classes.as_ref() {
        return Ok(dir.path().join("classes"));
    }
    let dir = TempDir::new("curator-classes")?;
    let source = dir.path().join("CuratorLatch.java");
    fs::write(&source, SOURCE)
        .map_err(|e| TestkitError::io(format!("cannot write {}", source.display()), e))?;
    let out = dir.path().join("classes");
    process::run(
        java::javac()
            .arg("-d")
            .arg(&out)
            .arg("-cp")
            .arg(java::curator_classpath(None)?)
            .arg(&source),
        "javac",
    )?;
    process::watchdog(std::process::id(), &out);
    *classes = Some(dir);
    Ok(out)
}
