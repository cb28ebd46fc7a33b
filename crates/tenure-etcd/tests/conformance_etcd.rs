//! The conformance suite on a real single-node etcd, one per test binary.

mod common;

async fn new_cluster() -> common::Etcd {
    common::case_on(tenure_testkit::EtcdCluster::shared())
}

/// Servers of the case's own, for the cases that restart or pause them.
async fn new_restartable() -> common::Etcd {
    common::private_case(1)
}

tenure_core::conformance_suite!(
    new_cluster,
    restart: new_restartable,
    pause: new_restartable
);
