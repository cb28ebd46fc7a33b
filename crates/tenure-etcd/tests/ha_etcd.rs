//! The HA failover scenario on etcd, a single member and a 3-member cluster:
//! in one process, and with leader A a real OS process that is killed, or
//! paused until its lease runs out and then resumed to make stale writes,
//! which etcd rejects. A `harness = false` target: see
//! `tenure_core::conformance::ha::process`.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::conformance::ha::process::{self, ProcessCluster};
use tenure_core::{BackendUrl, DynBackend, Result};
use tenure_etcd::EtcdBackend;
use tenure_testkit::EtcdCluster;

/// A child reaches every member, under the case's prefix, with a lease TTL of
/// `session`.
#[async_trait]
impl ProcessCluster for common::Etcd {
    fn child_url(&self, session: Duration) -> String {
        let endpoints = self.server.endpoints().join(",");
        let ttl = session.as_millis();
        format!("etcd://{endpoints}/{}?ttl={ttl}ms", self.prefix)
    }

    async fn connect(url: &BackendUrl) -> Result<DynBackend> {
        Ok(Arc::new(EtcdBackend::from_url(url).await?))
    }
}

fn main() -> ExitCode {
    process::main(&[
        ("single", || common::case_on(EtcdCluster::shared())),
        ("cluster", || common::case_on(EtcdCluster::shared_cluster())),
    ])
}
