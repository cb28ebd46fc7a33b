//! The test suites' view of the local backend: a fresh directory per case,
//! whose clients stand for processes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tenure_core::conformance::{Clients, TestCluster};
use tenure_core::{Backend, DynBackend, Result};
use tenure_local::LocalBackend;

/// One directory, removed when dropped.
pub(crate) struct Local {
    pub(crate) dir: PathBuf,
    clients: Clients<LocalBackend>,
}

/// A cluster on a fresh directory, unique in this test binary.
pub(crate) fn new_cluster() -> Local {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tenure-local-case-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Local {
        dir,
        clients: Clients::default(),
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl TestCluster for Local {
    async fn client(&self) -> Result<DynBackend> {
        Ok(self
            .clients
            .add_backend(LocalBackend::open(&self.dir).await?))
    }

    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        self.clients.handle(client).expire_session().await
    }

    /// Every "process" exits; the directory stays.
    async fn restart(&self) -> Result<()> {
        for client in self.clients.take() {
            client.close().await?;
        }
        Ok(())
    }
}
