//! What every server group does, whatever its kind — drop, kill, restart,
//! pause, resume, cleanup after a panic — tested once: each kind's test file
//! runs these against its own servers and adds its kind's own checks.

use std::fmt::Debug;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use tenure_testkit::{ServerGroup, ServerKind, TestkitError};

pub(crate) fn proc_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The scheduler state of a process as /proc shows it (`T` when stopped).
pub(crate) fn proc_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name.split_whitespace().next().unwrap().to_owned()
}

/// Asserts that `result` refuses the option `field`.
pub(crate) fn assert_refused<T: Debug>(result: Result<T, TestkitError>, field: &str) {
    let err = result.unwrap_err();
    assert!(
        matches!(err, TestkitError::InvalidOptions { field: refused, .. } if refused == field),
        "{err}"
    );
}

/// Drops `group`, whose member 0 runs, and checks that its process and the
/// group's directory went with it.
pub(crate) fn drop_leaves_nothing_behind<K: ServerKind>(group: ServerGroup<K>) {
    let pid = group.pid(0).unwrap();
    let dir = group.dir().to_owned();
    assert!(proc_exists(pid) && dir.join(&group.member(0).name).is_dir());
    drop(group);
    assert!(!proc_exists(pid), "{} {pid} outlived its group", K::NOUN);
    assert!(!dir.exists(), "{} outlived its group", dir.display());
}

/// Kills the leader of `group`, checks that the others elect another, runs
/// `after_failover` with the new leader, restarts the old one and waits until
/// the group is ready again. Returns the old and the new leader.
pub(crate) fn loses_its_leader_and_takes_it_back<K: ServerKind>(
    group: &ServerGroup<K>,
    after_failover: impl FnOnce(usize),
) -> (usize, usize) {
    let old = group.leader().expect("a ready group has a leader");

    group.kill(old);
    assert_eq!(group.pid(old), None);
    // Waits for the survivors to be ready, which needs a new leader.
    group.wait_ready().unwrap();
    let new = group
        .leader()
        .expect("wait_ready returns once there is a leader");
    assert_ne!(new, old);
    after_failover(new);

    group.restart(old).unwrap();
    assert!(group.pid(old).is_some());
    group.wait_ready().unwrap();
    (old, new)
}

/// Pauses the leader of `group`, checks that the others elect another while
/// it is frozen, runs `while_paused` with the paused member, resumes it and
/// waits until the group is ready again. Returns the paused member and the
/// leader elected meanwhile.
pub(crate) fn a_paused_leader_is_replaced<K: ServerKind>(
    group: &ServerGroup<K>,
    while_paused: impl FnOnce(usize),
) -> (usize, usize) {
    let paused = group.leader().expect("a ready group has a leader");
    let pid = group.pid(paused).unwrap();

    group.pause(paused);
    assert_eq!(proc_state(pid), "T");
    // The paused member is left out: this waits for the others to elect.
    group.wait_ready().unwrap();
    let leader = group.leader().expect("the others elect a leader");
    assert_ne!(leader, paused);
    while_paused(paused);

    group.resume(paused);
    assert_ne!(proc_state(pid), "T");
    assert_eq!(group.pid(paused), Some(pid), "pausing is not restarting");
    group.wait_ready().unwrap();
    (paused, leader)
}

/// Starts a group in a thread that then panics, and checks that its server
/// and directory are gone once the thread is.
pub(crate) fn a_panicking_test_still_kills_its_server<K: ServerKind + 'static>(
    start: fn() -> Result<ServerGroup<K>, TestkitError>,
) {
    let (sender, receiver) = mpsc::channel();
    let test = thread::spawn(move || {
        let group = start().unwrap();
        sender
            .send((group.pid(0).unwrap(), group.dir().to_owned()))
            .unwrap();
        panic!("a failing assertion (expected by this test)");
    });
    assert!(test.join().is_err());
    let (pid, dir) = receiver.recv().unwrap();
    assert!(
        !proc_exists(pid),
        "{} {pid} outlived a panicking test",
        K::NOUN
    );
    assert!(!dir.exists(), "{} outlived a panicking test", dir.display());
}

/// Forwards a fresh loopback port to `target` (one thread per direction of
/// each connection) and returns the port; counts the connections accepted.
pub(crate) fn forward(target: u16, accepted: Arc<AtomicUsize>) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            accepted.fetch_add(1, Ordering::SeqCst);
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut a, mut b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
            let (mut c, mut d) = (outbound, inbound);
            std::thread::spawn(move || std::io::copy(&mut a, &mut c));
            std::thread::spawn(move || std::io::copy(&mut b, &mut d));
        }
    });
    Ok(port)
}
