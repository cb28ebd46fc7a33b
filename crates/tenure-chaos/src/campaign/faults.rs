//! The nemesis of the safety phase: faults drawn from the seed, injected into
//! client processes (signals, proxies), in-process clients and server members.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::{applies, signal, Options, Procs, KINDS};
use crate::history::{Event, Recorder};
use crate::proxy::Mode;
use crate::rng::Rng;
use crate::servers::Servers;

/// The safety phase: faults from the seed until `options.faults` have begun or
/// `options.duration` has passed; returns how many of each kind.
pub(super) async fn inject(
    options: &Options,
    servers: &Servers,
    procs: &Arc<Mutex<Procs>>,
    nemesis: &Recorder,
) -> BTreeMap<String, u64> {
    let mut rng = Rng::new(options.seed);
    let has_servers = servers.members() > 0;
    let kinds: Vec<(&str, u64)> = KINDS
        .iter()
        .filter(|(_, _, scope)| applies(scope, options.backend))
        .filter(|(k, _, _)| options.kinds.is_empty() || options.kinds.iter().any(|o| o == k))
        .map(|&(k, w, _)| (k, w))
        .collect();
    let weights: Vec<u64> = kinds.iter().map(|(_, w)| *w).collect();
    let clients = options.clients;
    let busy: Arc<Mutex<Vec<bool>>> = Arc::new(Mutex::new(vec![false; clients]));
    let members_busy = Arc::new(Mutex::new(false));
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    let deadline = Instant::now() + options.duration;
    let ttl_ms = options.ttl.as_millis() as u64;
    let mut injected = 0;
    let mut last_progress = Instant::now();
    let mut id = 0;
    while injected < options.faults && Instant::now() < deadline && !kinds.is_empty() {
        // Every draw comes from the seed, in this order, whatever happens.
        let gap = rng.range(10, if has_servers { 300 } else { 120 });
        let kind = kinds[rng.weighted(&weights)].0;
        let target = rng.pick(clients);
        let member = rng.pick(servers.members().max(1));
        let length = rng.next_u64();
        tokio::time::sleep(Duration::from_millis(gap)).await;
        if last_progress.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "tenure-chaos: {injected}/{} faults, {:.0?}",
                options.faults,
                options
                    .duration
                    .saturating_sub(deadline.saturating_duration_since(Instant::now()))
            );
            last_progress = Instant::now();
        }
        let on_members =
            kind.starts_with("member") || kind == "leader-kill" || kind == "quorum-loss";
        {
            // A target already under a fault skips this turn.
            if on_members {
                let mut m = members_busy.lock().unwrap();
                if *m {
                    continue;
                }
                *m = true;
            } else {
                let mut b = busy.lock().unwrap();
                if b[target] {
                    continue;
                }
                b[target] = true;
            }
        }
        id += 1;
        injected += 1;
        *counts.entry(kind.to_owned()).or_default() += 1;
        let (procs, servers, nemesis, busy, members_busy) = (
            procs.clone(),
            servers.clone(),
            nemesis.clone(),
            busy.clone(),
            members_busy.clone(),
        );
        let fault_id = id;
        tasks.spawn(async move {
            let within = |low: u64, high: u64| low + length % (high - low).max(1);
            let name = procs.lock().unwrap().list[target].name.clone();
            let label = if on_members {
                format!("member {member}")
            } else {
                name.clone()
            };
            let record = |target: &str, end: bool| {
                nemesis.record(Event::Fault {
                    id: fault_id,
                    kind: kind.to_owned(),
                    target: target.to_owned(),
                    end,
                })
            };
            match kind {
                "client-kill" => {
                    let pid = procs.lock().unwrap().pid(target);
                    record(&label, false);
                    signal(pid, libc::SIGKILL);
                    let child = procs.lock().unwrap().list[target].child.take();
                    if let Some(mut child) = child {
                        let _ = child.wait().await;
                    }
                    // In process: the task stops at once, and its client is
                    // never heard from again — its session expires at its TTL,
                    // as a killed process's does.
                    let task = procs.lock().unwrap().list[target].task.take();
                    if let Some((task, memory)) = task {
                        task.abort();
                        let _ = task.await;
                        memory.partition();
                    }
                    tokio::time::sleep(Duration::from_millis(within(0, 500))).await;
                    let _ = procs.lock().unwrap().spawn(target);
                    record(&label, true);
                }
                "client-pause-short" | "client-pause-long" => {
                    let pause = if kind == "client-pause-short" {
                        within(20, ttl_ms / 2)
                    } else {
                        within(ttl_ms + 200, ttl_ms * 2)
                    };
                    let pid = procs.lock().unwrap().pid(target);
                    record(&label, false);
                    signal(pid, libc::SIGSTOP);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    signal(pid, libc::SIGCONT);
                    record(&label, true);
                }
                "client-expire" => {
                    let memory = procs.lock().unwrap().memory(target);
                    record(&label, false);
                    if let Some(memory) = memory {
                        memory.expire_session();
                    }
                    record(&label, true);
                }
                "client-partition" if procs.lock().unwrap().memory(target).is_some() => {
                    let memory = procs.lock().unwrap().memory(target);
                    let period = within(ttl_ms / 2, ttl_ms * 2);
                    record(&label, false);
                    if let Some(memory) = &memory {
                        memory.partition();
                    }
                    tokio::time::sleep(Duration::from_millis(period)).await;
                    if let Some(memory) = &memory {
                        memory.heal();
                    }
                    record(&label, true);
                }
                "client-partition" | "client-delay" => {
                    let mode = if kind == "client-partition" {
                        Mode::Blackhole
                    } else {
                        Mode::Delay(Duration::from_millis(within(20, 400)))
                    };
                    let period = within(ttl_ms / 2, ttl_ms * 2);
                    record(&label, false);
                    set_modes(&procs, target, mode);
                    tokio::time::sleep(Duration::from_millis(period)).await;
                    set_modes(&procs, target, Mode::Pass);
                    record(&label, true);
                }
                "client-reset" => {
                    record(&label, false);
                    for proxy in &procs.lock().unwrap().list[target].proxies {
                        proxy.reset();
                    }
                    record(&label, true);
                }
                _ => {
                    member_fault(kind, member, within(300, 3000), &servers, &record).await;
                }
            }
            if on_members {
                *members_busy.lock().unwrap() = false;
            } else {
                busy.lock().unwrap()[target] = false;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    counts
}

/// Kills, pauses or stops a quorum of members, then brings them back.
async fn member_fault(
    kind: &str,
    member: usize,
    millis: u64,
    servers: &Servers,
    record: &(impl Fn(&str, bool) + Sync),
) {
    let victims: Vec<usize> = match kind {
        "leader-kill" => vec![servers.leader().unwrap_or(member)],
        "quorum-loss" => (0..servers.members()).filter(|&m| m != member).collect(),
        _ => vec![member],
    };
    let label = format!(
        "member {}",
        victims
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("+")
    );
    record(&label, false);
    for &victim in &victims {
        match kind {
            "member-pause" => servers.pause(victim),
            // The other members' traffic to it is held, or slowed: it still
            // reaches them, they no longer reach it (in time).
            "member-partition" => servers.set_peer_mode(victim, Mode::Blackhole),
            "member-delay" => {
                servers.set_peer_mode(victim, Mode::Delay(Duration::from_millis(millis / 10)));
            }
            _ => servers.kill(victim),
        }
    }
    tokio::time::sleep(Duration::from_millis(millis)).await;
    if matches!(kind, "member-pause" | "member-partition" | "member-delay") {
        for &victim in &victims {
            servers.resume(victim);
            servers.set_peer_mode(victim, Mode::Pass);
        }
    } else {
        let servers = servers.clone();
        match tokio::task::spawn_blocking(move || servers.restart_all()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("tenure-chaos: restarting {label}: {e}"),
            Err(e) => eprintln!("tenure-chaos: restarting {label}: {e}"),
        }
    }
    record(&label, true);
}

fn set_modes(procs: &Arc<Mutex<Procs>>, target: usize, mode: Mode) {
    for proxy in &procs.lock().unwrap().list[target].proxies {
        proxy.set(mode);
    }
}
