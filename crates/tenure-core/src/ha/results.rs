//! The job result store: the results of finished jobs, dirty until their
//! cleanup is done, then clean.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::layout::last_segment;
use super::record;
use super::JobId;
use crate::backend::Condition;
use crate::checksum::{from_hex, to_hex};
use crate::error::{Error, Result};
use crate::leadership::Leadership;

/// The `store` label of this store's fenced writes (metrics, logs).
const STORE: &str = "job_results";

const KIND: &str = "job_result";

/// The result of a finished job: opaque bytes (a serialized job result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResultEntry {
    /// The job.
    pub job_id: JobId,
    /// The serialized result.
    pub data: Vec<u8>,
}

/// Whether a job's cleanup is still to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResultState {
    /// The job finished; its cleanup has not completed (a new leader redoes it).
    Dirty,
    /// The job finished and everything of it was cleaned up.
    Clean,
}

#[derive(Serialize, Deserialize)]
struct ResultRecord {
    job_id: String,
    state: JobResultState,
    /// Hex of the result.
    result: String,
}

/// The job results of one cluster, at `<cluster>/job_results/<job>`. Results
/// are kept inline (they are small; a larger one than the backend accepts is
/// [`Error::TooLarge`]), and outlive the job's cleanup: the clean entry is
/// what tells a new leader not to recover the job again.
#[derive(Clone)]
pub struct JobResultStore {
    ctx: Arc<Context>,
}

impl fmt::Debug for JobResultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobResultStore")
            .field("cluster_id", &self.ctx.cluster_id)
            .finish()
    }
}

impl JobResultStore {
    pub(crate) fn new(ctx: Arc<Context>) -> Self {
        JobResultStore { ctx }
    }

    async fn read(&self, job: &JobId) -> Result<Option<(ResultRecord, u64)>> {
        let key = self.ctx.layout.result(job);
        let Some(stored) = self.ctx.backend.get(&key).await? else {
            return Ok(None);
        };
        let record = decode(key.as_str(), &stored.value)?;
        if record.job_id != job.as_str() {
            return Err(Error::Corrupted {
                key: key.to_string(),
                reason: format!("holds the result of job {:?}", record.job_id),
            });
        }
        Ok(Some((record, stored.version)))
    }

    /// Records `entry` as dirty, fenced. Fails with [`Error::AlreadyExists`]
    /// if the job already has a result, dirty or clean.
    pub async fn create_dirty(&self, fence: &Leadership, entry: &JobResultEntry) -> Result<()> {
        let key = self.ctx.layout.result(&entry.job_id);
        let value = record::encode(
            KIND,
            &ResultRecord {
                job_id: entry.job_id.to_string(),
                state: JobResultState::Dirty,
                result: to_hex(&entry.data),
            },
        );
        self.ctx
            .put(STORE, fence, &key, &value, Condition::Absent)
            .await?;
        Ok(())
    }

    /// Marks the result of `job` clean, fenced. Idempotent: a clean result
    /// stays clean. Fails with [`Error::NotFound`] if there is no result.
    pub async fn mark_clean(&self, fence: &Leadership, job: &JobId) -> Result<()> {
        self.ctx.check_fence(fence)?;
        let key = self.ctx.layout.result(job);
        loop {
            let Some((mut record, version)) = self.read(job).await? else {
                return Err(Error::NotFound {
                    key: key.to_string(),
                });
            };
            if record.state == JobResultState::Clean {
                return Ok(());
            }
            record.state = JobResultState::Clean;
            let value = record::encode(KIND, &record);
            match self
                .ctx
                .put(STORE, fence, &key, &value, Condition::Version(version))
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The state of the result of `job`, or `None` if it has none.
    pub async fn state(&self, job: &JobId) -> Result<Option<JobResultState>> {
        Ok(self.read(job).await?.map(|(r, _)| r.state))
    }

    /// Whether `job` has a result, dirty or clean.
    pub async fn has_entry(&self, job: &JobId) -> Result<bool> {
        Ok(self.state(job).await?.is_some())
    }

    /// Whether `job` has a dirty result.
    pub async fn has_dirty(&self, job: &JobId) -> Result<bool> {
        Ok(self.state(job).await? == Some(JobResultState::Dirty))
    }

    /// Whether `job` has a clean result.
    pub async fn has_clean(&self, job: &JobId) -> Result<bool> {
        Ok(self.state(job).await? == Some(JobResultState::Clean))
    }

    /// The result of `job`, if any, whatever its state.
    pub async fn get(&self, job: &JobId) -> Result<Option<JobResultEntry>> {
        let key = self.ctx.layout.result(job);
        match self.read(job).await? {
            None => Ok(None),
            Some((record, _)) => Ok(Some(JobResultEntry {
                job_id: job.clone(),
                data: result_bytes(key.as_str(), &record)?,
            })),
        }
    }

    /// Every dirty result, in job id order: the cleanups a new leader must
    /// (re)do.
    pub async fn dirty_results(&self) -> Result<Vec<JobResultEntry>> {
        let prefix = self.ctx.layout.results();
        let mut out = Vec::new();
        for (key, stored) in self.ctx.backend.list(&prefix).await? {
            if key == prefix.as_str() {
                continue;
            }
            let record = decode(&key, &stored.value)?;
            let job = JobId::new(last_segment(&key)).map_err(|e| Error::Corrupted {
                key: key.clone(),
                reason: format!("not a job id: {e}"),
            })?;
            if record.job_id != job.as_str() {
                return Err(Error::Corrupted {
                    key,
                    reason: format!("holds the result of job {:?}", record.job_id),
                });
            }
            if record.state == JobResultState::Dirty {
                out.push(JobResultEntry {
                    data: result_bytes(&key, &record)?,
                    job_id: job,
                });
            }
        }
        Ok(out)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<ResultRecord> {
    record::decode(key, KIND, bytes)
}

fn result_bytes(key: &str, record: &ResultRecord) -> Result<Vec<u8>> {
    from_hex(&record.result).ok_or_else(|| Error::Corrupted {
        key: key.to_owned(),
        reason: "the result is not hex".to_owned(),
    })
}
