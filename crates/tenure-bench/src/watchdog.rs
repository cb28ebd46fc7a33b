//! The frozen supervisor: `tenure run` (the `tenure` binary of tenure-cli)
//! is stopped with SIGSTOP while its command runs, and its watchdog must stop
//! the command by the renew deadline on its own — SIGTERM 250 ms before it,
//! SIGKILL at it. On local, which has no renew deadline, the supervisor is
//! killed instead, and the watchdog stops the command at once.
//!
//! The times are the watchdog's own: the line it prints on the shared stderr
//! once the command ended, e.g.
//!
//! ```text
//! tenure: watchdog: the command exited 248.7 ms before the renew deadline
//! tenure: watchdog: the command was killed (SIGKILL) 0.1 ms after the renew deadline
//! tenure: watchdog: the command exited 0.3 ms after tenure died
//! ```
//!
//! Each trial is one `tenure run` in a fresh election (and, on servers, a fresh
//! chroot or prefix), so no trial waits for another's session to expire.
//!
//! The `tenure` binary is built by the scenario itself with the bench's own
//! profile (`cargo build --release -p tenure-cli`) and found next to this
//! program's executable (`target/release/tenure`); `TENURE_BIN=/path/to/tenure`
//! skips the build.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tenure_testkit::{EtcdCluster, ZkCluster};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::plan::{etcd_version, zk_options, Plan};
use crate::report::{Report, Row, Stat};

/// How long the command is left running before the supervisor is stopped, so
/// that the stop does not land on the supervisor's start-up work.
const SETTLE: Duration = Duration::from_millis(100);

/// How long one step of a trial may take: the command starting, or the
/// watchdog's report after the stop (due within the 2 s session).
const PATIENCE: Duration = Duration::from_secs(30);

/// The session TTL / timeout of the server backends here, in seconds.
const TTL_S: u64 = 2;

/// What the leader's command does on SIGTERM.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `sleep 600`: dies of SIGTERM, before the deadline.
    Exits,
    /// SIGTERM ignored: only the SIGKILL at the deadline stops it.
    IgnoresTerm,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Exits, Kind::IgnoresTerm];

    /// The command, which writes its pid to `pidfile` once it runs.
    fn script(self, pidfile: &Path) -> String {
        let trap = match self {
            Kind::Exits => "",
            Kind::IgnoresTerm => "trap '' TERM; ",
        };
        format!("{trap}echo $$ > '{}'; exec sleep 600", pidfile.display())
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Exits => "`sleep 600` (exits on SIGTERM)",
            Kind::IgnoresTerm => "`trap '' TERM; sleep 600` (ignores SIGTERM)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Exits => "exits",
            Kind::IgnoresTerm => "ignores",
        }
    }
}

/// What happens to the supervisor once its command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGSTOP: the watchdog hears nothing more and acts at the renew deadline.
    Freeze,
    /// SIGKILL: the watchdog's pipe closes.
    Kill,
}

/// The watchdog's report of how the command ended.
#[derive(Clone, Debug, PartialEq)]
struct Verdict {
    /// `exited` or `was killed (SIGKILL)`.
    how: String,
    /// Milliseconds after the reference; negative: before it.
    ms: f64,
    /// `the renew deadline` or `tenure died`.
    reference: String,
}

/// Parses `tenure: watchdog: the command HOW MS ms (before|after) REFERENCE`.
fn parse_verdict(line: &str) -> Option<Verdict> {
    let rest = line.trim().strip_prefix("tenure: watchdog: the command ")?;
    let (head, tail) = rest.split_once(" ms ")?;
    let (how, ms) = head.rsplit_once(' ')?;
    let ms: f64 = ms.parse().ok()?;
    let (side, reference) = tail.split_once(' ')?;
    let ms = match side {
        "before" => -ms,
        "after" => ms,
        _ => return None,
    };
    Some(Verdict {
        how: how.to_owned(),
        ms,
        reference: reference.to_owned(),
    })
}

/// Where the `tenure` binary is: `TENURE_BIN`, or built here.
struct Binary {
    path: PathBuf,
    /// Whether it speaks `etcd://` (the fallback build has ZooKeeper only).
    etcd: bool,
}

/// Builds tenure-cli with this program's profile and returns the `tenure`
/// binary next to this program's executable, where cargo puts it. If the
/// default build fails (tenure-cli changing under us), builds it with
/// ZooKeeper alone, and etcd is reported as not measured.
fn tenure_binary() -> Result<Binary, String> {
    if let Some(path) = std::env::var_os("TENURE_BIN") {
        return Ok(Binary {
            path: path.into(),
            etcd: true,
        });
    }
    let exe = std::env::current_exe().map_err(|e| format!("where is tenure-bench? {e}"))?;
    let path = exe.with_file_name("tenure");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = |extra: &[&str]| -> Result<bool, String> {
        let mut command = std::process::Command::new(&cargo);
        command.arg("build").arg("--manifest-path").arg(&manifest);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        command.args(["-p", "tenure-cli"]).args(extra);
        println!("building tenure: {command:?}");
        let status = command
            .status()
            .map_err(|e| format!("cannot run {command:?}: {e}"))?;
        Ok(status.success())
    };
    let etcd = if build(&[])? {
        true
    } else if build(&["--no-default-features", "--features", "zookeeper"])? {
        println!("tenure-cli's default build failed; built with ZooKeeper only");
        false
    } else {
        return Err("cannot build tenure-cli (see cargo's output above)".into());
    };
    if !path.is_file() {
        return Err(format!(
            "built tenure-cli, but {} is missing (set TENURE_BIN to the `tenure` binary)",
            path.display()
        ));
    }
    Ok(Binary { path, etcd })
}

/// A fresh name per trial: the election, and on servers the chroot or prefix.
fn fresh(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("wd-{}-{what}-{n}", std::process::id())
}

pub(crate) async fn run(report: &mut Report, plan: &Plan) -> Result<(), String> {
    let binary = tenure_binary()?;
    let dir = std::env::temp_dir().join(format!("tenure-bench-watchdog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let outcome = backends(report, plan, &binary, &dir).await;
    // The logs stay for a look when something failed.
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

async fn backends(
    report: &mut Report,
    plan: &Plan,
    binary: &Binary,
    dir: &Path,
) -> Result<(), String> {
    let trials = plan.watchdog;
    {
        let zk = ZkCluster::start(zk_options(1)).map_err(|e| e.to_string())?;
        let version = zk.version().map_err(|e| e.to_string())?;
        report.add_server(format!(
            "ZooKeeper {version} (standalone, tickTime {} ms, started by the test kit)",
            zk.options().tick_time_ms
        ));
        let connect = zk.connect_string();
        let url = |scope: &str| format!("zk://{connect}/{scope}?session_timeout={TTL_S}s");
        frozen(report, &binary.path, "zookeeper", &url, dir, trials).await?;
    }
    if binary.etcd {
        let etcd = EtcdCluster::single().map_err(|e| e.to_string())?;
        report.add_server(format!(
            "{} (1 member, started by the test kit)",
            etcd_version()
        ));
        let endpoints = etcd.endpoints().join(",");
        let url = |scope: &str| format!("etcd://{endpoints}/{scope}?ttl={TTL_S}s");
        frozen(report, &binary.path, "etcd", &url, dir, trials).await?;
    } else {
        report.unavailable(
            "watchdog",
            "tenure run",
            "etcd",
            "all",
            "tenure-cli's default build (with etcd) failed; it was built with ZooKeeper only",
        );
    }
    let local = dir.join("local");
    let url = format!("local://{}", local.display());
    for kind in Kind::ALL {
        let mut samples = Vec::new();
        let mut hows = Vec::new();
        for _ in 0..trials {
            let v = trial(&binary.path, &url, kind, Stop::Kill, dir).await?;
            expect_reference(&v, "tenure died", "local")?;
            samples.push(v.ms);
            hows.push(v.how);
        }
        let reported = format!("the watchdog reported: {}", tally(&hows));
        let note = match kind {
            // The kernel released the dead supervisor's lock: another
            // candidate may be granted at once, so there is no grace.
            Kind::Exits => format!(
                "no renew deadline on local: the watchdog sends SIGTERM and SIGKILL as soon as \
                 its pipe from tenure closes; {reported}"
            ),
            Kind::IgnoresTerm => reported,
        };
        report.add(
            Row::new(
                "watchdog",
                "tenure run",
                "local",
                &format!(
                    "supervisor killed (SIGKILL) → command ended, {}",
                    kind.label()
                ),
                "ms",
                samples,
            )
            .note(note),
        );
    }
    Ok(())
}

/// The frozen-supervisor trials of both command kinds on one server backend;
/// `url` gives the backend URL for a fresh chroot or prefix.
async fn frozen(
    report: &mut Report,
    tenure: &Path,
    backend: &str,
    url: &(dyn Fn(&str) -> String + Sync),
    dir: &Path,
    trials: usize,
) -> Result<(), String> {
    for kind in Kind::ALL {
        let mut samples = Vec::new();
        let mut hows = Vec::new();
        for _ in 0..trials {
            let v = trial(tenure, &url(&fresh(kind.slug())), kind, Stop::Freeze, dir).await?;
            expect_reference(&v, "the renew deadline", backend)?;
            samples.push(v.ms);
            hows.push(v.how);
        }
        let mut row = Row::new(
            "watchdog",
            "tenure run",
            backend,
            &format!(
                "supervisor stopped (SIGSTOP): command ended − renew deadline, {}",
                kind.label()
            ),
            "ms",
            samples,
        );
        let reported = format!("the watchdog reported: {}", tally(&hows));
        row = match kind {
            // SIGTERM goes out 250 ms before the deadline: a command that
            // obeys it is gone before the deadline.
            Kind::Exits => row.below(Stat::Max, 0.0).note(format!(
                "session TTL {TTL_S} s; SIGTERM goes out 250 ms before the deadline; {reported}"
            )),
            // SIGKILL goes out at the deadline itself: what is measured is
            // the timer's and the kernel's lateness. What keeps this safe is
            // the server-side expiry after the deadline (the paused leader's
            // safety margin above).
            Kind::IgnoresTerm => row.note(format!(
                "SIGKILL goes out at the renew deadline; {reported}"
            )),
        };
        report.add(row);
    }
    Ok(())
}

fn expect_reference(v: &Verdict, reference: &str, backend: &str) -> Result<(), String> {
    if v.reference == reference {
        Ok(())
    } else {
        Err(format!(
            "{backend}: the watchdog measured from {:?}, expected {reference:?}",
            v.reference
        ))
    }
}

/// `exited ×20`, `was killed (SIGKILL) ×19, exited ×1`.
fn tally(items: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(i, _)| *i == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    counts
        .iter()
        .map(|(i, n)| format!("{i} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `tenure run` and its running command: the processes a trial must
/// leave behind dead.
struct Trial {
    supervisor: Child,
    pid: libc::pid_t,
    log: PathBuf,
    /// The watchdog's pid, which leads the command's process group.
    watchdog: Option<libc::pid_t>,
}

impl Trial {
    fn failure(&self, what: &str) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "tenure run: {what}; its stderr ({}) ends:\n{}",
            self.log.display(),
            tail.join("\n")
        )
    }

    /// Kills whatever is left: the command's group first, while the
    /// supervisor — its parent, stopped or dead but not yet reaped — keeps
    /// the watchdog's pid from being reused; then the supervisor (SIGKILL
    /// ends a stopped process too).
    async fn end(mut self) {
        if let Some(watchdog) = self.watchdog {
            if parent_of(watchdog) == Some(self.pid) {
                // SAFETY: killpg(2) on the group our own child's child leads.
                unsafe {
                    libc::killpg(watchdog, libc::SIGKILL);
                }
            }
        }
        let _ = self.supervisor.start_kill();
        let _ = self.supervisor.wait().await;
    }
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE PPID …`: COMM may hold spaces, so split after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// One trial: `tenure run` on `url` starts the command; once it runs the
/// supervisor is frozen or killed; returns the watchdog's verdict.
async fn trial(
    tenure: &Path,
    url: &str,
    kind: Kind,
    stop: Stop,
    dir: &Path,
) -> Result<Verdict, String> {
    let name = fresh(kind.slug());
    let pidfile = dir.join(format!("{name}.pid"));
    let log = dir.join(format!("{name}.log"));
    let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let supervisor = Command::new(tenure)
        .args(["run", "--backend", url, "--election", &name, "--id", "a"])
        .args(["--", "sh", "-c", &kind.script(&pidfile)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", tenure.display()))?;
    let pid = supervisor.id().ok_or("tenure run ended at once")? as libc::pid_t;
    let mut t = Trial {
        supervisor,
        pid,
        log,
        watchdog: None,
    };
    let outcome = measure(&mut t, &pidfile, stop).await;
    t.end().await;
    outcome
}

async fn measure(t: &mut Trial, pidfile: &Path, stop: Stop) -> Result<Verdict, String> {
    let started = Instant::now();
    let command: libc::pid_t = loop {
        // Complete once the line is: `echo` writes it whole, newline last.
        let text = std::fs::read_to_string(pidfile).unwrap_or_default();
        if let Some(pid) = text.strip_suffix('\n').and_then(|p| p.parse().ok()) {
            break pid;
        }
        if let Ok(Some(status)) = t.supervisor.try_wait() {
            return Err(t.failure(&format!("ended ({status}) before its command ran")));
        }
        if started.elapsed() > PATIENCE {
            return Err(t.failure("its command did not start"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    t.watchdog = parent_of(command);
    tokio::time::sleep(SETTLE).await;
    let signal = match stop {
        Stop::Freeze => libc::SIGSTOP,
        Stop::Kill => libc::SIGKILL,
    };
    // The supervisor alone: the watchdog and the command are in a group of
    // their own.
    // SAFETY: kill(2) on our own child, not yet reaped.
    if unsafe { libc::kill(t.pid, signal) } != 0 {
        return Err(t.failure(&format!(
            "cannot signal it: {}",
            std::io::Error::last_os_error()
        )));
    }
    let stopped = Instant::now();
    loop {
        let text = std::fs::read_to_string(&t.log).unwrap_or_default();
        // Only whole lines: the watchdog may be writing this one.
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        if let Some(verdict) = whole.lines().find_map(parse_verdict) {
            return Ok(verdict);
        }
        if stopped.elapsed() > PATIENCE {
            return Err(t.failure("the watchdog never reported how the command ended"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_with_their_sign() {
        let v = |line| parse_verdict(line).unwrap();
        assert_eq!(
            v("tenure: watchdog: the command exited 248.7 ms before the renew deadline"),
            Verdict {
                how: "exited".into(),
                ms: -248.7,
                reference: "the renew deadline".into()
            }
        );
        let killed = v(
            "tenure: watchdog: the command was killed (SIGKILL) 0.1 ms after the renew deadline",
        );
        assert_eq!(
            (killed.how.as_str(), killed.ms),
            ("was killed (SIGKILL)", 0.1)
        );
        let died = v("tenure: watchdog: the command exited 0.3 ms after tenure died\n");
        assert_eq!((died.ms, died.reference.as_str()), (0.3, "tenure died"));
        assert_eq!(
            parse_verdict(
                "tenure: watchdog: renew deadline near with no word from tenure: SIGTERM to the command"
            ),
            None
        );
    }

    #[test]
    fn tallies_keep_first_seen_order() {
        let items = ["a", "b", "a"].map(String::from);
        assert_eq!(tally(&items), "a ×2, b ×1");
    }
}
