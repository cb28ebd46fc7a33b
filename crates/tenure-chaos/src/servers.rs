//! The servers a campaign runs against, started by the test kit: a 3-member
//! etcd cluster, a 3-node ZooKeeper ensemble, or none (local).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenure_testkit::{EtcdCluster, EtcdOptions, PeerRoute, ZkCluster, ZkOptions};
use tokio::runtime::Handle;

use crate::proxy::{Mode, Proxy};

/// Which backend a campaign runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendKind {
    /// In-process: clients are tasks of the campaign's own process, on one
    /// memory cluster.
    Memory,
    Local,
    Etcd,
    ZooKeeper,
    /// ZooKeeper with clients in Apache Flink's layout (`layout=flink`).
    ZooKeeperFlink,
}

impl BackendKind {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "memory" => Some(Self::Memory),
            "local" => Some(Self::Local),
            "etcd" => Some(Self::Etcd),
            "zookeeper" | "zk" => Some(Self::ZooKeeper),
            "zookeeper-flink" => Some(Self::ZooKeeperFlink),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Local => "local",
            Self::Etcd => "etcd",
            Self::ZooKeeper => "zookeeper",
            Self::ZooKeeperFlink => "zookeeper-flink",
        }
    }
}

/// The running servers.
#[derive(Clone)]
pub(crate) enum Servers {
    /// Local: a directory, no server.
    None,
    Etcd(Arc<EtcdCluster>, PeerProxies),
    ZooKeeper(Arc<ZkCluster>, PeerProxies),
}

/// The fault proxies members reach each other through, by the port each
/// forwards to.
pub(crate) type PeerProxies = Arc<Mutex<Vec<(u16, Proxy)>>>;

impl Servers {
    /// Starts what `kind` needs: three members on loopback, reaching each
    /// other through fault proxies. Call it off the runtime (the proxies are
    /// started on `runtime`).
    pub(crate) fn start(kind: BackendKind, runtime: Handle) -> Result<Self, String> {
        let proxies: PeerProxies = Arc::default();
        let route = {
            let proxies = proxies.clone();
            PeerRoute::new(move |port| {
                let target = SocketAddr::from(([127, 0, 0, 1], port));
                let proxy = runtime.block_on(Proxy::start(target))?;
                let routed = proxy.addr.port();
                proxies.lock().unwrap().push((port, proxy));
                Ok(routed)
            })
        };
        Ok(match kind {
            BackendKind::Memory | BackendKind::Local => Servers::None,
            BackendKind::Etcd => {
                let options = EtcdOptions {
                    members: 3,
                    peer_route: Some(route),
                    ..EtcdOptions::default()
                };
                let cluster = EtcdCluster::start(options).map_err(|e| e.to_string())?;
                Servers::Etcd(Arc::new(cluster), proxies)
            }
            BackendKind::ZooKeeper | BackendKind::ZooKeeperFlink => {
                let options = ZkOptions {
                    servers: 3,
                    peer_route: Some(route),
                    ..ZkOptions::default()
                };
                let ensemble = ZkCluster::start(options).map_err(|e| e.to_string())?;
                Servers::ZooKeeper(Arc::new(ensemble), proxies)
            }
        })
    }

    /// Sets what happens to the traffic other members send to `member`.
    pub(crate) fn set_peer_mode(&self, member: usize, mode: Mode) {
        let (ports, proxies) = match self {
            Servers::None => return,
            Servers::Etcd(g, proxies) => (vec![g.member(member).ports.peer], proxies),
            Servers::ZooKeeper(g, proxies) => {
                let ports = g.member(member).ports;
                (vec![ports.quorum, ports.election], proxies)
            }
        };
        for (port, proxy) in proxies.lock().unwrap().iter() {
            if ports.contains(port) {
                proxy.set(mode);
            }
        }
    }

    pub(crate) fn members(&self) -> usize {
        match self {
            Servers::None => 0,
            Servers::Etcd(g, _) => g.members(),
            Servers::ZooKeeper(g, _) => g.members(),
        }
    }

    /// The client address of `member`.
    pub(crate) fn addr(&self, member: usize) -> SocketAddr {
        match self {
            Servers::None => unreachable!("local has no servers"),
            Servers::Etcd(g, _) => g.endpoints()[member].parse().expect("host:port"),
            Servers::ZooKeeper(g, _) => g.client_addr(member),
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
            BackendKind::Memory => format!("memory:{}?ttl={ms}ms", memory_cluster(dir)),
            BackendKind::Local => format!("local://{}", dir.join("data").display()),
            BackendKind::Etcd => format!("etcd://{hosts}/chaos?ttl={ms}ms"),
            BackendKind::ZooKeeper => {
                format!("zk://{hosts}/chaos?session_timeout={ms}ms&connect_timeout=2s")
            }
            BackendKind::ZooKeeperFlink => {
                format!("zk://{hosts}/chaos?session_timeout={ms}ms&connect_timeout=2s&layout=flink")
            }
        }
    }

    /// The member that leads the cluster now, if one does.
    pub(crate) fn leader(&self) -> Option<usize> {
        match self {
            Servers::None => None,
            Servers::Etcd(g, _) => g.leader(),
            Servers::ZooKeeper(g, _) => g.leader(),
        }
    }

    pub(crate) fn kill(&self, member: usize) {
        match self {
            Servers::None => {}
            Servers::Etcd(g, _) => g.kill(member),
            Servers::ZooKeeper(g, _) => g.kill(member),
        }
    }

    pub(crate) fn pause(&self, member: usize) {
        match self {
            Servers::None => {}
            Servers::Etcd(g, _) => g.pause(member),
            Servers::ZooKeeper(g, _) => g.pause(member),
        }
    }

    pub(crate) fn resume(&self, member: usize) {
        match self {
            Servers::None => {}
            Servers::Etcd(g, _) => g.resume(member),
            Servers::ZooKeeper(g, _) => g.resume(member),
        }
    }

    /// Starts every member that is not running and waits until the cluster
    /// serves again.
    pub(crate) fn restart_all(&self) -> Result<(), String> {
        match self {
            Servers::None => Ok(()),
            Servers::Etcd(g, _) => g.restart_all(),
            Servers::ZooKeeper(g, _) => g.restart_all(),
        }
        .map_err(|e| e.to_string())
    }
}

/// The name of the campaign's memory cluster (one per history directory).
pub(crate) fn memory_cluster(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("chaos-{name}")
}
