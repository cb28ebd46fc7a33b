//! The [`Backend`] contract over etcd: KV, Txn, Watch and one lease.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures_util::stream::BoxStream;
use tenure_core::backend::support::{
    channel_stream, check_delete_condition, check_value_size, closed, queue, LeaderWatches,
};
use tenure_core::{
    Backend, Candidate, Capabilities, Condition, Error, Grant, KvEvent, LeaderRecord, Path, Result,
    SessionId, SessionState, SessionStatus, Versioned,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::EtcdConfig;
use crate::endpoints::Endpoints;
use crate::keys::Keys;
use crate::watch::WatchHub;

/// The largest value, in bytes (etcd's default request limit is 1.5 MiB).
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;

/// One process's client of etcd, with its own lease as its session.
#[derive(Clone)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

/// Candidate writes and queue reads in flight at once, per client.
const REQUEST_SLOTS: usize = 64;

struct Inner {
    /// Shared, not cloned, by campaigns and their guards: a client is a few
    /// kilobytes, and a process may campaign for thousands of elections.
    client: Arc<Client>,
    keys: Keys,
    config: EtcdConfig,
    status: watch::Sender<SessionStatus>,
    stop: watch::Sender<bool>,
    /// Asks the session task to check the lease now (a call found it gone).
    nudge: Arc<tokio::sync::Notify>,
    /// Every watch of this process, over one stream.
    hub: WatchHub,
    /// One leader watch per election, shared by this process's followers.
    leader_watches: LeaderWatches,
    /// Bounds the candidate writes and queue reads in flight at once: a
    /// process campaigning for thousands of elections together would
    /// otherwise hold thousands of requests' futures and buffers at a time,
    /// and the heap stays fragmented by them long after.
    request_slots: Arc<tokio::sync::Semaphore>,
    /// The last answer of the server about a lease, shared by concurrent askers.
    alive_check: tokio::sync::Mutex<Option<(SessionId, tokio::time::Instant, bool)>>,
    session_task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("config", &self.inner.config)
            .field("session", &*self.inner.status.borrow())
            .finish()
    }
}

/// Maps an etcd client error into tenure's: transport trouble is retryable.
pub(crate) fn map_err(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    let retryable = match &e {
        E::TransportError(_) | E::IoError(_) | E::LeaseKeepAliveError(_) | E::WatchError(_) => true,
        E::GRpcStatus(status) => {
            use tonic::Code;
            matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::ResourceExhausted
                    | Code::Unknown
            )
        }
        _ => false,
    };
    let message = e.to_string();
    if retryable {
        Error::Unavailable {
            message,
            source: Some(Box::new(e)),
        }
    } else {
        Error::Backend {
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// Whether etcd refused a request because the lease it names is gone.
fn lease_not_found(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::NotFound && s.message().contains("lease not found"))
}

fn kv_versioned(kv: &KeyValue) -> Versioned {
    Versioned {
        value: kv.value().to_vec(),
        version: kv.mod_revision() as u64,
    }
}

impl EtcdBackend {
    /// Connects and opens the process's session (its lease).
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &config.user {
            options = options.with_user(user.clone(), password.0.clone());
        }
        // Full URLs: the client balances over them and removes dead ones by the
        // very same URL (see endpoints.rs).
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| {
                let bare = e
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                format!("{scheme}://{bare}")
            })
            .collect();
        if let Some(tls) = &config.tls {
            options = options.with_tls(crate::tls::options(tls)?);
        }
        // Connecting is lazy; one read proves an endpoint answers (and that the
        // credentials work). Both within the connect timeout.
        let connect = async {
            let client = Client::connect(endpoints.clone(), Some(options))
                .await
                .map_err(map_err)?;
            client
                .kv_client()
                .get("\0tenure-probe", None)
                .await
                .map_err(map_err)?;
            Ok::<_, Error>(client)
        };
        let client = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| {
                Error::unavailable(format!(
                    "cannot reach etcd at {} within {:?}",
                    config.endpoints.join(","),
                    config.connect_timeout
                ))
            })??;
        let (status, mut first) = watch::channel(SessionStatus {
            id: SessionId(0),
            state: SessionState::Suspended,
            renew_deadline: None,
        });
        let (stop, stop_rx) = watch::channel(false);
        let nudge = Arc::new(tokio::sync::Notify::new());
        let members = Arc::new(Endpoints::new(client.clone(), endpoints));
        {
            // Probe the members every second, for as long as the backend lives.
            let (members, mut stop) = (members.clone(), stop_rx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => members.refresh().await,
                        _ = stop.changed() => return,
                    }
                }
            });
        }
        let task = tokio::spawn(crate::session::run(
            client.clone(),
            config.ttl,
            status.clone(),
            stop_rx,
            nudge.clone(),
            members,
        ));
        // Wait for the first lease, so the session is usable when we return.
        let opened = tokio::time::timeout(config.connect_timeout * 2, async {
            loop {
                if first.borrow_and_update().state == SessionState::Connected {
                    return;
                }
                if first.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if opened.is_err() {
            let _ = stop.send(true);
            task.abort();
            return Err(Error::unavailable("etcd did not grant a lease in time"));
        }
        let hub = WatchHub::new(client.clone());
        Ok(EtcdBackend {
            inner: Arc::new(Inner {
                client: Arc::new(client),
                keys: Keys::new(&config.prefix),
                config,
                status,
                stop,
                nudge,
                hub,
                leader_watches: LeaderWatches::new(),
                request_slots: Arc::new(tokio::sync::Semaphore::new(REQUEST_SLOTS)),
                alive_check: tokio::sync::Mutex::new(None),
                session_task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The configuration this backend was made with.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The etcd client, for operations tenure does not wrap.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.inner.client.kv_client()
    }

    fn check_open(&self) -> Result<()> {
        if *self.inner.stop.borrow() {
            Err(Error::Closed {
                what: "etcd backend",
            })
        } else {
            Ok(())
        }
    }

    /// The direct candidates of an election, oldest first, with the revision
    /// the read was made at.
    async fn queue(&self, election: &Path) -> Result<(Vec<KeyValue>, i64)> {
        let prefix = self.inner.keys.election(election);
        // The request's future is boxed once a slot is free, so waiting
        // readers stay small.
        let _slot = self.inner.request_slots.acquire().await;
        let mut response = Box::pin(
            self.kv().get(
                prefix.clone(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Create, SortOrder::Ascend),
                ),
            ),
        )
        .await
        .map_err(map_err)?;
        let revision = response.header().map_or(0, |h| h.revision());
        let queue: Vec<KeyValue> = response
            .take_kvs()
            .into_iter()
            .filter(|kv| Keys::is_candidate(&prefix, kv.key()))
            .collect();
        // Candidates are named by their lease (etcd's recipe); anything else in
        // the election's directory was written by someone else.
        if let Some(bad) = queue
            .iter()
            .find(|kv| !Keys::is_lease_name(&kv.key()[prefix.len()..]))
        {
            return Err(Error::Corrupted {
                key: String::from_utf8_lossy(bad.key()).into_owned(),
                reason: "not a candidate: candidate keys end in a lease id in lower-case hex"
                    .into(),
            });
        }
        Ok((queue, revision))
    }

    /// Waits until `key` is deleted (or the watch cannot say), watching from
    /// `revision` + 1.
    async fn wait_deleted(&self, key: &str) -> Result<()> {
        // Watch from now, then look: a deletion before the watch shows in the
        // read, one after it arrives as an event. (A watch started at an older
        // revision would be caught up by etcd's sync loop, up to 100 ms late.)
        let mut watch = self.inner.hub.watch(key, WatchOptions::new()).await?;
        // Boxed: a campaign's future holds this call only while it runs.
        let present = Box::pin(
            self.kv()
                .get(key, Some(GetOptions::new().with_count_only())),
        )
        .await;
        if present.is_ok_and(|r| r.count() == 0) {
            return Ok(());
        }
        while let Some(events) = watch.next().await {
            // An error (compaction, a broken stream): the caller re-reads.
            let Ok(events) = events else { return Ok(()) };
            if events.iter().any(|e| e.event_type() == EventType::Delete) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Deletes candidate `key` if it is still the one created at `term`.
    async fn withdraw(&self, key: &str, term: i64) -> Result<()> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, term)])
            .and_then([TxnOp::delete(key, None)]);
        self.kv().txn(txn).await.map_err(map_err)?;
        Ok(())
    }

    /// Waits until candidate `key` (created at `term`) is first in its queue,
    /// re-reading the queue after every change ahead of it.
    async fn wait_first(
        &self,
        election: &Path,
        key: &str,
        term: i64,
        session: SessionId,
    ) -> Result<()> {
        let expired = || Error::SessionExpired { session: session.0 };
        let mut status = self.session();
        let mut backoff = Duration::from_millis(20);
        loop {
            let (queue, _) = self.queue(election).await?;
            let Some(position) = queue.iter().position(|kv| kv.key() == key.as_bytes()) else {
                // Gone: the lease expired, or someone deleted the candidate.
                return Err(expired());
            };
            if queue[position].create_revision() != term {
                return Err(expired());
            }
            if position == 0 {
                // First, and the read proved our candidate exists under the lease
                // now: no phantom grant.
                let s = *status.borrow();
                if s.id != session || s.state == SessionState::Lost {
                    return Err(expired());
                }
                return Ok(());
            }
            // Wait for the candidate just ahead of us to go (Go's waitDeletes).
            let ahead = String::from_utf8_lossy(queue[position - 1].key()).into_owned();
            tokio::select! {
                r = self.wait_deleted(&ahead) => {
                    if r.is_err() {
                        // The watch could not be opened: read again shortly.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
                _ = status.changed() => {
                    let s = *status.borrow_and_update();
                    if s.id != session || matches!(s.state, SessionState::Lost | SessionState::Closed) {
                        return Err(expired());
                    }
                }
            }
        }
    }

    /// Refuses a fence whose candidate key is not one of its election's: the
    /// transaction compares that key alone, so a grant from another process
    /// (`tenure put --fence`) must not name a key of another election.
    fn check_fence_key(&self, fence: Option<&Grant>) -> Result<()> {
        match fence {
            Some(grant)
                if !Keys::is_candidate(
                    &self.inner.keys.election(&grant.election),
                    grant.key.as_bytes(),
                ) =>
            {
                Err(Error::Fenced {
                    election: grant.election.to_string(),
                    term: grant.term,
                })
            }
            _ => Ok(()),
        }
    }

    /// Explains a failed fenced or conditional transaction.
    async fn explain(
        &self,
        key: &str,
        condition: Condition,
        fence: Option<&Grant>,
        name: &Path,
    ) -> Error {
        if let Some(grant) = fence {
            match self.kv().get(grant.key.clone(), None).await {
                Ok(r)
                    if r.kvs().first().map(|kv| kv.create_revision() as u64)
                        == Some(grant.term) => {}
                Ok(_) => {
                    return Error::Fenced {
                        election: grant.election.to_string(),
                        term: grant.term,
                    }
                }
                Err(e) => return map_err(e),
            }
        }
        let current = match self.kv().get(key, None).await {
            Ok(r) => r.kvs().first().map(|kv| kv.mod_revision() as u64),
            Err(e) => return map_err(e),
        };
        match (condition, current) {
            (Condition::Absent, Some(_)) => Error::AlreadyExists {
                key: name.to_string(),
            },
            (Condition::Version(expected), actual) => Error::VersionMismatch {
                key: name.to_string(),
                expected,
                actual,
            },
            _ => {
                Error::unavailable("a conditional write failed and then its condition held; retry")
            }
        }
    }

    fn compares(&self, key: &str, condition: Condition, fence: Option<&Grant>) -> Vec<Compare> {
        let mut compares = Vec::new();
        if let Some(grant) = fence {
            // The leadership is current iff its candidate still exists as
            // created: once first in its queue, a candidate stays first.
            compares.push(Compare::create_revision(
                grant.key.clone(),
                CompareOp::Equal,
                grant.term as i64,
            ));
        }
        match condition {
            Condition::Any => {}
            Condition::Absent => compares.push(Compare::create_revision(key, CompareOp::Equal, 0)),
            Condition::Version(v) => {
                compares.push(Compare::mod_revision(key, CompareOp::Equal, v as i64))
            }
        }
        compares
    }
}

/// Withdraws a candidate whose campaign was dropped: waits for the write that
/// creates it (it may still be in flight), then deletes it.
struct CandidateGuard {
    client: Arc<Client>,
    key: String,
    create: Option<JoinHandle<()>>,
    /// The candidate's create revision, once known.
    term: Option<i64>,
    armed: bool,
}

impl Drop for CandidateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, key, create, term) = (
            self.client.clone(),
            self.key.clone(),
            self.create.take(),
            self.term,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(create) = create {
                    let _ = create.await;
                }
                // Only the candidate this campaign made: if the revision is not
                // known yet, read it (a later campaign of ours makes a new one).
                let term = match term {
                    Some(term) => Some(term),
                    None => client
                        .kv_client()
                        .get(key.clone(), None)
                        .await
                        .ok()
                        .and_then(|r| r.kvs().first().map(|kv| kv.create_revision())),
                };
                if let Some(term) = term {
                    let txn = Txn::new()
                        .when([Compare::create_revision(
                            key.clone(),
                            CompareOp::Equal,
                            term,
                        )])
                        .and_then([TxnOp::delete(key, None)]);
                    let _ = client.kv_client().txn(txn).await;
                }
            });
        }
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("etcd")
            .with_durable(true)
            .with_ttl_sessions(true)
            .with_max_value_size(MAX_VALUE_SIZE)
    }

    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.subscribe()
    }

    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        self.check_open()?;
        let current = *self.inner.status.borrow();
        if current.id != id || current.state == SessionState::Lost {
            return Ok(false);
        }
        // Many leaderships ask at once when a lease goes (one per election):
        // one of them asks the server, the others take its answer.
        let mut checked = self.inner.alive_check.lock().await;
        if let Some((checked_id, at, alive)) = *checked {
            // A lease that is gone never comes back; a live one is re-checked.
            if checked_id == id && (!alive || at.elapsed() < Duration::from_millis(200)) {
                return Ok(alive);
            }
        }
        let r = self
            .inner
            .client
            .lease_client()
            .time_to_live(id.0 as i64, None)
            .await
            .map_err(map_err)?;
        let alive = r.ttl() > 0;
        *checked = Some((id, tokio::time::Instant::now(), alive));
        if !alive {
            // Make the session notice now rather than at its next keep-alive.
            self.inner.nudge.notify_one();
        }
        Ok(alive)
    }

    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let expired = || Error::SessionExpired { session: session.0 };
        let current = *self.inner.status.borrow();
        if current.id != session || current.state == SessionState::Lost {
            return Err(expired());
        }
        let lease = session.0 as i64;
        let key = self.inner.keys.candidate(election, lease);
        // Create the candidate (or find it, if an earlier attempt of ours made
        // it) in a task of its own, so a dropped campaign cannot cut it short
        // and leave a candidate its guard does not know about.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let create = {
            let (client, key, value) = (self.inner.client.clone(), key.clone(), value.to_vec());
            let slots = self.inner.request_slots.clone();
            tokio::spawn(async move {
                // Thousands of campaigns at once would each hold a request's
                // buffers in flight; a bounded number is as fast and lighter.
                // The request's future is boxed once a slot is free, so the
                // waiting tasks stay small.
                let _slot = slots.acquire_owned().await;
                let request = Box::pin(async move {
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(
                            key.clone(),
                            value,
                            Some(PutOptions::new().with_lease(lease)),
                        )])
                        .or_else([TxnOp::get(key, None)]);
                    client.kv_client().txn(txn).await
                });
                let _ = tx.send(request.await);
            })
        };
        let mut guard = CandidateGuard {
            client: self.inner.client.clone(),
            key: key.clone(),
            create: Some(create),
            term: None,
            armed: true,
        };
        let response = rx
            .await
            .map_err(|_| Error::unavailable("the campaign's write was lost"))?
            .map_err(|e| {
                if lease_not_found(&e) {
                    // The server already dropped the lease; make the session
                    // notice now rather than at its next keep-alive.
                    self.inner.nudge.notify_one();
                    guard.armed = false;
                    expired()
                } else {
                    map_err(e)
                }
            })?;
        let term = if response.succeeded() {
            response.header().map_or(0, |h| h.revision())
        } else {
            match response.op_responses().first() {
                Some(TxnOpResponse::Get(get)) => match get.kvs().first() {
                    Some(kv) if kv.lease() == lease => kv.create_revision(),
                    _ => return Err(expired()),
                },
                _ => return Err(expired()),
            }
        };
        // From here on the candidate's create revision is known: whatever
        // removes it (this call on an error, the guard on a drop) removes only
        // this very candidate, never a later one of the same lease.
        guard.term = Some(term);
        // Boxed: only campaigns that get this far hold room for it.
        let outcome = Box::pin(self.wait_first(election, &key, term, session)).await;
        match &outcome {
            Ok(_) => guard.armed = false,
            Err(Error::SessionExpired { .. }) => guard.armed = false,
            Err(_) => {
                // Withdraw now rather than leave it to the guard's background
                // task, so a retry never finds (or loses) a stale candidate.
                if Box::pin(self.withdraw(&key, term)).await.is_ok() {
                    guard.armed = false;
                }
            }
        }
        outcome.map(|()| Grant {
            election: election.clone(),
            term: term as u64,
            session,
            key,
        })
    }

    async fn resign(&self, grant: &Grant) -> Result<()> {
        self.check_open()?;
        // Delete only the candidate that was granted, not a newer one of ours.
        let txn = Txn::new()
            .when([Compare::create_revision(
                grant.key.clone(),
                CompareOp::Equal,
                grant.term as i64,
            )])
            .and_then([TxnOp::delete(grant.key.clone(), None)]);
        self.kv().txn(txn).await.map_err(map_err)?;
        Ok(())
    }

    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.check_open()?;
        let (queue, _) = self.queue(election).await?;
        Ok(queue.first().map(|kv| LeaderRecord {
            term: kv.create_revision() as u64,
            value: kv.value().to_vec(),
        }))
    }

    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        self.check_open()?;
        let (queue, _) = self.queue(election).await?;
        Ok(queue
            .iter()
            .map(|kv| Candidate {
                term: kv.create_revision() as u64,
                value: kv.value().to_vec(),
            })
            .collect())
    }

    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        // One watch per election, however many followers this process has.
        self.inner
            .leader_watches
            .watch(election, || self.open_leader_watch(election))
            .await
    }

    async fn get(&self, key: &Path) -> Result<Option<Versioned>> {
        self.check_open()?;
        let r = self
            .kv()
            .get(self.inner.keys.kv(key), None)
            .await
            .map_err(map_err)?;
        Ok(r.kvs().first().map(kv_versioned))
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.check_open()?;
        let r = self
            .kv()
            .get(
                self.inner.keys.kv(prefix),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(map_err)?;
        let mut listed = Vec::new();
        for kv in r.kvs() {
            let name = self
                .inner
                .keys
                .kv_name(kv.key())
                .map_err(|reason| Error::Corrupted {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    reason,
                })?;
            if prefix.contains(name) {
                listed.push((name.to_owned(), kv_versioned(kv)));
            }
        }
        Ok(listed)
    }

    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.check_open()?;
        // From now on: the watch is confirmed by etcd before this returns, so
        // every later change is delivered, without a catch-up delay.
        let mut watch = self
            .inner
            .hub
            .watch(
                self.inner.keys.kv(prefix),
                WatchOptions::new().with_prefix(),
            )
            .await?;
        let (tx, rx) = queue();
        let (keys, prefix) = (self.inner.keys.clone(), prefix.clone());
        let mut status = self.session();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = watch.next() => m,
                    _ = tx.closed() => return,
                    _ = closed(&mut status) => return,
                };
                let events = match message {
                    Some(Ok(events)) => events,
                    // Compacted past our position, or a broken stream: the
                    // caller lists again and re-watches.
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    None => {
                        let _ = tx.send(Err(Error::unavailable("the watch ended")));
                        return;
                    }
                };
                for event in &events {
                    let Some(kv) = event.kv() else { continue };
                    let name = match keys.kv_name(kv.key()) {
                        Ok(name) => name,
                        Err(reason) => {
                            let _ = tx.send(Err(Error::Corrupted {
                                key: String::from_utf8_lossy(kv.key()).into_owned(),
                                reason,
                            }));
                            continue;
                        }
                    };
                    if !prefix.contains(name) {
                        continue;
                    }
                    let event = match event.event_type() {
                        EventType::Put => KvEvent::Put {
                            key: name.to_owned(),
                            value: kv_versioned(kv),
                        },
                        EventType::Delete => KvEvent::Delete {
                            key: name.to_owned(),
                        },
                    };
                    if tx.send(Ok(event)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(channel_stream(rx))
    }

    async fn put(
        &self,
        key: &Path,
        value: &[u8],
        condition: Condition,
        fence: Option<&Grant>,
    ) -> Result<u64> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        self.check_fence_key(fence)?;
        let etcd_key = self.inner.keys.kv(key);
        let txn = Txn::new()
            .when(self.compares(&etcd_key, condition, fence))
            .and_then([TxnOp::put(etcd_key.clone(), value.to_vec(), None)]);
        let response = self.kv().txn(txn).await.map_err(map_err)?;
        if response.succeeded() {
            return Ok(response.header().map_or(0, |h| h.revision()) as u64);
        }
        Err(self.explain(&etcd_key, condition, fence, key).await)
    }

    async fn delete(
        &self,
        key: &Path,
        condition: Condition,
        fence: Option<&Grant>,
    ) -> Result<bool> {
        self.check_open()?;
        check_delete_condition(condition)?;
        self.check_fence_key(fence)?;
        let etcd_key = self.inner.keys.kv(key);
        let txn = Txn::new()
            .when(self.compares(&etcd_key, condition, fence))
            .and_then([TxnOp::delete(etcd_key.clone(), Some(DeleteOptions::new()))]);
        let response = self.kv().txn(txn).await.map_err(map_err)?;
        if response.succeeded() {
            return Ok(matches!(
                response.op_responses().first(),
                Some(TxnOpResponse::Delete(d)) if d.deleted() > 0
            ));
        }
        let err = self.explain(&etcd_key, condition, fence, key).await;
        Err(match err {
            Error::VersionMismatch { actual: None, .. } => Error::NotFound {
                key: key.to_string(),
            },
            other => other,
        })
    }

    async fn close(&self) -> Result<()> {
        if self.inner.stop.send_replace(true) {
            return Ok(());
        }
        let lease = self.inner.status.borrow().id.0 as i64;
        // Closed first, so whoever sees the candidates vanish knows why.
        self.inner.status.send_modify(|s| {
            s.state = SessionState::Closed;
            s.renew_deadline = None;
        });
        let task = self
            .inner
            .session_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
        // Revoking the lease removes every candidate of this process at once.
        match self.inner.client.lease_client().revoke(lease).await {
            Ok(_) => Ok(()),
            // Already expired: its candidates are gone too.
            Err(e) if lease_not_found(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}

impl EtcdBackend {
    /// The backend's own leader watch of `election`, shared by
    /// [`Backend::watch_leader`] through [`LeaderWatches`].
    async fn open_leader_watch(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        let prefix = self.inner.keys.election(election);
        // Watch from now, then read: every change after the read arrives as an
        // event (older ones are skipped by revision), with no catch-up delay.
        let watch = self
            .inner
            .hub
            .watch(prefix.clone(), WatchOptions::new().with_prefix())
            .await?;
        let (queue, revision) = self.queue(election).await?;
        // Candidates by create revision, kept from the events: a sorted vector,
        // as most queues hold one or two (a map's first node is ~600 bytes).
        let mut candidates: Candidates = queue
            .into_iter()
            .map(|kv| (kv.create_revision(), kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        candidates.sort_unstable_by_key(|c| c.0);
        // Collecting may reuse the response's larger buffer in place.
        candidates.shrink_to_fit();
        let head = |c: &Candidates| {
            c.first().map(|(rev, _, value)| LeaderRecord {
                term: *rev as u64,
                value: value.clone(),
            })
        };
        // A stream driven by its reader, not a task and a channel of its own:
        // a process may hold thousands of elections, each followed once.
        let first = head(&candidates);
        let state = Follow {
            watch,
            candidates,
            last: first.clone(),
            status: self.session(),
            prefix,
            done: false,
        };
        let rest = futures_util::stream::unfold(state, move |mut f| async move {
            if f.done {
                return None;
            }
            loop {
                let message = tokio::select! {
                    m = f.watch.next() => m,
                    _ = closed(&mut f.status) => return None,
                };
                let events = match message {
                    Some(Ok(events)) => events,
                    Some(Err(e)) => {
                        f.done = true;
                        return Some((Err(e), f));
                    }
                    None => {
                        f.done = true;
                        return Some((Err(Error::unavailable("the leader watch ended")), f));
                    }
                };
                for event in &events {
                    let Some(kv) = event.kv() else { continue };
                    if kv.mod_revision() <= revision || !Keys::is_candidate(&f.prefix, kv.key()) {
                        continue;
                    }
                    match event.event_type() {
                        EventType::Put => {
                            let candidate =
                                (kv.create_revision(), kv.key().to_vec(), kv.value().to_vec());
                            match f.candidates.binary_search_by_key(&candidate.0, |c| c.0) {
                                Ok(at) => f.candidates[at] = candidate,
                                Err(at) => f.candidates.insert(at, candidate),
                            }
                        }
                        EventType::Delete => f.candidates.retain(|(_, k, _)| k != kv.key()),
                    }
                }
                let now = head(&f.candidates);
                if now != f.last {
                    f.last = now.clone();
                    return Some((Ok(now), f));
                }
            }
        });
        let stream = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, Error>(first)]),
            rest,
        );
        Ok(futures_util::StreamExt::boxed(stream))
    }
}

/// An election's candidates as (create revision, key, value), in create
/// revision order.
type Candidates = Vec<(i64, Vec<u8>, Vec<u8>)>;

/// The state of one leader watch between events.
struct Follow<W> {
    watch: W,
    /// Candidates by create revision: key and value.
    candidates: Candidates,
    last: Option<LeaderRecord>,
    status: watch::Receiver<SessionStatus>,
    prefix: String,
    /// An error was yielded: the stream ends.
    done: bool,
}
