//! Keys and values: fenced writes (`check_fence`), get, list, watch, put and
//! delete.

use futures_util::stream::BoxStream;
use tenure_core::backend::support::{
    self, channel_stream, check_delete, check_put, check_queue_fence, check_value_size,
};
use tenure_core::{Backend, Error, Grant, Guard, KvEvent, Path, Result, SessionId, Versioned};

use crate::backend::{LocalBackend, MAX_VALUE_SIZE};
use crate::state::{State, Stored};

/// Whether `fence` (if any) is its election's current leadership. The grant
/// may be another process's (`tenure put --fence`): what counts is the state,
/// read under the directory lock after sessions of dead processes were reaped.
fn check_fence(state: &State, fence: Option<&Grant>) -> Result<()> {
    check_queue_fence(
        fence,
        |election| {
            let head = state.elections.get(election.as_str())?.first()?;
            Some((head.term, head.session))
        },
        |session| state.sessions.contains(&session),
    )
}

impl LocalBackend {
    /// [`Backend::get`]: the value of `key`, if any.
    pub(crate) async fn get_value(&self, key: &Path) -> Result<Option<Versioned>> {
        self.check_open()?;
        Ok(self.inner.load()?.kv.get(key.as_str()).map(|s| Versioned {
            value: s.value.clone(),
            version: s.version,
            owner: s.owner.map(SessionId),
        }))
    }

    /// [`Backend::list`]: the keys under `prefix`, with their values.
    pub(crate) async fn list_values(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.check_open()?;
        let state = self.inner.load()?;
        Ok(state
            .kv
            .range(prefix.as_str().to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .filter(|(k, _)| prefix.contains(k))
            .map(|(k, s)| {
                (
                    k.clone(),
                    Versioned {
                        value: s.value.clone(),
                        version: s.version,
                        owner: s.owner.map(SessionId),
                    },
                )
            })
            .collect())
    }

    /// [`Backend::watch`]: every change under `prefix` from now on.
    pub(crate) async fn watch_values(
        &self,
        prefix: &Path,
    ) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.check_open()?;
        let (tx, rx) = support::queue();
        let mut latest = self.inner.latest.subscribe();
        // Start from the state on disk now: every change after this is delivered.
        let mut seen = self.inner.load()?.revision;
        let prefix = prefix.clone();
        let mut status = self.session();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = latest.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = support::closed(&mut status) => return,
                }
                let state = latest.borrow_and_update().clone();
                if state.revision <= seen {
                    continue;
                }
                if state.log_floor > seen {
                    let _ = tx.send(Err(Error::unavailable(
                        "the watch fell behind the change log; list again and re-watch",
                    )));
                    return;
                }
                for change in state.log.iter().filter(|c| c.revision > seen) {
                    if !prefix.contains(&change.key) {
                        continue;
                    }
                    let event = match &change.value {
                        Some(stored) => KvEvent::Put {
                            key: change.key.clone(),
                            value: Versioned {
                                value: stored.value.clone(),
                                version: stored.version,
                                owner: stored.owner.map(SessionId),
                            },
                        },
                        None => KvEvent::Delete {
                            key: change.key.clone(),
                        },
                    };
                    if tx.send(Ok(event)).is_err() {
                        return;
                    }
                }
                seen = state.revision;
            }
        });
        Ok(channel_stream(rx))
    }

    /// [`Backend::put`]: writes `key`, fenced and conditionally.
    pub(crate) async fn put_value(
        &self,
        key: &Path,
        value: &[u8],
        guard: Guard<'_>,
    ) -> Result<u64> {
        self.check_open()?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let (key, value, condition) = (key.to_string(), value.to_vec(), guard.condition);
        let fence = guard.fence.cloned();
        let owner = match guard.ephemeral {
            true => Some(self.current_session().ok_or_else(|| {
                Error::unavailable("no session to tie an ephemeral value to; retry")
            })?),
            false => None,
        };
        self.inner
            .submit(move |state, _| {
                check_fence(state, fence.as_ref())?;
                if let Some(session) = owner.filter(|s| !state.sessions.contains(s)) {
                    return Err(Error::SessionExpired { session });
                }
                check_put(&key, condition, state.kv.get(&key).map(|v| v.version))?;
                let version = state.bump();
                let stored = Stored {
                    value,
                    version,
                    owner,
                };
                state.record(&key, Some(stored.clone()));
                state.kv.insert(key, stored);
                Ok(version)
            })
            .await
    }

    /// [`Backend::delete`]: removes `key`, fenced and conditionally.
    pub(crate) async fn delete_value(&self, key: &Path, guard: Guard<'_>) -> Result<bool> {
        self.check_open()?;
        let (key, condition, fence) = (key.to_string(), guard.condition, guard.fence.cloned());
        self.inner
            .submit(move |state, _| {
                check_fence(state, fence.as_ref())?;
                check_delete(&key, condition, state.kv.get(&key).map(|v| v.version))?;
                if state.kv.remove(&key).is_none() {
                    return Ok(false);
                }
                state.bump();
                state.record(&key, None);
                Ok(true)
            })
            .await
    }
}
