//! The campaign: starts the servers and the client processes, injects faults
//! from one seed during the safety phase, heals them, checks that every
//! election is led again (the liveness phase), reads every register, and
//! hands the history to the checker.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenure::{DynBackend, MemoryBackend, MemoryCluster};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

mod faults;

use crate::client;
use crate::history::{self, now_ns, Event, Recorder, Stored};
use crate::proxy::{Mode, Proxy};
use crate::servers::{memory_cluster, BackendKind, Servers};

/// What to run.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) backend: BackendKind,
    pub(crate) seed: u64,
    /// Stop injecting after this many faults…
    pub(crate) faults: u64,
    /// …or after this long, whichever comes first.
    pub(crate) duration: Duration,
    pub(crate) clients: usize,
    pub(crate) retrievers: usize,
    pub(crate) elections: usize,
    /// The session TTL of every client.
    pub(crate) ttl: Duration,
    /// Only these fault kinds (all that apply to the backend if empty).
    pub(crate) kinds: Vec<String>,
    pub(crate) unsafe_skip_fence: bool,
    /// Where the history goes (a fresh temporary directory if None).
    pub(crate) dir: Option<PathBuf>,
}

/// Every fault kind, with its weight in the mix, and the backends it applies
/// to (`m`emory, `l`ocal, `e`tcd, `z`ooKeeper). In-process memory clients
/// cannot be frozen, and have no connections to cut: they are killed, cut
/// off (`partition`: the session is not renewed and expires) or expired by
/// the server.
pub(crate) const KINDS: &[(&str, u64, &str)] = &[
    ("client-kill", 3, "mlez"),
    ("client-pause-short", 3, "lez"),
    ("client-pause-long", 2, "lez"),
    ("client-partition", 2, "mez"),
    ("client-expire", 2, "m"),
    ("client-delay", 2, "ez"),
    ("client-reset", 2, "ez"),
    ("member-kill", 1, "ez"),
    ("leader-kill", 1, "ez"),
    ("member-pause", 1, "ez"),
    ("member-partition", 1, "ez"),
    ("member-delay", 1, "ez"),
    ("quorum-loss", 1, "ez"),
];

/// Whether fault kinds of `scope` (see [`KINDS`]) apply to `backend`.
pub(crate) fn applies(scope: &str, backend: BackendKind) -> bool {
    let letter = match backend {
        BackendKind::Memory => 'm',
        BackendKind::Local => 'l',
        BackendKind::Etcd => 'e',
        BackendKind::ZooKeeper | BackendKind::ZooKeeperFlink => 'z',
    };
    scope.contains(letter)
}

/// What a campaign produced, for the report.
pub(crate) struct Outcome {
    pub(crate) dir: PathBuf,
    pub(crate) records: Vec<history::Record>,
    pub(crate) faults: BTreeMap<String, u64>,
    pub(crate) heal_ns: Vec<u64>,
    pub(crate) liveness_failures: Vec<String>,
    pub(crate) elapsed: Duration,
}

/// A client or retriever process, with the proxies it reaches the servers by;
/// on memory, a task of this process with its own client.
struct Proc {
    name: String,
    retriever: bool,
    child: Option<Child>,
    task: Option<(JoinHandle<()>, MemoryBackend)>,
    proxies: Vec<Proxy>,
    url: String,
}

struct Procs {
    list: Vec<Proc>,
    exe: PathBuf,
    dir: PathBuf,
    options: Options,
    /// Lives of clients, counted: they name a client's writes, which must
    /// stay unique when the system reuses a process id.
    lives: u32,
}

impl Procs {
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        if self.options.backend == BackendKind::Memory {
            self.spawn_task(i);
            return Ok(());
        }
        self.lives += 1;
        let life = self.lives;
        let proc = &mut self.list[i];
        let log = std::fs::File::create(self.dir.join(format!("{}.log", proc.name)))
            .map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.exe);
        command
            .arg("client")
            .args(["--url", &proc.url, "--name", &proc.name])
            .arg("--history")
            .arg(self.dir.join(format!("{}.jsonl", proc.name)))
            .args(["--elections", &self.options.elections.to_string()])
            .args(["--seed", &(self.options.seed ^ i as u64).to_string()])
            .args(["--life", &life.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if proc.retriever {
            command.arg("--retriever");
        }
        // SAFETY: prctl is async-signal-safe; the child dies with this
        // process, however it ends, and leaves no client behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if self.options.unsafe_skip_fence {
            command.arg("--unsafe-skip-fence");
        }
        proc.child = Some(
            command
                .spawn()
                .map_err(|e| format!("cannot start a client: {e}"))?,
        );
        Ok(())
    }

    /// An in-process client on the campaign's memory cluster.
    fn spawn_task(&mut self, i: usize) {
        self.lives += 1;
        let cluster = MemoryCluster::named(&memory_cluster(&self.dir)).expect("a valid name");
        let memory = cluster.client_with_ttl(self.options.ttl);
        let proc = &mut self.list[i];
        let args = client::ClientArgs {
            url: proc.url.clone(),
            name: proc.name.clone(),
            history: self.dir.join(format!("{}.jsonl", proc.name)),
            elections: self.options.elections,
            seed: self.options.seed ^ i as u64,
            unsafe_skip_fence: self.options.unsafe_skip_fence,
            retriever: proc.retriever,
            life: self.lives,
        };
        let backend: DynBackend = Arc::new(memory.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = client::run_on(args, backend).await {
                eprintln!("tenure-chaos: an in-process client failed: {e}");
            }
        });
        proc.task = Some((task, memory));
    }

    /// The memory client of in-process client `i`.
    fn memory(&self, i: usize) -> Option<MemoryBackend> {
        self.list[i].task.as_ref().map(|(_, m)| m.clone())
    }

    fn pid(&self, i: usize) -> Option<i32> {
        self.list[i].child.as_ref()?.id().map(|p| p as i32)
    }
}

fn signal(pid: Option<i32>, sig: libc::c_int) {
    if let Some(pid) = pid {
        // SAFETY: a plain kill(2) of a child this process started.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Runs the campaign.
pub(crate) async fn run(options: Options) -> Result<Outcome, String> {
    let started = Instant::now();
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "tenure-chaos-{}-{}-{}",
            options.backend.name(),
            options.seed,
            std::process::id()
        )),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let backend = options.backend;
    let runtime = tokio::runtime::Handle::current();
    let servers = tokio::task::spawn_blocking(move || Servers::start(backend, runtime))
        .await
        .map_err(|e| e.to_string())??;
    let nemesis =
        Recorder::open(&dir.join("nemesis.jsonl"), "nemesis").map_err(|e| e.to_string())?;

    // One process per client and retriever, each behind proxies of its own.
    let mut list = Vec::new();
    for i in 0..options.clients + options.retrievers {
        let retriever = i >= options.clients;
        let name = if retriever {
            format!("r{}", i - options.clients)
        } else {
            format!("c{i}")
        };
        let mut proxies = Vec::new();
        for member in 0..servers.members() {
            proxies.push(
                Proxy::start(servers.addr(member))
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
        let url = servers.url(options.backend, &addrs, options.ttl, &dir);
        list.push(Proc {
            name,
            retriever,
            child: None,
            task: None,
            proxies,
            url,
        });
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let procs = Arc::new(Mutex::new(Procs {
        list,
        exe,
        dir: dir.clone(),
        options: options.clone(),
        lives: 0,
    }));
    {
        let mut procs = procs.lock().unwrap();
        for i in 0..procs.list.len() {
            procs.spawn(i)?;
        }
    }

    // Safety phase.
    nemesis.record(Event::Phase {
        name: "safety".into(),
    });
    let faults = faults::inject(&options, &servers, &procs, &nemesis).await;

    // Heal: every process running, every proxy passing, every member serving.
    nemesis.record(Event::Phase {
        name: "heal".into(),
    });
    {
        let procs = procs.lock().unwrap();
        for (i, proc) in procs.list.iter().enumerate() {
            signal(procs.pid(i), libc::SIGCONT);
            if let Some(memory) = procs.memory(i) {
                memory.heal();
            }
            for proxy in &proc.proxies {
                proxy.set(Mode::Pass);
            }
        }
    }
    for member in 0..servers.members() {
        servers.set_peer_mode(member, Mode::Pass);
    }
    let healing = servers.clone();
    tokio::task::spawn_blocking(move || healing.restart_all())
        .await
        .map_err(|e| e.to_string())??;

    // Liveness phase: each election led again, each retriever shows it.
    let healed_at = now_ns();
    nemesis.record(Event::Phase {
        name: "liveness".into(),
    });
    let bound = options.ttl * 3 + Duration::from_secs(30);
    let (heal_ns, liveness_failures) =
        await_liveness(&dir, &options, healed_at, bound, &nemesis).await;

    // Stop the clients, then read every register straight from the servers.
    {
        let mut procs = procs.lock().unwrap();
        for proc in &mut procs.list {
            if let Some(child) = &mut proc.child {
                let _ = child.start_kill();
            }
        }
    }
    // In process: stop every task, then close its client, so that nothing a
    // task spawned can write after the final reads.
    let tasks: Vec<(JoinHandle<()>, MemoryBackend)> = {
        let mut procs = procs.lock().unwrap();
        procs
            .list
            .iter_mut()
            .filter_map(|p| p.task.take())
            .collect()
    };
    for (task, memory) in tasks {
        task.abort();
        let _ = task.await;
        let _ = tenure::Backend::close(&memory).await;
    }
    let children: Vec<Child> = {
        let mut procs = procs.lock().unwrap();
        procs
            .list
            .iter_mut()
            .filter_map(|p| p.child.take())
            .collect()
    };
    for mut child in children {
        let _ = child.wait().await;
    }
    nemesis.record(Event::Phase {
        name: "final".into(),
    });
    final_reads(&options, &servers, &dir).await?;
    let records = history::load(&dir).map_err(|e| e.to_string())?;
    drop(procs);
    drop(servers);
    Ok(Outcome {
        dir,
        records,
        faults,
        heal_ns,
        liveness_failures,
        elapsed: started.elapsed(),
    })
}

/// Waits until every election has a grant after `healed_at`, and every
/// retriever has seen a term at least as new as that first grant.
async fn await_liveness(
    dir: &Path,
    options: &Options,
    healed_at: u64,
    bound: Duration,
    nemesis: &Recorder,
) -> (Vec<u64>, Vec<String>) {
    let deadline = Instant::now() + bound;
    let mut elections = client::election_names(options.elections);
    elections.push(crate::ha_work::HA.to_owned());
    let retrievers: Vec<String> = (0..options.retrievers).map(|i| format!("r{i}")).collect();
    let mut healed: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    loop {
        let records = history::load(dir).unwrap_or_default();
        for record in records.iter().filter(|r| r.t > healed_at) {
            if let Event::Grant { election, term } = &record.ev {
                healed
                    .entry(election.clone())
                    .or_insert((record.t - healed_at, *term));
            }
        }
        let seen_all = |election: &str, term: u64| {
            retrievers.iter().all(|r| {
                records.iter().any(|rec| {
                    rec.t > healed_at
                        && &rec.p == r
                        && matches!(&rec.ev, Event::Seen { election: e, term: Some(t) } if e == election && *t >= term)
                })
            })
        };
        let done = elections
            .iter()
            .all(|e| healed.get(e).is_some_and(|&(_, term)| seen_all(e, term)));
        if done || Instant::now() > deadline {
            let mut failures = Vec::new();
            for e in &elections {
                match healed.get(e) {
                    None => {
                        failures.push(format!("{e} had no leader within {bound:?} of the heal"))
                    }
                    Some(&(after, term)) => {
                        nemesis.record(Event::Healed {
                            election: e.clone(),
                            after_ns: after,
                        });
                        if !seen_all(e, term) {
                            failures.push(format!(
                                "not every retriever saw term {term} of {e} within {bound:?} of the heal"
                            ));
                        }
                    }
                }
            }
            return (healed.values().map(|&(after, _)| after).collect(), failures);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every election's register, straight from the servers (no proxy).
async fn final_reads(options: &Options, servers: &Servers, dir: &Path) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = (0..servers.members()).map(|m| servers.addr(m)).collect();
    let url = servers.url(options.backend, &addrs, options.ttl, dir);
    let backend = client::connect(&url).await;
    let recorder = Recorder::open(&dir.join("final.jsonl"), "final").map_err(|e| e.to_string())?;
    for election in client::election_names(options.elections) {
        let key = client::register(&election);
        let value = loop {
            match backend.get(&key).await {
                Ok(value) => break value,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let value =
            match value {
                None => None,
                Some(v) => Some(serde_json::from_slice::<Stored>(&v.value).map_err(|e| {
                    format!("the register of {election} holds a corrupted value: {e}")
                })?),
            };
        recorder.record(Event::Final { election, value });
    }
    let services = crate::ha_work::services(backend.clone());
    let job = crate::ha_work::job();
    let (counter, checkpoints) = loop {
        let read = async {
            let counter = services.checkpoint_id_counter(&job).get().await?;
            let ids = services.checkpoint_store(&job).checkpoint_ids().await?;
            Ok::<_, tenure::Error>((counter, ids))
        };
        match read.await {
            Ok(read) => break read,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    recorder.record(Event::FinalHa {
        counter,
        checkpoints,
    });
    // Every job whose result the history names.
    let mut jobs: Vec<u64> = history::load(dir)
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|r| match &r.ev {
            Event::HaInvoke { action, id, .. } if action == "result" => *id,
            _ => None,
        })
        .collect();
    jobs.sort_unstable();
    jobs.dedup();
    let store = services.job_result_store();
    let (mut dirty, mut clean) = (Vec::new(), Vec::new());
    for id in jobs {
        let job = crate::ha_work::result_job(id);
        let state = loop {
            match store.state(&job).await {
                Ok(state) => break state,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        match state {
            Some(tenure::ha::JobResultState::Dirty) => dirty.push(id),
            Some(tenure::ha::JobResultState::Clean) => clean.push(id),
            None => {}
        }
    }
    recorder.record(Event::FinalResults { dirty, clean });
    let _ = backend.close().await;
    Ok(())
}
