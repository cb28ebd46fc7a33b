//! Bad input: unreachable endpoints, and keys under the prefix that someone
//! else wrote.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tenure_core::{Backend, BackendUrl, ElectionFactory, Error, Guard, Path};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_a_retryable_error_within_the_connect_timeout() {
    // A port nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = EtcdConfig::new(&[format!("127.0.0.1:{port}")])
        .unwrap()
        .with_connect_timeout(Duration::from_millis(500));
    let outcome = tokio::time::timeout(Duration::from_secs(10), EtcdBackend::connect(config))
        .await
        .expect("connect gives up on its own");
    let err = outcome.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[test]
fn malformed_urls_and_ttls_are_typed_errors() {
    for bad in [
        "etcd://",
        "etcd://host-without-port/p",
        "etcd://h:1/p?ttl=1s",
        "etcd://h:1/p?ttl=2h",
        "etcd://h:1/a//b",
    ] {
        let parsed = BackendUrl::parse(bad);
        let err = parsed.and_then(|u| EtcdConfig::from_url(&u)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_someone_else_wrote_are_reported_as_corrupt_by_name() {
    let etcd = EtcdCluster::shared();
    let config = EtcdConfig::new(&etcd.endpoints())
        .unwrap()
        .with_prefix("foreign")
        .unwrap();
    let backend = Arc::new(EtcdBackend::connect(config).await.unwrap());
    let mut raw = backend.client().clone();

    // Not a lease id where a candidate should be.
    raw.put("foreign/jobs/not-a-lease", "x", None)
        .await
        .unwrap();
    let election = Path::parse("election", "jobs").unwrap();
    let err = backend.leader(&election).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { key, .. } if key == "foreign/jobs/not-a-lease"),
        "{err}"
    );
    let err = ElectionFactory::new(backend.clone())
        .new_election("jobs")
        .unwrap()
        .campaign()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");

    // Not UTF-8, and not a valid key, in the key-value namespace.
    let prefix = Path::parse("key", "data").unwrap();
    let mut events = backend.watch(&prefix).await.unwrap();
    raw.put(b"foreign/~kv/data/\xff".to_vec(), "x", None)
        .await
        .unwrap();
    raw.put("foreign/~kv/data/a b", "x", None).await.unwrap();
    backend
        .put(&Path::parse("key", "data/good").unwrap(), b"ok", Guard::ANY)
        .await
        .unwrap();
    let err = backend.list(&prefix).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { key, .. } if key.starts_with("foreign/~kv/data/")),
        "{err}"
    );
    for _ in 0..2 {
        let event = events.next().await.unwrap();
        assert!(matches!(event, Err(Error::Corrupted { .. })), "{event:?}");
    }
    let good = events.next().await.unwrap().unwrap();
    assert_eq!(good.key(), "data/good");
    backend.close().await.unwrap();
}
