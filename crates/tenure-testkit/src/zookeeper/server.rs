//! One ZooKeeper server: where it lives, its `zoo.cfg`, how it is launched,
//! and its log.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use super::{java, log, ZkOptions};
use crate::TestkitError;

/// The fixed facts of a server: a restart reuses all of them.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    /// `zk<index>`, as logs and errors name it.
    pub(crate) name: String,
    /// ZooKeeper's server id (`myid`): the index plus one, ids start at 1.
    pub(crate) id: usize,
    pub(crate) client_port: u16,
    /// Followers connect to the leader here.
    pub(crate) quorum_port: u16,
    /// Leader election traffic.
    pub(crate) election_port: u16,
    /// Holds `zoo.cfg` and `data/`; its path is on the command line, where the
    /// watchdog looks for it.
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
}

impl Server {
    pub(crate) fn new(index: usize, cluster_dir: &Path, ports: [u16; 3]) -> Self {
        let name = format!("zk{index}");
        Self {
            dir: cluster_dir.join(&name),
            log: cluster_dir.join(format!("{name}.log")),
            name,
            id: index + 1,
            client_port: ports[0],
            quorum_port: ports[1],
            election_port: ports[2],
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    /// Writes `zoo.cfg` (and, in an ensemble, `data/myid`) for a fresh server
    /// of `ensemble`.
    pub(crate) fn configure(
        &self,
        ensemble: &[Server],
        options: &ZkOptions,
    ) -> Result<(), TestkitError> {
        let data_dir = self.data_dir();
        fs::create_dir_all(&data_dir)
            .map_err(|e| TestkitError::io(format!("cannot create {}", data_dir.display()), e))?;
        let mut config = format!(
            "# Written by tenure-testkit for {name}.\n\
             tickTime={tick}\n\
             initLimit={init}\n\
             syncLimit={sync}\n\
             dataDir={data}\n\
             clientPort={client}\n\
             clientPortAddress=127.0.0.1\n\
             minSessionTimeout={min}\n\
             maxSessionTimeout={max}\n\
             # Unlimited: a test may open many sessions from 127.0.0.1.\n\
             maxClientCnxns=0\n\
             # Else Jetty takes port 8080.\n\
             admin.enableServer=false\n\
             # ruok, srvr and mntr are how the kit (and tests) ask a server.\n\
             4lw.commands.whitelist=*\n\
             # ZooKeeper's default, spelled out: ACLs are enforced, ACL tests rely on it.\n\
             skipACL=no\n\
             # A SIGKILL loses nothing the page cache holds; only power loss would.\n\
             forceSync=no\n",
            name = self.name,
            tick = options.tick_time_ms,
            init = options.init_limit,
            sync = options.sync_limit,
            data = data_dir.display(),
            client = self.client_port,
            min = options.min_session_timeout_ms,
            max = options.max_session_timeout_ms,
        );
        // One server runs standalone: no quorum, `Mode: standalone`.
        if ensemble.len() > 1 {
            for server in ensemble {
                let _ = writeln!(
                    config,
                    "server.{}=127.0.0.1:{}:{}",
                    server.id, server.quorum_port, server.election_port
                );
            }
            write(&data_dir.join("myid"), &format!("{}\n", self.id))?;
        }
        write(&self.config(), &config)
    }

    /// Starts the process, appending its output to the server's log (a restart
    /// keeps the earlier runs' lines). The data directory carries the server's
    /// state across restarts.
    pub(crate) fn spawn(&self, classpath: &str) -> Result<Child, TestkitError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| TestkitError::io(format!("cannot open {}", self.log.display()), e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| TestkitError::io("cannot duplicate a log handle", e))?;
        let child = java::java(classpath, "256m")
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.config())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn("java", e))?;
        crate::process::watchdog(child.id(), &self.dir);
        Ok(child)
    }

    pub(crate) fn log_len(&self) -> u64 {
        log::len(&self.log)
    }

    pub(crate) fn log_since(&self, from: u64) -> String {
        log::since(&self.log, from)
    }

    pub(crate) fn log_tail(&self) -> String {
        log::tail(&self.log, &self.name)
    }
}

fn write(path: &Path, contents: &str) -> Result<(), TestkitError> {
    fs::write(path, contents)
        .map_err(|e| TestkitError::io(format!("cannot write {}", path.display()), e))
}
