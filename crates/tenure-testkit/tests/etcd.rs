//! The kit against real etcd servers: start, drop, kill, restart, pause, TLS
//! and auth.

use std::path::Path;
use std::process::{Command, Output};

use tenure_testkit::{EtcdCluster, EtcdOptions, TestkitError};

/// Runs an etcdctl command that must succeed and returns its stdout.
fn ok(command: &mut Command) -> String {
    let output = command.output().expect("etcdctl runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs an etcdctl command that must fail and returns its stderr.
fn fails(command: &mut Command) -> String {
    let output: Output = command
        .args(["--dial-timeout=2s", "--command-timeout=2s"])
        .output()
        .expect("etcdctl runs");
    assert!(
        !output.status.success(),
        "{command:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn proc_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The scheduler state of a process as /proc shows it (`T` when stopped).
fn proc_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name.split_whitespace().next().unwrap().to_owned()
}

fn others(etcd: &EtcdCluster, member: usize) -> Vec<usize> {
    (0..etcd.members()).filter(|&m| m != member).collect()
}

#[test]
fn a_single_node_serves_and_leaves_nothing_behind() {
    let etcd = EtcdCluster::single().unwrap();
    assert_eq!(etcd.members(), 1);
    let port = etcd.endpoints()[0]
        .strip_prefix("127.0.0.1:")
        .unwrap()
        .to_owned();
    assert_eq!(etcd.client_urls(), [format!("http://127.0.0.1:{port}")]);
    assert_eq!(etcd.leader(), Some(0));
    assert!(etcd.tls().is_none());

    ok(etcd.etcdctl().args(["put", "greeting", "hello"]));
    let value = ok(etcd
        .etcdctl()
        .args(["get", "greeting", "--print-value-only"]));
    assert_eq!(value.trim(), "hello");

    let pid = etcd.pid(0).unwrap();
    let dir = etcd.dir().to_owned();
    assert!(proc_exists(pid) && dir.join("m0").is_dir());
    drop(etcd);
    assert!(!proc_exists(pid), "etcd {pid} outlived its cluster");
    assert!(!dir.exists(), "{} outlived its cluster", dir.display());
}

#[test]
fn a_cluster_survives_losing_its_leader_and_takes_it_back() {
    let etcd = EtcdCluster::cluster(3).unwrap();
    assert_eq!(etcd.endpoints().len(), 3);
    let old = etcd.leader().expect("a ready cluster has a leader");

    etcd.kill(old);
    assert_eq!(etcd.pid(old), None);
    // Waits for the two survivors to be healthy, which needs a new leader.
    etcd.wait_ready().unwrap();
    let new = etcd
        .leader()
        .expect("wait_ready returns once there is a leader");
    assert_ne!(new, old);
    // All endpoints, one of them dead: the client fails over.
    ok(etcd.etcdctl().args(["put", "after-failover", "yes"]));

    etcd.restart(old).unwrap();
    assert!(etcd.pid(old).is_some());
    etcd.wait_ready().unwrap();
    // A linearizable read through the restarted member.
    let value = ok(etcd
        .etcdctl_on(&[old])
        .args(["get", "after-failover", "--print-value-only"]));
    assert_eq!(value.trim(), "yes");
}

#[test]
fn a_paused_leader_is_replaced_and_catches_up_after_resuming() {
    let etcd = EtcdCluster::cluster(3).unwrap();
    let paused = etcd.leader().expect("a ready cluster has a leader");
    let pid = etcd.pid(paused).unwrap();

    etcd.pause(paused);
    assert_eq!(proc_state(pid), "T");
    // The paused member is left out: this waits for the other two to elect.
    etcd.wait_ready().unwrap();
    let leader = etcd.leader().expect("the other two elect a leader");
    assert_ne!(leader, paused);
    ok(etcd
        .etcdctl_on(&others(&etcd, paused))
        .args(["put", "while-paused", "written"]));

    etcd.resume(paused);
    assert_ne!(proc_state(pid), "T");
    assert_eq!(etcd.pid(paused), Some(pid), "pausing is not restarting");
    etcd.wait_ready().unwrap();
    let value = ok(etcd
        .etcdctl_on(&[paused])
        .args(["get", "while-paused", "--print-value-only"]));
    assert_eq!(value.trim(), "written");
}

#[test]
fn tls_with_client_certificates_refuses_clients_without_one() {
    let etcd = EtcdCluster::start(EtcdOptions {
        members: 1,
        tls: true,
        client_cert_auth: true,
    })
    .unwrap();
    let url = etcd.client_urls().remove(0);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let tls = etcd.tls().expect("started with TLS").clone();

    ok(etcd.etcdctl().args(["put", "secure", "yes"]));
    let value = ok(etcd.etcdctl().args(["get", "secure", "--print-value-only"]));
    assert_eq!(value.trim(), "yes");

    // Trusting the CA is not enough: the server wants a client certificate.
    let mut without_cert = Command::new("etcdctl");
    without_cert
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .arg("--cacert")
        .arg(&tls.ca);
    let refused = fails(without_cert.args(["put", "secure", "no"]));
    assert!(refused.contains("deadline exceeded"), "{refused}");
    // The server says why: the handshake lacked a certificate.
    let log = std::fs::read_to_string(etcd.log_path(0)).unwrap();
    assert!(log.contains("client didn't provide a certificate"), "{log}");
    // And nothing reached the server.
    let value = ok(etcd.etcdctl().args(["get", "secure", "--print-value-only"]));
    assert_eq!(value.trim(), "yes");
}

#[test]
fn tls_and_auth_still_restart_and_report_health() {
    let etcd = EtcdCluster::start(EtcdOptions {
        members: 1,
        tls: true,
        client_cert_auth: false,
    })
    .unwrap();
    etcd.enable_auth("root-secret").unwrap();
    // Health over TLS needs a user once auth is on; the kit uses root.
    etcd.restart(0).unwrap();
    etcd.wait_ready().unwrap();
    ok(etcd
        .etcdctl()
        .args(["--user=root", "--password=root-secret", "put", "k", "v"]));
}

#[test]
fn auth_admits_the_added_user_only() {
    let etcd = EtcdCluster::single().unwrap();
    etcd.enable_auth("root-secret").unwrap();
    etcd.add_user("root-secret", "alice", "alice-secret")
        .unwrap();

    ok(etcd.etcdctl().args([
        "--user=alice",
        "--password=alice-secret",
        "put",
        "any/key",
        "v",
    ]));
    let value = ok(etcd.etcdctl().args([
        "--user=alice",
        "--password=alice-secret",
        "get",
        "any/key",
        "--print-value-only",
    ]));
    assert_eq!(value.trim(), "v");

    let anonymous = fails(etcd.etcdctl().args(["put", "any/key", "w"]));
    assert!(anonymous.contains("user name is empty"), "{anonymous}");
    let wrong =
        fails(
            etcd.etcdctl()
                .args(["--user=alice", "--password=wrong", "put", "any/key", "w"]),
        );
    assert!(wrong.contains("authentication failed"), "{wrong}");
    // Health checks keep working with auth on.
    etcd.wait_ready().unwrap();
}

#[test]
fn impossible_options_are_refused() {
    let err = EtcdCluster::cluster(0).unwrap_err();
    assert!(
        matches!(
            err,
            TestkitError::InvalidOptions {
                field: "members",
                ..
            }
        ),
        "{err}"
    );
    let err = EtcdCluster::start(EtcdOptions {
        client_cert_auth: true,
        ..EtcdOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            TestkitError::InvalidOptions {
                field: "client_cert_auth",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_panicking_test_still_kills_its_server() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let etcd = EtcdCluster::single().unwrap();
        sender
            .send((etcd.pid(0).unwrap(), etcd.dir().to_owned()))
            .unwrap();
        panic!("a failing assertion (expected by this test)");
    });
    assert!(test.join().is_err());
    let (pid, dir) = receiver.recv().unwrap();
    assert!(!proc_exists(pid), "etcd {pid} outlived a panicking test");
    assert!(!dir.exists(), "{} outlived a panicking test", dir.display());
}
