//! A backend that transforms every byte on the way in and out.
//!
//! [`ScrambledStorage`] wraps another [`Storage`] and XORs each byte with a mask that depends
//! on its offset in the file, so files on the inner storage are unreadable as RDB or AOF while
//! everything read back through the wrapper is exactly what was written. The engine's tests
//! run a second time on it (`KEEPER_STORAGE=scrambled`, see TESTING.md): a code path that
//! reads or writes engine files without going through the trait then reads scrambled bytes, or
//! leaves plain bytes that the wrapper scrambles on read, and fails.

use std::io;
use std::path::Path;

use super::{FileView, Storage, WritableFile};
use crate::error::Result;

/// The mask of the byte at `offset`: position-dependent, so appends, truncation and renames
/// keep working, and no constant byte (such as a zero fill) survives unchanged.
fn mask(offset: u64) -> u8 {
    let mixed = (offset ^ 0x5EED).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 56) as u8 ^ 0xA5
}

fn scramble(bytes: &mut [u8], start: u64) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask(start + i as u64);
    }
}

/// [`Storage`] over `S` with every file's bytes transformed (see the module docs).
#[derive(Debug)]
pub struct ScrambledStorage<S> {
    inner: S,
}

impl<S: Storage> ScrambledStorage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        ScrambledStorage { inner }
    }

    /// The wrapped storage (reading through it shows the transformed bytes).
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

struct ScrambledFile {
    inner: Box<dyn WritableFile>,
    buffer: Vec<u8>,
}

impl WritableFile for ScrambledFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let start = self.inner.len();
        self.buffer.clear();
        self.buffer.extend_from_slice(buf);
        scramble(&mut self.buffer, start);
        self.inner.write_all(&self.buffer)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.inner.sync_data()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

struct ScrambledReader {
    inner: Box<dyn io::Read + Send>,
    offset: u64,
}

impl io::Read for ScrambledReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        scramble(&mut buf[..n], self.offset);
        self.offset += n as u64;
        Ok(n)
    }
}

impl<S: Storage> Storage for ScrambledStorage<S> {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(ScrambledFile {
            inner: self.inner.create(path)?,
            buffer: Vec::new(),
        }))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(ScrambledFile {
            inner: self.inner.open_append(path)?,
            buffer: Vec::new(),
        }))
    }

    fn read_all(&self, path: &Path) -> Result<FileView> {
        let mut bytes = self.inner.read_all(path)?.to_vec();
        scramble(&mut bytes, 0);
        Ok(FileView::from_vec(bytes))
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(ScrambledReader {
            inner: self.inner.open_read(path)?,
            offset: 0,
        }))
    }

    fn len(&self, path: &Path) -> Result<Option<u64>> {
        self.inner.len(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename_dir(from, to)
    }

    fn remove_dir(&self, dir: &Path) -> Result<()> {
        self.inner.remove_dir(dir)
    }

    fn exchange_dirs(&self, a: &Path, b: &Path) -> Result<()> {
        self.inner.exchange_dirs(a, b)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.inner.truncate(path, len)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.inner.sync_dir(dir)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn available_space(&self, dir: &Path) -> Result<u64> {
        self.inner.available_space(dir)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::storage::{OsStorage, SimStorage};

    #[test]
    fn round_trips_through_appends_and_truncation_while_the_inner_bytes_differ() {
        let storage = ScrambledStorage::new(SimStorage::new(1));
        let path = Path::new("f");
        let mut file = storage.create(path).unwrap();
        file.write_all(b"REDIS0010").unwrap();
        file.write_all(&[0; 7]).unwrap();
        file.sync_data().unwrap();
        drop(file);
        let mut file = storage.open_append(path).unwrap();
        file.write_all(b"tail").unwrap();
        drop(file);
        let expected = [&b"REDIS0010"[..], &[0; 7], b"tail"].concat();
        assert_eq!(&storage.read_all(path).unwrap()[..], &expected[..]);
        let mut streamed = Vec::new();
        storage
            .open_read(path)
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, expected);
        let raw = storage.inner().read_all(path).unwrap();
        assert_eq!(raw.len(), expected.len());
        assert!(
            raw.iter().zip(&expected).all(|(a, b)| a != b),
            "every byte is transformed"
        );
        storage.truncate(path, 9).unwrap();
        assert_eq!(&storage.read_all(path).unwrap()[..], b"REDIS0010");
    }

    #[test]
    fn a_file_written_around_the_trait_does_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let storage = ScrambledStorage::new(OsStorage);
        let path = dir.path().join("dump.rdb");
        std::fs::write(&path, b"REDIS0010").unwrap();
        assert_ne!(&storage.read_all(&path).unwrap()[..], b"REDIS0010");
    }
}
