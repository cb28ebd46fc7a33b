//! `HaServices`: everything a cluster needs to survive the loss of its leader,
//! over any backend, and the standalone variant for non-HA setups.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::blob::BlobStore;
use super::checkpoints::CompletedCheckpointStore;
use super::context::Context;
use super::counter::CheckpointIdCounter;
use super::layout::HaLayout;
use super::plans::ExecutionPlanStore;
use super::results::JobResultStore;
use super::running::RunningJobsRegistry;
use super::{JobId, DISPATCHER, RESOURCE_MANAGER, REST_SERVER};
use crate::backend::DynBackend;
use crate::election::ConnectionPolicy;
use crate::error::{Error, Result};
use crate::leader_election::{ElectionMode, LeaderElection, LeaderElectionService};
use crate::leadership::Leadership;
use crate::name::Id;
use crate::retrieval::LeaderRetrieval;

/// How many completed checkpoints a store keeps by default (Flink's
/// `state.checkpoints.num-retained`).
pub const DEFAULT_RETAINED_CHECKPOINTS: usize = 1;

/// State above this many bytes goes to the blob store by default.
pub const DEFAULT_BLOB_THRESHOLD: usize = 16 * 1024;

/// How old an unreferenced blob must be before the orphan collector deletes
/// it, by default.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// The leadership behind `session_id` of `election`, to fence HA writes with:
/// what a contender granted `session_id` passes to the stores. Fails with
/// [`Error::NotLeader`] if that session does not lead (any more).
pub async fn fence_of(election: &LeaderElection, session_id: Uuid) -> Result<Leadership> {
    election
        .run_if_leader(session_id, |leadership| async move { leadership })
        .await
}

/// Builds [`HaServices`]; see [`HaServices::builder`].
#[derive(Debug)]
pub struct HaServicesBuilder {
    backend: DynBackend,
    cluster_id: String,
    mode: ElectionMode,
    policy: ConnectionPolicy,
    blob_dir: Option<PathBuf>,
    threshold: usize,
    retained: usize,
}

impl HaServicesBuilder {
    /// One election for every component of the process (the default, as
    /// Flink's ZooKeeper HA services) or one per component.
    pub fn with_election_mode(mut self, mode: ElectionMode) -> Self {
        self.mode = mode;
        self
    }

    /// What leaderships do when the backend connection is suspended.
    pub fn with_connection_policy(mut self, policy: ConnectionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Keeps state above the blob threshold in files under `dir` (in
    /// `dir/<cluster-id>`); the backend keeps pointers. Without a blob
    /// directory all state is kept inline in the backend.
    pub fn with_blob_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.blob_dir = Some(dir.into());
        self
    }

    /// State larger than `bytes` goes to the blob store (default
    /// [`DEFAULT_BLOB_THRESHOLD`]).
    pub fn with_blob_threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// How many completed checkpoints each job keeps (at least 1; default
    /// [`DEFAULT_RETAINED_CHECKPOINTS`]).
    pub fn with_retained_checkpoints(mut self, retained: usize) -> Self {
        self.retained = retained;
        self
    }

    /// Checks the configuration and builds the services.
    pub fn build(self) -> Result<HaServices> {
        let cluster_id = Id::new("cluster_id", self.cluster_id)?;
        if self.retained == 0 {
            return Err(Error::invalid(
                "retained_checkpoints",
                "0",
                "must be at least 1: the latest checkpoint is always kept",
            ));
        }
        // Inline state is hex in a JSON record: twice its size plus a little.
        let limit = self.backend.capabilities().max_value_size;
        if self.blob_dir.is_some() && self.threshold.saturating_mul(2) + 1024 > limit {
            return Err(Error::invalid(
                "blob_threshold",
                &self.threshold.to_string(),
                format!(
                    "must be at most {} bytes: inline state must fit the backend's {limit}-byte values",
                    limit.saturating_sub(1024) / 2
                ),
            ));
        }
        let blobs = self
            .blob_dir
            .map(|dir| BlobStore::new(dir, cluster_id.as_str()))
            .transpose()?;
        let elections = LeaderElectionService::with_mode(
            self.backend.clone(),
            cluster_id.as_str(),
            self.mode,
            self.policy,
        )?;
        let flink = self.backend.capabilities().layout == crate::Layout::Flink;
        let ctx = Arc::new(Context {
            backend: self.backend,
            layout: HaLayout::new(&cluster_id, flink),
            cluster_id,
            blobs,
            threshold: self.threshold,
        });
        Ok(HaServices {
            plans: ExecutionPlanStore::new(ctx.clone()),
            ctx,
            elections,
            retained: self.retained,
        })
    }
}

/// The HA services of one cluster (Flink's `HighAvailabilityServices`), on any
/// backend: leader election and retrieval for the resource manager, the
/// dispatcher, the REST server and a job master per job, and the stores a new
/// leader recovers from — execution plans, completed checkpoints and their id
/// counter, job results, the running jobs registry, and blobs.
///
/// Reads need no leadership. Every write takes the [`Leadership`] that fences
/// it (see [`fence_of`]): it lands only if that leadership is still current,
/// checked atomically at the backend; a stale leader gets [`Error::Fenced`]
/// (or [`Error::LeadershipLost`] when it already knows) and nothing changes.
/// Cloning shares the services.
#[derive(Clone)]
pub struct HaServices {
    pub(super) ctx: Arc<Context>,
    pub(super) elections: LeaderElectionService,
    pub(super) plans: ExecutionPlanStore,
    pub(super) retained: usize,
}

impl fmt::Debug for HaServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HaServices")
            .field("cluster_id", &self.ctx.cluster_id)
            .field("elections", &self.elections)
            .field("blobs", &self.ctx.blobs.as_ref().map(BlobStore::root))
            .field("threshold", &self.ctx.threshold)
            .field("retained", &self.retained)
            .finish()
    }
}

impl HaServices {
    /// A builder for the services of `cluster_id` on `backend`.
    pub fn builder(backend: DynBackend, cluster_id: &str) -> HaServicesBuilder {
        HaServicesBuilder {
            backend,
            cluster_id: cluster_id.to_owned(),
            mode: ElectionMode::default(),
            policy: ConnectionPolicy::default(),
            blob_dir: None,
            threshold: DEFAULT_BLOB_THRESHOLD,
            retained: DEFAULT_RETAINED_CHECKPOINTS,
        }
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        self.ctx.cluster_id.as_str()
    }

    /// The backend.
    pub fn backend(&self) -> &DynBackend {
        &self.ctx.backend
    }

    /// The leader election service every component's election comes from.
    pub fn leader_election_service(&self) -> &LeaderElectionService {
        &self.elections
    }

    /// The leader election of the resource manager.
    pub fn resource_manager_leader_election(&self) -> Result<LeaderElection> {
        self.elections.create_leader_election(RESOURCE_MANAGER)
    }

    /// The leader election of the dispatcher.
    pub fn dispatcher_leader_election(&self) -> Result<LeaderElection> {
        self.elections.create_leader_election(DISPATCHER)
    }

    /// The leader election of the REST server.
    pub fn rest_server_leader_election(&self) -> Result<LeaderElection> {
        self.elections.create_leader_election(REST_SERVER)
    }

    /// The leader election of the job master of `job`.
    pub fn job_master_leader_election(&self, job: &JobId) -> Result<LeaderElection> {
        self.elections.create_leader_election(job.as_str())
    }

    fn retriever(&self, component: &str) -> Result<LeaderRetrieval> {
        LeaderRetrieval::new(self.ctx.backend.clone(), self.cluster_id(), component)
    }

    /// Follows the resource manager's leader.
    pub fn resource_manager_leader_retriever(&self) -> Result<LeaderRetrieval> {
        self.retriever(RESOURCE_MANAGER)
    }

    /// Follows the dispatcher's leader.
    pub fn dispatcher_leader_retriever(&self) -> Result<LeaderRetrieval> {
        self.retriever(DISPATCHER)
    }

    /// Follows the REST server's leader.
    pub fn rest_server_leader_retriever(&self) -> Result<LeaderRetrieval> {
        self.retriever(REST_SERVER)
    }

    /// Follows the leader of the job master of `job`.
    pub fn job_master_leader_retriever(&self, job: &JobId) -> Result<LeaderRetrieval> {
        self.retriever(job.as_str())
    }

    /// The execution plan store. Every call returns the same store.
    pub fn execution_plan_store(&self) -> ExecutionPlanStore {
        self.plans.clone()
    }

    /// The completed checkpoint store of `job`, keeping the configured number
    /// of checkpoints.
    pub fn checkpoint_store(&self, job: &JobId) -> CompletedCheckpointStore {
        CompletedCheckpointStore::new(self.ctx.clone(), job.clone(), self.retained)
            .expect("the builder checked the retention")
    }

    /// The completed checkpoint store of `job`, keeping `retained` checkpoints
    /// (at least 1: [`Error::InvalidInput`] otherwise).
    pub fn checkpoint_store_retaining(
        &self,
        job: &JobId,
        retained: usize,
    ) -> Result<CompletedCheckpointStore> {
        CompletedCheckpointStore::new(self.ctx.clone(), job.clone(), retained)
    }

    /// The checkpoint id counter of `job`.
    pub fn checkpoint_id_counter(&self, job: &JobId) -> CheckpointIdCounter {
        CheckpointIdCounter::new(self.ctx.clone(), job.clone())
    }

    /// The job result store.
    pub fn job_result_store(&self) -> JobResultStore {
        JobResultStore::new(self.ctx.clone())
    }

    /// The running jobs registry.
    pub fn running_jobs_registry(&self) -> RunningJobsRegistry {
        RunningJobsRegistry::new(self.ctx.clone())
    }

    /// The blob store, if a blob directory was configured.
    pub fn blob_store(&self) -> Option<&BlobStore> {
        self.ctx.blobs.as_ref()
    }
}
