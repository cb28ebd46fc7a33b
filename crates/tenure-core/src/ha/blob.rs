//! The blob store: state too large for the coordination service, in files.
//!
//! Layout under the configured base directory:
//!
//! ```text
//! <base>/<cluster-id>/jobs/<job-id>/<kind>-<uuid>.blob    a blob
//! <base>/<cluster-id>/jobs/<job-id>/.tmp-<uuid>           a blob being written
//! ```
//!
//! A blob is written to a temporary file, fsynced, renamed into place and its
//! directory fsynced, so a crash leaves either no blob or a whole one; every
//! blob has a fresh name, so no write ever replaces another's blob. The
//! backend keeps a [`BlobPointer`] with the blob's size and CRC-32, and a read
//! whose bytes do not match it fails with [`Error::Corrupted`]: a damaged blob
//! is never served. Blobs are deleted only after the pointer to them is gone
//! (a store dropping an old checkpoint, a cleanup) or, for blobs no pointer
//! references, by [`HaServices::collect_orphans`](super::HaServices::collect_orphans)
//! after a grace period.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path as FsPath, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::JobId;
use crate::checksum::crc32;
use crate::error::{Error, Result};
use crate::name::{validate_id, Id};

const SUFFIX: &str = ".blob";
const TEMP_PREFIX: &str = ".tmp-";

/// Where a blob is, and what it must contain: kept in the backend.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPointer {
    name: String,
    size: u64,
    crc32: u32,
}

impl fmt::Debug for BlobPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobPointer")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("crc32", &format_args!("{:08x}", self.crc32))
            .finish()
    }
}

impl BlobPointer {
    /// The blob's name inside the cluster's blob directory
    /// (`jobs/<job-id>/<file>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its CRC-32.
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// Checks a pointer read from `key` belongs to `job` and cannot leave the
    /// blob directory: `jobs/<job>/<file>.blob`, every segment a valid id.
    pub(crate) fn check(&self, key: &str, job: &JobId) -> Result<()> {
        let parts: Vec<&str> = self.name.split('/').collect();
        let ok = matches!(parts[..], ["jobs", j, file]
            if j == job.as_str()
                && file.ends_with(SUFFIX)
                && validate_id("blob", file).is_ok());
        if ok {
            Ok(())
        } else {
            Err(Error::Corrupted {
                key: key.to_owned(),
                reason: format!("blob pointer {:?} is not a blob of job {job}", self.name),
            })
        }
    }
}

/// A blob file found by [`BlobStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobFile {
    /// Its name inside the cluster's blob directory (as in [`BlobPointer::name`]).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last modified.
    pub modified: SystemTime,
    /// Whether it is an unfinished temporary file rather than a blob.
    pub temporary: bool,
}

/// Blobs of one cluster in a directory: `<base>/<cluster-id>`.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

fn io_error(what: String) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::Backend {
        message: format!("blob store: {what}: {e}"),
        source: Some(Box::new(e)),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Backend {
            message: format!("blob store task failed: {e}"),
            source: None,
        })?
}

impl BlobStore {
    /// The blob store of `cluster_id` (validated) under `base`. Nothing is
    /// created until the first blob is written.
    pub fn new(base: impl Into<PathBuf>, cluster_id: &str) -> Result<Self> {
        let cluster = Id::new("cluster_id", cluster_id)?;
        Ok(BlobStore {
            root: base.into().join(cluster.as_str()),
        })
    }

    /// The cluster's blob directory.
    pub fn root(&self) -> &FsPath {
        &self.root
    }

    fn job_dir(&self, job: &JobId) -> PathBuf {
        self.root.join("jobs").join(job.as_str())
    }

    /// Writes `data` as a new blob of `job`; `kind` (a fixed, valid name such as
    /// `checkpoint`) starts the file name. Returns once the blob is durable.
    pub async fn put(&self, job: &JobId, kind: &'static str, data: Vec<u8>) -> Result<BlobPointer> {
        validate_id("blob kind", kind)?;
        let dir = self.job_dir(job);
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let file = format!("{kind}-{unique}{SUFFIX}");
        let name = format!("jobs/{job}/{file}");
        let pointer = BlobPointer {
            name,
            size: data.len() as u64,
            crc32: crc32(&data),
        };
        let root = self.root.clone();
        blocking(move || {
            create_dirs(&root, &dir)?;
            let temp = dir.join(format!("{TEMP_PREFIX}{unique}"));
            let target = dir.join(&file);
            let write = || -> io::Result<()> {
                let mut out = open_new(&temp)?;
                out.write_all(&data)?;
                out.sync_all()?;
                std::fs::rename(&temp, &target)?;
                sync_dir(&dir)
            };
            write().map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                io_error(format!("writing {}", target.display()))(e)
            })
        })
        .await?;
        Ok(pointer)
    }

    /// Reads the blob `pointer` names, verifying its size and checksum:
    /// [`Error::Corrupted`] if they do not match, [`Error::NotFound`] if the
    /// blob is gone.
    pub async fn get(&self, pointer: &BlobPointer) -> Result<Vec<u8>> {
        let path = self.path_of(pointer)?;
        let pointer = pointer.clone();
        blocking(move || {
            let data = match std::fs::read(&path) {
                Ok(data) => data,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::NotFound {
                        key: format!("blob {}", pointer.name),
                    })
                }
                Err(e) => return Err(io_error(format!("reading {}", path.display()))(e)),
            };
            if data.len() as u64 != pointer.size || crc32(&data) != pointer.crc32 {
                return Err(Error::Corrupted {
                    key: format!("blob {}", pointer.name),
                    reason: format!(
                        "{} bytes with CRC-32 {:08x}, the pointer says {} bytes with CRC-32 {:08x}",
                        data.len(),
                        crc32(&data),
                        pointer.size,
                        pointer.crc32
                    ),
                });
            }
            Ok(data)
        })
        .await
    }

    /// Deletes the blob `pointer` names; returns whether it existed. Call it
    /// only once no pointer to it is left in the backend.
    pub async fn delete(&self, pointer: &BlobPointer) -> Result<bool> {
        let path = self.path_of(pointer)?;
        self.delete_file(path).await
    }

    async fn delete_file(&self, path: PathBuf) -> Result<bool> {
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir).map_err(io_error(format!("syncing {}", dir.display())))?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(format!("deleting {}", path.display()))(e)),
        })
        .await
    }

    /// Deletes a blob or temporary file by its name from [`list`](Self::list).
    pub(crate) async fn delete_name(&self, name: &str) -> Result<bool> {
        let path = self.checked_path(name)?;
        self.delete_file(path).await
    }

    /// Every blob and temporary file of the cluster, in name order.
    pub async fn list(&self) -> Result<Vec<BlobFile>> {
        let jobs = self.root.join("jobs");
        blocking(move || {
            let mut out = Vec::new();
            for job in read_dir(&jobs)? {
                let Some(job_name) = job.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                for file in read_dir(&job.path())? {
                    let Some(file_name) = file.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    let meta = file
                        .metadata()
                        .map_err(io_error(format!("reading {}", file.path().display())))?;
                    if !meta.is_file() {
                        continue;
                    }
                    out.push(BlobFile {
                        temporary: file_name.starts_with(TEMP_PREFIX),
                        name: format!("jobs/{job_name}/{file_name}"),
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    /// Removes the directory of `job` with every blob in it. Idempotent.
    pub(crate) async fn remove_job(&self, job: &JobId) -> Result<()> {
        let dir = self.job_dir(job);
        let parent = self.root.join("jobs");
        blocking(move || remove_tree(&dir, &parent)).await
    }

    /// Removes the cluster's blob directory, and nothing outside it. Idempotent.
    pub(crate) async fn remove_all(&self) -> Result<()> {
        let root = self.root.clone();
        let parent = root.parent().map(FsPath::to_path_buf);
        blocking(move || match parent {
            Some(parent) => remove_tree(&root, &parent),
            None => Ok(()),
        })
        .await
    }

    fn path_of(&self, pointer: &BlobPointer) -> Result<PathBuf> {
        self.checked_path(&pointer.name)
    }

    /// The file of `name`, refusing any name that could leave the directory.
    fn checked_path(&self, name: &str) -> Result<PathBuf> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts[..] {
            ["jobs", job, file]
                if validate_id("blob", job).is_ok() && validate_id("blob", file).is_ok() =>
            {
                Ok(self.root.join("jobs").join(job).join(file))
            }
            _ => Err(Error::invalid(
                "blob",
                name,
                "is not a blob name of this store",
            )),
        }
    }
}

fn read_dir(dir: &FsPath) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<io::Result<Vec<_>>>()
            .map_err(io_error(format!("listing {}", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(format!("listing {}", dir.display()))(e)),
    }
}

fn remove_tree(dir: &FsPath, parent: &FsPath) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(format!("removing {}", dir.display()))(e)),
    }
    match sync_dir(parent) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_error(format!("syncing {}", parent.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Creates `<root>/jobs/<job>` (mode 0700 on Unix), syncing each parent whose
/// entry was added, so the new directory survives a crash.
fn create_dirs(root: &FsPath, dir: &FsPath) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    for d in missing.iter().rev() {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(format!("creating {}", d.display()))(e)),
        }
        if let Some(parent) = d.parent() {
            sync_dir(parent).map_err(io_error(format!("syncing {}", parent.display())))?;
        }
    }
    debug_assert!(dir.starts_with(root));
    Ok(())
}

fn open_new(path: &FsPath) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes a directory's entries (a rename, a new or removed file) durable.
fn sync_dir(dir: &FsPath) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
