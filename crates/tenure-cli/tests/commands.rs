//! `tenure observe`, `status`, `campaign`, `resign`, `completions`, `--help`
//! and bad input, with the real binary.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::*;

/// Starts `tenure campaign` with a pipe on its standard input; returns the
/// process, its stdin and the term it printed.
fn campaign(dir: &TempDir, id: &str, extra: &[&str]) -> (Tenure, std::process::ChildStdin, u64) {
    let backend = dir.backend();
    let mut args = vec![
        "campaign",
        "--backend",
        &backend,
        "--election",
        "jobs",
        "--id",
        id,
    ];
    args.extend_from_slice(extra);
    let mut process = Tenure::start_with(dir, id, &args, Stdio::piped());
    let stdin = process.child.stdin.take().unwrap();
    let term = await_until("campaign to print its term", || {
        process.stdout().lines().next()?.trim().parse::<u64>().ok()
    });
    (process, stdin, term)
}

#[test]
fn campaign_prints_the_term_holds_until_stdin_closes_then_resigns() {
    let dir = TempDir::new("campaign");
    let (mut first, stdin, term) = campaign(&dir, "a", &[]);
    assert!(term > 0);
    assert!(first.is_running());
    drop(stdin);
    let status = first.wait();
    assert_eq!(status.code(), Some(0), "{}", first.stderr());
    // The next campaign gets a higher term at once: the first resigned.
    let (mut second, stdin, next) = campaign(&dir, "b", &[]);
    assert!(next > term);
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait().code(), Some(0), "{}", second.stderr());
    drop(stdin);
}

#[test]
fn resign_asks_a_campaign_to_step_down() {
    let dir = TempDir::new("resign-campaign");
    let backend = dir.backend();
    let (mut holder, _stdin, term) = campaign(&dir, "a", &[]);
    let out = output(&["resign", "--backend", &backend, "--election", "jobs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("a resigned jobs (term {term})")
    );
    assert_eq!(holder.wait().code(), Some(0));
    let again = output(&["resign", "--backend", &backend, "--election", "jobs"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nobody leads jobs"));
}

/// The term is printed before the resign-request watch exists: a request
/// made the moment the term appears is still honoured (the watch is opened
/// before the request key is read), every time.
#[test]
fn a_resign_request_made_as_soon_as_the_term_is_printed_is_honoured() {
    let dir = TempDir::new("resign-race");
    let backend = dir.backend();
    let mut last = 0;
    for round in 0..8 {
        let id = format!("r{round}");
        let (mut holder, _stdin, term) = campaign(&dir, &id, &[]);
        assert!(term > last);
        last = term;
        let out = output(&["resign", "--backend", &backend, "--election", "jobs"]);
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            holder.wait().code(),
            Some(0),
            "round {round}: {}",
            holder.stderr()
        );
    }
}

#[test]
fn observe_prints_one_json_line_per_change() {
    let dir = TempDir::new("observe");
    let backend = dir.backend();
    let mut observer = tenure()
        .args([
            "observe",
            "--backend",
            &backend,
            "--election",
            "jobs",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(observer.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let none = next();
    assert_eq!(none["leader"], serde_json::Value::Null, "{none}");
    assert_eq!(none["election"], "jobs");

    let (holder, stdin, term) = campaign(&dir, "a", &["--address", "10.0.0.1:8080"]);
    let mut led = next();
    // The holder publishes its address just after the grant.
    if led["address"].is_null() {
        led = next();
    }
    assert_eq!(led["term"], term, "{led}");
    assert_eq!(led["leader"], "a", "{led}");
    assert_eq!(led["address"], "10.0.0.1:8080", "{led}");
    assert!(led["time"].as_str().unwrap().ends_with('Z'), "{led}");

    drop(stdin);
    let gone = next();
    assert_eq!(gone["leader"], serde_json::Value::Null, "{gone}");
    drop(holder);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(observer.id() as i32, libc::SIGTERM) };
    assert_eq!(observer.wait().unwrap().code(), Some(0));
}

#[test]
fn status_shows_leader_term_since_and_candidates() {
    let dir = TempDir::new("status");
    let backend = dir.backend();
    let (_a, _a_in, term) = campaign(&dir, "a", &["--address", "a.example:1"]);
    // A second candidate waits behind the first.
    let _b = Tenure::start_with(
        &dir,
        "b",
        &[
            "campaign",
            "--backend",
            &backend,
            "--election",
            "jobs",
            "--id",
            "b",
        ],
        Stdio::piped(),
    );
    // The holder record is published after the term is printed (the leader
    // acts first): it appears shortly after.
    let rows = await_until("two candidates and a's holder record", || {
        let out = output(&["status", "--backend", &backend, "--json", "jobs", "idle"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (rows[0]["candidates"] == 2 && rows[0]["address"] == "a.example:1").then_some(rows)
    });
    assert_eq!(rows[0]["kind"], "election");
    assert_eq!(rows[0]["leader"], "a");
    assert_eq!(rows[0]["term"], term);
    assert_eq!(rows[0]["address"], "a.example:1");
    assert!(rows[0]["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rows[1]["name"], "idle");
    assert_eq!(rows[1]["leader"], serde_json::Value::Null);

    let out = output(&["status", "--backend", &backend, "jobs"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("KIND"), "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["election", "jobs", "a", &term.to_string()],
        "{table}"
    );
}

#[test]
fn status_lists_the_components_of_a_cluster() {
    let dir = TempDir::new("status-cluster");
    let backend = dir.backend();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use std::sync::Arc;
        use tenure::{LeaderContender, LeaderElectionService};
        use tokio::sync::mpsc;
        struct Contender(mpsc::UnboundedSender<uuid::Uuid>);
        impl LeaderContender for Contender {
            fn grant_leadership(&self, session_id: uuid::Uuid) {
                let _ = self.0.send(session_id);
            }
            fn revoke_leadership(&self) {}
            fn handle_error(&self, _: &tenure::Error) {}
        }
        let node = tenure::connect(&backend).await.unwrap();
        let service = LeaderElectionService::new(node.clone(), "prod").unwrap();
        let election = service.create_leader_election("dispatcher").unwrap();
        let (tx, mut granted) = mpsc::unbounded_channel();
        election.start(Arc::new(Contender(tx))).unwrap();
        let session_id = granted.recv().await.unwrap();
        let term = election
            .run_if_leader(session_id, |l| async move { l.term() })
            .await
            .unwrap();
        election
            .confirm_leadership(session_id, "akka://jm-1:6123/dispatcher")
            .await
            .unwrap();
        let out = output(&[
            "status",
            "--backend",
            &backend,
            "--cluster",
            "prod",
            "--json",
        ]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows[0]["kind"], "component", "{rows}");
        assert_eq!(rows[0]["name"], "prod/dispatcher", "{rows}");
        assert_eq!(rows[0]["address"], "akka://jm-1:6123/dispatcher", "{rows}");
        assert_eq!(rows[0]["leader"], session_id.to_string(), "{rows}");
        assert_eq!(rows[0]["term"], term, "{rows}");
        assert_eq!(rows[0]["candidates"], 1, "{rows}");
        service.close().await;
        node.close().await.unwrap();
    });
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code_64() {
    for (args, says) in [
        (
            &["status", "--backend", "nothing", "jobs"][..],
            "invalid url \"nothing\"",
        ),
        (
            &["status", "--backend", "nope://x/y", "jobs"][..],
            "unknown scheme",
        ),
        (
            &["observe", "--backend", "memory:", "--election", "a/b"][..],
            "invalid election name \"a/b\": must be 1 to 128 bytes",
        ),
        (
            &[
                "run",
                "--backend",
                "memory:",
                "--election",
                "..",
                "--",
                "true",
            ][..],
            "not '.' or '..'",
        ),
        (
            &["run", "--backend", "memory:", "--election", "x"][..],
            "<CMD>",
        ),
        (
            &[
                "run",
                "--backend",
                "local:///tmp/x",
                "--election",
                "x",
                "--ttl",
                "5s",
                "--",
                "true",
            ][..],
            "the local backend's sessions have no TTL",
        ),
        (
            &[
                "run",
                "--backend",
                "memory:",
                "--election",
                "x",
                "--grace",
                "soon",
                "--",
                "true",
            ][..],
            "ms, s or m",
        ),
        (&["campaign", "--election", "x"][..], "--backend"),
    ] {
        let out = output(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_backend_can_come_from_tenure_backend() {
    let out = tenure()
        .args(["status", "jobs"])
        .env("TENURE_BACKEND", "memory:")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jobs"));
}

#[test]
fn help_explains_every_flag_and_the_exit_codes() {
    let out = output(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for expected in [
        "[env: TENURE_BACKEND=]",
        "--grace <DURATION>",
        "[default: 10s]",
        "[default: never]",
        "TENURE_TERM",
        "Exit codes:",
        "128+S",
        "renew deadline",
    ] {
        assert!(help.contains(expected), "missing {expected:?} in:\n{help}");
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = output(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("tenure"), "{shell}");
        assert!(script.contains("restart-delay"), "{shell}: {script}");
    }
}
