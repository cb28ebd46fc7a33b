//! The leader election service (Flink's contract): contenders are granted
//! leadership with a session id, confirm it with their address, and the service
//! publishes that address — fenced — only while they lead, rewriting it if it is
//! deleted or changed.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use crate::backend::DynBackend;
use crate::election::ConnectionPolicy;
use crate::error::{Error, Result};
use crate::leader_info::{flink, validate_address, ClusterLayout, LeaderInfo, PublishedInfo};
use crate::leadership::Leadership;
use crate::name::{Id, Path};

mod driver;
mod standalone;

use driver::{publish, self_heal, Component, Driver};
pub use standalone::{StandaloneLeaderElection, StandaloneLeaderRetrieval};

/// The leader session id of non-HA setups: `00000000-0000-0000-0000-000000000000`.
pub const DEFAULT_LEADER_SESSION_ID: Uuid = Uuid::nil();

/// A component that wants to lead: told when it is granted or loses leadership.
///
/// Calls for one component never overlap and arrive in order; after
/// [`LeaderElection::close`] returns, none arrive. Keep them quick: start work
/// (e.g. spawn the [`LeaderElection::confirm_leadership`] call) rather than do it.
pub trait LeaderContender: Send + Sync + 'static {
    /// Leadership was granted under `session_id`; confirm it to publish an address.
    fn grant_leadership(&self, session_id: Uuid);
    /// Leadership granted earlier ended; stop acting as leader.
    fn revoke_leadership(&self);
    /// The service hit an error it could not handle by retrying.
    fn handle_error(&self, error: &Error);
}

/// Whether the components of a process share one election.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ElectionMode {
    /// One election per process shared by every component (Flink's default on
    /// ZooKeeper): all components lead together, under one session id and term.
    #[default]
    Shared,
    /// One election per component.
    PerComponent,
}

/// Leader election for the components of one cluster.
#[derive(Clone)]
pub struct LeaderElectionService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    backend: DynBackend,
    /// The backend follows Flink's layout: Flink's records, ephemeral.
    flink: bool,
    layout: ClusterLayout,
    mode: ElectionMode,
    policy: ConnectionPolicy,
    candidate_id: Vec<u8>,
    drivers: Mutex<HashMap<Path, Arc<Driver>>>,
}

impl fmt::Debug for LeaderElectionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElectionService")
            .field("layout", &self.inner.layout)
            .field("mode", &self.inner.mode)
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl LeaderElectionService {
    /// The service for `cluster_id`, in [`ElectionMode::Shared`] mode.
    pub fn new(backend: DynBackend, cluster_id: &str) -> Result<Self> {
        Self::with_mode(
            backend,
            cluster_id,
            ElectionMode::default(),
            ConnectionPolicy::default(),
        )
    }

    /// The service with an explicit election mode and connection policy.
    pub fn with_mode(
        backend: DynBackend,
        cluster_id: &str,
        mode: ElectionMode,
        policy: ConnectionPolicy,
    ) -> Result<Self> {
        // In Flink's layout, leader records are Flink's. (Flink 2.x itself
        // campaigns only in the shared latch; per-component latches are
        // tenure's own, which Flink does not read.)
        let flink = backend.capabilities().layout == crate::Layout::Flink;
        Ok(LeaderElectionService {
            inner: Arc::new(ServiceInner {
                backend,
                flink,
                layout: ClusterLayout::new(cluster_id)?,
                mode,
                policy,
                // Flink's JobManagers campaign with empty latch data.
                candidate_id: match flink {
                    true => Vec::new(),
                    false => Uuid::new_v4().to_string().into_bytes(),
                },
                drivers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The leader election of one component (validated id, e.g. `dispatcher`).
    pub fn create_leader_election(&self, component_id: &str) -> Result<LeaderElection> {
        let component = ClusterLayout::component(component_id)?;
        let election = match self.inner.mode {
            ElectionMode::Shared => self.inner.layout.shared_election(),
            ElectionMode::PerComponent => self.inner.layout.component_election(&component),
        };
        Ok(LeaderElection {
            service: self.inner.clone(),
            info_key: self.inner.layout.connection_info(&component),
            component,
            election,
            slot: Mutex::new(None),
        })
    }

    /// Closes every leader election of this service.
    pub async fn close(&self) {
        let drivers: Vec<_> = lock(&self.inner.drivers).drain().map(|(_, d)| d).collect();
        for driver in drivers {
            driver.close_all().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No lock here is held across an await or a panic-prone call except contender
    // callbacks; keep going if one of those panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The leader election of one component.
pub struct LeaderElection {
    service: Arc<ServiceInner>,
    component: Id,
    election: Path,
    info_key: Path,
    slot: Mutex<Option<(Arc<Driver>, Arc<Component>)>>,
}

impl fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElection")
            .field("component", &self.component)
            .field("election", &self.election)
            .finish()
    }
}

impl LeaderElection {
    /// The component id.
    pub fn component_id(&self) -> &Id {
        &self.component
    }

    /// Starts campaigning for `contender`. Fails if already started or closed.
    pub fn start(&self, contender: Arc<dyn LeaderContender>) -> Result<()> {
        let mut slot = lock(&self.slot);
        if slot.is_some() {
            return Err(Error::invalid(
                "contender",
                self.component.as_str(),
                "a leader election can be started once",
            ));
        }
        let component = Arc::new(Component::new(
            self.component.clone(),
            self.info_key.clone(),
            contender,
        ));
        let (driver, current) = {
            let mut drivers = lock(&self.service.drivers);
            let driver = drivers
                .entry(self.election.clone())
                .or_insert_with(|| Driver::start(&self.service, self.election.clone()))
                .clone();
            let current = driver.add(component.clone());
            (driver, current)
        };
        *slot = Some((driver, component.clone()));
        drop(slot);
        // Outside every lock: the contender may call back into the service.
        if let Some(leadership) = current {
            component.grant(&leadership);
        }
        Ok(())
    }

    fn parts(&self) -> Option<(Arc<Driver>, Arc<Component>)> {
        lock(&self.slot).clone()
    }

    /// The leadership behind `session_id`, if this component holds it now.
    fn leadership_for(&self, session_id: Uuid) -> Option<(Leadership, Arc<Component>)> {
        let (driver, component) = self.parts()?;
        let leadership = driver.leadership()?;
        let granted = lock(&component.dispatch).granted == Some(session_id);
        (granted && leadership.session_id() == session_id && leadership.is_held())
            .then_some((leadership, component))
    }

    /// Whether `session_id` is this component's current leader session.
    pub fn has_leadership(&self, session_id: Uuid) -> bool {
        self.leadership_for(session_id).is_some()
    }

    /// Confirms leadership of `session_id` and publishes `address` for retrievers,
    /// with a write fenced by the leadership: it fails with
    /// [`Error::NotLeader`] or [`Error::Fenced`] and publishes nothing if that
    /// session no longer leads. While it leads, the published information is
    /// watched and rewritten if someone deletes or changes it.
    pub async fn confirm_leadership(&self, session_id: Uuid, address: &str) -> Result<()> {
        validate_address(address)?;
        let (_, component) = self.parts().ok_or(Error::NotLeader { session_id })?;
        // Held across the check, the write and the registration of the healer, and
        // taken by close before it removes the information: a confirmation racing
        // close either lands before close's removal or publishes nothing.
        let _publish = component.publish.lock().await;
        let (leadership, component) = self
            .leadership_for(session_id)
            .ok_or(Error::NotLeader { session_id })?;
        let flink = self.service.flink;
        let record = match flink {
            // Flink's own record, an ephemeral node of the leader's session
            // (as Flink's JobManagers write it): Flink reads it, and it goes
            // with the session.
            true => flink::encode(address, session_id)?,
            false => PublishedInfo {
                info: LeaderInfo {
                    address: address.to_owned(),
                    session_id,
                    term: leadership.term(),
                },
                election: leadership.election().to_string(),
            }
            .encode(),
        };
        publish(&leadership, &component.info_key, &record, flink).await?;
        tracing::info!(component = %component.id, term = leadership.term(), address, "leadership confirmed");
        let mut dispatch = lock(&component.dispatch);
        if dispatch.closed || dispatch.granted != Some(session_id) {
            // Revoked while writing: the fence made the write safe; publish no more.
            return Err(Error::NotLeader { session_id });
        }
        let heal = tokio::spawn(self_heal(
            self.service.backend.clone(),
            leadership,
            component.info_key.clone(),
            record,
            flink,
        ));
        if let Some(old) = dispatch.heal.replace(heal) {
            old.abort();
        }
        Ok(())
    }

    /// Runs `action` with the leadership of `session_id` if it is this
    /// component's current leader session; otherwise fails with
    /// [`Error::NotLeader`]. Writes inside should be fenced with the leadership
    /// passed in, since leadership can end while `action` runs.
    pub async fn run_if_leader<F, Fut, T>(&self, session_id: Uuid, action: F) -> Result<T>
    where
        F: FnOnce(Leadership) -> Fut,
        Fut: Future<Output = T>,
    {
        let (leadership, _) = self
            .leadership_for(session_id)
            .ok_or(Error::NotLeader { session_id })?;
        Ok(action(leadership).await)
    }

    /// Stops the contender: no callback reaches it once this returns. If it
    /// leads, its published information is removed (fenced) and, when it was the
    /// last component on its election, leadership is resigned.
    pub async fn close(&self) {
        let Some((driver, component)) = lock(&self.slot).take() else {
            return;
        };
        let (granted, heal) = component.shut();
        if let Some(heal) = heal {
            heal.abort();
            let _ = heal.await;
        }
        // Wait for a confirmation in flight (see `confirm_leadership`).
        let _publish = component.publish.lock().await;
        if let (Some(session_id), Some(leadership)) = (granted, driver.leadership()) {
            if leadership.session_id() == session_id && leadership.is_held() {
                let _ = leadership.delete(&component.info_key).await;
            }
        }
        let last = self.detach(&driver, &component);
        if last {
            driver.stop().await;
        }
    }
}

impl LeaderElection {
    /// Detaches `component` from `driver`, and unregisters the driver if that was
    /// its last component — both under the service lock, so a concurrent `start`
    /// cannot attach to a driver about to stop. Returns whether it was the last.
    fn detach(&self, driver: &Arc<Driver>, component: &Arc<Component>) -> bool {
        let mut drivers = lock(&self.service.drivers);
        let last = driver.remove(component);
        if last
            && drivers
                .get(&self.election)
                .is_some_and(|d| Arc::ptr_eq(d, driver))
        {
            drivers.remove(&self.election);
        }
        last
    }
}

impl Drop for LeaderElection {
    /// A leader election dropped without `close()` stops its callbacks and, when
    /// it was the last component on its election, lets leadership go (in the
    /// background).
    fn drop(&mut self) {
        let Some((driver, component)) = lock(&self.slot).take() else {
            return;
        };
        if let (_, Some(heal)) = component.shut() {
            heal.abort();
        }
        let last = self.detach(&driver, &component);
        if last {
            driver.stop.cancel();
        }
    }
}
