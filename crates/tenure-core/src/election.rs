//! Elections per resource: campaign, lead, resign, close (Trillian's election2
//! model, made stronger by terms and fencing).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use futures_util::stream::BoxStream;
use tokio::sync::watch;

use crate::backend::{DynBackend, Grant, SessionState, SessionStatus};
use crate::error::{Error, Result};
use crate::leadership::{Leadership, LossReason};
use crate::name::{Id, Path};

/// What a leadership does when the backend connection is suspended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionPolicy {
    /// Revoke at once on suspension (Curator's standard policy). The safe default.
    #[default]
    RevokeOnSuspended,
    /// Keep leadership while suspended and revoke only when the session is lost —
    /// or at the renew deadline, whichever comes first, so leadership still ends
    /// before the server can expire the session (Flink's
    /// tolerate-suspended-connections, made safe).
    RevokeOnLost,
}

/// Options shared by the elections of a factory.
#[derive(Clone, Debug, Default)]
pub struct ElectionOptions {
    /// What to do on a suspended connection.
    pub policy: ConnectionPolicy,
    /// The value candidates campaign with (participant id, proposal); by default a
    /// new UUID per factory.
    pub candidate_id: Option<String>,
}

/// Makes one [`Election`] per resource, all on one backend (and so one session).
#[derive(Clone)]
pub struct ElectionFactory {
    backend: DynBackend,
    prefix: Option<Path>,
    policy: ConnectionPolicy,
    candidate_id: String,
}

impl fmt::Debug for ElectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectionFactory")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("candidate_id", &self.candidate_id)
            .finish()
    }
}

impl ElectionFactory {
    /// A factory whose elections are named by their resource id alone.
    pub fn new(backend: DynBackend) -> Self {
        Self::with_options(backend, ElectionOptions::default())
    }

    /// A factory with explicit options.
    pub fn with_options(backend: DynBackend, options: ElectionOptions) -> Self {
        ElectionFactory {
            backend,
            prefix: None,
            policy: options.policy,
            candidate_id: options
                .candidate_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        }
    }

    /// Puts every election of this factory under `prefix` (e.g. a cluster id).
    pub fn with_prefix(mut self, prefix: Path) -> Self {
        self.prefix = Some(prefix);
        self
    }

    /// The backend the elections run on.
    pub fn backend(&self) -> &DynBackend {
        &self.backend
    }

    /// The election for `resource_id` (validated: see [`crate::name`]).
    pub fn new_election(&self, resource_id: &str) -> Result<Election> {
        let id = Id::new("resource_id", resource_id)?;
        let name = match &self.prefix {
            Some(prefix) => prefix.join(&id),
            None => Path::from(id),
        };
        Ok(Election::new(
            self.backend.clone(),
            name,
            self.candidate_id.as_bytes().to_vec(),
            self.policy,
        ))
    }
}

/// One election: campaign for it, lead, resign, close.
///
/// Cloning shares the election.
#[derive(Clone)]
pub struct Election {
    inner: Arc<Inner>,
}

struct Inner {
    backend: DynBackend,
    name: Path,
    value: Vec<u8>,
    policy: ConnectionPolicy,
    /// Serializes campaigns, which makes `campaign()` idempotent: a second caller
    /// waits for the first and then finds its leadership.
    campaign_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    closed: CancellationToken,
}

#[derive(Default)]
struct State {
    current: Option<Leadership>,
    monitor: Option<JoinHandle<()>>,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.inner.name)
            .field("policy", &self.inner.policy)
            .field("closed", &self.inner.closed.is_cancelled())
            .finish()
    }
}

impl Election {
    /// An election named `name` (a validated path), campaigning with `value`.
    pub fn new(backend: DynBackend, name: Path, value: Vec<u8>, policy: ConnectionPolicy) -> Self {
        Election {
            inner: Arc::new(Inner {
                backend,
                name,
                value,
                policy,
                campaign_lock: tokio::sync::Mutex::new(()),
                state: Mutex::new(State::default()),
                closed: CancellationToken::new(),
            }),
        }
    }

    /// The election's name.
    pub fn name(&self) -> &Path {
        &self.inner.name
    }

    /// The backend it runs on.
    pub fn backend(&self) -> &DynBackend {
        &self.inner.backend
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The leadership held now, if any.
    pub fn leadership(&self) -> Option<Leadership> {
        self.state().current.clone().filter(Leadership::is_held)
    }

    /// Waits until this process leads the election and returns the leadership.
    ///
    /// Idempotent: while leadership is held, every call returns the same
    /// leadership; concurrent calls share one campaign. Cancellable: dropping the
    /// future withdraws the candidate. A session lost while waiting is replaced and
    /// the campaign goes on under the new session; a grant is only ever returned
    /// for a candidate the backend confirmed under the live session. Transient
    /// backend errors are retried; other errors are returned.
    pub async fn campaign(&self) -> Result<Leadership> {
        let span = tracing::debug_span!("campaign", election = %self.inner.name);
        tracing::Instrument::instrument(self.campaign_inner(), span).await
    }

    async fn campaign_inner(&self) -> Result<Leadership> {
        let _serial = tokio::select! {
            guard = self.inner.campaign_lock.lock() => guard,
            _ = self.inner.closed.cancelled() => return Err(Error::Closed { what: "election" }),
        };
        let mut status = self.inner.backend.session();
        let mut backoff = Duration::from_millis(20);
        loop {
            if self.inner.closed.is_cancelled() {
                return Err(Error::Closed { what: "election" });
            }
            if let Some(leadership) = self.leadership() {
                return Ok(leadership);
            }
            // The last leadership's monitor ends once its candidate is gone
            // (removed, or with its session). Campaigning before that would
            // find the old candidate still queued on a session that lives on
            // (an etcd lease outlives a frozen holder's renew deadline when the
            // cluster changes leader) and grant its term a second time: a
            // lost leadership's fence would hold again.
            let previous = self.state().monitor.take();
            if let Some(previous) = previous {
                tokio::select! {
                    _ = previous => {}
                    _ = self.inner.closed.cancelled() => return Err(Error::Closed { what: "election" }),
                }
            }
            let session = *status.borrow_and_update();
            // A session past its renew deadline may already be gone on the
            // server: a grant on it could end the moment it is made.
            let stale = session
                .renew_deadline
                .is_some_and(|deadline| deadline <= Instant::now());
            match session.state {
                SessionState::Connected if stale => {
                    tokio::select! {
                        r = status.changed() => if r.is_err() {
                            return Err(Error::Closed { what: "backend" });
                        },
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = self.inner.closed.cancelled() => {}
                    }
                    continue;
                }
                SessionState::Connected => {}
                SessionState::Closed => return Err(Error::Closed { what: "backend" }),
                SessionState::Suspended | SessionState::Lost => {
                    // Wait for the backend to reconnect or open a new session.
                    tokio::select! {
                        r = status.changed() => if r.is_err() {
                            return Err(Error::Closed { what: "backend" });
                        },
                        _ = self.inner.closed.cancelled() => {}
                    }
                    continue;
                }
            }
            let outcome = tokio::select! {
                r = self.inner.backend.campaign(&self.inner.name, session.id, &self.inner.value) => r,
                _ = self.inner.closed.cancelled() => return Err(Error::Closed { what: "election" }),
            };
            match outcome {
                Ok(grant) if !session_sound(&status, &grant) => {
                    // The backend's word came too late to trust: the session
                    // passed its renew deadline (or ended) while the answer
                    // was on its way — across a partition, say — so the
                    // candidate may already be gone on the server and another
                    // granted. Give it back and campaign again once the
                    // session is sound; never deliver a phantom grant.
                    tracing::debug!(election = %self.inner.name, term = grant.term, "grant arrived on a stale session; campaigning again");
                    give_back(&self.inner.backend, &grant).await;
                }
                Ok(grant) => {
                    let leadership = Leadership::new(self.inner.backend.clone(), grant);
                    crate::observe::granted(&self.inner.name, leadership.term());
                    let monitor = tokio::spawn(monitor(
                        self.inner.backend.clone(),
                        leadership.clone(),
                        self.inner.policy,
                    ));
                    let mut state = self.state();
                    if self.inner.closed.is_cancelled() {
                        // Closed between the grant and here: give it back at once.
                        monitor.abort();
                        drop(state);
                        leadership.end(LossReason::Closed);
                        give_back(&self.inner.backend, leadership.grant()).await;
                        return Err(Error::Closed { what: "election" });
                    }
                    if let Some(old) = state.monitor.replace(monitor) {
                        old.abort();
                    }
                    state.current = Some(leadership.clone());
                    return Ok(leadership);
                }
                Err(Error::SessionExpired { .. }) => {
                    // The backend is replacing the session: wait for the new one
                    // (or a short while) rather than spin on the old id.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = status.changed() => {}
                        _ = self.inner.closed.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(election = %self.inner.name, error = %e, "campaign retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = status.changed() => {}
                        _ = self.inner.closed.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Resigns the leadership held now, if any.
    pub async fn resign(&self) -> Result<()> {
        let current = self.state().current.take();
        match current {
            Some(leadership) => leadership.resign().await,
            None => Ok(()),
        }
    }

    /// Campaigns again and again: yields each new leadership, waits until it is
    /// lost, and campaigns again — across lost sessions — until the election is
    /// closed (the stream then ends) or a campaign fails for good (the error is
    /// yielded and the stream ends).
    pub fn leaderships(&self) -> BoxStream<'static, Result<Leadership>> {
        let election = self.clone();
        futures_util::stream::unfold(Some((election, None::<Leadership>)), |next| async move {
            let (election, previous) = next?;
            if let Some(previous) = previous {
                tokio::select! {
                    _ = previous.lost() => {}
                    _ = election.inner.closed.cancelled() => return None,
                }
            }
            match election.campaign().await {
                Ok(leadership) => {
                    Some((Ok(leadership.clone()), Some((election, Some(leadership)))))
                }
                Err(Error::Closed { .. }) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }

    /// Closes the election: a pending campaign fails with [`Error::Closed`] (and
    /// its candidate is withdrawn), a held leadership ends with
    /// [`LossReason::Closed`] and is resigned. After `close` returns, no token of
    /// this election fires and nothing is written on its behalf — except that,
    /// if the backend cannot be reached, removing this process's own candidate
    /// goes on in the background until the backend or the session answers, so
    /// the candidate can never block the election.
    pub async fn close(&self) {
        self.inner.closed.cancel();
        // A campaign in flight sees the cancellation and returns; wait for it,
        // so its candidate is withdrawn before we return.
        let _serial = self.inner.campaign_lock.lock().await;
        let (current, monitor) = {
            let mut state = self.state();
            (state.current.take(), state.monitor.take())
        };
        if let Some(monitor) = monitor {
            monitor.abort();
            let _ = monitor.await;
        }
        if let Some(leadership) = current {
            if leadership.end(LossReason::Closed) {
                give_back(&self.inner.backend, leadership.grant()).await;
            }
        }
    }
}

/// Whether `grant` may be delivered: its session is the current one, not lost,
/// and not past its renew deadline.
fn session_sound(status: &watch::Receiver<SessionStatus>, grant: &Grant) -> bool {
    let s = *status.borrow();
    s.id == grant.session
        && !matches!(s.state, SessionState::Lost | SessionState::Closed)
        && s.renew_deadline
            .is_none_or(|deadline| deadline > Instant::now())
}

/// Resigns `grant` now, or — if the backend cannot be reached — keeps trying in
/// the background.
pub(crate) async fn give_back(backend: &DynBackend, grant: &Grant) {
    if let Err(e) = backend.resign(grant).await {
        if e.is_retryable() {
            tokio::spawn(crate::leadership::release(backend.clone(), grant.clone()));
        }
    }
}

/// Watches one leadership and ends it, with the reason, when the session is lost
/// or suspended (per policy), when the renew deadline passes, or when the
/// candidate is no longer the leader. Then removes the candidate if it may still
/// be there, so the queue moves on.
async fn monitor(backend: DynBackend, leadership: Leadership, policy: ConnectionPolicy) {
    // A process may hold thousands of leaderships, each with one of these
    // tasks: keep its state small (one timer, the grant read through the
    // leadership, the rare removal check boxed).
    let token = leadership.token();
    let mut status = backend.session();
    let mut leader: Option<LeaderStream> = None;
    // Opening the leader watch is itself raced against the deadline and the
    // session: a backend without quorum may take long to answer.
    let mut opening: Option<Opening> = None;
    let mut backoff = Duration::from_millis(50);
    let mut reopen_at = Some(Instant::now());
    let reason = loop {
        let grant = leadership.grant();
        let s: SessionStatus = *status.borrow_and_update();
        if s.state == SessionState::Closed {
            break LossReason::Closed;
        }
        if s.id != grant.session || s.state == SessionState::Lost {
            break LossReason::SessionLost;
        }
        if s.state == SessionState::Suspended && policy == ConnectionPolicy::RevokeOnSuspended {
            break LossReason::SessionSuspended;
        }
        let now = Instant::now();
        if s.renew_deadline.is_some_and(|deadline| deadline <= now) {
            break LossReason::RenewDeadlinePassed;
        }
        if leader.is_none() && opening.is_none() && reopen_at.is_some_and(|at| at <= now) {
            let (backend, election) = (backend.clone(), grant.election.clone());
            opening = Some(Box::pin(
                async move { backend.watch_leader(&election).await },
            ));
            reopen_at = None;
        }
        // One timer for both: the renew deadline, and reopening the watch.
        let reopen = reopen_at.filter(|_| leader.is_none() && opening.is_none());
        let wake = match (s.renew_deadline, reopen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            _ = token.cancelled() => return,
            r = status.changed() => if r.is_err() { break LossReason::Closed },
            _ = sleep_until_opt(wake) => {}
            opened = open_leader(&mut opening) => {
                opening = None;
                match opened {
                    Ok(stream) => {
                        leader = Some(stream);
                        backoff = Duration::from_millis(50);
                    }
                    Err(e) => {
                        tracing::debug!(election = %grant.election, error = %e, "leader watch failed; retrying");
                        reopen_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
            event = next_leader(&mut leader) => match event {
                Some(Ok(Some(record))) if record.term == grant.term => {}
                Some(Ok(_)) => break Box::pin(removal_reason(&backend, &status, grant)).await,
                Some(Err(_)) | None => {
                    leader = None;
                    reopen_at = Some(Instant::now() + backoff);
                }
            },
        }
    };
    if leadership.end(reason) && !matches!(reason, LossReason::SessionLost | LossReason::Closed) {
        // The candidate may still be in the queue (suspended, deadline passed).
        // Removed by a task of its own, which outlives a closed election; this
        // monitor ends with it, and the next campaign waits for that.
        let release = tokio::spawn(crate::leadership::release(
            backend,
            leadership.grant().clone(),
        ));
        let _ = release.await;
    }
}

type Opening = std::pin::Pin<Box<dyn std::future::Future<Output = Result<LeaderStream>> + Send>>;

async fn open_leader(opening: &mut Option<Opening>) -> Result<LeaderStream> {
    match opening {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Why our candidate disappeared: with the session (expired on the server, even
/// if this process has not heard yet), or deleted on its own. A backend that
/// cannot answer quickly gets the plainer reason; leadership ends either way.
async fn removal_reason(
    backend: &DynBackend,
    status: &watch::Receiver<SessionStatus>,
    grant: &Grant,
) -> LossReason {
    let s = *status.borrow();
    if s.state == SessionState::Closed {
        return LossReason::Closed;
    }
    if s.id != grant.session || s.state == SessionState::Lost {
        return LossReason::SessionLost;
    }
    // Telling the two apart may not hold up the step-down past the renew
    // deadline.
    let patience = s.renew_deadline.map_or(Duration::from_millis(500), |d| {
        d.saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500))
    });
    let check = tokio::time::timeout(patience, backend.session_alive(grant.session));
    match check.await {
        Ok(Ok(false)) => LossReason::SessionLost,
        _ => LossReason::CandidateRemoved,
    }
}

type LeaderStream =
    futures_util::stream::BoxStream<'static, Result<Option<crate::backend::LeaderRecord>>>;

async fn next_leader(
    stream: &mut Option<LeaderStream>,
) -> Option<Result<Option<crate::backend::LeaderRecord>>> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
