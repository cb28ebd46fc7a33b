//! # tenure
//!
//! Leader election and high-availability services for replicated components —
//! a job manager, a scheduler, a controller, a log signer — where at most one
//! replica may act at a time, the others wait to take over, clients must find
//! whoever acts now, and **a paused or partitioned old leader can never
//! overwrite a new one**.
//!
//! ```
//! use std::sync::Arc;
//! use tenure::{ElectionFactory, Error, LeaderRetrieval, Path};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! // Two "processes" on one embedded cluster (use etcd:// or zk:// in production).
//! let a = tenure::connect("memory:doc-example").await?;
//! let b = tenure::connect("memory:doc-example").await?;
//!
//! // Campaign: wait until this process leads "scheduler".
//! let leadership = ElectionFactory::new(a.clone())
//!     .new_election("scheduler")?
//!     .campaign()
//!     .await?;
//! println!("leading with term {}", leadership.term());
//!
//! // Act as leader: writes that must not outlive leadership are fenced.
//! let key = Path::parse("key", "scheduler/last-run")?;
//! leadership.put(&key, b"2026-11-23T12:00:00Z").await?;
//!
//! // Stop the moment leadership is lost, for any reason.
//! let token = leadership.token();
//! tokio::spawn(async move {
//!     token.cancelled().await;
//!     // stop acting here
//! });
//!
//! // Anyone can look the current holder up without campaigning.
//! let holder = b.leader(&Path::parse("election", "scheduler")?).await?;
//! assert_eq!(holder.map(|h| h.term), Some(leadership.term()));
//!
//! leadership.resign().await?;
//! # let _ = LeaderRetrieval::new(b, "cluster", "dispatcher")?;
//! # Ok(())
//! # }
//! ```
//!
//! ## The model
//!
//! - **Elections** per resource ([`ElectionFactory`], [`Election`]):
//!   `campaign()` yields a [`Leadership`] with a term (fencing token), a leader
//!   session id and a cancellation token that fires the moment leadership is
//!   lost, with the [`LossReason`]; `resign()`; `close()`.
//! - **Leader election services** ([`LeaderElectionService`]): contenders are
//!   granted leadership with a session id, confirm it with their address, and the
//!   service publishes the address — fenced — only while they lead, republishing
//!   it if someone changes or deletes it. [`LeaderRetrieval`] follows any
//!   component's leader without campaigning.
//! - **Backends** ([`Backend`]): one process-wide session shared by every
//!   election, so thousands of elections cost one keep-alive.
//!
//! ## The safety model
//!
//! Election alone cannot stop a paused or partitioned old leader from acting
//! after its lease expired on the server. tenure therefore promises, on every
//! backend:
//!
//! 1. **Terms** strictly increase per election and are never reused.
//! 2. **Fenced writes**: every write made as leader is atomically conditional,
//!    at the backend, on that leadership still being current; a stale leader gets
//!    [`Error::Fenced`] and nothing changes.
//! 3. **Step down before expiry**: the token fires at the renew deadline, before
//!    the server can expire the session and grant another candidate.
//! 4. **Monotonic retrieval**: never an older term after a newer one; "no
//!    leader" when there is none.
//! 5. **No phantom leaders**: a candidate whose session expired while it waited
//!    is never granted.
//! 6. **Quiet close**: after `close()` returns, nothing fires and nothing is
//!    written.
//!
//! What fencing cannot do: protect state that is written somewhere else without
//! the fence. Pass [`Leadership::term`] to such systems and have them reject
//! older terms.
//!
//! ## Backends
//!
//! | URL | backend | a crashed holder is detected by |
//! |---|---|---|
//! | `memory:` / `memory:NAME` | in-process ([`MemoryCluster`]); `NAME` shares one cluster across the process | explicit (tests expire sessions) |
//! | `local:///dir` | processes on one host sharing a directory, no server (feature `local`, on by default; `LocalBackend`) | the kernel releasing the holder's lock when it dies |
//! | `etcd://h:p,…/prefix` | etcd v3, interoperating with `etcdctl elect` (feature `etcd`, TLS with `etcd-tls`; `EtcdBackend`) | lease TTL; the holder steps down at its renew deadline |
//! | `zk://h:p,…/chroot` | Apache ZooKeeper 3.5+, interoperating with Curator's LeaderLatch (feature `zookeeper`; `ZkBackend`) | session timeout; the holder steps down at its renew deadline |

pub use tenure_core::*;

/// Connects to the backend named by `url` and returns it as a shared
/// [`DynBackend`]. Each call is a new client with its own session.
///
/// | scheme | example | options |
/// |---|---|---|
/// | `memory` | `memory:`, `memory:demo` | `ttl` (session TTL, default 10s) |
/// | `local` | `local:///var/lib/myapp/tenure` | `poll` (how often other processes' changes are looked for, default 5ms) |
/// | `etcd` (feature `etcd`) | `etcd://10.0.0.1:2379,10.0.0.2:2379/myapp` | `ttl` (lease TTL, 2s–1h, default 10s), `tls_ca`, `tls_cert`, `tls_key` (feature `etcd-tls`), `user`, `password_file` |
/// | `zk` (feature `zookeeper`) | `zk://10.0.0.1:2181,10.0.0.2:2181/flink` | `session_timeout` (default 10s; the server may clamp it), `connect_timeout`, `user`, `password_file` (digest ACLs) |
///
/// Fails with [`Error::InvalidInput`] (field `url`) for a malformed URL, an
/// unknown scheme or an unknown option, and with the backend's own errors when
/// it cannot be opened.
pub async fn connect(url: &str) -> Result<DynBackend> {
    let parsed = BackendUrl::parse(url)?;
    match parsed.scheme() {
        "memory" => Ok(std::sync::Arc::new(MemoryCluster::connect(&parsed)?)),
        #[cfg(feature = "local")]
        "local" => Ok(std::sync::Arc::new(LocalBackend::connect(&parsed).await?)),
        #[cfg(feature = "etcd")]
        "etcd" => Ok(std::sync::Arc::new(EtcdBackend::from_url(&parsed).await?)),
        #[cfg(feature = "zookeeper")]
        "zk" => Ok(std::sync::Arc::new(ZkBackend::from_url(&parsed).await?)),
        other => Err(Error::invalid(
            "url",
            url,
            format!(
                "has unknown scheme {other:?}; supported: {}",
                SCHEMES.join(", ")
            ),
        )),
    }
}

/// The URL schemes this build of tenure can connect to.
pub const SCHEMES: &[&str] = &[
    "memory",
    #[cfg(feature = "local")]
    "local",
    #[cfg(feature = "etcd")]
    "etcd",
    #[cfg(feature = "zookeeper")]
    "zk",
];

#[cfg(feature = "local")]
pub use tenure_local::LocalBackend;

#[cfg(feature = "etcd")]
pub use tenure_etcd::{EtcdBackend, EtcdConfig};

#[cfg(feature = "zookeeper")]
pub use tenure_zookeeper::{ZkBackend, ZkConfig};

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_opens_a_local_directory() {
        let dir = std::env::temp_dir().join(format!("tenure-facade-{}", std::process::id()));
        let url = format!("local://{}", dir.display());
        let a = connect(&url).await.unwrap();
        let b = connect(&url).await.unwrap();
        assert_eq!(a.capabilities().scheme, "local");
        let key = Path::parse("key", "k").unwrap();
        a.put(&key, b"v", Guard::ANY).await.unwrap();
        assert_eq!(b.get(&key).await.unwrap().unwrap().value, b"v");
        a.close().await.unwrap();
        b.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn connect_picks_the_backend_by_scheme() {
        let backend = connect("memory:?ttl=2s").await.unwrap();
        assert_eq!(backend.capabilities().scheme, "memory");
        let a = connect("memory:shared-test").await.unwrap();
        let b = connect("memory:shared-test").await.unwrap();
        let key = Path::parse("key", "k").unwrap();
        a.put(&key, b"v", Guard::ANY).await.unwrap();
        assert_eq!(b.get(&key).await.unwrap().unwrap().value, b"v");
        assert_ne!(a.session().borrow().id, b.session().borrow().id);
    }

    #[tokio::test]
    async fn connect_rejects_bad_urls_with_a_typed_error() {
        for bad in [
            "",
            "nope://x",
            "memory:?ttl=0s",
            "memory:?colour=blue",
            "memory:../x",
            "memory://host",
            "local://host/tmp/x",
            "local:relative/path",
            "local:///tmp/x?poll=never",
        ] {
            let err = connect(bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad:?}: {err}");
        }
    }
}

/// The README's example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
