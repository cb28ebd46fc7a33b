//! The test suites' view of the memory backend: a fresh cluster per case,
//! whose clients stand for processes.

#![allow(dead_code)]

use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::{Clients, TestCluster};
use tenure_core::{DynBackend, MemoryBackend, MemoryCluster, Result};

/// A memory cluster that remembers its clients, to expire their sessions.
pub(crate) struct Memory {
    pub(crate) cluster: MemoryCluster,
    ttl: Duration,
    clients: Clients<MemoryBackend>,
}

/// A fresh cluster, its clients on the default TTL.
pub(crate) fn new_cluster() -> Memory {
    Memory {
        cluster: MemoryCluster::new(),
        ttl: tenure_core::memory::DEFAULT_TTL,
        clients: Clients::default(),
    }
}

/// Clients with a short TTL, for the cases that cut them off and wait for it.
pub(crate) fn new_pausable() -> Memory {
    Memory {
        ttl: Duration::from_secs(2),
        ..new_cluster()
    }
}

#[async_trait]
impl TestCluster for Memory {
    async fn client(&self) -> Result<DynBackend> {
        Ok(self
            .clients
            .add_backend(self.cluster.client_with_ttl(self.ttl)))
    }

    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        self.clients.handle(client).expire_session();
        Ok(())
    }

    /// A network partition: the server expires the session when its TTL has
    /// run out unseen.
    async fn pause(&self, client: &DynBackend) -> Result<()> {
        self.clients.handle(client).partition();
        Ok(())
    }

    async fn resume(&self) -> Result<()> {
        for memory in self.clients.handles() {
            memory.heal();
        }
        Ok(())
    }
}
