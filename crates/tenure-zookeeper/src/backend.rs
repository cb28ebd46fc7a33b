//! The [`Backend`] contract over ZooKeeper: Curator's LeaderLatch layout for
//! elections, persistent znodes for values, `multi` for fenced writes, and one
//! session per process.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use futures_util::stream::BoxStream;
use tenure_core::backend::support::{
    channel_stream, check_delete_condition, check_value_size, closed, queue, LeaderWatches,
};
use tenure_core::{
    Backend, Candidate, Capabilities, Condition, Error, Grant, KvEvent, LeaderRecord, Path, Result,
    SessionId, SessionState, SessionStatus, Versioned,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client::{
    AddWatchMode, Client, CreateMode, EventType, MultiWriteError, MultiWriteResult,
    SessionState as ZkState, Stat,
};

use crate::config::ZkConfig;
use crate::keys;
use crate::session::{self, map_err, session_id, Shared};

/// The largest value, in bytes (ZooKeeper's default `jute.maxbuffer` is
/// 1 MiB for a whole request, path and header included).
pub const MAX_VALUE_SIZE: usize = 1_000_000;

/// How often a write is retried when concurrent changes keep moving the ground
/// under it (a parent deleted, a node created in between).
const WRITE_ATTEMPTS: usize = 16;

/// One process's client of ZooKeeper, with one ZooKeeper session as its
/// session.
#[derive(Clone)]
pub struct ZkBackend {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// One leader watch per election, shared by this process's followers.
    leader_watches: LeaderWatches,
    /// Bounds the candidate creates in flight at once: a process campaigning
    /// for thousands of elections together would otherwise hold thousands of
    /// requests' futures at a time, and the heap stays fragmented by them.
    create_slots: Arc<tokio::sync::Semaphore>,
    session_task: Mutex<Option<JoinHandle<()>>>,
}

/// Candidate creates in flight at once, per client.
const CREATE_SLOTS: usize = 256;

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped without close: stop the session task and the watches, so the
        // last client handle goes and the session is closed.
        self.stop.send_replace(true);
        let _ = self.shared.close_client();
        self.shared.status.send_modify(|s| {
            s.state = SessionState::Closed;
            s.renew_deadline = None;
        });
    }
}

impl fmt::Debug for ZkBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkBackend")
            .field("config", &self.inner.shared.config)
            .field("session", &*self.inner.shared.status.borrow())
            .field(
                "negotiated_session_timeout",
                &self.inner.shared.negotiated(),
            )
            .finish()
    }
}

/// Why a (possibly fenced) write failed.
enum WriteError {
    /// The fence's candidate node is gone: the leadership is over.
    Fenced,
    /// The write itself failed (its version check, a missing parent, ...).
    Op(zookeeper_client::Error),
}

/// One write, alone or behind the fence check.
enum Op<'a> {
    Create(&'a str, &'a [u8]),
    Set(&'a str, &'a [u8], Option<i32>),
    Delete(&'a str, Option<i32>),
}

fn versioned(value: Vec<u8>, stat: &Stat) -> Versioned {
    Versioned {
        value,
        version: stat.mzxid as u64,
    }
}

/// Maps an error of a read made for a fenced write: a fence whose session
/// expired is a failed fence.
fn read_err(e: zookeeper_client::Error, fence: Option<&Grant>) -> Error {
    match (e, fence) {
        (zookeeper_client::Error::SessionExpired, Some(grant)) => fenced(grant),
        (e, _) => map_err(e),
    }
}

fn fenced(grant: &Grant) -> Error {
    Error::Fenced {
        election: grant.election.to_string(),
        term: grant.term,
    }
}

impl ZkBackend {
    /// Connects and opens the process's session.
    pub async fn connect(config: ZkConfig) -> Result<Self> {
        let sent = tokio::time::Instant::now();
        let client = session::open(&config).await?;
        let id = session_id(&client);
        let timeout = client.session_timeout();
        let (status, _) = watch::channel(SessionStatus {
            id,
            state: SessionState::Connected,
            renew_deadline: Some(session::deadline(sent, timeout)),
        });
        tracing::info!(session = %id, ?timeout, "ZooKeeper session opened");
        let shared = Arc::new(Shared::new(config, client, status));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(session::run(shared.clone(), stop_rx));
        Ok(ZkBackend {
            inner: Arc::new(Inner {
                shared,
                stop,
                leader_watches: LeaderWatches::new(),
                create_slots: Arc::new(tokio::sync::Semaphore::new(CREATE_SLOTS)),
                session_task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Connects to the ZooKeeper named by a `zk://` URL.
    pub async fn from_url(url: &tenure_core::BackendUrl) -> Result<Self> {
        Self::connect(ZkConfig::from_url(url)?).await
    }

    /// The configuration this backend was made with.
    pub fn config(&self) -> &ZkConfig {
        &self.inner.shared.config
    }

    /// The session timeout the server granted: what the configured one became
    /// within the server's `minSessionTimeout`..`maxSessionTimeout`. The renew
    /// deadline and crash failover follow this value.
    pub fn negotiated_session_timeout(&self) -> Duration {
        self.inner.shared.negotiated()
    }

    /// The ZooKeeper client of the current session (rooted at the chroot), for
    /// operations tenure does not wrap.
    pub fn client(&self) -> Result<Client> {
        self.inner.shared.client()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn check_open(&self) -> Result<()> {
        if *self.inner.stop.borrow() {
            Err(Error::Closed {
                what: "ZooKeeper backend",
            })
        } else {
            Ok(())
        }
    }

    /// Runs `op`, behind a check that `fence`'s candidate node still exists
    /// when a fence is given, all in one `multi`. Returns the written node's
    /// stat (`None` for a delete).
    async fn write(
        &self,
        client: &Client,
        fence: Option<&Grant>,
        op: Op<'_>,
    ) -> std::result::Result<Option<Stat>, WriteError> {
        let options = CreateMode::Persistent.with_acls(self.shared().acls());
        if let Some(grant) = fence {
            if !keys::is_candidate_of(grant) {
                return Err(WriteError::Fenced);
            }
            // The multi below checks only that the node exists. A grant this
            // session made is known to be that node's; another process's
            // (`tenure put --fence`) is checked to be that node first: a
            // node's czxid and owner never change, so if it still exists at
            // the multi, it is still this very leadership.
            if session_id(client) != grant.session {
                match client.check_stat(&grant.key).await {
                    Ok(Some(stat))
                        if stat.czxid as u64 == grant.term
                            && stat.ephemeral_owner as u64 == grant.session.0 => {}
                    Ok(_) | Err(zookeeper_client::Error::SessionExpired) => {
                        return Err(WriteError::Fenced)
                    }
                    Err(e) => return Err(WriteError::Op(e)),
                }
            }
        }
        let Some(grant) = fence else {
            return match op {
                Op::Create(path, data) => client
                    .create(path, data, &options)
                    .await
                    .map(|(stat, _)| Some(stat)),
                Op::Set(path, data, version) => {
                    client.set_data(path, data, version).await.map(Some)
                }
                Op::Delete(path, version) => client.delete(path, version).await.map(|()| None),
            }
            .map_err(WriteError::Op);
        };
        let mut multi = client.new_multi_writer();
        // -1: any version. The node's name carries a fresh UUID and a sequence,
        // so as long as it exists it is this very candidate, on its session.
        let added = multi
            .add_check_version(&grant.key, -1)
            .and_then(|()| match op {
                Op::Create(path, data) => multi.add_create(path, data, &options),
                Op::Set(path, data, version) => multi.add_set_data(path, data, version),
                Op::Delete(path, version) => multi.add_delete(path, version),
            });
        added.map_err(WriteError::Op)?;
        match multi.commit().await {
            Ok(mut results) => match results.pop() {
                Some(
                    MultiWriteResult::Create { stat, .. } | MultiWriteResult::SetData { stat },
                ) => Ok(Some(stat)),
                _ => Ok(None),
            },
            Err(MultiWriteError::OperationFailed { index: 0, source }) => match source {
                zookeeper_client::Error::NoNode | zookeeper_client::Error::BadVersion => {
                    Err(WriteError::Fenced)
                }
                other => Err(WriteError::Op(other)),
            },
            // The fence's session ended: so did its candidate.
            Err(MultiWriteError::RequestFailed {
                source: zookeeper_client::Error::SessionExpired,
            }) => Err(WriteError::Fenced),
            Err(MultiWriteError::OperationFailed { source, .. })
            | Err(MultiWriteError::RequestFailed { source }) => Err(WriteError::Op(source)),
        }
    }

    /// Whether `grant`'s candidate node still exists (so its fence holds).
    ///
    /// The fence may come from another process (`tenure put --fence`): the
    /// node's existence is what counts, whichever session asks. A candidate of
    /// a session the server expired went with it.
    async fn fence_holds(&self, client: &Client, grant: &Grant) -> Result<bool> {
        if !keys::is_candidate_of(grant) {
            return Ok(false);
        }
        match client.check_stat(&grant.key).await {
            Ok(stat) => Ok(stat.is_some_and(|stat| {
                stat.czxid as u64 == grant.term && stat.ephemeral_owner as u64 == grant.session.0
            })),
            Err(zookeeper_client::Error::SessionExpired) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Fails with `Fenced` if a fence is given and no longer holds: the fence
    /// is checked before any condition.
    async fn check_fence(&self, client: &Client, fence: Option<&Grant>) -> Result<()> {
        match fence {
            Some(grant) if !self.fence_holds(client, grant).await? => Err(fenced(grant)),
            _ => Ok(()),
        }
    }

    /// The version (mzxid) of a node just written; reads it back if the server
    /// returned no valid stat (a known gap of `multi` in some versions).
    async fn written(&self, client: &Client, path: &str, stat: Option<Stat>) -> Result<u64> {
        match stat {
            Some(stat) if !stat.is_invalid() => Ok(stat.mzxid as u64),
            _ => match client.check_stat(path).await.map_err(map_err)? {
                Some(stat) => Ok(stat.mzxid as u64),
                None => Err(Error::unavailable(
                    "a written node vanished before its version could be read; retry",
                )),
            },
        }
    }

    /// Creates the parent directories of `path`.
    async fn make_parents(&self, client: &Client, path: &str) -> Result<()> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        if parent.is_empty() {
            return Ok(());
        }
        let options = CreateMode::Persistent.with_acls(self.shared().acls());
        client.mkdir(parent, &options).await.map_err(map_err)
    }

    /// The candidates of the election at `dir`, oldest first (empty if the
    /// election's node does not exist).
    async fn queue(&self, client: &Client, dir: &str) -> Result<Vec<(u64, String)>> {
        match client.list_children(dir).await {
            Ok(children) => Ok(keys::sorted_candidates(children)),
            Err(zookeeper_client::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Waits until candidate `path` is first in the election at `dir`, watching
    /// only the candidate just ahead of it (no herd effect); returns the
    /// candidate's czxid, its term, after verifying that the node is owned by
    /// `session` (Curator's CURATOR-696: never lead on a node of another
    /// session). Connection trouble is waited out; only the session's end gives
    /// up the place in the queue.
    async fn wait_first(&self, dir: &str, path: &str, session: SessionId) -> Result<u64> {
        let expired = || Error::SessionExpired { session: session.0 };
        let name = path.rsplit('/').next().unwrap_or_default();
        let mut status = self.session();
        let mut backoff = Duration::from_millis(20);
        loop {
            let s = *status.borrow_and_update();
            if s.id != session || matches!(s.state, SessionState::Lost | SessionState::Closed) {
                return Err(expired());
            }
            let client = self.shared().client()?;
            if session_id(&client) != session {
                return Err(expired());
            }
            let watcher = match self.step(&client, dir, path, name, session).await {
                Ok(Step::First(term)) => return Ok(term),
                Ok(Step::Again) => continue,
                Ok(Step::Wait(watcher)) => watcher,
                Err(Error::Unavailable { .. }) => {
                    drop(client);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = status.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                // The session ended under the request.
                Err(_) if client.state().is_terminated() => return Err(expired()),
                Err(e) => return Err(e),
            };
            backoff = Duration::from_millis(20);
            drop(client);
            tokio::select! {
                _ = watcher.changed() => {}
                r = status.changed() => if r.is_err() {
                    return Err(expired());
                },
            }
        }
    }

    /// One look at the queue for [`ZkBackend::wait_first`].
    async fn step(
        &self,
        client: &Client,
        dir: &str,
        path: &str,
        name: &str,
        session: SessionId,
    ) -> Result<Step> {
        let expired = || Error::SessionExpired { session: session.0 };
        // The owner check a grant needs goes out with the queue read, not one
        // round trip after it: a session's requests are answered in order, so
        // the stat is at least as new as the list.
        let (queue, stat) = tokio::join!(self.queue(client, dir), client.check_stat(path));
        let queue = queue?;
        let Some(position) = queue.iter().position(|(_, n)| n == name) else {
            // Gone: the session expired, or someone deleted the candidate.
            return Err(expired());
        };
        if position == 0 {
            return match stat.map_err(map_err)? {
                Some(stat) if stat.ephemeral_owner as u64 == session.0 => {
                    Ok(Step::First(stat.czxid as u64))
                }
                _ => Err(expired()),
            };
        }
        let ahead = format!("{dir}/{}", queue[position - 1].1);
        match client.check_and_watch_stat(&ahead).await.map_err(map_err)? {
            (Some(_), watcher) => Ok(Step::Wait(watcher)),
            // Already gone: look again.
            (None, _) => Ok(Step::Again),
        }
    }

    /// The leader of the election at `dir`: its first candidate's data and czxid.
    async fn head(&self, client: &Client, dir: &str) -> Result<Option<LeaderRecord>> {
        for _ in 0..WRITE_ATTEMPTS {
            let queue = self.queue(client, dir).await?;
            let Some((_, first)) = queue.first() else {
                return Ok(None);
            };
            match client.get_data(&format!("{dir}/{first}")).await {
                Ok((value, stat)) => {
                    return Ok(Some(LeaderRecord {
                        term: stat.czxid as u64,
                        value,
                    }))
                }
                // It went between the two reads: read the queue again.
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(map_err(e)),
            }
        }
        Err(Error::unavailable(
            "the election's queue kept changing while it was read; retry",
        ))
    }
}

/// What one look at the queue found.
enum Step {
    /// The candidate is first; its term.
    First(u64),
    /// The candidate ahead exists; wait for it to change.
    Wait(zookeeper_client::OneshotWatcher),
    /// Things moved; look again at once.
    Again,
}

/// Creates a protected candidate node (`_c_<uuid>-latch-<sequence>`), making
/// the election's node if needed. After a connection loss the create may or may
/// not have happened: like Curator's protected mode, look for our UUID among
/// the children before trying again.
async fn create_candidate(
    shared: Arc<Shared>,
    dir: String,
    prefix: String,
    value: Vec<u8>,
) -> Result<(String, Stat)> {
    let protection = prefix
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix("latch-"))
        .unwrap_or_default()
        .to_owned();
    let mut backoff = Duration::from_millis(20);
    // An earlier create's outcome is unknown: it may have made our node.
    let mut maybe_made = false;
    for _ in 0..WRITE_ATTEMPTS {
        let client = shared.client()?;
        if maybe_made {
            // Look for our node before creating another; if we cannot look
            // yet, wait and look again rather than risk a second node.
            match client.list_children(&dir).await {
                Ok(children) => {
                    if let Some(mine) = children.iter().find(|c| c.starts_with(&protection)) {
                        let path = format!("{dir}/{mine}");
                        if let Ok(Some(stat)) = client.check_stat(&path).await {
                            return Ok((path, stat));
                        }
                    }
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let options = CreateMode::EphemeralSequential.with_acls(shared.acls());
        match client.create(&prefix, &value, &options).await {
            Ok((stat, sequence)) => return Ok((format!("{prefix}{sequence}"), stat)),
            Err(zookeeper_client::Error::SessionExpired) => {
                return Err(Error::SessionExpired {
                    session: session_id(&client).0,
                })
            }
            Err(zookeeper_client::Error::NoNode) => {
                let options = CreateMode::Persistent.with_acls(shared.acls());
                match client.mkdir(&dir, &options).await {
                    Ok(()) | Err(zookeeper_client::Error::NodeExists) => {}
                    Err(e) => return Err(map_err(e)),
                }
            }
            Err(e) if crate::session::outcome_unknown(&e) => {
                // Requests wait for the reconnection; then we look.
                maybe_made = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(map_err(e)),
        }
    }
    Err(Error::unavailable(
        "could not create the candidate node; retry",
    ))
}

/// Withdraws a candidate whose campaign was dropped or failed: waits for the
/// create (it may still be in flight), then deletes the node it made.
struct CandidateGuard {
    shared: Arc<Shared>,
    create: Option<JoinHandle<Result<(String, Stat)>>>,
    path: Option<String>,
    armed: bool,
}

impl Drop for CandidateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (shared, create, path) = (self.shared.clone(), self.create.take(), self.path.take());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let path = match (path, create) {
                    (Some(path), _) => Some(path),
                    (None, Some(create)) => match create.await {
                        Ok(Ok((path, _))) => Some(path),
                        _ => None,
                    },
                    (None, None) => None,
                };
                if let (Some(path), Ok(client)) = (path, shared.client()) {
                    let _ = client.delete(&path, None).await;
                }
            });
        }
    }
}

#[async_trait]
impl Backend for ZkBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("zk")
            .with_durable(true)
            .with_ttl_sessions(true)
            .with_max_value_size(MAX_VALUE_SIZE)
    }

    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.shared().status.subscribe()
    }

    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        self.check_open()?;
        let current = *self.shared().status.borrow();
        if current.id != id || current.state == SessionState::Lost {
            return Ok(false);
        }
        let client = self.shared().client()?;
        if session_id(&client) != id {
            return Ok(false);
        }
        // Any request answered on the session proves the server still holds it.
        let ask = client.check_stat("/");
        match tokio::time::timeout(self.shared().negotiated(), ask).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(zookeeper_client::Error::SessionExpired)) => Ok(false),
            Ok(Err(e)) => Err(map_err(e)),
            Err(_) => Err(Error::unavailable(
                "ZooKeeper did not answer whether the session is alive",
            )),
        }
    }

    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let expired = || Error::SessionExpired { session: session.0 };
        let current = *self.shared().status.borrow();
        if current.id != session || current.state == SessionState::Lost {
            return Err(expired());
        }
        if session_id(&self.shared().client()?) != session {
            return Err(expired());
        }
        let dir = keys::node(election);
        let prefix = keys::candidate_prefix(election, &uuid::Uuid::new_v4());
        // Create in a task of its own, so a dropped campaign cannot cut the
        // create short and leave a node its guard does not know about.
        let create = {
            let (shared, dir, value) = (self.inner.shared.clone(), dir.clone(), value.to_vec());
            let slots = self.inner.create_slots.clone();
            tokio::spawn(async move {
                // Boxed once a slot is free, so the waiting tasks stay small.
                let _slot = slots.acquire_owned().await;
                Box::pin(create_candidate(shared, dir, prefix, value)).await
            })
        };
        let mut guard = CandidateGuard {
            shared: self.inner.shared.clone(),
            create: None,
            path: None,
            armed: true,
        };
        // Awaited through the guard: a campaign dropped right here still
        // withdraws the node once the create finishes.
        guard.create = Some(create);
        let created = match guard.create.as_mut() {
            Some(create) => create.await,
            None => unreachable!("set above"),
        };
        guard.create = None;
        let (path, stat) = match created {
            Ok(Ok(created)) => created,
            Ok(Err(e)) => {
                guard.armed = false;
                return Err(e);
            }
            Err(_) => {
                guard.armed = false;
                return Err(Error::unavailable("the campaign's create was lost"));
            }
        };
        guard.path = Some(path.clone());
        if stat.ephemeral_owner as u64 != session.0 {
            // Made on a newer session than the one campaigning: not ours to use.
            return Err(expired());
        }
        // Boxed: only campaigns that get this far hold room for it.
        let outcome = Box::pin(self.wait_first(&dir, &path, session)).await;
        match &outcome {
            Ok(_) | Err(Error::SessionExpired { .. }) => {
                // Granted, or gone with its session... unless it is still there
                // on a live session (a deleted predecessor's watch fired late):
                // the guard removes it in the second case.
                if outcome.is_ok() {
                    guard.armed = false;
                }
            }
            Err(_) => {
                // Withdraw now rather than leave it to the guard's background
                // task, so a retry never finds a stale candidate.
                if let Ok(client) = self.shared().client() {
                    if Box::pin(client.delete(&path, None)).await.is_ok() {
                        guard.armed = false;
                    }
                }
            }
        }
        outcome.map(|term| Grant {
            election: election.clone(),
            term,
            session,
            key: path,
        })
    }

    async fn resign(&self, grant: &Grant) -> Result<()> {
        self.check_open()?;
        let client = self.shared().client()?;
        match client.delete(&grant.key, None).await {
            // Gone already, or gone with its expired session.
            Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
            Err(zookeeper_client::Error::SessionExpired) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.check_open()?;
        let client = self.shared().live_client().await?;
        self.head(&client, &keys::node(election)).await
    }

    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        self.check_open()?;
        let client = self.shared().live_client().await?;
        let dir = keys::node(election);
        let queue = self.queue(&client, &dir).await?;
        let reads = queue.iter().map(|(_, name)| {
            let (client, path) = (client.clone(), format!("{dir}/{name}"));
            async move { client.get_data(&path).await }
        });
        let mut candidates = Vec::with_capacity(queue.len());
        for read in join_all(reads).await {
            match read {
                Ok((value, stat)) => candidates.push(Candidate {
                    term: stat.czxid as u64,
                    value,
                }),
                // Left between the two reads.
                Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(candidates)
    }

    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        // One watch per election, however many followers this process has.
        self.inner
            .leader_watches
            .watch(election, || self.open_leader_watch(election))
            .await
    }

    async fn get(&self, key: &Path) -> Result<Option<Versioned>> {
        self.check_open()?;
        keys::check_key(key)?;
        let client = self.shared().live_client().await?;
        let node = keys::node(key);
        match client.get_data(&node).await {
            Ok((data, stat)) => {
                Ok(keys::decode_value(&node, &data)?.map(|value| versioned(value, &stat)))
            }
            Err(zookeeper_client::Error::NoNode) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.check_open()?;
        let client = self.shared().live_client().await?;
        let mut listed = Vec::new();
        let mut level = vec![keys::node(prefix)];
        while !level.is_empty() {
            let reads = level.iter().map(|node| {
                let client = client.clone();
                async move {
                    let data = client.get_data(node).await;
                    let children = match &data {
                        Ok((_, stat)) if stat.num_children > 0 => {
                            Some(client.list_children(node).await)
                        }
                        _ => None,
                    };
                    (node, data, children)
                }
            });
            let mut next = Vec::new();
            for (node, data, children) in join_all(reads).await {
                let (data, stat) = match data {
                    Ok(found) => found,
                    Err(zookeeper_client::Error::NoNode) => continue,
                    Err(e) => return Err(map_err(e)),
                };
                let key = keys::key_of(node).ok_or_else(|| Error::Corrupted {
                    key: node.clone(),
                    reason: "not a valid tenure key (every segment must follow the id rule)".into(),
                })?;
                if let Some(value) = keys::decode_value(node, &data)? {
                    listed.push((key.to_owned(), versioned(value, &stat)));
                }
                match children {
                    Some(Ok(children)) => next.extend(
                        children
                            .into_iter()
                            .filter(|c| !keys::is_latch_name(c))
                            .map(|c| format!("{node}/{c}")),
                    ),
                    Some(Err(zookeeper_client::Error::NoNode)) | None => {}
                    Some(Err(e)) => return Err(map_err(e)),
                }
            }
            level = next;
        }
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listed)
    }

    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.check_open()?;
        let client = self.shared().live_client().await?;
        let root = keys::node(prefix);
        let mut watcher = client
            .watch(&root, AddWatchMode::PersistentRecursive)
            .await
            .map_err(map_err)?;
        drop(client);
        let (tx, rx) = queue();
        let shared = Arc::downgrade(&self.inner.shared);
        let mut status = self.session();
        tokio::spawn(async move {
            // What each key was when last delivered: its data version, or
            // `None` once it was deleted (or was a directory all along).
            let mut seen: std::collections::HashMap<String, Option<(i64, i32)>> =
                Default::default();
            loop {
                let event = tokio::select! {
                    event = watcher.changed() => event,
                    _ = tx.closed() => return,
                    _ = closed(&mut status) => return,
                };
                if event.event_type == EventType::Session {
                    if event.session_state == ZkState::SyncConnected {
                        continue;
                    }
                    // Changes made while disconnected are not replayed to
                    // persistent watches: end, so the caller lists again.
                    let _ = tx.send(Err(Error::unavailable(
                        "the ZooKeeper connection of the watch was lost; list and watch again",
                    )));
                    return;
                }
                let node = event.path.clone();
                let Some(key) = keys::key_of(&node) else {
                    continue;
                };
                if key.rsplit('/').next().is_some_and(keys::is_latch_name) {
                    continue;
                }
                let key = key.to_owned();
                let delivered = match event.event_type {
                    EventType::NodeDeleted => match seen.insert(key.clone(), None) {
                        Some(None) => None,
                        _ => Some(Ok(KvEvent::Delete { key })),
                    },
                    EventType::NodeCreated | EventType::NodeDataChanged => {
                        let Some(shared) = shared.upgrade() else {
                            return;
                        };
                        let read = match shared.client() {
                            Ok(client) => client.get_data(&node).await,
                            Err(_) => return,
                        };
                        drop(shared);
                        match read {
                            Err(zookeeper_client::Error::NoNode) => None,
                            Err(e) => Some(Err(map_err(e))),
                            Ok((data, stat)) => match keys::decode_value(&node, &data) {
                                Err(e) => Some(Err(e)),
                                Ok(None) => match seen.insert(key.clone(), None) {
                                    // A value turned into a directory: deleted.
                                    Some(Some(_)) => Some(Ok(KvEvent::Delete { key })),
                                    // A directory made, or a key of unknown past
                                    // emptied by a delete.
                                    _ if event.event_type == EventType::NodeDataChanged => {
                                        Some(Ok(KvEvent::Delete { key }))
                                    }
                                    _ => None,
                                },
                                Ok(Some(value)) => {
                                    let at = (stat.czxid, stat.version);
                                    let previous = seen.insert(key.clone(), Some(at));
                                    let expected = match (event.event_type, previous) {
                                        (EventType::NodeCreated, _) => 0,
                                        (_, Some(Some((czxid, v)))) if czxid == stat.czxid => v + 1,
                                        _ => stat.version,
                                    };
                                    if stat.version != expected {
                                        // The read saw a later write than the
                                        // event: a change would be skipped.
                                        let _ = tx.send(Err(Error::unavailable(format!(
                                            "{node} changed faster than the watch could read it (after {:?}, version {} where {expected} was due); list and watch again", event.event_type, stat.version
                                        ))));
                                        return;
                                    }
                                    Some(Ok(KvEvent::Put {
                                        key,
                                        value: versioned(value, &stat),
                                    }))
                                }
                            },
                        }
                    }
                    _ => None,
                };
                if let Some(message) = delivered {
                    let failed = message.is_err();
                    if tx.send(message).is_err() || failed {
                        return;
                    }
                }
            }
        });
        Ok(channel_stream(rx))
    }

    async fn put(
        &self,
        key: &Path,
        value: &[u8],
        condition: Condition,
        fence: Option<&Grant>,
    ) -> Result<u64> {
        self.check_open()?;
        keys::check_key(key)?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let node = keys::node(key);
        let data = keys::encode_value(value);
        let fail = |e: WriteError, grant: Option<&Grant>| match (e, grant) {
            (WriteError::Fenced, Some(grant)) => fenced(grant),
            (WriteError::Fenced, None) => Error::unavailable("fence check without a fence"),
            (WriteError::Op(e), _) => map_err(e),
        };
        for _ in 0..WRITE_ATTEMPTS {
            let client = self.shared().live_client().await?;
            // The node as it is, for the conditions that need it.
            let current = match condition {
                Condition::Any => None,
                Condition::Absent | Condition::Version(_) => match client.get_data(&node).await {
                    Ok((data, stat)) => Some((keys::decode_value(&node, &data)?, stat)),
                    Err(zookeeper_client::Error::NoNode) => None,
                    Err(e) => return Err(read_err(e, fence)),
                },
            };
            let op = match (condition, &current) {
                (Condition::Any, _) => Op::Set(&node, &data, None),
                (Condition::Absent, None) => Op::Create(&node, &data),
                // A directory holds no value: writing one is a create.
                (Condition::Absent, Some((None, stat))) => {
                    Op::Set(&node, &data, Some(stat.version))
                }
                (Condition::Absent, Some((Some(_), _))) => {
                    self.check_fence(&client, fence).await?;
                    return Err(Error::AlreadyExists {
                        key: key.to_string(),
                    });
                }
                (Condition::Version(expected), Some((Some(_), stat)))
                    if stat.mzxid as u64 == expected =>
                {
                    Op::Set(&node, &data, Some(stat.version))
                }
                (Condition::Version(expected), current) => {
                    self.check_fence(&client, fence).await?;
                    let actual = match current {
                        Some((Some(_), stat)) => Some(stat.mzxid as u64),
                        _ => None,
                    };
                    return Err(Error::VersionMismatch {
                        key: key.to_string(),
                        expected,
                        actual,
                    });
                }
            };
            let creating = matches!(op, Op::Create(..));
            match self.write(&client, fence, op).await {
                Ok(stat) => return self.written(&client, &node, stat).await,
                Err(WriteError::Op(zookeeper_client::Error::NoNode)) => {
                    if creating {
                        self.make_parents(&client, &node).await?;
                    } else if condition == Condition::Any {
                        // Not there yet: create it (the next round sets it if
                        // someone else creates it first).
                        match self.write(&client, fence, Op::Create(&node, &data)).await {
                            Ok(stat) => return self.written(&client, &node, stat).await,
                            Err(WriteError::Op(zookeeper_client::Error::NoNode)) => {
                                self.make_parents(&client, &node).await?;
                            }
                            Err(WriteError::Op(zookeeper_client::Error::NodeExists)) => {}
                            Err(e) => return Err(fail(e, fence)),
                        }
                    }
                }
                // Someone got in between our read and the write: look again.
                Err(WriteError::Op(
                    zookeeper_client::Error::NodeExists | zookeeper_client::Error::BadVersion,
                )) => {}
                Err(e) => return Err(fail(e, fence)),
            }
        }
        Err(Error::unavailable(format!(
            "{key} kept changing under the write; retry"
        )))
    }

    async fn delete(
        &self,
        key: &Path,
        condition: Condition,
        fence: Option<&Grant>,
    ) -> Result<bool> {
        self.check_open()?;
        keys::check_key(key)?;
        check_delete_condition(condition)?;
        let node = keys::node(key);
        for _ in 0..WRITE_ATTEMPTS {
            let client = self.shared().live_client().await?;
            let current = match client.get_data(&node).await {
                Ok((data, stat)) => Some((keys::decode_value(&node, &data)?, stat)),
                Err(zookeeper_client::Error::NoNode) => None,
                Err(e) => return Err(read_err(e, fence)),
            };
            let stat = match (&current, condition) {
                (Some((Some(_), stat)), Condition::Version(expected))
                    if stat.mzxid as u64 != expected =>
                {
                    self.check_fence(&client, fence).await?;
                    return Err(Error::VersionMismatch {
                        key: key.to_string(),
                        expected,
                        actual: Some(stat.mzxid as u64),
                    });
                }
                (Some((Some(_), stat)), _) => stat,
                (_, Condition::Version(_)) => {
                    self.check_fence(&client, fence).await?;
                    return Err(Error::NotFound {
                        key: key.to_string(),
                    });
                }
                _ => {
                    self.check_fence(&client, fence).await?;
                    return Ok(false);
                }
            };
            // A node with children stays, as a directory without a value.
            let op = if stat.num_children > 0 {
                Op::Set(&node, &[], Some(stat.version))
            } else {
                Op::Delete(&node, Some(stat.version))
            };
            match self.write(&client, fence, op).await {
                Ok(_) => return Ok(true),
                Err(WriteError::Fenced) => {
                    return Err(match fence {
                        Some(grant) => fenced(grant),
                        None => Error::unavailable("fence check without a fence"),
                    })
                }
                // Changed in between (written, given children, removed): again.
                Err(WriteError::Op(
                    zookeeper_client::Error::BadVersion
                    | zookeeper_client::Error::NotEmpty
                    | zookeeper_client::Error::NoNode,
                )) => {}
                Err(WriteError::Op(e)) => return Err(map_err(e)),
            }
        }
        Err(Error::unavailable(format!(
            "{key} kept changing under the delete; retry"
        )))
    }

    async fn close(&self) -> Result<()> {
        if self.inner.stop.send_replace(true) {
            return Ok(());
        }
        // Closed first, so whoever sees the candidates vanish knows why.
        self.shared().status.send_modify(|s| {
            s.state = SessionState::Closed;
            s.renew_deadline = None;
        });
        let task = self
            .inner
            .session_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        // Dropping the last client handle closes the session on the server,
        // which removes every candidate of this process at once.
        if let Some(mut states) = self.shared().close_client() {
            let closing = async {
                while !states.peek_state().is_terminated() {
                    states.changed().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
        }
        Ok(())
    }
}

/// The head of the election at `dir`, and a watcher that fires when its
/// candidates change (or, while the election has no node, when it is made).
async fn watch_head(
    client: &Client,
    dir: &str,
) -> Result<(Option<LeaderRecord>, zookeeper_client::OneshotWatcher)> {
    for _ in 0..WRITE_ATTEMPTS {
        match client.list_and_watch_children(dir).await {
            Ok((children, watcher)) => {
                let queue = keys::sorted_candidates(children);
                let Some((_, first)) = queue.first() else {
                    return Ok((None, watcher));
                };
                match client.get_data(&format!("{dir}/{first}")).await {
                    Ok((value, stat)) => {
                        let head = LeaderRecord {
                            term: stat.czxid as u64,
                            value,
                        };
                        return Ok((Some(head), watcher));
                    }
                    // It left between the two reads: look again.
                    Err(zookeeper_client::Error::NoNode) => continue,
                    Err(e) => return Err(map_err(e)),
                }
            }
            Err(zookeeper_client::Error::NoNode) => {
                match client.check_and_watch_stat(dir).await.map_err(map_err)? {
                    (None, watcher) => return Ok((None, watcher)),
                    // Made in between: list it.
                    (Some(_), _) => continue,
                }
            }
            Err(e) => return Err(map_err(e)),
        }
    }
    Err(Error::unavailable(
        "the election's queue kept changing while it was read; retry",
    ))
}

impl ZkBackend {
    /// The backend's own leader watch of `election`, shared by
    /// [`Backend::watch_leader`] through [`LeaderWatches`].
    async fn open_leader_watch(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.check_open()?;
        let dir = keys::node(election);
        let (first, watcher) = watch_head(&self.shared().live_client().await?, &dir).await?;
        // A stream driven by its reader, not a task and a channel of its own:
        // a process may hold thousands of elections, each followed once.
        let state = Follow {
            watcher: Some(watcher),
            last: first.clone(),
            status: self.session(),
            shared: Arc::downgrade(&self.inner.shared),
            dir,
        };
        let rest = futures_util::stream::unfold(state, |mut f| async move {
            loop {
                let watcher = f.watcher.take()?;
                let event = tokio::select! {
                    event = watcher.changed() => event,
                    _ = closed(&mut f.status) => return None,
                };
                if event.event_type == EventType::Session && event.session_state.is_terminated() {
                    let ended =
                        Error::unavailable("the ZooKeeper session of the leader watch ended");
                    return Some((Err(ended), f));
                }
                // Hold the client only while reading, never while waiting, so
                // that closing the backend closes its session.
                let client = f.shared.upgrade().and_then(|s| s.client().ok())?;
                // Boxed: the stream, kept for as long as the election is
                // followed, would otherwise hold room for the reads always.
                let watched = Box::pin(watch_head(&client, &f.dir)).await;
                drop(client);
                let (now, watcher) = match watched {
                    Ok(found) => found,
                    Err(e) => return Some((Err(e), f)),
                };
                f.watcher = Some(watcher);
                if now != f.last {
                    f.last = now.clone();
                    return Some((Ok(now), f));
                }
            }
        });
        let stream = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, Error>(first)]),
            rest,
        );
        Ok(futures_util::StreamExt::boxed(stream))
    }
}

/// The state of one leader watch between events.
struct Follow<W> {
    /// Taken while waiting; `None` once the stream has ended.
    watcher: Option<W>,
    last: Option<LeaderRecord>,
    status: watch::Receiver<SessionStatus>,
    shared: std::sync::Weak<Shared>,
    dir: String,
}
