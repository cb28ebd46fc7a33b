//! The HA part of a client's work, through tenure's HA services: campaign for
//! the dispatcher (Flink's model: grant, confirm, publish the address), and
//! while leading take checkpoint ids from the counter and add checkpoints to
//! the store, fenced; then close and campaign again. Retrievers follow the
//! dispatcher's published leader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure::ha::{fence_of, CompletedCheckpoint, HaServices, JobId};
use tenure::{DynBackend, Error, LeaderContender};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::client::{outcome_of, OP_TIMEOUT};
use crate::history::{Event, Recorder};
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
    let address = format!("{name}/{}", std::process::id());
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
        recorder.record(Event::Grant {
            election: HA.to_owned(),
            term,
        });
        let watcher = {
            let (fence, recorder) = (fence.clone(), recorder.clone());
            tokio::spawn(async move {
                let reason = fence.lost().await;
                recorder.record(Event::Loss {
                    election: HA.to_owned(),
                    term,
                    reason: format!("{reason:?}"),
                });
            })
        };
        let _ = tokio::time::timeout(OP_TIMEOUT, dispatcher.confirm_leadership(session, &address))
            .await;
        for _ in 0..rng.range(2, 8) {
            if !fence.is_held() {
                break;
            }
            let op = ops.fetch_add(1, Ordering::SeqCst) + 1;
            recorder.record(Event::HaInvoke {
                op,
                election: HA.to_owned(),
                term,
                action: "counter".into(),
                id: None,
            });
            let taken = tokio::time::timeout(OP_TIMEOUT, counter.get_and_increment(&fence)).await;
            let id = taken.as_ref().ok().and_then(|r| r.as_ref().ok()).copied();
            let (outcome, detail) = outcome_of(taken);
            recorder.record(Event::End {
                op,
                outcome,
                detail,
                value: id,
            });
            let Some(id) = id else {
                continue;
            };
            let op = ops.fetch_add(1, Ordering::SeqCst) + 1;
            recorder.record(Event::HaInvoke {
                op,
                election: HA.to_owned(),
                term,
                action: "checkpoint".into(),
                id: Some(id),
            });
            let checkpoint = CompletedCheckpoint {
                checkpoint_id: id,
                data: format!("checkpoint {id} by {address}").into_bytes(),
            };
            let added = tokio::time::timeout(OP_TIMEOUT, store.add(&fence, &checkpoint)).await;
            let (outcome, detail) = outcome_of(added);
            recorder.record(Event::End {
                op,
                outcome,
                detail,
                value: None,
            });
            tokio::time::sleep(Duration::from_millis(rng.range(5, 40))).await;
        }
        // Hand over: closing the election gives leadership up.
        dispatcher.close().await;
        let _ = tokio::time::timeout(OP_TIMEOUT, watcher).await;
        tokio::time::sleep(Duration::from_millis(rng.range(0, 200))).await;
    }
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
