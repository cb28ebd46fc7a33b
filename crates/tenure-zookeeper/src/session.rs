//! The process-wide session: one ZooKeeper session shared by every election of
//! the process, its state published with a renew deadline, and a new session
//! opened when the server expires the old one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tenure_core::{Error, Result, SessionId, SessionState, SessionStatus};
use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client::{Acl, Acls, Client, Permission, SessionState as ZkState};

use crate::config::ZkConfig;
use crate::error::map_err;

/// With digest credentials: the creator (any session with the same
/// credentials) may do everything, anyone may read.
static DIGEST_ACLS: [Acl; 2] = [
    Acl::new_const(Permission::ALL, "auth", ""),
    Acl::new_const(Permission::READ, "world", "anyone"),
];

/// What the backend, its session task and its watch tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ZkConfig,
    /// The client of the current session; replaced when a session expires.
    client: RwLock<Option<Client>>,
    pub(crate) status: watch::Sender<SessionStatus>,
    /// The session timeout the server granted, in milliseconds.
    negotiated_ms: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        config: ZkConfig,
        client: Client,
        status: watch::Sender<SessionStatus>,
    ) -> Self {
        let negotiated_ms = AtomicU64::new(client.session_timeout().as_millis() as u64);
        Shared {
            config,
            client: RwLock::new(Some(client)),
            status,
            negotiated_ms,
        }
    }

    /// The client of the current session.
    pub(crate) fn client(&self) -> Result<Client> {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::Closed {
                what: "ZooKeeper backend",
            })
    }

    /// The client of a live session: if the current one has expired, waits
    /// (within the connect timeout) for its replacement.
    pub(crate) async fn live_client(&self) -> Result<Client> {
        let client = self.client()?;
        if !client.state().is_terminated() {
            return Ok(client);
        }
        let old = session_id(&client);
        drop(client);
        let mut status = self.status.subscribe();
        let replaced = async {
            loop {
                let s = *status.borrow_and_update();
                if s.state == SessionState::Closed {
                    return self.client();
                }
                if s.id != old {
                    return self.client();
                }
                if status.changed().await.is_err() {
                    return self.client();
                }
            }
        };
        tokio::time::timeout(self.config.connect_timeout * 2, replaced)
            .await
            .map_err(|_| {
                Error::unavailable(
                    "the ZooKeeper session expired and no new one could be opened yet",
                )
            })?
    }

    /// Makes `client` the current one, unless the backend was closed meanwhile.
    fn replace(&self, client: Client) -> bool {
        let mut current = self.client.write().unwrap_or_else(|e| e.into_inner());
        if current.is_none() {
            return false;
        }
        self.negotiated_ms.store(
            client.session_timeout().as_millis() as u64,
            Ordering::Relaxed,
        );
        *current = Some(client);
        true
    }

    pub(crate) fn negotiated(&self) -> Duration {
        Duration::from_millis(self.negotiated_ms.load(Ordering::Relaxed))
    }

    /// The ACLs of every node tenure creates.
    pub(crate) fn acls(&self) -> Acls<'static> {
        acls_for(&self.config)
    }

    /// Drops the client so that, once in-flight work lets go of its handles,
    /// the session is closed (removing its candidates). Returns a watcher of
    /// the closing session's state.
    pub(crate) fn close_client(&self) -> Option<zookeeper_client::StateWatcher> {
        let client = self
            .client
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        client.map(|c| c.state_watcher())
    }
}

/// The ACLs of every node created with `config`: with digest credentials, the
/// creator may do everything and anyone may read; without, anyone may.
pub(crate) fn acls_for(config: &ZkConfig) -> Acls<'static> {
    if config.digest.is_some() {
        Acls::new(&DIGEST_ACLS)
    } else {
        Acls::anyone_all()
    }
}

/// Opens a session: connects within the connect timeout, creates the chroot if
/// missing, and returns a client rooted there.
pub(crate) async fn open(config: &ZkConfig) -> Result<Client> {
    let mut connector = Client::connector()
        .with_session_timeout(config.session_timeout)
        .with_fail_eagerly();
    if let Some((user, password)) = &config.digest {
        connector =
            connector.with_auth("digest", format!("{user}:{}", password.expose()).as_bytes());
    }
    let servers = config.connect_string();
    let client = tokio::time::timeout(config.connect_timeout, connector.connect(&servers))
        .await
        .map_err(|_| {
            Error::unavailable(format!(
                "cannot reach ZooKeeper at {servers} within {:?}",
                config.connect_timeout
            ))
        })?
        .map_err(|e| match e {
            zookeeper_client::Error::NoHosts | zookeeper_client::Error::Timeout => {
                Error::unavailable(format!("cannot reach ZooKeeper at {servers}: {e}"))
            }
            other => map_err(other),
        })?;
    let root = crate::keys::node(&config.chroot);
    let options = zookeeper_client::CreateMode::Persistent.with_acls(acls_for(config));
    client.mkdir(&root, &options).await.map_err(map_err)?;
    let negotiated = client.session_timeout();
    if negotiated != config.session_timeout {
        tracing::warn!(
            asked = ?config.session_timeout,
            negotiated = ?negotiated,
            "the ZooKeeper server changed the session timeout (its minSessionTimeout/maxSessionTimeout); using the negotiated one"
        );
    }
    client
        .chroot(root.clone())
        .map_err(|_| Error::invalid("chroot", &root, "is not a valid ZooKeeper path"))
}

pub(crate) fn session_id(client: &Client) -> SessionId {
    SessionId(client.session_id().0 as u64)
}

/// How long a lost connection may take to say whether the session survived
/// before the session is published as suspended.
pub(crate) const SUSPEND_GRACE: Duration = Duration::from_millis(100);

/// The instant before which the server cannot have expired a session that
/// answered a request sent at `sent`: it counts the timeout from the last
/// packet it received. The margin absorbs clock-rate and scheduling slack.
pub(crate) fn deadline(sent: Instant, timeout: Duration) -> Instant {
    let margin = (timeout / 6).max(Duration::from_millis(300));
    sent + timeout.saturating_sub(margin)
}

/// Runs the session until `stop` fires or is dropped: a heartbeat every third
/// of the timeout keeps the renew deadline current, connection states are
/// published, and an expired session is replaced by a new one.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let Ok(client) = shared.client() else { return };
        let id = session_id(&client);
        if !serve(&shared, &client, &mut stop).await {
            return;
        }
        drop(client);
        shared.status.send_modify(|s| {
            if s.id == id {
                s.state = SessionState::Lost;
            }
        });
        tracing::warn!(session = %id, "ZooKeeper session lost");
        // Open a new session, retrying until it works or we are stopped.
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return;
            }
            let sent = Instant::now();
            match open(&shared.config).await {
                Ok(client) => {
                    let id = session_id(&client);
                    let timeout = client.session_timeout();
                    if !shared.replace(client) {
                        return;
                    }
                    shared.status.send_replace(SessionStatus {
                        id,
                        state: SessionState::Connected,
                        renew_deadline: Some(deadline(sent, timeout)),
                    });
                    tracing::info!(session = %id, ?timeout, "ZooKeeper session opened");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "opening a ZooKeeper session failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        r = stop.changed() => if r.is_err() { return },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Serves one session. Returns false when stopped, true when it expired.
async fn serve(shared: &Shared, client: &Client, stop: &mut watch::Receiver<bool>) -> bool {
    let timeout = client.session_timeout();
    let interval = timeout / 3;
    let mut states = client.state_watcher();
    let id = session_id(client);
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            state = states.changed() => match state {
                ZkState::Disconnected => {
                    // A server closes the connection of a session it expired
                    // or closed, and the reconnect says so within milliseconds:
                    // give it a moment, so that a loss is reported as lost
                    // rather than first as suspended.
                    tokio::select! {
                        state = states.changed() => match state {
                            ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                                wait = Duration::ZERO;
                                continue;
                            }
                            ZkState::Expired | ZkState::AuthFailed => return true,
                            ZkState::Closed => return false,
                            ZkState::Disconnected => {}
                        },
                        _ = tokio::time::sleep(SUSPEND_GRACE) => {}
                        r = stop.changed() => if r.is_err() || *stop.borrow() {
                            return false;
                        },
                    }
                    suspend(shared);
                    // Try soon: the heartbeat re-confirms after a reconnect.
                    wait = Duration::from_millis(50);
                    continue;
                }
                ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                    wait = Duration::ZERO;
                    continue;
                }
                ZkState::Expired | ZkState::AuthFailed => return true,
                ZkState::Closed => return false,
            },
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    return false;
                }
                continue;
            }
        }
        if client.state().is_terminated() {
            return !matches!(client.state(), ZkState::Closed);
        }
        let sent = Instant::now();
        match tokio::time::timeout(interval, client.check_stat("/")).await {
            Ok(Ok(_)) => {
                wait = interval;
                // Always notify: monitors sleep until the deadline they saw.
                shared.status.send_if_modified(|s| {
                    if s.id != id {
                        return false;
                    }
                    s.state = SessionState::Connected;
                    s.renew_deadline = Some(deadline(sent, timeout));
                    true
                });
            }
            Ok(Err(zookeeper_client::Error::SessionExpired)) => return true,
            Ok(Err(zookeeper_client::Error::ClientClosed)) => return false,
            _ => {
                suspend(shared);
                wait = (interval / 4).max(Duration::from_millis(50));
            }
        }
    }
}

fn suspend(shared: &Shared) {
    shared.status.send_if_modified(|s| {
        let changed = s.state == SessionState::Connected;
        if changed {
            s.state = SessionState::Suspended;
        }
        changed
    });
}
