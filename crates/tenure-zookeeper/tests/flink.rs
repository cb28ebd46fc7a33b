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

/// A contender that reports grants (`Some(session)`) and revocations.
struct Contender(tokio::sync::mpsc::UnboundedSender<Option<Uuid>>);

impl tenure_core::LeaderContender for Contender {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.0.send(Some(session_id));
    }
    fn revoke_leadership(&self) {
        let _ = self.0.send(None);
    }
    fn handle_error(&self, error: &Error) {
        panic!("unexpected error: {error}");
    }
}

/// A tenure process in Flink's layout contending for `components` of
/// `cluster`: its service, the elections and the stream of grants.
async fn tenure_contender(
    chroot: &str,
    cluster: &str,
    components: &[&str],
) -> (
    tenure_core::LeaderElectionService,
    Vec<tenure_core::LeaderElection>,
    tokio::sync::mpsc::UnboundedReceiver<Option<Uuid>>,
) {
    let backend = client(chroot, Layout::Flink).await;
    let service = tenure_core::LeaderElectionService::new(backend, cluster).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let elections: Vec<_> = components
        .iter()
        .map(|c| {
            let election = service.create_leader_election(c).unwrap();
            election.start(Arc::new(Contender(tx.clone()))).unwrap();
            election
        })
        .collect();
    (service, elections, rx)
}

/// The next grant or revocation, bounded.
async fn next_change(
    changes: &mut tokio::sync::mpsc::UnboundedReceiver<Option<Uuid>>,
    what: &str,
) -> Option<Uuid> {
    tokio::time::timeout(WAIT, changes.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the contender lives")
}

/// Flink's own leader retrieval (what its TaskManagers and clients run)
/// follows a tenure leader: the latch node tenure makes has empty data, as
/// Flink's, and the `connection_info` it publishes is Flink's record, an
/// ephemeral node of tenure's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flinks_own_retrieval_follows_a_tenure_leader() {
    let options = FlinkOptions {
        cluster_id: "followed".into(),
        path_root: "/flink-followed".into(),
        ..FlinkOptions::default()
    };
    let connect = ZkCluster::shared().connect_string();
    let probe_options = options.clone();
    let probe = tokio::task::spawn_blocking(move || {
        FlinkRetrievalProbe::start(&connect, &probe_options, FlinkComponent::RestServer)
    })
    .await
    .unwrap()
    .unwrap();
    let (_service, elections, mut changes) =
        tenure_contender("flink-followed", "followed", &["rest_server", "dispatcher"]).await;
    let session = next_change(&mut changes, "tenure's grant").await.unwrap();
    assert_eq!(
        next_change(&mut changes, "the second grant").await,
        Some(session)
    );
    let address = "http://127.0.0.1:18081";
    elections[0]
        .confirm_leadership(session, address)
        .await
        .unwrap();
    elections[1]
        .confirm_leadership(
            session,
            "pekko.tcp://flink@127.0.0.1:16123/user/rpc/dispatcher_1",
        )
        .await
        .unwrap();

    let flinks = tokio::task::spawn_blocking(move || {
        probe.wait_for_leader(WAIT, |l| l.address == "http://127.0.0.1:18081")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(flinks.session, session.to_string());

    // What Flink's nodes look like, read raw.
    let zk = ZkBackend::connect(common::config(ZkCluster::shared(), "flink-followed"))
        .await
        .unwrap();
    let raw = zk.client().unwrap();
    let latch = raw.list_children("/followed/leader/latch").await.unwrap();
    assert_eq!(latch.len(), 1, "{latch:?}");
    let (data, _) = raw
        .get_data(&format!("/followed/leader/latch/{}", latch[0]))
        .await
        .unwrap();
    assert!(data.is_empty(), "latch data as Flink writes it: empty");
    let (data, stat) = raw
        .get_data("/followed/leader/rest_server/connection_info")
        .await
        .unwrap();
    assert_eq!(data, flink::encode(address, session).unwrap());
    assert_ne!(stat.ephemeral_owner, 0, "connection_info is ephemeral");
}

/// A tenure contender and real Flink JobManagers on one cluster's latch take
/// turns: exactly one leads at every observation, each side's retrieval
/// shows the other's leader, and when the leader goes (SIGKILL of a
/// JobManager, a tenure close) the next one takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenure_and_flink_jobmanagers_take_turns_on_one_latch() {
    let options = FlinkOptions {
        cluster_id: "mixed".into(),
        path_root: "/flink-mixed".into(),
        ..FlinkOptions::default()
    };
    let connect = ZkCluster::shared().connect_string();
    let probe_options = options.clone();
    let probe = Arc::new(
        tokio::task::spawn_blocking(move || {
            FlinkRetrievalProbe::start(&connect, &probe_options, FlinkComponent::RestServer)
        })
        .await
        .unwrap()
        .unwrap(),
    );
    let flink_sees = |want: String| {
        let probe = probe.clone();
        async move {
            tokio::task::spawn_blocking(move || probe.wait_for_leader(WAIT, |l| l.address == want))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let observer = client("flink-mixed", Layout::Flink).await;
    let retrieval = LeaderRetrieval::new(observer.clone(), "mixed", "rest_server").unwrap();
    let mut tenure_sees = retrieval.stream();

    // A JobManager leads; tenure queues behind it.
    let a = jobmanager(&options).await;
    a.wait_leader(WAIT).unwrap();
    assert_eq!(
        next_leader(&mut tenure_sees, "JobManager a").await.address,
        a.rest_url()
    );
    let (service, elections, mut changes) =
        tenure_contender("flink-mixed", "mixed", &["rest_server"]).await;
    assert!(
        changes.try_recv().is_err(),
        "tenure is not granted while a JobManager leads"
    );

    // The JobManager dies: tenure takes over; Flink's retrieval shows it.
    a.kill();
    let session = next_change(&mut changes, "tenure's grant after a's death")
        .await
        .unwrap();
    let address = "http://127.0.0.1:18082";
    elections[0]
        .confirm_leadership(session, address)
        .await
        .unwrap();
    assert_eq!(
        flink_sees(address.into()).await.session,
        session.to_string()
    );
    let seen = next_leader(&mut tenure_sees, "tenure leading").await;
    assert_eq!((seen.address.as_str(), seen.session_id), (address, session));

    // A second JobManager queues behind tenure and is not granted. (Its REST
    // endpoint answers 503 meanwhile: it waits for a dispatcher leader,
    // which this tenure contender does not publish.)
    let b = jobmanager(&options).await;
    let latch = Path::parse("election", "mixed/leader/latch").unwrap();
    tenure_core::conformance::eventually("b's latch node", || async {
        matches!(observer.candidates(&latch).await, Ok(c) if c.len() == 2)
    })
    .await;
    assert_eq!(b.leader_session(), None, "b waits while tenure leads");

    // tenure closes: b takes over, and tenure's retrieval shows it.
    // (A closed service tells its contenders nothing more.)
    service.close().await;
    let b_session = b.wait_leader(WAIT).unwrap();
    assert_eq!(flink_sees(b.rest_url()).await.session, b_session);
    let seen = next_leader(&mut tenure_sees, "JobManager b").await;
    assert_eq!(seen.address, b.rest_url());
    assert!(seen.term > 0);
    drop(elections);
}
