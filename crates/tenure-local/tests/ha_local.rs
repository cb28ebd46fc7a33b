//! HA services on the local backend: the failover scenario in one process,
//! and with leader A a real OS process killed by SIGKILL.
//!
//! On `local://` a paused (SIGSTOP) process keeps its lock and so its
//! leadership, by design: nobody can take over from a process that is not
//! dead. A stale leader therefore only exists when a live process loses its
//! session; so the process test takes over from a *killed* A, and the stale
//! writes come from an in-process leader S whose session is ended while it
//! lives — granted after A's death, expired so that B takes over — exactly
//! what a stale leader is on this backend.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tenure_core::conformance::ha::{
    assert_rejected, failover_in_process, finish_job, leader_a_role, leader_b_recovers, role,
    shut_down_cluster, snapshot, stale_writes, temp_blob_dir, wait_queued, Candidate, RoleProcess,
};
use tenure_core::conformance::TestCluster;
use tenure_core::{DynBackend, Result};
use tenure_local::LocalBackend;

struct Local {
    dir: PathBuf,
    clients: Mutex<Vec<(DynBackend, LocalBackend)>>,
}

fn state_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tenure-ha-local-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Local {
    fn local(&self, client: &DynBackend) -> LocalBackend {
        let clients = self.clients.lock().unwrap();
        clients
            .iter()
            .find(|(d, _)| Arc::ptr_eq(d, client))
            .expect("a client of this cluster")
            .1
            .clone()
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
        self.local(client).expire_session().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_scenario_in_process() {
    let cluster = Local {
        dir: state_dir("in-process"),
        clients: Mutex::new(Vec::new()),
    };
    failover_in_process(&cluster, &temp_blob_dir("local")).await;
}

const STATE_ENV: &str = "TENURE_HA_STATE_DIR";
const BLOB_ENV: &str = "TENURE_HA_BLOB_DIR";

/// Leader A, when this executable runs as the child of
/// `failover_with_leader_a_killed`; otherwise returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_leader_a() {
    if role().as_deref() != Some("leader-a") {
        return;
    }
    let state = std::env::var(STATE_ENV).unwrap();
    let blobs = PathBuf::from(std::env::var(BLOB_ENV).unwrap());
    let backend: DynBackend = Arc::new(LocalBackend::open(&state).await.unwrap());
    leader_a_role(backend, &blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_leader_a_killed() {
    let cluster = Local {
        dir: state_dir("killed"),
        clients: Mutex::new(Vec::new()),
    };
    let blob_dir = temp_blob_dir("local-killed");
    let mut a = RoleProcess::spawn(
        "role_leader_a",
        "leader-a",
        &[
            (STATE_ENV, cluster.dir.display().to_string()),
            (BLOB_ENV, blob_dir.display().to_string()),
        ],
    );
    let a_term: u64 = a.expect("READY")[0].parse().unwrap();

    // S and B queue behind A.
    let s_backend = cluster.client().await.unwrap();
    let b_backend = cluster.client().await.unwrap();
    let s = Candidate::start(s_backend.clone(), &blob_dir);
    wait_queued(&b_backend, 2).await;
    let b = Candidate::start(b_backend.clone(), &blob_dir);
    wait_queued(&b_backend, 3).await;

    // A dies: the kernel releases its lock, and S is granted at once.
    a.kill();
    let s = s.leader("s").await;
    assert!(s.fence.term() > a_term);
    // S's session ends while S lives: B takes over, and S is a stale leader.
    cluster.local(&s_backend).expire_session().await.unwrap();
    let b = b.leader("b").await;
    assert!(b.fence.term() > s.fence.term());
    leader_b_recovers(&b).await;

    let before = snapshot(&b_backend, &blob_dir).await;
    let outcome = stale_writes(&s.services, &s.fence).await;
    assert_rejected(&outcome);
    assert_eq!(
        snapshot(&b_backend, &blob_dir).await,
        before,
        "the stale leader changed something"
    );

    finish_job(&b, &blob_dir).await;
    s.services.close().await.unwrap();
    shut_down_cluster(&b, &blob_dir).await;
    b_backend.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&blob_dir);
}
