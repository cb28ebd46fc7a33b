//! Real OS processes on one directory: crash detection by the kernel, paused
//! holders, durability under SIGKILL, and watches across processes.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tenure_core::{Backend, KvEvent, Path};
use tenure_local::LocalBackend;

const PATIENCE: Duration = Duration::from_secs(60);

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenure-processes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A running `tenure-local-contender` and the lines it printed.
struct Contender {
    child: Child,
    stdin: ChildStdin,
}

impl Contender {
    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success());
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events of every contender, tagged with its index.
struct Fleet {
    contenders: Vec<Contender>,
    events: mpsc::Receiver<(usize, String)>,
}

impl Fleet {
    fn start(dir: &std::path::Path, n: usize, elections: usize) -> Fleet {
        let (tx, events) = mpsc::channel();
        let contenders = (0..n)
            .map(|i| {
                let mut child = Command::new(env!("CARGO_BIN_EXE_tenure-local-contender"))
                    .args([
                        dir.to_str().unwrap(),
                        &format!("p{i}"),
                        &elections.to_string(),
                    ])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("the contender binary starts");
                let stdout = child.stdout.take().unwrap();
                let stdin = child.stdin.take().unwrap();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { return };
                        if tx.send((i, line)).is_err() {
                            return;
                        }
                    }
                });
                Contender { child, stdin }
            })
            .collect();
        Fleet { contenders, events }
    }

    fn next(&self, what: &str) -> (usize, Vec<String>) {
        let (i, line) = self
            .events
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        assert!(!line.starts_with("ERR"), "contender p{i}: {line}");
        (i, line.split(' ').map(str::to_owned).collect())
    }
}

/// Who holds what, as the contenders report it, with the invariants checked on
/// every report: at most one live holder per election, terms only growing, and
/// no grant before the previous holder was killed.
#[derive(Default)]
struct Ledger {
    holder: HashMap<String, (usize, u64)>,
    last_term: HashMap<String, u64>,
    killed_at: HashMap<usize, u128>,
    grants: usize,
}

impl Ledger {
    fn apply(&mut self, from: usize, words: &[String]) {
        match words[0].as_str() {
            "GRANT" => {
                let (election, term, at) = (
                    words[1].clone(),
                    words[2].parse::<u64>().unwrap(),
                    words[3].parse::<u128>().unwrap(),
                );
                assert!(
                    !self.killed_at.contains_key(&from),
                    "p{from} reported a grant after it was killed"
                );
                if let Some(&(previous, previous_term)) = self.holder.get(&election) {
                    let killed = self.killed_at.get(&previous).unwrap_or_else(|| {
                        panic!(
                            "{election}: p{from} granted term {term} while p{previous} \
                             (term {previous_term}) still holds it"
                        )
                    });
                    assert!(
                        at > *killed,
                        "{election}: p{from} granted before p{previous} was killed"
                    );
                }
                let last = self.last_term.insert(election.clone(), term).unwrap_or(0);
                assert!(term > last, "{election}: term {term} after {last}");
                self.holder.insert(election, (from, term));
                self.grants += 1;
            }
            "LOST" => {
                panic!(
                    "p{from} lost {} although nobody resigned: {words:?}",
                    words[1]
                );
            }
            _ => {}
        }
    }

    fn held_by(&self, process: usize) -> Vec<String> {
        self.holder
            .iter()
            .filter(|(_, (p, _))| *p == process)
            .map(|(e, _)| e.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_fifty_elections_survive_sigkill_in_turn() {
    let (processes, elections) = (20, 50);
    let dir = temp_dir("kill");
    // The directory exists before the fleet starts, so the watch sees everything.
    let observer = LocalBackend::open(&dir).await.unwrap();
    let mut watch = observer
        .watch(&Path::parse("key", "holders").unwrap())
        .await
        .unwrap();
    let mut fleet = Fleet::start(&dir, processes, elections);
    let mut ledger = Ledger::default();
    while ledger.holder.len() < elections {
        let (from, words) = fleet.next("the first grants");
        ledger.apply(from, &words);
    }
    let mut killed = HashSet::new();
    for round in 0..processes - 1 {
        let victim = (0..processes)
            .filter(|p| !killed.contains(p))
            .max_by_key(|p| ledger.held_by(*p).len())
            .unwrap();
        let orphaned = ledger.held_by(victim);
        ledger.killed_at.insert(victim, nanos());
        fleet.contenders[victim].child.kill().unwrap();
        fleet.contenders[victim].child.wait().unwrap();
        killed.insert(victim);
        let started = Instant::now();
        while orphaned
            .iter()
            .any(|e| ledger.holder.get(e).is_some_and(|(p, _)| *p == victim))
        {
            let (from, words) = fleet.next(&format!("round {round}: the elections of p{victim}"));
            if !killed.contains(&from) {
                ledger.apply(from, &words);
            }
        }
        assert!(started.elapsed() < PATIENCE);
    }
    let survivor = (0..processes).find(|p| !killed.contains(p)).unwrap();
    assert_eq!(ledger.held_by(survivor).len(), elections);

    // The fenced writes of every holder reached the observer in term order.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let final_terms: HashMap<String, u64> = ledger
        .holder
        .iter()
        .map(|(e, (_, t))| (format!("holders/{e}"), *t))
        .collect();
    while final_terms.iter().any(|(k, t)| seen.get(k) != Some(t)) {
        let event = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("the watch keeps up")
            .unwrap()
            .unwrap();
        if let KvEvent::Put { key, value } = event {
            let text = String::from_utf8(value.value).unwrap();
            let term: u64 = text.split(' ').nth(1).unwrap().parse().unwrap();
            let before = seen.insert(key.clone(), term).unwrap_or(0);
            assert!(
                term > before,
                "{key}: the watch saw term {term} after {before}"
            );
        }
    }
    assert!(
        ledger.grants >= elections * 2,
        "only {} grants",
        ledger.grants
    );
    drop(fleet);
    observer.close().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_keeps_leadership_and_a_killed_one_loses_it_at_once() {
    let dir = temp_dir("pause");
    let mut fleet = Fleet::start(&dir, 2, 1);
    let mut ledger = Ledger::default();
    let (mut ready, mut wrote) = (0, false);
    // Everything either process has to say before the pause: both started, one
    // granted and its fenced write landed.
    while ready < 2 || !wrote {
        let (from, words) = fleet.next("the first grant");
        ready += usize::from(words[0] == "READY");
        wrote |= words[0] == "WROTE";
        ledger.apply(from, &words);
    }
    let (holder, _) = ledger.holder["e0"];
    fleet.contenders[holder].signal("-STOP");
    // A stopped process is not dead: nobody may take over. Give the other
    // contender many poll intervals to (wrongly) do so.
    match fleet.events.recv_timeout(Duration::from_millis(500)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("while the holder was stopped: {other:?}"),
    }
    fleet.contenders[holder].signal("-CONT");
    ledger.killed_at.insert(holder, nanos());
    let killed_at = Instant::now();
    fleet.contenders[holder].child.kill().unwrap();
    fleet.contenders[holder].child.wait().unwrap();
    loop {
        let (from, words) = fleet.next("the takeover");
        if from == holder {
            continue;
        }
        ledger.apply(from, &words);
        if words[0] == "GRANT" {
            break;
        }
    }
    // Not a timing assertion on performance; a sanity bound that the kernel,
    // not some timeout, released the lock.
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    drop(fleet);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_of_the_writer() {
    let dir = temp_dir("durable");
    let mut fleet = Fleet::start(&dir, 1, 0);
    let (_, ready) = fleet.next("READY");
    assert_eq!(ready[0], "READY");
    for i in 0..300 {
        fleet.contenders[0].send(&format!("put d/k{i} v{i}"));
    }
    let mut acked = Vec::new();
    while acked.len() < 100 {
        let (_, words) = fleet.next("acknowledgements");
        if words[0] == "ACK" {
            acked.push(words[1].clone());
        }
    }
    // Killed while more writes are queued or half-written.
    fleet.contenders[0].child.kill().unwrap();
    fleet.contenders[0].child.wait().unwrap();
    while let Ok((_, line)) = fleet.events.try_recv() {
        if let Some(key) = line.strip_prefix("ACK ") {
            acked.push(key.split(' ').next().unwrap().to_owned());
        }
    }
    let reader = LocalBackend::open(&dir)
        .await
        .expect("the directory opens after the kill");
    for key in &acked {
        let value = reader
            .get(&Path::parse("key", key).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {key} was lost"));
        assert_eq!(value.value, key.replace("d/k", "v").into_bytes());
    }
    reader.close().await.unwrap();
    drop(fleet);
    std::fs::remove_dir_all(&dir).unwrap();
}
