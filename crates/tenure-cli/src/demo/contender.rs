//! `tenure demo-contender`: one job-manager process of the local demo.
//!
//! Campaigns for the demo cluster's components, confirms its address when
//! granted, and talks to the demo over its standard streams, one line each:
//!
//! ```text
//! out: READY <backend session>
//!      GRANTED <term> <backend session> <leader session id>
//!      CONFIRMED                 addresses published
//!      WROTE <n> | FAILED <error>
//!      LATE-WROTE <n> | LATE-FENCED <error>
//!      REVOKED <reason>
//! in:  checkpoint <n>            a fenced write as leader
//!      late-checkpoint <n> <ms>  the same write, sent after <ms> (a slow request)
//!      exit
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tenure::{Error, LeaderContender, LeaderElectionService, Leadership, Path, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{CLUSTER, COMPONENTS};

/// The key the demo's leaders write their checkpoints to.
pub(crate) const CHECKPOINT_KEY: &str = "demo/jobs/wordcount/latest_checkpoint";

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Contender(mpsc::UnboundedSender<Option<Uuid>>);

impl LeaderContender for Contender {
    fn grant_leadership(&self, session_id: Uuid) {
        let _ = self.0.send(Some(session_id));
    }
    fn revoke_leadership(&self) {
        let _ = self.0.send(None);
    }
    fn handle_error(&self, error: &Error) {
        say(format!("ERROR {error}"));
    }
}

pub(crate) async fn run(url: &str, name: &str) -> Result<()> {
    let backend = tenure::connect(url).await?;
    let session = backend.session().borrow().id;
    let service = LeaderElectionService::new(backend.clone(), CLUSTER)?;
    let (tx, mut told) = mpsc::unbounded_channel();
    let mut elections = Vec::new();
    for component in COMPONENTS {
        let election = service.create_leader_election(component)?;
        election.start(Arc::new(Contender(tx.clone())))?;
        elections.push(election);
    }
    say(format!("READY {}", session.0));
    let key = Path::parse("key", CHECKPOINT_KEY)?;
    let mut granted = 0;
    let mut current: Option<Leadership> = None;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = told.recv() => match event {
                Some(Some(session_id)) => {
                    granted += 1;
                    if granted < COMPONENTS.len() {
                        continue;
                    }
                    let leadership = elections[0]
                        .run_if_leader(session_id, |l| async move { l })
                        .await?;
                    say(format!("GRANTED {} {} {session_id}", leadership.term(), session.0));
                    for (component, election) in COMPONENTS.iter().zip(&elections) {
                        let address = format!("akka://{name}:6123/{component}");
                        election.confirm_leadership(session_id, &address).await?;
                    }
                    say("CONFIRMED".into());
                    current = Some(leadership);
                }
                Some(None) => {
                    granted = 0;
                    if let Some(l) = current.take() {
                        let reason = l.loss_reason().map_or("revoked".to_owned(), |r| r.to_string());
                        say(format!("REVOKED {reason}"));
                    }
                }
                None => return Ok(()),
            },
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    ["checkpoint", n] => {
                        let value = |l: &Leadership| format!("checkpoint {n} by {name} (term {})", l.term());
                        match &current {
                            Some(l) => match l.put(&key, value(l).as_bytes()).await {
                                Ok(_) => say(format!("WROTE {n}")),
                                Err(e) => say(format!("FAILED {e}")),
                            },
                            None => say("FAILED not leading".into()),
                        }
                    }
                    ["late-checkpoint", n, delay] => {
                        let Some(l) = current.clone() else {
                            say("FAILED not leading".into());
                            continue;
                        };
                        let (n, name, key) = (n.to_owned(), name.to_owned(), key.clone());
                        let delay = Duration::from_millis(delay.parse().unwrap_or(0));
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let value = format!("checkpoint {n} by {name} (term {})", l.term());
                            // The request was sent while leading; it arrives late.
                            match l.put_unchecked(&key, value.as_bytes()).await {
                                Ok(_) => say(format!("LATE-WROTE {n}")),
                                Err(e) => say(format!("LATE-FENCED {e}")),
                            }
                        });
                    }
                    ["exit"] => break,
                    _ => say(format!("ERROR unknown command {line:?}")),
                }
            }
        }
    }
    service.close().await;
    backend.close().await
}
