//! Retrieval: followers see leaders in term order, and the candidate's value.

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{
    clients, election, granted, next_grant, next_view, path, recorder, spawn_campaign, wait_queued,
};
use crate::conformance::{within, TestCluster};
use crate::error::Result;
use crate::leader_election::LeaderElectionService;
use crate::retrieval::{follow_election, LeaderRetrieval};

/// Retrieval reports "no leader", then every confirmed leader in term order,
/// and "no leader" again when the leader leaves or its session expires.
pub async fn retrieval_follows_leaders_in_term_order(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 4).await;
    let mut stream = LeaderRetrieval::new(backends[3].clone(), "retrieval", "dispatcher")
        .unwrap()
        .stream();
    assert_eq!(next_view(&mut stream, "the first view").await, None);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut elections = Vec::new();
    for (i, b) in backends.iter().take(3).enumerate() {
        let service = LeaderElectionService::new(b.clone(), "retrieval").unwrap();
        let le = service.create_leader_election("dispatcher").unwrap();
        le.start(recorder(i, &tx)).unwrap();
        elections.push(le);
    }
    let mut last_term = 0;
    for round in 0..3 {
        let (i, sid) = next_grant(&mut rx).await;
        let address = format!("akka://node-{i}:6123");
        elections[i]
            .confirm_leadership(sid, &address)
            .await
            .unwrap();
        let view = next_view(&mut stream, "the confirmed leader").await;
        let view = view.unwrap_or_else(|| panic!("round {round}: no leader reported"));
        assert_eq!(
            (view.address.as_str(), view.session_id),
            (address.as_str(), sid)
        );
        assert!(
            view.term > last_term,
            "round {round}: term went from {last_term} to {}",
            view.term
        );
        last_term = view.term;
        if round < 2 {
            elections[i].close().await;
        } else {
            cluster.expire_session(&backends[i]).await.unwrap();
        }
        assert_eq!(
            next_view(&mut stream, "no leader").await,
            None,
            "round {round}"
        );
    }
    assert_eq!(
        LeaderRetrieval::new(backends[3].clone(), "retrieval", "dispatcher")
            .unwrap()
            .current()
            .await
            .unwrap(),
        None
    );
}

/// Following an election directly reports each leader's campaign value.
pub async fn follow_election_reports_candidates_value(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 3).await;
    let mut stream = follow_election(backends[2].clone(), path("follow"));
    async fn next(
        stream: &mut BoxStream<'static, Result<Option<crate::LeaderRecord>>>,
    ) -> Option<crate::LeaderRecord> {
        within("a leader change", stream.next())
            .await
            .unwrap()
            .unwrap()
    }
    assert_eq!(next(&mut stream).await, None);
    let a = election(&backends[0], "follow", "proposal-a")
        .campaign()
        .await
        .unwrap();
    let seen = next(&mut stream).await.expect("a leader");
    assert_eq!(
        (seen.term, seen.value.as_slice()),
        (a.term(), &b"proposal-a"[..])
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "follow", "proposal-b"), 1, &tx);
    wait_queued(&backends[0], "follow", 2).await;
    a.resign().await.unwrap();
    let (_, b) = granted(&mut rx, "b").await;
    let seen = next(&mut stream).await.expect("a leader");
    assert_eq!(
        (seen.term, seen.value.as_slice()),
        (b.term(), &b"proposal-b"[..])
    );
    b.resign().await.unwrap();
    assert_eq!(next(&mut stream).await, None);
}
