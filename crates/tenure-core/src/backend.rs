//! The backend contract: the one trait a coordination service implements.
//!
//! The trait holds primitives only; elections, the leader election service,
//! retrieval and the HA stores are written once, on top of it. Every method says
//! what an implementation MUST guarantee; the conformance suite
//! (feature `conformance`) checks those guarantees on every backend.
//!
//! # Writing a backend
//!
//! Every backend crate is laid out alike, so moving from one to another feels
//! like the same building (the etcd, ZooKeeper and local crates follow it; the
//! memory backend is the same split inside `tenure_core::memory`):
//!
//! | file | holds |
//! |---|---|
//! | `lib.rs` | the crate's guide (docs, a runnable example) and re-exports |
//! | `config.rs` | the configuration: a builder with `with_*` setters and the URL form (`scheme://host:port,…/namespace?option=…`); host lists through [`check_host_port`](crate::url::check_host_port), passwords in [`Secret`](crate::Secret) |
//! | `backend.rs` | the backend type, connecting, closing, and `impl Backend`, whose methods only delegate to the files below |
//! | `session.rs` | the process-wide session: keep-alive, renew deadline, state changes |
//! | `campaign.rs` | the candidate queue: join, wait to be first, confirm before granting (no phantom leader), withdraw, resign, leader, candidates |
//! | `kv.rs` | fenced writes (the fence checked atomically with the write, at the server; failures via [`Error::fenced`](crate::Error::fenced)), reads, list, watch |
//! | `leader_watch.rs` | the leader stream, usually through [`support::LeaderWatches`] |
//! | `error.rs` | mapping the client's errors into [`Error`](crate::Error), retryable ones to `Unavailable` |
//!
//! Helpers every backend needs (value-size and condition checks, queues for
//! streams) are in [`support`]. A backend's tests run the whole conformance
//! suite with one line, `tenure_core::conformance_suite!(new_cluster())`, against
//! real servers started by `tenure-testkit`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Result;
use crate::name::Path;

mod leader_watches;
mod queue;

/// A backend picked at run time, shared by every election of the process.
pub type DynBackend = Arc<dyn Backend>;

/// The identity of one backend session (an etcd lease, a ZooKeeper session, a
/// held lock, a simulated session). Unique per backend client for its lifetime:
/// a session that is lost is replaced by one with a different id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// The state of a backend session, as the process sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// The session is alive and the server confirms it.
    Connected,
    /// The server cannot be reached; the session may still be alive there, until
    /// the renew deadline at the latest.
    Suspended,
    /// The session is gone: every candidate on it was removed by the server.
    Lost,
    /// The backend was closed.
    Closed,
}

/// A snapshot of the process-wide session, published by [`Backend::session`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// Which session this status is about.
    pub id: SessionId,
    /// Its state.
    pub state: SessionState,
    /// The instant (local monotonic clock) before which the server cannot have
    /// expired this session: last confirmed renewal + TTL − safety margin. `None`
    /// when the session does not rest on a TTL (memory while connected, local).
    pub renew_deadline: Option<Instant>,
}

/// What a backend can do, read by generic code and the conformance suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The scheme of the backend's URL (`memory`, `local`, `etcd`, `zk`).
    pub scheme: &'static str,
    /// The backend's state (terms, keys) survives a restart of the backend.
    pub durable: bool,
    /// Sessions rest on a TTL and publish a renew deadline.
    pub ttl_sessions: bool,
    /// The largest value accepted by [`Backend::put`], in bytes.
    pub max_value_size: usize,
    /// Whose layout the stored records follow: tenure's own, or Apache
    /// Flink's (a ZooKeeper client with `layout=flink`), which the leader
    /// election and HA services then write in Flink's formats.
    pub layout: Layout,
}

/// Whose record formats and names a backend's keys follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// tenure's own formats.
    #[default]
    Tenure,
    /// Apache Flink 2.x's ZooKeeper HA layout: Curator LeaderLatch nodes with
    /// empty data, `connection_info` records in Flink's Java-serialized form
    /// (see [`flink`](crate::flink)) as ephemeral nodes of the leader's
    /// session, and Flink 2.x's names for the HA stores.
    Flink,
}

impl Layout {
    /// The layout named `name` (`tenure` or `flink`), as in a URL's `layout`
    /// option.
    pub fn parse(name: &str) -> crate::Result<Self> {
        match name {
            "tenure" => Ok(Layout::Tenure),
            "flink" => Ok(Layout::Flink),
            _ => Err(crate::Error::invalid(
                "layout",
                name,
                "must be tenure or flink",
            )),
        }
    }
}

impl Capabilities {
    /// Capabilities with every flag off and a 1 MiB value limit.
    pub const fn new(scheme: &'static str) -> Self {
        Capabilities {
            scheme,
            durable: false,
            ttl_sessions: false,
            max_value_size: 1024 * 1024,
            layout: Layout::Tenure,
        }
    }

    /// Sets [`Capabilities::layout`].
    pub const fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets [`Capabilities::durable`].
    pub const fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sets [`Capabilities::ttl_sessions`].
    pub const fn with_ttl_sessions(mut self, ttl_sessions: bool) -> Self {
        self.ttl_sessions = ttl_sessions;
        self
    }

    /// Sets [`Capabilities::max_value_size`].
    pub const fn with_max_value_size(mut self, max_value_size: usize) -> Self {
        self.max_value_size = max_value_size;
        self
    }
}

/// A granted place at the head of an election's queue: the fencing handle.
///
/// Backends fill `key` with whatever identifies the candidate to them (an etcd
/// key, a znode path, a queue entry id); generic code treats it as opaque.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The election.
    pub election: Path,
    /// The fencing token: strictly greater than every earlier grant's term in
    /// this election, never reused, even across backend restarts (where
    /// [`Capabilities::durable`]).
    pub term: u64,
    /// The session the candidate lives on; losing it ends the grant.
    pub session: SessionId,
    /// The backend's own name for the candidate.
    pub key: String,
}

/// The current leader of an election, as any observer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRecord {
    /// The leader's term.
    pub term: u64,
    /// The value the leader campaigned with (its participant id or proposal).
    pub value: Vec<u8>,
    /// The leader's session, where the backend tells it (every backend of
    /// this workspace does): lets a reader tell which values that session
    /// owns (see [`Versioned::owner`]).
    pub session: Option<SessionId>,
}

/// One waiting or leading candidate, in queue order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The term this candidate will lead with (or leads with).
    pub term: u64,
    /// The value it campaigned with.
    pub value: Vec<u8>,
}

/// A stored value with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes.
    pub value: Vec<u8>,
    /// Grows with every write to the key, also across a delete and a
    /// re-create, and is never 0; use it with [`Condition::Version`].
    pub version: u64,
    /// The session the value lives and dies with, if it is ephemeral (a
    /// ZooKeeper ephemeral node, an etcd key under a lease); `None` for a
    /// value that outlives every session.
    pub owner: Option<SessionId>,
}

/// The precondition of a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Condition {
    /// Write unconditionally.
    #[default]
    Any,
    /// Create: fail with [`Error::AlreadyExists`](crate::Error::AlreadyExists) if
    /// the key exists.
    Absent,
    /// Compare-and-set: fail with
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch) unless the key
    /// exists at exactly this version.
    Version(u64),
}

/// How a write is guarded: its [`Condition`] and, for a leader's write, the
/// [`Grant`] that must still lead when it lands (see [`Backend::put`]).
///
/// ```
/// use tenure_core::{Condition, Guard};
///
/// let create = Guard::when(Condition::Absent);
/// assert_eq!(create.condition, Condition::Absent);
/// assert!(create.fence.is_none());
/// assert_eq!(Guard::ANY, Guard::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Guard<'a> {
    /// What must hold of the key's current version.
    pub condition: Condition,
    /// The leadership the write is fenced by: it lands only if this grant is
    /// still its election's current leader.
    pub fence: Option<&'a Grant>,
    /// The value lives only as long as the writing client's session: it is
    /// removed when that session ends (closed or expired), and
    /// [`Versioned::owner`] names the session. A later write of the key
    /// decides anew (a plain write makes it lasting).
    pub ephemeral: bool,
}

impl<'a> Guard<'a> {
    /// Unconditional and unfenced.
    pub const ANY: Guard<'static> = Guard {
        condition: Condition::Any,
        fence: None,
        ephemeral: false,
    };

    /// A write guarded by `condition` and, if given, by `fence`.
    pub fn new(condition: Condition, fence: Option<&'a Grant>) -> Self {
        Guard {
            condition,
            fence,
            ephemeral: false,
        }
    }

    /// An unfenced write guarded by `condition`.
    pub fn when(condition: Condition) -> Self {
        Guard::new(condition, None)
    }

    /// An unconditional write fenced by `grant`.
    pub fn fenced(grant: &'a Grant) -> Self {
        Guard::new(Condition::Any, Some(grant))
    }

    /// The same write, of a value that ends with the writer's session (see
    /// [`Guard::ephemeral`](Guard#structfield.ephemeral)).
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self
    }
}

/// A change under a watched prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// The key was created or overwritten.
    Put {
        /// The key.
        key: String,
        /// Its new value and version.
        value: Versioned,
    },
    /// The key was deleted.
    Delete {
        /// The key.
        key: String,
    },
}

impl KvEvent {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            KvEvent::Put { key, .. } | KvEvent::Delete { key } => key,
        }
    }
}

/// A coordination service, as tenure uses it.
///
/// One backend value is one client process: it owns one process-wide session that
/// every election of the process shares. Implementations must be cheap to share
/// (`Arc<dyn Backend>`) and every method must be callable concurrently.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// The process-wide session, as a watch channel of its status.
    ///
    /// MUST: publish every change of state, and a new [`SessionId`] whenever a lost
    /// session is replaced (a watcher that misses `Lost` still sees the id change);
    /// keep `renew_deadline` current on every renewal; publish `Lost` only after
    /// the server can no longer hold any candidate of that session; never reuse a
    /// session id.
    fn session(&self) -> watch::Receiver<SessionStatus>;

    /// Whether the server still holds session `id`.
    ///
    /// MUST: return `false` once the server has expired or closed the session,
    /// even before [`Backend::session`] publishes the loss. Generic code asks this
    /// when a candidate disappears, to tell a lost session from a deleted key.
    async fn session_alive(&self, id: SessionId) -> Result<bool>;

    /// Joins `election`'s queue with `value` under session `session`, and waits
    /// until this candidate is first.
    ///
    /// MUST: fail with [`Error::SessionExpired`](crate::Error::SessionExpired)
    /// (removing the candidate) if `session` is not the current live session, or
    /// is lost while waiting — a grant is returned only after the backend has
    /// confirmed that the candidate still exists under the live session (no
    /// phantom leader); grant waiting candidates in the order they joined; give
    /// the grant a term greater than every earlier term of the election. If the
    /// returned future is dropped before it completes, the candidate MUST be
    /// removed promptly and never granted.
    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant>;

    /// Removes the candidate of `grant` from its queue, handing leadership to the
    /// next candidate. Idempotent: resigning a candidate that is already gone
    /// succeeds.
    async fn resign(&self, grant: &Grant) -> Result<()>;

    /// The current leader of `election`, or `None` when nobody leads.
    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>>;

    /// The candidates of `election`, leader first, in grant order.
    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>>;

    /// The leader of `election` now and after every change.
    ///
    /// MUST: yield the current leader (or `None`) first, then every change of
    /// leader in the order the backend applied them; never yield the same record
    /// twice in a row; never yield an older term after a newer one unless a
    /// `None` lies between them (a newer leader resigned and an older waiting
    /// candidate cannot then exist, so this only happens across restarts of a
    /// non-durable backend). A stream that ends or errors must be re-opened by
    /// the caller.
    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>>;

    /// Reads one key.
    async fn get(&self, key: &Path) -> Result<Option<Versioned>>;

    /// Every key at or below `prefix` (segment-wise: `a/b` is below `a`, `ab` is
    /// not), in key order.
    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>>;

    /// Changes at or below `prefix`.
    ///
    /// MUST: deliver every change made after the stream is returned, in the order
    /// the backend applied them, with no gaps (if the backend cannot, the stream
    /// ends with an error and the caller re-lists). It MAY also deliver changes
    /// made shortly before it was opened (an etcd watch starts at the revision
    /// of the member that serves it, which can lag the one that served an
    /// earlier read); versions only grow, so compare them to skip what was
    /// already seen.
    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>>;

    /// Writes `value` at `key` if `guard.condition` holds and, when
    /// `guard.fence` is given, only if that grant is still its election's current leader under a live
    /// session — all checked atomically with the write, at the backend.
    ///
    /// The grant may come from another client of the same backend (another
    /// process, e.g. a script handed `TENURE_FENCE`): the fence is checked
    /// against the backend's state, not the writer's session, and a grant whose
    /// term, session or candidate key is not its election's current leader's
    /// never holds.
    ///
    /// MUST: on a failed condition or fence, change nothing and return
    /// [`Error::Fenced`](crate::Error::Fenced),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) or
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch) (fence checked
    /// first); reject values above [`Capabilities::max_value_size`] with
    /// [`Error::TooLarge`](crate::Error::TooLarge). Returns the new version.
    async fn put(&self, key: &Path, value: &[u8], guard: Guard<'_>) -> Result<u64>;

    /// Deletes `key` under the same rules as [`Backend::put`]. Returns whether a
    /// key was deleted; with [`Condition::Version`] a missing key is
    /// [`Error::NotFound`](crate::Error::NotFound).
    async fn delete(&self, key: &Path, guard: Guard<'_>) -> Result<bool>;

    /// Ends the session (removing its candidates) and releases the client.
    /// Afterwards the session state is `Closed` and every call fails with
    /// [`Error::Closed`](crate::Error::Closed).
    async fn close(&self) -> Result<()>;
}

/// Helpers for backend implementations: the stream and session plumbing every
/// backend needs, written once.
pub mod support {
    pub use super::leader_watches::{LeaderWatches, OPENING_AT_ONCE};
    pub use super::queue::{queue, QueueReceiver, QueueSender};
    use futures_util::stream::BoxStream;
    use futures_util::StreamExt;
    use tokio::sync::watch;

    use super::{Condition, SessionState, SessionStatus};
    use crate::error::{Error, Result};

    /// Refuses a value above `limit` bytes (the backend's
    /// [`max_value_size`](super::Capabilities::max_value_size)).
    pub fn check_value_size(value: &[u8], limit: usize) -> Result<()> {
        if value.len() > limit {
            return Err(Error::TooLarge {
                field: "value",
                size: value.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Checks `fence` (if any) for a backend that keeps its election queues
    /// itself (memory, local), under its own lock: the fence holds if
    /// `head(election)` — the candidate heading the election's queue, as
    /// `(term, session)` — is the grant's, and `live(session)`. The grant may
    /// be another client's. Fails with [`Error::Fenced`].
    pub fn check_queue_fence(
        fence: Option<&super::Grant>,
        head: impl FnOnce(&crate::name::Path) -> Option<(u64, u64)>,
        live: impl FnOnce(u64) -> bool,
    ) -> Result<()> {
        let Some(grant) = fence else { return Ok(()) };
        let current = head(&grant.election) == Some((grant.term, grant.session.0));
        if current && live(grant.session.0) {
            Ok(())
        } else {
            Err(Error::fenced(&grant.election, grant.term))
        }
    }

    /// Checks a put's `condition` against the key's `current` version, with the
    /// errors the [`Backend::put`](super::Backend::put) contract names.
    pub fn check_put(key: &str, condition: Condition, current: Option<u64>) -> Result<()> {
        match (condition, current) {
            (Condition::Any, _) | (Condition::Absent, None) => Ok(()),
            (Condition::Absent, Some(_)) => Err(Error::AlreadyExists {
                key: key.to_owned(),
            }),
            (Condition::Version(v), Some(found)) if v == found => Ok(()),
            (Condition::Version(expected), actual) => Err(Error::VersionMismatch {
                key: key.to_owned(),
                expected,
                actual,
            }),
        }
    }

    /// Refuses [`Condition::Absent`] on a delete, which has no meaning there.
    pub fn check_delete_condition(condition: Condition) -> Result<()> {
        if condition == Condition::Absent {
            return Err(Error::invalid(
                "condition",
                "Absent",
                "a delete may be unconditional or conditional on a version",
            ));
        }
        Ok(())
    }

    /// Checks a delete's `condition` against the key's `current` version, with
    /// the errors the [`Backend::delete`](super::Backend::delete) contract names.
    pub fn check_delete(key: &str, condition: Condition, current: Option<u64>) -> Result<()> {
        check_delete_condition(condition)?;
        match (condition, current) {
            (Condition::Version(_), None) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            _ => check_put(key, condition, current),
        }
    }

    /// The receiving end of a [`queue`] as the boxed stream the
    /// [`Backend`](super::Backend) watch methods return.
    pub fn channel_stream<T: Send + 'static>(
        rx: QueueReceiver<Result<T>>,
    ) -> BoxStream<'static, Result<T>> {
        let mut rx = rx;
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    /// Resolves once the session is `Closed` (or its sender is gone): a
    /// backend's streams end then.
    pub async fn closed(status: &mut watch::Receiver<SessionStatus>) {
        while status.borrow_and_update().state != SessionState::Closed {
            if status.changed().await.is_err() {
                return;
            }
        }
    }
}
