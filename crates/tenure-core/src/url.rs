//! Backend URLs: `scheme://host:port[,host:port...]/path?key=value&...`.
//!
//! Parsed once here so every backend reads hosts, path and options the same way
//! and rejects what it does not understand: an unknown option is an error, never
//! silently ignored.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// A parsed backend URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendUrl {
    scheme: String,
    hosts: Vec<String>,
    path: String,
    options: Vec<(String, String)>,
}

/// Shows the URL without any `user:password@` part or option that looks like a
/// secret, so it can be logged.
impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<_> = self
            .options
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "token", "key"]
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("BackendUrl")
            .field("scheme", &self.scheme)
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field("options", &options)
            .finish()
    }
}

impl BackendUrl {
    /// Parses `url`. The scheme is required; hosts, path and options are optional
    /// here and checked by the backend that reads them.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |rule: &str| Error::invalid("url", url, rule);
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            bad("must start with a scheme such as memory:, local://, etcd:// or zk://")
        })?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(bad("has an invalid scheme"));
        }
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("must not contain spaces or control characters"));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (hosts, path) = match rest.strip_prefix("//") {
            Some(authority_and_path) => {
                let (authority, path) = match authority_and_path.find('/') {
                    Some(i) => authority_and_path.split_at(i),
                    None => (authority_and_path, ""),
                };
                if authority.contains('@') {
                    return Err(bad(
                        "must not carry credentials; pass them through the backend's builder or options",
                    ));
                }
                let hosts: Vec<String> = if authority.is_empty() {
                    Vec::new()
                } else {
                    authority.split(',').map(str::to_owned).collect()
                };
                if hosts.iter().any(|h| h.is_empty()) {
                    return Err(bad("has an empty host in its host list"));
                }
                (hosts, path)
            }
            None => (Vec::new(), rest),
        };
        let mut options = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("options must be key=value pairs separated by '&'"))?;
            if options
                .iter()
                .any(|(existing, _): &(String, String)| existing == k)
            {
                return Err(bad(&format!("sets option {k:?} twice")));
            }
            options.push((k.to_owned(), v.to_owned()));
        }
        Ok(BackendUrl {
            scheme: scheme.to_ascii_lowercase(),
            hosts,
            path: path.to_owned(),
            options,
        })
    }

    /// The scheme, lower-case, without `:`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The hosts of the authority (`h1:2379,h2:2379` gives two), possibly none.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The path, with its leading `/` if any (may be empty).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The options in the order given.
    pub fn options(&self) -> &[(String, String)] {
        &self.options
    }

    /// Fails unless the scheme is `scheme` and every option one of `known`:
    /// what a backend checks first of a URL given to it.
    pub fn check_scheme_and_options(&self, scheme: &str, known: &[&str]) -> Result<()> {
        if self.scheme != scheme {
            return Err(Error::invalid(
                "url",
                &self.scheme,
                format!("is not the {scheme} scheme"),
            ));
        }
        self.check_options(known)
    }

    /// Fails with `usage` unless the URL names no host: for backends without
    /// servers.
    pub fn check_no_hosts(&self, usage: &str) -> Result<()> {
        if self.hosts.is_empty() {
            return Ok(());
        }
        Err(Error::invalid("url", &self.hosts.join(","), usage))
    }

    /// The hosts, or `usage` as the error if the URL names none: for backends
    /// with servers.
    pub fn required_hosts(&self, usage: &str) -> Result<&[String]> {
        if self.hosts.is_empty() {
            return Err(Error::invalid("url", &self.path, usage));
        }
        Ok(&self.hosts)
    }

    /// The path without its leading `/`, or `None` if that leaves nothing.
    pub fn relative_path(&self) -> Option<&str> {
        Some(self.path.trim_start_matches('/')).filter(|p| !p.is_empty())
    }

    /// Fails unless every option is one of `known`, naming the first that is not.
    pub fn check_options(&self, known: &[&str]) -> Result<()> {
        for (k, _) in &self.options {
            if !known.contains(&k.as_str()) {
                return Err(Error::invalid(
                    "url",
                    k,
                    format!(
                        "is not an option of the {} backend; known options: {}",
                        self.scheme,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Option `key` parsed as a duration (`500ms`, `10s`, `2m`), if given.
    pub fn duration_option(&self, key: &str) -> Result<Option<Duration>> {
        self.option(key).map(|v| parse_duration(key, v)).transpose()
    }

    /// The credentials named by options `user` and `password_file` (the
    /// password is read from that file, without a trailing newline): both or
    /// neither, since passwords never go in URLs.
    pub fn credentials(&self) -> Result<Option<(String, String)>> {
        match (self.option("user"), self.option("password_file")) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file).map_err(|e| {
                    Error::invalid("url", file, format!("password_file cannot be read: {e}"))
                })?;
                let password = password.trim_end_matches(['\n', '\r']).to_owned();
                Ok(Some((user.to_owned(), password)))
            }
            (None, None) => Ok(None),
            _ => Err(Error::invalid(
                "url",
                "user/password_file",
                "credentials need both user and password_file (passwords never go in URLs)",
            )),
        }
    }
}

/// Parses `500ms`, `10s`, `1.5s` or `2m` (a bare number means seconds).
pub fn parse_duration(field: &str, value: &str) -> Result<Duration> {
    let bad = || {
        Error::invalid(
            "duration",
            value,
            format!("{field} must be a positive number with unit ms, s or m, such as 500ms or 10s"),
        )
    };
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60.0)
    } else {
        (value, 1.0)
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = number * scale;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_path_and_options() {
        let url = BackendUrl::parse("etcd://h1:2379,h2:2379/apps/x?ttl=5s&a=b").unwrap();
        assert_eq!(url.scheme(), "etcd");
        assert_eq!(url.hosts(), ["h1:2379", "h2:2379"]);
        assert_eq!(url.path(), "/apps/x");
        assert_eq!(
            url.duration_option("ttl").unwrap(),
            Some(Duration::from_secs(5))
        );
        assert!(url.check_options(&["ttl"]).is_err());
        let memory = BackendUrl::parse("memory:").unwrap();
        assert_eq!(
            (memory.scheme(), memory.hosts().len(), memory.path()),
            ("memory", 0, "")
        );
        let local = BackendUrl::parse("local:///var/lib/app").unwrap();
        assert_eq!(local.path(), "/var/lib/app");
    }

    #[test]
    fn rejects_malformed_urls() {
        for bad in [
            "",
            "nothing",
            ":x",
            "etcd://a,,b/",
            "etcd://user:pw@h:1/",
            "etcd://h:1/?ttl",
            "etcd://h:1/?a=1&a=2",
            "etcd://h 1/",
        ] {
            let err = BackendUrl::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { field: "url", .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("ttl", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("ttl", "2m").unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(parse_duration("ttl", "3").unwrap(), Duration::from_secs(3));
        for bad in ["", "0s", "-1s", "abc", "1h", "NaNs", "1e9s"] {
            assert!(parse_duration("ttl", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let url = BackendUrl::parse("zk://h:2181/c?digest_password=hunter2").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn host_port_accepts_names_and_addresses_and_names_the_field() {
        for ok in [
            "h:1",
            "etcd-1.example:2379",
            "10.0.0.1:65535",
            "[::1]:2181",
            "my_host:9",
        ] {
            check_host_port("server", ok, "must be host:port").unwrap();
        }
        for bad in [
            "", "h", ":1", "h:", "h:0", "h:65536", "h:x", "h/p:1", "a b:1",
        ] {
            let err = check_host_port("server", bad, "must be host:port").unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "server",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.expose(), "hunter2");
    }
}

/// Checks that `value` is `host:port`: a host name, an IPv4 address or a
/// bracketed IPv6 address, and a port from 1 to 65535. `field` and `rule` name
/// the input and what it must be in the error.
pub fn check_host_port(field: &'static str, value: &str, rule: &str) -> Result<()> {
    let bad = || Error::invalid(field, value, rule);
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// A password or token, kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
