//! Regression tests for races and lifecycle edges of the generic code and the
//! memory backend: each once broke a promise of the design.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tenure_core::*;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

fn election(b: DynBackend, policy: ConnectionPolicy, id: &str, name: &str) -> Election {
    ElectionFactory::with_options(
        b,
        ElectionOptions {
            policy,
            candidate_id: Some(id.into()),
        },
    )
    .new_election(name)
    .unwrap()
}

/// Two clients of one memory cluster: `a` leads election `e` (`ea`, `la`), and
/// `b` campaigns behind it (`waiting`).
async fn a_leads_and_b_waits(
    policy: ConnectionPolicy,
) -> (
    MemoryBackend,
    MemoryBackend,
    Election,
    Leadership,
    tokio::task::JoinHandle<Result<Leadership>>,
) {
    let cluster = MemoryCluster::new();
    let (a, b) = (cluster.client(), cluster.client());
    let ea = election(Arc::new(a.clone()), policy, "a", "e");
    let la = ea.campaign().await.unwrap();
    let eb = election(Arc::new(b.clone()), policy, "b", "e");
    let waiting = tokio::spawn(async move { eb.campaign().await });
    (a, b, ea, la, waiting)
}

// A stale partition timer expires the session during a later partition,
//    before the client's renew deadline: two leaders believe they lead.
#[tokio::test(start_paused = true)]
async fn an_old_partition_timer_cannot_expire_a_later_partition_early() {
    let cluster = MemoryCluster::new();
    let ttl = Duration::from_secs(10);
    let (a, b) = (cluster.client_with_ttl(ttl), cluster.client_with_ttl(ttl));
    let la = election(
        Arc::new(a.clone()),
        ConnectionPolicy::RevokeOnLost,
        "a",
        "e",
    )
    .campaign()
    .await
    .unwrap();
    let eb = election(
        Arc::new(b.clone()),
        ConnectionPolicy::RevokeOnLost,
        "b",
        "e",
    );
    let waiting = tokio::spawn(async move { eb.campaign().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(1)).await;
    let t0 = Instant::now();
    a.partition();
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.heal();
    tokio::time::sleep(Duration::from_secs(8)).await; // t0+9
    a.partition(); // new renew deadline t0+9+8 = t0+17
    let deadline = a.session().borrow().renew_deadline.unwrap();
    let lb = waiting.await.unwrap();
    assert!(
        Instant::now() >= deadline,
        "server expired A's session and granted B at t0+{:?}, before A's renew deadline t0+{:?}",
        Instant::now() - t0,
        deadline - t0
    );
    let granted_at = Instant::now() - t0;
    assert!(
        !la.is_held(),
        "B granted at t0+{granted_at:?} while A still believes it leads (A's deadline t0+17s)"
    );
    drop(lb);
}

// Default policy: leader suspended -> token fires (SessionSuspended), app closes
//    the election -> monitor aborted, no resign -> after heal the dead candidate
//    blocks the election forever.
#[tokio::test(start_paused = true)]
async fn closing_after_suspension_still_frees_the_election() {
    let (a, b, ea, la, waiting) = a_leads_and_b_waits(ConnectionPolicy::RevokeOnSuspended).await;
    a.suspend();
    assert_eq!(la.lost().await, LossReason::SessionSuspended);
    ea.close().await; // typical reaction to a lost token
    a.heal();
    let r = tokio::time::timeout(Duration::from_secs(600), waiting).await;
    let leader = b.leader(&Path::parse("e", "e").unwrap()).await.unwrap();
    assert!(
        r.is_ok(),
        "B never granted; leader record still {leader:?} (A's term {})",
        la.term()
    );
}

// A resignation while the backend is unreachable succeeds and finishes in the
// background once it can be reached.
#[tokio::test(start_paused = true)]
async fn resign_while_suspended_completes_after_heal() {
    let (a, _b, ea, la, waiting) = a_leads_and_b_waits(ConnectionPolicy::RevokeOnLost).await;
    a.suspend();
    ea.resign().await.expect("resign is accepted while cut off");
    assert_eq!(la.loss_reason(), Some(LossReason::Resigned));
    a.heal();
    let r = tokio::time::timeout(Duration::from_secs(600), waiting).await;
    assert!(r.is_ok(), "B never granted after A resigned");
}

// Self-heal gives up after a retryable failure.
#[tokio::test(start_paused = true)]
async fn self_heal_retries_after_the_backend_was_unreachable() {
    struct C(tokio::sync::mpsc::UnboundedSender<Uuid>);
    impl LeaderContender for C {
        fn grant_leadership(&self, s: Uuid) {
            let _ = self.0.send(s);
        }
        fn revoke_leadership(&self) {}
        fn handle_error(&self, _: &Error) {}
    }
    let cluster = MemoryCluster::new();
    let (a, b) = (cluster.client(), cluster.client());
    let svc = LeaderElectionService::with_mode(
        Arc::new(a.clone()),
        "c",
        ElectionMode::Shared,
        ConnectionPolicy::RevokeOnLost,
    )
    .unwrap();
    let le = svc.create_leader_election("rest").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    le.start(Arc::new(C(tx))).unwrap();
    let sid = rx.recv().await.unwrap();
    le.confirm_leadership(sid, "a:1").await.unwrap();
    let key = Path::parse("k", "c/leader/rest/connection_info").unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await; // let self-heal open its watch
    a.suspend();
    b.delete(&key, Guard::ANY).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.heal();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(le.has_leadership(sid), "still leader");
    assert!(
        b.get(&key).await.unwrap().is_some(),
        "leader info stays deleted while we lead"
    );
}

// Standalone close holds its mutex while calling revoke_leadership.
#[test]
fn standalone_close_lets_the_contender_call_back() {
    struct C(OnceLock<Arc<StandaloneLeaderElection>>);
    impl LeaderContender for C {
        fn grant_leadership(&self, _: Uuid) {}
        fn revoke_leadership(&self) {
            let _ = self.0.get().unwrap().has_leadership(Uuid::nil());
        }
        fn handle_error(&self, _: &Error) {}
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = Arc::new(StandaloneLeaderElection::new());
        let c = Arc::new(C(OnceLock::new()));
        let _ = c.0.set(s.clone());
        s.start(c);
        s.close();
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(2)).is_ok(),
        "StandaloneLeaderElection::close deadlocked"
    );
}

/// A memory client with injected latency and failures.
#[derive(Debug)]
struct Wrap {
    inner: MemoryBackend,
    slow_put: AtomicBool,
    /// Told when a slowed put has started (and is in flight).
    slow_put_started: tokio::sync::Notify,
    fail_watch_leader: AtomicUsize,
    expired_until: Mutex<Option<Instant>>,
    campaign_calls: AtomicUsize,
}
impl Wrap {
    fn new(inner: MemoryBackend) -> Arc<Self> {
        Arc::new(Wrap {
            inner,
            slow_put: AtomicBool::new(false),
            slow_put_started: tokio::sync::Notify::new(),
            fail_watch_leader: AtomicUsize::new(0),
            expired_until: Mutex::new(None),
            campaign_calls: AtomicUsize::new(0),
        })
    }
}
#[async_trait]
impl Backend for Wrap {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.inner.session()
    }
    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        self.inner.session_alive(id).await
    }
    async fn campaign(&self, e: &Path, s: SessionId, v: &[u8]) -> Result<Grant> {
        self.campaign_calls.fetch_add(1, Ordering::SeqCst);
        let until = *self.expired_until.lock().unwrap();
        if until.is_some_and(|u| Instant::now() < u) {
            return Err(Error::SessionExpired { session: s.0 });
        }
        self.inner.campaign(e, s, v).await
    }
    async fn resign(&self, g: &Grant) -> Result<()> {
        self.inner.resign(g).await
    }
    async fn leader(&self, e: &Path) -> Result<Option<LeaderRecord>> {
        self.inner.leader(e).await
    }
    async fn candidates(&self, e: &Path) -> Result<Vec<Candidate>> {
        self.inner.candidates(e).await
    }
    async fn watch_leader(
        &self,
        e: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        if self.fail_watch_leader.load(Ordering::SeqCst) > 0 {
            self.fail_watch_leader.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::unavailable("injected"));
        }
        self.inner.watch_leader(e).await
    }
    async fn get(&self, k: &Path) -> Result<Option<Versioned>> {
        self.inner.get(k).await
    }
    async fn list(&self, p: &Path) -> Result<Vec<(String, Versioned)>> {
        self.inner.list(p).await
    }
    async fn watch(&self, p: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.inner.watch(p).await
    }
    async fn put(&self, k: &Path, v: &[u8], guard: Guard<'_>) -> Result<u64> {
        if self.slow_put.load(Ordering::SeqCst) {
            self.slow_put_started.notify_one();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.inner.put(k, v, guard).await
    }
    async fn delete(&self, k: &Path, guard: Guard<'_>) -> Result<bool> {
        self.inner.delete(k, guard).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

// confirm_leadership racing close(): the in-flight fenced put lands after close
//    returned; the closed component stays published and retrieval reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_racing_close_publishes_nothing_after_close() {
    struct C(tokio::sync::mpsc::UnboundedSender<Uuid>);
    impl LeaderContender for C {
        fn grant_leadership(&self, s: Uuid) {
            let _ = self.0.send(s);
        }
        fn revoke_leadership(&self) {}
        fn handle_error(&self, _: &Error) {}
    }
    let cluster = MemoryCluster::new();
    let w = Wrap::new(cluster.client());
    let svc = LeaderElectionService::new(w.clone(), "c").unwrap();
    let dispatcher = Arc::new(svc.create_leader_election("dispatcher").unwrap());
    let rm = svc.create_leader_election("rm").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    dispatcher.start(Arc::new(C(tx.clone()))).unwrap();
    rm.start(Arc::new(C(tx))).unwrap();
    let sid = rx.recv().await.unwrap();
    w.slow_put.store(true, Ordering::SeqCst);
    let d = dispatcher.clone();
    let confirm = tokio::spawn(async move { d.confirm_leadership(sid, "d:1").await });
    // Close exactly while the confirmation's fenced put is in flight.
    w.slow_put_started.notified().await;
    dispatcher.close().await;
    // The confirmation may land or be refused; what matters is that nothing
    // stays published once close has returned.
    match confirm.await.unwrap() {
        Ok(())
        | Err(
            Error::LeadershipLost { .. }
            | Error::NotLeader { .. }
            | Error::Fenced { .. }
            | Error::Closed { .. },
        ) => {}
        Err(e) => panic!("the racing confirmation failed otherwise: {e}"),
    }
    let observer = cluster.client();
    let seen = LeaderRetrieval::new(Arc::new(observer), "c", "dispatcher")
        .unwrap()
        .current()
        .await
        .unwrap();
    assert!(
        seen.is_none(),
        "closed component published after close returned: {seen:?}"
    );
}

// If the monitor's first watch_leader fails while the session stays Connected,
//    it is never retried: the candidate can vanish and the token never fires.
#[tokio::test(start_paused = true)]
async fn the_token_fires_even_if_the_first_leader_watch_failed() {
    let cluster = MemoryCluster::new();
    let w = Wrap::new(cluster.client());
    w.fail_watch_leader.store(1, Ordering::SeqCst);
    let l = election(w.clone(), ConnectionPolicy::RevokeOnSuspended, "a", "e")
        .campaign()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The candidate disappears on the server (e.g. deleted by an operator / server-side).
    let other = cluster.client();
    other.resign(l.grant()).await.unwrap();
    let lb = election(
        Arc::new(other),
        ConnectionPolicy::RevokeOnSuspended,
        "b",
        "e",
    )
    .campaign()
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(600), l.lost()).await;
    assert!(
        r.is_ok(),
        "B leads (term {}) but A's token never fired; A is_held={}",
        lb.term(),
        l.is_held()
    );
}

// campaign() spins without backoff on SessionExpired while the status has not changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_backs_off_while_the_session_is_replaced() {
    let cluster = MemoryCluster::new();
    let w = Wrap::new(cluster.client());
    *w.expired_until.lock().unwrap() = Some(Instant::now() + Duration::from_millis(200));
    let _l = election(w.clone(), ConnectionPolicy::RevokeOnSuspended, "a", "e")
        .campaign()
        .await
        .unwrap();
    let n = w.campaign_calls.load(Ordering::SeqCst);
    assert!(
        n < 50,
        "{n} backend campaign calls in 200 ms (no backoff on SessionExpired)"
    );
}

// Memory: a closed (or cut-off) client's watch streams keep delivering.
#[tokio::test]
async fn watches_of_a_closed_or_cut_off_client_end() {
    use futures_util::StreamExt;
    let cluster = MemoryCluster::new();
    let (a, b) = (cluster.client(), cluster.client());
    let k = Path::parse("k", "x/y").unwrap();
    let mut ev = a.watch(&k).await.unwrap();
    a.suspend();
    b.put(&k, b"1", Guard::ANY).await.unwrap();
    let e1 = tokio::time::timeout(Duration::from_millis(100), ev.next()).await;
    a.heal();
    a.close().await.unwrap();
    b.put(&k, b"2", Guard::ANY).await.unwrap();
    let e2 = tokio::time::timeout(Duration::from_millis(100), ev.next()).await;
    assert!(
        matches!(&e1, Ok(Some(Err(e))) if e.is_retryable()),
        "a cut-off client's watch must end with an unavailable error, got {e1:?}"
    );
    assert!(
        e2.is_err() || matches!(e2, Ok(None)),
        "closed client's watch still delivers"
    );
}

// Dropping a service/election without close() leaks its tasks and leadership forever.
#[tokio::test(start_paused = true)]
async fn a_dropped_service_lets_leadership_go() {
    struct C;
    impl LeaderContender for C {
        fn grant_leadership(&self, _: Uuid) {}
        fn revoke_leadership(&self) {}
        fn handle_error(&self, _: &Error) {}
    }
    let cluster = MemoryCluster::new();
    let (a, b) = (cluster.client(), cluster.client());
    {
        let svc = LeaderElectionService::new(Arc::new(a.clone()), "c").unwrap();
        let le = svc.create_leader_election("d").unwrap();
        le.start(Arc::new(C)).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    } // dropped
    let r = tokio::time::timeout(
        Duration::from_secs(600),
        ElectionFactory::new(Arc::new(b))
            .with_prefix(Path::parse("p", "c/leader").unwrap())
            .new_election("latch")
            .unwrap()
            .campaign(),
    )
    .await;
    let granted = r
        .expect("the dropped service still leads: b was never granted")
        .unwrap();
    let leader = a
        .leader(&Path::parse("e", "c/leader/latch").unwrap())
        .await
        .unwrap()
        .expect("b leads");
    assert_eq!(leader.term, granted.term());
}

// A grant that arrives after its session ended is never delivered: the
// campaign goes on under the new session. (Found by tenure-chaos on etcd×3:
// a client cut off for longer than its TTL received the held "you are
// first" answer once the partition healed, when its candidate was long gone
// and another process had led since.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_arrives_after_its_session_ended_is_not_delivered() {
    let cluster = MemoryCluster::new();
    let memory = cluster.client();
    let slow: DynBackend = Arc::new(
        tenure_core::conformance::Slow::new(Arc::new(memory.clone()))
            .with_grant_delay(Duration::from_millis(300)),
    );
    let first_session = slow.session().borrow().id;
    let contest = election(slow, ConnectionPolicy::default(), "a", "phantom");
    let campaign = tokio::spawn(async move { contest.campaign().await });
    // The backend grants at once; while the answer is on its way, the
    // session ends on the server.
    let name = Path::parse("election", "phantom").unwrap();
    let mut leaders = memory.watch_leader(&name).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(leader) = futures_util::StreamExt::next(&mut leaders).await {
            if leader.unwrap().is_some() {
                return;
            }
        }
    })
    .await
    .expect("the backend grants");
    memory.expire_session();
    let leadership = tokio::time::timeout(Duration::from_secs(10), campaign)
        .await
        .expect("the campaign goes on and is granted")
        .unwrap()
        .unwrap();
    assert_ne!(
        leadership.grant().session,
        first_session,
        "a grant of the ended session was delivered"
    );
    assert!(leadership.is_held());
}
