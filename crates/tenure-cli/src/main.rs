//! The `tenure` command.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod demo;

/// Leader election and HA services with fencing.
#[derive(Debug, Parser)]
#[command(name = "tenure", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A one-minute tour with no server: three job-manager processes contend,
    /// the leader is killed, the next one hangs mid-write, and its late write is
    /// fenced off.
    Demo {
        /// Where to run: `local:` (three OS processes on a temporary directory),
        /// `local:///some/dir`, or `memory:` (three simulated processes in this
        /// one, with TTL sessions).
        #[arg(long, default_value = "local:")]
        backend: String,
        /// Session TTL of the simulated processes of `--backend memory:`: how long
        /// a crashed or paused leader keeps its session. Examples: 500ms, 1s.
        #[arg(long, default_value = "1s", value_parser = parse_ttl)]
        ttl: Duration,
    },
    /// One contender process of `tenure demo` (started by the demo itself).
    #[command(hide = true)]
    DemoContender {
        /// The backend URL.
        #[arg(long)]
        backend: String,
        /// The contender's name.
        #[arg(long)]
        name: String,
    },
}

fn parse_ttl(value: &str) -> Result<Duration, String> {
    let ttl = tenure::url::parse_duration("--ttl", value).map_err(|e| e.to_string())?;
    if ttl < Duration::from_millis(100) || ttl > Duration::from_secs(60) {
        return Err("--ttl must be between 100ms and 60s".into());
    }
    Ok(ttl)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tenure: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Demo { backend, ttl } => match backend.as_str() {
                "local:" => demo::local::run(None).await,
                "memory:" => demo::memory::run(ttl).await,
                url if url.starts_with("local:///") => {
                    demo::local::run(Some(url.trim_start_matches("local://").into())).await
                }
                other => Err(tenure::Error::invalid(
                    "--backend",
                    other,
                    "the demo runs on local:, local:///dir or memory:",
                )),
            },
            Command::DemoContender { backend, name } => demo::contender::run(&backend, &name).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenure: {e}");
            ExitCode::FAILURE
        }
    }
}
