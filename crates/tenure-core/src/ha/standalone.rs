//! The HA services of non-HA setups (Flink's `StandaloneHaServices`).

use std::sync::Arc;

use super::services::HaServices;
use super::JobId;
use crate::backend::DynBackend;
use crate::election::ElectionFactory;
use crate::error::Result;
use crate::leader_election::{StandaloneLeaderElection, StandaloneLeaderRetrieval};
use crate::leadership::Leadership;
use crate::memory::MemoryBackend;

/// The HA services of non-HA setups (Flink's `StandaloneHaServices`): every
/// component always leads with the default leader session id, retrievers
/// report fixed addresses, and the stores live in this process only (on a
/// private [`MemoryBackend`]), fenced by a leadership that never ends while
/// the services are open.
#[derive(Debug)]
pub struct StandaloneHaServices {
    resource_manager: StandaloneLeaderRetrieval,
    dispatcher: StandaloneLeaderRetrieval,
    rest_server: StandaloneLeaderRetrieval,
    services: HaServices,
    leadership: Leadership,
}

impl StandaloneHaServices {
    /// The services of a cluster whose resource manager, dispatcher and REST
    /// server are at the given fixed addresses.
    pub async fn new(
        resource_manager_address: &str,
        dispatcher_address: &str,
        rest_server_address: &str,
    ) -> Result<Self> {
        let backend: DynBackend = Arc::new(MemoryBackend::new());
        let services = HaServices::builder(backend.clone(), "standalone").build()?;
        let leadership = ElectionFactory::new(backend)
            .with_prefix(services.ctx.layout.leaders())
            .new_election("standalone")?
            .campaign()
            .await?;
        Ok(StandaloneHaServices {
            resource_manager: StandaloneLeaderRetrieval::new(resource_manager_address)?,
            dispatcher: StandaloneLeaderRetrieval::new(dispatcher_address)?,
            rest_server: StandaloneLeaderRetrieval::new(rest_server_address)?,
            services,
            leadership,
        })
    }

    /// A leader election that grants at once, with the default session id.
    pub fn resource_manager_leader_election(&self) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// A leader election that grants at once, with the default session id.
    pub fn dispatcher_leader_election(&self) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// A leader election that grants at once, with the default session id.
    pub fn rest_server_leader_election(&self) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// A leader election that grants at once, with the default session id.
    pub fn job_master_leader_election(&self, _job: &JobId) -> StandaloneLeaderElection {
        StandaloneLeaderElection::new()
    }

    /// The resource manager, at its fixed address.
    pub fn resource_manager_leader_retriever(&self) -> StandaloneLeaderRetrieval {
        self.resource_manager.clone()
    }

    /// The dispatcher, at its fixed address.
    pub fn dispatcher_leader_retriever(&self) -> StandaloneLeaderRetrieval {
        self.dispatcher.clone()
    }

    /// The REST server, at its fixed address.
    pub fn rest_server_leader_retriever(&self) -> StandaloneLeaderRetrieval {
        self.rest_server.clone()
    }

    /// The job master of `job`, at `default_address` (Flink's
    /// `getJobManagerLeaderRetriever(jobId, defaultJobManagerAddress)`).
    pub fn job_master_leader_retriever(
        &self,
        _job: &JobId,
        default_address: &str,
    ) -> Result<StandaloneLeaderRetrieval> {
        StandaloneLeaderRetrieval::new(default_address)
    }

    /// The in-process stores.
    pub fn services(&self) -> &HaServices {
        &self.services
    }

    /// The leadership that fences writes to the in-process stores.
    pub fn fence(&self) -> &Leadership {
        &self.leadership
    }

    /// Closes the services; the in-process data goes with them.
    pub async fn close(&self) {
        let _ = self.leadership.resign().await;
        let _ = self.services.close().await;
    }
}
