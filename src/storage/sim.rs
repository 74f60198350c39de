//! [`SimStorage`]: the [`Storage`] trait in memory, with what a process sees (*live*) kept
//! apart from what would survive a power loss (*durable*), and injectable faults.
//!
//! Model (the media assumptions of DESIGN.md):
//! - a file's bytes become durable only through [`WritableFile::sync_data`] (or `truncate`,
//!   which syncs as [`super::OsStorage`] does);
//! - a directory entry (create, rename, remove) becomes durable only through
//!   [`Storage::sync_dir`] on its parent; `create` of an existing path gives the path a new file
//!   in the live namespace, so until the directory is synced a crash brings the old one back;
//! - [`SimStorage::crash`] replaces the live state with the durable one, optionally keeping some
//!   unsynced bytes ([`CrashMode`]);
//! - a failed `sync_data` loses the bytes it covered for good: a later successful sync does not
//!   make them durable (the fsync error that Linux reports only once).
//!
//! Every random choice comes from the seed given to [`SimStorage::new`], so a run replays.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileView, Storage, WritableFile};
use crate::error::{Error, Result};

/// What survives of unsynced data at a [`SimStorage::crash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing unsynced survives.
    DropUnsynced,
    /// A random prefix of each file's unsynced appended bytes survives.
    KeepRandomPrefix,
    /// Unsynced appended bytes survive but the last write is torn at a random byte.
    TearLastWrite,
    /// The unsynced tail keeps its length but reads as zeros (metadata reached the disk, data
    /// did not).
    ZeroFillTail,
}

/// Kinds of operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Write,
    SyncData,
    SyncDir,
    Rename,
    Remove,
    Read,
    Other,
}

/// Errors a fault injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// `EIO`.
    Io,
    /// `ENOSPC`.
    NoSpace,
}

/// Faults to inject. Default: none.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Fail the Nth operation (1-based, counted from when the plan is set) of the given kind
    /// (`None`: of any kind). A failed write stores a random prefix of its bytes first (a short
    /// write).
    pub fail_nth: Option<(u64, Option<OpKind>, FaultError)>,
    /// Writes beyond this many bytes in all live files fail with `ENOSPC` (after storing what
    /// fits).
    pub byte_budget: Option<u64>,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Length of the last write, for [`CrashMode::TearLastWrite`].
    last_write: usize,
    /// Bytes `[start, end)` that a failed `sync_data` covered: never durable again.
    lost: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    live_dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    plan: FaultPlan,
    ops: u64,
    rng: u64,
}

impl State {
    fn random(&mut self, below: usize) -> usize {
        // xorshift64*: small, seedable, good enough to pick cut points.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if below == 0 {
            0
        } else {
            (r % below as u64) as usize
        }
    }

    /// Counts an operation and returns the fault to inject, if this is the one.
    fn fault(&mut self, kind: OpKind) -> Option<FaultError> {
        let (n, target, error) = self.plan.fail_nth?;
        if target.is_some_and(|t| t != kind) {
            return None;
        }
        self.ops += 1;
        (self.ops == n).then_some(error)
    }

    fn used(&self) -> u64 {
        self.live
            .values()
            .filter_map(|id| self.inodes.get(id))
            .map(|inode| inode.live.len() as u64)
            .sum()
    }

    fn inode_of(&self, path: &Path, op: &'static str) -> Result<u64> {
        self.live
            .get(path)
            .copied()
            .ok_or_else(|| Error::io(path, op, io::Error::from(io::ErrorKind::NotFound)))
    }
}

fn injected(path: &Path, op: &'static str, error: FaultError) -> Error {
    let source = match error {
        FaultError::Io => io::Error::from_raw_os_error(5),
        FaultError::NoSpace => io::Error::from_raw_os_error(28),
    };
    Error::io(path, op, source)
}

/// The directory holding `path`; a bare name lives in `.`.
fn parent(path: &Path) -> PathBuf {
    dir_key(path.parent().unwrap_or(Path::new("")))
}

/// A directory as entries name it: the empty path and `.` are the same directory.
fn dir_key(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    }
}

/// An in-memory [`Storage`] with crash simulation and fault injection. Clones share state.
#[derive(Debug, Clone)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty simulated disk; `seed` drives every random choice.
    pub fn new(seed: u64) -> Self {
        SimStorage {
            state: Arc::new(Mutex::new(State {
                inodes: BTreeMap::new(),
                next_inode: 1,
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
                live_dirs: BTreeSet::new(),
                durable_dirs: BTreeSet::new(),
                plan: FaultPlan::default(),
                ops: 0,
                rng: seed | 1,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Installs a fault plan; operation counting starts again from zero.
    pub fn set_faults(&self, plan: FaultPlan) {
        let mut state = self.lock();
        state.plan = plan;
        state.ops = 0;
    }

    /// Power loss: the live state becomes what was durable, plus what `mode` lets survive.
    pub fn crash(&self, mode: CrashMode) {
        self.lock().crash(mode);
    }

    /// The disk a power loss at this instant would leave, as a separate simulated disk; this
    /// one is untouched. Lets a test cut the power at an exact moment while threads that
    /// write to this disk go on (they cannot write to the copy).
    pub fn crashed_copy(&self, mode: CrashMode) -> SimStorage {
        let mut state = self.lock().clone();
        state.crash(mode);
        state.plan = FaultPlan::default();
        state.ops = 0;
        SimStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }
}

impl State {
    fn crash(&mut self, mode: CrashMode) {
        let ids: Vec<u64> = self.durable.values().copied().collect();
        for id in &ids {
            let Some(mut inode) = self.inodes.get(id).cloned() else {
                continue;
            };
            let mut survived = inode.durable.clone();
            // Unsynced bytes that extend the durable content, as appends leave them.
            let appended = if inode.live.starts_with(&inode.durable) {
                inode.live[inode.durable.len()..].to_vec()
            } else {
                Vec::new()
            };
            match mode {
                CrashMode::DropUnsynced => {}
                CrashMode::KeepRandomPrefix => {
                    let keep = self.random(appended.len() + 1);
                    survived.extend_from_slice(&appended[..keep]);
                }
                CrashMode::TearLastWrite => {
                    let last = inode.last_write.min(appended.len());
                    let keep = appended.len() - last + self.random(last + 1);
                    survived.extend_from_slice(&appended[..keep]);
                }
                CrashMode::ZeroFillTail => survived.resize(survived.len() + appended.len(), 0),
            }
            inode.live = survived.clone();
            inode.durable = survived;
            inode.last_write = 0;
            inode.lost = None;
            self.inodes.insert(*id, inode);
        }
        self.live = self.durable.clone();
        self.live_dirs = self.durable_dirs.clone();
        let reachable: BTreeSet<u64> = ids.into_iter().collect();
        self.inodes.retain(|id, _| reachable.contains(id));
    }
}

struct SimFile {
    storage: SimStorage,
    path: PathBuf,
    inode: u64,
}

impl WritableFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let mut state = self.storage.lock();
        let fault = state.fault(OpKind::Write);
        let room = state
            .plan
            .byte_budget
            .map(|budget| budget.saturating_sub(state.used()) as usize);
        let (stored, error) = match (fault, room) {
            (Some(error), _) => (state.random(buf.len() + 1), Some(error)),
            (None, Some(room)) if room < buf.len() => (room, Some(FaultError::NoSpace)),
            _ => (buf.len(), None),
        };
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| Error::io(&self.path, "write", io::Error::other("file removed")))?;
        inode.live.extend_from_slice(&buf[..stored]);
        inode.last_write = stored;
        match error {
            Some(error) => Err(injected(&self.path, "write", error)),
            None => Ok(()),
        }
    }

    fn sync_data(&mut self) -> Result<()> {
        let mut state = self.storage.lock();
        let fault = state.fault(OpKind::SyncData);
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| Error::io(&self.path, "fdatasync", io::Error::other("file removed")))?;
        if let Some(error) = fault {
            // The dirty bytes are gone for good, though the process still sees them.
            inode.lost = Some((inode.durable.len(), inode.live.len()));
            return Err(injected(&self.path, "fdatasync", error));
        }
        let mut durable = inode.live.clone();
        if let Some((start, end)) = inode.lost {
            let end = end.min(durable.len());
            if start < end {
                durable[start..end].fill(0);
            }
        }
        inode.durable = durable;
        Ok(())
    }

    fn len(&self) -> u64 {
        let state = self.storage.lock();
        state
            .inodes
            .get(&self.inode)
            .map_or(0, |inode| inode.live.len() as u64)
    }
}

impl Storage for SimStorage {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::Create) {
            return Err(injected(path, "create", error));
        }
        let id = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(id, Inode::default());
        state.live.insert(path.to_path_buf(), id);
        drop(state);
        Ok(Box::new(SimFile {
            storage: self.clone(),
            path: path.to_path_buf(),
            inode: id,
        }))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let existing = self.lock().live.get(path).copied();
        match existing {
            Some(id) => Ok(Box::new(SimFile {
                storage: self.clone(),
                path: path.to_path_buf(),
                inode: id,
            })),
            None => self.create(path),
        }
    }

    fn read_all(&self, path: &Path) -> Result<FileView> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::Read) {
            return Err(injected(path, "read", error));
        }
        let id = state.inode_of(path, "open")?;
        Ok(FileView::from_vec(
            state
                .inodes
                .get(&id)
                .map(|i| i.live.clone())
                .unwrap_or_default(),
        ))
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn io::Read + Send>> {
        let bytes = self.read_all(path)?.to_vec();
        Ok(Box::new(io::Cursor::new(bytes)))
    }

    fn len(&self, path: &Path) -> Result<Option<u64>> {
        let state = self.lock();
        Ok(state
            .live
            .get(path)
            .and_then(|id| state.inodes.get(id))
            .map(|inode| inode.live.len() as u64))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::Rename) {
            return Err(injected(from, "rename", error));
        }
        let id = state.inode_of(from, "rename")?;
        state.live.remove(from);
        state.live.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::Remove) {
            return Err(injected(path, "remove", error));
        }
        state.inode_of(path, "remove")?;
        state.live.remove(path);
        Ok(())
    }

    /// The model keeps directory entries per directory, so a directory rename is modelled as
    /// durable at once (callers sync the parent right after it, as a restore does).
    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()> {
        let mut guard = self.lock();
        if let Some(error) = guard.fault(OpKind::Rename) {
            return Err(injected(from, "rename directory", error));
        }
        let state = &mut *guard;
        if !state.live_dirs.contains(from) {
            return Err(Error::io(
                from,
                "rename directory",
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        let occupied = state.live.keys().any(|p| p.starts_with(to) && p != to)
            || state.live_dirs.iter().any(|d| d.starts_with(to) && d != to);
        if occupied || state.live.contains_key(to) {
            return Err(Error::io(
                to,
                "rename directory",
                io::Error::from(io::ErrorKind::DirectoryNotEmpty),
            ));
        }
        let moved = |p: &PathBuf| -> Option<PathBuf> {
            p.strip_prefix(from).ok().map(|rest| to.join(rest))
        };
        for map in [&mut state.live, &mut state.durable] {
            let entries: Vec<(PathBuf, u64)> = map
                .iter()
                .filter_map(|(p, id)| moved(p).map(|to| (to, *id)))
                .collect();
            map.retain(|p, _| !p.starts_with(from));
            map.extend(entries);
        }
        for dirs in [&mut state.live_dirs, &mut state.durable_dirs] {
            let entries: Vec<PathBuf> = dirs.iter().filter_map(moved).collect();
            dirs.retain(|d| !d.starts_with(from));
            dirs.extend(entries);
        }
        Ok(())
    }

    /// Durable at once, as [`SimStorage::rename_dir`] is.
    fn exchange_dirs(&self, a: &Path, b: &Path) -> Result<()> {
        let mut guard = self.lock();
        if let Some(error) = guard.fault(OpKind::Rename) {
            return Err(injected(a, "exchange directories", error));
        }
        let state = &mut *guard;
        for dir in [a, b] {
            if !state.live_dirs.contains(dir) {
                return Err(Error::io(
                    dir,
                    "exchange directories",
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
        }
        let swapped = |p: &PathBuf| -> PathBuf {
            if let Ok(rest) = p.strip_prefix(a) {
                b.join(rest)
            } else if let Ok(rest) = p.strip_prefix(b) {
                a.join(rest)
            } else {
                p.clone()
            }
        };
        for map in [&mut state.live, &mut state.durable] {
            *map = map.iter().map(|(p, id)| (swapped(p), *id)).collect();
        }
        for dirs in [&mut state.live_dirs, &mut state.durable_dirs] {
            *dirs = dirs.iter().map(swapped).collect();
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> Result<()> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::Remove) {
            return Err(injected(dir, "remove directory", error));
        }
        if state.live.keys().any(|p| p.starts_with(dir))
            || state
                .live_dirs
                .iter()
                .any(|d| d.starts_with(dir) && d != dir)
        {
            return Err(Error::io(
                dir,
                "remove directory",
                io::Error::from(io::ErrorKind::DirectoryNotEmpty),
            ));
        }
        state.live_dirs.remove(dir);
        state.durable_dirs.remove(dir);
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::Other) {
            return Err(injected(path, "truncate", error));
        }
        let id = state.inode_of(path, "truncate")?;
        if let Some(inode) = state.inodes.get_mut(&id) {
            inode.live.resize(len as usize, 0);
            // OsStorage::truncate syncs the file afterwards.
            inode.durable = inode.live.clone();
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.live_dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut state = self.lock();
        if let Some(error) = state.fault(OpKind::SyncDir) {
            return Err(injected(dir, "fsync directory", error));
        }
        let dir = dir_key(dir);
        let in_dir = |p: &PathBuf| parent(p) == dir;
        let live: Vec<(PathBuf, u64)> = state
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        state.durable.retain(|p, _| !in_dir(p));
        state.durable.extend(live);
        let dirs: Vec<PathBuf> = state
            .live_dirs
            .iter()
            .filter(|d| in_dir(d))
            .cloned()
            .collect();
        state.durable_dirs.retain(|d| !in_dir(d));
        state.durable_dirs.extend(dirs);
        // The directory itself is reachable once it exists durably in its parent; a directory
        // synced before its parent is treated as existing (the common `mkdir -p` then sync).
        state.durable_dirs.insert(dir);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let dir = dir_key(dir);
        let state = self.lock();
        let mut names: Vec<String> = state
            .live
            .keys()
            .chain(state.live_dirs.iter())
            .filter(|p| parent(p) == dir)
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn available_space(&self, _dir: &Path) -> Result<u64> {
        let state = self.lock();
        Ok(match state.plan.byte_budget {
            Some(budget) => budget.saturating_sub(state.used()),
            None => u64::MAX / 2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::publish_atomically;

    fn write(storage: &SimStorage, path: &str, bytes: &[u8], sync: bool) {
        let mut file = storage.create(Path::new(path)).unwrap();
        file.write_all(bytes).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
    }

    fn read(storage: &SimStorage, path: &str) -> Option<Vec<u8>> {
        storage.read_all(Path::new(path)).ok().map(|v| v.to_vec())
    }

    #[test]
    fn unsynced_bytes_and_entries_are_lost() {
        let s = SimStorage::new(1);
        write(&s, "d/a", b"synced", true);
        write(&s, "d/b", b"not synced", false);
        s.sync_dir(Path::new("d")).unwrap();
        write(&s, "d/c", b"entry not synced", true);
        s.crash(CrashMode::DropUnsynced);
        assert_eq!(read(&s, "d/a").as_deref(), Some(&b"synced"[..]));
        assert_eq!(read(&s, "d/b").as_deref(), Some(&b""[..]));
        assert_eq!(read(&s, "d/c"), None);
    }

    #[test]
    fn rename_is_durable_only_after_sync_dir() {
        let s = SimStorage::new(2);
        write(&s, "d/old", b"x", true);
        s.sync_dir(Path::new("d")).unwrap();
        s.rename(Path::new("d/old"), Path::new("d/new")).unwrap();
        s.crash(CrashMode::DropUnsynced);
        assert!(read(&s, "d/old").is_some() && read(&s, "d/new").is_none());
        s.rename(Path::new("d/old"), Path::new("d/new")).unwrap();
        s.sync_dir(Path::new("d")).unwrap();
        s.crash(CrashMode::DropUnsynced);
        assert!(read(&s, "d/old").is_none() && read(&s, "d/new").is_some());
    }

    #[test]
    fn publish_atomically_survives_a_crash_whole() {
        let s = SimStorage::new(3);
        publish_atomically(&s, Path::new("d/dump.rdb"), |f| f.write_all(b"one")).unwrap();
        publish_atomically(&s, Path::new("d/dump.rdb"), |f| f.write_all(b"two")).unwrap();
        s.crash(CrashMode::KeepRandomPrefix);
        assert_eq!(read(&s, "d/dump.rdb").as_deref(), Some(&b"two"[..]));
        assert_eq!(
            s.list(Path::new("d")).unwrap(),
            vec!["dump.rdb".to_string()]
        );
    }

    #[test]
    fn crash_modes_leave_a_prefix_or_zeros() {
        for seed in 0..50 {
            for mode in [
                CrashMode::KeepRandomPrefix,
                CrashMode::TearLastWrite,
                CrashMode::ZeroFillTail,
            ] {
                let s = SimStorage::new(seed);
                let mut f = s.create(Path::new("log")).unwrap();
                f.write_all(b"durable-").unwrap();
                f.sync_data().unwrap();
                s.sync_dir(Path::new("")).unwrap();
                f.write_all(b"first-").unwrap();
                f.write_all(b"second").unwrap();
                s.crash(mode);
                let got = read(&s, "log").unwrap();
                let all = b"durable-first-second";
                match mode {
                    CrashMode::ZeroFillTail => {
                        assert_eq!(&got[..8], b"durable-");
                        assert!(got[8..].iter().all(|&b| b == 0) && got.len() == all.len());
                    }
                    CrashMode::TearLastWrite => {
                        assert!(
                            all.starts_with(&got) && got.len() >= 14,
                            "seed {seed}: {got:?}"
                        );
                    }
                    _ => assert!(
                        all.starts_with(&got) && got.len() >= 8,
                        "seed {seed}: {got:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_failed_fsync_loses_its_bytes_for_good() {
        let s = SimStorage::new(4);
        let mut f = s.create(Path::new("aof")).unwrap();
        s.sync_dir(Path::new("")).unwrap();
        f.write_all(b"acked").unwrap();
        s.set_faults(FaultPlan {
            fail_nth: Some((1, Some(OpKind::SyncData), FaultError::Io)),
            ..FaultPlan::default()
        });
        assert!(f.sync_data().is_err());
        // Retrying "succeeds", but the bytes of the failed sync never reach the disk.
        f.write_all(b"+more").unwrap();
        f.sync_data().unwrap();
        s.crash(CrashMode::DropUnsynced);
        assert_eq!(read(&s, "aof").unwrap(), b"\0\0\0\0\0+more");
    }

    #[test]
    fn nth_operation_and_byte_budget_faults() {
        let s = SimStorage::new(5);
        s.set_faults(FaultPlan {
            fail_nth: Some((2, Some(OpKind::Write), FaultError::NoSpace)),
            ..FaultPlan::default()
        });
        let mut f = s.create(Path::new("f")).unwrap();
        f.write_all(b"ok").unwrap();
        let err = f.write_all(b"fails").unwrap_err();
        assert!(err.to_string().contains("No space"), "{err}");
        assert!(f.len() <= 7, "a short write stores a prefix at most");

        s.set_faults(FaultPlan {
            byte_budget: Some(10),
            ..FaultPlan::default()
        });
        let mut g = s.create(Path::new("g")).unwrap();
        let room = s.available_space(Path::new("")).unwrap();
        assert!(g.write_all(&vec![b'x'; room as usize + 1]).is_err());
        assert_eq!(s.available_space(Path::new("")).unwrap(), 0);
    }

    #[test]
    fn an_rdb_written_through_the_trait_survives_a_crash() {
        use crate::model::{Entry, Value};
        use crate::rdb::{WriteOptions, read_file, write_file};
        let s = SimStorage::new(6);
        let entries = vec![Entry::new(0, "k", Value::String("v".into()))];
        write_file(&s, Path::new("dump.rdb"), &entries, WriteOptions::default()).unwrap();
        s.crash(CrashMode::TearLastWrite);
        assert_eq!(read_file(&s, Path::new("dump.rdb")).unwrap(), entries);
    }
}
