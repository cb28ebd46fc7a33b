//! The leader information a leader publishes for its component, and where.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::name::{Id, Path};

pub mod flink;

/// The largest address a leader can publish, in bytes.
pub const MAX_ADDRESS_LEN: usize = 4096;

/// Component ids that would collide with tenure's own layout.
const RESERVED_COMPONENTS: &[&str] = &["latch"];

/// Who leads a component, as published by the leader and seen by retrievers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// Where the leader can be reached (a URL, `host:port`, an actor address).
    pub address: String,
    /// The leader session id the leader was granted.
    pub session_id: Uuid,
    /// The term (fencing token) of the leadership.
    pub term: u64,
}

/// The stored form: the info plus the election it belongs to, so a retriever
/// can check that the publisher still leads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublishedInfo {
    #[serde(flatten)]
    pub(crate) info: LeaderInfo,
    pub(crate) election: String,
}

impl PublishedInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("leader info always serializes")
    }

    pub(crate) fn decode(key: &Path, bytes: &[u8]) -> Result<Self> {
        let decoded: PublishedInfo =
            serde_json::from_slice(bytes).map_err(|e| Error::Corrupted {
                key: key.to_string(),
                reason: format!("not a leader information record: {e}"),
            })?;
        Path::parse("election", &decoded.election).map_err(|_| Error::Corrupted {
            key: key.to_string(),
            reason: format!("names an invalid election {:?}", decoded.election),
        })?;
        Ok(decoded)
    }
}

/// Checks an address a leader wants to publish.
pub(crate) fn validate_address(address: &str) -> Result<()> {
    if address.len() > MAX_ADDRESS_LEN {
        return Err(Error::TooLarge {
            field: "address",
            size: address.len(),
            limit: MAX_ADDRESS_LEN,
        });
    }
    Ok(())
}

/// The key layout of one cluster (Flink's znode tree, as keys).
#[derive(Clone, Debug)]
pub(crate) struct ClusterLayout {
    cluster: Path,
}

impl ClusterLayout {
    pub(crate) fn new(cluster_id: &str) -> Result<Self> {
        Ok(ClusterLayout {
            cluster: Path::root("cluster_id", cluster_id)?,
        })
    }

    pub(crate) fn component(component_id: &str) -> Result<Id> {
        let id = Id::new("component_id", component_id)?;
        if RESERVED_COMPONENTS.contains(&component_id) {
            return Err(Error::invalid(
                "component_id",
                component_id,
                "is reserved by tenure's layout; choose another name",
            ));
        }
        Ok(id)
    }

    /// `<cluster>/leader/latch`: the election all components of a process share.
    pub(crate) fn shared_election(&self) -> Path {
        self.cluster.with("leader").with("latch")
    }

    /// `<cluster>/leader/<component>/latch`: a component's own election.
    pub(crate) fn component_election(&self, component: &Id) -> Path {
        self.cluster.with("leader").join(component).with("latch")
    }

    /// `<cluster>/leader/<component>/connection_info`: the published leader.
    pub(crate) fn connection_info(&self, component: &Id) -> Path {
        self.cluster
            .with("leader")
            .join(component)
            .with("connection_info")
    }
}
