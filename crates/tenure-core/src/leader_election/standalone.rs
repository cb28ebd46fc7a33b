//! The always-leader election and fixed-address retrieval of non-HA setups.

use std::fmt;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::leader_info::{validate_address, LeaderInfo};

use super::{lock, LeaderContender, DEFAULT_LEADER_SESSION_ID};

/// The always-leader election of non-HA setups (Flink's standalone HA
/// services): every contender is granted at once with
/// [`DEFAULT_LEADER_SESSION_ID`], and confirming publishes nothing (retrievers
/// use [`StandaloneLeaderRetrieval`] with the fixed address).
#[derive(Debug, Default)]
pub struct StandaloneLeaderElection {
    contender: Mutex<Option<Arc<dyn LeaderContender>>>,
}

impl fmt::Debug for dyn LeaderContender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaderContender")
    }
}

impl StandaloneLeaderElection {
    /// A standalone leader election.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `contender` leadership with the default session id, at once. A
    /// contender started earlier is revoked first.
    pub fn start(&self, contender: Arc<dyn LeaderContender>) {
        let previous = lock(&self.contender).replace(contender.clone());
        // Callbacks run outside the lock: a contender may call back in.
        if let Some(previous) = previous {
            previous.revoke_leadership();
        }
        contender.grant_leadership(DEFAULT_LEADER_SESSION_ID);
    }

    /// Whether `session_id` is the default session id and a contender runs.
    pub fn has_leadership(&self, session_id: Uuid) -> bool {
        session_id == DEFAULT_LEADER_SESSION_ID && lock(&self.contender).is_some()
    }

    /// Accepts the confirmation of the default session id.
    pub fn confirm_leadership(&self, session_id: Uuid, address: &str) -> Result<()> {
        validate_address(address)?;
        if self.has_leadership(session_id) {
            Ok(())
        } else {
            Err(Error::NotLeader { session_id })
        }
    }

    /// Revokes and forgets the contender.
    pub fn close(&self) {
        let contender = lock(&self.contender).take();
        if let Some(contender) = contender {
            contender.revoke_leadership();
        }
    }
}

/// Leader retrieval of non-HA setups: the leader is always at a fixed address,
/// with [`DEFAULT_LEADER_SESSION_ID`] and term 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandaloneLeaderRetrieval {
    leader: LeaderInfo,
}

impl StandaloneLeaderRetrieval {
    /// Retrieval that always reports `address` (checked against the size limit).
    pub fn new(address: &str) -> Result<Self> {
        validate_address(address)?;
        Ok(StandaloneLeaderRetrieval {
            leader: LeaderInfo {
                address: address.to_owned(),
                session_id: DEFAULT_LEADER_SESSION_ID,
                term: 0,
            },
        })
    }

    /// The fixed leader.
    pub fn current(&self) -> LeaderInfo {
        self.leader.clone()
    }
}
