//! Fencing: a stale leadership's writes are rejected at the backend and change
//! nothing, whoever makes them.

use tokio::sync::mpsc;

use super::{
    clients, election, granted, lost, next_grant, path, recorder, spawn_campaign, wait_queued,
};
use crate::backend::{Condition, Grant, Guard};
use crate::conformance::{within, TestCluster};
use crate::error::Error;
use crate::ha::{fence_of, CompletedCheckpoint, ExecutionPlan, HaServices, JobId, JobResultEntry};
use crate::leadership::LossReason;

/// A leader whose session expired cannot write with its stale leadership: the
/// fenced write fails with `Fenced` and changes nothing.
pub async fn stale_leader_fenced_write_rejected(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("fenced/state");
    let old = election(&backends[0], "fenced", "a")
        .campaign()
        .await
        .unwrap();
    old.put(&key, b"from-a").await.expect("the leader writes");
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "fenced", "b"), 1, &tx);
    wait_queued(&backends[0], "fenced", 2).await;
    cluster.expire_session(&backends[0]).await.unwrap();
    let (_, new) = granted(&mut rx, "the successor").await;
    assert!(new.term() > old.term());

    let err = old.put_unchecked(&key, b"stale").await.unwrap_err();
    assert!(
        matches!(err, Error::Fenced { term, .. } if term == old.term()),
        "{err}"
    );
    let err = backends[0]
        .delete(&key, Guard::fenced(old.grant()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let err = backends[0]
        .put(
            &path("fenced/other"),
            b"x",
            Guard::new(Condition::Absent, Some(old.grant())),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let stored = backends[1].get(&key).await.unwrap().expect("value kept");
    assert_eq!(stored.value, b"from-a");
    assert_eq!(backends[1].get(&path("fenced/other")).await.unwrap(), None);

    assert_eq!(
        lost(&old, "the old leader's lost-signal").await,
        LossReason::SessionLost
    );
    let err = old.put(&key, b"stale").await.unwrap_err();
    assert!(matches!(err, Error::LeadershipLost { .. }), "{err}");
    new.put(&key, b"from-b")
        .await
        .expect("the new leader writes");
    assert_eq!(
        backends[0].get(&key).await.unwrap().unwrap().value,
        b"from-b"
    );
}

/// A fence works from another client ("process"), as `tenure put --fence`
/// uses it: the backend checks the grant against its own state, whoever
/// writes. It holds while that leadership is current, is refused once it is
/// not, and a grant altered to name another term or election never holds.
pub async fn fence_from_another_client(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 3).await;
    let (leader, writer) = (&backends[0], &backends[2]);
    let key = path("foreign-fence/state");
    let old = election(leader, "foreign-fence", "a")
        .campaign()
        .await
        .unwrap();
    let grant = old.grant().clone();
    writer
        .put(&key, b"by-a", Guard::fenced(&grant))
        .await
        .expect("a current leadership's fence holds for any client");

    let forged = [
        Grant {
            term: grant.term + 1,
            ..grant.clone()
        },
        Grant {
            election: path("foreign-fence-other"),
            ..grant.clone()
        },
    ];
    // The other election has a leader of its own, so only the check of the
    // grant's key against its election can refuse the second forgery.
    let _other = election(leader, "foreign-fence-other", "a")
        .campaign()
        .await
        .unwrap();
    for fake in &forged {
        let err = writer
            .put(&key, b"forged", Guard::fenced(fake))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Fenced { .. }), "{fake:?}: {err}");
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "foreign-fence", "b"), 1, &tx);
    wait_queued(writer, "foreign-fence", 2).await;
    cluster.expire_session(leader).await.unwrap();
    let (_, new) = granted(&mut rx, "the successor").await;
    let err = writer
        .put(&key, b"stale", Guard::fenced(&grant))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Fenced { term, .. } if term == grant.term),
        "{err}"
    );
    let err = writer
        .delete(&key, Guard::fenced(&grant))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    assert_eq!(writer.get(&key).await.unwrap().unwrap().value, b"by-a");
    writer
        .put(&key, b"by-b", Guard::fenced(new.grant()))
        .await
        .expect("the successor's fence holds for any client");
    assert_eq!(leader.get(&key).await.unwrap().unwrap().value, b"by-b");
}

/// A leader that was overtaken while its session lives on — it resigned, or
/// its candidate was deleted — cannot write with its old leadership either;
/// writes racing the handover land before it or not at all.
pub async fn stale_leader_fenced_after_handover(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let key = path("handover-fence/state");
    let old = election(&backends[0], "handover-fence", "a")
        .campaign()
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_campaign(&election(&backends[1], "handover-fence", "b"), 1, &tx);
    wait_queued(&backends[0], "handover-fence", 2).await;

    // The old leader keeps writing while it resigns; once one write is fenced,
    // every later one is too.
    let writer = {
        let old = old.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut accepted = 0u32;
            loop {
                match old
                    .put_unchecked(&key, format!("a-{accepted}").as_bytes())
                    .await
                {
                    Ok(_) => accepted += 1,
                    Err(Error::Fenced { .. }) => return accepted,
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
                tokio::task::yield_now().await;
            }
        })
    };
    old.resign().await.unwrap();
    let accepted = within("the old leader's writes to be fenced", writer)
        .await
        .unwrap();
    let (_, new) = granted(&mut rx, "the successor").await;
    for _ in 0..3 {
        let err = old.put_unchecked(&key, b"late").await.unwrap_err();
        assert!(matches!(err, Error::Fenced { .. }), "{err}");
    }
    let err = backends[0]
        .delete(&key, Guard::fenced(old.grant()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let stored = backends[1].get(&key).await.unwrap();
    match accepted {
        0 => assert_eq!(stored, None),
        n => assert_eq!(stored.unwrap().value, format!("a-{}", n - 1).into_bytes()),
    }
    new.put(&key, b"b").await.unwrap();
    assert_eq!(backends[0].get(&key).await.unwrap().unwrap().value, b"b");
}

/// Every HA store's writes by a stale leader that does not know it is stale
/// (a paused process resuming) reach the backend and are rejected there with
/// `Fenced`, leaving the cluster's stored state byte-identical.
pub async fn stale_ha_writes_rejected_at_the_backend(cluster: &dyn TestCluster) {
    let backends = clients(cluster, 2).await;
    let job = |s: &str| JobId::new(s).unwrap();
    let a = HaServices::builder(backends[0].clone(), "stale-ha")
        .build()
        .unwrap();
    let a_election = a.dispatcher_leader_election().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    a_election.start(recorder(0, &tx)).unwrap();
    let (_, sid) = next_grant(&mut rx).await;
    let fence = fence_of(&a_election, sid).await.unwrap();

    let plans = a.execution_plan_store();
    let checkpoints = a.checkpoint_store(&job("job-1"));
    let counter = a.checkpoint_id_counter(&job("job-1"));
    let results = a.job_result_store();
    let running = a.running_jobs_registry();
    let plan = |id: &str| ExecutionPlan {
        job_id: job(id),
        data: b"plan".to_vec(),
    };
    let checkpoint = |id: u64| CompletedCheckpoint {
        checkpoint_id: id,
        data: b"metadata".to_vec(),
    };
    let result = |id: &str| JobResultEntry {
        job_id: job(id),
        data: b"result".to_vec(),
    };
    plans.put(&fence, &plan("job-1")).await.unwrap();
    checkpoints.add(&fence, &checkpoint(1)).await.unwrap();
    counter.set(&fence, 5).await.unwrap();
    results
        .create_dirty(&fence, &result("job-0"))
        .await
        .unwrap();
    running.set_running(&fence, &job("job-1")).await.unwrap();

    let stale = fence.blind_copy();
    let b = HaServices::builder(backends[1].clone(), "stale-ha")
        .build()
        .unwrap();
    let b_election = b.dispatcher_leader_election().unwrap();
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    b_election.start(recorder(1, &b_tx)).unwrap();
    // B queued before A's session ends: else A's election, campaigning again
    // on its new session, could queue first and lead again.
    wait_queued(&backends[0], "stale-ha/leader/latch", 2).await;
    cluster.expire_session(&backends[0]).await.unwrap();
    next_grant(&mut b_rx).await;
    let before = backends[1].list(&path("stale-ha")).await.unwrap();

    let outcomes = [
        ("plan put", plans.put(&stale, &plan("job-2")).await),
        ("plan remove", plans.remove(&stale, &job("job-1")).await),
        (
            "checkpoint add",
            checkpoints.add(&stale, &checkpoint(2)).await,
        ),
        ("counter set", counter.set(&stale, 9).await),
        (
            "counter increment",
            counter.get_and_increment(&stale).await.map(drop),
        ),
        (
            "result create",
            results.create_dirty(&stale, &result("job-3")).await,
        ),
        (
            "result clean",
            results.mark_clean(&stale, &job("job-0")).await,
        ),
        (
            "running set",
            running.set_running(&stale, &job("job-2")).await,
        ),
        ("running clear", running.clear(&stale, &job("job-1")).await),
    ];
    for (what, outcome) in outcomes {
        match outcome {
            Err(Error::Fenced { term, .. }) => assert_eq!(term, fence.term(), "{what}"),
            other => panic!("{what} by a stale leader: {other:?}, not Fenced at the backend"),
        }
    }
    let after = backends[1].list(&path("stale-ha")).await.unwrap();
    assert_eq!(before, after, "a stale leader changed stored state");
    a_election.close().await;
    b_election.close().await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}
