//! The execution plan store (Flink's job graph store): the plans of submitted
//! jobs, which a new leader recovers.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::context::Context;
use super::layout::last_segment;
use super::record::{self, StoredState};
use super::JobId;
use crate::backend::{Condition, KvEvent};
use crate::error::{Error, Result};
use crate::leadership::Leadership;

/// The `store` label of this store's fenced writes (metrics, logs).
const STORE: &str = "execution_plans";

const KIND: &str = "execution_plan";

/// A job's execution plan: opaque bytes (a serialized job graph) and its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionPlan {
    /// The job.
    pub job_id: JobId,
    /// The serialized plan.
    pub data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct PlanRecord {
    job_id: String,
    state: StoredState,
}

/// Told about plans other processes add or remove.
pub trait ExecutionPlanListener: Send + Sync + 'static {
    /// A plan was added for `job` by another process.
    fn on_added_execution_plan(&self, job: JobId);
    /// The plan of `job`, known to this store, was removed by another process.
    fn on_removed_execution_plan(&self, job: JobId);
    /// Following the plans hit an error (a corrupted key, say); it goes on.
    fn handle_error(&self, error: &Error);
}

/// The execution plans of one cluster, at `<cluster>/jobgraphs/<job>`.
///
/// Reads need no leadership; every write is fenced by the leadership passed in.
/// Clones share the set of plans this store knows, which is how the listener
/// tells this process's own changes from other processes'.
#[derive(Clone)]
pub struct ExecutionPlanStore {
    ctx: Arc<Context>,
    known: Arc<Mutex<HashSet<JobId>>>,
}

impl fmt::Debug for ExecutionPlanStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionPlanStore")
            .field("cluster_id", &self.ctx.cluster_id)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ExecutionPlanStore {
    pub(crate) fn new(ctx: Arc<Context>) -> Self {
        ExecutionPlanStore {
            ctx,
            known: Arc::default(),
        }
    }

    async fn read(&self, job: &JobId) -> Result<Option<(PlanRecord, u64)>> {
        let key = self.ctx.layout.plan(job);
        let Some(stored) = self.ctx.backend.get(&key).await? else {
            return Ok(None);
        };
        let record: PlanRecord = record::decode(key.as_str(), KIND, &stored.value)?;
        if record.job_id != job.as_str() {
            return Err(Error::Corrupted {
                key: key.to_string(),
                reason: format!("holds the plan of job {:?}", record.job_id),
            });
        }
        if let Some(pointer) = record.state.blob() {
            pointer.check(key.as_str(), job)?;
        }
        Ok(Some((record, stored.version)))
    }

    /// Stores `plan`, replacing the job's earlier plan, fenced by `fence`. The
    /// earlier plan's blob is deleted only after the new pointer is in place. A
    /// stored plan that does not decode is [`Error::Corrupted`] and stays.
    pub async fn put(&self, fence: &Leadership, plan: &ExecutionPlan) -> Result<()> {
        self.ctx.check_fence(fence)?;
        let key = self.ctx.layout.plan(&plan.job_id);
        let previous = self.read(&plan.job_id).await?;
        let state = self
            .ctx
            .store_state(&plan.job_id, "plan", &plan.data)
            .await?;
        let value = record::encode(
            KIND,
            &PlanRecord {
                job_id: plan.job_id.to_string(),
                state: state.clone(),
            },
        );
        let condition = match &previous {
            Some((_, version)) => Condition::Version(*version),
            None => Condition::Absent,
        };
        // Known before the write lands, so the listener takes it for our own.
        let newly_known = lock(&self.known).insert(plan.job_id.clone());
        if let Err(e) = self.ctx.put(STORE, fence, &key, &value, condition).await {
            if newly_known {
                lock(&self.known).remove(&plan.job_id);
            }
            self.ctx.discard_failed(&state, &e).await;
            return Err(e);
        }
        if let Some((old, _)) = previous {
            self.ctx.discard(&old.state).await;
        }
        Ok(())
    }

    /// The plan of `job`, or `None` if there is none.
    pub async fn recover(&self, job: &JobId) -> Result<Option<ExecutionPlan>> {
        let Some((record, _)) = self.read(job).await? else {
            return Ok(None);
        };
        let key = self.ctx.layout.plan(job);
        let data = self
            .ctx
            .load_state(key.as_str(), job, &record.state)
            .await?;
        lock(&self.known).insert(job.clone());
        Ok(Some(ExecutionPlan {
            job_id: job.clone(),
            data,
        }))
    }

    /// The jobs that have a plan, in id order. A key that is not a valid job
    /// id is [`Error::Corrupted`].
    pub async fn job_ids(&self) -> Result<Vec<JobId>> {
        let prefix = self.ctx.layout.plans();
        self.ctx
            .backend
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|(key, _)| key != prefix.as_str())
            .map(|(key, _)| job_of(&key))
            .collect()
    }

    /// Removes the plan of `job` (fenced), then its blob. Removing a plan that
    /// is not there succeeds; a plan that does not decode is removed too (its
    /// blob, if any, is left to the orphan collector).
    pub async fn remove(&self, fence: &Leadership, job: &JobId) -> Result<()> {
        self.ctx.check_fence(fence)?;
        let key = self.ctx.layout.plan(job);
        lock(&self.known).remove(job);
        match self.read(job).await {
            Ok(None) => Ok(()),
            Ok(Some((record, version))) => {
                match self
                    .ctx
                    .delete(STORE, fence, &key, Condition::Version(version))
                    .await
                {
                    Ok(_) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                self.ctx.discard(&record.state).await;
                Ok(())
            }
            Err(Error::Corrupted { .. }) => {
                self.ctx.delete(STORE, fence, &key, Condition::Any).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Calls `listener` for every plan other processes add or remove from now
    /// on, until the handle is stopped or dropped. Plans present now count as
    /// known (recover them with [`job_ids`](Self::job_ids)); so do plans this
    /// store puts or recovers, which are not reported.
    pub async fn start(
        &self,
        listener: Arc<dyn ExecutionPlanListener>,
    ) -> Result<PlanListenerHandle> {
        let prefix = self.ctx.layout.plans();
        // Watch before listing, so no change between the two is missed.
        let events = self.ctx.backend.watch(&prefix).await?;
        let present = self.job_ids().await?;
        lock(&self.known).extend(present);
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut events = Some(events);
            loop {
                let mut stream = match events.take() {
                    Some(s) => s,
                    None => match store.resync(&*listener).await {
                        Ok(s) => s,
                        Err(e) => {
                            listener.handle_error(&e);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                };
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(KvEvent::Put { key, .. }) => match job_of(&key) {
                            Ok(job) => {
                                if lock(&store.known).insert(job.clone()) {
                                    listener.on_added_execution_plan(job);
                                }
                            }
                            Err(e) => listener.handle_error(&e),
                        },
                        Ok(KvEvent::Delete { key }) => match job_of(&key) {
                            Ok(job) => {
                                if lock(&store.known).remove(&job) {
                                    listener.on_removed_execution_plan(job);
                                }
                            }
                            Err(e) => listener.handle_error(&e),
                        },
                        Err(e) => {
                            listener.handle_error(&e);
                            break;
                        }
                    }
                }
            }
        });
        Ok(PlanListenerHandle(Some(task)))
    }

    /// After a watch ended: re-opens it, re-lists, and reports what changed
    /// meanwhile.
    async fn resync(
        &self,
        listener: &dyn ExecutionPlanListener,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<KvEvent>>> {
        let events = self.ctx.backend.watch(&self.ctx.layout.plans()).await?;
        let present: HashSet<JobId> = self.job_ids().await?.into_iter().collect();
        let (added, removed) = {
            let mut known = lock(&self.known);
            let added: Vec<_> = present.difference(&known).cloned().collect();
            let removed: Vec<_> = known.difference(&present).cloned().collect();
            *known = present;
            (added, removed)
        };
        for job in added {
            listener.on_added_execution_plan(job);
        }
        for job in removed {
            listener.on_removed_execution_plan(job);
        }
        Ok(events)
    }
}

fn job_of(key: &str) -> Result<JobId> {
    JobId::new(last_segment(key)).map_err(|e| Error::Corrupted {
        key: key.to_owned(),
        reason: format!("not a job id: {e}"),
    })
}

/// A running [`ExecutionPlanListener`]; dropping it stops the listener.
#[derive(Debug)]
pub struct PlanListenerHandle(Option<JoinHandle<()>>);

impl PlanListenerHandle {
    /// Stops the listener; no callback arrives after this returns.
    pub async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for PlanListenerHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl ExecutionPlanStore {
    /// Forgets `job` (its data was cleaned up by this process).
    pub(crate) fn forget(&self, job: &JobId) {
        lock(&self.known).remove(job);
    }
}
