//! A throwaway certificate authority made with the `openssl` CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;
use crate::TestkitError;

/// Certificates and keys of a cluster started with TLS, all PEM files in the
/// cluster's temporary directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The self-signed CA that signed both certificates; clients trust it.
    pub ca: PathBuf,
    /// The servers' certificate, valid for `IP:127.0.0.1` and `DNS:localhost`.
    pub server_cert: PathBuf,
    /// The servers' private key.
    pub server_key: PathBuf,
    /// A client certificate with `CN=tenure-test-client`.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// The common name of the client certificate. With client-cert auth and
    /// etcd auth both on, etcd takes it as the user name.
    pub const CLIENT_COMMON_NAME: &'static str = "tenure-test-client";
}

/// Extensions for each certificate. The server certificate also allows client
/// authentication because etcd's JSON gateway dials its own gRPC port with it
/// when client certificates are required.
const CONFIG: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

/// Writes a CA, a server and a client certificate (P-256 keys, valid two days)
/// into `dir`.
pub(crate) fn generate(dir: &Path) -> Result<TlsFiles, TestkitError> {
    let config = dir.join("openssl.cnf");
    fs::write(&config, CONFIG)
        .map_err(|e| TestkitError::io(format!("cannot write {}", config.display()), e))?;
    let files = TlsFiles {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    let ca_key = dir.join("ca.key");
    run(
        openssl(&config)
            .args(["-x509", "-days", "2", "-subj", "/CN=tenure-test-ca"])
            .args(["-extensions", "ca"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.ca),
        "openssl",
    )?;
    let leaves = [
        (
            "server",
            "localhost",
            &files.server_key,
            &files.server_cert,
            "2",
        ),
        (
            "client",
            TlsFiles::CLIENT_COMMON_NAME,
            &files.client_key,
            &files.client_cert,
            "3",
        ),
    ];
    for (extensions, common_name, key, cert, serial) in leaves {
        let request = dir.join(format!("{extensions}.csr"));
        run(
            openssl(&config)
                .arg("-subj")
                .arg(format!("/CN={common_name}"))
                .arg("-keyout")
                .arg(key)
                .arg("-out")
                .arg(&request),
            "openssl",
        )?;
        run(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-set_serial", serial])
                .arg("-in")
                .arg(&request)
                .arg("-CA")
                .arg(&files.ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&config)
                .args(["-extensions", extensions])
                .arg("-out")
                .arg(cert),
            "openssl",
        )?;
    }
    Ok(files)
}

/// `openssl req -new` with a fresh unencrypted P-256 key and our config; with
/// `-x509` it self-signs, without it writes a signing request.
fn openssl(config: &Path) -> Command {
    let mut command = Command::new("openssl");
    command
        .args(["req", "-new", "-nodes"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-config")
        .arg(config);
    command
}
