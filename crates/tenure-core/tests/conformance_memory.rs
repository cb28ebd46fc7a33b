//! The conformance suite on the memory backend.

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::conformance::TestCluster;
use tenure_core::{DynBackend, MemoryBackend, MemoryCluster, Result};

/// A memory cluster that remembers its clients, to expire their sessions.
struct Memory {
    cluster: MemoryCluster,
    ttl: Duration,
    clients: Mutex<Vec<(DynBackend, MemoryBackend)>>,
}

async fn new_cluster() -> Memory {
    Memory {
        cluster: MemoryCluster::new(),
        ttl: tenure_core::memory::DEFAULT_TTL,
        clients: Mutex::new(Vec::new()),
    }
}

/// Clients with a short TTL, for the cases that cut them off and wait for it.
async fn new_pausable() -> Memory {
    Memory {
        ttl: Duration::from_secs(2),
        ..new_cluster().await
    }
}

#[async_trait]
impl TestCluster for Memory {
    async fn client(&self) -> Result<DynBackend> {
        let client = self.cluster.client_with_ttl(self.ttl);
        let dynamic: DynBackend = Arc::new(client.clone());
        self.clients.lock().unwrap().push((dynamic.clone(), client));
        Ok(dynamic)
    }

    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        let clients = self.clients.lock().unwrap();
        let (_, memory) = clients
            .iter()
            .find(|(d, _)| Arc::ptr_eq(d, client))
            .expect("a client of this cluster");
        memory.expire_session();
        Ok(())
    }

    /// A network partition: the server expires the session when its TTL has
    /// run out unseen.
    async fn pause(&self, client: &DynBackend) -> Result<()> {
        let clients = self.clients.lock().unwrap();
        let (_, memory) = clients
            .iter()
            .find(|(d, _)| Arc::ptr_eq(d, client))
            .expect("a client of this cluster");
        memory.partition();
        Ok(())
    }

    async fn resume(&self) -> Result<()> {
        for (_, memory) in self.clients.lock().unwrap().iter() {
            memory.heal();
        }
        Ok(())
    }
}

tenure_core::conformance_suite!(new_cluster, pause: new_pausable);
