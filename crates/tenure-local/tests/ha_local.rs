//! The HA failover scenario on the local backend, in one process and with
//! leader A a real OS process that is killed or paused. A `harness = false`
//! target: see `tenure_core::conformance::ha::process`.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::ha::process::{self, ProcessCluster};
use tenure_core::{BackendUrl, DynBackend, Result};
use tenure_local::LocalBackend;

/// A child opens the same directory; local sessions have no TTL.
#[async_trait]
impl ProcessCluster for common::Local {
    fn child_url(&self, _session: Duration) -> String {
        format!("local://{}", self.dir.display())
    }

    async fn connect(url: &BackendUrl) -> Result<DynBackend> {
        Ok(Arc::new(LocalBackend::connect(url).await?))
    }
}

fn main() -> ExitCode {
    process::main(&[("directory", common::new_cluster)])
}
