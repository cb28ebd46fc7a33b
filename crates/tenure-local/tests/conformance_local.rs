//! The conformance suite on the local backend: a fresh directory per case.

mod common;

async fn new_cluster() -> common::Local {
    common::new_cluster()
}

// Every case has a directory of its own, so any of them may restart.
tenure_core::conformance_suite!(new_cluster, restart: new_cluster);
