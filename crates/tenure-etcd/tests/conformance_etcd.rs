//! The conformance suite on a real single-node etcd, one per test binary.

mod common;

async fn new_cluster() -> common::Etcd {
    common::case_on(tenure_testkit::EtcdCluster::shared())
}

tenure_core::conformance_suite!(new_cluster);
