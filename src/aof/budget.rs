//! The AOF disk budget: `aof-max-disk-size` bounds every byte of the AOF directory (base, incr
//! and history files) plus a rewrite in progress, and `aof-disk-reserve` keeps real free space
//! on the file system beyond the AOF's next write.
//!
//! Redis lets the log grow until the disk is full, then fails writes (and, under `always`,
//! exits). keeper refuses a write *before* it would cross the budget, keeps serving reads, and
//! starts a rewrite early so space comes back by itself (see [`super::Aof`]).
//!
//! Two mechanisms enforce it:
//! - [`Budget::refusal`] is asked before a write command runs, with the bytes it may append;
//! - [`CappedStorage`] wraps the storage a background rewrite writes through, so the new base
//!   cannot grow past what the budget leaves: its writes fail (and the rewrite with them, leaving
//!   the old files authoritative) instead of filling the disk.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::storage::{FileView, Storage, WritableFile};

/// Slack added to a write's own size when asking the budget: the propagated form of a command
/// can be a little longer than its request (`SET … EX` → `SET … PXAT <ms>`, a `SELECT`, a
/// `MULTI`/`EXEC` around it, a `#TS:` line).
pub const WRITE_SLACK: u64 = 128;

/// The budget's configuration and counters.
#[derive(Debug, Default, Clone)]
pub struct Budget {
    /// `aof-max-disk-size`: 0 = unlimited.
    pub max_bytes: u64,
    /// `aof-disk-reserve`: free space to keep on the file system.
    pub reserve: u64,
    /// Free space the file system reported at the last check, less what was appended since.
    free_space: Option<u64>,
    /// Writes refused since start (`aof_budget_refusals`).
    pub refusals: u64,
    /// Why the last write was refused, for INFO and the log.
    pub last_refusal: Option<String>,
}

impl Budget {
    /// A budget of `max_bytes` (0 = unlimited) keeping `reserve` bytes free.
    pub fn new(max_bytes: u64, reserve: u64) -> Self {
        Budget {
            max_bytes,
            reserve,
            ..Budget::default()
        }
    }

    /// Records the free space the file system reports now (the cron asks about once per cycle;
    /// `statvfs` is too slow to ask per write).
    pub fn observe_free_space(&mut self, free: u64) {
        self.free_space = Some(free);
    }

    /// Counts `bytes` appended since the last [`Budget::observe_free_space`].
    pub fn appended(&mut self, bytes: u64) {
        if let Some(free) = &mut self.free_space {
            *free = free.saturating_sub(bytes);
        }
    }

    /// Free space at the last check, less what was appended since; `None` before the first.
    pub fn free_space(&self) -> Option<u64> {
        self.free_space
    }

    /// Space writes leave free for a rewrite's new base while none runs, so the rewrite that
    /// gives space back always has room to run: a quarter more than the current base (the
    /// best estimate of the next one), at least an eighth of the budget, at most half.
    /// Zero when the budget is unlimited.
    pub fn rewrite_headroom(&self, base_size: u64) -> u64 {
        if self.max_bytes == 0 {
            return 0;
        }
        base_size
            .saturating_add(base_size / 4)
            .max(self.max_bytes / 8)
            .min(self.max_bytes / 2)
    }

    /// The error a write of about `incoming` bytes gets when the AOF directory already holds
    /// `usage` bytes and `headroom` must stay free for a rewrite, or `None` when it may go
    /// ahead. Counts the refusal.
    pub fn refusal(&mut self, usage: u64, incoming: u64, headroom: u64) -> Option<String> {
        let reason = self.check(usage, incoming, headroom)?;
        self.refusals += 1;
        self.last_refusal = Some(reason.clone());
        Some(reason)
    }

    fn check(&self, usage: u64, incoming: u64, headroom: u64) -> Option<String> {
        let needed = incoming.saturating_add(WRITE_SLACK);
        let limit = self.max_bytes.saturating_sub(headroom);
        if self.max_bytes > 0 && usage.saturating_add(needed) > limit {
            return Some(format!(
                "MISCONF Write refused: the AOF would exceed its disk budget \
                 (aof-max-disk-size {} bytes, {usage} in use, {headroom} kept for a rewrite). \
                 Reads keep working; writes resume when an AOF rewrite frees space.",
                self.max_bytes
            ));
        }
        match self.free_space {
            Some(free) if free < needed.saturating_add(self.reserve) => Some(format!(
                "MISCONF Write refused: the disk holding the AOF has {free} bytes free and \
                 keeper keeps aof-disk-reserve {} bytes free. Reads keep working; writes \
                 resume when space returns.",
                self.reserve
            )),
            _ => None,
        }
    }

    /// Bytes a rewrite may write for its new base while the directory holds `usage`: what is
    /// left of the budget and of the free space above the reserve (`u64::MAX` when neither
    /// limits it).
    pub fn room_for_rewrite(&self, usage: u64) -> u64 {
        let by_budget = match self.max_bytes {
            0 => u64::MAX,
            max => max.saturating_sub(usage),
        };
        let by_disk = self
            .free_space
            .map_or(u64::MAX, |free| free.saturating_sub(self.reserve));
        by_budget.min(by_disk)
    }
}

/// A [`Storage`] whose files may together grow by at most a shared number of bytes: a write
/// that would pass it fails with [`Error::DiskBudget`] and writes nothing.
/// Everything else goes straight to the inner storage.
#[derive(Debug, Clone)]
pub struct CappedStorage {
    inner: Arc<dyn Storage>,
    remaining: Arc<AtomicU64>,
    limit: u64,
}

impl CappedStorage {
    /// `inner`, allowing `limit` bytes to be written through files it creates.
    pub fn new(inner: Arc<dyn Storage>, limit: u64) -> Self {
        CappedStorage {
            inner,
            remaining: Arc::new(AtomicU64::new(limit)),
            limit,
        }
    }

    /// Bytes written so far through this storage's files.
    pub fn written(&self) -> u64 {
        self.limit - self.remaining.load(Ordering::Relaxed)
    }
}

struct CappedFile {
    inner: Box<dyn WritableFile>,
    remaining: Arc<AtomicU64>,
}

impl WritableFile for CappedFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let len = buf.len() as u64;
        let taken = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(len)
            });
        if let Err(left) = taken {
            return Err(Error::DiskBudget { left, needed: len });
        }
        self.inner.write_all(buf)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.inner.sync_data()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn background_syncer(&self) -> Option<Box<dyn FnMut() -> Result<()> + Send>> {
        self.inner.background_syncer()
    }
}

impl Storage for CappedStorage {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(CappedFile {
            inner: self.inner.create(path)?,
            remaining: self.remaining.clone(),
        }))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(CappedFile {
            inner: self.inner.open_append(path)?,
            remaining: self.remaining.clone(),
        }))
    }

    fn read_all(&self, path: &Path) -> Result<FileView> {
        self.inner.read_all(path)
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn io::Read + Send>> {
        self.inner.open_read(path)
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
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn unlimited_budget_refuses_nothing() {
        let mut budget = Budget::new(0, 0);
        assert_eq!(budget.refusal(u64::MAX / 2, 1 << 30, 0), None);
        assert_eq!(budget.rewrite_headroom(1 << 40), 0);
        assert_eq!(budget.refusals, 0);
    }

    #[test]
    fn a_write_that_would_cross_the_budget_is_refused_and_counted() {
        let mut budget = Budget::new(10_000, 0);
        assert_eq!(budget.refusal(5_000, 1_000, 0), None);
        assert!(
            budget.refusal(5_000, 1_000, 4_000).is_some(),
            "headroom kept"
        );
        budget.refusals = 0;
        let refusal = budget.refusal(9_900, 1_000, 0).expect("over budget");
        assert!(refusal.starts_with("MISCONF "), "{refusal}");
        assert!(refusal.contains("aof-max-disk-size 10000"), "{refusal}");
        assert_eq!(budget.refusals, 1);
        assert_eq!(budget.last_refusal.as_deref(), Some(&refusal[..]));
    }

    #[test]
    fn the_reserve_of_free_space_is_kept() {
        let mut budget = Budget::new(0, 1_000);
        budget.observe_free_space(2_000);
        assert_eq!(budget.refusal(0, 100, 0), None);
        budget.appended(900);
        let refusal = budget.refusal(0, 100, 0).expect("reserve reached");
        assert!(refusal.contains("aof-disk-reserve 1000"), "{refusal}");
        budget.observe_free_space(50_000);
        assert_eq!(budget.refusal(0, 100, 0), None);
    }

    #[test]
    fn headroom_for_a_rewrite_follows_the_base_within_bounds() {
        let budget = Budget::new(80_000, 0);
        assert_eq!(budget.rewrite_headroom(0), 10_000);
        assert_eq!(budget.rewrite_headroom(16_000), 20_000);
        assert_eq!(budget.rewrite_headroom(70_000), 40_000);
    }

    #[test]
    fn room_for_a_rewrite_is_the_tighter_limit() {
        let mut budget = Budget::new(10_000, 1_000);
        assert_eq!(budget.room_for_rewrite(4_000), 6_000);
        budget.observe_free_space(3_000);
        assert_eq!(budget.room_for_rewrite(4_000), 2_000);
        assert_eq!(Budget::new(0, 0).room_for_rewrite(1), u64::MAX);
    }

    #[test]
    fn capped_storage_fails_the_write_that_would_pass_the_cap_and_writes_nothing_of_it() {
        let sim = Arc::new(SimStorage::new(1));
        let capped = CappedStorage::new(sim.clone(), 10);
        let path = Path::new("/d/f");
        sim.create_dir_all(Path::new("/d")).unwrap();
        let mut file = capped.create(path).unwrap();
        file.write_all(b"123456").unwrap();
        let err = file.write_all(b"12345").unwrap_err();
        assert!(err.to_string().contains("disk budget"), "{err}");
        file.write_all(b"1234").unwrap();
        assert_eq!(&sim.read_all(path).unwrap()[..], b"1234561234");
        assert_eq!(capped.written(), 10);
    }
}
