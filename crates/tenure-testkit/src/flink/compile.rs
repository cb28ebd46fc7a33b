//! Compiling the [`FlinkRetrievalProbe`](crate::FlinkRetrievalProbe)
//! program against the installed Flink.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::{config, install};
use crate::process;
use crate::zookeeper::java;
use crate::TestkitError;

/// The program, compiled on first use.
const SOURCE: &str = include_str!("../../java/FlinkRetrievalProbe.java");

/// The directory with the compiled program, compiling it on the first call
/// of a process if no earlier process has, into
/// `<cache>/probe-<hash of the source>`.
///
/// Compiled into a private directory and renamed into place, so that two
/// test binaries compiling at once cannot see each other's half-written
/// classes: the loser of the rename uses the winner's.
pub(crate) fn compiled(lib: &Path) -> Result<PathBuf, TestkitError> {
    static CLASSES: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut classes = CLASSES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = classes.as_ref() {
        return Ok(dir.clone());
    }
    let mut hasher = DefaultHasher::new();
    SOURCE.hash(&mut hasher);
    let cache = install::cache_dir();
    let out = cache.join(format!("probe-{:016x}", hasher.finish()));
    if !out.join("FlinkRetrievalProbe.class").is_file() {
        let staging = cache.join(format!("probe.partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)
            .map_err(|e| TestkitError::io(format!("cannot create {}", staging.display()), e))?;
        let source = staging.join("FlinkRetrievalProbe.java");
        config::write(&source, SOURCE)?;
        let compiled = process::run(
            java::javac()
                .arg("-d")
                .arg(staging.join("classes"))
                .arg("-cp")
                .arg(install::classpath(lib, None)?)
                .arg(&source),
            "javac",
        );
        let renamed = compiled.and_then(|_| {
            fs::rename(staging.join("classes"), &out).or_else(|e| {
                // Another process renamed its classes into place first.
                if out.join("FlinkRetrievalProbe.class").is_file() {
                    Ok(())
                } else {
                    Err(TestkitError::io(
                        format!("cannot rename compiled classes to {}", out.display()),
                        e,
                    ))
                }
            })
        });
        let _ = fs::remove_dir_all(&staging);
        renamed?;
    }
    *classes = Some(out.clone());
    Ok(out)
}
