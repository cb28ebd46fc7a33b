//! The directory: its checks, its files and its locks.
//!
//! ```text
//! <dir>/FORMAT              "tenure-local 1": refused if unknown or newer
//! <dir>/lock                flock'ed exclusively for every change
//! <dir>/state               the whole state (see state.rs), replaced atomically
//! <dir>/sessions/<id>.lock  flock'ed by the live process owning session <id>;
//!                           the kernel releases it the moment that process dies
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tenure_core::Error;

use crate::state::State;

const FORMAT: &str = "tenure-local 1\n";
const FORMAT_PREFIX: &str = "tenure-local ";

/// Which files of the directory are tenure's: anything else makes an
/// uninitialized directory off limits.
const OWN_FILES: &[&str] = &["FORMAT", "lock", "state", "state.tmp", "sessions"];

pub(crate) struct Dir {
    root: PathBuf,
}

fn io_error(what: String, e: std::io::Error) -> Error {
    Error::Backend {
        message: what,
        source: Some(Box::new(e)),
    }
}

fn bad_path(path: &Path, rule: String) -> Error {
    Error::invalid("path", &path.display().to_string(), rule)
}

/// Refuses a file or directory that others could write: whoever can write it
/// can take leadership.
fn check_private(path: &Path) -> Result<(), Error> {
    let meta = fs::symlink_metadata(path)
        .map_err(|e| io_error(format!("cannot inspect {}", path.display()), e))?;
    if meta.file_type().is_symlink() {
        return Err(bad_path(
            path,
            "is a symbolic link; tenure's files must be real files".into(),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(bad_path(
            path,
            format!(
                "is writable by other users (mode {mode:o}): anyone who can write it can take \
                 leadership; restrict it (e.g. chmod go-w) and retry"
            ),
        ));
    }
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if let Some(me) = me {
        if meta.uid() != me && me != 0 {
            return Err(bad_path(
                path,
                format!("belongs to user id {}, not to this user ({me})", meta.uid()),
            ));
        }
    }
    Ok(())
}

impl Dir {
    /// Opens `root`, creating and initializing it if needed, and checks it.
    pub(crate) fn open(root: &Path) -> Result<Dir, Error> {
        if !root.is_absolute() {
            return Err(bad_path(root, "must be an absolute path".into()));
        }
        match fs::metadata(root) {
            Ok(meta) if !meta.is_dir() => {
                return Err(bad_path(root, "is a file, not a directory".into()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(root)
                    .map_err(|e| {
                        bad_path(root, format!("does not exist and cannot be created: {e}"))
                    })?;
            }
            Err(e) if e.kind() == ErrorKind::NotADirectory => {
                return Err(bad_path(
                    root,
                    "does not exist and cannot be created: one of its parents is a file".into(),
                ));
            }
            Err(e) => return Err(bad_path(root, format!("cannot be inspected: {e}"))),
        }
        check_private(root)?;
        let dir = Dir {
            root: root.to_owned(),
        };
        let lock = dir.open_lock_file()?;
        // Initialize under the lock, so two processes starting at once agree.
        let guard = dir.lock(&lock)?;
        dir.initialize()?;
        drop(guard);
        Ok(dir)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.path("state")
    }

    fn session_path(&self, session: u64) -> PathBuf {
        self.root.join("sessions").join(format!("{session}.lock"))
    }

    fn initialize(&self) -> Result<(), Error> {
        let format_path = self.path("FORMAT");
        match fs::read(&format_path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                if text != FORMAT {
                    let what = if text.starts_with(FORMAT_PREFIX) {
                        format!(
                            "is format {:?}, which this release does not know (it knows {:?}); \
                             use the release that wrote it",
                            text.trim(),
                            FORMAT.trim()
                        )
                    } else {
                        format!("is not a tenure format marker: {:?}", text.trim())
                    };
                    return Err(Error::Corrupted {
                        key: format_path.display().to_string(),
                        reason: what,
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let foreign: Vec<String> = fs::read_dir(&self.root)
                    .map_err(|e| io_error(format!("cannot list {}", self.root.display()), e))?
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| !OWN_FILES.contains(&name.as_str()))
                    .collect();
                if !foreign.is_empty() {
                    return Err(bad_path(
                        &self.root,
                        format!(
                            "holds other files ({}) and no tenure FORMAT marker; use an empty \
                             or new directory",
                            foreign.join(", ")
                        ),
                    ));
                }
                DirBuilder::new()
                    .mode(0o700)
                    .create(self.path("sessions"))
                    .or_else(|e| {
                        if e.kind() == ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| io_error("cannot create the sessions directory".into(), e))?;
                self.write_atomic(&State::default())?;
                self.write_file(&format_path, FORMAT.as_bytes())?;
            }
            Err(e) => {
                return Err(io_error(
                    format!("cannot read {}", format_path.display()),
                    e,
                ))
            }
        }
        for name in ["FORMAT", "lock", "state", "sessions"] {
            check_private(&self.path(name))?;
        }
        Ok(())
    }

    pub(crate) fn open_lock_file(&self) -> Result<File, Error> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.path("lock"))
            .map_err(|e| io_error("cannot open the lock file".into(), e))
    }

    /// Takes the directory's exclusive lock (blocking) on `file`, an open
    /// handle of the lock file; released when the guard drops.
    pub(crate) fn lock<'a>(&self, file: &'a File) -> Result<LockGuard<'a>, Error> {
        file.lock().map_err(|e| lock_error(&self.path("lock"), e))?;
        Ok(LockGuard(file))
    }

    /// Reads the state file.
    pub(crate) fn read_state(&self) -> Result<State, Error> {
        self.read_state_with_header().map(|(_, state)| state)
    }

    /// Reads the state file, with its header line.
    pub(crate) fn read_state_with_header(&self) -> Result<(Vec<u8>, State), Error> {
        let path = self.state_path();
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| io_error(format!("cannot read {}", path.display()), e))?;
        let state = State::decode(&path.display().to_string(), &bytes)?;
        Ok((State::header_of(&bytes).to_vec(), state))
    }

    /// Reads just the header line of the state file: it changes with every
    /// change of the state.
    pub(crate) fn read_header(&self) -> Result<Vec<u8>, Error> {
        let path = self.state_path();
        let mut buf = [0u8; 128];
        let n = File::open(&path)
            .and_then(|mut f| f.read(&mut buf))
            .map_err(|e| io_error(format!("cannot read {}", path.display()), e))?;
        Ok(State::header_of(&buf[..n]).to_vec())
    }

    /// Replaces the state file atomically and durably.
    pub(crate) fn write_atomic(&self, state: &State) -> Result<(), Error> {
        let tmp = self.path("state.tmp");
        self.write_file(&tmp, &state.encode())?;
        fs::rename(&tmp, self.state_path())
            .map_err(|e| io_error("cannot replace the state file".into(), e))?;
        self.sync_dir()
    }

    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        write().map_err(|e| io_error(format!("cannot write {}", path.display()), e))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync the directory".into(), e))
    }

    /// Creates and locks the file of a new session. The lock is taken before the
    /// file appears under its name, so nobody can find it unlocked and mistake
    /// the session for dead.
    pub(crate) fn create_session(&self, session: u64) -> Result<File, Error> {
        let tmp = self.root.join("sessions").join(format!(".new-{session}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_error("cannot create a session file".into(), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Backend {
                    message: format!(
                        "session file {} is locked by another process",
                        tmp.display()
                    ),
                    source: None,
                })
            }
            Err(TryLockError::Error(e)) => return Err(lock_error(&tmp, e)),
        }
        let _ = writeln!(&file, "{}", std::process::id());
        fs::rename(&tmp, self.session_path(session))
            .map_err(|e| io_error("cannot publish a session file".into(), e))?;
        Ok(file)
    }

    /// Whether the process owning `session` is alive (holds its lock).
    pub(crate) fn session_alive(&self, session: u64) -> Result<bool, Error> {
        let path = self.session_path(session);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(format!("cannot open {}", path.display()), e)),
        };
        match file.try_lock() {
            // We got the lock, so its owner is gone; dropping `file` releases it.
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(lock_error(&path, e)),
        }
    }

    /// Opens the file of `session` for repeated [`probe`](Dir::probe)s; `None`
    /// if it is gone (the session is dead).
    pub(crate) fn open_session(&self, session: u64) -> Result<Option<File>, Error> {
        let path = self.session_path(session);
        match File::open(&path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format!("cannot open {}", path.display()), e)),
        }
    }

    /// Whether the owner of the session file `file` is alive: it holds the lock.
    pub(crate) fn probe(&self, file: &File) -> Result<bool, Error> {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(false)
            }
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(lock_error(&self.root, e)),
        }
    }

    /// Deletes the file of a dead or closed session.
    pub(crate) fn remove_session(&self, session: u64) {
        let _ = fs::remove_file(self.session_path(session));
    }
}

fn lock_error(path: &Path, e: std::io::Error) -> Error {
    if matches!(e.kind(), ErrorKind::Unsupported) || e.raw_os_error() == Some(37) {
        // ENOLCK (37): the filesystem does not support flock (some network mounts).
        Error::Unsupported {
            backend: "local",
            what:
                "a filesystem without file locks (flock); put the directory on a local filesystem",
        }
    } else {
        io_error(format!("cannot lock {}", path.display()), e)
    }
}

/// Holds the directory lock until dropped.
pub(crate) struct LockGuard<'a>(&'a File);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
