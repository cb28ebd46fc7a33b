//! The HA failover scenario, generic over the backend: a new leader finds the
//! job, the latest checkpoints and the results the old one left, and the old
//! one can never corrupt them.
//!
//! [`failover_in_process`] runs the whole scenario on any [`TestCluster`], with
//! the crash of leader A played by expiring its session. [`process`] runs it
//! with leader A a real OS process that is killed or paused, on every topology
//! of a backend; a backend's `tests/ha_<backend>.rs` is a few lines around
//! [`process::main`]. The steps the scenario is made of are public, so both
//! check exactly the same things.
//!
//! The scenario: leader A submits a job, confirms its job master and writes
//! checkpoints 1..5 with 3 retained (as blobs: they are larger than the blob
//! threshold), and crashes. B takes over, recovers the job and checkpoint 5
//! (3 and 4 still there, 1 and 2 gone), and its next checkpoint id is 6. A,
//! stale, tries to bump the counter and to write checkpoint 6: both rejected,
//! and neither the backend nor the blob directory changes. The job finishes:
//! its result is dirty, everything of it is cleaned up, its result is clean,
//! and nothing else of it remains in the backend or the blob directory.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{within, TestCluster};
use crate::backend::{DynBackend, Guard};
use crate::error::{Error, Result};
use crate::ha::{
    fence_of, CompletedCheckpoint, ExecutionPlan, HaServices, JobId, JobResultEntry,
    JobResultState, JobSchedulingStatus, JobStatus,
};
use crate::leader_election::{LeaderContender, LeaderElection};
use crate::leadership::Leadership;
use crate::name::Path;

mod harness;
pub mod process;

/// The cluster id of the scenario.
pub const CLUSTER_ID: &str = "ha-scenario";

/// The job id of the scenario.
pub const JOB_ID: &str = "ab01cd23ef45ab01cd23ef45ab01cd23";

/// Checkpoints retained per job in the scenario.
pub const RETAINED: usize = 3;

/// The blob threshold of the scenario: its checkpoints are larger, so they
/// are kept as blobs; its execution plan is smaller, so it is inline.
pub const BLOB_THRESHOLD: usize = 1024;

/// The scenario's job.
pub fn job() -> JobId {
    JobId::new(JOB_ID).expect("a valid job id")
}

/// The metadata of checkpoint `id`: 4 KiB, so it goes to the blob store.
pub fn checkpoint_data(id: u64) -> Vec<u8> {
    let mut data = format!("checkpoint {id} of {JOB_ID};").into_bytes();
    data.resize(4096, id as u8);
    data
}

/// The scenario's execution plan.
pub fn plan_data() -> Vec<u8> {
    b"execution plan: source -> map -> sink".to_vec()
}

/// The scenario's HA services on `backend`, with blobs under `blob_dir`.
pub fn services(backend: DynBackend, blob_dir: &FsPath) -> HaServices {
    HaServices::builder(backend, CLUSTER_ID)
        .with_blob_dir(blob_dir)
        .with_blob_threshold(BLOB_THRESHOLD)
        .with_retained_checkpoints(RETAINED)
        .build()
        .expect("a valid HA configuration")
}

/// A contender that hands every grant's session id to a channel, and ignores
/// revocations and errors.
#[derive(Debug)]
pub struct Contender(pub mpsc::UnboundedSender<Uuid>);

impl LeaderContender for Contender {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.0.send(session_id);
    }
    fn revoke_leadership(&self) {}
    fn handle_error(&self, _: &Error) {}
}

/// A process campaigning for the cluster's dispatcher and the job's job
/// master (one shared election).
#[derive(Debug)]
pub struct Candidate {
    /// Its HA services.
    pub services: HaServices,
    dispatcher: LeaderElection,
    job_master: LeaderElection,
    dispatcher_grants: mpsc::UnboundedReceiver<Uuid>,
    job_master_grants: mpsc::UnboundedReceiver<Uuid>,
}

/// A candidate that was granted and confirmed.
#[derive(Debug)]
pub struct Leader {
    /// Its HA services.
    pub services: HaServices,
    /// The dispatcher's leader election.
    pub dispatcher: LeaderElection,
    /// The job master's leader election.
    pub job_master: LeaderElection,
    /// The leadership that fences its writes.
    pub fence: Leadership,
}

impl Candidate {
    /// Starts campaigning on `backend`.
    pub fn start(backend: DynBackend, blob_dir: &FsPath) -> Candidate {
        let services = services(backend, blob_dir);
        let dispatcher = services.dispatcher_leader_election().expect("valid");
        let job_master = services.job_master_leader_election(&job()).expect("valid");
        let (dtx, dispatcher_grants) = mpsc::unbounded_channel();
        let (jtx, job_master_grants) = mpsc::unbounded_channel();
        dispatcher.start(Arc::new(Contender(dtx))).expect("starts");
        job_master.start(Arc::new(Contender(jtx))).expect("starts");
        Candidate {
            services,
            dispatcher,
            job_master,
            dispatcher_grants,
            job_master_grants,
        }
    }

    /// Waits (bounded) until granted, confirms both components under
    /// `address`, and returns the leader.
    pub async fn leader(mut self, address: &str) -> Leader {
        let session_id = within("the dispatcher's grant", self.dispatcher_grants.recv())
            .await
            .expect("contender alive");
        let job_session = within("the job master's grant", self.job_master_grants.recv())
            .await
            .expect("contender alive");
        assert_eq!(
            session_id, job_session,
            "shared mode grants every component together"
        );
        self.dispatcher
            .confirm_leadership(session_id, &format!("{address}/dispatcher"))
            .await
            .expect("the dispatcher confirms");
        self.job_master
            .confirm_leadership(session_id, &format!("{address}/jobmaster"))
            .await
            .expect("the job master confirms");
        let fence = fence_of(&self.dispatcher, session_id)
            .await
            .expect("the granted session leads");
        Leader {
            services: self.services,
            dispatcher: self.dispatcher,
            job_master: self.job_master,
            fence,
        }
    }

    /// Asserts that no grant comes for `span`: the leader ahead of this
    /// candidate keeps leading.
    pub async fn assert_not_granted(&mut self, span: Duration) {
        let grant = tokio::time::timeout(span, self.dispatcher_grants.recv()).await;
        assert!(grant.is_err(), "granted while the leader lives: {grant:?}");
    }
}

/// The shared election of the scenario's cluster.
pub fn latch() -> Path {
    Path::parse("election", &format!("{CLUSTER_ID}/leader/latch")).expect("valid")
}

/// Waits (bounded) until `n` candidates are queued in the shared election.
pub async fn wait_queued(backend: &DynBackend, n: usize) {
    super::eventually(
        &format!("{n} candidates in the shared election"),
        || async {
            backend
                .candidates(&latch())
                .await
                .is_ok_and(|c| c.len() == n)
        },
    )
    .await;
}

/// Leader A's part: submits the job, marks it running and writes checkpoints
/// 1..5 with ids from the counter.
pub async fn leader_a_writes(a: &Leader) {
    let job = job();
    let fence = &a.fence;
    a.services
        .execution_plan_store()
        .put(
            fence,
            &ExecutionPlan {
                job_id: job.clone(),
                data: plan_data(),
            },
        )
        .await
        .expect("A submits the job");
    a.services
        .running_jobs_registry()
        .set_running(fence, &job)
        .await
        .expect("A marks the job running");
    let counter = a.services.checkpoint_id_counter(&job);
    let store = a.services.checkpoint_store(&job);
    for expected in 1..=5 {
        let id = counter.get_and_increment(fence).await.expect("A's counter");
        assert_eq!(id, expected, "checkpoint ids start at 1 and count up");
        store
            .add(
                fence,
                &CompletedCheckpoint {
                    checkpoint_id: id,
                    data: checkpoint_data(id),
                },
            )
            .await
            .expect("A adds a checkpoint");
    }
    assert_eq!(store.checkpoint_ids().await.unwrap(), vec![3, 4, 5]);
}

/// Leader B's recovery: the job, checkpoint 5 as the latest with 3 and 4 still
/// there, and 6 as its next checkpoint id (which it takes).
pub async fn leader_b_recovers(b: &Leader) {
    let job = job();
    let plans = b.services.execution_plan_store();
    assert_eq!(plans.job_ids().await.unwrap(), vec![job.clone()]);
    let plan = plans.recover(&job).await.unwrap().expect("the job's plan");
    assert_eq!(plan.data, plan_data());
    assert_eq!(
        b.services.running_jobs_registry().get(&job).await.unwrap(),
        JobSchedulingStatus::Running
    );
    let store = b.services.checkpoint_store(&job);
    let latest = store.latest().await.unwrap().expect("a latest checkpoint");
    assert_eq!(latest.checkpoint_id, 5);
    assert_eq!(latest.data, checkpoint_data(5));
    let all = store.all().await.unwrap();
    let ids: Vec<u64> = all.iter().map(|c| c.checkpoint_id).collect();
    assert_eq!(ids, vec![3, 4, 5], "3 retained; 1 and 2 dropped");
    for c in &all {
        assert_eq!(c.data, checkpoint_data(c.checkpoint_id));
    }
    let counter = b.services.checkpoint_id_counter(&job);
    assert_eq!(counter.get().await.unwrap(), 6);
    assert_eq!(counter.get_and_increment(&b.fence).await.unwrap(), 6);
}

/// What a stale leader's attempts came to.
#[derive(Debug)]
pub struct StaleOutcome {
    /// Bumping the checkpoint id counter.
    pub counter: Result<u64>,
    /// Adding checkpoint 6.
    pub checkpoint: Result<()>,
    /// A raw write to the checkpoint's key, fenced by the stale grant at the
    /// backend, bypassing every client-side check: proof the backend fences.
    pub raw: Result<u64>,
}

/// A stale leader's attempts, as A resumed would make them.
pub async fn stale_writes(services: &HaServices, stale: &Leadership) -> StaleOutcome {
    let job = job();
    let counter = services
        .checkpoint_id_counter(&job)
        .get_and_increment(stale)
        .await;
    let checkpoint = services
        .checkpoint_store(&job)
        .add(
            stale,
            &CompletedCheckpoint {
                checkpoint_id: 6,
                data: checkpoint_data(6),
            },
        )
        .await;
    let key = Path::parse(
        "key",
        &format!("{CLUSTER_ID}/jobs/{JOB_ID}/checkpoints/{:020}", 6),
    )
    .expect("valid");
    // A resumed process may find its connection broken: the answer is a
    // retryable error and the outcome unknown. Try again once the backend's
    // session has moved on (reconnected or replaced), so the backend itself
    // answers, as a client that retries would; the callers' snapshots prove
    // that no attempt wrote anything.
    let mut session = services.backend().session();
    session.borrow_and_update();
    let mut raw = Err(Error::unavailable("not tried"));
    for _ in 0..20 {
        raw = services
            .backend()
            .put(&key, b"stale", Guard::fenced(stale.grant()))
            .await;
        match &raw {
            Err(e) if e.is_retryable() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), session.changed()).await;
            }
            _ => break,
        }
    }
    StaleOutcome {
        counter,
        checkpoint,
        raw,
    }
}

/// Whether `result` is a fencing rejection.
pub fn is_rejection<T>(result: &Result<T>) -> bool {
    matches!(
        result,
        Err(Error::Fenced { .. } | Error::LeadershipLost { .. })
    )
}

/// Asserts every stale attempt was rejected as fenced or lost leadership, and
/// the raw write as fenced by the backend.
pub fn assert_rejected(outcome: &StaleOutcome) {
    assert!(
        is_rejection(&outcome.counter),
        "the stale counter bump: {:?}",
        outcome.counter
    );
    assert!(
        is_rejection(&outcome.checkpoint),
        "the stale checkpoint: {:?}",
        outcome.checkpoint
    );
    assert!(
        matches!(outcome.raw, Err(Error::Fenced { .. })),
        "the stale raw write: {:?}",
        outcome.raw
    );
}

/// The session of `stale`, the leader, ends while it lives: `next` takes over
/// with a higher term and recovers the job ([`leader_b_recovers`]); then
/// `stale` makes its attempts ([`stale_writes`]), every one is rejected
/// ([`assert_rejected`]), and neither the backend nor the blob directory
/// changes. Returns the new leader.
pub async fn take_over(
    cluster: &dyn TestCluster,
    stale: &Leader,
    next: Candidate,
    blob_dir: &FsPath,
) -> Leader {
    cluster
        .expire_session(stale.services.backend())
        .await
        .expect("the leader's session expires");
    let b = next.leader("b").await;
    assert!(
        b.fence.term() > stale.fence.term(),
        "B leads with a higher term"
    );
    leader_b_recovers(&b).await;

    let before = snapshot(b.services.backend(), blob_dir).await;
    let outcome = stale_writes(&stale.services, &stale.fence).await;
    assert_rejected(&outcome);
    assert_eq!(
        snapshot(b.services.backend(), blob_dir).await,
        before,
        "the stale leader's attempts changed something"
    );
    b
}

/// Everything the scenario's cluster has in the backend and the blob
/// directory: keys with their values and versions, and blob file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Keys under the cluster, with value and version.
    pub keys: BTreeMap<String, (Vec<u8>, u64)>,
    /// Files in the cluster's blob directory.
    pub blobs: Vec<String>,
}

/// Takes a [`Snapshot`].
pub async fn snapshot(backend: &DynBackend, blob_dir: &FsPath) -> Snapshot {
    let cluster = Path::root("cluster_id", CLUSTER_ID).expect("valid");
    let keys = backend
        .list(&cluster)
        .await
        .expect("lists")
        .into_iter()
        .map(|(k, v)| (k, (v.value, v.version)))
        .collect();
    Snapshot {
        keys,
        blobs: files_below(&blob_dir.join(CLUSTER_ID)),
    }
}

/// Every file below `dir`, relative to it, sorted.
pub fn files_below(dir: &FsPath) -> Vec<String> {
    fn walk(root: &FsPath, dir: &FsPath, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// B finishes: checkpoint 6 lands, the job finishes, its result is dirty, the
/// job's data is cleaned up, its result is clean; afterwards nothing of the
/// job but its clean result remains in the backend, and nothing of it in the
/// blob directory.
pub async fn finish_job(b: &Leader, blob_dir: &FsPath) {
    let job = job();
    let fence = &b.fence;
    let store = b.services.checkpoint_store(&job);
    store
        .add(
            fence,
            &CompletedCheckpoint {
                checkpoint_id: 6,
                data: checkpoint_data(6),
            },
        )
        .await
        .expect("B adds checkpoint 6");
    assert_eq!(store.checkpoint_ids().await.unwrap(), vec![4, 5, 6]);
    b.services
        .running_jobs_registry()
        .set_finished(fence, &job)
        .await
        .unwrap();
    let results = b.services.job_result_store();
    results
        .create_dirty(
            fence,
            &JobResultEntry {
                job_id: job.clone(),
                data: b"FINISHED".to_vec(),
            },
        )
        .await
        .unwrap();
    assert!(results.has_dirty(&job).await.unwrap());
    assert_eq!(results.dirty_results().await.unwrap().len(), 1);
    // The job's own shutdown: terminal, so checkpoints and counter go.
    assert!(store.shutdown(fence, JobStatus::Finished).await.unwrap());
    b.services
        .checkpoint_id_counter(&job)
        .shutdown(fence, JobStatus::Finished)
        .await
        .unwrap();
    // The job master stops before its data is cleaned up (its election would
    // otherwise republish its leader information).
    b.job_master.close().await;
    b.services
        .cleanup_job_data(fence, &job)
        .await
        .expect("the job's data is cleaned up");
    // Idempotent: a second run (as after a crash midway) finds nothing to do.
    b.services
        .cleanup_job_data(fence, &job)
        .await
        .expect("cleanup again");
    results.mark_clean(fence, &job).await.unwrap();
    assert!(results.has_clean(&job).await.unwrap());
    assert!(!results.has_dirty(&job).await.unwrap());
    assert!(results.dirty_results().await.unwrap().is_empty());
    assert_nothing_of_job_remains(b.services.backend(), blob_dir).await;
}

/// Nothing of the scenario's job remains but its clean result: no key in the
/// backend names it, no blob of it is on disk.
pub async fn assert_nothing_of_job_remains(backend: &DynBackend, blob_dir: &FsPath) {
    let snapshot = snapshot(backend, blob_dir).await;
    let result_key = format!("{CLUSTER_ID}/job_results/{JOB_ID}");
    let left: Vec<&String> = snapshot
        .keys
        .keys()
        .filter(|k| k.contains(JOB_ID) && **k != result_key)
        .collect();
    assert!(left.is_empty(), "keys of the job remain: {left:?}");
    assert!(
        snapshot.keys.contains_key(&result_key),
        "the clean result stays"
    );
    let blobs: Vec<&String> = snapshot
        .blobs
        .iter()
        .filter(|b| b.contains(JOB_ID))
        .collect();
    assert!(blobs.is_empty(), "blobs of the job remain: {blobs:?}");
    let job_dir = blob_dir.join(CLUSTER_ID).join("jobs").join(JOB_ID);
    assert!(!job_dir.exists(), "{} remains", job_dir.display());
}

/// The whole scenario on `cluster`, in one process: A's crash is its session
/// expiring (the server drops its candidates, as for a killed process), and
/// A's stale attempts are made with the leadership it held. Blobs go under
/// `blob_dir`, which must be empty or absent; it is removed at the end.
pub async fn failover_in_process(cluster: &dyn TestCluster, blob_dir: &FsPath) {
    let a_backend = cluster.client().await.expect("a client");
    let b_backend = cluster.client().await.expect("a client");
    let a = Candidate::start(a_backend, blob_dir).leader("a").await;
    leader_a_writes(&a).await;
    let b = Candidate::start(b_backend.clone(), blob_dir);
    wait_queued(&b_backend, 2).await;

    let b = take_over(cluster, &a, b, blob_dir).await;

    finish_job(&b, blob_dir).await;
    assert_eq!(
        b.services.job_result_store().state(&job()).await.unwrap(),
        Some(JobResultState::Clean)
    );
    a.services.close().await.expect("A closes");
    shut_down_cluster(&b, blob_dir).await;
    let _ = std::fs::remove_dir_all(blob_dir);
}

/// The cluster shuts down for good, led by `b`: everything of it goes,
/// pointers first, then blobs, and only inside its own namespace.
pub async fn shut_down_cluster(b: &Leader, blob_dir: &FsPath) {
    b.services
        .close_and_cleanup_all_data(&b.fence)
        .await
        .expect("the cluster's data is cleaned up");
    let after = snapshot(b.services.backend(), blob_dir).await;
    assert!(
        after.keys.is_empty(),
        "keys remain: {:?}",
        after.keys.keys()
    );
    assert!(
        !blob_dir.join(CLUSTER_ID).exists(),
        "the cluster's blob directory remains"
    );
}

/// A fresh, unique blob directory for a scenario run under the system's
/// temporary directory.
pub fn temp_blob_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tenure-ha-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
