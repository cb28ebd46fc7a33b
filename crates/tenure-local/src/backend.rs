//! The `local://` backend: the [`Backend`] contract over one directory.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tenure_core::backend::support::{
    self, channel_stream, check_delete, check_put, check_value_size,
};
use tenure_core::{
    Backend, Candidate, Capabilities, Condition, Error, Grant, KvEvent, LeaderRecord, Path, Result,
    SessionId, SessionState, SessionStatus, Versioned,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::dir::Dir;
use crate::state::{State, Stored};

/// How often a process looks for changes made by other processes and for dead
/// leaders it waits on, by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The largest value, in bytes.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;

/// What the writer thread runs: changes `State` (validating first, so a failing
/// job changes nothing) and returns what to tell the caller once the batch is
/// durable (or failed to be written).
type Reply = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&mut State, &Dir) -> Reply + Send>;

/// One process's client of a `local://` directory, with its own session.
///
/// Sessions rest on an exclusive `flock` held for the life of the session: when
/// the process dies, even by SIGKILL, the kernel releases the lock and the next
/// candidate is granted at once. A paused (SIGSTOP) process keeps its lock, and
/// so its leadership: it is not dead, and nobody else can act meanwhile.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

struct Inner {
    dir: Arc<Dir>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Our session: its id and the open, locked session file.
    session: Mutex<Option<(u64, File)>>,
    status: watch::Sender<SessionStatus>,
    /// The latest state known to this process, for waiters and watchers.
    latest: watch::Sender<Arc<State>>,
    /// The state file as last read, keyed by its header line, to skip
    /// re-reading an unchanged file.
    cache: Mutex<Option<(Vec<u8>, Arc<State>)>>,
    /// Elections someone here waits on or watches: their dead leaders are looked
    /// for on every poll.
    interest: Mutex<HashMap<String, usize>>,
    closed: AtomicBool,
    poller: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackend")
            .field("dir", &self.inner.dir.root())
            .field("session", &self.inner.status.borrow().id)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn closed() -> Error {
    Error::Closed {
        what: "local backend",
    }
}

impl LocalBackend {
    /// Opens (creating if needed) the directory at `path` and starts a session.
    /// Must be called inside a tokio runtime.
    pub async fn open(path: impl AsRef<FsPath>) -> Result<Self> {
        Self::open_with(path, DEFAULT_POLL_INTERVAL).await
    }

    /// [`open`](Self::open) with an explicit poll interval.
    pub async fn open_with(path: impl AsRef<FsPath>, poll: Duration) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let dir = tokio::task::spawn_blocking(move || Dir::open(&path))
            .await
            .map_err(|e| Error::Backend {
                message: "opening the directory panicked".into(),
                source: Some(Box::new(e)),
            })??;
        let dir = Arc::new(dir);
        let initial = Arc::new(dir.read_state()?);
        let (jobs, rx) = mpsc::unbounded_channel();
        let (latest, _) = watch::channel(initial);
        let (status, _) = watch::channel(SessionStatus {
            id: SessionId(0),
            state: SessionState::Connected,
            renew_deadline: None,
        });
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            jobs,
            session: Mutex::new(None),
            status,
            latest: latest.clone(),
            cache: Mutex::new(None),
            interest: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            poller: Mutex::new(None),
        });
        let lock_file = dir.open_lock_file()?;
        let writer_latest = latest;
        std::thread::Builder::new()
            .name("tenure-local-writer".into())
            .spawn(move || writer(dir, lock_file, rx, writer_latest))
            .map_err(|e| Error::Backend {
                message: "cannot start the writer thread".into(),
                source: Some(Box::new(e)),
            })?;
        let backend = LocalBackend { inner };
        let id = backend.new_session().await?;
        backend.inner.status.send_replace(SessionStatus {
            id: SessionId(id),
            state: SessionState::Connected,
            renew_deadline: None,
        });
        let poller = tokio::spawn(poll_loop(
            Arc::downgrade(&backend.inner),
            poll_interval_or(poll),
        ));
        *lock(&backend.inner.poller) = Some(poller);
        Ok(backend)
    }

    /// The directory this backend uses.
    pub fn path(&self) -> &FsPath {
        self.inner.dir.root()
    }

    /// Ends this client's session as if its process had died: the session lock
    /// is released, its candidates are removed, the session is `Lost`, and a new
    /// session is opened. For tests of what happens when a process crashes.
    pub async fn expire_session(&self) -> Result<()> {
        let old = lock(&self.inner.session).take();
        if let Some((id, file)) = old {
            drop(file);
            self.inner
                .submit(move |state, dir| {
                    if state.drop_session(id) {
                        state.bump();
                    }
                    dir.remove_session(id);
                    Ok(())
                })
                .await?;
            self.inner
                .status
                .send_modify(|s| s.state = SessionState::Lost);
        }
        let id = self.new_session().await?;
        self.inner.status.send_replace(SessionStatus {
            id: SessionId(id),
            state: SessionState::Connected,
            renew_deadline: None,
        });
        Ok(())
    }

    async fn new_session(&self) -> Result<u64> {
        let (id, file) = self
            .inner
            .submit(|state, dir| {
                let id = state.last_session + 1;
                let file = dir.create_session(id)?;
                state.last_session = id;
                state.sessions.insert(id);
                state.bump();
                Ok((id, file))
            })
            .await?;
        *lock(&self.inner.session) = Some((id, file));
        Ok(id)
    }

    fn current_session(&self) -> Option<u64> {
        lock(&self.inner.session).as_ref().map(|(id, _)| *id)
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(closed())
        } else {
            Ok(())
        }
    }
}

fn poll_interval_or(poll: Duration) -> Duration {
    poll.max(Duration::from_millis(1))
}

impl Inner {
    /// Runs `job` on the writer thread, under the directory lock, and waits until
    /// its change is durable.
    async fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut State, &Dir) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move |state, dir| {
            let outcome = job(state, dir);
            Box::new(move |persisted: Result<()>| {
                let _ = tx.send(persisted.and(outcome));
            })
        });
        self.jobs.send(boxed).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Submits a job without waiting (for cleanup from `Drop`).
    fn submit_detached(&self, job: impl FnOnce(&mut State, &Dir) + Send + 'static) {
        let boxed: Job = Box::new(move |state, dir| {
            job(state, dir);
            Box::new(|_| {})
        });
        let _ = self.jobs.send(boxed);
    }

    /// The current state: re-read only if the file changed.
    fn load(&self) -> Result<Arc<State>> {
        // The header carries the revision and checksum: if it is unchanged, so
        // is the state (file times and inode numbers are too coarse to tell).
        let header = self.dir.read_header()?;
        if let Some((cached, state)) = lock(&self.cache).as_ref() {
            if *cached == header {
                return Ok(state.clone());
            }
        }
        let (header, state) = self.dir.read_state_with_header()?;
        let state = Arc::new(state);
        *lock(&self.cache) = Some((header, state.clone()));
        self.publish(&state);
        Ok(state)
    }

    /// Tells waiters and watchers about a newer state.
    fn publish(&self, state: &Arc<State>) {
        self.latest.send_if_modified(|current| {
            if state.revision > current.revision {
                *current = state.clone();
                true
            } else {
                false
            }
        });
    }

    fn interested(self: &Arc<Self>, election: &str) -> Interest {
        *lock(&self.interest).entry(election.to_owned()).or_default() += 1;
        Interest {
            inner: Arc::downgrade(self),
            election: election.to_owned(),
        }
    }
}

/// The state of one leader watch (see [`LocalBackend::watch_leader`]).
struct Follow {
    /// The head at the start, yielded first.
    first: Option<Option<LeaderRecord>>,
    last: Option<LeaderRecord>,
    revision: u64,
    name: String,
    latest: watch::Receiver<Arc<State>>,
    status: watch::Receiver<SessionStatus>,
    _interest: Interest,
}

/// Keeps an election in the set whose dead leaders are looked for.
struct Interest {
    inner: std::sync::Weak<Inner>,
    election: String,
}

impl Drop for Interest {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut interest = lock(&inner.interest);
            if let Some(n) = interest.get_mut(&self.election) {
                *n -= 1;
                if *n == 0 {
                    interest.remove(&self.election);
                }
            }
        }
    }
}

/// The writer thread: runs jobs in batches, one directory lock, one read and
/// one durable write per batch (group commit), and removes the candidates of
/// sessions whose process died.
fn writer(
    dir: Arc<Dir>,
    lock_file: File,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    latest: watch::Sender<Arc<State>>,
) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let guard = match dir.lock(&lock_file) {
            Ok(guard) => guard,
            Err(e) => {
                fail_all(batch, &dir, &e);
                continue;
            }
        };
        let mut state = match dir.read_state() {
            Ok(state) => state,
            Err(e) => {
                drop(guard);
                fail_all(batch, &dir, &e);
                continue;
            }
        };
        let before = state.revision;
        reap(&mut state, &dir);
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&mut state, &dir)).collect();
        let persisted = if state.revision != before {
            dir.write_atomic(&state)
        } else {
            Ok(())
        };
        drop(guard);
        let failure = persisted.as_ref().err().map(ToString::to_string);
        if persisted.is_ok() {
            let state = Arc::new(state);
            latest.send_if_modified(|current| {
                if state.revision > current.revision {
                    *current = state.clone();
                    true
                } else {
                    false
                }
            });
        }
        for reply in replies {
            reply(match &failure {
                None => Ok(()),
                Some(message) => Err(Error::Backend {
                    message: format!("the change was not written: {message}"),
                    source: None,
                }),
            });
        }
    }
}

fn fail_all(batch: Vec<Job>, dir: &Dir, error: &Error) {
    // Run nothing against a state we could not lock or read; tell every caller.
    let mut scratch = State::default();
    for job in batch {
        let reply = job(&mut scratch, dir);
        reply(Err(replicate(error)));
    }
}

/// The same error for each caller of a failed batch (errors are not `Clone`:
/// their sources may not be).
fn replicate(error: &Error) -> Error {
    match error {
        Error::Corrupted { key, reason } => Error::Corrupted {
            key: key.clone(),
            reason: reason.clone(),
        },
        Error::Unsupported { backend, what } => Error::Unsupported { backend, what },
        other => Error::Backend {
            message: format!("the change was not made: {other}"),
            source: None,
        },
    }
}

/// Removes the candidates of every session whose owner died (its lock is free).
fn reap(state: &mut State, dir: &Dir) {
    let sessions: Vec<u64> = state.sessions.iter().copied().collect();
    for session in sessions {
        if matches!(dir.session_alive(session), Ok(false)) {
            tracing::info!(session, dir = %dir.root().display(), "session of a dead process removed");
            state.drop_session(session);
            state.bump();
            dir.remove_session(session);
        }
    }
}

/// Watches the directory for other processes' changes and for dead leaders of
/// the elections this process cares about. Ends when the backend is dropped.
async fn poll_loop(inner: std::sync::Weak<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reaping: Option<oneshot::Receiver<Result<()>>> = None;
    // Session files of leaders we wait on, kept open: a probe is then one
    // try-lock, not an open and a close.
    let mut probes: HashMap<u64, Option<File>> = HashMap::new();
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(state) = inner.load() else { continue };
        if reaping.as_mut().is_some_and(|rx| rx.try_recv().is_err()) {
            continue; // a reap is still in flight
        }
        reaping = None;
        let own = lock(&inner.session).as_ref().map(|(id, _)| *id);
        let heads: HashSet<u64> = {
            let interest = lock(&inner.interest);
            interest
                .keys()
                .filter_map(|name| state.elections.get(name)?.first())
                .map(|e| e.session)
                .filter(|s| Some(*s) != own)
                .collect()
        };
        probes.retain(|session, _| heads.contains(session));
        let mut dead = false;
        for session in heads {
            let file = match probes.entry(session) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(inner.dir.open_session(session).unwrap_or(None))
                }
            };
            dead |= match file {
                None => true,
                Some(file) => matches!(inner.dir.probe(file), Ok(false)),
            };
        }
        if dead {
            // The writer reaps every dead session before running any job.
            let (tx, rx) = oneshot::channel();
            let job: Job = Box::new(move |_, _| {
                Box::new(move |r| {
                    let _ = tx.send(r);
                })
            });
            let _ = inner.jobs.send(job);
            reaping = Some(rx);
        }
    }
}

/// Withdraws a candidate whose campaign was dropped before it was granted.
struct CandidateGuard {
    inner: Arc<Inner>,
    election: String,
    slot: Arc<Mutex<Slot>>,
    armed: bool,
}

/// Shared by a campaign and the writer's job that adds its candidate.
#[derive(Default)]
struct Slot {
    /// Set by the writer once the candidate exists.
    term: Option<u64>,
    /// Set when the campaign is dropped; the writer then adds nothing.
    cancelled: bool,
}

impl Drop for CandidateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let term = {
            let mut slot = lock(&self.slot);
            slot.cancelled = true;
            slot.term
        };
        if let Some(term) = term {
            let election = std::mem::take(&mut self.election);
            self.inner
                .submit_detached(move |state, _| remove_candidate(state, &election, term));
        }
    }
}

fn remove_candidate(state: &mut State, election: &str, term: u64) {
    if let Some(queue) = state.elections.get_mut(election) {
        let before = queue.len();
        queue.retain(|e| e.term != term);
        if queue.len() != before {
            if queue.is_empty() {
                state.elections.remove(election);
            }
            state.bump();
        }
    }
}

fn head(state: &State, election: &str) -> Option<LeaderRecord> {
    state
        .elections
        .get(election)?
        .first()
        .map(|e| LeaderRecord {
            term: e.term,
            value: e.value.clone(),
        })
}

/// Whether `fence` (if any) is its election's current leadership. The grant
/// may be another process's (`tenure put --fence`): what counts is the state,
/// read under the directory lock after sessions of dead processes were reaped.
fn check_fence(state: &State, fence: Option<&Grant>) -> Result<()> {
    let Some(grant) = fence else { return Ok(()) };
    let current = state
        .elections
        .get(grant.election.as_str())
        .and_then(|q| q.first())
        .is_some_and(|e| e.term == grant.term && e.session == grant.session.0);
    if current && state.sessions.contains(&grant.session.0) {
        Ok(())
    } else {
        Err(Error::Fenced {
            election: grant.election.to_string(),
            term: grant.term,
        })
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("local")
            .with_durable(true)
            .with_restartable(true)
            .with_max_value_size(MAX_VALUE_SIZE)
    }

    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.subscribe()
    }

    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        self.check_open()?;
        if self.current_session() == Some(id.0) {
            return Ok(true);
        }
        let state = self.inner.load()?;
        if !state.sessions.contains(&id.0) {
            return Ok(false);
        }
        self.inner.dir.session_alive(id.0)
    }

    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let expired = || Error::SessionExpired { session: session.0 };
        if self.current_session() != Some(session.0) {
            return Err(expired());
        }
        let _interest = self.inner.interested(election.as_str());
        let name = election.to_string();
        let value = value.to_vec();
        // Created before the candidate exists, so a campaign dropped at any await
        // below — even while the writer is adding the candidate — withdraws it.
        let mut guard = CandidateGuard {
            inner: self.inner.clone(),
            election: election.to_string(),
            slot: Arc::new(Mutex::new(Slot::default())),
            armed: true,
        };
        let slot = guard.slot.clone();
        let term = self
            .inner
            .submit(move |state, _| {
                let mut slot = lock(&slot);
                if slot.cancelled {
                    return Err(Error::Cancelled);
                }
                if !state.sessions.contains(&session.0) {
                    return Err(Error::SessionExpired { session: session.0 });
                }
                let term = state.bump();
                state
                    .elections
                    .entry(name)
                    .or_default()
                    .push(crate::state::Entry {
                        term,
                        session: session.0,
                        value,
                    });
                slot.term = Some(term);
                Ok(term)
            })
            .await?;
        let mut latest = self.inner.latest.subscribe();
        let mut status = self.session();
        loop {
            let state = latest.borrow_and_update().clone();
            if self.current_session() != Some(session.0) || self.inner.closed.load(Ordering::SeqCst)
            {
                return Err(expired());
            }
            if state.revision >= term {
                let queue = state.elections.get(election.as_str());
                match queue.and_then(|q| q.iter().position(|e| e.term == term)) {
                    None => {
                        guard.armed = false;
                        return Err(expired());
                    }
                    Some(0) => {
                        guard.armed = false;
                        return Ok(Grant {
                            election: election.clone(),
                            term,
                            session,
                            key: format!("{}/{term}", election),
                        });
                    }
                    Some(_) => {}
                }
            }
            tokio::select! {
                r = latest.changed() => if r.is_err() { return Err(closed()) },
                _ = status.changed() => {}
            }
        }
    }

    async fn resign(&self, grant: &Grant) -> Result<()> {
        self.check_open()?;
        let (election, term) = (grant.election.to_string(), grant.term);
        self.inner
            .submit(move |state, _| {
                remove_candidate(state, &election, term);
                Ok(())
            })
            .await
    }

    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.check_open()?;
        Ok(head(&*self.inner.load()?, election.as_str()))
    }

    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        self.check_open()?;
        Ok(self
            .inner
            .load()?
            .elections
            .get(election.as_str())
            .map(|q| {
                q.iter()
                    .map(|e| Candidate {
                        term: e.term,
                        value: e.value.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        let latest = self.inner.latest.subscribe();
        let state = self.inner.load()?;
        let name = election.to_string();
        let interest = self.inner.interested(&name);
        let last = head(&state, &name);
        // Read by the follower itself, no task: a process may follow
        // thousands of elections. Like the state it follows, it yields the
        // head after each change the follower gets to see.
        let follow = Follow {
            first: Some(last.clone()),
            last,
            revision: state.revision,
            name,
            latest,
            status: self.session(),
            _interest: interest,
        };
        let stream = futures_util::stream::unfold(follow, |mut f| async move {
            if let Some(first) = f.first.take() {
                return Some((Ok(first), f));
            }
            loop {
                tokio::select! {
                    r = f.latest.changed() => if r.is_err() { return None },
                    _ = support::closed(&mut f.status) => return None,
                }
                let state = f.latest.borrow_and_update().clone();
                if state.revision <= f.revision {
                    continue;
                }
                f.revision = state.revision;
                let now = head(&state, &f.name);
                if now != f.last {
                    f.last = now.clone();
                    return Some((Ok(now), f));
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn get(&self, key: &Path) -> Result<Option<Versioned>> {
        self.check_open()?;
        Ok(self.inner.load()?.kv.get(key.as_str()).map(|s| Versioned {
            value: s.value.clone(),
            version: s.version,
        }))
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.check_open()?;
        let state = self.inner.load()?;
        Ok(state
            .kv
            .range(prefix.as_str().to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .filter(|(k, _)| prefix.contains(k))
            .map(|(k, s)| {
                (
                    k.clone(),
                    Versioned {
                        value: s.value.clone(),
                        version: s.version,
                    },
                )
            })
            .collect())
    }

    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.check_open()?;
        let (tx, rx) = support::queue();
        let mut latest = self.inner.latest.subscribe();
        // Start from the state on disk now: every change after this is delivered.
        let mut seen = self.inner.load()?.revision;
        let prefix = prefix.clone();
        let mut status = self.session();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = latest.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = support::closed(&mut status) => return,
                }
                let state = latest.borrow_and_update().clone();
                if state.revision <= seen {
                    continue;
                }
                if state.log_floor > seen {
                    let _ = tx.send(Err(Error::unavailable(
                        "the watch fell behind the change log; list again and re-watch",
                    )));
                    return;
                }
                for change in state.log.iter().filter(|c| c.revision > seen) {
                    if !prefix.contains(&change.key) {
                        continue;
                    }
                    let event = match &change.value {
                        Some(stored) => KvEvent::Put {
                            key: change.key.clone(),
                            value: Versioned {
                                value: stored.value.clone(),
                                version: stored.version,
                            },
                        },
                        None => KvEvent::Delete {
                            key: change.key.clone(),
                        },
                    };
                    if tx.send(Ok(event)).is_err() {
                        return;
                    }
                }
                seen = state.revision;
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
        let (key, value, fence) = (key.to_string(), value.to_vec(), fence.cloned());
        self.inner
            .submit(move |state, _| {
                check_fence(state, fence.as_ref())?;
                check_put(&key, condition, state.kv.get(&key).map(|v| v.version))?;
                let version = state.bump();
                let stored = Stored { value, version };
                state.record(&key, Some(stored.clone()));
                state.kv.insert(key, stored);
                Ok(version)
            })
            .await
    }

    async fn delete(
        &self,
        key: &Path,
        condition: Condition,
        fence: Option<&Grant>,
    ) -> Result<bool> {
        self.check_open()?;
        let (key, fence) = (key.to_string(), fence.cloned());
        self.inner
            .submit(move |state, _| {
                check_fence(state, fence.as_ref())?;
                check_delete(&key, condition, state.kv.get(&key).map(|v| v.version))?;
                if state.kv.remove(&key).is_none() {
                    return Ok(false);
                }
                state.bump();
                state.record(&key, None);
                Ok(true)
            })
            .await
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(poller) = lock(&self.inner.poller).take() {
            poller.abort();
        }
        // Closed first, so whoever sees the candidates vanish knows why.
        self.inner
            .status
            .send_modify(|s| s.state = SessionState::Closed);
        let old = lock(&self.inner.session).take();
        if let Some((id, file)) = old {
            let outcome = self
                .inner
                .submit(move |state, dir| {
                    if state.drop_session(id) {
                        state.bump();
                    }
                    dir.remove_session(id);
                    Ok(())
                })
                .await;
            drop(file);
            outcome?;
        }
        Ok(())
    }
}
