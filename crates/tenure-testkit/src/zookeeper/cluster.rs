//! [`ZkCluster`]: real ZooKeeper servers owned by a test.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;

use super::four_letter;
use super::kind::ZooKeeper;
use super::ZkOptions;
use crate::group::ServerGroup;
use crate::temp::TempDir;
use crate::TestkitError;

/// A ZooKeeper ensemble — or one standalone server — of real `java`
/// processes (ZooKeeper 3.8 as packaged by Debian) on loopback ports, with
/// configuration, data and logs in a temporary directory: a [`ServerGroup`]
/// of [`ZooKeeper`] servers.
///
/// Dropping it kills every server (SIGKILL, also when a test panics) and
/// removes the directory. Servers are numbered from 0 (ZooKeeper's `myid` is
/// the number plus one) and keep their name (`zk<i>`), ports and data
/// directory across [`kill`](ServerGroup::kill) and
/// [`restart`](ServerGroup::restart). A server is ready when it answers `ruok`
/// with `imok` and serves; an ensemble when, besides, one server leads and
/// the others follow.
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
pub type ZkCluster = ServerGroup<ZooKeeper>;

impl ServerGroup<ZooKeeper> {
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

    /// Starts servers as `options` say and waits (up to
    /// [`READY_TIMEOUT`](crate::READY_TIMEOUT)) until every one serves and, in
    /// an ensemble, one leads and the others follow.
    pub fn start(options: ZkOptions) -> Result<Self, TestkitError> {
        let servers = options.servers;
        let zookeeper = ZooKeeper::new(options)?;
        Self::start_with(zookeeper, TempDir::new("zookeeper")?, servers)
    }

    /// The connect string of the whole ensemble,
    /// `127.0.0.1:<port>,127.0.0.1:<port>,…` in server order; append a chroot
    /// (`/tenure`) if the client wants one.
    pub fn connect_string(&self) -> String {
        self.all()
            .into_iter()
            .map(|s| self.client_addr(s).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client address of `server`, e.g. to connect to it alone.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn client_addr(&self, server: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.member(server).ports.client))
    }

    /// How many servers the ensemble has, running or not: its
    /// [`members`](ServerGroup::members).
    pub fn servers(&self) -> usize {
        self.members()
    }

    /// The options it was started with.
    pub fn options(&self) -> &ZkOptions {
        self.kind().options()
    }

    /// Sends the four-letter word `word` (`ruok`, `srvr`, `mntr`, `cons`, …;
    /// all are allowed) to `server`'s client port and returns its answer.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn four_letter(&self, server: usize, word: &str) -> Result<String, TestkitError> {
        four_letter::ask(self.member(server).ports.client, word)
            .map_err(|e| TestkitError::io(format!("cannot ask zk{server} `{word}`"), e))
    }

    /// The zxids of the snapshots `server` has written (its data directory's
    /// `version-2/snapshot.<zxid>` files), lowest first. A new server writes
    /// one at zxid 0; more follow every [`snap_count`](ZkOptions::snap_count)
    /// transactions or so.
    ///
    /// # Panics
    /// If there is no such server.
    pub fn snapshots(&self, server: usize) -> Result<Vec<u64>, TestkitError> {
        let dir = self.member(server).dir.join("data").join("version-2");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Not written yet: the server has not started.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(TestkitError::io(
                    format!("cannot list {}", dir.display()),
                    e,
                ))
            }
        };
        let mut zxids = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| TestkitError::io(format!("cannot list {}", dir.display()), e))?;
            let name = entry.file_name();
            let zxid = name
                .to_str()
                .and_then(|name| name.strip_prefix("snapshot."))
                .and_then(|hex| u64::from_str_radix(hex, 16).ok());
            zxids.extend(zxid);
        }
        zxids.sort_unstable();
        Ok(zxids)
    }

    /// The ZooKeeper version the servers run, e.g. `3.8.0`, as the first
    /// serving server reports it.
    pub fn version(&self) -> Result<String, TestkitError> {
        self.serving()
            .into_iter()
            .find_map(|server| ZooKeeper::srvr(self.member(server)))
            .map(|srvr| srvr.version)
            .ok_or_else(|| {
                TestkitError::io(
                    "cannot read the ZooKeeper version",
                    io::Error::new(io::ErrorKind::NotConnected, "no server is serving"),
                )
            })
    }
}
