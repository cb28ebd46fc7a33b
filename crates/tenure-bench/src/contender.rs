//! tenure's side of the contender protocol (see [`crate::proc`]):
//! `tenure-bench contender URL ELECTION`, driven over stdin/stdout.

use futures_util::future::join_all;
use futures_util::StreamExt;
use tenure::{ElectionFactory, Leadership, Path};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::proc::nanos;

/// A tokio instant as the host's clock in nanoseconds.
fn unix_nanos(at: Instant) -> u128 {
    let now = Instant::now();
    if at >= now {
        nanos() + (at - now).as_nanos()
    } else {
        nanos().saturating_sub((now - at).as_nanos())
    }
}

pub(crate) async fn run(url: &str, name: &str) -> Result<(), String> {
    let backend = tenure::connect(url).await.map_err(|e| e.to_string())?;
    let factory = ElectionFactory::new(backend.clone());
    let election = factory.new_election(name).map_err(|e| e.to_string())?;
    let election_path = Path::parse("election", name).map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut held: Option<Leadership> = None;
    let mut many: Vec<Leadership> = Vec::new();
    let (granted_tx, mut granted_rx) = tokio::sync::mpsc::unbounded_channel();

    // The renew deadline, for the paused-leader scenario: printed whenever the
    // session moves it.
    let mut session = backend.session();
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let deadline = session.borrow_and_update().renew_deadline;
            if deadline != last {
                if let Some(d) = deadline {
                    println!("DEADLINE {}", unix_nanos(d));
                }
                last = deadline;
            }
            if session.changed().await.is_err() {
                return;
            }
        }
    });

    println!("READY");
    loop {
        tokio::select! {
            Some(l) = granted_rx.recv() => held = Some(l),
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let (command, argument) = line.split_once(' ').unwrap_or((&line, ""));
                match command {
                    "campaign" => {
                        let (election, tx) = (election.clone(), granted_tx.clone());
                        tokio::spawn(async move {
                            match election.campaign().await {
                                Ok(l) => {
                                    println!("GRANT {}", nanos());
                                    let watched = l.clone();
                                    tokio::spawn(async move {
                                        let reason = watched.lost().await;
                                        println!("LOST {} {reason:?}", nanos());
                                    });
                                    let _ = tx.send(l);
                                }
                                Err(e) => println!("ERROR {e}"),
                            }
                        });
                    }
                    "resign" => {
                        println!("RESIGNING {}", nanos());
                        if let Some(l) = held.take() {
                            let _ = l.resign().await;
                        }
                    }
                    "count" => match backend.candidates(&election_path).await {
                        Ok(c) => println!("COUNT {}", c.len()),
                        Err(e) => println!("ERROR {e}"),
                    },
                    "many" => {
                        let (count, set) = argument.split_once(' ').unwrap_or((argument, "many"));
                        let n: usize = count.parse().map_err(|_| format!("bad count {count:?}"))?;
                        let elections: Vec<_> = (0..n)
                            .map(|i| factory.new_election(&format!("{set}-e{i}")))
                            .collect::<Result<_, _>>()
                            .map_err(|e| e.to_string())?;
                        let started = Instant::now();
                        match join_all(elections.iter().map(|e| e.campaign()))
                            .await
                            .into_iter()
                            .collect::<Result<Vec<_>, _>>()
                        {
                            Ok(all) => {
                                let took = started.elapsed();
                                println!("ACQUIRED {:.3}", took.as_secs_f64() * 1000.0);
                                many = all;
                            }
                            Err(e) => println!("ERROR {e}"),
                        }
                    }
                    "heap" => println!("HEAP {}", crate::heap::live()),
                    "trim" => {
                        // Hands memory freed by finished work back to the
                        // system, so RSS shows what is held.
                        // SAFETY: malloc_trim only releases free memory.
                        unsafe { libc::malloc_trim(0) };
                        println!("TRIMMED");
                    }
                    // Ends the process at once, holding what it holds (for
                    // heap profilers, which report what is live at exit).
                    "exit" => std::process::exit(0),
                    "release" => {
                        join_all(many.drain(..).map(|l| async move { l.resign().await })).await;
                        println!("RELEASED");
                    }
                    "watch" => {
                        let prefix = Path::parse("key", "w").map_err(|e| e.to_string())?;
                        let mut events = backend.watch(&prefix).await.map_err(|e| e.to_string())?;
                        tokio::spawn(async move {
                            while let Some(Ok(_)) = events.next().await {
                                println!("EVENT {}", nanos());
                            }
                        });
                        println!("WATCHING");
                    }
                    _ => break,
                }
            }
        }
    }
    let _ = backend.close().await;
    Ok(())
}
