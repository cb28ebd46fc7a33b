//! The leader election service beyond the conformance suite: the contender
//! protocol's edges and the standalone variant.

use std::sync::{Arc, Mutex};

use tenure_core::{
    DynBackend, Error, LeaderContender, LeaderElectionService, MemoryCluster,
    StandaloneLeaderElection, DEFAULT_LEADER_SESSION_ID,
};
use tokio::sync::mpsc;
use uuid::Uuid;

struct Channel(mpsc::UnboundedSender<Option<Uuid>>);

impl LeaderContender for Channel {
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

fn contender() -> (Arc<Channel>, mpsc::UnboundedReceiver<Option<Uuid>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Channel(tx)), rx)
}

#[tokio::test]
async fn run_if_leader_runs_only_for_the_current_session() {
    let backend: DynBackend = Arc::new(MemoryCluster::new().client());
    let service = LeaderElectionService::new(backend, "run-if").unwrap();
    let le = service.create_leader_election("dispatcher").unwrap();
    let (c, mut rx) = contender();
    le.start(c.clone()).unwrap();
    let sid = rx.recv().await.unwrap().unwrap();
    assert!(le.has_leadership(sid));
    let term = le
        .run_if_leader(sid, |l| async move { l.term() })
        .await
        .unwrap();
    assert!(term > 0);
    let other = Uuid::new_v4();
    assert!(!le.has_leadership(other));
    let err = le.run_if_leader(other, |_| async {}).await.unwrap_err();
    assert!(
        matches!(err, Error::NotLeader { session_id } if session_id == other),
        "{err}"
    );
    let err = le.start(c).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    le.close().await;
    assert!(!le.has_leadership(sid));
    let err = le.confirm_leadership(sid, "x:1").await.unwrap_err();
    assert!(matches!(err, Error::NotLeader { .. }), "{err}");
}

#[tokio::test]
async fn a_revoked_contender_cannot_confirm_and_is_granted_again_on_a_new_session() {
    let cluster = MemoryCluster::new();
    let client = cluster.client();
    let service = LeaderElectionService::new(Arc::new(client.clone()), "regrant").unwrap();
    let le = service.create_leader_election("dispatcher").unwrap();
    let (c, mut rx) = contender();
    le.start(c).unwrap();
    let first = rx.recv().await.unwrap().unwrap();
    client.expire_session();
    assert_eq!(rx.recv().await.unwrap(), None, "revoked on session loss");
    let err = le.confirm_leadership(first, "x:1").await.unwrap_err();
    assert!(matches!(err, Error::NotLeader { .. }), "{err}");
    let second = rx.recv().await.unwrap().expect("granted again");
    assert_ne!(first, second);
    le.confirm_leadership(second, "x:2").await.unwrap();
    service.close().await;
}

#[tokio::test]
async fn the_contract_forbids_the_reserved_layout_names() {
    let backend: DynBackend = Arc::new(MemoryCluster::new().client());
    let service = LeaderElectionService::new(backend, "reserved").unwrap();
    let err = service.create_leader_election("latch").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "component_id",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn standalone_is_always_leader_with_the_zero_session_id() {
    struct Record(Mutex<Vec<Option<Uuid>>>);
    impl LeaderContender for Record {
        fn grant_leadership(&self, session_id: Uuid) {
            self.0.lock().unwrap().push(Some(session_id));
        }
        fn revoke_leadership(&self) {
            self.0.lock().unwrap().push(None);
        }
        fn handle_error(&self, _: &Error) {}
    }
    assert_eq!(
        DEFAULT_LEADER_SESSION_ID.to_string(),
        "00000000-0000-0000-0000-000000000000"
    );
    let record = Arc::new(Record(Mutex::new(Vec::new())));
    let standalone = StandaloneLeaderElection::new();
    standalone.start(record.clone());
    assert!(standalone.has_leadership(DEFAULT_LEADER_SESSION_ID));
    standalone
        .confirm_leadership(DEFAULT_LEADER_SESSION_ID, "localhost:6123")
        .unwrap();
    assert!(standalone.confirm_leadership(Uuid::new_v4(), "x").is_err());
    standalone.close();
    assert_eq!(
        *record.0.lock().unwrap(),
        vec![Some(DEFAULT_LEADER_SESSION_ID), None]
    );
}
