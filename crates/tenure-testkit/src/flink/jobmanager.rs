//! [`FlinkJobManager`]: a real Flink 2.3 JobManager in ZooKeeper HA mode.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::config::{self, Ports};
use super::{http, install, FlinkOptions};
use crate::log;
use crate::ports::free_port;
use crate::process;
use crate::temp::TempDir;
use crate::{TestkitError, READY_TIMEOUT};

/// How often a wait polls the log or the REST endpoint.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The components a JobManager enters into the election, in Flink's names;
/// it has joined once it has registered all three.
const COMPONENTS: [&str; 3] = ["rest_server", "dispatcher", "resource_manager"];

/// A Flink 2.3 JobManager (`StandaloneSessionClusterEntrypoint`, no
/// TaskManagers) in ZooKeeper HA mode, in a JVM of its own, listening on
/// free loopback ports, with its configuration, HA storage and log in a
/// temporary directory.
///
/// JobManagers started with the same [`FlinkOptions`] on the same ZooKeeper
/// form one cluster: one Curator `LeaderLatch` at
/// `<root>/<cluster id>/leader/latch` decides which of them leads all of its
/// components, and the leader publishes each component's address under
/// `leader/<component>/connection_info` (see
/// [`FlinkRetrievalProbe`](crate::FlinkRetrievalProbe)). A standby's REST
/// endpoint serves too, once it knows the leader.
///
/// Dropping the value kills the JVM (SIGKILL) and removes the directory; a
/// watchdog does it if the test process dies first.
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// use tenure_testkit::{FlinkJobManager, FlinkOptions, ZkCluster, READY_TIMEOUT};
///
/// let zk = ZkCluster::standalone()?;
/// let options = FlinkOptions::default();
/// let jm = FlinkJobManager::start(&zk.connect_string(), &options)?;
/// let session = jm.wait_leader(READY_TIMEOUT)?; // the only one: it leads
/// assert_eq!(jm.leader_session(), Some(session));
/// let overview = jm.wait_serving(READY_TIMEOUT)?;
/// assert!(overview.contains(r#""flink-version":"2.3.0""#), "{overview}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FlinkJobManager {
    child: Mutex<Child>,
    options: FlinkOptions,
    ports: Ports,
    /// Flink's log (log4j).
    log: PathBuf,
    /// The JVM's own stdout and stderr: crashes before logging starts.
    out: PathBuf,
    /// Dropped last, after `Drop` has killed the process using it.
    dir: TempDir,
}

impl FlinkJobManager {
    /// Starts a JobManager of the cluster `options` describe, on the
    /// ZooKeeper at `zk_connect` (`host:port[,host:port…]`), and waits (up
    /// to [`READY_TIMEOUT`]) until it has joined the election: its REST
    /// endpoint answers and it has registered its three components with
    /// its leader latch. A JobManager started after this one returns
    /// therefore queues behind it: of JobManagers started one after the
    /// other, the first leads.
    ///
    /// The first call installs Flink (see [`flink_lib_dir`](crate::flink_lib_dir)).
    ///
    /// # Errors
    /// Invalid options; Flink or `java` not installable; the JVM exiting or
    /// not joining in time, with the end of its log.
    pub fn start(zk_connect: &str, options: &FlinkOptions) -> Result<Self, TestkitError> {
        options.validate()?;
        let lib = install::flink_lib_dir()?;
        let dir = TempDir::new("flink-jm")?;
        let ports = Ports {
            rpc: free_port()?,
            rest: free_port()?,
            blob: free_port()?,
        };
        config::write_conf(dir.path(), zk_connect, options, ports)?;
        let log = dir.path().join("jobmanager.log");
        let out = dir.path().join("jobmanager.out");
        let output = File::create(&out)
            .map_err(|e| TestkitError::io(format!("cannot create {}", out.display()), e))?;
        let stderr = output
            .try_clone()
            .map_err(|e| TestkitError::io(format!("cannot open {}", out.display()), e))?;
        let child = config::jobmanager_command(&lib, dir.path(), &log)?
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn("java", e))?;
        // The log's path is on the command line (-Dlog.file), where the
        // watchdog checks that the PID is still this JVM.
        process::watchdog(child.id(), &log);
        let jm = Self {
            child: Mutex::new(child),
            options: options.clone(),
            ports,
            log,
            out,
            dir,
        };
        jm.wait_joined(READY_TIMEOUT)?;
        Ok(jm)
    }

    /// Waits up to `timeout` until this JobManager is granted leadership
    /// (see [`leader_session`](Self::leader_session)) and returns the leader
    /// session id it was granted. Leadership granted earlier counts.
    pub fn wait_leader(&self, timeout: Duration) -> Result<String, TestkitError> {
        self.poll(timeout, "to be granted leadership", || {
            self.leader_session()
        })
    }

    /// The leader session id (a UUID) this JobManager was last granted, by its
    /// log — `http://127.0.0.1:<rest port> was granted leadership with
    /// leaderSessionID=…` — or `None` if it never was. It publishes the same
    /// id with its addresses. Whether it still leads, the log does not say.
    pub fn leader_session(&self) -> Option<String> {
        let needle = format!(
            "{} was granted leadership with leaderSessionID=",
            self.rest_url()
        );
        let text = log::since(&self.log, 0);
        let session = text.rsplit_once(&needle)?.1.split_whitespace().next()?;
        Some(session.to_owned())
    }

    /// Waits up to `timeout` until the REST endpoint serves `GET /overview`
    /// (200), which it does once it knows a leading dispatcher: on the leader
    /// after it took over, on a standby after it retrieved the leader. Returns
    /// the overview (JSON).
    pub fn wait_serving(&self, timeout: Duration) -> Result<String, TestkitError> {
        self.poll(timeout, "to serve GET /overview", || {
            match http::get(self.ports.rest, "/overview") {
                Ok((200, body)) => Some(body),
                _ => None,
            }
        })
    }

    /// `GET path` on the REST endpoint (HTTP/1.0): the status and the body.
    /// A JobManager answers 503 while it knows no leader (a standby starting
    /// up, any during an election), then serves, a standby too.
    pub fn rest_get(&self, path: &str) -> Result<(u16, String), TestkitError> {
        http::get(self.ports.rest, path)
            .map_err(|e| TestkitError::io(format!("GET {}{path}", self.rest_url()), e))
    }

    /// Kills the JVM with SIGKILL, like a crashed machine: its ZooKeeper
    /// session, and with it its leadership, lives on until the session
    /// times out. Killing it again does nothing.
    pub fn kill(&self) {
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the JobManager gracefully (SIGTERM: Flink's shutdown hook
    /// closes its leader latch, so a standby takes over at once) and waits
    /// up to [`READY_TIMEOUT`] for the JVM to exit, then kills it.
    pub fn stop(&self) -> Result<(), TestkitError> {
        let mut child = self.lock_child();
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Ok(());
        }
        process::run(
            Command::new("kill").args(["-s", "TERM", &child.id().to_string()]),
            "kill",
        )?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return Ok(());
            }
            thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(TestkitError::Timeout {
            waiting_for: format!("{} to exit after SIGTERM", self.label()),
            after: READY_TIMEOUT,
            log_tail: self.log_tail(),
        })
    }

    /// The process id of the JVM.
    pub fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// Whether the JVM still runs.
    pub fn is_running(&self) -> bool {
        matches!(self.lock_child().try_wait(), Ok(None))
    }

    /// The RPC port (`high-availability.jobmanager.port`), on 127.0.0.1.
    pub fn rpc_port(&self) -> u16 {
        self.ports.rpc
    }

    /// The REST port (`rest.port`), on 127.0.0.1.
    pub fn rest_port(&self) -> u16 {
        self.ports.rest
    }

    /// `http://127.0.0.1:<rest port>`: the REST endpoint's address exactly as
    /// Flink publishes it in `leader/rest_server/connection_info`.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.rest)
    }

    /// The cluster this JobManager belongs to.
    pub fn options(&self) -> &FlinkOptions {
        &self.options
    }

    /// Its directory: `conf/config.yaml`, the HA storage `ha/`, its logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Flink's log of this JobManager.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The end of Flink's log, and of the JVM's own output if it printed any.
    pub fn log_tail(&self) -> String {
        let label = self.label();
        let mut tail = log::tail(&self.log, &label);
        if log::len(&self.out) > 0 {
            tail.push('\n');
            tail.push_str(&log::tail(
                &self.out,
                &format!("{label}, stdout and stderr"),
            ));
        }
        tail
    }

    /// Waits until the REST endpoint answers HTTP and the log shows the
    /// three components registered for the election.
    fn wait_joined(&self, timeout: Duration) -> Result<(), TestkitError> {
        self.poll(timeout, "to join the leader election", || {
            let text = log::since(&self.log, 0);
            let registered = COMPONENTS.iter().all(|component| {
                text.contains(&format!(
                    "LeaderContender has been registered under component '{component}'"
                ))
            });
            (registered && http::get(self.ports.rest, "/config").is_ok()).then_some(())
        })
    }

    /// Polls `check` until it answers, failing early if the JVM exits.
    fn poll<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<T, TestkitError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check() {
                return Ok(found);
            }
            let exited = self.lock_child().try_wait();
            if let Ok(Some(status)) = exited {
                return Err(TestkitError::Exited {
                    process: self.label(),
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    waiting_for: format!("{} {what}", self.label()),
                    after: timeout,
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn label(&self) -> String {
        format!("Flink JobManager {}", self.rest_url())
    }

    /// The process. A test that panicked while holding the lock must not
    /// stop `Drop` from killing it, hence no poisoning.
    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FlinkJobManager {
    /// Kills the JVM; its directory goes after (field drop).
    fn drop(&mut self) {
        self.kill();
    }
}
