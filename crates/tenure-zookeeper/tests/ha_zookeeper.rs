//! The HA failover scenario on ZooKeeper, a standalone server and a 3-node
//! ensemble: in one process, and with leader A a real OS process that is
//! killed, or paused until its session expires and then resumed to make stale
//! writes, which ZooKeeper rejects; and once more in Flink's layout. A `harness = false` target: see
//! `tenure_core::conformance::ha::process`.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::ha::process::{self, ProcessCluster};
use tenure_core::{BackendUrl, DynBackend, Result};
use tenure_testkit::ZkCluster;
use tenure_zookeeper::{Layout, ZkBackend};

/// A child reaches every server directly (no proxy), under the case's chroot,
/// with a session timeout of `session`.
#[async_trait]
impl ProcessCluster for common::Zk {
    fn child_url(&self, session: Duration) -> String {
        let servers = self.server.connect_string();
        let timeout = session.as_millis();
        let layout = match self.layout {
            Layout::Flink => "&layout=flink",
            _ => "",
        };
        format!(
            "zk://{servers}/{}?session_timeout={timeout}ms{layout}",
            self.chroot
        )
    }

    async fn connect(url: &BackendUrl) -> Result<DynBackend> {
        Ok(Arc::new(ZkBackend::from_url(url).await?))
    }
}

fn main() -> ExitCode {
    process::main(&[
        ("standalone", || common::case_on(ZkCluster::shared())),
        ("ensemble", || common::case_on(ZkCluster::shared_ensemble())),
        // Flink's layout: Flink's leader records, execution-plans, 19-digit
        // checkpoint names.
        (
            "flink-layout",
            || common::flink_case_on(ZkCluster::shared()),
        ),
    ])
}
