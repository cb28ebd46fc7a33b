//! The outcome of cleanups: every step is attempted, and every failure is
//! reported together at the end.

use std::fmt;

use crate::error::Error;

/// One step of a close or cleanup that failed.
#[derive(Debug)]
pub struct CleanupFailure {
    /// What the step was doing (`"execution plan"`, `"blobs"`, ...), with the
    /// key or path it was about where there is one.
    pub step: String,
    /// Why it failed.
    pub error: Error,
}

/// A close or cleanup in which at least one step failed. Every other step was
/// still attempted; running the same call again resumes the work (every step
/// is idempotent).
#[derive(Debug)]
pub struct CleanupError {
    /// The failed steps, in the order they ran.
    pub failures: Vec<CleanupFailure>,
}

impl fmt::Display for CleanupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cleanup step(s) failed", self.failures.len())?;
        for failure in &self.failures {
            write!(f, "; {}: {}", failure.step, failure.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for CleanupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|f| &f.error as &(dyn std::error::Error + 'static))
    }
}

/// Collects the failures of a multi-step cleanup.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    failures: Vec<CleanupFailure>,
}

impl Steps {
    /// Records the outcome of one step; returns whether it succeeded.
    pub(crate) fn record<T>(&mut self, step: impl Into<String>, outcome: Result<T, Error>) -> bool {
        match outcome {
            Ok(_) => true,
            Err(error) => {
                let step = step.into();
                tracing::warn!(%step, %error, "cleanup step failed");
                self.failures.push(CleanupFailure { step, error });
                false
            }
        }
    }

    pub(crate) fn finish(self) -> Result<(), CleanupError> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(CleanupError {
                failures: self.failures,
            })
        }
    }
}

/// What [`HaServices::collect_orphans`](super::HaServices::collect_orphans)
/// did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Blobs and temporary files deleted: referenced by no pointer and older
    /// than the grace period.
    pub removed: Vec<String>,
    /// Unreferenced files kept because they are younger than the grace period
    /// (possibly a write whose pointer is about to land).
    pub young: Vec<String>,
    /// How many blobs are referenced by a pointer.
    pub referenced: usize,
}
