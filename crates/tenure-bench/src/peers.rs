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

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::proc::{nanos, since, Proc};

/// The Curator program, compiled on first use.
const BENCH_LATCH: &str = include_str!("../java/BenchLatch.java");

/// The kazoo program, written out on first use.
const KAZOO_CONTENDER: &str = include_str!("../python/kazoo_contender.py");

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

const PEERS: [Peer; 3] = [
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

/// `etcdctl elect` under this binary's driver (`tenure-bench etcdctl-contender`).
pub(crate) fn etcdctl_command(endpoints: &str, election: &str) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where is tenure-bench? {e}"))?;
    let mut command = Command::new(exe);
    command.args(["etcdctl-contender", endpoints, election]);
    Ok(command)
}

/// `etcdctl` (API v3) at `endpoints`.
fn etcdctl(endpoints: &str) -> Command {
    let mut command = Command::from(etcdctl_sync());
    command.arg(format!("--endpoints={endpoints}"));
    command
}

/// `etcdctl` (API v3) with no `ETCDCTL_*` variables of the caller's: etcdctl
/// 3.4 exits when one shadows a flag it is given.
fn etcdctl_sync() -> std::process::Command {
    let mut command = std::process::Command::new("etcdctl");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(key);
        }
    }
    command.env("ETCDCTL_API", "3");
    command
}

/// The driver's side: runs `etcdctl elect` on `campaign`, SIGINT on `resign`.
///
/// etcdctl 3.4's `elect NAME PROPOSAL` creates `NAME/<lease hex>` on a session
/// of its own (60 s lease), waits to be first, then prints the key and the
/// proposal on two lines and leads until SIGINT or SIGTERM, on which it
/// deletes its key (resigns) and exits. The first line is the grant.
pub(crate) async fn etcdctl_contender(endpoints: &str, election: &str) -> Result<(), String> {
    // READY promises a reachable server.
    count_keys(endpoints, election).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut running: Option<Child> = None;
    let mut campaigns = 0u32;
    println!("READY");
    loop {
        tokio::select! {
            status = exit_of(&mut running) => {
                running = None;
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                println!("ERROR etcdctl elect exited on its own: {status}");
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let command = line.split(' ').next().unwrap_or_default();
                match command {
                    "campaign" if running.is_some() => println!("ERROR already campaigning"),
                    "campaign" => {
                        campaigns += 1;
                        let proposal = format!("etcdctl-{}-{campaigns}", std::process::id());
                        match campaign(endpoints, election, &proposal) {
                            Ok(child) => running = Some(child),
                            Err(e) => println!("ERROR {e}"),
                        }
                    }
                    "resign" => {
                        println!("RESIGNING {}", nanos());
                        if let Some(child) = running.take() {
                            if let Err(e) = interrupt(child).await {
                                println!("ERROR {e}");
                            }
                        }
                    }
                    "count" => match count_keys(endpoints, election).await {
                        Ok(n) => println!("COUNT {n}"),
                        Err(e) => println!("ERROR {e}"),
                    },
                    // One `etcdctl elect` process is one election.
                    "many" | "release" => println!("ERROR not applicable"),
                    "" => {}
                    _ => println!("ERROR unknown command {line}"),
                }
            }
        }
    }
    // End of stdin: resign as on `resign`, so the next run finds no key.
    if let Some(child) = running.take() {
        interrupt(child).await?;
    }
    Ok(())
}

/// Starts `etcdctl elect` (in this process's group, so killing the group
/// kills it too) and prints `GRANT` when it prints its key.
fn campaign(endpoints: &str, election: &str, proposal: &str) -> Result<Child, String> {
    let mut child = etcdctl(endpoints)
        .args(["elect", election, proposal])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // etcdctl's complaints go where ours go: the contender's log.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start etcdctl (apt-get install etcd-client): {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        if let Ok(Some(_key)) = lines.next_line().await {
            println!("GRANT {}", nanos());
        }
        // The proposal line, and nothing more until it exits.
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    Ok(child)
}

/// How `running` ends; never, if there is none.
async fn exit_of(running: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match running {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

/// SIGINT — etcdctl resigns (deletes its key) and exits — and waits for it.
/// A campaign not yet granted is cancelled the same way (etcdctl deletes its
/// key and exits with an error status, which is fine here).
async fn interrupt(mut child: Child) -> Result<(), String> {
    // By pid while the child is not reaped, so the pid is still ours.
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
        }
    }
    match tokio::time::timeout(RESIGN_TIMEOUT, child.wait()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot wait for etcdctl: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "etcdctl elect did not exit within {RESIGN_TIMEOUT:?} of SIGINT"
            ))
        }
    }
}

/// Keys under `election/`: the candidates of `etcdctl elect election`.
async fn count_keys(endpoints: &str, election: &str) -> Result<usize, String> {
    let output = etcdctl(endpoints)
        .args(["get", "--prefix", "--keys-only", &format!("{election}/")])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, output)
        .await
        .map_err(|_| format!("etcdctl get took over {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run etcdctl (apt-get install etcd-client): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "etcdctl get {election}/: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // `--keys-only` prints each key followed by an empty line.
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
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

/// `$TMPDIR/tenure-bench-<hash of content>`: where a program embedded in this
/// binary is written (and compiled), shared by runs of the same version.
fn cache_dir(content: &str) -> Result<PathBuf, String> {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`'s promise.
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    hash.write(content.as_bytes());
    let dir = std::env::temp_dir().join(format!("tenure-bench-{:016x}", hash.finish()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Writes `path` through a temporary file and a rename, so a reader never
/// sees it half-written.
fn write_atomically(path: &Path, content: &str) -> Result<(), String> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temporary, content)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs `command` to its end (killed after `timeout`); its stdout if it
/// succeeded, else an error with its stderr.
fn run(command: &mut std::process::Command, timeout: Duration) -> Result<String, String> {
    let (stdout, _) = run_output(command, timeout)?;
    Ok(stdout)
}

/// Like [`run`], with stderr too.
fn run_output(
    command: &mut std::process::Command,
    timeout: Duration,
) -> Result<(String, String), String> {
    let name = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    // Read on threads while waiting, so a chatty command cannot block on a
    // full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = wait_bounded(&mut child, timeout, &name)?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok((stdout, stderr))
    } else {
        Err(format!("{name} failed ({status}): {}", stderr.trim()))
    }
}

/// Runs `command` with its own stdout and stderr; an error unless it succeeds.
fn run_status(command: &mut std::process::Command, timeout: Duration) -> Result<(), String> {
    let name = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let status = wait_bounded(&mut child, timeout, &name)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

/// Waits for `child`, killing it after `timeout`.
fn wait_bounded(
    child: &mut std::process::Child,
    timeout: Duration,
    name: &str,
) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} took over {timeout:?}"));
            }
            Err(e) => return Err(format!("cannot wait for {name}: {e}")),
        }
    }
}

/// A short check of one peer against servers started by the test kit:
/// `tenure-bench peer-smoke etcdctl|curator|kazoo`.
///
/// Two contenders take turns (campaign, queue, resign, handover) a few times,
/// then the leader's process group is killed and the other must take over;
/// the ZooKeeper peers also acquire and release 100 elections at once. Prints
/// the handover and failover times.
pub(crate) async fn smoke(peer: &str) -> Result<(), String> {
    /// The session of the ZooKeeper peers; etcdctl's cannot be chosen (60 s).
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
        _ => return Err(format!("no peer {peer:?}: etcdctl, curator or kazoo")),
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
