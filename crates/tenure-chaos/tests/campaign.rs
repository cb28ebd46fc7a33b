//! Short campaigns with fixed seeds on every backend, failing on any
//! violation; and the broken mode, which the checker must catch. One campaign
//! runs at a time: each starts its own servers and a handful of processes,
//! and two at once on two cores would only measure the machine.

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `tenure-chaos run --json` with `args`; returns its exit code and the
/// summary.
fn campaign(args: &[&str]) -> (i32, Value) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(env!("CARGO_BIN_EXE_tenure-chaos"))
        .arg("run")
        .args(args)
        .arg("--json")
        .output()
        .expect("tenure-chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no summary ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), summary)
}

/// A campaign that must pass, having injected at least `faults` faults.
fn passes(args: &[&str], faults: u64) {
    let (code, summary) = campaign(args);
    let shown = serde_json::to_string_pretty(&summary).unwrap();
    assert_eq!(code, 0, "the campaign failed: {shown}");
    assert!(
        summary["violations_by_invariant"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{shown}"
    );
    assert!(
        summary["faults_total"].as_u64().unwrap() >= faults,
        "{shown}"
    );
    assert!(summary["grants"].as_u64().unwrap() > 0, "{shown}");
    assert!(summary["writes"]["ok"].as_u64().unwrap_or(0) > 0, "{shown}");
}

#[test]
fn memory_seeds_pass() {
    for seed in ["1", "2"] {
        passes(
            &[
                "--backend",
                "memory",
                "--seed",
                seed,
                "--faults",
                "80",
                "--duration",
                "15s",
            ],
            40,
        );
    }
}

#[test]
fn local_seeds_pass() {
    for seed in ["1", "2"] {
        passes(
            &[
                "--backend",
                "local",
                "--seed",
                seed,
                "--faults",
                "80",
                "--duration",
                "25s",
            ],
            40,
        );
    }
}

#[test]
fn etcd_cluster_seed_passes() {
    passes(
        &[
            "--backend",
            "etcd",
            "--seed",
            "1",
            "--faults",
            "60",
            "--duration",
            "40s",
        ],
        30,
    );
}

#[test]
fn zookeeper_ensemble_seed_passes() {
    passes(
        &[
            "--backend",
            "zookeeper",
            "--seed",
            "1",
            "--faults",
            "40",
            "--duration",
            "40s",
        ],
        20,
    );
}

/// Writes made unfenced by leaders that ignore their loss signal: frozen
/// past their TTL, they come back and overwrite their successors. The
/// checker must say so.
#[test]
fn unfenced_writes_are_caught() {
    let (code, summary) = campaign(&[
        "--backend",
        "etcd",
        "--seed",
        "3",
        "--clients",
        "2",
        "--faults",
        "10",
        "--duration",
        "40s",
        "--kinds",
        "client-pause-long",
        "--unsafe-skip-fence",
    ]);
    let shown = serde_json::to_string_pretty(&summary).unwrap();
    assert_eq!(code, 1, "the broken mode passed: {shown}");
    assert!(
        summary["violations_by_invariant"]["1"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "no stale write reported: {shown}"
    );
}

#[test]
fn bad_usage_is_refused_with_a_hint() {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure-chaos"))
        .args(["run", "--backend", "mongodb"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("memory, local, etcd, zookeeper or zookeeper-flink"),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_tenure-chaos"))
        .args(["run", "--backend", "local", "--kinds", "meteor"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("client-kill"));
    // A fault a backend cannot have is refused, not silently skipped.
    let output = Command::new(env!("CARGO_BIN_EXE_tenure-chaos"))
        .args(["run", "--backend", "memory", "--kinds", "client-pause-long"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not apply to memory"), "{stderr}");
}
