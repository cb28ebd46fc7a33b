//! The conformance suite on a real standalone ZooKeeper, one per test binary.

mod common;

async fn new_cluster() -> common::Zk {
    common::case_on(tenure_testkit::ZkCluster::shared())
}

tenure_core::conformance_suite!(new_cluster);
