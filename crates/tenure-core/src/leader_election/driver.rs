//! The driver behind a leader election: one election per process (shared
//! mode) or per component, granting and revoking the attached components and
//! keeping their published leader information healed while they lead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backend::{DynBackend, KvEvent};
use crate::election::Election;
use crate::error::Error;
use crate::leadership::Leadership;
use crate::name::{Id, Path};

use super::{lock, LeaderContender, ServiceInner};

/// One component attached to a driver.
pub(super) struct Component {
    pub(super) id: Id,
    pub(super) info_key: Path,
    pub(super) contender: Arc<dyn LeaderContender>,
    /// Held while a callback runs (and by close), which is what makes close
    /// quiet. Never held together with anything but `dispatch`.
    pub(super) callback: Mutex<()>,
    /// Serializes publishing leader information with closing.
    pub(super) publish: tokio::sync::Mutex<()>,
    pub(super) dispatch: Mutex<Dispatch>,
}

#[derive(Default)]
pub(super) struct Dispatch {
    pub(super) closed: bool,
    pub(super) granted: Option<Uuid>,
    pub(super) heal: Option<JoinHandle<()>>,
}

impl Component {
    pub(super) fn new(id: Id, info_key: Path, contender: Arc<dyn LeaderContender>) -> Self {
        Component {
            id,
            info_key,
            contender,
            callback: Mutex::new(()),
            publish: tokio::sync::Mutex::new(()),
            dispatch: Mutex::new(Dispatch::default()),
        }
    }

    pub(super) fn grant(&self, leadership: &Leadership) {
        let _callback = lock(&self.callback);
        {
            let mut dispatch = lock(&self.dispatch);
            // Checked under the callback lock: a grant that raced with a
            // revocation is dropped, so a contender never sees grant after the
            // matching revoke.
            if dispatch.closed || !leadership.is_held() || dispatch.granted.is_some() {
                return;
            }
            dispatch.granted = Some(leadership.session_id());
        }
        tracing::debug!(component = %self.id, session_id = %leadership.session_id(), "granting");
        self.contender.grant_leadership(leadership.session_id());
    }

    pub(super) fn revoke(&self, leadership: &Leadership) {
        let _callback = lock(&self.callback);
        {
            let mut dispatch = lock(&self.dispatch);
            if dispatch.closed || dispatch.granted != Some(leadership.session_id()) {
                return;
            }
            dispatch.granted = None;
            if let Some(heal) = dispatch.heal.take() {
                heal.abort();
            }
        }
        tracing::debug!(component = %self.id, "revoking");
        self.contender.revoke_leadership();
    }

    pub(super) fn error(&self, error: &Error) {
        let _callback = lock(&self.callback);
        if !lock(&self.dispatch).closed {
            self.contender.handle_error(error);
        }
    }

    /// Stops callbacks (waiting for one that runs) and returns what was granted.
    pub(super) fn shut(&self) -> (Option<Uuid>, Option<JoinHandle<()>>) {
        let _callback = lock(&self.callback);
        let mut dispatch = lock(&self.dispatch);
        dispatch.closed = true;
        (dispatch.granted.take(), dispatch.heal.take())
    }
}

/// Campaigns for one election on behalf of its components, for as long as any
/// component is attached, and grants or revokes them all together.
pub(super) struct Driver {
    pub(super) election: Election,
    pub(super) state: Mutex<DriverState>,
    pub(super) stop: CancellationToken,
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
pub(super) struct DriverState {
    pub(super) leadership: Option<Leadership>,
    pub(super) components: Vec<Arc<Component>>,
}

impl Driver {
    pub(super) fn start(service: &ServiceInner, name: Path) -> Arc<Driver> {
        let driver = Arc::new(Driver {
            election: Election::new(
                service.backend.clone(),
                name,
                service.candidate_id.clone(),
                service.policy,
            ),
            state: Mutex::new(DriverState::default()),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(driver.clone().run());
        *lock(&driver.task) = Some(task);
        driver
    }

    pub(super) fn leadership(&self) -> Option<Leadership> {
        lock(&self.state).leadership.clone()
    }

    /// Attaches a component; returns the leadership it must be granted, if any.
    pub(super) fn add(&self, component: Arc<Component>) -> Option<Leadership> {
        let mut state = lock(&self.state);
        state.components.push(component);
        state.leadership.clone()
    }

    /// Detaches a component; returns whether it was the last one.
    pub(super) fn remove(&self, component: &Arc<Component>) -> bool {
        let mut state = lock(&self.state);
        state.components.retain(|c| !Arc::ptr_eq(c, component));
        state.components.is_empty()
    }

    pub(super) fn components(&self) -> Vec<Arc<Component>> {
        lock(&self.state).components.clone()
    }

    pub(super) async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let leadership = tokio::select! {
                r = self.election.campaign() => r,
                _ = self.stop.cancelled() => break,
            };
            let leadership = match leadership {
                Ok(l) => l,
                Err(Error::Closed { .. }) => break,
                Err(e) => {
                    tracing::warn!(election = %self.election.name(), error = %e, "campaign failed");
                    for component in self.components() {
                        component.error(&e);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            let components = {
                let mut state = lock(&self.state);
                state.leadership = Some(leadership.clone());
                state.components.clone()
            };
            for component in &components {
                component.grant(&leadership);
            }
            tokio::select! {
                _ = leadership.lost() => {}
                _ = self.stop.cancelled() => break,
            }
            let components = {
                let mut state = lock(&self.state);
                state.leadership = None;
                state.components.clone()
            };
            for component in &components {
                component.revoke(&leadership);
            }
        }
        // Stopped (closed, or every component dropped): let leadership go.
        self.election.close().await;
    }

    pub(super) async fn stop(&self) {
        self.stop.cancel();
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.election.close().await;
    }

    pub(super) async fn close_all(&self) {
        let components = self.components();
        for component in components {
            if let (_, Some(heal)) = component.shut() {
                heal.abort();
            }
        }
        self.stop().await;
    }
}

/// Publishes `record` at `key` as `leadership`'s, fenced: ephemeral in the
/// leader's session for Flink's layout, lasting otherwise.
pub(super) async fn publish(
    leadership: &Leadership,
    key: &Path,
    record: &[u8],
    ephemeral: bool,
) -> crate::Result<u64> {
    match ephemeral {
        true => leadership.put_ephemeral(key, record).await,
        false => leadership.put(key, record).await,
    }
}

/// Keeps the published leader information in place while `leadership` lasts:
/// whenever it is deleted or changed (or, ephemeral, no longer owned by the
/// leader's session), it is written again (fenced). Ends when leadership ends
/// or a write is fenced.
pub(super) async fn self_heal(
    backend: DynBackend,
    leadership: Leadership,
    key: Path,
    record: Vec<u8>,
    ephemeral: bool,
) {
    let session = leadership.grant().session;
    let right = |v: &crate::backend::Versioned| {
        v.value == record && (!ephemeral || v.owner == Some(session))
    };
    let token = leadership.token();
    let mut backoff = Duration::from_millis(50);
    let pause = |backoff: Duration| {
        let token = token.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => true,
                _ = token.cancelled() => false,
            }
        }
    };
    loop {
        let mut events = match backend.watch(&key).await {
            Ok(events) => events,
            Err(_) => {
                if !pause(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        // Check once after the watch is open: a change between the confirming
        // write and the watch would otherwise go unnoticed.
        let mut wrong = !matches!(backend.get(&key).await, Ok(Some(v)) if right(&v));
        loop {
            while wrong {
                tracing::info!(key = %key, term = leadership.term(), "leader information changed; republishing");
                match publish(&leadership, &key, &record, ephemeral).await {
                    Ok(_) => {
                        wrong = false;
                        backoff = Duration::from_millis(50);
                    }
                    // Unreachable for now: keep trying while we lead.
                    Err(e) if e.is_retryable() => {
                        if !pause(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    // Fenced or lost: someone else leads now.
                    Err(_) => return,
                }
            }
            let event = tokio::select! {
                e = events.next() => e,
                _ = token.cancelled() => return,
            };
            wrong = match event {
                Some(Ok(KvEvent::Put { key: k, value })) if k == key.as_str() => !right(&value),
                Some(Ok(KvEvent::Delete { key: k })) if k == key.as_str() => true,
                Some(Ok(_)) => false,
                Some(Err(_)) | None => break,
            };
        }
    }
}
