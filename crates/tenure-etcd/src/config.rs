//! How to reach etcd: endpoints, prefix, TTL, TLS and credentials, from a URL or
//! a builder.

use std::path::PathBuf;
use std::time::Duration;

use tenure_core::url::check_host_port;
use tenure_core::{BackendUrl, Error, Path, Result, Secret};

/// The default lease TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// The shortest lease TTL accepted: etcd raises shorter ones anyway.
pub const MIN_TTL: Duration = Duration::from_secs(2);

/// The longest lease TTL accepted.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// TLS settings: the CA to verify servers with, and optionally a client
/// certificate and key (files in PEM).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tls {
    pub(crate) ca: Option<PathBuf>,
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

/// Everything needed to connect; made by [`EtcdConfig::from_url`] or the
/// `with_*` setters. `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: Path,
    pub(crate) ttl: Duration,
    pub(crate) user: Option<(String, Secret)>,
    pub(crate) tls: Option<Tls>,
    pub(crate) connect_timeout: Duration,
}

fn check_endpoint(endpoint: &str) -> Result<()> {
    let rule = "must be host:port (an optional http:// or https:// in front)";
    let bare = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    check_host_port("endpoint", bare, rule).map_err(|_| Error::invalid("endpoint", endpoint, rule))
}

impl EtcdConfig {
    /// A configuration for `endpoints` (`host:port`), with prefix `tenure` and
    /// the default TTL.
    pub fn new<S: AsRef<str>>(endpoints: &[S]) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::invalid(
                "endpoint",
                "",
                "at least one etcd endpoint is needed",
            ));
        }
        for e in endpoints {
            check_endpoint(e.as_ref())?;
        }
        Ok(EtcdConfig {
            endpoints: endpoints.iter().map(|e| e.as_ref().to_owned()).collect(),
            prefix: Path::root("prefix", "tenure")?,
            ttl: DEFAULT_TTL,
            user: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// Reads `etcd://h1:2379,h2:2379/prefix?ttl=10s&tls_ca=..&tls_cert=..&tls_key=..&user=..&password_file=..`.
    pub fn from_url(url: &BackendUrl) -> Result<Self> {
        url.check_scheme_and_options(
            "etcd",
            &[
                "ttl",
                "tls_ca",
                "tls_cert",
                "tls_key",
                "user",
                "password_file",
            ],
        )?;
        let mut config = EtcdConfig::new(url.required_hosts(
            "etcd URLs name their endpoints: etcd://host:port[,host:port...]/prefix",
        )?)?;
        if let Some(prefix) = url.relative_path() {
            config = config.with_prefix(prefix)?;
        }
        if let Some(ttl) = url.duration_option("ttl")? {
            config = config.with_ttl(ttl)?;
        }
        let ca = url.option("tls_ca").map(PathBuf::from);
        let cert = url.option("tls_cert").map(PathBuf::from);
        let key = url.option("tls_key").map(PathBuf::from);
        match (cert, key) {
            (Some(cert), Some(key)) => config = config.with_client_cert(cert, key),
            (None, None) => {}
            _ => {
                return Err(Error::invalid(
                    "url",
                    "tls_cert/tls_key",
                    "a client certificate needs both tls_cert and tls_key",
                ))
            }
        }
        if let Some(ca) = ca {
            config = config.with_ca(ca);
        }
        if let Some((user, password)) = url.credentials()? {
            config = config.with_user(&user, &password);
        }
        Ok(config)
    }

    /// Keys live under `prefix` (validated segments, e.g. `apps/scheduler`).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self> {
        self.prefix = Path::parse("prefix", prefix)?;
        Ok(self)
    }

    /// The lease TTL: how long the server keeps a silent process's candidates.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self> {
        self.ttl = Error::check_range("ttl", ttl, MIN_TTL..=MAX_TTL)?;
        Ok(self)
    }

    /// Authenticates as `user` (etcd's username/password auth).
    pub fn with_user(mut self, user: &str, password: &str) -> Self {
        self.user = Some((user.to_owned(), Secret::new(password)));
        self
    }

    /// Verifies servers with the CA certificate in `ca` (PEM); turns TLS on.
    pub fn with_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.tls.get_or_insert_with(Tls::default).ca = Some(ca.into());
        self
    }

    /// Presents the client certificate `cert` with key `key` (PEM); turns TLS on.
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.get_or_insert_with(Tls::default).client = Some((cert.into(), key.into()));
        self
    }

    /// How long connecting may take before it fails (retryably), default 5 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The key prefix.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_checked() {
        let url = BackendUrl::parse("etcd://127.0.0.1:2379,10.0.0.2:2379/apps/x?ttl=5s").unwrap();
        let config = EtcdConfig::from_url(&url).unwrap();
        assert_eq!(config.endpoints, ["127.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(config.prefix.as_str(), "apps/x");
        assert_eq!(config.ttl, Duration::from_secs(5));
        for bad in [
            "etcd:///x",
            "etcd://h/x",
            "etcd://h:0/x",
            "etcd://h:1/../x",
            "etcd://h:1/x?ttl=1ms",
            "etcd://h:1/x?tls_cert=a",
            "etcd://h:1/x?user=root",
            "etcd://h:1/x?colour=red",
        ] {
            let err = EtcdConfig::from_url(&BackendUrl::parse(bad).unwrap()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = EtcdConfig::new(&["h:1"])
            .unwrap()
            .with_user("root", "hunter2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("root"));
    }
}
