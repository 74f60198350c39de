//! The append-only file: Redis 7's multi-part AOF (redis-formats.md §2), written by keeper.
//!
//! An AOF directory (`dir/appenddirname`) holds a manifest naming one base file (a snapshot:
//! RDB preamble `.base.rdb`, or RESP `.base.aof`) and the incr files that follow it, oldest
//! first. The incr files hold exactly the propagated stream ([`crate::engine::Engine::propagate`]:
//! `SELECT`, `MULTI`/`EXEC`, one replication offset per byte) plus `#` annotation lines that
//! Redis's loader skips: `#TS:` when `aof-timestamp-enabled`, and keeper's own
//! `#keeper-repl:<replid>:<offset>` at the start of each incr file, so a node started from its
//! AOF alone knows its replication position.
//!
//! - [`manifest`]: the manifest grammar and file names, persisted atomically.
//! - [`loader`]: base then incr files through [`crate::dataset::Apply`], torn tails.
//! - [`writer`]: the incr file's writer thread: fsync policies, group commit, poisoning.
//! - [`rewrite`]: the commands that recreate an entry (a RESP base) and the base writer.
//! - [`budget`]: `aof-max-disk-size` and the free-space reserve.
//! - [`Aof`] (here): the node's AOF: opening at start, appending, background rewrite with the
//!   manifest swap of DESIGN.md, automatic and budget-driven rewrites, `INFO persistence`.
//!
//! # The rewrite, step by step (what a crash at each step leaves)
//! 1. Under the engine lock: write and sync everything sent to the current incr (a file that
//!    is not the last one listed must never have a torn tail, which even a power loss could
//!    otherwise leave; Redis 7.0 persists the manifest first and has that window), open a new
//!    incr file, persist a manifest listing it after the old ones, and switch the writer to it;
//!    take an O(1) snapshot at that same point of the stream. A crash now loads the old base and
//!    every incr: nothing is lost.
//! 2. On a thread: write the snapshot as the new base to `dir/temp-rewriteaof-bg-<pid>.aof`
//!    (temp file, fsync, rename, fsync dir), through the disk budget's cap.
//! 3. The cron collects it: rename it into the AOF directory under the next base name, fsync
//!    the directory, persist a manifest naming the new base and the current incr only (the old
//!    base and incr files listed as history). Until that manifest is durable the old set is
//!    authoritative; after, the new one.
//! 4. Delete the history files, then persist the manifest without them. A crash in between
//!    leaves history lines, whose files are deleted at the next start.
//!
//! A failed rewrite removes its temp file and keeps the new incr listed (as Redis); the next
//! attempt reuses that incr while nothing was written to it, so repeated failures do not
//! multiply incr files, and after [`REWRITE_LIMIT_THRESHOLD`] consecutive failures automatic
//! rewrites back off 1, 2, 4 … 60 minutes (Redis's `aofRewriteLimited`).

pub mod budget;
pub mod check;
pub mod loader;
pub mod manifest;
pub mod record;
pub mod rewrite;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::dataset::DatasetSnapshot;
use crate::error::{Error, Result};
use crate::snapshot::{self, BackgroundSave, BgsaveOutcome, BgsaveStatus, SaveOptions};
use crate::storage::Storage;

use budget::{Budget, CappedStorage};
use manifest::{AofNames, FileKind, Manifest};
use writer::AofWriter;

/// Consecutive failed rewrites after which automatic rewrites back off (Redis's
/// `AOF_REWRITE_LIMITE_THRESHOLD`).
pub const REWRITE_LIMIT_THRESHOLD: u32 = 3;
/// The longest back-off between automatic rewrites after repeated failures.
pub const REWRITE_LIMIT_MAX: Duration = Duration::from_secs(60 * 60);

/// The error `BGREWRITEAOF` gets while one runs.
pub const REWRITE_IN_PROGRESS_ERROR: &str =
    "ERR Background append only file rewriting already in progress";

/// The annotation that records the replication position at the start of an incr file.
pub fn repl_annotation(replid: &str, offset: u64) -> Vec<u8> {
    format!("#keeper-repl:{replid}:{offset}\r\n").into_bytes()
}

/// What made a rewrite start (for the log and INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteTrigger {
    /// `BGREWRITEAOF`.
    Command,
    /// `auto-aof-rewrite-percentage` growth.
    Growth,
    /// The disk budget is getting tight.
    Budget,
    /// `CONFIG SET appendonly yes`: the first base.
    Enable,
}

/// A rewrite writing its new base on a thread.
struct RunningRewrite {
    job: BackgroundSave,
    /// `dir/temp-rewriteaof-bg-<pid>.aof`.
    temp: PathBuf,
    /// The storage the base is written through, capped by the budget.
    capped: CappedStorage,
    started: Instant,
}

/// Rewrite history for INFO and the back-off.
#[derive(Debug, Clone, Default)]
pub struct RewriteStats {
    /// Successful rewrites since start (`aof_rewrites`).
    pub rewrites: u64,
    pub consecutive_failures: u32,
    /// `aof_last_bgrewrite_status`.
    pub last_ok: bool,
    /// Duration of the last rewrite (`aof_last_rewrite_time_sec`).
    pub last_duration: Option<Duration>,
    /// Why the last rewrite failed or was not started.
    pub last_error: Option<String>,
    /// Automatic rewrites wait until then after repeated failures.
    backoff_until: Option<Instant>,
    backoff: Duration,
}

/// The node's AOF. Lives in the engine, under its lock.
pub struct Aof {
    storage: Arc<dyn Storage>,
    /// `dir/appenddirname`.
    dir: PathBuf,
    /// `dir` (rewrite temp files live there, as Redis's do).
    data_dir: PathBuf,
    names: AofNames,
    manifest: Manifest,
    writer: AofWriter,
    rdb_preamble: bool,
    timestamps: bool,
    /// Unix seconds of the last `#TS:` written.
    last_timestamp: i64,
    replid: String,
    /// Size of the base and of the incr files before the current one.
    settled_bytes: u64,
    /// Size of the base file (also the estimate of the next base's size).
    base_bytes: u64,
    /// Size of the current incr file, bytes queued to the writer included.
    incr_bytes: u64,
    /// Size of the current incr when it was opened (its annotation), to tell an incr that
    /// received nothing.
    incr_header_bytes: u64,
    /// AOF size after the last rewrite or at start (Redis's `aof_rewrite_base_size`).
    rewrite_base_size: u64,
    rewrite: Option<RunningRewrite>,
    rewrite_scheduled: bool,
    /// Turned on at run time (`CONFIG SET appendonly yes`) and no base written yet: nothing
    /// is persisted in a manifest until the first rewrite installs one (the directory's old
    /// files, if any, stay authoritative until then), and that rewrite is retried until it
    /// succeeds.
    pending_first_base: bool,
    pub rewrite_stats: RewriteStats,
    pub budget: Budget,
    auto_rewrite_percentage: u64,
    auto_rewrite_min_size: u64,
}

/// What [`Aof::prepare`] found on disk.
pub struct Prepared {
    /// The manifest, if the directory has one.
    pub manifest: Option<Manifest>,
    /// An old single-file `appendonly.aof` was moved into the directory.
    pub upgraded: bool,
}

impl Aof {
    /// Readies the AOF directory at start: upgrades an old single-file AOF as Redis 7 does,
    /// reads the manifest, and deletes what a crashed rewrite left: the history files the
    /// manifest lists, base and incr files it does not list (a new base renamed in, or a new
    /// incr created, before the manifest naming them was durable), and rewrite temp files in
    /// `dir`. Left in place they would take disk space the budget does not see.
    pub fn prepare(storage: &dyn Storage, config: &Config) -> Result<Prepared> {
        let names = AofNames::new(&config.appendfilename);
        let dir = config.aof_dir();
        let upgraded =
            loader::upgrade_single_file(storage, &config.dir, &config.appenddirname, &names)?;
        let manifest = manifest::read(storage, &dir, &names)?;
        remove_leftovers(storage, config, &names, manifest.as_ref());
        if let Some(m) = &manifest
            && !m.history.is_empty()
        {
            let mut cleaned = m.clone();
            delete_history(storage, &dir, &mut cleaned);
            manifest::persist(storage, &dir, &names, &cleaned)?;
            return Ok(Prepared {
                manifest: Some(cleaned),
                upgraded,
            });
        }
        Ok(Prepared { manifest, upgraded })
    }

    /// Opens the AOF for appending after loading: writes a base from `snapshot` when the
    /// directory has neither base nor incr (as Redis does at a fresh start), opens the last
    /// incr file (or a new one), persists the manifest and starts the writer at `offset`.
    pub fn open(
        storage: Arc<dyn Storage>,
        config: &Config,
        manifest: Option<Manifest>,
        snapshot: &dyn DatasetSnapshot,
        replid: &str,
        offset: u64,
    ) -> Result<Aof> {
        let names = AofNames::new(&config.appendfilename);
        let dir = config.aof_dir();
        storage.create_dir_all(&dir)?;
        let mut manifest = manifest.unwrap_or_default();
        if manifest.base.is_none() && manifest.incrs.is_empty() {
            let name = manifest
                .set_new_base(&names, config.aof_use_rdb_preamble)
                .name
                .clone();
            let temp = config.dir.join(temp_rewrite_name());
            write_base(
                &*storage,
                &temp,
                snapshot,
                config.aof_use_rdb_preamble,
                config
                    .aof_timestamp_enabled
                    .then(|| crate::engine::unix_now_ms() / 1000),
                &snapshot::SaveControl::default(),
            )?;
            storage.rename(&temp, &dir.join(&name))?;
            storage.sync_dir(&dir)?;
            storage.sync_dir(&config.dir)?;
        }
        let (incr_name, fresh) = match manifest.incrs.last() {
            Some(last) => (last.name.clone(), false),
            None => (manifest.add_incr(&names).name.clone(), true),
        };
        let incr_path = dir.join(&incr_name);
        let file = storage.open_append(&incr_path)?;
        if fresh {
            storage.sync_dir(&dir)?;
        }
        manifest::persist(&*storage, &dir, &names, &manifest)?;
        let incr_len = file.len();
        let base_bytes = match &manifest.base {
            Some(base) => storage.len(&dir.join(&base.name))?.unwrap_or(0),
            None => 0,
        };
        // The base's size was just read; the incr files before the current one are added.
        let mut settled_bytes = base_bytes;
        for f in &manifest.incrs {
            if f.name != incr_name {
                settled_bytes += storage.len(&dir.join(&f.name))?.unwrap_or(0);
            }
        }
        let mut aof = Aof::assemble(
            storage, config, names, manifest, incr_path, file, replid, offset,
        )?;
        // An incr that had content before this start cannot be reused by a rewrite.
        if incr_len > 0 {
            aof.incr_bytes += incr_len;
            aof.incr_header_bytes = 0;
        }
        aof.base_bytes = base_bytes;
        aof.settled_bytes = settled_bytes;
        aof.rewrite_base_size = aof.current_size();
        Ok(aof)
    }

    /// The AOF appending to `file` (at `path`, the last incr `manifest` lists) from stream
    /// `offset` on, its header annotation written; sizes count that header only.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        storage: Arc<dyn Storage>,
        config: &Config,
        names: AofNames,
        manifest: Manifest,
        path: PathBuf,
        file: Box<dyn crate::storage::WritableFile>,
        replid: &str,
        offset: u64,
    ) -> Result<Aof> {
        let mut writer = AofWriter::start(storage.clone(), path, file, config.appendfsync, offset)?;
        let header = repl_annotation(replid, offset);
        writer.annotate(&header);
        let mut aof = Aof {
            data_dir: config.dir.clone(),
            dir: config.aof_dir(),
            names,
            manifest,
            writer,
            rdb_preamble: config.aof_use_rdb_preamble,
            timestamps: config.aof_timestamp_enabled,
            last_timestamp: 0,
            replid: replid.to_string(),
            settled_bytes: 0,
            base_bytes: 0,
            incr_bytes: header.len() as u64,
            incr_header_bytes: header.len() as u64,
            rewrite_base_size: 0,
            rewrite: None,
            rewrite_scheduled: false,
            pending_first_base: false,
            rewrite_stats: RewriteStats {
                last_ok: true,
                ..RewriteStats::default()
            },
            budget: Budget::new(config.aof_max_disk_size, config.aof_disk_reserve),
            auto_rewrite_percentage: config.auto_aof_rewrite_percentage,
            auto_rewrite_min_size: config.auto_aof_rewrite_min_size,
            storage,
        };
        aof.observe_free_space();
        Ok(aof)
    }

    /// Turns the AOF on at run time (`CONFIG SET appendonly yes`), as Redis's
    /// `startAppendOnly`: writes go to a fresh incr file from `offset` on, and a background
    /// rewrite of `snapshot` (taken at that same point) writes the first base. Only when it
    /// is installed does a manifest name the new files (the old ones, if the directory had
    /// any, become history); until then a restart finds the directory as it was.
    pub fn enable(
        storage: Arc<dyn Storage>,
        config: &Config,
        snapshot: impl DatasetSnapshot + Send + 'static,
        replid: &str,
        offset: u64,
    ) -> Result<Aof> {
        let names = AofNames::new(&config.appendfilename);
        let dir = config.aof_dir();
        storage.create_dir_all(&dir)?;
        storage.sync_dir(&config.dir)?;
        let old = manifest::read(&*storage, &dir, &names)?.unwrap_or_default();
        let mut manifest = Manifest::default();
        for mut f in old.base.into_iter().chain(old.history).chain(old.incrs) {
            f.kind = FileKind::History;
            manifest.history.push(f);
        }
        let path = dir.join(&manifest.add_incr(&names).name);
        let file = storage.create(&path)?;
        storage.sync_dir(&dir)?;
        let mut aof = Aof::assemble(storage, config, names, manifest, path, file, replid, offset)?;
        aof.pending_first_base = true;
        if let Err(e) = aof.start_rewrite(snapshot, offset, RewriteTrigger::Enable) {
            // The cron tries again (see `finish_rewrite`).
            tracing::warn!("the first AOF rewrite did not start: {e}");
            aof.rewrite_scheduled = true;
        }
        Ok(aof)
    }

    /// True while the AOF turned on at run time waits for its first base (Redis's
    /// `AOF_WAIT_REWRITE`).
    pub fn waiting_for_first_base(&self) -> bool {
        self.pending_first_base
    }

    /// Applies the options `CONFIG SET` may change.
    pub fn update_config(&mut self, config: &Config) {
        self.writer.set_policy(config.appendfsync);
        self.timestamps = config.aof_timestamp_enabled;
        self.rdb_preamble = config.aof_use_rdb_preamble;
        self.budget.max_bytes = config.aof_max_disk_size;
        self.budget.reserve = config.aof_disk_reserve;
        self.auto_rewrite_percentage = config.auto_aof_rewrite_percentage;
        self.auto_rewrite_min_size = config.auto_aof_rewrite_min_size;
    }

    /// Appends propagated stream bytes (a `#TS:` line first when timestamps are on and the
    /// second changed).
    pub fn append(&mut self, stream_bytes: &[u8]) {
        if self.timestamps {
            // The clock is read only when timestamps are on: this runs for every command.
            let now = crate::engine::unix_now_ms() / 1000;
            if now > self.last_timestamp {
                self.last_timestamp = now;
                let line = format!("#TS:{now}\r\n");
                self.annotate(line.as_bytes());
            }
        }
        self.writer.append(stream_bytes);
        self.incr_bytes += stream_bytes.len() as u64;
        self.budget.appended(stream_bytes.len() as u64);
    }

    /// Appends commands that are not part of the replication stream (on a replica: a
    /// `SELECT` before its primary's bytes when a new incr file starts mid-stream, a
    /// writable replica's own writes). The caller then marks the position again
    /// ([`Aof::set_position`], outside a `MULTI` block) so a loader's count of stream bytes
    /// leaves them out.
    pub fn append_outside_stream(&mut self, bytes: &[u8]) {
        self.writer.insert(bytes);
        self.incr_bytes += bytes.len() as u64;
        self.budget.appended(bytes.len() as u64);
    }

    /// Records that the stream is at `offset` of history `replid` from here on (an annotation
    /// line); later incr files are marked with `replid`.
    pub fn set_position(&mut self, replid: &str, offset: u64) {
        self.replid = replid.to_owned();
        self.annotate(&repl_annotation(replid, offset));
    }

    fn annotate(&mut self, line: &[u8]) {
        self.writer.annotate(line);
        self.incr_bytes += line.len() as u64;
        self.budget.appended(line.len() as u64);
    }

    /// The writer: ack offsets, subscriptions, status.
    pub fn writer(&self) -> &AofWriter {
        &self.writer
    }

    /// The manifest as last persisted.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The AOF directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of the AOF (base and incr files; `aof_current_size`).
    pub fn current_size(&self) -> u64 {
        self.settled_bytes + self.incr_bytes
    }

    /// Size of the AOF after the last rewrite (`aof_base_size`).
    pub fn base_size(&self) -> u64 {
        self.rewrite_base_size
    }

    /// Everything the budget counts: the AOF's files and a rewrite's new base so far.
    pub fn disk_usage(&self) -> u64 {
        self.current_size() + self.rewrite.as_ref().map_or(0, |r| r.capped.written())
    }

    /// The error a write of about `incoming` bytes must get now, if any: the writer's
    /// (a failed write or fsync), then the disk budget's.
    pub fn write_refusal(&mut self, incoming: u64) -> Option<String> {
        if let Some(refusal) = self.writer.writes_refused() {
            return Some(refusal);
        }
        let usage = self.disk_usage();
        let headroom = self.rewrite_headroom();
        self.budget.refusal(usage, incoming, headroom)
    }

    /// Space writes must leave for a rewrite: none while one runs (its bytes count in the
    /// usage), else [`Budget::rewrite_headroom`] of the current base.
    fn rewrite_headroom(&self) -> u64 {
        if self.rewrite.is_some() {
            0
        } else {
            self.budget.rewrite_headroom(self.base_bytes)
        }
    }

    /// True while a rewrite runs.
    pub fn rewrite_in_progress(&self) -> bool {
        self.rewrite.is_some()
    }

    /// True when a `BGREWRITEAOF` waits for a running save to end.
    pub fn rewrite_scheduled(&self) -> bool {
        self.rewrite_scheduled
    }

    /// Asks the cron to start a rewrite as soon as it can.
    pub fn schedule_rewrite(&mut self) {
        self.rewrite_scheduled = true;
    }

    /// Starts a background rewrite of `snapshot`, which must be taken under the engine lock at
    /// the current end of the stream (step 1 of the module docs). `offset` is that point's
    /// replication offset.
    pub fn start_rewrite(
        &mut self,
        snapshot: impl DatasetSnapshot + Send + 'static,
        offset: u64,
        trigger: RewriteTrigger,
    ) -> std::result::Result<(), String> {
        if self.rewrite.is_some() {
            return Err(REWRITE_IN_PROGRESS_ERROR.into());
        }
        // A rewrite that cannot start stays scheduled only while the AOF turned on at run
        // time waits for its first base.
        self.rewrite_scheduled = self.pending_first_base;
        let usage = self.disk_usage();
        let room = self.budget.room_for_rewrite(usage);
        let estimate = self.base_bytes;
        if room < estimate {
            let why = format!(
                "ERR AOF rewrite not started: the new base needs about {estimate} bytes and the \
                 disk budget leaves {room} (aof-max-disk-size {}, aof-disk-reserve {}, {usage} in \
                 use)",
                self.budget.max_bytes, self.budget.reserve
            );
            tracing::warn!("{}", &why[4..]);
            self.rewrite_stats.last_error = Some(why.clone());
            return Err(why);
        }
        if let Err(e) = self.open_next_incr(offset) {
            let why = format!("ERR AOF rewrite not started: opening a new incr file: {e}");
            tracing::warn!("{}", &why[4..]);
            self.rewrite_failed(why.clone());
            return Err(why);
        }
        let temp = self.data_dir.join(temp_rewrite_name());
        let capped = CappedStorage::new(self.storage.clone(), room);
        let job = {
            let storage = capped.clone();
            let temp = temp.clone();
            let preamble = self.rdb_preamble;
            let timestamp = self.timestamps.then(|| crate::engine::unix_now_ms() / 1000);
            BackgroundSave::start_job(
                snapshot,
                snapshot::rss::resident_bytes,
                move |snapshot, control| {
                    write_base(&storage, &temp, snapshot, preamble, timestamp, control)
                },
            )
        };
        match job {
            Ok(job) => {
                tracing::info!("Background append only file rewriting started ({trigger:?})");
                self.rewrite_scheduled = false;
                self.rewrite = Some(RunningRewrite {
                    job,
                    temp,
                    capped,
                    started: Instant::now(),
                });
                Ok(())
            }
            Err(e) => {
                let why = format!("ERR Can't rewrite append only file in background: {e}");
                self.rewrite_failed(why.clone());
                Err(why)
            }
        }
    }

    /// Step 1: a new incr file, listed in a persisted manifest, and the writer switched to it.
    /// Reuses the current incr when nothing was written to it since it was opened (a retry
    /// after a failed rewrite), so failures do not multiply incr files.
    fn open_next_incr(&mut self, offset: u64) -> Result<()> {
        // The snapshot taken now is the state at the start of the current incr when nothing
        // but its header was written to it: the new base can be followed by it.
        if self.incr_bytes == self.incr_header_bytes {
            return Ok(());
        }
        if !self.pending_first_base {
            // The manifest about to be persisted lists a file after the current one, which
            // then must hold all it was sent: a torn tail is only allowed in the last file.
            self.writer.sync_all()?;
        }
        let mut next = self.manifest.clone();
        if self.pending_first_base {
            // Without a base, an incr is worthless alone: the one written since the AOF was
            // turned on becomes history, and nothing is persisted before the base is.
            if let Some(mut abandoned) = next.incrs.pop() {
                abandoned.kind = FileKind::History;
                next.history.push(abandoned);
            }
        }
        let path = self.dir.join(&next.add_incr(&self.names).name);
        let file = self.storage.create(&path)?;
        let persisted = self.storage.sync_dir(&self.dir).and_then(|()| {
            if self.pending_first_base {
                Ok(())
            } else {
                manifest::persist(&*self.storage, &self.dir, &self.names, &next)
            }
        });
        if let Err(e) = persisted {
            drop(file);
            let _ = self.storage.remove(&path);
            return Err(e);
        }
        self.manifest = next;
        self.writer.switch_file(path, file);
        let header = repl_annotation(&self.replid, offset);
        self.settled_bytes += self.incr_bytes;
        self.incr_bytes = 0;
        self.annotate(&header);
        self.incr_header_bytes = header.len() as u64;
        Ok(())
    }

    /// Collects a finished rewrite (steps 3 and 4 of the module docs). `wait` blocks until
    /// it ends. Returns whether one finished.
    pub fn finish_rewrite(&mut self, wait: bool) -> bool {
        let Some(running) = self.rewrite.take() else {
            return false;
        };
        let outcome: BgsaveOutcome = if wait {
            running.job.wait()
        } else {
            match running.job.try_finish() {
                Ok(outcome) => outcome,
                Err(job) => {
                    self.rewrite = Some(RunningRewrite { job, ..running });
                    return false;
                }
            }
        };
        let elapsed = running.started.elapsed();
        match outcome.status {
            BgsaveStatus::Saved(_) => match self.install_base(&running.temp) {
                Ok(()) => {
                    tracing::info!("Background AOF rewrite finished successfully");
                    self.rewrite_stats.rewrites += 1;
                    self.rewrite_stats.consecutive_failures = 0;
                    self.rewrite_stats.last_ok = true;
                    self.rewrite_stats.last_error = None;
                    self.rewrite_stats.last_duration = Some(elapsed);
                    self.rewrite_stats.backoff = Duration::ZERO;
                    self.rewrite_stats.backoff_until = None;
                }
                Err(e) => {
                    let _ = self.storage.remove(&running.temp);
                    self.rewrite_failed(format!("installing the new base: {e}"));
                }
            },
            BgsaveStatus::Failed(e) => {
                let _ = self.storage.remove(&running.temp);
                self.rewrite_failed(format!("writing the new base: {e}"));
            }
            BgsaveStatus::Cancelled => {
                let _ = self.storage.remove(&running.temp);
            }
        }
        self.rewrite_stats.last_duration = Some(elapsed);
        true
    }

    /// Steps 3 and 4: the new base into the directory, the manifest swap, history deleted.
    fn install_base(&mut self, temp: &Path) -> Result<()> {
        // The manifest to publish: the new base, the incr written now; the old base and
        // the other incr files become history.
        let mut next = self.manifest.clone();
        let path = self
            .dir
            .join(&next.set_new_base(&self.names, self.rdb_preamble).name);
        next.mark_rewritten_incrs_as_history(true);
        fail::fail_point!(crate::failpoints::AOF_REWRITE_BEFORE_RENAME, |_| Err(
            crate::failpoints::injected(crate::failpoints::AOF_REWRITE_BEFORE_RENAME)
        ));
        self.storage.rename(temp, &path)?;
        // Until a durable manifest names it, the new base is garbage if anything fails: it is
        // removed, so a failed rewrite leaves no unlisted file behind.
        let listed = (|| {
            self.storage.sync_dir(&self.dir)?;
            fail::fail_point!(crate::failpoints::AOF_REWRITE_BEFORE_MANIFEST, |_| Err(
                crate::failpoints::injected(crate::failpoints::AOF_REWRITE_BEFORE_MANIFEST)
            ));
            manifest::persist(&*self.storage, &self.dir, &self.names, &next)
        })();
        if let Err(e) = listed {
            let _ = self.storage.remove(&path);
            return Err(e);
        }
        // The new set is authoritative from here on.
        self.manifest = next;
        self.pending_first_base = false;
        self.base_bytes = self.storage.len(&path)?.unwrap_or(0);
        self.settled_bytes = self.base_bytes;
        self.rewrite_base_size = self.current_size();
        fail::fail_point!(crate::failpoints::AOF_REWRITE_BEFORE_GC, |_| Err(
            crate::failpoints::injected(crate::failpoints::AOF_REWRITE_BEFORE_GC)
        ));
        delete_history(&*self.storage, &self.dir, &mut self.manifest);
        if let Err(e) = manifest::persist(&*self.storage, &self.dir, &self.names, &self.manifest) {
            // The history lines stay; their files are gone and the next start drops them.
            tracing::warn!("AOF manifest without history not persisted: {e}");
        }
        Ok(())
    }

    fn rewrite_failed(&mut self, why: String) {
        tracing::warn!("Background AOF rewrite failed: {why}");
        if self.pending_first_base {
            // The AOF turned on at run time has no base yet: try again (with the back-off
            // of automatic rewrites).
            self.rewrite_scheduled = true;
        }
        let stats = &mut self.rewrite_stats;
        stats.consecutive_failures += 1;
        stats.last_ok = false;
        stats.last_error = Some(why);
    }

    /// True when an automatic rewrite may start now, applying Redis's back-off after
    /// repeated failures (`aofRewriteLimited`): from the [`REWRITE_LIMIT_THRESHOLD`]th
    /// consecutive failure, wait 1, 2, 4 … up to 60 minutes between attempts.
    fn automatic_rewrite_allowed(&mut self, now: Instant) -> bool {
        let stats = &mut self.rewrite_stats;
        if stats.consecutive_failures < REWRITE_LIMIT_THRESHOLD {
            stats.backoff = Duration::ZERO;
            stats.backoff_until = None;
            return true;
        }
        if let Some(until) = stats.backoff_until {
            if now < until {
                return false;
            }
            stats.backoff_until = None;
            return true;
        }
        stats.backoff = if stats.backoff.is_zero() {
            Duration::from_secs(60)
        } else {
            (stats.backoff * 2).min(REWRITE_LIMIT_MAX)
        };
        stats.backoff_until = Some(now + stats.backoff);
        tracing::warn!(
            "Background AOF rewrite has repeatedly failed and triggered the limit, will retry \
             in {} minutes",
            stats.backoff.as_secs() / 60
        );
        false
    }

    /// What the cron should start, if anything: a scheduled `BGREWRITEAOF`, a rewrite for
    /// growth (`auto-aof-rewrite-percentage` over `auto-aof-rewrite-min-size`), or one because
    /// the budget is getting tight (usage past three quarters of what writes may use of
    /// `aof-max-disk-size`, with at least a quarter of it in incr files a rewrite would fold
    /// away).
    pub fn rewrite_due(&mut self, now: Instant) -> Option<RewriteTrigger> {
        if self.rewrite.is_some() {
            return None;
        }
        if self.rewrite_scheduled {
            if self.pending_first_base {
                return self
                    .automatic_rewrite_allowed(now)
                    .then_some(RewriteTrigger::Enable);
            }
            return Some(RewriteTrigger::Command);
        }
        let size = self.current_size();
        let growth_due = self.auto_rewrite_percentage > 0
            && size > self.auto_rewrite_min_size
            && self.rewrite_base_size > 0
            && (size * 100 / self.rewrite_base_size).saturating_sub(100)
                >= self.auto_rewrite_percentage;
        let usage = self.disk_usage();
        let max = self.budget.max_bytes;
        let writable = max.saturating_sub(self.rewrite_headroom());
        let foldable = usage.saturating_sub(self.base_bytes);
        let budget_due = max > 0 && usage >= writable / 4 * 3 && foldable >= usage / 4;
        let trigger = if budget_due {
            RewriteTrigger::Budget
        } else if growth_due {
            RewriteTrigger::Growth
        } else {
            return None;
        };
        self.automatic_rewrite_allowed(now).then_some(trigger)
    }

    /// Refreshes the free space the budget's reserve is checked against.
    pub fn observe_free_space(&mut self) {
        match self.storage.available_space(&self.dir) {
            Ok(free) => self.budget.observe_free_space(free),
            Err(e) => tracing::debug!("free space of {}: {e}", self.dir.display()),
        }
    }

    /// Stops a running rewrite (shutdown), removing its temp file.
    pub fn cancel_rewrite(&mut self) {
        if let Some(running) = self.rewrite.take() {
            running.job.cancel();
            let _ = running.job.wait();
            let _ = self.storage.remove(&running.temp);
        }
    }

    /// Stops as a crash would: the rewrite is stopped, the writer drops what it has not
    /// written and syncs nothing more.
    pub fn abandon(mut self) {
        if let Some(running) = self.rewrite.take() {
            running.job.cancel();
            let _ = running.job.wait();
        }
        self.writer.abandon();
    }

    /// Flushes and syncs what was appended, stops the writer (shutdown).
    pub fn close(mut self) -> Result<()> {
        self.cancel_rewrite();
        self.writer.close()
    }

    /// The AOF lines of `INFO persistence` after `aof_enabled:1` (Redis's names), keeper's
    /// own at the end.
    pub fn info_fields(&self) -> String {
        let status = self.writer.status();
        let stats = &self.rewrite_stats;
        let flag = |on: bool| u8::from(on).to_string();
        let ok = |ok: bool| if ok { "ok" } else { "err" }.to_string();
        let fields: [(&str, String); 28] = [
            ("aof_rewrite_in_progress", flag(self.rewrite.is_some())),
            ("aof_rewrite_scheduled", flag(self.rewrite_scheduled)),
            (
                "aof_last_rewrite_time_sec",
                stats
                    .last_duration
                    .map_or(-1, |d| d.as_secs() as i64)
                    .to_string(),
            ),
            (
                "aof_current_rewrite_time_sec",
                self.rewrite
                    .as_ref()
                    .map_or(-1, |r| r.started.elapsed().as_secs() as i64)
                    .to_string(),
            ),
            ("aof_last_bgrewrite_status", ok(stats.last_ok)),
            ("aof_rewrites", stats.rewrites.to_string()),
            (
                "aof_rewrites_consecutive_failures",
                stats.consecutive_failures.to_string(),
            ),
            ("aof_last_write_status", ok(status.last_write_ok)),
            ("aof_last_cow_size", "0".into()),
            ("module_fork_in_progress", "0".into()),
            ("module_fork_last_cow_size", "0".into()),
            ("aof_current_size", self.current_size().to_string()),
            ("aof_base_size", self.rewrite_base_size.to_string()),
            ("aof_pending_rewrite", flag(self.rewrite_scheduled)),
            ("aof_buffer_length", status.pending_bytes.to_string()),
            ("aof_pending_bio_fsync", "0".into()),
            ("aof_delayed_fsync", status.delayed_fsync.to_string()),
            // keeper's own, after Redis's.
            ("aof_written_offset", status.written_offset.to_string()),
            ("aof_durable_offset", status.durable_offset.to_string()),
            ("aof_fsyncs", status.fsyncs.to_string()),
            ("aof_idle_commits", status.idle_commits.to_string()),
            ("aof_last_fsync_usec", status.last_fsync_micros.to_string()),
            ("aof_max_fsync_usec", status.max_fsync_micros.to_string()),
            ("aof_poisoned", flag(status.poisoned.is_some())),
            ("aof_disk_budget", self.budget.max_bytes.to_string()),
            ("aof_disk_usage", self.disk_usage().to_string()),
            ("aof_disk_reserve", self.budget.reserve.to_string()),
            ("aof_budget_refusals", self.budget.refusals.to_string()),
        ];
        fields
            .iter()
            .map(|(name, value)| format!("{name}:{value}\r\n"))
            .collect()
    }
}

/// Removes what a crash in the middle of a rewrite leaves behind (see [`Aof::prepare`]).
/// Failures are logged, not fatal: the files are garbage either way.
fn remove_leftovers(
    storage: &dyn Storage,
    config: &Config,
    names: &AofNames,
    manifest: Option<&Manifest>,
) {
    let remove = |path: PathBuf| {
        tracing::info!(
            "Removing {} left by an interrupted AOF rewrite",
            path.display()
        );
        if let Err(e) = storage.remove(&path) {
            tracing::warn!("removing {}: {e}", path.display());
        }
    };
    if let Ok(entries) = storage.list(&config.dir) {
        for name in entries {
            // `temp-rewriteaof-bg-<pid>.aof`, or the temp file of its atomic publish,
            // `temp-<pid>-temp-rewriteaof-bg-<pid>.aof`, whatever process wrote them.
            let rewrite_temp = name.ends_with(".aof")
                && (name.starts_with("temp-rewriteaof-bg-")
                    || (name.starts_with("temp-") && name.contains("-temp-rewriteaof-bg-")));
            if rewrite_temp {
                remove(config.dir.join(name));
            }
        }
    }
    let Some(manifest) = manifest else {
        return;
    };
    let dir = config.aof_dir();
    let listed = |name: &str| {
        manifest
            .base
            .iter()
            .chain(&manifest.incrs)
            .chain(&manifest.history)
            .any(|f| f.name == name)
    };
    let Ok(entries) = storage.list(&dir) else {
        return;
    };
    let prefix = format!("{}.", names.appendfilename);
    for name in entries {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let numbered = rest.split_once('.').is_some_and(|(seq, kind)| {
            !seq.is_empty()
                && seq.bytes().all(|b| b.is_ascii_digit())
                && ["base.rdb", "base.aof", "incr.aof"].contains(&kind)
        });
        if numbered && !listed(&name) {
            remove(dir.join(name));
        }
    }
}

/// Redis's name for a rewrite's finished temp file (in `dir`).
fn temp_rewrite_name() -> String {
    format!("temp-rewriteaof-bg-{}.aof", std::process::id())
}

/// Deletes the history files `manifest` lists and forgets them. A file already gone is fine;
/// another failure keeps its line (the next start tries again).
fn delete_history(storage: &dyn Storage, dir: &Path, manifest: &mut Manifest) {
    manifest.history.retain(|f| {
        let path = dir.join(&f.name);
        match storage.len(&path) {
            Ok(None) => false,
            _ => match storage.remove(&path) {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!("removing AOF history file {}: {e}", path.display());
                    true
                }
            },
        }
    });
    if let Err(e) = storage.sync_dir(dir) {
        tracing::warn!("syncing {} after removing history: {e}", dir.display());
    }
}

/// Writes `snapshot` as a base file at `path`, published atomically: an RDB with `aof-base 1`
/// (and no replication fields, as Redis writes it) or RESP commands.
fn write_base(
    storage: &dyn Storage,
    path: &Path,
    snapshot: &dyn DatasetSnapshot,
    rdb_preamble: bool,
    timestamp: Option<i64>,
    control: &snapshot::SaveControl,
) -> Result<snapshot::SaveStats> {
    if rdb_preamble {
        let options = SaveOptions {
            aof_base: true,
            used_mem: snapshot::rss::resident_bytes().unwrap_or(0),
            ..SaveOptions::default()
        };
        snapshot::write_rdb_controlled(storage, path, snapshot, &options, control)
    } else {
        rewrite::write_resp_base(storage, path, snapshot, timestamp, control)
    }
    .map_err(|e| match e {
        Error::Io {
            path: None,
            op,
            source,
        } => Error::Io {
            path: Some(path.to_path_buf()),
            op,
            source,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn prepare_removes_what_a_crashed_rewrite_left_and_nothing_else() {
        let storage = SimStorage::new(3);
        let config = Config {
            dir: PathBuf::from("data"),
            ..Config::default()
        };
        let dir = config.aof_dir();
        storage.create_dir_all(&dir).unwrap();
        let names = AofNames::new(&config.appendfilename);
        let manifest = Manifest::parse(
            b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
            Path::new("m"),
        )
        .unwrap();
        manifest::persist(&storage, &dir, &names, &manifest).unwrap();
        let kept = [
            "data/appendonlydir/appendonly.aof.1.base.rdb",
            "data/appendonlydir/appendonly.aof.1.incr.aof",
            "data/appendonlydir/notes.txt",
            "data/dump.rdb",
        ];
        let leftovers = [
            "data/appendonlydir/appendonly.aof.2.base.rdb",
            "data/appendonlydir/appendonly.aof.2.incr.aof",
            "data/temp-rewriteaof-bg-999.aof",
            "data/temp-999-temp-rewriteaof-bg-999.aof",
        ];
        for path in kept.iter().chain(&leftovers) {
            storage
                .create(Path::new(path))
                .unwrap()
                .write_all(b"x")
                .unwrap();
        }
        let prepared = Aof::prepare(&storage, &config).unwrap();
        assert_eq!(prepared.manifest, Some(manifest));
        for path in kept {
            assert!(
                storage.len(Path::new(path)).unwrap().is_some(),
                "{path} removed"
            );
        }
        for path in leftovers {
            assert!(
                storage.len(Path::new(path)).unwrap().is_none(),
                "{path} kept"
            );
        }
    }
}
