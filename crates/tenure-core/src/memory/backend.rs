//! One client of a [`MemoryCluster`]: a simulated process with one session,
//! and the [`Backend`] implementation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::support::{channel_stream, check_delete, check_put, check_value_size, queue};
use crate::backend::{
    Backend, Candidate, Capabilities, Grant, Guard, KvEvent, LeaderRecord, SessionId, SessionState,
    SessionStatus, Versioned,
};
use crate::error::{Error, Result};
use crate::name::Path;

use super::server::{Entry, MemoryCluster, Server};

/// One client of a [`MemoryCluster`]: a simulated process with one session.
///
/// Cloning gives another handle to the same client (same session).
#[derive(Clone)]
pub struct MemoryBackend {
    pub(super) cluster: MemoryCluster,
    pub(super) client: Arc<Client>,
}

pub(super) struct Client {
    pub(super) id: u64,
    pub(super) status: watch::Sender<SessionStatus>,
    pub(super) link: Mutex<Link>,
    pub(super) ttl: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Link {
    Connected,
    /// Cut off from the server; the server keeps the session.
    Suspended,
    /// Cut off; the server expires the session once the TTL has run out. Each
    /// partition has its own number, so a timer of an earlier, healed partition
    /// cannot expire the session during a later one.
    Partitioned(u64),
    Closed,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("session", &self.client.status.borrow().id)
            .field("link", &self.link())
            .field("ttl", &self.client.ttl)
            .finish()
    }
}

impl MemoryBackend {
    /// The cluster this client talks to (to make more clients of it).
    pub fn cluster(&self) -> &MemoryCluster {
        &self.cluster
    }

    fn link(&self) -> Link {
        *self.lock_link()
    }

    fn lock_link(&self) -> MutexGuard<'_, Link> {
        self.client.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session_id(&self) -> u64 {
        self.client.status.borrow().id.0
    }

    /// The server side of every call: fails unless the client can reach it.
    fn server(&self) -> Result<MutexGuard<'_, Server>> {
        match self.link() {
            Link::Connected => Ok(self.cluster.lock()),
            Link::Closed => Err(Error::Closed {
                what: "memory backend",
            }),
            Link::Suspended | Link::Partitioned(_) => Err(Error::unavailable(
                "memory client is cut off from its cluster",
            )),
        }
    }

    /// Expires this client's session on the server now, as if its TTL ran out:
    /// its candidates are removed, it sees `Lost`, and (while connected) a new
    /// session is opened at once.
    pub fn expire_session(&self) {
        let old = self.session_id();
        self.cluster.lock().expire(old);
        if *self.lock_link() == Link::Connected {
            self.replace_session(old);
        }
    }

    /// Cuts the client off from the server without the server noticing: calls
    /// fail as unavailable and the session is `Suspended` with a renew deadline
    /// (the client cannot tell), but it stays alive on the server until
    /// [`heal`](Self::heal) or [`expire_session`](Self::expire_session).
    pub fn suspend(&self) {
        self.cut_off(false);
    }

    /// Cuts the client off from the server as a network partition would: the
    /// session is `Suspended` with a renew deadline, and the server expires it once
    /// the TTL has run out (on tokio's clock, so paused-time tests can advance it).
    /// Must be called inside a tokio runtime.
    pub fn partition(&self) {
        let Some(generation) = self.cut_off(true) else {
            return;
        };
        let session = self.session_id();
        let this = self.clone();
        let expires = Instant::now() + self.client.ttl;
        tokio::spawn(async move {
            tokio::time::sleep_until(expires).await;
            if *this.lock_link() == Link::Partitioned(generation) && this.session_id() == session {
                this.cluster.lock().expire(session);
            }
        });
    }

    /// Cuts the client off; returns the partition's number if `partitioned`.
    fn cut_off(&self, partitioned: bool) -> Option<u64> {
        static GENERATIONS: AtomicU64 = AtomicU64::new(0);
        let mut link = self.lock_link();
        let was = *link;
        if was == Link::Closed {
            return None;
        }
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        *link = if partitioned {
            Link::Partitioned(generation)
        } else {
            Link::Suspended
        };
        // A cut-off client hears nothing more from the server.
        self.cluster
            .lock()
            .drop_watchers(self.client.id, Some(cut_off_error));
        // The client cannot know whether the server will keep its session, so
        // either way it must stop leading before a TTL could run out — counted
        // from when it was first cut off, never pushed later.
        let ttl = self.client.ttl;
        let deadline = Instant::now() + ttl - ttl / 5;
        self.client.status.send_modify(|s| {
            s.state = SessionState::Suspended;
            if was == Link::Connected || s.renew_deadline.is_none() {
                s.renew_deadline = Some(deadline);
            }
        });
        partitioned.then_some(generation)
    }

    /// Reconnects a suspended or partitioned client. If the server expired its
    /// session meanwhile, the client sees `Lost` and then a new session.
    pub fn heal(&self) {
        let old = {
            let mut link = self.lock_link();
            if matches!(*link, Link::Closed | Link::Connected) {
                return;
            }
            *link = Link::Connected;
            self.session_id()
        };
        let alive = self.cluster.lock().live.contains(&old);
        if alive {
            self.client.status.send_modify(|s| {
                s.state = SessionState::Connected;
                s.renew_deadline = None;
            });
        } else {
            self.replace_session(old);
        }
    }

    fn replace_session(&self, old: u64) {
        self.client.status.send_modify(|s| {
            if s.id.0 == old {
                s.state = SessionState::Lost;
            }
        });
        let new = self.cluster.lock().open_session();
        self.client.status.send_replace(SessionStatus {
            id: SessionId(new),
            state: SessionState::Connected,
            renew_deadline: None,
        });
    }
}

/// Removes a waiting candidate whose campaign future was dropped.
struct CandidateGuard<'a> {
    cluster: &'a MemoryCluster,
    election: &'a Path,
    term: u64,
    armed: bool,
}

impl Drop for CandidateGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cluster
                .lock()
                .remove_candidate(self.election, self.term);
        }
    }
}

fn cut_off_error() -> Error {
    Error::unavailable("memory client is cut off from its cluster")
}

#[async_trait]
impl Backend for MemoryBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("memory").with_ttl_sessions(true)
    }

    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.client.status.subscribe()
    }

    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        Ok(self.server()?.live.contains(&id.0))
    }

    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant> {
        check_value_size(value, self.capabilities().max_value_size)?;
        let expired = || Error::SessionExpired { session: session.0 };
        let term = {
            let mut server = self.server()?;
            if self.session_id() != session.0 || !server.live.contains(&session.0) {
                return Err(expired());
            }
            let term = server.bump();
            let state = server.elections.entry(election.clone()).or_default();
            // Most queues hold one candidate: do not reserve room for four.
            if state.queue.capacity() == 0 {
                state.queue.reserve_exact(1);
            }
            state.queue.push(Entry {
                term,
                session: session.0,
                value: value.to_vec(),
            });
            state.notify();
            term
        };
        let mut guard = CandidateGuard {
            cluster: &self.cluster,
            election,
            term,
            armed: true,
        };
        let mut status = self.session();
        loop {
            let mut changed = {
                let mut server = self.cluster.lock();
                let state = server.elections.get(election);
                let position = state.and_then(|s| s.queue.iter().position(|e| e.term == term));
                match position {
                    // Our candidate is gone: the server expired the session, or
                    // someone deleted it. Never grant a candidate that does not exist.
                    None => {
                        guard.armed = false;
                        return Err(expired());
                    }
                    Some(0) if self.link() == Link::Connected => {
                        guard.armed = false;
                        return Ok(Grant {
                            election: election.clone(),
                            term,
                            session,
                            key: term.to_string(),
                        });
                    }
                    Some(_) => server
                        .elections
                        .get_mut(election)
                        .expect("the queue holds our candidate")
                        .changed
                        .get_or_insert_with(|| watch::channel(()).0)
                        .subscribe(),
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                _ = status.changed() => {
                    let s = *status.borrow_and_update();
                    if s.id != session || matches!(s.state, SessionState::Lost | SessionState::Closed) {
                        // The guard removes the candidate (if the server has not).
                        return Err(expired());
                    }
                }
            }
        }
    }

    async fn resign(&self, grant: &Grant) -> Result<()> {
        self.server()?.remove_candidate(&grant.election, grant.term);
        Ok(())
    }

    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        Ok(self
            .server()?
            .elections
            .get(election)
            .and_then(|e| e.head()))
    }

    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        Ok(self
            .server()?
            .elections
            .get(election)
            .map(|e| {
                e.queue
                    .iter()
                    .map(|c| Candidate {
                        term: c.term,
                        value: c.value.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        let (tx, rx) = queue();
        let mut server = self.server()?;
        let state = server.elections.entry(election.clone()).or_default();
        // Current value first, then changes: both under the lock, so nothing is
        // missed or reordered in between.
        let _ = tx.send(Ok(state.head()));
        state.leader_watchers.push((self.client.id, tx));
        Ok(channel_stream(rx))
    }

    async fn get(&self, key: &Path) -> Result<Option<Versioned>> {
        Ok(self.server()?.kv.get(key.as_str()).cloned())
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        let server = self.server()?;
        Ok(server
            .kv
            .range(prefix.as_str().to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .filter(|(k, _)| prefix.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        let (tx, rx) = queue();
        self.server()?
            .kv_watchers
            .push((self.client.id, prefix.clone(), tx));
        Ok(channel_stream(rx))
    }

    async fn put(&self, key: &Path, value: &[u8], guard: Guard<'_>) -> Result<u64> {
        check_value_size(value, self.capabilities().max_value_size)?;
        let mut server = self.server()?;
        server.check_fence(guard.fence)?;
        check_put(key.as_str(), guard.condition, server.version(key))?;
        let version = server.bump();
        let stored = Versioned {
            value: value.to_vec(),
            version,
            owner: guard.ephemeral.then(|| SessionId(self.session_id())),
        };
        server.kv.insert(key.to_string(), stored.clone());
        server.publish(KvEvent::Put {
            key: key.to_string(),
            value: stored,
        });
        Ok(version)
    }

    async fn delete(&self, key: &Path, guard: Guard<'_>) -> Result<bool> {
        let mut server = self.server()?;
        server.check_fence(guard.fence)?;
        check_delete(key.as_str(), guard.condition, server.version(key))?;
        if server.kv.remove(key.as_str()).is_none() {
            return Ok(false);
        }
        server.bump();
        server.publish(KvEvent::Delete {
            key: key.to_string(),
        });
        Ok(true)
    }

    async fn close(&self) -> Result<()> {
        if std::mem::replace(&mut *self.lock_link(), Link::Closed) == Link::Closed {
            return Ok(());
        }
        let session = self.session_id();
        // Closed first, so whoever sees the candidates vanish knows why.
        self.client.status.send_modify(|s| {
            s.state = SessionState::Closed;
            s.renew_deadline = None;
        });
        let mut server = self.cluster.lock();
        server.expire(session);
        server.drop_watchers(self.client.id, None);
        Ok(())
    }
}
