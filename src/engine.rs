//! The engine: the keyspace, and the one road every mutation travels.
//!
//! [`Engine`] owns the [`Store`], its [`Persistence`] (changes since the last save, saves), the
//! replication offset and the propagation road. A command runs through
//! [`Engine::execute`]; whatever it must propagate (the command itself, or Redis's
//! deterministic rewrite of it, and the `DEL`s of keys it found expired) is encoded once as
//! RESP and fed by [`Engine::propagate`] to the AOF ([`Aof`], when `appendonly` is on: see
//! [`Engine::open_aof`] and [`Engine::aof_ack_wait`]) and to every registered
//! [`PropagationSink`] (the replication backlog of issue 7 plugs in there). The offset counts
//! every byte of that stream, `SELECT`s and `MULTI`/`EXEC` included, so the AOF, the backlog
//! and the replicas agree on positions.
//!
//! Propagation follows Redis 7.0 (`propagatePendingCommands`; checked against redis-server
//! 7.0.15's AOF): the commands one *execution unit* (a command, or a whole `MULTI`/`EXEC`)
//! propagates are wrapped in `MULTI` … `EXEC` when there are two or more of them (a write
//! after lazily expiring its key gives `MULTI DEL set EXEC`), and sent bare when there is one;
//! a `SELECT` precedes any command whose database differs from the last one propagated.
//!
//! RDB persistence is [`crate::snapshot`]'s: [`Persistence`] holds its bookkeeping
//! ([`PersistenceState`]: changes since the last save, save points, MISCONF, `INFO
//! persistence`) and the running [`BackgroundSave`], which writes
//! `store.one_pass_snapshot()` (O(1), point in time, released as it is written) on its own
//! thread while commands go on; [`Engine::cron`] collects it and starts the saves that save
//! points ask for. Every file goes through the engine's
//! [`Storage`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::aof::writer::IdleCommit;
use crate::aof::{self, Aof, RewriteTrigger};
use crate::command::{self, CommandSpec, Propagate, Rng};
use crate::config::Config;
use crate::dataset::Apply;
use crate::error::{Error, Result};
use crate::model::Entry;
use crate::resp::{self, Reply};
use crate::snapshot::{
    self, BGSAVE_IN_PROGRESS_ERROR, BackgroundSave, BgsaveOutcome, BgsaveStatus, ExpiredKeys,
    LoadOutcome, MISCONF_ERROR, PersistenceState, SaveOptions,
};
use crate::storage::Storage;
use crate::store::{BulkLoad, Store};

/// `replid2` when there is no previous history.
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// 40 random lowercase hex characters.
pub(crate) fn random_replid(rng: &mut Rng) -> String {
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
        .collect()
}

/// A consumer of the propagated stream (AOF writer, replication backlog, a test recorder).
/// `append` gets whole RESP commands, in order, exactly once.
pub trait PropagationSink: Send {
    fn append(&mut self, bytes: &[u8]);

    /// True when it keeps the stream's history for replicas (a replication backlog): the
    /// node is then in a replication chain, and its RDBs record their replication position,
    /// as Redis's do (`rdbPopulateSaveInfo`).
    fn keeps_history(&self) -> bool {
        false
    }
}

/// Keys the active expiry cycle removes per step before it looks at the clock (Redis's
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
const EXPIRE_KEYS_PER_STEP: usize = 20;

/// Counters for `INFO stats`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total_commands_processed: u64,
    pub total_connections_received: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
}

/// The node's RDB persistence: [`crate::snapshot`]'s bookkeeping and the background save in
/// flight. Where and how to write come from [`Config`] at each save (`dir`, `dbfilename`,
/// `rdbcompression`, `rdbchecksum`), so `CONFIG SET` takes effect at once; `save` and
/// `stop-writes-on-bgsave-error` are mirrored into the state by [`Engine::update_config`].
///
/// Invariant: `running.is_some()` exactly when `state.bgsave_in_progress()`.
pub struct Persistence {
    storage: Arc<dyn Storage>,
    state: PersistenceState,
    running: Option<BackgroundSave>,
    /// `BGSAVE` inside `EXEC` asked for a save: the cron starts it (Redis's
    /// `rdb_bgsave_scheduled`).
    bgsave_scheduled: bool,
}

impl Persistence {
    /// The bookkeeping behind `LASTSAVE`, MISCONF and `INFO persistence`.
    pub fn state(&self) -> &PersistenceState {
        &self.state
    }

    /// True while a background save runs.
    pub fn bgsave_in_progress(&self) -> bool {
        self.running.is_some()
    }

    /// The storage files are written through.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The RDB lines of `INFO persistence` (see [`PersistenceState::info_fields`]), with the
    /// progress of the running save.
    pub fn info_fields(&self, now_unix: i64) -> String {
        let progress = self.running.as_ref().map(BackgroundSave::progress);
        self.state.info_fields(now_unix, progress.as_ref())
    }
}

/// Where a command of an execution unit goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The AOF and the replicas (a write).
    Everywhere,
    /// The replicas only (a primary's `PUBLISH`).
    ReplicasOnly,
}

/// The engine. Shared by connections behind one mutex (see `crate::server`).
pub struct Engine {
    store: Store,
    config: Config,
    /// Changes since start, never reset (saves reset `rdb_changes_since_last_save` only).
    changes: u64,
    repl_offset: u64,
    replid: String,
    /// The previous replication id (40 × '0' when none): a node promoted from replica, or
    /// told a new id by its primary, still accepts partial resyncs of the old history up to
    /// `second_repl_offset` (Redis's PSYNC2).
    replid2: String,
    /// The first offset *not* covered by `replid2`'s history; -1 when there is none.
    second_repl_offset: i64,
    /// Database of the last command propagated; `None` forces a `SELECT` first.
    propagated_db: Option<usize>,
    /// On a replica, the database its primary's stream has selected (after the last bytes
    /// [`Engine::feed_replicated`] took), whatever `propagated_db` was reset to.
    replicated_db: usize,
    /// A writable replica's own `MULTI` block is being appended to its AOF.
    local_multi: bool,
    sinks: Vec<Box<dyn PropagationSink>>,
    /// Encoding scratch, reused so propagation does not allocate per command.
    encoded: Vec<u8>,
    /// True between [`Engine::begin_unit`] and [`Engine::end_unit`].
    in_unit: bool,
    /// Commands the current unit will propagate: `(db, argv, where)`.
    pending: Vec<(usize, Vec<Bytes>, Target)>,
    rng: Rng,
    persistence: Persistence,
    /// The AOF when `appendonly` is on and [`Engine::open_aof`] opened it.
    aof: Option<Aof>,
    /// The server's idle I/O threads, which commit a lone client's `always` writes for every
    /// AOF writer this engine starts ([`Engine::commit_when_idle`]).
    idle_commit: Option<IdleCommit>,
    pub stats: Stats,
    started: Instant,
}

impl Engine {
    /// An engine with an empty store shaped by `config`, writing files through `storage`.
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> Self {
        let mut rng = Rng::from_clock();
        let replid = random_replid(&mut rng);
        let mut state = PersistenceState::new(config.save.clone(), unix_now_ms() / 1000);
        state.stop_writes_on_bgsave_error = config.stop_writes_on_bgsave_error;
        Engine {
            store: Store::new(config.databases),
            config,
            changes: 0,
            repl_offset: 0,
            replid,
            replid2: NO_REPLID.into(),
            second_repl_offset: -1,
            propagated_db: None,
            replicated_db: 0,
            local_multi: false,
            sinks: Vec::new(),
            encoded: Vec::with_capacity(256),
            in_unit: false,
            pending: Vec::new(),
            rng,
            persistence: Persistence {
                storage,
                state,
                running: None,
                bgsave_scheduled: false,
            },
            aof: None,
            idle_commit: None,
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

    /// Changes the configuration (`CONFIG SET`) and applies what persistence mirrors of it.
    pub fn update_config<R>(&mut self, change: impl FnOnce(&mut Config) -> R) -> R {
        let result = change(&mut self.config);
        let state = &mut self.persistence.state;
        if state.save_points != self.config.save {
            state.save_points = self.config.save.clone();
        }
        state.stop_writes_on_bgsave_error = self.config.stop_writes_on_bgsave_error;
        if let Some(aof) = &mut self.aof {
            aof.update_config(&self.config);
        }
        result
    }

    /// RDB persistence: its state and the running background save.
    pub fn persistence(&self) -> &Persistence {
        &self.persistence
    }

    /// Changes since the last successful save (`rdb_changes_since_last_save`).
    pub fn dirty(&self) -> u64 {
        self.persistence.state.changes_since_last_save()
    }

    /// Changes since start: grows with every change and is never reset, so the difference
    /// around a command tells whether it changed anything (a save in between, such as
    /// `FLUSHALL`'s, does not hide it).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Bytes propagated since start (`master_repl_offset`).
    pub fn repl_offset(&self) -> u64 {
        self.repl_offset
    }

    /// This node's replication id (40 hex characters, new at every start).
    pub fn replid(&self) -> &str {
        &self.replid
    }

    /// The previous replication id, 40 × '0' when none (`master_replid2`).
    pub fn replid2(&self) -> &str {
        &self.replid2
    }

    /// The first offset not covered by [`Engine::replid2`]'s history, -1 when none
    /// (`second_repl_offset`).
    pub fn second_repl_offset(&self) -> i64 {
        self.second_repl_offset
    }

    /// Promotion (`REPLICAOF NO ONE`, Redis's `shiftReplicationId`): the current history
    /// becomes the previous one (`replid2`, valid up to this offset), and a new id starts. The
    /// next propagated command is preceded by a `SELECT`.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, random_replid(&mut self.rng));
        self.second_repl_offset = self.repl_offset as i64 + 1;
        self.propagated_db = None;
    }

    /// A replica after a full sync: the primary's id and offset, no previous history.
    pub fn set_replication_position(&mut self, replid: String, offset: u64) {
        self.replid = replid;
        self.repl_offset = offset;
        self.replid2 = NO_REPLID.into();
        self.second_repl_offset = -1;
        self.propagated_db = None;
    }

    /// A replica whose primary answered `+CONTINUE <new id>`: the same offsets now belong to
    /// `new_replid`; the old id stays valid up to this offset.
    pub fn change_replid_keep_offset(&mut self, new_replid: String) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid);
        self.second_repl_offset = self.repl_offset as i64 + 1;
    }

    /// A fresh replication id, no previous history (a primary whose backlog was freed, or its
    /// first replica without a backlog).
    pub fn new_replid(&mut self) {
        self.replid = random_replid(&mut self.rng);
        self.replid2 = NO_REPLID.into();
        self.second_repl_offset = -1;
    }

    /// The database the propagated stream has selected (`None` before the first command, or
    /// when the next one must be preceded by a `SELECT`): an RDB's `repl-stream-db`.
    pub fn propagated_db(&self) -> Option<usize> {
        self.propagated_db
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
        if self.is_replica() {
            self.propagate_locally(db, argv);
            return;
        }
        self.encoded.clear();
        if self.propagated_db != Some(db) {
            let db_text = db.to_string();
            resp::write_command(&mut self.encoded, &[b"SELECT", db_text.as_bytes()]);
            self.propagated_db = Some(db);
        }
        resp::write_command(&mut self.encoded, argv);
        self.repl_offset += self.encoded.len() as u64;
        if let Some(aof) = &mut self.aof {
            aof.append(&self.encoded);
        }
        for sink in &mut self.sinks {
            sink.append(&self.encoded);
        }
    }

    /// A writable replica's own write (`replica-read-only no`): as Redis, it goes to this
    /// node's AOF only, outside its primary's stream (the offset does not move, the sinks
    /// do not see it), each command after its own `SELECT`, the position marked again after
    /// it (after the `EXEC` of a block).
    fn propagate_locally<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        let Some(aof) = &mut self.aof else {
            return;
        };
        self.encoded.clear();
        let db_text = db.to_string();
        resp::write_command(&mut self.encoded, &[b"SELECT", db_text.as_bytes()]);
        resp::write_command(&mut self.encoded, argv);
        aof.append_outside_stream(&self.encoded);
        let name = argv.first().map_or(&b""[..], AsRef::as_ref);
        if name.eq_ignore_ascii_case(b"MULTI") {
            self.local_multi = true;
        } else if name.eq_ignore_ascii_case(b"EXEC") {
            self.local_multi = false;
        }
        if !self.local_multi {
            aof.set_position(&self.replid, self.repl_offset);
        }
        // The primary's next bytes need their database selected again in the AOF.
        self.propagated_db = None;
    }

    /// Appends `argv` to the stream the replicas get, and not to the AOF, without a
    /// `SELECT` before it and without changing the selected database: the primary's `PING`
    /// and `REPLCONF GETACK *` (Redis feeds them with `slaveseldb`, and never to its AOF). The
    /// offset advances by every byte.
    pub fn propagate_to_replicas<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        self.append_for_replicas(argv, true);
    }

    /// A primary's `PUBLISH`: to the replicas only, as [`Engine::propagate_to_replicas`],
    /// but inside an execution unit it takes its place in the unit's `MULTI` … `EXEC`
    /// block, between the writes around it (Redis 7.0 propagates it there, to the replicas
    /// only, and wraps the block around the other writes in the AOF).
    pub fn propagate_publish<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        if self.in_unit {
            let argv = argv
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_ref()))
                .collect();
            self.pending.push((db, argv, Target::ReplicasOnly));
        } else {
            self.append_for_replicas(argv, true);
        }
    }

    /// Sends `argv` to the replicas only; `mark` records the new offset in the AOF.
    fn append_for_replicas<A: AsRef<[u8]>>(&mut self, argv: &[A], mark: bool) {
        self.encoded.clear();
        resp::write_command(&mut self.encoded, argv);
        self.repl_offset += self.encoded.len() as u64;
        for sink in &mut self.sinks {
            sink.append(&self.encoded);
        }
        // The AOF does not get these bytes but counts them: a node restarted from its AOF
        // must come back at the offset its replicas have, or they could not continue.
        if mark && let Some(aof) = &mut self.aof {
            aof.set_position(&self.replid, self.repl_offset);
        }
    }

    /// Propagates one entry of a unit; `mark`: see [`Engine::append_for_replicas`].
    fn propagate_pending(&mut self, (db, argv, to): &(usize, Vec<Bytes>, Target), mark: bool) {
        match to {
            Target::Everywhere => self.propagate(*db, argv),
            Target::ReplicasOnly => self.append_for_replicas(argv, mark),
        }
    }

    /// The next propagated command is preceded by a `SELECT` (a replica starting a full
    /// sync: Redis's `slaveseldb = -1`).
    pub fn force_select(&mut self) {
        self.propagated_db = None;
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
            1 => self.propagate_pending(&pending[0], true),
            _ => {
                self.propagate(pending[0].0, &[&b"MULTI"[..]]);
                for entry in &pending {
                    self.propagate_pending(entry, false);
                }
                let db = self.propagated_db.unwrap_or(pending[0].0);
                self.propagate(db, &[&b"EXEC"[..]]);
                // Replica-only bytes inside the block were not marked in the AOF one by one
                // (a mark inside a block a crash could cut would be wrong): once after it.
                if pending.iter().any(|(_, _, to)| *to == Target::ReplicasOnly)
                    && let Some(aof) = &mut self.aof
                {
                    aof.set_position(&self.replid, self.repl_offset);
                }
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
        self.changes += effect.dirty;
        self.persistence.state.add_changes(effect.dirty);
        if spec.name == "flushall" && !matches!(effect.reply, Reply::Error(_)) {
            self.after_flushall();
        }
        let expired = self.store.take_expired();
        self.stats.expired_keys += expired.len() as u64;
        if !self.in_unit && expired.is_empty() {
            // The common case: no buffering, no allocation.
            match effect.propagate {
                Propagate::Nothing => {}
                Propagate::Verbatim => self.propagate(db, argv),
                Propagate::Commands(commands) => {
                    self.pending.extend(
                        commands
                            .into_iter()
                            .map(|argv| (db, argv, Target::Everywhere)),
                    );
                    self.flush_pending();
                }
            }
            return effect.reply;
        }
        for (expired_db, key) in expired {
            self.pending.push((
                expired_db,
                vec![Bytes::from_static(b"DEL"), key],
                Target::Everywhere,
            ));
        }
        match effect.propagate {
            Propagate::Nothing => {}
            Propagate::Verbatim => self.pending.push((db, argv.to_vec(), Target::Everywhere)),
            Propagate::Commands(commands) => self.pending.extend(
                commands
                    .into_iter()
                    .map(|argv| (db, argv, Target::Everywhere)),
            ),
        }
        if !self.in_unit {
            self.flush_pending();
        }
        effect.reply
    }

    /// Makes this node a replica (`true`) or a primary again: on a replica keys expire only
    /// by the primary's `DEL`s (no lazy or active expiry here; reads do not see a key whose
    /// TTL passed, see [`Store::set_keep_expired`]).
    pub fn set_replica(&mut self, replica: bool) {
        self.store.set_keep_expired(replica);
    }

    /// True while this node is a replica ([`Engine::set_replica`]).
    pub fn is_replica(&self) -> bool {
        self.store.keeps_expired()
    }

    /// Runs a data command of a primary's stream on this replica: no refusal applies, keys
    /// are seen as the primary sees them (nothing expires while it runs, as Redis's master
    /// client sees keys), its changes are counted, and it propagates nothing by itself: the
    /// caller hands the primary's bytes to [`Engine::feed_replicated`].
    pub fn execute_replicated(
        &mut self,
        spec: &CommandSpec,
        db: usize,
        argv: &[Bytes],
        now_ms: i64,
    ) -> Reply {
        let was_loading = self.store.loading();
        self.store.set_loading(true);
        let effect = command::run_replayed(spec, &mut self.store, db, argv, now_ms, &mut self.rng);
        self.store.set_loading(was_loading);
        self.changes += effect.dirty;
        self.persistence.state.add_changes(effect.dirty);
        if spec.name == "flushall" && !matches!(effect.reply, Reply::Error(_)) {
            self.after_flushall();
        }
        // Nothing expired while loading was set; a stray removal must not reach the stream.
        let _ = self.store.take_expired();
        effect.reply
    }

    /// Appends `raw`, bytes of a primary's stream exactly as received (whole commands, or
    /// whole `MULTI` … `EXEC` blocks), to this replica's stream: the offset advances by every
    /// byte, and the AOF and every sink get them verbatim, so the replica, its AOF and its
    /// own replicas share the primary's offsets. `db_before` is the stream's database before
    /// `raw`, `db_after` after it.
    ///
    /// When the AOF wants a `SELECT` first (a new incr file after a rewrite, an AOF just
    /// restarted) and `raw` need not start with one, the AOF gets `SELECT db_before` outside
    /// the stream, then the position marked again, so its offsets stay the stream's.
    pub fn feed_replicated(&mut self, raw: &[u8], db_before: usize, db_after: usize) {
        if raw.is_empty() {
            return;
        }
        if self.propagated_db != Some(db_before)
            && let Some(aof) = &mut self.aof
        {
            self.encoded.clear();
            let db_text = db_before.to_string();
            resp::write_command(&mut self.encoded, &[b"SELECT", db_text.as_bytes()]);
            aof.append_outside_stream(&self.encoded);
            aof.set_position(&self.replid, self.repl_offset);
        }
        self.repl_offset += raw.len() as u64;
        if let Some(aof) = &mut self.aof {
            aof.append(raw);
        }
        for sink in &mut self.sinks {
            sink.append(raw);
        }
        self.propagated_db = Some(db_after);
        self.replicated_db = db_after;
    }

    /// A replica's full sync is loaded: `store` (built off the lock while the old one served
    /// reads) replaces the keyspace, at the primary's `replid` and `offset`, its stream in
    /// database `stream_db`. A running
    /// background save is stopped (it would write the old data), and an AOF starts over from
    /// the new data, as Redis restarts it after a sync (the old files stay authoritative
    /// until the new base is written, see [`Aof::enable`]). Returns the old keyspace, for the
    /// caller to drop off the lock.
    pub fn install_synced_store(
        &mut self,
        mut store: Store,
        replid: String,
        offset: u64,
        stream_db: usize,
    ) -> Store {
        self.replicated_db = stream_db;
        store.set_keep_expired(self.store.keeps_expired());
        let old = std::mem::replace(&mut self.store, store);
        self.cancel_bgsave();
        self.set_replication_position(replid, offset);
        if self.aof.is_some() {
            if let Err(e) = self.close_aof() {
                tracing::warn!("closing the AOF before restarting it after a full sync: {e}");
            }
            let storage = Arc::clone(&self.persistence.storage);
            match Aof::enable(
                storage,
                &self.config,
                self.store.one_pass_snapshot(),
                &self.replid,
                self.repl_offset,
            ) {
                Ok(aof) => self.install_aof(aof),
                Err(e) => {
                    // Redis too turns the AOF off when it cannot restart it after a sync.
                    tracing::error!(
                        "Failed enabling the AOF after successful master synchronization! {e}"
                    );
                    self.config.appendonly = false;
                }
            }
        }
        self.propagated_db = None;
        old
    }

    /// Records the current replication id and offset in the AOF (after the id changed without
    /// a new history, e.g. `+CONTINUE <new id>`), so a restart from the AOF resumes there.
    pub fn mark_aof_position(&mut self) {
        if let Some(aof) = &mut self.aof {
            aof.set_position(&self.replid, self.repl_offset);
        }
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
        if self.store.keeps_expired() {
            // A replica: its primary's `DEL`s remove expired keys (Redis's replicas run no
            // active expiry either).
            return 0;
        }
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

    /// The `MISCONF` error when writes (and `PING`) must be refused: the last background save
    /// failed, save points are set and `stop-writes-on-bgsave-error` is yes.
    pub fn writes_refused(&self) -> Option<&'static str> {
        self.persistence
            .state
            .writes_refused()
            .then_some(MISCONF_ERROR)
    }

    /// The error a write command of about `incoming` request bytes must get now, if any:
    /// [`Engine::writes_refused`]'s, then the AOF's (a failed write, a poisoned fsync, the
    /// disk budget). Counts a budget refusal.
    pub fn write_refusal(&mut self, incoming: u64) -> Option<String> {
        if let Some(misconf) = self.writes_refused() {
            return Some(misconf.to_string());
        }
        self.aof.as_mut()?.write_refusal(incoming)
    }

    /// [`Engine::write_refusal`] without the disk budget (for `PING`).
    pub fn write_refusal_without_budget(&self) -> Option<String> {
        if let Some(misconf) = self.writes_refused() {
            return Some(misconf.to_string());
        }
        self.aof.as_ref()?.writer().writes_refused()
    }

    /// The AOF, when it is on.
    pub fn aof(&self) -> Option<&Aof> {
        self.aof.as_ref()
    }

    /// What a connection must wait for before it sends the replies of commands it just ran:
    /// the AOF's acknowledgement of everything propagated so far (under `always`, the group
    /// commit's fdatasync; otherwise the write). `None` when there is nothing to wait for.
    pub fn aof_ack_wait(&self) -> Option<aof::writer::AckWait> {
        let aof = self.aof.as_ref()?;
        aof.writer().ack_wait(aof.writer().offset())
    }

    /// The AOF, when it is on (to schedule a rewrite).
    pub fn aof_mut(&mut self) -> Option<&mut Aof> {
        self.aof.as_mut()
    }

    /// Lets the server's I/O threads commit a lone client's `always` writes when they go idle
    /// ([`IdleCommit`]): for the AOF writer running now and every one started later.
    pub fn commit_when_idle(&mut self, idle: IdleCommit) {
        if let Some(aof) = &self.aof {
            idle.attach(aof.writer());
        }
        self.idle_commit = Some(idle);
    }

    /// The idle I/O threads' committer, when the server set one ([`Engine::commit_when_idle`]).
    pub fn idle_commit(&self) -> Option<&IdleCommit> {
        self.idle_commit.as_ref()
    }

    fn install_aof(&mut self, aof: Aof) {
        if let Some(idle) = &self.idle_commit {
            idle.attach(aof.writer());
        }
        self.aof = Some(aof);
    }

    /// Loads the AOF directory at start (upgrading an old single-file AOF, truncating a torn
    /// tail when `aof-load-truncated` allows it), takes the replication position it records,
    /// and opens it for appending (see [`Aof::open`]). As Redis, `dump.rdb` is not read when
    /// the AOF is on. Returns what the loader reported, `None` when there was no AOF yet.
    pub fn open_aof(&mut self) -> Result<Option<aof::loader::LoadReport>> {
        let storage = Arc::clone(&self.persistence.storage);
        let prepared = Aof::prepare(&*storage, &self.config)?;
        if prepared.upgraded {
            tracing::info!(
                "Successfully migrated an old-style AOF into the AOF directory {}",
                self.config.aof_dir().display()
            );
        }
        let mut report = None;
        if let Some(manifest) = &prepared.manifest {
            let path = self.config.aof_dir();
            let options = aof::loader::LoadOptions {
                load_truncated: self.config.aof_load_truncated,
                now_ms: unix_now_ms(),
            };
            let names = aof::manifest::AofNames::new(&self.config.appendfilename);
            let bytes = manifest
                .load_order()
                .map(|file| {
                    storage
                        .len(&path.join(&file.name))
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                })
                .sum();
            self.store.set_loading(true);
            // Nothing sees the store until the load ends: stage its keys (see `Staged`).
            self.store.set_staging(true);
            let loaded = with_prefault(bytes, || {
                let mut target = StartupLoad {
                    load: self.store.bulk_load(),
                    path: &path,
                };
                let loaded =
                    aof::loader::load(&*storage, &path, &names, manifest, &mut target, &options);
                target.load.finish();
                loaded
            });
            self.store.set_staging(false);
            self.store.set_loading(false);
            let loaded = loaded?;
            if let Some(repl) = &loaded.repl {
                self.replid = repl.replid.clone();
                self.repl_offset = repl.offset;
            }
            report = Some(loaded);
        }
        let aof = Aof::open(
            storage,
            &self.config,
            prepared.manifest,
            &self.store.snapshot(),
            &self.replid,
            self.repl_offset,
        )?;
        self.install_aof(aof);
        self.propagated_db = None;
        Ok(report)
    }

    /// `BGREWRITEAOF`: starts a background rewrite now (keeper needs no fork, so it may run
    /// beside a `BGSAVE`). Returns the status reply's text.
    pub fn bgrewriteaof(&mut self) -> std::result::Result<&'static str, String> {
        let offset = self.repl_offset;
        let snapshot = self.store.one_pass_snapshot();
        let Some(aof) = &mut self.aof else {
            return Err(
                "ERR Background append only file rewriting needs appendonly yes in \
                        keeper (Redis's rewrite of a disabled AOF has nothing to append to)"
                    .into(),
            );
        };
        // Every incr file starts with a SELECT (as Redis's do after a rewrite).
        aof.start_rewrite(snapshot, offset, RewriteTrigger::Command)?;
        self.propagated_db = None;
        Ok("Background append only file rewriting started")
    }

    /// Waits for a running AOF rewrite to end and installs it (tests, shutdown).
    pub fn finish_aof_rewrite(&mut self) -> bool {
        self.aof
            .as_mut()
            .is_some_and(|aof| aof.finish_rewrite(true))
    }

    /// The AOF part of the cron: collects a finished rewrite, refreshes the free space the
    /// budget keeps, and starts a rewrite that is due.
    fn aof_cron(&mut self) {
        let offset = self.repl_offset;
        let Some(aof) = &mut self.aof else {
            return;
        };
        aof.finish_rewrite(false);
        aof.observe_free_space();
        if let Some(trigger) = aof.rewrite_due(Instant::now())
            && aof
                .start_rewrite(self.store.one_pass_snapshot(), offset, trigger)
                .is_ok()
        {
            self.propagated_db = None;
        }
    }

    /// `CONFIG SET name value …`: applies the pairs (all or nothing, see [`Config::set`]) and
    /// what they change at run time: `appendonly yes` turns the AOF on (its first base is
    /// written by a background rewrite, as Redis's `startAppendOnly`), `appendonly no` flushes,
    /// syncs and closes it. `Err` is the whole error reply.
    pub fn config_set(&mut self, pairs: &[(String, String)]) -> std::result::Result<(), String> {
        let was_on = self.config.appendonly;
        self.update_config(|c| c.set(pairs))?;
        match (was_on, self.config.appendonly) {
            (false, true) => {
                let storage = Arc::clone(&self.persistence.storage);
                match Aof::enable(
                    storage,
                    &self.config,
                    self.store.one_pass_snapshot(),
                    &self.replid,
                    self.repl_offset,
                ) {
                    Ok(aof) => {
                        self.install_aof(aof);
                        self.propagated_db = None;
                    }
                    Err(e) => {
                        self.config.appendonly = false;
                        return Err(format!(
                            "ERR CONFIG SET failed (possibly related to argument 'appendonly') \
                             - {e}"
                        ));
                    }
                }
            }
            (true, false) => {
                if let Err(e) = self.close_aof() {
                    tracing::warn!("closing the AOF: {e}");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Stops the AOF as a crash would: what the writer had not written yet is dropped and
    /// nothing more is synced (power-loss tests stop the node this way before cutting power).
    pub fn abandon_aof(&mut self) {
        if let Some(aof) = self.aof.take() {
            aof.abandon();
        }
    }

    /// Flushes, syncs and closes the AOF (shutdown). Nothing is appended after this.
    pub fn close_aof(&mut self) -> Result<()> {
        match self.aof.take() {
            Some(aof) => aof.close(),
            None => Ok(()),
        }
    }

    fn save_options(&self) -> SaveOptions {
        // A replica records its position, as Redis's does, so that restarted from the file
        // it asks its primary a partial resync.
        // A primary does too while it keeps a backlog (it is in a replication chain), so
        // that restarted from the file its replicas can continue.
        let stream_db = if self.is_replica() {
            Some(self.replicated_db)
        } else if self.sinks.iter().any(|s| s.keeps_history()) {
            Some(self.propagated_db.unwrap_or(0))
        } else {
            None
        };
        let replication = stream_db.map(|db| crate::rdb::ReplicationInfo {
            id: self.replid.clone(),
            offset: self.repl_offset,
            stream_db: u32::try_from(db).unwrap_or(0),
        });
        SaveOptions {
            compression: self.config.rdbcompression,
            checksum: self.config.rdbchecksum,
            used_mem: snapshot::rss::resident_bytes().unwrap_or(0),
            replication,
            ..SaveOptions::default()
        }
    }

    /// Writes the dataset to `dir/dbfilename` now, in the caller's thread.
    fn write_now(&self) -> Result<snapshot::SaveStats> {
        snapshot::write_rdb(
            &*self.persistence.storage,
            &self.config.rdb_path(),
            &self.store.snapshot(),
            self.save_options(),
        )
    }

    /// `SAVE`: writes the dataset to `dir/dbfilename` now, in the caller's thread. Refused
    /// while a background save runs (both would write the same temp file).
    pub fn save(&mut self) -> Result<()> {
        if self.persistence.running.is_some() {
            return Err(Error::InvalidArgument(BGSAVE_IN_PROGRESS_ERROR.into()));
        }
        self.persistence.state.save_started();
        let result = self.write_now();
        let now = unix_now_ms() / 1000;
        self.persistence.state.save_finished(now, result.is_ok());
        match result {
            Ok(_) => {
                tracing::info!("DB saved on disk");
                Ok(())
            }
            Err(e) => {
                tracing::warn!("Write error saving DB on disk: {e}");
                Err(e)
            }
        }
    }

    /// `BGSAVE`: starts writing a point-in-time snapshot on a background thread. `Err` is the
    /// error reply: one already runs, or the thread could not start (Redis's failed `fork`,
    /// answered with a bare `-ERR`).
    pub fn bgsave(&mut self) -> std::result::Result<(), &'static str> {
        if self.persistence.running.is_some() {
            return Err(BGSAVE_IN_PROGRESS_ERROR);
        }
        let now = unix_now_ms() / 1000;
        self.persistence.state.bgsave_started(now);
        let started = BackgroundSave::start(
            Arc::clone(&self.persistence.storage),
            self.config.rdb_path(),
            self.store.one_pass_snapshot(),
            self.save_options(),
        );
        match started {
            Ok(job) => {
                tracing::info!("Background saving started");
                self.persistence.running = Some(job);
                Ok(())
            }
            Err(e) => {
                tracing::warn!("Can't save in background: {e}");
                self.persistence.state.bgsave_not_started();
                Err("ERR")
            }
        }
    }

    /// `BGSAVE` inside a transaction: the cron starts the save after it.
    pub fn schedule_bgsave(&mut self) {
        self.persistence.bgsave_scheduled = true;
    }

    /// True when a background save is scheduled (`BGSAVE` inside `EXEC`) and not started yet.
    pub fn bgsave_scheduled(&self) -> bool {
        self.persistence.bgsave_scheduled
    }

    /// Collects a finished background save, if any; with `wait`, waits for a running one.
    /// Returns how it ended.
    pub fn finish_bgsave(&mut self, wait: bool) -> Option<BgsaveOutcome> {
        let job = self.persistence.running.take()?;
        let outcome = if wait {
            job.wait()
        } else {
            match job.try_finish() {
                Ok(outcome) => outcome,
                Err(job) => {
                    self.persistence.running = Some(job);
                    return None;
                }
            }
        };
        self.persistence
            .state
            .bgsave_finished(unix_now_ms() / 1000, &outcome);
        match &outcome.status {
            BgsaveStatus::Saved(stats) => tracing::info!(
                "Background saving terminated with success ({} keys, {} bytes, peak extra \
                 memory {} bytes)",
                stats.keys,
                stats.bytes,
                outcome.peak_extra_bytes
            ),
            BgsaveStatus::Failed(e) => tracing::warn!("Background saving error: {e}"),
            BgsaveStatus::Cancelled => tracing::warn!("Background saving cancelled"),
        }
        Some(outcome)
    }

    /// Stops a running background save and waits for it (Redis's `killRDBChild`): the
    /// previous `dump.rdb` stays, and the status is not an error.
    pub fn cancel_bgsave(&mut self) {
        if let Some(job) = &self.persistence.running {
            job.cancel();
            self.finish_bgsave(true);
        }
    }

    /// What `FLUSHALL` does after emptying the keyspace, as Redis 7.0's
    /// `flushAllDataAndResetRDB`: a running background save is stopped (its file would hold
    /// the old data), and when save points are set the now empty dataset is saved at once,
    /// so a restart does not bring the flushed keys back.
    fn after_flushall(&mut self) {
        self.cancel_bgsave();
        if self.persistence.state.save_points.is_empty() {
            return;
        }
        let result = self.write_now();
        let now = unix_now_ms() / 1000;
        self.persistence
            .state
            .flushall_save_finished(now, result.is_ok());
        match result {
            Ok(_) => tracing::info!("DB saved on disk"),
            Err(e) => tracing::warn!("Write error saving DB on disk: {e}"),
        }
    }

    /// The final save of `SHUTDOWN` (or SIGTERM): a running background save is stopped first,
    /// then the dataset is saved in the caller's thread.
    pub fn shutdown_save(&mut self) -> Result<()> {
        if self.persistence.running.is_some() {
            tracing::warn!("There is a child saving an .rdb. Killing it!");
            self.cancel_bgsave();
        }
        tracing::info!("Saving the final RDB snapshot before exiting.");
        self.save()
    }

    /// The periodic work of the server cron: collects a finished background save, then
    /// starts a scheduled one or one a save point asks for (after a failure, only once
    /// [`snapshot::BGSAVE_RETRY_DELAY_SECS`] have passed).
    pub fn cron(&mut self) {
        self.aof_cron();
        self.finish_bgsave(false);
        let now = unix_now_ms() / 1000;
        let state = &self.persistence.state;
        if !state.automatic_bgsave_allowed(now) {
            return;
        }
        if self.persistence.bgsave_scheduled {
            self.persistence.bgsave_scheduled = false;
            let _ = self.bgsave();
        } else if let Some(point) = state.save_point_due(now) {
            tracing::info!(
                "{} changes in {} seconds. Saving...",
                point.changes,
                point.seconds
            );
            let _ = self.bgsave();
        }
    }

    /// Loads `dir/dbfilename` into the (empty) store if the file exists, dropping keys whose
    /// TTL has passed, as a Redis primary does at start. A damaged file is an error naming
    /// the file, offset and reason; so is a key in a database beyond `databases`.
    pub fn load_rdb(&mut self) -> Result<LoadOutcome> {
        let path = self.config.rdb_path();
        let storage = Arc::clone(&self.persistence.storage);
        let bytes = storage.len(&path).ok().flatten().unwrap_or(0);
        let outcome = with_prefault(bytes, || {
            let mut target = StartupLoad {
                load: self.store.bulk_load(),
                path: &path,
            };
            let outcome = snapshot::load_rdb(
                &*storage,
                &path,
                &mut target,
                ExpiredKeys::SkipAt(unix_now_ms()),
            );
            target.load.finish();
            outcome
        })?;
        if let LoadOutcome::Loaded(stats) = &outcome {
            self.persistence.state.loaded(stats);
            if !stats.functions.is_empty() {
                tracing::warn!(
                    "{}: {} function libraries skipped (functions are not supported)",
                    path.display(),
                    stats.functions.len()
                );
            }
        }
        Ok(outcome)
    }
}

/// The store as the target of the load at start: a key in a database the store does not
/// have stops the load (Redis exits: the file was made with more `databases`), where
/// [`Store`]'s own [`Apply`] would drop it silently.
struct StartupLoad<'a> {
    /// Entries are stored in batches, sorted (see [`crate::store::BulkLoad`]).
    load: BulkLoad<'a>,
    path: &'a std::path::Path,
}

impl Apply for StartupLoad<'_> {
    fn clear(&mut self) {
        self.load.clear();
    }

    fn load_entry(&mut self, entry: Entry) -> Result<()> {
        let databases = self.load.databases();
        if entry.db as usize >= databases {
            return Err(Error::InvalidArgument(format!(
                "{}: a key in database {} but `databases` is {databases} (the file was \
                 written by a server with more databases)",
                self.path.display(),
                entry.db
            )));
        }
        self.load.load_entry(entry);
        Ok(())
    }

    fn apply_command(&mut self, db: usize, argv: &[Bytes], now_ms: i64) -> Result<()> {
        Apply::apply_command(&mut self.load, db, argv, now_ms)
    }

    fn coming(&self, db: usize, key: &[u8], distance: usize) {
        self.load.coming(db, key, distance);
    }
}

/// The smallest startup load (bytes of files) that gets a [`crate::os::Prefault`]: a smaller
/// one is over in a fraction of a second, and the process keeps glibc's malloc defaults
/// (the prefault's pad turns off its dynamic mmap threshold for good).
const PREFAULT_MIN_BYTES: u64 = 16 << 20;

/// Runs a startup load of `bytes` bytes of files with a [`crate::os::Prefault`] faulting in
/// its memory on another core (a large load fills gigabytes of fresh memory on one thread
/// while nothing else runs), and logs what the prefault covered.
fn with_prefault<T>(bytes: u64, load: impl FnOnce() -> T) -> T {
    let prefault = (bytes >= PREFAULT_MIN_BYTES)
        .then(crate::os::Prefault::start)
        .flatten();
    let loaded = load();
    if let Some(prefault) = prefault {
        let done = prefault.finish();
        tracing::info!(
            "Memory populated on another core during the load: {} MB of heap, {} MB of tables",
            done.heap >> 20,
            done.blocks >> 20
        );
    }
    loaded
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

    #[test]
    fn replication_ids_shift_as_redis_does() {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage);
        assert_eq!(engine.replid().len(), 40);
        assert_eq!(engine.replid2(), NO_REPLID);
        assert_eq!(engine.second_repl_offset(), -1);
        engine.propagate(0, &[b"SET".as_slice(), b"k", b"v"]);
        let (first, offset) = (engine.replid().to_string(), engine.repl_offset());
        engine.shift_replid();
        assert_eq!(engine.replid2(), first);
        assert_ne!(engine.replid(), first);
        assert_eq!(engine.second_repl_offset(), offset as i64 + 1);
        assert_eq!(engine.repl_offset(), offset);
        assert_eq!(
            engine.propagated_db(),
            None,
            "a SELECT comes first after a promotion"
        );

        engine.set_replication_position("a".repeat(40), 1000);
        assert_eq!(
            (engine.replid(), engine.repl_offset()),
            ("a".repeat(40).as_str(), 1000)
        );
        assert_eq!(
            (engine.replid2(), engine.second_repl_offset()),
            (NO_REPLID, -1)
        );
        engine.change_replid_keep_offset("b".repeat(40));
        assert_eq!(engine.replid2(), "a".repeat(40));
        assert_eq!(engine.second_repl_offset(), 1001);
        engine.new_replid();
        assert_ne!(engine.replid(), "b".repeat(40));
        assert_eq!(
            (engine.replid2(), engine.second_repl_offset()),
            (NO_REPLID, -1)
        );
    }

    /// A replica's commands: applied without a stream of their own, the primary's bytes
    /// fed verbatim; keys whose TTL passed stay until the primary's `DEL` (hidden from
    /// reads), and no expiry cycle runs.
    #[test]
    fn a_replica_applies_its_primarys_stream_verbatim() {
        let (mut engine, rec) = engine();
        engine.set_replica(true);
        set_string(&mut engine, 0, "old", "v", Some(NOW - 1));
        let raw = b"*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n$4\r\nping\r\n";
        let reply = engine.execute_replicated(set(), 0, &argv("set a 1"), NOW);
        assert_eq!(reply, Reply::Ok);
        engine.feed_replicated(raw, 0, 0);
        assert_eq!(
            rec.0.lock().unwrap().as_slice(),
            raw,
            "no SELECT added, nothing else"
        );
        assert_eq!(engine.repl_offset(), raw.len() as u64);
        assert_eq!(engine.dirty(), 1);
        // The expired key: a primary's command still sees it, a read does not, nothing goes.
        let get = command::lookup(b"get").unwrap();
        assert_eq!(engine.execute(get, 0, &argv("get old"), NOW), Reply::Nil);
        assert_eq!(
            engine.execute_replicated(get, 0, &argv("get old"), NOW),
            Reply::bulk("v")
        );
        assert_eq!(
            engine.active_expire(NOW, Duration::from_secs(1), &mut |_, _| {}),
            0
        );
        assert_eq!(engine.store().db(0).len(), 2);
        assert_eq!(
            rec.len(),
            raw.len() as u64,
            "the replica propagated nothing of its own"
        );
        // Promoted: it expires keys itself again.
        engine.set_replica(false);
        assert_eq!(engine.execute(get, 0, &argv("get old"), NOW), Reply::Nil);
        assert_eq!(rec.commands().last().map(String::as_str), Some("DEL old"));
    }

    /// An engine with the AOF open on a simulated disk; the disk and config for a restart.
    fn engine_with_aof() -> (Arc<dyn Storage>, Config, Engine) {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new(1));
        let config = Config {
            appendonly: true,
            save: snapshot::SavePoints::disabled(),
            ..Config::default()
        };
        let mut engine = Engine::new(config.clone(), Arc::clone(&storage));
        engine.open_aof().unwrap();
        (storage, config, engine)
    }

    /// A writable replica's own writes: kept in its AOF, outside the primary's stream (no
    /// offset, no sink), and a restart finds them with the stream's offset intact.
    #[test]
    fn a_writable_replicas_own_writes_stay_out_of_the_stream() {
        let (storage, config, mut engine) = engine_with_aof();
        let rec = Recorder::default();
        engine.add_sink(Box::new(rec.clone()));
        engine.set_replica(true);
        drop(engine.install_synced_store(Store::new(16), "e".repeat(40), 500, 0));
        let mut stream = Vec::new();
        resp::write_command(&mut stream, &["SELECT", "1"]);
        resp::write_command(&mut stream, &["set", "a", "1"]);
        engine.execute_replicated(set(), 1, &argv("set a 1"), NOW);
        engine.feed_replicated(&stream, 0, 1);
        // The replica's own writes, bare and in a transaction, in other databases.
        engine.execute(set(), 3, &argv("SET local 1"), NOW);
        engine.begin_unit();
        engine.execute(set(), 4, &argv("SET x 1"), NOW);
        engine.execute(set(), 4, &argv("SET y 1"), NOW);
        engine.end_unit();
        assert_eq!(engine.repl_offset(), 500 + stream.len() as u64);
        // The primary goes on in database 1 without a SELECT.
        let mut more = Vec::new();
        resp::write_command(&mut more, &["set", "b", "2"]);
        engine.execute_replicated(set(), 1, &argv("set b 2"), NOW);
        engine.feed_replicated(&more, 1, 1);
        assert_eq!(
            *rec.0.lock().unwrap(),
            [stream.clone(), more.clone()].concat()
        );
        let offset = engine.repl_offset();
        assert!(
            engine.finish_aof_rewrite(),
            "the AOF restarted after the sync"
        );
        engine.close_aof().unwrap();

        let mut again = Engine::new(config, storage);
        again.open_aof().unwrap();
        assert_eq!(again.repl_offset(), offset);
        let get = command::lookup(b"get").unwrap();
        for (db, key, value) in [
            (1, "a", "1"),
            (1, "b", "2"),
            (3, "local", "1"),
            (4, "y", "1"),
        ] {
            let reply = again.execute(get, db, &argv(&format!("get {key}")), NOW);
            assert_eq!(reply, Reply::bulk(value), "{key}");
        }
    }

    /// A replica's AOF holds the primary's bytes; an incr file that starts mid-stream gets
    /// the stream's `SELECT` outside the stream, and a restart finds the data in the right
    /// database at the right offset.
    #[test]
    fn a_replicas_aof_keeps_its_primarys_offsets_across_a_rewrite() {
        let (storage, config, mut engine) = engine_with_aof();
        engine.set_replica(true);
        let replid = "f".repeat(40);
        let old = engine.install_synced_store(Store::new(16), replid.clone(), 1000, 0);
        drop(old);
        let mut stream = Vec::new();
        resp::write_command(&mut stream, &["SELECT", "2"]);
        resp::write_command(&mut stream, &["set", "a", "1"]);
        engine.execute_replicated(set(), 2, &argv("set a 1"), NOW);
        engine.feed_replicated(&stream, 0, 2);
        assert!(
            engine.finish_aof_rewrite(),
            "the AOF restarted after the sync"
        );
        engine.bgrewriteaof().unwrap();
        assert!(engine.finish_aof_rewrite());
        // The new incr file starts without a SELECT from the primary.
        let mut more = Vec::new();
        resp::write_command(&mut more, &["set", "b", "2"]);
        resp::write_command(&mut more, &["ping"]);
        engine.execute_replicated(set(), 2, &argv("set b 2"), NOW);
        engine.feed_replicated(&more, 2, 2);
        let offset = engine.repl_offset();
        assert_eq!(offset, 1000 + (stream.len() + more.len()) as u64);
        engine.close_aof().unwrap();

        let mut again = Engine::new(config, storage);
        let report = again.open_aof().unwrap().expect("an AOF");
        assert_eq!(again.replid(), replid);
        assert_eq!(again.repl_offset(), offset);
        assert_eq!(report.stream_db, 2);
        let get = command::lookup(b"get").unwrap();
        assert_eq!(again.execute(get, 2, &argv("get a"), NOW), Reply::bulk("1"));
        assert_eq!(again.execute(get, 2, &argv("get b"), NOW), Reply::bulk("2"));
    }

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
        engine
            .pending
            .push((1, argv("set a 1"), Target::Everywhere));
        engine.end_unit(); // one command: bare
        engine.begin_unit();
        engine
            .pending
            .push((2, argv("set a 1"), Target::Everywhere));
        engine
            .pending
            .push((2, argv("set b 1"), Target::Everywhere));
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            [
                "SELECT 1", "set a 1", "SELECT 2", "MULTI", "set a 1", "set b 1", "EXEC"
            ]
        );
    }

    #[test]
    fn a_publish_in_a_unit_goes_to_the_replicas_inside_the_block() {
        let (mut engine, rec) = engine();
        engine.begin_unit();
        engine
            .pending
            .push((0, argv("set a 1"), Target::Everywhere));
        engine.propagate_publish(0, &argv("PUBLISH ch m"));
        engine
            .pending
            .push((0, argv("set b 1"), Target::Everywhere));
        engine.end_unit();
        engine.begin_unit();
        engine.propagate_publish(0, &argv("PUBLISH ch alone"));
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            [
                "SELECT 0",
                "MULTI",
                "set a 1",
                "PUBLISH ch m",
                "set b 1",
                "EXEC",
                "PUBLISH ch alone"
            ]
        );
        assert_eq!(engine.repl_offset(), rec.len());
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

    /// The real `SET` (its propagation is verbatim without options).
    fn set() -> &'static CommandSpec {
        command::lookup(b"set").expect("SET is a data command")
    }

    #[test]
    fn writes_propagate_verbatim_and_transactions_as_one_block() {
        let (mut engine, rec) = engine();
        engine.execute(set(), 0, &argv("SET a 1"), NOW);
        assert_eq!(engine.dirty(), 1);
        // A transaction with one write: bare; with two: MULTI … EXEC.
        engine.begin_unit();
        engine.execute(set(), 0, &argv("SET b 1"), NOW);
        engine.end_unit();
        engine.begin_unit();
        engine.execute(set(), 1, &argv("SET c 1"), NOW);
        engine.execute(set(), 1, &argv("SET d 1"), NOW);
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            [
                "SELECT 0", "SET a 1", "SET b 1", "SELECT 1", "MULTI", "SET c 1", "SET d 1", "EXEC"
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
        engine.execute(set(), 0, &argv("SET x 2"), NOW);
        engine.end_unit();
        assert_eq!(
            rec.commands(),
            ["SELECT 0", "MULTI", "DEL x", "SET x 2", "EXEC"]
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

    fn info_field(engine: &Engine, name: &str) -> String {
        let info = engine.persistence().info_fields(unix_now_ms() / 1000);
        info.split("\r\n")
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .to_owned()
    }

    fn loaded_keys(outcome: LoadOutcome) -> (u64, u64) {
        match outcome {
            LoadOutcome::Loaded(stats) => (stats.keys_loaded, stats.keys_expired),
            LoadOutcome::Missing => panic!("no file"),
        }
    }

    /// [`SimStorage`] whose `create` (the temp file of every save) takes a while, so a
    /// background save is still at its start when the test acts on it.
    #[derive(Debug)]
    struct SlowCreate(SimStorage);

    impl Storage for SlowCreate {
        fn create(&self, path: &std::path::Path) -> Result<Box<dyn crate::WritableFile>> {
            std::thread::sleep(Duration::from_millis(100));
            self.0.create(path)
        }
        fn open_append(&self, path: &std::path::Path) -> Result<Box<dyn crate::WritableFile>> {
            self.0.open_append(path)
        }
        fn read_all(&self, path: &std::path::Path) -> Result<crate::FileView> {
            self.0.read_all(path)
        }
        fn open_read(&self, path: &std::path::Path) -> Result<Box<dyn std::io::Read + Send>> {
            self.0.open_read(path)
        }
        fn len(&self, path: &std::path::Path) -> Result<Option<u64>> {
            self.0.len(path)
        }
        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> Result<()> {
            self.0.rename(from, to)
        }
        fn remove(&self, path: &std::path::Path) -> Result<()> {
            self.0.remove(path)
        }
        fn rename_dir(&self, from: &std::path::Path, to: &std::path::Path) -> Result<()> {
            self.0.rename_dir(from, to)
        }
        fn remove_dir(&self, dir: &std::path::Path) -> Result<()> {
            self.0.remove_dir(dir)
        }
        fn exchange_dirs(&self, a: &std::path::Path, b: &std::path::Path) -> Result<()> {
            self.0.exchange_dirs(a, b)
        }
        fn truncate(&self, path: &std::path::Path, len: u64) -> Result<()> {
            self.0.truncate(path, len)
        }
        fn create_dir_all(&self, dir: &std::path::Path) -> Result<()> {
            self.0.create_dir_all(dir)
        }
        fn sync_dir(&self, dir: &std::path::Path) -> Result<()> {
            self.0.sync_dir(dir)
        }
        fn list(&self, dir: &std::path::Path) -> Result<Vec<String>> {
            self.0.list(dir)
        }
        fn available_space(&self, dir: &std::path::Path) -> Result<u64> {
            self.0.available_space(dir)
        }
    }

    fn config_with_save(points: &str) -> Config {
        Config {
            save: snapshot::SavePoints::parse_config_set(points).unwrap(),
            ..Config::default()
        }
    }

    #[test]
    fn save_writes_a_loadable_file_and_resets_dirty() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        set_string(&mut engine, 0, "a", "1", None);
        set_string(&mut engine, 5, "b", "2", Some(unix_now_ms() + 100_000));
        set_string(&mut engine, 5, "gone", "2", Some(NOW));
        engine.execute(set(), 1, &argv("SET c 3"), NOW);
        assert_eq!(engine.dirty(), 1);
        engine.save().unwrap();
        assert_eq!(engine.dirty(), 0);
        assert_eq!(engine.changes(), 1, "saves do not reset the change count");
        assert_eq!(info_field(&engine, "rdb_saves"), "1");

        let mut again = Engine::new(Config::default(), storage);
        assert_eq!(loaded_keys(again.load_rdb().unwrap()), (3, 1));
        assert_eq!(again.store().db(5).len(), 1);
        assert_eq!(again.store().db(5).expires_len(), 1);
        assert_eq!(info_field(&again, "rdb_last_load_keys_loaded"), "3");
        assert_eq!(info_field(&again, "rdb_last_load_keys_expired"), "1");
    }

    #[test]
    fn bgsave_is_point_in_time_and_subtracts_dirty_at_start() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        engine.execute(set(), 0, &argv("SET a 1"), NOW);
        engine.bgsave().unwrap();
        assert_eq!(engine.bgsave(), Err(BGSAVE_IN_PROGRESS_ERROR));
        let err = engine.save().unwrap_err().to_string();
        assert!(err.ends_with(BGSAVE_IN_PROGRESS_ERROR), "{err}");
        // Written after the snapshot: not in the file, and still counted as unsaved.
        engine.execute(set(), 0, &argv("SET b 2"), NOW);
        engine.execute(set(), 0, &argv("SET c 3"), NOW);
        assert!(engine.finish_bgsave(true).unwrap().is_ok());
        assert!(!engine.persistence().bgsave_in_progress());
        assert_eq!(engine.dirty(), 2);
        assert_eq!(info_field(&engine, "rdb_last_bgsave_status"), "ok");
        assert_eq!(info_field(&engine, "rdb_saves"), "1");
        let mut again = Engine::new(Config::default(), storage);
        assert_eq!(loaded_keys(again.load_rdb().unwrap()), (1, 0));
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
        assert!(!engine.finish_bgsave(true).unwrap().is_ok());
        assert_eq!(engine.writes_refused(), Some(MISCONF_ERROR));
        assert_eq!(info_field(&engine, "rdb_last_bgsave_status"), "err");
        engine.update_config(|c| c.stop_writes_on_bgsave_error = false);
        assert!(engine.writes_refused().is_none(), "option off");
        engine.update_config(|c| c.stop_writes_on_bgsave_error = true);
        assert!(engine.writes_refused().is_some());
        engine.update_config(|c| c.save = snapshot::SavePoints::disabled());
        assert!(
            engine.writes_refused().is_none(),
            "no save points: writes allowed"
        );
        engine.update_config(|c| c.save = snapshot::SavePoints::default());
        std::fs::create_dir(dir.path().join("missing")).unwrap();
        engine.save().unwrap();
        assert!(engine.writes_refused().is_none(), "a good SAVE lifts it");
    }

    #[test]
    fn corrupt_file_names_file_and_offset() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        crate::storage::publish_atomically(&*storage, &Config::default().rdb_path(), |f| {
            f.write_all(b"REDIS0010\xfe\x00\x63")
        })
        .unwrap();
        let err = engine.load_rdb().unwrap_err().to_string();
        assert!(err.starts_with("./data/dump.rdb: offset "), "{err}");
    }

    #[test]
    fn a_key_beyond_the_configured_databases_refuses_the_load() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        set_string(&mut engine, 5, "k", "v", None);
        engine.save().unwrap();
        let config = Config {
            databases: 2,
            ..Config::default()
        };
        let err = Engine::new(config, storage)
            .load_rdb()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("./data/dump.rdb: a key in database 5 but `databases` is 2"),
            "{err}"
        );
    }

    #[test]
    fn cron_starts_a_bgsave_when_a_save_point_is_due() {
        let storage = Arc::new(SimStorage::new(1));
        let config = config_with_save("1 2");
        let mut engine = Engine::new(config.clone(), storage);
        // The last save was ten seconds ago.
        engine.persistence.state = PersistenceState::new(config.save, unix_now_ms() / 1000 - 10);
        engine.execute(set(), 0, &argv("SET a 1"), NOW);
        engine.cron();
        assert!(!engine.persistence().bgsave_in_progress(), "1 change < 2");
        engine.execute(set(), 0, &argv("SET b 1"), NOW);
        engine.cron();
        assert!(engine.persistence().bgsave_in_progress());
        engine.finish_bgsave(true);
        assert_eq!(engine.dirty(), 0);
    }

    #[test]
    fn a_scheduled_bgsave_starts_from_the_cron() {
        let storage = Arc::new(SimStorage::new(1));
        let mut engine = Engine::new(Config::default(), storage.clone());
        set_string(&mut engine, 0, "a", "1", None);
        engine.schedule_bgsave();
        assert!(engine.bgsave_scheduled());
        engine.cron();
        assert!(!engine.bgsave_scheduled());
        assert!(engine.finish_bgsave(true).unwrap().is_ok());
        assert_eq!(
            loaded_keys(Engine::new(Config::default(), storage).load_rdb().unwrap()),
            (1, 0)
        );
    }

    #[test]
    fn flushall_cancels_a_running_bgsave() {
        let storage = Arc::new(SlowCreate(SimStorage::new(1)));
        let mut engine = Engine::new(config_with_save(""), storage.clone());
        set_string(&mut engine, 0, "a", "1", None);
        engine.bgsave().unwrap();
        let flushall = command::lookup(b"flushall").unwrap();
        assert_eq!(
            engine.execute(flushall, 0, &argv("flushall"), NOW),
            Reply::Ok
        );
        assert!(!engine.persistence().bgsave_in_progress());
        // Cancelled, not failed: no MISCONF, no file (it would hold the flushed key).
        assert_eq!(info_field(&engine, "rdb_last_bgsave_status"), "ok");
        assert_eq!(storage.len(&engine.config().rdb_path()).unwrap(), None);
        assert_eq!(engine.dirty(), 1);
    }

    /// Redis 7.0.15 with `save 3600 1`: `SET a; SET b; FLUSHALL` writes an empty dump.rdb
    /// and leaves rdb_changes_since_last_save 0 and rdb_saves 0.
    #[test]
    fn flushall_with_save_points_saves_the_empty_dataset() {
        let storage = Arc::new(SlowCreate(SimStorage::new(1)));
        let mut engine = Engine::new(config_with_save("3600 1"), storage.clone());
        engine.execute(set(), 0, &argv("SET a 1"), NOW);
        engine.execute(set(), 3, &argv("SET b 1"), NOW);
        engine.save().unwrap();
        engine.execute(set(), 0, &argv("SET c 1"), NOW);
        engine.bgsave().unwrap();
        let flushall = command::lookup(b"flushall").unwrap();
        let changes = engine.changes();
        assert_eq!(
            engine.execute(flushall, 0, &argv("flushall"), NOW),
            Reply::Ok
        );
        assert!(engine.changes() > changes, "WATCH sees the flush");
        assert!(!engine.persistence().bgsave_in_progress());
        assert_eq!(engine.dirty(), 0);
        assert_eq!(
            info_field(&engine, "rdb_saves"),
            "2",
            "SAVE and BGSAVE only"
        );
        assert_eq!(info_field(&engine, "rdb_last_bgsave_status"), "ok");
        assert_eq!(
            loaded_keys(Engine::new(Config::default(), storage).load_rdb().unwrap()),
            (0, 0)
        );
        // A refused FLUSHALL saves nothing.
        engine.execute(set(), 0, &argv("SET d 1"), NOW);
        let reply = engine.execute(flushall, 0, &argv("flushall bogus"), NOW);
        assert!(matches!(reply, Reply::Error(_)));
        assert_eq!(engine.dirty(), 1);
    }

    #[test]
    fn shutdown_save_stops_a_running_bgsave_then_saves() {
        let storage = Arc::new(SlowCreate(SimStorage::new(1)));
        let mut engine = Engine::new(Config::default(), storage.clone());
        set_string(&mut engine, 0, "a", "1", None);
        engine.bgsave().unwrap();
        set_string(&mut engine, 0, "b", "1", None);
        engine.shutdown_save().unwrap();
        assert!(!engine.persistence().bgsave_in_progress());
        assert_eq!(
            loaded_keys(Engine::new(Config::default(), storage).load_rdb().unwrap()),
            (2, 0)
        );
    }

    #[test]
    fn a_missing_file_is_an_empty_start() {
        let mut engine = Engine::new(Config::default(), Arc::new(SimStorage::new(1)));
        assert_eq!(engine.load_rdb().unwrap(), LoadOutcome::Missing);
        assert_eq!(info_field(&engine, "rdb_last_load_keys_loaded"), "0");
    }
}
