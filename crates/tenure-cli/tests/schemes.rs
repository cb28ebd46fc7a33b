//! The `tenure` binary knows every backend's URL scheme: `memory:` and
//! `local://` work with no server, and an `etcd://` or `zk://` URL with no
//! server behind it is "backend unavailable" (exit 69), never "unknown scheme"
//! (exit 64). `scripts/test.sh` checks the same on a build with the default
//! features, which is what `cargo install` gives.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Nothing listens on port 1 of the loopback, so connecting fails at once.
const NO_SERVER: &str = "127.0.0.1:1";

fn status(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["status", "--backend", url, "probe"])
        .stdin(Stdio::null())
        .output()
        .expect("the tenure binary runs")
}

fn assert_exit(url: &str, code: i32) {
    let out = status(url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{url}: {stderr}");
    assert!(!stderr.contains("unknown scheme"), "{url}: {stderr}");
}

#[test]
fn etcd_urls_are_accepted() {
    assert_exit(&format!("etcd://{NO_SERVER}/x"), 69);
}

#[test]
fn zk_urls_are_accepted() {
    assert_exit(&format!("zk://{NO_SERVER}/x?connect_timeout=1s"), 69);
}

#[test]
fn memory_urls_work() {
    assert_exit("memory:", 0);
}

#[test]
fn local_urls_work() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tenure-cli-schemes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_exit(&format!("local://{}", dir.display()), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_scheme_is_bad_input_and_lists_all_four() {
    let out = status("nope://x/y");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(r#"supported: memory, local, etcd, zk"#),
        "{stderr}"
    );
}

/// `--ttl` is a flag, not a URL option: on ZooKeeper it sets the session
/// timeout, on etcd the lease TTL; either way an unreachable server is
/// "unavailable" (69), never bad input (64).
#[test]
fn ttl_maps_to_each_backends_session_option() {
    for url in [
        format!("zk://{NO_SERVER}/x?connect_timeout=1s"),
        format!("etcd://{NO_SERVER}/x"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args([
                "campaign",
                "--backend",
                &url,
                "--election",
                "e",
                "--ttl",
                "2s",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("the tenure binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{url}: {stderr}");
        assert!(!stderr.contains("ttl"), "{url}: {stderr}");
    }
}
