//! [`EtcdCluster`]: real etcd processes owned by a test.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::member::{Launch, Member};
use super::status::{http_healthy, parse_endpoint_status};
use super::{tls, EtcdOptions, TlsFiles};
use crate::ports::free_port;
use crate::process::{self, run, Signal};
use crate::temp::TempDir;
use crate::TestkitError;

/// How long the kit waits for members to serve and for a leader, before it
/// gives up with the members' logs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a wait polls. Readiness of another process has no event to await.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many times a start or restart is tried when a port was taken between
/// probing it and etcd binding it.
const BIND_ATTEMPTS: usize = 3;

/// What etcd logs when a port it should listen on is taken.
const ADDRESS_IN_USE: &str = "address already in use";

/// Timeouts for the kit's own `etcdctl` probes, so a dead or frozen member
/// answers "no" quickly instead of after etcdctl's 2 s + 5 s defaults.
const PROBE_TIMEOUTS: [&str; 2] = ["--dial-timeout=1s", "--command-timeout=1s"];

/// An etcd cluster of real `etcd` processes on loopback ports, with its data,
/// logs and certificates in a temporary directory.
///
/// Dropping it kills every member (SIGKILL, also when a test panics) and removes
/// the directory. Members are numbered from 0 and keep their name (`m<i>`),
/// ports and data directory across [`kill`](Self::kill) and
/// [`restart`](Self::restart).
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// let etcd = tenure_testkit::EtcdCluster::single()?;
/// let status = etcd.etcdctl().args(["put", "greeting", "hello"]).output().unwrap();
/// assert!(status.status.success());
/// # Ok(())
/// # }
/// ```
pub struct EtcdCluster {
    members: Vec<Member>,
    /// One slot per member. Behind a mutex so kill, restart, pause and resume
    /// work through `&self`, e.g. from a test's fault-injection thread.
    processes: Mutex<Vec<Slot>>,
    tls: Option<TlsFiles>,
    client_cert_auth: bool,
    token: String,
    /// Set by [`EtcdCluster::enable_auth`]: health checks over TLS need it once
    /// auth is on. Never printed.
    root_password: Mutex<Option<String>>,
    /// Dropped last, after `Drop` has killed the processes writing into it.
    dir: TempDir,
}

/// A member's process, if it runs.
#[derive(Debug, Default)]
struct Slot {
    child: Option<Child>,
    paused: bool,
    /// Length of the log when the process was launched: what it logged itself
    /// starts there.
    log_start: u64,
}

impl EtcdCluster {
    /// The single-member cluster of this test process, started on first use
    /// and shared by every test in it (isolate them by key prefix). It lives
    /// until the process exits; then a watchdog stops it by PID and removes its
    /// directory.
    ///
    /// # Panics
    /// If etcd cannot be started (the message says how to install it): a test
    /// that needs etcd fails, it never skips.
    pub fn shared() -> &'static EtcdCluster {
        static SHARED: std::sync::OnceLock<EtcdCluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| Self::single().unwrap_or_else(|e| panic!("{e}")))
    }

    /// The 3-member cluster of this test process, started on first use and
    /// shared like [`shared`](Self::shared).
    ///
    /// # Panics
    /// If etcd cannot be started (the message says how to install it).
    pub fn shared_cluster() -> &'static EtcdCluster {
        static SHARED: std::sync::OnceLock<EtcdCluster> = std::sync::OnceLock::new();
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

    /// Starts a cluster as `options` say and waits (up to [`READY_TIMEOUT`])
    /// until every member serves and one leads.
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
        let mut cluster = Self {
            members: Vec::new(),
            processes: Mutex::new(Vec::new()),
            tls,
            client_cert_auth: options.client_cert_auth,
            token: String::new(),
            root_password: Mutex::new(None),
            dir,
        };
        for attempt in 1..=BIND_ATTEMPTS {
            cluster.plan(options.members, attempt)?;
            let started = cluster
                .launch(&cluster.all())
                .and_then(|()| cluster.wait_ready());
            match started {
                Ok(()) => return Ok(cluster),
                Err(_) if attempt < BIND_ATTEMPTS && cluster.lost_a_port(&cluster.all()) => {
                    cluster.kill_all();
                }
                // Dropping the cluster kills what did start.
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Picks fresh ports, names and an empty state for every member.
    fn plan(&mut self, members: usize, attempt: usize) -> Result<(), TestkitError> {
        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        self.token = format!("tenure-{}-{n}-{attempt}", std::process::id());
        self.members = (0..members)
            .map(|i| Ok(Member::new(i, self.dir.path(), free_port()?, free_port()?)))
            .collect::<Result<_, TestkitError>>()?;
        for member in &self.members {
            // A failed attempt's data would make etcd rejoin the old cluster.
            for path in [&member.data_dir, &member.log] {
                if path.is_dir() {
                    let _ = std::fs::remove_dir_all(path);
                } else if path.exists() {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        *self.lock() = (0..members).map(|_| Slot::default()).collect();
        Ok(())
    }

    /// Launches those of `members` that have no process.
    fn launch(&self, members: &[usize]) -> Result<(), TestkitError> {
        let launch = self.launch_flags();
        let mut slots = self.lock();
        for &member in members {
            let slot = &mut slots[member];
            if slot.child.is_none() {
                slot.log_start = self.members[member].log_len();
                slot.child = Some(self.members[member].spawn(&launch)?);
                slot.paused = false;
            }
        }
        Ok(())
    }

    fn all(&self) -> Vec<usize> {
        (0..self.members.len()).collect()
    }

    fn launch_flags(&self) -> Launch<'_> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        Launch {
            initial_cluster,
            token: &self.token,
            tls: self.tls.as_ref(),
            client_cert_auth: self.client_cert_auth,
        }
    }

    /// Whether the current run of one of `members` failed to bind a port.
    fn lost_a_port(&self, members: &[usize]) -> bool {
        let slots = self.lock();
        members.iter().any(|&member| {
            self.members[member]
                .log_since(slots[member].log_start)
                .contains(ADDRESS_IN_USE)
        })
    }

    /// `host:port` of each member's client port, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Each member's client URL, `http://` or, with TLS, `https://`.
    pub fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.client_url(self.tls.is_some()))
            .collect()
    }

    /// How many members the cluster has, running or not.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The temporary directory holding data directories, logs and certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file of `member` (every run of it, appended).
    ///
    /// # Panics
    /// If there is no such member.
    pub fn log_path(&self, member: usize) -> PathBuf {
        self.members[member].log.clone()
    }

    /// The certificates, when the cluster serves TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The process id of `member`, while it runs (paused counts as running).
    ///
    /// # Panics
    /// If there is no such member.
    pub fn pid(&self, member: usize) -> Option<u32> {
        self.lock()[member].child.as_ref().map(Child::id)
    }

    /// Kills `member` with SIGKILL and reaps it; its data directory stays for
    /// [`restart`](Self::restart). Killing a member that is not running does
    /// nothing.
    ///
    /// # Panics
    /// If there is no such member.
    pub fn kill(&self, member: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[member];
        if let Some(mut child) = slot.child.take() {
            // SIGKILL also ends a stopped process.
            let _ = child.kill();
            let _ = child.wait();
        }
        slot.paused = false;
    }

    /// Starts `member` again with its name, ports and data directory, killing it
    /// first if it still runs, and waits until it serves — which needs a quorum
    /// of the cluster to run (see [`restart_all`](Self::restart_all)).
    ///
    /// # Panics
    /// If there is no such member.
    pub fn restart(&self, member: usize) -> Result<(), TestkitError> {
        assert!(member < self.members.len(), "no member {member}");
        for attempt in 1..=BIND_ATTEMPTS {
            self.kill(member);
            self.launch(&[member])?;
            match self.wait_members(&[member], false) {
                Ok(()) => return Ok(()),
                Err(_) if attempt < BIND_ATTEMPTS && self.lost_a_port(&[member]) => {
                    // Whoever holds the port is usually a short-lived connection.
                    thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Starts every member that is not running (as [`restart`](Self::restart)
    /// does, but together, so a cluster that lost its quorum can get it back)
    /// and waits until the cluster is ready.
    pub fn restart_all(&self) -> Result<(), TestkitError> {
        self.launch(&self.all())?;
        self.wait_ready()
    }

    /// Freezes `member` with SIGSTOP and returns once the kernel shows it
    /// stopped. Its sockets stay open: peers and clients see a member that does
    /// not answer, like a process stuck in a long GC pause or a swapped-out VM.
    ///
    /// # Panics
    /// If there is no such member or it is not running.
    pub fn pause(&self, member: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[member];
        let pid = slot
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("cannot pause m{member}: it is not running"))
            .id();
        process::signal(pid, Signal::Stop);
        slot.paused = true;
    }

    /// Lets a paused `member` run again (SIGCONT); does nothing to a member that
    /// is not running.
    ///
    /// # Panics
    /// If there is no such member.
    pub fn resume(&self, member: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[member];
        if let Some(child) = &slot.child {
            process::signal(child.id(), Signal::Cont);
        }
        slot.paused = false;
    }

    /// The member that is raft leader, as the running, unpaused members report
    /// it: the one that says it leads, at the highest term if a deposed leader
    /// has not noticed yet. `None` while there is no leader.
    pub fn leader(&self) -> Option<usize> {
        let serving = self.serving();
        if serving.is_empty() {
            return None;
        }
        let output = self
            .etcdctl_on(&serving)
            .args(PROBE_TIMEOUTS)
            .args(["endpoint", "status", "-w", "json"])
            .output()
            .ok()?;
        // etcdctl exits non-zero when any endpoint fails, and still prints the others.
        let urls = self.client_urls();
        parse_endpoint_status(&String::from_utf8_lossy(&output.stdout))
            .into_iter()
            .filter(|status| status.is_leader())
            .max_by_key(|status| status.raft_term)
            .and_then(|status| urls.iter().position(|url| *url == status.endpoint))
    }

    /// Waits (up to [`READY_TIMEOUT`]) until every running, unpaused member is
    /// healthy and the cluster has a leader. Fails at once if a member's
    /// process exits meanwhile.
    pub fn wait_ready(&self) -> Result<(), TestkitError> {
        self.wait_members(&[], true)
    }

    /// Waits until `members` (or, if empty, every serving member at each poll)
    /// are healthy, and a leader is known if `need_leader`.
    fn wait_members(&self, members: &[usize], need_leader: bool) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let watched = if members.is_empty() {
                self.serving()
            } else {
                members.to_vec()
            };
            self.check_exits(&watched)?;
            let unhealthy: Vec<usize> = watched
                .iter()
                .copied()
                .filter(|&m| !self.healthy(m))
                .collect();
            let waiting_for = if !unhealthy.is_empty() {
                let names: Vec<&str> = unhealthy
                    .iter()
                    .map(|&m| self.members[m].name.as_str())
                    .collect();
                format!("etcd member(s) {} to become healthy", names.join(", "))
            } else if need_leader && self.leader().is_none() {
                "the etcd cluster to elect a leader".to_owned()
            } else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let concerned = if unhealthy.is_empty() {
                    watched
                } else {
                    unhealthy
                };
                return Err(TestkitError::Timeout {
                    waiting_for,
                    after: READY_TIMEOUT,
                    log_tail: self.log_tails(&concerned),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Fails if one of `members` was running and its process has exited.
    fn check_exits(&self, members: &[usize]) -> Result<(), TestkitError> {
        let mut slots = self.lock();
        for &member in members {
            let slot = &mut slots[member];
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            let exited = child
                .try_wait()
                .map_err(|e| TestkitError::io(format!("cannot check on m{member}"), e))?;
            if let Some(status) = exited {
                slot.child = None;
                slot.paused = false;
                return Err(TestkitError::MemberExited {
                    member,
                    status,
                    log_tail: self.members[member].log_tail(),
                });
            }
        }
        Ok(())
    }

    /// Whether `member` answers a health check.
    fn healthy(&self, member: usize) -> bool {
        if self.tls.is_none() {
            return http_healthy(self.members[member].client_port);
        }
        // No HTTPS client in std: ask etcdctl. `endpoint health` reads a key,
        // which with auth on needs a user (etcd 3.4 answers "user name is
        // empty" otherwise), hence root.
        let mut command = self.etcdctl_on(&[member]);
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
        let urls: Vec<String> = members
            .iter()
            .map(|&m| self.members[m].client_url(self.tls.is_some()))
            .collect();
        let mut command = Command::new("etcdctl");
        // etcdctl 3.4 exits when an ETCDCTL_* variable shadows a flag it is given.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCDCTL_") {
                command.env_remove(key);
            }
        }
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
        *self.lock_root_password() = Some(root_password.to_owned());
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

    /// Members with a process that is not paused: the ones that can answer.
    fn serving(&self) -> Vec<usize> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.child.is_some() && !slot.paused)
            .map(|(member, _)| member)
            .collect()
    }

    fn log_tails(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&m| self.members[m].log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kill_all(&self) {
        for member in self.all() {
            self.kill(member);
        }
    }

    /// The process slots. A test that panicked while holding the lock must not
    /// stop `Drop` from killing the processes, hence no poisoning.
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_root_password(&self) -> MutexGuard<'_, Option<String>> {
        self.root_password
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for EtcdCluster {
    /// Kills every member; the temporary directory goes after (field drop).
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids: Vec<Option<u32>> = self.all().into_iter().map(|m| self.pid(m)).collect();
        f.debug_struct("EtcdCluster")
            .field("client_urls", &self.client_urls())
            .field("pids", &pids)
            .field("dir", &self.dir.path())
            .field("tls", &self.tls.is_some())
            .field("client_cert_auth", &self.client_cert_auth)
            .field("auth_enabled", &self.lock_root_password().is_some())
            .finish_non_exhaustive()
    }
}
