//! The conformance suite on the memory backend.

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use tenure_core::conformance::TestCluster;
use tenure_core::{DynBackend, MemoryBackend, MemoryCluster, Result};

/// A memory cluster that remembers its clients, to expire their sessions.
struct Memory {
    cluster: MemoryCluster,
    clients: Mutex<Vec<(DynBackend, MemoryBackend)>>,
}

async fn new_cluster() -> Memory {
    Memory {
        cluster: MemoryCluster::new(),
        clients: Mutex::new(Vec::new()),
    }
}

#[async_trait]
impl TestCluster for Memory {
    async fn client(&self) -> Result<DynBackend> {
        let client = self.cluster.client();
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
}

tenure_core::conformance_suite!(new_cluster);
