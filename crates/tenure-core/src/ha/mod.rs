//! HA services (Flink's `HighAvailabilityServices`), generic over the backend,
//! with every write fenced.
//!
//! [`HaServices`] gives one cluster leader election and retrieval for its
//! resource manager, dispatcher, REST server and a job master per job — one
//! election per process shared by every component by default
//! ([`ElectionMode::Shared`](crate::ElectionMode::Shared)), one per component
//! on request — and the stores a new leader recovers from:
//!
//! | store | what | key |
//! |---|---|---|
//! | [`ExecutionPlanStore`] | job graphs; a listener for other processes' changes | `<cluster>/jobgraphs/<job>` |
//! | [`CompletedCheckpointStore`] | the latest N checkpoints of a job | `<cluster>/jobs/<job>/checkpoints/<id, 20 digits>` |
//! | [`CheckpointIdCounter`] | ids never handed out twice | `<cluster>/jobs/<job>/checkpoint_id_counter` |
//! | [`RunningJobsRegistry`] | PENDING / RUNNING / DONE per job | `<cluster>/jobs/<job>/running_job_registry` |
//! | [`JobResultStore`] | results, dirty until cleaned up, then clean | `<cluster>/job_results/<job>` |
//! | [`BlobStore`] | state above a size threshold, in files | `<blob-dir>/<cluster>/jobs/<job>/…` |
//!
//! Leaders publish at `<cluster>/leader/<component>/connection_info` and
//! campaign at `<cluster>/leader/latch` (shared) or
//! `<cluster>/leader/<component>/latch`; a job master's component id is its job
//! id.
//!
//! # Fencing
//!
//! Reads need no leadership. Every write takes the [`Leadership`](crate::Leadership)
//! that fences it — the one behind the session id a contender was granted, via
//! [`fence_of`] — and lands only if that leadership is still current, checked
//! atomically with the write at the backend. A stale leader (paused, or cut
//! off until its session expired) gets [`Error::Fenced`](crate::Error::Fenced),
//! or [`Error::LeadershipLost`](crate::Error::LeadershipLost) when it already
//! knows, and nothing changes. Conditional writes (on the version read) make
//! read-modify-write steps atomic: [`CheckpointIdCounter::get_and_increment`]
//! never hands out an id twice, across leader changes and restarts.
//!
//! # Records and blobs
//!
//! Every value is a small versioned JSON record. One that does not decode is
//! [`Error::Corrupted`](crate::Error::Corrupted) naming its key, and no store
//! overwrites it. State above the blob threshold goes to the [`BlobStore`]
//! (temporary file, fsync, atomic rename, directory fsync) and the backend
//! keeps a pointer with its size and CRC-32; a blob that does not match is
//! never served. A blob is deleted only after its pointer is gone, or by
//! [`HaServices::collect_orphans`] once no pointer references it and it is
//! older than a grace period.
//!
//! # Cleanup
//!
//! [`HaServices::cleanup_job_data`] removes everything of one job but its
//! result; [`HaServices::close`] keeps all data;
//! [`HaServices::close_and_cleanup_all_data`] deletes this cluster's pointers,
//! then its blobs. Each attempts every step, reports all failures together in a
//! [`CleanupError`], and is idempotent, so running it again after a crash
//! finishes the work.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use tenure_core::ha::{fence_of, CompletedCheckpoint, ExecutionPlan, HaServices, JobId};
//! use tenure_core::{Error, LeaderContender, MemoryCluster};
//! use tokio::sync::mpsc;
//!
//! /// A dispatcher that only wants to hear its leader session id.
//! struct Dispatcher(mpsc::UnboundedSender<uuid::Uuid>);
//!
//! impl LeaderContender for Dispatcher {
//!     fn grant_leadership(&self, session_id: uuid::Uuid) {
//!         let _ = self.0.send(session_id);
//!     }
//!     fn revoke_leadership(&self) {}
//!     fn handle_error(&self, _: &Error) {}
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = MemoryCluster::new();
//! let blobs = std::env::temp_dir().join(format!("tenure-ha-doc-{}", std::process::id()));
//! let ha = HaServices::builder(Arc::new(cluster.client()), "cluster-1")
//!     .with_blob_dir(&blobs)
//!     .with_retained_checkpoints(2)
//!     .build()?;
//!
//! // Become the dispatcher's leader, and take the leadership that fences writes.
//! let (tx, mut granted) = mpsc::unbounded_channel();
//! let election = ha.dispatcher_leader_election()?;
//! election.start(Arc::new(Dispatcher(tx)))?;
//! let session_id = granted.recv().await.unwrap();
//! election.confirm_leadership(session_id, "http://dispatcher:8081").await?;
//! let fence = fence_of(&election, session_id).await?;
//!
//! let job = JobId::new("6a4e8f1c2b3d4e5f6a7b8c9d0e1f2a3b")?;
//! ha.execution_plan_store()
//!     .put(&fence, &ExecutionPlan { job_id: job.clone(), data: b"plan".to_vec() })
//!     .await?;
//! let (counter, checkpoints) = (ha.checkpoint_id_counter(&job), ha.checkpoint_store(&job));
//! for _ in 0..3 {
//!     let checkpoint_id = counter.get_and_increment(&fence).await?;
//!     let data = vec![checkpoint_id as u8; 64 * 1024]; // large: kept as a blob
//!     checkpoints.add(&fence, &CompletedCheckpoint { checkpoint_id, data }).await?;
//! }
//! assert_eq!(checkpoints.checkpoint_ids().await?, vec![2, 3]); // 2 retained
//!
//! // A new leader (another process, after this one died) recovers all of it.
//! let recovered = HaServices::builder(Arc::new(cluster.client()), "cluster-1")
//!     .with_blob_dir(&blobs)
//!     .build()?;
//! assert_eq!(recovered.execution_plan_store().job_ids().await?, vec![job.clone()]);
//! let latest = recovered.checkpoint_store(&job).latest().await?.unwrap();
//! assert_eq!(latest.checkpoint_id, 3);
//! assert_eq!(recovered.checkpoint_id_counter(&job).get().await?, 4);
//!
//! // The job is done: clean up everything of it (its result store entry aside).
//! ha.cleanup_job_data(&fence, &job).await?;
//! assert!(recovered.checkpoint_store(&job).latest().await?.is_none());
//! assert!(ha.blob_store().unwrap().list().await?.is_empty());
//! # ha.close_and_cleanup_all_data(&fence).await?;
//! # std::fs::remove_dir_all(&blobs).ok();
//! # Ok(())
//! # }
//! ```

mod blob;
mod checkpoints;
mod cleanup;
mod context;
mod counter;
mod job_id;
mod layout;
mod plans;
mod record;
mod results;
mod running;
mod services;
mod standalone;
mod status;
mod teardown;

pub use blob::{BlobFile, BlobPointer, BlobStore};
pub use checkpoints::{CompletedCheckpoint, CompletedCheckpointStore};
pub use cleanup::{CleanupError, CleanupFailure, OrphanReport};
pub use counter::{CheckpointIdCounter, INITIAL_CHECKPOINT_ID};
pub use job_id::{JobId, DEFAULT_JOB_ID};
pub use plans::{ExecutionPlan, ExecutionPlanListener, ExecutionPlanStore, PlanListenerHandle};
pub use results::{JobResultEntry, JobResultState, JobResultStore};
pub use running::{JobSchedulingStatus, RunningJobsRegistry};
pub use services::{
    fence_of, HaServices, HaServicesBuilder, DEFAULT_BLOB_THRESHOLD, DEFAULT_ORPHAN_GRACE,
    DEFAULT_RETAINED_CHECKPOINTS,
};
pub use standalone::StandaloneHaServices;
pub use status::JobStatus;

/// The component id of the resource manager.
pub const RESOURCE_MANAGER: &str = "resource_manager";
/// The component id of the dispatcher.
pub const DISPATCHER: &str = "dispatcher";
/// The component id of the REST server.
pub const REST_SERVER: &str = "rest_server";
