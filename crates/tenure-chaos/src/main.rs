//! `tenure-chaos`: seeded fault campaigns against tenure's backends, checked
//! over the recorded history. See RELIABILITY.md.
//!
//! ```text
//! tenure-chaos run --backend memory|local|etcd|zookeeper|zookeeper-flink [--seed N] [--faults N]
//!     [--duration 60s] [--clients 4] [--retrievers 2] [--elections 2]
//!     [--ttl 2s] [--kinds a,b] [--unsafe-skip-fence] [--dir DIR] [--json]
//! tenure-chaos check DIR [--json]      check a recorded history again
//! tenure-chaos table SUMMARY.json…      the Markdown table of RELIABILITY.md
//! ```
//!
//! Exit status: 0 when the campaign found nothing wrong, 1 when it found a
//! violation or a liveness failure, 2 on bad usage or a setup failure.

mod campaign;
mod checker;
mod client;
mod ha_work;
mod history;
mod proxy;
mod record;
mod report;
mod rng;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use servers::BackendKind;

/// The acting overlap allowed between two processes: scheduling noise on a
/// loaded host, far below any session TTL.
const OVERLAP_MARGIN: Duration = Duration::from_millis(250);

const USAGE: &str =
    "usage: tenure-chaos run --backend memory|local|etcd|zookeeper|zookeeper-flink [--seed N] [--faults N] \
[--duration 60s] [--clients 4] [--retrievers 2] [--elections 2] [--ttl 2s] [--kinds a,b] \
[--unsafe-skip-fence] [--dir DIR] [--json]\n       tenure-chaos check DIR [--json]\n       tenure-chaos table SUMMARY.json...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match args.first().map(String::as_str) {
            Some("run") => run(&args[1..]).await,
            Some("client") => client(&args[1..]).await.map(|()| ExitCode::SUCCESS),
            Some("check") => check(&args[1..]),
            Some("table") => table(&args[1..]),
            _ => Err(USAGE.to_owned()),
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tenure-chaos: {message}");
            ExitCode::from(2)
        }
    }
}

/// The value after `--name`, if given.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    flag(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name} takes a whole number, not {v:?}"))
    })
}

fn duration(args: &[String], name: &str, default: Duration) -> Result<Duration, String> {
    let Some(v) = flag(args, name) else {
        return Ok(default);
    };
    let bad = || format!("{name} takes a duration like 500ms, 30s or 5m, not {v:?}");
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
}

async fn run(args: &[String]) -> Result<ExitCode, String> {
    let backend = flag(args, "--backend").ok_or("--backend is required")?;
    let kind = BackendKind::parse(&backend).ok_or_else(|| {
        format!("unknown backend {backend:?}: memory, local, etcd, zookeeper or zookeeper-flink")
    })?;
    let seed = match flag(args, "--seed") {
        Some(_) => number(args, "--seed", 0)?,
        None => history::now_ns() % 1_000_000,
    };
    let kinds: Vec<String> = flag(args, "--kinds")
        .map(|k| k.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    for k in &kinds {
        if !campaign::KINDS
            .iter()
            .any(|(name, _, scope)| name == k && campaign::applies(scope, kind))
        {
            let known: Vec<&str> = campaign::KINDS
                .iter()
                .filter(|(_, _, scope)| campaign::applies(scope, kind))
                .map(|(n, _, _)| *n)
                .collect();
            return Err(format!(
                "fault kind {k:?} does not apply to {backend}; known: {}",
                known.join(", ")
            ));
        }
    }
    let options = campaign::Options {
        backend: kind,
        seed,
        faults: number(args, "--faults", 200)?,
        duration: duration(args, "--duration", Duration::from_secs(60))?,
        clients: number(args, "--clients", 4)?.clamp(1, 16) as usize,
        retrievers: number(args, "--retrievers", 2)?.min(8) as usize,
        elections: number(args, "--elections", 2)?.clamp(1, 16) as usize,
        ttl: duration(args, "--ttl", Duration::from_secs(2))?,
        kinds,
        unsafe_skip_fence: args.iter().any(|a| a == "--unsafe-skip-fence"),
        dir: flag(args, "--dir").map(PathBuf::from),
    };
    let json = args.iter().any(|a| a == "--json");
    let keep = options.dir.is_some();
    let replay = replay_command(&options);
    eprintln!("tenure-chaos: seed {seed}; replay with: {replay}");
    let outcome = campaign::run(options).await?;
    let analysis = checker::check(&outcome.records, OVERLAP_MARGIN.as_nanos() as u64);
    let mut summary = report::Summary::new(kind.name(), seed, replay, &outcome, analysis);
    if summary.passed() && !keep {
        // Nothing to look into: leave no files behind.
        let _ = std::fs::remove_dir_all(&outcome.dir);
        summary
            .history
            .push_str(" (removed: the campaign passed; --dir keeps it)");
    }
    print(&summary, json);
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn replay_command(o: &campaign::Options) -> String {
    let mut command = format!(
        "tenure-chaos run --backend {} --seed {} --faults {} --duration {}s --clients {} --retrievers {} --elections {} --ttl {}ms",
        o.backend.name(),
        o.seed,
        o.faults,
        o.duration.as_secs(),
        o.clients,
        o.retrievers,
        o.elections,
        o.ttl.as_millis()
    );
    if !o.kinds.is_empty() {
        command.push_str(&format!(" --kinds {}", o.kinds.join(",")));
    }
    if o.unsafe_skip_fence {
        command.push_str(" --unsafe-skip-fence");
    }
    command
}

fn print(summary: &report::Summary, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).expect("a summary serializes")
        );
    } else {
        print!("{}", summary.text());
    }
}

/// Checks a recorded history again (`tenure-chaos check DIR`).
fn check(args: &[String]) -> Result<ExitCode, String> {
    let dir = args.first().ok_or(USAGE)?;
    let records =
        history::load(std::path::Path::new(dir)).map_err(|e| format!("cannot read {dir}: {e}"))?;
    let analysis = checker::check(&records, OVERLAP_MARGIN.as_nanos() as u64);
    let violations = analysis.violations.len();
    if args.iter().any(|a| a == "--json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&analysis).expect("serializes")
        );
    } else {
        for v in &analysis.violations {
            println!("[{}] {}", v.invariant, v.what);
        }
        println!("{violations} violation(s) in {} records", records.len());
    }
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A client or retriever process (`tenure-chaos client …`), started by `run`.
async fn client(args: &[String]) -> Result<(), String> {
    let required = |name: &str| flag(args, name).ok_or_else(|| format!("{name} is required"));
    client::run(client::ClientArgs {
        url: required("--url")?,
        name: required("--name")?,
        history: PathBuf::from(required("--history")?),
        elections: number(args, "--elections", 2)? as usize,
        seed: number(args, "--seed", 0)?,
        unsafe_skip_fence: args.iter().any(|a| a == "--unsafe-skip-fence"),
        retriever: args.iter().any(|a| a == "--retriever"),
        life: number(args, "--life", u64::from(std::process::id()))? as u32,
    })
    .await
}

/// Prints the Markdown table of campaign summaries (`run --json` output).
fn table(paths: &[String]) -> Result<ExitCode, String> {
    if paths.is_empty() {
        return Err(USAGE.to_owned());
    }
    let mut summaries = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let summary: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path} is not a summary: {e}"))?;
        summaries.push(summary);
    }
    print!("{}", report::markdown(&summaries));
    Ok(ExitCode::SUCCESS)
}
