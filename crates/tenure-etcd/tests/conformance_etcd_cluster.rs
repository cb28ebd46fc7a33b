//! The conformance suite on a real 3-member etcd cluster, one per test binary:
//! every client is given all three endpoints.

mod common;

async fn new_cluster() -> common::Etcd {
    common::case_on(tenure_testkit::EtcdCluster::shared_cluster())
}

/// Servers of the case's own, for the cases that restart or pause them.
async fn new_restartable() -> common::Etcd {
    common::private_case(3)
}

tenure_core::conformance_suite!(
    new_cluster,
    restart: new_restartable,
    pause: new_restartable
);
