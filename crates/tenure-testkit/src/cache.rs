//! What the kit makes once per cargo target directory and keeps there — the
//! Flink virtualenv, the kube-apiserver build: where that directory is, and
//! the lock that lets concurrent test binaries take turns making it.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::TestkitError;

/// cargo's target directory, found from where the test binary runs.
pub(crate) fn target_dir() -> PathBuf {
    // A relative CARGO_TARGET_DIR is relative to where cargo was invoked,
    // which the test binary does not know; the binary's own path tells.
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        if dir.is_absolute() {
            return dir;
        }
    }
    if let Ok(exe) = env::current_exe() {
        if let Some(dir) = exe
            .ancestors()
            .skip(1)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        {
            return dir.to_owned();
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(manifest)
        .join("target")
}

/// Takes the lock on `path`: an exclusive `flock`, which the kernel releases
/// when the holder exits, however it exits. Waits up to `wait` for another
/// test binary that is `doing` it (e.g. "installing X").
pub(crate) fn lock(path: &Path, wait: Duration, doing: &str) -> Result<File, TestkitError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| TestkitError::io(format!("cannot open {}", path.display()), e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(200));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(TestkitError::Timeout {
                    waiting_for: format!(
                        "another test binary {doing} (it holds {})",
                        path.display()
                    ),
                    after: wait,
                    log_tail: String::new(),
                })
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(TestkitError::io(
                    format!("cannot lock {}", path.display()),
                    e,
                ))
            }
        }
    }
}
