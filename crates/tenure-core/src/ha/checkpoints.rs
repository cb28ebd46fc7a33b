//! The completed checkpoint store of one job: the latest N checkpoints, which
//! a new leader restores from.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::layout::last_segment;
use super::record::{self, StoredState};
use super::{JobId, JobStatus};
use crate::backend::Condition;
use crate::error::{Error, Result};
use crate::leadership::Leadership;

/// The `store` label of this store's fenced writes (metrics, logs).
const STORE: &str = "checkpoints";

const KIND: &str = "checkpoint";

/// A completed checkpoint: its id and its metadata (opaque bytes, e.g. a
/// serialized checkpoint with its state handles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// The checkpoint id, from the job's [`CheckpointIdCounter`](super::CheckpointIdCounter).
    pub checkpoint_id: u64,
    /// The metadata.
    pub data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointRecord {
    job_id: String,
    checkpoint_id: u64,
    state: StoredState,
}

/// The completed checkpoints of one job, at
/// `<cluster>/jobs/<job>/checkpoints/<id>`, keeping the latest
/// [`retained`](Self::retained) of them.
#[derive(Clone)]
pub struct CompletedCheckpointStore {
    ctx: Arc<Context>,
    job: JobId,
    retained: usize,
}

impl fmt::Debug for CompletedCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletedCheckpointStore")
            .field("cluster_id", &self.ctx.cluster_id)
            .field("job", &self.job)
            .field("retained", &self.retained)
            .finish()
    }
}

/// A stored checkpoint record, decoded, with the version it was read at.
struct Listed {
    key: String,
    version: u64,
    record: CheckpointRecord,
}

impl CompletedCheckpointStore {
    pub(crate) fn new(ctx: Arc<Context>, job: JobId, retained: usize) -> Result<Self> {
        if retained == 0 {
            return Err(Error::invalid(
                "retained_checkpoints",
                "0",
                "must be at least 1: the latest checkpoint is always kept",
            ));
        }
        Ok(CompletedCheckpointStore { ctx, job, retained })
    }

    /// The job.
    pub fn job_id(&self) -> &JobId {
        &self.job
    }

    /// How many checkpoints are kept.
    pub fn retained(&self) -> usize {
        self.retained
    }

    /// Every stored checkpoint record, oldest first. Any record that does not
    /// decode fails the whole listing with [`Error::Corrupted`].
    async fn list(&self) -> Result<Vec<Listed>> {
        let prefix = self.ctx.layout.checkpoints(&self.job);
        let mut out = Vec::new();
        for (key, stored) in self.ctx.backend.list(&prefix).await? {
            if key == prefix.as_str() {
                continue;
            }
            let record: CheckpointRecord = record::decode(&key, KIND, &stored.value)?;
            let named = last_segment(&key).parse::<u64>().ok();
            if record.job_id != self.job.as_str() || named != Some(record.checkpoint_id) {
                return Err(Error::Corrupted {
                    key,
                    reason: format!(
                        "holds checkpoint {} of job {:?}",
                        record.checkpoint_id, record.job_id
                    ),
                });
            }
            if let Some(pointer) = record.state.blob() {
                pointer.check(&key, &self.job)?;
            }
            out.push(Listed {
                key,
                version: stored.version,
                record,
            });
        }
        out.sort_by_key(|l| l.record.checkpoint_id);
        Ok(out)
    }

    /// Adds `checkpoint`, fenced by `fence`, then drops the oldest checkpoints
    /// beyond the retained number — only after the new one is durable, so a
    /// crash in between leaves one too many, never one too few.
    ///
    /// The id must be greater than every stored checkpoint's id
    /// ([`Error::InvalidInput`] otherwise). If any stored checkpoint does not
    /// decode, nothing is written and the error names its key. When dropping an
    /// old checkpoint fails, the new one is stored and the error is returned;
    /// the next `add` drops it.
    pub async fn add(&self, fence: &Leadership, checkpoint: &CompletedCheckpoint) -> Result<()> {
        self.ctx.check_fence(fence)?;
        let existing = match self.list().await {
            Ok(existing) => existing,
            Err(e) => return Err(self.ctx.read_failed(fence, e).await),
        };
        if let Some(latest) = existing.last() {
            if checkpoint.checkpoint_id <= latest.record.checkpoint_id {
                return Err(Error::invalid(
                    "checkpoint_id",
                    &checkpoint.checkpoint_id.to_string(),
                    format!(
                        "must be greater than the latest stored checkpoint {}",
                        latest.record.checkpoint_id
                    ),
                ));
            }
        }
        let key = self
            .ctx
            .layout
            .checkpoint(&self.job, checkpoint.checkpoint_id);
        let state = self
            .ctx
            .store_state(&self.job, "checkpoint", &checkpoint.data)
            .await?;
        let value = record::encode(
            KIND,
            &CheckpointRecord {
                job_id: self.job.to_string(),
                checkpoint_id: checkpoint.checkpoint_id,
                state: state.clone(),
            },
        );
        if let Err(e) = self
            .ctx
            .put(STORE, fence, &key, &value, Condition::Absent)
            .await
        {
            self.ctx.discard_failed(&state, &e).await;
            return Err(e);
        }
        // The new checkpoint is durable: now the oldest may go.
        let excess = (existing.len() + 1).saturating_sub(self.retained);
        for old in existing.into_iter().take(excess) {
            self.drop_one(fence, old).await?;
        }
        Ok(())
    }

    /// Removes one checkpoint: pointer first (fenced, at the version read),
    /// then its blob.
    async fn drop_one(&self, fence: &Leadership, old: Listed) -> Result<()> {
        let key = crate::name::Path::parse("key", &old.key)?;
        match self
            .ctx
            .delete(STORE, fence, &key, Condition::Version(old.version))
            .await
        {
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.ctx.discard(&old.record.state).await;
        Ok(())
    }

    /// The ids of the stored checkpoints, oldest first.
    pub async fn checkpoint_ids(&self) -> Result<Vec<u64>> {
        Ok(self
            .list()
            .await?
            .iter()
            .map(|l| l.record.checkpoint_id)
            .collect())
    }

    /// The latest checkpoint, or `None` if there is none.
    pub async fn latest(&self) -> Result<Option<CompletedCheckpoint>> {
        let Some(latest) = self.list().await?.pop() else {
            return Ok(None);
        };
        Ok(Some(self.load(latest).await?))
    }

    /// Every stored checkpoint, oldest first.
    pub async fn all(&self) -> Result<Vec<CompletedCheckpoint>> {
        let mut out = Vec::new();
        for listed in self.list().await? {
            out.push(self.load(listed).await?);
        }
        Ok(out)
    }

    async fn load(&self, listed: Listed) -> Result<CompletedCheckpoint> {
        let data = self
            .ctx
            .load_state(&listed.key, &self.job, &listed.record.state)
            .await?;
        Ok(CompletedCheckpoint {
            checkpoint_id: listed.record.checkpoint_id,
            data,
        })
    }

    /// Shuts the store down for a job in `status`: if the job reached a
    /// globally terminal state, every checkpoint is discarded (pointers first,
    /// fenced, then blobs); otherwise everything is kept for recovery.
    /// Returns whether it discarded.
    pub async fn shutdown(&self, fence: &Leadership, status: JobStatus) -> Result<bool> {
        if !status.is_globally_terminal() {
            return Ok(false);
        }
        self.ctx.check_fence(fence)?;
        for listed in self.list().await? {
            self.drop_one(fence, listed).await?;
        }
        Ok(true)
    }
}
