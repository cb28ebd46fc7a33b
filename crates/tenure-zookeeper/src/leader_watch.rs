//! The leader watch: one stream per election, shared by the process's
//! followers and driven by its reader, that reads the head of the queue again
//! whenever the election's candidates change.

use std::sync::Arc;

use futures_util::stream::BoxStream;
use tenure_core::backend::support::closed;
use tenure_core::{Backend, Error, LeaderRecord, Path, Result, SessionStatus};
use tokio::sync::watch;
use zookeeper_client::{Client, EventType};

use crate::backend::{ZkBackend, WRITE_ATTEMPTS};
use crate::error::map_err;
use crate::keys;
use crate::session::Shared;

/// The head of the election at `dir`, and a watcher that fires when its
/// candidates change (or, while the election has no node, when it is made).
async fn watch_head(
    client: &Client,
    dir: &str,
) -> Result<(Option<LeaderRecord>, zookeeper_client::OneshotWatcher)> {
    for _ in 0..WRITE_ATTEMPTS {
        match client.list_and_watch_children(dir).await {
            Ok((children, watcher)) => {
                let queue = keys::sorted_candidates(children);
                let Some((_, first)) = queue.first() else {
                    return Ok((None, watcher));
                };
                match client.get_data(&format!("{dir}/{first}")).await {
                    Ok((value, stat)) => {
                        let head = LeaderRecord {
                            term: stat.czxid as u64,
                            value,
                            session: Some(tenure_core::SessionId(stat.ephemeral_owner as u64)),
                        };
                        return Ok((Some(head), watcher));
                    }
                    // It left between the two reads: look again.
                    Err(zookeeper_client::Error::NoNode) => continue,
                    Err(e) => return Err(map_err(e)),
                }
            }
            Err(zookeeper_client::Error::NoNode) => {
                match client.check_and_watch_stat(dir).await.map_err(map_err)? {
                    (None, watcher) => return Ok((None, watcher)),
                    // Made in between: list it.
                    (Some(_), _) => continue,
                }
            }
            Err(e) => return Err(map_err(e)),
        }
    }
    Err(Error::unavailable(
        "the election's queue kept changing while it was read; retry",
    ))
}

impl ZkBackend {
    /// [`Backend::watch_leader`]: the leader of `election`, then each change.
    pub(crate) async fn follow_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        // One watch per election, however many followers this process has.
        self.leader_watches()
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
        let dir = keys::node(election);
        let (first, watcher) = watch_head(&self.shared().live_client().await?, &dir).await?;
        // A stream driven by its reader, not a task and a channel of its own:
        // a process may hold thousands of elections, each followed once.
        let state = Follow {
            watcher: Some(watcher),
            last: first.clone(),
            status: self.session(),
            shared: Arc::downgrade(self.shared()),
            dir,
        };
        let rest = futures_util::stream::unfold(state, |mut f| async move {
            loop {
                let watcher = f.watcher.take()?;
                let event = tokio::select! {
                    event = watcher.changed() => event,
                    _ = closed(&mut f.status) => return None,
                };
                if event.event_type == EventType::Session && event.session_state.is_terminated() {
                    let ended =
                        Error::unavailable("the ZooKeeper session of the leader watch ended");
                    return Some((Err(ended), f));
                }
                // Hold the client only while reading, never while waiting, so
                // that closing the backend closes its session.
                let client = f.shared.upgrade().and_then(|s| s.client().ok())?;
                // Boxed: the stream, kept for as long as the election is
                // followed, would otherwise hold room for the reads always.
                let watched = Box::pin(watch_head(&client, &f.dir)).await;
                drop(client);
                let (now, watcher) = match watched {
                    Ok(found) => found,
                    Err(e) => return Some((Err(e), f)),
                };
                f.watcher = Some(watcher);
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

/// The state of one leader watch between events.
struct Follow<W> {
    /// Taken while waiting; `None` once the stream has ended.
    watcher: Option<W>,
    last: Option<LeaderRecord>,
    status: watch::Receiver<SessionStatus>,
    shared: std::sync::Weak<Shared>,
    dir: String,
}
