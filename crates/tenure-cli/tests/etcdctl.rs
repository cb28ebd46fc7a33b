//! `tenure campaign --backend etcd://HOST/peers --election sched` and
//! `etcdctl elect peers/sched` are one election: the URL's path is the key
//! prefix as written, without a leading slash, as `--help` says. Run with the
//! exact spelling a user would type, against a real etcd and etcdctl.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::tenure;
use tenure_testkit::EtcdCluster;

#[test]
fn tenure_campaign_and_etcdctl_elect_share_an_election() {
    let etcd = EtcdCluster::shared();
    let url = format!("etcd://{}/peers", etcd.endpoints().join(","));
    let mut campaign = tenure()
        .args([
            "campaign",
            "--backend",
            &url,
            "--election",
            "sched",
            "--id",
            "t",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the tenure binary runs");
    let mut term = String::new();
    BufReader::new(campaign.stdout.take().unwrap())
        .read_line(&mut term)
        .unwrap();
    assert!(term.trim().parse::<u64>().is_ok(), "{term:?}");

    // etcdctl queues behind tenure: it prints only once elected.
    let mut ctl = etcd
        .etcdctl()
        .args(["elect", "peers/sched", "from-etcdctl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("etcdctl runs");
    let (tx, rx) = mpsc::channel();
    let out = ctl.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    // Both are candidates of peers/sched: two keys under it.
    support::await_until("etcdctl's candidate under peers/sched", || {
        let out = etcd
            .etcdctl()
            .args(["get", "--prefix", "--keys-only", "peers/sched/"])
            .output()
            .ok()?;
        let keys = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .count();
        (keys == 2).then_some(())
    });
    assert!(
        rx.try_recv().is_err(),
        "etcdctl was elected while tenure led"
    );

    // tenure resigns (its stdin closes): etcdctl is elected in its place.
    let mut stdin = campaign.stdin.take().unwrap();
    let _ = stdin.flush();
    drop(stdin);
    assert_eq!(campaign.wait().unwrap().code(), Some(0));
    let key = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("etcdctl elected after tenure resigned");
    assert!(key.starts_with("peers/sched/"), "{key}");
    let _ = ctl.kill();
    let _ = ctl.wait();
}
