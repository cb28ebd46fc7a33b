//! The `memory:` backend: linearizable, in-process, and able to play several
//! processes.
//!
//! A [`MemoryCluster`] is the "server"; each [`MemoryBackend`] made by
//! [`MemoryCluster::client`] is one "process" with its own session. Tests (yours
//! and tenure's) can [`suspend`](MemoryBackend::suspend),
//! [`partition`](MemoryBackend::partition), [`heal`](MemoryBackend::heal) and
//! [`expire_session`](MemoryBackend::expire_session) a client to see what their
//! code does when a real coordination service misbehaves. It is a product
//! feature, in the spirit of Flink's embedded HA services, not a mock: it keeps
//! every guarantee of the [`Backend`](crate::Backend) contract.
//!
//! Inside: `server.rs` is the linearizable state every client shares (and the
//! [`MemoryCluster`] handle to it), `cluster.rs` makes clients, `backend.rs` is
//! one client: the [`Backend`](crate::Backend) implementation.

use std::time::Duration;

mod backend;
mod cluster;
mod server;

pub use backend::MemoryBackend;
pub use server::MemoryCluster;

/// The default session TTL of memory clients: how long a partitioned client's
/// session survives on the "server".
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
