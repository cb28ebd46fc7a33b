//! The results table and `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::time::Duration;

/// One measured scenario.
pub(crate) struct Row {
    pub(crate) backend: &'static str,
    pub(crate) scenario: &'static str,
    pub(crate) samples: Vec<Duration>,
    /// The target from the issue tracker, if any, with the statistic it bounds.
    pub(crate) target: Option<(Stat, Duration)>,
    pub(crate) note: &'static str,
}

#[derive(Clone, Copy)]
pub(crate) enum Stat {
    Median,
    P99,
}

/// What the table cannot say: why targets are missed and what would fix it.
const FOOTER: &str = "
Where targets are missed:

- etcd crash failover: a killed holder's lease must run out on the server, and
  etcd's lessor looks for expired leases every 500 ms, so failover lands between
  TTL and TTL + 500 ms; the client cannot make it TTL + 150 ms.
- ZooKeeper crash failover: the server expires sessions in buckets one tickTime
  wide (200 ms in the test kit), so failover lands up to a tick after the
  negotiated session timeout; a smaller tickTime on the server would bring it
  within timeout + 150 ms. The client's part (seeing the node go and being
  granted) is about as fast as a graceful handover.
- 10,000 elections on one lease: acquiring them takes about 5 s (target: under
  5 s) and costs about 27 KiB of RSS each (target 4 KiB): each leadership has its own
  monitor task and leader watch; one watch per election prefix shared by all
  elections would cut both. Traffic while holding is flat (one keep-alive).
- local graceful handover: other processes poll the state file every 5 ms;
  p99 sits near the 10 ms target under load; inotify would remove the polling.
";

pub(crate) struct Report {
    quick: bool,
    load: String,
    rows: Vec<Row>,
    /// Results that are not latency distributions, as table rows.
    lines: Vec<String>,
    /// The servers measured against, e.g. `ZooKeeper 3.8.4`.
    servers: Vec<String>,
    /// Notes that are not about one row's target, e.g. computed values.
    notes: Vec<String>,
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Report {
    pub(crate) fn start(quick: bool) -> Report {
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        Report {
            quick,
            load,
            rows: Vec::new(),
            lines: Vec::new(),
            servers: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, row: Row) {
        let mut sorted = row.samples.clone();
        sorted.sort();
        println!(
            "{:<8} {:<44} n={:<4} median {:>8} ms  p99 {:>8} ms",
            row.backend,
            row.scenario,
            sorted.len(),
            ms(quantile(&sorted, 0.5)),
            ms(quantile(&sorted, 0.99)),
        );
        self.rows.push(row);
    }

    pub(crate) fn add_line(&mut self, line: String) {
        self.lines.push(line);
    }

    pub(crate) fn add_server(&mut self, server: String) {
        println!("server: {server}");
        self.servers.push(server);
    }

    pub(crate) fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub(crate) fn write(&self, path: &str) -> Result<(), String> {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Reproduce with:\n\n```sh\ncargo run --release -p tenure-bench -- all{}\n```\n",
            if self.quick { " --quick" } else { "" }
        );
        let _ = writeln!(
            md,
            "Machine: {cores} cores, load average at start {}. Times in milliseconds; \
             cross-process times are read from the host's clock by both processes.\n",
            self.load
        );
        if !self.servers.is_empty() {
            let _ = writeln!(md, "Servers: {}.\n", self.servers.join("; "));
        }
        let _ = writeln!(
            md,
            "| backend | scenario | n | min | median | p99 | max | target | met |\n|---|---|---|---|---|---|---|---|---|"
        );
        for row in &self.rows {
            let mut s = row.samples.clone();
            s.sort();
            let (target, met) = match row.target {
                Some((stat, bound)) => {
                    let (name, value) = match stat {
                        Stat::Median => ("median", quantile(&s, 0.5)),
                        Stat::P99 => ("p99", quantile(&s, 0.99)),
                    };
                    (
                        format!("{name} < {}", ms(bound)),
                        if value < bound { "yes" } else { "**no**" },
                    )
                }
                None => ("—".into(), "—"),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.backend,
                row.scenario,
                s.len(),
                ms(s[0]),
                ms(quantile(&s, 0.5)),
                ms(quantile(&s, 0.99)),
                ms(s[s.len() - 1]),
                target,
                met
            );
        }
        if !self.lines.is_empty() {
            let _ = writeln!(
                md,
                "\n| backend | scenario | time | memory | backend traffic while holding |\n|---|---|---|---|---|"
            );
            for line in &self.lines {
                let _ = writeln!(md, "{line}");
            }
        }
        let _ = writeln!(md, "\nNotes:\n");
        for row in self.rows.iter().filter(|r| !r.note.is_empty()) {
            let _ = writeln!(md, "- {} / {}: {}", row.backend, row.scenario, row.note);
        }
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push_str(FOOTER);
        std::fs::write(path, md).map_err(|e| format!("cannot write {path}: {e}"))
    }
}
