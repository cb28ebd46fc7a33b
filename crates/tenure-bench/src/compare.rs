//! `tenure-bench compare OLD NEW`: the ratio new / old of every row's median
//! and p99 that both runs measured.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use crate::report::{num, Row, Stat, SCENARIOS};

/// A row's identity across runs: scenario, implementation, backend, measure.
type Key = (String, String, String, String);

fn load(dir: &str) -> Result<BTreeMap<Key, Row>, String> {
    let mut rows = BTreeMap::new();
    for (slug, _) in SCENARIOS {
        let path = Path::new(dir).join(format!("{slug}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a results file: {e}", path.display()))?;
        let part: Vec<Row> = serde_json::from_value(value["rows"].clone())
            .map_err(|e| format!("{} has malformed rows: {e}", path.display()))?;
        for row in part {
            let key = (
                row.scenario.clone(),
                row.implementation.clone(),
                row.backend.clone(),
                row.measure.clone(),
            );
            rows.insert(key, row);
        }
    }
    if rows.is_empty() {
        return Err(format!(
            "{dir} holds no results (expected handover.json, crash.json, …)"
        ));
    }
    Ok(rows)
}

pub(crate) fn run(old: &str, new: &str) -> Result<(), String> {
    let (old_rows, new_rows) = (load(old)?, load(new)?);
    // Written without println!, so a closed pipe (`| head`) ends the output
    // quietly instead of panicking.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<10} {:<22} {:<14} {:<44} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "scenario",
        "implementation",
        "backend",
        "measure",
        "old med",
        "new med",
        "ratio",
        "old p99",
        "new p99",
        "ratio"
    );
    for (key, new_row) in &new_rows {
        let Some(old_row) = old_rows.get(key) else {
            continue;
        };
        let pair = |stat| match (old_row.stat(stat), new_row.stat(stat)) {
            (Some(o), Some(n)) => (
                num(o),
                num(n),
                if o == 0.0 {
                    "—".into()
                } else {
                    format!("{:.2}", n / o)
                },
            ),
            _ => ("—".into(), "—".into(), "—".into()),
        };
        let (om, nm, rm) = pair(Stat::Median);
        let (op, np, rp) = pair(Stat::P99);
        let _ = writeln!(
            out,
            "{:<10} {:<22} {:<14} {:<44} {om:>10} {nm:>10} {rm:>7} {op:>10} {np:>10} {rp:>7}",
            key.0, key.1, key.2, key.3
        );
    }
    let only_new = new_rows
        .keys()
        .filter(|k| !old_rows.contains_key(*k))
        .count();
    let only_old = old_rows
        .keys()
        .filter(|k| !new_rows.contains_key(*k))
        .count();
    if only_new + only_old > 0 {
        let _ = writeln!(
            out,
            "({only_new} rows only in {new}, {only_old} only in {old})"
        );
    }
    Ok(())
}
