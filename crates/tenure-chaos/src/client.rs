//! A client process of the campaign: campaigns in every election over and
//! over, and while it leads makes fenced compare-and-set writes to the
//! election's register; or, as a retriever, follows the elections' leaders.
//! Everything it does goes to its history file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure::{Condition, DynBackend, ElectionFactory, Error, Guard, Path};

use crate::history::{Event, Recorder, Stored};
use crate::record::{outcome_of, record_grant, OP_TIMEOUT};
use crate::rng::Rng;

/// What a client process is told on its command line.
#[derive(Clone, Debug)]
pub(crate) struct ClientArgs {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) history: PathBuf,
    pub(crate) elections: usize,
    pub(crate) seed: u64,
    /// Write unfenced and ignore the loss signal: the broken mode that shows
    /// the checker can fail.
    pub(crate) unsafe_skip_fence: bool,
    /// Follow the leaders instead of campaigning.
    pub(crate) retriever: bool,
    /// Tells this life of the client from its others: the process id, or a
    /// counter for in-process clients.
    pub(crate) life: u32,
}

/// The election names of a campaign.
pub(crate) fn election_names(elections: usize) -> Vec<String> {
    (0..elections).map(|i| format!("e{i}")).collect()
}

/// The register of `election`.
pub(crate) fn register(election: &str) -> Path {
    Path::parse("register", &format!("chaos/register/{election}")).expect("a valid path")
}

/// Elections live under `chaos/`.
pub(crate) fn factory(backend: DynBackend) -> ElectionFactory {
    ElectionFactory::new(backend).with_prefix(Path::parse("prefix", "chaos").expect("valid"))
}

/// Connects to `url`, retrying while the servers are unreachable (a client
/// may start in the middle of a fault).
pub(crate) async fn connect(url: &str) -> DynBackend {
    loop {
        match tokio::time::timeout(OP_TIMEOUT, tenure::connect(url)).await {
            Ok(Ok(backend)) => return backend,
            Ok(Err(e)) if matches!(e, Error::InvalidInput { .. }) => {
                panic!("cannot connect to {url}: {e}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Runs the client until it is killed.
pub(crate) async fn run(args: ClientArgs) -> Result<(), String> {
    let backend = connect(&args.url).await;
    run_on(args, backend).await
}

/// Runs the client on `backend` until it is killed (or, in process, aborted).
pub(crate) async fn run_on(args: ClientArgs, backend: DynBackend) -> Result<(), String> {
    let recorder = Recorder::open(&args.history, &args.name)
        .map_err(|e| format!("cannot open {}: {e}", args.history.display()))?;
    let pid = args.life;
    recorder.record(Event::Start {
        life: args.life,
        pid: std::process::id(),
    });
    let factory = factory(backend.clone());
    let ops = Arc::new(AtomicU64::new(0));
    // Owned here: dropping this future (an in-process client stopped) stops them.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, election) in election_names(args.elections).into_iter().enumerate() {
        let (args, recorder, factory, backend, ops) = (
            args.clone(),
            recorder.clone(),
            factory.clone(),
            backend.clone(),
            ops.clone(),
        );
        let rng = Rng::new(args.seed ^ (i as u64).wrapping_mul(0x1000_0000_01b3) ^ u64::from(pid));
        tasks.spawn(async move {
            if args.retriever {
                follow(&factory, &election, &recorder).await;
            } else {
                lead(&args, &factory, &backend, &election, &recorder, &ops, rng).await;
            }
        });
    }
    // And the dispatcher of the HA services.
    {
        let (args, recorder, backend, ops) =
            (args.clone(), recorder.clone(), backend.clone(), ops.clone());
        let rng = Rng::new(args.seed ^ 0x4841 ^ u64::from(pid));
        tasks.spawn(async move {
            if args.retriever {
                crate::ha_work::follow(backend, &recorder).await;
            } else {
                let name = format!("{}/{}", args.name, args.life);
                crate::ha_work::lead(&name, backend, &recorder, &ops, rng).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Reports every leader of `election` the retrieval shows.
async fn follow(factory: &ElectionFactory, election: &str, recorder: &Recorder) {
    let name = factory
        .new_election(election)
        .expect("a valid election")
        .name()
        .clone();
    let mut leaders = tenure::follow_election(factory.backend().clone(), name);
    while let Some(leader) = leaders.next().await {
        if let Ok(leader) = leader {
            recorder.record(Event::Seen {
                election: election.to_owned(),
                term: leader.map(|l| l.term),
            });
        }
    }
}

/// Campaigns, writes a few times while leading, resigns; again and again.
async fn lead(
    args: &ClientArgs,
    factory: &ElectionFactory,
    backend: &DynBackend,
    election: &str,
    recorder: &Recorder,
    ops: &AtomicU64,
    mut rng: Rng,
) {
    let contest = factory.new_election(election).expect("a valid election");
    let key = register(election);
    loop {
        let leadership = match contest.campaign().await {
            Ok(leadership) => leadership,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let term = leadership.term();
        let watcher = record_grant(recorder, election, &leadership);
        for _ in 0..rng.range(3, 20) {
            if !args.unsafe_skip_fence && !leadership.is_held() {
                break;
            }
            let read = match tokio::time::timeout(OP_TIMEOUT, backend.get(&key)).await {
                Ok(Ok(read)) => read,
                _ => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (read, condition) = match read {
                None => (None, Condition::Absent),
                Some(versioned) => match serde_json::from_slice::<Stored>(&versioned.value) {
                    Ok(stored) => (Some(stored), Condition::Version(versioned.version)),
                    Err(e) => panic!("the register of {election} holds a corrupted value: {e}"),
                },
            };
            let op = ops.fetch_add(1, Ordering::SeqCst) + 1;
            let write = Stored {
                id: format!("{}/{}/{op}", args.name, args.life),
                term,
                prev: read.as_ref().map(|r| r.id.clone()),
                n: read.as_ref().map_or(1, |r| r.n + 1),
            };
            let value = serde_json::to_vec(&write).expect("serializes");
            recorder.record(Event::Invoke {
                op,
                election: election.to_owned(),
                read,
                write,
            });
            let written = if args.unsafe_skip_fence {
                tokio::time::timeout(
                    OP_TIMEOUT,
                    backend.put(&key, &value, Guard::when(condition)),
                )
                .await
            } else {
                tokio::time::timeout(OP_TIMEOUT, leadership.put_if(&key, &value, condition)).await
            };
            let (outcome, detail) = outcome_of(written);
            recorder.record(Event::End {
                op,
                outcome,
                detail,
                value: None,
            });
            tokio::time::sleep(Duration::from_millis(rng.range(5, 40))).await;
        }
        if leadership.is_held() {
            let _ = tokio::time::timeout(OP_TIMEOUT, leadership.resign()).await;
        }
        // The loss is recorded when its signal fires; wait for it, so the next
        // grant comes after it in this process's history.
        let _ = tokio::time::timeout(OP_TIMEOUT, watcher).await;
        tokio::time::sleep(Duration::from_millis(rng.range(0, 200))).await;
    }
}
