//! Behaviour the memory backend lets tests provoke on purpose: suspended and
//! partitioned clients, renew deadlines on a paused clock, and the connection
//! policies.

use std::sync::Arc;
use std::time::Duration;

use tenure_core::{
    Backend, ConnectionPolicy, DynBackend, Election, ElectionFactory, ElectionOptions, Error,
    LossReason, MemoryBackend, MemoryCluster, Path, SessionState,
};
use tokio::time::Instant;

fn election(backend: &MemoryBackend, policy: ConnectionPolicy, id: &str) -> Election {
    let dynamic: DynBackend = Arc::new(backend.clone());
    ElectionFactory::with_options(
        dynamic,
        ElectionOptions {
            policy,
            candidate_id: Some(id.into()),
        },
    )
    .new_election("policy")
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn revoke_on_suspended_ends_leadership_at_once() {
    let cluster = MemoryCluster::new();
    let a = cluster.client();
    let leadership = election(&a, ConnectionPolicy::RevokeOnSuspended, "a")
        .campaign()
        .await
        .unwrap();
    a.suspend();
    assert_eq!(leadership.lost().await, LossReason::SessionSuspended);
    // Calls fail as retryable while cut off.
    let err = a
        .leader(&Path::parse("e", "policy").unwrap())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn tolerant_leader_steps_down_at_its_renew_deadline_before_the_server_expires_it() {
    let cluster = MemoryCluster::new();
    let ttl = Duration::from_secs(10);
    let (a, b) = (cluster.client_with_ttl(ttl), cluster.client_with_ttl(ttl));
    let leadership = election(&a, ConnectionPolicy::RevokeOnLost, "a")
        .campaign()
        .await
        .unwrap();
    let successor = election(&b, ConnectionPolicy::RevokeOnLost, "b");
    let waiting = tokio::spawn(async move {
        let l = successor.campaign().await.unwrap();
        (Instant::now(), l)
    });
    let cut = Instant::now();
    a.partition();
    let status = *a.session().borrow();
    assert_eq!(status.state, SessionState::Suspended);
    let deadline = status
        .renew_deadline
        .expect("a partitioned session has a deadline");
    assert!(deadline < cut + ttl);

    // Tolerant: still leading while suspended, until the deadline.
    tokio::time::sleep_until(deadline - Duration::from_millis(1)).await;
    assert!(leadership.is_held(), "revoked before the renew deadline");
    assert_eq!(leadership.lost().await, LossReason::RenewDeadlinePassed);
    let stepped_down = Instant::now();
    assert!(stepped_down >= deadline);

    let (granted_at, new) = waiting.await.unwrap();
    assert!(
        stepped_down < granted_at,
        "successor granted at {granted_at:?}, before the old leader stepped down at {stepped_down:?}"
    );
    assert!(
        granted_at >= cut + ttl,
        "the server expired the session early"
    );
    assert!(new.term() > leadership.term());

    // When the partition heals, the old client learns its session is gone.
    let before = a.session().borrow().id;
    a.heal();
    let after = *a.session().borrow();
    assert_ne!(after.id, before);
    assert_eq!(after.state, SessionState::Connected);
    let err = leadership
        .put_unchecked(&Path::parse("k", "x").unwrap(), b"late")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_short_suspension_is_tolerated_and_leadership_is_kept() {
    let cluster = MemoryCluster::new();
    let a = cluster.client();
    let leadership = election(&a, ConnectionPolicy::RevokeOnLost, "a")
        .campaign()
        .await
        .unwrap();
    a.suspend();
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.heal();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(leadership.is_held(), "{:?}", leadership.loss_reason());
    leadership
        .put(&Path::parse("k", "still/leading").unwrap(), b"yes")
        .await
        .expect("a fenced write after the suspension");
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_stepped_down_leaves_the_queue_once_reconnected() {
    let cluster = MemoryCluster::new();
    let (a, b) = (cluster.client(), cluster.client());
    let leadership = election(&a, ConnectionPolicy::RevokeOnSuspended, "a")
        .campaign()
        .await
        .unwrap();
    a.suspend();
    assert_eq!(leadership.lost().await, LossReason::SessionSuspended);
    // The server never noticed; once a can reach it, its stale candidate is
    // removed so b is not blocked behind it.
    a.heal();
    let next = election(&b, ConnectionPolicy::RevokeOnSuspended, "b")
        .campaign()
        .await
        .unwrap();
    assert!(next.term() > leadership.term());
}

#[tokio::test]
async fn a_closed_client_fails_calls_and_frees_its_elections() {
    let cluster = MemoryCluster::new();
    let (a, b) = (cluster.client(), cluster.client());
    let held = election(&a, ConnectionPolicy::default(), "a")
        .campaign()
        .await
        .unwrap();
    a.close().await.unwrap();
    assert_eq!(held.lost().await, LossReason::Closed);
    let err = a.get(&Path::parse("k", "x").unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err}");
    assert_eq!(a.session().borrow().state, SessionState::Closed);
    election(&b, ConnectionPolicy::default(), "b")
        .campaign()
        .await
        .unwrap();
}
