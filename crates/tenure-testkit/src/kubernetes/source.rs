//! Getting Kubernetes' source: Debian's `kubernetes` source package, fetched
//! with `apt-get source` through a private apt configuration, unpacked, and
//! patched to build with today's Go.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::steps::{Steps, KUBERNETES_VERSION};
use crate::TestkitError;

/// Where Debian's `golang-github-modern-go-reflect2-dev` installs reflect2
/// 1.0.2, which works with Go 1.18 and later.
const REFLECT2: &str = "/usr/share/gocode/src/github.com/modern-go/reflect2";

/// The machine's apt sources, whose archives also serve source packages.
const APT_SOURCES: &str = "/etc/apt/sources.list.d";
const APT_SOURCE_LIST: &str = "/etc/apt/sources.list";

/// Fetches and unpacks the source package into the GOPATH of the staging
/// directory, `src/k8s.io/kubernetes`, and returns that tree.
pub(super) fn fetch(steps: &Steps) -> Result<PathBuf, TestkitError> {
    let staging = steps.staging();
    let apt = Apt::configure(steps)?;
    steps.run("apt-get update (deb-src indexes)", apt.command("update"))?;
    let download = staging.join("download");
    create_dir(steps, &download)?;
    let mut source = apt.command("source");
    source
        .current_dir(&download)
        .args(["--download-only", "kubernetes"]);
    steps.run("apt-get source --download-only kubernetes", source)?;
    let dsc = dsc_file(&download).map_err(|e| steps.failed("find the .dsc", e))?;
    let parent = staging.join("src").join("k8s.io");
    create_dir(steps, &parent)?;
    let tree = parent.join("kubernetes");
    // apt checked the files against the archive's signed index; dpkg-source
    // may warn that it has no keyring to check the .dsc's signature with.
    let mut extract = Command::new("dpkg-source");
    extract.arg("-x").arg(&dsc).arg(&tree);
    steps.run("dpkg-source -x", extract)?;
    replace_reflect2(&tree).map_err(|e| steps.failed("replace the vendored reflect2", e))?;
    Ok(tree)
}

fn create_dir(steps: &Steps, dir: &Path) -> Result<(), TestkitError> {
    fs::create_dir_all(dir)
        .map_err(|e| TestkitError::io(format!("cannot create {}", dir.display()), e))
        .map_err(|e| steps.failed("create directories", io::Error::other(e.to_string())))
}

/// The `.dsc` apt downloaded, if it is of the release the kit builds:
/// Debian 12 calls it `1.20.5+really1.20.2`.
fn dsc_file(download: &Path) -> io::Result<PathBuf> {
    let dsc = fs::read_dir(download)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "dsc"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("apt-get source left no .dsc in {}", download.display()),
            )
        })?;
    let name = dsc.file_name().unwrap_or_default().to_string_lossy();
    let version = name
        .strip_prefix("kubernetes_")
        .and_then(|rest| rest.strip_suffix(".dsc"))
        .unwrap_or(&name);
    let upstream = version
        .rsplit_once("really")
        .map_or(version, |(_, really)| really);
    if upstream.starts_with(&format!("{KUBERNETES_VERSION}-")) || upstream == KUBERNETES_VERSION {
        Ok(dsc)
    } else {
        Err(io::Error::other(format!(
            "the archive's kubernetes source package is {version}, the kit builds \
             {KUBERNETES_VERSION}"
        )))
    }
}

/// Kubernetes 1.20 vendors reflect2 1.0.1, which reaches into Go runtime
/// internals that Go 1.18 changed (its maps crash at run time); 1.0.2 is
/// API-compatible and fixed. The whole package is swapped, not single
/// files, so no 1.0.1 file is left to clash with a 1.0.2 one.
fn replace_reflect2(tree: &Path) -> io::Result<()> {
    let fixed = Path::new(REFLECT2);
    if !fixed.join("unsafe_link.go").is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{REFLECT2} does not exist: install Debian's golang-github-modern-go-reflect2-dev \
                 package (apt-get install golang-github-modern-go-reflect2-dev)"
            ),
        ));
    }
    let vendored = tree.join("vendor/github.com/modern-go/reflect2");
    for entry in fs::read_dir(&vendored)? {
        let path = entry?.path();
        if is_go_source(&path) {
            fs::remove_file(&path)?;
        }
    }
    for entry in fs::read_dir(fixed)? {
        let path = entry?.path();
        if is_go_source(&path) {
            fs::copy(&path, vendored.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

/// A Go or Go assembler file: what makes up a Go package.
fn is_go_source(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|ext| ext == "go" || ext == "s")
}

/// A private apt configuration whose sources are the machine's, with
/// `deb-src` added, and whose indexes and downloads live in the staging
/// directory: `apt-get update` and `apt-get source` then need no root and
/// leave the machine's apt state alone.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn configure(steps: &Steps) -> Result<Self, TestkitError> {
        let dir = steps.staging().join("apt");
        Self::write(&dir).map_err(|e| steps.failed("configure a private apt for deb-src", e))?;
        Ok(Self { dir })
    }

    fn write(dir: &Path) -> io::Result<()> {
        let parts = dir.join("sources.list.d");
        fs::create_dir_all(&parts)?;
        fs::create_dir_all(dir.join("lists").join("partial"))?;
        fs::create_dir_all(dir.join("cache").join("archives").join("partial"))?;
        let mut found = 0;
        // One-line format: every `deb` line gets its `deb-src` twin.
        if let Ok(list) = fs::read_to_string(APT_SOURCE_LIST) {
            fs::write(dir.join("sources.list"), with_deb_src_lines(&list))?;
            found += list.lines().filter(|l| l.starts_with("deb ")).count();
        } else {
            fs::write(dir.join("sources.list"), "")?;
        }
        if let Ok(entries) = fs::read_dir(APT_SOURCES) {
            for entry in entries {
                let path = entry?.path();
                let Some(name) = path.file_name() else {
                    continue;
                };
                let text = match path.extension().and_then(|ext| ext.to_str()) {
                    Some("sources") => with_deb_src_types(&fs::read_to_string(&path)?),
                    Some("list") => with_deb_src_lines(&fs::read_to_string(&path)?),
                    // Disabled or foreign files, as apt itself ignores them.
                    _ => continue,
                };
                found += 1;
                fs::write(parts.join(name), text)?;
            }
        }
        if found == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no apt sources in {APT_SOURCE_LIST} or {APT_SOURCES}"),
            ));
        }
        Ok(())
    }

    /// `apt-get <subcommand>` on the private configuration.
    fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new("apt-get");
        let dir = |name: &str| self.dir.join(name).display().to_string();
        command
            .arg("-q")
            .arg(format!("-o=Dir::Etc::SourceList={}", dir("sources.list")))
            .arg(format!(
                "-o=Dir::Etc::SourceParts={}",
                dir("sources.list.d")
            ))
            .arg(format!("-o=Dir::State::Lists={}", dir("lists")))
            .arg(format!("-o=Dir::Cache={}", dir("cache")))
            // As root, apt downloads as the `_apt` user, who cannot write
            // into a private directory: it would warn and go on as root.
            .arg("-o=APT::Sandbox::User=root")
            .arg(subcommand)
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    }
}

/// A deb822 `.sources` file whose stanzas also fetch source indexes.
fn with_deb_src_types(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("Types:") {
                "Types: deb deb-src".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A one-line-format list with a `deb-src` line after every `deb` line.
fn with_deb_src_lines(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(rest) = line.strip_prefix("deb ") {
            out.push_str("deb-src ");
            out.push_str(rest);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_gain_their_deb_src_side() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n";
        assert_eq!(
            with_deb_src_types(deb822),
            "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
        );
        assert_eq!(
            with_deb_src_lines("# x\ndeb http://m/debian bookworm main\n"),
            "# x\ndeb http://m/debian bookworm main\ndeb-src http://m/debian bookworm main\n"
        );
    }

    #[test]
    fn only_the_1_20_2_package_is_accepted() {
        let dir = crate::temp::TempDir::new("kube-dsc").unwrap();
        fs::write(
            dir.path()
                .join("kubernetes_1.20.5+really1.20.2-1.1+deb12u1.dsc"),
            "",
        )
        .unwrap();
        assert!(dsc_file(dir.path()).is_ok());
        let other = crate::temp::TempDir::new("kube-dsc").unwrap();
        fs::write(other.path().join("kubernetes_1.28.1-1.dsc"), "").unwrap();
        let err = dsc_file(other.path()).unwrap_err();
        assert!(err.to_string().contains("is 1.28.1-1"), "{err}");
    }
}
