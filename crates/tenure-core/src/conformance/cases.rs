//! The cases of the conformance suite, one function each. Each takes a fresh
//! cluster and panics, naming what went wrong, if the backend breaks a promise.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::join_all;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{eventually, within, TestCluster};
use crate::backend::{Condition, DynBackend, Grant, KvEvent, Versioned};
use crate::election::{Election, ElectionFactory, ElectionOptions};
use crate::error::{Error, Result};
use crate::leader_election::{ElectionMode, LeaderContender, LeaderElectionService};
use crate::leader_info::LeaderInfo;
use crate::leadership::{Leadership, LossReason};
use crate::name::Path;
use crate::retrieval::{follow_election, LeaderRetrieval};
use crate::ConnectionPolicy;

async fn clients(cluster: &dyn TestCluster, n: usize) -> Vec<DynBackend> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            cluster
                .client()
                .await
                .expect("a test cluster makes clients"),
        );
    }
    out
}

fn election(backend: &DynBackend, name: &str, candidate: &str) -> Election {
    ElectionFactory::with_options(
        backend.clone(),
        ElectionOptions {
            candidate_id: Some(candidate.to_owned()),
            ..ElectionOptions::default()
        },
    )
    .new_election(name)
    .expect("valid election name")
}

fn path(p: &str) -> Path {
    Path::parse("key", p).expect("valid path")
}

/// Waits until `name` has exactly `n` candidates (queueing happens in the
/// background of a spawned campaign, so there is no event to await).
async fn wait_queued(backend: &DynBackend, name: &str, n: usize) {
    let name = path(name);
    eventually(&format!("{n} candidates queued in {name}"), || async {
        backend.candidates(&name).await.is_ok_and(|c| c.len() == n)
    })
    .await;
}

/// Campaigns in the background; the leadership arrives on the channel, tagged.
fn spawn_campaign(e: &Election, tag: usize, tx: &mpsc::UnboundedSender<(usize, Leadership)>) {
    let (e, tx) = (e.clone(), tx.clone());
    tokio::spawn(async move {
        if let Ok(leadership) = e.campaign().await {
            let _ = tx.send((tag, leadership));
        }
    });
}

async fn granted(
    rx: &mut mpsc::UnboundedReceiver<(usize, Leadership)>,
    what: &str,
) -> (usize, Leadership) {
    within(what, rx.recv()).await.expect("campaign tasks alive")
}

async fn lost(leadership: &Leadership, what: &str) -> LossReason {
    within(what, leadership.lost()).await
}

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
        assert!(
            !current.is_held(),
            "round {round}: the old leadership is still held"
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
    let restartable = backends[0].capabilities().restartable;
    if restartable {
        cluster.restart().await.expect("restart");
    }
    let fresh = clients(cluster, 1).await;
    let second = election(&fresh[0], "restart", "b")
        .campaign()
        .await
        .unwrap();
    assert!(
        second.term() > first.term(),
        "term {} reused or lowered after {} (restarted: {restartable})",
        second.term(),
        first.term()
    );
}

/// A leader whose session expired cannot write with its stale leadership: the
/// fenced write fails with `Fenced` and changes nothing.
pub async fn stale_leader_fenced_write_rejected(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("fenced/state");
    let old = election(&backends[0], "fenced", "a")
        .campaign()
        .await
        .unwrap();
    old.put(&key, b"from-a").await.expect("the leader writes");
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "fenced", "b"), 1, &tx);
    wait_queued(&backends[0], "fenced", 2).await;
    cluster.expire_session(&backends[0]).await.unwrap();
    let (_, new) = granted(&mut rx, "the successor").await;
    assert!(new.term() > old.term());

    let err = old.put_unchecked(&key, b"stale").await.unwrap_err();
    assert!(
        matches!(err, Error::Fenced { term, .. } if term == old.term()),
        "{err}"
    );
    let err = backends[0]
        .delete(&key, Condition::Any, Some(old.grant()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let err = backends[0]
        .put(
            &path("fenced/other"),
            b"x",
            Condition::Absent,
            Some(old.grant()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let stored = backends[1].get(&key).await.unwrap().expect("value kept");
    assert_eq!(stored.value, b"from-a");
    assert_eq!(backends[1].get(&path("fenced/other")).await.unwrap(), None);

    assert_eq!(
        lost(&old, "the old leader's lost-signal").await,
        LossReason::SessionLost
    );
    let err = old.put(&key, b"stale").await.unwrap_err();
    assert!(matches!(err, Error::LeadershipLost { .. }), "{err}");
    new.put(&key, b"from-b")
        .await
        .expect("the new leader writes");
    assert_eq!(
        backends[0].get(&key).await.unwrap().unwrap().value,
        b"from-b"
    );
}

/// A fence works from another client ("process"), as `tenure put --fence`
/// uses it: the backend checks the grant against its own state, whoever
/// writes. It holds while that leadership is current, is refused once it is
/// not, and a grant altered to name another term or election never holds.
pub async fn fence_from_another_client(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 3).await;
    let (leader, writer) = (&backends[0], &backends[2]);
    let key = path("foreign-fence/state");
    let old = election(leader, "foreign-fence", "a")
        .campaign()
        .await
        .unwrap();
    let grant = old.grant().clone();
    writer
        .put(&key, b"by-a", Condition::Any, Some(&grant))
        .await
        .expect("a current leadership's fence holds for any client");

    let forged = [
        Grant {
            term: grant.term + 1,
            ..grant.clone()
        },
        Grant {
            election: path("foreign-fence-other"),
            ..grant.clone()
        },
    ];
    // The other election has a leader of its own, so only the check of the
    // grant's key against its election can refuse the second forgery.
    let _other = election(leader, "foreign-fence-other", "a")
        .campaign()
        .await
        .unwrap();
    for fake in &forged {
        let err = writer
            .put(&key, b"forged", Condition::Any, Some(fake))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Fenced { .. }), "{fake:?}: {err}");
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "foreign-fence", "b"), 1, &tx);
    wait_queued(writer, "foreign-fence", 2).await;
    cluster.expire_session(leader).await.unwrap();
    let (_, new) = granted(&mut rx, "the successor").await;
    let err = writer
        .put(&key, b"stale", Condition::Any, Some(&grant))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Fenced { term, .. } if term == grant.term),
        "{err}"
    );
    let err = writer
        .delete(&key, Condition::Any, Some(&grant))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    assert_eq!(writer.get(&key).await.unwrap().unwrap().value, b"by-a");
    writer
        .put(&key, b"by-b", Condition::Any, Some(new.grant()))
        .await
        .expect("the successor's fence holds for any client");
    assert_eq!(leader.get(&key).await.unwrap().unwrap().value, b"by-b");
}

/// A leader that was overtaken while its session lives on — it resigned, or
/// its candidate was deleted — cannot write with its old leadership either;
/// writes racing the handover land before it or not at all.
pub async fn stale_leader_fenced_after_handover(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("handover-fence/state");
    let old = election(&backends[0], "handover-fence", "a")
        .campaign()
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "handover-fence", "b"), 1, &tx);
    wait_queued(&backends[0], "handover-fence", 2).await;

    // The old leader keeps writing while it resigns; once one write is fenced,
    // every later one is too.
    let writer = {
        let old = old.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut accepted = 0u32;
            loop {
                match old
                    .put_unchecked(&key, format!("a-{accepted}").as_bytes())
                    .await
                {
                    Ok(_) => accepted += 1,
                    Err(Error::Fenced { .. }) => return accepted,
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
                tokio::task::yield_now().await;
            }
        })
    };
    old.resign().await.unwrap();
    let accepted = within("the old leader's writes to be fenced", writer)
        .await
        .unwrap();
    let (_, new) = granted(&mut rx, "the successor").await;
    for _ in 0..3 {
        let err = old.put_unchecked(&key, b"late").await.unwrap_err();
        assert!(matches!(err, Error::Fenced { .. }), "{err}");
    }
    let err = backends[0]
        .delete(&key, Condition::Any, Some(old.grant()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let stored = backends[1].get(&key).await.unwrap();
    match accepted {
        0 => assert_eq!(stored, None),
        n => assert_eq!(stored.unwrap().value, format!("a-{}", n - 1).into_bytes()),
    }
    new.put(&key, b"b").await.unwrap();
    assert_eq!(backends[0].get(&key).await.unwrap().unwrap().value, b"b");
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
        assert!(!l.is_held());
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

/// Records what a contender is told, tagged with the contender's index.
struct Recorder {
    tag: usize,
    tx: mpsc::UnboundedSender<(usize, Told)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Told {
    Granted(Uuid),
    Revoked,
    Error(String),
}

impl LeaderContender for Recorder {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.tx.send((self.tag, Told::Granted(session_id)));
    }
    fn revoke_leadership(&self) {
        let _ = self.tx.send((self.tag, Told::Revoked));
    }
    fn handle_error(&self, error: &Error) {
        let _ = self.tx.send((self.tag, Told::Error(error.to_string())));
    }
}

fn recorder(tag: usize, tx: &mpsc::UnboundedSender<(usize, Told)>) -> Arc<dyn LeaderContender> {
    Arc::new(Recorder {
        tag,
        tx: tx.clone(),
    })
}

async fn told(rx: &mut mpsc::UnboundedReceiver<(usize, Told)>, what: &str) -> (usize, Told) {
    within(what, rx.recv()).await.expect("recorders alive")
}

async fn next_grant(rx: &mut mpsc::UnboundedReceiver<(usize, Told)>) -> (usize, Uuid) {
    loop {
        match told(rx, "a grant").await {
            (tag, Told::Granted(sid)) => return (tag, sid),
            (_, Told::Error(e)) => panic!("contender error: {e}"),
            (_, Told::Revoked) => {}
        }
    }
}

async fn next_view(
    stream: &mut BoxStream<'static, Result<Option<LeaderInfo>>>,
    what: &str,
) -> Option<LeaderInfo> {
    within(what, stream.next())
        .await
        .expect("retrieval streams do not end")
        .expect("no retrieval error")
}

/// Retrieval reports "no leader", then every confirmed leader in term order,
/// and "no leader" again when the leader leaves or its session expires.
pub async fn retrieval_follows_leaders_in_term_order(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 4).await;
    let mut stream = LeaderRetrieval::new(backends[3].clone(), "retrieval", "dispatcher")
        .unwrap()
        .stream();
    assert_eq!(next_view(&mut stream, "the first view").await, None);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut elections = Vec::new();
    for (i, b) in backends.iter().take(3).enumerate() {
        let service = LeaderElectionService::new(b.clone(), "retrieval").unwrap();
        let le = service.create_leader_election("dispatcher").unwrap();
        le.start(recorder(i, &tx)).unwrap();
        elections.push(le);
    }
    let mut last_term = 0;
    for round in 0..3 {
        let (i, sid) = next_grant(&mut rx).await;
        let address = format!("akka://node-{i}:6123");
        elections[i]
            .confirm_leadership(sid, &address)
            .await
            .unwrap();
        let view = next_view(&mut stream, "the confirmed leader").await;
        let view = view.unwrap_or_else(|| panic!("round {round}: no leader reported"));
        assert_eq!(
            (view.address.as_str(), view.session_id),
            (address.as_str(), sid)
        );
        assert!(
            view.term > last_term,
            "round {round}: term went from {last_term} to {}",
            view.term
        );
        last_term = view.term;
        if round < 2 {
            elections[i].close().await;
        } else {
            cluster.expire_session(&backends[i]).await.unwrap();
        }
        assert_eq!(
            next_view(&mut stream, "no leader").await,
            None,
            "round {round}"
        );
    }
    assert_eq!(
        LeaderRetrieval::new(backends[3].clone(), "retrieval", "dispatcher")
            .unwrap()
            .current()
            .await
            .unwrap(),
        None
    );
}

/// Following an election directly reports each leader's campaign value.
pub async fn follow_election_reports_candidates_value(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 3).await;
    let mut stream = follow_election(backends[2].clone(), path("follow"));
    async fn next(
        stream: &mut BoxStream<'static, Result<Option<crate::LeaderRecord>>>,
    ) -> Option<crate::LeaderRecord> {
        within("a leader change", stream.next())
            .await
            .unwrap()
            .unwrap()
    }
    assert_eq!(next(&mut stream).await, None);
    let a = election(&backends[0], "follow", "proposal-a")
        .campaign()
        .await
        .unwrap();
    let seen = next(&mut stream).await.expect("a leader");
    assert_eq!(
        (seen.term, seen.value.as_slice()),
        (a.term(), &b"proposal-a"[..])
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "follow", "proposal-b"), 1, &tx);
    wait_queued(&backends[0], "follow", 2).await;
    a.resign().await.unwrap();
    let (_, b) = granted(&mut rx, "b").await;
    let seen = next(&mut stream).await.expect("a leader");
    assert_eq!(
        (seen.term, seen.value.as_slice()),
        (b.term(), &b"proposal-b"[..])
    );
    b.resign().await.unwrap();
    assert_eq!(next(&mut stream).await, None);
}

/// Published leader information is rewritten when someone deletes or
/// overwrites it while the leader leads.
pub async fn leader_information_self_heals(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("heal/leader/rest_server/connection_info");
    let service = LeaderElectionService::new(backends[0].clone(), "heal").unwrap();
    let le = service.create_leader_election("rest_server").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    le.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    le.confirm_leadership(sid, "http://10.0.0.1:8081")
        .await
        .unwrap();
    let published = backends[1].get(&key).await.unwrap().expect("published");
    let record = published.value;

    let mut events = backends[1].watch(&key).await.unwrap();
    // Waits until `record` is back at `key`, written after version `after`
    // (the test's own write). Only a newer write counts: a watch opened on a
    // lagging etcd member may still deliver changes from before it was
    // requested, such as the first publication. A watch may also end with a
    // retryable error when it cannot deliver every change (ZooKeeper's events
    // carry no data, and the leader rewrites at once); as the contract asks,
    // watch again and read.
    async fn restored(
        backend: &DynBackend,
        key: &Path,
        events: &mut BoxStream<'static, Result<KvEvent>>,
        record: &[u8],
        after: u64,
        what: &str,
    ) {
        let heals = |v: &Versioned| v.value == record && v.version > after;
        loop {
            match within(what, events.next()).await.expect("the watch ended") {
                Ok(KvEvent::Put { value, .. }) if heals(&value) => return,
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    *events = backend.watch(key).await.unwrap();
                    if backend.get(key).await.unwrap().is_some_and(|v| heals(&v)) {
                        return;
                    }
                }
                Err(e) => panic!("the watch failed while awaiting {what}: {e}"),
            }
        }
    }
    // Conditional, so the republish that follows cannot be one that merely
    // raced ahead of the delete.
    assert!(backends[1]
        .delete(&key, Condition::Version(published.version), None)
        .await
        .unwrap());
    restored(
        &backends[1],
        &key,
        &mut events,
        &record,
        published.version,
        "the deleted information to be republished",
    )
    .await;
    let garbage = backends[1]
        .put(&key, b"{\"garbage\":1}", Condition::Any, None)
        .await
        .unwrap();
    restored(
        &backends[1],
        &key,
        &mut events,
        &record,
        garbage,
        "the overwritten information to be republished",
    )
    .await;
    let current = LeaderRetrieval::new(backends[1].clone(), "heal", "rest_server")
        .unwrap()
        .current()
        .await
        .unwrap()
        .expect("a leader");
    assert_eq!(
        (current.address.as_str(), current.session_id),
        ("http://10.0.0.1:8081", sid)
    );
    service.close().await;
}

/// In shared mode every component of a process is granted together under one
/// session id; in per-component mode each has its own election.
pub async fn shared_mode_grants_all_components_together(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let components = ["resource_manager", "dispatcher", "rest_server"];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut services = Vec::new();
    for (p, b) in backends.iter().enumerate() {
        let service = LeaderElectionService::new(b.clone(), "shared").unwrap();
        let mut les = Vec::new();
        for (c, component) in components.iter().enumerate() {
            let le = service.create_leader_election(component).unwrap();
            le.start(recorder(p * 10 + c, &tx)).unwrap();
            les.push(le);
        }
        services.push((service, les));
    }
    let mut grants = Vec::new();
    for _ in 0..3 {
        grants.push(next_grant(&mut rx).await);
    }
    let process = grants[0].0 / 10;
    assert!(
        grants.iter().all(|(tag, _)| tag / 10 == process),
        "{grants:?}"
    );
    assert!(
        grants.iter().all(|(_, sid)| *sid == grants[0].1),
        "{grants:?}"
    );
    for (i, le) in services[process].1.iter().enumerate() {
        assert!(le.has_leadership(grants[0].1), "component {i}");
    }
    services[process].0.close().await;
    let mut next = Vec::new();
    for _ in 0..3 {
        next.push(next_grant(&mut rx).await);
    }
    assert!(
        next.iter().all(|(tag, _)| tag / 10 == 1 - process),
        "{next:?}"
    );
    assert!(next
        .iter()
        .all(|(_, sid)| *sid == next[0].1 && *sid != grants[0].1));
    services[1 - process].0.close().await;

    let per = LeaderElectionService::with_mode(
        backends[0].clone(),
        "per-component",
        ElectionMode::PerComponent,
        ConnectionPolicy::default(),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let x = per.create_leader_election("x").unwrap();
    let y = per.create_leader_election("y").unwrap();
    x.start(recorder(0, &tx)).unwrap();
    y.start(recorder(1, &tx)).unwrap();
    let (_, s1) = next_grant(&mut rx).await;
    let (_, s2) = next_grant(&mut rx).await;
    assert_ne!(s1, s2, "per-component elections shared a session id");
    per.close().await;
}

/// After `close()` returns, no callback fires and nothing is written on the
/// closed party's behalf.
pub async fn close_is_quiet(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("quiet/leader/dispatcher/connection_info");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = LeaderElectionService::new(backends[0].clone(), "quiet").unwrap();
    let a_le = a.create_leader_election("dispatcher").unwrap();
    a_le.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    a_le.confirm_leadership(sid, "a:1").await.unwrap();
    let b = LeaderElectionService::new(backends[1].clone(), "quiet").unwrap();
    let b_le = b.create_leader_election("dispatcher").unwrap();
    b_le.start(recorder(1, &tx)).unwrap();

    a_le.close().await;
    let mut events = backends[1].watch(&key).await.unwrap();
    let (tag, told_b) = told(&mut rx, "b's grant").await;
    let Told::Granted(sid_b) = told_b else {
        panic!("after a closed, the next callback was {told_b:?} to contender {tag}");
    };
    assert_eq!(tag, 1, "the closed contender was called back");
    b_le.confirm_leadership(sid_b, "b:1").await.unwrap();
    cluster.expire_session(&backends[0]).await.unwrap();
    // b's confirmation is the only write; then b closes, deleting it.
    match within("b's confirmation", events.next())
        .await
        .unwrap()
        .unwrap()
    {
        KvEvent::Put { value, .. } => {
            assert!(String::from_utf8_lossy(&value.value).contains("b:1"));
        }
        other => panic!("unexpected write after close: {other:?}"),
    }
    b_le.close().await;
    assert!(matches!(
        within("b's removal", events.next()).await.unwrap().unwrap(),
        KvEvent::Delete { .. }
    ));
    a.close().await;
    b.close().await;
    drop((a_le, b_le));
    if let Ok((tag, event)) = rx.try_recv() {
        panic!("contender {tag} was told {event:?} after it was closed");
    }

    let e = election(&backends[1], "quiet-election", "b");
    let leadership = e.campaign().await.unwrap();
    e.close().await;
    assert_eq!(leadership.loss_reason(), Some(LossReason::Closed));
    assert!(leadership.token().is_cancelled());
    assert!(matches!(e.campaign().await, Err(Error::Closed { .. })));
    assert_eq!(
        backends[1].leader(&path("quiet-election")).await.unwrap(),
        None
    );
}

/// Five workers, twenty increments each, by compare-and-set: exactly 100.
pub async fn compare_and_set_race(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 5).await;
    let key = path("cas/counter");
    let workers = backends.into_iter().map(|b| {
        let key = key.clone();
        tokio::spawn(async move {
            let mut done = 0;
            while done < 20 {
                let current = match b.get(&key).await {
                    Ok(current) => current,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("unexpected error: {e}"),
                };
                let (n, condition) = match &current {
                    None => (0, Condition::Absent),
                    Some(v) => (
                        String::from_utf8(v.value.clone())
                            .unwrap()
                            .parse::<u64>()
                            .unwrap(),
                        Condition::Version(v.version),
                    ),
                };
                match b
                    .put(&key, (n + 1).to_string().as_bytes(), condition, None)
                    .await
                {
                    Ok(_) => done += 1,
                    Err(Error::VersionMismatch { .. } | Error::AlreadyExists { .. }) => {}
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        })
    });
    for worker in join_all(workers).await {
        worker.unwrap();
    }
    let end = cluster
        .client()
        .await
        .unwrap()
        .get(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.value, b"100");
}

/// Create-if-absent, compare-and-set, versions, limits and prefixes behave as
/// the contract says.
pub async fn conditional_writes(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let b = &backends[0];
    let key = path("cond/a");
    let v1 = b.put(&key, b"1", Condition::Absent, None).await.unwrap();
    assert!(v1 > 0);
    let err = b
        .put(&key, b"2", Condition::Absent, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let v2 = b
        .put(&key, b"2", Condition::Version(v1), None)
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let err = b
        .put(&key, b"3", Condition::Version(v1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::VersionMismatch { expected, actual: Some(a), .. } if expected == v1 && a == v2),
        "{err}"
    );
    let err = b
        .delete(&key, Condition::Version(v1), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
    assert_eq!(b.get(&key).await.unwrap().unwrap().value, b"2");
    assert!(b.delete(&key, Condition::Version(v2), None).await.unwrap());
    assert!(!b.delete(&key, Condition::Any, None).await.unwrap());
    let err = b
        .delete(&key, Condition::Version(v2), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = b
        .put(&key, b"x", Condition::Version(v2), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::VersionMismatch { actual: None, .. }),
        "{err}"
    );
    // Versions only grow, also across a delete and a re-create, so a reader
    // can tell a rewrite of the same bytes from a write it has already seen.
    let v3 = b.put(&key, b"2", Condition::Absent, None).await.unwrap();
    assert!(v1 < v2 && v2 < v3, "versions {v1}, {v2}, {v3} do not grow");
    assert!(b.delete(&key, Condition::Version(v3), None).await.unwrap());

    let limit = b.capabilities().max_value_size;
    let err = b
        .put(&key, &vec![0; limit + 1], Condition::Any, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(
        b.get(&key).await.unwrap(),
        None,
        "an oversized write left data"
    );

    for k in ["cond/p/x", "cond/p/y/z", "cond/px", "cond/p"] {
        b.put(&path(k), b"v", Condition::Any, None).await.unwrap();
    }
    let listed: Vec<_> = b
        .list(&path("cond/p"))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, ["cond/p", "cond/p/x", "cond/p/y/z"]);
}

/// A prefix watch delivers every change under the prefix, in order, and nothing
/// outside it.
pub async fn watches_deliver_in_order(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let mut events = backends[0].watch(&path("w")).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..60 {
        let key = path(&format!("w/k{}", i % 5));
        if i % 7 == 6 {
            backends[1]
                .delete(&key, Condition::Any, None)
                .await
                .unwrap();
            expected.push(format!("delete {key}"));
        } else {
            let value = format!("v{i}");
            backends[1]
                .put(&key, value.as_bytes(), Condition::Any, None)
                .await
                .unwrap();
            expected.push(format!("put {key}={value}"));
        }
        backends[1]
            .put(&path("wx/outside"), b"x", Condition::Any, None)
            .await
            .unwrap();
    }
    // Deleting an absent key is not an event; drop those from the expectation.
    let mut present = HashSet::new();
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|e| match e.strip_prefix("delete ") {
            Some(k) => present.remove(k),
            None => {
                present.insert(e[4..e.find('=').unwrap()].to_owned());
                true
            }
        })
        .collect();
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        match within("the next watch event", events.next())
            .await
            .unwrap()
            .unwrap()
        {
            KvEvent::Put { key, value } => {
                seen.push(format!(
                    "put {key}={}",
                    String::from_utf8_lossy(&value.value)
                ));
            }
            KvEvent::Delete { key } => seen.push(format!("delete {key}")),
        }
    }
    assert_eq!(&seen[..expected.len()], &expected[..]);
}

/// Invalid ids and oversized inputs are rejected with typed errors naming the
/// field.
pub async fn invalid_names_rejected(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let b = &backends[0];
    let factory = ElectionFactory::new(b.clone());
    let long = "x".repeat(129);
    for bad in ["", ".", "..", "a/b", "a b", "ü", long.as_str(), "../../etc"] {
        let err = factory.new_election(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "resource_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let err = LeaderElectionService::new(b.clone(), bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "cluster_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let service = LeaderElectionService::new(b.clone(), "names").unwrap();
        let err = service.create_leader_election(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "component_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let err = LeaderRetrieval::new(b.clone(), "names", bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "component_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    let service = LeaderElectionService::new(b.clone(), "names").unwrap();
    let le = service.create_leader_election("dispatcher").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    le.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    let huge = "h".repeat(crate::MAX_ADDRESS_LEN + 1);
    let err = le.confirm_leadership(sid, &huge).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                field: "address",
                ..
            }
        ),
        "{err}"
    );
    let err = le
        .confirm_leadership(Uuid::new_v4(), "a:1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotLeader { .. }), "{err}");
    assert_eq!(
        b.get(&path("names/leader/dispatcher/connection_info"))
            .await
            .unwrap(),
        None,
        "a rejected confirmation published something"
    );
    service.close().await;
}

/// 1,000 elections on one session are all granted, and all revoked when the
/// session is lost.
pub async fn many_elections_on_one_session(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let factory = ElectionFactory::new(backends[0].clone());
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
    // With a thousand leaderships to tell, a lease-based backend may reach a
    // leadership's renew deadline before it hears that the lease is gone: both
    // say the session ended.
    .for_each(|reason| {
        assert!(
            matches!(
                reason,
                LossReason::SessionLost | LossReason::RenewDeadlinePassed
            ),
            "{reason:?}"
        )
    });
}
