//! The leader election service: published leader information heals itself,
//! shared mode grants all components together, and close is quiet.

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{clients, election, next_grant, path, recorder, told, Told};
use crate::backend::{Condition, DynBackend, Guard, KvEvent, Versioned};
use crate::conformance::{within, TestCluster};
use crate::error::{Error, Result};
use crate::leader_election::{ElectionMode, LeaderElectionService};
use crate::leadership::LossReason;
use crate::name::Path;
use crate::retrieval::LeaderRetrieval;
use crate::ConnectionPolicy;

/// Published leader information is rewritten when someone deletes or
/// overwrites it while the leader leads.
pub async fn leader_information_self_heals(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("heal/leader/rest_server/connection_info");
    let service = LeaderElectionService::new(backends[0].clone(), "heal").unwrap();
    let le = service.create_leader_election("rest_server").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    le.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    le.confirm_leadership(sid, "http://10.0.0.1:8081")
        .await
        .unwrap();
    let published = backends[1].get(&key).await.unwrap().expect("published");
    let record = published.value;

    let mut events = backends[1].watch(&key).await.unwrap();
    // Waits until `record` is back at `key`, written after version `after`
    // (the test's own write). Only a newer write counts: a watch opened on a
    // lagging etcd member may still deliver changes from before it was
    // requested, such as the first publication. A watch may also end with a
    // retryable error when it cannot deliver every change (ZooKeeper's events
    // carry no data, and the leader rewrites at once); as the contract asks,
    // watch again and read.
    async fn restored(
        backend: &DynBackend,
        key: &Path,
        events: &mut BoxStream<'static, Result<KvEvent>>,
        record: &[u8],
        after: u64,
        what: &str,
    ) {
        let heals = |v: &Versioned| v.value == record && v.version > after;
        loop {
            match within(what, events.next()).await.expect("the watch ended") {
                Ok(KvEvent::Put { value, .. }) if heals(&value) => return,
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    *events = backend.watch(key).await.unwrap();
                    if backend.get(key).await.unwrap().is_some_and(|v| heals(&v)) {
                        return;
                    }
                }
                Err(e) => panic!("the watch failed while awaiting {what}: {e}"),
            }
        }
    }
    // Conditional, so the republish that follows cannot be one that merely
    // raced ahead of the delete.
    assert!(backends[1]
        .delete(&key, Guard::when(Condition::Version(published.version)))
        .await
        .unwrap());
    restored(
        &backends[1],
        &key,
        &mut events,
        &record,
        published.version,
        "the deleted information to be republished",
    )
    .await;
    let garbage = backends[1]
        .put(&key, b"{\"garbage\":1}", Guard::ANY)
        .await
        .unwrap();
    restored(
        &backends[1],
        &key,
        &mut events,
        &record,
        garbage,
        "the overwritten information to be republished",
    )
    .await;
    let current = LeaderRetrieval::new(backends[1].clone(), "heal", "rest_server")
        .unwrap()
        .current()
        .await
        .unwrap()
        .expect("a leader");
    assert_eq!(
        (current.address.as_str(), current.session_id),
        ("http://10.0.0.1:8081", sid)
    );
    service.close().await;
}

/// In shared mode every component of a process is granted together under one
/// session id; in per-component mode each has its own election.
pub async fn shared_mode_grants_all_components_together(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let components = ["resource_manager", "dispatcher", "rest_server"];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut services = Vec::new();
    for (p, b) in backends.iter().enumerate() {
        let service = LeaderElectionService::new(b.clone(), "shared").unwrap();
        let mut les = Vec::new();
        for (c, component) in components.iter().enumerate() {
            let le = service.create_leader_election(component).unwrap();
            le.start(recorder(p * 10 + c, &tx)).unwrap();
            les.push(le);
        }
        services.push((service, les));
    }
    let mut grants = Vec::new();
    for _ in 0..3 {
        grants.push(next_grant(&mut rx).await);
    }
    let process = grants[0].0 / 10;
    assert!(
        grants.iter().all(|(tag, _)| tag / 10 == process),
        "{grants:?}"
    );
    assert!(
        grants.iter().all(|(_, sid)| *sid == grants[0].1),
        "{grants:?}"
    );
    for (i, le) in services[process].1.iter().enumerate() {
        assert!(le.has_leadership(grants[0].1), "component {i}");
    }
    services[process].0.close().await;
    let mut next = Vec::new();
    for _ in 0..3 {
        next.push(next_grant(&mut rx).await);
    }
    assert!(
        next.iter().all(|(tag, _)| tag / 10 == 1 - process),
        "{next:?}"
    );
    assert!(next
        .iter()
        .all(|(_, sid)| *sid == next[0].1 && *sid != grants[0].1));
    services[1 - process].0.close().await;

    let per = LeaderElectionService::with_mode(
        backends[0].clone(),
        "per-component",
        ElectionMode::PerComponent,
        ConnectionPolicy::default(),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let x = per.create_leader_election("x").unwrap();
    let y = per.create_leader_election("y").unwrap();
    x.start(recorder(0, &tx)).unwrap();
    y.start(recorder(1, &tx)).unwrap();
    let (_, s1) = next_grant(&mut rx).await;
    let (_, s2) = next_grant(&mut rx).await;
    assert_ne!(s1, s2, "per-component elections shared a session id");
    per.close().await;
}

/// How long a closed party must stay silent while provoked.
const QUIET: std::time::Duration = std::time::Duration::from_millis(500);

/// After `close()` returns, no callback fires and nothing is written on the
/// closed party's behalf.
pub async fn close_is_quiet(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("quiet/leader/dispatcher/connection_info");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = LeaderElectionService::new(backends[0].clone(), "quiet").unwrap();
    let a_le = a.create_leader_election("dispatcher").unwrap();
    a_le.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    a_le.confirm_leadership(sid, "a:1").await.unwrap();
    let b = LeaderElectionService::new(backends[1].clone(), "quiet").unwrap();
    let b_le = b.create_leader_election("dispatcher").unwrap();
    b_le.start(recorder(1, &tx)).unwrap();

    a_le.close().await;
    let mut events = backends[1].watch(&key).await.unwrap();
    let (tag, told_b) = told(&mut rx, "b's grant").await;
    let Told::Granted(sid_b) = told_b else {
        panic!("after a closed, the next callback was {told_b:?} to contender {tag}");
    };
    assert_eq!(tag, 1, "the closed contender was called back");
    b_le.confirm_leadership(sid_b, "b:1").await.unwrap();
    cluster.expire_session(&backends[0]).await.unwrap();
    // b's confirmation is the only write; then b closes, deleting it.
    match within("b's confirmation", events.next())
        .await
        .unwrap()
        .unwrap()
    {
        KvEvent::Put { value, .. } => {
            assert!(String::from_utf8_lossy(&value.value).contains("b:1"));
        }
        other => panic!("unexpected write after close: {other:?}"),
    }
    b_le.close().await;
    assert!(matches!(
        within("b's removal", events.next()).await.unwrap().unwrap(),
        KvEvent::Delete { .. }
    ));
    a.close().await;
    b.close().await;
    drop((a_le, b_le));
    // Provoke what would make a live leader act — its leader information
    // overwritten, then deleted (a leader heals both) — and require silence
    // for a while: no callback, no write but the provoking ones.
    backends[1].put(&key, b"provoke", Guard::ANY).await.unwrap();
    backends[1].delete(&key, Guard::ANY).await.unwrap();
    match within("the provoking write", events.next())
        .await
        .unwrap()
        .unwrap()
    {
        KvEvent::Put { value, .. } => assert_eq!(value.value, b"provoke"),
        other => panic!("unexpected change after close: {other:?}"),
    }
    assert!(matches!(
        within("the provoking delete", events.next())
            .await
            .unwrap()
            .unwrap(),
        KvEvent::Delete { .. }
    ));
    let noise = tokio::time::timeout(QUIET, async {
        tokio::select! {
            told = rx.recv() => format!("a callback after close: {told:?}"),
            event = events.next() => format!("a write after close: {event:?}"),
        }
    })
    .await;
    if let Ok(noise) = noise {
        panic!("{noise}");
    }

    let e = election(&backends[1], "quiet-election", "b");
    let leadership = e.campaign().await.unwrap();
    e.close().await;
    assert_eq!(leadership.loss_reason(), Some(LossReason::Closed));
    assert!(leadership.token().is_cancelled());
    assert!(matches!(e.campaign().await, Err(Error::Closed { .. })));
    assert_eq!(
        backends[1].leader(&path("quiet-election")).await.unwrap(),
        None
    );
}
