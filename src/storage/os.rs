//! [`Storage`] on the real file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileView, Storage, ViewInner, WritableFile};
use crate::error::{Error, Result};

/// The operating system's file system, with real `fdatasync` and directory `fsync`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

struct OsFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl WritableFile for OsFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .write_all(buf)
            .map_err(|e| Error::io(&self.path, "write", e))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, "fdatasync", e))
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn background_syncer(&self) -> Option<Box<dyn FnMut() -> Result<()> + Send>> {
        // A second descriptor of the same open file: fdatasync through it flushes what this
        // one wrote.
        let file = self.file.try_clone().ok()?;
        let path = self.path.clone();
        Some(Box::new(move || {
            file.sync_data()
                .map_err(|e| Error::io(&path, "fdatasync", e))
        }))
    }
}

impl Storage for OsStorage {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = File::create(path).map_err(|e| Error::io(path, "create", e))?;
        Ok(Box::new(OsFile {
            path: path.to_path_buf(),
            file,
            len: 0,
        }))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(path, "open for append", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "stat", e))?
            .len();
        Ok(Box::new(OsFile {
            path: path.to_path_buf(),
            file,
            len,
        }))
    }

    fn read_all(&self, path: &Path) -> Result<FileView> {
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "stat", e))?
            .len();
        if len == 0 {
            return Ok(FileView::from_vec(Vec::new()));
        }
        // SAFETY: the map is read-only. keeper publishes files by rename and never edits a
        // published file in place, so no writer of ours changes the bytes under the map; a
        // foreign process truncating the file would fault the reader, as with any mmap reader.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, "mmap", e))?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(FileView(ViewInner::Mapped(Arc::new(map))))
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn io::Read + Send>> {
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file)))
    }

    fn len(&self, path: &Path) -> Result<Option<u64>> {
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, "stat", e)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io(from, "rename", e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io(path, "remove", e))
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io(from, "rename directory", e))
    }

    fn remove_dir(&self, dir: &Path) -> Result<()> {
        fs::remove_dir(dir).map_err(|e| Error::io(dir, "remove directory", e))
    }

    fn exchange_dirs(&self, a: &Path, b: &Path) -> Result<()> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c_path = |p: &Path| {
            CString::new(p.as_os_str().as_bytes()).map_err(|e| {
                Error::io(
                    p,
                    "exchange directories",
                    io::Error::new(io::ErrorKind::InvalidInput, e),
                )
            })
        };
        let (ca, cb) = (c_path(a)?, c_path(b)?);
        // SAFETY: both arguments are valid NUL-terminated strings that outlive the call, which
        // only reads them; AT_FDCWD makes relative paths relative to the working directory.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        let e = match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS) => io::Error::new(io::ErrorKind::Unsupported, e),
            _ => e,
        };
        Err(Error::io(a, "exchange directories", e))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open for truncate", e))?;
        file.set_len(len)
            .map_err(|e| Error::io(path, "truncate", e))?;
        file.sync_data()
            .map_err(|e| Error::io(path, "fdatasync after truncate", e))
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let handle = File::open(dir).map_err(|e| Error::io(dir, "open directory", e))?;
        handle
            .sync_all()
            .map_err(|e| Error::io(dir, "fsync directory", e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, "list directory", e))? {
            let entry = entry.map_err(|e| Error::io(dir, "list directory", e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn available_space(&self, dir: &Path) -> Result<u64> {
        fs4::available_space(dir).map_err(|e| Error::io(dir, "statvfs", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::publish_atomically;

    #[test]
    fn publish_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rdb");
        let storage = OsStorage;
        publish_atomically(&storage, &path, |f| f.write_all(b"one")).unwrap();
        publish_atomically(&storage, &path, |f| f.write_all(b"two")).unwrap();
        assert_eq!(&*storage.read_all(&path).unwrap(), b"two");
        // A failing fill leaves the published file and no temp file behind.
        let err = publish_atomically(&storage, &path, |_| Err(Error::corrupt(0, "boom")));
        assert!(err.is_err());
        assert_eq!(&*storage.read_all(&path).unwrap(), b"two");
        assert_eq!(
            storage.list(dir.path()).unwrap(),
            vec!["dump.rdb".to_string()]
        );
    }

    #[test]
    fn empty_file_reads_as_empty_view() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        OsStorage.create(&path).unwrap();
        assert!(OsStorage.read_all(&path).unwrap().is_empty());
        assert_eq!(OsStorage.len(&path).unwrap(), Some(0));
        assert_eq!(OsStorage.len(&dir.path().join("missing")).unwrap(), None);
    }
}
