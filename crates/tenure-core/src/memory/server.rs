//! The in-process "server": sessions, election queues and keys behind one
//! lock, so every change is linearized; and [`MemoryCluster`], the handle
//! every client holds to it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::backend::support::{check_queue_fence, QueueSender};
use crate::backend::{Grant, KvEvent, LeaderRecord, SessionId, Versioned};
use crate::error::{Error, Result};
use crate::name::Path;

type Sender<T> = QueueSender<Result<T>>;

/// An in-process coordination "server" shared by any number of clients.
#[derive(Clone, Default)]
pub struct MemoryCluster {
    pub(super) shared: Arc<Mutex<Server>>,
}

impl fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = self.lock();
        f.debug_struct("MemoryCluster")
            .field("revision", &server.revision)
            .field("live_sessions", &server.live.len())
            .field("elections", &server.elections.len())
            .field("keys", &server.kv.len())
            .finish()
    }
}

impl MemoryCluster {
    pub(super) fn lock(&self) -> MutexGuard<'_, Server> {
        // The lock is never held across an await or a user callback, so a poisoned
        // lock means a bug in this file; keep serving rather than cascade panics.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub(super) struct Server {
    /// Bumped by every change; terms and versions are revisions, so they only grow.
    pub(super) revision: u64,
    /// Session ids handed out so far; sessions are never reused.
    pub(super) next_session: u64,
    /// Client ids handed out so far.
    pub(super) next_client: u64,
    /// Sessions the server considers alive.
    pub(super) live: HashSet<u64>,
    pub(super) elections: HashMap<Path, ElectionState>,
    pub(super) kv: BTreeMap<String, Versioned>,
    /// Watchers of key prefixes, with the client that opened them.
    pub(super) kv_watchers: Vec<(u64, Path, Sender<KvEvent>)>,
}

#[derive(Default)]
pub(super) struct ElectionState {
    pub(super) queue: Vec<Entry>,
    /// Wakes waiting campaigns on any change of the queue; made when the
    /// first campaign has to wait (most elections never need it).
    pub(super) changed: Option<watch::Sender<()>>,
    /// Watchers of the leader, with the client that opened them.
    pub(super) leader_watchers: Vec<(u64, Sender<Option<LeaderRecord>>)>,
    /// The leader last sent to watchers, so only changes are sent.
    pub(super) announced: Option<LeaderRecord>,
}

pub(super) struct Entry {
    pub(super) term: u64,
    pub(super) session: u64,
    pub(super) value: Vec<u8>,
}

impl ElectionState {
    pub(super) fn head(&self) -> Option<LeaderRecord> {
        self.queue.first().map(|e| LeaderRecord {
            term: e.term,
            value: e.value.clone(),
            session: Some(SessionId(e.session)),
        })
    }

    /// Wakes campaigns and tells leader watchers, in the order changes happen
    /// (we hold the server lock, so the order is the linearization order).
    pub(super) fn notify(&mut self) {
        if let Some(changed) = &self.changed {
            changed.send_replace(());
        }
        let head = self.head();
        if head != self.announced {
            self.leader_watchers
                .retain(|(_, tx)| tx.send(Ok(head.clone())).is_ok());
            self.announced = head;
        }
    }
}

impl Server {
    pub(super) fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// Removes every candidate and ephemeral value of `session` and forgets
    /// the session.
    pub(super) fn expire(&mut self, session: u64) {
        if !self.live.remove(&session) {
            return;
        }
        let owned: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, v)| v.owner == Some(SessionId(session)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            self.kv.remove(&key);
            self.bump();
            self.publish(KvEvent::Delete { key });
        }
        for election in self.elections.values_mut() {
            let before = election.queue.len();
            election.queue.retain(|e| e.session != session);
            if election.queue.len() != before {
                election.notify();
            }
        }
        self.elections.retain(|_, e| {
            !e.queue.is_empty() || e.leader_watchers.iter().any(|(_, tx)| !tx.is_closed())
        });
    }

    pub(super) fn open_session(&mut self) -> u64 {
        self.next_session += 1;
        self.live.insert(self.next_session);
        self.next_session
    }

    pub(super) fn remove_candidate(&mut self, election: &Path, term: u64) -> bool {
        let Some(state) = self.elections.get_mut(election) else {
            return false;
        };
        let before = state.queue.len();
        state.queue.retain(|e| e.term != term);
        let removed = state.queue.len() != before;
        if removed {
            state.notify();
        }
        self.prune(election);
        removed
    }

    /// Forgets an election nobody campaigns in or watches, so names used once
    /// do not accumulate.
    pub(super) fn prune(&mut self, election: &Path) {
        if self.elections.get(election).is_some_and(|e| {
            e.queue.is_empty() && e.leader_watchers.iter().all(|(_, tx)| tx.is_closed())
        }) {
            self.elections.remove(election);
        }
    }

    /// Ends the watches a client opened: a cut-off client hears nothing more
    /// from the server (its streams end with `error`, if given), a closed one
    /// neither.
    pub(super) fn drop_watchers(&mut self, client: u64, error: Option<fn() -> Error>) {
        fn keep<T>(owner: u64, tx: &Sender<T>, client: u64, error: Option<fn() -> Error>) -> bool {
            if owner != client {
                return true;
            }
            if let Some(error) = error {
                let _ = tx.send(Err(error()));
            }
            false
        }
        self.kv_watchers
            .retain(|(owner, _, tx)| keep(*owner, tx, client, error));
        for election in self.elections.values_mut() {
            election
                .leader_watchers
                .retain(|(owner, tx)| keep(*owner, tx, client, error));
        }
    }

    pub(super) fn check_fence(&self, fence: Option<&Grant>) -> Result<()> {
        check_queue_fence(
            fence,
            |election| {
                let head = self.elections.get(election)?.queue.first()?;
                Some((head.term, head.session))
            },
            |session| self.live.contains(&session),
        )
    }

    pub(super) fn version(&self, key: &Path) -> Option<u64> {
        self.kv.get(key.as_str()).map(|v| v.version)
    }

    pub(super) fn publish(&mut self, event: KvEvent) {
        self.kv_watchers.retain(|(_, prefix, tx)| {
            !prefix.contains(event.key()) || tx.send(Ok(event.clone())).is_ok()
        });
    }
}
