//! The conformance suite on a real standalone ZooKeeper, one per test binary.

mod common;

async fn new_cluster() -> common::Zk {
    common::case_on(tenure_testkit::ZkCluster::shared())
}

/// Servers of the case's own, for the cases that restart or pause them.
async fn new_restartable() -> common::Zk {
    common::private_case(1)
}

tenure_core::conformance_suite!(
    new_cluster,
    restart: new_restartable,
    pause: new_restartable
);

/// The restart case once more, on a server that snapshots every couple of
/// transactions: it recovers from a snapshot, not from its log alone.
mod after_snapshot {
    async fn new_snapshotting() -> super::common::Zk {
        super::common::private_snapshotting_case(1)
    }

    tenure_core::conformance_suite!(restart: new_snapshotting);
}
