//! `tenure observe` follows a real Apache Flink 2.3 JobManager's REST leader
//! through ZooKeeper, as the README's "Run beside Apache Flink" shows: a
//! `zk://` URL whose chroot is Flink's `high-availability.zookeeper.path.root`,
//! with `layout=flink`, and Flink's cluster id and component name.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use support::tenure;
use tenure_testkit::{FlinkJobManager, FlinkOptions, ZkCluster};

#[test]
fn observe_prints_a_real_flink_jobmanagers_rest_leader() {
    let zk = ZkCluster::standalone().unwrap();
    let options = FlinkOptions {
        cluster_id: "observed".into(),
        path_root: "/flink".into(),
        ..FlinkOptions::default()
    };
    let jm = FlinkJobManager::start(&zk.connect_string(), &options).unwrap();
    let session = jm.wait_leader(Duration::from_secs(90)).unwrap();
    let url = format!("zk://{}/flink?layout=flink", zk.connect_string());
    let mut observe = tenure()
        .args(["observe", "--backend", &url, "--cluster", "observed"])
        .args(["--component", "rest_server", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the tenure binary runs");
    // Bounded: if no leader is ever printed, observe is killed, its stdout
    // ends and the test fails instead of hanging.
    let pid = observe.id() as i32;
    let (done, timer) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if timer.recv_timeout(Duration::from_secs(120)).is_err() {
            // SAFETY: kill(2) on a child this test started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut lines = BufReader::new(observe.stdout.take().unwrap()).lines();
    // The first line may be "nobody leads" if observe started before the
    // record was read; the leader follows.
    let leader = loop {
        let line = lines.next().expect("observe prints until killed").unwrap();
        let view: serde_json::Value = serde_json::from_str(&line).unwrap();
        if !view["address"].is_null() {
            break view;
        }
    };
    let _ = done.send(());
    let _ = observe.kill();
    let _ = observe.wait();
    assert_eq!(leader["address"], jm.rest_url().as_str(), "{leader}");
    assert!(leader["term"].as_u64().unwrap() > 0, "{leader}");
    assert!(
        leader.to_string().contains(&session),
        "the leader session id is shown: {leader}"
    );

    // `tenure status --cluster` lists Flink's components with their leader.
    let out = support::output(&[
        "status",
        "--backend",
        &url,
        "--cluster",
        "observed",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rest = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "observed/rest_server")
        .unwrap_or_else(|| panic!("no rest_server row: {rows}"));
    assert_eq!(rest["address"], jm.rest_url().as_str(), "{rest}");
    assert_eq!(rest["leader"], session.as_str(), "{rest}");
    assert_eq!(rest["candidates"], 1, "{rest}");
}
