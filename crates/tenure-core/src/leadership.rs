//! A granted leadership: its term, its session id, and the signal that it ended.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backend::{Condition, DynBackend, Grant, Guard, SessionState};
use crate::error::{Error, Result};
use crate::name::Path;

pub use crate::loss::LossReason;

/// The `store` label of writes made through a [`Leadership`] itself.
const STORE: &str = "leadership";

/// Leadership of one election, held from the grant until it ends for any reason.
///
/// Like Trillian's mastership context: act only while [`is_held`](Self::is_held),
/// stop the moment [`token`](Self::token) fires, and make every write that must
/// not outlive leadership a fenced one ([`put`](Self::put), [`delete`](Self::delete),
/// or any [`Backend`](crate::Backend) write with `fence = Some(leadership.grant())`),
/// since a paused process can find out too late. Cloning shares the leadership.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    grant: Grant,
    session_id: Uuid,
    granted_at: Instant,
    token: CancellationToken,
    reason: OnceLock<LossReason>,
    backend: DynBackend,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("election", &self.inner.grant.election)
            .field("term", &self.inner.grant.term)
            .field("session_id", &self.inner.session_id)
            .field("lost", &self.loss_reason())
            .finish()
    }
}

impl Leadership {
    pub(crate) fn new(backend: DynBackend, grant: Grant) -> Self {
        Leadership {
            inner: Arc::new(Inner {
                grant,
                session_id: Uuid::new_v4(),
                granted_at: Instant::now(),
                token: CancellationToken::new(),
                reason: OnceLock::new(),
                backend,
            }),
        }
    }

    /// A copy of this leadership that never learns that it ended: what a
    /// paused process still holds when it resumes after its successor was
    /// granted. The conformance suite writes with it to show the backend
    /// alone rejecting a stale leader, with no in-process check to help.
    #[cfg(feature = "conformance")]
    pub(crate) fn blind_copy(&self) -> Leadership {
        Leadership::new(self.inner.backend.clone(), self.inner.grant.clone())
    }

    /// The fencing token: strictly increasing per election, never reused.
    pub fn term(&self) -> u64 {
        self.inner.grant.term
    }

    /// The leader session id, a UUID unique to this grant.
    pub fn session_id(&self) -> Uuid {
        self.inner.session_id
    }

    /// The election this leadership is of.
    pub fn election(&self) -> &Path {
        &self.inner.grant.election
    }

    /// The backend's grant, to fence writes made directly on the backend.
    pub fn grant(&self) -> &Grant {
        &self.inner.grant
    }

    /// When leadership was granted (local monotonic clock).
    pub fn granted_at(&self) -> Instant {
        self.inner.granted_at
    }

    /// Whether leadership is still held, as far as this process knows. A fenced
    /// write is the only proof; this is the hint to stop early.
    pub fn is_held(&self) -> bool {
        !self.inner.token.is_cancelled()
    }

    /// A token cancelled the moment leadership ends, for any reason. The reason
    /// is set before the token fires, so [`loss_reason`](Self::loss_reason) is
    /// always `Some` once the token is cancelled.
    pub fn token(&self) -> CancellationToken {
        self.inner.token.clone()
    }

    /// Why leadership ended, or `None` while it is held.
    pub fn loss_reason(&self) -> Option<LossReason> {
        self.inner.reason.get().copied()
    }

    /// Waits until leadership ends and says why.
    pub async fn lost(&self) -> LossReason {
        self.inner.token.cancelled().await;
        self.loss_reason().unwrap_or(LossReason::Closed)
    }

    /// Ends leadership with `reason` (the first reason wins). Returns whether this
    /// call ended it.
    pub(crate) fn end(&self, reason: LossReason) -> bool {
        let first = self.inner.reason.set(reason).is_ok();
        if first {
            crate::observe::revoked(self.election(), self.term(), reason);
            self.inner.token.cancel();
        }
        first
    }

    /// Gives leadership up: the token fires first (so this process stops acting),
    /// then the candidate is removed so the next one is granted. If the backend
    /// cannot be reached, the removal goes on in the background (until the
    /// backend or the session answers) and this returns `Ok`; other errors are
    /// returned.
    pub async fn resign(&self) -> Result<()> {
        self.end(LossReason::Resigned);
        match self.inner.backend.resign(&self.inner.grant).await {
            Err(e) if e.is_retryable() => {
                tokio::spawn(release(
                    self.inner.backend.clone(),
                    self.inner.grant.clone(),
                ));
                Ok(())
            }
            other => other,
        }
    }

    /// Writes `value` at `key`, only if this leadership is still current — checked
    /// atomically at the backend. A stale leader gets [`Error::Fenced`] and
    /// nothing changes.
    pub async fn put(&self, key: &Path, value: &[u8]) -> Result<u64> {
        self.put_if(key, value, Condition::Any).await
    }

    /// [`put`](Self::put) with a version condition as well.
    pub async fn put_if(&self, key: &Path, value: &[u8], condition: Condition) -> Result<u64> {
        self.fenced_put(STORE, key, value, condition).await
    }

    /// [`put`](Self::put) of a value that lives only as long as this
    /// leadership's session (see [`Guard::ephemeral`](crate::Guard#structfield.ephemeral)):
    /// for what must vanish when the leader's process does, such as the
    /// address it publishes.
    pub async fn put_ephemeral(&self, key: &Path, value: &[u8]) -> Result<u64> {
        self.fenced_write(STORE, key, value, Condition::Any, true)
            .await
    }

    /// Deletes `key`, only if this leadership is still current.
    pub async fn delete(&self, key: &Path) -> Result<bool> {
        self.fenced_delete(STORE, key, Condition::Any).await
    }

    /// The one path of every write made as leader — a leadership's own and
    /// every HA store's: fail fast if this process knows leadership ended,
    /// then the backend's atomic fenced write, and a rejection counted under
    /// `store`.
    pub(crate) async fn fenced_put(
        &self,
        store: &'static str,
        key: &Path,
        value: &[u8],
        condition: Condition,
    ) -> Result<u64> {
        self.fenced_write(store, key, value, condition, false).await
    }

    async fn fenced_write(
        &self,
        store: &'static str,
        key: &Path,
        value: &[u8],
        condition: Condition,
        ephemeral: bool,
    ) -> Result<u64> {
        self.check_held()?;
        let mut guard = Guard::new(condition, Some(&self.inner.grant));
        guard.ephemeral = ephemeral;
        let written = self.inner.backend.put(key, value, guard).await;
        self.observe(store, written)
    }

    /// Deletes `key` on the same path as [`fenced_put`](Self::fenced_put).
    pub(crate) async fn fenced_delete(
        &self,
        store: &'static str,
        key: &Path,
        condition: Condition,
    ) -> Result<bool> {
        self.check_held()?;
        let deleted = self
            .inner
            .backend
            .delete(key, Guard::new(condition, Some(&self.inner.grant)))
            .await;
        self.observe(store, deleted)
    }

    /// Counts and logs a write the backend fenced off.
    fn observe<T>(&self, store: &'static str, outcome: Result<T>) -> Result<T> {
        if let Err(Error::Fenced { .. }) = &outcome {
            crate::observe::fenced_write_rejected(store, self.election().as_str(), self.term());
        }
        outcome
    }

    /// Fails fast when this process already knows leadership ended; the
    /// backend's fence is still what makes the write safe.
    fn check_held(&self) -> Result<()> {
        match self.loss_reason() {
            None => Ok(()),
            Some(reason) => Err(Error::LeadershipLost { reason }),
        }
    }

    /// Writes with the backend's fence even after this process believes
    /// leadership ended: for tests and demos that show the backend rejecting a
    /// stale leader (a real stale leader does not know it is stale).
    pub async fn put_unchecked(&self, key: &Path, value: &[u8]) -> Result<u64> {
        let written = self
            .inner
            .backend
            .put(key, value, Guard::fenced(&self.inner.grant))
            .await;
        self.observe(STORE, written)
    }
}

/// Removes the candidate of `grant`, retrying while the backend is unreachable,
/// until it is gone or its session is (either way the queue moves on). A
/// candidate left behind would otherwise block the election for as long as the
/// session lives.
pub(crate) async fn release(backend: DynBackend, grant: Grant) {
    let mut status = backend.session();
    let mut backoff = Duration::from_millis(50);
    loop {
        match backend.resign(&grant).await {
            Ok(()) => return,
            Err(e) if e.is_retryable() => {}
            Err(_) => return,
        }
        {
            let s = status.borrow_and_update();
            if s.id != grant.session || matches!(s.state, SessionState::Lost | SessionState::Closed)
            {
                return;
            }
        }
        tokio::select! {
            r = status.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
