//! The conformance suite on the local backend: a fresh directory per case.

mod common;

// Every case has a directory of its own, so any of them may restart.
tenure_core::conformance_suite!(common::new_cluster(), restart: common::new_cluster());
