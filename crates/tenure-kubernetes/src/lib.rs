//! The `k8s://` backend of [tenure](https://docs.rs/tenure): so far its
//! transport, a lean client for the kube-apiserver; the backend on top of it
//! (elections as `coordination.k8s.io/v1` Leases, key-value data in
//! ConfigMaps) comes next.
//!
//! - **Configuration** ([`KubeConfig`]) from a URL, a kubeconfig's current
//!   context or a pod's service account:
//!   `k8s://host:port/namespace?token_file=PATH&ca_file=PATH`,
//!   `k8s:///namespace?kubeconfig=PATH`, `k8s:///namespace?in_cluster=true`
//!   (`kubernetes://` is the same scheme).
//! - **Bearer tokens only**, re-read from their file every minute as
//!   service-account tokens rotate; the token never appears in `Debug`
//!   output, logs or errors. Client certificates, exec plugins and auth
//!   providers are refused with an error naming the kubeconfig field.
//! - **TLS always verified** against the configured CA (no system roots, no
//!   insecure mode), with rustls and ring; pooled HTTP/1.1 connections.
//! - **Optimistic concurrency**: replace and delete are conditional on a
//!   `resourceVersion` and fail with a conflict, changing nothing, when the
//!   object moved on; watches resume from bookmarks and report a too-old
//!   version so the caller lists again.
//! - **Errors** map into tenure's: unreachable, timed out, 429 and 5xx are
//!   retryable ([`tenure_core::Error::Unavailable`]); a refused token (401)
//!   or missing RBAC rights (403) are not, and say so.
//!
//! It is built on the hyper and rustls the etcd backend's TLS already
//! brings, rather than `kube` and `k8s-openapi`, whose generated API types
//! cost minutes of build time; [`KubeConfig`] reads the YAML subset
//! kubeconfigs are written in by itself.

mod config;
mod kubeconfig;
mod yaml;

// The backend built on these comes next; until then only tests use them.
#[allow(dead_code)]
mod api;
#[allow(dead_code)]
mod client;
#[allow(dead_code)]
mod error;
#[allow(dead_code)]
mod lease;

#[cfg(test)]
mod apiserver_tests;

pub use config::{KubeConfig, DEFAULT_NAMESPACE, DEFAULT_REQUEST_TIMEOUT};
