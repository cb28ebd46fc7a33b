//! [`Member`]: where one member of a group lives, how its process is
//! spawned, and its log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{log, process, TestkitError};

/// The fixed facts of one member of a [`ServerGroup`](super::ServerGroup): a
/// restart reuses all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member<P> {
    /// The kind's name prefix and the member's index (`m0`, `zk1`), as logs
    /// and errors name it.
    pub name: String,
    /// `<group dir>/<name>`: the member's data and configuration. Its path is
    /// on the command line, where the watchdog looks for it.
    pub dir: PathBuf,
    /// `<group dir>/<name>.log`: what the process printed, every run appended.
    pub log: PathBuf,
    /// Its ports on 127.0.0.1.
    pub ports: P,
}

impl<P> Member<P> {
    pub(crate) fn new(prefix: &str, index: usize, group_dir: &Path, ports: P) -> Self {
        let name = format!("{prefix}{index}");
        Self {
            dir: group_dir.join(&name),
            log: group_dir.join(format!("{name}.log")),
            name,
            ports,
        }
    }

    /// Spawns `command`, which runs `program`, with its output appended to
    /// the member's log (a restart keeps the earlier runs' lines), and a
    /// watchdog that kills it should the test process die first.
    pub(crate) fn spawn(
        &self,
        mut command: Command,
        program: &'static str,
    ) -> Result<Child, TestkitError> {
        let (log, stderr) = crate::log::appender(&self.log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::spawn(program, e))?;
        process::watchdog(child.id(), &self.dir);
        Ok(child)
    }

    /// The current length of the log, to read only what a later run writes.
    pub(crate) fn log_len(&self) -> u64 {
        log::len(&self.log)
    }

    /// The log from byte `from` on.
    pub(crate) fn log_since(&self, from: u64) -> String {
        log::since(&self.log, from)
    }

    /// The last few kilobytes of the log, labelled with the member's name.
    pub(crate) fn log_tail(&self) -> String {
        log::tail(&self.log, &self.name)
    }
}
