//! TLS options for the etcd client, from PEM files.

use etcd_client::ConnectOptions;
use tenure_core::{Error, Result};

use crate::config::Tls;

#[cfg(feature = "tls")]
fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(
            what,
            &path.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })
}

/// Adds the TLS settings to the client's connect options.
#[cfg(feature = "tls")]
pub(crate) fn apply(connect: ConnectOptions, tls: &Tls) -> Result<ConnectOptions> {
    use etcd_client::{Certificate, Identity, TlsOptions};
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca {
        options = options.ca_certificate(Certificate::from_pem(read("tls_ca", ca)?));
    }
    if let Some((cert, key)) = &tls.client {
        options = options.identity(Identity::from_pem(
            read("tls_cert", cert)?,
            read("tls_key", key)?,
        ));
    }
    Ok(connect.with_tls(options))
}

/// Refuses TLS settings: this build has no TLS stack (the `tls` feature).
#[cfg(not(feature = "tls"))]
pub(crate) fn apply(_: ConnectOptions, _: &Tls) -> Result<ConnectOptions> {
    Err(Error::Unsupported {
        backend: "etcd",
        what: "TLS, in a build without it (features: `etcd-tls` of tenure and tenure-cli, `tls` of tenure-etcd)",
    })
}
