//! How to reach the kube-apiserver: server, CA, bearer token, namespace and
//! request timeout, from a `k8s://` URL, a kubeconfig or a pod's service
//! account.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tenure_core::url::check_host_port;
use tenure_core::{BackendUrl, Error, Result, Secret};

use crate::kubeconfig::{self, read_file, read_token};

/// How long a request may take unless set otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespace used when none is named.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a pod's service account files are.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const URL_OPTIONS: &[&str] = &["token_file", "ca_file", "kubeconfig", "in_cluster"];

const URL_USAGE: &str = "k8s URLs name the apiserver and how to trust and authenticate to it: \
     k8s://host:port/namespace?token_file=PATH&ca_file=PATH, k8s:///namespace?kubeconfig=PATH \
     or k8s:///namespace?in_cluster=true";

/// Everything needed to talk to a kube-apiserver: made by
/// [`KubeConfig::from_url`], [`KubeConfig::from_kubeconfig`],
/// [`KubeConfig::in_cluster`] or [`KubeConfig::new`]. The server's certificate
/// is always verified against the configured CA (there is no insecure mode,
/// and no system roots are trusted); requests carry the bearer token, which
/// `Debug` never shows.
#[derive(Clone)]
pub struct KubeConfig {
    /// Without brackets for IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// A path the apiserver is served under (behind some proxies), without a
    /// trailing `/`; usually empty.
    pub(crate) base_path: String,
    /// PEM, at least one certificate.
    pub(crate) ca: Vec<u8>,
    pub(crate) token: Secret,
    /// The file the token was read from, re-read as the token rotates
    /// (service-account tokens projected into pods do).
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) namespace: String,
    pub(crate) request_timeout: Duration,
}

impl fmt::Debug for KubeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeConfig")
            .field("server", &self.server())
            .field("ca", &format_args!("<{} bytes of PEM>", self.ca.len()))
            .field("token", &self.token)
            .field("token_file", &self.token_file)
            .field("namespace", &self.namespace)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl KubeConfig {
    /// A configuration for the apiserver at `server` (`https://host[:port]`,
    /// port 443 if left out), trusting the CA certificates in `ca_pem` and
    /// sending `token`; namespace `default`.
    pub fn new(server: &str, ca_pem: impl Into<Vec<u8>>, token: Secret) -> Result<Self> {
        let (host, port, base_path) = parse_server(server)?;
        Ok(KubeConfig {
            host,
            port,
            base_path,
            ca: check_ca(ca_pem.into())?,
            token: check_token(token)?,
            token_file: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Reads a `k8s://` (or `kubernetes://`) URL:
    ///
    /// - `k8s://host:port/namespace?token_file=PATH&ca_file=PATH`;
    /// - `k8s:///namespace?kubeconfig=PATH`: the current context of a
    ///   kubeconfig ([`from_kubeconfig`](Self::from_kubeconfig));
    /// - `k8s:///namespace?in_cluster=true`: the pod's service account
    ///   ([`in_cluster`](Self::in_cluster)).
    ///
    /// With `kubeconfig` or `in_cluster`, a host, `token_file` or `ca_file`
    /// given too replaces what they say. The namespace is `default` unless
    /// the path or the kubeconfig's context names one.
    pub fn from_url(url: &BackendUrl) -> Result<Self> {
        let scheme = if url.scheme() == "kubernetes" {
            "kubernetes"
        } else {
            "k8s"
        };
        url.check_scheme_and_options(scheme, URL_OPTIONS)?;
        let in_cluster = match url.option("in_cluster") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::invalid(
                    "url",
                    other,
                    "in_cluster must be true or false",
                ))
            }
        };
        let host =
            match url.hosts() {
                [] => None,
                [host] => {
                    check_host_port("url", host, "must name the apiserver as host:port")?;
                    Some(host)
                }
                hosts => return Err(Error::invalid(
                    "url",
                    &hosts.join(","),
                    "names one apiserver (a load balancer or the cluster's service), not several",
                )),
            };
        let mut ca = url
            .option("ca_file")
            .map(|file| read_file("ca_file", Path::new(file)))
            .transpose()?;
        let token_file = url.option("token_file").map(PathBuf::from);
        let mut token = token_file.as_deref().map(read_token).transpose()?;
        let mut config = match (in_cluster, url.option("kubeconfig")) {
            (true, Some(_)) => {
                return Err(Error::invalid(
                    "url",
                    "in_cluster/kubeconfig",
                    "in_cluster=true and kubeconfig exclude each other",
                ))
            }
            (true, None) => KubeConfig::in_cluster()?,
            (false, Some(file)) => KubeConfig::from_kubeconfig(file)?,
            (false, None) => match (host, ca.take(), token.take()) {
                (Some(host), Some(ca), Some(token)) => {
                    let mut config = KubeConfig::new(&format!("https://{host}"), ca, token)?;
                    config.token_file = token_file;
                    config
                }
                _ => return Err(Error::invalid("url", url.path(), URL_USAGE)),
            },
        };
        if let Some(host) = host {
            (config.host, config.port, _) = parse_server(&format!("https://{host}"))?;
        }
        if let Some(ca) = ca {
            config.ca = check_ca(ca)?;
        }
        if let Some(token) = token {
            config.token = check_token(token)?;
            config.token_file = url.option("token_file").map(PathBuf::from);
        }
        if let Some(namespace) = url.relative_path() {
            config = config.with_namespace(namespace)?;
        }
        Ok(config)
    }

    /// The pod's own service account, as client-go's `InClusterConfig`:
    /// the apiserver at `$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
    /// and the token, CA and namespace in
    /// `/var/run/secrets/kubernetes.io/serviceaccount`. The token is re-read
    /// as the kubelet rotates it.
    pub fn in_cluster() -> Result<Self> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").ok();
        match (host, port) {
            (Some(host), Some(port)) => {
                Self::in_cluster_from(&host, &port, Path::new(SERVICE_ACCOUNT_DIR))
            }
            _ => Err(Error::invalid(
                "url",
                "in_cluster=true",
                "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not in a pod",
            )),
        }
    }

    fn in_cluster_from(host: &str, port: &str, dir: &Path) -> Result<Self> {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let token_file = dir.join("token");
        let mut config = KubeConfig::new(
            &format!("https://{host}:{port}"),
            read_file("ca_file", &dir.join("ca.crt"))?,
            read_token(&token_file)?,
        )?;
        config.token_file = Some(token_file);
        if let Ok(namespace) = std::fs::read_to_string(dir.join("namespace")) {
            config = config.with_namespace(namespace.trim())?;
        }
        Ok(config)
    }

    /// The current context of the kubeconfig at `path`: its cluster's
    /// `server` and `certificate-authority` or `certificate-authority-data`,
    /// its user's `token` or `tokenFile`, its `namespace`. Users
    /// authenticating otherwise (client certificates, exec plugins, auth
    /// providers) are refused with [`Error::Unsupported`] naming the field.
    pub fn from_kubeconfig(path: impl AsRef<Path>) -> Result<Self> {
        let context = kubeconfig::read(path.as_ref())?;
        let mut config = KubeConfig::new(&context.server, context.ca, context.token)?;
        config.token_file = context.token_file;
        if let Some(namespace) = context.namespace {
            config = config.with_namespace(&namespace)?;
        }
        Ok(config)
    }

    /// Works in `namespace`, a DNS-1123 label (`team-a`).
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self> {
        let label = namespace.len() <= 63
            && namespace.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && namespace.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !label {
            return Err(Error::invalid(
                "namespace",
                namespace,
                "must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', \
                 starting and ending with a letter or digit",
            ));
        }
        self.namespace = namespace.to_owned();
        Ok(self)
    }

    /// How long one request may take before it fails (retryably); 100 ms to
    /// 10 minutes, default 10 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.request_timeout = Error::check_range(
            "request_timeout",
            timeout,
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?;
        Ok(self)
    }

    /// The apiserver, `https://host:port`.
    pub fn server(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("https://{host}:{}{}", self.port, self.base_path)
    }

    /// The namespace objects live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// How long one request may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// `https://host[:port][/path]` → host (unbracketed), port, path.
fn parse_server(server: &str) -> Result<(String, u16, String)> {
    let rule = "must be https://host[:port] (TLS is always on)";
    let bad = || Error::invalid("server", server, rule);
    let rest = server.strip_prefix("https://").ok_or_else(bad)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let has_port = authority
        .rfind(':')
        .is_some_and(|i| !authority[i..].contains(']'));
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    check_host_port("server", &authority, rule)?;
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let path = path.trim_end_matches('/');
    if path.contains(['?', '#']) {
        return Err(bad());
    }
    Ok((
        host.to_owned(),
        port.parse().map_err(|_| bad())?,
        path.to_owned(),
    ))
}

/// `pem` if it holds at least one certificate and nothing unreadable.
fn check_ca(pem: Vec<u8>) -> Result<Vec<u8>> {
    let rule = |why: &str| Error::invalid("ca", "<PEM>", why);
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| rule(&format!("is not valid PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(rule(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(pem)
}

/// `token` if it can go in an `Authorization` header; the error never shows it.
fn check_token(token: Secret) -> Result<Secret> {
    let t = token.expose();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "token",
            "<redacted>",
            "must be non-empty printable ASCII without spaces",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PEM framing around bytes that are no real certificate: the
    /// configuration checks the PEM only, the client the certificate.
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBejCCASCgAwIBAgIUWb0Qy8m4k8YgLwr4N3i7S6vV3lQwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAw
MDBaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AARq9z9l2M7a3Xc0vS3cY1r0tYl1w4n0Zl5oGv0o3jqkq3x5D8V9m4lE2Zt8z3d0
3e6C5s0m2kq7Xo3v5xg3o4Gqo1MwUTAdBgNVHQ4EFgQU1Yx6c0s0d6b4nqz3A4Cq
Yk9o3H4wHwYDVR0jBBgwFoAU1Yx6c0s0d6b4nqz3A4CqYk9o3H4wDwYDVR0TAQH/
BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA0y2k3x5g6cQ0kq3m3Xk2m5y9t3bV
-----END CERTIFICATE-----
";

    /// A directory of files for one test, removed on drop.
    struct Files(PathBuf);

    impl Files {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("tenure-k8s-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            for (file, text) in files {
                std::fs::write(dir.join(file), text).unwrap();
            }
            Files(dir)
        }

        fn path(&self, file: &str) -> String {
            self.0.join(file).display().to_string()
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(url: &str) -> Result<KubeConfig> {
        KubeConfig::from_url(&BackendUrl::parse(url)?)
    }

    #[test]
    fn urls_name_server_namespace_token_and_ca() {
        let files = Files::new("urls", &[("ca.crt", CA), ("token", "s3cr3t.t0k3n\n")]);
        let (ca, token) = (files.path("ca.crt"), files.path("token"));
        let c = config(&format!(
            "k8s://10.0.0.1:6443/team-a?token_file={token}&ca_file={ca}"
        ))
        .unwrap();
        assert_eq!(c.server(), "https://10.0.0.1:6443");
        assert_eq!(c.namespace(), "team-a");
        assert_eq!(c.token.expose(), "s3cr3t.t0k3n");
        assert_eq!(c.token_file.as_deref(), Some(Path::new(&token)));
        assert_eq!(c.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        let c = config(&format!(
            "kubernetes://[::1]:443?token_file={token}&ca_file={ca}"
        ))
        .unwrap();
        assert_eq!(
            (c.server().as_str(), c.namespace()),
            ("https://[::1]:443", "default")
        );
        assert_eq!(c.host, "::1");

        let kubeconfig = Files::new(
            "urls-kubeconfig",
            &[(
                "config",
                &format!(
                    "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  \
                     cluster:\n    server: https://k8s.example:8443/proxy/\n    \
                     certificate-authority: \"{ca}\"\ncontexts:\n- name: c\n  context:\n    \
                     cluster: k\n    user: u\n    namespace: from-context\nusers:\n- name: u\n  \
                     user:\n    token: abc\n"
                ),
            )],
        );
        let path = kubeconfig.path("config");
        let c = config(&format!("k8s://?kubeconfig={path}")).unwrap();
        assert_eq!(c.server(), "https://k8s.example:8443/proxy");
        assert_eq!((c.namespace(), c.token.expose()), ("from-context", "abc"));
        // The URL's host, namespace and token override the kubeconfig's.
        let c = config(&format!(
            "k8s://127.0.0.1:1/ns?kubeconfig={path}&token_file={token}"
        ))
        .unwrap();
        assert_eq!(
            (c.server().as_str(), c.namespace()),
            ("https://127.0.0.1:1/proxy", "ns")
        );
        assert_eq!(c.token.expose(), "s3cr3t.t0k3n");
    }

    #[test]
    fn bad_urls_are_invalid_input_naming_the_field() {
        let files = Files::new("bad-urls", &[("ca.crt", CA), ("token", "t"), ("empty", "")]);
        let (ca, token, empty) = (
            files.path("ca.crt"),
            files.path("token"),
            files.path("empty"),
        );
        for (url, field) in [
            ("etcd://h:1/ns".to_owned(), "url"),
            (format!("k8s://h:1/ns?ca_file={ca}"), "url"),
            (format!("k8s://h:1/ns?token_file={token}"), "url"),
            (format!("k8s:///ns?token_file={token}&ca_file={ca}"), "url"),
            (format!("k8s://h/ns?token_file={token}&ca_file={ca}"), "url"),
            (
                format!("k8s://h:1,g:1/ns?token_file={token}&ca_file={ca}"),
                "url",
            ),
            (
                format!("k8s://h:1/ns?token_file={token}&ca_file={ca}&colour=red"),
                "url",
            ),
            ("k8s:///ns?in_cluster=yes".to_owned(), "url"),
            ("k8s:///ns?in_cluster=true&kubeconfig=/x".to_owned(), "url"),
            (
                format!("k8s://h:1/Team_A?token_file={token}&ca_file={ca}"),
                "namespace",
            ),
            (
                format!("k8s://h:1/a/b?token_file={token}&ca_file={ca}"),
                "namespace",
            ),
            (
                format!("k8s://h:1/-a?token_file={token}&ca_file={ca}"),
                "namespace",
            ),
            (
                format!(
                    "k8s://h:1/{}?token_file={token}&ca_file={ca}",
                    "a".repeat(64)
                ),
                "namespace",
            ),
            (
                format!("k8s://h:1/ns?token_file={token}&ca_file={token}"),
                "ca",
            ),
            (
                format!("k8s://h:1/ns?token_file={empty}&ca_file={ca}"),
                "token",
            ),
            (
                format!("k8s://h:1/ns?token_file=/nonexistent&ca_file={ca}"),
                "token_file",
            ),
            (
                format!("k8s://h:1/ns?token_file={token}&ca_file=/nonexistent"),
                "ca_file",
            ),
            ("k8s:///ns?kubeconfig=/nonexistent".to_owned(), "kubeconfig"),
        ] {
            let err = config(&url).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: f, .. } if *f == field),
                "{url}: {err}"
            );
        }
        for server in [
            "http://h:1",
            "h:1",
            "https://h:0",
            "https://",
            "https://h:1/?a",
            "https://a b",
        ] {
            let err = KubeConfig::new(server, CA, Secret::new("t")).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "server",
                        ..
                    }
                ),
                "{server}: {err}"
            );
        }
        let c = KubeConfig::new("https://h.example", CA, Secret::new("t")).unwrap();
        assert_eq!(c.server(), "https://h.example:443");
    }

    #[test]
    fn in_cluster_reads_the_service_account() {
        let files = Files::new(
            "in-cluster",
            &[
                ("ca.crt", CA),
                ("token", "eyJhbGciOi.sa\n"),
                ("namespace", "kube-system"),
            ],
        );
        let c = KubeConfig::in_cluster_from("fd00::1", "443", &files.0).unwrap();
        assert_eq!(c.server(), "https://[fd00::1]:443");
        assert_eq!(
            (c.namespace(), c.token.expose()),
            ("kube-system", "eyJhbGciOi.sa")
        );
        assert_eq!(c.token_file, Some(files.0.join("token")));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = KubeConfig::new("https://h:1", CA, Secret::new("hunter2-token")).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("https://h:1") && shown.contains("<redacted>"),
            "{shown}"
        );
        let err = KubeConfig::new("https://h:1", CA, Secret::new("bad token")).unwrap_err();
        assert!(!err.to_string().contains("bad token"), "{err}");
    }
}
