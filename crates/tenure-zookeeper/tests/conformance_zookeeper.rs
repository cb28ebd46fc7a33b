//! The conformance suite on a real standalone ZooKeeper, one per test binary;
//! the cases that restart or pause servers get servers of their own.

mod common;

use common::{case_on, private_case};

tenure_core::conformance_suite!(
    case_on(tenure_testkit::ZkCluster::shared()),
    restart: private_case(1),
    pause: private_case(1)
);

/// The restart case once more, on a server that snapshots every couple of
/// transactions: it recovers from a snapshot, not from its log alone.
mod after_snapshot {
    tenure_core::conformance_suite!(restart: super::common::private_snapshotting_case(1));
}

/// Every case once more with Flink's layout (`layout=flink`): bare values,
/// empty latch data, Flink's `connection_info` records as ephemeral nodes.
mod flink_layout {
    tenure_core::conformance_suite!(super::common::flink_case_on(
        tenure_testkit::ZkCluster::shared()
    ));
}
