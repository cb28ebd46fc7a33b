//! The leader watch: the head of one election's queue, yielded after each
//! change the follower gets to see.

use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tenure_core::backend::support;
use tenure_core::{Backend, LeaderRecord, Path, Result, SessionStatus};
use tokio::sync::watch;

use crate::backend::LocalBackend;
use crate::campaign::head;
use crate::poll::Interest;
use crate::state::State;

/// The state of one leader watch (see [`LocalBackend::watch_leader`]).
struct Follow {
    /// The head at the start, yielded first.
    first: Option<Option<LeaderRecord>>,
    last: Option<LeaderRecord>,
    revision: u64,
    name: String,
    latest: watch::Receiver<Arc<State>>,
    status: watch::Receiver<SessionStatus>,
    _interest: Interest,
}

impl LocalBackend {
    /// [`Backend::watch_leader`]: the head now, then after each change of it.
    pub(crate) async fn follow_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        let latest = self.inner.latest.subscribe();
        let state = self.inner.load()?;
        let name = election.to_string();
        let interest = self.inner.interested(&name);
        let last = head(&state, &name);
        // Read by the follower itself, no task: a process may follow
        // thousands of elections. Like the state it follows, it yields the
        // head after each change the follower gets to see.
        let follow = Follow {
            first: Some(last.clone()),
            last,
            revision: state.revision,
            name,
            latest,
            status: self.session(),
            _interest: interest,
        };
        let stream = futures_util::stream::unfold(follow, |mut f| async move {
            if let Some(first) = f.first.take() {
                return Some((Ok(first), f));
            }
            loop {
                tokio::select! {
                    r = f.latest.changed() => if r.is_err() { return None },
                    _ = support::closed(&mut f.status) => return None,
                }
                let state = f.latest.borrow_and_update().clone();
                if state.revision <= f.revision {
                    continue;
                }
                f.revision = state.revision;
                let now = head(&state, &f.name);
                if now != f.last {
                    f.last = now.clone();
                    return Some((Ok(now), f));
                }
            }
        });
        Ok(stream.boxed())
    }
}
