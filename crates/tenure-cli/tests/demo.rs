//! Runs the real `tenure` binary.

use std::process::Command;

fn run_demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(args)
        .output()
        .expect("the tenure binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The terms of the grants the demo printed, in order.
fn terms(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.split(": term ").nth(1))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_default_demo_runs_processes_on_the_local_backend_and_fences_the_hung_leader() {
    let stdout = run_demo(&["demo"]);
    for expected in [
        "each its own OS process",
        "Round 1: the leader's process is killed",
        "killed (kill -9); the kernel releases its lock",
        "still leads: a stopped process is not dead, so nobody acts",
        "…and is rejected: fenced",
        "knows it lost leadership: own candidate key deleted",
        "late write of the hung leader: rejected, nothing changed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let terms = terms(&stdout);
    assert_eq!(terms.len(), 3, "{stdout}");
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "{terms:?}");
    // The demo cleans up its temporary directory.
    let dir = stdout
        .split("(local://")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}

#[test]
fn the_memory_demo_shows_the_stale_write_fenced_after_a_session_expired() {
    let stdout = run_demo(&["demo", "--backend", "memory:", "--ttl", "200ms"]);
    for expected in [
        "Round 1: the leader crashes",
        "Round 2: the new leader is paused",
        "…and is rejected: fenced",
        "late write of the paused leader: rejected, nothing changed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let terms = terms(&stdout);
    assert_eq!(terms.len(), 3, "{stdout}");
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "{terms:?}");
}

#[test]
fn bad_flag_values_are_one_line_errors() {
    for (args, names) in [
        (&["demo", "--ttl", "forever"][..], "--ttl"),
        (&["demo", "--backend", "etcd://x:1/p"][..], "--backend"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(args)
            .output()
            .expect("the tenure binary runs");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(names), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
