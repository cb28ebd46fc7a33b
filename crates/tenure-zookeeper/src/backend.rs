//! The [`Backend`] contract over ZooKeeper: Curator's LeaderLatch layout for
//! elections, persistent znodes for values, `multi` for fenced writes, and one
//! session per process.
//!
//! This file holds [`ZkBackend`] itself: its shared state, connecting and
//! closing, and the contract's methods, which hand over to the candidate queue
//! (`campaign`), values and fenced writes (`kv`) and the leader watch
//! (`leader_watch`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tenure_core::backend::support::LeaderWatches;
use tenure_core::{
    Backend, Candidate, Capabilities, Error, Grant, Guard, KvEvent, Layout, LeaderRecord, Path,
    Result, SessionId, SessionState, SessionStatus, Versioned,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client::Client;

use crate::config::ZkConfig;
use crate::error::map_err;
use crate::session::{self, session_id, Shared};

/// The largest value, in bytes (ZooKeeper's default `jute.maxbuffer` is
/// 1 MiB for a whole request, path and header included).
pub const MAX_VALUE_SIZE: usize = 1_000_000;

/// How often a write is retried when concurrent changes keep moving the ground
/// under it (a parent deleted, a node created in between).
pub(crate) const WRITE_ATTEMPTS: usize = 16;

/// One process's client of ZooKeeper, with one ZooKeeper session as its
/// session.
#[derive(Clone)]
pub struct ZkBackend {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// One leader watch per election, shared by this process's followers.
    leader_watches: LeaderWatches,
    /// Bounds the candidate creates in flight at once: a process campaigning
    /// for thousands of elections together would otherwise hold thousands of
    /// requests' futures at a time, and the heap stays fragmented by them.
    create_slots: Arc<tokio::sync::Semaphore>,
    session_task: Mutex<Option<JoinHandle<()>>>,
}

/// Candidate creates in flight at once, per client.
const CREATE_SLOTS: usize = 256;

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped without close: stop the session task and the watches, so the
        // last client handle goes and the session is closed.
        self.stop.send_replace(true);
        let _ = self.shared.close_client();
        self.shared.status.send_modify(|s| {
            s.state = SessionState::Closed;
            s.renew_deadline = None;
        });
    }
}

impl fmt::Debug for ZkBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkBackend")
            .field("config", &self.inner.shared.config)
            .field("session", &*self.inner.shared.status.borrow())
            .field(
                "negotiated_session_timeout",
                &self.inner.shared.negotiated(),
            )
            .finish()
    }
}

impl ZkBackend {
    /// Connects and opens the process's session.
    pub async fn connect(config: ZkConfig) -> Result<Self> {
        Self::open_boxed(config).await
    }

    /// `open`'s future, boxed in this crate: an `async fn`'s future (and what it
    /// spawns) is compiled again in every crate that awaits it, so unboxed the
    /// `tenure` facade and the `tenure` binary each compiled it again.
    #[inline(never)]
    fn open_boxed(config: ZkConfig) -> BoxFuture<'static, Result<Self>> {
        Box::pin(Self::open(config))
    }

    async fn open(config: ZkConfig) -> Result<Self> {
        let sent = tokio::time::Instant::now();
        let client = session::open(&config).await?;
        let id = session_id(&client);
        let timeout = client.session_timeout();
        let (status, _) = watch::channel(SessionStatus {
            id,
            state: SessionState::Connected,
            renew_deadline: Some(session::deadline(sent, timeout)),
        });
        tracing::info!(session = %id, ?timeout, "ZooKeeper session opened");
        let shared = Arc::new(Shared::new(config, client, status));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(session::run(shared.clone(), stop_rx));
        Ok(ZkBackend {
            inner: Arc::new(Inner {
                shared,
                stop,
                leader_watches: LeaderWatches::new(),
                create_slots: Arc::new(tokio::sync::Semaphore::new(CREATE_SLOTS)),
                session_task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Connects to the ZooKeeper named by a `zk://` URL.
    pub async fn from_url(url: &tenure_core::BackendUrl) -> Result<Self> {
        Self::connect(ZkConfig::from_url(url)?).await
    }

    /// The configuration this backend was made with.
    pub fn config(&self) -> &ZkConfig {
        &self.inner.shared.config
    }

    /// The session timeout the server granted: what the configured one became
    /// within the server's `minSessionTimeout`..`maxSessionTimeout`. The renew
    /// deadline and crash failover follow this value.
    pub fn negotiated_session_timeout(&self) -> Duration {
        self.inner.shared.negotiated()
    }

    /// How this client stores values ([`ZkConfig::with_layout`]).
    pub fn layout(&self) -> Layout {
        self.inner.shared.config.layout
    }

    /// The ZooKeeper client of the current session (rooted at the chroot), for
    /// operations tenure does not wrap.
    pub fn client(&self) -> Result<Client> {
        self.inner.shared.client()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Bounds the candidate creates in flight at once.
    pub(crate) fn create_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.create_slots
    }

    /// One leader watch per election, shared by this process's followers.
    pub(crate) fn leader_watches(&self) -> &LeaderWatches {
        &self.inner.leader_watches
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if *self.inner.stop.borrow() {
            Err(Error::Closed {
                what: "ZooKeeper backend",
            })
        } else {
            Ok(())
        }
    }

    /// [`Backend::session_alive`]: asks the server whether session `id` is
    /// still alive.
    async fn is_session_alive(&self, id: SessionId) -> Result<bool> {
        self.check_open()?;
        let current = *self.shared().status.borrow();
        if current.id != id || current.state == SessionState::Lost {
            return Ok(false);
        }
        let client = self.shared().client()?;
        if session_id(&client) != id {
            return Ok(false);
        }
        // Any request answered on the session proves the server still holds it.
        let ask = client.check_stat("/");
        match tokio::time::timeout(self.shared().negotiated(), ask).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(zookeeper_client::Error::SessionExpired)) => Ok(false),
            Ok(Err(e)) => Err(map_err(e)),
            Err(_) => Err(Error::unavailable(
                "ZooKeeper did not answer whether the session is alive",
            )),
        }
    }

    /// [`Backend::close`]: stops the session task and closes the session.
    async fn shut_down(&self) -> Result<()> {
        if self.inner.stop.send_replace(true) {
            return Ok(());
        }
        // Closed first, so whoever sees the candidates vanish knows why.
        self.shared().status.send_modify(|s| {
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
            let _ = task.await;
        }
        // Dropping the last client handle closes the session on the server,
        // which removes every candidate of this process at once.
        if let Some(mut states) = self.shared().close_client() {
            let closing = async {
                while !states.peek_state().is_terminated() {
                    states.changed().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for ZkBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("zk")
            .with_durable(true)
            .with_ttl_sessions(true)
            .with_max_value_size(MAX_VALUE_SIZE)
            .with_layout(self.layout())
    }

    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.shared().status.subscribe()
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
