//! Where Flink's jars come from: PyPI's `apache-flink-libraries` wheel,
//! installed once into a virtualenv under cargo's target directory and shared
//! by every test binary of the workspace.

use std::env;
use std::fs::{self};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::cache::{lock, target_dir};
use crate::process;
use crate::TestkitError;

/// The Flink release the kit runs.
pub(crate) const FLINK_VERSION: &str = "2.3.0";

/// The wheel that holds it: all of Flink's jars, no Python code that matters
/// here, about 330 MB.
const WHEEL: &str = "apache-flink-libraries==2.3.0";

/// The variable naming an existing Flink `lib` directory, which the kit then
/// uses instead of installing the wheel.
const LIB_OVERRIDE: &str = "TENURE_FLINK_LIB";

/// What to do when the wheel cannot be installed.
const INSTALL_HINT: &str = "install Debian's python3-venv package (apt-get install python3 \
     python3-venv), and make PyPI reachable (or its mirror, through pip's usual configuration); \
     or set TENURE_FLINK_LIB to the lib directory of a Flink 2.3 distribution";

/// How long a test binary waits for another one to finish installing: a
/// 330 MB download on a slow link, not a hung installer, is what takes long.
const INSTALL_WAIT: Duration = Duration::from_secs(20 * 60);

/// The directory holding Flink 2.3's jars (`flink-dist-2.3.0.jar` and the
/// rest of a distribution's `lib`), with `bash-java-utils.jar` in `../bin`,
/// installing them on the first call.
///
/// The jars come from PyPI's `apache-flink-libraries` 2.3.0 wheel (about
/// 330 MB), which `pip` installs into a virtualenv at
/// `<target dir>/flink-2.3.0/venv`; the wheel's `pyflink/lib` is the answer.
/// The target directory is `CARGO_TARGET_DIR` when absolute, else the
/// ancestor of the running test binary that holds cargo's `CACHEDIR.TAG`,
/// else the workspace's `target`. The install happens once per target
/// directory: concurrent test binaries take turns on a lock file, and a
/// virtualenv is built under another name and renamed into place only when
/// complete, so an interrupted install is never mistaken for one.
///
/// With `TENURE_FLINK_LIB` set, that directory is used as is (a Flink 2.3
/// binary distribution's `lib` works too: its `bin` holds
/// `bash-java-utils.jar`).
///
/// # Errors
/// When `python3`, its `venv` module or PyPI is not available, an error whose
/// message says what to install; the kit never skips a test for it. When
/// `TENURE_FLINK_LIB` names a directory without the jars, an error naming it.
pub fn flink_lib_dir() -> Result<PathBuf, TestkitError> {
    // A mutex rather than a OnceLock: a failed install is reported to every
    // caller and tried again; concurrent first calls install once.
    static LIB: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut lib = LIB.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = lib.as_ref() {
        return Ok(dir.clone());
    }
    let dir = match env::var_os(LIB_OVERRIDE) {
        Some(dir) => checked_lib(Path::new(&dir))?,
        None => install(&cache_dir())?,
    };
    *lib = Some(dir.clone());
    Ok(dir)
}

/// Where the kit keeps what it builds for Flink: the virtualenv and the
/// compiled probe, `<target dir>/flink-2.3.0`.
pub(crate) fn cache_dir() -> PathBuf {
    target_dir().join(format!("flink-{FLINK_VERSION}"))
}

/// `bash-java-utils.jar` of the distribution whose `lib` is `lib`.
pub(crate) fn bash_java_utils(lib: &Path) -> PathBuf {
    lib.parent()
        .unwrap_or(lib)
        .join("bin")
        .join("bash-java-utils.jar")
}

/// `flink-dist-2.3.0.jar` in `lib`.
pub(crate) fn flink_dist(lib: &Path) -> PathBuf {
    lib.join(format!("flink-dist-{FLINK_VERSION}.jar"))
}

/// The classpath Flink's scripts build: every other jar of `lib`, sorted,
/// then `flink-dist`; with `first` (compiled classes) in front when given.
pub(crate) fn classpath(lib: &Path, first: Option<&Path>) -> Result<String, TestkitError> {
    let dist = flink_dist(lib);
    let mut jars: Vec<PathBuf> = fs::read_dir(lib)
        .map_err(|e| TestkitError::io(format!("cannot list {}", lib.display()), e))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jar") && *path != dist)
        .collect();
    jars.sort();
    let entries: Vec<String> = first
        .into_iter()
        .map(Path::to_owned)
        .chain(jars)
        .chain([dist])
        .map(|path| path.display().to_string())
        .collect();
    Ok(entries.join(":"))
}

/// `dir` if it holds Flink 2.3's jars and `bash-java-utils.jar` beside them.
fn checked_lib(dir: &Path) -> Result<PathBuf, TestkitError> {
    for jar in [flink_dist(dir), bash_java_utils(dir)] {
        if !jar.is_file() {
            return Err(TestkitError::io(
                format!(
                    "{LIB_OVERRIDE}={} is not the lib directory of a Flink {FLINK_VERSION} \
                     distribution",
                    dir.display()
                ),
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", jar.display()),
                ),
            ));
        }
    }
    Ok(dir.to_owned())
}

/// The wheel's `lib` in the virtualenv `venv`, if it is installed there.
fn installed_lib(venv: &Path) -> Option<PathBuf> {
    // lib/python3.X/site-packages: the minor version is the installer's.
    fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .map(|python| python.join("site-packages").join("pyflink").join("lib"))
        .find(|lib| checked_lib(lib).is_ok())
}

/// Installs the wheel into `<cache>/venv` unless it is there already.
fn install(cache: &Path) -> Result<PathBuf, TestkitError> {
    let venv = cache.join("venv");
    if let Some(lib) = installed_lib(&venv) {
        return Ok(lib);
    }
    fs::create_dir_all(cache)
        .map_err(|e| TestkitError::io(format!("cannot create {}", cache.display()), e))?;
    let _lock = lock(
        &cache.join("install.lock"),
        INSTALL_WAIT,
        &format!("installing {WHEEL}"),
    )?;
    // Another test binary may have installed it while this one waited.
    if let Some(lib) = installed_lib(&venv) {
        return Ok(lib);
    }
    // Holding the lock, nobody else builds here: what is left is from an
    // installer that was killed, and goes.
    let staging = cache.join("venv.partial");
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|e| TestkitError::io(format!("cannot remove {}", staging.display()), e))?;
    }
    let mut venv_command = Command::new("python3");
    venv_command.arg("-m").arg("venv").arg(&staging);
    installer(&mut venv_command)?;
    let mut pip = Command::new(staging.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-input",
        "--disable-pip-version-check",
        WHEEL,
    ]);
    installer(&mut pip)?;
    if installed_lib(&staging).is_none() {
        return Err(install_error(io::Error::other(format!(
            "pip installed {WHEEL} into {}, but without pyflink/lib/flink-dist-{FLINK_VERSION}.jar \
             and pyflink/bin/bash-java-utils.jar",
            staging.display()
        ))));
    }
    // Only a complete virtualenv ever has the name `venv`. (Its scripts keep
    // the old path in their shebang lines; the kit reads only its files.)
    fs::rename(&staging, &venv).map_err(|e| {
        TestkitError::io(
            format!("cannot rename {} to {}", staging.display(), venv.display()),
            e,
        )
    })?;
    installed_lib(&venv).ok_or_else(|| {
        install_error(io::Error::other(format!(
            "{} lost its jars when renamed",
            venv.display()
        )))
    })
}

/// Runs an install step; its failure is an error that says what to install.
fn installer(command: &mut Command) -> Result<(), TestkitError> {
    match process::run(command, "python3") {
        Ok(_) => Ok(()),
        Err(TestkitError::NotInstalled { program, .. }) => Err(TestkitError::NotInstalled {
            program,
            hint: INSTALL_HINT,
        }),
        Err(err) => Err(install_error(io::Error::other(err.to_string()))),
    }
}

fn install_error(source: io::Error) -> TestkitError {
    TestkitError::io(
        format!("cannot install Flink {FLINK_VERSION} ({WHEEL}): {INSTALL_HINT}"),
        source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_dir_is_cargos() {
        let target = target_dir();
        assert!(
            target.join("CACHEDIR.TAG").is_file(),
            "{}",
            target.display()
        );
    }

    #[test]
    fn a_lib_without_jars_is_refused_with_its_name() {
        let err = checked_lib(Path::new("/nonexistent/lib")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("TENURE_FLINK_LIB=/nonexistent/lib"),
            "{message}"
        );
        assert!(message.contains("flink-dist-2.3.0.jar"), "{message}");
    }

    #[test]
    fn bash_java_utils_is_beside_lib() {
        assert_eq!(
            bash_java_utils(Path::new("/x/pyflink/lib")),
            Path::new("/x/pyflink/bin/bash-java-utils.jar")
        );
    }
}
