//! `HaServices`: everything a cluster needs to survive the loss of its leader,
//! over any backend, and the standalone variant for non-HA setups.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::blob::BlobStore;
use super::checkpoints::CompletedCheckpointStore;
use super::cleanup::{CleanupError, OrphanReport, Steps};
use super::context::Context;
use super::counter::CheckpointIdCounter;
use super::layout::HaLayout;
use super::plans::ExecutionPlanStore;
use super::record;
use super::results::JobResultStore;
use super::running::RunningJobsRegistry;
use super::{JobId, DISPATCHER, RESOURCE_MANAGER, REST_SERVER};
use crate::backend::{Condition, DynBackend};
use crate::election::{ConnectionPolicy, ElectionFactory};
use crate::error::{Error, Result};
use crate::leader_election::{
    ElectionMode, LeaderElection, LeaderElectionService, StandaloneLeaderElection,
    StandaloneLeaderRetrieval,
};
use crate::leader_info::PublishedInfo;
use crate::leadership::Leadership;
use crate::memory::MemoryBackend;
use crate::name::{Id, Path};
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
        let ctx = Arc::new(Context {
            backend: self.backend,
            layout: HaLayout::new(&cluster_id),
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
    ctx: Arc<Context>,
    elections: LeaderElectionService,
    plans: ExecutionPlanStore,
    retained: usize,
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

    /// Removes everything of `job` — its execution plan, checkpoints, counter,
    /// registry entry, blobs and published job master leader — except its job
    /// result, fenced by `fence`. Pointers go first, then (only if none is
    /// left) the job's blobs. Safe to run concurrently for different jobs;
    /// idempotent, so a cleanup interrupted by a crash is finished by running
    /// it again. Every step is attempted; all failures are reported together.
    ///
    /// Close the job master's own leader election first: while it leads, it
    /// republishes its leader information.
    pub async fn cleanup_job_data(
        &self,
        fence: &Leadership,
        job: &JobId,
    ) -> Result<(), CleanupError> {
        let mut steps = Steps::default();
        if !steps.record("fence", self.ctx.check_fence(fence)) {
            return steps.finish();
        }
        let layout = &self.ctx.layout;
        let pointers = [layout.plan(job), layout.job(job)];
        for prefix in &pointers {
            self.delete_below(fence, prefix, &mut steps).await;
        }
        if let Some(blobs) = &self.ctx.blobs {
            match self.remaining(&pointers).await {
                Ok(0) => {
                    steps.record(format!("blobs of job {job}"), blobs.remove_job(job).await);
                }
                Ok(n) => {
                    steps.record(
                        format!("blobs of job {job}"),
                        Err::<(), _>(Error::Backend {
                            message: format!("kept: {n} pointer(s) of the job remain"),
                            source: None,
                        }),
                    );
                }
                Err(e) => {
                    steps.record(format!("blobs of job {job}"), Err::<(), _>(e));
                }
            }
        }
        let info = layout.job_leader(job).with("connection_info");
        let outcome = self.remove_leader_info(fence, &info).await;
        steps.record(format!("leader information {info}"), outcome);
        self.plans.forget(job);
        steps.finish()
    }

    /// Deletes every key at or below `prefix`, fenced, recording failures.
    async fn delete_below(&self, fence: &Leadership, prefix: &Path, steps: &mut Steps) {
        let keys = match self.ctx.backend.list(prefix).await {
            Ok(keys) => keys,
            Err(e) => {
                steps.record(format!("listing {prefix}"), Err::<(), _>(e));
                return;
            }
        };
        for (key, _) in keys {
            let outcome = match Path::parse("key", &key) {
                Ok(path) => self.ctx.delete(fence, &path, Condition::Any).await,
                Err(e) => Err(e),
            };
            steps.record(format!("deleting {key}"), outcome);
        }
    }

    /// How many keys are left at or below `prefixes`.
    async fn remaining(&self, prefixes: &[Path]) -> Result<usize> {
        let mut n = 0;
        for prefix in prefixes {
            n += self.ctx.backend.list(prefix).await?.len();
        }
        Ok(n)
    }

    /// Removes published leader information at `key`, fenced by `fence` and
    /// conditional on the version read: always when it was published under
    /// the fence's own election or is stale (its term no longer leads, so it
    /// can never lead again) or does not decode; never while another
    /// election's current leader publishes it.
    async fn remove_leader_info(&self, fence: &Leadership, key: &Path) -> Result<()> {
        let Some(stored) = self.ctx.backend.get(key).await? else {
            return Ok(());
        };
        if let Ok(published) = PublishedInfo::decode(key, &stored.value) {
            if published.election != fence.election().as_str() {
                let election = Path::parse("election", &published.election)?;
                let leader = self.ctx.backend.leader(&election).await?;
                if leader.is_some_and(|l| l.term == published.info.term) {
                    return Err(Error::invalid(
                        "leader information",
                        key.as_str(),
                        format!("is published by the current leader of {election}; close that leader election first"),
                    ));
                }
            }
        }
        match self
            .ctx
            .delete(fence, key, Condition::Version(stored.version))
            .await
        {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes blobs that no pointer references and that are older than
    /// `grace` (a blob younger than that may belong to a write whose pointer
    /// has not landed yet). Blobs are listed before pointers, so a blob whose
    /// pointer lands meanwhile is either seen as referenced or young. Requires
    /// a current leadership, and reads every record that may hold a pointer:
    /// one that does not decode fails the collection before anything is
    /// deleted.
    pub async fn collect_orphans(
        &self,
        fence: &Leadership,
        grace: Duration,
    ) -> Result<OrphanReport> {
        self.ctx.check_fence(fence)?;
        let Some(blobs) = &self.ctx.blobs else {
            return Ok(OrphanReport::default());
        };
        let files = blobs.list().await?;
        let mut referenced = HashSet::new();
        for prefix in [self.ctx.layout.plans(), self.ctx.layout.jobs()] {
            for (key, stored) in self.ctx.backend.list(&prefix).await? {
                if let Some(pointer) = record::blob_of(&key, &stored.value)? {
                    referenced.insert(pointer.name().to_owned());
                }
            }
        }
        let now = SystemTime::now();
        let mut report = OrphanReport::default();
        for file in files {
            if referenced.contains(&file.name) {
                report.referenced += 1;
                continue;
            }
            let age = now.duration_since(file.modified).unwrap_or(Duration::ZERO);
            if age < grace {
                report.young.push(file.name);
                continue;
            }
            self.ctx.check_fence(fence)?;
            blobs.delete_name(&file.name).await?;
            report.removed.push(file.name);
        }
        Ok(report)
    }

    /// Closes the services and keeps every piece of data, for the next leader
    /// (Flink's `close()`): the leader elections of this process are closed.
    pub async fn close(&self) -> Result<(), CleanupError> {
        self.elections.close().await;
        Ok(())
    }

    /// Closes the services and deletes all data of this cluster, fenced by
    /// `fence` (Flink's `closeAndCleanupAllData()`): pointers first (execution
    /// plans, job data, job results, published leaders), then — only if no
    /// pointer is left — the cluster's blob directory, and nothing outside
    /// this cluster's namespace. Every step is attempted; all failures are
    /// reported together; running it again resumes an interrupted cleanup.
    ///
    /// Leader information that this process's own components republish while
    /// the elections close is removed afterwards, once provably stale (its
    /// term no longer leads, so it can never lead again), with a delete
    /// conditional on the exact version judged stale — the one write here not
    /// fenced, since this process no longer leads then.
    pub async fn close_and_cleanup_all_data(&self, fence: &Leadership) -> Result<(), CleanupError> {
        let mut steps = Steps::default();
        if !steps.record("fence", self.ctx.check_fence(fence)) {
            self.elections.close().await;
            return steps.finish();
        }
        let layout = &self.ctx.layout;
        let data = [layout.plans(), layout.jobs(), layout.results()];
        for prefix in &data {
            self.delete_below(fence, prefix, &mut steps).await;
        }
        if let Some(blobs) = &self.ctx.blobs {
            match self.remaining(&data).await {
                Ok(0) => {
                    steps.record("blob directory", blobs.remove_all().await);
                }
                Ok(n) => {
                    steps.record(
                        "blob directory",
                        Err::<(), _>(Error::Backend {
                            message: format!("kept: {n} pointer(s) remain"),
                            source: None,
                        }),
                    );
                }
                Err(e) => {
                    steps.record("blob directory", Err::<(), _>(e));
                }
            }
        }
        for key in self.leader_infos(&mut steps).await {
            let outcome = self.remove_leader_info(fence, &key).await;
            steps.record(format!("leader information {key}"), outcome);
        }
        self.elections.close().await;
        for key in self.leader_infos(&mut steps).await {
            let outcome = self.remove_stale_leader_info(&key).await;
            steps.record(format!("leader information {key}"), outcome);
        }
        steps.finish()
    }

    /// [`close`](Self::close) when `cleanup` is `None`,
    /// [`close_and_cleanup_all_data`](Self::close_and_cleanup_all_data) fenced
    /// by the given leadership otherwise (Flink's
    /// `closeWithOptionalClean(boolean)`).
    pub async fn close_with_optional_clean(
        &self,
        cleanup: Option<&Leadership>,
    ) -> Result<(), CleanupError> {
        match cleanup {
            None => self.close().await,
            Some(fence) => self.close_and_cleanup_all_data(fence).await,
        }
    }

    /// Every `connection_info` key of the cluster.
    async fn leader_infos(&self, steps: &mut Steps) -> Vec<Path> {
        let prefix = self.ctx.layout.leaders();
        match self.ctx.backend.list(&prefix).await {
            Ok(keys) => keys
                .into_iter()
                .filter(|(k, _)| k.ends_with("/connection_info"))
                .filter_map(|(k, _)| Path::parse("key", &k).ok())
                .collect(),
            Err(e) => {
                steps.record(format!("listing {prefix}"), Err::<(), _>(e));
                Vec::new()
            }
        }
    }

    /// Deletes leader information whose term no longer leads, at the version
    /// judged stale; leaves anything else.
    async fn remove_stale_leader_info(&self, key: &Path) -> Result<()> {
        let Some(stored) = self.ctx.backend.get(key).await? else {
            return Ok(());
        };
        let published = PublishedInfo::decode(key, &stored.value)?;
        let election = Path::parse("election", &published.election)?;
        let leader = self.ctx.backend.leader(&election).await?;
        if leader.is_some_and(|l| l.term == published.info.term) {
            return Ok(()); // someone leads and publishes it now: theirs
        }
        match self
            .ctx
            .backend
            .delete(key, Condition::Version(stored.version), None)
            .await
        {
            Ok(_) | Err(Error::NotFound { .. } | Error::VersionMismatch { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The HA services of non-HA setups (Flink's `StandaloneHaServices`): every
/// component always leads with the default leader session id, retrievers
/// report fixed addresses, and the stores live in this process only (on a
/// private [`MemoryBackend`]), fenced by a leadership that never ends while
/// the services are open.
#[derive(Debug)]
pub struct StandaloneHaServices {
    resource_manager: StandaloneLeaderRetrieval,
    dispatcher: StandaloneLeaderRetrieval,
    rest_server: StandaloneLeaderRetrieval,
    services: HaServices,
    leadership: Leadership,
}

impl StandaloneHaServices {
    /// The services of a cluster whose resource manager, dispatcher and REST
    /// server are at the given fixed addresses.
    pub async fn new(
        resource_manager_address: &str,
        dispatcher_address: &str,
        rest_server_address: &str,
    ) -> Result<Self> {
        let backend: DynBackend = Arc::new(MemoryBackend::new());
        let services = HaServices::builder(backend.clone(), "standalone").build()?;
        let leadership = ElectionFactory::new(backend)
            .with_prefix(services.ctx.layout.leaders())
            .new_election("standalone")?
            .campaign()
            .await?;
        Ok(StandaloneHaServices {
            resource_manager: StandaloneLeaderRetrieval::new(resource_manager_address)?,
            dispatcher: StandaloneLeaderRetrieval::new(dispatcher_address)?,
            rest_server: StandaloneLeaderRetrieval::new(rest_server_address)?,
            services,
            leadership,
        })
    }

    /// A leader election that grants at once, with the default session id.
    pub fn resource_manager_leader_election(&self) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// A leader election that grants at once, with the default session id.
    pub fn dispatcher_leader_election(&self) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// A leader election that grants at once, with the default session id.
    pub fn rest_server_leader_election(&self) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// A leader election that grants at once, with the default session id.
    pub fn job_master_leader_election(&self, _job: &JobId) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// The resource manager, at its fixed address.
    pub fn resource_manager_leader_retriever(&self) -> StandaloneLeaderRetrieval {
        self.resource_manager.clone()
    }

    /// The dispatcher, at its fixed address.
    pub fn dispatcher_leader_retriever(&self) -> StandaloneLeaderRetrieval {
        self.dispatcher.clone()
    }

    /// The REST server, at its fixed address.
    pub fn rest_server_leader_retriever(&self) -> StandaloneLeaderRetrieval {
        self.rest_server.clone()
    }

    /// The job master of `job`, at `default_address` (Flink's
    /// `getJobManagerLeaderRetriever(jobId, defaultJobManagerAddress)`).
    pub fn job_master_leader_retriever(
        &self,
        _job: &JobId,
        default_address: &str,
    ) -> Result<StandaloneLeaderRetrieval> {
        StandaloneLeaderRetrieval::new(default_address)
    }

    /// The in-process stores.
    pub fn services(&self) -> &HaServices {
        &self.services
    }

    /// The leadership that fences writes to the in-process stores.
    pub fn fence(&self) -> &Leadership {
        &self.leadership
    }

    /// Closes the services; the in-process data goes with them.
    pub async fn close(&self) {
        let _ = self.leadership.resign().await;
        let _ = self.services.close().await;
    }
}
