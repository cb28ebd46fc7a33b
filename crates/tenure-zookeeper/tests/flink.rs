//! tenure's leader retrieval following real Apache Flink 2.3 JobManagers
//! (ZooKeeper HA mode, started by the test kit), and reading Flink's own
//! `connection_info` records: a client connected with `layout=flink` sees
//! each component's leader as Flink's own retrieval does, with its leader
//! session id and the term of its latch node, and never a record that does
//! not belong to the current leader.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure_core::{flink, DynBackend, Error, Guard, LeaderInfo, LeaderRetrieval, Path};
use tenure_testkit::{
    FlinkComponent, FlinkJobManager, FlinkOptions, FlinkRetrievalProbe, ZkCluster,
};
use tenure_zookeeper::{Layout, ZkBackend};
use uuid::Uuid;

/// Longer than a JobManager takes to start or to take over on two cores;
/// awaited, never slept.
const WAIT: Duration = Duration::from_secs(90);

async fn client(chroot: &str, layout: Layout) -> DynBackend {
    let config = common::config(ZkCluster::shared(), chroot).with_layout(layout);
    Arc::new(ZkBackend::connect(config).await.expect("connect"))
}

/// The next leader the stream reports, skipping "nobody leads".
async fn next_leader(
    stream: &mut futures_util::stream::BoxStream<'static, tenure_core::Result<Option<LeaderInfo>>>,
    what: &str,
) -> LeaderInfo {
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.next().await.expect("retrieval streams forever") {
                Ok(Some(leader)) => return leader,
                Ok(None) => {}
                Err(e) => panic!("retrieval failed while waiting for {what}: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no leader reported: {what}"))
}

/// Starts a JobManager off the async workers (it blocks until it has joined).
async fn jobmanager(options: &FlinkOptions) -> FlinkJobManager {
    let (connect, options) = (ZkCluster::shared().connect_string(), options.clone());
    tokio::task::spawn_blocking(move || FlinkJobManager::start(&connect, &options))
        .await
        .unwrap()
        .expect("a Flink JobManager starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_follows_real_flink_jobmanagers_across_a_sigkill() {
    let options = FlinkOptions {
        cluster_id: "follow".into(),
        path_root: "/flink-follow".into(),
        ..FlinkOptions::default()
    };
    let backend = client("flink-follow", Layout::Flink).await;
    let rest = LeaderRetrieval::new(backend.clone(), "follow", "rest_server").unwrap();
    let dispatcher = LeaderRetrieval::new(backend.clone(), "follow", "dispatcher").unwrap();
    let mut rest_stream = rest.stream();
    let mut dispatcher_stream = dispatcher.stream();

    let a = jobmanager(&options).await;
    let a_session: Uuid = a.wait_leader(WAIT).unwrap().parse().unwrap();
    let first = next_leader(&mut rest_stream, "JobManager a's REST endpoint").await;
    assert_eq!(first.address, a.rest_url());
    assert_eq!(first.session_id, a_session);
    let first_dispatcher = next_leader(&mut dispatcher_stream, "a's dispatcher").await;
    assert!(
        first_dispatcher
            .address
            .starts_with("pekko.tcp://flink@127.0.0.1:")
            && first_dispatcher.address.contains("/user/rpc/dispatcher"),
        "{first_dispatcher:?}"
    );
    assert_eq!(first_dispatcher.session_id, a_session);
    // The term is the latch node's: the same for every component of a.
    assert_eq!(first_dispatcher.term, first.term);
    assert_eq!(rest.current().await.unwrap(), Some(first.clone()));

    // A standby queues; nothing changes until the leader dies.
    let b = jobmanager(&options).await;
    b.wait_serving(WAIT).unwrap();
    a.kill();
    let b_session: Uuid = b.wait_leader(WAIT).unwrap().parse().unwrap();
    assert_ne!(b_session, a_session);
    let second = next_leader(&mut rest_stream, "JobManager b's REST endpoint").await;
    assert_eq!(
        (second.address.as_str(), second.session_id),
        (b.rest_url().as_str(), b_session),
        "the first leader reported after a's death is b, never a again"
    );
    assert!(second.term > first.term, "{second:?} after {first:?}");
    let second_dispatcher = next_leader(&mut dispatcher_stream, "b's dispatcher").await;
    assert_eq!(second_dispatcher.session_id, b_session);
    assert_eq!(second_dispatcher.term, second.term);
}

/// A Flink record that the latch's current leader does not own (written
/// by another session, or left from an earlier leader) is never reported,
/// and bytes that are not exactly Flink's format are a `Corrupted` error
/// naming the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_records_count_only_when_the_leader_owns_them_and_bad_ones_are_corrupted() {
    let zk = ZkBackend::connect(
        common::config(ZkCluster::shared(), "flink-records").with_layout(Layout::Flink),
    )
    .await
    .unwrap();
    // The raw client of the leader's own session, to write as Flink does.
    let raw = zk.client().unwrap();
    let backend: DynBackend = Arc::new(zk);
    let other = client("flink-records", Layout::Flink).await;
    let retrieval = LeaderRetrieval::new(backend.clone(), "c", "rest_server").unwrap();
    let latch = Path::parse("election", "c/leader/latch").unwrap();
    let info = Path::parse("key", "c/leader/rest_server/connection_info").unwrap();
    let session = Uuid::new_v4();

    // A Flink leader with empty latch data, as Flink's LeaderLatch writes.
    let grant = backend
        .campaign(&latch, backend.session().borrow().id, b"")
        .await
        .unwrap();
    let record = flink::encode("http://127.0.0.1:8081", session).unwrap();
    // Written persistently by a session that does not lead: not the leader's.
    other.put(&info, &record, Guard::ANY).await.unwrap();
    assert_eq!(retrieval.current().await.unwrap(), None);

    // Ephemeral in the leader's session, as Flink writes it: the leader's.
    backend.delete(&info, Guard::ANY).await.unwrap();
    raw.create(
        "/c/leader/rest_server/connection_info",
        &record,
        &zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    let mut stream = retrieval.stream();
    let seen = next_leader(&mut stream, "the ephemeral record").await;
    assert_eq!(
        seen,
        LeaderInfo {
            address: "http://127.0.0.1:8081".into(),
            session_id: session,
            term: grant.term,
        }
    );

    // Not exactly Flink's bytes: Corrupted, naming the node.
    let mut bad = record.clone();
    let class = bad.windows(4).position(|w| w == b"UUID").unwrap();
    bad[class..class + 4].copy_from_slice(b"UUIX");
    raw.set_data("/c/leader/rest_server/connection_info", &bad, None)
        .await
        .unwrap();
    // Same session as the write: the read sees it.
    let err = retrieval.current().await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { key, .. } if key.ends_with("rest_server/connection_info")),
        "{err}"
    );
    backend.resign(&grant).await.unwrap();

    // In tenure's own layout, a Flink node is told apart with a clear error.
    let tenure = client("flink-records", Layout::Tenure).await;
    raw.set_data("/c/leader/rest_server/connection_info", &record, None)
        .await
        .unwrap();
    let err = tenure.get(&info).await.unwrap_err();
    assert!(
        err.to_string().contains("layout=flink"),
        "the error says how to read Flink's nodes: {err}"
    );
}

/// Flink itself follows nothing here; but the probe shows that what tenure
/// reads is what Flink's own retrieval reads, at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenure_and_flinks_own_retrieval_agree_on_the_leader() {
    let options = FlinkOptions {
        cluster_id: "agree".into(),
        path_root: "/flink-agree".into(),
        ..FlinkOptions::default()
    };
    let connect = ZkCluster::shared().connect_string();
    let probe_options = options.clone();
    let probe = tokio::task::spawn_blocking(move || {
        FlinkRetrievalProbe::start(&connect, &probe_options, FlinkComponent::ResourceManager)
    })
    .await
    .unwrap()
    .unwrap();
    let backend = client("flink-agree", Layout::Flink).await;
    let retrieval = LeaderRetrieval::new(backend, "agree", "resource_manager").unwrap();
    let mut stream = retrieval.stream();
    let jm = jobmanager(&options).await;
    let seen = next_leader(&mut stream, "the resource manager").await;
    let flinks = tokio::task::spawn_blocking(move || probe.wait_for_leader(WAIT, |_| true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.address, flinks.address);
    assert_eq!(seen.session_id.to_string(), flinks.session);
    drop(jm);
}
