//! `tenure demo` on the local backend: three job-manager processes on one
//! directory. A killed leader is replaced at once (the kernel frees its lock); a
//! stopped leader keeps leadership until an operator evicts it, and its late
//! write is then fenced off.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tenure::{Error, Grant, LeaderRetrieval, Path, Result, SessionId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::contender::CHECKPOINT_KEY;
use super::{ms, retriever_sees, step, Timeline, CLUSTER, COMPONENTS};

struct Process {
    name: String,
    child: Child,
    stdin: ChildStdin,
    session: u64,
}

impl Process {
    async fn send(&mut self, line: &str) -> Result<()> {
        let line = format!("{line}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| failed(&format!("cannot talk to {}", self.name), e))
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.id().ok_or_else(|| gone(&self.name))?;
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(|e| failed("cannot run kill(1)", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(gone(&self.name))
        }
    }
}

fn failed(what: &str, e: std::io::Error) -> Error {
    Error::Backend {
        message: what.to_owned(),
        source: Some(Box::new(e)),
    }
}

fn gone(name: &str) -> Error {
    Error::unavailable(format!("{name} is gone"))
}

/// A line from process `from`.
struct Said {
    from: usize,
    words: Vec<String>,
}

struct Demo {
    timeline: Timeline,
    processes: Vec<Process>,
    said: mpsc::UnboundedReceiver<Said>,
    /// Lines that arrived before anyone asked for them, in order.
    backlog: Vec<Said>,
}

impl Demo {
    /// The next line whose first word is `word`, from a process in `from`;
    /// other lines are kept for later.
    async fn expect(&mut self, from: &[usize], word: &str) -> Result<Said> {
        let wanted = |said: &Said| {
            from.contains(&said.from) && said.words.first().is_some_and(|w| w == word)
        };
        if let Some(i) = self.backlog.iter().position(wanted) {
            return Ok(self.backlog.remove(i));
        }
        loop {
            let said = step(&format!("{word} from a contender"), self.said.recv()).await?;
            if said.words.first().is_some_and(|w| w == "ERROR") {
                let name = &self.processes[said.from].name;
                return Err(Error::unavailable(format!(
                    "{name}: {}",
                    said.words.join(" ")
                )));
            }
            if wanted(&said) {
                return Ok(said);
            }
            self.backlog.push(said);
        }
    }

    /// Waits for a leader among `from`; returns its index, its term and the
    /// time from `since` to the grant.
    async fn granted(
        &mut self,
        from: &[usize],
        since: Option<Instant>,
    ) -> Result<(usize, u64, Duration)> {
        let said = self.expect(from, "GRANTED").await?;
        let failover = since.map(|s| s.elapsed()).unwrap_or_default();
        let term: u64 = said.words[1].parse().unwrap_or(0);
        let took = since
            .map(|_| format!(" — failover took {}", ms(failover)))
            .unwrap_or_default();
        let name = self.processes[said.from].name.clone();
        self.timeline.say(
            &name,
            format!(
                "granted {}: term {term}, session {}{took}",
                COMPONENTS.join(", "),
                said.words.get(3).map_or("?", |s| &s[..8.min(s.len())])
            ),
        );
        self.expect(&[said.from], "CONFIRMED").await?;
        self.timeline
            .say(&name, "confirmed; addresses published with fenced writes");
        Ok((said.from, term, failover))
    }

    async fn checkpoint(&mut self, leader: usize, n: u32) -> Result<()> {
        self.processes[leader]
            .send(&format!("checkpoint {n}"))
            .await?;
        let said = self.expect(&[leader], "WROTE").await?;
        let name = &self.processes[said.from].name;
        self.timeline
            .say(name, format!("writes \"checkpoint {n}\" (fenced)"));
        Ok(())
    }
}

pub(crate) async fn run(dir: Option<PathBuf>) -> Result<()> {
    let (dir, temporary) = match dir {
        Some(dir) => (dir, false),
        None => {
            let dir = std::env::temp_dir().join(format!("tenure-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            (dir, true)
        }
    };
    let outcome = tour(&dir).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

async fn tour(dir: &std::path::Path) -> Result<()> {
    let url = format!("local://{}", dir.display());
    println!("tenure demo — three job managers, each its own OS process, contend for cluster");
    println!("{CLUSTER:?} on the local backend ({url}). No server involved.\n");
    let observer = tenure::connect(&url).await?;
    let exe = std::env::current_exe().map_err(|e| failed("cannot find the tenure binary", e))?;
    let (tx, said) = mpsc::unbounded_channel();
    let mut processes = Vec::new();
    for i in 0..3 {
        let name = format!("jm-{}", i + 1);
        let mut child = Command::new(&exe)
            .args(["demo-contender", "--backend", &url, "--name", &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("cannot start a contender process", e))?;
        let stdin = child.stdin.take().ok_or_else(|| gone(&name))?;
        let stdout = child.stdout.take().ok_or_else(|| gone(&name))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let words = line.split_whitespace().map(str::to_owned).collect();
                if tx.send(Said { from: i, words }).is_err() {
                    return;
                }
            }
        });
        processes.push(Process {
            name,
            child,
            stdin,
            session: 0,
        });
    }
    let mut demo = Demo {
        timeline: Timeline {
            start: Instant::now(),
        },
        processes,
        said,
        backlog: Vec::new(),
    };
    for _ in 0..3 {
        let ready = demo.expect(&[0, 1, 2], "READY").await?;
        demo.processes[ready.from].session = ready.words[1].parse().unwrap_or(0);
    }
    let pids: Vec<String> = demo
        .processes
        .iter()
        .map(|p| format!("{} (pid {})", p.name, p.child.id().unwrap_or(0)))
        .collect();
    demo.timeline
        .say("all", format!("{} campaign", pids.join(", ")));
    let mut views = LeaderRetrieval::new(observer.clone(), CLUSTER, "dispatcher")?.stream();

    let (first, term, _) = demo.granted(&[0, 1, 2], None).await?;
    retriever_sees(&demo.timeline, &mut views, term).await?;
    demo.checkpoint(first, 1).await?;

    println!("\n  Round 1: the leader's process is killed");
    let others: Vec<usize> = (0..3).filter(|p| *p != first).collect();
    let killed_at = Instant::now();
    demo.processes[first].signal("-KILL")?;
    let name = demo.processes[first].name.clone();
    demo.timeline
        .say(&name, "killed (kill -9); the kernel releases its lock");
    let (second, term, crash_failover) = demo.granted(&others, Some(killed_at)).await?;
    retriever_sees(&demo.timeline, &mut views, term).await?;
    demo.checkpoint(second, 2).await?;

    println!("\n  Round 2: the new leader hangs in the middle of a write");
    let third = others
        .iter()
        .copied()
        .find(|p| *p != second)
        .unwrap_or(second);
    demo.processes[second].send("late-checkpoint 3 300").await?;
    demo.processes[second].signal("-STOP")?;
    let name = demo.processes[second].name.clone();
    demo.timeline
        .say(&name, "stopped (SIGSTOP) while sending \"checkpoint 3\"");
    let quiet =
        tokio::time::timeout(Duration::from_secs(1), demo.expect(&[third], "GRANTED")).await;
    if quiet.is_ok() {
        return Err(Error::Backend {
            message: "a stopped leader lost leadership on its own".into(),
            source: None,
        });
    }
    demo.timeline.say(
        "backend",
        format!("1 s later {name} still leads: a stopped process is not dead, so nobody acts"),
    );
    let election = Path::parse("election", &format!("{CLUSTER}/leader/latch"))?;
    let stuck = Grant {
        election: election.clone(),
        term,
        session: SessionId(demo.processes[second].session),
        key: String::new(),
    };
    let evicted_at = Instant::now();
    observer.resign(&stuck).await?;
    demo.timeline.say(
        "operator",
        format!("evicts {name}: removes its candidate (term {term})"),
    );
    let (_, new_term, evict_failover) = demo.granted(&[third], Some(evicted_at)).await?;
    retriever_sees(&demo.timeline, &mut views, new_term).await?;
    demo.checkpoint(third, 3).await?;

    demo.processes[second].signal("-CONT")?;
    demo.timeline.say(
        &name,
        format!("resumed: its \"checkpoint 3\" with term {term} reaches the backend…"),
    );
    let late = demo.expect(&[second], "LATE-FENCED").await;
    let rejected = late.is_ok();
    match late {
        Ok(said) => demo.timeline.say(
            &name,
            format!("…and is rejected: {}", said.words[1..].join(" ")),
        ),
        Err(_) => demo
            .timeline
            .say(&name, "…and was ACCEPTED (this is a bug)"),
    }
    let revoked = demo.expect(&[second], "REVOKED").await?;
    demo.timeline.say(
        &name,
        format!("knows it lost leadership: {}", revoked.words[1..].join(" ")),
    );
    let stored = observer
        .get(&Path::parse("key", CHECKPOINT_KEY)?)
        .await?
        .map(|v| String::from_utf8_lossy(&v.value).into_owned())
        .unwrap_or_else(|| "(nothing)".into());
    demo.timeline.say(
        "backend",
        format!("latest checkpoint is still \"{stored}\""),
    );

    println!("\n  Summary");
    println!(
        "    crash failover     {:>10}   (kill -9 to the next grant: no TTL to wait out)",
        ms(crash_failover)
    );
    println!(
        "    eviction failover  {:>10}   (operator removes a hung leader to the next grant)",
        ms(evict_failover)
    );
    println!(
        "    late write of the hung leader: {}",
        if rejected {
            "rejected, nothing changed"
        } else {
            "ACCEPTED"
        }
    );

    for p in &mut demo.processes {
        let _ = p.send("exit").await;
    }
    for p in &mut demo.processes {
        if tokio::time::timeout(Duration::from_secs(5), p.child.wait())
            .await
            .is_err()
        {
            let _ = p.child.kill().await;
        }
    }
    observer.close().await?;
    if rejected {
        Ok(())
    } else {
        Err(Error::Backend {
            message: "the stale leader's write was not fenced".into(),
            source: None,
        })
    }
}
