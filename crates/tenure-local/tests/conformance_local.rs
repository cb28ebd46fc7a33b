//! The conformance suite on the local backend: a fresh directory per case.

mod common;

async fn new_cluster() -> common::Local {
    common::new_cluster()
}

tenure_core::conformance_suite!(new_cluster);
