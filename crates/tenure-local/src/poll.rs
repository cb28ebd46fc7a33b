//! The poll loop: sees other processes' changes to the state file, and the dead
//! leaders of the elections someone in this process waits on or watches.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tenure_core::Result;
use tokio::sync::oneshot;

use crate::backend::{lock, Inner};
use crate::writer::Job;

/// Keeps an election in the set whose dead leaders are looked for.
pub(crate) struct Interest {
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

impl Inner {
    /// Counts `election` among those polled for dead leaders until the returned
    /// [`Interest`] is dropped.
    pub(crate) fn interested(self: &Arc<Self>, election: &str) -> Interest {
        *lock(&self.interest).entry(election.to_owned()).or_default() += 1;
        Interest {
            inner: Arc::downgrade(self),
            election: election.to_owned(),
        }
    }

    /// Watches the directory for other processes' changes and for dead leaders of
    /// the elections this process cares about. Ends when the backend is dropped.
    pub(crate) async fn poll_loop(inner: std::sync::Weak<Inner>, interval: Duration) {
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
}
