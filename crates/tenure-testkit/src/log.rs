//! Reading the logs of the processes the kit starts: servers and Curator
//! participants append stdout and stderr to one file each.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How much of a log an error quotes.
const LOG_TAIL_BYTES: u64 = 3_000;

/// Two handles appending to the log at `path` (created if missing): one for
/// a process's stdout, one for its stderr.
pub(crate) fn appender(path: &Path) -> Result<(File, File), crate::TestkitError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| crate::TestkitError::io(format!("cannot open {}", path.display()), e))?;
    let stderr = log
        .try_clone()
        .map_err(|e| crate::TestkitError::io("cannot duplicate a log handle", e))?;
    Ok((log, stderr))
}

/// The current length of the log, to read only what a later run writes.
pub(crate) fn len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The log from byte `from` on; empty when it cannot be read.
pub(crate) fn since(path: &Path, from: u64) -> String {
    read_from(path, from).unwrap_or_default()
}

/// The last few kilobytes of the log, under a heading naming `label` and the file.
pub(crate) fn tail(path: &Path, label: &str) -> String {
    let from = len(path).saturating_sub(LOG_TAIL_BYTES);
    let tail = read_from(path, from).unwrap_or_else(|e| format!("(no log: {e})"));
    format!("--- {label} ({}) ---\n{}", path.display(), tail.trim_end())
}

fn read_from(path: &Path, from: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
