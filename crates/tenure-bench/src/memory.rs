//! The memory backend, in one process: the floor every other backend is
//! compared with.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure::{Condition, DynBackend, ElectionFactory, MemoryCluster, Path};
use tokio::time::Instant;

use crate::report::{Report, Row, Stat};

pub(crate) async fn run(report: &mut Report, scale: usize) -> Result<(), String> {
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
    for _ in 0..400 / scale {
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
        samples.push(granted - resigned);
        holder = 1 - holder;
    }
    report.add(Row {
        backend: "memory",
        scenario: "graceful handover (resign → next granted)",
        samples,
        target: Some((Stat::Median, Duration::from_millis(1))),
        note: "",
    });

    let prefix = Path::parse("key", "w").map_err(|e| e.to_string())?;
    let key = Path::parse("key", "w/k").map_err(|e| e.to_string())?;
    let mut events = b.watch(&prefix).await.map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..1000 / scale {
        let written = Instant::now();
        a.put(&key, i.to_string().as_bytes(), Condition::Any, None)
            .await
            .map_err(|e| e.to_string())?;
        events
            .next()
            .await
            .ok_or("watch ended")?
            .map_err(|e| e.to_string())?;
        samples.push(written.elapsed());
    }
    report.add(Row {
        backend: "memory",
        scenario: "change visible to a watcher (put → event)",
        samples,
        target: None,
        note: "",
    });
    Ok(())
}
