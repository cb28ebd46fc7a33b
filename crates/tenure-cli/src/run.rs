//! `tenure run`: run a command only while this process leads an election.
//!
//! The loop: campaign; when granted, publish the holder record (fenced) and
//! start the command with the leadership in its environment; then wait for
//! whichever comes first —
//!
//! - the command exits: kill what it left in its process group, resign, and
//!   exit with its status or campaign again (`--restart`);
//! - leadership is lost: SIGTERM to the command's process group, SIGKILL at
//!   min(loss + grace, renew deadline), then exit 75 or campaign again;
//! - SIGTERM or SIGINT: passed on to the command, SIGKILL after the grace,
//!   resign, exit with the command's status;
//! - a resign request (`tenure resign`): stop the command as on a signal,
//!   resign, then exit 75 or campaign again.

use std::time::Duration;

use tenure::{DynBackend, Leadership, LossReason, Result};
use tokio::time::Instant;

use crate::child::Child;
use crate::common::{self, signal_name, Signals};
use crate::fence::Fence;
use crate::watchdog::Leash;
use crate::{exit, holder, metrics_http, Restart, RunArgs};

/// The long help of `tenure run`.
pub(crate) const HELP: &str = "\
The command gets, in its environment:
  TENURE_TERM        the fencing token: greater than any earlier leader's; pass it
                     along with writes so that stale writers can be rejected
  TENURE_SESSION_ID  the leader session id (a UUID unique to this grant)
  TENURE_ELECTION    the election name
  TENURE_LEADER_ID   this candidate's id (--id)
  TENURE_FENCE       the leadership as a token for `tenure put --fence`: writes
                     made with it are rejected (exit 75) once it is over, even
                     from a process that was paused through its successor's grant
  TENURE_BACKEND     the backend URL (--backend), for `tenure put` and `get`

The command starts as soon as the grant is known; the holder record (`tenure
status`) and the watch for `tenure resign` requests are set up beside it (a
request made in between is still honoured).

When leadership is lost (session lost or suspended, candidate removed, renew
deadline near), the command's process group gets SIGTERM at once and SIGKILL
after --grace — but never later than the renew deadline, before which no other
candidate can be granted: the grace is cut short when it would pass it.

A watchdog process sits between tenure and the command and leads its process
group. tenure gives it every new renew deadline over a pipe; should tenure
itself stall (frozen, swapped out, blocked, a debugger attached) or die, the
watchdog sends SIGTERM just before the deadline and SIGKILL to the whole group
at it — at once if tenure dies on a backend without a TTL (local). If the
watchdog is killed the command dies with it. Not covered: the whole host frozen
past its session; there only fenced writes (TENURE_FENCE) keep it harmless.

The command runs in its own process group, so signals reach everything it
started; it cannot read from a terminal. SIGTERM and SIGINT to tenure are passed
on to it, then leadership is resigned; SIGHUP, SIGUSR1 and SIGUSR2 are passed on.

Example:
  tenure run --backend local:///var/lib/tenure --election nightly -- ./backup.sh

Exit codes:
  N        the command exited with status N (--restart never, or on-failure and 0)
  128+S    the command was killed by signal S, or tenure was stopped by signal
           S while campaigning (130: SIGINT, 143: SIGTERM)
  75       leadership was lost, or a resign was requested (--restart never)
  126/127  the command cannot be executed / was not found
  64       bad input; 69 backend unavailable; 1 other failures";

/// Why the command stopped running.
#[derive(Debug)]
enum Ended {
    Exited(std::process::ExitStatus),
    Lost(LossReason),
    Signalled(i32),
    ResignRequested,
}

/// Runs `tenure run`; returns the exit code.
pub(crate) async fn run(args: RunArgs) -> Result<u8> {
    // Take the signals over first: from now on SIGTERM means "stop and resign".
    let mut signals = Signals::new()?;
    if let Some(addr) = args.metrics_addr {
        metrics_http::serve(addr).await?;
    }
    let (backend, id, election) = args.candidate.join().await?;
    let outcome = supervise(&args, &id, &backend, &election, &mut signals).await;
    election.close().await;
    let _ = backend.close().await;
    outcome
}

async fn supervise(
    args: &RunArgs,
    id: &str,
    backend: &DynBackend,
    election: &tenure::Election,
    signals: &mut Signals,
) -> Result<u8> {
    let name = args.candidate.election.as_str();
    loop {
        tracing::info!(election = name, id, "campaigning");
        let leadership = tokio::select! {
            r = election.campaign() => r?,
            signal = signals.stop() => {
                tracing::info!(signal = signal_name(signal), "stopped while campaigning");
                return Ok(exit::of_signal(signal));
            }
        };
        let term = leadership.term();
        let env = [
            ("TENURE_TERM", term.to_string()),
            ("TENURE_SESSION_ID", leadership.session_id().to_string()),
            ("TENURE_ELECTION", name.to_owned()),
            ("TENURE_LEADER_ID", id.to_owned()),
            (
                "TENURE_FENCE",
                Fence::new(&args.candidate.backend.backend, leadership.grant())?.encode(),
            ),
            ("TENURE_BACKEND", args.candidate.backend.backend.clone()),
        ];
        // Spawned from this (the runtime's main) thread, which lives as long as
        // tenure: the kernel's parent-death signal follows the spawning thread.
        let session = leadership.grant().session;
        let mut child = match Child::spawn(
            &args.command,
            &env,
            args.grace,
            watchdog_deadline(backend, session),
        ) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(command = %args.command[0], error = %e, "cannot start the command");
                eprintln!("tenure: cannot start {:?}: {e}", args.command[0]);
                let _ = leadership.resign().await;
                return Ok(exit::of_spawn_error(&e));
            }
        };
        tracing::info!(pid = child.pid(), term, "command started");
        // The command runs first; the holder record and the resign-request
        // watch are set up beside it.
        let mut resign_requested = std::pin::pin!(holder::bookkeeping(
            &leadership,
            backend,
            name,
            id,
            args.candidate.address.as_deref(),
        ));
        let leash = child.leash();
        let mut pets = std::pin::pin!(pet_while_leading(&leash, backend, session));
        let mut petting = true;
        let ended = loop {
            tokio::select! {
                () = &mut pets, if petting => petting = false,
                status = child.wait() => break Ended::Exited(status),
                reason = leadership.lost() => break Ended::Lost(reason),
                () = &mut resign_requested => break Ended::ResignRequested,
                signal = signals.next() => {
                    if common::is_stop(signal) {
                        break Ended::Signalled(signal);
                    }
                    tracing::info!(signal = signal_name(signal), "passing the signal on");
                    child.signal(signal);
                }
            }
        };
        let again = match ended {
            Ended::Exited(status) => {
                child.kill_leftovers();
                resign(&leadership).await;
                let code = exit::of_status(status);
                tracing::info!(code, term, "the command exited; leadership resigned");
                match args.restart {
                    Restart::Never => return Ok(code),
                    Restart::OnFailure if code == 0 => return Ok(0),
                    Restart::OnFailure | Restart::Always => {}
                }
                true
            }
            Ended::Lost(reason) => {
                tracing::warn!(%reason, term, "leadership lost: stopping the command");
                let kill_at = loss_kill_time(backend, &leadership, reason, args.grace);
                // Should tenure stall from here on, the watchdog keeps this time.
                child.pet(Some(kill_at));
                let status = child
                    .stop(libc::SIGTERM, kill_at, std::future::pending())
                    .await;
                tracing::info!(code = exit::of_status(status), "the command stopped");
                args.restart != Restart::Never
            }
            Ended::Signalled(signal) => {
                tracing::info!(
                    signal = signal_name(signal),
                    "passing the signal on, then resigning"
                );
                let status =
                    stop_while_leading(&mut child, signal, backend, &leadership, args.grace).await;
                resign(&leadership).await;
                return Ok(exit::of_status(status));
            }
            Ended::ResignRequested => {
                tracing::info!(term, "resign requested: stopping the command");
                stop_while_leading(&mut child, libc::SIGTERM, backend, &leadership, args.grace)
                    .await;
                resign(&leadership).await;
                args.restart != Restart::Never
            }
        };
        if !again {
            return Ok(exit::LEADERSHIP_LOST);
        }
        tokio::select! {
            _ = tokio::time::sleep(args.restart_delay) => {}
            signal = signals.stop() => return Ok(exit::of_signal(signal)),
        }
    }
}

async fn resign(leadership: &Leadership) {
    if let Err(e) = leadership.resign().await {
        tracing::warn!(error = %e, "resigning failed");
    }
}

/// Stops the command while (as far as we know) still leading: `first` now,
/// SIGKILL after `grace` — or, if leadership is lost meanwhile, no later than
/// the deadline that loss imposes.
async fn stop_while_leading(
    child: &mut Child,
    first: i32,
    backend: &DynBackend,
    leadership: &Leadership,
    grace: Duration,
) -> std::process::ExitStatus {
    let started = Instant::now();
    let leash = child.leash();
    let session = leadership.grant().session;
    let tighten = async {
        // Keep the watchdog's deadline moving while we still lead.
        let pets = pet_while_leading(&leash, backend, session);
        let reason = tokio::select! {
            reason = leadership.lost() => reason,
            () = pets => leadership.lost().await,
        };
        // A resign of our own comes only after the command stopped.
        let at = loss_kill_time_from(backend, leadership, reason, started + grace, Instant::now());
        leash.pet(Some(at));
        at
    };
    child.stop(first, started + grace, tighten).await
}

/// Gives the watchdog every new renew deadline of `session`; returns when the
/// backend's session channel closes.
async fn pet_while_leading(leash: &Leash, backend: &DynBackend, session: tenure::SessionId) {
    let mut status = backend.session();
    while status.changed().await.is_ok() {
        leash.pet(watchdog_deadline(backend, session));
    }
}

/// The deadline the watchdog holds the command to while `session` leads: its
/// renew deadline (none without a TTL); now, once the session is gone.
fn watchdog_deadline(backend: &DynBackend, session: tenure::SessionId) -> Option<Instant> {
    let status = *backend.session().borrow();
    let live = status.id == session
        && matches!(
            status.state,
            tenure::SessionState::Connected | tenure::SessionState::Suspended
        );
    if live {
        status.renew_deadline
    } else {
        Some(Instant::now())
    }
}

/// When the command must be dead after leadership was lost for `reason` now.
fn loss_kill_time(
    backend: &DynBackend,
    leadership: &Leadership,
    reason: LossReason,
    grace: Duration,
) -> Instant {
    let now = Instant::now();
    loss_kill_time_from(backend, leadership, reason, now + grace, now)
}

fn loss_kill_time_from(
    backend: &DynBackend,
    leadership: &Leadership,
    reason: LossReason,
    wanted: Instant,
    now: Instant,
) -> Instant {
    let deadline = loss_deadline(backend, leadership, reason, now);
    let (at, clamped) = kill_time(wanted, deadline);
    if clamped {
        tracing::warn!(
            %reason,
            grace_left_ms = wanted.saturating_duration_since(now).as_millis() as u64,
            kill_in_ms = at.saturating_duration_since(now).as_millis() as u64,
            "grace cut short: SIGKILL at the renew deadline, before another candidate can be granted"
        );
    }
    at
}

/// The renew deadline that bounds the command after a loss: the session's,
/// while the session that granted leadership is still the live one; now, when
/// that session is gone or its deadline passed (the server may have granted
/// another candidate already). `None`: no deadline (sessions without a TTL).
fn loss_deadline(
    backend: &DynBackend,
    leadership: &Leadership,
    reason: LossReason,
    now: Instant,
) -> Option<Instant> {
    if matches!(
        reason,
        LossReason::SessionLost | LossReason::RenewDeadlinePassed
    ) {
        return Some(now);
    }
    let status = *backend.session().borrow();
    let ours = status.id == leadership.grant().session
        && matches!(
            status.state,
            tenure::SessionState::Connected | tenure::SessionState::Suspended
        );
    if ours {
        status.renew_deadline
    } else if status.state == tenure::SessionState::Closed {
        None
    } else {
        Some(now)
    }
}

/// The SIGKILL time: `wanted` (loss + grace), or the renew deadline if that is
/// earlier. Returns whether the deadline cut the grace short.
pub(crate) fn kill_time(wanted: Instant, deadline: Option<Instant>) -> (Instant, bool) {
    match deadline {
        Some(deadline) if deadline < wanted => (deadline, true),
        _ => (wanted, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_time_is_clamped_to_the_renew_deadline() {
        let lost = Instant::now();
        let grace = Duration::from_secs(10);
        // No deadline (local backend): the whole grace.
        assert_eq!(kill_time(lost + grace, None), (lost + grace, false));
        // A deadline after the grace: the grace.
        let late = lost + Duration::from_secs(30);
        assert_eq!(kill_time(lost + grace, Some(late)), (lost + grace, false));
        // A deadline within the grace: the deadline.
        let soon = lost + Duration::from_secs(2);
        assert_eq!(kill_time(lost + grace, Some(soon)), (soon, true));
        // A deadline already passed: at once.
        assert_eq!(kill_time(lost + grace, Some(lost)), (lost, true));
    }

    /// A suspended session keeps its server-side lease until the renew
    /// deadline: the grace may run until then, and no longer.
    #[tokio::test]
    async fn after_a_suspension_sigkill_comes_no_later_than_the_renew_deadline() {
        let cluster = tenure::MemoryCluster::new();
        let client = cluster.client_with_ttl(Duration::from_secs(3));
        let backend: DynBackend = std::sync::Arc::new(client.clone());
        let election = tenure::ElectionFactory::new(backend.clone())
            .new_election("jobs")
            .unwrap();
        let leadership = election.campaign().await.unwrap();
        client.partition();
        let reason = leadership.lost().await;
        assert_eq!(reason, LossReason::SessionSuspended);
        let deadline = backend
            .session()
            .borrow()
            .renew_deadline
            .expect("a TTL session");
        let now = Instant::now();

        let long = loss_kill_time(&backend, &leadership, reason, Duration::from_secs(60));
        assert_eq!(long, deadline, "a long grace is cut at the renew deadline");
        assert!(long <= now + Duration::from_secs(3));

        let short = loss_kill_time(&backend, &leadership, reason, Duration::from_millis(100));
        assert!(short < deadline, "a short grace is kept");

        // Once the session is gone, the server may have granted someone else.
        client.expire_session();
        let gone = loss_kill_time(
            &backend,
            &leadership,
            LossReason::SessionLost,
            Duration::from_secs(60),
        );
        assert!(gone <= Instant::now());
    }
}
