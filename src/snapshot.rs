//! RDB persistence: `SAVE`, `BGSAVE` without fork, save points, and loading `dump.rdb` on start.
//!
//! Everything here works on the two traits of [`crate::dataset`] and does its file I/O through
//! [`Storage`], so a server with its own keyspace gets the same persistence as
//! [`crate::store::Store`], and crash tests run this very code on
//! [`crate::storage::SimStorage`].
//!
//! - [`write_rdb`] writes a [`DatasetSnapshot`] as an RDB file and publishes it atomically:
//!   temp file → `fdatasync` → rename over `path` → `fsync` of the directory
//!   ([`publish_atomically`]). A crash at any step leaves the previous file or the complete new
//!   one, never a mix and never nothing (once a first save has completed). On error the temp
//!   file is removed and `path` is untouched (unless the error is the directory fsync itself:
//!   then the new file is visible but not promised).
//! - [`load_rdb`] streams a file into an [`Apply`] target; a missing file is
//!   [`LoadOutcome::Missing`], not an error; corruption names the file and byte offset.
//! - [`BackgroundSave`] runs [`write_rdb`] on its own thread over a point-in-time snapshot taken
//!   in O(1) ([`crate::dataset::Dataset::snapshot`]), while writes go on; it measures the memory
//!   the process gains meanwhile (keeper's counterpart of fork's copy-on-write).
//! - [`SavePoints`] is Redis's `save <seconds> <changes> …` option, and [`PersistenceState`]
//!   the bookkeeping behind `INFO persistence`, `LASTSAVE`, the save points and
//!   `stop-writes-on-bgsave-error`.
//!
//! A server drives them like this (a sketch; `engine.rs` holds the real thing):
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use keeper::snapshot::{self, BackgroundSave, ExpiredKeys, LoadOutcome, PersistenceState,
//!     SaveOptions, SavePoints};
//! use keeper::storage::{SimStorage, Storage};
//! use keeper::store::{Store, Value, own};
//!
//! let storage: Arc<dyn Storage> = Arc::new(SimStorage::new(1));
//! let path = Path::new("data/dump.rdb");
//! let now_unix = 1_700_000_000;
//!
//! // Start: load dump.rdb when there is one.
//! let mut store = Store::new(16);
//! let mut state = PersistenceState::new(SavePoints::default(), now_unix);
//! match snapshot::load_rdb(&*storage, path, &mut store, ExpiredKeys::SkipAt(now_unix * 1000))? {
//!     LoadOutcome::Missing => {}
//!     LoadOutcome::Loaded(stats) => state.loaded(&stats),
//! }
//!
//! // A write, counted as Redis's `dirty`.
//! store.insert(0, own(b"k"), Value::String(own(b"v")), None);
//! state.add_changes(1);
//!
//! // BGSAVE: a point-in-time snapshot, written on a thread while writes continue.
//! assert!(!state.bgsave_in_progress());
//! state.bgsave_started(now_unix);
//! let job = BackgroundSave::start(storage.clone(), path.into(), store.snapshot(),
//!     SaveOptions::default())?;
//! // … later, from the server's cron (here: wait for it).
//! let outcome = job.wait();
//! state.bgsave_finished(now_unix + 1, &outcome);
//! assert_eq!(state.changes_since_last_save(), 0);
//! assert!(state.info_fields(now_unix + 1, None).contains("rdb_last_bgsave_status:ok\r\n"));
//! # Ok::<(), keeper::Error>(())
//! ```

mod background;
pub(crate) mod rss;
mod save_points;
mod state;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use background::{
    BackgroundSave, BgsaveOutcome, BgsaveProgress, BgsaveStatus, RSS_SAMPLE_INTERVAL,
};
pub use save_points::{InvalidSavePoints, SavePoint, SavePoints};
pub use state::{
    BGSAVE_IN_PROGRESS_ERROR, BGSAVE_RETRY_DELAY_SECS, MISCONF_ERROR, PersistenceState,
};

use crate::dataset::{Apply, DatasetSnapshot};
use crate::error::{Error, Result};
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use crate::failpoints;
use crate::rdb::{AuxInfo, Event, FileSink, Reader, ReplicationInfo, WriteOptions, Writer};
use crate::storage::{Storage, WritableFile, publish_atomically};

/// Redis's default `dbfilename`.
pub const DEFAULT_FILENAME: &str = "dump.rdb";

/// `rdb-save-incremental-fsync`: bytes written between two `fdatasync` calls while saving
/// (Redis's `REDIS_AUTOSYNC_BYTES`), so the final fsync does not have a whole file of dirty
/// pages to flush at once.
pub const INCREMENTAL_FSYNC_BYTES: u64 = 4 * 1024 * 1024;

/// How to write a snapshot.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// RDB version: 10 (Redis 7.0), 11 (Redis 7.2) or 12 (Redis 7.4+). Default: 10, which every
    /// Redis since 7.0 loads.
    pub rdb_version: u32,
    /// `rdbcompression`: LZF-compress strings when it saves space. Default: yes.
    pub compression: bool,
    /// `rdbchecksum`: write the CRC-64 trailer. Default: yes.
    pub checksum: bool,
    /// `rdb-save-incremental-fsync`: `fdatasync` every [`INCREMENTAL_FSYNC_BYTES`] while
    /// writing. Default: yes.
    pub incremental_fsync: bool,
    /// The replication position the snapshot reflects, recorded as the `repl-id`,
    /// `repl-offset` and `repl-stream-db` AUX fields so a restarted node can ask for a partial
    /// resync. Default: none (a node outside any replication chain, as Redis writes it).
    pub replication: Option<ReplicationInfo>,
    /// The `used-mem` AUX field, bytes. Default: 0.
    pub used_mem: u64,
    /// The `ctime` AUX field, unix seconds. Default: the time the save starts.
    pub ctime: Option<i64>,
    /// The `aof-base 1` AUX field: the file is the RDB preamble of a multi-part AOF's base.
    /// Default: no.
    pub aof_base: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            rdb_version: crate::rdb::DEFAULT_WRITE_VERSION,
            compression: true,
            checksum: true,
            incremental_fsync: true,
            replication: None,
            used_mem: 0,
            ctime: None,
            aof_base: false,
        }
    }
}

impl SaveOptions {
    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            version: self.rdb_version,
            compression: self.compression,
            checksum: self.checksum,
            aux: AuxInfo {
                ctime: self.ctime,
                used_mem: self.used_mem,
                replication: self.replication.clone(),
                aof_base: self.aof_base,
            },
        }
    }
}

/// What a completed save wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Keys written.
    pub keys: u64,
    /// Empty collections the snapshot offered and the file left out (Redis never stores
    /// them, and `redis-check-rdb` refuses a file holding one).
    pub empty_values_skipped: u64,
    /// Size of the published file.
    pub bytes: u64,
    /// Time from the start of the save to the durable publish.
    pub elapsed: Duration,
    /// `(db, keys, keys with a TTL)` of each database written, in order (a backup's
    /// manifest records them).
    pub databases: Vec<(u32, u64, u64)>,
}

/// Shared between a save and whoever watches it: progress, and a request to stop.
#[derive(Debug, Default)]
pub(crate) struct SaveControl {
    pub keys_done: AtomicU64,
    pub cancel: AtomicBool,
}

/// Writes `snapshot` as an RDB file at `path`, published atomically (see the module docs).
///
/// Databases are written in order, each that holds a key with `SELECTDB` and `RESIZEDB` (the
/// snapshot's size hints); AUX fields are `redis-ver`, `redis-bits`, `ctime`, `used-mem`, the
/// replication fields when [`SaveOptions::replication`] is set, `aof-base` and `keeper-ver`.
/// Keys whose TTL has passed are written like any other (as Redis does): expiry is the
/// loader's business.
///
/// Callers must not run two saves to the same `path` at once: both would use the same temp
/// file (Redis refuses `SAVE`/`BGSAVE` while one is running; so must the caller).
pub fn write_rdb(
    storage: &dyn Storage,
    path: &Path,
    snapshot: &dyn DatasetSnapshot,
    options: SaveOptions,
) -> Result<SaveStats> {
    write_rdb_controlled(storage, path, snapshot, &options, &SaveControl::default())
}

pub(crate) fn write_rdb_controlled(
    storage: &dyn Storage,
    path: &Path,
    snapshot: &dyn DatasetSnapshot,
    options: &SaveOptions,
    control: &SaveControl,
) -> Result<SaveStats> {
    let started = Instant::now();
    let mut stats = SaveStats::default();
    publish_atomically(storage, path, |file| {
        let syncer = options
            .incremental_fsync
            .then(|| file.background_syncer())
            .flatten();
        std::thread::scope(|scope| {
            let background = syncer.and_then(|sync| BackgroundSync::start(scope, sync));
            let mut file = IncrementalSync::new(file, options.incremental_fsync, background);
            let mut writer = Writer::new(FileSink::new(&mut file), options.write_options())?;
            write_databases(&mut writer, snapshot, control, &mut stats, &mut || {
                fail::fail_point!(failpoints::SNAPSHOT_AFTER_DB, |_| Err(
                    failpoints::injected(failpoints::SNAPSHOT_AFTER_DB)
                ));
                Ok(())
            })?;
            writer.finish()?;
            file.wait_for_background()?;
            stats.bytes = file.len();
            Ok(())
        })
    })?;
    fail::fail_point!(failpoints::SNAPSHOT_AFTER_PUBLISH, |_| Err(
        failpoints::injected(failpoints::SNAPSHOT_AFTER_PUBLISH)
    ));
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Writes `snapshot` as a whole RDB stream into `out` (a socket, a pipe, a buffer): the same
/// bytes [`write_rdb`] would publish as a file, without a temp file, fsync or rename. Returns
/// `out` and what was written (`bytes` counts the whole stream). A full sync and a backup
/// taken from a [`crate::dataset::Dataset`] stream their RDB this way.
pub fn write_rdb_stream<W: std::io::Write>(
    out: W,
    snapshot: &dyn DatasetSnapshot,
    options: &SaveOptions,
) -> Result<(W, SaveStats)> {
    write_rdb_stream_controlled(out, snapshot, options, &SaveControl::default())
}

pub(crate) fn write_rdb_stream_controlled<W: std::io::Write>(
    out: W,
    snapshot: &dyn DatasetSnapshot,
    options: &SaveOptions,
    control: &SaveControl,
) -> Result<(W, SaveStats)> {
    let started = Instant::now();
    let mut stats = SaveStats::default();
    let mut writer = Writer::new(
        CountingWrite {
            inner: out,
            bytes: 0,
        },
        options.write_options(),
    )?;
    write_databases(&mut writer, snapshot, control, &mut stats, &mut || Ok(()))?;
    let counted = writer.finish()?;
    stats.bytes = counted.bytes;
    stats.elapsed = started.elapsed();
    Ok((counted.inner, stats))
}

/// An `io::Write` that counts the bytes it passes on.
struct CountingWrite<W> {
    inner: W,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for CountingWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every database of `snapshot` through `writer`, each that holds a key with `SELECTDB`
/// and `RESIZEDB` first, counting into `stats` and `control`, and calling `after_db` after
/// each database. Stops with [`cancelled`] once `control.cancel` is set.
fn write_databases<W: std::io::Write>(
    writer: &mut Writer<W>,
    snapshot: &dyn DatasetSnapshot,
    control: &SaveControl,
    stats: &mut SaveStats,
    after_db: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    for db in 0..snapshot.databases() {
        let index = u32::try_from(db)
            .map_err(|_| Error::InvalidArgument(format!("database index {db} does not fit RDB")))?;
        let (keys_hint, expires_hint) = snapshot.db_size(db);
        // SELECTDB + RESIZEDB go out with the first key, so an empty database leaves no trace
        // (as in Redis) even when a snapshot's size hint is stale.
        let mut selected = false;
        snapshot.for_each_entry_ref(db, &mut |entry| {
            if control.cancel.load(Ordering::Relaxed) {
                return Err(cancelled());
            }
            if entry.value.is_empty() {
                stats.empty_values_skipped += 1;
                return Ok(());
            }
            if !selected {
                writer.select_db(index, keys_hint, expires_hint)?;
                stats.databases.push((index, 0, 0));
                selected = true;
            }
            if let Some(counts) = stats.databases.last_mut() {
                counts.1 += 1;
                counts.2 += u64::from(entry.expire_at_ms.is_some());
            }
            writer.write_entry_ref(index, &entry)?;
            stats.keys += 1;
            control.keys_done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })?;
        after_db()?;
    }
    Ok(())
}

/// The error a cancelled save stops with (see [`BackgroundSave::cancel`]).
pub(crate) fn cancelled() -> Error {
    Error::Io {
        path: None,
        op: "save",
        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "save cancelled"),
    }
}

/// A [`WritableFile`] that syncs every [`INCREMENTAL_FSYNC_BYTES`] when asked to.
///
/// With a [`BackgroundSync`], the sync of one chunk runs on another thread while the next
/// chunk is written (the save no longer waits for the disk every 4 MiB; measured: the save
/// thread spent most of a `BGSAVE` blocked in `fdatasync`). At most one sync is in flight: a
/// chunk waits for the previous chunk's sync, so dirty data stays bounded by about two chunks,
/// as with Redis's `sync_file_range` writeback.
struct IncrementalSync<'a, 'scope> {
    file: &'a mut dyn WritableFile,
    enabled: bool,
    unsynced: u64,
    background: Option<BackgroundSync<'scope>>,
}

impl<'a, 'scope> IncrementalSync<'a, 'scope> {
    fn new(
        file: &'a mut dyn WritableFile,
        enabled: bool,
        background: Option<BackgroundSync<'scope>>,
    ) -> Self {
        IncrementalSync {
            file,
            enabled,
            unsynced: 0,
            background,
        }
    }

    /// Waits for the sync in flight, if any, and returns its result.
    fn wait_for_background(&mut self) -> Result<()> {
        match &mut self.background {
            Some(background) => background.wait(),
            None => Ok(()),
        }
    }
}

impl WritableFile for IncrementalSync<'_, '_> {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf)?;
        self.unsynced += buf.len() as u64;
        if self.enabled && self.unsynced >= INCREMENTAL_FSYNC_BYTES {
            match &mut self.background {
                Some(background) => background.start_sync()?,
                None => self.file.sync_data()?,
            }
            self.unsynced = 0;
        }
        Ok(())
    }

    fn sync_data(&mut self) -> Result<()> {
        self.wait_for_background()?;
        self.unsynced = 0;
        self.file.sync_data()
    }

    fn len(&self) -> u64 {
        self.file.len()
    }
}

/// A thread that runs a file's `fdatasync` on request ([`WritableFile::background_syncer`]).
/// It ends when this handle is dropped.
struct BackgroundSync<'scope> {
    requests: std::sync::mpsc::Sender<()>,
    results: std::sync::mpsc::Receiver<Result<()>>,
    in_flight: bool,
    _thread: std::thread::ScopedJoinHandle<'scope, ()>,
}

impl<'scope> BackgroundSync<'scope> {
    /// `None` when the thread cannot start (the caller then syncs inline).
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        mut sync: Box<dyn FnMut() -> Result<()> + Send>,
    ) -> Option<Self> {
        let (requests, request_rx) = std::sync::mpsc::channel::<()>();
        let (result_tx, results) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("keeper-fsync".into())
            .spawn_scoped(scope, move || {
                while request_rx.recv().is_ok() {
                    if result_tx.send(sync()).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(BackgroundSync {
            requests,
            results,
            in_flight: false,
            _thread: thread,
        })
    }

    /// Starts syncing what was written so far, once the previous sync has completed.
    fn start_sync(&mut self) -> Result<()> {
        self.wait()?;
        self.requests.send(()).map_err(|_| sync_thread_gone())?;
        self.in_flight = true;
        Ok(())
    }

    /// Waits for the sync in flight, if any.
    fn wait(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        self.results.recv().map_err(|_| sync_thread_gone())?
    }
}

fn sync_thread_gone() -> Error {
    Error::Io {
        path: None,
        op: "fdatasync",
        source: std::io::Error::other("the background sync thread ended"),
    }
}

/// What to do with keys whose TTL has already passed when a file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredKeys {
    /// Skip keys that expired before this unix time in milliseconds (`expire_at_ms < now`), as
    /// a Redis primary does when it loads `dump.rdb` at startup.
    SkipAt(i64),
    /// Load every key: a replica loading its primary's full sync (the primary expires keys
    /// and sends `DEL`s), or the base of an AOF that later commands build on.
    Keep,
}

/// What [`load_rdb`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadOutcome {
    /// No file at the path: the dataset starts empty (Redis starts empty too).
    Missing,
    /// The file was loaded completely.
    Loaded(LoadStats),
}

/// What a completed load read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Keys handed to the target (`rdb_last_load_keys_loaded`).
    pub keys_loaded: u64,
    /// Keys skipped because their TTL had passed (`rdb_last_load_keys_expired`).
    pub keys_expired: u64,
    /// Empty collections in the file, skipped as Redis skips them.
    pub empty_keys_skipped: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Time taken to read and apply the whole file.
    pub elapsed: Duration,
    /// The file's RDB version.
    pub rdb_version: u32,
    /// Replication position from the `repl-id` / `repl-offset` / `repl-stream-db` AUX fields,
    /// when the file has a well-formed one (a 40-character id and a numeric offset).
    pub replication: Option<ReplicationInfo>,
    /// Every AUX field, in file order.
    pub aux: Vec<(Bytes, Bytes)>,
    /// Function libraries (`FUNCTION2`), in file order. [`Apply`] has no place for them, so
    /// they are returned to the caller rather than dropped silently.
    pub functions: Vec<Bytes>,
    /// Module AUX records skipped (their module is not loaded in keeper).
    pub module_aux_skipped: u64,
}

/// Loads the RDB file at `path` into `target`, streaming over a memory map of the file.
///
/// Entries are handed to [`Apply::load_entry`] as they are decoded, without clearing `target`
/// first (call [`Apply::clear`] before a full reload). On error `target` holds the keys read
/// so far: a caller that refuses to start on a damaged file (as Redis does) discards it. A
/// damaged file's error names the file and the byte offset; a file that does not exist is
/// [`LoadOutcome::Missing`].
pub fn load_rdb(
    storage: &dyn Storage,
    path: &Path,
    target: &mut dyn Apply,
    expired: ExpiredKeys,
) -> Result<LoadOutcome> {
    let started = Instant::now();
    if storage.len(path)?.is_none() {
        return Ok(LoadOutcome::Missing);
    }
    let view = storage.read_all(path)?;
    let mut stats = LoadStats {
        bytes: view.len() as u64,
        ..LoadStats::default()
    };
    let reader = Reader::from_slice(view).map_err(|e| e.with_file(path))?;
    load_events(reader, target, expired, path, &mut stats)?;
    stats.elapsed = started.elapsed();
    Ok(LoadOutcome::Loaded(stats))
}

/// Loads an RDB that arrives as a byte stream (a replica's full sync) into `target`, as
/// [`load_rdb`] loads a file: decoding on a helper thread, entries handed to
/// [`Apply::load_entry`] as they come. `name` stands for the stream in errors. Blocks until
/// the stream ends.
pub fn load_rdb_stream<R: std::io::Read + Send>(
    stream: R,
    target: &mut dyn Apply,
    expired: ExpiredKeys,
    name: &Path,
) -> Result<LoadStats> {
    let started = Instant::now();
    let mut stats = LoadStats::default();
    let reader = Reader::from_reader(stream).map_err(|e| e.with_file(name))?;
    load_events(reader, target, expired, name, &mut stats)?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Decodes every event of `reader` on a helper thread and applies them to `target`; fills
/// `stats` (all but `elapsed`; `bytes` is the reader's final position).
fn load_events<S: crate::rdb::Source + Send>(
    reader: Reader<S>,
    target: &mut dyn Apply,
    expired: ExpiredKeys,
    path: &Path,
    stats: &mut LoadStats,
) -> Result<()> {
    stats.rdb_version = reader.version();
    // Decoding runs on its own thread, a batch of events ahead of the target that stores them
    // (on a large file the two halves cost about the same).
    let (empty_keys_skipped, bytes) = std::thread::scope(|scope| -> Result<(u64, u64)> {
        let (batches, received) = std::sync::mpsc::sync_channel::<Result<Vec<Event>>>(4);
        let decoder = std::thread::Builder::new()
            .name("keeper-rdb-decode".into())
            .spawn_scoped(scope, move || decode_in_batches(reader, &batches));
        let decoder = decoder.map_err(|e| Error::io(path, "spawn decoder thread", e))?;
        for batch in received {
            for event in batch.map_err(|e| e.with_file(path))? {
                apply_event(event, target, expired, path, stats)?;
            }
        }
        decoder
            .join()
            .map_err(|_| Error::corrupt(0, "the RDB decoder thread panicked").with_file(path))
    })?;
    stats.empty_keys_skipped = empty_keys_skipped;
    if stats.bytes == 0 {
        stats.bytes = bytes;
    }
    stats.replication = replication_from_aux(&stats.aux);
    Ok(())
}

/// Events decoded per batch handed from the decoder thread to the loader.
const LOAD_BATCH: usize = 4096;

/// Decodes every event of `reader` and sends them in batches of [`LOAD_BATCH`]; an error is
/// sent as the last batch. Stops early when the receiver is gone (the load failed). Returns
/// the reader's count of empty collections skipped and the bytes it consumed.
fn decode_in_batches<S: crate::rdb::Source>(
    mut reader: Reader<S>,
    batches: &std::sync::mpsc::SyncSender<Result<Vec<Event>>>,
) -> (u64, u64) {
    loop {
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let mut ended = false;
        while batch.len() < LOAD_BATCH {
            match reader.next_event() {
                Ok(Some(event)) => batch.push(event),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    let _ = batches.send(Ok(batch));
                    let _ = batches.send(Err(e));
                    return (reader.empty_keys_skipped(), reader.position());
                }
            }
        }
        if batches.send(Ok(batch)).is_err() || ended {
            return (reader.empty_keys_skipped(), reader.position());
        }
    }
}

/// Hands one decoded event of a load to `target` (entries) or to `stats` (the rest).
fn apply_event(
    event: Event,
    target: &mut dyn Apply,
    expired: ExpiredKeys,
    path: &Path,
    stats: &mut LoadStats,
) -> Result<()> {
    match event {
        Event::Entry(entry) => {
            let is_expired = match (expired, entry.expire_at_ms) {
                (ExpiredKeys::SkipAt(now_ms), Some(at)) => at < now_ms,
                _ => false,
            };
            if is_expired {
                stats.keys_expired += 1;
            } else {
                target.load_entry(entry).map_err(|e| e.with_file(path))?;
                stats.keys_loaded += 1;
            }
        }
        Event::Aux { key, value } => stats.aux.push((key, value)),
        Event::Function(code) => stats.functions.push(code),
        Event::ModuleAux { .. } => stats.module_aux_skipped += 1,
        Event::SelectDb(_) | Event::ResizeDb { .. } | Event::SlotInfo { .. } => {}
    }
    Ok(())
}

/// The replication position recorded in AUX fields, as Redis's `rdbLoad` accepts it: a
/// `repl-id` of exactly 40 characters and a numeric `repl-offset`; `repl-stream-db` defaults
/// to 0.
fn replication_from_aux(aux: &[(Bytes, Bytes)]) -> Option<ReplicationInfo> {
    let field = |name: &[u8]| {
        aux.iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let id = field(b"repl-id").filter(|id| id.len() == 40)?;
    let id = std::str::from_utf8(id).ok()?.to_owned();
    let offset = std::str::from_utf8(field(b"repl-offset")?)
        .ok()?
        .parse()
        .ok()?;
    let stream_db = field(b"repl-stream-db")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    Some(ReplicationInfo {
        id,
        offset,
        stream_db,
    })
}

#[cfg(test)]
mod tests;
