//! Elections: one leader, arrival order, terms, handover, session expiry, no
//! phantom leaders, cancellation, idempotence and scale.

use std::collections::HashSet;

use futures_util::future::join_all;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{clients, election, granted, lost, path, spawn_campaign, wait_queued};
use crate::conformance::{eventually, within, TestCluster};
use crate::election::{ConnectionPolicy, ElectionFactory, ElectionOptions};
use crate::error::{Error, Result};
use crate::leadership::LossReason;

/// Exactly one of N candidates leads; the others wait; each leads in turn, and
/// never two at once.
pub async fn one_leader_among_candidates(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 5).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (i, b) in backends.iter().enumerate() {
        spawn_campaign(&election(b, "one-leader", &format!("c{i}")), i, &tx);
    }
    let (first, mut current) = granted(&mut rx, "the first grant").await;
    wait_queued(&backends[0], "one-leader", 5).await;
    let record = backends[1]
        .leader(&path("one-leader"))
        .await
        .unwrap()
        .expect("a leader");
    assert_eq!(record.term, current.term());
    assert_eq!(record.value, format!("c{first}").into_bytes());
    assert!(
        rx.try_recv().is_err(),
        "a second candidate was granted while the first led"
    );
    let mut seen = HashSet::from([first]);
    for round in 0..4 {
        current.resign().await.expect("resign");
        let (next, leadership) = granted(&mut rx, "the next grant").await;
        // The old leadership is over at the backend, not just in-process.
        let err = current
            .put_unchecked(&path("one-leader-state"), b"stale")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Fenced { .. }),
            "round {round}: the resigned leader still writes: {err}"
        );
        assert!(
            leadership.term() > current.term(),
            "round {round}: term did not grow"
        );
        assert!(seen.insert(next), "candidate {next} was granted twice");
        assert!(rx.try_recv().is_err(), "round {round}: two grants at once");
        current = leadership;
    }
    assert_eq!(seen.len(), 5);
}

/// Waiting candidates are granted in the order they joined.
pub async fn waiting_candidates_granted_in_arrival_order(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 4).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let name = "arrival";
    let mut leader = election(&backends[0], name, "c0").campaign().await.unwrap();
    for (i, b) in backends.iter().enumerate().skip(1) {
        spawn_campaign(&election(b, name, &format!("c{i}")), i, &tx);
        wait_queued(&backends[0], name, i + 1).await;
    }
    for expected in 1..4 {
        leader.resign().await.unwrap();
        let (next, leadership) = granted(&mut rx, "the next in line").await;
        assert_eq!(next, expected, "granted out of arrival order");
        leader = leadership;
    }
}

/// Graceful resignations hand leadership back and forth; every term is greater
/// than the one before, and the leader record follows.
pub async fn resign_hands_over_with_increasing_terms(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let name = "handover";
    let elections = [
        election(&backends[0], name, "a"),
        election(&backends[1], name, "b"),
    ];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut leader = elections[0].campaign().await.unwrap();
    let mut holder = 0;
    for round in 0..10 {
        let other = 1 - holder;
        spawn_campaign(&elections[other], other, &tx);
        wait_queued(&backends[0], name, 2).await;
        leader.resign().await.unwrap();
        let (next, leadership) = granted(&mut rx, "the handover").await;
        assert_eq!(next, other, "round {round}");
        assert!(
            leadership.term() > leader.term(),
            "round {round}: term did not grow"
        );
        let record = backends[holder].leader(&path(name)).await.unwrap();
        assert_eq!(record.map(|r| r.term), Some(leadership.term()));
        leader = leadership;
        holder = other;
    }
}

/// Terms are never reused: not after the queue empties, not for a new client,
/// and — where the backend can restart — not across a restart.
pub async fn terms_increase_across_restart(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let first = election(&backends[0], "restart", "a")
        .campaign()
        .await
        .unwrap();
    first.resign().await.unwrap();
    cluster.restart().await.expect("restart");
    let fresh = clients(cluster, 1).await;
    let second = election(&fresh[0], "restart", "b")
        .campaign()
        .await
        .unwrap();
    assert!(
        second.term() > first.term(),
        "term {} reused or lowered after {} and a restart",
        second.term(),
        first.term()
    );
}

/// Deleting a leader's own candidate (as an operator might) ends its
/// leadership with `CandidateRemoved`, and the next candidate is granted.
pub async fn deleted_candidate_ends_leadership(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let leader = election(&backends[0], "deleted", "a")
        .campaign()
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "deleted", "b"), 1, &tx);
    wait_queued(&backends[0], "deleted", 2).await;
    // Straight at the backend, behind the election's back.
    backends[1].resign(leader.grant()).await.unwrap();
    assert_eq!(
        lost(&leader, "the lost-signal").await,
        LossReason::CandidateRemoved
    );
    let (_, next) = granted(&mut rx, "the next candidate").await;
    assert!(next.term() > leader.term());
    let err = leader
        .put_unchecked(&path("deleted/x"), b"late")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
}

/// Closing a backend ends its leaderships with `Closed`, frees its elections
/// for others, and makes every later call fail with `Closed`.
pub async fn closing_the_backend_ends_everything(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let leader = election(&backends[0], "backend-close", "a")
        .campaign()
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "backend-close", "b"), 1, &tx);
    wait_queued(&backends[1], "backend-close", 2).await;
    backends[0].close().await.unwrap();
    assert_eq!(lost(&leader, "the lost-signal").await, LossReason::Closed);
    granted(&mut rx, "the other candidate").await;
    let err = backends[0].get(&path("backend-close/x")).await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err}");
    let err = election(&backends[0], "backend-close", "a")
        .campaign()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err}");
}

/// Session expiry revokes every leadership on the session, with the reason; the
/// process then campaigns on a new session.
pub async fn session_expiry_revokes_every_leadership(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let names = ["expiry-1", "expiry-2", "expiry-3"];
    let elections: Vec<_> = names
        .iter()
        .map(|n| election(&backends[0], n, "a"))
        .collect();
    let mut held = Vec::new();
    for e in &elections {
        held.push(e.campaign().await.unwrap());
    }
    let before = backends[0].session().borrow().id;
    cluster.expire_session(&backends[0]).await.unwrap();
    for l in &held {
        assert_eq!(lost(l, "the lost-signal").await, LossReason::SessionLost);
        let err = l
            .put_unchecked(&path("expiry-state"), b"stale")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Fenced { .. }), "{err}");
    }
    let again = elections[0]
        .campaign()
        .await
        .expect("campaign on a new session");
    assert!(again.term() > held[0].term());
    assert_ne!(
        again.grant().session,
        before,
        "granted on the expired session"
    );
}

/// A candidate whose session expired while it waited is never granted; an
/// election campaigns again on the new session.
pub async fn no_phantom_leader(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let name = path("phantom");
    let leader = election(&backends[0], "phantom", "a")
        .campaign()
        .await
        .unwrap();

    // The backend itself: the waiting campaign fails rather than being granted.
    let b = backends[1].clone();
    let session = b.session().borrow().id;
    let n = name.clone();
    let pending = tokio::spawn(async move { b.campaign(&n, session, b"b").await });
    wait_queued(&backends[0], "phantom", 2).await;
    cluster.expire_session(&backends[1]).await.unwrap();
    let outcome = within("the expired campaign to end", pending)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Err(Error::SessionExpired { .. })),
        "a candidate of an expired session was answered with {outcome:?}"
    );
    wait_queued(&backends[0], "phantom", 1).await;
    let stale = backends[1].campaign(&name, session, b"b").await;
    assert!(
        matches!(stale, Err(Error::SessionExpired { .. })),
        "{stale:?}"
    );

    // The election: it waits on, under the new session, and is granted there.
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "phantom", "b"), 1, &tx);
    wait_queued(&backends[0], "phantom", 2).await;
    let waiting_session = backends[1].session().borrow().id;
    cluster.expire_session(&backends[1]).await.unwrap();
    eventually("the session to be replaced", || async {
        backends[1].session().borrow().id != waiting_session
    })
    .await;
    leader.resign().await.unwrap();
    let (_, successor) = granted(&mut rx, "the re-campaigned grant").await;
    let live = backends[1].session().borrow().id;
    assert_eq!(successor.grant().session, live, "granted on a dead session");
    let record = backends[0].leader(&name).await.unwrap().expect("a leader");
    assert_eq!(record.term, successor.term());
}

/// A cancelled campaign withdraws its candidate: it is never granted and does
/// not block the candidates after it.
pub async fn cancelled_campaign_leaves_no_candidate(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 3).await;
    let leader = election(&backends[0], "cancel", "a")
        .campaign()
        .await
        .unwrap();
    let cancelled = election(&backends[1], "cancel", "b");
    let task = tokio::spawn(async move { cancelled.campaign().await });
    wait_queued(&backends[0], "cancel", 2).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    wait_queued(&backends[0], "cancel", 1).await;

    let mut leaders = backends[2].watch_leader(&path("cancel")).await.unwrap();
    let now = within("the current leader", leaders.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.map(|r| r.term), Some(leader.term()));
    leader.resign().await.unwrap();
    let next = within("the leader change", leaders.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, None, "the cancelled candidate was granted");
    let c = election(&backends[2], "cancel", "c")
        .campaign()
        .await
        .unwrap();
    assert!(c.term() > leader.term());
}

/// `campaign()` is idempotent: while leading, every call returns the same
/// leadership; concurrent calls share one candidate.
pub async fn campaign_is_idempotent(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let a = election(&backends[0], "idempotent", "a");
    let first = a.campaign().await.unwrap();
    let again = a.campaign().await.unwrap();
    assert_eq!(
        (first.term(), first.session_id()),
        (again.term(), again.session_id())
    );
    wait_queued(&backends[0], "idempotent", 1).await;

    let b = election(&backends[1], "idempotent", "b");
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&b, 1, &tx);
    spawn_campaign(&b, 2, &tx);
    wait_queued(&backends[0], "idempotent", 2).await;
    first.resign().await.unwrap();
    let (_, x) = granted(&mut rx, "the first concurrent caller").await;
    let (_, y) = granted(&mut rx, "the second concurrent caller").await;
    assert_eq!((x.term(), x.session_id()), (y.term(), y.session_id()));
    wait_queued(&backends[0], "idempotent", 1).await;
}

/// 1,000 elections on one session are all granted, and all revoked when the
/// session is lost.
pub async fn many_elections_on_one_session(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    // Ended by the session's loss alone: a backend may see its connection
    // drop (suspended) before it learns the session is gone (ZooKeeper,
    // whose server closes the old connection when the session is taken
    // over), and suspension must not be what ends these leaderships.
    let factory = ElectionFactory::with_options(
        backends[0].clone(),
        ElectionOptions {
            policy: ConnectionPolicy::RevokeOnLost,
            ..ElectionOptions::default()
        },
    );
    let elections: Vec<_> = (0..1000)
        .map(|i| factory.new_election(&format!("many-{i}")).unwrap())
        .collect();
    let held: Vec<_> = within(
        "1,000 grants",
        join_all(elections.iter().map(|e| e.campaign())),
    )
    .await
    .into_iter()
    .collect::<Result<_>>()
    .expect("every election granted");
    let session = backends[0].session().borrow().id;
    assert!(held.iter().all(|l| l.grant().session == session));
    cluster.expire_session(&backends[0]).await.unwrap();
    within(
        "1,000 lost-signals",
        join_all(held.iter().map(|l| l.lost())),
    )
    .await
    .into_iter()
    // The server ended the session: every leadership says so.
    .for_each(|reason| assert_eq!(reason, LossReason::SessionLost));
}

/// A leader whose session can no longer be renewed steps down by its renew
/// deadline — even under a policy that tolerates suspensions — and before
/// the server can grant a waiting candidate.
pub async fn leader_steps_down_by_its_renew_deadline(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let tolerant = ElectionFactory::with_options(
        backends[0].clone(),
        ElectionOptions {
            policy: ConnectionPolicy::RevokeOnLost,
            candidate_id: Some("a".to_owned()),
        },
    )
    .new_election("deadline")
    .unwrap();
    let leader = tolerant.campaign().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "deadline", "b"), 1, &tx);
    wait_queued(&backends[1], "deadline", 2).await;

    cluster.pause(&backends[0]).await.expect("pause");
    // Only the renew deadline can end it while cut off: a suspension does not
    // (the policy), and the loss of the session cannot be heard.
    assert_eq!(
        lost(&leader, "the step-down at the renew deadline").await,
        LossReason::RenewDeadlinePassed
    );
    let stepped_down = tokio::time::Instant::now();
    assert!(
        rx.try_recv().is_err(),
        "a successor was granted before the leader stepped down"
    );
    cluster.resume().await.expect("resume");
    let (_, successor) = granted(&mut rx, "the successor").await;
    assert!(
        successor.granted_at() > stepped_down,
        "the successor was granted before the leader stepped down"
    );
    assert!(successor.term() > leader.term());
    tolerant.close().await;
}
