//! Where the HA services keep things: Flink's ZooKeeper tree, as keys.
//!
//! ```text
//! <cluster>/leader/latch                               the shared election
//! <cluster>/leader/<component>/latch                   a component's own election
//! <cluster>/leader/<component>/connection_info         the published leader
//! <cluster>/jobgraphs/<job>                            execution plan (job graph)
//! <cluster>/jobs/<job>/checkpoints/<id, 20 digits>     completed checkpoint
//! <cluster>/jobs/<job>/checkpoint_id_counter           next checkpoint id
//! <cluster>/jobs/<job>/running_job_registry            scheduling status
//! <cluster>/job_results/<job>                          job result, dirty or clean
//! ```
//!
//! In Flink's layout ([`Layout::Flink`](crate::Layout::Flink)) the names are
//! Flink 2.x's: execution plans under `<cluster>/execution-plans/<job>`, and
//! checkpoints named by their id zero-padded to 19 digits, as Flink names
//! them. (Their contents are tenure's records, not Flink's Java-serialized
//! state handles: a Flink JobManager does not recover what tenure stored.)
//!
//! Everything of one job except its result lives under `jobgraphs/<job>`,
//! `jobs/<job>` and `leader/<job>`, so per-job cleanup is three prefixes. The
//! job result outlives the cleanup: its clean entry is what tells a new leader
//! that the job is done and cleaned up.

use super::JobId;
use crate::name::{Id, Path};

/// The keys of one cluster.
#[derive(Clone, Debug)]
pub(crate) struct HaLayout {
    cluster: Path,
    /// Flink 2.x's names.
    flink: bool,
}

impl HaLayout {
    pub(crate) fn new(cluster_id: &Id, flink: bool) -> Self {
        HaLayout {
            cluster: Path::from(cluster_id.clone()),
            flink,
        }
    }

    /// `<cluster>/leader`: elections and published leaders.
    pub(crate) fn leaders(&self) -> Path {
        self.cluster.with("leader")
    }

    /// `<cluster>/leader/<job>`: the job master's election and leader.
    pub(crate) fn job_leader(&self, job: &JobId) -> Path {
        self.leaders().join(job.id())
    }

    /// `<cluster>/jobgraphs` (Flink's layout: `execution-plans`).
    pub(crate) fn plans(&self) -> Path {
        match self.flink {
            true => self.cluster.with("execution-plans"),
            false => self.cluster.with("jobgraphs"),
        }
    }

    /// `<cluster>/jobgraphs/<job>`.
    pub(crate) fn plan(&self, job: &JobId) -> Path {
        self.plans().join(job.id())
    }

    /// `<cluster>/jobs`.
    pub(crate) fn jobs(&self) -> Path {
        self.cluster.with("jobs")
    }

    /// `<cluster>/jobs/<job>`.
    pub(crate) fn job(&self, job: &JobId) -> Path {
        self.jobs().join(job.id())
    }

    /// `<cluster>/jobs/<job>/checkpoints`.
    pub(crate) fn checkpoints(&self, job: &JobId) -> Path {
        self.job(job).with("checkpoints")
    }

    /// `<cluster>/jobs/<job>/checkpoints/<id, zero-padded to 20 digits>`, so
    /// that key order is id order.
    /// (Flink's layout: 19 digits, as Flink names them.)
    pub(crate) fn checkpoint(&self, job: &JobId, id: u64) -> Path {
        let name = match self.flink {
            true => format!("{id:019}"),
            false => format!("{id:020}"),
        };
        self.checkpoints(job)
            .child("checkpoint_id", &name)
            .expect("digits are a valid segment")
    }

    /// `<cluster>/jobs/<job>/checkpoint_id_counter`.
    pub(crate) fn counter(&self, job: &JobId) -> Path {
        self.job(job).with("checkpoint_id_counter")
    }

    /// `<cluster>/jobs/<job>/running_job_registry`.
    pub(crate) fn running(&self, job: &JobId) -> Path {
        self.job(job).with("running_job_registry")
    }

    /// `<cluster>/job_results`.
    pub(crate) fn results(&self) -> Path {
        self.cluster.with("job_results")
    }

    /// `<cluster>/job_results/<job>`.
    pub(crate) fn result(&self, job: &JobId) -> Path {
        self.results().join(job.id())
    }
}

/// The last segment of a listed key.
pub(crate) fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
