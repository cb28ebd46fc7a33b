//! [`PeerRoute`]: how the members of a group reach each other.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::TestkitError;

/// How the members of a cluster reach each other: given a port a member
/// listens on for its peers (an etcd peer port, a ZooKeeper quorum or
/// election port), the port its peers dial instead — typically a fault proxy
/// forwarding to it, so that a test can cut, delay or reset the traffic
/// between members. Called once per port when the group is configured.
/// Without one, peers dial the member directly.
///
/// ```
/// use tenure_testkit::PeerRoute;
///
/// // A route that changes nothing: peers dial the member's own port.
/// let direct = PeerRoute::new(|port| Ok(port));
/// assert_eq!(direct, direct.clone());
/// ```
#[derive(Clone)]
pub struct PeerRoute(Arc<dyn Fn(u16) -> io::Result<u16> + Send + Sync>);

impl PeerRoute {
    /// A route that sends peers to `route(port)` instead of `port`.
    pub fn new(route: impl Fn(u16) -> io::Result<u16> + Send + Sync + 'static) -> Self {
        PeerRoute(Arc::new(route))
    }

    /// The port peers dial to reach `port`.
    pub(crate) fn port(&self, port: u16) -> Result<u16, TestkitError> {
        (self.0)(port)
            .map_err(|e| TestkitError::io(format!("cannot route peers to port {port}"), e))
    }
}

impl fmt::Debug for PeerRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerRoute(..)")
    }
}

/// Two routes are equal when they are the same route.
impl PartialEq for PeerRoute {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PeerRoute {}
