//! Real coordination servers for tenure's tests.
//!
//! The kit starts `etcd` processes — single nodes and clusters — on free
//! loopback ports, with data, logs and (optionally) TLS certificates in a
//! temporary directory, and gives tests the faults that matter for leader
//! election: [`kill`](EtcdCluster::kill) a member (SIGKILL),
//! [`restart`](EtcdCluster::restart) it with its data,
//! [`pause`](EtcdCluster::pause) it (SIGSTOP) and [`resume`](EtcdCluster::resume)
//! it. Dropping an [`EtcdCluster`] kills its processes and removes its directory,
//! also when the test panics.
//!
//! It is synchronous and std-only: call it from `#[test]`s or before a tokio
//! runtime starts. It needs the `etcd`, `etcdctl` and (for TLS) `openssl`
//! programs; when one is missing the test fails with an install hint, it is
//! never skipped.
//!
//! ```
//! # fn main() -> Result<(), tenure_testkit::TestkitError> {
//! use tenure_testkit::EtcdCluster;
//!
//! let etcd = EtcdCluster::cluster(3)?;
//! let leader = etcd.leader().expect("a ready cluster has a leader");
//! etcd.kill(leader);
//! etcd.wait_ready()?; // the other two elect a new leader
//! assert_ne!(etcd.leader(), Some(leader));
//! etcd.restart(leader)?;
//! # Ok(())
//! # }
//! ```
//!
//! Every server listens on 127.0.0.1 only; every wait is bounded by
//! [`READY_TIMEOUT`] and fails with the tail of the members' logs.

#![doc(test(attr(deny(warnings))))]

mod error;
mod etcd;
mod ports;
mod process;
mod temp;

pub use error::TestkitError;
pub use etcd::{EtcdCluster, EtcdOptions, TlsFiles, READY_TIMEOUT};
