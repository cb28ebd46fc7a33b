//! The candidate queue of an election, in Curator's LeaderLatch layout:
//! creating a candidate (also when a create's outcome is unknown), waiting to be
//! first, the owner check before a grant, withdrawing and resigning, and reading
//! the leader and the candidates.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tenure_core::backend::support::check_value_size;
use tenure_core::{
    Backend, Candidate, Error, Grant, LeaderRecord, Path, Result, SessionId, SessionState,
};
use tokio::task::JoinHandle;
use zookeeper_client::{Client, CreateMode, Stat};

use crate::backend::{ZkBackend, MAX_VALUE_SIZE, WRITE_ATTEMPTS};
use crate::error::map_err;
use crate::keys;
use crate::session::{session_id, Shared};

impl ZkBackend {
    /// [`Backend::campaign`]: creates a candidate of `election` on `session`
    /// and waits until it leads.
    pub(crate) async fn run_campaign(
        &self,
        election: &Path,
        session: SessionId,
        value: &[u8],
    ) -> Result<Grant> {
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
            let (shared, dir, value) = (self.shared().clone(), dir.clone(), value.to_vec());
            let slots = self.create_slots().clone();
            tokio::spawn(async move {
                // Boxed once a slot is free, so the waiting tasks stay small.
                let _slot = slots.acquire_owned().await;
                Box::pin(create_candidate(shared, dir, prefix, value)).await
            })
        };
        let mut guard = CandidateGuard {
            shared: self.shared().clone(),
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

    /// [`Backend::resign`]: deletes the grant's candidate node.
    pub(crate) async fn resign_grant(&self, grant: &Grant) -> Result<()> {
        self.check_open()?;
        let client = self.shared().client()?;
        match client.delete(&grant.key, None).await {
            // Gone already, or gone with its expired session.
            Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
            Err(zookeeper_client::Error::SessionExpired) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// [`Backend::leader`]: the leader of `election`.
    pub(crate) async fn read_leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.check_open()?;
        let client = self.shared().live_client().await?;
        self.head(&client, &keys::node(election)).await
    }

    /// [`Backend::candidates`]: the candidates of `election`, oldest first.
    pub(crate) async fn read_candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
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
                        session: Some(SessionId(stat.ephemeral_owner as u64)),
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
            Err(e) if crate::error::outcome_unknown(&e) => {
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
