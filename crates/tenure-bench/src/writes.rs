//! Fenced writes: what the fence costs. The same writes, of the same size, on
//! the same backend, once fenced by a leadership (atomically conditional, at
//! the backend, on that leadership still being current) and once
//! unconditional.

use std::sync::Arc;
use std::time::Duration;

use tenure::{DynBackend, Election, ElectionFactory, Guard, Leadership, Path};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

/// The election whose leadership fences the writes.
const ELECTION: &str = "bench-writes";

/// Writes each writer makes before the clock starts: connections, caches and
/// the server's first-write paths are warm when timing begins.
const WARMUP_PER_WRITER: usize = 10;

/// The bound on every single wait (the campaign, one write, the start).
const WAIT: Duration = Duration::from_secs(30);

/// Latency slots reserved up front; more grow as needed.
const MAX_PREALLOCATED: usize = 1 << 16;

/// What one run of [`writes`] measured.
#[derive(Debug)]
pub(crate) struct Throughput {
    /// Writes completed per second, all writers together, from the common start
    /// until the last writer finished.
    pub(crate) ops_per_sec: f64,
    /// The latency of every timed write (warm-up excluded), writer by writer.
    pub(crate) latencies: Vec<Duration>,
}

/// `writers` concurrent tasks on `backend` write `value_size`-byte values to
/// distinct keys (writer `i` to `bench-writes/w<i>`), `ops` timed writes in
/// total, split evenly.
///
/// Fenced: one leadership of election `bench-writes` is acquired on `backend`
/// first and every write is [`Leadership::put`] — conditional, at the backend,
/// on that leadership still being current. Unfenced: every write is
/// `backend.put(key, value, Guard::ANY)`. Each writer first makes
/// [`WARMUP_PER_WRITER`] untimed writes of the same kind; then all start
/// together.
///
/// The leadership is resigned (and its election closed) before this returns,
/// whatever the outcome. Fails on the first write that fails (a fenced write
/// after the leadership is lost, say), naming the key, or when any wait takes
/// longer than 30 s.
pub(crate) async fn writes(
    backend: &DynBackend,
    writers: usize,
    fenced: bool,
    ops: usize,
    value_size: usize,
) -> Result<Throughput, String> {
    if writers == 0 || ops == 0 {
        return Err(format!(
            "writes needs at least one writer and one write, got {writers} writers and {ops} writes"
        ));
    }
    if !fenced {
        return measure(&Target::Unfenced(backend.clone()), writers, ops, value_size).await;
    }
    let election = ElectionFactory::new(backend.clone())
        .new_election(ELECTION)
        .map_err(|e| e.to_string())?;
    let measured = lead_and_measure(&election, writers, ops, value_size).await;
    // Resign even when measuring failed, so the next run is not queued behind
    // a leftover candidate; close() then stops the leadership's monitor.
    let resigned = election.resign().await;
    election.close().await;
    let throughput = measured?;
    resigned.map_err(|e| format!("resigning election {ELECTION}: {e}"))?;
    Ok(throughput)
}

async fn lead_and_measure(
    election: &Election,
    writers: usize,
    ops: usize,
    value_size: usize,
) -> Result<Throughput, String> {
    let leadership = timeout(WAIT, election.campaign())
        .await
        .map_err(|_| format!("election {ELECTION} was not granted within {WAIT:?}"))?
        .map_err(|e| format!("campaigning for {ELECTION}: {e}"))?;
    measure(&Target::Fenced(leadership), writers, ops, value_size).await
}

/// How a write is made.
#[derive(Clone)]
enum Target {
    Fenced(Leadership),
    Unfenced(DynBackend),
}

impl Target {
    async fn write(&self, key: &Path, value: &[u8]) -> Result<(), String> {
        let written = match self {
            Target::Fenced(leadership) => timeout(WAIT, leadership.put(key, value)).await,
            Target::Unfenced(backend) => timeout(WAIT, backend.put(key, value, Guard::ANY)).await,
        };
        match written {
            Ok(Ok(_version)) => Ok(()),
            Ok(Err(e)) => Err(format!("writing {key}: {e}")),
            Err(_) => Err(format!("writing {key} took longer than {WAIT:?}")),
        }
    }
}

async fn measure(
    target: &Target,
    writers: usize,
    ops: usize,
    value_size: usize,
) -> Result<Throughput, String> {
    let value: Arc<[u8]> = vec![b'x'; value_size].into();
    let start = Arc::new(Barrier::new(writers + 1));
    let mut tasks = JoinSet::new();
    for i in 0..writers {
        let key = Path::parse("key", &format!("{ELECTION}/w{i}")).map_err(|e| e.to_string())?;
        let share = ops / writers + usize::from(i < ops % writers);
        tasks.spawn(writer(
            target.clone(),
            key,
            value.clone(),
            share,
            start.clone(),
        ));
    }
    // Every writer reaches the barrier, even after a failed warm-up, so this
    // wait ends; the timeout covers a writer that panicked before it.
    timeout(WAIT, start.wait())
        .await
        .map_err(|_| format!("the {writers} writers did not finish warming up within {WAIT:?}"))?;
    let began = Instant::now();
    let mut latencies = Vec::with_capacity(ops.min(MAX_PREALLOCATED));
    while let Some(joined) = tasks.join_next().await {
        // Dropping `tasks` on an error aborts the other writers.
        latencies.extend(joined.map_err(|e| format!("a writer panicked: {e}"))??);
    }
    let elapsed = began.elapsed();
    Ok(Throughput {
        ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        latencies,
    })
}

/// One writer: warms up, waits for the common start, then makes `ops` timed
/// writes of `value` to `key`, one after the other.
async fn writer(
    target: Target,
    key: Path,
    value: Arc<[u8]>,
    ops: usize,
    start: Arc<Barrier>,
) -> Result<Vec<Duration>, String> {
    let mut warmed = Ok(());
    for _ in 0..WARMUP_PER_WRITER {
        warmed = target.write(&key, &value).await;
        if warmed.is_err() {
            break;
        }
    }
    start.wait().await;
    warmed?;
    let mut latencies = Vec::with_capacity(ops.min(MAX_PREALLOCATED));
    for _ in 0..ops {
        let began = Instant::now();
        target.write(&key, &value).await?;
        latencies.push(began.elapsed());
        // A write that completes without waiting (memory) never yields: spend
        // tokio's cooperative budget, so the writers take turns with the other
        // tasks and the timers every 128 writes instead of starving them.
        tokio::task::consume_budget().await;
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::StreamExt;
    use tenure::{DynBackend, MemoryCluster, Path};
    use tokio::time::timeout;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_write_is_timed_and_the_leadership_is_resigned() {
        let cluster = MemoryCluster::new();
        let backend: DynBackend = Arc::new(cluster.client());
        let election = Path::parse("election", ELECTION).unwrap();
        for (writers, fenced) in [(1, true), (16, true), (1, false), (16, false)] {
            let t = writes(&backend, writers, fenced, 100, 64).await.unwrap();
            assert_eq!(t.latencies.len(), 100, "{writers} writers, fenced {fenced}");
            assert!(t.ops_per_sec > 0.0, "{}", t.ops_per_sec);
            for i in 0..writers {
                let key = Path::parse("key", &format!("{ELECTION}/w{i}")).unwrap();
                let stored = backend.get(&key).await.unwrap().expect("written");
                assert_eq!(stored.value, vec![b'x'; 64]);
            }
            assert_eq!(backend.leader(&election).await.unwrap(), None);
            assert!(backend.candidates(&election).await.unwrap().is_empty());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fenced_writes_fail_once_the_leadership_is_lost() {
        let cluster = MemoryCluster::new();
        let client = Arc::new(cluster.client());
        let backend: DynBackend = client.clone();
        let prefix = Path::parse("key", ELECTION).unwrap();
        let mut written = backend.watch(&prefix).await.unwrap();
        // Far more writes than fit in the test: the run can only end by failing.
        let run = tokio::spawn({
            let backend = backend.clone();
            async move { writes(&backend, 4, true, usize::MAX, 16).await }
        });
        timeout(Duration::from_secs(5), written.next())
            .await
            .expect("a first fenced write")
            .unwrap()
            .unwrap();
        client.expire_session();
        let err = timeout(Duration::from_secs(5), run)
            .await
            .expect("writes to stop once the leadership is lost")
            .unwrap()
            .unwrap_err();
        assert!(
            err.contains("fenced") || err.contains("leadership lost"),
            "{err}"
        );
        let election = Path::parse("election", ELECTION).unwrap();
        assert_eq!(backend.leader(&election).await.unwrap(), None);
    }
}
