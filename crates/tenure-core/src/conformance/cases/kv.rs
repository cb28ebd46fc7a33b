//! The key-value namespace: compare-and-set, conditional writes, ordered watches.

use std::collections::{BTreeMap, HashSet};

use futures_util::future::join_all;
use futures_util::StreamExt;

use super::{clients, path};
use crate::backend::{Condition, Guard, KvEvent};
use crate::conformance::{eventually, within, TestCluster};
use crate::error::Error;

/// Five workers, twenty increments each, by compare-and-set: exactly 100.
pub async fn compare_and_set_race(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 5).await;
    let key = path("cas/counter");
    let workers = backends.into_iter().map(|b| {
        let key = key.clone();
        tokio::spawn(async move {
            let mut done = 0;
            while done < 20 {
                let current = match b.get(&key).await {
                    Ok(current) => current,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("unexpected error: {e}"),
                };
                let (n, condition) = match &current {
                    None => (0, Condition::Absent),
                    Some(v) => (
                        String::from_utf8(v.value.clone())
                            .unwrap()
                            .parse::<u64>()
                            .unwrap(),
                        Condition::Version(v.version),
                    ),
                };
                match b
                    .put(&key, (n + 1).to_string().as_bytes(), Guard::when(condition))
                    .await
                {
                    Ok(_) => done += 1,
                    Err(Error::VersionMismatch { .. } | Error::AlreadyExists { .. }) => {}
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        })
    });
    for worker in join_all(workers).await {
        worker.unwrap();
    }
    let end = cluster
        .client()
        .await
        .unwrap()
        .get(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.value, b"100");
}

/// Create-if-absent, compare-and-set, versions, limits and prefixes behave as
/// the contract says.
pub async fn conditional_writes(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 1).await;
    let b = &backends[0];
    let key = path("cond/a");
    let v1 = b
        .put(&key, b"1", Guard::when(Condition::Absent))
        .await
        .unwrap();
    assert!(v1 > 0);
    let err = b
        .put(&key, b"2", Guard::when(Condition::Absent))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let v2 = b
        .put(&key, b"2", Guard::when(Condition::Version(v1)))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let err = b
        .put(&key, b"3", Guard::when(Condition::Version(v1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::VersionMismatch { expected, actual: Some(a), .. } if expected == v1 && a == v2),
        "{err}"
    );
    let err = b
        .delete(&key, Guard::when(Condition::Version(v1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
    assert_eq!(b.get(&key).await.unwrap().unwrap().value, b"2");
    assert!(b
        .delete(&key, Guard::when(Condition::Version(v2)))
        .await
        .unwrap());
    assert!(!b.delete(&key, Guard::ANY).await.unwrap());
    let err = b
        .delete(&key, Guard::when(Condition::Version(v2)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = b
        .put(&key, b"x", Guard::when(Condition::Version(v2)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::VersionMismatch { actual: None, .. }),
        "{err}"
    );
    // Versions only grow, also across a delete and a re-create, so a reader
    // can tell a rewrite of the same bytes from a write it has already seen.
    let v3 = b
        .put(&key, b"2", Guard::when(Condition::Absent))
        .await
        .unwrap();
    assert!(v1 < v2 && v2 < v3, "versions {v1}, {v2}, {v3} do not grow");
    assert!(b
        .delete(&key, Guard::when(Condition::Version(v3)))
        .await
        .unwrap());

    let limit = b.capabilities().max_value_size;
    let err = b
        .put(&key, &vec![0; limit + 1], Guard::ANY)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(
        b.get(&key).await.unwrap(),
        None,
        "an oversized write left data"
    );

    for k in ["cond/p/x", "cond/p/y/z", "cond/px", "cond/p"] {
        b.put(&path(k), b"v", Guard::ANY).await.unwrap();
    }
    let listed: Vec<_> = b
        .list(&path("cond/p"))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, ["cond/p", "cond/p/x", "cond/p/y/z"]);
}

/// A prefix watch delivers every change under the prefix, in order, and nothing
/// outside it.
pub async fn watches_deliver_in_order(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let mut events = backends[0].watch(&path("w")).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..60 {
        let key = path(&format!("w/k{}", i % 5));
        if i % 7 == 6 {
            backends[1].delete(&key, Guard::ANY).await.unwrap();
            expected.push(format!("delete {key}"));
        } else {
            let value = format!("v{i}");
            backends[1]
                .put(&key, value.as_bytes(), Guard::ANY)
                .await
                .unwrap();
            expected.push(format!("put {key}={value}"));
        }
        backends[1]
            .put(&path("wx/outside"), b"x", Guard::ANY)
            .await
            .unwrap();
    }
    // Deleting an absent key is not an event; drop those from the expectation.
    let mut present = HashSet::new();
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|e| match e.strip_prefix("delete ") {
            Some(k) => present.remove(k),
            None => {
                present.insert(e[4..e.find('=').unwrap()].to_owned());
                true
            }
        })
        .collect();
    // The state all those writes leave, for a watch that has to end early.
    let mut last = BTreeMap::new();
    for e in &expected {
        match e.strip_prefix("delete ") {
            Some(k) => {
                last.remove(k);
            }
            None => {
                let (k, v) = e[4..].split_once('=').unwrap();
                last.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    let mut seen = Vec::new();
    let mut ended = None;
    while seen.len() < expected.len() {
        match within("the next watch event", events.next())
            .await
            .expect("the watch ends only with an error")
        {
            Ok(KvEvent::Put { key, value }) => {
                seen.push(format!(
                    "put {key}={}",
                    String::from_utf8_lossy(&value.value)
                ));
            }
            Ok(KvEvent::Delete { key }) => seen.push(format!("delete {key}")),
            // The contract's way out when a backend cannot deliver every
            // change (ZooKeeper's one-shot watches under writes faster than
            // it re-arms): end with an error; the caller lists again.
            Err(e @ Error::Unavailable { .. }) => {
                ended = Some(e);
                break;
            }
            Err(e) => panic!("the watch failed: {e}"),
        }
    }
    // What was delivered came in order, with no gap.
    let delivered = seen.len().min(expected.len());
    assert_eq!(&seen[..delivered], &expected[..delivered]);
    if let Some(e) = ended {
        // Listing again shows exactly the state the writes left.
        let listed: BTreeMap<_, _> = backends[0]
            .list(&path("w"))
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.value).into_owned()))
            .collect();
        assert_eq!(listed, last, "the state listed after the watch ended ({e})");
    }
}

/// An ephemeral value names its writer's session as owner and ends with
/// that session (closed, here), while a value made lasting by a plain write
/// over an ephemeral one stays.
pub async fn ephemeral_values_end_with_their_session(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let (a, b) = (&backends[0], &backends[1]);
    let (key, lasting) = (path("ephemeral/k"), path("ephemeral/lasting"));
    let session = a.session().borrow().id;
    a.put(&key, b"a", Guard::ANY.ephemeral()).await.unwrap();
    a.put(&lasting, b"x", Guard::ANY.ephemeral()).await.unwrap();
    a.put(&lasting, b"y", Guard::when(Condition::Any))
        .await
        .unwrap();
    let seen = b
        .get(&key)
        .await
        .unwrap()
        .expect("an ephemeral value is readable");
    assert_eq!(
        (seen.value.as_slice(), seen.owner),
        (&b"a"[..], Some(session))
    );
    let kept = b.get(&lasting).await.unwrap().expect("written");
    assert_eq!((kept.value.as_slice(), kept.owner), (&b"y"[..], None));
    // Rewritten ephemeral by another session, it becomes that session's.
    let theirs = path("ephemeral/theirs");
    a.put(&theirs, b"1", Guard::ANY.ephemeral()).await.unwrap();
    b.put(&theirs, b"2", Guard::ANY.ephemeral()).await.unwrap();
    let b_session = b.session().borrow().id;
    assert_eq!(
        b.get(&theirs).await.unwrap().unwrap().owner,
        Some(b_session)
    );

    a.close().await.unwrap();
    eventually("the closed session's ephemeral value to go", || async {
        matches!(b.get(&key).await, Ok(None))
    })
    .await;
    let kept = b.get(&lasting).await.unwrap();
    assert_eq!(
        kept.map(|v| v.value),
        Some(b"y".to_vec()),
        "a lasting value stays"
    );
    let theirs = b.get(&theirs).await.unwrap();
    assert_eq!(
        theirs.map(|v| v.value),
        Some(b"2".to_vec()),
        "b's value stays"
    );
}
