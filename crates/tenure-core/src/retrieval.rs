//! Leader retrieval: follow who leads a component, or an election, without
//! campaigning.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{DynBackend, KvEvent, LeaderRecord, SessionId, Versioned};
use crate::error::{Error, Result};
use crate::leader_info::{flink, ClusterLayout, LeaderInfo, PublishedInfo};
use crate::name::Path;

/// Told about every change of a component's leader.
pub trait LeaderRetrievalListener: Send + Sync + 'static {
    /// The leader changed; `None` means nobody leads (or the new leader has not
    /// confirmed yet).
    fn notify_leader_address(&self, leader: Option<LeaderInfo>);
    /// Retrieval hit an error (a corrupted record, say); it keeps following.
    fn handle_error(&self, error: &Error);
}

/// Follows the leader of one component of a cluster.
///
/// A retriever reports a leader only while the leader information published for
/// the component belongs to the election's current leader (same term), so it
/// never reports a leader that has already lost its election; it never reports
/// an older term after a newer one; and it reports `None` when nobody leads.
#[derive(Clone)]
pub struct LeaderRetrieval {
    backend: DynBackend,
    info_key: Path,
    /// The elections leader information of this component can belong to (the
    /// shared one and the component's own); a record naming any other is corrupt.
    elections: Arc<[Path; 2]>,
}

impl fmt::Debug for LeaderRetrieval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderRetrieval")
            .field("info_key", &self.info_key)
            .finish()
    }
}

impl LeaderRetrieval {
    /// Follows `component_id` of `cluster_id` (both validated).
    pub fn new(backend: DynBackend, cluster_id: &str, component_id: &str) -> Result<Self> {
        let layout = ClusterLayout::new(cluster_id)?;
        let component = ClusterLayout::component(component_id)?;
        Ok(LeaderRetrieval {
            backend,
            info_key: layout.connection_info(&component),
            elections: Arc::new([
                layout.shared_election(),
                layout.component_election(&component),
            ]),
        })
    }

    /// The leader now, once: `None` if nobody leads or the leader has not
    /// confirmed.
    pub async fn current(&self) -> Result<Option<LeaderInfo>> {
        let Some(stored) = self.backend.get(&self.info_key).await? else {
            return Ok(None);
        };
        let Some(record) = decode(&self.info_key, &stored, &self.elections)? else {
            return Ok(None);
        };
        let leader = self
            .backend
            .leader(&record.election(&self.elections))
            .await?;
        Ok(leader.and_then(|l| record.of(&l)))
    }

    /// The leader now and after every change, as a stream. Errors (a corrupted
    /// record, say) are yielded and following goes on; the stream ends only when
    /// dropped.
    pub fn stream(&self) -> BoxStream<'static, Result<Option<LeaderInfo>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(follow(
            self.backend.clone(),
            self.info_key.clone(),
            self.elections.clone(),
            tx,
        ));
        task_stream(task, rx)
    }

    /// Calls `listener` with the leader now and after every change, until the
    /// returned handle is stopped or dropped.
    pub fn start(&self, listener: Arc<dyn LeaderRetrievalListener>) -> RetrievalHandle {
        let mut stream = self.stream();
        RetrievalHandle(Some(tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(leader) => listener.notify_leader_address(leader),
                    Err(e) => listener.handle_error(&e),
                }
            }
        })))
    }
}

/// A running retrieval started with [`LeaderRetrieval::start`].
#[derive(Debug)]
pub struct RetrievalHandle(Option<JoinHandle<()>>);

impl RetrievalHandle {
    /// Stops the retrieval; no notification arrives after this returns.
    pub async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for RetrievalHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// What `task` sends on `rx`, as a stream that stops the task when dropped.
fn task_stream<T: Send + 'static>(
    task: JoinHandle<()>,
    mut rx: mpsc::UnboundedReceiver<T>,
) -> BoxStream<'static, T> {
    let guard = AbortOnDrop(task);
    futures_util::stream::poll_fn(move |cx| {
        let _keep = &guard;
        rx.poll_recv(cx)
    })
    .boxed()
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows one election's leader record directly (the candidate's value as the
/// address, e.g. a proposal made with `etcdctl elect`), with the same guarantees:
/// terms never go backwards, and `None` means nobody leads.
pub fn follow_election(
    backend: DynBackend,
    election: Path,
) -> BoxStream<'static, Result<Option<LeaderRecord>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut last: Option<Option<LeaderRecord>> = None;
        let mut highest = 0;
        loop {
            let mut stream = match backend.watch_leader(&election).await {
                Ok(s) => s,
                Err(e) => {
                    if tx.send(Err(e)).is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                let leader = match item {
                    Ok(leader) => leader,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                };
                if leader.as_ref().is_some_and(|l| l.term < highest)
                    || last.as_ref() == Some(&leader)
                {
                    continue;
                }
                highest = highest.max(leader.as_ref().map_or(0, |l| l.term));
                last = Some(leader.clone());
                if tx.send(Ok(leader)).is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    task_stream(task, rx)
}

type Tx = mpsc::UnboundedSender<Result<Option<LeaderInfo>>>;

/// What a component retriever knows: the published record and the leader of the
/// election it names.
#[derive(Default)]
struct Follow {
    published: Option<Record>,
    leader: Option<LeaderRecord>,
    /// What was last reported (outer `None`: nothing yet).
    reported: Option<Option<LeaderInfo>>,
    highest_term: u64,
}

impl Follow {
    /// Reports the current view if it changed; returns false once the receiver
    /// is gone.
    fn report(&mut self, tx: &Tx) -> bool {
        let view = match (&self.published, &self.leader) {
            (Some(p), Some(l)) => p.of(l),
            _ => None,
        };
        if view.as_ref().is_some_and(|v| v.term < self.highest_term) {
            return true; // never an older term after a newer one
        }
        if self.reported.as_ref() == Some(&view) {
            return true;
        }
        if let Some(v) = &view {
            self.highest_term = v.term;
        }
        self.reported = Some(view.clone());
        tx.send(Ok(view)).is_ok()
    }
}

async fn follow(backend: DynBackend, key: Path, elections: Arc<[Path; 2]>, tx: Tx) {
    let mut state = Follow::default();
    loop {
        if let Err(e) = follow_once(&backend, &key, &elections, &tx, &mut state).await {
            if tx.send(Err(e)).is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One pass: opens the watches and follows them until one fails.
async fn follow_once(
    backend: &DynBackend,
    key: &Path,
    elections: &[Path; 2],
    tx: &Tx,
    state: &mut Follow,
) -> Result<()> {
    let mut events = backend.watch(key).await?;
    state.published = match backend.get(key).await? {
        Some(v) => decode_or_report(key, &v, elections, tx),
        None => None,
    };
    let mut election: Option<Path> = None;
    let mut leaders: Option<BoxStream<'static, Result<Option<LeaderRecord>>>> = None;
    loop {
        let wanted = state.published.as_ref().map(|p| p.election(elections));
        if wanted != election {
            // Terms are only comparable within one election.
            if election.is_some() && wanted.is_some() {
                state.highest_term = 0;
            }
            election = wanted;
            leaders = None;
            state.leader = None;
            if let Some(name) = &election {
                let mut stream = backend.watch_leader(name).await?;
                // The first item is the current leader: take it before reporting.
                if let Some(first) = stream.next().await {
                    state.leader = first?;
                }
                leaders = Some(stream);
            }
        }
        if !state.report(tx) {
            return Ok(());
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(KvEvent::Put { key: k, value })) if k == key.as_str() => {
                    state.published = decode_or_report(key, &value, elections, tx);
                }
                Some(Ok(KvEvent::Delete { key: k })) if k == key.as_str() => state.published = None,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(Error::unavailable("leader information watch ended")),
            },
            leader = next(&mut leaders) => match leader {
                Some(Ok(leader)) => state.leader = leader,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::unavailable("leader watch ended")),
            },
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// A published leader record as read.
#[derive(Clone, Debug)]
enum Record {
    /// tenure's own: names its election and term.
    Tenure(PublishedInfo),
    /// Apache Flink's `connection_info`: an ephemeral node of the leader's
    /// session, in the election all components share.
    Flink {
        address: String,
        session_id: uuid::Uuid,
        owner: Option<SessionId>,
    },
}

impl Record {
    /// The election whose leader the record must belong to.
    fn election(&self, elections: &[Path; 2]) -> Path {
        match self {
            // Checked against `elections` when decoded.
            Record::Tenure(p) => {
                Path::parse("election", &p.election).unwrap_or_else(|_| elections[0].clone())
            }
            Record::Flink { .. } => elections[0].clone(),
        }
    }

    /// The leader information if the record belongs to `leader`: the same
    /// term for tenure's records; for Flink's, a node owned by the leader's
    /// own session (so neither an old leader's record, nor a record written
    /// before the leader was granted, is taken for the new leader's).
    fn of(&self, leader: &LeaderRecord) -> Option<LeaderInfo> {
        match self {
            Record::Tenure(p) => (p.info.term == leader.term).then(|| p.info.clone()),
            Record::Flink {
                address,
                session_id,
                owner,
            } => (owner.is_some() && *owner == leader.session).then(|| LeaderInfo {
                address: address.clone(),
                session_id: *session_id,
                term: leader.term,
            }),
        }
    }
}

/// Decodes a published record (`None`: Flink's empty "no leader" data),
/// accepting only the elections of this component.
fn decode(key: &Path, stored: &Versioned, elections: &[Path; 2]) -> Result<Option<Record>> {
    if stored.value.starts_with(&flink::MAGIC[..2]) {
        return Ok(
            flink::decode(key.as_str(), &stored.value)?.map(|(address, session_id)| {
                Record::Flink {
                    address,
                    session_id,
                    owner: stored.owner,
                }
            }),
        );
    }
    let published = PublishedInfo::decode(key, &stored.value)?;
    if !elections.iter().any(|e| e.as_str() == published.election) {
        return Err(Error::Corrupted {
            key: key.to_string(),
            reason: format!(
                "names election {:?}, which is not this component's",
                published.election
            ),
        });
    }
    Ok(Some(Record::Tenure(published)))
}

fn decode_or_report(
    key: &Path,
    stored: &Versioned,
    elections: &[Path; 2],
    tx: &Tx,
) -> Option<Record> {
    match decode(key, stored, elections) {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Err(e));
            None
        }
    }
}

async fn next(
    stream: &mut Option<BoxStream<'static, Result<Option<LeaderRecord>>>>,
) -> Option<Result<Option<LeaderRecord>>> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(term: u64, address: &str) -> (Record, LeaderRecord) {
        let info = LeaderInfo {
            address: address.to_owned(),
            session_id: uuid::Uuid::new_v4(),
            term,
        };
        (
            Record::Tenure(PublishedInfo {
                info,
                election: "c/leader/latch".to_owned(),
            }),
            LeaderRecord {
                term,
                value: b"x".to_vec(),
                session: None,
            },
        )
    }

    /// Contract 4, monotonic retrieval: once a term was reported, an older
    /// one never is — even if the backend shows it again (a restarted
    /// non-durable backend, a lagging replica) — while "no leader" still is.
    #[test]
    fn an_older_term_is_never_reported_after_a_newer_one() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut follow = Follow {
            published: None,
            leader: None,
            reported: None,
            highest_term: 0,
        };
        let show = |follow: &mut Follow, (p, l): (Record, LeaderRecord)| {
            follow.published = Some(p);
            follow.leader = Some(l);
            assert!(follow.report(&tx));
        };
        show(&mut follow, view(7, "new:1"));
        let seen = rx.try_recv().unwrap().unwrap().unwrap();
        assert_eq!(seen.term, 7);
        show(&mut follow, view(5, "old:1"));
        assert!(rx.try_recv().is_err(), "an older term was reported after 7");
        follow.leader = None;
        assert!(follow.report(&tx));
        assert_eq!(
            rx.try_recv().unwrap().unwrap(),
            None,
            "no leader is reported"
        );
        show(&mut follow, view(9, "newer:1"));
        assert_eq!(rx.try_recv().unwrap().unwrap().unwrap().term, 9);
    }
}
