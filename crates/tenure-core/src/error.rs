//! The one error type of tenure.

use std::fmt;

use crate::loss::LossReason;

/// A boxed error from a backend's own client, kept in the chain as `source`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every fallible tenure operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tenure, in terms a caller can act on.
///
/// Backends keep their own private errors and map them into these variants; the
/// backend's message stays reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value supplied by the caller breaks a rule. `field` names the input
    /// (`"election"`, `"component_id"`, `"url"`, ...), `rule` says what is allowed.
    #[error("invalid {field} {value:?}: {rule}")]
    InvalidInput {
        /// Which input was wrong.
        field: &'static str,
        /// The offending value, shortened to at most 64 characters.
        value: String,
        /// What is allowed instead.
        rule: String,
    },

    /// A value is larger than the backend or tenure accepts.
    #[error("{field} is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge {
        /// Which input was too large.
        field: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The largest size allowed.
        limit: usize,
    },

    /// A write fenced by a leadership was rejected because that leadership is no
    /// longer current: another candidate leads, or the session behind it is gone.
    /// Nothing was changed.
    #[error("fenced: leadership of election {election:?} with term {term} is no longer current; nothing was written")]
    Fenced {
        /// The election whose leadership fenced the write.
        election: String,
        /// The term of the stale leadership.
        term: u64,
    },

    /// The operation needed a leadership that has ended.
    #[error("leadership lost: {reason}")]
    LeadershipLost {
        /// Why it ended.
        reason: LossReason,
    },

    /// The caller named a leader session id that does not (or no longer) lead.
    #[error("leader session {session_id} does not hold leadership")]
    NotLeader {
        /// The session id the caller named.
        session_id: uuid::Uuid,
    },

    /// The backend session this operation relied on has expired or been lost.
    #[error("backend session {session} expired")]
    SessionExpired {
        /// The expired session.
        session: u64,
    },

    /// A key that had to exist does not.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },

    /// A create-if-absent write found the key already present.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },

    /// A compare-and-set write found a different version than expected.
    #[error("key {key:?} is at version {actual:?}, expected {expected}")]
    VersionMismatch {
        /// The key.
        key: String,
        /// The version the write was conditional on.
        expected: u64,
        /// The version found, `None` if the key is absent.
        actual: Option<u64>,
    },

    /// A stored record could not be decoded. Nothing was overwritten.
    #[error("corrupted record at {key:?}: {reason}")]
    Corrupted {
        /// The key holding the record.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The backend cannot be reached right now; retrying later may succeed.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The backend client's own error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The operation was cancelled by the caller before it completed.
    #[error("cancelled")]
    Cancelled,

    /// The election, service or backend was closed.
    #[error("{what} is closed")]
    Closed {
        /// What was closed.
        what: &'static str,
    },

    /// The backend does not support this operation.
    #[error("not supported by the {backend} backend: {what}")]
    Unsupported {
        /// The backend's scheme.
        backend: &'static str,
        /// The operation.
        what: &'static str,
    },

    /// The backend failed in a way that retrying will not fix.
    #[error("backend error: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The backend client's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// Whether retrying the same operation later may succeed (the backend was
    /// unreachable or the session was replaced), as opposed to a permanent failure.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::SessionExpired { .. }
        )
    }

    /// The same error for another receiver: every field is kept, except that a
    /// backend client's own error (`source`) becomes part of the message.
    pub(crate) fn duplicate(&self) -> Error {
        let with_source = |message: &str, source: &Option<BoxError>| match source {
            Some(source) => format!("{message}: {source}"),
            None => message.to_owned(),
        };
        match self {
            Error::InvalidInput { field, value, rule } => Error::InvalidInput {
                field,
                value: value.clone(),
                rule: rule.clone(),
            },
            Error::TooLarge { field, size, limit } => Error::TooLarge {
                field,
                size: *size,
                limit: *limit,
            },
            Error::Fenced { election, term } => Error::Fenced {
                election: election.clone(),
                term: *term,
            },
            Error::LeadershipLost { reason } => Error::LeadershipLost { reason: *reason },
            Error::NotLeader { session_id } => Error::NotLeader {
                session_id: *session_id,
            },
            Error::SessionExpired { session } => Error::SessionExpired { session: *session },
            Error::NotFound { key } => Error::NotFound { key: key.clone() },
            Error::AlreadyExists { key } => Error::AlreadyExists { key: key.clone() },
            Error::VersionMismatch {
                key,
                expected,
                actual,
            } => Error::VersionMismatch {
                key: key.clone(),
                expected: *expected,
                actual: *actual,
            },
            Error::Corrupted { key, reason } => Error::Corrupted {
                key: key.clone(),
                reason: reason.clone(),
            },
            Error::Unavailable { message, source } => Error::Unavailable {
                message: with_source(message, source),
                source: None,
            },
            Error::Cancelled => Error::Cancelled,
            Error::Closed { what } => Error::Closed { what },
            Error::Unsupported { backend, what } => Error::Unsupported { backend, what },
            Error::Backend { message, source } => Error::Backend {
                message: with_source(message, source),
                source: None,
            },
        }
    }

    /// An [`Error::InvalidInput`] for `field`, shortening `value` for the message.
    pub fn invalid(field: &'static str, value: &str, rule: impl fmt::Display) -> Self {
        let mut shown: String = value.chars().take(64).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        Error::InvalidInput {
            field,
            value: shown,
            rule: rule.to_string(),
        }
    }

    /// `value` if it lies in `range`, else an [`Error::InvalidInput`] for
    /// `field` that names the range allowed.
    pub fn check_range<T: PartialOrd + fmt::Debug>(
        field: &'static str,
        value: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T> {
        if range.contains(&value) {
            return Ok(value);
        }
        let (min, max) = range.into_inner();
        Err(Error::invalid(
            field,
            &format!("{value:?}"),
            format!("must be between {min:?} and {max:?}"),
        ))
    }

    /// An [`Error::Fenced`]: the leadership of `election` with `term` is no
    /// longer current, so the write it fenced changed nothing. Every backend
    /// reports a failed fence with this.
    pub fn fenced(election: impl fmt::Display, term: u64) -> Self {
        Error::Fenced {
            election: election.to_string(),
            term,
        }
    }

    /// An [`Error::Unavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: None,
        }
    }
}
