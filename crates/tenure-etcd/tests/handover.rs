//! Leadership handed back and forth many times between two clients of one etcd:
//! every handover completes (a lost wake-up would hang one), and no leadership
//! ends other than by its resignation (TTL 10 s: keep-alives have room even on a
//! loaded machine).

use std::sync::Arc;
use std::time::Duration;

use tenure_core::{DynBackend, ElectionFactory, Path};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_handovers_all_complete() {
    let etcd = EtcdCluster::shared();
    let config = EtcdConfig::new(&etcd.endpoints())
        .unwrap()
        .with_prefix("handovers")
        .unwrap()
        .with_ttl(Duration::from_secs(10))
        .unwrap();
    let backends: Vec<DynBackend> = vec![
        Arc::new(EtcdBackend::connect(config.clone()).await.unwrap()),
        Arc::new(EtcdBackend::connect(config).await.unwrap()),
    ];
    let elections: Vec<_> = backends
        .iter()
        .map(|b| ElectionFactory::new(b.clone()).new_election("e").unwrap())
        .collect();
    let name = Path::parse("election", "e").unwrap();
    let mut leader = elections[0].campaign().await.unwrap();
    let mut holder = 0;
    for round in 0..300 {
        let other = 1 - holder;
        let next = elections[other].clone();
        let waiting = tokio::spawn(async move { next.campaign().await });
        let queued = tokio::time::timeout(Duration::from_secs(20), async {
            while backends[0].candidates(&name).await.unwrap().len() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        if queued.is_err() && waiting.is_finished() {
            let terms: Vec<u64> = backends[0]
                .candidates(&name)
                .await
                .unwrap()
                .iter()
                .map(|c| c.term)
                .collect();
            panic!(
                "round {round}: the campaign ended early: {:?}; current leader term {} lost {:?}; queue terms {terms:?}",
                waiting.await,
                leader.term(),
                leader.loss_reason()
            );
        }
        assert!(
            queued.is_ok(),
            "round {round}: the second candidate never queued; queue {:?}, waiting finished: {}",
            backends[0].candidates(&name).await,
            waiting.is_finished()
        );
        assert_eq!(
            leader.loss_reason(),
            None,
            "round {round}: lost before resigning"
        );
        leader.resign().await.unwrap();
        match tokio::time::timeout(Duration::from_secs(20), waiting).await {
            Ok(granted) => leader = granted.unwrap().unwrap(),
            Err(_) => panic!(
                "round {round}: not granted; queue {:?}",
                backends[0].candidates(&name).await
            ),
        }
        holder = other;
    }
}
