//! [`CuratorLatch`]: a Curator `LeaderLatch` participant in its own JVM, the
//! reference peer for tenure's ZooKeeper interoperability tests.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::java;
use super::program::{LineProgram, Transcript};
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
    /// Its stderr goes to `latch.log`: connection state changes and Curator's
    /// warnings.
    program: LineProgram<Lines>,
    /// Dropped last, after `program` has killed the process writing into it.
    _dir: TempDir,
}

/// What the program printed.
#[derive(Debug, Default)]
struct Lines {
    /// Every state change line, in order.
    events: Vec<String>,
    /// How many of `events` earlier waits have consumed.
    consumed: usize,
    /// Answers to `status` not yet read.
    statuses: VecDeque<bool>,
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
        let mut command = java::java(&classpath, "128m");
        command
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
            .current_dir(dir.path());
        let label = format!("CuratorLatch {participant_id:?}");
        let program = LineProgram::spawn(&mut command, "java", label, log.clone(), &log)?;
        let latch = Self {
            participant_id: participant_id.to_owned(),
            program,
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
        self.program
            .wait(timeout, &format!("to print {line}"), |lines| {
                let at = lines.events[lines.consumed..]
                    .iter()
                    .position(|event| event == line)?;
                lines.consumed += at + 1;
                Some(())
            })
    }

    /// Whether the latch holds leadership now, by Curator's own account
    /// (`LeaderLatch.hasLeadership()`).
    pub fn has_leadership(&self) -> Result<bool, TestkitError> {
        self.program.send("status")?;
        self.program
            .wait(STATUS_TIMEOUT, "to answer status", |lines| {
                lines.statuses.pop_front()
            })
    }

    /// Closes the latch gracefully — Curator deletes its node and, since it
    /// was started with `CloseMode.NOTIFY_LEADER`, a leader prints
    /// `NOT_LEADER` — then closes the client and waits (up to
    /// [`READY_TIMEOUT`]) for the program to exit successfully. The printed
    /// lines stay readable with [`wait_for`](Self::wait_for).
    pub fn close(&self) -> Result<(), TestkitError> {
        self.program.send("close")?;
        self.program
            .wait_for_exit(READY_TIMEOUT, "to close and exit")
    }

    /// Kills the program with SIGKILL, like a crashed process: its session and
    /// node stay until the session expires. Killing it again does nothing.
    pub fn kill(&self) {
        self.program.kill();
    }

    /// Freezes the program with SIGSTOP: it neither heartbeats nor notices
    /// anything until [`resume`](Self::resume).
    ///
    /// # Panics
    /// If it is no longer running.
    pub fn pause(&self) {
        assert!(
            self.program.signal(Signal::Stop),
            "cannot pause CuratorLatch {:?}: it is not running",
            self.participant_id
        );
    }

    /// Lets a paused program run again (SIGCONT).
    pub fn resume(&self) {
        self.program.signal(Signal::Cont);
    }

    /// The process id of the program.
    pub fn pid(&self) -> u32 {
        self.program.pid()
    }

    /// The participant id, which is also the data of the latch's node.
    pub fn participant_id(&self) -> &str {
        &self.participant_id
    }

    /// Every state change line the program has printed so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.program.read(|lines| lines.events.clone())
    }

    /// The program's stderr: connection state changes and Curator's warnings.
    pub fn log_path(&self) -> &Path {
        self.program.log_path()
    }
}

impl fmt::Debug for CuratorLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CuratorLatch")
            .field("participant_id", &self.participant_id)
            .field("pid", &self.pid())
            .field("lines", &self.lines())
            .field("log", &self.log_path())
            .finish_non_exhaustive()
    }
}

impl Transcript for Lines {
    /// Files `STATUS …` answers apart from state changes, so a state change
    /// printed while `status` is asked cannot pass for its answer.
    fn file(&mut self, line: &str) {
        match line {
            "STATUS LEADER" => self.statuses.push_back(true),
            "STATUS NOT_LEADER" => self.statuses.push_back(false),
            event => self.events.push(event.to_owned()),
        }
    }

    fn printed(&self) -> String {
        self.events.join(" ")
    }
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
