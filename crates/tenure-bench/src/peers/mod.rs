//! The peers: the election implementations users pick today, run as contender
//! processes speaking [`crate::proc`]'s protocol.
//!
//! - `etcdctl elect` (etcd's `concurrency.Election`), under a driver in this
//!   binary (`tenure-bench etcdctl-contender`): one `etcdctl elect` process
//!   per campaign, SIGINT to resign. Its session's lease is etcdctl's fixed
//!   60 s: `elect` has no TTL flag (only `lock` has `--ttl`), so a crashed
//!   etcdctl leader is replaced 40–60 s later (the lease was last renewed up to
//!   a third of the TTL before the crash).
//! - Curator's `LeaderLatch` (`java/BenchLatch.java`), compiled and run like
//!   the test kit's [`CuratorLatch`](tenure_testkit::CuratorLatch).
//! - kazoo's `Election` (`python/kazoo_contender.py`) under Debian's Python.
//! - Go's `concurrency.Election` (`go/contender.go`), what Go users embed,
//!   built from Debian's `golang-go` and `golang-etcd-server-dev` (etcd 3.4's
//!   client) in GOPATH mode, on a session whose TTL the bench chooses.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::proc::{nanos, since, Proc};

mod command;
mod etcdctl;
mod go;

use command::*;
use etcdctl::*;
pub(crate) use etcdctl::{etcdctl_command, etcdctl_contender};
pub(crate) use go::go_command;

/// The Curator program, compiled on first use.
const BENCH_LATCH: &str = include_str!("../../java/BenchLatch.java");

/// The kazoo program, written out on first use.
const KAZOO_CONTENDER: &str = include_str!("../../python/kazoo_contender.py");

/// How long a helper command (`etcdctl get`, `javac`, a version probe) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `apt-get update` and `apt-get install` may take.
const APT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long a resigning `etcdctl elect` may take to delete its key and exit.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer implementation and whether it can run here.
pub(crate) struct PeerStatus {
    /// e.g. `etcdctl elect`.
    pub(crate) name: &'static str,
    /// Its version, or why it cannot be started.
    pub(crate) version: Result<String, String>,
}

/// A peer: its name, how to check it, and the Debian packages that install it.
struct Peer {
    name: &'static str,
    check: fn() -> Result<String, String>,
    packages: &'static [&'static str],
}

const PEERS: [Peer; 4] = [
    Peer {
        name: "etcdctl elect",
        check: etcdctl_version,
        packages: &["etcd-client"],
    },
    Peer {
        name: "Curator LeaderLatch",
        check: curator_version,
        packages: &[
            "libcurator-recipes-java",
            "libcurator-framework-java",
            "libcurator-client-java",
            "default-jdk-headless",
        ],
    },
    Peer {
        name: "kazoo Election",
        check: kazoo_version,
        packages: &["python3-kazoo"],
    },
    Peer {
        name: "Go concurrency.Election",
        check: go::go_version,
        packages: &["golang-go", "golang-etcd-server-dev"],
    },
];

/// The bench's set-up step: installs what is missing (Debian packages, when
/// running as root with apt-get) and reports each peer.
pub(crate) fn setup() -> Vec<PeerStatus> {
    let check = || -> Vec<PeerStatus> {
        PEERS
            .iter()
            .map(|peer| PeerStatus {
                name: peer.name,
                version: (peer.check)(),
            })
            .collect()
    };
    let statuses = check();
    let missing: Vec<&str> = PEERS
        .iter()
        .zip(&statuses)
        .filter(|(_, status)| status.version.is_err())
        .flat_map(|(peer, _)| peer.packages.iter().copied())
        .collect();
    if missing.is_empty() {
        return statuses;
    }
    match install(&missing) {
        Ok(()) => check(),
        Err(why) => statuses
            .into_iter()
            .map(|status| PeerStatus {
                version: status.version.map_err(|e| format!("{e} ({why})")),
                ..status
            })
            .collect(),
    }
}

/// `apt-get update` once, then `apt-get install -y packages`, as root only.
fn install(packages: &[&str]) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!("not root: install {} yourself", packages.join(" ")));
    }
    if run(
        std::process::Command::new("apt-get").arg("--version"),
        COMMAND_TIMEOUT,
    )
    .is_err()
    {
        return Err(format!(
            "no apt-get: install {} yourself",
            packages.join(" ")
        ));
    }
    eprintln!("tenure-bench: installing {}", packages.join(" "));
    let apt = |args: &[&str]| {
        let mut command = std::process::Command::new("apt-get");
        command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(args)
            // apt's progress goes with our diagnostics, not the report.
            .stdout(std::io::stderr());
        run_status(&mut command, APT_TIMEOUT)
    };
    apt(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend_from_slice(packages);
    apt(&args)
}

/// `3.4.23 (API 3.4)` from `etcdctl version`.
fn etcdctl_version() -> Result<String, String> {
    let out = run(etcdctl_sync().arg("version"), COMMAND_TIMEOUT)?;
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .map(str::to_owned)
    };
    let version = field("etcdctl version:").ok_or(format!("etcdctl version printed {out:?}"))?;
    Ok(match field("API version:") {
        Some(api) => format!("{version} (API {api})"),
        None => version,
    })
}

/// Curator's version from its jar's name (Debian links `curator-recipes-5.4.0.jar`
/// to `curator-recipes.jar`) or its package, and the JDK's; compiles the program,
/// so a broken installation shows here rather than mid-run.
fn curator_version() -> Result<String, String> {
    bench_latch_classes()?;
    let from_jar = std::fs::read_dir("/usr/share/java").ok().and_then(|dir| {
        dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .find_map(|name| {
                let v = name
                    .strip_prefix("curator-recipes-")?
                    .strip_suffix(".jar")?;
                v.starts_with(|c: char| c.is_ascii_digit())
                    .then(|| v.to_owned())
            })
    });
    let version = match from_jar {
        Some(v) => v,
        None => run(
            std::process::Command::new("dpkg-query").args([
                "-W",
                "-f=${Version}",
                "libcurator-recipes-java",
            ]),
            COMMAND_TIMEOUT,
        )?
        .trim()
        .to_owned(),
    };
    // `java -version` prints on stderr: `openjdk version "17.0.15" 2025-04-15`.
    let java = run_output(
        tenure_testkit::java::java("", "16m").arg("-version"),
        COMMAND_TIMEOUT,
    )
    .ok()
    .and_then(|(_, stderr)| {
        let first = stderr.lines().next()?.to_owned();
        let version = first.split('"').nth(1)?.to_owned();
        let vendor = first.split(' ').next()?.to_owned();
        Some(format!(" ({} {version})", jdk_name(&vendor)))
    })
    .unwrap_or_default();
    Ok(format!("{version}{java}"))
}

fn jdk_name(vendor: &str) -> &str {
    match vendor {
        "openjdk" => "OpenJDK",
        "java" => "Java",
        other => other,
    }
}

/// kazoo's version and the Python running it.
fn kazoo_version() -> Result<String, String> {
    let python = python()?;
    let out = run(
        std::process::Command::new(&python).args([
            "-c",
            "import sys, kazoo, kazoo.version; \
             print(kazoo.version.__version__, '%d.%d.%d' % sys.version_info[:3])",
        ]),
        COMMAND_TIMEOUT,
    )?;
    match out.split_whitespace().collect::<Vec<_>>()[..] {
        [kazoo, python] => Ok(format!("{kazoo} (Python {python})")),
        _ => Err(format!("{python} printed {out:?} for kazoo's version")),
    }
}

/// Curator's LeaderLatch on `path`, with `session_timeout`.
pub(crate) fn curator_command(
    connect: &str,
    path: &str,
    session_timeout: Duration,
) -> Result<Command, String> {
    let classes = bench_latch_classes()?;
    let classpath =
        tenure_testkit::java::curator_classpath(Some(&classes)).map_err(|e| e.to_string())?;
    let mut command = Command::from(tenure_testkit::java::java(&classpath, "128m"));
    command
        .arg("BenchLatch")
        .arg(connect)
        .arg(path)
        .arg(session_timeout.as_millis().to_string());
    Ok(command)
}

/// The directory with `BenchLatch.class`, compiled once per version of the
/// source: `$TMPDIR/tenure-bench-<hash>/classes`, kept between runs.
fn bench_latch_classes() -> Result<PathBuf, String> {
    let dir = cache_dir(BENCH_LATCH)?;
    let classes = dir.join("classes");
    if classes.join("BenchLatch.class").is_file() {
        return Ok(classes);
    }
    let source = dir.join("BenchLatch.java");
    write_atomically(&source, BENCH_LATCH)?;
    // Compiled beside the final place and renamed into it, so a concurrent
    // or interrupted compilation never leaves a half-written directory.
    let building = dir.join(format!("classes-{}", std::process::id()));
    let classpath = tenure_testkit::java::curator_classpath(None).map_err(|e| e.to_string())?;
    let compiled = run(
        tenure_testkit::java::javac()
            .arg("-d")
            .arg(&building)
            .arg("-cp")
            .arg(classpath)
            .arg(&source),
        COMMAND_TIMEOUT,
    );
    if let Err(e) = compiled {
        let _ = std::fs::remove_dir_all(&building);
        return Err(format!(
            "cannot compile BenchLatch.java (apt-get install default-jdk-headless): {e}"
        ));
    }
    if std::fs::rename(&building, &classes).is_err() {
        // Another run was first; its classes are the same.
        let _ = std::fs::remove_dir_all(&building);
    }
    Ok(classes)
}

/// kazoo's Election on `path`, with `session_timeout`.
pub(crate) fn kazoo_command(
    connect: &str,
    path: &str,
    session_timeout: Duration,
) -> Result<Command, String> {
    let script = cache_dir(KAZOO_CONTENDER)?.join("kazoo_contender.py");
    if !script.is_file() {
        write_atomically(&script, KAZOO_CONTENDER)?;
    }
    let mut command = Command::new(python()?);
    command
        .arg(script)
        .arg(connect)
        .arg(path)
        .arg(format!("{:.3}", session_timeout.as_secs_f64()));
    Ok(command)
}

/// The first Python that imports kazoo: Debian's `/usr/bin/python3` first,
/// where `python3-kazoo` installs it, since `python3` on `PATH` may be another
/// one (pyenv's). Remembered once found.
fn python() -> Result<String, String> {
    static FOUND: OnceLock<String> = OnceLock::new();
    if let Some(python) = FOUND.get() {
        return Ok(python.clone());
    }
    for candidate in ["/usr/bin/python3", "python3"] {
        if run(
            std::process::Command::new(candidate).args(["-c", "import kazoo.recipe.election"]),
            COMMAND_TIMEOUT,
        )
        .is_ok()
        {
            return Ok(FOUND.get_or_init(|| candidate.to_owned()).clone());
        }
    }
    Err("no python3 imports kazoo: apt-get install python3-kazoo".to_owned())
}

/// A short check of one peer against servers started by the test kit:
/// `tenure-bench peer-smoke etcdctl|curator|kazoo|go`.
///
/// Two contenders take turns (campaign, queue, resign, handover) a few times,
/// then the leader's process group is killed and the other must take over;
/// the peers other than etcdctl also acquire and release 100 elections at
/// once. Prints the handover and failover times.
pub(crate) async fn smoke(peer: &str) -> Result<(), String> {
    /// The session of the ZooKeeper peers and Go's; etcdctl's cannot be
    /// chosen (60 s).
    const SESSION: Duration = Duration::from_secs(2);
    const ROUNDS: usize = 5;
    /// A queued candidate's node exists before it watches its predecessor:
    /// a fresh `etcdctl elect` process puts its key some 50–100 ms before its
    /// watch is in place, and a handover in that gap measures its start-up.
    const SETTLE: Duration = Duration::from_millis(200);
    // Kept alive (and the servers running) until the end of the check.
    let _etcd;
    let _zk;
    let (name, command): (&str, CommandFactory) = match peer {
        "etcdctl" => {
            let etcd = blocking(tenure_testkit::EtcdCluster::single).await?;
            let endpoints = etcd.endpoints().join(",");
            _etcd = etcd;
            let command = move || etcdctl_command(&endpoints, "smoke");
            ("etcdctl elect", Box::new(command))
        }
        "go" => {
            let etcd = blocking(tenure_testkit::EtcdCluster::single).await?;
            let endpoints = etcd.endpoints().join(",");
            _etcd = etcd;
            let command = move || go_command(&endpoints, "smoke", SESSION);
            ("Go concurrency.Election", Box::new(command))
        }
        "curator" | "kazoo" => {
            let zk = blocking(tenure_testkit::ZkCluster::standalone).await?;
            let connect = zk.connect_string();
            _zk = zk;
            if peer == "curator" {
                let command = move || curator_command(&connect, "/smoke/latch", SESSION);
                ("Curator LeaderLatch", Box::new(command))
            } else {
                let command = move || kazoo_command(&connect, "/smoke/election", SESSION);
                ("kazoo Election", Box::new(command))
            }
        }
        _ => return Err(format!("no peer {peer:?}: etcdctl, curator, kazoo or go")),
    };

    let started = Instant::now();
    let mut leader = Proc::spawn(&format!("{peer}-a"), command()?).await?;
    let mut waiting = Proc::spawn(&format!("{peer}-b"), command()?).await?;
    println!("{name}: two contenders ready in {:?}", started.elapsed());
    leader.send("campaign").await?;
    leader.expect("GRANT").await?;
    waiting.send("campaign").await?;
    waiting.queued(2).await?;
    tokio::time::sleep(SETTLE).await;

    let mut handovers = Vec::new();
    for round in 1..=ROUNDS {
        leader.send("resign").await?;
        let resigning = leader.expect("RESIGNING").await?;
        let granted = waiting.expect("GRANT").await?;
        let handover = since(resigning, granted);
        println!("{name}: handover {round}: {}", ms(handover));
        handovers.push(handover);
        // The one that resigned campaigns again and queues behind.
        leader.send("campaign").await?;
        leader.queued(2).await?;
        tokio::time::sleep(SETTLE).await;
        std::mem::swap(&mut leader, &mut waiting);
    }
    handovers.sort();
    println!(
        "{name}: handover median {} (min {}, max {})",
        ms(handovers[ROUNDS / 2]),
        ms(handovers[0]),
        ms(handovers[ROUNDS - 1])
    );

    // A crash: SIGKILL to the leader's group, nothing cleaned up. etcdctl's
    // 60 s lease was renewed at most 20 s ago, so allow it 90 s.
    let patience = if peer == "etcdctl" {
        Duration::from_secs(90)
    } else {
        Duration::from_secs(30)
    };
    let killed = nanos();
    leader.kill().await?;
    let rest = waiting.expect_line("GRANT", patience).await?;
    let granted: u128 = rest
        .trim()
        .parse()
        .map_err(|_| format!("bad GRANT {rest:?}"))?;
    println!("{name}: crash failover: {}", ms(since(killed, granted)));
    waiting.queued(1).await?;

    if peer != "etcdctl" {
        for attempt in 1..=2 {
            waiting.send("many 100").await?;
            let took = waiting
                .expect_line("ACQUIRED", Duration::from_secs(60))
                .await?;
            waiting.send("release").await?;
            waiting.expect("RELEASED").await?;
            println!(
                "{name}: many 100 (attempt {attempt}): acquired in {} ms",
                took.trim()
            );
        }
    }
    waiting.send("resign").await?;
    waiting.expect("RESIGNING").await?;
    waiting.queued(0).await?;
    println!("{name}: smoke check passed in {:?}", started.elapsed());
    Ok(())
}

/// Makes the command of one more contender of a peer.
type CommandFactory = Box<dyn Fn() -> Result<Command, String> + Send + Sync>;

/// Runs a blocking test kit call off the runtime's workers.
async fn blocking<T, E>(start: fn() -> Result<T, E>) -> Result<T, String>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(start)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// `12.345 ms`.
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
