//! A stale leader's HA write reaches the backend, is fenced there, and is
//! counted in `tenure_fenced_writes_rejected_total` under its store's name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder};
use metrics::{SharedString, Unit};
use tenure_core::ha::{fence_of, HaServices, JobId};
use tenure_core::{Error, LeaderContender, MemoryCluster};
use tokio::sync::mpsc;
use uuid::Uuid;

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Counters by name and labels (`name{k=v,…}`); gauges and histograms ignored.
#[derive(Default)]
struct Counting(Counts);

struct One(String, Counts);

impl CounterFn for One {
    fn increment(&self, value: u64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.1.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl Recorder for Counting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Counter::from_arc(Arc::new(One(name, self.0.clone())))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

struct Contender(mpsc::UnboundedSender<Uuid>);

impl LeaderContender for Contender {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.0.send(session_id);
    }
    fn revoke_leadership(&self) {}
    fn handle_error(&self, _: &Error) {}
}

#[test]
fn a_stale_ha_write_is_fenced_at_the_backend_and_counted_under_its_store() {
    let recorder = Counting::default();
    let counts = recorder.0.clone();
    // One thread: the leadership's monitor cannot run between the session's
    // expiry and the write, so the write is made by a leader that does not
    // know it is stale — the backend's fence alone must refuse it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let cluster = MemoryCluster::new();
            let client = cluster.client();
            let services = HaServices::builder(Arc::new(client.clone()), "c1")
                .build()
                .unwrap();
            let election = services.dispatcher_leader_election().unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel();
            election.start(Arc::new(Contender(tx))).unwrap();
            let session = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            let fence = fence_of(&election, session).await.unwrap();
            let counter = services.checkpoint_id_counter(&JobId::new("job-1").unwrap());
            counter.set(&fence, 5).await.unwrap();

            client.expire_session();
            assert_eq!(fence.loss_reason(), None, "the leader does not know yet");
            let err = counter.set(&fence, 9).await.unwrap_err();
            assert!(matches!(err, Error::Fenced { .. }), "{err}");
            assert_eq!(counter.get().await.unwrap(), 5, "nothing was written");
            election.close().await;
        })
    });
    let counts = counts.lock().unwrap();
    let key =
        "tenure_fenced_writes_rejected_total{election=c1/leader/latch,store=checkpoint_id_counter}";
    assert_eq!(counts.get(key), Some(&1), "{counts:?}");
}
