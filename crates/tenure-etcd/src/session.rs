//! The process-wide session: one etcd lease, kept alive about every TTL/3 and
//! shared by every election of the process.

use std::time::Duration;

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper};
use tenure_core::{SessionId, SessionState, SessionStatus};
use tokio::sync::watch;
use tokio::time::Instant;

/// Runs the lease: grants it, keeps it alive, publishes the status with the renew
/// deadline, and replaces it when the server says it expired. Ends when `stop`
/// fires or its sender is dropped (the backend is gone) — never merely because
/// nobody watches the status at the moment.
pub(crate) async fn run(
    client: Client,
    ttl: Duration,
    status: watch::Sender<SessionStatus>,
    mut stop: watch::Receiver<bool>,
    nudge: std::sync::Arc<tokio::sync::Notify>,
    members: std::sync::Arc<crate::endpoints::Endpoints>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let sent = Instant::now();
        let granted = client
            .lease_client()
            .grant(ttl.as_secs() as i64, None)
            .await;
        let (lease, granted_ttl) = match granted {
            Ok(r) if r.ttl() > 0 => (r.id(), Duration::from_secs(r.ttl() as u64)),
            other => {
                tracing::debug!(error = ?other.err(), "lease grant failed; retrying");
                status.send_modify(|s| {
                    if s.state == SessionState::Connected {
                        s.state = SessionState::Suspended;
                    }
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        status.send_replace(SessionStatus {
            id: SessionId(lease as u64),
            state: SessionState::Connected,
            renew_deadline: Some(deadline(sent, granted_ttl)),
        });
        tracing::info!(lease = format!("{lease:x}"), ttl = ?granted_ttl, "etcd session opened");
        if !keep_alive(
            &client,
            lease,
            granted_ttl,
            &status,
            &mut stop,
            &nudge,
            &members,
        )
        .await
        {
            return;
        }
        // The lease is gone: publish the loss, then open a new session.
        status.send_modify(|s| {
            if s.id == SessionId(lease as u64) {
                s.state = SessionState::Lost;
            }
        });
        tracing::warn!(lease = format!("{lease:x}"), "etcd session lost");
    }
}

/// The instant before which the server cannot have expired a lease renewed by a
/// request sent at `sent`: the server counts the TTL from when it received it.
/// The margin absorbs clock-rate differences and scheduling delays.
fn deadline(sent: Instant, ttl: Duration) -> Instant {
    let margin = (ttl / 6).max(Duration::from_millis(300));
    sent + ttl - margin
}

/// Keeps `lease` alive. Returns false when stopped, true when the lease expired.
async fn keep_alive(
    client: &Client,
    lease: i64,
    ttl: Duration,
    status: &watch::Sender<SessionStatus>,
    stop: &mut watch::Receiver<bool>,
    nudge: &tokio::sync::Notify,
    members: &crate::endpoints::Endpoints,
) -> bool {
    let interval = ttl / 3;
    let mut stream = None;
    // After a failed round trip, try again soon: the renew deadline is near.
    let mut wait = interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = nudge.notified() => {}
            _ = stop.changed() => return false,
        }
        let sent = Instant::now();
        match tokio::time::timeout(interval, renew(client, lease, &mut stream)).await {
            Ok(Ok(remaining)) if remaining > 0 => {
                wait = interval;
                status.send_modify(|s| {
                    s.state = SessionState::Connected;
                    s.renew_deadline = Some(deadline(sent, Duration::from_secs(remaining as u64)));
                });
            }
            // TTL 0: the server no longer knows the lease.
            Ok(Ok(_)) => return true,
            _ => {
                stream = None;
                wait = (interval / 4).max(Duration::from_millis(100));
                // A member may have died: take it out of the balance before the
                // next attempt, so the retry goes to one that answers.
                members.refresh().await;
                // Ask the server whether the lease survived before calling the
                // connection suspended: an expired lease is a loss, not a blip.
                match tokio::time::timeout(
                    interval,
                    client.lease_client().time_to_live(lease, None),
                )
                .await
                {
                    Ok(Ok(r)) if r.ttl() <= 0 => return true,
                    Ok(Ok(_)) => {}
                    _ => suspend(status),
                }
            }
        }
    }
}

/// One keep-alive round trip on `stream` (opened if needed); the remaining TTL.
async fn renew(
    client: &Client,
    lease: i64,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Result<i64, etcd_client::Error> {
    if stream.is_none() {
        *stream = Some(client.lease_client().keep_alive(lease).await?);
    }
    let Some((keeper, responses)) = stream.as_mut() else {
        unreachable!("opened above")
    };
    keeper.keep_alive().await?;
    match responses.message().await? {
        Some(r) => Ok(r.ttl()),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "the keep-alive stream ended".into(),
        )),
    }
}

fn suspend(status: &watch::Sender<SessionStatus>) {
    status.send_if_modified(|s| {
        let changed = s.state == SessionState::Connected;
        if changed {
            s.state = SessionState::Suspended;
        }
        changed
    });
}
