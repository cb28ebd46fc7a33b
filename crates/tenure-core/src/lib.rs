//! The core of [tenure](https://docs.rs/tenure): the model, the backend contract,
//! elections, the leader election service, leader retrieval and the memory
//! backend. Most users depend on the `tenure` facade, which re-exports all of this
//! and picks a backend from a URL.
//!
//! # The model
//!
//! - A [`Backend`] is one client process of a coordination service. It owns one
//!   process-wide session that every election of the process shares, a queue per
//!   election, and a key-value namespace whose writes can be *fenced*.
//! - An [`Election`] (made per resource by an [`ElectionFactory`]) campaigns and
//!   yields a [`Leadership`]: its term (fencing token), a leader session id, a
//!   cancellation token that fires the moment leadership ends, with the
//!   [`LossReason`], and fenced writes.
//! - The [`LeaderElectionService`] grants [`LeaderContender`]s leadership with a
//!   session id; they confirm it with an address, which is published only while
//!   they lead. A [`LeaderRetrieval`] follows any component's leader.
//! - [`observe`] names what tenure reports about itself: tracing events for
//!   grants, revocations, session states and fenced writes, and metrics through
//!   the `metrics` facade (exported only if the application installs a recorder).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use tenure_core::{ElectionFactory, Error, MemoryCluster, Path};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let cluster = MemoryCluster::new();
//! let (a, b) = (Arc::new(cluster.client()), Arc::new(cluster.client()));
//!
//! let first = ElectionFactory::new(a.clone()).new_election("scheduler")?;
//! let leadership = first.campaign().await?;
//! let state = Path::parse("key", "scheduler/state")?;
//! leadership.put(&state, b"v1").await?;
//!
//! // Process `a` stalls and its session expires: `b` takes over with a higher term...
//! let second = ElectionFactory::new(b.clone()).new_election("scheduler")?;
//! let waiting = tokio::spawn(async move { second.campaign().await });
//! a.expire_session();
//! let successor = waiting.await.unwrap()?;
//! assert!(successor.term() > leadership.term());
//!
//! // ...and the old leader's late write is fenced off: nothing changes.
//! let late = leadership.put_unchecked(&state, b"stale").await;
//! assert!(matches!(late, Err(Error::Fenced { .. })));
//! # Ok(())
//! # }
//! ```
//!
//! # The safety model
//!
//! Election alone cannot stop a paused or partitioned old leader from acting
//! after its lease expired on the server. tenure promises, on every backend:
//! terms that strictly increase and are never reused; writes made as leader that
//! are atomically conditional on still leading ([`Error::Fenced`] otherwise);
//! a lost-signal at the renew deadline, before the server can expire the session
//! ([`LossReason::RenewDeadlinePassed`]); retrieval that never goes back to an
//! older term; no grant for a candidate whose session expired while it waited;
//! and quiet close. What it cannot promise: that a process which ignores the
//! token, or writes somewhere unfenced, stops acting in time.
//!
//! # Backends
//!
//! | scheme | crate | crash of a holder detected by |
//! |---|---|---|
//! | `memory:` | this one ([`MemoryCluster`]) | explicit (tests expire sessions) |
//! | `local:///dir` | `tenure-local` | the kernel releasing the dead holder's lock |
//! | `etcd://h:p,…/prefix` | `tenure-etcd` | lease TTL; the holder steps down at its renew deadline |
//! | `zk://h:p,…/chroot` | `tenure-zookeeper` | session timeout; the holder steps down at its renew deadline |
//!
//! A new backend implements [`Backend`] (helpers in [`backend::support`]) and
//! proves it with one line: `tenure_core::conformance_suite!(new_cluster())`.
//!
//! # Names
//!
//! Every id is checked once at the edge (see [`name`]): 1–128 bytes of
//! `[A-Za-z0-9._-]`, not `.` or `..`.

pub mod backend;
pub mod checksum;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod election;
pub mod error;
pub mod ha;
pub mod leader_election;
mod leader_info;
pub mod leadership;
mod loss;
pub mod memory;
pub mod name;
pub mod observe;
pub mod retrieval;
pub mod url;

pub use backend::{
    Backend, Candidate, Capabilities, Condition, DynBackend, Grant, Guard, KvEvent, Layout,
    LeaderRecord, SessionId, SessionState, SessionStatus, Versioned,
};
pub use election::{ConnectionPolicy, Election, ElectionFactory, ElectionOptions};
pub use error::{BoxError, Error, Result};
pub use leader_election::{
    ElectionMode, LeaderContender, LeaderElection, LeaderElectionService, StandaloneLeaderElection,
    DEFAULT_LEADER_SESSION_ID,
};
pub use leader_info::{flink, LeaderInfo, MAX_ADDRESS_LEN};
pub use leadership::{Leadership, LossReason};
pub use memory::{MemoryBackend, MemoryCluster};
pub use name::{Id, Path};
pub use retrieval::{follow_election, LeaderRetrieval, LeaderRetrievalListener, RetrievalHandle};
pub use url::{BackendUrl, Secret};
