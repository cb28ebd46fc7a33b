//! Mapping the ZooKeeper client's errors into tenure's.

use tenure_core::Error;

/// Whether a request failed because the connection broke, so it may or may
/// not have been applied. The client reports a broken connection (an I/O
/// error, or silence past the connection timeout, as after the process was
/// paused) as a custom error; with TLS, SASL and read-only sessions off, as
/// here, it has no other.
pub(crate) fn outcome_unknown(e: &zookeeper_client::Error) -> bool {
    matches!(
        e,
        zookeeper_client::Error::ConnectionLoss | zookeeper_client::Error::Custom(_)
    )
}

/// Maps a ZooKeeper client error into tenure's: connection trouble is retryable.
pub(crate) fn map_err(e: zookeeper_client::Error) -> Error {
    use zookeeper_client::Error as E;
    match e {
        E::ConnectionLoss | E::Timeout | E::NoHosts | E::Throttled | E::SessionMoved => {
            Error::Unavailable {
                message: format!("ZooKeeper: {e}"),
                source: Some(Box::new(e)),
            }
        }
        E::SessionExpired => Error::Unavailable {
            message: "the ZooKeeper session expired; a new one is being opened".into(),
            source: Some(Box::new(e)),
        },
        // A broken connection: see `outcome_unknown`.
        E::Custom(_) => Error::Unavailable {
            message: format!("ZooKeeper: the connection broke ({e}); the request's outcome is unknown"),
            source: Some(Box::new(e)),
        },
        E::ClientClosed => Error::Closed {
            what: "ZooKeeper session",
        },
        E::NoAuth => Error::Backend {
            message: "ZooKeeper refused the operation: not authorized (the node's ACL does not allow these credentials)".into(),
            source: Some(Box::new(e)),
        },
        other => Error::Backend {
            message: format!("ZooKeeper: {other}"),
            source: Some(Box::new(other)),
        },
    }
}
