//! The checkpoint id counter of one job: ids never handed out twice, across
//! leader changes and restarts.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::record;
use super::{JobId, JobStatus};
use crate::backend::Condition;
use crate::error::{Error, Result};
use crate::leadership::Leadership;

/// The `store` label of this store's fenced writes (metrics, logs).
const STORE: &str = "checkpoint_id_counter";

const KIND: &str = "checkpoint_id_counter";

/// The first checkpoint id of a job (Flink's `INITIAL_CHECKPOINT_ID`).
pub const INITIAL_CHECKPOINT_ID: u64 = 1;

#[derive(Serialize, Deserialize)]
struct CounterRecord {
    next: u64,
}

/// The checkpoint id counter of one job, at
/// `<cluster>/jobs/<job>/checkpoint_id_counter`.
///
/// [`get_and_increment`](Self::get_and_increment) reads the counter and writes
/// it back incremented with a write conditional on the version read *and*
/// fenced by the leadership, in a loop: two leaders can never both get the
/// same id, and a stale leader gets nothing.
#[derive(Clone)]
pub struct CheckpointIdCounter {
    ctx: Arc<Context>,
    job: JobId,
}

impl fmt::Debug for CheckpointIdCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointIdCounter")
            .field("cluster_id", &self.ctx.cluster_id)
            .field("job", &self.job)
            .finish()
    }
}

impl CheckpointIdCounter {
    pub(crate) fn new(ctx: Arc<Context>, job: JobId) -> Self {
        CheckpointIdCounter { ctx, job }
    }

    /// The job.
    pub fn job_id(&self) -> &JobId {
        &self.job
    }

    /// The next value and the version it was read at (`None`: never written).
    async fn read(&self) -> Result<(u64, Option<u64>)> {
        let key = self.ctx.layout.counter(&self.job);
        match self.ctx.backend.get(&key).await? {
            None => Ok((INITIAL_CHECKPOINT_ID, None)),
            Some(stored) => {
                let record: CounterRecord = record::decode(key.as_str(), KIND, &stored.value)?;
                Ok((record.next, Some(stored.version)))
            }
        }
    }

    /// The id the next [`get_and_increment`](Self::get_and_increment) hands
    /// out.
    pub async fn get(&self) -> Result<u64> {
        Ok(self.read().await?.0)
    }

    /// Hands out the next id and advances the counter, atomically and fenced.
    pub async fn get_and_increment(&self, fence: &Leadership) -> Result<u64> {
        self.update(fence, |current| {
            let next = current.checked_add(1).ok_or_else(|| {
                Error::invalid(
                    "checkpoint_id",
                    &current.to_string(),
                    "the counter is exhausted",
                )
            })?;
            Ok((current, next))
        })
        .await
    }

    /// Sets the next id to `next`. The counter never goes back: a value below
    /// the current one would hand out an id twice and is refused with
    /// [`Error::InvalidInput`].
    pub async fn set(&self, fence: &Leadership, next: u64) -> Result<()> {
        self.update(fence, |current| {
            if next < current {
                return Err(Error::invalid(
                    "checkpoint_id",
                    &next.to_string(),
                    format!("must not be below the counter's current value {current}: ids are never handed out twice"),
                ));
            }
            Ok(((), next))
        })
        .await
    }

    /// Read, compute, write at the version read and fenced; again on a race.
    async fn update<T>(
        &self,
        fence: &Leadership,
        step: impl Fn(u64) -> Result<(T, u64)>,
    ) -> Result<T> {
        self.ctx.check_fence(fence)?;
        let key = self.ctx.layout.counter(&self.job);
        loop {
            let (current, version) = match self.read().await {
                Ok(read) => read,
                Err(e) => return Err(self.ctx.read_failed(fence, e).await),
            };
            let (out, next) = step(current)?;
            let value = record::encode(KIND, &CounterRecord { next });
            let condition = match version {
                Some(v) => Condition::Version(v),
                None => Condition::Absent,
            };
            match self.ctx.put(STORE, fence, &key, &value, condition).await {
                Ok(_) => return Ok(out),
                // Someone else moved the counter between our read and write.
                Err(Error::VersionMismatch { .. } | Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Shuts the counter down for a job in `status`: removed (fenced) if the
    /// job reached a globally terminal state, kept otherwise. Returns whether
    /// it was removed.
    pub async fn shutdown(&self, fence: &Leadership, status: JobStatus) -> Result<bool> {
        if !status.is_globally_terminal() {
            return Ok(false);
        }
        let key = self.ctx.layout.counter(&self.job);
        self.ctx.delete(STORE, fence, &key, Condition::Any).await?;
        Ok(true)
    }
}
