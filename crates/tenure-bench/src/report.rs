//! Results: rows per scenario, the Markdown tables of `BENCHMARKS.md` and one
//! JSON file of raw samples per scenario (read back by `compare`).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The scenarios, in the order the tables appear.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[
    ("handover", "Graceful handover: the leader resigns → the next candidate is granted"),
    ("crash", "Crash failover: the leader process is killed (SIGKILL) → the next candidate is granted"),
    ("paused", "Paused leader: the leader process is stopped (SIGSTOP); its renew deadline against the successor's grant"),
    ("flink", "Flink failover: the leading Apache Flink JobManager is killed (SIGKILL) → the standby is seen by retrieval"),
    ("watchdog", "Frozen supervisor: the watchdog stops the command by the renew deadline"),
    ("many", "Many elections on one session"),
    ("writes", "Fenced writes against unfenced writes of the same size"),
    ("fanout", "Retrieval fan-out: 1,000 retrievers following one election"),
    ("watch", "A change seen by a watcher"),
];

/// Which statistic a target bounds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stat {
    Min,
    Median,
    P99,
    Max,
}

/// A target from the issue: `stat` must be below (`at_least` false) or at
/// least (`at_least` true) `bound`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) stat: Stat,
    pub(crate) at_least: bool,
    pub(crate) bound: f64,
}

/// One measured quantity of one implementation on one backend.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    /// `tenure`, or the peer: `etcdctl elect`, `Curator LeaderLatch`, ...
    pub(crate) implementation: String,
    /// `memory`, `local`, `etcd`, `etcd ×3`, `zookeeper`, `zookeeper ×3`.
    pub(crate) backend: String,
    /// What was measured, e.g. `resign → next granted`.
    pub(crate) measure: String,
    /// `ms`, `KiB`, `msg/s`, `ops/s`, `ratio`.
    pub(crate) unit: String,
    /// In `unit`, in the order measured.
    pub(crate) samples: Vec<f64>,
    pub(crate) targets: Vec<Target>,
    pub(crate) note: Option<String>,
    /// Why this could not be measured; `samples` is empty.
    pub(crate) unavailable: Option<String>,
}

impl Row {
    pub(crate) fn new(
        scenario: &str,
        implementation: &str,
        backend: &str,
        measure: &str,
        unit: &str,
        samples: Vec<f64>,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            implementation: implementation.into(),
            backend: backend.into(),
            measure: measure.into(),
            unit: unit.into(),
            samples,
            targets: Vec::new(),
            note: None,
            unavailable: None,
        }
    }

    /// `stat` must stay below `bound`.
    pub(crate) fn below(mut self, stat: Stat, bound: f64) -> Row {
        self.targets.push(Target {
            stat,
            at_least: false,
            bound,
        });
        self
    }

    /// `stat` must reach at least `bound`.
    pub(crate) fn at_least(mut self, stat: Stat, bound: f64) -> Row {
        self.targets.push(Target {
            stat,
            at_least: true,
            bound,
        });
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }

    pub(crate) fn stat(&self, stat: Stat) -> Option<f64> {
        let mut s = self.samples.clone();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let q = |q: f64| s[(((s.len() - 1) as f64) * q).round() as usize];
        Some(match stat {
            Stat::Min => s[0],
            Stat::Median => q(0.5),
            Stat::P99 => q(0.99),
            Stat::Max => s[s.len() - 1],
        })
    }

    /// Whether every target is met, if there is one and something was measured.
    pub(crate) fn met(&self) -> Option<bool> {
        if self.targets.is_empty() {
            return None;
        }
        let mut met = true;
        for target in &self.targets {
            let value = self.stat(target.stat)?;
            met &= if target.at_least {
                value >= target.bound
            } else {
                value < target.bound
            };
        }
        Some(met)
    }
}

/// Everything one run measured.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) command: String,
    pub(crate) cores: usize,
    pub(crate) load: String,
    pub(crate) started: String,
    pub(crate) servers: Vec<String>,
    pub(crate) peers: Vec<String>,
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

/// A number for a table cell: three significant decimals for small values.
pub(crate) fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl Report {
    pub(crate) fn start(command: String) -> Report {
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let started = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Report {
            command,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load,
            started,
            servers: Vec::new(),
            peers: Vec::new(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, row: Row) {
        match (&row.unavailable, row.stat(Stat::Median)) {
            (Some(why), _) => println!(
                "{:<23} {:<14} {:<10} {}: not measured: {why}",
                row.implementation, row.backend, row.scenario, row.measure
            ),
            (None, Some(median)) => println!(
                "{:<23} {:<14} {:<10} {}: n={} median {} p99 {} {}{}",
                row.implementation,
                row.backend,
                row.scenario,
                row.measure,
                row.samples.len(),
                num(median),
                num(row.stat(Stat::P99).unwrap_or(median)),
                row.unit,
                match row.met() {
                    Some(false) => "  (target missed)",
                    _ => "",
                }
            ),
            (None, None) => {}
        }
        self.rows.push(row);
    }

    /// A row that could not be measured, and why.
    pub(crate) fn unavailable(
        &mut self,
        scenario: &str,
        implementation: &str,
        backend: &str,
        measure: &str,
        why: impl Into<String>,
    ) {
        let mut row = Row::new(scenario, implementation, backend, measure, "", Vec::new());
        row.unavailable = Some(why.into());
        self.add(row);
    }

    /// Lists a server the run started; one started again by another
    /// scenario (the same version and shape) is listed once.
    pub(crate) fn add_server(&mut self, server: String) {
        println!("server: {server}");
        if !self.servers.contains(&server) {
            self.servers.push(server);
        }
    }

    pub(crate) fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Writes the Markdown to `md` and one JSON per scenario into `results`.
    pub(crate) fn write(&self, md: &str, results: &str, footer: &str) -> Result<(), String> {
        std::fs::create_dir_all(results).map_err(|e| format!("cannot create {results}: {e}"))?;
        for (slug, _) in SCENARIOS {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.scenario == *slug).collect();
            if rows.is_empty() {
                continue;
            }
            let head = serde_json::json!({
                "command": self.command,
                "cores": self.cores,
                "load": self.load,
                "started": self.started,
                "servers": self.servers,
                "peers": self.peers,
            });
            let path = Path::new(results).join(format!("{slug}.json"));
            let text = results_json(&head, &rows).map_err(|e| e.to_string())?;
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        std::fs::write(md, self.markdown(results, footer))
            .map_err(|e| format!("cannot write {md}: {e}"))
    }

    fn markdown(&self, results: &str, footer: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(md, "Reproduce with:\n\n```sh\n{}\n```\n", self.command);
        let _ = writeln!(
            md,
            "Run {}: {} cores, load average at start {}. Raw samples per scenario in \
             `{results}/`; `cargo run --release -p tenure-bench -- compare OLD NEW` prints \
             the ratios between two runs. Times in milliseconds; cross-process times are \
             read from the host's clock by both processes.\n",
            self.started, self.cores, self.load
        );
        if !self.servers.is_empty() {
            let _ = writeln!(md, "Servers:\n");
            for s in &self.servers {
                let _ = writeln!(md, "- {s}");
            }
            md.push('\n');
        }
        if !self.peers.is_empty() {
            let _ = writeln!(md, "Peers:\n");
            for p in &self.peers {
                let _ = writeln!(md, "- {p}");
            }
            md.push('\n');
        }
        for (slug, title) in SCENARIOS {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.scenario == *slug).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(md, "## {title}\n");
            let _ = writeln!(
                md,
                "| implementation | backend | measure | n | min | median | p99 | max | target | met |\n\
                 |---|---|---|---|---|---|---|---|---|---|"
            );
            for row in &rows {
                let _ = writeln!(md, "{}", table_row(row));
            }
            let notes: Vec<String> = rows
                .iter()
                .filter_map(|r| {
                    let note = r.note.as_ref()?;
                    Some(format!(
                        "- {} / {} / {}: {note}",
                        r.implementation, r.backend, r.measure
                    ))
                })
                .collect();
            if !notes.is_empty() {
                let _ = writeln!(md, "\n{}", notes.join("\n"));
            }
            md.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "Notes:\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
            md.push('\n');
        }
        md.push_str(footer);
        md
    }
}

/// One scenario's results: the run's facts, then one row a line with its
/// samples to the nanosecond (a millionth of the unit), so that files stay
/// small and diffs of two runs read row by row.
fn results_json(head: &serde_json::Value, rows: &[&Row]) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(head)?;
    text.truncate(text.trim_end().trim_end_matches('}').trim_end().len());
    text.push_str(",\n  \"rows\": [\n");
    let mut lines = Vec::new();
    for row in rows {
        let mut row = (*row).clone();
        for s in &mut row.samples {
            *s = (*s * 1e6).round() / 1e6;
        }
        lines.push(format!("    {}", serde_json::to_string(&row)?));
    }
    text.push_str(&lines.join(",\n"));
    text.push_str("\n  ]\n}\n");
    Ok(text)
}

fn table_row(row: &Row) -> String {
    let cells = |v: &str| {
        format!(
            "| {} | {} | {} | {v} |",
            row.implementation, row.backend, row.measure
        )
    };
    if let Some(why) = &row.unavailable {
        return cells(&format!("— | — | — | — | — | not measured: {why} | —"));
    }
    let unit = if row.unit == "ms" {
        String::new()
    } else {
        format!(" {}", row.unit)
    };
    let stat = |s| row.stat(s).map(num).unwrap_or_default();
    let target = if row.targets.is_empty() {
        "—".to_owned()
    } else {
        row.targets
            .iter()
            .map(|t| {
                format!(
                    "{} {} {}{unit}",
                    match t.stat {
                        Stat::Min => "min",
                        Stat::Median => "median",
                        Stat::P99 => "p99",
                        Stat::Max => "max",
                    },
                    if t.at_least { "≥" } else { "<" },
                    num(t.bound)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let met = match row.met() {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    };
    cells(&format!(
        "{} | {}{unit} | {}{unit} | {}{unit} | {}{unit} | {target} | {met}",
        row.samples.len(),
        stat(Stat::Min),
        stat(Stat::Median),
        stat(Stat::P99),
        stat(Stat::Max),
    ))
}
