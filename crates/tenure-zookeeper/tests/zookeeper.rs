//! ZooKeeper-specific behaviour: ACLs, bad input, foreign data, negotiated
//! session timeouts and the fenced write as one `multi`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenure_core::{Backend, Condition, DynBackend, ElectionFactory, Error, Guard, Path};
use tenure_testkit::ZkCluster;
use tenure_zookeeper::{ZkBackend, ZkConfig};
use zookeeper_client::{Acls, Client, CreateMode};

fn key(k: &str) -> Path {
    Path::parse("key", k).unwrap()
}

/// A raw client without credentials, rooted at `/<chroot>`.
async fn raw(chroot: &str) -> Client {
    let client = Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .connect(&ZkCluster::shared().connect_string())
        .await
        .expect("raw client");
    client.chroot(format!("/{chroot}")).expect("chroot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_digest_credentials_nodes_cannot_be_changed_without_them() {
    let chroot = common::fresh_chroot();
    let config = common::config(ZkCluster::shared(), &chroot)
        .with_digest("flink", "s3cret")
        .unwrap();
    assert!(!format!("{config:?}").contains("s3cret"));
    let owner: DynBackend = Arc::new(ZkBackend::connect(config.clone()).await.unwrap());
    owner
        .put(&key("jobs/j1"), b"plan", Guard::ANY)
        .await
        .unwrap();
    let leadership = ElectionFactory::new(owner.clone())
        .new_election("latch")
        .unwrap()
        .campaign()
        .await
        .unwrap();
    leadership.put(&key("jobs/j2"), b"fenced").await.unwrap();

    let stranger = raw(&chroot).await;
    // Anyone may read...
    let (data, _) = stranger.get_data("/jobs/j1").await.unwrap();
    assert!(data.ends_with(b"plan"));
    // ...but not overwrite or delete a value, or remove the leader's candidate.
    let err = stranger
        .set_data("/jobs/j1", b"evil", None)
        .await
        .unwrap_err();
    assert_eq!(err, zookeeper_client::Error::NoAuth);
    let err = stranger.delete("/jobs/j1", None).await.unwrap_err();
    assert_eq!(err, zookeeper_client::Error::NoAuth);
    let err = stranger
        .delete(&leadership.grant().key, None)
        .await
        .unwrap_err();
    assert_eq!(err, zookeeper_client::Error::NoAuth);
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let err = stranger
        .create("/jobs/j3", b"x", &options)
        .await
        .unwrap_err();
    assert_eq!(err, zookeeper_client::Error::NoAuth);
    assert!(leadership.is_held());

    // A tenure client without the credentials gets a typed, clear error.
    let anonymous: DynBackend = Arc::new(
        ZkBackend::connect(common::config(ZkCluster::shared(), &chroot))
            .await
            .unwrap(),
    );
    let err = anonymous
        .put(&key("jobs/j1"), b"evil", Guard::ANY)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Backend { ref message, .. } if message.contains("not authorized")),
        "{err}"
    );
    assert_eq!(
        owner.get(&key("jobs/j1")).await.unwrap().unwrap().value,
        b"plan"
    );

    // The same credentials in another process may.
    let peer: DynBackend = Arc::new(ZkBackend::connect(config).await.unwrap());
    peer.put(&key("jobs/j1"), b"v2", Guard::ANY).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_data_under_tenure_paths_is_a_corruption_naming_the_node() {
    let chroot = common::fresh_chroot();
    let backend = ZkBackend::connect(common::config(ZkCluster::shared(), &chroot))
        .await
        .unwrap();
    let stranger = raw(&chroot).await;
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    stranger.mkdir("/ha/jobgraphs", &options).await.unwrap();
    stranger
        .create("/ha/jobgraphs/j1", b"\xac\xed java-serialized", &options)
        .await
        .unwrap();
    for err in [
        backend.get(&key("ha/jobgraphs/j1")).await.unwrap_err(),
        backend.list(&key("ha")).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::Corrupted { ref key, .. } if key == "/ha/jobgraphs/j1"),
            "{err}"
        );
    }
    // Nothing is overwritten silently: a create-if-absent refuses, the data stays.
    let err = backend
        .put(
            &key("ha/jobgraphs/j1"),
            b"mine",
            Guard::when(Condition::Absent),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    let (data, _) = stranger.get_data("/ha/jobgraphs/j1").await.unwrap();
    assert_eq!(data, b"\xac\xed java-serialized");
    // Keys named like candidates are refused: they belong to elections.
    let err = backend
        .put(&key("ha/_c_x-latch-0000000001"), b"v", Guard::ANY)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "key", .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_negotiated_session_timeout_is_reported() {
    let server = ZkCluster::shared();
    // The test kit's servers allow 1 s to 60 s; ask for less.
    let config = common::config(server, &common::fresh_chroot())
        .with_session_timeout(Duration::from_millis(500))
        .unwrap();
    let backend = ZkBackend::connect(config).await.unwrap();
    assert_eq!(
        backend.negotiated_session_timeout(),
        Duration::from_millis(server.options().min_session_timeout_ms.into())
    );
    let deadline = backend
        .session()
        .borrow()
        .renew_deadline
        .expect("a deadline");
    assert!(deadline <= tokio::time::Instant::now() + Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_fail_retryably_within_the_connect_timeout() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ZkConfig::new(&[format!("127.0.0.1:{port}")])
        .unwrap()
        .with_connect_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let err = ZkBackend::connect(config).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for bad in ["zk://", "zk://h:1/a//b", "zk://h:1/x?session_timeout=0s"] {
        let err = tenure_core::BackendUrl::parse(bad)
            .and_then(|url| ZkConfig::from_url(&url))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leaders_multi_changes_nothing() {
    let chroot = common::fresh_chroot();
    let a: DynBackend = Arc::new(
        ZkBackend::connect(common::config(ZkCluster::shared(), &chroot))
            .await
            .unwrap(),
    );
    let b: DynBackend = Arc::new(
        ZkBackend::connect(common::config(ZkCluster::shared(), &chroot))
            .await
            .unwrap(),
    );
    let old = ElectionFactory::new(a.clone())
        .new_election("e")
        .unwrap()
        .campaign()
        .await
        .unwrap();
    old.put(&key("state"), b"a").await.unwrap();
    let next = tokio::spawn({
        let b = b.clone();
        async move {
            ElectionFactory::new(b)
                .new_election("e")
                .unwrap()
                .campaign()
                .await
        }
    });
    // Remove the old leader's candidate behind its back (an operator, a
    // partition healed late): its writes must now fail at the server.
    a.resign(old.grant()).await.unwrap();
    let new = next.await.unwrap().unwrap();
    for attempt in [
        a.put(&key("state"), b"stale", Guard::fenced(old.grant()))
            .await,
        a.put(
            &key("fresh"),
            b"stale",
            Guard::new(Condition::Absent, Some(old.grant())),
        )
        .await,
        a.delete(&key("state"), Guard::fenced(old.grant()))
            .await
            .map(|_| 0),
    ] {
        assert!(matches!(attempt, Err(Error::Fenced { .. })), "{attempt:?}");
    }
    assert_eq!(b.get(&key("state")).await.unwrap().unwrap().value, b"a");
    assert_eq!(b.get(&key("fresh")).await.unwrap(), None);
    new.put(&key("state"), b"b").await.unwrap();
}

/// No phantom leader across a session change: campaigns made for a session
/// that expires while their candidate nodes are still queued for creation
/// (the backend creates a bounded number at a time) must not be granted on
/// the session that replaces it. Afterwards no election has a candidate left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_queued_across_a_session_change_are_never_granted_on_the_new_session() {
    let chroot = common::fresh_chroot();
    let zk = ZkBackend::connect(common::config(ZkCluster::shared(), &chroot))
        .await
        .unwrap();
    let backend: DynBackend = Arc::new(zk.clone());
    let old = backend.session().borrow().id;
    // Far more campaigns than creates in flight, so most wait for a slot.
    let elections: Vec<Path> = (0..2_000).map(|i| key(&format!("phantom/e{i}"))).collect();
    let mut campaigns = tokio::task::JoinSet::new();
    for election in elections.clone() {
        let backend = backend.clone();
        campaigns.spawn(async move { backend.campaign(&election, old, b"a").await });
    }
    // Expire the session once the first campaign is through: the rest are
    // still queued, and their creates will run on the new session.
    let first = campaigns.join_next().await.unwrap().unwrap();
    common::expire(ZkCluster::shared(), &zk).await.unwrap();
    let mut results = vec![first];
    while let Some(result) = campaigns.join_next().await {
        results.push(result.unwrap());
    }
    for result in &results {
        match result {
            Ok(_) | Err(Error::SessionExpired { .. }) => {}
            // The expiry also breaks the connection under requests in flight.
            Err(e) if e.is_retryable() => {}
            Err(e) => panic!("a campaign failed otherwise: {e}"),
        }
    }
    assert_ne!(
        backend.session().borrow().id,
        old,
        "a new session was opened"
    );
    let mut left = 0;
    for election in &elections {
        left += backend.candidates(election).await.unwrap().len();
    }
    assert_eq!(
        left, 0,
        "candidates of the expired session's campaigns live on"
    );
}
