//! The writer thread: runs jobs in batches under the directory lock, with one
//! read and one durable write per batch (group commit), and reaps the sessions
//! of dead processes first.

use std::fs::File;
use std::sync::Arc;

use tenure_core::{Error, Result};
use tokio::sync::{mpsc, watch};

use crate::dir::Dir;
use crate::state::State;

/// What the writer thread runs: changes `State` (validating first, so a failing
/// job changes nothing) and returns what to tell the caller once the batch is
/// durable (or failed to be written).
type Reply = Box<dyn FnOnce(Result<()>) + Send>;
pub(crate) type Job = Box<dyn FnOnce(&mut State, &Dir) -> Reply + Send>;

/// The writer thread: runs jobs in batches, one directory lock, one read and
/// one durable write per batch (group commit), and removes the candidates of
/// sessions whose process died.
pub(crate) fn writer(
    dir: Arc<Dir>,
    lock_file: File,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    latest: watch::Sender<Arc<State>>,
) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let guard = match dir.lock(&lock_file) {
            Ok(guard) => guard,
            Err(e) => {
                fail_all(batch, &dir, &e);
                continue;
            }
        };
        let mut state = match dir.read_state() {
            Ok(state) => state,
            Err(e) => {
                drop(guard);
                fail_all(batch, &dir, &e);
                continue;
            }
        };
        let before = state.revision;
        reap(&mut state, &dir);
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&mut state, &dir)).collect();
        let persisted = if state.revision != before {
            dir.write_atomic(&state)
        } else {
            Ok(())
        };
        drop(guard);
        let failure = persisted.as_ref().err().map(ToString::to_string);
        if persisted.is_ok() {
            let state = Arc::new(state);
            latest.send_if_modified(|current| {
                if state.revision > current.revision {
                    *current = state.clone();
                    true
                } else {
                    false
                }
            });
        }
        for reply in replies {
            reply(match &failure {
                None => Ok(()),
                Some(message) => Err(Error::Backend {
                    message: format!("the change was not written: {message}"),
                    source: None,
                }),
            });
        }
    }
}

fn fail_all(batch: Vec<Job>, dir: &Dir, error: &Error) {
    // Run nothing against a state we could not lock or read; tell every caller.
    let mut scratch = State::default();
    for job in batch {
        let reply = job(&mut scratch, dir);
        reply(Err(replicate(error)));
    }
}

/// The same error for each caller of a failed batch (errors are not `Clone`:
/// their sources may not be).
fn replicate(error: &Error) -> Error {
    match error {
        Error::Corrupted { key, reason } => Error::Corrupted {
            key: key.clone(),
            reason: reason.clone(),
        },
        Error::Unsupported { backend, what } => Error::Unsupported { backend, what },
        other => Error::Backend {
            message: format!("the change was not made: {other}"),
            source: None,
        },
    }
}

/// Removes the candidates of every session whose owner died (its lock is free).
fn reap(state: &mut State, dir: &Dir) {
    let sessions: Vec<u64> = state.sessions.iter().copied().collect();
    for session in sessions {
        if matches!(dir.session_alive(session), Ok(false)) {
            tracing::info!(session, dir = %dir.root().display(), "session of a dead process removed");
            state.drop_session(session);
            state.bump();
            dir.remove_session(session);
        }
    }
}
