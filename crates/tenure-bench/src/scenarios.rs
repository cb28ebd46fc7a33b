//! The scenarios that run contender processes, written once for tenure and the
//! peers alike: a [`Subject`] says how to start one contender.

use std::time::Duration;

use tokio::process::Command;

use crate::proc::{nanos, since, Proc};
use crate::report::{Report, Row, Stat};

/// Which session lifetime a contender asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lease {
    /// The implementation's default TTL / session timeout.
    Default,
    /// The short one ([`Subject::short`]), so crash scenarios stay short.
    Short,
}

/// Starts contenders of one implementation against one backend.
/// `scope` names the election (or its path), one per scenario, so no scenario
/// meets another's leftovers.
pub(crate) type Spawner = Box<dyn Fn(Lease, &str) -> Result<Command, String> + Send + Sync>;

/// One implementation on one backend.
pub(crate) struct Subject {
    /// `tenure`, `etcdctl elect`, `Curator LeaderLatch`, `kazoo Election`.
    pub(crate) implementation: String,
    /// `local`, `etcd`, `etcd ×3`, `zookeeper`, `zookeeper ×3`.
    pub(crate) backend: String,
    /// The TTL / session timeout of [`Lease::Short`] and of [`Lease::Default`].
    pub(crate) short: Duration,
    pub(crate) default: Duration,
    /// Whether the targets apply (they are tenure's).
    pub(crate) targeted: bool,
    pub(crate) spawn: Spawner,
}

impl Subject {
    async fn start(&self, lease: Lease, scope: &str) -> Result<Proc, String> {
        let label = format!("{} on {}", self.implementation, self.backend);
        Proc::spawn(&label, (self.spawn)(lease, scope)?).await
    }

    fn row(&self, scenario: &str, measure: &str, unit: &str, samples: Vec<f64>) -> Row {
        Row::new(
            scenario,
            &self.implementation,
            &self.backend,
            measure,
            unit,
            samples,
        )
    }

    fn is_server(&self) -> bool {
        self.backend.starts_with("etcd") || self.backend.starts_with("zookeeper")
    }
}

/// How long a queued candidate is given to start watching before the leader
/// goes.
const SETTLE: Duration = Duration::from_millis(100);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed `later − earlier` in milliseconds, for two host-clock readings.
fn signed_ms(earlier: u128, later: u128) -> f64 {
    (later as f64 - earlier as f64) / 1e6
}

/// Two contenders take turns: the leader resigns while the other waits queued.
pub(crate) async fn handover(
    report: &mut Report,
    subject: &Subject,
    trials: usize,
) -> Result<(), String> {
    let mut procs = [
        subject.start(Lease::Default, "handover").await?,
        subject.start(Lease::Default, "handover").await?,
    ];
    procs[0].send("campaign").await?;
    procs[0].expect("GRANT").await?;
    let mut holder = 0;
    let mut samples = Vec::new();
    for _ in 0..trials {
        let other = 1 - holder;
        procs[other].send("campaign").await?;
        procs[other].queued(2).await?;
        // A candidate's key exists before it watches its predecessor
        // (`etcdctl elect` takes tens of milliseconds for that); every
        // implementation gets the same pause, so each measures a waiting
        // candidate, not one still setting up.
        tokio::time::sleep(SETTLE).await;
        procs[holder].send("resign").await?;
        let resigned = procs[holder].expect("RESIGNING").await?;
        let granted = procs[other].expect("GRANT").await?;
        samples.push(ms(since(resigned, granted)));
        holder = other;
    }
    let mut row = subject.row("handover", "resign → next process granted", "ms", samples);
    if subject.targeted {
        row = if subject.is_server() {
            row.below(Stat::Median, 3.0).below(Stat::P99, 10.0)
        } else {
            row.below(Stat::P99, 10.0)
        };
    }
    report.add(row);
    Ok(())
}

/// The leader process is killed; a queued contender takes over once the
/// backend notices (on servers: once the session or lease expires).
pub(crate) async fn crash(
    report: &mut Report,
    subject: &Subject,
    lease: Lease,
    trials: usize,
) -> Result<(), String> {
    let ttl = match lease {
        Lease::Default => subject.default,
        Lease::Short => subject.short,
    };
    let scope = match lease {
        Lease::Default => "crash-default",
        Lease::Short => "crash",
    };
    let mut leader = subject.start(lease, scope).await?;
    leader.send("campaign").await?;
    leader.expect("GRANT").await?;
    let mut samples = Vec::new();
    for _ in 0..trials {
        let mut next = subject.start(lease, scope).await?;
        next.send("campaign").await?;
        next.queued(2).await?;
        tokio::time::sleep(SETTLE).await;
        let killed = nanos();
        leader.kill().await?;
        let granted: u128 = next
            .expect_line("GRANT", ttl + Duration::from_secs(30))
            .await?
            .trim()
            .parse()
            .map_err(|_| "GRANT without a time".to_owned())?;
        samples.push(signed_ms(killed, granted));
        leader = next;
    }
    drop(leader);
    if !subject.is_server() {
        let mut row = subject.row("crash", "kill -9 → next process granted", "ms", samples);
        if subject.targeted {
            row = row.below(Stat::P99, 50.0);
        }
        report.add(row);
        return Ok(());
    }
    let ttl_ms = ms(ttl);
    let which = match lease {
        Lease::Default => "default",
        Lease::Short => "short",
    };
    let mut row = subject.row(
        "crash",
        &format!(
            "kill -9 → next granted, {which} TTL {} s",
            ttl.as_secs_f64()
        ),
        "ms",
        samples.clone(),
    );
    let mut minus = subject.row(
        "crash",
        &format!("… minus the {} s TTL", ttl.as_secs_f64()),
        "ms",
        samples.iter().map(|s| s - ttl_ms).collect(),
    );
    if subject.targeted {
        row = row.below(Stat::P99, ttl_ms + 150.0);
        minus = minus.below(Stat::P99, 150.0);
    }
    report.add(row);
    report.add(minus);
    Ok(())
}

/// The leader process is stopped (SIGSTOP, as a long GC pause or a frozen VM
/// would); a queued contender is granted once the session expires. The
/// stopped leader's own lost-signal fires at its renew deadline — the last one
/// it printed before it stopped — so the successor must be granted after it.
pub(crate) async fn paused(
    report: &mut Report,
    subject: &Subject,
    trials: usize,
) -> Result<(), String> {
    let mut leader = subject.start(Lease::Short, "paused").await?;
    leader.send("campaign").await?;
    leader.expect("GRANT").await?;
    let (mut margins, mut stop_to_deadline, mut stop_to_grant) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut reasons = Vec::new();
    for _ in 0..trials {
        let mut next = subject.start(Lease::Short, "paused").await?;
        next.send("campaign").await?;
        next.queued(2).await?;
        tokio::time::sleep(SETTLE).await;
        let stopped = nanos();
        leader.signal(libc::SIGSTOP)?;
        // Lines already in the pipe were printed before the stop.
        leader.drain(Duration::from_millis(20)).await;
        let deadline = leader
            .last_deadline()
            .ok_or("the leader never printed its renew deadline")?;
        let granted = next.expect("GRANT").await?;
        margins.push(signed_ms(deadline, granted));
        stop_to_deadline.push(signed_ms(stopped, deadline));
        stop_to_grant.push(signed_ms(stopped, granted));
        // Resumed, the old leader must report the loss it could not see while
        // stopped.
        leader.signal(libc::SIGCONT)?;
        let lost = leader.expect_line("LOST", Duration::from_secs(30)).await?;
        reasons.push(lost.split(' ').nth(1).unwrap_or("?").to_owned());
        leader.kill().await?;
        leader = next;
    }
    drop(leader);
    let mut row = subject.row(
        "paused",
        "successor granted − stopped leader's renew deadline (safety margin)",
        "ms",
        margins,
    );
    if subject.targeted {
        row = row.at_least(Stat::Min, 0.0);
    }
    report.add(row.note(format!(
        "the resumed leader reported its loss as: {}",
        dedup(&reasons).join(", ")
    )));
    report.add(subject.row(
        "paused",
        "SIGSTOP → the leader's renew deadline",
        "ms",
        stop_to_deadline,
    ));
    report.add(subject.row(
        "paused",
        &format!(
            "SIGSTOP → successor granted (TTL {} s)",
            subject.short.as_secs_f64()
        ),
        "ms",
        stop_to_grant,
    ));
    Ok(())
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for i in items {
        if !seen.contains(i) {
            seen.push(i.clone());
        }
    }
    seen
}

/// A stopped process on a backend without sessions (local) keeps leadership:
/// shows that nobody is granted while it is stopped.
pub(crate) async fn paused_without_session(
    report: &mut Report,
    subject: &Subject,
    hold: Duration,
) -> Result<(), String> {
    let mut leader = subject.start(Lease::Default, "paused").await?;
    leader.send("campaign").await?;
    leader.expect("GRANT").await?;
    let mut next = subject.start(Lease::Default, "paused").await?;
    next.send("campaign").await?;
    next.queued(2).await?;
    leader.signal(libc::SIGSTOP)?;
    let early = next.expect_line("GRANT", hold).await;
    leader.signal(libc::SIGCONT)?;
    let measure = "successor granted while the leader is stopped";
    match early {
        Ok(_) => return Err(format!("{}: {measure}", subject.backend)),
        Err(_) => report.add(
            subject
                .row("paused", measure, "grants", vec![0.0])
                .below(Stat::Max, 1.0)
                .note(format!(
                    "a stopped process keeps its lock (the kernel holds it until the process \
                     exits), so it has no renew deadline and nobody else is granted: \
                     none in {} s of SIGSTOP",
                    hold.as_secs()
                )),
        ),
    }
    Ok(())
}

/// The contender's live heap bytes (see `crate::heap`).
async fn heap(p: &mut Proc) -> Result<isize, String> {
    p.send("heap").await?;
    p.expect_line("HEAP", Duration::from_secs(10))
        .await?
        .trim()
        .parse()
        .map_err(|_| "HEAP without a number".to_owned())
}

/// The process's resident set size in KiB.
pub(crate) fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Counts what the backend's servers received, summed over the members, and
/// the unit of that count (e.g. `gRPC msg/s`).
pub(crate) type Traffic = Box<dyn Fn() -> f64 + Send + Sync>;

/// Elections acquired and released before the baseline of [`many`].
const WARM_UP: usize = 500;

/// `n` elections acquired by one contender process on its one session; its
/// RSS per election, and the backend's traffic while it holds them.
pub(crate) async fn many(
    report: &mut Report,
    subject: &Subject,
    n: usize,
    traffic: Option<(&Traffic, &str)>,
    settle: Duration,
    window: Duration,
) -> Result<(), String> {
    let mut p = subject.start(Lease::Default, "many").await?;
    let tenure = subject.implementation == "tenure";
    let heap_start = if tenure {
        Some(heap(&mut p).await?)
    } else {
        None
    };
    // Warm up on other elections: what a process pays once for campaigning
    // (connection buffers, allocator arenas, request slots) is not a cost per
    // election.
    p.send(&format!("many {WARM_UP} warm")).await?;
    p.expect_line("ACQUIRED", Duration::from_secs(300)).await?;
    p.send("release").await?;
    p.expect("RELEASED").await?;
    // Let the released leaderships' monitors finish.
    tokio::time::sleep(settle).await;
    if tenure {
        p.send("trim").await?;
        p.expect("TRIMMED").await?;
    }
    let heap_before = if tenure {
        Some(heap(&mut p).await?)
    } else {
        None
    };
    if let (Some(start), Some(before)) = (heap_start, heap_before) {
        let left = (before - start).max(0) as f64 / 1024.0 / WARM_UP as f64;
        report.add(
            subject
                .row(
                    "many",
                    &format!("live heap left per election, {WARM_UP} acquired and released"),
                    "KiB",
                    vec![left],
                )
                .note("what the warm-up leaves in the baseline: buffers and tables kept for reuse, or leaks"),
        );
    }
    let before = rss_kib(p.pid());
    p.send(&format!("many {n}")).await?;
    let took: f64 = p
        .expect_line("ACQUIRED", Duration::from_secs(300))
        .await?
        .trim()
        .parse()
        .map_err(|_| "ACQUIRED without a time".to_owned())?;
    // Let leadership monitors set up their watches before measuring the
    // steady state.
    tokio::time::sleep(settle).await;
    let untrimmed = (rss_kib(p.pid()) - before).max(0.0) / n as f64;
    // tenure's contender can hand what the campaigns freed back to the system
    // (malloc_trim), so RSS shows what holding costs; the peers' runtimes
    // manage their own heaps.
    let trimmed = if tenure {
        p.send("trim").await?;
        p.expect("TRIMMED").await?;
        Some((rss_kib(p.pid()) - before).max(0.0) / n as f64)
    } else {
        None
    };
    let per_election = trimmed.unwrap_or(untrimmed);
    let mut time = subject.row("many", &format!("{n} elections acquired"), "ms", vec![took]);
    let mut rss = subject.row(
        "many",
        &format!("RSS per election, {n} held"),
        "KiB",
        vec![per_election],
    );
    let warmed = format!("the baseline follows {WARM_UP} elections acquired and released");
    rss = rss.note(match trimmed {
        Some(_) => format!(
            "after malloc_trim (the memory the campaigns freed is returned first); {warmed}"
        ),
        None => warmed,
    });
    if subject.targeted {
        if n >= 10_000 && subject.backend.starts_with("etcd") {
            time = time.below(Stat::Max, 5000.0);
        }
        rss = rss.below(Stat::Max, 4.0);
    }
    report.add(time);
    report.add(rss);
    if trimmed.is_some() {
        report.add(subject.row(
            "many",
            &format!("RSS per election, {n} held, before malloc_trim"),
            "KiB",
            vec![untrimmed],
        ));
    }
    if let Some(heap_before) = heap_before {
        let held = (heap(&mut p).await? - heap_before) as f64 / 1024.0 / n as f64;
        report.add(
            subject
                .row(
                    "many",
                    &format!("live heap per election, {n} held"),
                    "KiB",
                    vec![held],
                )
                .note("bytes tenure holds, counted by the allocator; RSS adds the allocator's overhead and fragmentation"),
        );
    }
    if let Some((count, unit)) = traffic {
        let first = count();
        tokio::time::sleep(window).await;
        let rate = (count() - first) / window.as_secs_f64();
        report.add(subject.row(
            "many",
            &format!("backend traffic while holding {n}"),
            unit,
            vec![rate],
        ));
    }
    p.send("release").await?;
    p.expect_line("RELEASED", Duration::from_secs(300)).await?;
    Ok(())
}
