//! What every store of one cluster shares: the backend, the layout, the blob
//! store, and the fenced writes.

use std::fmt;

use super::blob::BlobStore;
use super::layout::HaLayout;
use super::record::StoredState;
use super::JobId;
use crate::backend::{Condition, DynBackend};
use crate::error::{Error, Result};
use crate::leadership::{Leadership, LossReason};
use crate::name::{Id, Path};

pub(crate) struct Context {
    pub(crate) backend: DynBackend,
    pub(crate) cluster_id: Id,
    pub(crate) layout: HaLayout,
    pub(crate) blobs: Option<BlobStore>,
    /// State larger than this goes to the blob store (when there is one).
    pub(crate) threshold: usize,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("cluster_id", &self.cluster_id)
            .field("blobs", &self.blobs.as_ref().map(BlobStore::root))
            .field("threshold", &self.threshold)
            .finish()
    }
}

/// Whether a failed write certainly changed nothing, so the blob written for it
/// is referenced by no one and can go. An unreachable backend may have applied
/// the write after all: its blob stays, for the orphan collector.
pub(crate) fn certainly_not_written(error: &Error) -> bool {
    matches!(
        error,
        Error::Fenced { .. }
            | Error::LeadershipLost { .. }
            | Error::AlreadyExists { .. }
            | Error::VersionMismatch { .. }
            | Error::TooLarge { .. }
            | Error::InvalidInput { .. }
            | Error::NotFound { .. }
    )
}

impl Context {
    /// Refuses a fence of another cluster, and one this process already knows
    /// has ended; the backend's fence is what makes the write safe.
    pub(crate) fn check_fence(&self, fence: &Leadership) -> Result<()> {
        self.check_cluster(fence)?;
        match fence.loss_reason() {
            None => Ok(()),
            Some(reason) => Err(Error::LeadershipLost { reason }),
        }
    }

    /// Refuses a fence that is not a leadership of this cluster's elections.
    fn check_cluster(&self, fence: &Leadership) -> Result<()> {
        if !self.layout.leaders().contains(fence.election().as_str()) {
            return Err(Error::invalid(
                "fence",
                fence.election().as_str(),
                format!(
                    "must be a leadership of an election of cluster {}",
                    self.cluster_id
                ),
            ));
        }
        Ok(())
    }

    /// What a leader's read that failed should report: a retryable failure
    /// while the leader's session has ended (expired on the server, even if
    /// the leadership has not noticed yet) is [`Error::LeadershipLost`], since
    /// retrying cannot succeed; anything else is returned as it is.
    pub(crate) async fn read_failed(&self, fence: &Leadership, error: Error) -> Error {
        if !error.is_retryable() {
            return error;
        }
        if let Some(reason) = fence.loss_reason() {
            return Error::LeadershipLost { reason };
        }
        match self.backend.session_alive(fence.grant().session).await {
            Ok(false) => Error::LeadershipLost {
                reason: LossReason::SessionLost,
            },
            _ => error,
        }
    }

    /// Writes `value` at `key` if `condition` holds and `fence` still leads,
    /// atomically at the backend, on the leadership's one fenced-write path;
    /// a rejection is counted under `store`.
    pub(crate) async fn put(
        &self,
        store: &'static str,
        fence: &Leadership,
        key: &Path,
        value: &[u8],
        condition: Condition,
    ) -> Result<u64> {
        self.check_cluster(fence)?;
        fence.fenced_put(store, key, value, condition).await
    }

    /// Deletes `key` if `condition` holds and `fence` still leads.
    pub(crate) async fn delete(
        &self,
        store: &'static str,
        fence: &Leadership,
        key: &Path,
        condition: Condition,
    ) -> Result<bool> {
        self.check_cluster(fence)?;
        fence.fenced_delete(store, key, condition).await
    }

    /// Keeps `data` inline, or in the blob store when it is larger than the
    /// threshold and there is a blob store.
    pub(crate) async fn store_state(
        &self,
        job: &JobId,
        kind: &'static str,
        data: &[u8],
    ) -> Result<StoredState> {
        match &self.blobs {
            Some(blobs) if data.len() > self.threshold => Ok(StoredState::Blob(
                blobs.put(job, kind, data.to_vec()).await?,
            )),
            _ => Ok(StoredState::inline(data)),
        }
    }

    /// The bytes of state read from `key`, checked against their checksum.
    pub(crate) async fn load_state(
        &self,
        key: &str,
        job: &JobId,
        state: &StoredState,
    ) -> Result<Vec<u8>> {
        if let Some(data) = state.inline_bytes(key)? {
            return Ok(data);
        }
        let pointer = state.blob().expect("not inline, so a blob");
        pointer.check(key, job)?;
        let Some(blobs) = &self.blobs else {
            return Err(Error::invalid(
                "blob_dir",
                "",
                format!("{key} points into the blob store; configure one to read it"),
            ));
        };
        blobs.get(pointer).await
    }

    /// Deletes the blob behind `state`, if any, once no pointer references it.
    /// A failure leaves an orphan for the collector, so it is only logged.
    pub(crate) async fn discard(&self, state: &StoredState) {
        if let (Some(blobs), Some(pointer)) = (&self.blobs, state.blob()) {
            if let Err(e) = blobs.delete(pointer).await {
                tracing::warn!(blob = pointer.name(), error = %e, "could not delete a blob; the orphan collector will");
            }
        }
    }

    /// Discards the blob of a write that failed, when the failure proves the
    /// write did not land.
    pub(crate) async fn discard_failed(&self, state: &StoredState, error: &Error) {
        if certainly_not_written(error) {
            self.discard(state).await;
        }
    }
}
