//! The one narrow I/O interface of the engine.
//!
//! Every file and directory operation keeper performs on its data goes through [`Storage`], so
//! crash and fault tests can swap the real file system ([`OsStorage`]) for a simulated one that
//! keeps separate *live* and *durable* images and injects faults.
//!
//! Contract (the media assumptions of DESIGN.md):
//! - bytes written are durable only after [`WritableFile::sync_data`] returns `Ok`;
//! - a created, renamed or removed directory entry is durable only after [`Storage::sync_dir`]
//!   on its parent returns `Ok`;
//! - an error from `sync_data` or `sync_dir` is final: the caller must not retry and trust the
//!   result (Linux may have dropped the dirty pages already).

mod os;
mod scrambled;
mod sim;

use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use os::OsStorage;
pub use scrambled::ScrambledStorage;
pub use sim::{CrashMode, FaultError, FaultPlan, OpKind, SimStorage};

use crate::error::Result;
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use crate::failpoints;

/// The environment variable that selects the engine's storage: unset (or `os`) for the real
/// file system, `scrambled` for [`ScrambledStorage`] over it, which the test suite uses for its
/// second run (TESTING.md).
pub const STORAGE_ENV: &str = "KEEPER_STORAGE";

/// The storage a node uses for its data folder: [`OsStorage`], or the same behind
/// [`ScrambledStorage`] when [`STORAGE_ENV`] is `scrambled`, so that every engine test can run
/// a second time with files only the trait can read back.
pub fn from_env() -> Result<Arc<dyn Storage>> {
    match std::env::var(STORAGE_ENV).as_deref() {
        Err(_) | Ok("") | Ok("os") => Ok(Arc::new(OsStorage)),
        Ok("scrambled") => Ok(Arc::new(ScrambledStorage::new(OsStorage))),
        Ok(other) => Err(crate::Error::InvalidArgument(format!(
            "{STORAGE_ENV}={other}: expected `os` or `scrambled`"
        ))),
    }
}

/// File and directory operations, as the engine needs them.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Opens `path` for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// The whole content of `path` as one read-only view (memory-mapped where possible).
    fn read_all(&self, path: &Path) -> Result<FileView>;
    /// A streaming reader over `path`.
    fn open_read(&self, path: &Path) -> Result<Box<dyn io::Read + Send>>;
    /// Length of `path` in bytes, `None` if it does not exist.
    fn len(&self, path: &Path) -> Result<Option<u64>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Renames the directory `from` (with everything in it) to `to`, which must not exist or
    /// be an empty directory. Durable once the parent of `to` is synced.
    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes the empty directory `dir`.
    fn remove_dir(&self, dir: &Path) -> Result<()>;
    /// Swaps the directories `a` and `b` atomically (Linux `renameat2(RENAME_EXCHANGE)`), so a
    /// crash leaves one or the other at each name, never neither. Durable once their parent
    /// is synced. A file system without the call gives an error of kind `Unsupported`.
    fn exchange_dirs(&self, a: &Path, b: &Path) -> Result<()>;
    /// Truncates `path` to `len` bytes.
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Makes the directory entries of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Names of the entries of `dir`, sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Free bytes available to this process on the file system holding `dir`.
    fn available_space(&self, dir: &Path) -> Result<u64>;
}

/// A file open for writing.
pub trait WritableFile: Send {
    /// Writes all of `buf` at the end of what was written so far.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> Result<()>;
    /// Bytes in the file (as the process sees it).
    fn len(&self) -> u64;
    /// True when nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A way to `fdatasync` this file from another thread, while this handle keeps writing:
    /// the background save flushes one chunk while it writes the next. `None` (the default)
    /// when the file cannot offer one; callers then call [`WritableFile::sync_data`].
    fn background_syncer(&self) -> Option<Box<dyn FnMut() -> Result<()> + Send>> {
        None
    }
}

/// Read-only bytes of a whole file: a memory map, or owned bytes.
#[derive(Debug, Clone)]
pub struct FileView(ViewInner);

#[derive(Debug, Clone)]
enum ViewInner {
    Mapped(Arc<memmap2::Mmap>),
    Owned(Arc<[u8]>),
}

impl FileView {
    /// A view over owned bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        FileView(ViewInner::Owned(bytes.into()))
    }
}

impl AsRef<[u8]> for FileView {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Deref for FileView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            ViewInner::Mapped(map) => map,
            ViewInner::Owned(bytes) => bytes,
        }
    }
}

/// Publishes `path` atomically: writes a temp file beside it with `fill`, syncs it, renames it
/// over `path` and syncs the directory. A crash at any step leaves either the old file or the
/// new one, never a mix; on error the temp file is removed and `path` is untouched.
pub fn publish_atomically(
    storage: &dyn Storage,
    path: &Path,
    fill: impl FnOnce(&mut dyn WritableFile) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!("temp-{}-{}", std::process::id(), name));
    let result = (|| {
        let mut file = storage.create(&temp)?;
        fill(file.as_mut())?;
        fail::fail_point!(failpoints::PUBLISH_BEFORE_SYNC, |_| Err(
            failpoints::injected(failpoints::PUBLISH_BEFORE_SYNC)
        ));
        file.sync_data()?;
        drop(file);
        fail::fail_point!(failpoints::PUBLISH_BEFORE_RENAME, |_| Err(
            failpoints::injected(failpoints::PUBLISH_BEFORE_RENAME)
        ));
        storage.rename(&temp, path)?;
        fail::fail_point!(failpoints::PUBLISH_BEFORE_SYNC_DIR, |_| Err(
            failpoints::injected(failpoints::PUBLISH_BEFORE_SYNC_DIR)
        ));
        storage.sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the temp file is garbage either way, and the original error matters.
        let _ = storage.remove(&temp);
    }
    result
}
