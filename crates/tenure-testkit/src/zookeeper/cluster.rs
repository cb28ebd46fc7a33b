//! [`ZkCluster`]: real ZooKeeper servers owned by a test.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::four_letter::{self, Mode, Srvr};
use super::server::Server;
use super::{java, ZkOptions};
use crate::ports::free_port;
use crate::process::{self, Signal};
use crate::temp::TempDir;
use crate::{TestkitError, READY_TIMEOUT};

/// How often a wait polls. Readiness of another process has no event to await.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many times a start or restart is tried when a port was taken between
/// probing it and ZooKeeper binding it.
const BIND_ATTEMPTS: usize = 3;

/// What the JVM logs when a port ZooKeeper should listen on is taken
/// (`java.net.BindException: Address already in use`).
const ADDRESS_IN_USE: &str = "Address already in use";

/// A ZooKeeper ensemble — or one standalone server — of real `java`
/// processes (ZooKeeper 3.8 as packaged by Debian) on loopback ports, with
/// configuration, data and logs in a temporary directory.
///
/// Dropping it kills every server (SIGKILL, also when a test panics) and
/// removes the directory. Servers are numbered from 0 (ZooKeeper's `myid` is
/// the number plus one) and keep their name (`zk<i>`), ports and data
/// directory across [`kill`](Self::kill) and [`restart`](Self::restart).
///
/// ACLs are enforced; tests authenticate with `digest` credentials of their
/// own choosing, nothing is configured on the server for that.
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// let zk = tenure_testkit::ZkCluster::standalone()?;
/// assert_eq!(zk.four_letter(0, "ruok")?, "imok");
/// assert!(zk.connect_string().starts_with("127.0.0.1:"));
/// # Ok(())
/// # }
/// ```
pub struct ZkCluster {
    servers: Vec<Server>,
    /// One slot per server. Behind a mutex so kill, restart, pause and resume
    /// work through `&self`, e.g. from a test's fault-injection thread.
    processes: Mutex<Vec<Slot>>,
    options: ZkOptions,
    classpath: String,
    /// Dropped last, after `Drop` has killed the processes writing into it.
    dir: TempDir,
}

/// A server's process, if it runs.
#[derive(Debug, Default)]
struct Slot {
    child: Option<Child>,
    paused: bool,
    /// Length of the log when the process was launched: what it logged itself
    /// starts there.
    log_start: u64,
}

impl ZkCluster {
    /// The standalone server of this test process, started on first use and
    /// shared by every test in it (isolate them by path). It lives until the
    /// process exits; then a watchdog stops it by PID and removes its
    /// directory.
    ///
    /// # Panics
    /// If ZooKeeper cannot be started (the message says how to install it): a
    /// test that needs ZooKeeper fails, it never skips.
    pub fn shared() -> &'static ZkCluster {
        static SHARED: OnceLock<ZkCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::standalone().unwrap_or_else(|e| panic!("{e}")))
    }

    /// The 3-server ensemble of this test process, started on first use and
    /// shared like [`shared`](Self::shared).
    ///
    /// # Panics
    /// If ZooKeeper cannot be started (the message says how to install it).
    pub fn shared_ensemble() -> &'static ZkCluster {
        static SHARED: OnceLock<ZkCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::ensemble(3).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts one standalone server and waits until it serves.
    pub fn standalone() -> Result<Self, TestkitError> {
        Self::start(ZkOptions::default())
    }

    /// Starts an ensemble of `servers` servers (one runs standalone) and waits
    /// until one leads and the others follow.
    pub fn ensemble(servers: usize) -> Result<Self, TestkitError> {
        Self::start(ZkOptions {
            servers,
            ..ZkOptions::default()
        })
    }

    /// Starts servers as `options` say and waits (up to [`READY_TIMEOUT`])
    /// until every one serves and, in an ensemble, one leads and the others
    /// follow.
    pub fn start(options: ZkOptions) -> Result<Self, TestkitError> {
        options.validate()?;
        let classpath = java::server_classpath()?;
        let mut cluster = Self {
            servers: Vec::new(),
            processes: Mutex::new(Vec::new()),
            options,
            classpath,
            dir: TempDir::new("zookeeper")?,
        };
        for attempt in 1..=BIND_ATTEMPTS {
            cluster.plan()?;
            let started = cluster
                .launch(&cluster.all())
                .and_then(|()| cluster.wait_ready());
            match started {
                Ok(()) => return Ok(cluster),
                Err(_) if attempt < BIND_ATTEMPTS && cluster.lost_a_port(&cluster.all()) => {
                    cluster.kill_all();
                }
                // Dropping the cluster kills what did start.
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Picks fresh ports and writes a fresh configuration for every server.
    fn plan(&mut self) -> Result<(), TestkitError> {
        self.servers = (0..self.options.servers)
            .map(|i| {
                let ports = [free_port()?, free_port()?, free_port()?];
                Ok(Server::new(i, self.dir.path(), ports))
            })
            .collect::<Result<_, TestkitError>>()?;
        for server in &self.servers {
            // A failed attempt's data would carry its epochs into this one.
            let _ = std::fs::remove_dir_all(&server.dir);
            let _ = std::fs::remove_file(&server.log);
            server.configure(&self.servers, &self.options)?;
        }
        *self.lock() = (0..self.servers.len()).map(|_| Slot::default()).collect();
        Ok(())
    }

    /// Launches those of `servers` that have no process.
    fn launch(&self, servers: &[usize]) -> Result<(), TestkitError> {
        let mut slots = self.lock();
        for &server in servers {
            let slot = &mut slots[server];
            if slot.child.is_none() {
                slot.log_start = self.servers[server].log_len();
                slot.child = Some(self.servers[server].spawn(&self.classpath)?);
                slot.paused = false;
            }
        }
        Ok(())
    }

    fn all(&self) -> Vec<usize> {
        (0..self.servers.len()).collect()
    }

    /// Whether the current run of one of `servers` failed to bind a port.
    fn lost_a_port(&self, servers: &[usize]) -> bool {
        let slots = self.lock();
        servers.iter().any(|&server| {
            self.servers[server]
                .log_since(slots[server].log_start)
                .contains(ADDRESS_IN_USE)
        })
    }

    /// The connect string of the whole ensemble,
    /// `127.0.0.1:<port>,127.0.0.1:<port>,…` in server order; append a chroot
    /// (`/tenure`) if the client wants one.
    pub fn connect_string(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client address of `server`, e.g. to connect to it alone.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn client_addr(&self, server: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.servers[server].client_port))
    }

    /// How many servers the ensemble has, running or not.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// The options it was started with.
    pub fn options(&self) -> &ZkOptions {
        &self.options
    }

    /// The temporary directory holding configurations, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file of `server` (every run of it, appended).
    ///
    /// # Panics
    /// If there is no such server.
    pub fn log_path(&self, server: usize) -> PathBuf {
        self.servers[server].log.clone()
    }

    /// The process id of `server`, while it runs (paused counts as running).
    ///
    /// # Panics
    /// If there is no such server.
    pub fn pid(&self, server: usize) -> Option<u32> {
        self.lock()[server].child.as_ref().map(Child::id)
    }

    /// Kills `server` with SIGKILL and reaps it; its data directory stays for
    /// [`restart`](Self::restart). Killing a server that is not running does
    /// nothing.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn kill(&self, server: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[server];
        if let Some(mut child) = slot.child.take() {
            // SIGKILL also ends a stopped process.
            let _ = child.kill();
            let _ = child.wait();
        }
        slot.paused = false;
    }

    /// Starts `server` again with its ports and data directory, killing it
    /// first if it still runs, and waits until it serves — which in an
    /// ensemble needs a quorum to run (see [`restart_all`](Self::restart_all)).
    ///
    /// # Panics
    /// If there is no such server.
    pub fn restart(&self, server: usize) -> Result<(), TestkitError> {
        assert!(server < self.servers.len(), "no server {server}");
        for attempt in 1..=BIND_ATTEMPTS {
            self.kill(server);
            self.launch(&[server])?;
            match self.wait_servers(&[server], false) {
                Ok(()) => return Ok(()),
                Err(_) if attempt < BIND_ATTEMPTS && self.lost_a_port(&[server]) => {
                    // Whoever holds the port is usually a short-lived connection.
                    thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Starts every server that is not running (as [`restart`](Self::restart)
    /// does, but together, so an ensemble that lost its quorum can get it back)
    /// and waits until the ensemble is ready.
    pub fn restart_all(&self) -> Result<(), TestkitError> {
        self.launch(&self.all())?;
        self.wait_ready()
    }

    /// Freezes `server` with SIGSTOP and returns once the kernel shows it
    /// stopped. Its sockets stay open: peers and clients see a server that does
    /// not answer, like a process stuck in a long GC pause or a swapped-out VM.
    ///
    /// # Panics
    /// If there is no such server or it is not running.
    pub fn pause(&self, server: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[server];
        let pid = slot
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("cannot pause zk{server}: it is not running"))
            .id();
        process::signal(pid, Signal::Stop);
        slot.paused = true;
    }

    /// Lets a paused `server` run again (SIGCONT); does nothing to a server
    /// that is not running.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn resume(&self, server: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[server];
        if let Some(child) = &slot.child {
            process::signal(child.id(), Signal::Cont);
        }
        slot.paused = false;
    }

    /// The server that leads, as the running, unpaused servers report it in
    /// `srvr`: the standalone server, or the one in `Mode: leader` — at the
    /// highest epoch if a deposed leader has not noticed yet. `None` while
    /// there is no leader.
    pub fn leader(&self) -> Option<usize> {
        self.serving()
            .into_iter()
            .filter_map(|server| Some((server, self.srvr(server)?)))
            .filter(|(_, srvr)| matches!(srvr.mode, Mode::Leader | Mode::Standalone))
            .max_by_key(|(_, srvr)| srvr.zxid >> 32)
            .map(|(server, _)| server)
    }

    /// Sends the four-letter word `word` (`ruok`, `srvr`, `mntr`, `cons`, …;
    /// all are allowed) to `server`'s client port and returns its answer.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn four_letter(&self, server: usize, word: &str) -> Result<String, TestkitError> {
        four_letter::ask(self.servers[server].client_port, word)
            .map_err(|e| TestkitError::io(format!("cannot ask zk{server} `{word}`"), e))
    }

    /// The ZooKeeper version the servers run, e.g. `3.8.0`, as the first
    /// serving server reports it.
    pub fn version(&self) -> Result<String, TestkitError> {
        self.serving()
            .into_iter()
            .find_map(|server| self.srvr(server))
            .map(|srvr| srvr.version)
            .ok_or_else(|| {
                TestkitError::io(
                    "cannot read the ZooKeeper version",
                    io::Error::new(io::ErrorKind::NotConnected, "no server is serving"),
                )
            })
    }

    /// Waits (up to [`READY_TIMEOUT`]) until every running, unpaused server
    /// answers `ruok` with `imok` and serves, and — in an ensemble — one of
    /// them leads and the others follow. Fails at once if a server's process
    /// exits meanwhile.
    pub fn wait_ready(&self) -> Result<(), TestkitError> {
        self.wait_servers(&[], true)
    }

    /// Waits until `servers` (or, if empty, every serving server at each poll)
    /// serve, and if `need_roles`, until they hold one leader and followers.
    fn wait_servers(&self, servers: &[usize], need_roles: bool) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let watched = if servers.is_empty() {
                self.serving()
            } else {
                servers.to_vec()
            };
            self.check_exits(&watched)?;
            let mut idle = Vec::new();
            let mut modes = Vec::new();
            for &server in &watched {
                match self.ready_mode(server) {
                    Some(mode) => modes.push(mode),
                    None => idle.push(server),
                }
            }
            let leaders = modes.iter().filter(|&&m| m == Mode::Leader).count();
            let followers = modes.iter().filter(|&&m| m == Mode::Follower).count();
            let waiting_for = if !idle.is_empty() {
                let names: Vec<&str> = idle
                    .iter()
                    .map(|&s| self.servers[s].name.as_str())
                    .collect();
                format!("ZooKeeper server(s) {} to serve", names.join(", "))
            } else if need_roles
                && self.servers.len() > 1
                && !(leaders == 1 && leaders + followers == modes.len())
            {
                "the ZooKeeper ensemble to have one leader and only followers besides".to_owned()
            } else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let concerned = if idle.is_empty() { watched } else { idle };
                return Err(TestkitError::Timeout {
                    waiting_for,
                    after: READY_TIMEOUT,
                    log_tail: self.log_tails(&concerned),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The mode of `server` if it answers `ruok` with `imok` and `srvr` with a
    /// mode. `ruok` alone is not enough: it says `imok` as soon as the port is
    /// open, before the server has joined a quorum or loaded its data.
    fn ready_mode(&self, server: usize) -> Option<Mode> {
        let port = self.servers[server].client_port;
        let imok = four_letter::ask(port, "ruok").is_ok_and(|answer| answer == "imok");
        if !imok {
            return None;
        }
        self.srvr(server).map(|srvr| srvr.mode)
    }

    fn srvr(&self, server: usize) -> Option<Srvr> {
        let answer = four_letter::ask(self.servers[server].client_port, "srvr").ok()?;
        four_letter::parse_srvr(&answer)
    }

    /// Fails if one of `servers` was running and its process has exited.
    fn check_exits(&self, servers: &[usize]) -> Result<(), TestkitError> {
        let mut slots = self.lock();
        for &server in servers {
            let slot = &mut slots[server];
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            let exited = child
                .try_wait()
                .map_err(|e| TestkitError::io(format!("cannot check on zk{server}"), e))?;
            if let Some(status) = exited {
                slot.child = None;
                slot.paused = false;
                return Err(TestkitError::Exited {
                    process: format!("ZooKeeper server zk{server}"),
                    status,
                    log_tail: self.servers[server].log_tail(),
                });
            }
        }
        Ok(())
    }

    /// Servers with a process that is not paused: the ones that can answer.
    fn serving(&self) -> Vec<usize> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.child.is_some() && !slot.paused)
            .map(|(server, _)| server)
            .collect()
    }

    fn log_tails(&self, servers: &[usize]) -> String {
        servers
            .iter()
            .map(|&s| self.servers[s].log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kill_all(&self) {
        for server in self.all() {
            self.kill(server);
        }
    }

    /// The process slots. A test that panicked while holding the lock must not
    /// stop `Drop` from killing the processes, hence no poisoning.
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ZkCluster {
    /// Kills every server; the temporary directory goes after (field drop).
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl fmt::Debug for ZkCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids: Vec<Option<u32>> = self.all().into_iter().map(|s| self.pid(s)).collect();
        f.debug_struct("ZkCluster")
            .field("connect_string", &self.connect_string())
            .field("pids", &pids)
            .field("dir", &self.dir.path())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
