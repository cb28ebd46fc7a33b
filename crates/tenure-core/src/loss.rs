//! Why a leadership ended: vocabulary shared by leaderships, errors and
//! observability, below all of them.

use std::fmt;

/// Why a leadership ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossReason {
    /// The holder resigned.
    Resigned,
    /// The backend session behind it was lost (expired, or replaced).
    SessionLost,
    /// The connection to the backend was suspended and the connection policy is
    /// to revoke on suspension.
    SessionSuspended,
    /// The candidate's own key or node was deleted, by someone else or by the
    /// server; another candidate may lead now.
    CandidateRemoved,
    /// The session could not be renewed before its renew deadline: the server may
    /// expire it at any moment, so the holder stepped down first.
    RenewDeadlinePassed,
    /// The election or service was closed.
    Closed,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossReason::Resigned => "resigned",
            LossReason::SessionLost => "backend session lost",
            LossReason::SessionSuspended => "backend connection suspended",
            LossReason::CandidateRemoved => "own candidate key deleted",
            LossReason::RenewDeadlinePassed => "renew deadline passed",
            LossReason::Closed => "closed",
        })
    }
}
