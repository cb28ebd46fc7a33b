//! The `local://` backend of [tenure](https://docs.rs/tenure): elections and HA
//! state shared by many processes on one host, with no server.
//!
//! A directory holds everything: a format marker, the state (one file, replaced
//! atomically and fsynced on every change, with a checksum), and one lock file
//! per live session. Each process's session is an exclusive `flock` that the
//! kernel releases the moment the process dies — even by SIGKILL — so the next
//! candidate is granted at once, with no TTL to wait out. A paused (SIGSTOP)
//! process keeps its lock and its leadership: it is not dead, and nobody else can
//! act meanwhile.
//!
//! Terms and versions come from a revision counter stored in the state file, so
//! they survive restarts of every process and are never reused. Writes fenced by
//! a leadership are checked under the directory lock, atomically with the write.
//! Other processes' changes reach watchers by polling the state file (every 5 ms
//! by default); a waiting candidate also checks the lock of the leader ahead of
//! it at that interval. An ephemeral value is removed with its session, when
//! the session is closed or its process is found dead.
//!
//! The directory is created `0700` and its files `0600`; a directory or file that
//! other users can write is refused, since whoever can write it can take
//! leadership. The state is rewritten whole on every change, which suits
//! coordination metadata (leader records, pointers, counters) of up to a few
//! megabytes — keep large state in a blob store, as tenure's HA services do.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tenure_core::Error> {
//! use std::sync::Arc;
//! use tenure_core::ElectionFactory;
//! use tenure_local::LocalBackend;
//!
//! let dir = std::env::temp_dir().join(format!("tenure-doc-{}", std::process::id()));
//! let backend = Arc::new(LocalBackend::open(&dir).await?);
//! let leadership = ElectionFactory::new(backend.clone())
//!     .new_election("scheduler")?
//!     .campaign()
//!     .await?;
//! assert!(leadership.term() > 0);
//! # tenure_core::Backend::close(&*backend).await?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

mod backend;
mod campaign;
mod dir;
mod kv;
mod leader_watch;
mod poll;
mod state;
mod writer;

pub use backend::{LocalBackend, DEFAULT_POLL_INTERVAL, MAX_VALUE_SIZE};
