//! The conformance suite on a real 3-node ZooKeeper ensemble, one per test
//! binary; the cases that restart or pause servers get ensembles of their own.

mod common;

use common::{case_on, private_case};

tenure_core::conformance_suite!(
    case_on(tenure_testkit::ZkCluster::shared_ensemble()),
    restart: private_case(3),
    pause: private_case(3)
);
