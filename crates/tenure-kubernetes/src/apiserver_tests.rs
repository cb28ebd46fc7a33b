//! The client against a real kube-apiserver from the test kit. Here rather
//! than in `tests/` because the client is crate-private.

use std::process::Command;
use std::time::{Duration, SystemTime};

use futures_util::stream::BoxStream;
use futures_util::StreamExt as _;
use tenure_core::{BackendUrl, Error, Secret};
use tenure_testkit::KubeApiserver;

use crate::api::{ConfigMap, Lease, LeaseSpec, MicroTime, WatchEvent};
use crate::client::{configmap_path, configmaps_path, lease_path, leases_path, Client, Result};
use crate::error::ApiError;
use crate::KubeConfig;

/// The shared apiserver (built and started on first use, which blocks) with
/// a fresh namespace `name`.
async fn apiserver(namespace: &'static str) -> &'static KubeApiserver {
    tokio::task::spawn_blocking(move || {
        let api = KubeApiserver::shared();
        api.create_namespace(namespace).unwrap();
        api
    })
    .await
    .unwrap()
}

fn config(api: &KubeApiserver, token: &str, namespace: &str) -> KubeConfig {
    let ca = std::fs::read(api.ca_file()).unwrap();
    KubeConfig::new(&api.url(), ca, Secret::new(token))
        .unwrap()
        .with_namespace(namespace)
        .unwrap()
}

/// The next event that is not a bookmark, within 10 s.
async fn next_change<T>(watch: &mut BoxStream<'static, Result<WatchEvent<T>>>) -> WatchEvent<T> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("a watch event within 10 s")
            .expect("the watch goes on")
            .expect("a watch event, not an error");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

fn now() -> MicroTime {
    // What the apiserver keeps: whole microseconds.
    let micros = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    MicroTime(SystemTime::UNIX_EPOCH + Duration::from_micros(micros as u64))
}

#[tokio::test]
async fn leases_are_created_read_replaced_on_version_watched_and_deleted() {
    let api = apiserver("client-leases").await;
    // Through a URL, as users configure it.
    let url = format!(
        "k8s://127.0.0.1:{}/client-leases?token_file={}&ca_file={}",
        api.port(),
        api.admin_token_file().display(),
        api.ca_file().display()
    );
    let config = KubeConfig::from_url(&BackendUrl::parse(&url).unwrap()).unwrap();
    let client = Client::new(&config).unwrap();
    let ns = config.namespace();
    let path = lease_path(ns, "leader");

    assert_eq!(client.get::<Lease>(&path).await.unwrap(), None);
    let acquired = now();
    let mut lease = Lease::new(
        "leader",
        LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(acquired),
            renew_time: Some(acquired),
            lease_transitions: Some(0),
        },
    );
    lease
        .metadata
        .labels
        .insert("app".into(), "tenure-test".into());
    let created = client.create(&leases_path(ns), &lease).await.unwrap();
    let version = created
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion");
    assert_eq!(created.spec, lease.spec);
    let again = client.create(&leases_path(ns), &lease).await.unwrap_err();
    assert!(again.is_conflict(), "{again}");

    let read: Lease = client.get(&path).await.unwrap().expect("the lease");
    assert_eq!(read, created);
    let listed = client
        .list::<Lease>(&leases_path(ns), Some("app=tenure-test"))
        .await
        .unwrap();
    assert_eq!(listed.items, std::slice::from_ref(&created));
    assert!(!listed.metadata.resource_version.is_empty());
    let none = client
        .list::<Lease>(&leases_path(ns), Some("app=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let mut watch = client
        .watch::<Lease>(&leases_path(ns), Some("metadata.name=leader"), &version)
        .await
        .unwrap();

    let mut renewed = created.clone();
    renewed.spec.holder_identity = Some("b".into());
    renewed.spec.renew_time = Some(now());
    renewed.spec.lease_transitions = Some(1);
    let replaced = client.replace(&path, &renewed).await.unwrap();
    let current = replaced.metadata.resource_version.clone().unwrap();
    assert_ne!(current, version);
    assert_eq!(replaced.spec, renewed.spec);

    // The same write again carries the old version: refused, nothing changes.
    let stale = client.replace(&path, &renewed).await.unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    let stale = client.delete(&path, Some(&version)).await.unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    assert_eq!(
        client.get::<Lease>(&path).await.unwrap(),
        Some(replaced.clone())
    );

    assert!(client.delete(&path, Some(&current)).await.unwrap());
    assert!(!client.delete(&path, None).await.unwrap());

    match next_change(&mut watch).await {
        WatchEvent::Modified(lease) => assert_eq!(lease, replaced),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    match next_change(&mut watch).await {
        WatchEvent::Deleted(lease) => assert_eq!(lease.metadata.name.as_deref(), Some("leader")),
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn configmaps_are_created_replaced_and_deleted() {
    let api = apiserver("client-configmaps").await;
    let config = KubeConfig::from_kubeconfig(api.kubeconfig())
        .unwrap()
        .with_namespace("client-configmaps")
        .unwrap();
    let client = Client::new(&config).unwrap();
    let ns = config.namespace();
    let path = configmap_path(ns, "kv");

    let mut map = ConfigMap::new("kv");
    map.data.insert("leader".into(), "a".into());
    map.binary_data.insert("blob".into(), "AAEC".into());
    let created = client.create(&configmaps_path(ns), &map).await.unwrap();
    assert_eq!(
        (created.data.clone(), created.binary_data.clone()),
        (map.data, map.binary_data)
    );

    let mut changed = created.clone();
    changed.data.insert("leader".into(), "b".into());
    let replaced = client.replace(&path, &changed).await.unwrap();
    assert_eq!(replaced.data["leader"], "b");
    assert!(client
        .replace(&path, &changed)
        .await
        .unwrap_err()
        .is_conflict());

    let read: ConfigMap = client.get(&path).await.unwrap().unwrap();
    assert_eq!(read, replaced);
    let version = read.metadata.resource_version.as_deref();
    assert!(client.delete(&path, version).await.unwrap());
    assert_eq!(client.get::<ConfigMap>(&path).await.unwrap(), None);
    let invalid = client
        .create(&configmaps_path(ns), &ConfigMap::new("Not_A_Name"))
        .await
        .unwrap_err();
    assert!(matches!(invalid, ApiError::Invalid(_)), "{invalid}");
}

#[tokio::test]
async fn a_watch_from_a_version_long_gone_asks_for_a_new_list() {
    // Not the shared apiserver: this one is restarted, and its watch cache
    // starts over at the newest version, forgetting the older ones.
    let api = tokio::task::spawn_blocking(|| KubeApiserver::start().unwrap())
        .await
        .unwrap();
    let config = config(&api, api.admin_token(), "default");
    let client = Client::new(&config).unwrap();
    let ns = config.namespace();
    let lease = client
        .create(&leases_path(ns), &Lease::new("l", LeaseSpec::default()))
        .await
        .unwrap();
    let old = lease.metadata.resource_version.unwrap();
    let mut watch = client
        .watch::<Lease>(&leases_path(ns), None, &old)
        .await
        .unwrap();
    assert!(client.delete(&lease_path(ns, "l"), None).await.unwrap());
    assert!(matches!(
        next_change(&mut watch).await,
        WatchEvent::Deleted(_)
    ));

    let api = tokio::task::spawn_blocking(move || {
        api.restart().unwrap();
        api
    })
    .await
    .unwrap();
    // The open watch ends with the apiserver: cleanly or as unavailable.
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch ends within 10 s");
    assert!(
        matches!(end, None | Some(Err(ApiError::Unavailable(_)))),
        "{end:?}"
    );
    let err = match client.watch::<Lease>(&leases_path(ns), None, &old).await {
        Err(err) => err,
        Ok(mut watch) => tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("an answer within 10 s")
            .expect("an item")
            .expect_err("an error"),
    };
    assert!(err.is_gone(), "{err}");
    assert!(Error::from(err).is_retryable());
    // Listing gives a version to watch from again.
    let list = client.list::<Lease>(&leases_path(ns), None).await.unwrap();
    let mut watch = client
        .watch::<Lease>(&leases_path(ns), None, &list.metadata.resource_version)
        .await
        .unwrap();
    client
        .create(&leases_path(ns), &Lease::new("m", LeaseSpec::default()))
        .await
        .unwrap();
    assert!(
        matches!(next_change(&mut watch).await, WatchEvent::Added(l) if l.metadata.name.as_deref() == Some("m"))
    );
    drop(api);
}

#[tokio::test]
async fn refused_tokens_and_missing_rights_are_not_retryable_and_never_shown() {
    let api = apiserver("client-rbac").await;
    let token = api.unprivileged_token();
    let client = Client::new(&config(api, token, "client-rbac")).unwrap();
    let err = client
        .create(
            &leases_path("client-rbac"),
            &Lease::new("l", LeaseSpec::default()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Forbidden(m) if m.contains(KubeApiserver::UNPRIVILEGED_USER)),
        "{err}"
    );
    let err = Error::from(err);
    assert!(
        matches!(err, Error::Backend { .. }) && !err.is_retryable(),
        "{err}"
    );
    assert!(err.to_string().contains("RBAC"), "{err}");
    assert!(!format!("{err} {err:?}").contains(token), "{err}");

    let bogus = "not-a-known-token";
    let client = Client::new(&config(api, bogus, "client-rbac")).unwrap();
    let err = client
        .get::<Lease>(&lease_path("client-rbac", "l"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized(_)), "{err}");
    let err = Error::from(err);
    assert!(
        !err.is_retryable() && !format!("{err} {err:?}").contains(bogus),
        "{err}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_closed_port_are_told_apart() {
    let api = apiserver("client-tls").await;
    let dir = std::env::temp_dir().join(format!("tenure-k8s-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other_ca = dir.join("ca.crt");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=another-ca", "-days", "1", "-keyout"])
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .status()
        .expect("openssl (the test kit needs it too)");
    assert!(status.success());
    let config = KubeConfig::new(
        &api.url(),
        std::fs::read(&other_ca).unwrap(),
        Secret::new("t"),
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let err = Client::new(&config)
        .unwrap()
        .get::<Lease>(&lease_path("client-tls", "l"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Other(0, m) if m.contains("certificate")),
        "{err}"
    );
    assert!(!Error::from(err).is_retryable());

    // A port nobody listens on: retryable, and fast.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let ca = std::fs::read(api.ca_file()).unwrap();
    let config =
        KubeConfig::new(&format!("https://127.0.0.1:{port}"), ca, Secret::new("t")).unwrap();
    let err = Client::new(&config)
        .unwrap()
        .get::<Lease>("/x")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unavailable(_)), "{err}");
    assert!(Error::from(err).is_retryable());
}

#[tokio::test]
async fn a_frozen_apiserver_times_out_retryably() {
    // Not the shared apiserver: this one is paused.
    let api = tokio::task::spawn_blocking(|| KubeApiserver::start().unwrap())
        .await
        .unwrap();
    let config = config(&api, api.admin_token(), "default")
        .with_request_timeout(Duration::from_millis(500))
        .unwrap();
    let client = Client::new(&config).unwrap();
    let path = lease_path("default", "l");
    assert_eq!(client.get::<Lease>(&path).await.unwrap(), None);
    api.pause();
    let started = std::time::Instant::now();
    let err = client.get::<Lease>(&path).await.unwrap_err();
    api.resume();
    assert!(matches!(err, ApiError::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The pool recovers once it answers again.
    assert_eq!(client.get::<Lease>(&path).await.unwrap(), None);
}
