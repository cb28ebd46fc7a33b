//! The conformance suite on the memory backend.

mod common;

tenure_core::conformance_suite!(common::new_cluster(), pause: common::new_pausable());
