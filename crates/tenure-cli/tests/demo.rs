//! Runs the real `tenure` binary.

use std::process::Command;

#[test]
fn demo_runs_without_a_server_and_shows_the_stale_write_fenced() {
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["demo", "--ttl", "200ms"])
        .output()
        .expect("the tenure binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    // Every grant has a higher term than the one before.
    let terms: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.split("granted all components: term ").nth(1))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(terms.len(), 3, "{stdout}");
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "{terms:?}");
}

#[test]
fn a_bad_flag_value_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["demo", "--ttl", "forever"])
        .output()
        .expect("the tenure binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ttl"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
