//! Where the `kube-apiserver` binary comes from: Debian's `kubernetes`
//! source package, built once per cargo target directory with Debian's Go.
//!
//! Debian ships no apiserver binary, and the Go module proxy may be out of
//! reach, so the kit builds the source package's tree in GOPATH mode, where
//! everything comes from its `vendor` directory.

use std::env;
use std::fs::{self};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::steps::{Go, Steps, KUBERNETES_VERSION};
use super::{openapi, source};
use crate::cache::{lock, target_dir};
use crate::TestkitError;

/// The variable naming a `kube-apiserver` binary to use instead of building one.
const BINARY_OVERRIDE: &str = "TENURE_KUBE_APISERVER";

/// How long a test binary waits for another one to finish building: the
/// build takes about three minutes on two cores, on a loaded machine longer.
const BUILD_WAIT: Duration = Duration::from_secs(30 * 60);

/// The `kube-apiserver` 1.20.2 binary, building it on the first call.
///
/// The binary is built from Debian 12's `kubernetes` source package (1.20.2)
/// with Debian's Go in GOPATH mode, without the network beyond the Debian
/// archive: about three minutes and 1.7 GB of memory on two cores, once per
/// cargo target directory. It lands in `<target dir>/kubernetes-1.20.2/bin`,
/// beside the source tree it was built from (`src/k8s.io/kubernetes`, a
/// GOPATH: Go programs vendoring client-go can be built against it). The
/// target directory is `CARGO_TARGET_DIR` when absolute, else the ancestor
/// of the running test binary that holds cargo's `CACHEDIR.TAG`, else the
/// workspace's `target`. Concurrent test binaries take turns on a lock file,
/// and the build happens in `kubernetes-1.20.2.partial`, renamed into place
/// only when complete, so an interrupted build is never mistaken for one.
///
/// With `TENURE_KUBE_APISERVER` set, that binary is used as is.
///
/// # Errors
/// When a build step fails: an error naming the step, with the end of its
/// output and what to install; the kit never skips a test for it. When
/// `TENURE_KUBE_APISERVER` names no file, an error naming it.
pub fn kube_apiserver_binary() -> Result<PathBuf, TestkitError> {
    // A mutex rather than a OnceLock: a failed build is reported to every
    // caller and tried again; concurrent first calls build once.
    static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut binary = BINARY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = binary.as_ref() {
        return Ok(path.clone());
    }
    let path = match env::var_os(BINARY_OVERRIDE) {
        Some(path) => overridden(Path::new(&path))?,
        None => build(&target_dir())?,
    };
    *binary = Some(path.clone());
    Ok(path)
}

/// The binary `TENURE_KUBE_APISERVER` names, if it is a file.
fn overridden(path: &Path) -> Result<PathBuf, TestkitError> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        Err(TestkitError::io(
            format!(
                "{BINARY_OVERRIDE}={} is not a kube-apiserver binary",
                path.display()
            ),
            io::Error::new(io::ErrorKind::NotFound, "no such file"),
        ))
    }
}

/// The built binary in a build directory.
fn binary_in(dir: &Path) -> PathBuf {
    dir.join("bin").join("kube-apiserver")
}

/// Builds into `<target>/kubernetes-1.20.2` unless that is there already.
fn build(target: &Path) -> Result<PathBuf, TestkitError> {
    let done = target.join(format!("kubernetes-{KUBERNETES_VERSION}"));
    if binary_in(&done).is_file() {
        return Ok(binary_in(&done));
    }
    fs::create_dir_all(target)
        .map_err(|e| TestkitError::io(format!("cannot create {}", target.display()), e))?;
    let _lock = lock(
        &target.join(format!("kubernetes-{KUBERNETES_VERSION}.lock")),
        BUILD_WAIT,
        &format!("building kube-apiserver {KUBERNETES_VERSION}"),
    )?;
    // Another test binary may have built it while this one waited.
    if binary_in(&done).is_file() {
        return Ok(binary_in(&done));
    }
    // Holding the lock, nobody else builds here: what is left is from a
    // builder that was killed, and goes.
    let staging = target.join(format!("kubernetes-{KUBERNETES_VERSION}.partial"));
    for stale in [&staging, &done] {
        if stale.exists() {
            fs::remove_dir_all(stale)
                .map_err(|e| TestkitError::io(format!("cannot remove {}", stale.display()), e))?;
        }
    }
    let steps = Steps::new(&staging)?;
    let tree = source::fetch(&steps)?;
    let go = Go::new(&staging);
    let openapi_gen = staging.join("bin").join("openapi-gen");
    steps.run(
        "go build openapi-gen",
        go.build(
            &tree,
            &openapi_gen,
            &[],
            "k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen",
        ),
    )?;
    openapi::generate(&steps, &go, &tree, &openapi_gen)?;
    // `notest` leaves out test-only code paths, `selinux` is what the
    // release build sets; the -X flags make `/version` say 1.20.2 (a client
    // may check it), -s -w drop 40 MB of symbols.
    let flags = [
        "-tags=selinux,notest".to_owned(),
        format!("-ldflags=-s -w {}", version_flags()),
    ];
    steps.run(
        "go build kube-apiserver",
        go.build(
            &tree,
            &binary_in(&staging),
            &flags,
            "k8s.io/kubernetes/cmd/kube-apiserver",
        ),
    )?;
    // The build cache (about 1 GB) and the downloads are not needed any more;
    // the source tree stays for Go peers that vendor client-go.
    for leftover in ["gocache", "download", "apt"] {
        let _ = fs::remove_dir_all(staging.join(leftover));
    }
    // Only a complete build ever has the final name.
    fs::rename(&staging, &done).map_err(|e| {
        TestkitError::io(
            format!("cannot rename {} to {}", staging.display(), done.display()),
            e,
        )
    })?;
    Ok(binary_in(&done))
}

/// The linker flags that set the version the apiserver reports, as
/// Kubernetes' `hack/lib/version.sh` does.
fn version_flags() -> String {
    let (major, minor) = ("1", "20");
    let values = [
        ("gitVersion", format!("v{KUBERNETES_VERSION}")),
        ("gitMajor", major.to_owned()),
        ("gitMinor", minor.to_owned()),
        ("gitTreeState", "clean".to_owned()),
    ];
    let mut flags = Vec::new();
    for package in ["client-go/pkg/version", "component-base/version"] {
        for (key, value) in &values {
            flags.push(format!(
                "-X k8s.io/kubernetes/vendor/k8s.io/{package}.{key}={value}"
            ));
        }
    }
    flags.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_without_a_file_is_refused_with_its_name() {
        let err = overridden(Path::new("/nonexistent/kube-apiserver")).unwrap_err();
        assert!(
            err.to_string()
                .contains("TENURE_KUBE_APISERVER=/nonexistent/kube-apiserver"),
            "{err}"
        );
    }

    #[test]
    fn the_version_flags_name_the_vendored_packages() {
        let flags = version_flags();
        assert!(
            flags.contains(
                "-X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitVersion=v1.20.2"
            ),
            "{flags}"
        );
    }
}
