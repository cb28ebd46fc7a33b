//! [`EtcdCluster`]: real etcd processes owned by a test.

use std::process::Command;
use std::sync::OnceLock;

use super::kind::Etcd;
use super::{tls, EtcdOptions, TlsFiles};
use crate::group::ServerGroup;
use crate::process::run;
use crate::temp::TempDir;
use crate::TestkitError;

/// An etcd cluster of real `etcd` processes on loopback ports, with its data,
/// logs and certificates in a temporary directory: a [`ServerGroup`] of
/// [`Etcd`] members.
///
/// Dropping it kills every member (SIGKILL, also when a test panics) and removes
/// the directory. Members are numbered from 0 and keep their name (`m<i>`),
/// ports and data directory across [`kill`](ServerGroup::kill) and
/// [`restart`](ServerGroup::restart). A member is ready when it is healthy
/// (etcd's `/health`, or `etcdctl endpoint health` over TLS), and the cluster
/// when, besides, it has a leader.
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// let etcd = tenure_testkit::EtcdCluster::single()?;
/// let status = etcd.etcdctl().args(["put", "greeting", "hello"]).output().unwrap();
/// assert!(status.status.success());
/// # Ok(())
/// # }
/// ```
pub type EtcdCluster = ServerGroup<Etcd>;

impl ServerGroup<Etcd> {
    /// The single-member cluster of this test process, started on first use
    /// and shared by every test in it (isolate them by key prefix). It lives
    /// until the process exits; then a watchdog stops it by PID and removes its
    /// directory.
    ///
    /// # Panics
    /// If etcd cannot be started (the message says how to install it): a test
    /// that needs etcd fails, it never skips.
    pub fn shared() -> &'static EtcdCluster {
        static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::single().unwrap_or_else(|e| panic!("{e}")))
    }

    /// The 3-member cluster of this test process, started on first use and
    /// shared like [`shared`](Self::shared).
    ///
    /// # Panics
    /// If etcd cannot be started (the message says how to install it).
    pub fn shared_cluster() -> &'static EtcdCluster {
        static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::cluster(3).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts one member and waits until it serves.
    pub fn single() -> Result<Self, TestkitError> {
        Self::start(EtcdOptions::default())
    }

    /// Starts `members` members and waits until all serve and one leads.
    pub fn cluster(members: usize) -> Result<Self, TestkitError> {
        Self::start(EtcdOptions {
            members,
            ..EtcdOptions::default()
        })
    }

    /// Starts a cluster as `options` say and waits (up to
    /// [`READY_TIMEOUT`](crate::READY_TIMEOUT)) until every member serves and
    /// one leads.
    pub fn start(options: EtcdOptions) -> Result<Self, TestkitError> {
        if options.members == 0 {
            return Err(TestkitError::InvalidOptions {
                field: "members",
                rule: "a cluster needs at least one member",
            });
        }
        if options.client_cert_auth && !options.tls {
            return Err(TestkitError::InvalidOptions {
                field: "client_cert_auth",
                rule: "client certificates need tls",
            });
        }
        let dir = TempDir::new("etcd")?;
        let tls = if options.tls {
            Some(tls::generate(dir.path())?)
        } else {
            None
        };
        let etcd = Etcd::new(tls, options.client_cert_auth, options.peer_route);
        Self::start_with(etcd, dir, options.members)
    }

    /// `host:port` of each member's client port, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .map(|m| format!("127.0.0.1:{}", self.member(m).ports.client))
            .collect()
    }

    /// Each member's client URL, `http://` or, with TLS, `https://`.
    pub fn client_urls(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .map(|m| self.kind().client_url(self.member(m)))
            .collect()
    }

    /// The certificates, when the cluster serves TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.kind().tls()
    }

    /// `etcdctl` (API v3) pointed at every member, with the client certificate
    /// and CA when TLS is on. Add `--user`, timeouts and the subcommand.
    ///
    /// etcdctl appends repeated `--endpoints` flags instead of replacing them:
    /// use [`etcdctl_on`](Self::etcdctl_on) to reach only some members.
    pub fn etcdctl(&self) -> Command {
        self.etcdctl_on(&self.all())
    }

    /// `etcdctl` pointed at the given members only, e.g. to avoid a paused one.
    ///
    /// # Panics
    /// If one of them does not exist.
    pub fn etcdctl_on(&self, members: &[usize]) -> Command {
        self.kind().etcdctl(members.iter().map(|&m| self.member(m)))
    }

    /// Compacts away every revision older than the current one — physically,
    /// so they are gone from the backend database, not only hidden — and then
    /// defragments each serving member: what operators run to keep etcd's
    /// database small. Returns the revision it compacted at.
    pub fn compact_and_defragment(&self) -> Result<i64, TestkitError> {
        let serving = self.serving();
        let answer = run(
            self.etcdctl_on(&serving)
                .args(["get", "--write-out=json", "tenure-testkit/revision"]),
            "etcdctl",
        )?;
        let answer = String::from_utf8_lossy(&answer.stdout);
        let revision = header_revision(&answer).ok_or_else(|| TestkitError::Io {
            context: format!("no header revision in etcdctl's answer {answer:?}"),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })?;
        run(
            self.etcdctl_on(&serving)
                .args(["compact", "--physical"])
                .arg(revision.to_string()),
            "etcdctl",
        )?;
        run(self.etcdctl_on(&serving).arg("defrag"), "etcdctl")?;
        Ok(revision)
    }

    /// Creates user `root` with `root_password` and turns authentication on
    /// (etcdctl 3.4 creates and grants the `root` role itself).
    pub fn enable_auth(&self, root_password: &str) -> Result<(), TestkitError> {
        let serving = self.serving();
        run(
            self.etcdctl_on(&serving)
                .args(["user", "add", "root"])
                .arg(format!("--new-user-password={root_password}")),
            "etcdctl",
        )?;
        run(
            self.etcdctl_on(&serving).args(["auth", "enable"]),
            "etcdctl",
        )?;
        *self.kind().lock_root_password() = Some(root_password.to_owned());
        Ok(())
    }

    /// Creates `user` with `password` and a role `<user>-readwrite` allowed to
    /// read and write every key, acting as root.
    pub fn add_user(
        &self,
        root_password: &str,
        user: &str,
        password: &str,
    ) -> Result<(), TestkitError> {
        let role = format!("{user}-readwrite");
        let as_root = || {
            let mut command = self.etcdctl_on(&self.serving());
            command
                .arg("--user=root")
                .arg(format!("--password={root_password}"));
            command
        };
        run(
            as_root()
                .args(["user", "add", user])
                .arg(format!("--new-user-password={password}")),
            "etcdctl",
        )?;
        run(as_root().args(["role", "add", &role]), "etcdctl")?;
        // The empty prefix is every key: etcd stores it as the range ["", "\0"),
        // which `role get` shows as `[ , <open ended>`.
        run(
            as_root().args([
                "role",
                "grant-permission",
                "--prefix=true",
                &role,
                "readwrite",
                "",
            ]),
            "etcdctl",
        )?;
        run(
            as_root().args(["user", "grant-role", user, &role]),
            "etcdctl",
        )?;
        Ok(())
    }
}

/// The `"revision"` of the header in etcdctl's JSON answer.
fn header_revision(json: &str) -> Option<i64> {
    let rest = &json[json.find("\"revision\":")? + "\"revision\":".len()..];
    let digits = rest.trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::header_revision;

    #[test]
    fn reads_the_header_revision() {
        let answer =
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":42,"raft_term":3},"count":0}"#;
        assert_eq!(header_revision(answer), Some(42));
        assert_eq!(header_revision(r#"{"header":{}}"#), None);
    }
}
