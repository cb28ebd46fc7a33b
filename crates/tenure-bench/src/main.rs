//! `tenure-bench`: how fast leadership moves, what it costs the coordination
//! service and what safety costs, for every backend and beside the peer
//! implementations users pick today, in one run. Writes `BENCHMARKS.md` and
//! one JSON file of raw results per scenario.
//!
//! ```text
//! cargo run --release -p tenure-bench -- all [--quick] [--only NAME] [--out BENCHMARKS.md] [--results DIR]
//! cargo run --release -p tenure-bench -- compare OLD_DIR NEW_DIR
//! ```
//!
//! `--only` runs one part: `memory`, `local`, `etcd`, `zookeeper` (each with
//! its peers), `watchdog` (the frozen supervisor) or `flink` (real Flink
//! JobManagers killed, the standby seen by tenure's and Flink's retrieval).
//!
//! Cross-process times are taken from the system clock of one host, read by
//! both processes (the event's process stamps it; the cause's stamps its own).

use std::process::ExitCode;

mod compare;
mod contender;
mod fanout;
mod flink;
mod heap;
mod local;
mod memory;
mod peers;
mod plan;
mod proc;
mod report;
mod run;
mod scenarios;
mod watchdog;
mod writes;

const USAGE: &str = "usage:
  tenure-bench all [--quick] [--only memory|local|etcd|zookeeper|peers|watchdog|flink] [--out FILE] [--results DIR]
  tenure-bench compare OLD_RESULTS_DIR NEW_RESULTS_DIR
  tenure-bench peer-smoke etcdctl|curator|kazoo|go";

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "contender") {
        heap::enable();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let outcome = runtime.block_on(async {
        match (args.first().map(String::as_str), args.len()) {
            (Some("all"), _) => {
                let options = run::Options {
                    quick: args.iter().any(|a| a == "--quick"),
                    only: flag("--only"),
                    out: flag("--out").unwrap_or_else(|| "BENCHMARKS.md".into()),
                    results: flag("--results").unwrap_or_else(|| "bench-results".into()),
                };
                run::all(options).await
            }
            (Some("compare"), 3) => compare::run(&args[1], &args[2]),
            (Some("contender"), 3) => contender::run(&args[1], &args[2]).await,
            (Some("etcdctl-contender"), 3) => peers::etcdctl_contender(&args[1], &args[2]).await,
            (Some("peer-smoke"), 2) => peers::smoke(&args[1]).await,
            _ => Err(USAGE.to_owned()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenure-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
