//! HA services on the memory backend: the failover scenario, and bad input.

mod common;

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenure_core::conformance::ha::{failover_in_process, temp_blob_dir, Contender};
use tenure_core::ha::{
    fence_of, CompletedCheckpoint, ExecutionPlan, ExecutionPlanListener, HaServices, JobId,
    JobResultEntry, JobSchedulingStatus, JobStatus, StandaloneHaServices, DEFAULT_JOB_ID,
};
use tenure_core::{
    DynBackend, ElectionMode, Error, Guard, Leadership, MemoryBackend, MemoryCluster, Path,
    DEFAULT_LEADER_SESSION_ID,
};
use tokio::sync::mpsc;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_scenario() {
    let cluster = common::new_cluster();
    let dir = temp_blob_dir("memory");
    tokio::time::timeout(
        Duration::from_secs(120),
        failover_in_process(&cluster, &dir),
    )
    .await
    .expect("the scenario finishes");
}

/// Services of cluster `c1` on a new client of `cluster`, leading as the
/// dispatcher: the services, the election (kept open) and the fence.
async fn leader(
    cluster: &MemoryCluster,
    dir: &FsPath,
) -> (HaServices, tenure_core::LeaderElection, Leadership) {
    let services = HaServices::builder(Arc::new(cluster.client()), "c1")
        .with_blob_dir(dir)
        .with_blob_threshold(100)
        .with_retained_checkpoints(2)
        .build()
        .unwrap();
    let election = services.dispatcher_leader_election().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    election.start(Arc::new(Contender(tx))).unwrap();
    let session = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let fence = fence_of(&election, session).await.unwrap();
    (services, election, fence)
}

fn job(s: &str) -> JobId {
    JobId::new(s).unwrap()
}

fn key(s: &str) -> Path {
    Path::parse("key", s).unwrap()
}

fn checkpoint(id: u64, len: usize) -> CompletedCheckpoint {
    CompletedCheckpoint {
        checkpoint_id: id,
        data: vec![id as u8; len],
    }
}

fn corrupted_at(result: &Error, at: &str) -> bool {
    matches!(result, Error::Corrupted { key, .. } if key == at)
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Dir {
    Dir(temp_blob_dir(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_records_are_reported_by_key_and_never_overwritten() {
    let cluster = MemoryCluster::new();
    let d = dir("corrupt");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let backend = ha.backend().clone();
    let j = job("j1");
    let garbage = b"{not a record".to_vec();
    let keys = [
        "c1/jobgraphs/j1",
        "c1/jobs/j1/checkpoints/00000000000000000001",
        "c1/jobs/j1/checkpoint_id_counter",
        "c1/jobs/j1/running_job_registry",
        "c1/job_results/j1",
    ];
    for k in keys {
        backend.put(&key(k), &garbage, Guard::ANY).await.unwrap();
    }
    let plans = ha.execution_plan_store();
    let plan = ExecutionPlan {
        job_id: j.clone(),
        data: b"p".to_vec(),
    };
    let e = plans.recover(&j).await.unwrap_err();
    assert!(corrupted_at(&e, keys[0]), "{e}");
    let e = plans.put(&fence, &plan).await.unwrap_err();
    assert!(corrupted_at(&e, keys[0]), "{e}");

    let store = ha.checkpoint_store(&j);
    let e = store.latest().await.unwrap_err();
    assert!(corrupted_at(&e, keys[1]), "{e}");
    let e = store.add(&fence, &checkpoint(2, 10)).await.unwrap_err();
    assert!(corrupted_at(&e, keys[1]), "{e}");

    let counter = ha.checkpoint_id_counter(&j);
    let e = counter.get_and_increment(&fence).await.unwrap_err();
    assert!(corrupted_at(&e, keys[2]), "{e}");
    let e = counter.set(&fence, 10).await.unwrap_err();
    assert!(corrupted_at(&e, keys[2]), "{e}");

    let registry = ha.running_jobs_registry();
    let e = registry.set_running(&fence, &j).await.unwrap_err();
    assert!(corrupted_at(&e, keys[3]), "{e}");
    let e = registry.get(&j).await.unwrap_err();
    assert!(corrupted_at(&e, keys[3]), "{e}");

    let results = ha.job_result_store();
    let e = results.mark_clean(&fence, &j).await.unwrap_err();
    assert!(corrupted_at(&e, keys[4]), "{e}");
    let e = results.dirty_results().await.unwrap_err();
    assert!(corrupted_at(&e, keys[4]), "{e}");
    let e = results
        .create_dirty(
            &fence,
            &JobResultEntry {
                job_id: j.clone(),
                data: vec![],
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");

    // Nothing was overwritten.
    for k in keys {
        assert_eq!(backend.get(&key(k)).await.unwrap().unwrap().value, garbage);
    }
    // A well-formed record of the wrong kind, or a newer version, is corrupt too.
    backend
        .put(&key("c1/jobs/j1/checkpoint_id_counter"), br#"{"format":"tenure-ha","version":2,"kind":"checkpoint_id_counter","body":{"next":3}}"#, Guard::ANY)
        .await
        .unwrap();
    let e = counter.get().await.unwrap_err();
    assert!(corrupted_at(&e, keys[2]), "{e}");
    // The orphan collector refuses to guess what a corrupted record points to.
    let e = ha
        .collect_orphans(&fence, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Corrupted { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_blob_is_never_served() {
    let cluster = MemoryCluster::new();
    let d = dir("damaged");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    let store = ha.checkpoint_store(&j);
    store.add(&fence, &checkpoint(1, 1000)).await.unwrap();
    assert_eq!(store.latest().await.unwrap().unwrap(), checkpoint(1, 1000));
    let blobs = ha.blob_store().unwrap().list().await.unwrap();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let file = ha.blob_store().unwrap().root().join(&blobs[0].name);

    let mut bytes = std::fs::read(&file).unwrap();
    bytes[500] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let e = store.latest().await.unwrap_err();
    assert!(
        matches!(&e, Error::Corrupted { key, .. } if key.contains(&blobs[0].name)),
        "{e}"
    );
    std::fs::write(&file, &bytes[..10]).unwrap();
    let e = store.all().await.unwrap_err();
    assert!(matches!(e, Error::Corrupted { .. }), "{e}");
    std::fs::remove_file(&file).unwrap();
    let e = store.latest().await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pointer_out_of_its_job_is_corrupted() {
    let cluster = MemoryCluster::new();
    let d = dir("pointer");
    let (ha, _election, _fence) = leader(&cluster, &d.0).await;
    for name in [
        "jobs/other/plan-x.blob",
        "../../etc/passwd",
        "jobs/j1/../x.blob",
    ] {
        let record = format!(
            r#"{{"format":"tenure-ha","version":1,"kind":"execution_plan","body":{{"job_id":"j1","state":{{"storage":"blob","name":"{name}","size":1,"crc32":0}}}}}}"#
        );
        ha.backend()
            .put(&key("c1/jobgraphs/j1"), record.as_bytes(), Guard::ANY)
            .await
            .unwrap();
        let e = ha
            .execution_plan_store()
            .recover(&job("j1"))
            .await
            .unwrap_err();
        assert!(corrupted_at(&e, "c1/jobgraphs/j1"), "{name}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ids_and_settings_are_rejected() {
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "dispatcher",
        "latch",
        &"x".repeat(129),
    ] {
        let e = JobId::new(bad).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "job_id",
                    ..
                }
            ),
            "{bad:?}: {e}"
        );
    }
    let backend: DynBackend = Arc::new(MemoryBackend::new());
    let e = HaServices::builder(backend.clone(), "a/b")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "cluster_id",
                ..
            }
        ),
        "{e}"
    );
    let e = HaServices::builder(backend.clone(), "c")
        .with_retained_checkpoints(0)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "retained_checkpoints",
                ..
            }
        ),
        "{e}"
    );
    let e = HaServices::builder(backend.clone(), "c")
        .with_blob_dir("/tmp")
        .with_blob_threshold(10 * 1024 * 1024)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "blob_threshold",
                ..
            }
        ),
        "{e}"
    );
    let ha = HaServices::builder(backend.clone(), "c").build().unwrap();
    let e = ha.checkpoint_store_retaining(&job("j"), 0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "retained_checkpoints",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(JobId::default_job().as_str(), DEFAULT_JOB_ID);
    assert_eq!(DEFAULT_JOB_ID, "00000000000000000000000000000000");

    // A leadership of another cluster does not fence this one's writes.
    let other = tenure_core::ElectionFactory::new(backend.clone())
        .new_election("elsewhere")
        .unwrap()
        .campaign()
        .await
        .unwrap();
    let e = ha
        .checkpoint_id_counter(&job("j"))
        .get_and_increment(&other)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidInput { field: "fence", .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_keep_the_latest_n_and_ids_only_grow() {
    let cluster = MemoryCluster::new();
    let d = dir("retain");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    let store = ha.checkpoint_store(&j);
    assert!(store.latest().await.unwrap().is_none());
    for id in 1..=4 {
        store
            .add(&fence, &checkpoint(id, 10 + id as usize * 100))
            .await
            .unwrap();
    }
    assert_eq!(store.checkpoint_ids().await.unwrap(), vec![3, 4]);
    // 3 is inline (310 bytes > 100: a blob, too); only the retained blobs stay.
    let blobs = ha.blob_store().unwrap().list().await.unwrap();
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    let e = store.add(&fence, &checkpoint(4, 1)).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "checkpoint_id",
                ..
            }
        ),
        "{e}"
    );
    // Not terminal: kept for recovery.
    assert!(!store.shutdown(&fence, JobStatus::Suspended).await.unwrap());
    assert_eq!(store.checkpoint_ids().await.unwrap(), vec![3, 4]);
    assert!(store.shutdown(&fence, JobStatus::Canceled).await.unwrap());
    assert!(store.all().await.unwrap().is_empty());
    assert!(ha.blob_store().unwrap().list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_never_hands_out_an_id_twice() {
    let cluster = MemoryCluster::new();
    let d = dir("counter");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (counter, fence) = (ha.checkpoint_id_counter(&j), fence.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..25 {
                ids.push(counter.get_and_increment(&fence).await.unwrap());
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<u64>>());
    let counter = ha.checkpoint_id_counter(&j);
    assert_eq!(counter.get().await.unwrap(), 201);
    let e = counter.set(&fence, 5).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    counter.set(&fence, 500).await.unwrap();
    assert_eq!(counter.get_and_increment(&fence).await.unwrap(), 500);
    assert!(counter.shutdown(&fence, JobStatus::Failed).await.unwrap());
    assert_eq!(counter.get().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_results_and_the_running_jobs_registry() {
    let cluster = MemoryCluster::new();
    let d = dir("results");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    let results = ha.job_result_store();
    assert!(!results.has_entry(&j).await.unwrap());
    let e = results.mark_clean(&fence, &j).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let entry = JobResultEntry {
        job_id: j.clone(),
        data: b"result".to_vec(),
    };
    results.create_dirty(&fence, &entry).await.unwrap();
    let e = results.create_dirty(&fence, &entry).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert!(results.has_dirty(&j).await.unwrap());
    assert_eq!(results.dirty_results().await.unwrap(), vec![entry.clone()]);
    results.mark_clean(&fence, &j).await.unwrap();
    results.mark_clean(&fence, &j).await.unwrap();
    assert!(results.has_clean(&j).await.unwrap());
    assert_eq!(results.get(&j).await.unwrap(), Some(entry));
    assert!(results.dirty_results().await.unwrap().is_empty());

    let registry = ha.running_jobs_registry();
    assert_eq!(
        registry.get(&j).await.unwrap(),
        JobSchedulingStatus::Pending
    );
    registry.set_running(&fence, &j).await.unwrap();
    assert_eq!(
        registry.get(&j).await.unwrap(),
        JobSchedulingStatus::Running
    );
    registry.set_finished(&fence, &j).await.unwrap();
    assert_eq!(registry.get(&j).await.unwrap(), JobSchedulingStatus::Done);
    registry.clear(&fence, &j).await.unwrap();
    registry.clear(&fence, &j).await.unwrap();
    assert_eq!(
        registry.get(&j).await.unwrap(),
        JobSchedulingStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_stale_leader_is_rejected() {
    let cluster = MemoryCluster::new();
    let d = dir("stale");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    ha.running_jobs_registry()
        .set_running(&fence, &j)
        .await
        .unwrap();
    let before = ha.backend().list(&key("c1")).await.unwrap();
    // A second process takes over: the first one's fence is stale.
    let (ha2, _election2, _fence2) = {
        let waiting = tokio::spawn({
            let cluster = cluster.clone();
            let dir = d.0.clone();
            async move { leader(&cluster, &dir).await }
        });
        _election.close().await;
        tokio::time::timeout(PATIENCE, waiting)
            .await
            .unwrap()
            .unwrap()
    };
    let plan = ExecutionPlan {
        job_id: j.clone(),
        data: vec![1; 1000],
    };
    let entry = JobResultEntry {
        job_id: j.clone(),
        data: vec![],
    };
    let rejected = |r: Result<(), Error>, what: &str| {
        assert!(
            matches!(r, Err(Error::Fenced { .. } | Error::LeadershipLost { .. })),
            "{what}: {r:?}"
        );
    };
    rejected(
        ha.execution_plan_store().put(&fence, &plan).await,
        "plan put",
    );
    rejected(
        ha.execution_plan_store().remove(&fence, &j).await,
        "plan remove",
    );
    rejected(
        ha.checkpoint_store(&j)
            .add(&fence, &checkpoint(1, 1000))
            .await,
        "checkpoint",
    );
    rejected(
        ha.checkpoint_id_counter(&j)
            .get_and_increment(&fence)
            .await
            .map(|_| ()),
        "counter",
    );
    rejected(
        ha.checkpoint_id_counter(&j).set(&fence, 9).await,
        "counter set",
    );
    rejected(
        ha.running_jobs_registry().set_finished(&fence, &j).await,
        "registry",
    );
    rejected(
        ha.running_jobs_registry().clear(&fence, &j).await,
        "registry clear",
    );
    rejected(
        ha.job_result_store().create_dirty(&fence, &entry).await,
        "result",
    );
    let e = ha.cleanup_job_data(&fence, &j).await.unwrap_err();
    assert!(!e.failures.is_empty());
    assert_eq!(ha2.backend().list(&key("c1")).await.unwrap(), before);
    // Nothing of the stale leader's changed the data: same registry entry, and
    // no blob left behind by the rejected plan and checkpoint.
    assert_eq!(
        ha2.running_jobs_registry().get(&j).await.unwrap(),
        JobSchedulingStatus::Running
    );
    assert!(ha.blob_store().unwrap().list().await.unwrap().is_empty());
}

#[derive(Default)]
struct Heard(Mutex<Vec<String>>, tokio::sync::Notify);

impl ExecutionPlanListener for Heard {
    fn on_added_execution_plan(&self, job: JobId) {
        self.0.lock().unwrap().push(format!("added {job}"));
        self.1.notify_one();
    }
    fn on_removed_execution_plan(&self, job: JobId) {
        self.0.lock().unwrap().push(format!("removed {job}"));
        self.1.notify_one();
    }
    fn handle_error(&self, error: &Error) {
        self.0.lock().unwrap().push(format!("error {error}"));
        self.1.notify_one();
    }
}

impl Heard {
    async fn until(&self, n: usize) -> Vec<String> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.1.notified();
                if self.0.lock().unwrap().len() >= n {
                    return self.0.lock().unwrap().clone();
                }
                notified.await;
            }
        })
        .await
        .expect("the listener hears it")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_listener_hears_other_processes() {
    let cluster = MemoryCluster::new();
    let d = dir("listener");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let other = HaServices::builder(Arc::new(cluster.client()), "c1")
        .build()
        .unwrap();
    let plan = |j: &str| ExecutionPlan {
        job_id: job(j),
        data: j.as_bytes().to_vec(),
    };
    let plans = ha.execution_plan_store();
    plans.put(&fence, &plan("existing")).await.unwrap();
    let heard = Arc::new(Heard::default());
    let handle = other
        .execution_plan_store()
        .start(heard.clone())
        .await
        .unwrap();
    // Changes by the other process are heard; its own are not.
    plans.put(&fence, &plan("j1")).await.unwrap();
    assert_eq!(heard.until(1).await, vec!["added j1"]);
    plans.put(&fence, &plan("j1")).await.unwrap(); // an update, not an addition
    plans.remove(&fence, &job("existing")).await.unwrap();
    assert_eq!(heard.until(2).await, vec!["added j1", "removed existing"]);
    handle.stop().await;
    assert_eq!(plans.job_ids().await.unwrap(), vec![job("j1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_collected_and_referenced_blobs_kept() {
    let cluster = MemoryCluster::new();
    let d = dir("orphans");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    ha.checkpoint_store(&j)
        .add(&fence, &checkpoint(1, 1000))
        .await
        .unwrap();
    let blobs = ha.blob_store().unwrap();
    // A blob whose pointer never landed (its writer crashed in between).
    let orphan = blobs.put(&j, "checkpoint", vec![7; 1000]).await.unwrap();
    let report = ha
        .collect_orphans(&fence, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.young, vec![orphan.name().to_owned()]);
    assert!(report.removed.is_empty());
    let report = ha.collect_orphans(&fence, Duration::ZERO).await.unwrap();
    assert_eq!(report.removed, vec![orphan.name().to_owned()]);
    assert_eq!(report.referenced, 1);
    // The referenced blob is still served.
    assert_eq!(
        ha.checkpoint_store(&j).latest().await.unwrap().unwrap(),
        checkpoint(1, 1000)
    );
    assert_eq!(blobs.list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_attempts_every_step_and_reports_all_failures() {
    let cluster = MemoryCluster::new();
    let d = dir("cleanup");
    let (ha, _election, fence) = leader(&cluster, &d.0).await;
    let (j1, j2) = (job("j1"), job("j2"));
    for j in [&j1, &j2] {
        ha.execution_plan_store()
            .put(
                &fence,
                &ExecutionPlan {
                    job_id: j.clone(),
                    data: vec![1; 1000],
                },
            )
            .await
            .unwrap();
        ha.checkpoint_store(j)
            .add(&fence, &checkpoint(1, 1000))
            .await
            .unwrap();
        ha.checkpoint_id_counter(j)
            .get_and_increment(&fence)
            .await
            .unwrap();
    }
    // Job j2's blob directory cannot be removed (a file stands in its way of
    // being a directory), and its job master's leader information belongs to
    // another election's current leader.
    let j2_blobs = ha.blob_store().unwrap().root().join("jobs").join("j2");
    std::fs::remove_dir_all(&j2_blobs).unwrap();
    std::fs::write(&j2_blobs, b"in the way").unwrap();
    let foreign = tenure_core::ElectionFactory::new(ha.backend().clone())
        .new_election("foreign")
        .unwrap()
        .campaign()
        .await
        .unwrap();
    let info = format!(
        r#"{{"address":"x","session_id":"{}","term":{},"election":"foreign"}}"#,
        Uuid::nil(),
        foreign.term()
    );
    ha.backend()
        .put(
            &key("c1/leader/j2/connection_info"),
            info.as_bytes(),
            Guard::ANY,
        )
        .await
        .unwrap();

    // Both jobs at once: different jobs' cleanups do not interfere.
    let (r1, r2) = tokio::join!(
        ha.cleanup_job_data(&fence, &j1),
        ha.cleanup_job_data(&fence, &j2)
    );
    r1.expect("job 1 is cleaned up");
    let e = r2.expect_err("job 2's cleanup reports its failures");
    let steps: Vec<&str> = e.failures.iter().map(|f| f.step.as_str()).collect();
    assert_eq!(steps.len(), 2, "{e}");
    assert!(steps[0].starts_with("blobs of job j2"), "{e}");
    assert!(steps[1].starts_with("leader information"), "{e}");
    // Every other step still ran: the pointers of j2 are gone.
    let left: Vec<String> = ha
        .backend()
        .list(&key("c1"))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec!["c1/leader/j2/connection_info"]);
    // Fix the causes, run it again: it resumes and finishes.
    std::fs::remove_file(&j2_blobs).unwrap();
    foreign.resign().await.unwrap();
    ha.cleanup_job_data(&fence, &j2).await.unwrap();
    assert!(ha.backend().list(&key("c1")).await.unwrap().is_empty());
    assert!(ha.blob_store().unwrap().list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_keeps_everything_and_close_and_cleanup_removes_only_this_cluster() {
    let cluster = MemoryCluster::new();
    let d = dir("close");
    let (ha, election, fence) = leader(&cluster, &d.0).await;
    let j = job("j1");
    ha.checkpoint_store(&j)
        .add(&fence, &checkpoint(1, 1000))
        .await
        .unwrap();
    // Another cluster shares the backend and the blob directory.
    let neighbour = HaServices::builder(Arc::new(cluster.client()), "c2")
        .with_blob_dir(&d.0)
        .with_blob_threshold(100)
        .build()
        .unwrap();
    let neighbour_election = neighbour.dispatcher_leader_election().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    neighbour_election.start(Arc::new(Contender(tx))).unwrap();
    let neighbour_fence = fence_of(&neighbour_election, rx.recv().await.unwrap())
        .await
        .unwrap();
    neighbour
        .checkpoint_store(&j)
        .add(&neighbour_fence, &checkpoint(1, 1000))
        .await
        .unwrap();

    election.close().await;
    ha.close().await.unwrap();
    let (again, _election, fence) = leader(&cluster, &d.0).await;
    assert_eq!(
        again.checkpoint_store(&j).latest().await.unwrap(),
        Some(checkpoint(1, 1000))
    );
    again.close_with_optional_clean(Some(&fence)).await.unwrap();
    assert!(again.backend().list(&key("c1")).await.unwrap().is_empty());
    assert!(!d.0.join("c1").exists());
    assert_eq!(
        neighbour.checkpoint_store(&j).latest().await.unwrap(),
        Some(checkpoint(1, 1000))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_component_mode_elects_each_component_alone() {
    let cluster = MemoryCluster::new();
    let ha = HaServices::builder(Arc::new(cluster.client()), "c1")
        .with_election_mode(ElectionMode::PerComponent)
        .build()
        .unwrap();
    let j = job("j1");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let jm = ha.job_master_leader_election(&j).unwrap();
    jm.start(Arc::new(Contender(tx))).unwrap();
    let session = rx.recv().await.unwrap();
    jm.confirm_leadership(session, "jm:1").await.unwrap();
    let fence = fence_of(&jm, session).await.unwrap();
    assert_eq!(fence.election().as_str(), "c1/leader/j1/latch");
    ha.checkpoint_id_counter(&j)
        .get_and_increment(&fence)
        .await
        .unwrap();
    let leader = ha
        .job_master_leader_retriever(&j)
        .unwrap()
        .current()
        .await
        .unwrap();
    assert_eq!(leader.unwrap().address, "jm:1");
    jm.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_services_have_fixed_leaders_and_in_process_stores() {
    let ha = StandaloneHaServices::new("rm:1", "disp:2", "rest:3")
        .await
        .unwrap();
    assert_eq!(
        ha.resource_manager_leader_retriever().current().address,
        "rm:1"
    );
    assert_eq!(ha.dispatcher_leader_retriever().current().address, "disp:2");
    let rest = ha.rest_server_leader_retriever().current();
    assert_eq!(
        (rest.address.as_str(), rest.session_id),
        ("rest:3", DEFAULT_LEADER_SESSION_ID)
    );
    let j = JobId::default_job();
    assert_eq!(
        ha.job_master_leader_retriever(&j, "jm:4")
            .unwrap()
            .current()
            .address,
        "jm:4"
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let election = ha.dispatcher_leader_election();
    election.start(Arc::new(Contender(tx)));
    assert_eq!(rx.recv().await, Some(DEFAULT_LEADER_SESSION_ID));
    let counter = ha.services().checkpoint_id_counter(&j);
    assert_eq!(counter.get_and_increment(ha.fence()).await.unwrap(), 1);
    assert_eq!(counter.get_and_increment(ha.fence()).await.unwrap(), 2);
    ha.close().await;
}
