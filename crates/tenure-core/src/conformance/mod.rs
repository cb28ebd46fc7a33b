//! The conformance suite every backend runs (feature `conformance`).
//!
//! A backend's test crate implements [`TestCluster`] for a fresh cluster of its
//! backend and writes one line:
//!
//! ```text
//! tenure_core::conformance_suite!(my_backend_tests::new_cluster);
//! ```
//!
//! where `new_cluster` is an `async fn() -> impl TestCluster`. The macro expands
//! to one named `#[tokio::test]` per case, so a failure names its case and no
//! backend can leave a case out: the list lives in the macro, not in each
//! backend. Each case builds the clients it needs from the cluster and checks one
//! property of the [`Backend`](crate::Backend) contract or of the generic code
//! on top of it.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::DynBackend;
use crate::error::{Error, Result};

pub mod cases;
pub mod ha;

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
/// fresh clusters `$new_cluster().await` builds (an `async fn() -> impl
/// TestCluster`). The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
///
/// A durable backend adds `restart: $new_restartable`: clusters of their own
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
    ($new_cluster:path, restart: $new_restartable:path, pause: $new_pausable:path) => {
        $crate::conformance_suite!($new_cluster, restart: $new_restartable);
        $crate::conformance_suite!(@cases $new_pausable;
            leader_steps_down_by_its_renew_deadline
        );
    };
    ($new_cluster:path, pause: $new_pausable:path) => {
        $crate::conformance_suite!($new_cluster);
        $crate::conformance_suite!(@cases $new_pausable;
            leader_steps_down_by_its_renew_deadline
        );
    };
    ($new_cluster:path, restart: $new_restartable:path) => {
        $crate::conformance_suite!($new_cluster);
        $crate::conformance_suite!(@cases $new_restartable;
            terms_increase_across_restart
        );
    };
    (restart: $new_restartable:path) => {
        $crate::conformance_suite!(@cases $new_restartable;
            terms_increase_across_restart
        );
    };
    ($new_cluster:path) => {
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
            invalid_names_rejected,
            many_elections_on_one_session
        );
    };
    (@cases $new_cluster:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let cluster = $new_cluster().await;
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
