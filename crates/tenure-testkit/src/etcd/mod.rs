//! etcd: single nodes and clusters of the `etcd` binary (3.4 as packaged by Debian).

mod cluster;
mod kind;
mod options;
mod status;
mod tls;

pub use cluster::EtcdCluster;
pub use kind::{Etcd, EtcdPorts};
pub use options::EtcdOptions;
pub use tls::TlsFiles;
