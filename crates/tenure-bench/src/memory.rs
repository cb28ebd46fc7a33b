//! The memory backend, in one process: the floor every other backend is
//! compared with.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use tenure::{DynBackend, ElectionFactory, Guard, MemoryCluster, Path};
use tokio::time::Instant;

use crate::plan::{in_process, Plan};
use crate::report::{Report, Row, Stat};
use crate::scenarios::rss_kib;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) async fn run(report: &mut Report, plan: &Plan) -> Result<(), String> {
    let cluster = MemoryCluster::new();
    let (a, b): (DynBackend, DynBackend) = (Arc::new(cluster.client()), Arc::new(cluster.client()));
    let name = Path::parse("election", "bench").map_err(|e| e.to_string())?;
    let elections = [
        ElectionFactory::new(a.clone())
            .new_election("bench")
            .map_err(|e| e.to_string())?,
        ElectionFactory::new(b.clone())
            .new_election("bench")
            .map_err(|e| e.to_string())?,
    ];
    let mut leader = elections[0].campaign().await.map_err(|e| e.to_string())?;
    let mut holder = 0;
    let mut samples = Vec::new();
    for _ in 0..plan.handovers * 2 {
        let next = elections[1 - holder].clone();
        let waiting = tokio::spawn(async move {
            let l = next.campaign().await;
            (Instant::now(), l)
        });
        while a.candidates(&name).await.map_err(|e| e.to_string())?.len() < 2 {
            tokio::task::yield_now().await;
        }
        let resigned = Instant::now();
        leader.resign().await.map_err(|e| e.to_string())?;
        let (granted, l) = waiting.await.map_err(|e| e.to_string())?;
        leader = l.map_err(|e| e.to_string())?;
        samples.push(ms(granted - resigned));
        holder = 1 - holder;
    }
    leader.resign().await.map_err(|e| e.to_string())?;
    report.add(
        Row::new(
            "handover",
            "tenure",
            "memory",
            "resign → next granted (one process)",
            "ms",
            samples,
        )
        .below(Stat::Median, 1.0),
    );
    report.unavailable(
        "crash",
        "tenure",
        "memory",
        "kill -9 → next granted",
        "in-process: a crash ends every client with the process",
    );
    report.unavailable(
        "paused",
        "tenure",
        "memory",
        "renew deadline",
        "in-process: nothing to stop; the conformance suite checks the same contract on a paused clock",
    );

    // Many elections on one client, measured on this process.
    for &n in plan.many {
        let backend: DynBackend = Arc::new(cluster.client());
        let factory = ElectionFactory::new(backend.clone());
        let elections: Vec<_> = (0..n)
            .map(|i| factory.new_election(&format!("many-e{i}")))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let before = rss_kib(std::process::id());
        let started = Instant::now();
        let held = join_all(elections.iter().map(|e| e.campaign()))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        // As the contender processes do: return what the campaigns freed.
        // SAFETY: malloc_trim only releases free memory.
        unsafe { libc::malloc_trim(0) };
        let per = (rss_kib(std::process::id()) - before).max(0.0) / n as f64;
        report.add(Row::new(
            "many",
            "tenure",
            "memory",
            &format!("{n} elections acquired"),
            "ms",
            vec![ms(took)],
        ));
        report.add(
            Row::new(
                "many",
                "tenure",
                "memory",
                &format!("RSS per election, {n} held"),
                "KiB",
                vec![per],
            )
            .below(Stat::Max, 4.0),
        );
        join_all(held.iter().map(|l| l.resign())).await;
        let _ = backend.close().await;
    }

    let prefix = Path::parse("key", "w").map_err(|e| e.to_string())?;
    let key = Path::parse("key", "w/k").map_err(|e| e.to_string())?;
    let mut events = b.watch(&prefix).await.map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..plan.watches {
        let written = Instant::now();
        a.put(&key, i.to_string().as_bytes(), Guard::ANY)
            .await
            .map_err(|e| e.to_string())?;
        events
            .next()
            .await
            .ok_or("watch ended")?
            .map_err(|e| e.to_string())?;
        samples.push(ms(written.elapsed()));
    }
    report.add(Row::new(
        "watch",
        "tenure",
        "memory",
        "put → event (one process)",
        "ms",
        samples,
    ));
    let _ = a.close().await;
    let _ = b.close().await;
    in_process(report, plan, "memory", "memory:bench-io").await
}
