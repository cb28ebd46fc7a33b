//! `tenure run`, with real processes on the local backend.

mod support;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use support::*;

/// A command that logs "ID TERM PID" and then sleeps.
fn logging_sleeper(log: &std::path::Path) -> String {
    format!(
        "echo \"$TENURE_LEADER_ID $TENURE_TERM $$\" >> '{}'; exec sleep 1000",
        log.display()
    )
}

fn field(line: &str, i: usize) -> String {
    line.split_whitespace().nth(i).unwrap().to_owned()
}

#[test]
fn the_command_gets_its_leadership_in_its_environment_and_tenure_exits_with_its_status() {
    let dir = TempDir::new("env");
    let env = dir.path("env");
    let script = format!("env > '{}'; exit 3", env.display());
    let out = output(&[
        "run",
        "--backend",
        "memory:",
        "--election",
        "nightly",
        "--id",
        "worker-1",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(env).unwrap();
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in:\n{env}"))
            .to_owned()
    };
    assert!(var("TENURE_TERM").parse::<u64>().unwrap() > 0);
    assert_eq!(var("TENURE_ELECTION"), "nightly");
    assert_eq!(var("TENURE_LEADER_ID"), "worker-1");
    uuid::Uuid::parse_str(&var("TENURE_SESSION_ID")).unwrap();
}

#[test]
fn when_the_leading_tenure_is_killed_the_other_starts_its_command_and_the_first_command_dies() {
    let dir = TempDir::new("failover");
    let backend = dir.backend();
    let log = dir.path("log");
    let script = logging_sleeper(&log);
    let start = |id: &str| {
        Tenure::start(
            &dir,
            id,
            &[
                "run",
                "--backend",
                &backend,
                "--election",
                "jobs",
                "--id",
                id,
                "--",
                "sh",
                "-c",
                &script,
            ],
        )
    };
    let (a, b) = (start("a"), start("b"));
    let first = await_lines(&log, 1)[0].clone();
    let (leader, mut other) = if field(&first, 0) == "a" {
        (a, b)
    } else {
        (b, a)
    };
    // Only one command runs, even once the other tenure waits in the queue.
    await_until("the other tenure queued behind the leader", || {
        let out = output(&["status", "--backend", &backend, "--json", "jobs"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (rows[0]["candidates"] == 2).then_some(())
    });
    assert_eq!(lines(&log).len(), 1, "two commands ran at once");

    leader.signal(libc::SIGKILL);
    let second = await_lines(&log, 2)[1].clone();
    assert_ne!(field(&second, 0), field(&first, 0));
    assert!(field(&second, 1).parse::<u64>().unwrap() > field(&first, 1).parse::<u64>().unwrap());
    // The killed leader's command does not outlive it.
    let orphan: i32 = field(&first, 2).parse().unwrap();
    await_until("the killed leader's command to die", || {
        is_dead(orphan).then_some(())
    });

    // SIGTERM reaches the survivor's command (sleep dies of it): 128 + 15.
    other.signal(libc::SIGTERM);
    let status = other.wait();
    assert_eq!(status.code(), Some(143), "{}", other.stderr());
    let survivor: i32 = field(&second, 2).parse().unwrap();
    assert!(is_dead(survivor));
    drop(leader);
}

#[test]
fn sigterm_is_passed_to_the_command_then_leadership_is_resigned() {
    let dir = TempDir::new("sigterm");
    let backend = dir.backend();
    let log = dir.path("log");
    let script = format!(
        "trap 'echo got-term >> \"{log}\"; exit 7' TERM; echo started >> \"{log}\"; while :; do sleep 0.05; done",
        log = log.display()
    );
    let mut run = Tenure::start(
        &dir,
        "run",
        &[
            "run",
            "--backend",
            &backend,
            "--election",
            "jobs",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    await_lines(&log, 1);
    run.signal(libc::SIGTERM);
    let status = run.wait();
    assert_eq!(status.code(), Some(7), "{}", run.stderr());
    assert_eq!(lines(&log), ["started", "got-term"]);
    // Leadership was given back: nobody leads.
    let out = output(&["status", "--backend", &backend, "--json", "jobs"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["leader"], serde_json::Value::Null, "{rows}");
    assert_eq!(rows[0]["candidates"], 0, "{rows}");
}

#[test]
fn a_failing_command_is_restarted_until_it_succeeds_with_restart_on_failure() {
    let dir = TempDir::new("restart");
    let log = dir.path("log");
    let script = format!(
        "echo \"$TENURE_TERM\" >> '{log}'; [ $(wc -l < '{log}') -ge 3 ] && exit 0; exit 1",
        log = log.display()
    );
    let out = output(&[
        "run",
        "--backend",
        &dir.backend(),
        "--election",
        "jobs",
        "--restart",
        "on-failure",
        "--restart-delay",
        "10ms",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let terms: Vec<u64> = lines(&log).iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(terms.len(), 3);
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "{terms:?}");
}

#[test]
fn when_leadership_is_lost_the_command_gets_sigterm_then_sigkill_after_the_grace() {
    let dir = TempDir::new("loss");
    let backend = dir.backend();
    let log = dir.path("log");
    // The command notes SIGTERM but keeps going: only SIGKILL stops it.
    let script = format!(
        "trap 'echo got-term >> \"{log}\"' TERM; echo \"$$ $TENURE_TERM\" >> \"{log}\"; while :; do sleep 0.05; done",
        log = log.display()
    );
    let mut run = Tenure::start(
        &dir,
        "run",
        &[
            "run",
            "--backend",
            &backend,
            "--election",
            "jobs",
            "--grace",
            "500ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let first = await_lines(&log, 1)[0].clone();
    let pid: i32 = field(&first, 0).parse().unwrap();
    let term: u64 = field(&first, 1).parse().unwrap();

    // An operator removes the leader's candidate: leadership is lost.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lost_at = Instant::now();
    runtime.block_on(async {
        let operator = tenure::connect(&backend).await.unwrap();
        let grant = tenure::Grant {
            election: tenure::Path::parse("election", "jobs").unwrap(),
            term,
            session: tenure::SessionId(0),
            key: String::new(),
        };
        operator.resign(&grant).await.unwrap();
        operator.close().await.unwrap();
    });
    await_until("SIGTERM to reach the command", || {
        lines(&log).iter().any(|l| l == "got-term").then_some(())
    });
    assert!(!is_dead(pid), "the command died before SIGKILL");
    await_until("the command to be killed", || is_dead(pid).then_some(()));
    let took = lost_at.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "SIGKILL came after {took:?}"
    );
    // --restart never: exit 75, leadership lost.
    let status = run.wait();
    assert_eq!(status.code(), Some(75), "{}", run.stderr());
    assert!(run.stderr().contains("leadership lost"), "{}", run.stderr());
}

#[test]
fn tenure_resign_makes_the_holder_stop_its_command_and_step_down() {
    let dir = TempDir::new("resign");
    let backend = dir.backend();
    let log = dir.path("log");
    let mut run = Tenure::start(
        &dir,
        "run",
        &[
            "run",
            "--backend",
            &backend,
            "--election",
            "jobs",
            "--id",
            "holder",
            "--",
            "sh",
            "-c",
            &logging_sleeper(&log),
        ],
    );
    let pid: i32 = field(&await_lines(&log, 1)[0], 2).parse().unwrap();
    let wrong = output(&[
        "resign",
        "--backend",
        &backend,
        "--election",
        "jobs",
        "--id",
        "someone-else",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("holder does"));

    let out = output(&[
        "resign",
        "--backend",
        &backend,
        "--election",
        "jobs",
        "--id",
        "holder",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("holder resigned jobs"));
    assert!(is_dead(pid), "the command outlived the leadership");
    assert_eq!(run.wait().code(), Some(75));
}

#[test]
fn tenure_run_stopped_while_campaigning_exits_128_plus_the_signal() {
    let dir = TempDir::new("waiting");
    let backend = dir.backend();
    let log = dir.path("log");
    let script = logging_sleeper(&log);
    let args = |id: &'static str| {
        vec![
            "run".to_owned(),
            "--backend".into(),
            backend.clone(),
            "--election".into(),
            "jobs".into(),
            "--id".into(),
            id.into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script.clone(),
        ]
    };
    let a_args = args("a");
    let a = Tenure::start(
        &dir,
        "a",
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    await_lines(&log, 1);
    let b_args = args("b");
    let mut b = Tenure::start(
        &dir,
        "b",
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    await_until("b to campaign", || {
        b.stderr().contains("campaigning").then_some(())
    });
    b.signal(libc::SIGINT);
    let status = b.wait();
    assert_eq!(status.code(), Some(130), "{status:?} {}", b.stderr());
    assert_eq!(lines(&log).len(), 1);
    drop(a);
}

#[test]
fn a_command_that_cannot_be_found_exits_127() {
    let out = output(&[
        "run",
        "--backend",
        "memory:",
        "--election",
        "jobs",
        "--",
        "/nonexistent/tenure-test-command",
    ]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start"));
    assert!(out.status.signal().is_none());
}

#[test]
fn metrics_are_served_in_prometheus_text_format() {
    let dir = TempDir::new("metrics");
    let log = dir.path("log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _run = Tenure::start(
        &dir,
        "run",
        &[
            "run",
            "--backend",
            &dir.backend(),
            "--election",
            "jobs",
            "--metrics-addr",
            &addr,
            "--",
            "sh",
            "-c",
            &logging_sleeper(&log),
        ],
    );
    await_lines(&log, 1);
    let body = await_until("metrics with the grant", || {
        let mut stream = std::net::TcpStream::connect(&addr).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response
            .contains("tenure_leader{election=\"jobs\"} 1")
            .then_some(response)
    });
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    for expected in [
        "tenure_leadership_grants_total{election=\"jobs\"} 1",
        "tenure_term{election=\"jobs\"}",
        "tenure_session_state{state=\"connected\"} 1",
        "# HELP tenure_leader ",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
    }
}
