//! The conformance suite every backend runs (feature `conformance`).
//!
//! A backend's test crate implements [`TestCluster`] for a fresh cluster of its
//! backend and writes one line:
//!
//! ```text
//! tenure_core::conformance_suite!(my_backend_tests::new_cluster());
//! ```
//!
//! where `new_cluster()` builds an `impl TestCluster`. The macro expands
//! to one named `#[tokio::test]` per case, so a failure names its case and no
//! backend can leave a case out: the list lives in the macro, not in each
//! backend. Each case builds the clients it needs from the cluster and checks one
//! property of the [`Backend`] contract or of the generic code
//! on top of it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backend, DynBackend};
use crate::error::{Error, Result};

pub mod cases;
pub mod ha;
mod slow;

pub use slow::Slow;

/// A fresh cluster of one backend, built per case, that makes clients and
/// injects the faults the cases need.
#[async_trait]
pub trait TestCluster: Send + Sync + 'static {
    /// A new client ("process") with its own session.
    async fn client(&self) -> Result<DynBackend>;

    /// Expires the session of `client` on the server, as a TTL running out would:
    /// its candidates are removed and other clients may be granted. The client
    /// then sees its session lost and opens a new one.
    async fn expire_session(&self, client: &DynBackend) -> Result<()>;

    /// Restarts the backend — every server process, or for a server-less
    /// backend every client "process" — keeping its durable state. Only the
    /// restart cases call it, on clusters of their own (see
    /// [`conformance_suite!`](crate::conformance_suite)).
    async fn restart(&self) -> Result<()> {
        Err(Error::Unsupported {
            backend: "test cluster",
            what: "restart",
        })
    }

    /// Cuts `client` off — its traffic, or the servers themselves frozen
    /// (SIGSTOP) — without ending anything: its session lives on at the
    /// server until its TTL runs out unseen. Only the pause cases call it, on
    /// clusters of their own.
    async fn pause(&self, client: &DynBackend) -> Result<()> {
        let _ = client;
        Err(Error::Unsupported {
            backend: "test cluster",
            what: "pause",
        })
    }

    /// Ends what [`pause`](Self::pause) did.
    async fn resume(&self) -> Result<()> {
        Err(Error::Unsupported {
            backend: "test cluster",
            what: "resume",
        })
    }
}

/// The clients a [`TestCluster`] has made, each kept beside the handle the
/// cluster needs to inject faults into it (its concrete backend, say, or the
/// proxies its traffic goes through).
pub struct Clients<T> {
    list: Mutex<Vec<(DynBackend, T)>>,
}

impl<T> Default for Clients<T> {
    fn default() -> Self {
        Self {
            list: Mutex::new(Vec::new()),
        }
    }
}

impl<T> fmt::Debug for Clients<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clients = self.list.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("Clients")
            .field("clients", &clients)
            .finish()
    }
}

impl<T: Clone> Clients<T> {
    /// Records `client` (as the suite sees it) with its `handle`; returns the
    /// client.
    pub fn add(&self, client: DynBackend, handle: T) -> DynBackend {
        self.lock().push((client.clone(), handle));
        client
    }

    /// The handle of `client`.
    ///
    /// # Panics
    /// If `client` was not made by this cluster: a bug in the case.
    pub fn handle(&self, client: &DynBackend) -> T {
        self.lock()
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, client))
            .map(|(_, handle)| handle.clone())
            .expect("a client of this cluster")
    }

    /// Every handle, oldest first.
    pub fn handles(&self) -> Vec<T> {
        self.lock()
            .iter()
            .map(|(_, handle)| handle.clone())
            .collect()
    }

    /// Forgets every client; returns their handles, oldest first.
    pub fn take(&self) -> Vec<T> {
        self.lock().drain(..).map(|(_, handle)| handle).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(DynBackend, T)>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<B: Backend + Clone> Clients<B> {
    /// Records a client that is its own handle.
    pub fn add_backend(&self, backend: B) -> DynBackend {
        self.add(Arc::new(backend.clone()), backend)
    }
}

/// Runs blocking test-kit `work` (restarting servers, say) off the runtime;
/// its error becomes a backend error that says what was being `done`.
pub async fn blocking<E>(
    done: &'static str,
    work: impl FnOnce() -> std::result::Result<(), E> + Send + 'static,
) -> Result<()>
where
    E: fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .expect("the blocking task")
        .map_err(|e| Error::Backend {
            message: format!("{done}: {e}"),
            source: None,
        })
}

/// How long a whole case may take before it fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a case waits for something that must happen before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the case with `what` if it takes longer than
/// [`PATIENCE`] (a hung case is a failed case, not a stuck CI run).
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns true, for conditions that have no event to
/// await (a backend cleaning up in the background); fails after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Generates one `#[tokio::test]` per conformance case for the backend whose
/// fresh clusters the expression `$new_cluster` builds (an `impl TestCluster`,
/// evaluated anew in each case). The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
///
/// A durable backend adds `restart: $new_restartable`: an expression for clusters of their own
/// (servers no other case shares), which the restart cases restart for real
/// and on which terms must keep growing. A backend whose state does not
/// survive a restart (memory) has no restart cases. A backend whose sessions
/// rest on a TTL adds `pause: $new_pausable` (after `restart:` if it has
/// both): clusters of their own that [`TestCluster::pause`] cuts off, for the
/// renew-deadline step-down. Local sessions have no TTL, so no pause cases.
///
/// `restart: $new_restartable` alone generates only the restart cases: for a
/// variant of the restart (after a snapshot, after a compaction), in a module
/// of its own so the case names do not clash.
#[macro_export]
macro_rules! conformance_suite {
    (restart: $new_restartable:expr) => {
        $crate::conformance_suite!(@cases $new_restartable;
            terms_increase_across_restart
        );
    };
    ($new_cluster:expr, restart: $new_restartable:expr, pause: $new_pausable:expr) => {
        $crate::conformance_suite!($new_cluster, restart: $new_restartable);
        $crate::conformance_suite!(@cases $new_pausable;
            leader_steps_down_by_its_renew_deadline
        );
    };
    ($new_cluster:expr, pause: $new_pausable:expr) => {
        $crate::conformance_suite!($new_cluster);
        $crate::conformance_suite!(@cases $new_pausable;
            leader_steps_down_by_its_renew_deadline
        );
    };
    ($new_cluster:expr, restart: $new_restartable:expr) => {
        $crate::conformance_suite!($new_cluster);
        $crate::conformance_suite!(@cases $new_restartable;
            terms_increase_across_restart
        );
    };
    ($new_cluster:expr) => {
        $crate::conformance_suite!(@cases $new_cluster;
            one_leader_among_candidates,
            waiting_candidates_granted_in_arrival_order,
            resign_hands_over_with_increasing_terms,
            stale_leader_fenced_write_rejected,
            stale_leader_fenced_after_handover,
            fence_from_another_client,
            stale_ha_writes_rejected_at_the_backend,
            deleted_candidate_ends_leadership,
            closing_the_backend_ends_everything,
            session_expiry_revokes_every_leadership,
            no_phantom_leader,
            cancelled_campaign_leaves_no_candidate,
            campaign_is_idempotent,
            retrieval_follows_leaders_in_term_order,
            follow_election_reports_candidates_value,
            leader_information_self_heals,
            shared_mode_grants_all_components_together,
            close_is_quiet,
            compare_and_set_race,
            conditional_writes,
            watches_deliver_in_order,
            ephemeral_values_end_with_their_session,
            invalid_names_rejected,
            many_elections_on_one_session
        );
    };
    (@cases $new_cluster:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let cluster = $new_cluster;
                // A hung case fails, naming itself, instead of hanging the run.
                let outcome = ::tokio::time::timeout(
                    $crate::conformance::CASE_TIMEOUT,
                    $crate::conformance::cases::$case(&cluster),
                )
                .await;
                assert!(
                    outcome.is_ok(),
                    "case {} did not finish within {:?}",
                    stringify!($case),
                    $crate::conformance::CASE_TIMEOUT
                );
            }
        )*
    };
}
