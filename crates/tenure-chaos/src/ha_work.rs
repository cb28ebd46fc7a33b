//! The HA part of a client's work, through tenure's HA services: campaign for
//! the dispatcher (Flink's model: grant, confirm, publish the address), and
//! while leading take checkpoint ids from the counter and add checkpoints to
//! the store, fenced; then close and campaign again. Retrievers follow the
//! dispatcher's published leader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure::ha::{fence_of, CompletedCheckpoint, HaServices, JobId, JobResultEntry};
use tenure::{DynBackend, Error, LeaderContender};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::history::{Event, Recorder};
use crate::record::{outcome_of, record_grant, OP_TIMEOUT};
use crate::rng::Rng;

/// The election's name in the history.
pub(crate) const HA: &str = "ha";
/// The cluster id of the HA services.
pub(crate) const CLUSTER: &str = "chaos-ha";
/// How many checkpoints the store keeps.
pub(crate) const RETAINED: usize = 3;

/// The job whose checkpoints the leaders write.
pub(crate) fn job() -> JobId {
    JobId::new("chaos-job").expect("a valid job id")
}

/// The HA services of the campaign on `backend`.
pub(crate) fn services(backend: DynBackend) -> HaServices {
    HaServices::builder(backend, CLUSTER)
        .with_retained_checkpoints(RETAINED)
        .build()
        .expect("a valid HA configuration")
}

struct Grants(mpsc::UnboundedSender<Uuid>);

impl LeaderContender for Grants {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.0.send(session_id);
    }
    fn revoke_leadership(&self) {}
    fn handle_error(&self, _: &Error) {}
}

/// Leads the dispatcher again and again, writing checkpoints while it leads.
pub(crate) async fn lead(
    name: &str,
    backend: DynBackend,
    recorder: &Recorder,
    ops: &AtomicU64,
    mut rng: Rng,
) {
    let services = services(backend);
    let counter = services.checkpoint_id_counter(&job());
    let store = services.checkpoint_store(&job());
    let results = services.job_result_store();
    let address = name.to_owned();
    loop {
        let Ok(dispatcher) = services.dispatcher_leader_election() else {
            return;
        };
        let (tx, mut grants) = mpsc::unbounded_channel();
        if dispatcher.start(Arc::new(Grants(tx))).is_err() {
            return;
        }
        let Some(session) = grants.recv().await else {
            return;
        };
        let fence = match tokio::time::timeout(OP_TIMEOUT, fence_of(&dispatcher, session)).await {
            Ok(Ok(fence)) => fence,
            _ => {
                dispatcher.close().await;
                continue;
            }
        };
        let term = fence.term();
        let watcher = record_grant(recorder, HA, &fence);
        let _ = tokio::time::timeout(OP_TIMEOUT, dispatcher.confirm_leadership(session, &address))
            .await;
        for _ in 0..rng.range(2, 8) {
            if !fence.is_held() {
                break;
            }
            let log = Log {
                recorder,
                ops,
                term,
            };
            let taken = log
                .op("counter", None, async {
                    counter.get_and_increment(&fence).await.map(Some)
                })
                .await;
            let Some(id) = taken else {
                continue;
            };
            let checkpoint = CompletedCheckpoint {
                checkpoint_id: id,
                data: format!("checkpoint {id} by {address}").into_bytes(),
            };
            log.op("checkpoint", Some(id), async {
                store.add(&fence, &checkpoint).await.map(|()| None)
            })
            .await;
            // A finished job's result, recorded dirty, then marked clean.
            let job = result_job(id);
            let entry = JobResultEntry {
                job_id: job.clone(),
                data: format!("result of {id}").into_bytes(),
            };
            let created = log
                .ok("result", Some(id), results.create_dirty(&fence, &entry))
                .await;
            if created {
                log.ok("clean", Some(id), results.mark_clean(&fence, &job))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(rng.range(5, 40))).await;
        }
        // Hand over: closing the election gives leadership up.
        dispatcher.close().await;
        let _ = tokio::time::timeout(OP_TIMEOUT, watcher).await;
        tokio::time::sleep(Duration::from_millis(rng.range(0, 200))).await;
    }
}

/// Records the HA operations of one leadership.
struct Log<'a> {
    recorder: &'a Recorder,
    ops: &'a AtomicU64,
    term: u64,
}

impl Log<'_> {
    /// Runs `write` (bounded by [`OP_TIMEOUT`]) as operation `action` on
    /// checkpoint `id`, recorded before and after; returns what it returned.
    async fn op(
        &self,
        action: &str,
        id: Option<u64>,
        write: impl std::future::Future<Output = tenure::Result<Option<u64>>>,
    ) -> Option<u64> {
        let op = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        self.recorder.record(Event::HaInvoke {
            op,
            election: HA.to_owned(),
            term: self.term,
            action: action.to_owned(),
            id,
        });
        let done = tokio::time::timeout(OP_TIMEOUT, write).await;
        let value = done
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref().ok().copied().flatten());
        let (outcome, detail) = outcome_of(done);
        self.recorder.record(Event::End {
            op,
            outcome,
            detail,
            value,
        });
        value
    }

    /// [`op`](Self::op) for a write that returns nothing; whether it succeeded.
    async fn ok(
        &self,
        action: &str,
        id: Option<u64>,
        write: impl std::future::Future<Output = tenure::Result<()>>,
    ) -> bool {
        let mut done = false;
        self.op(action, id, async {
            write.await.map(|()| {
                done = true;
                None
            })
        })
        .await;
        done
    }
}

/// The job whose result a leader records after checkpoint `id`.
pub(crate) fn result_job(id: u64) -> JobId {
    JobId::new(format!("finished-{id}")).expect("a valid job id")
}

/// Reports every leader of the dispatcher that retrieval shows.
pub(crate) async fn follow(backend: DynBackend, recorder: &Recorder) {
    let Ok(retrieval) = services(backend).dispatcher_leader_retriever() else {
        return;
    };
    let mut leaders = retrieval.stream();
    while let Some(leader) = leaders.next().await {
        if let Ok(leader) = leader {
            recorder.record(Event::Seen {
                election: HA.to_owned(),
                term: leader.map(|l| l.term),
            });
        }
    }
}
