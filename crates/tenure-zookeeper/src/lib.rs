//! The `zk://` backend of [tenure](https://docs.rs/tenure): Apache ZooKeeper,
//! interoperating with Apache Curator's LeaderLatch.
//!
//! - **One ZooKeeper session per process**, shared by every election of the
//!   process. When the server expires it, every leadership on it ends (reason
//!   `SessionLost`), a new session is opened and campaigns resume.
//! - **Connection states**: a lost connection makes the session *suspended*
//!   (leaderships end at once under the default `RevokeOnSuspended` policy, as
//!   Curator's standard one); under `RevokeOnLost` (Flink's tolerate-suspended
//!   mode) they end at the renew deadline at the latest: the send time of the
//!   last answered heartbeat + the negotiated session timeout − a margin, which
//!   comes before the server can expire the session.
//! - **Curator's LeaderLatch layout**: candidates are protected
//!   EPHEMERAL_SEQUENTIAL nodes `/<chroot>/<election>/_c_<uuid>-latch-<sequence>`
//!   whose data is the participant id; the leader is the lowest sequence; each
//!   waiting candidate watches only its predecessor (no herd effect). The term is
//!   the node's czxid, which only grows. Before a grant the candidate checks that
//!   its node's ephemeral owner is its own session (Curator's CURATOR-696). A
//!   Curator `LeaderLatch` on the same path takes turns with tenure candidates.
//! - **Fenced writes** are one `multi`: a check that the leader's candidate node
//!   still exists (its name holds a fresh UUID and a sequence, so it exists only
//!   as that very candidate of its live session) plus the write. A stale
//!   leader's write fails and changes nothing.
//! - **Values** are persistent znodes at `/<chroot>/<key>`, stored with a
//!   two-byte header so that directories (empty data) and foreign data are told
//!   apart: a node under tenure's paths whose data does not decode is a
//!   `Corrupted` error naming the node. The version is the node's mzxid. Empty
//!   parent znodes are left in place when a value is deleted.
//! - **ACLs**: with digest credentials every node is created so that only the
//!   same credentials can change or delete it; anyone may read.
//!
//! - **Apache Flink's layout** (`layout=flink`, [`Layout::Flink`]): values are
//!   stored as bare bytes, as Flink's ZooKeeper HA services store theirs;
//!   latch nodes carry empty data, and the leader election and HA services
//!   write Flink's `connection_info` records (ephemeral, in the leader's
//!   session) and Flink 2.x's names. A leader retrieval reads a real Flink
//!   JobManager's records (the term is the latch node's czxid, and a record
//!   counts only while the latch leader's session owns it), and Flink's own
//!   retrieval reads tenure's. In the default layout a Flink node is a
//!   `Corrupted` error that says to use `layout=flink`.
//! - **Ephemeral values** ([`Guard::ephemeral`](tenure_core::Guard#structfield.ephemeral))
//!   are EPHEMERAL znodes of the client's session; a write that changes a
//!   value's lifetime deletes and creates the node in one `multi`.
//!
//! URL: `zk://host:port[,host:port...]/chroot?session_timeout=10s` with optional
//! `connect_timeout`, `layout` (`tenure` or `flink`), `user` and
//! `password_file` (digest credentials; the
//! password never appears in `Debug` output or logs). The server may clamp the
//! session timeout to its limits: the negotiated value is logged and reported by
//! [`ZkBackend::negotiated_session_timeout`].

mod backend;
mod campaign;
mod config;
mod error;
mod keys;
mod kv;
mod leader_watch;
mod session;

pub use backend::{ZkBackend, MAX_VALUE_SIZE};
pub use config::{
    ZkConfig, DEFAULT_CHROOT, DEFAULT_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT, MIN_SESSION_TIMEOUT,
};
/// Re-exported: the `layout` of [`ZkConfig::with_layout`].
pub use tenure_core::Layout;
