//! The HA failover scenario with leader A a real OS process, run on every
//! topology of a backend (single server, cluster, ensemble) by the backend's
//! `harness = false` test target.
//!
//! A backend's `tests/ha_<backend>.rs`, declared in its Cargo.toml as
//! `[[test]] name = "ha_<backend>"` with `harness = false`, implements
//! [`ProcessCluster`] for its [`TestCluster`] and has this `main`:
//!
//! ```text
//! fn main() -> std::process::ExitCode {
//!     process::main(&[
//!         ("single", || common::case_on(EtcdCluster::shared())),
//!         ("cluster", || common::case_on(EtcdCluster::shared_cluster())),
//!     ])
//! }
//! ```
//!
//! [`main`] runs every case on every topology, each as a test named
//! `<topology>::<case>`; the case list lives here, so no backend can leave
//! one out. A case re-runs the same executable as leader A's child process
//! with [`ROLE_ENV`] set, and `main` plays the role then instead of running
//! tests. That is why the target has no libtest harness: the child must take
//! its role before any harness runs, and a `#[test]` entry point for it would
//! be listed, and counted as a passing test, in every normal run. The small
//! harness that runs the cases instead understands the options cargo passes
//! (`--list`, filters, `--exact`, `--skip`).

use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    failover_in_process, finish_job, harness, is_rejection, leader_a_writes, leader_b_recovers,
    shut_down_cluster, snapshot, stale_writes, take_over, temp_blob_dir, wait_queued, Candidate,
};
use crate::backend::DynBackend;
use crate::conformance::{TestCluster, CASE_TIMEOUT, PATIENCE};
use crate::error::{Error, Result};
use crate::url::BackendUrl;

/// A [`TestCluster`] whose clients a child process can open too.
#[async_trait]
pub trait ProcessCluster: TestCluster + Sized {
    /// The URL with which a child process opens a client of this cluster
    /// (the same servers, the same key prefix, chroot or directory), with a
    /// session of `session` where the backend's sessions rest on a TTL.
    fn child_url(&self, session: Duration) -> String;

    /// Opens a client from a URL made by [`child_url`](Self::child_url); runs
    /// in the child process, which has no cluster handle.
    async fn connect(url: &BackendUrl) -> Result<DynBackend>;
}

/// The session of leader A's child process: short, so that a paused A loses
/// it quickly where sessions rest on a TTL.
pub const CHILD_SESSION: Duration = Duration::from_secs(2);

/// The environment variable that makes the executable play a role as a child
/// process instead of running its tests.
pub const ROLE_ENV: &str = "TENURE_HA_ROLE";

/// The only role: leader A (see [`leader_a_role`]).
const LEADER_A: &str = "leader-a";

/// The child's backend URL, from [`ProcessCluster::child_url`].
const URL_ENV: &str = "TENURE_HA_URL";

/// The child's blob directory.
const BLOB_ENV: &str = "TENURE_HA_BLOB_DIR";

/// A topology of a backend: its name and how to build a fresh cluster on it
/// for a case.
pub type Topology<C> = (&'static str, fn() -> C);

type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One case of the suite on one cluster.
type CaseFn<C> = for<'a> fn(&'a C) -> CaseFuture<'a>;

/// Every case, by name.
fn cases<C: ProcessCluster>() -> [(&'static str, CaseFn<C>); 3] {
    [
        ("failover_in_process", |cluster| {
            Box::pin(async move {
                failover_in_process(cluster, &temp_blob_dir("in-process")).await;
            })
        }),
        ("failover_with_leader_a_killed", |cluster| {
            Box::pin(failover_with_leader_a_killed(cluster))
        }),
        ("failover_with_leader_a_paused", |cluster| {
            Box::pin(failover_with_leader_a_paused(cluster))
        }),
    ]
}

/// The `main` of a backend's `harness = false` HA test target: plays leader A
/// when started as a child, and otherwise runs (or lists) every case on a
/// fresh cluster of each named topology.
pub fn main<C: ProcessCluster>(topologies: &[Topology<C>]) -> ExitCode {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        play::<C>(&role);
        return ExitCode::SUCCESS;
    }
    let mut all = Vec::new();
    for &(topology, new_cluster) in topologies {
        for (case, run) in cases::<C>() {
            let name = format!("{topology}::{case}");
            let label = name.clone();
            all.push(harness::Case {
                name,
                run: Box::new(move || run_case(&label, new_cluster, run)),
            });
        }
    }
    harness::run(all)
}

/// The runtime of a case or a child, as `#[tokio::test(flavor =
/// "multi_thread", worker_threads = 2)]` builds it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn run_case<C: ProcessCluster>(name: &str, new_cluster: fn() -> C, case: CaseFn<C>) {
    runtime().block_on(async {
        let cluster = new_cluster();
        // A hung case fails, naming itself, instead of hanging the run.
        let outcome = tokio::time::timeout(CASE_TIMEOUT, case(&cluster)).await;
        assert!(
            outcome.is_ok(),
            "case {name} did not finish within {CASE_TIMEOUT:?}"
        );
    });
}

/// Plays `role` in this child process, on the backend and blob directory the
/// parent gave.
fn play<C: ProcessCluster>(role: &str) {
    assert_eq!(role, LEADER_A, "unknown role in {ROLE_ENV}");
    let url = std::env::var(URL_ENV).expect("the parent gives the backend URL");
    let blob_dir = PathBuf::from(std::env::var(BLOB_ENV).expect("the parent gives the blobs"));
    runtime().block_on(async {
        let url = BackendUrl::parse(&url).expect("a valid backend URL");
        let backend = C::connect(&url).await.expect("leader A connects");
        leader_a_role(backend, &blob_dir).await;
    });
}

/// Starts leader A as a child process on `cluster` and waits until it leads
/// and has written; returns it and its term.
fn spawn_leader_a<C: ProcessCluster>(cluster: &C, blob_dir: &FsPath) -> (RoleProcess, u64) {
    let a = RoleProcess::spawn(
        LEADER_A,
        &[
            (URL_ENV, cluster.child_url(CHILD_SESSION)),
            (BLOB_ENV, blob_dir.display().to_string()),
        ],
    );
    let term = a.expect("READY")[0].parse().expect("A's term");
    (a, term)
}

/// Leader A is a child process killed by SIGKILL. The stale leader is S, an
/// in-process candidate granted after A's death whose session then ends while
/// it lives, so that B takes over. On a backend without TTL sessions that is
/// the only way a live process becomes stale (a paused one keeps its lock: see
/// [`failover_with_leader_a_paused`]); on every backend it is what a stale
/// leader is.
pub async fn failover_with_leader_a_killed<C: ProcessCluster>(cluster: &C) {
    let blob_dir = temp_blob_dir("killed");
    let (mut a, a_term) = spawn_leader_a(cluster, &blob_dir);

    // S and B queue behind A.
    let s_backend = cluster.client().await.expect("a client");
    let b_backend = cluster.client().await.expect("a client");
    let s = Candidate::start(s_backend, &blob_dir);
    wait_queued(&b_backend, 2).await;
    let b = Candidate::start(b_backend.clone(), &blob_dir);
    wait_queued(&b_backend, 3).await;

    // A dies: its lock goes with it (or its session when its TTL runs out),
    // and S is granted.
    a.kill();
    let s = s.leader("s").await;
    assert!(s.fence.term() > a_term, "S leads with a higher term");
    // S's session ends while S lives: B takes over, and S is a stale leader.
    let b = take_over(cluster, &s, b, &blob_dir).await;

    finish_job(&b, &blob_dir).await;
    s.services.close().await.expect("S closes");
    shut_down_cluster(&b, &blob_dir).await;
    b_backend.close().await.expect("B closes");
    let _ = std::fs::remove_dir_all(&blob_dir);
}

/// Leader A is a child process paused by SIGSTOP. Where sessions rest on a
/// TTL, A's session runs out on the server and B is granted; A, resumed and
/// still believing it leads, tries to write, and every attempt is rejected
/// without changing anything; then A is killed. Without TTL sessions nobody
/// may take over from a process that is not dead: B is not granted while A is
/// paused, only once A is killed.
pub async fn failover_with_leader_a_paused<C: ProcessCluster>(cluster: &C) {
    let blob_dir = temp_blob_dir("paused");
    let (mut a, a_term) = spawn_leader_a(cluster, &blob_dir);
    let b_backend = cluster.client().await.expect("a client");
    let mut b = Candidate::start(b_backend.clone(), &blob_dir);
    wait_queued(&b_backend, 2).await;

    // A stops mid-flight.
    a.signal("-STOP");
    let ttl_sessions = b_backend.capabilities().ttl_sessions;
    if !ttl_sessions {
        b.assert_not_granted(2 * CHILD_SESSION).await;
        a.kill();
    }
    // A's session runs out on the server (or A died), and B is granted.
    let b = b.leader("b").await;
    assert!(b.fence.term() > a_term, "B leads with a higher term");
    leader_b_recovers(&b).await;

    if ttl_sessions {
        // A resumes, still believing it leads, and tries to write.
        let before = snapshot(&b_backend, &blob_dir).await;
        a.signal("-CONT");
        a.send("STALE");
        assert_eq!(
            a.expect("STALE"),
            ["rejected", "rejected", "rejected"],
            "A's stale counter bump, checkpoint and raw fenced write"
        );
        assert_eq!(
            snapshot(&b_backend, &blob_dir).await,
            before,
            "A's stale attempts changed something"
        );
    }
    a.kill();

    finish_job(&b, &blob_dir).await;
    shut_down_cluster(&b, &blob_dir).await;
    b_backend.close().await.expect("B closes");
    let _ = std::fs::remove_dir_all(&blob_dir);
}

/// Prints one protocol line to stdout for the parent.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Leader A's role in a child process: leads, writes checkpoints 1..5, says
/// `READY <term>`, then answers commands from stdin until it is killed or
/// stdin closes: `STALE` makes the stale attempts and says
/// `STALE <counter> <checkpoint> <raw>`, each `rejected` or what happened.
pub async fn leader_a_role(backend: DynBackend, blob_dir: &FsPath) {
    let a = Candidate::start(backend, blob_dir).leader("a").await;
    leader_a_writes(&a).await;
    say(&format!("READY {}", a.fence.term()));
    loop {
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(line.trim().to_owned()),
            }
        })
        .await
        .ok()
        .flatten();
        match line.as_deref() {
            None => return,
            Some("STALE") => {
                let outcome = stale_writes(&a.services, &a.fence).await;
                let word = |ok: bool, r: String| {
                    if ok {
                        "rejected".to_owned()
                    } else {
                        r.replace(' ', "_")
                    }
                };
                say(&format!(
                    "STALE {} {} {}",
                    word(
                        is_rejection(&outcome.counter),
                        format!("{:?}", outcome.counter)
                    ),
                    word(
                        is_rejection(&outcome.checkpoint),
                        format!("{:?}", outcome.checkpoint)
                    ),
                    word(
                        matches!(outcome.raw, Err(Error::Fenced { .. })),
                        format!("{:?}", outcome.raw)
                    ),
                ));
            }
            Some(other) => say(&format!("ERR unknown command {other}")),
        }
    }
}

/// A child process re-running the current executable in one role, with its
/// stdout lines on a channel; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct RoleProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl RoleProcess {
    /// Runs the current executable with [`ROLE_ENV`] set to `role` and the
    /// extra `env`; its `main` must be [`main`].
    pub fn spawn(role: &str, env: &[(&str, String)]) -> RoleProcess {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("the test executable");
        let mut command = std::process::Command::new(exe);
        command
            .env(ROLE_ENV, role)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the test executable runs");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        RoleProcess {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded by [`PATIENCE`]) for the next line that starts with the
    /// word `prefix`, and returns the words after it. Fails at once if the
    /// child reports an error or exits.
    pub fn expect(&self, prefix: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| match e {
                RecvTimeoutError::Timeout => {
                    panic!("timed out after {PATIENCE:?} waiting for {prefix} from the child")
                }
                RecvTimeoutError::Disconnected => {
                    panic!("the child exited before saying {prefix}")
                }
            });
            assert!(!line.starts_with("ERR"), "the child: {line}");
            let mut words = line.split_whitespace();
            if words.next() == Some(prefix) {
                return words.map(str::to_owned).collect();
            }
        }
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("the child reads");
        stdin.flush().expect("the child reads");
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
