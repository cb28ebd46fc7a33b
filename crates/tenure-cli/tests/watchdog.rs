//! `tenure run` keeps at most one command acting when one of its own processes
//! stalls or dies — the supervisor, its watchdog, or the whole group — on
//! local, etcd and ZooKeeper, with real processes and real servers. And a
//! stale leader's `tenure put --fence` writes nothing.
//!
//! Every command records, when it starts, which earlier commands are still
//! alive (from /proc, by PID): an overlap is a violation, whatever the logs say.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;
use tenure_testkit::{EtcdCluster, ZkCluster};

/// Where one scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum On {
    Local,
    Etcd,
    Zk,
}

/// A scenario's directory, backend URL and its commands' records.
struct Scene {
    dir: TempDir,
    url: String,
}

fn fresh_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "s{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

impl Scene {
    fn new(on: On) -> Scene {
        let dir = TempDir::new("watchdog");
        std::fs::create_dir_all(dir.path("pids")).unwrap();
        let url = match on {
            On::Local => dir.backend(),
            // Short sessions, so a stalled holder's session ends in seconds.
            On::Etcd => format!(
                "etcd://{}/{}?ttl=2s",
                EtcdCluster::shared().endpoints().join(","),
                fresh_name()
            ),
            On::Zk => format!(
                "zk://{}/{}?session_timeout=2s",
                ZkCluster::shared().connect_string(),
                fresh_name()
            ),
        };
        Scene { dir, url }
    }

    /// The command: checks that no earlier command is alive, records itself
    /// ("ID PID PARENT TERM" in `starts`; its fence token in `fence-ID-TERM`),
    /// then sleeps.
    fn script(&self) -> String {
        let d = self.dir.0.display();
        format!(
            r#"for f in '{d}'/pids/*; do
  [ -e "$f" ] || continue
  p=$(cat "$f")
  if [ -e /proc/$p ] && [ "$(cut -d' ' -f3 /proc/$p/stat)" != Z ]; then
    echo "$TENURE_LEADER_ID started while $(basename "$f")'s command $p was alive" >> '{d}'/violations
  fi
done
echo "$TENURE_FENCE" > '{d}'/fence-$TENURE_LEADER_ID-$TENURE_TERM
echo $$ > '{d}'/pids/$TENURE_LEADER_ID
echo "$TENURE_LEADER_ID $$ $(cut -d' ' -f4 /proc/$$/stat) $TENURE_TERM" >> '{d}'/starts
exec sleep 600"#
        )
    }

    /// `tenure run` as candidate `id`, campaigning again after losing.
    fn run(&self, id: &str) -> Tenure {
        let script = self.script();
        Tenure::start(
            &self.dir,
            id,
            &[
                "run",
                "--backend",
                &self.url,
                "--election",
                "jobs",
                "--id",
                id,
                "--restart",
                "always",
                "--restart-delay",
                "100ms",
                "--grace",
                "1s",
                "--",
                "sh",
                "-c",
                &script,
            ],
        )
    }

    /// Waits for the `n`-th command start; returns (id, pid, watchdog pid, term).
    fn start(&self, n: usize) -> (String, i32, i32, u64) {
        let lines = await_lines(&self.dir.path("starts"), n);
        let f: Vec<&str> = lines[n - 1].split_whitespace().collect();
        (
            f[0].to_owned(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        )
    }

    fn starts(&self) -> usize {
        lines(&self.dir.path("starts")).len()
    }

    /// No command ever started while another was alive.
    fn assert_no_overlap(&self) {
        let violations = lines(&self.dir.path("violations"));
        assert!(
            violations.is_empty(),
            "two commands acted at once: {violations:?}"
        );
    }

    fn fence(&self, id: &str, term: u64) -> String {
        std::fs::read_to_string(self.dir.path(&format!("fence-{id}-{term}")))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn tenure(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![args[0], "--backend", &self.url];
        all.extend_from_slice(&args[1..]);
        output(&all)
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on processes this test started (a negative pid: the
    // process group of one of them).
    unsafe {
        libc::kill(pid, signal);
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The leader's supervisor alone is frozen: its watchdog stops the command by
/// the renew deadline, before the successor's command starts. Resumed, the
/// old supervisor learns it lost and starts nothing while it does not lead.
fn frozen_supervisor(on: On) {
    let scene = Scene::new(on);
    let mut a = scene.run("a");
    let (_, a_child, _, a_term) = scene.start(1);
    let mut b = scene.run("b");
    signal(a.pid(), libc::SIGSTOP);
    let (id, _, _, b_term) = scene.start(2);
    assert_eq!(id, "b");
    assert!(b_term > a_term);
    assert!(is_dead(a_child), "the frozen leader's command still runs");
    scene.assert_no_overlap();
    let said = a.stderr();
    assert!(
        said.contains("watchdog: the command exited") && said.contains("before the renew deadline"),
        "the watchdog reports the stop:\n{said}"
    );

    signal(a.pid(), libc::SIGCONT);
    // Resumed, it campaigns again: it has learnt that it lost.
    await_until("the resumed supervisor to campaign again", || {
        (a.stderr().matches("campaigning").count() >= 2).then_some(())
    });
    assert_eq!(
        scene.starts(),
        2,
        "the resumed supervisor restarted its command while b led"
    );
    assert!(a.is_running());
    signal(b.pid(), libc::SIGTERM);
    b.wait();
    let (id, _, _, term) = scene.start(3);
    assert_eq!(id, "a");
    assert!(term > b_term);
    scene.assert_no_overlap();
    drop(a);
}

/// The leader's watchdog alone is frozen: the supervisor still stops the
/// command itself (SIGKILL to the group after the grace) and hands over.
fn frozen_watchdog(on: On) {
    let scene = Scene::new(on);
    let _a = scene.run("a");
    let (_, a_child, a_watchdog, _) = scene.start(1);
    let _b = scene.run("b");
    await_until("b to queue", || {
        let out = scene.tenure(&["status", "--json", "jobs"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (status[0]["candidates"] == 2).then_some(())
    });
    signal(a_watchdog, libc::SIGSTOP);
    let out = scene.tenure(&[
        "resign",
        "--election",
        "jobs",
        "--id",
        "a",
        "--timeout",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let (id, _, _, _) = scene.start(2);
    assert_eq!(id, "b");
    assert!(is_dead(a_child));
    assert!(is_dead(a_watchdog));
    scene.assert_no_overlap();
}

/// The leader's supervisor is killed: its watchdog sees the pipe close and
/// stops the command (at once on local, where the kernel frees the lock now).
fn killed_supervisor(on: On) {
    let scene = Scene::new(on);
    let mut a = scene.run("a");
    let (_, a_child, a_watchdog, _) = scene.start(1);
    let _b = scene.run("b");
    signal(a.pid(), libc::SIGKILL);
    a.wait();
    let (id, _, _, _) = scene.start(2);
    assert_eq!(id, "b");
    assert!(is_dead(a_child));
    await_until("the orphaned watchdog to exit", || {
        is_dead(a_watchdog).then_some(())
    });
    scene.assert_no_overlap();
}

/// The leader's watchdog is killed: the command dies with it, the supervisor
/// resigns, and the other candidate takes over.
fn killed_watchdog(on: On) {
    let scene = Scene::new(on);
    let _a = scene.run("a");
    let (_, a_child, a_watchdog, _) = scene.start(1);
    let _b = scene.run("b");
    signal(a_watchdog, libc::SIGKILL);
    let (id, _, _, _) = scene.start(2);
    assert_eq!(id, "b");
    assert!(is_dead(a_child));
    scene.assert_no_overlap();
}

/// The leader's whole process group (supervisor, watchdog, command) is frozen
/// past its session — as a frozen host would be, so no process can cut the
/// command and it is still there, stopped, when the successor starts: the
/// successor writes; the old token, replayed after SIGCONT, is fenced (exit
/// 75) and the successor's value stays; the resumed watchdog ends the command.
fn frozen_group_is_fenced(on: On) {
    let scene = Scene::new(on);
    let a = scene.run("a");
    let (_, a_child, a_watchdog, a_term) = scene.start(1);
    let _b = scene.run("b");
    let old = scene.fence("a", a_term);
    let out = scene.tenure(&["put", "--fence", &old, "state", "from-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    signal(a.pid(), libc::SIGSTOP);
    signal(-a_watchdog, libc::SIGSTOP);
    let (id, _, _, b_term) = scene.start(2);
    assert_eq!(id, "b");
    let new = scene.fence("b", b_term);
    let out = scene.tenure(&["put", "--fence", &new, "state", "from-b"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    signal(-a_watchdog, libc::SIGCONT);
    signal(a.pid(), libc::SIGCONT);

    let out = scene.tenure(&["put", "--fence", &old, "state", "stale"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("fenced"), "{}", stderr_of(&out));
    let out = scene.tenure(&["put", "--fence", &old, "other", "stale"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    let out = scene.tenure(&["get", "--election", "jobs", "--json", "state"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["value"], "from-b");
    assert_eq!(got["term"], b_term);
    let out = scene.tenure(&["get", "--election", "jobs", "other"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing was written: {}",
        stderr_of(&out)
    );
    await_until("the resumed command to be stopped", || {
        is_dead(a_child).then_some(())
    });
}

#[test]
fn local_killed_supervisor() {
    killed_supervisor(On::Local);
}

#[test]
fn local_killed_watchdog() {
    killed_watchdog(On::Local);
}

#[test]
fn local_frozen_watchdog() {
    frozen_watchdog(On::Local);
}

#[test]
fn etcd_frozen_supervisor() {
    frozen_supervisor(On::Etcd);
}

#[test]
fn etcd_frozen_watchdog() {
    frozen_watchdog(On::Etcd);
}

#[test]
fn etcd_killed_supervisor() {
    killed_supervisor(On::Etcd);
}

#[test]
fn etcd_killed_watchdog() {
    killed_watchdog(On::Etcd);
}

#[test]
fn etcd_frozen_group_is_fenced() {
    frozen_group_is_fenced(On::Etcd);
}

#[test]
fn zookeeper_frozen_supervisor() {
    frozen_supervisor(On::Zk);
}

#[test]
fn zookeeper_frozen_watchdog() {
    frozen_watchdog(On::Zk);
}

#[test]
fn zookeeper_killed_supervisor() {
    killed_supervisor(On::Zk);
}

#[test]
fn zookeeper_killed_watchdog() {
    killed_watchdog(On::Zk);
}

#[test]
fn zookeeper_frozen_group_is_fenced() {
    frozen_group_is_fenced(On::Zk);
}

/// On local a frozen supervisor keeps its lock, so nobody else is granted:
/// its command alone acts, and a put with its token still succeeds.
#[test]
fn local_frozen_supervisor_keeps_leading() {
    let scene = Scene::new(On::Local);
    let a = scene.run("a");
    let (_, a_child, _, a_term) = scene.start(1);
    let _b = scene.run("b");
    signal(a.pid(), libc::SIGSTOP);
    let out = scene.tenure(&["put", "--fence", &scene.fence("a", a_term), "k", "v"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!is_dead(a_child));
    assert_eq!(scene.starts(), 1);
    signal(a.pid(), libc::SIGCONT);
}

/// Bad tokens, keys and values get a clear error and write nothing.
#[test]
fn bad_fences_keys_and_values_are_refused_and_write_nothing() {
    let scene = Scene::new(On::Local);
    let _a = scene.run("a");
    let (_, _, _, term) = scene.start(1);
    let good = scene.fence("a", term);
    let other = Scene::new(On::Local);

    let damaged = &good[..good.len() - 5];
    let foreign = other.tenure(&["put", "--fence", &good, "k", "v"]);
    assert_eq!(foreign.status.code(), Some(64));
    assert!(
        stderr_of(&foreign).contains("another backend"),
        "{}",
        stderr_of(&foreign)
    );
    for (args, code, says) in [
        (
            vec!["put", "--fence", "nonsense", "k", "v"],
            64,
            "not a fence token",
        ),
        (vec!["put", "--fence", damaged, "k", "v"], 64, "damaged"),
        (vec!["put", "--fence", &good, "../escape", "v"], 64, "KEY"),
        (vec!["put", "--fence", &good, "a//b", "v"], 64, "KEY"),
        (vec!["put", "--fence", &good, "/abs", "v"], 64, "KEY"),
    ] {
        let out = scene.tenure(&args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert!(
            stderr_of(&out).contains(says),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // Another election's token: altered to name it, it is no leadership there.
    let forged = forge_election(&good, "other");
    let out = scene.tenure(&["put", "--fence", &forged, "k", "v"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));

    // Over the limit, from standard input: refused before anything is sent.
    let big = scene.dir.path("big");
    std::fs::write(&big, vec![b'x'; 17 * 1024 * 1024]).unwrap();
    let out = tenure()
        .args(["put", "--backend", &scene.url, "--fence", &good, "k"])
        .stdin(std::fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("VALUE"), "{}", stderr_of(&out));
    for election in ["jobs", "other"] {
        let out = scene.tenure(&["get", "--election", election, "k"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "nothing was written: {}",
            stderr_of(&out)
        );
    }
    // And a good one, from standard input, reads back with its term.
    let value = scene.dir.path("value");
    std::fs::write(&value, b"from stdin\n").unwrap();
    let out = tenure()
        .args(["put", "--backend", &scene.url, "--fence", &good, "k"])
        .stdin(std::fs::File::open(&value).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = scene.tenure(&["get", "--election", "jobs", "k"]);
    assert_eq!(out.stdout, b"from stdin\n");
    assert!(
        stderr_of(&out).contains(&format!("term {term}")),
        "{}",
        stderr_of(&out)
    );
}

/// The token with its election replaced (the test knows the format: a
/// versioned prefix and URL-safe base64 of JSON).
fn forge_election(token: &str, election: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (prefix, body) = token.split_at(token.find('.').unwrap() + 1);
    let mut bits = 0u32;
    let mut n = 0;
    let mut json = Vec::new();
    for c in body.bytes() {
        bits = bits << 6 | A.iter().position(|&a| a == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            json.push((bits >> n) as u8);
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    value["election"] = election.into();
    let json = serde_json::to_vec(&value).unwrap();
    let mut out = String::from(prefix);
    let (mut bits, mut n) = (0u32, 0);
    for b in json {
        bits = bits << 8 | b as u32;
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(A[(bits >> n & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(A[(bits << (6 - n) & 63) as usize] as char);
    }
    out
}
