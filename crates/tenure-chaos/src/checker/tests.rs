//! The checker against small hand-written histories: each invariant is caught
//! when broken, and a clean history passes.

use super::check;
use crate::history::{Event, Outcome, Record, Stored};

const MS: u64 = 1_000_000;

fn at(t: u64, p: &str, ev: Event) -> Record {
    Record {
        t: t * MS,
        p: p.to_owned(),
        ev,
    }
}

fn start(t: u64, p: &str, pid: u32) -> Record {
    at(t, p, Event::Start { life: pid, pid })
}

fn grant(t: u64, p: &str, term: u64) -> Record {
    at(
        t,
        p,
        Event::Grant {
            election: "e0".into(),
            term,
        },
    )
}

fn loss(t: u64, p: &str, term: u64) -> Record {
    at(
        t,
        p,
        Event::Loss {
            election: "e0".into(),
            term,
            reason: "resigned".into(),
        },
    )
}

fn stored(id: &str, term: u64, prev: Option<&str>, n: u64) -> Stored {
    Stored {
        id: id.into(),
        term,
        prev: prev.map(Into::into),
        n,
    }
}

/// A compare-and-set from `read` to `write`, invoked at `t` and ended at
/// `t + 1` with `outcome` (None: never ended).
fn write(
    t: u64,
    p: &str,
    op: u64,
    read: Option<Stored>,
    w: Stored,
    outcome: Option<Outcome>,
) -> Vec<Record> {
    let mut records = vec![at(
        t,
        p,
        Event::Invoke {
            op,
            election: "e0".into(),
            read,
            write: w,
        },
    )];
    if let Some(outcome) = outcome {
        records.push(at(
            t + 1,
            p,
            Event::End {
                op,
                outcome,
                detail: None,
                value: None,
            },
        ));
    }
    records
}

fn final_value(t: u64, value: Option<Stored>) -> Record {
    at(
        t,
        "final",
        Event::Final {
            election: "e0".into(),
            value,
        },
    )
}

/// c0 leads term 5 and writes twice, resigns; c1 leads term 9 and writes once.
fn clean() -> Vec<Record> {
    let a = stored("c0/1/1", 5, None, 1);
    let b = stored("c0/1/2", 5, Some("c0/1/1"), 2);
    let c = stored("c1/2/1", 9, Some("c0/1/2"), 3);
    let mut h = vec![start(0, "c0", 1), start(0, "c1", 2), grant(1, "c0", 5)];
    h.extend(write(2, "c0", 1, None, a.clone(), Some(Outcome::Ok)));
    h.extend(write(4, "c0", 2, Some(a), b.clone(), Some(Outcome::Ok)));
    h.push(loss(6, "c0", 5));
    h.push(grant(7, "c1", 9));
    h.extend(write(8, "c1", 1, Some(b), c.clone(), Some(Outcome::Ok)));
    h.push(final_value(20, Some(c)));
    h
}

fn invariants(records: &[Record]) -> Vec<u8> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| r.t);
    check(&sorted, 0)
        .violations
        .iter()
        .map(|v| v.invariant)
        .collect()
}

#[test]
fn a_clean_history_passes() {
    let analysis = check(&clean(), 0);
    assert!(analysis.violations.is_empty(), "{:?}", analysis.violations);
    assert_eq!(analysis.grants, 2);
    assert_eq!(analysis.writes.get("ok"), Some(&3));
    assert_eq!(analysis.largest_overlap_ns, 0);
}

#[test]
fn a_stale_write_over_a_later_term_is_invariant_1() {
    let mut h = clean();
    // c0, still believing in term 5, overwrites c1's term-9 value.
    let stale = stored("c0/1/3", 5, Some("c1/2/1"), 4);
    h.extend(write(
        9,
        "c0",
        3,
        Some(stored("c1/2/1", 9, Some("c0/1/2"), 3)),
        stale.clone(),
        Some(Outcome::Ok),
    ));
    h.retain(|r| !matches!(r.ev, Event::Final { .. }));
    h.push(final_value(20, Some(stale)));
    assert!(invariants(&h).contains(&1), "{:?}", invariants(&h));
}

#[test]
fn a_write_accepted_after_a_newer_grant_is_invariant_1() {
    let a = stored("c0/1/1", 5, None, 1);
    let mut h = vec![start(0, "c0", 1), start(0, "c1", 2), grant(1, "c0", 5)];
    h.push(grant(3, "c1", 9));
    h.extend(write(4, "c0", 1, None, a.clone(), Some(Outcome::Ok)));
    h.push(final_value(20, Some(a)));
    assert!(invariants(&h).contains(&1));
    // Fenced, the same write is fine.
    let fenced: Vec<Record> = h
        .iter()
        .cloned()
        .map(|mut r| {
            if let Event::End { outcome, .. } = &mut r.ev {
                *outcome = Outcome::Fenced;
            }
            r
        })
        .filter(|r| !matches!(r.ev, Event::Final { .. }))
        .chain([final_value(20, None)])
        .collect();
    assert!(!invariants(&fenced).contains(&1));
}

#[test]
fn a_shared_or_lower_term_is_invariant_2() {
    let mut h = clean();
    h.push(grant(10, "c0", 9));
    assert!(invariants(&h).contains(&2));
    let mut h = clean();
    h.push(loss(9, "c1", 9));
    h.push(grant(10, "c0", 7));
    assert!(invariants(&h).contains(&2));
}

#[test]
fn overlapping_leaders_are_invariant_3_unless_frozen() {
    let mut h = vec![start(0, "c0", 1), start(0, "c1", 2), grant(1, "c0", 5)];
    h.push(grant(5, "c1", 9));
    h.push(loss(8, "c0", 5));
    h.push(final_value(20, None));
    assert_eq!(invariants(&h), [3]);
    // c0 was frozen from 4 to 8: it did not act while c1 led.
    let fault = |t, end| {
        at(
            t,
            "nemesis",
            Event::Fault {
                id: 1,
                kind: "client-pause-long".into(),
                target: "c0".into(),
                end,
            },
        )
    };
    h.push(fault(4, false));
    h.push(fault(8, true));
    assert!(invariants(&h).is_empty(), "{:?}", invariants(&h));
}

#[test]
fn a_lost_acknowledged_write_is_invariant_4() {
    let mut h = clean();
    h.retain(|r| !matches!(r.ev, Event::Final { .. }));
    // The store ends with c0's second value: c1's acknowledged one is gone.
    h.push(final_value(
        20,
        Some(stored("c0/1/2", 5, Some("c0/1/1"), 2)),
    ));
    assert!(invariants(&h).contains(&4));
}

#[test]
fn a_retriever_going_back_is_invariant_5() {
    let mut h = clean();
    let seen = |t, term| {
        at(
            t,
            "r0",
            Event::Seen {
                election: "e0".into(),
                term: Some(term),
            },
        )
    };
    h.push(start(0, "r0", 3));
    h.push(seen(8, 9));
    h.push(seen(9, 5));
    assert_eq!(invariants(&h), [5]);
}

#[test]
fn unknown_outcomes_are_resolved_by_the_final_read() {
    let mut h = clean();
    h.retain(|r| !matches!(r.ev, Event::Final { .. }));
    let c = stored("c1/2/1", 9, Some("c0/1/2"), 3);
    let applied = stored("c1/2/2", 9, Some("c1/2/1"), 4);
    let lost = stored("c1/2/3", 9, Some("c1/2/1"), 4);
    h.extend(write(10, "c1", 2, Some(c.clone()), applied.clone(), None));
    h.extend(write(12, "c1", 3, Some(c), lost, Some(Outcome::Unknown)));
    h.push(final_value(20, Some(applied)));
    let analysis = check(&h, 0);
    assert!(analysis.violations.is_empty(), "{:?}", analysis.violations);
    assert_eq!(
        (
            analysis.unknown,
            analysis.unknown_applied,
            analysis.unknown_not_applied
        ),
        (2, 1, 1)
    );
}

fn ha(
    t: u64,
    p: &str,
    op: u64,
    term: u64,
    action: &str,
    id: Option<u64>,
    outcome: Outcome,
) -> Vec<Record> {
    vec![
        at(
            t,
            p,
            Event::HaInvoke {
                op,
                election: "ha".into(),
                term,
                action: action.into(),
                id: if action == "counter" { None } else { id },
            },
        ),
        at(
            t + 1,
            p,
            Event::End {
                op,
                outcome,
                detail: None,
                value: if action == "counter" { id } else { None },
            },
        ),
    ]
}

fn final_ha(counter: u64, checkpoints: &[u64]) -> Record {
    at(
        30,
        "final",
        Event::FinalHa {
            counter,
            checkpoints: checkpoints.to_vec(),
        },
    )
}

fn ha_grant(t: u64, p: &str, term: u64) -> Record {
    at(
        t,
        p,
        Event::Grant {
            election: "ha".into(),
            term,
        },
    )
}

#[test]
fn the_ha_stores_are_checked_too() {
    let mut h = vec![start(0, "c0", 1), start(0, "c1", 2), ha_grant(1, "c0", 4)];
    h.extend(ha(2, "c0", 1, 4, "counter", Some(1), Outcome::Ok));
    h.extend(ha(4, "c0", 2, 4, "checkpoint", Some(1), Outcome::Ok));
    h.push(final_ha(2, &[1]));
    assert!(invariants(&h).is_empty(), "{:?}", invariants(&h));

    // The same id handed out twice.
    let mut twice = h.clone();
    twice.extend(ha(6, "c1", 1, 4, "counter", Some(1), Outcome::Ok));
    assert!(invariants(&twice).contains(&4));

    // An acknowledged checkpoint missing from the store.
    let mut lost = h.clone();
    lost.retain(|r| !matches!(r.ev, Event::FinalHa { .. }));
    lost.push(final_ha(2, &[]));
    assert!(invariants(&lost).contains(&4));

    // A write accepted after a newer term was granted.
    let mut stale = h.clone();
    stale.push(ha_grant(7, "c1", 9));
    stale.extend(ha(8, "c0", 3, 4, "counter", Some(2), Outcome::Ok));
    assert!(invariants(&stale).contains(&1));
}

#[test]
fn one_checkpoint_too_many_is_allowed_only_after_an_add_cut_short() {
    let mut h = vec![start(0, "c0", 1), ha_grant(1, "c0", 4)];
    for id in 1..=4 {
        h.extend(ha(id * 2, "c0", id, 4, "counter", Some(id), Outcome::Ok));
    }
    for id in 1..=3 {
        h.extend(ha(
            10 + id * 2,
            "c0",
            10 + id,
            4,
            "checkpoint",
            Some(id),
            Outcome::Ok,
        ));
    }
    // The add of checkpoint 4 stored it, then its leader died before the
    // oldest was dropped: four kept, one more than retained.
    let mut cut = h.clone();
    cut.extend(ha(20, "c0", 14, 4, "checkpoint", Some(4), Outcome::Unknown));
    cut.push(final_ha(5, &[1, 2, 3, 4]));
    assert!(invariants(&cut).is_empty(), "{:?}", invariants(&cut));
    // The same store after an add that said it succeeded is a violation.
    let mut clean = h.clone();
    clean.extend(ha(20, "c0", 14, 4, "checkpoint", Some(4), Outcome::Ok));
    clean.push(final_ha(5, &[1, 2, 3, 4]));
    assert_eq!(invariants(&clean), [4]);
}

#[test]
fn job_results_are_checked() {
    let mut h = vec![start(0, "c0", 1), ha_grant(1, "c0", 4)];
    h.extend(ha(2, "c0", 1, 4, "result", Some(7), Outcome::Ok));
    h.extend(ha(4, "c0", 2, 4, "clean", Some(7), Outcome::Ok));
    h.extend(ha(6, "c0", 3, 4, "result", Some(8), Outcome::Ok));
    let results = |dirty: &[u64], clean: &[u64]| {
        at(
            40,
            "final",
            Event::FinalResults {
                dirty: dirty.to_vec(),
                clean: clean.to_vec(),
            },
        )
    };
    let mut kept = h.clone();
    kept.push(results(&[8], &[7]));
    assert!(invariants(&kept).is_empty(), "{:?}", invariants(&kept));
    // Job 8's acknowledged result is gone; job 7 is dirty again.
    let mut lost = h.clone();
    lost.push(results(&[7], &[]));
    assert_eq!(invariants(&lost), [4, 4]);
}
