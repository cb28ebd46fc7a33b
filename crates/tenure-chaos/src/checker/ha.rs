//! The checks of the HA stores: the checkpoint id counter, the checkpoint
//! store and the job result store, against their final reads.

use std::collections::HashMap;

use super::{Analysis, Grant, HaOp, Violation};
use crate::history::{Outcome, Record};

/// Invariants 1, 4 and 6 for the HA stores: no write accepted under a
/// superseded term; checkpoint ids never handed out twice; every acknowledged
/// checkpoint kept unless `RETAINED` newer ones replaced it; unknown
/// outcomes resolved by the final read.
pub(super) fn check_ha(
    ops: &[HaOp],
    grants: &[Grant],
    final_ha: Option<&(Record, u64, Vec<u64>)>,
    analysis: &mut Analysis,
) {
    let records = |op: &HaOp| {
        let mut records = vec![op.invoke.clone()];
        records.extend(op.end.clone());
        records
    };
    let mut handed_out: HashMap<u64, &HaOp> = HashMap::new();
    for op in ops {
        let outcome = match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fenced => "fenced",
            Outcome::Refused => "refused",
            Outcome::Unknown => "unknown",
        };
        *analysis
            .ha_writes
            .entry(format!("{} {outcome}", op.action))
            .or_default() += 1;
        if op.outcome != Outcome::Ok {
            continue;
        }
        let newer = grants.iter().find(|g| {
            g.election == crate::ha_work::HA && g.term > op.term && g.start < op.invoke.t
        });
        if let Some(grant) = newer {
            let mut shown = vec![grant.record.clone()];
            shown.extend(records(op));
            analysis.violations.push(Violation {
                invariant: 1,
                what: format!(
                    "a {} write under term {} was accepted after term {} was granted to {}",
                    op.action, op.term, grant.term, grant.life.0
                ),
                records: shown,
            });
        }
        if op.action == "counter" {
            if let Some(id) = op.id {
                if let Some(other) = handed_out.insert(id, op) {
                    let mut shown = records(other);
                    shown.extend(records(op));
                    analysis.violations.push(Violation {
                        invariant: 4,
                        what: format!("checkpoint id {id} was handed out twice"),
                        records: shown,
                    });
                }
            }
        }
    }
    let Some((final_record, counter, kept)) = final_ha else {
        return;
    };
    let retained = crate::ha_work::RETAINED;
    // The store drops old checkpoints only after the new one is durable: an
    // add cut short in between leaves one too many (never one too few), as
    // its documentation says. Exactly that is allowed: the newest kept
    // checkpoint's add did not end well, and there is one extra.
    let newest = kept.iter().max().copied();
    let cut_short = ops
        .iter()
        .any(|op| op.action == "checkpoint" && op.id == newest && op.outcome != Outcome::Ok);
    let allowed = if cut_short { retained + 1 } else { retained };
    if kept.len() > allowed {
        analysis.violations.push(Violation {
            invariant: 4,
            what: format!(
                "the checkpoint store keeps {} checkpoints, not {retained}",
                kept.len()
            ),
            records: vec![final_record.clone()],
        });
    }
    for op in ops.iter().filter(|op| op.action == "checkpoint") {
        let Some(id) = op.id else { continue };
        let present = kept.contains(&id);
        let replaced = kept.iter().filter(|&&k| k > id).count() >= retained;
        match op.outcome {
            Outcome::Ok if !present && !replaced => {
                let mut shown = records(op);
                shown.push(final_record.clone());
                analysis.violations.push(Violation {
                    invariant: 4,
                    what: format!("acknowledged checkpoint {id} is lost"),
                    records: shown,
                });
            }
            Outcome::Unknown => {
                analysis.unknown += 1;
                if present {
                    analysis.unknown_applied += 1;
                } else {
                    analysis.unknown_not_applied += 1;
                }
            }
            _ => {}
        }
        if op.outcome == Outcome::Ok {
            if let Some(&max) = handed_out.keys().max() {
                if *counter <= max {
                    analysis.violations.push(Violation {
                        invariant: 4,
                        what: format!("the counter went back to {counter} after handing out {max}"),
                        records: vec![final_record.clone()],
                    });
                    break;
                }
            }
        }
    }
    // Unknown increments: how many were applied follows from the final count.
    let unknown = ops
        .iter()
        .filter(|op| op.action == "counter" && op.outcome == Outcome::Unknown)
        .count() as u64;
    let taken = counter.saturating_sub(tenure::ha::INITIAL_CHECKPOINT_ID);
    let applied = taken.saturating_sub(handed_out.len() as u64).min(unknown);
    analysis.unknown += unknown;
    analysis.unknown_applied += applied;
    analysis.unknown_not_applied += unknown - applied;
}

/// Invariants 4 and 6 for job results: an acknowledged result is stored,
/// an acknowledged clean mark holds; unknown outcomes resolved by the final
/// read.
pub(super) fn check_results(
    ops: &[HaOp],
    final_results: Option<&(Record, Vec<u64>, Vec<u64>)>,
    analysis: &mut Analysis,
) {
    let Some((final_record, dirty, clean)) = final_results else {
        return;
    };
    for op in ops
        .iter()
        .filter(|op| op.action == "result" || op.action == "clean")
    {
        let Some(id) = op.id else { continue };
        let present = if op.action == "result" {
            dirty.contains(&id) || clean.contains(&id)
        } else {
            clean.contains(&id)
        };
        match op.outcome {
            Outcome::Ok if !present => {
                let mut shown = vec![op.invoke.clone()];
                shown.extend(op.end.clone());
                shown.push(final_record.clone());
                let what = if op.action == "result" {
                    format!("the acknowledged result of job finished-{id} is lost")
                } else {
                    format!("job finished-{id}, acknowledged clean, is not clean")
                };
                analysis.violations.push(Violation {
                    invariant: 4,
                    what,
                    records: shown,
                });
            }
            Outcome::Unknown => {
                analysis.unknown += 1;
                if present {
                    analysis.unknown_applied += 1;
                } else {
                    analysis.unknown_not_applied += 1;
                }
            }
            _ => {}
        }
    }
}
