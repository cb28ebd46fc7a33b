//! ZooKeeper: standalone servers and ensembles of ZooKeeper 3.8 (as packaged
//! by Debian), and Curator `LeaderLatch` participants to compete with.

mod cluster;
mod four_letter;
pub mod java;
mod latch;
mod log;
mod options;
mod server;

pub use cluster::ZkCluster;
pub use latch::CuratorLatch;
pub use options::ZkOptions;
