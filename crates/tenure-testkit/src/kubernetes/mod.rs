//! Kubernetes: a real kube-apiserver 1.20, built from Debian's source
//! package on first use, on an etcd of its own.
//!
//! Only the apiserver runs — no scheduler, controller manager or kubelet —
//! which is all a Lease-based election needs: the `coordination.k8s.io/v1`
//! API, optimistic concurrency on `resourceVersion`, watches, and RBAC.

mod apiserver;
mod auth;
mod build;
mod curl;
mod openapi;
mod source;
mod steps;

pub use apiserver::KubeApiserver;
pub use build::kube_apiserver_binary;
