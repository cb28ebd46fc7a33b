//! ZooKeeper, started by the test kit: graceful handover and crash failover
//! between processes, and many elections on one session.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tenure::{DynBackend, ElectionFactory, ZkBackend, ZkConfig};
use tenure_testkit::ZkCluster;
use tokio::time::Instant;

use crate::local::{nanos, queued, since, Proc};
use crate::report::{Report, Row, Stat};

/// The session timeout asked for in the crash scenario; the test kit's servers
/// grant 1–60 s as asked, but the negotiated value is what is subtracted.
const CRASH_SESSION_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn run(report: &mut Report, scale: usize) -> Result<(), String> {
    let zk = ZkCluster::standalone().map_err(|e| e.to_string())?;
    let version = zk.version().map_err(|e| e.to_string())?;
    report.add_server(format!(
        "ZooKeeper {version} (standalone, started by the test kit)"
    ));
    let connect = zk.connect_string();
    let servers: Vec<&str> = connect.split(',').collect();
    // Handovers with the default session timeout; crashes with a short one, so
    // the run stays short (a crashed holder's session has to expire).
    let url = format!("zk://{connect}/bench");
    let crash_url = format!("zk://{connect}/bench?session_timeout=2s");
    // The observer asks for the crash scenario's session timeout, so it learns
    // what the server grants the contenders.
    let observer = ZkBackend::connect(
        ZkConfig::new(&servers)
            .and_then(|c| c.with_chroot("bench"))
            .and_then(|c| c.with_session_timeout(CRASH_SESSION_TIMEOUT))
            .map_err(|e| e.to_string())?,
    )
    .await
    .map_err(|e| e.to_string())?;
    let negotiated = observer.negotiated_session_timeout();
    let observer: DynBackend = Arc::new(observer);

    // Graceful handover between two processes, alternating.
    let mut procs = [Proc::start(&url).await?, Proc::start(&url).await?];
    procs[0].send("campaign").await?;
    procs[0].expect("GRANT").await?;
    let mut holder = 0;
    let mut samples = Vec::new();
    for _ in 0..200 / scale {
        let other = 1 - holder;
        procs[other].send("campaign").await?;
        queued(&observer, 2).await?;
        procs[holder].send("resign").await?;
        let resigned = procs[holder].expect("RESIGNING").await?;
        let granted = procs[other].expect("GRANT").await?;
        samples.push(since(resigned, granted));
        holder = other;
    }
    report.add(Row {
        backend: "zookeeper",
        scenario: "graceful handover (resign → next process granted)",
        samples,
        target: Some((Stat::P99, Duration::from_millis(10))),
        note: "",
    });

    // Crash failover: the holder is killed; its session must expire (2 s).
    procs[holder].send("resign").await?;
    procs[holder].expect("RESIGNING").await?;
    drop(procs);
    let mut a = Proc::start(&crash_url).await?;
    a.send("campaign").await?;
    a.expect("GRANT").await?;
    let mut b = Proc::start(&crash_url).await?;
    let mut samples = Vec::new();
    for _ in 0..(10 / scale).max(3) {
        b.send("campaign").await?;
        queued(&observer, 2).await?;
        let killed = nanos();
        a.child.kill().await.map_err(|e| e.to_string())?;
        let granted = b.expect("GRANT").await?;
        samples.push(since(killed, granted));
        a = std::mem::replace(&mut b, Proc::start(&crash_url).await?);
    }
    report.add(Row {
        backend: "zookeeper",
        scenario: "crash failover, session timeout 2 s (kill -9 → next granted)",
        samples: samples.clone(),
        target: Some((
            Stat::P99,
            CRASH_SESSION_TIMEOUT + Duration::from_millis(150),
        )),
        note: "a killed holder's session must expire on the server: failover is bounded \
               below by the session timeout (less the time since the holder's last \
               heartbeat); the server expires sessions in buckets one tick wide (tickTime 200 ms \
               in the test kit), so failover can land up to a tick after the timeout; the \
               target is session timeout + 150 ms",
    });
    // The same samples less the negotiated session timeout: what failover
    // costs beyond the expiry. Durations cannot go below zero, so the signed
    // values are written out as a note too.
    let signed_ms: Vec<f64> = samples
        .iter()
        .map(|s| (s.as_secs_f64() - negotiated.as_secs_f64()) * 1000.0)
        .collect();
    report.add(Row {
        backend: "zookeeper",
        scenario: "crash failover minus the negotiated session timeout",
        samples: samples
            .iter()
            .map(|s| s.saturating_sub(negotiated))
            .collect(),
        target: Some((Stat::P99, Duration::from_millis(150))),
        note: "time from kill -9 to the next grant, less the session timeout the server \
               negotiated; clamped at 0 (see the signed values below)",
    });
    let mut sorted = signed_ms.clone();
    sorted.sort_by(f64::total_cmp);
    report.add_note(format!(
        "zookeeper / crash failover minus the negotiated session timeout \
         ({negotiated:?}), signed, in order measured: {} ms \
         (a negative value: the server expired the session less than a session \
         timeout after the kill, counting from the holder's last heartbeat)",
        signed_ms
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    println!(
        "zookeeper negotiated session timeout {negotiated:?}; failover − timeout: min {:.1} ms, max {:.1} ms",
        sorted.first().copied().unwrap_or_default(),
        sorted.last().copied().unwrap_or_default()
    );
    drop((a, b));

    // Many elections on one session.
    let counts: &[usize] = if scale > 1 {
        &[1_000]
    } else {
        &[1_000, 10_000]
    };
    for &n in counts {
        let config = ZkConfig::new(&servers)
            .and_then(|c| c.with_chroot(&format!("many{n}")))
            .map_err(|e| e.to_string())?;
        let backend: DynBackend = Arc::new(
            ZkBackend::connect(config)
                .await
                .map_err(|e| e.to_string())?,
        );
        let factory = ElectionFactory::new(backend.clone());
        let elections: Vec<_> = (0..n)
            .map(|i| factory.new_election(&format!("e{i}")))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let rss_before = rss_kib();
        let started = Instant::now();
        let held: Vec<_> = join_all(elections.iter().map(|e| e.campaign()))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        // Let the leadership monitors set their watches before measuring the
        // steady state.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let per_election = (rss_kib().saturating_sub(rss_before)) as f64 / n as f64;
        let traffic = received_per_second(&zk).await;
        println!(
            "zookeeper {n} elections on one session: acquired in {took:?}, {per_election:.1} KiB RSS each, \
             {traffic:.1} packets/s received by ZooKeeper while holding"
        );
        report.add_line(format!(
            "| zookeeper | {n} elections on one session | acquired in {:.0} ms | {per_election:.1} KiB RSS per election | {traffic:.1} packets/s received by ZooKeeper while holding |",
            took.as_secs_f64() * 1000.0
        ));
        for l in &held {
            let _ = l.resign().await;
        }
        drop(held);
        backend.close().await.map_err(|e| e.to_string())?;
    }
    observer.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// This process's resident set size, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Packets ZooKeeper received per second over a 5 s window (from `mntr`).
async fn received_per_second(zk: &ZkCluster) -> f64 {
    let first = packets_received(zk);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = packets_received(zk);
    (second - first) / 5.0
}

fn packets_received(zk: &ZkCluster) -> f64 {
    zk.four_letter(0, "mntr")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("zk_packets_received"))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}
