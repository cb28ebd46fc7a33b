//! [`FlinkRetrievalProbe`]: Flink's own ZooKeeper leader retrieval, in a JVM
//! of its own, reporting every notification.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::compile::compiled;
use super::{config, install, FlinkComponent, FlinkLeader, FlinkOptions};
use crate::log;
use crate::process;
use crate::temp::TempDir;
use crate::zookeeper::java;
use crate::{TestkitError, READY_TIMEOUT};

/// `org.apache.flink.runtime.util.ZooKeeperUtils.createLeaderRetrievalService`
/// — what Flink's TaskManagers and clients use to find a leader — watching one
/// component of one cluster, in a `java` process of its own, against the
/// jars of the installed Flink.
///
/// Each notification of its `LeaderRetrievalListener` is one line the probe
/// prints and [`next_notification`](Self::next_notification) returns: the
/// leader's address and session, or `None` when Flink reports that there is
/// no leader (the `connection_info` node emptied or deleted). Flink reports
/// only changes, and nothing while there has never been a leader. Dropping
/// the value kills the process; a watchdog does it if the test process dies
/// first.
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// use tenure_testkit::{
///     FlinkComponent, FlinkJobManager, FlinkOptions, FlinkRetrievalProbe, ZkCluster,
///     READY_TIMEOUT,
/// };
///
/// let zk = ZkCluster::standalone()?;
/// let options = FlinkOptions::default();
/// let probe = FlinkRetrievalProbe::start(&zk.connect_string(), &options, FlinkComponent::RestServer)?;
/// let jm = FlinkJobManager::start(&zk.connect_string(), &options)?;
/// let leader = probe.wait_for_leader(READY_TIMEOUT, |leader| leader.address == jm.rest_url())?;
/// assert_eq!(leader.session, jm.wait_leader(READY_TIMEOUT)?);
/// # Ok(())
/// # }
/// ```
pub struct FlinkRetrievalProbe {
    component: FlinkComponent,
    child: Mutex<Child>,
    /// Held open: the program halts when it closes.
    _stdin: Option<ChildStdin>,
    output: Arc<Output>,
    /// The program's stderr: Flink's and Curator's log.
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
    ready: bool,
    /// Every notification, in order.
    notifications: Vec<Option<FlinkLeader>>,
    /// How many of `notifications` have been returned.
    consumed: usize,
    /// Other lines (`ERROR …`), for error messages.
    other: Vec<String>,
    /// stdout is closed: the program exited.
    closed: bool,
}

impl FlinkRetrievalProbe {
    /// Starts retrieving the leader of `component` of the cluster `options`
    /// describe from the ZooKeeper at `zk_connect`, and waits (up to
    /// [`READY_TIMEOUT`]) until the program is connected and Flink's
    /// retrieval service has started.
    ///
    /// The first call compiles the program with `javac` into Flink's cache
    /// directory (see [`flink_lib_dir`](crate::flink_lib_dir)), once per
    /// version of its source.
    pub fn start(
        zk_connect: &str,
        options: &FlinkOptions,
        component: FlinkComponent,
    ) -> Result<Self, TestkitError> {
        options.validate()?;
        let lib = install::flink_lib_dir()?;
        let classpath = install::classpath(&lib, Some(&compiled(&lib)?))?;
        let dir = TempDir::new("flink-probe")?;
        let log4j = dir.path().join("log4j2.properties");
        config::write(&log4j, config::STDERR_LOG4J)?;
        let log = dir.path().join("probe.log");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| TestkitError::io(format!("cannot open {}", log.display()), e))?;
        let mut child = java::java(&classpath, "256m")
            .arg(format!(
                "-Dlog4j.configurationFile=file:{}",
                log4j.display()
            ))
            .arg("FlinkRetrievalProbe")
            .arg(zk_connect)
            .arg(&options.path_root)
            .arg(&options.cluster_id)
            .arg(component.node())
            .arg(options.session_timeout_ms.to_string())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn("java", e))?;
        // The log4j file's path, in the directory, is on the command line.
        process::watchdog(child.id(), &log4j);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let output = Arc::new(Output::default());
        let reader = Arc::clone(&output);
        thread::Builder::new()
            .name(format!("flink-probe-{}", component.node()))
            .spawn(move || read_lines(stdout, &reader))
            .map_err(|e| TestkitError::io("cannot start a reader thread", e))?;
        let probe = Self {
            component,
            child: Mutex::new(child),
            _stdin: stdin,
            output,
            log,
            _dir: dir,
        };
        probe.wait(READY_TIMEOUT, "to start", |lines| lines.ready.then_some(()))?;
        Ok(probe)
    }

    /// The next notification not returned yet, waiting up to `timeout` for
    /// it: `Some` leader, or `None` for "no leader".
    ///
    /// # Errors
    /// [`TestkitError::Timeout`] when none comes, [`TestkitError::Exited`]
    /// when the program dies.
    pub fn next_notification(
        &self,
        timeout: Duration,
    ) -> Result<Option<FlinkLeader>, TestkitError> {
        self.wait(timeout, "to report a leader change", |lines| {
            let next = lines.notifications.get(lines.consumed).cloned()?;
            lines.consumed += 1;
            Some(next)
        })
    }

    /// Skips notifications until one names a leader for which `wanted`
    /// holds, waiting up to `timeout` in all, and returns it.
    pub fn wait_for_leader(
        &self,
        timeout: Duration,
        mut wanted: impl FnMut(&FlinkLeader) -> bool,
    ) -> Result<FlinkLeader, TestkitError> {
        self.wait(timeout, "to report the expected leader", |lines| {
            while let Some(next) = lines.notifications.get(lines.consumed).cloned() {
                lines.consumed += 1;
                if let Some(leader) = next.filter(&mut wanted) {
                    return Some(leader);
                }
            }
            None
        })
    }

    /// Every notification so far, in order, returned or not.
    pub fn notifications(&self) -> Vec<Option<FlinkLeader>> {
        self.output.lock().notifications.clone()
    }

    /// The component it watches.
    pub fn component(&self) -> FlinkComponent {
        self.component
    }

    /// The process id of the program.
    pub fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// Kills the program (SIGKILL). Killing it again does nothing.
    pub fn kill(&self) {
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The program's stderr: Flink's and Curator's log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until `check` finds what it looks for in the output, failing
    /// early if the program exits.
    fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&mut Lines) -> Option<T>,
    ) -> Result<T, TestkitError> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lock();
        loop {
            if let Some(found) = check(&mut lines) {
                return Ok(found);
            }
            if lines.closed {
                drop(lines);
                return Err(self.exited());
            }
            let now = Instant::now();
            if now >= deadline {
                let printed = format!("{:?} {:?}", lines.notifications, lines.other);
                drop(lines);
                return Err(TestkitError::Timeout {
                    waiting_for: format!("{} {what} (it printed: {printed})", self.label()),
                    after: timeout,
                    log_tail: log::tail(&self.log, &self.label()),
                });
            }
            lines = self.output.wait(lines, deadline - now);
        }
    }

    /// The error for a program whose stdout closed, with its exit status.
    fn exited(&self) -> TestkitError {
        let label = self.label();
        let mut child = self.lock_child();
        // stdout closes as the process exits; reaping may take a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    break Err(std::io::Error::other("its stdout closed but it still runs"))
                }
                Err(e) => break Err(e),
            }
        };
        drop(child);
        match status {
            Ok(status) => TestkitError::Exited {
                log_tail: format!(
                    "{}\n(stdout: {:?})",
                    log::tail(&self.log, &label),
                    self.output.lock().other
                ),
                process: label,
                status,
            },
            Err(e) => TestkitError::io(format!("cannot check on {label}"), e),
        }
    }

    fn label(&self) -> String {
        format!("FlinkRetrievalProbe {}", self.component.node())
    }

    /// The process. A test that panicked while holding the lock must not
    /// stop `Drop` from killing it, hence no poisoning.
    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FlinkRetrievalProbe {
    /// Kills the program; its directory goes after (field drop).
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for FlinkRetrievalProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlinkRetrievalProbe")
            .field("component", &self.component)
            .field("pid", &self.pid())
            .field("notifications", &self.notifications())
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

/// Files the program's lines: `READY`, `LEADER <address> <session>`,
/// `LEADER - -`, anything else (`ERROR …`) kept for error messages.
fn read_lines(stdout: impl Read, output: &Output) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut lines = output.lock();
        match parse(line.trim()) {
            Line::Ready => lines.ready = true,
            Line::Leader(leader) => lines.notifications.push(leader),
            Line::Other(other) => lines.other.push(other.to_owned()),
        }
        output.changed.notify_all();
    }
    output.lock().closed = true;
    output.changed.notify_all();
}

#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Ready,
    Leader(Option<FlinkLeader>),
    Other(&'a str),
}

fn parse(line: &str) -> Line<'_> {
    if line == "READY" {
        return Line::Ready;
    }
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["LEADER", "-", "-"] => Line::Leader(None),
        ["LEADER", address, session] => Line::Leader(Some(FlinkLeader {
            address: (*address).to_owned(),
            session: (*session).to_owned(),
        })),
        _ => Line::Other(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed() {
        assert_eq!(parse("READY"), Line::Ready);
        assert_eq!(parse("LEADER - -"), Line::Leader(None));
        assert_eq!(
            parse("LEADER http://127.0.0.1:8081 c46d22ab-5060-4670-a4d1-337a9cfeac7e"),
            Line::Leader(Some(FlinkLeader {
                address: "http://127.0.0.1:8081".into(),
                session: "c46d22ab-5060-4670-a4d1-337a9cfeac7e".into(),
            }))
        );
        assert_eq!(parse("ERROR boom"), Line::Other("ERROR boom"));
    }
}
