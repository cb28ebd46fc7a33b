//! Following an election's leader: one watch per election, shared by the
//! process's followers.

use etcd_client::{EventType, WatchOptions};
use futures_util::stream::BoxStream;
use tenure_core::backend::support::closed;
use tenure_core::{Backend, Error, LeaderRecord, Path, Result, SessionStatus};
use tokio::sync::watch;

use crate::backend::EtcdBackend;
use crate::keys::Keys;

impl EtcdBackend {
    /// [`Backend::watch_leader`]: the shared leader watch of `election`.
    pub(crate) async fn follow_leader(
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

    /// The backend's own leader watch of `election`, shared by
    /// [`Backend::watch_leader`] through
    /// [`LeaderWatches`](tenure_core::backend::support::LeaderWatches).
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
            .map(|kv| {
                (
                    kv.create_revision(),
                    kv.key().to_vec(),
                    kv.value().to_vec(),
                    kv.lease(),
                )
            })
            .collect();
        candidates.sort_unstable_by_key(|c| c.0);
        // Collecting may reuse the response's larger buffer in place.
        candidates.shrink_to_fit();
        let head = |c: &Candidates| {
            c.first().map(|(rev, _, value, lease)| LeaderRecord {
                term: *rev as u64,
                value: value.clone(),
                session: Some(tenure_core::SessionId(*lease as u64)),
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
                            let candidate = (
                                kv.create_revision(),
                                kv.key().to_vec(),
                                kv.value().to_vec(),
                                kv.lease(),
                            );
                            match f.candidates.binary_search_by_key(&candidate.0, |c| c.0) {
                                Ok(at) => f.candidates[at] = candidate,
                                Err(at) => f.candidates.insert(at, candidate),
                            }
                        }
                        EventType::Delete => f.candidates.retain(|(_, k, _, _)| k != kv.key()),
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
/// Create revision, key, value and lease of each candidate.
type Candidates = Vec<(i64, Vec<u8>, Vec<u8>, i64)>;

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
