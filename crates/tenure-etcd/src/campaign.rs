//! The candidate queue of an election, in etcd's own layout: campaigning,
//! resigning, and reading the leader and the candidates.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, SortOrder, SortTarget,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tenure_core::backend::support::check_value_size;
use tenure_core::{
    Backend, Candidate, Error, Grant, LeaderRecord, Path, Result, SessionId, SessionState,
};
use tokio::task::JoinHandle;

use crate::backend::{EtcdBackend, MAX_VALUE_SIZE};
use crate::error::{lease_not_found, map_err};
use crate::keys::Keys;

impl EtcdBackend {
    /// The direct candidates of an election, oldest first, with the revision
    /// the read was made at.
    pub(crate) async fn queue(&self, election: &Path) -> Result<(Vec<KeyValue>, i64)> {
        let prefix = self.inner.keys.election(election);
        // The request's future is boxed once a slot is free, so waiting
        // readers stay small.
        let _slot = self.inner.request_slots.acquire().await;
        let mut response = Box::pin(
            self.kv().get(
                prefix.clone(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Create, SortOrder::Ascend),
                ),
            ),
        )
        .await
        .map_err(map_err)?;
        let revision = response.header().map_or(0, |h| h.revision());
        let queue: Vec<KeyValue> = response
            .take_kvs()
            .into_iter()
            .filter(|kv| Keys::is_candidate(&prefix, kv.key()))
            .collect();
        // Candidates are named by their lease (etcd's recipe); anything else in
        // the election's directory was written by someone else.
        if let Some(bad) = queue
            .iter()
            .find(|kv| !Keys::is_lease_name(&kv.key()[prefix.len()..]))
        {
            return Err(Error::Corrupted {
                key: String::from_utf8_lossy(bad.key()).into_owned(),
                reason: "not a candidate: candidate keys end in a lease id in lower-case hex"
                    .into(),
            });
        }
        Ok((queue, revision))
    }

    /// Waits until `key` is deleted (or the watch cannot say), watching from
    /// `revision` + 1.
    async fn wait_deleted(&self, key: &str) -> Result<()> {
        // Watch from now, then look: a deletion before the watch shows in the
        // read, one after it arrives as an event. (A watch started at an older
        // revision would be caught up by etcd's sync loop, up to 100 ms late.)
        let mut watch = self.inner.hub.watch(key, WatchOptions::new()).await?;
        // Boxed: a campaign's future holds this call only while it runs.
        let present = Box::pin(
            self.kv()
                .get(key, Some(GetOptions::new().with_count_only())),
        )
        .await;
        if present.is_ok_and(|r| r.count() == 0) {
            return Ok(());
        }
        while let Some(events) = watch.next().await {
            // An error (compaction, a broken stream): the caller re-reads.
            let Ok(events) = events else { return Ok(()) };
            if events.iter().any(|e| e.event_type() == EventType::Delete) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Deletes candidate `key` if it is still the one created at `term`.
    async fn withdraw(&self, key: &str, term: i64) -> Result<()> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, term)])
            .and_then([TxnOp::delete(key, None)]);
        self.kv().txn(txn).await.map_err(map_err)?;
        self.forget_grant(key, term);
        Ok(())
    }

    fn granted(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (i64, i64)>> {
        self.inner.granted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether candidate `key` created at `term` on `lease` was granted before.
    fn was_granted(&self, key: &str, lease: i64, term: i64) -> bool {
        self.granted().get(key) == Some(&(lease, term))
    }

    /// Forgets a granted candidate once it is gone.
    fn forget_grant(&self, key: &str, term: i64) {
        let mut granted = self.granted();
        if granted.get(key).is_some_and(|&(_, t)| t == term) {
            granted.remove(key);
        }
    }

    /// Waits until candidate `key` (created at `term`) is first in its queue,
    /// re-reading the queue after every change ahead of it.
    async fn wait_first(
        &self,
        election: &Path,
        key: &str,
        term: i64,
        session: SessionId,
    ) -> Result<()> {
        let expired = || Error::SessionExpired { session: session.0 };
        let mut status = self.session();
        let mut backoff = Duration::from_millis(20);
        loop {
            let (queue, _) = self.queue(election).await?;
            let Some(position) = queue.iter().position(|kv| kv.key() == key.as_bytes()) else {
                // Gone: the lease expired, or someone deleted the candidate.
                return Err(expired());
            };
            if queue[position].create_revision() != term {
                return Err(expired());
            }
            if position == 0 {
                // First, and the read proved our candidate exists under the lease
                // now: no phantom grant.
                let s = *status.borrow();
                if s.id != session || s.state == SessionState::Lost {
                    return Err(expired());
                }
                return Ok(());
            }
            // Wait for the candidate just ahead of us to go (Go's waitDeletes).
            let ahead = String::from_utf8_lossy(queue[position - 1].key()).into_owned();
            tokio::select! {
                r = self.wait_deleted(&ahead) => {
                    if r.is_err() {
                        // The watch could not be opened: read again shortly.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
                _ = status.changed() => {
                    let s = *status.borrow_and_update();
                    if s.id != session || matches!(s.state, SessionState::Lost | SessionState::Closed) {
                        return Err(expired());
                    }
                }
            }
        }
    }

    /// [`Backend::campaign`]: queues a candidate under the session's lease and
    /// waits until it is first.
    pub(crate) async fn run_campaign(
        &self,
        election: &Path,
        session: SessionId,
        value: &[u8],
    ) -> Result<Grant> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let expired = || Error::SessionExpired { session: session.0 };
        let current = *self.inner.status.borrow();
        if current.id != session || current.state == SessionState::Lost {
            return Err(expired());
        }
        let lease = session.0 as i64;
        let key = self.inner.keys.candidate(election, lease);
        // Create the candidate (or find it, if an earlier attempt of ours made
        // it) in a task of its own, so a dropped campaign cannot cut it short
        // and leave a candidate its guard does not know about.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let create = {
            let (client, key, value) = (self.inner.client.clone(), key.clone(), value.to_vec());
            let slots = self.inner.request_slots.clone();
            tokio::spawn(async move {
                // Thousands of campaigns at once would each hold a request's
                // buffers in flight; a bounded number is as fast and lighter.
                // The request's future is boxed once a slot is free, so the
                // waiting tasks stay small.
                let _slot = slots.acquire_owned().await;
                let request = Box::pin(async move {
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(
                            key.clone(),
                            value,
                            Some(PutOptions::new().with_lease(lease)),
                        )])
                        .or_else([TxnOp::get(key, None)]);
                    client.kv_client().txn(txn).await
                });
                let _ = tx.send(request.await);
            })
        };
        let mut guard = CandidateGuard {
            client: self.inner.client.clone(),
            key: key.clone(),
            create: Some(create),
            term: None,
            armed: true,
        };
        let response = rx
            .await
            .map_err(|_| Error::unavailable("the campaign's write was lost"))?
            .map_err(|e| {
                if lease_not_found(&e) {
                    // The server already dropped the lease; make the session
                    // notice now rather than at its next keep-alive.
                    self.inner.nudge.notify_one();
                    guard.armed = false;
                    expired()
                } else {
                    map_err(e)
                }
            })?;
        let term = if response.succeeded() {
            response.header().map_or(0, |h| h.revision())
        } else {
            match response.op_responses().first() {
                Some(TxnOpResponse::Get(get)) => match get.kvs().first() {
                    Some(kv) if kv.lease() == lease => kv.create_revision(),
                    _ => return Err(expired()),
                },
                _ => return Err(expired()),
            }
        };
        // From here on the candidate's create revision is known: whatever
        // removes it (this call on an error, the guard on a drop) removes only
        // this very candidate, never a later one of the same lease.
        guard.term = Some(term);
        if self.was_granted(&key, lease, term) {
            // An earlier leadership's candidate, still queued (its removal
            // has not gone through): remove it and let the caller campaign
            // again, with a new candidate and a new term.
            Box::pin(self.withdraw(&key, term)).await?;
            guard.armed = false;
            return Err(Error::unavailable(
                "an earlier leadership's candidate was still queued; it is removed",
            ));
        }
        // Boxed: only campaigns that get this far hold room for it.
        let outcome = Box::pin(self.wait_first(election, &key, term, session)).await;
        match &outcome {
            Ok(_) => guard.armed = false,
            Err(Error::SessionExpired { .. }) => guard.armed = false,
            Err(_) => {
                // Withdraw now rather than leave it to the guard's background
                // task, so a retry never finds (or loses) a stale candidate.
                if Box::pin(self.withdraw(&key, term)).await.is_ok() {
                    guard.armed = false;
                }
            }
        }
        outcome.map(|()| {
            let mut granted = self.granted();
            // Candidates of earlier leases can never be found again.
            granted.retain(|_, (l, _)| *l == lease);
            granted.insert(key.clone(), (lease, term));
            Grant {
                election: election.clone(),
                term: term as u64,
                session,
                key,
            }
        })
    }

    /// [`Backend::resign`]: deletes the granted candidate.
    pub(crate) async fn resign_grant(&self, grant: &Grant) -> Result<()> {
        self.check_open()?;
        // Delete only the candidate that was granted, not a newer one of ours.
        let txn = Txn::new()
            .when([Compare::create_revision(
                grant.key.clone(),
                CompareOp::Equal,
                grant.term as i64,
            )])
            .and_then([TxnOp::delete(grant.key.clone(), None)]);
        self.kv().txn(txn).await.map_err(map_err)?;
        self.forget_grant(&grant.key, grant.term as i64);
        Ok(())
    }

    /// [`Backend::leader`]: the first candidate of the queue.
    pub(crate) async fn read_leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.check_open()?;
        let (queue, _) = self.queue(election).await?;
        Ok(queue.first().map(|kv| LeaderRecord {
            term: kv.create_revision() as u64,
            value: kv.value().to_vec(),
            session: Some(SessionId(kv.lease() as u64)),
        }))
    }

    /// [`Backend::candidates`]: the queue, oldest first.
    pub(crate) async fn read_candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        self.check_open()?;
        let (queue, _) = self.queue(election).await?;
        Ok(queue
            .iter()
            .map(|kv| Candidate {
                term: kv.create_revision() as u64,
                value: kv.value().to_vec(),
            })
            .collect())
    }
}

/// Withdraws a candidate whose campaign was dropped: waits for the write that
/// creates it (it may still be in flight), then deletes it.
struct CandidateGuard {
    client: Arc<Client>,
    key: String,
    create: Option<JoinHandle<()>>,
    /// The candidate's create revision, once known.
    term: Option<i64>,
    armed: bool,
}

impl Drop for CandidateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, key, create, term) = (
            self.client.clone(),
            self.key.clone(),
            self.create.take(),
            self.term,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(create) = create {
                    let _ = create.await;
                }
                // Only the candidate this campaign made: if the revision is not
                // known yet, read it (a later campaign of ours makes a new one).
                let term = match term {
                    Some(term) => Some(term),
                    None => client
                        .kv_client()
                        .get(key.clone(), None)
                        .await
                        .ok()
                        .and_then(|r| r.kvs().first().map(|kv| kv.create_revision())),
                };
                if let Some(term) = term {
                    let txn = Txn::new()
                        .when([Compare::create_revision(
                            key.clone(),
                            CompareOp::Equal,
                            term,
                        )])
                        .and_then([TxnOp::delete(key, None)]);
                    let _ = client.kv_client().txn(txn).await;
                }
            });
        }
    }
}
