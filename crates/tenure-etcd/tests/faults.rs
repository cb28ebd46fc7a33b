//! Faults of real etcd servers (issue 5): a paused member, killed members, a
//! lost quorum, compaction and restarts. Each test starts its own server or
//! cluster, since each one breaks it.
//!
//! The test kit is synchronous; its calls that wait (restarts, readiness) run
//! in `block_in_place`, so the backends' tasks keep running meanwhile.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure_core::conformance::Slow;
use tenure_core::{
    follow_election, ConnectionPolicy, DynBackend, Election, ElectionFactory, ElectionOptions,
    Error, LossReason, Path,
};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;
use tokio::time::Instant;

/// How long a test waits for something that must happen before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing with `what` after `limit`.
async fn within<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Runs a blocking call of the test kit without stalling the runtime's workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Retries `op` while it fails with a retryable error, a bounded number of
/// times: right after members come back, etcd-client reports the connect error
/// of an earlier attempt once per endpoint (see the member-failure test).
async fn retrying<T, F, Fut>(mut op: F) -> tenure_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = tenure_core::Result<T>>,
{
    let mut attempts = 1;
    loop {
        match op().await {
            Err(e) if e.is_retryable() && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcome => return outcome,
        }
    }
}

fn path(p: &str) -> Path {
    Path::parse("key", p).expect("a valid path")
}

/// A client process of `etcd`, under `prefix`, with its own lease of `ttl`.
async fn connect(etcd: &EtcdCluster, prefix: &str, ttl: Duration) -> (EtcdBackend, DynBackend) {
    let config = EtcdConfig::new(&etcd.endpoints())
        .unwrap()
        .with_prefix(prefix)
        .unwrap()
        .with_ttl(ttl)
        .unwrap();
    let backend = within("connecting", PATIENCE, EtcdBackend::connect(config))
        .await
        .expect("connect to etcd");
    let dynamic: DynBackend = Arc::new(backend.clone());
    (backend, dynamic)
}

fn election(
    backend: &DynBackend,
    name: &str,
    candidate: &str,
    policy: ConnectionPolicy,
) -> Election {
    ElectionFactory::with_options(
        backend.clone(),
        ElectionOptions {
            policy,
            candidate_id: Some(candidate.to_owned()),
        },
    )
    .new_election(name)
    .expect("a valid election name")
}

/// Waits until `name` has exactly `n` candidates (a spawned campaign queues in
/// the background: there is no event to await).
async fn wait_queued(backend: &DynBackend, name: &str, n: usize) {
    let name = path(name);
    within(&format!("{n} candidates in {name}"), PATIENCE, async {
        while !backend.candidates(&name).await.is_ok_and(|c| c.len() == n) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Step down before expiry: with etcd frozen, the leader's token fires at its
/// renew deadline, before the server could expire its lease, and so before the
/// waiting candidate is granted; the old leader's late write is fenced off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_etcd_leader_steps_down_before_expiry() {
    let etcd = EtcdCluster::single().unwrap();
    let ttl = Duration::from_secs(3);
    let (_, a) = connect(&etcd, "pause", ttl).await;
    let (_, b) = connect(&etcd, "pause", ttl).await;
    let policy = ConnectionPolicy::RevokeOnLost;
    let leader = within(
        "A's grant",
        PATIENCE,
        election(&a, "e", "a", policy).campaign(),
    )
    .await
    .unwrap();
    let key = path("state");
    leader.put(&key, b"a1").await.unwrap();
    let successor = election(&b, "e", "b", policy);
    let successor = tokio::spawn(async move { successor.campaign().await });
    wait_queued(&a, "e", 2).await;

    let lost = {
        let leader = leader.clone();
        tokio::spawn(async move {
            let reason = leader.lost().await;
            (reason, Instant::now())
        })
    };
    let paused_at = Instant::now();
    etcd.pause(0);
    let (reason, lost_at) = within("A's token to fire", ttl * 3, lost).await.unwrap();
    assert_eq!(reason, LossReason::RenewDeadlinePassed);
    // The last renewal was sent before the pause, so the server cannot expire
    // the lease before `paused_at + ttl`: A stepped down before that.
    assert!(
        lost_at < paused_at + ttl,
        "A stepped down {:?} after the pause, TTL {ttl:?}",
        lost_at - paused_at
    );
    assert!(
        !successor.is_finished(),
        "B's campaign ended while etcd was frozen"
    );
    // Keep etcd frozen until A's lease has certainly run out on the server's
    // clock too, so the server expires it the moment it resumes: the race the
    // renew deadline exists for. Waiting is the point here.
    tokio::time::sleep_until(paused_at + ttl + Duration::from_millis(500)).await;
    etcd.resume(0);

    let successor = within("B's grant", PATIENCE, successor)
        .await
        .unwrap()
        .expect("B is granted once A's lease is gone");
    assert!(
        successor.granted_at() > lost_at,
        "B was granted before A stepped down"
    );
    assert!(successor.term() > leader.term());

    let late = retrying(|| leader.put_unchecked(&key, b"late")).await;
    assert!(matches!(late, Err(Error::Fenced { .. })), "{late:?}");
    let stored = retrying(|| b.get(&key))
        .await
        .unwrap()
        .expect("A's write is stored");
    assert_eq!(stored.value, b"a1", "the fenced write changed the value");
}

/// One member of three down — the raft leader, then a follower — is not a
/// fault the elected process may notice: its leadership outlives a full TTL
/// after the kill (even with the strict default policy) and its fenced writes
/// succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_failure_does_not_end_leadership() {
    let etcd = EtcdCluster::cluster(3).unwrap();
    let ttl = Duration::from_secs(5);
    let (_, a) = connect(&etcd, "members", ttl).await;
    let leader = within(
        "A's grant",
        PATIENCE,
        election(&a, "e", "a", ConnectionPolicy::RevokeOnSuspended).campaign(),
    )
    .await
    .unwrap();
    let key = path("state");
    leader.put(&key, b"before").await.unwrap();

    // What went wrong, per round: checked at the end, after both rounds ran.
    let mut problems: Vec<String> = Vec::new();
    let mut previous = None;
    for round in ["raft leader", "follower"] {
        let raft_leader = blocking(|| etcd.leader()).expect("a ready cluster has a leader");
        let victim = if round == "raft leader" {
            raft_leader
        } else {
            // A follower other than the member killed before.
            (0..etcd.members())
                .find(|&m| m != raft_leader && Some(m) != previous)
                .expect("a follower")
        };
        previous = Some(victim);
        let killed_at = Instant::now();
        etcd.kill(victim);
        blocking(|| etcd.wait_ready()).expect("the other two members serve, with a leader");
        assert_ne!(blocking(|| etcd.leader()), Some(victim));
        // Let one full TTL (and a second) pass since the kill: had A missed its
        // renewals, its renew deadline would have passed by then. Nothing may
        // happen, so there is nothing to await but time.
        let lost = tokio::select! {
            _ = tokio::time::sleep_until(killed_at + ttl + Duration::from_secs(1)) => None,
            reason = leader.lost() => Some(reason),
        };
        if let Some(reason) = lost {
            problems.push(format!(
                "killing the {round} ended A's leadership after {:?}: {reason}",
                killed_at.elapsed()
            ));
            break; // A no longer leads: nothing left to check.
        }
        // Many writes, since whether one is sent to the dead member is chance.
        const WRITES: usize = 50;
        let mut errors = Vec::new();
        for i in 0..WRITES {
            let value = format!("{round} killed, write {i}");
            if let Err(e) = leader.put(&key, value.as_bytes()).await {
                errors.push(e);
            }
        }
        if let Some(e) = errors.first() {
            problems.push(format!(
                "with the {round} down, {} of {WRITES} fenced writes failed, e.g. {e}",
                errors.len()
            ));
        }
        let stored = retrying(|| a.get(&key)).await.expect("reading back");
        assert!(stored.is_some_and(|v| v.value.starts_with(round.as_bytes())));
        blocking(|| etcd.restart(victim)).expect("the killed member rejoins");
        blocking(|| etcd.wait_ready()).unwrap();
    }
    // With one member of three down, tenure-etcd takes it out of the client's
    // balance (src/endpoints.rs), so fenced writes and keep-alives keep working.
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(leader.is_held(), "{:?}", leader.loss_reason());
}

/// Losing the quorum ends leadership at the renew deadline; once the quorum is
/// back, the same election is granted again, with a higher term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_steps_down_and_recovers() {
    let etcd = EtcdCluster::cluster(3).unwrap();
    let ttl = Duration::from_secs(3);
    let (_, a) = connect(&etcd, "quorum", ttl).await;
    let e = election(&a, "e", "a", ConnectionPolicy::RevokeOnLost);
    let mut leaderships = e.leaderships();
    let first = within("the first grant", PATIENCE, leaderships.next())
        .await
        .expect("the stream goes on")
        .expect("granted");
    let key = path("state");
    first.put(&key, b"first").await.unwrap();

    // Kill both followers: the raft leader left alone keeps answering renewals
    // until it notices (after an election timeout) that it lost its quorum.
    let raft_leader = blocking(|| etcd.leader()).expect("a ready cluster has a leader");
    let killed_at = Instant::now();
    for m in (0..etcd.members()).filter(|&m| m != raft_leader) {
        etcd.kill(m);
    }
    // Without a quorum no keep-alive succeeds and no server can say whether the
    // lease is gone, so the session is only suspended (which this policy
    // tolerates) until the renew deadline passes. SessionLost would mean etcd
    // expired a lease it cannot expire without a quorum.
    let reason = within("A's token to fire", Duration::from_secs(15), first.lost()).await;
    let lost_after = killed_at.elapsed();
    assert_eq!(reason, LossReason::RenewDeadlinePassed);

    blocking(|| etcd.restart_all()).expect("the cluster recovers its quorum");
    let second = within("the grant after recovery", PATIENCE, leaderships.next())
        .await
        .expect("the stream goes on")
        .expect("granted");
    assert!(
        second.term() > first.term(),
        "term {} after term {}",
        second.term(),
        first.term()
    );
    let stale = retrying(|| first.put_unchecked(&key, b"late")).await;
    assert!(matches!(stale, Err(Error::Fenced { .. })), "{stale:?}");
    let wrote = retrying(|| second.put(&key, b"second")).await;
    let stored = retrying(|| a.get(&key)).await.expect("reading back");
    let expected: &[u8] = if wrote.is_ok() { b"second" } else { b"first" };
    assert_eq!(stored.expect("written").value, expected);

    // A campaign never takes a grant on a session past its renew deadline
    // (tenure-core's Election::campaign waits for the session to recover).
    assert!(
        wrote.is_ok() && second.is_held(),
        "the leadership granted after recovery is unusable ({:?}): {:?}",
        second.loss_reason(),
        wrote.err()
    );
    // One TTL after the last renewal at most, and the lone raft leader may go on
    // renewing for an election timeout or two (1–2 s) after losing its
    // followers.
    // The election monitor re-opens a broken leader watch inside the same
    // select as the renew deadline, so a cluster without quorum cannot delay
    // the step-down.
    assert!(
        lost_after < ttl + Duration::from_secs(2),
        "A stepped down {lost_after:?} after the quorum was lost, TTL {ttl:?}"
    );
}

/// Follows an election, checking that reported terms only grow.
struct Follower {
    stream: futures_util::stream::BoxStream<
        'static,
        tenure_core::Result<Option<tenure_core::LeaderRecord>>,
    >,
    highest: u64,
}

impl Follower {
    /// Reads the stream until it reports `expected` (value and term) as the
    /// leader, or nobody for `None`.
    async fn until(&mut self, expected: Option<(&str, u64)>) {
        within(&format!("{expected:?} reported"), PATIENCE, async {
            loop {
                let item = self.stream.next().await.expect("the stream never ends");
                // Errors are reported while etcd is down; following goes on.
                let record = match item {
                    Ok(record) => record,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("retrieval failed for good: {e}"),
                };
                let Some(record) = record else {
                    if expected.is_none() {
                        return;
                    }
                    continue;
                };
                assert!(
                    record.term > self.highest,
                    "term {} reported after term {}",
                    record.term,
                    self.highest
                );
                self.highest = record.term;
                if let Some((value, term)) = expected {
                    if record.value == value.as_bytes() {
                        assert_eq!(record.term, term, "{value}'s term");
                        return;
                    }
                }
            }
        })
        .await
    }
}

/// Leader retrieval across compactions and restarts of etcd: every leader of a
/// series is reported, in order, and terms only grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_survives_compaction_and_restarts() {
    let etcd = EtcdCluster::single().unwrap();
    let ttl = Duration::from_secs(5);
    let (admin, observer) = connect(&etcd, "retrieval", ttl).await;
    let mut follower = Follower {
        stream: follow_election(observer, path("e")),
        highest: 0,
    };
    follower.until(None).await;

    for round in 0..4 {
        let name = format!("leader-{round}");
        let (_, client) = connect(&etcd, "retrieval", ttl).await;
        let leadership = within(
            "the next grant",
            PATIENCE,
            election(&client, "e", &name, ConnectionPolicy::RevokeOnLost).campaign(),
        )
        .await
        .unwrap();
        follower.until(Some((&name, leadership.term()))).await;

        // Compact away all history so far, then restart etcd from its data.
        let compacted = retrying(|| {
            let mut etcd_client = admin.client().clone();
            async move {
                let unavailable = |e: etcd_client::Error| Error::unavailable(e.to_string());
                let revision = etcd_client
                    .get("retrieval/", None)
                    .await
                    .map_err(unavailable)?
                    .header()
                    .expect("a response header")
                    .revision();
                etcd_client
                    .compact(revision, None)
                    .await
                    .map_err(unavailable)?;
                Ok(revision)
            }
        })
        .await;
        compacted.expect("compacting");
        etcd.kill(0);
        blocking(|| etcd.restart(0)).expect("etcd restarts from its data");

        within("resigning", PATIENCE, leadership.resign())
            .await
            .unwrap();
        follower.until(None).await;
    }
}

/// A leadership lost at its renew deadline while its lease lives on at the
/// server is never granted again: the next campaign on that lease waits
/// until the old candidate is removed, and leads under a new term, so the
/// lost leadership's fence stays broken. (Found by tenure-chaos on etcd×3:
/// a frozen leader's lease outlived its renew deadline across a change of
/// etcd leader, and etcd's election recipe reuses a lease's candidate key,
/// so the next campaign was granted the old term again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_leadership_is_never_granted_again_under_its_term() {
    lost_leadership_then_campaign(false).await;
}

/// The same, when the next campaign is another election object of the same
/// process (a service that closes its election and makes a new one): the
/// backend itself refuses to grant a candidate it granted before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_leadership_is_not_granted_again_to_a_new_election_object() {
    lost_leadership_then_campaign(true).await;
}

async fn lost_leadership_then_campaign(fresh_election: bool) {
    let etcd = EtcdCluster::single().unwrap();
    // Long enough that the margin between the renew deadline and the lease's
    // expiry (a sixth of it) leaves the client time to renew after the resume.
    let ttl = Duration::from_secs(6);
    let (_, plain) = connect(&etcd, "revive", ttl).await;
    let a: DynBackend = Arc::new(Slow::new(plain).with_resign_delay(Duration::from_secs(2)));
    let contest = election(&a, "e", "a", ConnectionPolicy::RevokeOnLost);
    let first = within("A's grant", PATIENCE, contest.campaign())
        .await
        .unwrap();
    let lost = {
        let first = first.clone();
        tokio::spawn(async move { first.lost().await })
    };
    etcd.pause(0);
    let reason = within("A's renew deadline", ttl * 2, lost).await.unwrap();
    // At once: the server cannot expire the lease before the renew deadline
    // plus its margin, so the lease lives on.
    etcd.resume(0);
    assert_eq!(reason, LossReason::RenewDeadlinePassed);

    let contest = if fresh_election {
        contest.close().await;
        election(&a, "e", "a", ConnectionPolicy::RevokeOnLost)
    } else {
        contest
    };
    let second = within("A's next grant", PATIENCE, contest.campaign())
        .await
        .unwrap();
    assert_eq!(
        second.grant().session,
        first.grant().session,
        "the lease expired, so this run did not test a lease that lives on"
    );
    assert!(
        second.term() > first.term(),
        "term {} was granted again after it was lost",
        first.term()
    );
    let key = path("revived");
    let stale = retrying(|| first.put_unchecked(&key, b"old")).await;
    assert!(matches!(stale, Err(Error::Fenced { .. })), "{stale:?}");
    second.put(&key, b"new").await.unwrap();
}
