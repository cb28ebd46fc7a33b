//! The running jobs registry (Flink's older interface): per job, whether it is
//! pending, running or done, so a new leader does not run a finished job again.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::record;
use super::JobId;
use crate::backend::Condition;
use crate::error::{Error, Result};
use crate::leadership::Leadership;

/// The `store` label of this store's fenced writes (metrics, logs).
const STORE: &str = "running_jobs";

const KIND: &str = "running_job";

/// The scheduling status of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobSchedulingStatus {
    /// Not started yet, or unknown.
    Pending,
    /// Running.
    Running,
    /// Finished: do not run it again.
    Done,
}

#[derive(Serialize, Deserialize)]
struct StatusRecord {
    status: JobSchedulingStatus,
}

/// The running jobs registry of one cluster, at
/// `<cluster>/jobs/<job>/running_job_registry` (so per-job cleanup removes it).
#[derive(Clone)]
pub struct RunningJobsRegistry {
    ctx: Arc<Context>,
}

impl fmt::Debug for RunningJobsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningJobsRegistry")
            .field("cluster_id", &self.ctx.cluster_id)
            .finish()
    }
}

impl RunningJobsRegistry {
    pub(crate) fn new(ctx: Arc<Context>) -> Self {
        RunningJobsRegistry { ctx }
    }

    async fn read(&self, job: &JobId) -> Result<Option<(JobSchedulingStatus, u64)>> {
        let key = self.ctx.layout.running(job);
        let Some(stored) = self.ctx.backend.get(&key).await? else {
            return Ok(None);
        };
        let record: StatusRecord = record::decode(key.as_str(), KIND, &stored.value)?;
        Ok(Some((record.status, stored.version)))
    }

    /// The status of `job`: [`Pending`](JobSchedulingStatus::Pending) when
    /// unknown.
    pub async fn get(&self, job: &JobId) -> Result<JobSchedulingStatus> {
        Ok(self
            .read(job)
            .await?
            .map_or(JobSchedulingStatus::Pending, |(s, _)| s))
    }

    /// Marks `job` running, fenced.
    pub async fn set_running(&self, fence: &Leadership, job: &JobId) -> Result<()> {
        self.set(fence, job, JobSchedulingStatus::Running).await
    }

    /// Marks `job` done, fenced.
    pub async fn set_finished(&self, fence: &Leadership, job: &JobId) -> Result<()> {
        self.set(fence, job, JobSchedulingStatus::Done).await
    }

    /// Writes at the version read, so a record that does not decode is
    /// reported ([`Error::Corrupted`]) instead of overwritten.
    async fn set(
        &self,
        fence: &Leadership,
        job: &JobId,
        status: JobSchedulingStatus,
    ) -> Result<()> {
        self.ctx.check_fence(fence)?;
        let key = self.ctx.layout.running(job);
        let value = record::encode(KIND, &StatusRecord { status });
        loop {
            let condition = match self.read(job).await? {
                Some((_, version)) => Condition::Version(version),
                None => Condition::Absent,
            };
            match self.ctx.put(STORE, fence, &key, &value, condition).await {
                Ok(_) => return Ok(()),
                Err(Error::VersionMismatch { .. } | Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets `job` (fenced); it reads as pending again. Idempotent.
    pub async fn clear(&self, fence: &Leadership, job: &JobId) -> Result<()> {
        let key = self.ctx.layout.running(job);
        self.ctx.delete(STORE, fence, &key, Condition::Any).await?;
        Ok(())
    }
}
