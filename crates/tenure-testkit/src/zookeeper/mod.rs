//! ZooKeeper: standalone servers and ensembles of ZooKeeper 3.8 (as packaged
//! by Debian), and Curator `LeaderLatch` participants to compete with.

mod cluster;
mod four_letter;
pub mod java;
mod kind;
mod latch;
mod options;
pub(crate) mod program;

pub use cluster::ZkCluster;
pub use four_letter::ZkMode;
pub use kind::{ZkPorts, ZooKeeper};
pub use latch::CuratorLatch;
pub use options::ZkOptions;
