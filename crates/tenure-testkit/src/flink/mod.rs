//! Apache Flink 2.3: real JobManagers in ZooKeeper HA mode, and Flink's own
//! leader retrieval to read what they publish.
//!
//! Flink's jars come from PyPI's `apache-flink-libraries` wheel
//! ([`flink_lib_dir`]); no Flink shell script runs: the kit writes
//! `conf/config.yaml`, asks Flink's `BashJavaUtils` for the memory flags and
//! starts `StandaloneSessionClusterEntrypoint` itself, as `jobmanager.sh`
//! would.

mod compile;
mod config;
mod http;
mod install;
mod jobmanager;
mod leader;
mod options;
mod probe;

pub use install::flink_lib_dir;
pub use jobmanager::FlinkJobManager;
pub use leader::{FlinkComponent, FlinkLeader};
pub use options::FlinkOptions;
pub use probe::FlinkRetrievalProbe;
