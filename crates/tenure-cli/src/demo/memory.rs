//! `tenure demo --backend memory:`: the tour inside one process.
//!
//! Three simulated job-manager processes contend on the in-process backend, whose
//! sessions rest on a TTL: a crash is noticed when the TTL runs out, and a paused
//! leader's session expires while it is stopped, so its late write is fenced.

use std::sync::Arc;
use std::time::Duration;

use super::{ms, retriever_sees, step, Timeline, CLUSTER, COMPONENTS};

use tenure::{
    Error, LeaderContender, LeaderElection, LeaderElectionService, LeaderRetrieval, Leadership,
    MemoryBackend, MemoryCluster, Path, Result,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

struct Process {
    name: String,
    client: MemoryBackend,
    service: LeaderElectionService,
    elections: Vec<LeaderElection>,
}

/// What a contender was told, tagged with its process.
struct Told {
    process: usize,
    granted: Option<Uuid>,
}

struct Contender {
    process: usize,
    tx: mpsc::UnboundedSender<Told>,
}

impl LeaderContender for Contender {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.tx.send(Told {
            process: self.process,
            granted: Some(session_id),
        });
    }
    fn revoke_leadership(&self) {
        let _ = self.tx.send(Told {
            process: self.process,
            granted: None,
        });
    }
    fn handle_error(&self, error: &Error) {
        eprintln!("contender error: {error}");
    }
}

/// Waits until one live process has been granted every component; returns it
/// and its leader session id. Events of `dead` processes are not heard.
async fn next_leader(
    rx: &mut mpsc::UnboundedReceiver<Told>,
    dead: &[usize],
) -> Result<(usize, Uuid)> {
    let mut count = [0usize; 3];
    loop {
        let told = step("a grant", rx.recv()).await?;
        if dead.contains(&told.process) {
            continue;
        }
        match told.granted {
            Some(sid) => {
                count[told.process] += 1;
                if count[told.process] == COMPONENTS.len() {
                    return Ok((told.process, sid));
                }
            }
            None => count[told.process] = 0,
        }
    }
}

async fn lead(
    timeline: &Timeline,
    p: &Process,
    session_id: Uuid,
    since: Option<Instant>,
) -> Result<Leadership> {
    let leadership = p.elections[0]
        .run_if_leader(session_id, |l| async move { l })
        .await?;
    let took = since
        .map(|s| format!(" — failover took {}", ms(s.elapsed())))
        .unwrap_or_default();
    timeline.say(
        &p.name,
        format!(
            "granted all components: term {}, session {}{took}",
            leadership.term(),
            &session_id.to_string()[..8]
        ),
    );
    for (component, election) in COMPONENTS.iter().zip(&p.elections) {
        let address = format!("akka://{}:6123/{component}", p.name);
        election.confirm_leadership(session_id, &address).await?;
    }
    timeline.say(&p.name, "confirmed; addresses published with fenced writes");
    Ok(leadership)
}

async fn checkpoint(timeline: &Timeline, p: &Process, l: &Leadership, n: u32) -> Result<()> {
    let key = Path::parse("key", "demo/jobs/wordcount/latest_checkpoint")?;
    let value = format!("checkpoint {n} by {} (term {})", p.name, l.term());
    l.put(&key, value.as_bytes()).await?;
    timeline.say(&p.name, format!("writes \"{value}\" (fenced)"));
    Ok(())
}

pub(crate) async fn run(ttl: Duration) -> Result<()> {
    println!("tenure demo — three job managers contend for cluster {CLUSTER:?} on the embedded");
    println!(
        "backend (memory:, session TTL {}). No server involved.\n",
        ms(ttl)
    );
    let timeline = Timeline {
        start: Instant::now(),
    };
    let cluster = MemoryCluster::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut processes = Vec::new();
    for i in 0..3 {
        let client = cluster.client_with_ttl(ttl);
        let service = LeaderElectionService::new(Arc::new(client.clone()), CLUSTER)?;
        let mut elections = Vec::new();
        for component in COMPONENTS {
            let election = service.create_leader_election(component)?;
            election.start(Arc::new(Contender {
                process: i,
                tx: tx.clone(),
            }))?;
            elections.push(election);
        }
        processes.push(Process {
            name: format!("jm-{}", i + 1),
            client,
            service,
            elections,
        });
    }
    timeline.say(
        "all",
        format!("jm-1, jm-2, jm-3 campaign for {}", COMPONENTS.join(", ")),
    );
    let mut views =
        LeaderRetrieval::new(Arc::new(cluster.client()), CLUSTER, "dispatcher")?.stream();

    // A leader is elected, confirms, and the client finds it.
    let (first, sid) = next_leader(&mut rx, &[]).await?;
    let first_lead = lead(&timeline, &processes[first], sid, None).await?;
    retriever_sees(&timeline, &mut views, first_lead.term()).await?;
    checkpoint(&timeline, &processes[first], &first_lead, 1).await?;

    println!("\n  Round 1: the leader crashes");
    let crashed_at = Instant::now();
    processes[first].client.partition();
    timeline.say(
        &processes[first].name,
        "crashes (kill -9): its session is no longer renewed",
    );
    let (second, sid) = next_leader(&mut rx, &[first]).await?;
    let crash_failover = crashed_at.elapsed();
    let second_lead = lead(&timeline, &processes[second], sid, Some(crashed_at)).await?;
    retriever_sees(&timeline, &mut views, second_lead.term()).await?;
    checkpoint(&timeline, &processes[second], &second_lead, 2).await?;

    println!("\n  Round 2: the new leader is paused in the middle of a write");
    let paused_at = Instant::now();
    processes[second].client.partition();
    timeline.say(
        &processes[second].name,
        "paused (SIGSTOP) while sending \"checkpoint 3\"",
    );
    let (third, sid) = next_leader(&mut rx, &[first, second]).await?;
    let pause_failover = paused_at.elapsed();
    let third_lead = lead(&timeline, &processes[third], sid, Some(paused_at)).await?;
    retriever_sees(&timeline, &mut views, third_lead.term()).await?;
    checkpoint(&timeline, &processes[third], &third_lead, 3).await?;

    processes[second].client.heal();
    timeline.say(
        &processes[second].name,
        format!(
            "resumed: its write of \"checkpoint 3\" with term {} reaches the backend…",
            second_lead.term()
        ),
    );
    let key = Path::parse("key", "demo/jobs/wordcount/latest_checkpoint")?;
    let late = second_lead
        .put_unchecked(
            &key,
            format!("checkpoint 3 by {}", processes[second].name).as_bytes(),
        )
        .await;
    let rejected = matches!(late, Err(Error::Fenced { .. }));
    match &late {
        Err(e) => timeline.say(&processes[second].name, format!("…and is rejected: {e}")),
        Ok(_) => timeline.say(&processes[second].name, "…and was ACCEPTED (this is a bug)"),
    }
    let reason = second_lead.lost().await;
    timeline.say(
        &processes[second].name,
        format!("knows it lost leadership: {reason}"),
    );
    let stored = cluster
        .client()
        .get_value(&key)
        .await?
        .unwrap_or_else(|| "(nothing)".into());
    timeline.say(
        "backend",
        format!("latest checkpoint is still \"{stored}\""),
    );

    println!("\n  Summary");
    println!(
        "    crash failover  {:>10}   (a crash is noticed when the session TTL runs out)",
        ms(crash_failover)
    );
    println!("    pause failover  {:>10}", ms(pause_failover));
    println!(
        "    late write of the paused leader: {}",
        if rejected {
            "rejected, nothing changed"
        } else {
            "ACCEPTED"
        }
    );

    for p in &processes {
        p.service.close().await;
    }
    if rejected {
        Ok(())
    } else {
        Err(Error::Backend {
            message: "the stale leader's write was not fenced".into(),
            source: None,
        })
    }
}

/// Reads a key as text (for the demo's last line).
trait GetValue {
    async fn get_value(&self, key: &Path) -> Result<Option<String>>;
}

impl GetValue for MemoryBackend {
    async fn get_value(&self, key: &Path) -> Result<Option<String>> {
        use tenure::Backend;
        Ok(self
            .get(key)
            .await?
            .map(|v| String::from_utf8_lossy(&v.value).into_owned()))
    }
}
