//! The conformance suite on a real 3-member etcd cluster, one per test
//! binary: every client is given all three endpoints. The cases that restart
//! or pause servers get clusters of their own.

mod common;

use common::{case_on, private_case};

tenure_core::conformance_suite!(
    case_on(tenure_testkit::EtcdCluster::shared_cluster()),
    restart: private_case(3),
    pause: private_case(3)
);
