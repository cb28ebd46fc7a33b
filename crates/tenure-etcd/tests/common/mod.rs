//! The conformance suite's view of etcd: a shared server (or cluster) per test
//! binary, with each case under its own key prefix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::{blocking, Clients, TestCluster};
use tenure_core::{DynBackend, Result};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;

pub(crate) struct Etcd {
    pub(crate) server: &'static EtcdCluster,
    pub(crate) prefix: String,
    /// Before a restart, compact every revision away and defragment.
    compact_before_restart: bool,
    clients: Clients<EtcdBackend>,
}

/// A case on `server`, under a prefix of its own.
pub(crate) fn case_on(server: &'static EtcdCluster) -> Etcd {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    Etcd {
        server,
        prefix: format!("case{}", NEXT.fetch_add(1, Ordering::SeqCst)),
        compact_before_restart: false,
        clients: Clients::default(),
    }
}

/// A case on servers of its own (`members` of them), which the restart cases
/// restart; they live until the test process exits.
#[allow(dead_code)]
pub(crate) fn private_case(members: usize) -> Etcd {
    let server = if members == 1 {
        EtcdCluster::single()
    } else {
        EtcdCluster::cluster(members)
    };
    case_on(Box::leak(Box::new(
        server.unwrap_or_else(|e| panic!("{e}")),
    )))
}

/// Like [`private_case`], but each restart comes after a physical compaction
/// of every older revision and a defragment of every member: terms must not
/// rest on revisions an operator may compact away.
#[allow(dead_code)]
pub(crate) fn private_compacting_case(members: usize) -> Etcd {
    Etcd {
        compact_before_restart: true,
        ..private_case(members)
    }
}

#[async_trait]
impl TestCluster for Etcd {
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
        let compact_first = self.compact_before_restart;
        blocking("restarting the servers", move || {
            if compact_first {
                server.compact_and_defragment()?;
            }
            server.restart_every_member()
        })
        .await
    }

    async fn client(&self) -> Result<DynBackend> {
        let config = EtcdConfig::new(&self.server.endpoints())?
            .with_prefix(&self.prefix)?
            .with_ttl(Duration::from_secs(3))?;
        Ok(self
            .clients
            .add_backend(EtcdBackend::connect(config).await?))
    }

    /// Revokes the client's lease from the server side, as a TTL running out
    /// would.
    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        let lease = client.session().borrow().id.0 as i64;
        self.clients
            .handle(client)
            .client()
            .lease_client()
            .revoke(lease)
            .await
            .map_err(|e| tenure_core::Error::Backend {
                message: format!("revoking lease {lease:x}: {e}"),
                source: None,
            })?;
        Ok(())
    }
}
