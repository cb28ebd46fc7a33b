//! The conformance suite on a real 3-node ZooKeeper ensemble, one per test
//! binary.

mod common;

async fn new_cluster() -> common::Zk {
    common::case_on(tenure_testkit::ZkCluster::shared_ensemble())
}

tenure_core::conformance_suite!(new_cluster);
