//! One etcd member: where it lives, how it is launched, and its log.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::TlsFiles;
use crate::TestkitError;

/// How much of a log an error quotes.
const LOG_TAIL_BYTES: u64 = 3_000;

/// The fixed facts of a member: a restart reuses all of them.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    pub(crate) data_dir: PathBuf,
    pub(crate) log: PathBuf,
}

/// Everything members share on their command lines.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    pub(crate) initial_cluster: String,
    pub(crate) token: &'a str,
    pub(crate) tls: Option<&'a TlsFiles>,
    pub(crate) client_cert_auth: bool,
}

impl Member {
    pub(crate) fn new(index: usize, dir: &Path, client_port: u16, peer_port: u16) -> Self {
        let name = format!("m{index}");
        Self {
            data_dir: dir.join(&name),
            log: dir.join(format!("{name}.log")),
            name,
            client_port,
            peer_port,
        }
    }

    pub(crate) fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub(crate) fn client_url(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Starts the process, appending its output to the member's log (a restart
    /// keeps the earlier runs' lines). An existing data directory makes etcd
    /// ignore the `--initial-*` flags and rejoin as the same member.
    pub(crate) fn spawn(&self, launch: &Launch<'_>) -> Result<Child, TestkitError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| TestkitError::io(format!("cannot open {}", self.log.display()), e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| TestkitError::io("cannot duplicate a log handle", e))?;
        let client_url = self.client_url(launch.tls.is_some());
        let mut command = Command::new("etcd");
        // etcd reads ETCD_* variables too and refuses to start when one conflicts
        // with a flag; the test's environment must not change the cluster.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-cluster")
            .arg(&launch.initial_cluster)
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token")
            .arg(launch.token)
            .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
            // 0 is etcd's own default, spelled out: a test that compacts does so itself.
            .arg("--auto-compaction-retention=0")
            // bcrypt's minimum: authentication costs about 1 ms instead of ~60 ms.
            .arg("--bcrypt-cost=4");
        if let Some(tls) = launch.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key);
            if launch.client_cert_auth {
                command
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(&tls.ca);
            }
        }
        if let Some(dir) = self.data_dir.parent() {
            command.current_dir(dir);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn("etcd", e))?;
        crate::process::watchdog(child.id(), &self.data_dir);
        Ok(child)
    }

    /// The current length of the log, to read only what a later run writes.
    pub(crate) fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The log from byte `from` on.
    pub(crate) fn log_since(&self, from: u64) -> String {
        read_from(&self.log, from).unwrap_or_default()
    }

    /// The last few kilobytes of the log, labelled with the member's name.
    pub(crate) fn log_tail(&self) -> String {
        let from = self.log_len().saturating_sub(LOG_TAIL_BYTES);
        let tail = read_from(&self.log, from).unwrap_or_else(|e| format!("(no log: {e})"));
        format!(
            "--- {} ({}) ---\n{}",
            self.name,
            self.log.display(),
            tail.trim_end()
        )
    }
}

fn read_from(path: &Path, from: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
