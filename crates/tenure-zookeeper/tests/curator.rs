//! Interoperability with Apache Curator's LeaderLatch (Curator 5.4 from
//! Debian, in its own JVM): tenure and Curator candidates on one latch path
//! take turns in both directions, and at every observation at most one of them
//! believes it leads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tenure_core::conformance::eventually;
use tenure_core::{
    ConnectionPolicy, DynBackend, ElectionFactory, ElectionOptions, LossReason, Path,
};
use tenure_testkit::{CuratorLatch, ZkCluster};
use tenure_zookeeper::ZkBackend;

const WAIT: Duration = Duration::from_secs(30);

async fn tenure_client(chroot: &str) -> DynBackend {
    let config = common::config(ZkCluster::shared(), chroot);
    Arc::new(ZkBackend::connect(config).await.expect("connect"))
}

fn factory(backend: &DynBackend, id: &str) -> ElectionFactory {
    ElectionFactory::with_options(
        backend.clone(),
        ElectionOptions {
            policy: ConnectionPolicy::RevokeOnSuspended,
            candidate_id: Some(id.to_owned()),
        },
    )
}

/// Starts a Curator participant off the async workers (it blocks until READY).
async fn curator(chroot: &str, id: &str) -> Arc<CuratorLatch> {
    let (connect, path, id) = (
        ZkCluster::shared().connect_string(),
        format!("/{chroot}/latch"),
        id.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        Arc::new(CuratorLatch::start(&connect, &path, &id, 2_000).expect("curator starts"))
    })
    .await
    .unwrap()
}

async fn curator_waits_for(latch: &Arc<CuratorLatch>, line: &'static str) {
    let latch = latch.clone();
    tokio::task::spawn_blocking(move || latch.wait_for(line, WAIT))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("curator never said {line}: {e}"));
}

async fn curator_leads(latch: &Arc<CuratorLatch>) -> bool {
    let latch = latch.clone();
    tokio::task::spawn_blocking(move || latch.has_leadership())
        .await
        .unwrap()
        .expect("curator answers status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenure_first_then_curator_then_tenure_again() {
    let chroot = common::fresh_chroot();
    let backend = tenure_client(&chroot).await;
    let election = factory(&backend, "tenure-a").new_election("latch").unwrap();
    let leadership = election
        .campaign()
        .await
        .expect("tenure leads an empty latch");

    let latch = curator(&chroot, "curator-b").await;
    assert!(!curator_leads(&latch).await, "curator leads beside tenure");
    assert!(leadership.is_held());
    // Observers see tenure's participant id as the leader's value.
    let record = backend
        .leader(&Path::parse("election", "latch").unwrap())
        .await
        .unwrap()
        .expect("a leader");
    assert_eq!(record.value, b"tenure-a");
    assert_eq!(record.term, leadership.term());

    leadership.resign().await.unwrap();
    curator_waits_for(&latch, "LEADER").await;
    // The resigned leadership is over at the server: its fenced write fails.
    let err = leadership
        .put_unchecked(&Path::parse("key", "after-resign").unwrap(), b"stale")
        .await
        .unwrap_err();
    assert!(matches!(err, tenure_core::Error::Fenced { .. }), "{err}");

    // Tenure queues behind Curator, and is granted when Curator closes.
    let waiting = tokio::spawn(async move { election.campaign().await });
    common_wait_candidates(&backend, 2).await;
    assert!(curator_leads(&latch).await);
    assert!(!waiting.is_finished(), "tenure granted while curator leads");
    let record = backend
        .leader(&Path::parse("election", "latch").unwrap())
        .await
        .unwrap()
        .expect("a leader");
    assert_eq!(record.value, b"curator-b");
    {
        let latch = latch.clone();
        tokio::task::spawn_blocking(move || latch.close())
            .await
            .unwrap()
            .unwrap();
    }
    let again = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("tenure granted after curator closed")
        .unwrap()
        .unwrap();
    assert!(again.term() > record.term, "terms grow across both recipes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_first_then_tenure_after_curator_is_killed() {
    let chroot = common::fresh_chroot();
    let latch = curator(&chroot, "curator-a").await;
    curator_waits_for(&latch, "LEADER").await;

    let backend = tenure_client(&chroot).await;
    let election = factory(&backend, "tenure-b").new_election("latch").unwrap();
    let waiting = tokio::spawn(async move { election.campaign().await });
    common_wait_candidates(&backend, 2).await;
    assert!(!waiting.is_finished(), "tenure granted while curator leads");
    assert!(curator_leads(&latch).await);

    // A crashed Curator process: its node goes when its session times out.
    latch.kill();
    let leadership = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("tenure granted after curator's session expired")
        .unwrap()
        .unwrap();
    assert!(leadership.is_held());

    // And the other way round: a new Curator waits behind tenure.
    let next = curator(&chroot, "curator-c").await;
    assert!(!curator_leads(&next).await, "curator leads beside tenure");
    backend.close().await.unwrap();
    assert_eq!(leadership.lost().await, LossReason::Closed);
    curator_waits_for(&next, "LEADER").await;
}

/// Waits until the latch has `n` candidates (Curator's and tenure's).
async fn common_wait_candidates(backend: &DynBackend, n: usize) {
    let name = Path::parse("election", "latch").unwrap();
    eventually(&format!("{n} candidates queued"), || async {
        backend.candidates(&name).await.unwrap().len() == n
    })
    .await;
}
