//! The kit against real ZooKeeper servers: start, drop, kill, restart, pause,
//! four-letter words, and Curator LeaderLatch participants.

mod group;

use std::time::Duration;

use group::proc_exists;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tenure_testkit::{CuratorLatch, PeerRoute, TestkitError, ZkCluster, ZkOptions};

/// Longer than any handover below takes; they are awaited, not slept.
const WAIT: Duration = Duration::from_secs(20);

fn mode(zk: &ZkCluster, server: usize) -> String {
    let srvr = zk.four_letter(server, "srvr").unwrap();
    srvr.lines()
        .find_map(|line| line.strip_prefix("Mode: "))
        .unwrap_or_else(|| panic!("zk{server} has no mode: {srvr}"))
        .to_owned()
}

#[test]
fn a_standalone_server_answers_four_letter_words_and_leaves_nothing_behind() {
    let zk = ZkCluster::standalone().unwrap();
    assert_eq!(zk.servers(), 1);
    let address = zk.client_addr(0);
    assert!(address.ip().is_loopback(), "{address}");
    assert_eq!(zk.connect_string(), address.to_string());
    assert_eq!(zk.four_letter(0, "ruok").unwrap(), "imok");
    let mntr = zk.four_letter(0, "mntr").unwrap();
    assert!(mntr.contains("zk_server_state\tstandalone"), "{mntr}");
    assert_eq!(mode(&zk, 0), "standalone");
    assert_eq!(zk.leader(), Some(0));
    assert!(zk.version().unwrap().starts_with("3.8."));
    // The session limits a test relies on: 1 s to 60 s.
    let conf = zk.four_letter(0, "conf").unwrap();
    assert!(conf.contains("minSessionTimeout=1000"), "{conf}");
    assert!(conf.contains("maxSessionTimeout=60000"), "{conf}");

    let first = zk.pid(0).unwrap();
    zk.restart(0).unwrap();
    let pid = zk.pid(0).unwrap();
    assert!(
        !proc_exists(first) && pid != first,
        "a restart is a new process"
    );
    assert_eq!(zk.four_letter(0, "ruok").unwrap(), "imok");
    assert_eq!(
        zk.connect_string(),
        address.to_string(),
        "and the same port"
    );

    assert!(proc_exists(pid) && zk.dir().join("zk0").join("zoo.cfg").is_file());
    group::drop_leaves_nothing_behind(zk);
}

#[test]
fn an_ensemble_survives_losing_its_leader_and_takes_it_back() {
    let zk = ZkCluster::ensemble(3).unwrap();
    assert_eq!(zk.connect_string().split(',').count(), 3);
    let leader = zk.leader().expect("a ready ensemble has a leader");
    assert_eq!(mode(&zk, leader), "leader");
    for follower in (0..3).filter(|&s| s != leader) {
        assert_eq!(mode(&zk, follower), "follower");
    }

    let (old, new) = group::loses_its_leader_and_takes_it_back(&zk, |_| ());
    assert_eq!(old, leader);
    assert_eq!(mode(&zk, old), "follower");
    assert_eq!(zk.leader(), Some(new));
}

#[test]
fn a_paused_leader_is_replaced_and_rejoins_after_resuming() {
    let zk = ZkCluster::ensemble(3).unwrap();
    let (paused, leader) = group::a_paused_leader_is_replaced(&zk, |_| ());
    // The deposed leader noticed it had no quorum and follows the new one.
    assert_eq!(mode(&zk, paused), "follower");
    assert_eq!(zk.leader(), Some(leader));
}

#[test]
fn curator_latches_hand_leadership_over_on_close() {
    let zk = ZkCluster::shared();
    let path = "/tenure-testkit/handover";
    let first = CuratorLatch::start(&zk.connect_string(), path, "first", 2_000).unwrap();
    first.wait_for("LEADER", WAIT).unwrap();
    assert!(first.has_leadership().unwrap());

    let second = CuratorLatch::start(&zk.connect_string(), path, "second", 2_000).unwrap();
    assert!(!second.has_leadership().unwrap());
    assert_eq!(second.lines(), ["READY"], "the second must wait its turn");

    first.close().unwrap();
    // CloseMode.NOTIFY_LEADER: the closing leader is told it no longer leads.
    first.wait_for("NOT_LEADER", WAIT).unwrap();
    second.wait_for("LEADER", WAIT).unwrap();
    assert!(second.has_leadership().unwrap());
    let err = first.has_leadership().unwrap_err();
    assert!(matches!(err, TestkitError::Exited { .. }), "{err}");
}

#[test]
fn a_killed_curator_leader_is_replaced_when_its_session_expires() {
    let zk = ZkCluster::shared();
    let path = "/tenure-testkit/crash";
    // The shortest session the server grants.
    let timeout = zk.options().min_session_timeout_ms;
    let first = CuratorLatch::start(&zk.connect_string(), path, "first", timeout).unwrap();
    first.wait_for("LEADER", WAIT).unwrap();
    let second = CuratorLatch::start(&zk.connect_string(), path, "second", timeout).unwrap();

    let pid = first.pid();
    first.kill();
    assert!(!proc_exists(pid), "killed, and reaped");
    second.wait_for("LEADER", WAIT).unwrap();
    assert!(second.has_leadership().unwrap());
}

#[test]
fn a_small_snap_count_makes_the_server_snapshot_as_it_goes() {
    let zk = ZkCluster::start(ZkOptions {
        snap_count: Some(2),
        ..ZkOptions::default()
    })
    .unwrap();
    // A new server's data tree, empty: the snapshot at zxid 0.
    assert_eq!(zk.snapshots(0).unwrap(), [0]);
    // A latch's session and nodes are transactions enough for a snapshot.
    let latch = CuratorLatch::start(&zk.connect_string(), "/snap", "only", 2_000).unwrap();
    latch.wait_for("LEADER", WAIT).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while zk.snapshots(0).unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no second snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(zk.snapshots(0).unwrap()[1] > 0);
}

#[test]
fn servers_reach_each_other_through_a_peer_route() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let zk = ZkCluster::start(ZkOptions {
        servers: 3,
        peer_route: Some(PeerRoute::new(move |port| {
            group::forward(port, counted.clone())
        })),
        ..ZkOptions::default()
    })
    .unwrap();
    assert!(zk.leader().is_some());
    // Each server names the others by their routed ports, itself by its own.
    let config = std::fs::read_to_string(zk.dir().join("zk0").join("zoo.cfg")).unwrap();
    assert!(
        config.contains(&format!(":{}:", zk.member(0).ports.quorum)),
        "{config}"
    );
    assert!(
        !config.contains(&format!(":{}:", zk.member(1).ports.quorum)),
        "{config}"
    );
    assert!(accepted.load(Ordering::SeqCst) > 0);
}

#[test]
fn the_shared_servers_are_started_once() {
    assert!(std::ptr::eq(ZkCluster::shared(), ZkCluster::shared()));
    let ensemble = ZkCluster::shared_ensemble();
    assert!(std::ptr::eq(ensemble, ZkCluster::shared_ensemble()));
    assert_eq!(ensemble.servers(), 3);
    assert!(ensemble.leader().is_some());
}

#[test]
fn impossible_options_are_refused() {
    group::assert_refused(ZkCluster::ensemble(0), "servers");
    group::assert_refused(
        ZkCluster::start(ZkOptions {
            min_session_timeout_ms: 10_000,
            max_session_timeout_ms: 5_000,
            ..ZkOptions::default()
        }),
        "min_session_timeout_ms",
    );
    group::assert_refused(
        ZkCluster::start(ZkOptions {
            snap_count: Some(1),
            ..ZkOptions::default()
        }),
        "snap_count",
    );
    group::assert_refused(
        CuratorLatch::start("127.0.0.1:1", "no-slash", "x", 2_000),
        "latch_path",
    );
}

#[test]
fn a_panicking_test_still_kills_its_server() {
    group::a_panicking_test_still_kills_its_server(ZkCluster::standalone);
}
