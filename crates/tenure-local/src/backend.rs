//! The `local://` backend: [`LocalBackend`], its session, and the [`Backend`]
//! contract over one directory. Each method of the contract is done in the
//! module of its part (`campaign`, `kv`, `leader_watch`); the `writer` thread and
//! the `poll` loop run beside.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tenure_core::{
    Backend, BackendUrl, Candidate, Capabilities, Error, Grant, Guard, KvEvent, LeaderRecord, Path,
    Result, SessionId, SessionState, SessionStatus, Versioned,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::dir::Dir;
use crate::state::State;
use crate::writer::{writer, Job};

/// How often a process looks for changes made by other processes and for dead
/// leaders it waits on, by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The largest value, in bytes.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;

/// One process's client of a `local://` directory, with its own session.
///
/// Sessions rest on an exclusive `flock` held for the life of the session: when
/// the process dies, even by SIGKILL, the kernel releases the lock and the next
/// candidate is granted at once. A paused (SIGSTOP) process keeps its lock, and
/// so its leadership: it is not dead, and nobody else can act meanwhile.
#[derive(Clone)]
pub struct LocalBackend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) dir: Arc<Dir>,
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    /// Our session: its id and the open, locked session file.
    pub(crate) session: Mutex<Option<(u64, File)>>,
    status: watch::Sender<SessionStatus>,
    /// The latest state known to this process, for waiters and watchers.
    pub(crate) latest: watch::Sender<Arc<State>>,
    /// The state file as last read, keyed by its header line, to skip
    /// re-reading an unchanged file.
    cache: Mutex<Option<(Vec<u8>, Arc<State>)>>,
    /// Elections someone here waits on or watches: their dead leaders are looked
    /// for on every poll.
    pub(crate) interest: Mutex<HashMap<String, usize>>,
    pub(crate) closed: AtomicBool,
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn closed() -> Error {
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
        Self::open_boxed(path.as_ref().to_owned(), poll).await
    }

    /// `open_inner`'s future, boxed in this crate: an `async fn`'s future (and
    /// what it spawns) is compiled again in every crate that awaits it, so
    /// unboxed the `tenure` facade and the `tenure` binary each compiled it again.
    #[inline(never)]
    fn open_boxed(path: PathBuf, poll: Duration) -> BoxFuture<'static, Result<Self>> {
        Box::pin(Self::open_inner(path, poll))
    }

    async fn open_inner(path: PathBuf, poll: Duration) -> Result<Self> {
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
        let poller = tokio::spawn(Inner::poll_loop(
            Arc::downgrade(&backend.inner),
            poll_interval_or(poll),
        ));
        *lock(&backend.inner.poller) = Some(poller);
        Ok(backend)
    }

    /// Opens the backend of a `local:///absolute/path[?poll=5ms]` URL.
    pub async fn connect(url: &BackendUrl) -> Result<Self> {
        url.check_scheme_and_options("local", &["poll"])?;
        url.check_no_hosts(
            "local URLs have no host: write local:///absolute/path (three slashes)",
        )?;
        if !url.path().starts_with('/') {
            return Err(Error::invalid(
                "url",
                url.path(),
                "local URLs need an absolute path: local:///absolute/path",
            ));
        }
        let poll = url
            .duration_option("poll")?
            .unwrap_or(DEFAULT_POLL_INTERVAL);
        Self::open_with(url.path(), poll).await
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

    pub(crate) fn current_session(&self) -> Option<u64> {
        lock(&self.inner.session).as_ref().map(|(id, _)| *id)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// [`Backend::close`]: ends the session and stops polling.
    async fn shut_down(&self) -> Result<()> {
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

fn poll_interval_or(poll: Duration) -> Duration {
    poll.max(Duration::from_millis(1))
}

impl Inner {
    /// Runs `job` on the writer thread, under the directory lock, and waits until
    /// its change is durable.
    pub(crate) async fn submit<T: Send + 'static>(
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
    pub(crate) fn submit_detached(&self, job: impl FnOnce(&mut State, &Dir) + Send + 'static) {
        let boxed: Job = Box::new(move |state, dir| {
            job(state, dir);
            Box::new(|_| {})
        });
        let _ = self.jobs.send(boxed);
    }

    /// The current state: re-read only if the file changed.
    pub(crate) fn load(&self) -> Result<Arc<State>> {
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
}

#[async_trait]
impl Backend for LocalBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("local")
            .with_durable(true)
            .with_max_value_size(MAX_VALUE_SIZE)
    }

    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.subscribe()
    }

    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        self.is_session_alive(id).await
    }

    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant> {
        self.run_campaign(election, session, value).await
    }

    async fn resign(&self, grant: &Grant) -> Result<()> {
        self.resign_grant(grant).await
    }

    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.read_leader(election).await
    }

    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        self.read_candidates(election).await
    }

    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.follow_leader(election).await
    }

    async fn get(&self, key: &Path) -> Result<Option<Versioned>> {
        self.get_value(key).await
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.list_values(prefix).await
    }

    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.watch_values(prefix).await
    }

    async fn put(&self, key: &Path, value: &[u8], guard: Guard<'_>) -> Result<u64> {
        self.put_value(key, value, guard).await
    }

    async fn delete(&self, key: &Path, guard: Guard<'_>) -> Result<bool> {
        self.delete_value(key, guard).await
    }

    async fn close(&self) -> Result<()> {
        self.shut_down().await
    }
}
