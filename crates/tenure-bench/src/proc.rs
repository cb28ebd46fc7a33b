//! Contender processes. Every implementation measured — tenure and the peers —
//! runs as a process group of its own speaking one line protocol, so one
//! scenario drives them all the same way:
//!
//! ```text
//! stdout  READY                 connected, not campaigning yet
//!         GRANT <unix ns>       leadership granted
//!         RESIGNING <unix ns>   about to give leadership up (on `resign`)
//!         COUNT <n>             candidates queued in the election (on `count`)
//!         DEADLINE <unix ns>    the renew deadline changed (tenure only)
//!         ACQUIRED <ms>         all of `many <n>` elections are held
//!         ERROR <message>       something failed; the scenario stops
//! stdin   campaign | resign | count | many <n> [<set>] | release
//! ```
//!
//! `many` campaigns in `n` elections named after `set` (default `many`), so a
//! warm-up and the measured run do not share elections.
//!
//! Times are the host's clock read in the process where the event happened.
//! Killing and pausing signal the whole group, so a wrapper and the program it
//! runs (`etcdctl elect` under its driver) stop together.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long one expected line may take; a crash failover with the default
/// session timeout (10 s) must fit.
const PATIENCE: Duration = Duration::from_secs(60);

/// The host's clock in nanoseconds since the epoch.
pub(crate) fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `later − earlier` for two [`nanos`] readings, zero if negative.
pub(crate) fn since(earlier: u128, later: u128) -> Duration {
    Duration::from_nanos(later.saturating_sub(earlier) as u64)
}

/// Where contender processes write their stderr.
fn log_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tenure-bench-logs-{}", std::process::id()))
}

/// One contender process group, killed (SIGKILL to the group) when dropped.
pub(crate) struct Proc {
    label: String,
    child: Child,
    pgid: i32,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
    /// The last `DEADLINE` the process printed, among the lines read so far.
    last_deadline: Option<u128>,
}

/// This binary's own contender for `url`: `tenure-bench contender URL NAME`.
pub(crate) fn tenure_command(url: &str, election: &str) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command.args(["contender", url, election]);
    Ok(command)
}

impl Proc {
    /// Starts `command` in a process group of its own and waits for `READY`.
    pub(crate) async fn spawn(label: &str, mut command: Command) -> Result<Proc, String> {
        let dir = log_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("{}-{n}.log", label.replace([' ', '/'], "_")));
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {label}: {e}"))?;
        let pgid = child.id().ok_or("the process ended at once")? as i32;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut p = Proc {
            label: label.to_owned(),
            child,
            pgid,
            stdin,
            lines,
            log,
            last_deadline: None,
        };
        p.expect("READY").await?;
        Ok(p)
    }

    /// The process group's id (the leader's pid).
    pub(crate) fn pid(&self) -> u32 {
        self.pgid as u32
    }

    pub(crate) async fn send(&mut self, line: &str) -> Result<(), String> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("{}: cannot send {line:?}: {e}", self.label))
    }

    /// The number after `word` on the next line starting with it.
    pub(crate) async fn expect(&mut self, word: &str) -> Result<u128, String> {
        let rest = self.expect_line(word, PATIENCE).await?;
        Ok(rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// The rest of the next line starting with `word`, skipping other lines.
    pub(crate) async fn expect_line(
        &mut self,
        word: &str,
        patience: Duration,
    ) -> Result<String, String> {
        loop {
            let line = match tokio::time::timeout(patience, self.lines.next_line()).await {
                Err(_) => return Err(self.failure(&format!("timed out waiting for {word}"))),
                Ok(Err(e)) => return Err(self.failure(&e.to_string())),
                Ok(Ok(None)) => return Err(self.failure(&format!("ended before {word}"))),
                Ok(Ok(Some(line))) => line,
            };
            let (first, rest) = line.split_once(' ').unwrap_or((&line, ""));
            self.saw(first, rest);
            if first == "ERROR" {
                return Err(self.failure(&format!("failed while we waited for {word}: {line}")));
            }
            if first == word {
                return Ok(rest.to_owned());
            }
        }
    }

    /// Reads every line that comes within `patience` of the previous one.
    pub(crate) async fn drain(&mut self, patience: Duration) {
        while let Ok(Ok(Some(line))) = tokio::time::timeout(patience, self.lines.next_line()).await
        {
            let (first, rest) = line.split_once(' ').unwrap_or((&line, ""));
            self.saw(first, rest);
        }
    }

    /// The renew deadline last printed, in host-clock nanoseconds.
    pub(crate) fn last_deadline(&self) -> Option<u128> {
        self.last_deadline
    }

    fn saw(&mut self, first: &str, rest: &str) {
        if first == "DEADLINE" {
            self.last_deadline = rest.parse().ok().or(self.last_deadline);
        }
    }

    /// How many candidates the election holds, as this contender sees them.
    pub(crate) async fn count(&mut self) -> Result<usize, String> {
        self.send("count").await?;
        Ok(self.expect("COUNT").await? as usize)
    }

    /// Waits until this contender sees `n` candidates queued.
    pub(crate) async fn queued(&mut self, n: usize) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let seen = self.count().await?;
            if seen == n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.failure(&format!("never saw {n} candidates, last {seen}")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends `signal` to the whole group.
    pub(crate) fn signal(&self, signal: i32) -> Result<(), String> {
        // SAFETY: killpg has no memory-safety preconditions.
        if unsafe { libc::killpg(self.pgid, signal) } != 0 {
            return Err(format!(
                "{}: cannot signal: {}",
                self.label,
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// SIGKILL to the group, then reaps the leader.
    pub(crate) async fn kill(mut self) -> Result<(), String> {
        self.signal(libc::SIGKILL)?;
        let _ = self.child.wait().await;
        Ok(())
    }

    /// An error naming the contender and the end of its stderr.
    fn failure(&self, what: &str) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{}: {what}; its stderr ({}) ends:\n{}",
            self.label,
            self.log.display(),
            tail.join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: as in `signal`; the group may already be gone.
        unsafe {
            libc::killpg(self.pgid, libc::SIGKILL);
        }
    }
}
