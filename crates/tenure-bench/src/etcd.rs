//! etcd, started by the test kit: graceful handover and crash failover between
//! processes, and many elections on one lease.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tenure::{DynBackend, ElectionFactory, EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;
use tokio::time::Instant;

use crate::local::{nanos, queued, since, Proc};
use crate::report::{Report, Row, Stat};

const CRASH_TTL: Duration = Duration::from_secs(2);

pub(crate) async fn run(report: &mut Report, scale: usize) -> Result<(), String> {
    let etcd = EtcdCluster::single().map_err(|e| e.to_string())?;
    let endpoints = etcd.endpoints().join(",");
    // Handovers with the default TTL; crashes with a short one, so the run stays
    // short (a crashed holder's lease has to run out).
    let url = format!("etcd://{endpoints}/bench");
    let crash_url = format!("etcd://{endpoints}/bench?ttl=2s");
    let observer: DynBackend = tenure::connect(&url).await.map_err(|e| e.to_string())?;

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
        backend: "etcd",
        scenario: "graceful handover (resign → next process granted)",
        samples,
        target: Some((Stat::P99, Duration::from_millis(10))),
        note: "",
    });

    // Crash failover: the holder is killed; its lease must run out (TTL 2 s).
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
        backend: "etcd",
        scenario: "crash failover, TTL 2 s (kill -9 → next granted)",
        samples: samples.clone(),
        target: Some((Stat::P99, CRASH_TTL + Duration::from_millis(150))),
        note: "a killed holder's lease must expire on the server: failover is bounded \
               below by the TTL; the target is TTL + 150 ms",
    });
    drop((a, b));

    // Many elections on one lease.
    for n in [1_000usize, 10_000 / scale] {
        let config = EtcdConfig::new(&etcd.endpoints())
            .and_then(|c| c.with_prefix(&format!("many{n}")))
            .map_err(|e| e.to_string())?;
        let backend: DynBackend = Arc::new(
            EtcdBackend::connect(config)
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
        // Let the leadership monitors open their watches before measuring the
        // steady state.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let per_election = (rss_kib().saturating_sub(rss_before)) as f64 / n as f64;
        let traffic = received_per_second(&etcd).await;
        println!(
            "etcd     {n} elections on one lease: acquired in {took:?}, {per_election:.1} KiB RSS each, \
             {traffic:.1} gRPC messages/s received by etcd while holding"
        );
        report.add_line(format!(
            "| etcd | {n} elections on one lease | acquired in {:.0} ms | {per_election:.1} KiB RSS per election | {traffic:.1} gRPC messages/s received by etcd while holding |",
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

/// gRPC messages etcd received per second over a 5 s window (from /metrics).
async fn received_per_second(etcd: &EtcdCluster) -> f64 {
    let url = format!("http://{}/metrics", etcd.endpoints()[0]);
    let first = metric(&url).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = metric(&url).await;
    (second - first) / 5.0
}

async fn metric(url: &str) -> f64 {
    let body = tokio::task::spawn_blocking({
        let url = url.to_owned();
        move || http_get(&url)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("grpc_server_msg_received_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn http_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}
