//! Retrieval fan-out: many followers of one election, on one shared client,
//! and how long a leader change takes to reach the last of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tenure::{DynBackend, Election, ElectionFactory, LeaderRecord, Path};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

/// The election the leaders take turns leading.
const ELECTION: &str = "bench-fanout";

/// The bound on every wait (a grant, a queue, all retrievers seeing a term).
const WAIT: Duration = Duration::from_secs(30);

/// `retrievers` followers of one election, all on the one client `follower`
/// (as the components of one process share its client), each with its own
/// stream from [`tenure::follow_election`]; `leaders[0]` and `leaders[1]` (two
/// other clients) take turns leading the election. For each of `changes`
/// changes the other leader campaigns, is seen queued, the holder resigns, and
/// the other is granted; returns, per change, the time from that grant (the
/// moment its `campaign()` returned, when its term is known) until the last
/// retriever observed the new term. A retriever that sees the new term before
/// the grant reaches its own holder counts as zero. The retrievers follow the
/// whole queue, so the other leader joining it just before each resign is an
/// event for every one of them too: part of the load of a real handover.
///
/// Why `follow_election` and not [`tenure::LeaderRetrieval`]: the scenario is
/// followers of an *election*, and `follow_election` is exactly that — the
/// backend's leader watch, made monotonic. `LeaderRetrieval` follows a
/// component's *published* leader information, which exists only once the new
/// leader has confirmed and made a fenced write of its address; measuring it
/// would add the contender's confirm and that write to every sample, and two
/// watches per retriever (the information key and the election), so it would
/// no longer measure the fan-out of one leader change.
///
/// Fails, naming what did not happen, when a grant, a queued candidate or the
/// last retriever's observation takes longer than 30 s. Both elections are
/// resigned and closed before this returns.
pub(crate) async fn fanout(
    leaders: [DynBackend; 2],
    follower: &DynBackend,
    retrievers: usize,
    changes: usize,
) -> Result<Vec<Duration>, String> {
    if retrievers == 0 {
        return Err("fan-out needs at least one retriever".to_owned());
    }
    let name = Path::parse("election", ELECTION).map_err(|e| e.to_string())?;
    let factory = |backend: &DynBackend| {
        ElectionFactory::new(backend.clone())
            .new_election(ELECTION)
            .map_err(|e| e.to_string())
    };
    let elections = [factory(&leaders[0])?, factory(&leaders[1])?];
    let measured = measure(&elections, &leaders, follower, &name, retrievers, changes).await;
    // Give leadership back whatever happened, so a later run is not queued
    // behind this one; close() also withdraws a campaign still waiting.
    let mut resigned = Ok(());
    for election in &elections {
        if let Err(e) = election.resign().await {
            resigned = resigned.and(Err(format!("resigning {ELECTION}: {e}")));
        }
        election.close().await;
    }
    let samples = measured?;
    resigned?;
    Ok(samples)
}

async fn measure(
    elections: &[Election; 2],
    leaders: &[DynBackend; 2],
    follower: &DynBackend,
    name: &Path,
    retrievers: usize,
    changes: usize,
) -> Result<Vec<Duration>, String> {
    let first = timeout(WAIT, elections[0].campaign())
        .await
        .map_err(|_| format!("the first leader of {ELECTION} was not granted within {WAIT:?}"))?
        .map_err(|e| format!("campaigning for {ELECTION}: {e}"))?;

    let (tally, mut complete) = Tally::new(retrievers);
    // Aborted on drop, which ends every stream (and its watch) with it.
    let mut followers = JoinSet::new();
    for _ in 0..retrievers {
        let stream = tenure::follow_election(follower.clone(), name.clone());
        followers.spawn(retrieve(stream, tally.clone()));
    }
    // Every stream's first item is the current leader: once all have seen the
    // first term, every watch is open.
    all_saw(
        &mut complete,
        &tally,
        first.term(),
        "the first leader",
        WAIT,
    )
    .await?;

    let mut holder = 0;
    let mut samples = Vec::with_capacity(changes);
    for change in 1..=changes {
        let next = 1 - holder;
        let campaign = tokio::spawn({
            let election = elections[next].clone();
            async move {
                let leadership = election.campaign().await;
                (Instant::now(), leadership)
            }
        });
        queued(&leaders[next], name, 2).await?;
        elections[holder]
            .resign()
            .await
            .map_err(|e| format!("change {change}: resigning: {e}"))?;
        let (granted_at, leadership) = timeout(WAIT, campaign)
            .await
            .map_err(|_| {
                format!("change {change}: the next leader was not granted within {WAIT:?}")
            })?
            .map_err(|e| format!("change {change}: the campaign panicked: {e}"))?;
        let leadership = leadership.map_err(|e| format!("change {change}: campaigning: {e}"))?;
        let seen_at = all_saw(
            &mut complete,
            &tally,
            leadership.term(),
            &format!("change {change}"),
            WAIT,
        )
        .await?;
        samples.push(seen_at.saturating_duration_since(granted_at));
        holder = next;
    }
    Ok(samples)
}

/// How many retrievers have observed each term, and when the last one did.
struct Tally {
    retrievers: usize,
    /// Term → (retrievers that observed it, the latest of their observations).
    seen: Mutex<HashMap<u64, (usize, Instant)>>,
    /// The first error any stream yielded, to name in a timeout.
    error: Mutex<Option<String>>,
    /// Each term once every retriever observed it, with the last observation.
    complete: mpsc::UnboundedSender<(u64, Instant)>,
}

impl Tally {
    fn new(retrievers: usize) -> (Arc<Self>, mpsc::UnboundedReceiver<(u64, Instant)>) {
        let (complete, rx) = mpsc::unbounded_channel();
        let tally = Tally {
            retrievers,
            seen: Mutex::new(HashMap::new()),
            error: Mutex::new(None),
            complete,
        };
        (Arc::new(tally), rx)
    }

    /// One retriever observed `term` (each counts a term at most once).
    fn saw(&self, term: u64) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (count, last) = seen.entry(term).or_insert((0, now));
        *count += 1;
        // Observations can reach the lock out of order: keep the latest.
        *last = (*last).max(now);
        if *count == self.retrievers {
            let last = *last;
            seen.remove(&term);
            let _ = self.complete.send((term, last));
        }
    }

    fn count(&self, term: u64) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&term).map_or(0, |(count, _)| *count)
    }

    fn failed(&self, error: String) {
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(error);
    }

    fn first_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One retriever: counts every new term its stream yields. Runs until aborted.
async fn retrieve(
    mut stream: BoxStream<'static, tenure::Result<Option<LeaderRecord>>>,
    tally: Arc<Tally>,
) {
    let mut highest = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Some(leader)) if leader.term > highest => {
                highest = leader.term;
                tally.saw(leader.term);
            }
            Ok(_) => {}
            Err(e) => tally.failed(e.to_string()),
        }
    }
}

/// Waits until every retriever observed `term` and returns when the last did.
async fn all_saw(
    complete: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    tally: &Tally,
    term: u64,
    what: &str,
    wait: Duration,
) -> Result<Instant, String> {
    let deadline = Instant::now() + wait;
    loop {
        match timeout_at(deadline, complete.recv()).await {
            Ok(Some((done, at))) if done == term => return Ok(at),
            // An earlier term completing late; a later one cannot exist yet.
            Ok(Some(_)) => {}
            Ok(None) => return Err("the retrievers' tally was dropped".to_owned()),
            Err(_) => {
                let error = tally
                    .first_error()
                    .map(|e| format!("; first stream error: {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "{what}: only {} of {} retrievers observed term {term} within {wait:?}{error}",
                    tally.count(term),
                    tally.retrievers,
                ));
            }
        }
    }
}

/// Waits until `observer` sees `n` candidates in `election`. The backend offers
/// no stream of the queue, so this asks again after each answer (a round trip
/// on a server; on memory a yield lets the campaign run).
async fn queued(observer: &DynBackend, election: &Path, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let candidates = observer
            .candidates(election)
            .await
            .map_err(|e| format!("listing the candidates of {election}: {e}"))?;
        if candidates.len() >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{election} never had {n} candidates within {WAIT:?}: {candidates:?}"
            ));
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tenure::{DynBackend, MemoryCluster, Path};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_change_reaches_every_retriever() {
        let cluster = MemoryCluster::new();
        let client = || Arc::new(cluster.client()) as DynBackend;
        let (a, b, follower) = (client(), client(), client());
        let samples = fanout([a, b], &follower, 200, 10).await.unwrap();
        assert_eq!(samples.len(), 10);
        assert!(
            samples.iter().all(|s| *s < Duration::from_secs(1)),
            "{samples:?}"
        );
        // Both elections gave leadership back.
        let name = Path::parse("election", ELECTION).unwrap();
        assert_eq!(follower.leader(&name).await.unwrap(), None);
        assert!(follower.candidates(&name).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_term_some_retriever_misses_is_reported() {
        let (tally, mut complete) = Tally::new(3);
        tally.saw(7);
        tally.saw(7);
        let wait = Duration::from_millis(20);
        let err = all_saw(&mut complete, &tally, 7, "change 1", wait)
            .await
            .unwrap_err();
        assert!(
            err.contains("only 2 of 3 retrievers observed term 7"),
            "{err}"
        );
        tally.saw(7);
        all_saw(&mut complete, &tally, 7, "change 1", wait)
            .await
            .unwrap();
    }
}
