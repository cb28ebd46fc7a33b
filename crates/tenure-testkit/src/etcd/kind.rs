//! [`Etcd`]: how the kit launches etcd members and asks them how they are.

use std::fmt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::status::{http_healthy, parse_endpoint_status};
use super::TlsFiles;
use crate::group::{Member, ServerGroup, ServerKind};
use crate::ports::free_port;
use crate::{PeerRoute, TestkitError};

/// Timeouts for the kit's own `etcdctl` probes, so a dead or frozen member
/// answers "no" quickly instead of after etcdctl's 2 s + 5 s defaults.
const PROBE_TIMEOUTS: [&str; 2] = ["--dial-timeout=1s", "--command-timeout=1s"];

/// The `etcd` program (3.4, as packaged by Debian) as a [`ServerKind`]: what
/// an [`EtcdCluster`](crate::EtcdCluster) runs. Members are named `m<i>`.
pub struct Etcd {
    tls: Option<TlsFiles>,
    client_cert_auth: bool,
    /// `--initial-cluster-token`, fresh for each start attempt.
    token: String,
    /// `--initial-cluster`: `m0=http://127.0.0.1:<peer port>,…`.
    initial_cluster: String,
    /// How peers reach a member's peer port.
    peer_route: Option<PeerRoute>,
    /// The peer URL each member (by name) advertises: its own, or its
    /// route's.
    advertised: Vec<(String, String)>,
    /// Set by [`EtcdCluster::enable_auth`](crate::EtcdCluster::enable_auth):
    /// health checks over TLS need it once auth is on. Never printed.
    root_password: Mutex<Option<String>>,
}

/// The ports of an etcd member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdPorts {
    /// Clients (gRPC and the JSON gateway, `/health`).
    pub client: u16,
    /// Raft traffic between members, always plain HTTP.
    pub peer: u16,
}

impl Etcd {
    pub(super) fn new(
        tls: Option<TlsFiles>,
        client_cert_auth: bool,
        peer_route: Option<PeerRoute>,
    ) -> Self {
        Self {
            tls,
            client_cert_auth,
            token: String::new(),
            initial_cluster: String::new(),
            peer_route,
            advertised: Vec::new(),
            root_password: Mutex::new(None),
        }
    }

    pub(super) fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The peer URL `member` advertises to the others.
    fn advertised_url(&self, member: &Member<EtcdPorts>) -> String {
        self.advertised
            .iter()
            .find(|(name, _)| *name == member.name)
            .map_or_else(|| peer_url(member), |(_, url)| url.clone())
    }

    /// `member`'s client URL, `http://` or, with TLS, `https://`.
    pub(super) fn client_url(&self, member: &Member<EtcdPorts>) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", member.ports.client)
    }

    /// `etcdctl` (API v3) pointed at `members`, with the client certificate
    /// and CA when TLS is on.
    pub(super) fn etcdctl<'a>(
        &self,
        members: impl IntoIterator<Item = &'a Member<EtcdPorts>>,
    ) -> Command {
        let urls: Vec<String> = members.into_iter().map(|m| self.client_url(m)).collect();
        // etcdctl 3.4 exits when an ETCDCTL_* variable shadows a flag it is given.
        let mut command = without_env("etcdctl", "ETCDCTL_");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", urls.join(",")));
        if let Some(tls) = &self.tls {
            command
                .arg("--cacert")
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key);
        }
        command
    }

    pub(super) fn lock_root_password(&self) -> MutexGuard<'_, Option<String>> {
        self.root_password
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `member` answers a health check.
    fn healthy(&self, member: &Member<EtcdPorts>) -> bool {
        if self.tls.is_none() {
            return http_healthy(member.ports.client);
        }
        // No HTTPS client in std: ask etcdctl. `endpoint health` reads a key,
        // which with auth on needs a user (etcd 3.4 answers "user name is
        // empty" otherwise), hence root.
        let mut command = self.etcdctl([member]);
        command.args(PROBE_TIMEOUTS);
        if let Some(password) = self.lock_root_password().as_deref() {
            command
                .arg("--user=root")
                .arg(format!("--password={password}"));
        }
        command
            .args(["endpoint", "health"])
            .output()
            .is_ok_and(|output| output.status.success())
    }
}

impl ServerKind for Etcd {
    type Ports = EtcdPorts;
    /// Health is all `/health` (or `etcdctl endpoint health`) says.
    type Ready = ();

    const PROGRAM: &'static str = "etcd";
    const NAME_PREFIX: &'static str = "m";
    const NOUN: &'static str = "etcd member";
    const READY: &'static str = "become healthy";

    fn ports() -> Result<EtcdPorts, TestkitError> {
        Ok(EtcdPorts {
            client: free_port()?,
            peer: free_port()?,
        })
    }

    fn configure(
        &mut self,
        members: &[Member<EtcdPorts>],
        attempt: usize,
    ) -> Result<(), TestkitError> {
        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        self.token = format!("tenure-{}-{n}-{attempt}", std::process::id());
        self.advertised = members
            .iter()
            .map(|m| {
                let url = match &self.peer_route {
                    None => peer_url(m),
                    Some(route) => format!("http://127.0.0.1:{}", route.port(m.ports.peer)?),
                };
                Ok((m.name.clone(), url))
            })
            .collect::<Result<_, TestkitError>>()?;
        self.initial_cluster = self
            .advertised
            .iter()
            .map(|(name, url)| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(())
    }

    /// An existing data directory makes etcd ignore the `--initial-*` flags
    /// and rejoin as the same member.
    fn command(&self, member: &Member<EtcdPorts>) -> Command {
        let client_url = self.client_url(member);
        // etcd reads ETCD_* variables too and refuses to start when one conflicts
        // with a flag; the test's environment must not change the cluster.
        let mut command = without_env("etcd", "ETCD_");
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(peer_url(member))
            .arg("--initial-advertise-peer-urls")
            .arg(self.advertised_url(member))
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
            // 0 is etcd's own default, spelled out: a test that compacts does so itself.
            .arg("--auto-compaction-retention=0")
            // bcrypt's minimum: authentication costs about 1 ms instead of ~60 ms.
            .arg("--bcrypt-cost=4");
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key);
            if self.client_cert_auth {
                command
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(&tls.ca);
            }
        }
        if let Some(dir) = member.dir.parent() {
            command.current_dir(dir);
        }
        command
    }

    /// Healthy: etcd 3.4's `/health` says so only when the member knows a
    /// leader and a quorum read succeeds.
    fn probe(group: &ServerGroup<Self>, member: usize) -> Option<()> {
        group.kind().healthy(group.member(member)).then_some(())
    }

    /// Every serving member healthy is not enough right after a start or a
    /// failover: the cluster must also have elected a leader.
    fn unsettled(group: &ServerGroup<Self>, _ready: &[()]) -> Option<String> {
        Self::leader(group)
            .is_none()
            .then(|| "the etcd cluster to elect a leader".to_owned())
    }

    /// The raft leader: the member that says it leads, at the highest term if
    /// a deposed leader has not noticed yet.
    fn leader(group: &ServerGroup<Self>) -> Option<usize> {
        let serving = group.serving();
        if serving.is_empty() {
            return None;
        }
        let etcd = group.kind();
        let output = etcd
            .etcdctl(serving.iter().map(|&m| group.member(m)))
            .args(PROBE_TIMEOUTS)
            .args(["endpoint", "status", "-w", "json"])
            .output()
            .ok()?;
        // etcdctl exits non-zero when any endpoint fails, and still prints the others.
        let urls: Vec<String> = (0..group.members())
            .map(|m| etcd.client_url(group.member(m)))
            .collect();
        parse_endpoint_status(&String::from_utf8_lossy(&output.stdout))
            .into_iter()
            .filter(|status| status.is_leader())
            .max_by_key(|status| status.raft_term)
            .and_then(|status| urls.iter().position(|url| *url == status.endpoint))
    }

    /// etcd's own variant, older than [`TestkitError::Exited`].
    fn exited(
        _group: &ServerGroup<Self>,
        member: usize,
        status: ExitStatus,
        log_tail: String,
    ) -> TestkitError {
        TestkitError::MemberExited {
            member,
            status,
            log_tail,
        }
    }
}

/// `program`, with the environment variables whose names start with `prefix`
/// removed from its environment.
fn without_env(program: &str, prefix: &str) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(prefix) {
            command.env_remove(key);
        }
    }
    command
}

fn peer_url(member: &Member<EtcdPorts>) -> String {
    format!("http://127.0.0.1:{}", member.ports.peer)
}

impl fmt::Debug for Etcd {
    /// Without the root password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd")
            .field("tls", &self.tls.is_some())
            .field("client_cert_auth", &self.client_cert_auth)
            .field("auth_enabled", &self.lock_root_password().is_some())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}
