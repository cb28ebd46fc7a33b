//! How to reach ZooKeeper: servers, chroot, session timeout and digest
//! credentials, from a URL or a builder.

use std::time::Duration;

use tenure_core::url::check_host_port;
use tenure_core::{BackendUrl, Error, Layout, Path, Result, Secret};

/// The session timeout asked of the server unless configured.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest session timeout accepted here (servers allow 2 × tickTime at
/// the least; with the default tickTime of 2 s that is 4 s).
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(500);

/// The longest session timeout accepted here.
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);

/// The chroot used unless configured.
pub const DEFAULT_CHROOT: &str = "tenure";

/// Everything needed to connect; made by [`ZkConfig::from_url`] or the
/// `with_*` setters. `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct ZkConfig {
    pub(crate) servers: Vec<String>,
    pub(crate) chroot: Path,
    pub(crate) session_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) digest: Option<(String, Secret)>,
    pub(crate) layout: Layout,
}

fn check_server(server: &str) -> Result<()> {
    check_host_port("server", server, "must be host:port")
}

impl ZkConfig {
    /// A configuration for `servers` (`host:port`), with chroot `/tenure` and
    /// the default session timeout.
    pub fn new<S: AsRef<str>>(servers: &[S]) -> Result<Self> {
        if servers.is_empty() {
            return Err(Error::invalid(
                "server",
                "",
                "at least one ZooKeeper server is needed",
            ));
        }
        for s in servers {
            check_server(s.as_ref())?;
        }
        Ok(ZkConfig {
            servers: servers.iter().map(|s| s.as_ref().to_owned()).collect(),
            chroot: Path::root("chroot", DEFAULT_CHROOT)?,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            layout: Layout::Tenure,
            connect_timeout: Duration::from_secs(5),
            digest: None,
        })
    }

    /// Reads `zk://h1:2181,h2:2181/chroot?session_timeout=10s&connect_timeout=5s&user=..&password_file=..`.
    pub fn from_url(url: &BackendUrl) -> Result<Self> {
        url.check_scheme_and_options(
            "zk",
            &[
                "session_timeout",
                "connect_timeout",
                "layout",
                "user",
                "password_file",
            ],
        )?;
        let mut config = ZkConfig::new(
            url.required_hosts("zk URLs name their servers: zk://host:port[,host:port...]/chroot")?,
        )?;
        if let Some(chroot) = url.relative_path() {
            config = config.with_chroot(chroot)?;
        }
        if let Some(timeout) = url.duration_option("session_timeout")? {
            config = config.with_session_timeout(timeout)?;
        }
        if let Some(layout) = url.option("layout") {
            config = config.with_layout(Layout::parse(layout)?);
        }
        if let Some(timeout) = url.duration_option("connect_timeout")? {
            config = config.with_connect_timeout(timeout);
        }
        if let Some((user, password)) = url.credentials()? {
            config = config.with_digest(&user, &password)?;
        }
        Ok(config)
    }

    /// Every node lives under `/<chroot>` (validated segments, e.g.
    /// `flink/prod`); it is created on connect if missing.
    pub fn with_chroot(mut self, chroot: &str) -> Result<Self> {
        self.chroot = Path::parse("chroot", chroot)?;
        Ok(self)
    }

    /// The session timeout to ask the server for. The server may clamp it to
    /// its `[minSessionTimeout, maxSessionTimeout]`; the negotiated value is
    /// what counts ([`ZkBackend::negotiated_session_timeout`](crate::ZkBackend::negotiated_session_timeout)).
    pub fn with_session_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.session_timeout = Error::check_range(
            "session_timeout",
            timeout,
            MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT,
        )?;
        Ok(self)
    }

    /// How long connecting may take before it fails (retryably), default 5 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How values are stored: tenure's own format (the default) or Apache
    /// Flink's bare bytes, to read and write Flink's ZooKeeper HA nodes (see
    /// [`Layout`]).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Authenticates with ZooKeeper's `digest` scheme as `user`, and creates
    /// every node so that only this user may change or delete it (anyone may
    /// read it, so observers need no credentials).
    pub fn with_digest(mut self, user: &str, password: &str) -> Result<Self> {
        if user.is_empty() || user.contains(':') {
            return Err(Error::invalid(
                "user",
                user,
                "must be non-empty and must not contain ':'",
            ));
        }
        self.digest = Some((user.to_owned(), Secret::new(password)));
        Ok(self)
    }

    /// The session timeout asked for.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The chroot.
    pub fn chroot(&self) -> &Path {
        &self.chroot
    }

    /// The connect string: `host:port,host:port`.
    pub(crate) fn connect_string(&self) -> String {
        self.servers.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_checked() {
        let url =
            BackendUrl::parse("zk://127.0.0.1:2181,10.0.0.2:2181/flink/prod?session_timeout=4s")
                .unwrap();
        let config = ZkConfig::from_url(&url).unwrap();
        assert_eq!(config.servers, ["127.0.0.1:2181", "10.0.0.2:2181"]);
        assert_eq!(config.chroot.as_str(), "flink/prod");
        assert_eq!(config.session_timeout, Duration::from_secs(4));
        let default = ZkConfig::from_url(&BackendUrl::parse("zk://h:1").unwrap()).unwrap();
        assert_eq!(default.chroot.as_str(), DEFAULT_CHROOT);
        assert_eq!(default.session_timeout, DEFAULT_SESSION_TIMEOUT);
        for bad in [
            "zk:///x",
            "zk://h/x",
            "zk://h:0/x",
            "zk://h:99999/x",
            "zk://h:1/../x",
            "zk://h:1/a//b",
            "zk://h:1/x?session_timeout=1ms",
            "zk://h:1/x?session_timeout=2h",
            "zk://h:1/x?session_timeout=soon",
            "zk://h:1/x?user=root",
            "zk://h:1/x?colour=red",
            "etcd://h:1/x",
        ] {
            let err = ZkConfig::from_url(&BackendUrl::parse(bad).unwrap()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = ZkConfig::new(&["h:1"])
            .unwrap()
            .with_digest("flink", "hunter2")
            .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("flink"));
    }
}
