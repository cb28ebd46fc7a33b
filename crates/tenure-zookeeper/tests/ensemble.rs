//! Faults of a 3-node ensemble: a node (the ZooKeeper leader included) dies
//! and tenure's leadership stays while the session survives; quorum is lost
//! and the leadership ends at the renew deadline; quorum returns and the
//! election is won again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tenure_core::{
    Backend, ConnectionPolicy, DynBackend, ElectionFactory, ElectionOptions, LossReason, Path,
    SessionState,
};
use tenure_testkit::ZkCluster;
use tenure_zookeeper::ZkBackend;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_keeps_leadership_and_lost_quorum_ends_it_in_time() {
    let zk: &'static ZkCluster = Box::leak(Box::new(
        tokio::task::spawn_blocking(|| ZkCluster::ensemble(3).expect("an ensemble"))
            .await
            .unwrap(),
    ));
    let backend = ZkBackend::connect(common::config(zk, "faults"))
        .await
        .unwrap();
    let dynamic: DynBackend = Arc::new(backend.clone());
    let factory = ElectionFactory::with_options(
        dynamic.clone(),
        ElectionOptions {
            policy: ConnectionPolicy::RevokeOnLost,
            candidate_id: Some("a".into()),
        },
    );
    let election = factory.new_election("ha").unwrap();
    let leadership = election.campaign().await.unwrap();
    let state = Path::parse("key", "ha-state").unwrap();

    // Kill the ZooKeeper leader: the session moves to another node in time.
    let zk_leader = zk.leader().expect("a ZooKeeper leader");
    tokio::task::spawn_blocking(move || {
        zk.kill(zk_leader);
        zk.wait_ready().expect("two nodes keep quorum");
    })
    .await
    .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            match leadership.put(&state, b"after-kill").await {
                Ok(_) => break,
                Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("the leader could not write after a node died: {e}"),
            }
        }
    })
    .await
    .expect("a write after the node died");
    assert!(leadership.is_held(), "{:?}", leadership.loss_reason());

    // Lose quorum: nobody can confirm the session, so the leadership ends at
    // the renew deadline — before the server could expire the session.
    let other = (0..3).find(|&i| i != zk_leader).unwrap();
    tokio::task::spawn_blocking(move || zk.kill(other))
        .await
        .unwrap();
    let reason = tokio::time::timeout(WAIT, leadership.lost())
        .await
        .expect("the leadership ends without quorum");
    assert_eq!(reason, LossReason::RenewDeadlinePassed);

    // Quorum returns: the election is won again (on the old session if it
    // survived, on a new one otherwise).
    tokio::task::spawn_blocking(move || {
        zk.restart(other).unwrap();
        zk.restart(zk_leader).unwrap();
        zk.wait_ready().unwrap();
    })
    .await
    .unwrap();
    let again = tokio::time::timeout(WAIT, election.campaign())
        .await
        .expect("granted again")
        .unwrap();
    assert!(again.term() > leadership.term());
    assert_eq!(backend.session().borrow().state, SessionState::Connected);
    again.put(&state, b"after-quorum").await.unwrap();
}
