//! The history: every event of a campaign, one JSON line each, in one file per
//! process. All processes run on one host and read one clock
//! (`CLOCK_MONOTONIC`), so their times compare.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Nanoseconds on the host's monotonic clock, the same in every process.
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One event, when it happened and in which process (`c0`, `r1`, `nemesis`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// [`now_ns`] when it happened.
    pub(crate) t: u64,
    /// The process: clients `c<i>`, retrievers `r<i>`, the `nemesis`, the
    /// `final` reads.
    pub(crate) p: String,
    #[serde(flatten)]
    pub(crate) ev: Event,
}

/// What the register of an election holds: the write that put it there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The write's id, `<process>/<life>/<op>`: unique in a campaign.
    pub(crate) id: String,
    /// The term it was written under.
    pub(crate) term: u64,
    /// The id of the value it replaced (compare-and-set), if any.
    pub(crate) prev: Option<String>,
    /// The counter: one more than the value it replaced.
    pub(crate) n: u64,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Acknowledged: the backend applied it.
    Ok,
    /// The backend's fence rejected it: not applied.
    Fenced,
    /// Refused without being applied: the leadership was known lost, or the
    /// compare-and-set found another version.
    Refused,
    /// An error that leaves open whether it was applied (a timeout, a lost
    /// connection); also every operation whose process died before it ended.
    Unknown,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub(crate) enum Event {
    /// The process started (again): its `life`, numbered by the campaign
    /// (process ids are reused by the system in a long run), and its `pid`.
    Start { life: u32, pid: u32 },
    /// Leadership of `election` granted under `term`.
    Grant { election: String, term: u64 },
    /// That leadership's loss signal fired (`reason`), or it was resigned.
    Loss {
        election: String,
        term: u64,
        reason: String,
    },
    /// A fenced compare-and-set of the election's register began: it replaces
    /// `read` (None: the register was empty) with `write`.
    Invoke {
        op: u64,
        election: String,
        read: Option<Stored>,
        write: Stored,
    },
    /// A fenced write through the HA services began: `counter` (take a
    /// checkpoint id) or `checkpoint` (add checkpoint `id` to the store).
    HaInvoke {
        op: u64,
        election: String,
        term: u64,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Operation `op` of this process ended (`value`: what it returned, the
    /// checkpoint id a counter handed out).
    End {
        op: u64,
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<u64>,
    },
    /// A retriever saw `term` lead `election` (None: nobody).
    Seen { election: String, term: Option<u64> },
    /// The nemesis began (or, `end`, healed) fault `id`.
    Fault {
        id: u64,
        kind: String,
        target: String,
        end: bool,
    },
    /// A phase of the campaign began: `safety`, `heal`, `liveness`, `final`.
    Phase { name: String },
    /// Every election led again after the heal, `after_ns` after it began.
    Healed { election: String, after_ns: u64 },
    /// The final read of the HA stores: the counter's next id and the ids
    /// of the checkpoints the store keeps.
    FinalHa { counter: u64, checkpoints: Vec<u64> },
    /// The final read of the job result store: of the jobs the history names,
    /// those with a dirty result and those with a clean one.
    FinalResults { dirty: Vec<u64>, clean: Vec<u64> },
    /// The final read of an election's register.
    Final {
        election: String,
        value: Option<Stored>,
    },
}

/// Appends records to a history file, one `write` each, so a process killed
/// at any moment leaves whole lines behind (the page cache keeps them).
#[derive(Clone)]
pub(crate) struct Recorder {
    process: Arc<str>,
    file: Arc<Mutex<File>>,
}

impl Recorder {
    /// Records as `process` at the end of `path` (created if missing).
    pub(crate) fn open(path: &Path, process: &str) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            process: process.into(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Records `ev` as happening now.
    pub(crate) fn record(&self, ev: Event) {
        self.record_at(now_ns(), ev);
    }

    /// Records `ev` as happening at `t`.
    pub(crate) fn record_at(&self, t: u64, ev: Event) {
        let record = Record {
            t,
            p: self.process.to_string(),
            ev,
        };
        let mut line = serde_json::to_vec(&record).expect("a record serializes");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A failed write loses one event; the checker then sees an operation
        // with an unknown outcome, which it accounts for.
        let _ = file.write_all(&line);
    }
}

/// Every record of every `*.jsonl` file in `dir`, in time order. A torn last
/// line (a process killed mid-write) is skipped.
pub(crate) fn load(dir: &Path) -> io::Result<Vec<Record>> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in BufReader::new(File::open(&path)?).lines() {
                if let Ok(record) = serde_json::from_str::<Record>(&line?) {
                    records.push(record);
                }
            }
        }
    }
    records.sort_by_key(|r| r.t);
    Ok(records)
}
