//! What `tenure run` and `tenure campaign` publish about their leadership, and
//! how `tenure resign` asks them to step down.
//!
//! Two keys per election, in the backend's key-value namespace:
//!
//! ```text
//! tenure/holders/<election>   the holder record: id, term, since, address (fenced write)
//! tenure/resign/<election>    a resign request: {"term": N}
//! ```
//!
//! A holder record counts only while its term is the election's current term,
//! so a stale one (left by a holder that died) is never shown as the leader.

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tenure::{DynBackend, Error, Guard, KvEvent, Leadership, Path, Result};
use uuid::Uuid;

use crate::common::hostname;
use crate::time::now_ms;

/// Who holds an election, as its holder published it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    /// The candidate id.
    pub(crate) id: String,
    /// The term of the leadership.
    pub(crate) term: u64,
    /// The leader session id of the leadership.
    pub(crate) session_id: Uuid,
    /// When it was granted, in milliseconds since the Unix epoch.
    pub(crate) since_ms: u64,
    /// The address the holder published, if any.
    #[serde(default)]
    pub(crate) address: Option<String>,
    /// The holder's host.
    #[serde(default)]
    pub(crate) host: String,
    /// The holder's process id.
    #[serde(default)]
    pub(crate) pid: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct ResignRequest {
    term: u64,
}

/// The key of `election`'s holder record.
pub(crate) fn holder_key(election: &str) -> Result<Path> {
    Path::parse("key", &format!("tenure/holders/{election}"))
}

/// The key of `election`'s resign request.
pub(crate) fn resign_key(election: &str) -> Result<Path> {
    Path::parse("key", &format!("tenure/resign/{election}"))
}

/// Publishes the holder record of `leadership`, fenced by it.
pub(crate) async fn publish(
    leadership: &Leadership,
    election: &str,
    id: &str,
    address: Option<&str>,
) -> Result<Holder> {
    let holder = Holder {
        id: id.to_owned(),
        term: leadership.term(),
        session_id: leadership.session_id(),
        since_ms: now_ms(),
        address: address.map(str::to_owned),
        host: hostname(),
        pid: std::process::id(),
    };
    let bytes = serde_json::to_vec(&holder).expect("a holder record always serializes");
    leadership.put(&holder_key(election)?, &bytes).await?;
    Ok(holder)
}

/// The holder record of `election`, if any (possibly stale: compare terms).
pub(crate) async fn read(backend: &DynBackend, election: &str) -> Result<Option<Holder>> {
    let key = holder_key(election)?;
    match backend.get(&key).await? {
        None => Ok(None),
        Some(stored) => decode(&key, &stored.value).map(Some),
    }
}

/// Decodes a holder record stored at `key`.
pub(crate) fn decode(key: &Path, bytes: &[u8]) -> Result<Holder> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupted {
        key: key.to_string(),
        reason: format!("not a tenure holder record: {e}"),
    })
}

/// Asks the holder of `election` with `term` to resign.
pub(crate) async fn request_resign(backend: &DynBackend, election: &str, term: u64) -> Result<()> {
    let bytes = serde_json::to_vec(&ResignRequest { term }).expect("always serializes");
    backend
        .put(&resign_key(election)?, &bytes, Guard::ANY)
        .await?;
    Ok(())
}

/// Resolves when someone asks the holder of `election` with `term` to resign
/// (see [`request_resign`]). If the watch fails, it never resolves: a resign
/// request is a courtesy, not part of the safety of leadership.
/// The bookkeeping after a grant, done after the leader has acted: publishes
/// the holder record and watches for a resign request, both at once.
/// Resolves when a resign request for this term arrives (one made before the
/// watch existed included: the watch is opened before the key is read).
/// Failures are logged and do not end leadership (the loss is watched
/// elsewhere); without a watch, the future never resolves.
pub(crate) async fn bookkeeping(
    leadership: &Leadership,
    backend: &DynBackend,
    election: &str,
    id: &str,
    address: Option<&str>,
) {
    let (published, requested) = tokio::join!(
        publish(leadership, election, id, address),
        resign_requested(backend, election, leadership.term()),
    );
    if let Err(e) = published {
        // Lost already, or the backend is unreachable: the loss is handled
        // where leadership is watched.
        tracing::warn!(error = %e, "cannot publish the holder record");
    }
    match requested {
        Ok(requested) => requested.await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for resign requests");
            std::future::pending().await
        }
    }
}

pub(crate) async fn resign_requested(
    backend: &DynBackend,
    election: &str,
    term: u64,
) -> Result<BoxFuture<'static, ()>> {
    let key = resign_key(election)?;
    // Watch first, then read, so no request falls between the two.
    let mut events = backend.watch(&key).await?;
    let wanted = move |bytes: &[u8]| {
        serde_json::from_slice::<ResignRequest>(bytes).is_ok_and(|r| r.term == term)
    };
    if backend
        .get(&key)
        .await?
        .is_some_and(|stored| wanted(&stored.value))
    {
        return Ok(futures_util::future::ready(()).boxed());
    }
    Ok(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(KvEvent::Put { value, .. }) if wanted(&value.value) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "resign request watch failed");
                    break;
                }
            }
        }
        std::future::pending().await
    }
    .boxed())
}
