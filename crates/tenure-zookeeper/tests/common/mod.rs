//! The conformance suite's view of ZooKeeper: a shared server (or ensemble) per
//! test binary, with each case under a chroot of its own.

#![allow(dead_code)]

mod proxy;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::{blocking, Clients, TestCluster};
use tenure_core::{DynBackend, Error, Result};
use tenure_testkit::{ZkCluster, ZkOptions};
use tenure_zookeeper::{Layout, ZkBackend, ZkConfig};

/// The session timeout of test clients: short, so expiry tests stay fast.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct Zk {
    pub(crate) server: &'static ZkCluster,
    pub(crate) chroot: String,
    /// Before a restart, wait until every server has written a snapshot after
    /// its first transaction, so that the restart recovers from it.
    snapshot_before_restart: bool,
    /// How the case's clients store values.
    pub(crate) layout: Layout,
    /// Each client, with the proxies it reaches the servers through.
    clients: Clients<(ZkBackend, Arc<[proxy::Proxy]>)>,
}

/// A fresh chroot name, unique in this test binary.
pub(crate) fn fresh_chroot() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("case{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A case on `server`, under a chroot of its own.
pub(crate) fn case_on(server: &'static ZkCluster) -> Zk {
    Zk {
        server,
        chroot: fresh_chroot(),
        snapshot_before_restart: false,
        layout: Layout::Tenure,
        clients: Clients::default(),
    }
}

/// A case on `server` whose clients use Flink's layout (`layout=flink`).
pub(crate) fn flink_case_on(server: &'static ZkCluster) -> Zk {
    Zk {
        layout: Layout::Flink,
        ..case_on(server)
    }
}

/// A configuration for `server` under `chroot`.
pub(crate) fn config(server: &ZkCluster, chroot: &str) -> ZkConfig {
    let servers: Vec<String> = server
        .connect_string()
        .split(',')
        .map(str::to_owned)
        .collect();
    ZkConfig::new(&servers)
        .unwrap()
        .with_chroot(chroot)
        .unwrap()
        .with_session_timeout(SESSION_TIMEOUT)
        .unwrap()
}

/// Ends `client`'s ZooKeeper session from the server side, as a timeout
/// running out would: a second client joins the session with its id and
/// password and closes it. The victim reconnects at once, which can take the
/// session back before the close is sent; so join again until the server says
/// the session is gone.
pub(crate) async fn expire(server: &ZkCluster, client: &ZkBackend) -> Result<()> {
    let session = client.client()?.session().clone();
    let servers = server.connect_string();
    for _ in 0..50 {
        let joining = zookeeper_client::Client::connector()
            .with_session(session.clone())
            .with_session_timeout(client.negotiated_session_timeout())
            .with_connection_timeout(Duration::from_millis(500))
            .connect(&servers);
        match tokio::time::timeout(Duration::from_secs(2), joining).await {
            Ok(Ok(joined)) => {
                // Dropping the only handle of the joined client closes the
                // session (if the victim has not taken it back meanwhile).
                let mut states = joined.state_watcher();
                drop(joined);
                let closing = async {
                    while !states.peek_state().is_terminated() {
                        states.changed().await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
            }
            Ok(Err(zookeeper_client::Error::SessionExpired)) => return Ok(()),
            Ok(Err(_)) | Err(_) => {}
        }
    }
    Err(Error::Backend {
        message: "the session could not be expired".into(),
        source: None,
    })
}

/// A case on servers of its own (`members` of them), which the restart cases
/// restart; they live until the test process exits.
#[allow(dead_code)]
pub(crate) fn private_case(members: usize) -> Zk {
    let server = if members == 1 {
        ZkCluster::standalone()
    } else {
        ZkCluster::ensemble(members)
    };
    case_on(Box::leak(Box::new(
        server.unwrap_or_else(|e| panic!("{e}")),
    )))
}

/// Like [`private_case`], on servers that write a snapshot every couple of
/// transactions (`snapCount=2`): the restart case then recovers terms from a
/// snapshot and a log of at most one transaction, not from the log alone.
pub(crate) fn private_snapshotting_case(members: usize) -> Zk {
    let server = ZkCluster::start(ZkOptions {
        servers: members,
        snap_count: Some(2),
        ..ZkOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    Zk {
        snapshot_before_restart: true,
        ..case_on(Box::leak(Box::new(server)))
    }
}

/// Waits until every server of `server` has a snapshot past zxid 0.
fn await_snapshots(server: &ZkCluster) -> std::result::Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for member in 0..server.servers() {
        loop {
            let snapshots = server.snapshots(member).map_err(|e| e.to_string())?;
            if snapshots.iter().any(|&zxid| zxid > 0) {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "zk{member} wrote no snapshot past zxid 0: {snapshots:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

#[async_trait]
impl TestCluster for Zk {
    /// Freezes every server of the case's own cluster (SIGSTOP): no client
    /// can renew its session, and none can be granted.
    async fn pause(&self, _client: &DynBackend) -> Result<()> {
        self.server.pause_all();
        Ok(())
    }

    async fn resume(&self) -> Result<()> {
        self.server.resume_all();
        Ok(())
    }

    /// Kills every server of the case's own cluster and starts them all again
    /// on their data: a whole-cluster restart.
    async fn restart(&self) -> Result<()> {
        let server = self.server;
        let snapshot_first = self.snapshot_before_restart;
        blocking("restarting the servers", move || {
            if snapshot_first {
                await_snapshots(server)?;
            }
            server.restart_every_member().map_err(|e| e.to_string())
        })
        .await
    }

    /// A client that reaches each server through a proxy of its own, so that
    /// [`TestCluster::expire_session`] can keep it from taking its session
    /// back while the session is closed.
    async fn client(&self) -> Result<DynBackend> {
        let mut proxies = Vec::new();
        for server in 0..self.server.servers() {
            proxies.push(proxy::Proxy::start(self.server.client_addr(server)).await);
        }
        let servers: Vec<String> = proxies.iter().map(|p| p.addr.to_string()).collect();
        let config = ZkConfig::new(&servers)?
            .with_chroot(&self.chroot)?
            .with_session_timeout(SESSION_TIMEOUT)?
            .with_layout(self.layout);
        let client = ZkBackend::connect(config).await?;
        Ok(self
            .clients
            .add(Arc::new(client.clone()), (client, proxies.into())))
    }

    /// Holds the client's reconnections, closes its session from a second
    /// client that joins it, then lets the client reconnect and find out.
    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        let (zk, proxies) = self.clients.handle(client);
        proxies.iter().for_each(proxy::Proxy::hold);
        let expired = expire(self.server, &zk).await;
        proxies.iter().for_each(proxy::Proxy::release);
        expired
    }
}
