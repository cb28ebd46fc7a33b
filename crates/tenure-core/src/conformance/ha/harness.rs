//! A minimal test harness for a `harness = false` test target: it runs named
//! cases one after the other and reports them as libtest does.
//!
//! It reads the arguments cargo and test runners pass to a test executable:
//! `--list` (with `--format terse`), name filters, `--exact`, `--skip` and
//! `--ignored` (there are no ignored cases, so it selects none). Other libtest
//! options (`--nocapture`, `--test-threads N`, `--color X`, ...) change nothing
//! here and are accepted so that `cargo test -- <options>` works on every
//! target of a workspace.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

/// One named case; it fails by panicking.
pub(super) struct Case {
    pub(super) name: String,
    pub(super) run: Box<dyn FnOnce()>,
}

/// libtest's exit status when a test failed.
const FAILED: u8 = 101;

/// Libtest options that take a value, which is not a filter.
const WITH_VALUE: &[&str] = &[
    "--color",
    "--format",
    "--logfile",
    "--shuffle-seed",
    "--skip",
    "--test-threads",
    "-Z",
];

/// What the arguments ask for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    list: bool,
    terse: bool,
    exact: bool,
    ignored_only: bool,
    filters: Vec<String>,
    skips: Vec<String>,
}

impl Args {
    fn parse(args: impl IntoIterator<Item = String>) -> Args {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (option, inline) = match arg.split_once('=') {
                Some((o, v)) if o.starts_with('-') => (o.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let value = if WITH_VALUE.contains(&option.as_str()) {
                inline.or_else(|| args.next())
            } else {
                None
            };
            match option.as_str() {
                "--list" => parsed.list = true,
                "--exact" => parsed.exact = true,
                "--ignored" => parsed.ignored_only = true,
                "-q" | "--quiet" => parsed.terse = true,
                "--format" => parsed.terse |= value.as_deref() == Some("terse"),
                "--skip" => parsed.skips.extend(value),
                _ if option.starts_with('-') => {}
                _ => parsed.filters.push(arg),
            }
        }
        parsed
    }

    fn matches(&self, name: &str, pattern: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    /// Whether the case called `name` runs (or is listed).
    fn selects(&self, name: &str) -> bool {
        !self.ignored_only
            && (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(name, f)))
            && !self.skips.iter().any(|s| self.matches(name, s))
    }
}

/// Runs (or lists) the cases the process's arguments select; the exit status
/// is libtest's.
pub(super) fn run(cases: Vec<Case>) -> ExitCode {
    let args = Args::parse(std::env::args().skip(1));
    let total = cases.len();
    let selected: Vec<Case> = cases
        .into_iter()
        .filter(|c| args.selects(&c.name))
        .collect();
    if args.list {
        for case in &selected {
            println!("{}: test", case.name);
        }
        if !args.terse {
            println!("\n{}, 0 benchmarks", tests(selected.len()));
        }
        return ExitCode::SUCCESS;
    }
    let filtered_out = total - selected.len();
    println!("\nrunning {}", tests(selected.len()));
    let started = Instant::now();
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in selected {
        print!("test {} ... ", case.name);
        let _ = std::io::stdout().flush();
        // The case's panic message is printed by the panic hook as it happens.
        if catch_unwind(AssertUnwindSafe(case.run)).is_ok() {
            passed += 1;
            println!("ok");
        } else {
            println!("FAILED");
            failures.push(case.name);
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:");
        for name in &failures {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; \
         {filtered_out} filtered out; finished in {:.2}s\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// `1 test`, `2 tests`.
fn tests(n: usize) -> String {
    format!("{n} test{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn args(list: &[&str]) -> Args {
        Args::parse(list.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn no_arguments_select_every_case() {
        assert_eq!(args(&[]), Args::default());
        assert!(args(&[]).selects("single::failover_in_process"));
    }

    #[test]
    fn filters_match_substrings_or_with_exact_whole_names() {
        let a = args(&["paused", "--nocapture"]);
        assert!(a.selects("single::failover_with_leader_a_paused"));
        assert!(!a.selects("single::failover_in_process"));
        let exact = args(&["--exact", "single::failover_in_process"]);
        assert!(exact.selects("single::failover_in_process"));
        assert!(!exact.selects("cluster::failover_in_process"));
    }

    #[test]
    fn option_values_are_not_filters() {
        let a = args(&["--test-threads", "1", "--color=never", "--format", "terse"]);
        assert!(a.filters.is_empty(), "{a:?}");
        assert!(a.terse);
        let listed = args(&["--list", "--format=terse"]);
        assert!(listed.list && listed.terse);
    }

    #[test]
    fn skips_and_ignored_deselect() {
        let a = args(&["--skip", "cluster", "--skip=paused"]);
        assert!(a.selects("single::failover_in_process"));
        assert!(!a.selects("cluster::failover_in_process"));
        assert!(!a.selects("single::failover_with_leader_a_paused"));
        assert!(!args(&["--ignored"]).selects("single::failover_in_process"));
        assert!(args(&["--include-ignored"]).selects("single::failover_in_process"));
    }
}
