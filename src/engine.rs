//! The engine: the keyspace, and the one road every mutation travels.
//!
//! [`Engine`] owns the [`Store`], the dirty counter (changes since the last save), the
//! replication offset and the propagation road. A command runs through
//! [`Engine::execute`]; whatever it must propagate (the command itself, or Redis's
//! deterministic rewrite of it, and the `DEL`s of keys it found expired) is encoded once as
//! RESP and fed to every registered [`PropagationSink`] by [`Engine::propagate`] — the AOF
//! (issue 5) and the replication backlog (issue 7) plug in there. The offset counts every byte
//! of that stream, `SELECT`s and `MULTI`/`EXEC` included, so the AOF, the backlog and the
//! replicas agree on positions.
//!
//! Propagation follows Redis 7.0 (`propagatePendingCommands`; checked against redis-server
//! 7.0.15's AOF): the commands one *execution unit* (a command, or a whole `MULTI`/`EXEC`)
//! propagates are wrapped in `MULTI` … `EXEC` when there are two or more of them (a write
//! after lazily expiring its key gives `MULTI DEL set EXEC`), and sent bare when there is one;
//! a `SELECT` precedes any command whose database differs from the last one propagated.
//!
//! Persistence (SAVE, BGSAVE, save points, loading `dump.rdb`) sits behind the thin
//! [`Persistence`] seam: a snapshot of the store written with [`crate::rdb::Writer`] through
//! [`Storage`] and published atomically. BGSAVE writes from `store.snapshot()` (O(1), point in
//! time) on a plain thread while commands go on; [`Engine::cron`] notices when it ends.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::command::{self, CommandSpec, Propagate, Rng};
use crate::config::Config;
use crate::dataset::DatasetSnapshot;
use crate::error::{Error, Result};
use crate::rdb::{self, Event, Reader, WriteOptions, Writer};
use crate::resp::{self, Reply};
use crate::storage::{Storage, publish_atomically};
use crate::store::Store;

/// A consumer of the propagated stream (AOF writer, replication backlog, a test recorder).
/// `append` gets whole RESP commands, in order, exactly once.
pub trait PropagationSink: Send {
    fn append(&mut self, bytes: &[u8]);
}

/// Keys the active expiry cycle removes per step before it looks at the clock (Redis's
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
const EXPIRE_KEYS_PER_STEP: usize = 20;
/// After a failed background save, save points wait this long before trying again
/// (`CONFIG_BGSAVE_RETRY_DELAY`).
const BGSAVE_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The error `SAVE`/`BGSAVE` give while a background save runs.
pub const BGSAVE_IN_PROGRESS: &str = "ERR Background save already in progress";

/// Counters for `INFO stats`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total_commands_processed: u64,
    pub total_connections_received: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
}

/// Keys and time of the last load at start.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadStats {
    pub keys_loaded: u64,
    /// Keys in the file whose TTL had passed: dropped, as a Redis primary drops them.
    pub keys_expired: u64,
    pub elapsed: Duration,
}

/// A background save in flight.
struct RunningSave {
    handle: JoinHandle<Result<()>>,
    started: Instant,
    /// The dirty counter when the snapshot was taken: on success only the changes made
    /// since stay unsaved.
    dirty_at_start: u64,
}

/// RDB persistence state: the seam `snapshot.rs` replaces after merge. Where and when to
/// save come from [`Config`] (`dir`, `dbfilename`, `save`, `rdbcompression`, `rdbchecksum`),
/// so `CONFIG SET` takes effect at once; this holds what happened.
pub struct Persistence {
    storage: Arc<dyn Storage>,
    /// `LASTSAVE`: unix seconds of the last successful save (the start time at first).
    pub last_save_unix: i64,
    /// `rdb_last_bgsave_status`: false after a failed save, until one succeeds.
    pub last_bgsave_ok: bool,
    /// `rdb_last_bgsave_time_sec`: -1 before the first background save.
    pub last_bgsave_time_sec: i64,
    /// `rdb_saves`: successful saves since start.
    pub saves: u64,
    /// `BGSAVE SCHEDULE` asked for a save while one was running.
    pub bgsave_scheduled: bool,
    last_attempt: Option<Instant>,
    running: Option<RunningSave>,
    /// What the load at start found.
    pub last_load: LoadStats,
}

impl Persistence {
    fn new(storage: Arc<dyn Storage>) -> Self {
        Persistence {
            storage,
            last_save_unix: unix_now_ms() / 1000,
            last_bgsave_ok: true,
            last_bgsave_time_sec: -1,
            saves: 0,
            bgsave_scheduled: false,
            last_attempt: None,
            running: None,
            last_load: LoadStats::default(),
        }
    }

    /// True while a background save runs.
    pub fn bgsave_in_progress(&self) -> bool {
        self.running.is_some()
    }

    /// Seconds the running background save has taken so far, or -1.
    pub fn current_bgsave_time_sec(&self) -> i64 {
        self.running
            .as_ref()
            .map_or(-1, |r| r.started.elapsed().as_secs() as i64)
    }

    /// The storage files are written through.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
}

/// The engine. Shared by connections behind one mutex (see `crate::server`).
pub struct Engine {
    store: Store,
    config: Config,
    dirty: u64,
    repl_offset: u64,
    replid: String,
    /// Database of the last command propagated; `None` forces a `SELECT` first.
    propagated_db: Option<usize>,
    sinks: Vec<Box<dyn PropagationSink>>,
    /// Encoding scratch, reused so propagation does not allocate per command.
    encoded: Vec<u8>,
    /// True between [`Engine::begin_unit`] and [`Engine::end_unit`].
    in_unit: bool,
    /// Commands the current unit will propagate: `(db, argv)`.
    pending: Vec<(usize, Vec<Bytes>)>,
    rng: Rng,
    pub persistence: Persistence,
    pub stats: Stats,
    started: Instant,
}

impl Engine {
    /// An engine with an empty store shaped by `config`, writing files through `storage`.
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> Self {
        let mut rng = Rng::from_clock();
        let replid = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
            .collect();
        Engine {
            store: Store::new(config.databases),
            config,
            dirty: 0,
            repl_offset: 0,
            replid,
            propagated_db: None,
            sinks: Vec::new(),
            encoded: Vec::with_capacity(256),
            in_unit: false,
            pending: Vec::new(),
            rng,
            persistence: Persistence::new(storage),
            stats: Stats::default(),
            started: Instant::now(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for changes that bypass commands (loading). Changes made here are not
    /// propagated.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Changes since the last successful save (`rdb_changes_since_last_save`).
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Bytes propagated since start (`master_repl_offset`).
    pub fn repl_offset(&self) -> u64 {
        self.repl_offset
    }

    /// This node's replication id (40 hex characters, new at every start).
    pub fn replid(&self) -> &str {
        &self.replid
    }

    /// Time since the engine was created.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The engine's random source (RANDOMKEY, SPOP, … draw from it).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Registers a consumer of the propagated stream; it sees commands propagated from now on.
    /// Its first command is preceded by a `SELECT`.
    pub fn add_sink(&mut self, sink: Box<dyn PropagationSink>) {
        self.sinks.push(sink);
        self.propagated_db = None;
    }

    /// Appends `argv`, run in database `db`, to the propagated stream: a `SELECT db` first
    /// when `db` is not the last database propagated, then the command as a RESP multibulk.
    /// The offset advances by every byte.
    pub fn propagate<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        self.encoded.clear();
        if self.propagated_db != Some(db) {
            let db_text = db.to_string();
            resp::write_command(&mut self.encoded, &[b"SELECT", db_text.as_bytes()]);
            self.propagated_db = Some(db);
        }
        resp::write_command(&mut self.encoded, argv);
        self.repl_offset += self.encoded.len() as u64;
        for sink in &mut self.sinks {
            sink.append(&self.encoded);
        }
    }

    /// Starts an execution unit (`EXEC`): what its commands propagate is held until
    /// [`Engine::end_unit`], then sent as one `MULTI` … `EXEC` block if there are several.
    pub fn begin_unit(&mut self) {
        self.in_unit = true;
    }

    /// Ends the unit started by [`Engine::begin_unit`] and propagates what it collected.
    pub fn end_unit(&mut self) {
        self.in_unit = false;
        self.flush_pending();
    }

    fn flush_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        match pending.len() {
            0 => {}
            1 => self.propagate(pending[0].0, &pending[0].1),
            _ => {
                self.propagate(pending[0].0, &[&b"MULTI"[..]]);
                for (db, argv) in &pending {
                    self.propagate(*db, argv);
                }
                let db = self.propagated_db.unwrap_or(pending[0].0);
                self.propagate(db, &[&b"EXEC"[..]]);
            }
        }
        // Keep the vector's capacity for the next unit.
        self.pending = pending;
        self.pending.clear();
    }

    /// Runs an already looked-up, arity-checked data command in database `db` at `now_ms`,
    /// counts its changes and propagates what it must (see the module docs).
    pub fn execute(&mut self, spec: &CommandSpec, db: usize, argv: &[Bytes], now_ms: i64) -> Reply {
        let effect = command::run(spec, &mut self.store, db, argv, now_ms, &mut self.rng);
        self.dirty += effect.dirty;
        let expired = self.store.take_expired();
        self.stats.expired_keys += expired.len() as u64;
        if !self.in_unit && expired.is_empty() {
            // The common case: no buffering, no allocation.
            match effect.propagate {
                Propagate::Nothing => {}
                Propagate::Verbatim => self.propagate(db, argv),
                Propagate::Commands(commands) => {
                    self.pending
                        .extend(commands.into_iter().map(|argv| (db, argv)));
                    self.flush_pending();
                }
            }
            return effect.reply;
        }
        for (expired_db, key) in expired {
            self.pending
                .push((expired_db, vec![Bytes::from_static(b"DEL"), key]));
        }
        match effect.propagate {
            Propagate::Nothing => {}
            Propagate::Verbatim => self.pending.push((db, argv.to_vec())),
            Propagate::Commands(commands) => self
                .pending
                .extend(commands.into_iter().map(|argv| (db, argv))),
        }
        if !self.in_unit {
            self.flush_pending();
        }
        effect.reply
    }

    /// Propagates the `DEL` of every key removed by expiry outside a command. Each is its own
    /// unit, as Redis's active expiry propagates them.
    fn propagate_expired(&mut self, on_removed: &mut dyn FnMut(usize, &Bytes)) -> usize {
        let expired = self.store.take_expired();
        self.stats.expired_keys += expired.len() as u64;
        let n = expired.len();
        for (db, key) in expired {
            self.propagate(db, &[&b"DEL"[..], &key[..]]);
            on_removed(db, &key);
        }
        n
    }

    /// One active expiry cycle: removes keys whose TTL passed, `EXPIRE_KEYS_PER_STEP` at a
    /// time, until none is due or `budget` is spent (Redis spends at most 25% of a cron
    /// period). Calls `on_removed` with each key removed; returns how many were.
    pub fn active_expire(
        &mut self,
        now_ms: i64,
        budget: Duration,
        on_removed: &mut dyn FnMut(usize, &Bytes),
    ) -> usize {
        let start = Instant::now();
        let mut removed = 0;
        loop {
            let step = self.store.expire_cycle(now_ms, EXPIRE_KEYS_PER_STEP);
            removed += self.propagate_expired(on_removed);
            if step < EXPIRE_KEYS_PER_STEP || start.elapsed() >= budget {
                return removed;
            }
        }
    }

    /// The `MISCONF` error when writes must be refused: the last background save failed,
    /// save points are set and `stop-writes-on-bgsave-error` is yes.
    pub fn writes_refused(&self) -> Option<&'static str> {
        let refuse = self.config.stop_writes_on_bgsave_error
            && !self.config.save.is_empty()
            && !self.persistence.last_bgsave_ok;
        refuse.then_some(
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to \
             persist to disk. Commands that may modify the data set are disabled, because this \
             instance is configured to report errors during writes if RDB snapshotting fails \
             (stop-writes-on-bgsave-error option). Please check the Redis logs for details \
             about the RDB error.",
        )
    }

    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions {
            compression: self.config.rdbcompression,
            checksum: self.config.rdbchecksum,
            ..WriteOptions::default()
        };
        options.aux.used_mem = crate::server::rss_bytes();
        options
    }

    /// `SAVE`: writes the dataset to `dir/dbfilename` now, in the caller's thread.
    pub fn save(&mut self) -> Result<()> {
        if self.persistence.running.is_some() {
            return Err(Error::InvalidArgument(BGSAVE_IN_PROGRESS.into()));
        }
        let snapshot = self.store.snapshot();
        let path = self.config.rdb_path();
        let options = self.write_options();
        let result = write_snapshot(&*self.persistence.storage, &path, &snapshot, options);
        match &result {
            Ok(()) => {
                self.dirty = 0;
                self.persistence.last_save_unix = unix_now_ms() / 1000;
                self.persistence.last_bgsave_ok = true;
                self.persistence.saves += 1;
                tracing::info!("DB saved on disk");
            }
            Err(e) => tracing::warn!("Error saving DB on disk: {e}"),
        }
        result
    }

    /// `BGSAVE`: starts writing a point-in-time snapshot on a background thread. `Err` is the
    /// error reply when one is already running.
    pub fn bgsave(&mut self) -> std::result::Result<(), &'static str> {
        if self.persistence.running.is_some() {
            return Err(BGSAVE_IN_PROGRESS);
        }
        let snapshot = self.store.snapshot();
        let storage = Arc::clone(&self.persistence.storage);
        let path = self.config.rdb_path();
        let options = self.write_options();
        self.persistence.last_attempt = Some(Instant::now());
        let spawned = std::thread::Builder::new()
            .name("keeper-bgsave".into())
            .spawn(move || write_snapshot(&*storage, &path, &snapshot, options));
        match spawned {
            Ok(handle) => {
                tracing::info!("Background saving started");
                self.persistence.running = Some(RunningSave {
                    handle,
                    started: Instant::now(),
                    dirty_at_start: self.dirty,
                });
                Ok(())
            }
            Err(e) => {
                tracing::warn!("Can't save in background: {e}");
                self.persistence.last_bgsave_ok = false;
                Err("ERR Background save failed to start")
            }
        }
    }

    /// `BGSAVE SCHEDULE` while a save runs: start another when it ends.
    pub fn schedule_bgsave(&mut self) {
        self.persistence.bgsave_scheduled = true;
    }

    /// Collects a finished background save, if any; with `wait`, waits for a running one.
    pub fn finish_bgsave(&mut self, wait: bool) {
        let finished = self
            .persistence
            .running
            .as_ref()
            .is_some_and(|r| wait || r.handle.is_finished());
        if !finished {
            return;
        }
        let Some(running) = self.persistence.running.take() else {
            return;
        };
        let elapsed = running.started.elapsed();
        let result = running
            .handle
            .join()
            .unwrap_or_else(|_| Err(Error::InvalidArgument("background save panicked".into())));
        self.persistence.last_bgsave_time_sec = elapsed.as_secs() as i64;
        match result {
            Ok(()) => {
                self.dirty = self.dirty.saturating_sub(running.dirty_at_start);
                self.persistence.last_save_unix = unix_now_ms() / 1000;
                self.persistence.last_bgsave_ok = true;
                self.persistence.saves += 1;
                tracing::info!("Background saving terminated with success");
            }
            Err(e) => {
                self.persistence.last_bgsave_ok = false;
                tracing::warn!("Background saving error: {e}");
            }
        }
    }

    /// The periodic work of the server cron: collects a finished background save, starts a
    /// scheduled one or one a save point asks for.
    pub fn cron(&mut self) {
        self.finish_bgsave(false);
        if self.persistence.running.is_some() {
            return;
        }
        if self.persistence.bgsave_scheduled {
            self.persistence.bgsave_scheduled = false;
            let _ = self.bgsave();
            return;
        }
        let now = unix_now_ms() / 1000;
        let since_save = (now - self.persistence.last_save_unix).max(0) as u64;
        let may_retry = self.persistence.last_bgsave_ok
            || self
                .persistence
                .last_attempt
                .is_none_or(|at| at.elapsed() >= BGSAVE_RETRY_DELAY);
        let due = self
            .config
            .save
            .iter()
            .find(|p| self.dirty >= p.changes && since_save > p.seconds);
        if let Some(point) = due
            && may_retry
        {
            tracing::info!(
                "{} changes in {} seconds. Saving...",
                point.changes,
                point.seconds
            );
            let _ = self.bgsave();
        }
    }

    /// Loads `dir/dbfilename` into the (empty) store if the file exists. Keys already expired
    /// are dropped. A damaged file is an error naming the file, offset and reason.
    pub fn load_rdb(&mut self) -> Result<Option<LoadStats>> {
        let path = self.config.rdb_path();
        let storage = Arc::clone(&self.persistence.storage);
        if storage.len(&path)?.is_none() {
            return Ok(None);
        }
        let start = Instant::now();
        let now_ms = unix_now_ms();
        let view = storage.read_all(&path)?;
        let mut reader = Reader::from_slice(view).map_err(|e| e.with_file(&path))?;
        let mut stats = LoadStats::default();
        while let Some(event) = reader.next_event().map_err(|e| e.with_file(&path))? {
            match event {
                Event::Entry(entry) => {
                    if entry.db as usize >= self.store.databases() {
                        return Err(Error::Corrupt {
                            file: Some(path.clone()),
                            offset: reader.position(),
                            reason: format!(
                                "key in database {} but `databases` is {}",
                                entry.db,
                                self.store.databases()
                            ),
                        });
                    }
                    if entry.expire_at_ms.is_some_and(|at| at < now_ms) {
                        stats.keys_expired += 1;
                    } else {
                        self.store.load_entry(entry);
                        stats.keys_loaded += 1;
                    }
                }
                Event::Function(_) => {
                    tracing::warn!(
                        "{}: function libraries are not supported; skipped",
                        path.display()
                    );
                }
                _ => {}
            }
        }
        stats.elapsed = start.elapsed();
        self.persistence.last_load = stats;
        Ok(Some(stats))
    }
}

/// Writes `snapshot` as an RDB file at `path`, published atomically (temp file, fsync,
/// rename, directory fsync): a crash leaves the old file or the new one.
pub fn write_snapshot(
    storage: &dyn Storage,
    path: &Path,
    snapshot: &dyn DatasetSnapshot,
    options: WriteOptions,
) -> Result<()> {
    publish_atomically(storage, path, |file| {
        let mut writer = Writer::new(rdb::FileSink::new(file), options)?;
        for db in 0..snapshot.databases() {
            let (keys, expires) = snapshot.db_size(db);
            if keys == 0 {
                continue;
            }
            writer.select_db(db as u32, keys, expires)?;
            snapshot.for_each_entry(db, &mut |entry| writer.write_entry(&entry))?;
        }
        writer.finish()?;
        Ok(())
    })
}

/// Unix time in milliseconds.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::storage::SimStorage;
    use crate::store::{Value, own};

    /// Records the propagated stream.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<u8>>>);

    impl PropagationSink for Recorder {
        fn append(&mut self, bytes: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
    }

    impl Recorder {
        /// The stream as commands of space-joined words.
        fn commands(&self) -> Vec<String> {
            let mut buf = bytes::BytesMut::from(&self.0.lock().unwrap()[..]);
            let mut parser = resp::RequestParser::new();
            let mut out = Vec::new();
            while let Some(cmd) = parser
                .next_command(&mut buf, resp::Limits::default())
                .unwrap()
            {
                let words: Vec<String> = cmd
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                out.push(words.join(" "));
            }
            out
        }

        fn len(&self) -> u64 {
            self.0.lock().unwrap().len() as u64
        }
    }

    fn engine() -> (Engine, Recorder) {
        let mut engine = Engine::new(Config::default(), Arc::new(SimStorage::new(1)));
        let recorder = Recorder::default();
        engine.add_sink(Box::new(recorder.clone()));
        (engine, recorder)
    }

    fn argv(line: &str) -> Vec<Bytes> {
        line.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn set_string(engine: &mut Engine, db: usize, key: &str, value: &str, expire: Option<i64>) {
        engine.store_mut().insert(
            db,
            own(key.as_bytes()),
            Value::String(own(value.as_bytes())),
            expire,
        );
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn propagate_selects_the_database_and_counts_bytes() {
        let (mut engine, rec) = engine();
        engine.propagate(0, &argv("set a 1"));
        engine.propagate(0, &argv("set b 2"));
        engine.propagate(3, &argv("set c 3"));
        assert_eq!(
            rec.commands(),
            ["SELECT 0", "set a 1", "set b 2", "SELECT 3", "set c 3"]
        );
        assert_eq!(engine.repl_offset(), rec.len());
    }

    #[test]
    fn units_with_several_commands_are_wrapped() {
        let (mut engine, rec) = engine();
        engine.begin_unit();
        engine.end_unit(); // nothing propagated: no MULTI/EXEC
        engine.begin_unit();
        engine.pending.push((1, argv("set a 1")));
        engine.end_unit(); // one command: bare
        engine.begin_unit();
        engine.pending.push((2, argv("set a 1")));
        engine.pending.push((2, argv("set b 1")));
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            [
                "SELECT 1", "set a 1", "SELECT 2", "MULTI", "set a 1", "set b 1", "EXEC"
            ]
        );
    }

    #[test]
    fn lazy_expiry_propagates_del_before_the_command() {
        let (mut engine, rec) = engine();
        set_string(&mut engine, 0, "x", "1", Some(NOW - 1));
        set_string(&mut engine, 0, "y", "1", Some(NOW - 1));
        let get = command::lookup(b"get").unwrap();
        assert_eq!(engine.execute(get, 0, &argv("get x"), NOW), Reply::Nil);
        assert_eq!(rec.commands(), ["SELECT 0", "DEL x"]);
        assert_eq!(engine.stats.expired_keys, 1);
        // A read that finds nothing expired propagates nothing.
        engine.execute(get, 0, &argv("get missing"), NOW);
        assert_eq!(rec.commands().len(), 2);
    }

    /// A write command for these tests (the data families live elsewhere): `TSET key value`.
    fn tset(ctx: &mut command::Ctx<'_>, argv: &[Bytes]) -> Reply {
        ctx.store
            .insert(ctx.db, own(&argv[1]), Value::String(own(&argv[2])), None);
        ctx.changed(1);
        Reply::Ok
    }

    static TSET: CommandSpec = CommandSpec {
        name: "tset",
        arity: 3,
        flags: command::flags::WRITE,
        first_key: 1,
        last_key: 1,
        step: 1,
        run: tset,
    };

    #[test]
    fn writes_propagate_verbatim_and_transactions_as_one_block() {
        let (mut engine, rec) = engine();
        engine.execute(&TSET, 0, &argv("tset a 1"), NOW);
        assert_eq!(engine.dirty(), 1);
        // A transaction with one write: bare; with two: MULTI … EXEC.
        engine.begin_unit();
        engine.execute(&TSET, 0, &argv("tset b 1"), NOW);
        engine.end_unit();
        engine.begin_unit();
        engine.execute(&TSET, 1, &argv("tset c 1"), NOW);
        engine.execute(&TSET, 1, &argv("tset d 1"), NOW);
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            [
                "SELECT 0", "tset a 1", "tset b 1", "SELECT 1", "MULTI", "tset c 1", "tset d 1",
                "EXEC"
            ]
        );
        assert_eq!(engine.repl_offset(), rec.len());
        assert_eq!(engine.dirty(), 4);
    }

    #[test]
    fn a_write_after_lazy_expiry_is_wrapped_with_its_del() {
        let (mut engine, rec) = engine();
        set_string(&mut engine, 0, "x", "1", Some(NOW - 1));
        let get = command::lookup(b"get").unwrap();
        engine.begin_unit();
        engine.execute(get, 0, &argv("get x"), NOW);
        engine.execute(&TSET, 0, &argv("tset x 2"), NOW);
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            ["SELECT 0", "MULTI", "DEL x", "tset x 2", "EXEC"]
        );
    }

    #[test]
    fn active_expiry_propagates_each_del_and_is_bounded() {
        let (mut engine, rec) = engine();
        for i in 0..50 {
            set_string(&mut engine, 2, &format!("k{i}"), "v", Some(NOW - 10));
        }
        set_string(&mut engine, 2, "later", "v", Some(NOW + 10_000));
        assert_eq!(
            engine.active_expire(NOW, Duration::from_secs(10), &mut |_, _| {}),
            50
        );
        let cmds = rec.commands();
        assert_eq!(cmds[0], "SELECT 2");
        assert_eq!(cmds.len(), 51);
        assert!(cmds[1..].iter().all(|c| c.starts_with("DEL k")));
        assert_eq!(engine.store().db(2).len(), 1);
        // A zero budget still makes progress, one step at a time.
        for i in 0..30 {
            set_string(&mut engine, 0, &format!("j{i}"), "v", Some(NOW - 10));
        }
        assert_eq!(
            engine.active_expire(NOW, Duration::ZERO, &mut |_, _| {}),
            EXPIRE_KEYS_PER_STEP
        );
    }

    #[test]
    fn save_writes_a_loadable_file_and_resets_dirty() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        set_string(&mut engine, 0, "a", "1", None);
        set_string(&mut engine, 5, "b", "2", Some(unix_now_ms() + 100_000));
        set_string(&mut engine, 5, "gone", "2", Some(NOW));
        engine.dirty = 7;
        engine.save().unwrap();
        assert_eq!(engine.dirty(), 0);
        assert_eq!(engine.persistence.saves, 1);

        let mut again = Engine::new(Config::default(), storage);
        let stats = again.load_rdb().unwrap().unwrap();
        assert_eq!((stats.keys_loaded, stats.keys_expired), (2, 1));
        assert_eq!(again.store().db(5).len(), 1);
        assert_eq!(again.store().db(5).expires_len(), 1);
    }

    #[test]
    fn bgsave_is_point_in_time_and_subtracts_dirty_at_start() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        set_string(&mut engine, 0, "a", "1", None);
        engine.dirty = 3;
        engine.bgsave().unwrap();
        assert_eq!(engine.bgsave(), Err(BGSAVE_IN_PROGRESS));
        assert!(engine.save().is_err());
        // Written after the snapshot: not in the file.
        set_string(&mut engine, 0, "b", "2", None);
        engine.dirty += 2;
        engine.finish_bgsave(true);
        assert!(engine.persistence.last_bgsave_ok);
        assert_eq!(engine.dirty(), 2);
        let mut again = Engine::new(Config::default(), storage);
        assert_eq!(again.load_rdb().unwrap().unwrap().keys_loaded, 1);
    }

    #[test]
    fn failed_bgsave_refuses_writes_until_a_save_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            dir: dir.path().join("missing"),
            ..Config::default()
        };
        let mut engine = Engine::new(config, Arc::new(crate::storage::OsStorage));
        assert!(engine.writes_refused().is_none());
        engine.bgsave().unwrap();
        engine.finish_bgsave(true);
        assert!(!engine.persistence.last_bgsave_ok);
        assert!(engine.writes_refused().unwrap().starts_with("MISCONF "));
        engine.config_mut().save.clear();
        assert!(
            engine.writes_refused().is_none(),
            "no save points: writes allowed"
        );
    }

    #[test]
    fn corrupt_file_names_file_and_offset() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        publish_atomically(&*storage, &Config::default().rdb_path(), |f| {
            f.write_all(b"REDIS0010\xfe\x00\x63")
        })
        .unwrap();
        let err = engine.load_rdb().unwrap_err().to_string();
        assert!(err.starts_with("./data/dump.rdb: offset "), "{err}");
    }

    #[test]
    fn cron_starts_a_bgsave_when_a_save_point_is_due() {
        let storage = Arc::new(SimStorage::new(1));
        let mut config = Config::default();
        config.save = vec![crate::config::SavePoint {
            seconds: 0,
            changes: 2,
        }];
        let mut engine = Engine::new(config, storage);
        engine.persistence.last_save_unix -= 1;
        engine.dirty = 1;
        engine.cron();
        assert!(!engine.persistence.bgsave_in_progress());
        engine.dirty = 2;
        engine.cron();
        assert!(engine.persistence.bgsave_in_progress());
        engine.finish_bgsave(true);
        assert_eq!(engine.dirty(), 0);
    }
}
