//! The checker: reads a campaign's history and reports every violation of the
//! safety contracts, each with the records involved.
//!
//! 1. No write was accepted under a term that was no longer current: none
//!    replaced a value of a later term, and none was invoked after a later
//!    term had been granted.
//! 2. Terms strictly increase per election; no two grants share a term.
//! 3. Acting intervals — grant to loss signal, as each process saw them, less
//!    the time it was frozen — of different processes overlap by no more
//!    than the margin allowed.
//! 4. No acknowledged write is lost: each is the final value or was replaced
//!    by a write that read it; no two writes replaced the same value; counter
//!    values are never reused.
//! 5. A retriever never sees an older term after a newer one.
//! 6. Every operation with an unknown outcome is resolved by the final reads,
//!    as applied or not, and counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::history::{Event, Outcome, Record, Stored};

/// A broken contract, with the records that show it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Violation {
    /// Which of the invariants above (1–5).
    pub(crate) invariant: u8,
    /// What went wrong, in words.
    pub(crate) what: String,
    /// The records involved.
    pub(crate) records: Vec<Record>,
}

/// What the checker found.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Analysis {
    /// Every violation, in the order found.
    pub(crate) violations: Vec<Violation>,
    /// Writes by outcome (unknown ones as resolved: `unknown` is what
    /// remained unknown, which the final reads always resolve).
    pub(crate) writes: BTreeMap<String, u64>,
    /// HA writes by action and outcome.
    pub(crate) ha_writes: BTreeMap<String, u64>,
    /// Grants seen, over all elections.
    pub(crate) grants: u64,
    /// Leader changes seen by retrievers.
    pub(crate) seen: u64,
    /// Operations with an unknown outcome, and how the final reads resolved
    /// them.
    pub(crate) unknown: u64,
    pub(crate) unknown_applied: u64,
    pub(crate) unknown_not_applied: u64,
    /// The largest overlap of two acting intervals, in nanoseconds.
    pub(crate) largest_overlap_ns: u64,
}

/// One life of one process: from its `Start` to the next one (or its kill).
type Life = (String, u32);

struct Op {
    invoke: Record,
    election: String,
    read: Option<Stored>,
    write: Stored,
    outcome: Outcome,
    end: Option<Record>,
}

/// A fenced write through the HA services.
struct HaOp {
    invoke: Record,
    term: u64,
    action: String,
    /// The checkpoint's id (`checkpoint`), or the id handed out (`counter`).
    id: Option<u64>,
    outcome: Outcome,
    end: Option<Record>,
}

/// Where an operation's `End` goes.
#[derive(Clone, Copy)]
enum Open {
    Register(usize),
    Ha(usize),
}

struct Grant {
    life: Life,
    record: Record,
    election: String,
    term: u64,
    start: u64,
    /// Loss signal, kill, or the process's next start: when it stopped acting.
    end: u64,
}

/// Checks `records` (in time order); `margin_ns` is the acting overlap
/// allowed between two processes.
pub(crate) fn check(records: &[Record], margin_ns: u64) -> Analysis {
    let mut analysis = Analysis::default();
    let end_of_run = records.last().map_or(0, |r| r.t);
    let frozen = frozen_periods(records);
    let deaths = deaths(records);

    // Walk once: lives, operations, grants, retrievals, final values.
    let mut life_of: HashMap<String, u32> = HashMap::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut ha_ops: Vec<HaOp> = Vec::new();
    let mut final_ha: Option<(Record, u64, Vec<u64>)> = None;
    let mut final_results: Option<(Record, Vec<u64>, Vec<u64>)> = None;
    let mut open_ops: HashMap<(Life, u64), Open> = HashMap::new();
    let mut grants: Vec<Grant> = Vec::new();
    let mut open_grants: HashMap<(Life, String, u64), usize> = HashMap::new();
    let mut finals: HashMap<String, (Record, Option<Stored>)> = HashMap::new();
    let mut seen: HashMap<(Life, String), (u64, Record)> = HashMap::new();
    for record in records {
        let pid = life_of.get(&record.p).copied().unwrap_or(0);
        let life = (record.p.clone(), pid);
        match &record.ev {
            Event::Start { life: pid, .. } => {
                // The previous life ended here at the latest.
                let previous = (
                    record.p.clone(),
                    life_of.get(&record.p).copied().unwrap_or(0),
                );
                for grant in grants.iter_mut().filter(|g| g.life == previous) {
                    grant.end = grant.end.min(record.t);
                }
                life_of.insert(record.p.clone(), *pid);
            }
            Event::Grant { election, term } => {
                let died = deaths
                    .get(&record.p)
                    .and_then(|ts| ts.iter().find(|&&t| t >= record.t))
                    .copied()
                    .unwrap_or(end_of_run);
                open_grants.insert((life.clone(), election.clone(), *term), grants.len());
                grants.push(Grant {
                    life,
                    record: record.clone(),
                    election: election.clone(),
                    term: *term,
                    start: record.t,
                    end: died,
                });
            }
            Event::Loss { election, term, .. } => {
                if let Some(&i) = open_grants.get(&(life, election.clone(), *term)) {
                    grants[i].end = grants[i].end.min(record.t);
                }
            }
            Event::Invoke {
                op,
                election,
                read,
                write,
            } => {
                open_ops.insert((life, *op), Open::Register(ops.len()));
                ops.push(Op {
                    invoke: record.clone(),
                    election: election.clone(),
                    read: read.clone(),
                    write: write.clone(),
                    outcome: Outcome::Unknown,
                    end: None,
                });
            }
            Event::HaInvoke {
                op,
                term,
                action,
                id,
                ..
            } => {
                open_ops.insert((life, *op), Open::Ha(ha_ops.len()));
                ha_ops.push(HaOp {
                    invoke: record.clone(),
                    term: *term,
                    action: action.clone(),
                    id: *id,
                    outcome: Outcome::Unknown,
                    end: None,
                });
            }
            Event::End {
                op, outcome, value, ..
            } => match open_ops.get(&(life, *op)) {
                Some(&Open::Register(i)) => {
                    ops[i].outcome = *outcome;
                    ops[i].end = Some(record.clone());
                }
                Some(&Open::Ha(i)) => {
                    ha_ops[i].outcome = *outcome;
                    ha_ops[i].end = Some(record.clone());
                    if ha_ops[i].action == "counter" {
                        ha_ops[i].id = *value;
                    }
                }
                None => {}
            },
            Event::FinalHa {
                counter,
                checkpoints,
            } => final_ha = Some((record.clone(), *counter, checkpoints.clone())),
            Event::FinalResults { dirty, clean } => {
                final_results = Some((record.clone(), dirty.clone(), clean.clone()));
            }
            Event::Seen { election, term } => {
                analysis.seen += 1;
                if let Some(term) = term {
                    let key = (life, election.clone());
                    if let Some((highest, earlier)) = seen.get(&key) {
                        if term < highest {
                            analysis.violations.push(Violation {
                                invariant: 5,
                                what: format!(
                                    "retriever {} saw term {term} of {election} after term {highest}",
                                    record.p
                                ),
                                records: vec![earlier.clone(), record.clone()],
                            });
                            continue;
                        }
                    }
                    seen.insert(key, (*term, record.clone()));
                }
            }
            Event::Final { election, value } => {
                finals.insert(election.clone(), (record.clone(), value.clone()));
            }
            Event::Fault { .. } | Event::Phase { .. } | Event::Healed { .. } => {}
        }
    }
    analysis.grants = grants.len() as u64;

    check_terms(&grants, &mut analysis);
    check_stale_writes(&ops, &grants, &mut analysis);
    check_overlaps(&grants, &frozen, margin_ns, &mut analysis);
    check_lost_writes(&ops, &finals, &mut analysis);
    ha::check_ha(&ha_ops, &grants, final_ha.as_ref(), &mut analysis);
    ha::check_results(&ha_ops, final_results.as_ref(), &mut analysis);
    analysis
}

/// Invariant 2.
fn check_terms(grants: &[Grant], analysis: &mut Analysis) {
    let mut by_term: HashMap<(&str, u64), &Grant> = HashMap::new();
    for grant in grants {
        if let Some(other) = by_term.insert((&grant.election, grant.term), grant) {
            analysis.violations.push(Violation {
                invariant: 2,
                what: format!(
                    "{} and {} were both granted {} under term {}",
                    other.life.0, grant.life.0, grant.election, grant.term
                ),
                records: vec![other.record.clone(), grant.record.clone()],
            });
        }
    }
    for later in grants {
        // A grant that began after another had ended must have a higher term.
        if let Some(earlier) = grants
            .iter()
            .find(|g| g.election == later.election && g.end < later.start && g.term >= later.term)
        {
            analysis.violations.push(Violation {
                invariant: 2,
                what: format!(
                    "term {} of {} granted to {} after term {} of {} had ended",
                    later.term, later.election, later.life.0, earlier.term, earlier.life.0
                ),
                records: vec![earlier.record.clone(), later.record.clone()],
            });
        }
    }
}

/// Invariant 1.
fn check_stale_writes(ops: &[Op], grants: &[Grant], analysis: &mut Analysis) {
    for op in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        if let Some(read) = op.read.as_ref().filter(|r| r.term > op.write.term) {
            analysis.violations.push(Violation {
                invariant: 1,
                what: format!(
                    "a write of {} under term {} replaced one of term {} ({})",
                    op.election, op.write.term, read.term, read.id
                ),
                records: op_records(op),
            });
            continue;
        }
        let newer = grants
            .iter()
            .find(|g| g.election == op.election && g.term > op.write.term && g.start < op.invoke.t);
        if let Some(grant) = newer {
            let mut records = vec![grant.record.clone()];
            records.extend(op_records(op));
            analysis.violations.push(Violation {
                invariant: 1,
                what: format!(
                    "a write of {} under term {} was accepted after term {} was granted to {}",
                    op.election, op.write.term, grant.term, grant.life.0
                ),
                records,
            });
        }
    }
}

/// Invariant 3.
fn check_overlaps(
    grants: &[Grant],
    frozen: &HashMap<String, Vec<(u64, u64)>>,
    margin_ns: u64,
    analysis: &mut Analysis,
) {
    let acting = |g: &Grant| -> Vec<(u64, u64)> {
        let none = Vec::new();
        subtract((g.start, g.end), frozen.get(&g.life.0).unwrap_or(&none))
    };
    let intervals: Vec<Vec<(u64, u64)>> = grants.iter().map(acting).collect();
    for (i, a) in grants.iter().enumerate() {
        for (j, b) in grants.iter().enumerate().skip(i + 1) {
            if a.election != b.election || a.life == b.life {
                continue;
            }
            let overlap = overlap(&intervals[i], &intervals[j]);
            analysis.largest_overlap_ns = analysis.largest_overlap_ns.max(overlap);
            if overlap > margin_ns {
                analysis.violations.push(Violation {
                    invariant: 3,
                    what: format!(
                        "{} (term {}) and {} (term {}) both acted as leader of {} for {:.1} ms",
                        a.life.0,
                        a.term,
                        b.life.0,
                        b.term,
                        a.election,
                        overlap as f64 / 1e6
                    ),
                    records: vec![a.record.clone(), b.record.clone()],
                });
            }
        }
    }
}

/// Invariants 4 and 6.
fn check_lost_writes(
    ops: &[Op],
    finals: &HashMap<String, (Record, Option<Stored>)>,
    analysis: &mut Analysis,
) {
    // What the stored chains reference: final values, and what every applied
    // write replaced. An unknown write is applied if the chain names it.
    let mut referenced: HashSet<&str> = finals
        .values()
        .filter_map(|(_, v)| v.as_ref().map(|v| v.id.as_str()))
        .collect();
    let mut applied: Vec<bool> = ops.iter().map(|op| op.outcome == Outcome::Ok).collect();
    loop {
        for (op, &is_applied) in ops.iter().zip(&applied) {
            if is_applied {
                if let Some(read) = &op.read {
                    referenced.insert(read.id.as_str());
                }
            }
        }
        let mut changed = false;
        for (op, is_applied) in ops.iter().zip(applied.iter_mut()) {
            if !*is_applied
                && op.outcome == Outcome::Unknown
                && referenced.contains(op.write.id.as_str())
            {
                *is_applied = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut replaced: HashMap<(&str, Option<&str>), &Op> = HashMap::new();
    let mut counters: HashMap<(&str, u64), &Op> = HashMap::new();
    for (op, &is_applied) in ops.iter().zip(&applied) {
        let outcome = match (op.outcome, is_applied) {
            (Outcome::Unknown, true) => {
                analysis.unknown += 1;
                analysis.unknown_applied += 1;
                "unknown, applied"
            }
            (Outcome::Unknown, false) => {
                analysis.unknown += 1;
                analysis.unknown_not_applied += 1;
                "unknown, not applied"
            }
            (Outcome::Ok, _) => "ok",
            (Outcome::Fenced, _) => "fenced",
            (Outcome::Refused, _) => "refused",
        };
        *analysis.writes.entry(outcome.to_owned()).or_default() += 1;
        if !is_applied {
            continue;
        }
        if op.outcome == Outcome::Ok && !referenced.contains(op.write.id.as_str()) {
            analysis.violations.push(Violation {
                invariant: 4,
                what: format!(
                    "acknowledged write {} of {} is lost: neither the final value nor replaced by a write that read it",
                    op.write.id, op.election
                ),
                records: op_records(op),
            });
        }
        let prev = op.read.as_ref().map(|r| r.id.as_str());
        if let Some(other) = replaced.insert((&op.election, prev), op) {
            let mut records = op_records(other);
            records.extend(op_records(op));
            analysis.violations.push(Violation {
                invariant: 4,
                what: format!(
                    "writes {} and {} of {} both replaced {}: one of them was lost",
                    other.write.id,
                    op.write.id,
                    op.election,
                    prev.unwrap_or("the empty register")
                ),
                records,
            });
        }
        if let Some(other) = counters.insert((&op.election, op.write.n), op) {
            let mut records = op_records(other);
            records.extend(op_records(op));
            analysis.violations.push(Violation {
                invariant: 4,
                what: format!(
                    "counter value {} of {} handed out twice ({} and {})",
                    op.write.n, op.election, other.write.id, op.write.id
                ),
                records,
            });
        }
    }
}

fn op_records(op: &Op) -> Vec<Record> {
    let mut records = vec![op.invoke.clone()];
    records.extend(op.end.clone());
    records
}

/// When each process was frozen (SIGSTOP to SIGCONT), from the nemesis's
/// records; a freeze never healed lasts to the end.
fn frozen_periods(records: &[Record]) -> HashMap<String, Vec<(u64, u64)>> {
    let mut begun: HashMap<u64, (String, u64)> = HashMap::new();
    let mut periods: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for record in records {
        if let Event::Fault {
            id,
            kind,
            target,
            end,
        } = &record.ev
        {
            if !kind.starts_with("client-pause") {
                continue;
            }
            if *end {
                if let Some((target, from)) = begun.remove(id) {
                    periods.entry(target).or_default().push((from, record.t));
                }
            } else {
                begun.insert(*id, (target.clone(), record.t));
            }
        }
    }
    for (_, (target, from)) in begun {
        periods.entry(target).or_default().push((from, u64::MAX));
    }
    periods
}

/// When each process was killed, from the nemesis's records.
fn deaths(records: &[Record]) -> HashMap<String, Vec<u64>> {
    let mut deaths: HashMap<String, Vec<u64>> = HashMap::new();
    for record in records {
        if let Event::Fault {
            kind, target, end, ..
        } = &record.ev
        {
            if kind == "client-kill" && !end {
                deaths.entry(target.clone()).or_default().push(record.t);
            }
        }
    }
    deaths
}

/// `interval` less every period in `holes`.
fn subtract(interval: (u64, u64), holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut pieces = vec![interval];
    for &(from, to) in holes {
        pieces = pieces
            .into_iter()
            .flat_map(|(a, b)| {
                let mut kept = Vec::new();
                if from > a {
                    kept.push((a, from.min(b)));
                }
                if to < b {
                    kept.push((to.max(a), b));
                }
                kept.into_iter().filter(|(a, b)| a < b)
            })
            .collect();
    }
    pieces
}

/// The total time two sets of intervals share.
fn overlap(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let mut total = 0;
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            total += a1.min(b1).saturating_sub(a0.max(b0));
        }
    }
    total
}

mod ha;
#[cfg(test)]
mod tests;
