//! `tenure-bench`: measures how fast leadership moves and changes travel, per
//! backend, and writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p tenure-bench -- all [--quick] [--out BENCHMARKS.md]
//! ```
//!
//! Cross-process times are taken from the system clock of one host, read by
//! both processes (the event's process stamps it; the cause's stamps its own).

use std::process::ExitCode;

mod etcd;
mod local;
mod memory;
mod report;
mod zookeeper;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(async {
        match args.first().map(String::as_str) {
            Some("all") => {
                let quick = args.iter().any(|a| a == "--quick");
                let out = args
                    .iter()
                    .position(|a| a == "--out")
                    .and_then(|i| args.get(i + 1))
                    .cloned()
                    .unwrap_or_else(|| "BENCHMARKS.md".into());
                let only = args
                    .iter()
                    .position(|a| a == "--only")
                    .and_then(|i| args.get(i + 1))
                    .cloned();
                run_all(quick, &out, only.as_deref()).await
            }
            Some("contender") if args.len() == 2 => local::contender(&args[1]).await,
            Some("contender") if args.len() == 3 => {
                local::contender_named(&args[1], &args[2]).await
            }
            _ => Err(
                "usage: tenure-bench all [--quick] [--out FILE] [--only memory|local|etcd|zookeeper]"
                    .to_owned(),
            ),
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

async fn run_all(quick: bool, out: &str, only: Option<&str>) -> Result<(), String> {
    let scale = if quick { 4 } else { 1 };
    let mut report = report::Report::start(quick);
    let wanted = |backend: &str| only.is_none_or(|o| o == backend);
    if wanted("memory") {
        memory::run(&mut report, scale).await?;
    }
    if wanted("local") {
        local::run(&mut report, scale).await?;
    }
    if wanted("etcd") {
        etcd::run(&mut report, scale).await?;
    }
    if wanted("zookeeper") {
        zookeeper::run(&mut report, scale).await?;
    }
    report.write(out)?;
    println!("wrote {out}");
    Ok(())
}
