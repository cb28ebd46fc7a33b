//! What cluster to start.

use crate::PeerRoute;

/// The shape of an etcd cluster to start.
///
/// ```
/// use tenure_testkit::EtcdOptions;
///
/// let options = EtcdOptions { members: 3, ..EtcdOptions::default() };
/// assert!(!options.tls);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// How many members; at least one. Three is the smallest cluster that
    /// survives losing a member.
    pub members: usize,
    /// Serve clients over HTTPS with certificates from a fresh test CA (see
    /// [`TlsFiles`](crate::TlsFiles)). Peer traffic stays plain HTTP.
    pub tls: bool,
    /// Require clients to present a certificate signed by the test CA. Needs `tls`.
    pub client_cert_auth: bool,
    /// How members reach each other's peer port (a fault proxy, say); by
    /// default directly.
    pub peer_route: Option<PeerRoute>,
}

impl Default for EtcdOptions {
    /// One member, plain HTTP.
    fn default() -> Self {
        Self {
            members: 1,
            tls: false,
            client_cert_auth: false,
            peer_route: None,
        }
    }
}
