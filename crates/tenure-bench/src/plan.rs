//! What a run does and how much of it: the plan, the servers' settings shared
//! by the scenarios, and the in-process write and fan-out measures.

use std::time::Duration;

use tenure::DynBackend;
use tenure_testkit::ZkOptions;

use crate::fanout::fanout;
use crate::report::{Report, Row, Stat};
use crate::writes::writes;

/// How much of everything to do.
pub(crate) struct Plan {
    pub(crate) handovers: usize,
    pub(crate) crashes: usize,
    /// Crash trials with the default TTL (10 s); 0 in quick runs.
    pub(crate) default_crashes: usize,
    pub(crate) pauses: usize,
    /// Election counts for "many elections" on single servers.
    pub(crate) many: &'static [usize],
    pub(crate) settle: Duration,
    pub(crate) window: Duration,
    pub(crate) write_ops: usize,
    pub(crate) retrievers: usize,
    pub(crate) changes: usize,
    pub(crate) watches: usize,
    /// Trials per backend and command kind of the frozen-supervisor scenario.
    pub(crate) watchdog: usize,
    /// Kills of a leading Flink JobManager.
    pub(crate) flink: usize,
}

impl Plan {
    pub(crate) fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                handovers: 30,
                crashes: 3,
                default_crashes: 0,
                pauses: 3,
                many: &[1_000],
                settle: Duration::from_secs(1),
                window: Duration::from_secs(2),
                write_ops: 400,
                retrievers: 1_000,
                changes: 5,
                watches: 100,
                watchdog: 5,
                flink: 2,
            }
        } else {
            Plan {
                handovers: 100,
                crashes: 10,
                default_crashes: 2,
                pauses: 10,
                many: &[1_000, 10_000],
                settle: Duration::from_secs(3),
                window: Duration::from_secs(5),
                write_ops: 2_000,
                retrievers: 1_000,
                changes: 20,
                watches: 400,
                watchdog: 20,
                flink: 5,
            }
        }
    }
}

/// Rounds of fenced and unfenced writes per backend and writer count.
const WRITE_ROUNDS: usize = 4;

/// The kit's servers with a 50 ms tick: ZooKeeper expires sessions in buckets
/// one tick wide, so the tick bounds how late after its timeout a session ends.
pub(crate) fn zk_options(servers: usize) -> ZkOptions {
    let defaults = ZkOptions::default();
    let scale = defaults.tick_time_ms / 50;
    ZkOptions {
        servers,
        tick_time_ms: 50,
        init_limit: defaults.init_limit * scale,
        sync_limit: defaults.sync_limit * scale,
        ..defaults
    }
}

/// Fenced against unfenced writes, and retrieval fan-out, from this process.
pub(crate) async fn in_process(
    report: &mut Report,
    plan: &Plan,
    backend: &str,
    url: &str,
) -> Result<(), String> {
    let connect = || async { tenure::connect(url).await.map_err(|e| e.to_string()) };
    let client: DynBackend = connect().await?;
    // A throwaway pass first, so that what the backend keeps per write (the
    // local backend's change log) is at its steady size for both passes
    // measured: otherwise whichever pass runs first looks faster.
    writes(&client, 1, false, 300, 256).await?;
    for writers in [1, 16] {
        // Rounds of one unfenced and one fenced pass, in turns of order, and
        // the ratio of each round: one pass each swings with whatever else
        // the machine (a server's fsync) does at that moment.
        let (mut unfenced, mut fenced) = (Vec::new(), Vec::new());
        for round in 0..WRITE_ROUNDS {
            let ops = (plan.write_ops / 2).max(1);
            let (u, f) = if round % 2 == 0 {
                let u = writes(&client, writers, false, ops, 256).await?;
                (u, writes(&client, writers, true, ops, 256).await?)
            } else {
                let f = writes(&client, writers, true, ops, 256).await?;
                (writes(&client, writers, false, ops, 256).await?, f)
            };
            unfenced.push(u);
            fenced.push(f);
        }
        let lat = |passes: &[crate::writes::Throughput]| {
            passes
                .iter()
                .flat_map(|t| &t.latencies)
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect()
        };
        let rate = |passes: &[crate::writes::Throughput]| {
            passes.iter().map(|t| t.ops_per_sec).collect::<Vec<_>>()
        };
        let row = |what: String, unit: &str, samples: Vec<f64>| {
            Row::new("writes", "tenure", backend, &what, unit, samples)
        };
        report.add(row(
            format!("unfenced put, {writers} writer(s), 256 B"),
            "ms",
            lat(&unfenced),
        ));
        report.add(row(
            format!("fenced put, {writers} writer(s), 256 B"),
            "ms",
            lat(&fenced),
        ));
        report.add(row(
            format!("unfenced throughput, {writers} writer(s)"),
            "ops/s",
            rate(&unfenced),
        ));
        report.add(row(
            format!("fenced throughput, {writers} writer(s)"),
            "ops/s",
            rate(&fenced),
        ));
        let ratios = rate(&fenced)
            .iter()
            .zip(rate(&unfenced))
            .map(|(f, u)| f / u)
            .collect();
        report.add(
            row(
                format!("fenced / unfenced throughput, {writers} writer(s)"),
                "×",
                ratios,
            )
            .note("one sample per round of an unfenced and a fenced pass, in turns of order")
            .at_least(Stat::Median, 0.8),
        );
    }
    let leaders = [connect().await?, connect().await?];
    let samples = fanout(leaders.clone(), &client, plan.retrievers, plan.changes).await?;
    report.add(
        Row::new(
            "fanout",
            "tenure",
            backend,
            &format!(
                "grant → all {} retrievers saw the new leader",
                plan.retrievers
            ),
            "ms",
            samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect(),
        )
        .below(Stat::P99, 50.0),
    );
    for b in leaders.iter().chain([&client]) {
        let _ = b.close().await;
    }
    Ok(())
}

pub(crate) fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().next().map(|l| {
                l.replace("Version:", "")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .unwrap_or_else(|| "etcd (version unknown)".into())
}
