//! Recording a client's operations in the history: what an operation's
//! result means for the checker, and a leadership's grant and loss.

use std::time::Duration;

use tenure::Error;

use crate::history::{Event, Outcome, Recorder};

/// How long one operation may take before its outcome counts as unknown.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// How an operation that ran under [`OP_TIMEOUT`] ended, and the error's text.
pub(crate) fn outcome_of<T>(
    result: Result<tenure::Result<T>, tokio::time::error::Elapsed>,
) -> (Outcome, Option<String>) {
    match result {
        Ok(Ok(_)) => (Outcome::Ok, None),
        Ok(Err(e @ Error::Fenced { .. })) => (Outcome::Fenced, Some(e.to_string())),
        Ok(Err(
            e @ (Error::LeadershipLost { .. }
            | Error::NotLeader { .. }
            | Error::VersionMismatch { .. }
            | Error::AlreadyExists { .. }),
        )) => (Outcome::Refused, Some(e.to_string())),
        Ok(Err(e)) => (Outcome::Unknown, Some(e.to_string())),
        Err(_) => (Outcome::Unknown, Some("timed out".to_owned())),
    }
}

/// Records the grant of `leadership` of `election`, and its loss when the
/// signal fires (the returned task ends then).
pub(crate) fn record_grant(
    recorder: &Recorder,
    election: &str,
    leadership: &tenure::Leadership,
) -> tokio::task::JoinHandle<()> {
    let term = leadership.term();
    recorder.record(Event::Grant {
        election: election.to_owned(),
        term,
    });
    let (leadership, recorder, election) =
        (leadership.clone(), recorder.clone(), election.to_owned());
    tokio::spawn(async move {
        let reason = leadership.lost().await;
        recorder.record(Event::Loss {
            election,
            term,
            reason: format!("{reason:?}"),
        });
    })
}
