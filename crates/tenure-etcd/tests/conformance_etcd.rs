//! The conformance suite on a real single-node etcd, one per test binary;
//! the cases that restart or pause servers get servers of their own.

mod common;

use common::{case_on, private_case};

tenure_core::conformance_suite!(
    case_on(tenure_testkit::EtcdCluster::shared()),
    restart: private_case(1),
    pause: private_case(1)
);

/// The restart case once more, on a server whose every older revision is
/// compacted away and whose database is defragmented before it restarts.
mod after_compaction {
    tenure_core::conformance_suite!(restart: super::common::private_compacting_case(1));
}
