//! The conformance suite on a real etcd server, one per test binary; cases are
//! isolated by key prefix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::TestCluster;
use tenure_core::{DynBackend, Result};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;

struct Etcd {
    server: &'static EtcdCluster,
    prefix: String,
    clients: Mutex<Vec<(DynBackend, EtcdBackend)>>,
}

async fn new_cluster() -> Etcd {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    Etcd {
        server: EtcdCluster::shared(),
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

tenure_core::conformance_suite!(new_cluster);
