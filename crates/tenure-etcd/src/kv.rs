//! Key-value data under `<prefix>/~kv/`: reads, lists, watches and fenced or
//! conditional writes.

use etcd_client::{
    Compare, CompareOp, DeleteOptions, EventType, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures_util::stream::BoxStream;
use tenure_core::backend::support::{
    channel_stream, check_delete_condition, check_value_size, closed, queue,
};
use tenure_core::{Backend, Condition, Error, Grant, Guard, KvEvent, Path, Result, Versioned};

use crate::backend::{EtcdBackend, MAX_VALUE_SIZE};
use crate::error::map_err;
use crate::keys::Keys;

fn kv_versioned(kv: &KeyValue) -> Versioned {
    Versioned {
        value: kv.value().to_vec(),
        version: kv.mod_revision() as u64,
        owner: (kv.lease() != 0).then_some(tenure_core::SessionId(kv.lease() as u64)),
    }
}

impl EtcdBackend {
    /// [`Backend::get`].
    pub(crate) async fn get_value(&self, key: &Path) -> Result<Option<Versioned>> {
        self.check_open()?;
        let r = self
            .kv()
            .get(self.inner.keys.kv(key), None)
            .await
            .map_err(map_err)?;
        Ok(r.kvs().first().map(kv_versioned))
    }

    /// [`Backend::list`].
    pub(crate) async fn list_values(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.check_open()?;
        let r = self
            .kv()
            .get(
                self.inner.keys.kv(prefix),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(map_err)?;
        let mut listed = Vec::new();
        for kv in r.kvs() {
            let name = self
                .inner
                .keys
                .kv_name(kv.key())
                .map_err(|reason| Error::Corrupted {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    reason,
                })?;
            if prefix.contains(name) {
                listed.push((name.to_owned(), kv_versioned(kv)));
            }
        }
        Ok(listed)
    }

    /// [`Backend::watch`]: over the process's watch hub.
    pub(crate) async fn watch_values(
        &self,
        prefix: &Path,
    ) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.check_open()?;
        // From now on: the watch is confirmed by etcd before this returns, so
        // every later change is delivered, without a catch-up delay.
        let mut watch = self
            .inner
            .hub
            .watch(
                self.inner.keys.kv(prefix),
                WatchOptions::new().with_prefix(),
            )
            .await?;
        let (tx, rx) = queue();
        let (keys, prefix) = (self.inner.keys.clone(), prefix.clone());
        let mut status = self.session();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = watch.next() => m,
                    _ = tx.closed() => return,
                    _ = closed(&mut status) => return,
                };
                let events = match message {
                    Some(Ok(events)) => events,
                    // Compacted past our position, or a broken stream: the
                    // caller lists again and re-watches.
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    None => {
                        let _ = tx.send(Err(Error::unavailable("the watch ended")));
                        return;
                    }
                };
                for event in &events {
                    let Some(kv) = event.kv() else { continue };
                    let name = match keys.kv_name(kv.key()) {
                        Ok(name) => name,
                        Err(reason) => {
                            let _ = tx.send(Err(Error::Corrupted {
                                key: String::from_utf8_lossy(kv.key()).into_owned(),
                                reason,
                            }));
                            continue;
                        }
                    };
                    if !prefix.contains(name) {
                        continue;
                    }
                    let event = match event.event_type() {
                        EventType::Put => KvEvent::Put {
                            key: name.to_owned(),
                            value: kv_versioned(kv),
                        },
                        EventType::Delete => KvEvent::Delete {
                            key: name.to_owned(),
                        },
                    };
                    if tx.send(Ok(event)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(channel_stream(rx))
    }

    /// [`Backend::put`]: one transaction, fenced and conditional.
    pub(crate) async fn put_value(
        &self,
        key: &Path,
        value: &[u8],
        guard: Guard<'_>,
    ) -> Result<u64> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        self.check_fence_key(guard.fence)?;
        let etcd_key = self.inner.keys.kv(key);
        // An ephemeral value rides on the session's lease: it goes when the
        // lease is revoked or expires.
        let options = guard
            .ephemeral
            .then(|| PutOptions::new().with_lease(self.inner.status.borrow().id.0 as i64));
        let txn = Txn::new()
            .when(self.compares(&etcd_key, guard))
            .and_then([TxnOp::put(etcd_key.clone(), value.to_vec(), options)]);
        let response = self.kv().txn(txn).await.map_err(map_err)?;
        if response.succeeded() {
            return Ok(response.header().map_or(0, |h| h.revision()) as u64);
        }
        Err(self.explain(&etcd_key, guard, key).await)
    }

    /// [`Backend::delete`]: one transaction, fenced and conditional.
    pub(crate) async fn delete_value(&self, key: &Path, guard: Guard<'_>) -> Result<bool> {
        self.check_open()?;
        check_delete_condition(guard.condition)?;
        self.check_fence_key(guard.fence)?;
        let etcd_key = self.inner.keys.kv(key);
        let txn = Txn::new()
            .when(self.compares(&etcd_key, guard))
            .and_then([TxnOp::delete(etcd_key.clone(), Some(DeleteOptions::new()))]);
        let response = self.kv().txn(txn).await.map_err(map_err)?;
        if response.succeeded() {
            return Ok(matches!(
                response.op_responses().first(),
                Some(TxnOpResponse::Delete(d)) if d.deleted() > 0
            ));
        }
        let err = self.explain(&etcd_key, guard, key).await;
        Err(match err {
            Error::VersionMismatch { actual: None, .. } => Error::NotFound {
                key: key.to_string(),
            },
            other => other,
        })
    }

    /// Refuses a fence whose candidate key is not one of its election's: the
    /// transaction compares that key alone, so a grant from another process
    /// (`tenure put --fence`) must not name a key of another election.
    fn check_fence_key(&self, fence: Option<&Grant>) -> Result<()> {
        match fence {
            Some(grant)
                if !Keys::is_candidate(
                    &self.inner.keys.election(&grant.election),
                    grant.key.as_bytes(),
                ) =>
            {
                Err(Error::fenced(&grant.election, grant.term))
            }
            _ => Ok(()),
        }
    }

    /// Explains a failed fenced or conditional transaction.
    async fn explain(&self, key: &str, guard: Guard<'_>, name: &Path) -> Error {
        let Guard {
            condition, fence, ..
        } = guard;
        if let Some(grant) = fence {
            match self.kv().get(grant.key.clone(), None).await {
                Ok(r)
                    if r.kvs().first().map(|kv| kv.create_revision() as u64)
                        == Some(grant.term) => {}
                Ok(_) => return Error::fenced(&grant.election, grant.term),
                Err(e) => return map_err(e),
            }
        }
        let current = match self.kv().get(key, None).await {
            Ok(r) => r.kvs().first().map(|kv| kv.mod_revision() as u64),
            Err(e) => return map_err(e),
        };
        match (condition, current) {
            (Condition::Absent, Some(_)) => Error::AlreadyExists {
                key: name.to_string(),
            },
            (Condition::Version(expected), actual) => Error::VersionMismatch {
                key: name.to_string(),
                expected,
                actual,
            },
            _ => {
                Error::unavailable("a conditional write failed and then its condition held; retry")
            }
        }
    }

    fn compares(&self, key: &str, guard: Guard<'_>) -> Vec<Compare> {
        let Guard {
            condition, fence, ..
        } = guard;
        let mut compares = Vec::new();
        if let Some(grant) = fence {
            // The leadership is current iff its candidate still exists as
            // created: once first in its queue, a candidate stays first.
            compares.push(Compare::create_revision(
                grant.key.clone(),
                CompareOp::Equal,
                grant.term as i64,
            ));
        }
        match condition {
            Condition::Any => {}
            Condition::Absent => compares.push(Compare::create_revision(key, CompareOp::Equal, 0)),
            Condition::Version(v) => {
                compares.push(Compare::mod_revision(key, CompareOp::Equal, v as i64))
            }
        }
        compares
    }
}
