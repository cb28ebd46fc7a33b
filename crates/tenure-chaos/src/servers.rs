//! The servers a campaign runs against, started by the test kit: a 3-member
//! etcd cluster, a 3-node ZooKeeper ensemble, or none (local).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tenure_testkit::{EtcdCluster, ZkCluster};

/// Which backend a campaign runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendKind {
    Local,
    Etcd,
    ZooKeeper,
}

impl BackendKind {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "local" => Some(Self::Local),
            "etcd" => Some(Self::Etcd),
            "zookeeper" | "zk" => Some(Self::ZooKeeper),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Etcd => "etcd",
            Self::ZooKeeper => "zookeeper",
        }
    }
}

/// The running servers.
#[derive(Clone)]
pub(crate) enum Servers {
    /// Local: a directory, no server.
    None,
    Etcd(Arc<EtcdCluster>),
    ZooKeeper(Arc<ZkCluster>),
}

impl Servers {
    /// Starts what `kind` needs: three members, on loopback.
    pub(crate) fn start(kind: BackendKind) -> Result<Self, String> {
        Ok(match kind {
            BackendKind::Local => Servers::None,
            BackendKind::Etcd => Servers::Etcd(Arc::new(
                EtcdCluster::cluster(3).map_err(|e| e.to_string())?,
            )),
            BackendKind::ZooKeeper => {
                Servers::ZooKeeper(Arc::new(ZkCluster::ensemble(3).map_err(|e| e.to_string())?))
            }
        })
    }

    pub(crate) fn members(&self) -> usize {
        match self {
            Servers::None => 0,
            Servers::Etcd(g) => g.members(),
            Servers::ZooKeeper(g) => g.members(),
        }
    }

    /// The client address of `member`.
    pub(crate) fn addr(&self, member: usize) -> SocketAddr {
        match self {
            Servers::None => unreachable!("local has no servers"),
            Servers::Etcd(g) => g.endpoints()[member].parse().expect("host:port"),
            Servers::ZooKeeper(g) => g.client_addr(member),
        }
    }

    /// A backend URL for `addrs` (one per member), sessions of `ttl`;
    /// for local, a directory under `dir`.
    pub(crate) fn url(
        &self,
        kind: BackendKind,
        addrs: &[SocketAddr],
        ttl: Duration,
        dir: &Path,
    ) -> String {
        let hosts = addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let ms = ttl.as_millis();
        match kind {
            BackendKind::Local => format!("local://{}", dir.join("data").display()),
            BackendKind::Etcd => format!("etcd://{hosts}/chaos?ttl={ms}ms"),
            BackendKind::ZooKeeper => {
                format!("zk://{hosts}/chaos?session_timeout={ms}ms&connect_timeout=2s")
            }
        }
    }

    /// The member that leads the cluster now, if one does.
    pub(crate) fn leader(&self) -> Option<usize> {
        match self {
            Servers::None => None,
            Servers::Etcd(g) => g.leader(),
            Servers::ZooKeeper(g) => g.leader(),
        }
    }

    pub(crate) fn kill(&self, member: usize) {
        match self {
            Servers::None => {}
            Servers::Etcd(g) => g.kill(member),
            Servers::ZooKeeper(g) => g.kill(member),
        }
    }

    pub(crate) fn pause(&self, member: usize) {
        match self {
            Servers::None => {}
            Servers::Etcd(g) => g.pause(member),
            Servers::ZooKeeper(g) => g.pause(member),
        }
    }

    pub(crate) fn resume(&self, member: usize) {
        match self {
            Servers::None => {}
            Servers::Etcd(g) => g.resume(member),
            Servers::ZooKeeper(g) => g.resume(member),
        }
    }

    /// Starts every member that is not running and waits until the cluster
    /// serves again.
    pub(crate) fn restart_all(&self) -> Result<(), String> {
        match self {
            Servers::None => Ok(()),
            Servers::Etcd(g) => g.restart_all(),
            Servers::ZooKeeper(g) => g.restart_all(),
        }
        .map_err(|e| e.to_string())
    }
}
