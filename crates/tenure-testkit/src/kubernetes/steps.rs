//! The vocabulary of the kube-apiserver build: the release, the staging
//! directory whose log every step appends to, and Debian's Go in GOPATH mode
//! — shared by the steps (source, openapi) and the build that runs them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{log, TestkitError};

/// The Kubernetes release the kit builds: what Debian 12 packages as
/// `1.20.5+really1.20.2`.
pub(crate) const KUBERNETES_VERSION: &str = "1.20.2";

/// What to do when a build step fails.
pub(super) const BUILD_HINT: &str = "install Debian's golang-go, dpkg-dev and \
     golang-github-modern-go-reflect2-dev packages (scripts/deps.sh does) and make the Debian \
     archive of /etc/apt/sources.list.d reachable (its deb-src side is used); or set \
     TENURE_KUBE_APISERVER to a kube-apiserver 1.20 binary";

/// The build's staging directory and its log, where every step appends what
/// it prints.
pub(super) struct Steps {
    staging: PathBuf,
    log: PathBuf,
}

impl Steps {
    pub(super) fn new(staging: &Path) -> Result<Self, TestkitError> {
        fs::create_dir_all(staging.join("bin"))
            .map_err(|e| TestkitError::io(format!("cannot create {}", staging.display()), e))?;
        Ok(Self {
            staging: staging.to_owned(),
            log: staging.join("build.log"),
        })
    }

    /// The directory being built.
    pub(super) fn staging(&self) -> &Path {
        &self.staging
    }

    /// Runs `command`, the build step `step`, with its output appended to the
    /// build log; a failure names the step and says what to install.
    pub(super) fn run(&self, step: &str, mut command: Command) -> Result<(), TestkitError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let (log, stderr) = crate::log::appender(&self.log)?;
        let from = log::len(&self.log);
        let status = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .status()
            .map_err(|e| {
                let what = if e.kind() == io::ErrorKind::NotFound {
                    format!("{program} is not installed")
                } else {
                    format!("cannot run {program}")
                };
                self.failed(step, io::Error::new(e.kind(), format!("{what}: {e}")))
            })?;
        if status.success() {
            return Ok(());
        }
        let output = log::since(&self.log, from);
        let tail: String = {
            let lines: Vec<&str> = output.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        Err(self.failed(
            step,
            io::Error::other(format!(
                "{program} exited with {status}; its output ends with (all of it in {}):\n{tail}",
                self.log.display()
            )),
        ))
    }

    /// The error of build step `step`.
    pub(super) fn failed(&self, step: &str, source: io::Error) -> TestkitError {
        TestkitError::io(
            format!(
                "cannot build kube-apiserver {KUBERNETES_VERSION}: step `{step}` failed \
                 ({BUILD_HINT})"
            ),
            source,
        )
    }
}

/// Debian's Go in GOPATH mode, with the GOPATH and build cache in the
/// staging directory and nothing from the user's Go configuration.
pub(super) struct Go {
    gopath: PathBuf,
    cache: PathBuf,
}

impl Go {
    pub(super) fn new(staging: &Path) -> Self {
        Self {
            gopath: staging.to_owned(),
            cache: staging.join("gocache"),
        }
    }

    /// `program` in `tree` with the Go environment set.
    pub(super) fn command(&self, program: impl AsRef<std::ffi::OsStr>, tree: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(tree);
        for name in [
            "GOFLAGS",
            "GOOS",
            "GOARCH",
            "GOROOT",
            "GOBIN",
            "GOTOOLCHAIN",
        ] {
            command.env_remove(name);
        }
        command
            .env("GOPATH", &self.gopath)
            .env("GOCACHE", &self.cache)
            // GOPATH mode, everything from `vendor`: the module proxy may
            // be unreachable, and 1.20's go.mod predates today's Go.
            .env("GO111MODULE", "off")
            .env("GOPROXY", "off")
            .env("GOENV", "off")
            // A static binary, no C toolchain needed.
            .env("CGO_ENABLED", "0");
        command
    }

    /// `go build` of `package` in `tree` into `output`, with `flags`.
    pub(super) fn build(
        &self,
        tree: &Path,
        output: &Path,
        flags: &[String],
        package: &str,
    ) -> Command {
        let mut command = self.command("go", tree);
        command
            .arg("build")
            .arg("-o")
            .arg(output)
            .args(flags)
            .arg(package);
        command
    }
}
