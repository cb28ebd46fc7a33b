//! Mapping the etcd client's errors into tenure's.

use tenure_core::Error;

/// Maps an etcd client error into tenure's: transport trouble is retryable.
pub(crate) fn map_err(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    let retryable = match &e {
        E::TransportError(_) | E::IoError(_) | E::LeaseKeepAliveError(_) | E::WatchError(_) => true,
        E::GRpcStatus(status) => {
            use tonic::Code;
            matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::ResourceExhausted
                    | Code::Unknown
            )
        }
        _ => false,
    };
    let message = e.to_string();
    if retryable {
        Error::Unavailable {
            message,
            source: Some(Box::new(e)),
        }
    } else {
        Error::Backend {
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// Whether etcd refused a request because the lease it names is gone.
pub(crate) fn lease_not_found(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::NotFound && s.message().contains("lease not found"))
}
