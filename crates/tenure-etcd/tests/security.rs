//! TLS and authentication against real etcd servers started with them.

use std::sync::Arc;

use tenure_core::{Backend, ElectionFactory, Error, Path};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::{EtcdCluster, EtcdOptions};

async fn lead_and_write(backend: EtcdBackend) {
    let backend = Arc::new(backend);
    let leadership = ElectionFactory::new(backend.clone())
        .new_election("secure")
        .unwrap()
        .campaign()
        .await
        .unwrap();
    let key = Path::parse("key", "secure/state").unwrap();
    leadership.put(&key, b"v").await.unwrap();
    assert_eq!(backend.get(&key).await.unwrap().unwrap().value, b"v");
    backend.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let etcd = EtcdCluster::start(EtcdOptions {
        members: 1,
        tls: true,
        client_cert_auth: true,
        ..EtcdOptions::default()
    })
    .unwrap();
    let tls = etcd.tls().expect("TLS files");
    let base = EtcdConfig::new(&etcd.endpoints()).unwrap();
    let config = base
        .clone()
        .with_ca(&tls.ca)
        .with_client_cert(&tls.client_cert, &tls.client_key);
    lead_and_write(EtcdBackend::connect(config).await.unwrap()).await;

    // Server verification alone is not enough: the server wants our certificate.
    let err = EtcdBackend::connect(base.clone().with_ca(&tls.ca))
        .await
        .unwrap_err();
    assert!(
        err.is_retryable() || matches!(err, Error::Backend { .. }),
        "{err}"
    );
    // Plain text to a TLS server fails too.
    let err = EtcdBackend::connect(base.clone()).await.unwrap_err();
    assert!(
        err.is_retryable() || matches!(err, Error::Backend { .. }),
        "{err}"
    );
    // A CA file that does not exist is a typed input error.
    let err = EtcdBackend::connect(base.with_ca("/nonexistent/ca.pem"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "tls_ca",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password() {
    let etcd = EtcdCluster::single().unwrap();
    etcd.enable_auth("root-secret").unwrap();
    etcd.add_user("root-secret", "app", "app-secret").unwrap();
    let base = EtcdConfig::new(&etcd.endpoints()).unwrap();

    let config = base.clone().with_user("app", "app-secret");
    let shown = format!("{config:?}");
    assert!(!shown.contains("app-secret"), "{shown}");
    let backend = EtcdBackend::connect(config).await.unwrap();
    let shown = format!("{backend:?}");
    assert!(!shown.contains("app-secret"), "{shown}");
    lead_and_write(backend).await;

    let err = EtcdBackend::connect(base.clone().with_user("app", "wrong"))
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable(),
        "a wrong password is not worth retrying: {err}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
    let err = EtcdBackend::connect(base).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}
