//! The local backend, with real processes: graceful handover, crash failover
//! (SIGKILL) and watch latency across processes.

use std::process::Stdio;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tenure::{Condition, DynBackend, ElectionFactory, Leadership, Path};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::report::{Report, Row, Stat};

pub(crate) fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub(crate) fn since(earlier: u128, later: u128) -> Duration {
    Duration::from_nanos(later.saturating_sub(earlier) as u64)
}

/// The process side: `tenure-bench contender URL`, driven over stdin/stdout.
pub(crate) async fn contender(url: &str) -> Result<(), String> {
    contender_named(url, "bench").await
}

/// [`contender`] for election `name`.
pub(crate) async fn contender_named(url: &str, name: &str) -> Result<(), String> {
    let backend = tenure::connect(url).await.map_err(|e| e.to_string())?;
    let election = ElectionFactory::new(backend.clone())
        .new_election(name)
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut held: Option<Leadership> = None;
    let (granted_tx, mut granted_rx) = tokio::sync::mpsc::unbounded_channel();
    println!("READY");
    loop {
        tokio::select! {
            Some(l) = granted_rx.recv() => held = Some(l),
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                match line.as_str() {
                    "campaign" => {
                        let (election, tx) = (election.clone(), granted_tx.clone());
                        tokio::spawn(async move {
                            match election.campaign().await {
                                Ok(l) => {
                                    println!("GRANT {}", nanos());
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

pub(crate) struct Proc {
    pub(crate) child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    pub(crate) async fn start(url: &str) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["contender", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut p = Proc {
            child,
            stdin,
            lines,
        };
        p.expect("READY").await?;
        Ok(p)
    }

    pub(crate) async fn send(&mut self, line: &str) -> Result<(), String> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())
    }

    /// The value after `word` on the next line starting with it.
    pub(crate) async fn expect(&mut self, word: &str) -> Result<u128, String> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
                .await
                .map_err(|_| format!("timed out waiting for {word}"))?
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the contender ended before {word}"))?;
            let mut words = line.split(' ');
            let first = words.next();
            if first == Some("ERROR") {
                return Err(format!(
                    "the contender failed while we waited for {word}: {line}"
                ));
            }
            if first == Some(word) {
                return Ok(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
            }
        }
    }
}

pub(crate) async fn queued(observer: &DynBackend, n: usize) -> Result<(), String> {
    let name = Path::parse("election", "bench").map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while observer
        .candidates(&name)
        .await
        .map_err(|e| e.to_string())?
        .len()
        != n
    {
        if tokio::time::Instant::now() > deadline {
            let seen = observer
                .candidates(&name)
                .await
                .map_err(|e| e.to_string())?;
            return Err(format!("never saw {n} candidates: {seen:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

pub(crate) async fn run(report: &mut Report, scale: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tenure-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("local://{}", dir.display());
    let observer: DynBackend = tenure::connect(&url).await.map_err(|e| e.to_string())?;
    let outcome = scenarios(report, scale, &url, &observer).await;
    let _ = observer.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn scenarios(
    report: &mut Report,
    scale: usize,
    url: &str,
    observer: &DynBackend,
) -> Result<(), String> {
    // Graceful handover between two processes, alternating.
    let mut procs = [Proc::start(url).await?, Proc::start(url).await?];
    procs[0].send("campaign").await?;
    procs[0].expect("GRANT").await?;
    let mut holder = 0;
    let mut samples = Vec::new();
    for _ in 0..200 / scale {
        let other = 1 - holder;
        procs[other].send("campaign").await?;
        queued(observer, 2).await?;
        procs[holder].send("resign").await?;
        let resigned = procs[holder].expect("RESIGNING").await?;
        let granted = procs[other].expect("GRANT").await?;
        samples.push(since(resigned, granted));
        holder = other;
    }
    report.add(Row {
        backend: "local",
        scenario: "graceful handover (resign → next process granted)",
        samples,
        target: Some((Stat::P99, Duration::from_millis(10))),
        note: "",
    });

    // Crash failover: SIGKILL the holder; a waiting process takes over.
    let [mut a, mut b] = procs;
    if holder == 1 {
        std::mem::swap(&mut a, &mut b);
    }
    let mut samples = Vec::new();
    for _ in 0..(40 / scale).max(10) {
        b.send("campaign").await?;
        queued(observer, 2).await?;
        let killed = nanos();
        a.child.kill().await.map_err(|e| e.to_string())?;
        let granted = b.expect("GRANT").await?;
        samples.push(since(killed, granted));
        a = std::mem::replace(&mut b, Proc::start(url).await?);
    }
    report.add(Row {
        backend: "local",
        scenario: "crash failover (kill -9 → next process granted)",
        samples,
        target: Some((Stat::P99, Duration::from_millis(50))),
        note: "the kernel releases the dead holder's lock; the waiting process notices \
               within one poll interval (5 ms) and removes the dead session",
    });
    drop((a, b));

    // A change made by this process, seen by a watcher in another.
    let mut watcher = Proc::start(url).await?;
    watcher.send("watch").await?;
    watcher.expect("WATCHING").await?;
    let key = Path::parse("key", "w/k").map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..400 / scale {
        let written = nanos();
        observer
            .put(&key, i.to_string().as_bytes(), Condition::Any, None)
            .await
            .map_err(|e| e.to_string())?;
        let seen = watcher.expect("EVENT").await?;
        samples.push(since(written, seen));
    }
    report.add(Row {
        backend: "local",
        scenario: "change visible to a watcher in another process",
        samples,
        target: Some((Stat::P99, Duration::from_millis(50))),
        note: "includes the fsynced write; other processes poll the state file every 5 ms",
    });
    Ok(())
}
