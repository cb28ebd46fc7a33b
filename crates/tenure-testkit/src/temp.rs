//! Temporary directories that disappear with the value that owns them.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TestkitError;

/// A fresh directory under [`std::env::temp_dir`], removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `tenure-<what>-<pid>-<n>`, private to this user (etcd refuses data
    /// directories that others can read).
    pub(crate) fn new(what: &str) -> Result<Self, TestkitError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tenure-{what}-{}-{n}", std::process::id()));
        // Left behind by an earlier process with the same pid that was killed
        // before its Drop ran; nobody alive can own it.
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| {
                TestkitError::io(format!("cannot remove stale {}", path.display()), e)
            })?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&path)
            .map_err(|e| TestkitError::io(format!("cannot create {}", path.display()), e))?;
        Ok(Self { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
