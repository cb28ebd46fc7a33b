//! The conformance suite's view of etcd: a shared server (or cluster) per test
//! binary, with each case under its own key prefix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::TestCluster;
use tenure_core::{DynBackend, Result};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;

pub(crate) struct Etcd {
    pub(crate) server: &'static EtcdCluster,
    pub(crate) prefix: String,
    clients: Mutex<Vec<(DynBackend, EtcdBackend)>>,
}

/// A case on `server`, under a prefix of its own.
pub(crate) fn case_on(server: &'static EtcdCluster) -> Etcd {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    Etcd {
        server,
        prefix: format!("case{}", NEXT.fetch_add(1, Ordering::SeqCst)),
        clients: Mutex::new(Vec::new()),
    }
}

#[async_trait]
impl TestCluster for Etcd {
    async fn client(&self) -> Result<DynBackend> {
        let config = EtcdConfig::new(&self.server.endpoints())?
            .with_prefix(&self.prefix)?
            .with_ttl(Duration::from_secs(3))?;
        let client = EtcdBackend::connect(config).await?;
        let dynamic: DynBackend = Arc::new(client.clone());
        self.clients.lock().unwrap().push((dynamic.clone(), client));
        Ok(dynamic)
    }

    /// Revokes the client's lease from the server side, as a TTL running out
    /// would.
    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        let lease = client.session().borrow().id.0 as i64;
        let etcd = {
            let clients = self.clients.lock().unwrap();
            clients
                .iter()
                .find(|(d, _)| Arc::ptr_eq(d, client))
                .expect("a client of this cluster")
                .1
                .clone()
        };
        etcd.client()
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
