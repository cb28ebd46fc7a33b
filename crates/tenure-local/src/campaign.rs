//! The candidate queue of each election: campaign, resign, the leader (the
//! head of the queue), the candidates, and whether a session is alive.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tenure_core::backend::support::check_value_size;
use tenure_core::{Backend, Candidate, Error, Grant, LeaderRecord, Path, Result, SessionId};

use crate::backend::{closed, lock, Inner, LocalBackend, MAX_VALUE_SIZE};
use crate::state::State;

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

pub(crate) fn head(state: &State, election: &str) -> Option<LeaderRecord> {
    state
        .elections
        .get(election)?
        .first()
        .map(|e| LeaderRecord {
            term: e.term,
            value: e.value.clone(),
            session: Some(SessionId(e.session)),
        })
}

impl LocalBackend {
    /// [`Backend::session_alive`]: ours, or listed in the state with its lock held.
    pub(crate) async fn is_session_alive(&self, id: SessionId) -> Result<bool> {
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

    /// [`Backend::campaign`]: queues a candidate and waits until it heads the queue.
    pub(crate) async fn run_campaign(
        &self,
        election: &Path,
        session: SessionId,
        value: &[u8],
    ) -> Result<Grant> {
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

    /// [`Backend::resign`]: removes the candidate of `grant`.
    pub(crate) async fn resign_grant(&self, grant: &Grant) -> Result<()> {
        self.check_open()?;
        let (election, term) = (grant.election.to_string(), grant.term);
        self.inner
            .submit(move |state, _| {
                remove_candidate(state, &election, term);
                Ok(())
            })
            .await
    }

    /// [`Backend::leader`]: the head of the queue.
    pub(crate) async fn read_leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.check_open()?;
        Ok(head(&*self.inner.load()?, election.as_str()))
    }

    /// [`Backend::candidates`]: the queue, in order.
    pub(crate) async fn read_candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
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
}
