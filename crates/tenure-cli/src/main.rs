//! The `tenure` command: run a process only while it leads, observe elections,
//! inspect a cluster, campaign and resign from scripts, and the no-server demo.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

mod campaign;
mod child;
mod common;
mod demo;
mod exit;
mod fence;
mod holder;
mod kv;
mod metrics_http;
mod observe;
mod run;
mod status;
mod time;
mod watchdog;

/// Leader election and HA services with fencing.
///
/// Run a command on exactly one of several hosts (`tenure run`), follow who
/// leads (`tenure observe`), list leaders (`tenure status`), and take part in an
/// election from a shell script (`tenure campaign`, `tenure resign`).
#[derive(Debug, Parser)]
#[command(name = "tenure", version, about, long_about, after_long_help = exit::HELP)]
struct Cli {
    /// Log level on standard error: error, warn, info, debug or trace
    /// [default: info for run and campaign, warn otherwise].
    #[arg(
        long,
        global = true,
        env = "TENURE_LOG",
        value_name = "LEVEL",
        value_parser = parse_level
    )]
    log_level: Option<tracing::Level>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command only while this process leads an election; stop it (SIGTERM,
    /// then SIGKILL) the moment leadership is lost.
    #[command(after_long_help = run::HELP)]
    Run(RunArgs),
    /// Follow an election's leader (or an HA component's) without campaigning:
    /// one line per change.
    Observe(ObserveArgs),
    /// List the leaders of elections and of a cluster's HA components.
    #[command(after_long_help = status::HELP)]
    Status(StatusArgs),
    /// Campaign from a script: block until leader, print the term, hold
    /// leadership until signalled or standard input closes, then resign.
    #[command(after_long_help = campaign::CAMPAIGN_HELP)]
    Campaign(CampaignArgs),
    /// Ask the holder of an election (a `tenure run` or `tenure campaign`
    /// process) to resign, and wait until it has.
    #[command(after_long_help = campaign::RESIGN_HELP)]
    Resign(ResignArgs),
    /// Write a value only while a leadership is current: fenced by the
    /// TENURE_FENCE token of `tenure run`'s command (or `tenure campaign --fence`).
    #[command(after_long_help = kv::PUT_HELP)]
    Put(PutArgs),
    /// Read a value `tenure put` wrote, with the term that wrote it.
    #[command(after_long_help = kv::GET_HELP)]
    Get(GetArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
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

/// Where the coordination service is.
#[derive(Debug, Clone, Args)]
struct BackendArgs {
    /// Backend URL (required): local:///DIR (processes on one host, no server),
    /// memory: (this process only), etcd://HOST:PORT,…/PREFIX, zk://HOST:PORT,…/CHROOT.
    /// On etcd the PREFIX is taken as written, without a leading slash: election
    /// E of etcd://HOST/peers is the one `etcdctl elect peers/E` joins.
    #[arg(long, env = "TENURE_BACKEND", value_name = "URL", value_parser = parse_url)]
    backend: String,
}

/// Which election, and as whom.
#[derive(Debug, Clone, Args)]
struct CandidateArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The election to campaign in (required): 1–128 bytes of A-Z a-z 0-9 . _ -
    #[arg(long, value_name = "NAME", value_parser = parse_election)]
    election: String,
    /// This candidate's id, shown to observers and given to the command as
    /// TENURE_LEADER_ID [default: HOSTNAME-PID].
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    id: Option<String>,
    /// Session TTL, for backends whose sessions have one (etcd, memory): how long a
    /// crashed holder keeps leadership [default: the backend's, 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// An address to publish with the leadership, shown by `observe` and
    /// `status` [default: none].
    #[arg(long, value_name = "ADDR")]
    address: Option<String>,
}

/// What `tenure run` does after its command stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Restart {
    /// Exit with the command's status (75 if leadership was lost).
    Never,
    /// Campaign and run again unless the command exited with status 0.
    OnFailure,
    /// Campaign and run again, whatever happened.
    Always,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    candidate: CandidateArgs,
    /// How long the command may take to stop after SIGTERM before it gets SIGKILL;
    /// cut short so that SIGKILL comes no later than the renew deadline.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    grace: Duration,
    /// What to do when the command stopped: never (exit), on-failure, always.
    #[arg(long, value_enum, default_value = "never", value_name = "POLICY")]
    restart: Restart,
    /// Pause before campaigning again after the command stopped.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    restart_delay: Duration,
    /// Serve metrics in Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9464) [default: off].
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// The command and its arguments, after `--` (required).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct ObserveArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The election to follow (or use --cluster and --component).
    #[arg(long, value_name = "NAME", value_parser = parse_election,
          required_unless_present = "component", conflicts_with_all = ["cluster", "component"])]
    election: Option<String>,
    /// The cluster of the HA component to follow (with --component).
    #[arg(long, value_name = "ID", value_parser = parse_cluster, requires = "component")]
    cluster: Option<String>,
    /// The HA component to follow (e.g. dispatcher), with --cluster.
    #[arg(long, value_name = "ID", value_parser = parse_component, requires = "cluster")]
    component: Option<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Serve metrics in Prometheus text format at http://ADDR/metrics [default: off].
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// List the HA components of this cluster too.
    #[arg(long, value_name = "ID", value_parser = parse_cluster)]
    cluster: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Elections to show (the backend cannot list elections by itself).
    #[arg(value_name = "ELECTION", value_parser = parse_election,
          required_unless_present = "cluster")]
    elections: Vec<String>,
}

#[derive(Debug, Args)]
struct CampaignArgs {
    #[command(flatten)]
    candidate: CandidateArgs,
    /// Also print the leadership's fence token (for `tenure put --fence`) on a
    /// second line, after the term.
    #[arg(long)]
    fence: bool,
}

#[derive(Debug, Args)]
struct PutArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The fence token of the leadership the write is made under (required):
    /// the TENURE_FENCE that `tenure run` gives its command.
    #[arg(
        long,
        env = "TENURE_FENCE",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    fence: String,
    /// Print the key, election, term and version written as one JSON object.
    #[arg(long)]
    json: bool,
    /// The key, inside the election's namespace: segments of A-Z a-z 0-9 . _ -
    /// joined by `/`.
    #[arg(value_name = "KEY")]
    key: String,
    /// The value [default: standard input, read to its end].
    #[arg(value_name = "VALUE")]
    value: Option<String>,
}

#[derive(Debug, Args)]
struct GetArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The election whose namespace holds KEY (required).
    #[arg(long, env = "TENURE_ELECTION", value_name = "NAME", value_parser = parse_election)]
    election: String,
    /// Print one JSON object (key, election, value or value_base64, term, version).
    #[arg(long)]
    json: bool,
    /// The key, as given to `tenure put`.
    #[arg(value_name = "KEY")]
    key: String,
}

#[derive(Debug, Args)]
struct ResignArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The election whose holder should resign (required).
    #[arg(long, value_name = "NAME", value_parser = parse_election)]
    election: String,
    /// Only if this candidate id leads; fail otherwise [default: whoever leads].
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    id: Option<String>,
    /// How long to wait for the holder to resign.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    timeout: Duration,
}

fn parse_ttl(value: &str) -> Result<Duration, String> {
    let ttl = tenure::url::parse_duration("--ttl", value).map_err(|e| e.to_string())?;
    if ttl < Duration::from_millis(100) || ttl > Duration::from_secs(60) {
        return Err("--ttl must be between 100ms and 60s".into());
    }
    Ok(ttl)
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    tenure::url::parse_duration("the value", value).map_err(|e| e.to_string())
}

fn parse_url(value: &str) -> Result<String, String> {
    tenure::BackendUrl::parse(value)
        .map(|_| value.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_name(field: &'static str, value: &str) -> Result<String, String> {
    tenure::name::validate_id(field, value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_election(value: &str) -> Result<String, String> {
    parse_name("election name", value)
}

fn parse_cluster(value: &str) -> Result<String, String> {
    parse_name("cluster id", value)
}

fn parse_component(value: &str) -> Result<String, String> {
    parse_name("component id", value)
}

fn parse_id(value: &str) -> Result<String, String> {
    parse_name("candidate id", value)
}

fn parse_level(value: &str) -> Result<tracing::Level, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a log level: use error, warn, info, debug or trace"))
}

fn main() -> ExitCode {
    // The watchdog of `tenure run` starts before any runtime or thread.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == watchdog::SUBCOMMAND) {
        watchdog::main(&args[2..]);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.log_level.unwrap_or(match cli.command {
            Command::Run(_) | Command::Campaign(_) => tracing::Level::INFO,
            // The tour tells its own story; the library's logs would interleave.
            Command::Demo { .. } | Command::DemoContender { .. } => tracing::Level::ERROR,
            _ => tracing::Level::WARN,
        }))
        .with_target(false)
        .with_ansi(false)
        .init();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "tenure", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tenure: cannot start the async runtime: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Observe(args) => observe::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Campaign(args) => campaign::campaign(args).await,
            Command::Resign(args) => campaign::resign(args).await,
            Command::Put(args) => kv::put(args).await,
            Command::Get(args) => kv::get(args).await,
            Command::Completions { .. } => Ok(0),
            Command::Demo { backend, ttl } => match backend.as_str() {
                "local:" => demo::local::run(None).await.map(|()| 0),
                "memory:" => demo::memory::run(ttl).await.map(|()| 0),
                url if url.starts_with("local:///") => {
                    demo::local::run(Some(url.trim_start_matches("local://").into()))
                        .await
                        .map(|()| 0)
                }
                other => Err(tenure::Error::invalid(
                    "--backend",
                    other,
                    "the demo runs on local:, local:///dir or memory:",
                )),
            },
            Command::DemoContender { backend, name } => {
                demo::contender::run(&backend, &name).await.map(|()| 0)
            }
        }
    });
    // Leftover tasks (watches, the metrics server) must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tenure: {e}");
            ExitCode::from(exit::of_error(&e))
        }
    }
}
