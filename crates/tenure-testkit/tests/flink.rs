//! The kit against real Apache Flink 2.3 JobManagers in ZooKeeper HA mode.
//!
//! What it shows: two JobManagers of one cluster share one election; Flink's
//! own leader retrieval (what its TaskManagers and clients run) names the
//! leader's REST endpoint; when the leader dies without a word (SIGKILL), its
//! ZooKeeper session expires after the session timeout, the standby takes
//! over under a new leader session id, and the retrieval names it. This is
//! the behaviour tenure's ZooKeeper backend must reproduce to stand in for
//! a Flink JobManager, and the reference it is checked against.

use std::path::Path;
use std::time::{Duration, Instant};

use tenure_testkit::{
    FlinkComponent, FlinkJobManager, FlinkOptions, FlinkRetrievalProbe, ZkCluster,
};

/// Longer than a JobManager takes to start or to take over on two cores;
/// both are awaited, not slept.
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn the_standby_jobmanager_takes_over_when_the_leader_is_killed() {
    let zk = ZkCluster::standalone().unwrap();
    let connect = zk.connect_string();
    let options = FlinkOptions {
        cluster_id: "failover".into(),
        ..FlinkOptions::default()
    };
    let probe = FlinkRetrievalProbe::start(&connect, &options, FlinkComponent::RestServer).unwrap();

    // Alone in the election, the first JobManager leads.
    let started = Instant::now();
    let a = FlinkJobManager::start(&connect, &options).unwrap();
    let joined = started.elapsed();
    let first = probe
        .wait_for_leader(WAIT, |leader| leader.address == a.rest_url())
        .unwrap();
    eprintln!(
        "JobManager a joined the election {joined:?} after its start, \
         was reported leading after {:?}: {first:?}",
        started.elapsed()
    );
    // The session the probe read is the one a was granted.
    assert_eq!(first.session, a.wait_leader(WAIT).unwrap());
    a.wait_serving(WAIT).unwrap();

    // The second queues behind it, and serves REST as a standby.
    let b = FlinkJobManager::start(&connect, &options).unwrap();
    b.wait_serving(WAIT).unwrap();
    assert_eq!(
        b.leader_session(),
        None,
        "a standby is never granted leadership"
    );
    assert_eq!(
        probe.notifications(),
        [Some(first.clone())],
        "nothing changed"
    );

    let killed = Instant::now();
    a.kill();
    assert!(!a.is_running());
    let second = probe
        .wait_for_leader(WAIT, |leader| leader.address == b.rest_url())
        .unwrap();
    let took_over = killed.elapsed();
    eprintln!(
        "b was reported leading {took_over:?} after a was killed, with {} ms sessions: \
         {second:?}; notifications: {:?}",
        options.session_timeout_ms,
        probe.notifications()
    );
    assert_ne!(
        second.session, first.session,
        "a new term, a new session id"
    );
    assert_eq!(second.session, b.wait_leader(WAIT).unwrap());
    // A killed leader cannot hand over: b waited for a's session to expire
    // (a session outlives its last heartbeat, at most a third of it old, by
    // its timeout).
    assert!(
        took_over >= Duration::from_millis(u64::from(options.session_timeout_ms) / 2),
        "b took over after {took_over:?}, before a's session could expire"
    );
    b.wait_serving(WAIT).unwrap();

    // Dropping them leaves no process and no directory behind.
    let pids = [a.pid(), b.pid(), probe.pid()];
    let dirs = [a.dir().to_owned(), b.dir().to_owned()];
    drop((a, b, probe));
    for pid in pids {
        assert!(
            !Path::new("/proc").join(pid.to_string()).exists(),
            "{pid} outlived its value"
        );
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} outlived its JobManager", dir.display());
    }
}
