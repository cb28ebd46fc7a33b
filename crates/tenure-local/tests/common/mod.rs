//! The test suites' view of the local backend: a fresh directory per case,
//! whose clients stand for processes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tenure_core::conformance::TestCluster;
use tenure_core::{Backend, DynBackend, Result};
use tenure_local::LocalBackend;

/// One directory, removed when dropped.
pub(crate) struct Local {
    pub(crate) dir: PathBuf,
    clients: Mutex<Vec<(DynBackend, LocalBackend)>>,
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
        clients: Mutex::new(Vec::new()),
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
        let client = LocalBackend::open(&self.dir).await?;
        let dynamic: DynBackend = Arc::new(client.clone());
        self.clients.lock().unwrap().push((dynamic.clone(), client));
        Ok(dynamic)
    }

    async fn expire_session(&self, client: &DynBackend) -> Result<()> {
        let local = {
            let clients = self.clients.lock().unwrap();
            let (_, local) = clients
                .iter()
                .find(|(d, _)| Arc::ptr_eq(d, client))
                .expect("a client of this cluster");
            local.clone()
        };
        local.expire_session().await
    }

    /// Every "process" exits; the directory stays.
    async fn restart(&self) -> Result<()> {
        let clients: Vec<_> = self.clients.lock().unwrap().drain(..).collect();
        for (_, client) in clients {
            client.close().await?;
        }
        Ok(())
    }
}
