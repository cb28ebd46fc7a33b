//! Values: persistent znodes read, listed and watched, and written alone or,
//! fenced, in one `multi` behind a check that the leader's candidate node
//! still exists.

use std::sync::Arc;

use futures_util::future::join_all;
use futures_util::stream::BoxStream;
use tenure_core::backend::support::{
    channel_stream, check_delete_condition, check_value_size, closed, queue,
};
use tenure_core::{Backend, Condition, Error, Grant, Guard, KvEvent, Path, Result, Versioned};
use zookeeper_client::{
    AddWatchMode, Client, CreateMode, EventType, MultiWriteError, MultiWriteResult,
    SessionState as ZkState, Stat,
};

use crate::backend::{ZkBackend, MAX_VALUE_SIZE, WRITE_ATTEMPTS};
use crate::error::map_err;
use crate::keys;
use crate::session::session_id;

/// Why a (possibly fenced) write failed.
enum WriteError {
    /// The fence's candidate node is gone: the leadership is over.
    Fenced,
    /// The write itself failed (its version check, a missing parent, ...).
    Op(zookeeper_client::Error),
}

/// One write, alone or behind the fence check.
enum Op<'a> {
    /// A new node, ephemeral (of the writer's session) or persistent.
    Create(&'a str, &'a [u8], bool),
    Set(&'a str, &'a [u8], Option<i32>),
    Delete(&'a str, Option<i32>),
    /// Delete at a version and create again, in one `multi`: to change a
    /// node's lifetime (ephemeral or not, and whose), which only creation sets.
    Replace(&'a str, &'a [u8], i32, bool),
}

fn versioned(value: Vec<u8>, stat: &Stat) -> Versioned {
    Versioned {
        value,
        version: stat.mzxid as u64,
        owner: (stat.ephemeral_owner != 0)
            .then_some(tenure_core::SessionId(stat.ephemeral_owner as u64)),
    }
}

/// Commits a `multi` whose first `checks` operations are the fence check;
/// returns the stat of its last operation if it wrote a node.
async fn commit(
    mut multi: zookeeper_client::MultiWriter<'_>,
    checks: usize,
) -> std::result::Result<Option<Stat>, WriteError> {
    match multi.commit().await {
        Ok(mut results) => match results.pop() {
            Some(MultiWriteResult::Create { stat, .. } | MultiWriteResult::SetData { stat }) => {
                Ok(Some(stat))
            }
            _ => Ok(None),
        },
        Err(MultiWriteError::OperationFailed { index, source }) if index < checks => match source {
            zookeeper_client::Error::NoNode | zookeeper_client::Error::BadVersion => {
                Err(WriteError::Fenced)
            }
            other => Err(WriteError::Op(other)),
        },
        // The fence's session ended: so did its candidate.
        Err(MultiWriteError::RequestFailed {
            source: zookeeper_client::Error::SessionExpired,
        }) if checks > 0 => Err(WriteError::Fenced),
        Err(MultiWriteError::OperationFailed { source, .. })
        | Err(MultiWriteError::RequestFailed { source }) => Err(WriteError::Op(source)),
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
    Error::fenced(&grant.election, grant.term)
}

impl ZkBackend {
    /// Runs `op`, behind a check that `fence`'s candidate node still exists
    /// when a fence is given, all in one `multi`. Returns the written node's
    /// stat (`None` for a delete).
    async fn write(
        &self,
        client: &Client,
        fence: Option<&Grant>,
        op: Op<'_>,
    ) -> std::result::Result<Option<Stat>, WriteError> {
        let acls = self.shared().acls();
        let persistent = CreateMode::Persistent.with_acls(acls);
        let ephemeral = CreateMode::Ephemeral.with_acls(acls);
        let mode = |ephemeral_node: bool| match ephemeral_node {
            true => &ephemeral,
            false => &persistent,
        };
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
                Op::Create(path, data, eph) => client
                    .create(path, data, mode(eph))
                    .await
                    .map(|(stat, _)| Some(stat)),
                Op::Replace(path, data, version, eph) => {
                    let mut multi = client.new_multi_writer();
                    multi
                        .add_delete(path, Some(version))
                        .and_then(|()| multi.add_create(path, data, mode(eph)))
                        .map_err(WriteError::Op)?;
                    return commit(multi, 0).await;
                }
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
                Op::Create(path, data, eph) => multi.add_create(path, data, mode(eph)),
                Op::Set(path, data, version) => multi.add_set_data(path, data, version),
                Op::Delete(path, version) => multi.add_delete(path, version),
                Op::Replace(path, data, version, eph) => multi
                    .add_delete(path, Some(version))
                    .and_then(|()| multi.add_create(path, data, mode(eph))),
            });
        added.map_err(WriteError::Op)?;
        commit(multi, 1).await
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

    /// [`Backend::get`]: the value at `key`.
    pub(crate) async fn get_value(&self, key: &Path) -> Result<Option<Versioned>> {
        self.check_open()?;
        keys::check_key(key)?;
        let client = self.shared().live_client().await?;
        let node = keys::node(key);
        match client.get_data(&node).await {
            Ok((data, stat)) => Ok(keys::decode_value(self.layout(), &node, &data)?
                .map(|value| versioned(value, &stat))),
            Err(zookeeper_client::Error::NoNode) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// [`Backend::list`]: the values at and below `prefix`, sorted by key.
    pub(crate) async fn list_values(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
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
                if let Some(value) = keys::decode_value(self.layout(), node, &data)? {
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

    /// [`Backend::watch`]: the changes to the values at and below `prefix`.
    pub(crate) async fn watch_values(
        &self,
        prefix: &Path,
    ) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.check_open()?;
        let client = self.shared().live_client().await?;
        let root = keys::node(prefix);
        let mut watcher = client
            .watch(&root, AddWatchMode::PersistentRecursive)
            .await
            .map_err(map_err)?;
        drop(client);
        let (tx, rx) = queue();
        let shared = Arc::downgrade(self.shared());
        let mut status = self.session();
        let layout = self.layout();
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
                            Ok((data, stat)) => match keys::decode_value(layout, &node, &data) {
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

    /// [`Backend::put`]: writes the value at `key` if `condition` and `fence`
    /// hold.
    pub(crate) async fn put_value(
        &self,
        key: &Path,
        value: &[u8],
        guard: Guard<'_>,
    ) -> Result<u64> {
        self.check_open()?;
        keys::check_key(key)?;
        check_value_size(value, MAX_VALUE_SIZE)?;
        let node = keys::node(key);
        let data = keys::encode_value(self.layout(), value)?;
        let fail = |e: WriteError, grant: Option<&Grant>| match (e, grant) {
            (WriteError::Fenced, Some(grant)) => fenced(grant),
            (WriteError::Fenced, None) => Error::unavailable("fence check without a fence"),
            (WriteError::Op(e), _) => map_err(e),
        };
        for _ in 0..WRITE_ATTEMPTS {
            let client = self.shared().live_client().await?;
            // The node as it is, for the conditions that need it, and for an
            // ephemeral write (its lifetime is set only at creation).
            let current = match guard.condition {
                Condition::Any if !guard.ephemeral => None,
                _ => match client.get_data(&node).await {
                    Ok((data, stat)) => {
                        Some((keys::decode_value(self.layout(), &node, &data)?, stat))
                    }
                    Err(zookeeper_client::Error::NoNode) => None,
                    Err(e) => return Err(read_err(e, guard.fence)),
                },
            };
            let eph = guard.ephemeral;
            let mine = session_id(&client).0 as i64;
            let op = match (guard.condition, &current) {
                (Condition::Absent, Some((Some(_), _))) => {
                    self.check_fence(&client, guard.fence).await?;
                    return Err(Error::AlreadyExists {
                        key: key.to_string(),
                    });
                }
                (Condition::Version(expected), current) if !matches!(current, Some((Some(_), stat)) if stat.mzxid as u64 == expected) =>
                {
                    self.check_fence(&client, guard.fence).await?;
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
                // Not read: a plain write to whatever is there.
                (Condition::Any, None) if !eph => Op::Set(&node, &data, None),
                (_, None) => Op::Create(&node, &data, eph),
                // A value or a directory (which holds no value: writing one
                // is a create), as it was read: set it if its lifetime is
                // the one wanted, else make it again with that lifetime.
                (_, Some((_, stat))) => {
                    let fits = match eph {
                        true => stat.ephemeral_owner == mine,
                        false => stat.ephemeral_owner == 0,
                    };
                    match fits {
                        true => Op::Set(&node, &data, Some(stat.version)),
                        false => Op::Replace(&node, &data, stat.version, eph),
                    }
                }
            };
            let creating = matches!(op, Op::Create(..));
            match self.write(&client, guard.fence, op).await {
                // A plain write landed in an ephemeral node: make it lasting
                // (its data is already the new value; only creation sets a
                // lifetime). A write in between decides instead.
                Ok(Some(stat)) if !eph && stat.ephemeral_owner != 0 => {
                    match self
                        .write(
                            &client,
                            guard.fence,
                            Op::Replace(&node, &data, stat.version, false),
                        )
                        .await
                    {
                        Ok(stat) => return self.written(&client, &node, stat).await,
                        Err(WriteError::Op(
                            zookeeper_client::Error::BadVersion | zookeeper_client::Error::NoNode,
                        )) => return Ok(stat.mzxid as u64),
                        Err(e) => return Err(fail(e, guard.fence)),
                    }
                }
                Ok(stat) => return self.written(&client, &node, stat).await,
                Err(WriteError::Op(zookeeper_client::Error::NoNode)) => {
                    if creating {
                        self.make_parents(&client, &node).await?;
                    } else if guard.condition == Condition::Any {
                        // Not there yet: create it (the next round sets it if
                        // someone else creates it first).
                        match self
                            .write(&client, guard.fence, Op::Create(&node, &data, eph))
                            .await
                        {
                            Ok(stat) => return self.written(&client, &node, stat).await,
                            Err(WriteError::Op(zookeeper_client::Error::NoNode)) => {
                                self.make_parents(&client, &node).await?;
                            }
                            Err(WriteError::Op(zookeeper_client::Error::NodeExists)) => {}
                            Err(e) => return Err(fail(e, guard.fence)),
                        }
                    }
                }
                // Someone got in between our read and the write: look again.
                Err(WriteError::Op(
                    zookeeper_client::Error::NodeExists | zookeeper_client::Error::BadVersion,
                )) => {}
                Err(e) => return Err(fail(e, guard.fence)),
            }
        }
        Err(Error::unavailable(format!(
            "{key} kept changing under the write; retry"
        )))
    }

    /// [`Backend::delete`]: deletes the value at `key` if `condition` and
    /// `fence` hold.
    pub(crate) async fn delete_value(&self, key: &Path, guard: Guard<'_>) -> Result<bool> {
        self.check_open()?;
        keys::check_key(key)?;
        check_delete_condition(guard.condition)?;
        let node = keys::node(key);
        for _ in 0..WRITE_ATTEMPTS {
            let client = self.shared().live_client().await?;
            let current = match client.get_data(&node).await {
                Ok((data, stat)) => Some((keys::decode_value(self.layout(), &node, &data)?, stat)),
                Err(zookeeper_client::Error::NoNode) => None,
                Err(e) => return Err(read_err(e, guard.fence)),
            };
            let stat = match (&current, guard.condition) {
                (Some((Some(_), stat)), Condition::Version(expected))
                    if stat.mzxid as u64 != expected =>
                {
                    self.check_fence(&client, guard.fence).await?;
                    return Err(Error::VersionMismatch {
                        key: key.to_string(),
                        expected,
                        actual: Some(stat.mzxid as u64),
                    });
                }
                (Some((Some(_), stat)), _) => stat,
                (_, Condition::Version(_)) => {
                    self.check_fence(&client, guard.fence).await?;
                    return Err(Error::NotFound {
                        key: key.to_string(),
                    });
                }
                _ => {
                    self.check_fence(&client, guard.fence).await?;
                    return Ok(false);
                }
            };
            // A node with children stays, as a directory without a value.
            let op = if stat.num_children > 0 {
                Op::Set(&node, &[], Some(stat.version))
            } else {
                Op::Delete(&node, Some(stat.version))
            };
            match self.write(&client, guard.fence, op).await {
                Ok(_) => return Ok(true),
                Err(WriteError::Fenced) => {
                    return Err(match guard.fence {
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
}
