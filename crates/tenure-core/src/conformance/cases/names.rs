//! Names: invalid ids and paths are refused with typed errors, never reach a key.

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{clients, next_grant, path, recorder};
use crate::conformance::TestCluster;
use crate::election::ElectionFactory;
use crate::error::Error;
use crate::leader_election::LeaderElectionService;
use crate::retrieval::LeaderRetrieval;

/// Invalid ids and oversized inputs are rejected with typed errors naming the
/// field.
pub async fn invalid_names_rejected(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let b = &backends[0];
    let factory = ElectionFactory::new(b.clone());
    let long = "x".repeat(129);
    for bad in ["", ".", "..", "a/b", "a b", "ü", long.as_str(), "../../etc"] {
        let err = factory.new_election(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "resource_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let err = LeaderElectionService::new(b.clone(), bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "cluster_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let service = LeaderElectionService::new(b.clone(), "names").unwrap();
        let err = service.create_leader_election(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "component_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let err = LeaderRetrieval::new(b.clone(), "names", bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "component_id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    let service = LeaderElectionService::new(b.clone(), "names").unwrap();
    let le = service.create_leader_election("dispatcher").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    le.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    let huge = "h".repeat(crate::MAX_ADDRESS_LEN + 1);
    let err = le.confirm_leadership(sid, &huge).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                field: "address",
                ..
            }
        ),
        "{err}"
    );
    let err = le
        .confirm_leadership(Uuid::new_v4(), "a:1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotLeader { .. }), "{err}");
    assert_eq!(
        b.get(&path("names/leader/dispatcher/connection_info"))
            .await
            .unwrap(),
        None,
        "a rejected confirmation published something"
    );
    service.close().await;
}
