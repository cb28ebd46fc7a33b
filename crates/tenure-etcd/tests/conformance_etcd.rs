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

/// The restart case once more, on a server whose every older revision is
/// compacted away and whose database is defragmented before it restarts.
mod after_compaction {
    async fn new_compacting() -> super::common::Etcd {
        super::common::private_compacting_case(1)
    }

    tenure_core::conformance_suite!(restart: new_compacting);
}
