//! The kit against real etcd servers: start, drop, kill, restart, pause, TLS
//! and auth.

mod group;

use std::process::{Command, Output};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tenure_testkit::{EtcdCluster, EtcdOptions, PeerRoute};

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

/// The value of `key`, read with `etcdctl`, which must succeed.
fn get(etcdctl: &mut Command, key: &str) -> String {
    ok(etcdctl.args(["get", key, "--print-value-only"]))
        .trim()
        .to_owned()
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
    assert_eq!(get(&mut etcd.etcdctl(), "greeting"), "hello");

    assert!(etcd.dir().join("m0").is_dir());
    group::drop_leaves_nothing_behind(etcd);
}

#[test]
fn members_reach_each_other_through_a_peer_route() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let etcd = EtcdCluster::start(EtcdOptions {
        members: 3,
        peer_route: Some(PeerRoute::new(move |port| {
            group::forward(port, counted.clone())
        })),
        ..EtcdOptions::default()
    })
    .unwrap();
    ok(etcd.etcdctl().args(["put", "routed", "yes"]));
    assert_eq!(get(&mut etcd.etcdctl(), "routed"), "yes");
    // Every member advertises its route, and raft traffic went through it.
    let members = ok(etcd.etcdctl().args(["member", "list"]));
    for m in 0..3 {
        let peer = etcd.member(m).ports.peer;
        assert!(
            !members.contains(&format!(":{peer},")),
            "m{m} advertises its own port: {members}"
        );
    }
    assert!(accepted.load(Ordering::SeqCst) > 0);
}

#[test]
fn compaction_leaves_only_the_current_revision_readable() {
    let etcd = EtcdCluster::single().unwrap();
    ok(etcd.etcdctl().args(["put", "k", "old"]));
    ok(etcd.etcdctl().args(["put", "k", "new"]));
    let revision = etcd.compact_and_defragment().unwrap();
    assert!(revision >= 2, "compacted at {revision}");
    // The first put is gone from the history; the latest value stays.
    let compacted = fails(etcd.etcdctl().args(["get", "k", "--rev=1"]));
    assert!(compacted.contains("compacted"), "{compacted}");
    assert_eq!(get(&mut etcd.etcdctl(), "k"), "new");
}

#[test]
fn a_cluster_survives_losing_its_leader_and_takes_it_back() {
    let etcd = EtcdCluster::cluster(3).unwrap();
    assert_eq!(etcd.endpoints().len(), 3);
    let (old, _) = group::loses_its_leader_and_takes_it_back(&etcd, |_| {
        // All endpoints, one of them dead: the client fails over.
        ok(etcd.etcdctl().args(["put", "after-failover", "yes"]));
    });
    // A linearizable read through the restarted member.
    assert_eq!(get(&mut etcd.etcdctl_on(&[old]), "after-failover"), "yes");
}

#[test]
fn a_paused_leader_is_replaced_and_catches_up_after_resuming() {
    let etcd = EtcdCluster::cluster(3).unwrap();
    let (paused, _) = group::a_paused_leader_is_replaced(&etcd, |paused| {
        ok(etcd
            .etcdctl_on(&others(&etcd, paused))
            .args(["put", "while-paused", "written"]));
    });
    // The resumed member caught up.
    assert_eq!(
        get(&mut etcd.etcdctl_on(&[paused]), "while-paused"),
        "written"
    );
}

#[test]
fn tls_with_client_certificates_refuses_clients_without_one() {
    let etcd = EtcdCluster::start(EtcdOptions {
        members: 1,
        tls: true,
        client_cert_auth: true,
        ..EtcdOptions::default()
    })
    .unwrap();
    let url = etcd.client_urls().remove(0);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let tls = etcd.tls().expect("started with TLS").clone();

    ok(etcd.etcdctl().args(["put", "secure", "yes"]));
    assert_eq!(get(&mut etcd.etcdctl(), "secure"), "yes");

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
    assert_eq!(get(&mut etcd.etcdctl(), "secure"), "yes");
}

#[test]
fn tls_and_auth_still_restart_and_report_health() {
    let etcd = EtcdCluster::start(EtcdOptions {
        members: 1,
        tls: true,
        client_cert_auth: false,
        ..EtcdOptions::default()
    })
    .unwrap();
    etcd.enable_auth("root-secret").unwrap();
    assert!(!format!("{etcd:?}").contains("root-secret"), "{etcd:?}");
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

    let as_alice = ["--user=alice", "--password=alice-secret"];
    ok(etcd.etcdctl().args(as_alice).args(["put", "any/key", "v"]));
    assert_eq!(get(etcd.etcdctl().args(as_alice), "any/key"), "v");

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
    group::assert_refused(EtcdCluster::cluster(0), "members");
    group::assert_refused(
        EtcdCluster::start(EtcdOptions {
            client_cert_auth: true,
            ..EtcdOptions::default()
        }),
        "client_cert_auth",
    );
}

#[test]
fn a_panicking_test_still_kills_its_server() {
    group::a_panicking_test_still_kills_its_server(EtcdCluster::single);
}
