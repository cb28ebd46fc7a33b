//! The summary of a campaign: faults by kind, operations by outcome,
//! violations by invariant, heal times, the largest acting overlap; as text
//! or JSON, always with the seed and the command that replays it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::campaign::Outcome;
use crate::checker::{Analysis, Violation};

/// How many violations the report shows in full.
const SHOWN: usize = 10;

/// Everything the report says.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) backend: String,
    pub(crate) seed: u64,
    pub(crate) replay: String,
    pub(crate) history: String,
    pub(crate) seconds: f64,
    pub(crate) faults: BTreeMap<String, u64>,
    pub(crate) faults_total: u64,
    pub(crate) grants: u64,
    pub(crate) writes: BTreeMap<String, u64>,
    pub(crate) ha_writes: BTreeMap<String, u64>,
    pub(crate) retrievals_seen: u64,
    pub(crate) unknown: u64,
    pub(crate) unknown_applied: u64,
    pub(crate) unknown_not_applied: u64,
    pub(crate) violations_by_invariant: BTreeMap<u8, u64>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) liveness_failures: Vec<String>,
    pub(crate) heal_ms_median: Option<f64>,
    pub(crate) heal_ms_p99: Option<f64>,
    pub(crate) largest_overlap_ms: f64,
}

impl Summary {
    pub(crate) fn new(
        backend: &str,
        seed: u64,
        replay: String,
        outcome: &Outcome,
        analysis: Analysis,
    ) -> Self {
        let mut heal: Vec<f64> = outcome.heal_ns.iter().map(|&n| n as f64 / 1e6).collect();
        heal.sort_by(f64::total_cmp);
        let at = |q: f64| -> Option<f64> {
            (!heal.is_empty()).then(|| heal[((heal.len() - 1) as f64 * q).round() as usize])
        };
        let mut by_invariant = BTreeMap::new();
        for v in &analysis.violations {
            *by_invariant.entry(v.invariant).or_default() += 1;
        }
        Summary {
            backend: backend.to_owned(),
            seed,
            replay,
            history: outcome.dir.display().to_string(),
            seconds: outcome.elapsed.as_secs_f64(),
            faults_total: outcome.faults.values().sum(),
            faults: outcome.faults.clone(),
            grants: analysis.grants,
            writes: analysis.writes,
            ha_writes: analysis.ha_writes,
            retrievals_seen: analysis.seen,
            unknown: analysis.unknown,
            unknown_applied: analysis.unknown_applied,
            unknown_not_applied: analysis.unknown_not_applied,
            violations_by_invariant: by_invariant,
            violations: analysis.violations.into_iter().take(SHOWN * 10).collect(),
            liveness_failures: outcome.liveness_failures.clone(),
            heal_ms_median: at(0.5),
            heal_ms_p99: at(0.99),
            largest_overlap_ms: analysis.largest_overlap_ns as f64 / 1e6,
        }
    }

    /// Whether the campaign found nothing wrong.
    pub(crate) fn passed(&self) -> bool {
        self.violations_by_invariant.is_empty() && self.liveness_failures.is_empty()
    }

    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "tenure-chaos on {} — seed {}", self.backend, self.seed);
        let _ = writeln!(out, "replay: {}", self.replay);
        let _ = writeln!(out, "history: {}", self.history);
        let _ = writeln!(out, "time: {:.0} s", self.seconds);
        let _ = writeln!(out, "\nfaults ({} in all)", self.faults_total);
        for (kind, n) in &self.faults {
            let _ = writeln!(out, "  {kind:<20} {n:>7}");
        }
        let _ = writeln!(out, "\noperations");
        let _ = writeln!(out, "  {:<20} {:>7}", "grants", self.grants);
        for (outcome, n) in &self.writes {
            let _ = writeln!(out, "  {:<20} {n:>7}", format!("write {outcome}"));
        }
        for (what, n) in &self.ha_writes {
            let _ = writeln!(out, "  {:<20} {n:>7}", format!("HA {what}"));
        }
        let _ = writeln!(
            out,
            "  {:<20} {:>7}",
            "retrievals seen", self.retrievals_seen
        );
        let _ = writeln!(
            out,
            "  unknown outcomes {} (resolved by the final reads: {} applied, {} not)",
            self.unknown, self.unknown_applied, self.unknown_not_applied
        );
        let _ = writeln!(out, "\nliveness");
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
        let _ = writeln!(
            out,
            "  heal → led again: median {}, p99 {}",
            ms(self.heal_ms_median),
            ms(self.heal_ms_p99)
        );
        for failure in &self.liveness_failures {
            let _ = writeln!(out, "  FAILED: {failure}");
        }
        let _ = writeln!(
            out,
            "  largest acting overlap: {:.1} ms",
            self.largest_overlap_ms
        );
        let _ = writeln!(out, "\nviolations");
        for invariant in 1..=5 {
            let n = self
                .violations_by_invariant
                .get(&invariant)
                .copied()
                .unwrap_or(0);
            let _ = writeln!(out, "  invariant {invariant}: {n}");
        }
        for v in self.violations.iter().take(SHOWN) {
            let _ = writeln!(out, "\n  [{}] {}", v.invariant, v.what);
            for r in &v.records {
                let _ = writeln!(
                    out,
                    "      {} {}",
                    r.p,
                    serde_json::to_string(r).unwrap_or_default()
                );
            }
        }
        let _ = writeln!(out, "\n{}", if self.passed() { "PASSED" } else { "FAILED" });
        out
    }
}

/// The Markdown table of several campaigns' JSON summaries: one column per
/// campaign, and a total.
pub(crate) fn markdown(summaries: &[serde_json::Value]) -> String {
    use serde_json::Value;
    let num = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let sum_of = |v: &Value, k: &str| -> u64 {
        v[k].as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
    };
    let mut kinds: Vec<String> = summaries
        .iter()
        .filter_map(|s| s["faults"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut rows: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut row = |name: &str, cells: Vec<u64>| {
        let total: u64 = cells.iter().sum();
        rows.push((
            name.to_owned(),
            cells.iter().map(u64::to_string).collect(),
            total.to_string(),
        ));
    };
    for kind in &kinds {
        row(
            &format!("faults: {kind}"),
            summaries
                .iter()
                .map(|s| s["faults"][kind].as_u64().unwrap_or(0))
                .collect(),
        );
    }
    row(
        "**faults, all kinds**",
        summaries.iter().map(|s| num(s, "faults_total")).collect(),
    );
    row(
        "grants",
        summaries.iter().map(|s| num(s, "grants")).collect(),
    );
    row(
        "register writes",
        summaries.iter().map(|s| sum_of(s, "writes")).collect(),
    );
    row(
        "register writes acknowledged",
        summaries
            .iter()
            .map(|s| s["writes"]["ok"].as_u64().unwrap_or(0))
            .collect(),
    );
    row(
        "HA writes",
        summaries.iter().map(|s| sum_of(s, "ha_writes")).collect(),
    );
    row(
        "leader changes seen by retrievers",
        summaries
            .iter()
            .map(|s| num(s, "retrievals_seen"))
            .collect(),
    );
    row(
        "unknown outcomes",
        summaries.iter().map(|s| num(s, "unknown")).collect(),
    );
    row(
        "**violations**",
        summaries
            .iter()
            .map(|s| sum_of(s, "violations_by_invariant"))
            .collect(),
    );
    row(
        "liveness failures",
        summaries
            .iter()
            .map(|s| {
                s["liveness_failures"]
                    .as_array()
                    .map_or(0, |a| a.len() as u64)
            })
            .collect(),
    );
    let ms = |v: &Value| v.as_f64().map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    let mut out = String::new();
    let header: Vec<String> = summaries
        .iter()
        .map(|s| s["backend"].as_str().unwrap_or("?").to_owned())
        .collect();
    let _ = writeln!(out, "| | {} | total |", header.join(" | "));
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(header.len()));
    for (name, cells, total) in rows {
        let _ = writeln!(out, "| {name} | {} | {total} |", cells.join(" | "));
    }
    let cells = |f: &dyn Fn(&Value) -> String| -> String {
        summaries.iter().map(f).collect::<Vec<_>>().join(" | ")
    };
    let _ = writeln!(
        out,
        "| heal → led again, median | {} | |",
        cells(&|s| ms(&s["heal_ms_median"]))
    );
    let _ = writeln!(
        out,
        "| heal → led again, p99 | {} | |",
        cells(&|s| ms(&s["heal_ms_p99"]))
    );
    let _ = writeln!(
        out,
        "| largest acting overlap | {} | |",
        cells(&|s| format!("{:.1} ms", s["largest_overlap_ms"].as_f64().unwrap_or(0.0)))
    );
    let _ = writeln!(
        out,
        "| time | {} | |",
        cells(&|s| format!("{:.0} s", s["seconds"].as_f64().unwrap_or(0.0)))
    );
    let _ = writeln!(out, "\nReplay any column with its command:\n");
    for s in summaries {
        let _ = writeln!(out, "- `{}`", s["replay"].as_str().unwrap_or("?"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::markdown;

    #[test]
    fn the_table_sums_the_campaigns() {
        let local = serde_json::json!({
            "backend": "local", "faults": {"client-kill": 3}, "faults_total": 3,
            "grants": 5, "writes": {"ok": 7, "refused": 1}, "ha_writes": {"counter ok": 2},
            "retrievals_seen": 4, "unknown": 0, "violations_by_invariant": {},
            "liveness_failures": [], "heal_ms_median": 10.0, "heal_ms_p99": 20.0,
            "largest_overlap_ms": 0.0, "seconds": 9.0, "replay": "tenure-chaos run --backend local"
        });
        let mut etcd = local.clone();
        etcd["backend"] = "etcd".into();
        etcd["faults"] = serde_json::json!({"client-kill": 1, "quorum-loss": 2});
        etcd["faults_total"] = 3.into();
        let table = markdown(&[local, etcd]);
        assert!(table.contains("| | local | etcd | total |"), "{table}");
        assert!(
            table.contains("| faults: client-kill | 3 | 1 | 4 |"),
            "{table}"
        );
        assert!(
            table.contains("| faults: quorum-loss | 0 | 2 | 2 |"),
            "{table}"
        );
        assert!(
            table.contains("| **faults, all kinds** | 3 | 3 | 6 |"),
            "{table}"
        );
        assert!(
            table.contains("| register writes | 8 | 8 | 16 |"),
            "{table}"
        );
        assert!(table.contains("| **violations** | 0 | 0 | 0 |"), "{table}");
    }
}
