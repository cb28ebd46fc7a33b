//! The etcd backend itself: its client, its lease and the [`Backend`]
//! contract, whose methods live beside the state they work on (the candidate
//! queue, key-value data, the leader watch).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tenure_core::backend::support::LeaderWatches;
use tenure_core::{
    Backend, Candidate, Capabilities, Error, Grant, Guard, KvEvent, LeaderRecord, Path, Result,
    SessionId, SessionState, SessionStatus, Versioned,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::EtcdConfig;
use crate::endpoints::Endpoints;
use crate::error::{lease_not_found, map_err};
use crate::keys::Keys;
use crate::watch::WatchHub;

/// The largest value, in bytes (etcd's default request limit is 1.5 MiB).
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;

/// One process's client of etcd, with its own lease as its session.
#[derive(Clone)]
pub struct EtcdBackend {
    pub(crate) inner: Arc<Inner>,
}

/// Candidate writes and queue reads in flight at once, per client.
const REQUEST_SLOTS: usize = 64;

pub(crate) struct Inner {
    /// Shared, not cloned, by campaigns and their guards: a client is a few
    /// kilobytes, and a process may campaign for thousands of elections.
    pub(crate) client: Arc<Client>,
    pub(crate) keys: Keys,
    config: EtcdConfig,
    pub(crate) status: watch::Sender<SessionStatus>,
    stop: watch::Sender<bool>,
    /// Asks the session task to check the lease now (a call found it gone).
    pub(crate) nudge: Arc<tokio::sync::Notify>,
    /// Every watch of this process, over one stream.
    pub(crate) hub: WatchHub,
    /// One leader watch per election, shared by this process's followers.
    pub(crate) leader_watches: LeaderWatches,
    /// Bounds the candidate writes and queue reads in flight at once: a
    /// process campaigning for thousands of elections together would
    /// otherwise hold thousands of requests' futures and buffers at a time,
    /// and the heap stays fragmented by them long after.
    pub(crate) request_slots: Arc<tokio::sync::Semaphore>,
    /// The candidates this process was granted, by key: the lease and the
    /// create revision (the term). etcd's election recipe names a candidate
    /// after its lease, so a campaign on the same lease finds an earlier
    /// leadership's candidate if its removal has not gone through yet; it must
    /// not take it over, or that term would be granted twice.
    pub(crate) granted: std::sync::Mutex<std::collections::HashMap<String, (i64, i64)>>,
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

impl EtcdBackend {
    /// Connects and opens the process's session (its lease).
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        Self::open_boxed(config).await
    }

    /// `open`'s future, boxed in this crate. An `async fn`'s future is compiled
    /// again in every crate that awaits it, together with all the gRPC client
    /// code it reaches: unboxed, the `tenure` facade and the `tenure` binary
    /// each compiled the etcd connect path again (seconds of a release build).
    #[inline(never)]
    fn open_boxed(config: EtcdConfig) -> BoxFuture<'static, Result<Self>> {
        Box::pin(Self::open(config))
    }

    async fn open(config: EtcdConfig) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &config.user {
            options = options.with_user(user.clone(), password.expose());
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
            options = crate::tls::apply(options, tls)?;
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
                granted: std::sync::Mutex::default(),
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

    pub(crate) fn kv(&self) -> etcd_client::KvClient {
        self.inner.client.kv_client()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if *self.inner.stop.borrow() {
            Err(Error::Closed {
                what: "etcd backend",
            })
        } else {
            Ok(())
        }
    }

    /// [`Backend::session_alive`]: asks the server about the lease, once for
    /// all concurrent askers.
    async fn is_session_alive(&self, id: SessionId) -> Result<bool> {
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

    /// [`Backend::close`]: stops the session and revokes its lease.
    async fn shut_down(&self) -> Result<()> {
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
