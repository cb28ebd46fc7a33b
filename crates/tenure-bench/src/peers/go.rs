//! Go's `concurrency.Election` (etcd 3.4's `go.etcd.io/etcd/clientv3/concurrency`)
//! as a contender: `go/contender.go`, built with Debian's Go in GOPATH mode
//! against Debian's `golang-etcd-server-dev` sources, once per version of the
//! program.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::*;

/// The Go program, built on first use.
const GO_CONTENDER: &str = include_str!("../../go/contender.go");

/// Where `golang-etcd-server-dev` puts the etcd 3.4 sources (a GOPATH).
const GOCODE: &str = "/usr/share/gocode";

/// How long building the program may take: about 15 s here with a warm Go
/// build cache, longer cold (gRPC, protobuf and zap are compiled too).
const BUILD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Go's `concurrency.Election` on `prefix` at `endpoints`, on a session of
/// `ttl` (whole seconds, as `concurrency.WithTTL` takes them; at least 1).
pub(crate) fn go_command(endpoints: &str, prefix: &str, ttl: Duration) -> Result<Command, String> {
    let mut command = Command::new(go_contender()?);
    command
        .arg(endpoints)
        .arg(prefix)
        .arg(ttl.as_secs().max(1).to_string());
    Ok(command)
}

/// `3.4.23 (Go 1.19.8)`: the client's version from its sources and Go's;
/// builds the program, so a broken installation shows here rather than
/// mid-run.
pub(super) fn go_version() -> Result<String, String> {
    let go = run(
        std::process::Command::new("go").arg("version"),
        COMMAND_TIMEOUT,
    )
    .map_err(|e| format!("{e} (apt-get install golang-go)"))?;
    // `go version go1.19.8 linux/amd64`
    let go = go
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go"))
        .ok_or(format!("go version printed {go:?}"))?
        .to_owned();
    let sources = Path::new(GOCODE).join("src/go.etcd.io/etcd");
    let version = std::fs::read_to_string(sources.join("version/version.go"))
        .map_err(|e| {
            format!(
                "no etcd client sources in {} (apt-get install golang-etcd-server-dev): {e}",
                sources.display()
            )
        })?
        .lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("Version")?.trim().strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        })
        .ok_or("no Version in etcd's version/version.go")?;
    go_contender()?;
    Ok(format!("{version} (Go {go})"))
}

/// The built program: `$TMPDIR/tenure-bench-<hash>/go-contender`, kept
/// between runs.
fn go_contender() -> Result<PathBuf, String> {
    let dir = cache_dir(GO_CONTENDER)?;
    let binary = dir.join("go-contender");
    if binary.is_file() {
        return Ok(binary);
    }
    // A GOPATH of our own whose package is the program, then Debian's: the
    // module proxy is not used (GOPATH mode, GOPROXY=off).
    let package = dir.join("gopath/src/tenure-bench-contender");
    std::fs::create_dir_all(&package)
        .map_err(|e| format!("cannot create {}: {e}", package.display()))?;
    write_atomically(&package.join("contender.go"), GO_CONTENDER)?;
    let gopath = std::env::join_paths([dir.join("gopath"), PathBuf::from(GOCODE)])
        .map_err(|e| e.to_string())?;
    // Built beside the final place and renamed into it, so a concurrent or
    // interrupted build never leaves a half-written program.
    let building = dir.join(format!("go-contender-{}", std::process::id()));
    let mut go = std::process::Command::new("go");
    go.args(["build", "-o"])
        .arg(&building)
        .arg("tenure-bench-contender")
        .current_dir(&dir)
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        // A caller's `-mod=…` is an error in GOPATH mode.
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("GOPATH", gopath);
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        // Go refuses to build without a cache directory.
        go.env(
            "GOCACHE",
            std::env::temp_dir().join("tenure-bench-go-build"),
        );
    }
    eprintln!("tenure-bench: building the Go concurrency.Election contender");
    if let Err(e) = run(&mut go, BUILD_TIMEOUT) {
        let _ = std::fs::remove_file(&building);
        return Err(format!(
            "cannot build contender.go (apt-get install golang-go golang-etcd-server-dev): {e}"
        ));
    }
    std::fs::rename(&building, &binary)
        .map_err(|e| format!("cannot move the Go contender into place: {e}"))?;
    Ok(binary)
}
