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
    /// A one-minute tour on the embedded backend (no server needed): three
    /// contenders, a leader that crashes, one that is paused, and the old
    /// leader's late write being fenced off.
    Demo {
        /// Session TTL of the simulated processes: how long a crashed or paused
        /// leader keeps its session on the backend. Examples: 500ms, 1s.
        #[arg(long, default_value = "1s", value_parser = parse_ttl)]
        ttl: Duration,
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
            Command::Demo { ttl } => demo::run(ttl).await,
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
