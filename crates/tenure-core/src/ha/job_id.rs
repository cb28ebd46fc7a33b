//! Job ids, checked once at the edge like every other id.

use std::fmt;

use crate::error::{Error, Result};
use crate::name::Id;

/// The job id of non-HA and single-job setups, beside
/// [`DEFAULT_LEADER_SESSION_ID`](crate::DEFAULT_LEADER_SESSION_ID): 32 zeros,
/// as Flink's zero `JobID` prints.
pub const DEFAULT_JOB_ID: &str = "00000000000000000000000000000000";

/// Component ids of the cluster-wide components: a job id may not take one,
/// since a job master's leader information lives at `leader/<job-id>`.
const RESERVED: &[&str] = &[
    super::RESOURCE_MANAGER,
    super::DISPATCHER,
    super::REST_SERVER,
    "latch",
];

/// A validated job id: 1–128 bytes of `[A-Za-z0-9._-]`, not `.` or `..`, and
/// none of the cluster-wide component ids (`resource_manager`, `dispatcher`,
/// `rest_server`) nor `latch`, which share the `leader/` namespace with job
/// masters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(Id);

impl JobId {
    /// Validates `value` as a job id.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let id = Id::new("job_id", value)?;
        if RESERVED.contains(&id.as_str()) {
            return Err(Error::invalid(
                "job_id",
                id.as_str(),
                "is a component id of tenure's layout; choose another job id",
            ));
        }
        Ok(JobId(id))
    }

    /// [`DEFAULT_JOB_ID`] as a job id.
    pub fn default_job() -> Self {
        JobId(Id::new("job_id", DEFAULT_JOB_ID).expect("the default job id is valid"))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub(crate) fn id(&self) -> &Id {
        &self.0
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for JobId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        JobId::new(s)
    }
}
