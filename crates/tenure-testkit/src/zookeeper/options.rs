//! What ensemble to start.

use crate::{PeerRoute, TestkitError};

/// The shape and timing of a ZooKeeper ensemble to start.
///
/// The defaults make short sessions possible: with a 200 ms tick, sessions
/// between 1 s and 60 s are granted as asked (ZooKeeper's own default, a 2 s
/// tick, clamps them to 4–40 s).
///
/// ```
/// use tenure_testkit::ZkOptions;
///
/// let options = ZkOptions { servers: 3, ..ZkOptions::default() };
/// assert_eq!(options.tick_time_ms, 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkOptions {
    /// How many servers; at least one. One runs standalone (`Mode: standalone`),
    /// more form a quorum; three is the smallest that survives losing one.
    pub servers: usize,
    /// `tickTime`: ZooKeeper's unit of time, in milliseconds.
    pub tick_time_ms: u32,
    /// `initLimit`, in ticks: how long followers may take to connect to and
    /// sync with a new leader.
    pub init_limit: u32,
    /// `syncLimit`, in ticks: how long a follower may go unheard before the
    /// leader drops it, and a leader before its followers elect anew — the
    /// failure detection time of the ensemble.
    pub sync_limit: u32,
    /// `minSessionTimeout`, in milliseconds: shorter requests are raised to it.
    pub min_session_timeout_ms: u32,
    /// `maxSessionTimeout`, in milliseconds: longer requests are cut to it.
    pub max_session_timeout_ms: u32,
    /// `snapCount`: roughly how many transactions a server logs before it
    /// writes a snapshot of its data tree (a random point between half of it
    /// and all of it). `None` leaves ZooKeeper's default, 100 000; a small
    /// value (the least is 2) makes servers snapshot as they go, so a
    /// restart recovers from a snapshot plus a short log.
    pub snap_count: Option<u32>,
    /// How servers reach each other's quorum and election ports (a fault
    /// proxy, say); by default directly. Each server still binds its own
    /// ports: only the other servers' `zoo.cfg` name the routed ones.
    pub peer_route: Option<PeerRoute>,
}

impl Default for ZkOptions {
    /// One standalone server, a 200 ms tick, failures detected within 1 s
    /// (`syncLimit` 5), followers given 10 s to sync (`initLimit` 50, generous
    /// for JVMs starting side by side on two cores), sessions of 1–60 s.
    fn default() -> Self {
        Self {
            servers: 1,
            tick_time_ms: 200,
            init_limit: 50,
            sync_limit: 5,
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            snap_count: None,
            peer_route: None,
        }
    }
}

impl ZkOptions {
    /// Refuses what ZooKeeper would refuse, or silently change.
    pub(crate) fn validate(&self) -> Result<(), TestkitError> {
        let invalid = |field, rule| Err(TestkitError::InvalidOptions { field, rule });
        if self.servers == 0 {
            return invalid("servers", "an ensemble needs at least one server");
        }
        // Server i gets myid i + 1, and ZooKeeper's ids run from 1 to 255.
        if self.servers > 255 {
            return invalid("servers", "at most 255 servers");
        }
        if self.tick_time_ms == 0 {
            return invalid("tick_time_ms", "must be positive");
        }
        if self.init_limit == 0 {
            return invalid("init_limit", "must be positive");
        }
        if self.sync_limit == 0 {
            return invalid("sync_limit", "must be positive");
        }
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return invalid(
                "min_session_timeout_ms",
                "must not exceed max_session_timeout_ms",
            );
        }
        if self.snap_count.is_some_and(|count| count < 2) {
            return invalid("snap_count", "ZooKeeper needs at least 2");
        }
        Ok(())
    }
}
