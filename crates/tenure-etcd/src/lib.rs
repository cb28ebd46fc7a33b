//! The `etcd://` backend of [tenure](https://docs.rs/tenure).
//!
//! - **One lease per process**, kept alive about every TTL/3 and shared by every
//!   election of the process. Losing it revokes every leadership on it (reason
//!   `SessionLost`); a new lease is granted and campaigns resume.
//! - **Step down before expiry**: the session's renew deadline is the send time of
//!   the last acknowledged keep-alive + TTL − a margin, so when keep-alives stop
//!   succeeding (a paused member, lost quorum) every leadership ends before the
//!   server can expire the lease and grant another candidate.
//! - **etcd's own election layout** (`go.etcd.io/etcd/client/v3/concurrency`, as
//!   used by `etcdctl elect`): candidate key `<prefix>/<election>/<lease id in
//!   lower-case hex>`, value = the proposal; the leader is the candidate with the
//!   lowest create revision, and that revision is the term. A tenure candidate and
//!   an `etcdctl elect <prefix>/<election>` candidate take turns.
//! - **Fenced writes** are one transaction comparing the create revision of the
//!   leader's candidate key with its term: a stale leader's write fails and
//!   changes nothing.
//! - **Ephemeral values** are put under the session's lease: they go when the
//!   lease is revoked (close) or expires.
//! - Key-value data lives under `<prefix>/~kv/`, out of every election's range.
//! - TLS (server verification, client certificates) and username/password
//!   authentication; the password never appears in `Debug` output or logs.
//!
//! URL: `etcd://host:port[,host:port...]/prefix?ttl=10s` with optional
//! `tls_ca`, `tls_cert`, `tls_key` (PEM file paths), `user` and `password_file`.
//! A process should use one election object per election name: the candidate
//! key is per lease, as in etcd's recipe.

mod backend;
mod campaign;
mod config;
mod endpoints;
mod error;
mod keys;
mod kv;
mod leader_watch;
mod session;
mod tls;
mod watch;

pub use backend::{EtcdBackend, MAX_VALUE_SIZE};
pub use config::{EtcdConfig, DEFAULT_TTL, MAX_TTL, MIN_TTL};

impl EtcdBackend {
    /// Connects to the etcd named by an `etcd://` URL.
    pub async fn from_url(url: &tenure_core::BackendUrl) -> tenure_core::Result<Self> {
        Self::connect(EtcdConfig::from_url(url)?).await
    }
}
