//! What tenure reports about itself: `tracing` events and spans, and metrics
//! through the [`metrics`] facade.
//!
//! Nothing is exported unless the application installs a recorder (the
//! `tenure` CLI serves them in Prometheus text format with `--metrics-addr`);
//! without one, every call here costs next to nothing.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | [`LEADER`] | gauge | `election` | 1 while this process leads the election, else 0 |
//! | [`TERM`] | gauge | `election` | the term of the last leadership granted to this process |
//! | [`GRANTS`] | counter | `election` | leaderships granted to this process |
//! | [`REVOCATIONS`] | counter | `election`, `reason` | leaderships that ended, by [`LossReason`] |
//! | [`SESSION_STATE`] | gauge | `state` | 1 for the session's current state, 0 for the others |
//! | [`SESSION_CHANGES`] | counter | `state` | session state changes (and new sessions), by new state |
//! | [`RENEW_DEADLINE_MARGIN`] | gauge | — | seconds that were left before the previous renew deadline when the session was last renewed; near 0 means leadership almost stepped down |
//! | [`FENCED_WRITES_REJECTED`] | counter | `election` | writes made as leader that the backend fenced off |
//!
//! Tracing: `campaign` spans (field `election`); `info` events when leadership
//! is granted and when it ends (with the reason); `warn` when a fenced write is
//! rejected; `info`/`warn` when the session changes state (see
//! [`watch_session`]). Election labels are election paths: a process with
//! thousands of elections exports thousands of series.

use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::{DynBackend, SessionState, SessionStatus};
use crate::loss::LossReason;
use crate::name::Path;

/// Gauge: 1 while this process leads the election (label `election`), else 0.
pub const LEADER: &str = "tenure_leader";
/// Gauge: the term of the last leadership granted to this process (label `election`).
pub const TERM: &str = "tenure_term";
/// Counter: leaderships granted to this process (label `election`).
pub const GRANTS: &str = "tenure_leadership_grants_total";
/// Counter: leaderships that ended (labels `election`, `reason`).
pub const REVOCATIONS: &str = "tenure_leadership_revocations_total";
/// Gauge: 1 for the backend session's current state (label `state`), 0 for the others.
pub const SESSION_STATE: &str = "tenure_session_state";
/// Counter: session state changes, by the new state (label `state`).
pub const SESSION_CHANGES: &str = "tenure_session_changes_total";
/// Gauge: seconds left before the previous renew deadline when the session was
/// last renewed.
pub const RENEW_DEADLINE_MARGIN: &str = "tenure_renew_deadline_margin_seconds";
/// Counter: writes made as leader that the backend rejected as fenced (label `election`).
pub const FENCED_WRITES_REJECTED: &str = "tenure_fenced_writes_rejected_total";

const STATES: [SessionState; 4] = [
    SessionState::Connected,
    SessionState::Suspended,
    SessionState::Lost,
    SessionState::Closed,
];

/// Registers the description of every metric above with the installed
/// recorder (call it once, after installing one).
pub fn describe() {
    metrics::describe_gauge!(LEADER, "1 while this process leads the election, else 0");
    metrics::describe_gauge!(
        TERM,
        "the term of the last leadership granted to this process"
    );
    metrics::describe_counter!(GRANTS, "leaderships granted to this process");
    metrics::describe_counter!(REVOCATIONS, "leaderships that ended, by reason");
    metrics::describe_gauge!(
        SESSION_STATE,
        "1 for the backend session's current state, 0 for the others"
    );
    metrics::describe_counter!(SESSION_CHANGES, "session state changes, by new state");
    metrics::describe_gauge!(
        RENEW_DEADLINE_MARGIN,
        metrics::Unit::Seconds,
        "time left before the previous renew deadline when the session was last renewed"
    );
    metrics::describe_counter!(
        FENCED_WRITES_REJECTED,
        "writes made as leader that the backend rejected as fenced"
    );
}

/// The label value of a session state.
pub fn state_label(state: SessionState) -> &'static str {
    match state {
        SessionState::Connected => "connected",
        SessionState::Suspended => "suspended",
        SessionState::Lost => "lost",
        SessionState::Closed => "closed",
    }
}

/// The label value of a loss reason (stable, `snake_case`).
pub fn reason_label(reason: LossReason) -> &'static str {
    match reason {
        LossReason::Resigned => "resigned",
        LossReason::SessionLost => "session_lost",
        LossReason::SessionSuspended => "session_suspended",
        LossReason::CandidateRemoved => "candidate_removed",
        LossReason::RenewDeadlinePassed => "renew_deadline_passed",
        LossReason::Closed => "closed",
    }
}

/// Records a grant of leadership to this process.
pub(crate) fn granted(election: &Path, term: u64) {
    let election = election.to_string();
    tracing::info!(%election, term, "leadership granted");
    metrics::counter!(GRANTS, "election" => election.clone()).increment(1);
    metrics::gauge!(LEADER, "election" => election.clone()).set(1.0);
    // Terms fit an f64 exactly up to 2^53, far beyond any real election.
    metrics::gauge!(TERM, "election" => election).set(term as f64);
}

/// Records the end of a leadership.
pub(crate) fn revoked(election: &Path, term: u64, reason: LossReason) {
    let election = election.to_string();
    tracing::info!(%election, term, %reason, reason_code = reason_label(reason), "leadership ended");
    metrics::counter!(REVOCATIONS, "election" => election.clone(), "reason" => reason_label(reason))
        .increment(1);
    metrics::gauge!(LEADER, "election" => election).set(0.0);
}

/// Records a write made as leader that the backend rejected as fenced. Called
/// by [`Leadership`](crate::Leadership)'s writes; code that writes with a fence
/// directly on a [`Backend`](crate::Backend) may call it too.
pub fn fenced_write_rejected(store: &'static str, election: &str, term: u64) {
    tracing::warn!(
        store,
        election,
        term,
        "fenced write rejected: this leadership is no longer current"
    );
    metrics::counter!(
        FENCED_WRITES_REJECTED,
        "store" => store,
        "election" => election.to_owned()
    )
    .increment(1);
}

/// Records one session status: the state gauge, and — when the session was
/// renewed — how much time was left before the `previous` renew deadline.
pub fn session_status(status: &SessionStatus, previous: Option<&SessionStatus>) {
    for state in STATES {
        let value = if state == status.state { 1.0 } else { 0.0 };
        metrics::gauge!(SESSION_STATE, "state" => state_label(state)).set(value);
    }
    let renewed = previous.is_some_and(|p| p.id == status.id)
        && status.renew_deadline.is_some()
        && previous.and_then(|p| p.renew_deadline) != status.renew_deadline;
    if let (true, Some(old)) = (renewed, previous.and_then(|p| p.renew_deadline)) {
        let now = Instant::now();
        let margin = if old >= now {
            (old - now).as_secs_f64()
        } else {
            -(now - old).as_secs_f64()
        };
        metrics::gauge!(RENEW_DEADLINE_MARGIN).set(margin);
    }
    let changed = previous.is_none_or(|p| p.state != status.state || p.id != status.id);
    if changed {
        metrics::counter!(SESSION_CHANGES, "state" => state_label(status.state)).increment(1);
        let (session, state) = (status.id.to_string(), state_label(status.state));
        match status.state {
            SessionState::Connected | SessionState::Closed => {
                tracing::info!(%session, state, "backend session state")
            }
            SessionState::Suspended | SessionState::Lost => {
                tracing::warn!(%session, state, "backend session state")
            }
        }
    }
}

/// Follows `backend`'s session and records every status (see
/// [`session_status`]) until the session is closed. Spawn it once per backend.
pub async fn watch_session(backend: DynBackend) {
    follow(backend.session()).await
}

async fn follow(mut status: watch::Receiver<SessionStatus>) {
    let mut previous: Option<SessionStatus> = None;
    loop {
        let current = *status.borrow_and_update();
        if previous != Some(current) {
            session_status(&current, previous.as_ref());
            previous = Some(current);
        }
        if current.state == SessionState::Closed || status.changed().await.is_err() {
            return;
        }
    }
}
