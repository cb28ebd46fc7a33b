//! Real coordination servers for tenure's tests.
//!
//! The kit starts real servers — `etcd` processes ([`EtcdCluster`]) and
//! ZooKeeper JVMs ([`ZkCluster`]), single nodes and 3-member clusters — on free
//! loopback ports, with data, logs and (for etcd, optionally) TLS certificates
//! in a temporary directory, and gives tests the faults that matter for leader
//! election: [`kill`](EtcdCluster::kill) a member (SIGKILL),
//! [`restart`](EtcdCluster::restart) it with its data,
//! [`pause`](EtcdCluster::pause) it (SIGSTOP) and [`resume`](EtcdCluster::resume)
//! it — the same methods on [`ZkCluster`]. Dropping a cluster kills its processes and removes its directory, also
//! when the test panics; a watchdog does it when the test process dies without
//! dropping it (a shared cluster in a `static`, a SIGKILL).
//!
//! Both are a [`ServerGroup`], which does all of that once for any
//! [`ServerKind`] ([`Etcd`], [`ZooKeeper`]): a kind says only how a member is
//! configured, launched and probed, and who leads. Fault-injection code
//! written for `&ServerGroup<K>` works on every kind.
//!
//! It is synchronous and std-only: call it from `#[test]`s or before a tokio
//! runtime starts.
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
//! # ZooKeeper
//!
//! [`ZkCluster`] runs ZooKeeper 3.8 servers with a 200 ms tick, so sessions of
//! 1 s to 60 s are granted as asked ([`ZkOptions`]), and every four-letter word
//! allowed ([`four_letter`](ZkCluster::four_letter)). [`CuratorLatch`] runs a
//! Curator `LeaderLatch` in a JVM of its own: the reference participant that
//! tenure's ZooKeeper backend must share an election with.
//!
//! ```
//! # fn main() -> Result<(), tenure_testkit::TestkitError> {
//! use tenure_testkit::ZkCluster;
//!
//! let zk = ZkCluster::ensemble(3)?;
//! let leader = zk.leader().expect("a ready ensemble has a leader");
//! zk.kill(leader);
//! zk.wait_ready()?; // the other two elect a new leader
//! assert_ne!(zk.leader(), Some(leader));
//! zk.restart(leader)?; // it rejoins as a follower
//! assert!(zk.four_letter(leader, "srvr")?.contains("Mode: follower"));
//! # Ok(())
//! # }
//! ```
//!
//! # Apache Flink
//!
//! [`FlinkJobManager`] runs a real Flink 2.3 JobManager in ZooKeeper HA mode;
//! several started with the same [`FlinkOptions`] share one election, as in a
//! production HA setup. [`FlinkRetrievalProbe`] runs Flink's own leader
//! retrieval on one [`FlinkComponent`] and reports each leader it is told
//! of: the reference that tenure's ZooKeeper backend, standing in for a
//! JobManager, must satisfy.
//!
//! ```
//! # fn main() -> Result<(), tenure_testkit::TestkitError> {
//! use tenure_testkit::{FlinkJobManager, FlinkOptions, ZkCluster, READY_TIMEOUT};
//!
//! let zk = ZkCluster::standalone()?;
//! let options = FlinkOptions::default();
//! let first = FlinkJobManager::start(&zk.connect_string(), &options)?;
//! let second = FlinkJobManager::start(&zk.connect_string(), &options)?;
//! let session = first.wait_leader(READY_TIMEOUT)?; // started first, leads
//! first.stop()?; // graceful: its latch closes, the standby takes over at once
//! assert_ne!(second.wait_leader(READY_TIMEOUT)?, session);
//! # Ok(())
//! # }
//! ```
//!
//! # Kubernetes
//!
//! [`KubeApiserver`] runs a real kube-apiserver 1.20.2 — HTTPS on a loopback
//! port, static bearer tokens (an admin and a user without roles), RBAC — on
//! an etcd of its own. Debian ships no apiserver binary, so the first use
//! builds one from Debian's `kubernetes` source package with Debian's Go,
//! once per target directory ([`kube_apiserver_binary`], about three
//! minutes); later starts take a few seconds. Requests go through `curl`.
//!
//! ```
//! # fn main() -> Result<(), tenure_testkit::TestkitError> {
//! use tenure_testkit::KubeApiserver;
//!
//! let api = KubeApiserver::shared(); // one per test binary
//! api.create_namespace("election-a")?;
//! let lease = r#"{"metadata":{"name":"leader"},"spec":{"holderIdentity":"a"}}"#;
//! let path = "/apis/coordination.k8s.io/v1/namespaces/election-a/leases";
//! let (status, _) = api.request(api.admin_token(), "POST", path, Some(lease))?;
//! assert_eq!(status, 201);
//! # Ok(())
//! # }
//! ```
//!
//! # What must be installed
//!
//! etcd needs the `etcd`, `etcdctl` and (for TLS) `openssl` programs;
//! ZooKeeper needs `java` and Debian's `zookeeper` package, and
//! [`CuratorLatch`] needs `javac` and the `libcurator-*-java` packages.
//! [`FlinkJobManager`] and [`FlinkRetrievalProbe`] need `java`, `javac`,
//! `python3` with its `venv` module (Debian's `python3-venv`) and PyPI
//! reachable: their first use pip-installs Flink's jars ([`flink_lib_dir`]).
//! [`KubeApiserver`] needs `etcd`, `openssl` and `curl`, and to build the
//! apiserver Debian's `golang-go`, `dpkg-dev` and
//! `golang-github-modern-go-reflect2-dev` and the Debian archive reachable
//! (or `TENURE_KUBE_APISERVER` naming a binary).
//! `scripts/deps.sh` installs them all. When one is missing the test fails
//! with an install hint naming the package; it is never skipped.
//!
//! Every server listens on 127.0.0.1 only; every wait is bounded by
//! [`READY_TIMEOUT`] and fails with the tail of the servers' logs.

#![doc(test(attr(deny(warnings))))]

mod cache;
mod error;
mod etcd;
mod flink;
mod group;
mod kubernetes;
mod log;
mod ports;
mod process;
mod route;
mod temp;
mod zookeeper;

pub use error::TestkitError;
pub use etcd::{Etcd, EtcdCluster, EtcdOptions, EtcdPorts, TlsFiles};
pub use flink::{
    flink_lib_dir, FlinkComponent, FlinkJobManager, FlinkLeader, FlinkOptions, FlinkRetrievalProbe,
};
pub use group::{Member, ServerGroup, ServerKind, READY_TIMEOUT};
pub use kubernetes::{kube_apiserver_binary, KubeApiserver};
pub use route::PeerRoute;
pub use zookeeper::{java, CuratorLatch, ZkCluster, ZkMode, ZkOptions, ZkPorts, ZooKeeper};
