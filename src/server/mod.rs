//! `keeper server`: a tokio RESP server around the [`Engine`].
//!
//! # How the pieces fit
//!
//! - **Connections.** One tokio task per client (`conn`). It reads whatever the socket has
//!   into a `BytesMut`, takes every complete command off it with the incremental
//!   [`RequestParser`](crate::resp::RequestParser) (arguments are zero-copy slices of the read
//!   buffer), runs them, encodes every reply straight into one output buffer and writes it
//!   with one `write`. Pipelined commands therefore cost one read, one lock and one write per
//!   batch, not per command.
//! - **The engine lock.** All shared state — the [`Engine`] (store, dirty counter,
//!   replication offset, persistence state, config) and the server's own registries (clients,
//!   pub/sub, watched keys) — lives in one `State` behind one `std::sync::Mutex`. A
//!   connection takes it once per batch (at most [`MAX_BATCH`] commands), computes `now_ms`
//!   once for the batch, and never holds it across an `.await`. Commands are therefore atomic
//!   and totally ordered, like Redis's single thread; `MULTI`/`EXEC` runs its queue inside one
//!   hold. The lock is never taken by background threads: a BGSAVE thread works on an O(1)
//!   snapshot and the cron collects its result.
//! - **The propagation road.** A data command runs through [`Engine::execute`], which counts
//!   its changes and propagates what Redis would (the command, its deterministic rewrite, the
//!   `DEL`s of keys it found expired; `MULTI … EXEC` around an execution unit of several) by
//!   [`Engine::propagate`]: one RESP encoding, one offset per byte, fed to every registered
//!   [`PropagationSink`](crate::engine::PropagationSink) (the replication backlog plugs in
//!   there) and to the AOF. It all happens under the engine lock, so the stream order is the
//!   execution order.
//! - **Durable replies.** With the AOF on, the propagated bytes go to its writer thread
//!   ([`crate::aof::writer`]); after a batch, a connection takes the ack it needs (the end of
//!   the stream so far) under the lock and awaits it *outside* the lock before writing its
//!   replies: under `always` the group commit's fdatasync, otherwise the write. Other clients'
//!   commands keep running meanwhile. Under `everysec` and `no`, while the writer thread
//!   sleeps, the connection yields once (so every connection with commands ready runs them)
//!   and then writes everything queued itself: one `write(2)` per turn, as Redis's event loop
//!   does. A poisoned AOF closes the connection without replies.
//! - **Threads.** `io-threads` (default 1) runtime workers serve the connections; commands
//!   run one at a time under the engine lock whatever their number.
//! - **Replicas** (`replication.rs`): `SYNC`/`PSYNC` decide under the lock (a partial resync
//!   from the backlog, or a full sync from an O(1) snapshot taken with the replication id and
//!   offset); the connection then sends the RDB outside the lock, encoded on a blocking thread
//!   ([`crate::replication::sync::send_rdb`]), and becomes the replica's link: the stream
//!   the engine propagates reaches it through [`crate::replication::primary`]'s sink without
//!   the lock ever waiting on a replica. rdb-only clients (`redis-cli --rdb`) get the RDB
//!   alone.
//! - **As a replica** (`replica_link`, `REPLICAOF`/`--replicaof`): a task holds the link to
//!   the primary ([`crate::replication::replica`]); a full sync loads into a fresh store off
//!   the lock and is swapped in under it; the stream's commands run under the lock in
//!   batches, each batch's bytes fed verbatim to the AOF and the sinks so the offsets stay
//!   the primary's. Clients' writes get `-READONLY`; no key expires here but by the
//!   primary's `DEL`.
//! - **Planned failover** (`failover`, `FAILOVER`): writes are paused (a paused client
//!   waits outside the lock, like `WAIT`), a task waits for the target's ACK, then the node
//!   turns into the target's replica and its link's `PSYNC … FAILOVER` makes the target
//!   take over; the target side promotes itself on that PSYNC.
//! - **The cron** (`cron`): `hz` times per second it runs the active expiry cycle (bounded
//!   to a quarter of the period), collects a finished BGSAVE or AOF rewrite, starts one when a
//!   save point, AOF growth or the AOF disk budget asks for it, and samples
//!   `instantaneous_ops_per_sec`.
//! - **Backups** (`backups`): with `backup-target` set, a task makes the automatic backup in
//!   the daily window (or on `backup-cron`), then prunes what `backup-retention-days` lets
//!   expire; each backup takes an O(1) snapshot under the lock and writes, compresses, uploads
//!   and verifies outside it. `INFO backup` reports them.
//! - **Shutdown**: SIGTERM, SIGINT or `SHUTDOWN` stop taking commands; with
//!   `backup-on-shutdown yes` a final backup is made of the last state; the dataset is saved
//!   when save points are set (or `SHUTDOWN SAVE`), unless `SHUTDOWN NOSAVE`; the AOF is
//!   flushed, synced and closed; then the process exits.

mod backups;
mod client_kill;
mod commands;
mod conn;
mod failover;
mod info;
mod pubsub;
mod replica_link;
mod replication;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::aof::writer::IdleCommit;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::snapshot::LoadOutcome;

pub use commands::server_command_names;

/// Most commands run under one hold of the engine lock; a longer pipeline is cut into
/// batches of this size so one client cannot stall the others for long.
pub const MAX_BATCH: usize = 1024;
/// Samples averaged for `instantaneous_ops_per_sec`, one per 100 ms (as Redis).
const OPS_SAMPLES: usize = 16;

/// What `CLIENT LIST` shows of a connection; updated by the connection once per batch.
pub(crate) struct ClientInfo {
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    pub name: Option<Bytes>,
    pub created: Instant,
    pub last_interaction: Instant,
    pub db: usize,
    pub subscriptions: usize,
    pub patterns: usize,
    /// Commands queued by MULTI, or -1 outside a transaction.
    pub multi: i64,
    pub resp: u8,
    /// Last command run (`client|list` for subcommands).
    pub cmd: String,
    /// Wakes the connection's task when `CLIENT KILL` closed it (it has left `clients`).
    pub kill: Arc<Notify>,
}

/// Everything shared between connections, guarded by the engine lock.
pub(crate) struct State {
    pub engine: Engine,
    pub clients: BTreeMap<u64, ClientInfo>,
    pub pubsub: pubsub::PubSub,
    /// `(db, key)` → clients watching it.
    pub watched: HashMap<(usize, Bytes), Vec<u64>>,
    /// Clients whose watched keys changed: their EXEC fails.
    pub dirty_cas: HashSet<u64>,
    next_client_id: u64,
    ops_samples: [u64; OPS_SAMPLES],
    ops_sample_index: usize,
    last_sample: (Instant, u64),
    pub config_file: Option<String>,
    /// This node's primary and the link to it, while it is a replica.
    pub replica: Option<replica_link::ReplicaRole>,
    /// The replica registry and backlog; its sink is registered with the engine.
    pub primary: crate::replication::primary::PrimaryHandle,
    /// When the replication cron last ran (it runs once a second).
    pub repl_cron_at: Instant,
    /// A planned failover (`FAILOVER`) and the write pause it holds.
    pub failover: failover::FailoverControl,
}

impl State {
    fn new(mut engine: Engine, config_file: Option<String>) -> Self {
        let primary = crate::replication::primary::PrimaryHandle::new(engine.config());
        engine.add_sink(Box::new(primary.sink()));
        State {
            replica: None,
            engine,
            clients: BTreeMap::new(),
            pubsub: pubsub::PubSub::default(),
            watched: HashMap::new(),
            dirty_cas: HashSet::new(),
            next_client_id: 1,
            ops_samples: [0; OPS_SAMPLES],
            ops_sample_index: 0,
            last_sample: (Instant::now(), 0),
            config_file,
            primary,
            repl_cron_at: Instant::now(),
            failover: Default::default(),
        }
    }

    /// `instantaneous_ops_per_sec`: the mean of the last samples.
    pub fn ops_per_sec(&self) -> u64 {
        self.ops_samples.iter().sum::<u64>() / OPS_SAMPLES as u64
    }

    fn sample_ops(&mut self) {
        let (at, count) = self.last_sample;
        let elapsed = at.elapsed();
        if elapsed < Duration::from_millis(100) {
            return;
        }
        let total = self.engine.stats.total_commands_processed;
        let rate = (total - count) * 1000 / (elapsed.as_millis() as u64).max(1);
        self.ops_samples[self.ops_sample_index] = rate;
        self.ops_sample_index = (self.ops_sample_index + 1) % OPS_SAMPLES;
        self.last_sample = (Instant::now(), total);
    }

    /// Marks the watchers of `(db, key)`: their transaction will fail.
    pub fn touch_key(&mut self, db: usize, key: &Bytes) {
        if let Some(ids) = self.watched.get(&(db, key.clone())) {
            self.dirty_cas.extend(ids.iter().copied());
        }
    }

    /// Marks every watcher (FLUSHALL, SWAPDB and other commands without key positions).
    pub fn touch_all(&mut self) {
        for ids in self.watched.values() {
            self.dirty_cas.extend(ids.iter().copied());
        }
    }
}

/// The lock and the signals connections and the main task share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the main task when SHUTDOWN asks to stop.
    pub shutdown: Notify,
    /// Set once shutdown began: connections stop taking commands.
    pub stopping: AtomicBool,
    /// The port actually listened on.
    pub port: u16,
    /// `total_net_input_bytes` / `total_net_output_bytes`, counted outside the lock.
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// `total_net_repl_input_bytes` / `total_net_repl_output_bytes`: as Redis 7.0, bytes from
    /// the primary (RDB and stream) and bytes to replicas are counted apart from the others.
    pub net_repl_input_bytes: AtomicU64,
    pub net_repl_output_bytes: AtomicU64,
    /// INFO's `blocked_clients`: connections waiting in `WAIT`.
    pub blocked_clients: AtomicU64,
    pub started: Instant,
    /// The backup scheduler's state, for INFO and SHUTDOWN.
    pub backups: backups::Backups,
    /// This `Shared` itself, for what must outlive a command (the replica link's task).
    pub this: std::sync::Weak<Shared>,
    /// INFO's `run_id`: 40 random hex characters, fixed for the life of the process as
    /// Redis's (Sentinel takes a new one for a restart), unlike the replication id.
    pub run_id: String,
}

impl Shared {
    /// Takes the engine lock. A panic while it was held (a bug in a command) leaves it
    /// poisoned; the data is still consistent at command granularity, so keep serving.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| {
            tracing::error!("a command panicked while holding the engine lock");
            poisoned.into_inner()
        })
    }
}

/// Runs the server until SIGTERM, SIGINT or SHUTDOWN. `config_file` is shown by INFO. Files
/// go through [`crate::storage::from_env`] (`KEEPER_STORAGE`).
/// Errors: the data folder or `dump.rdb` cannot be read (a corrupt file names file, offset
/// and reason), or the port cannot be bound.
pub fn run(config: Config, config_file: Option<String>) -> Result<()> {
    crate::os::disable_malloc_fastbins();
    if config.malloc_huge_pages {
        crate::os::use_one_malloc_arena();
    }
    let storage = crate::storage::from_env()?;
    storage.create_dir_all(&config.dir)?;
    let mut engine = Engine::new(config, storage);
    let started = Instant::now();
    let restored = if engine.config().appendonly {
        load_aof(&mut engine, started)?
    } else {
        load_rdb(&mut engine, started)?
    };
    // An I/O thread with nothing left to do commits a lone client's `always` write itself
    // (`IdleCommit`), saving the write two thread hand-offs.
    let idle = IdleCommit::new(engine.config().io_threads);
    engine.commit_when_idle(idle.clone());
    let unparked = idle.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(engine.config().io_threads)
        .enable_all()
        .thread_name("keeper-io")
        .on_thread_park(move || {
            idle.thread_parking();
        })
        .on_thread_unpark(move || unparked.thread_unparked())
        .build()
        .map_err(|e| Error::io("tokio runtime", "start", e))?;
    let result = runtime.block_on(serve(engine, config_file, restored));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Loads the AOF directory (Redis does not read `dump.rdb` when the AOF is on) and opens it.
/// Returns the stream's database when the AOF recorded its replication position.
fn load_aof(engine: &mut Engine, started: Instant) -> Result<Option<usize>> {
    let mut restored = None;
    match engine.open_aof()? {
        Some(report) => {
            if report.repl.is_some() {
                restored = Some(report.stream_db);
            }
            if let Some(cut) = &report.truncation {
                tracing::warn!(
                    "!!! Truncating the AOF {} at offset {} (it was {} bytes) !!!",
                    cut.file.display(),
                    cut.new_len,
                    cut.original_len
                );
                tracing::warn!(
                    "AOF {} loaded anyway because aof-load-truncated is enabled",
                    cut.file.display()
                );
            }
            tracing::info!(
                "DB loaded from append only file: {:.3} seconds ({} files, {} commands)",
                started.elapsed().as_secs_f64(),
                report.files.len(),
                report.files.iter().map(|f| f.commands).sum::<u64>()
            );
        }
        None => tracing::info!(
            "no AOF in {} yet: starting with an empty dataset",
            engine.config().aof_dir().display()
        ),
    }
    Ok(restored)
}

/// Loads `dump.rdb`. A replica (`replicaof` configured) takes the replication position the
/// file recorded, as Redis does, to ask its primary a partial resync; returns the stream's
/// database then.
fn load_rdb(engine: &mut Engine, started: Instant) -> Result<Option<usize>> {
    let mut restored = None;
    match engine.load_rdb()? {
        // Redis 7.0's two lines, then the file for the operator.
        LoadOutcome::Loaded(stats) => {
            if let Some(repl) = &stats.replication {
                engine.set_replication_position(repl.id.clone(), repl.offset);
                restored = Some(repl.stream_db as usize);
            }
            tracing::info!(
                "Done loading RDB, keys loaded: {}, keys expired: {}.",
                stats.keys_loaded,
                stats.keys_expired
            );
            tracing::info!(
                "DB loaded from disk: {:.3} seconds ({}, {} bytes, RDB version {})",
                started.elapsed().as_secs_f64(),
                engine.config().rdb_path().display(),
                stats.bytes,
                stats.rdb_version
            );
        }
        LoadOutcome::Missing => tracing::info!(
            "no {} yet: starting with an empty dataset",
            engine.config().rdb_path().display()
        ),
    }
    Ok(restored)
}

/// `restored`: see [`replica_link::start_configured`].
async fn serve(
    mut engine: Engine,
    config_file: Option<String>,
    restored: Option<usize>,
) -> Result<()> {
    let (binds, port) = (engine.config().bind.clone(), engine.config().port);
    let mut listeners = Vec::new();
    for addr in &binds {
        let listener = TcpListener::bind((addr.as_str(), port))
            .await
            .map_err(|e| Error::io(format!("{addr}:{port}"), "bind", e))?;
        listeners.push(listener);
    }
    let port = match listeners.first().map(TcpListener::local_addr) {
        Some(Ok(addr)) => addr.port(),
        _ => port,
    };
    let run_id = crate::engine::random_replid(engine.rng());
    let shared = Arc::new_cyclic(|this| Shared {
        run_id,
        this: this.clone(),
        state: Mutex::new(State::new(engine, config_file)),
        shutdown: Notify::new(),
        stopping: AtomicBool::new(false),
        port,
        net_input_bytes: AtomicU64::new(0),
        net_output_bytes: AtomicU64::new(0),
        net_repl_input_bytes: AtomicU64::new(0),
        net_repl_output_bytes: AtomicU64::new(0),
        blocked_clients: AtomicU64::new(0),
        started: Instant::now(),
        backups: backups::Backups::default(),
    });
    replica_link::start_configured(&shared, restored);
    for listener in listeners {
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
    }
    tokio::spawn(cron(Arc::clone(&shared)));
    tokio::spawn(backups::scheduler(Arc::clone(&shared)));
    tracing::info!(
        "keeper {} ready to accept connections on {} port {port}",
        env!("CARGO_PKG_VERSION"),
        binds.join(" ")
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("SIGTERM", "install handler", e))?;
    let by_signal = tokio::select! {
        _ = terminate.recv() => Some("SIGTERM"),
        _ = tokio::signal::ctrl_c() => Some("SIGINT"),
        _ = shared.shutdown.notified() => None,
    };
    shared.stopping.store(true, Ordering::SeqCst);
    let final_backup = {
        let state = shared.lock();
        let config = state.engine.config();
        config.backup_on_shutdown && !config.backup_target.is_empty()
    };
    if final_backup {
        // Writes are already refused (stopping): the final backup is the last state.
        match backups::backup_now(&shared, crate::backup::BackupKind::Final, None).await {
            Ok(manifest) => tracing::info!("Final backup {} stored", manifest.id),
            Err(e) => tracing::error!("The final backup failed: {e}"),
        }
    }
    let mut state = shared.lock();
    if let Some(signal) = by_signal {
        tracing::info!("Received {signal} scheduling shutdown...");
        if !state.engine.config().save.is_empty()
            && let Err(e) = state.engine.shutdown_save()
        {
            // Redis refuses to exit on SIGTERM when the final save fails; an operator's
            // SIGKILL would follow anyway, so exit and say so loudly.
            tracing::error!("Error trying to save the DB, can't exit cleanly: {e}");
        }
    }
    // A background save still running (SHUTDOWN NOSAVE) stops and removes its temp file,
    // as Redis kills its child: exiting under it would leave the temp file behind.
    state.engine.cancel_bgsave();
    // An AOF turned on (or restarted after a replica's full sync) has no base yet: closing
    // now would leave the old files authoritative, so its first rewrite is waited for (Redis
    // refuses to exit then: "Writing initial AOF, can't exit").
    if state
        .engine
        .aof()
        .is_some_and(|aof| aof.waiting_for_first_base())
    {
        tracing::warn!("Writing initial AOF before exiting.");
        state.engine.finish_aof_rewrite();
    }
    if let Err(e) = state.engine.close_aof() {
        tracing::error!("Error closing the AOF: {e}");
    }
    drop(state);
    tracing::info!("keeper is now ready to exit, bye bye...");
    Ok(())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { conn::serve(stream, addr, shared).await });
            }
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!("Accepting client connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The periodic task (Redis's `serverCron`), `hz` times per second.
async fn cron(shared: Arc<Shared>) {
    let mut hz = shared.lock().engine.config().hz.max(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / u64::from(hz)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut state = shared.lock();
        let period = Duration::from_millis(1000 / u64::from(hz));
        let now_ms = crate::engine::unix_now_ms();
        let State {
            engine,
            watched,
            dirty_cas,
            failover,
            ..
        } = &mut *state;
        // While a failover pauses writes the dataset stays as it is (Redis pauses expiry
        // too): the stream must stop so the target can catch up.
        let paused = failover.pauses_writes();
        if !paused {
            engine.active_expire(now_ms, period / 4, &mut |db, key| {
                if let Some(ids) = watched.get(&(db, key.clone())) {
                    dirty_cas.extend(ids.iter().copied());
                }
            });
        }
        state.engine.cron();
        replication::cron(&mut state);
        state.sample_ops();
        let configured = state.engine.config().hz.max(1);
        drop(state);
        if configured != hz {
            hz = configured;
            ticker = tokio::time::interval(Duration::from_millis(1000 / u64::from(hz)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
    }
}
