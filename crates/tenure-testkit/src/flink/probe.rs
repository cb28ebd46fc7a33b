//! [`FlinkRetrievalProbe`]: Flink's own ZooKeeper leader retrieval, in a JVM
//! of its own, reporting every notification.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::compile::compiled;
use super::{config, install, FlinkComponent, FlinkLeader, FlinkOptions};
use crate::temp::TempDir;
use crate::zookeeper::java;
use crate::zookeeper::program::{LineProgram, Transcript};
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
    /// Its stderr goes to `probe.log`: Flink's and Curator's log.
    program: LineProgram<Lines>,
    /// Dropped last, after `program` has killed the process writing into it.
    _dir: TempDir,
}

/// What the program printed.
#[derive(Debug, Default)]
struct Lines {
    ready: bool,
    /// Every notification, in order.
    notifications: Vec<Option<FlinkLeader>>,
    /// How many of `notifications` have been returned.
    consumed: usize,
    /// Other lines (`ERROR …`), for error messages.
    other: Vec<String>,
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
        let mut command = java::java(&classpath, "256m");
        command
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
            .current_dir(dir.path());
        let label = format!("FlinkRetrievalProbe {}", component.node());
        let log = dir.path().join("probe.log");
        // The log4j file's path, in the directory, is on the command line.
        let program = LineProgram::spawn(&mut command, "java", label, log, &log4j)?;
        let probe = Self {
            component,
            program,
            _dir: dir,
        };
        probe
            .program
            .wait(READY_TIMEOUT, "to start", |lines| lines.ready.then_some(()))?;
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
        self.program
            .wait(timeout, "to report a leader change", |lines| {
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
        self.program
            .wait(timeout, "to report the expected leader", |lines| {
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
        self.program.read(|lines| lines.notifications.clone())
    }

    /// The component it watches.
    pub fn component(&self) -> FlinkComponent {
        self.component
    }

    /// The process id of the program.
    pub fn pid(&self) -> u32 {
        self.program.pid()
    }

    /// Kills the program (SIGKILL). Killing it again does nothing.
    pub fn kill(&self) {
        self.program.kill();
    }

    /// The program's stderr: Flink's and Curator's log.
    pub fn log_path(&self) -> &Path {
        self.program.log_path()
    }
}

impl fmt::Debug for FlinkRetrievalProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlinkRetrievalProbe")
            .field("component", &self.component)
            .field("pid", &self.pid())
            .field("notifications", &self.notifications())
            .field("log", &self.log_path())
            .finish_non_exhaustive()
    }
}

impl Transcript for Lines {
    /// Files `READY`, `LEADER <address> <session>` and `LEADER - -`; anything
    /// else (`ERROR …`) is kept for error messages.
    fn file(&mut self, line: &str) {
        match parse(line) {
            Line::Ready => self.ready = true,
            Line::Leader(leader) => self.notifications.push(leader),
            Line::Other(other) => self.other.push(other.to_owned()),
        }
    }

    fn printed(&self) -> String {
        format!("{:?} {:?}", self.notifications, self.other)
    }

    fn exit_note(&self) -> Option<String> {
        Some(format!("(stdout: {:?})", self.other))
    }
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
