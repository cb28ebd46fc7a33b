//! What the commands share: connecting, candidate ids, signals.

use std::time::Duration;

use tenure::{DynBackend, Election, ElectionFactory, ElectionOptions, Error, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Connects to `url`, with the session TTL set to `ttl` when given: etcd's
/// lease `ttl`, ZooKeeper's `session_timeout`; a backend whose sessions have
/// no TTL refuses the flag, naming it.
pub(crate) async fn connect(url: &str, ttl: Option<Duration>) -> Result<DynBackend> {
    let url = match ttl {
        None => url.to_owned(),
        Some(ttl) => {
            let option = match tenure::BackendUrl::parse(url)?.scheme() {
                "etcd" => "ttl",
                "zk" => "session_timeout",
                other => {
                    return Err(Error::invalid(
                        "--ttl",
                        &format!("{}ms", ttl.as_millis()),
                        format!(
                            "the {other} backend's sessions have no TTL (etcd's and ZooKeeper's do); drop --ttl"
                        ),
                    ))
                }
            };
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{option}={}ms", ttl.as_millis())
        }
    };
    let backend = tenure::connect(&url).await?;
    tokio::spawn(tenure::observe::watch_session(backend.clone()));
    Ok(backend)
}

impl crate::CandidateArgs {
    /// Connects, and returns the backend, this candidate's id and its
    /// election (not campaigning yet).
    pub(crate) async fn join(&self) -> Result<(DynBackend, String, Election)> {
        let backend = connect(&self.backend.backend, self.ttl).await?;
        let id = self.id.clone().unwrap_or_else(default_id);
        let options = ElectionOptions {
            candidate_id: Some(id.clone()),
            ..ElectionOptions::default()
        };
        let election =
            ElectionFactory::with_options(backend.clone(), options).new_election(&self.election)?;
        Ok((backend, id, election))
    }
}

/// The default candidate id: `HOSTNAME-PID`, reduced to the id alphabet.
pub(crate) fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("{host}-{}", std::process::id())
}

/// This host's name, as the kernel knows it.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The signals tenure handles: SIGTERM and SIGINT stop it; SIGHUP, SIGUSR1 and
/// SIGUSR2 are passed on to the command of `tenure run`.
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Takes the signals over from their default action (which would end the
    /// process without resigning).
    pub(crate) fn new() -> Result<Self> {
        let on = |kind: SignalKind| {
            signal(kind).map_err(|e| Error::Backend {
                message: "cannot install signal handlers".into(),
                source: Some(Box::new(e)),
            })
        };
        Ok(Signals {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
            usr1: on(SignalKind::user_defined1())?,
            usr2: on(SignalKind::user_defined2())?,
        })
    }

    /// The next signal received (its number).
    pub(crate) async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.int.recv() => libc::SIGINT,
            _ = self.hup.recv() => libc::SIGHUP,
            _ = self.usr1.recv() => libc::SIGUSR1,
            _ = self.usr2.recv() => libc::SIGUSR2,
        }
    }

    /// The next signal that stops tenure (SIGTERM or SIGINT); others are ignored.
    pub(crate) async fn stop(&mut self) -> i32 {
        loop {
            let signal = self.next().await;
            if is_stop(signal) {
                return signal;
            }
        }
    }
}

/// Whether `signal` asks tenure to stop.
pub(crate) fn is_stop(signal: i32) -> bool {
    signal == libc::SIGTERM || signal == libc::SIGINT
}

/// A signal's name, for logs.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGKILL => "SIGKILL",
        _ => "signal",
    }
}
