//! Job statuses, as far as the HA services care.

/// The status of a job, as far as the HA stores care: whether it reached a
/// globally terminal state (its HA data may go) or not (it is kept for
/// recovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobStatus {
    /// Created or initializing, not running yet.
    Created,
    /// Running (or restarting, failing, cancelling: not finished).
    Running,
    /// This process stopped running the job (it lost leadership, or shuts
    /// down); another may recover it. Not terminal.
    Suspended,
    /// Finished successfully. Globally terminal.
    Finished,
    /// Cancelled. Globally terminal.
    Canceled,
    /// Failed for good. Globally terminal.
    Failed,
}

impl JobStatus {
    /// Whether the job is over for the whole cluster, so its HA data may go.
    pub fn is_globally_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed
        )
    }
}
