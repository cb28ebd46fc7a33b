//! [`ZooKeeper`]: how the kit configures and launches ZooKeeper servers —
//! `zoo.cfg`, `myid`, the `java` command line — and asks them how they are.

use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::four_letter::{self, Srvr, ZkMode};
use super::{java, ZkOptions};
use crate::group::{Member, ServerGroup, ServerKind};
use crate::ports::free_port;
use crate::TestkitError;

/// ZooKeeper 3.8 servers (as packaged by Debian) in `java` processes, as a
/// [`ServerKind`]: what a [`ZkCluster`](crate::ZkCluster) runs. Servers are
/// named `zk<i>`; ZooKeeper's `myid` is the index plus one.
pub struct ZooKeeper {
    options: ZkOptions,
    classpath: String,
    /// The quorum and election ports the other servers dial, per server.
    routed: Vec<(u16, u16)>,
}

/// The ports of a ZooKeeper server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZkPorts {
    /// Clients, and the four-letter words.
    pub client: u16,
    /// Followers connect to the leader here.
    pub quorum: u16,
    /// Leader election traffic.
    pub election: u16,
}

impl ZooKeeper {
    /// Checks `options` and finds the server's jars.
    pub(super) fn new(options: ZkOptions) -> Result<Self, TestkitError> {
        options.validate()?;
        Ok(Self {
            options,
            classpath: java::server_classpath()?,
            routed: Vec::new(),
        })
    }

    pub(super) fn options(&self) -> &ZkOptions {
        &self.options
    }

    /// What `member` answers to `srvr`, if it serves.
    pub(super) fn srvr(member: &Member<ZkPorts>) -> Option<Srvr> {
        let answer = four_letter::ask(member.ports.client, "srvr").ok()?;
        four_letter::parse_srvr(&answer)
    }

    /// Writes `zoo.cfg` (and, in an ensemble, `data/myid`) for server `index`
    /// of `ensemble`.
    fn write_config(&self, ensemble: &[Member<ZkPorts>], index: usize) -> Result<(), TestkitError> {
        let server = &ensemble[index];
        let options = &self.options;
        let data_dir = server.dir.join("data");
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
            name = server.name,
            tick = options.tick_time_ms,
            init = options.init_limit,
            sync = options.sync_limit,
            data = data_dir.display(),
            client = server.ports.client,
            min = options.min_session_timeout_ms,
            max = options.max_session_timeout_ms,
        );
        if let Some(count) = options.snap_count {
            let _ = writeln!(config, "snapCount={count}");
        }
        // One server runs standalone: no quorum, `Mode: standalone`.
        if ensemble.len() > 1 {
            for (i, peer) in ensemble.iter().enumerate() {
                let (quorum, election) = match self.routed.get(i) {
                    Some(&routed) if i != index => routed,
                    _ => (peer.ports.quorum, peer.ports.election),
                };
                let _ = writeln!(config, "server.{}=127.0.0.1:{quorum}:{election}", myid(i));
            }
            write(&data_dir.join("myid"), &format!("{}\n", myid(index)))?;
        }
        write(&config_path(server), &config)
    }
}

impl ServerKind for ZooKeeper {
    type Ports = ZkPorts;
    /// The mode `srvr` reports.
    type Ready = ZkMode;

    const PROGRAM: &'static str = "java";
    const NAME_PREFIX: &'static str = "zk";
    const NOUN: &'static str = "ZooKeeper server";
    const READY: &'static str = "serve";

    fn ports() -> Result<ZkPorts, TestkitError> {
        Ok(ZkPorts {
            client: free_port()?,
            quorum: free_port()?,
            election: free_port()?,
        })
    }

    fn configure(
        &mut self,
        members: &[Member<ZkPorts>],
        _attempt: usize,
    ) -> Result<(), TestkitError> {
        self.routed = members
            .iter()
            .map(|m| match &self.options.peer_route {
                None => Ok((m.ports.quorum, m.ports.election)),
                Some(route) => Ok((route.port(m.ports.quorum)?, route.port(m.ports.election)?)),
            })
            .collect::<Result<_, TestkitError>>()?;
        (0..members.len()).try_for_each(|index| self.write_config(members, index))
    }

    /// The data directory carries the server's state across restarts.
    fn command(&self, member: &Member<ZkPorts>) -> Command {
        let mut command = java::java(&self.classpath, "256m");
        command
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(config_path(member))
            .current_dir(&member.dir);
        command
    }

    /// The mode of `server` if it answers `ruok` with `imok` and `srvr` with a
    /// mode. `ruok` alone is not enough: it says `imok` as soon as the port is
    /// open, before the server has joined a quorum or loaded its data.
    fn probe(group: &ServerGroup<Self>, server: usize) -> Option<ZkMode> {
        let server = group.member(server);
        let imok =
            four_letter::ask(server.ports.client, "ruok").is_ok_and(|answer| answer == "imok");
        if !imok {
            return None;
        }
        Self::srvr(server).map(|srvr| srvr.mode)
    }

    /// An ensemble is ready when one server leads and the others follow.
    fn unsettled(group: &ServerGroup<Self>, modes: &[ZkMode]) -> Option<String> {
        let leaders = modes.iter().filter(|&&m| m == ZkMode::Leader).count();
        let followers = modes.iter().filter(|&&m| m == ZkMode::Follower).count();
        let settled = group.members() == 1 || (leaders == 1 && leaders + followers == modes.len());
        (!settled).then(|| {
            "the ZooKeeper ensemble to have one leader and only followers besides".to_owned()
        })
    }

    /// The standalone server, or the one in `Mode: leader` — at the highest
    /// epoch if a deposed leader has not noticed yet.
    fn leader(group: &ServerGroup<Self>) -> Option<usize> {
        group
            .serving()
            .into_iter()
            .filter_map(|server| Some((server, Self::srvr(group.member(server))?)))
            .filter(|(_, srvr)| matches!(srvr.mode, ZkMode::Leader | ZkMode::Standalone))
            .max_by_key(|(_, srvr)| srvr.zxid >> 32)
            .map(|(server, _)| server)
    }
}

impl fmt::Debug for ZooKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeper")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// ZooKeeper's server id of server `index`: ids start at 1.
fn myid(index: usize) -> usize {
    index + 1
}

/// `zoo.cfg`, in the server's directory: its path is on the command line,
/// where the watchdog looks for the directory.
fn config_path(server: &Member<ZkPorts>) -> PathBuf {
    server.dir.join("zoo.cfg")
}

fn write(path: &Path, contents: &str) -> Result<(), TestkitError> {
    fs::write(path, contents)
        .map_err(|e| TestkitError::io(format!("cannot write {}", path.display()), e))
}
