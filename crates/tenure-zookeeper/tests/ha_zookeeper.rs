//! HA services on ZooKeeper: the failover scenario in one process (A's
//! session expired), and with leader A a real OS process that is paused
//! (SIGSTOP) until its session expires and B is granted, then resumed to make
//! its stale writes, which ZooKeeper rejects — and finally killed.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tenure_core::conformance::ha::{
    failover_in_process, finish_job, leader_a_role, leader_b_recovers, role, shut_down_cluster,
    snapshot, temp_blob_dir, wait_queued, Candidate, RoleProcess,
};
use tenure_core::DynBackend;
use tenure_testkit::ZkCluster;
use tenure_zookeeper::{ZkBackend, ZkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_scenario_in_process() {
    let cluster = common::case_on(ZkCluster::shared());
    failover_in_process(&cluster, &temp_blob_dir("zk")).await;
}

const ENDPOINTS_ENV: &str = "TENURE_HA_ZK_SERVERS";
const PREFIX_ENV: &str = "TENURE_HA_ZK_CHROOT";
const BLOB_ENV: &str = "TENURE_HA_BLOB_DIR";

/// A short session, so the paused A's session runs out quickly.
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

fn config(endpoints: &[String], prefix: &str) -> ZkConfig {
    ZkConfig::new(endpoints)
        .unwrap()
        .with_chroot(prefix)
        .unwrap()
        .with_session_timeout(SESSION_TIMEOUT)
        .unwrap()
}

/// Leader A, when this executable runs as the child of
/// `failover_with_leader_a_paused_then_killed`; otherwise returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_leader_a() {
    if role().as_deref() != Some("leader-a") {
        return;
    }
    let endpoints: Vec<String> = std::env::var(ENDPOINTS_ENV)
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let prefix = std::env::var(PREFIX_ENV).unwrap();
    let blobs = PathBuf::from(std::env::var(BLOB_ENV).unwrap());
    let backend: DynBackend = Arc::new(
        ZkBackend::connect(config(&endpoints, &prefix))
            .await
            .unwrap(),
    );
    leader_a_role(backend, &blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_leader_a_paused_then_killed() {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let zk = ZkCluster::shared();
    let endpoints: Vec<String> = zk.connect_string().split(',').map(str::to_owned).collect();
    let prefix = format!(
        "ha-process-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let blob_dir = temp_blob_dir("zk-paused");
    let mut a = RoleProcess::spawn(
        "role_leader_a",
        "leader-a",
        &[
            (ENDPOINTS_ENV, endpoints.join(",")),
            (PREFIX_ENV, prefix.clone()),
            (BLOB_ENV, blob_dir.display().to_string()),
        ],
    );
    let a_term: u64 = a.expect("READY")[0].parse().unwrap();

    let b_backend: DynBackend = Arc::new(
        ZkBackend::connect(config(&endpoints, &prefix))
            .await
            .unwrap(),
    );
    let b = Candidate::start(b_backend.clone(), &blob_dir);
    wait_queued(&b_backend, 2).await;

    // A stops mid-flight; its session runs out on the server and B is granted.
    a.signal("-STOP");
    let b = b.leader("b").await;
    assert!(b.fence.term() > a_term, "B leads with a higher term");
    leader_b_recovers(&b).await;

    // A resumes, still believing it leads, and tries to write.
    let before = snapshot(&b_backend, &blob_dir).await;
    a.signal("-CONT");
    a.send("STALE");
    let outcome = a.expect("STALE");
    assert_eq!(
        outcome,
        vec!["rejected", "rejected", "rejected"],
        "A's stale counter bump, checkpoint and raw fenced write"
    );
    assert_eq!(
        snapshot(&b_backend, &blob_dir).await,
        before,
        "A's stale attempts changed something"
    );
    a.kill();

    finish_job(&b, &blob_dir).await;
    shut_down_cluster(&b, &blob_dir).await;
    let _ = std::fs::remove_dir_all(&blob_dir);
}
