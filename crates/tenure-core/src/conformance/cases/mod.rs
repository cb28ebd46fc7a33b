//! The cases of the conformance suite, one function each, grouped by the
//! contract they check. Each takes a fresh cluster and panics, naming what went
//! wrong, if the backend breaks a promise. The fixtures below are shared by
//! every group.

use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{eventually, within, TestCluster};
use crate::backend::DynBackend;
use crate::election::{Election, ElectionFactory, ElectionOptions};
use crate::error::{Error, Result};
use crate::leader_election::LeaderContender;
use crate::leader_info::LeaderInfo;
use crate::leadership::{Leadership, LossReason};
use crate::name::Path;
mod election;
mod fencing;
mod kv;
mod leader_info;
mod names;
mod retrieval;

pub use election::*;
pub use fencing::*;
pub use kv::*;
pub use leader_info::*;
pub use names::*;
pub use retrieval::*;

async fn clients(cluster: &dyn TestCluster, n: usize) -> Vec<DynBackend> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            cluster
                .client()
                .await
                .expect("a test cluster makes clients"),
        );
    }
    out
}

/// The election `name` on `backend`, campaigning as `candidate`.
pub fn election(backend: &DynBackend, name: &str, candidate: &str) -> Election {
    ElectionFactory::with_options(
        backend.clone(),
        ElectionOptions {
            candidate_id: Some(candidate.to_owned()),
            ..ElectionOptions::default()
        },
    )
    .new_election(name)
    .expect("valid election name")
}

fn path(p: &str) -> Path {
    Path::parse("key", p).expect("valid path")
}

/// Waits until `name` has exactly `n` candidates (queueing happens in the
/// background of a spawned campaign, so there is no event to await).
async fn wait_queued(backend: &DynBackend, name: &str, n: usize) {
    let name = path(name);
    eventually(&format!("{n} candidates queued in {name}"), || async {
        backend.candidates(&name).await.is_ok_and(|c| c.len() == n)
    })
    .await;
}

/// Campaigns in the background; the leadership arrives on the channel, tagged.
fn spawn_campaign(e: &Election, tag: usize, tx: &mpsc::UnboundedSender<(usize, Leadership)>) {
    let (e, tx) = (e.clone(), tx.clone());
    tokio::spawn(async move {
        if let Ok(leadership) = e.campaign().await {
            let _ = tx.send((tag, leadership));
        }
    });
}

async fn granted(
    rx: &mut mpsc::UnboundedReceiver<(usize, Leadership)>,
    what: &str,
) -> (usize, Leadership) {
    within(what, rx.recv()).await.expect("campaign tasks alive")
}

async fn lost(leadership: &Leadership, what: &str) -> LossReason {
    within(what, leadership.lost()).await
}

/// Records what a contender is told, tagged with the contender's index.
struct Recorder {
    tag: usize,
    tx: mpsc::UnboundedSender<(usize, Told)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Told {
    Granted(Uuid),
    Revoked,
    Error(String),
}

impl LeaderContender for Recorder {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.tx.send((self.tag, Told::Granted(session_id)));
    }
    fn revoke_leadership(&self) {
        let _ = self.tx.send((self.tag, Told::Revoked));
    }
    fn handle_error(&self, error: &Error) {
        let _ = self.tx.send((self.tag, Told::Error(error.to_string())));
    }
}

fn recorder(tag: usize, tx: &mpsc::UnboundedSender<(usize, Told)>) -> Arc<dyn LeaderContender> {
    Arc::new(Recorder {
        tag,
        tx: tx.clone(),
    })
}

async fn told(rx: &mut mpsc::UnboundedReceiver<(usize, Told)>, what: &str) -> (usize, Told) {
    within(what, rx.recv()).await.expect("recorders alive")
}

async fn next_grant(rx: &mut mpsc::UnboundedReceiver<(usize, Told)>) -> (usize, Uuid) {
    loop {
        match told(rx, "a grant").await {
            (tag, Told::Granted(sid)) => return (tag, sid),
            (_, Told::Error(e)) => panic!("contender error: {e}"),
            (_, Told::Revoked) => {}
        }
    }
}

async fn next_view(
    stream: &mut BoxStream<'static, Result<Option<LeaderInfo>>>,
    what: &str,
) -> Option<LeaderInfo> {
    within(what, stream.next())
        .await
        .expect("retrieval streams do not end")
        .expect("no retrieval error")
}
