//! The primary's side of replication: the replica registry, the [`PropagationSink`] that feeds
//! the backlog and every replica, the PSYNC decision, and the stream to one replica
//! (`redis-formats.md` §3.2–§3.7).
//!
//! # Shape
//!
//! [`Primary`] lives behind its own mutex, shared by the server state and the sink the engine
//! calls for every propagated byte ([`PrimaryHandle::sink`]). Lock order: the engine lock, then
//! this one; never the other way, and never an engine call that propagates while holding it
//! (the sink takes it again).
//!
//! Every replica has an unbounded channel of [`Bytes`]: [`Primary::feed`] appends each
//! propagated piece to the backlog and, copied once into one shared `Bytes`, to the channel of
//! every replica being fed, so N replicas cost one copy and N reference counts. The replica's
//! connection task ([`stream_to_replica`]) drains its channel to the socket outside every lock;
//! a slow replica only grows its own queue, whose size ([`ReplicaLink`]'s `queued`) the sink
//! checks against `client-output-buffer-limit replica` at each append and drops the replica
//! when over, as Redis does.
//!
//! # A full sync, in order
//!
//! Under the engine lock, PSYNC/SYNC registers the replica in `wait_bgsave`, not fed yet.
//! Replicas that ask at about the same time share one snapshot, by Redis 7.0's rules:
//!
//! - Diskless (`capa eof` and `repl-diskless-sync yes`, or a filtered RDB): the replica
//!   queues for the next diskless transfer ([`Primary::wait_for_diskless`]). It starts once
//!   `repl-diskless-sync-delay` seconds passed since the oldest waiter asked, or as soon as
//!   `repl-diskless-sync-max-replicas` (if not 0) wait, and never while another diskless
//!   transfer runs (a replica asking then waits for the next one) — see
//!   [`Primary::diskless_due`]. Starting it takes one O(1) snapshot at `master_repl_offset` =
//!   N, starts feeding every waiter's channel from that instant ([`Primary::start_feeding`]),
//!   and fans one RDB encoding out to all of them ([`super::sync::start_diskless`]).
//! - Disk-based: a new staged RDB starts at once, at offset N ([`Primary::set_staged_sync`]);
//!   while it is written, a replica asking attaches to it ([`Primary::attach_staged`]): it
//!   gets the same file, `+FULLRESYNC` with the same N, and a channel pre-filled with the
//!   stream since N, which the registry keeps (shared chunks) while the group can take
//!   replicas.
//!
//! Each connection then answers `+FULLRESYNC <replid> N`, sends the RDB (outside the lock),
//! puts the replica online, and streams the channel, which holds exactly the bytes from N + 1
//! on. After the diskless `$EOF:` form the stream waits for the replica's first `REPLCONF
//! ACK`: until then a Redis replica still looks for the end mark in the last 40 bytes it
//! read, and stream bytes behind the mark would hide it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::backlog::Backlog;
use super::sync::{StagedRdb, Transfer};
use crate::config::{Config, OutputBufferLimit};
use crate::engine::{Engine, PropagationSink};
use crate::resp::{Limits, RequestParser};

/// `REPLCONF GETACK *`, as Redis propagates it to ask every replica for an ACK.
pub const GETACK: [&[u8]; 3] = [b"REPLCONF", b"GETACK", b"*"];
/// The primary's keep-alive in the stream (lower case, as Redis sends it).
pub const PING: [&[u8]; 1] = [b"ping"];
/// Stream pieces smaller than this are copied together into one write.
const COALESCE: usize = 64 * 1024;
/// Most bytes taken off a replica's queue for one round of writes.
const WRITE_ROUND: usize = 1024 * 1024;
/// Replica input read at a time (ACKs are about 40 bytes each).
const READ_CHUNK: usize = 4096;

/// Unix time in milliseconds.
fn now_ms() -> u64 {
    crate::engine::unix_now_ms().max(0) as u64
}

/// Where a replica is in its sync (Redis's `replstate`, as INFO names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Registered; its RDB is being written (Redis: waiting for or in the BGSAVE, and the
    /// whole diskless transfer).
    WaitBgsave,
    /// The staged RDB file is being sent (`$<len>` form).
    SendBulk,
    /// The RDB arrived (or the resync was partial): the stream flows, ACKs count for `WAIT`.
    Online,
    /// An rdb-only client whose RDB was sent: listed in `connected_slaves` until it closes,
    /// but not in the `slaveN` lines (Redis's `SLAVE_STATE_RDB_TRANSMITTED`).
    RdbTransmitted,
}

impl ReplicaState {
    /// INFO's `state=` value; empty for a state INFO does not list.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::WaitBgsave => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
            ReplicaState::RdbTransmitted => "",
        }
    }
}

/// What a replica's connection task and the registry share without a lock.
pub struct ReplicaLink {
    /// The highest offset the replica acknowledged (`repl_ack_off`).
    ack_offset: AtomicU64,
    /// Unix ms of the last ACK or newline from the replica, or of it going online
    /// (`repl_ack_time`).
    last_ack_ms: AtomicU64,
    /// Stream bytes queued for the replica and not yet written to its socket.
    queued: AtomicU64,
    killed: AtomicBool,
    kill: Notify,
    /// Bumped on every ACK, for `WAIT`.
    acks: Arc<watch::Sender<u64>>,
}

impl ReplicaLink {
    fn new(acks: Arc<watch::Sender<u64>>) -> Self {
        ReplicaLink {
            ack_offset: AtomicU64::new(0),
            last_ack_ms: AtomicU64::new(now_ms()),
            queued: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            acks,
        }
    }

    /// `REPLCONF ACK <offset>`: the replica applied the stream up to `offset`.
    pub fn ack(&self, offset: u64) {
        self.ack_offset.fetch_max(offset, Ordering::SeqCst);
        self.touch();
        self.acks.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The replica showed it is alive (an ACK, or the newline a loading replica sends).
    pub fn touch(&self) {
        self.last_ack_ms.store(now_ms(), Ordering::SeqCst);
    }

    pub fn ack_offset(&self) -> u64 {
        self.ack_offset.load(Ordering::SeqCst)
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }

    fn written(&self, bytes: u64) {
        self.queued.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// Asks the connection task to close the link.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Resolves once [`ReplicaLink::kill`] was called (at once if it already was). One task
    /// awaits it at a time.
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill.notified().await;
    }
}

/// A replica (or rdb-only client) in the registry.
pub struct Replica {
    /// The connection's client id.
    pub id: u64,
    /// `REPLCONF ip-address`, else the peer's address.
    pub ip: String,
    /// `REPLCONF listening-port` (0 when not sent).
    pub listening_port: i64,
    pub state: ReplicaState,
    /// `REPLCONF rdb-only 1`: the RDB and nothing after it.
    pub rdb_only: bool,
    /// Came with the legacy `SYNC`: sends no ACKs, so no ACK timeout applies.
    pub pre_psync: bool,
    link: Arc<ReplicaLink>,
    /// Where [`Primary::feed`] sends the stream; `None` for rdb-only clients and once the
    /// replica was dropped.
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// When the queue first went over the soft limit, while it stays over.
    soft_limit_since: Option<Instant>,
}

impl Replica {
    /// Redis's `replicationGetSlaveName`: `ip:port`, for logs.
    pub fn name(&self) -> String {
        if self.listening_port != 0 {
            format!("{}:{}", self.ip, self.listening_port)
        } else {
            format!("{}:<unknown-replica-port>", self.ip)
        }
    }

    pub fn link(&self) -> &Arc<ReplicaLink> {
        &self.link
    }

    /// Seconds since the last ACK, for INFO (0 unless online, as Redis).
    pub fn lag_seconds(&self, now_ms: u64) -> u64 {
        if self.state != ReplicaState::Online {
            return 0;
        }
        now_ms.saturating_sub(self.link.last_ack_ms.load(Ordering::SeqCst)) / 1000
    }

    /// Redis's `checkClientOutputBufferLimits` for a queue of `queued` bytes: over the hard
    /// limit, or over the soft one for more than its seconds in a row.
    fn over_limit(&mut self, queued: u64, limit: &OutputBufferLimit, now: Instant) -> bool {
        let hard = limit.hard != 0 && queued >= limit.hard;
        let soft = limit.soft != 0 && queued >= limit.soft;
        let soft_expired = if soft {
            match self.soft_limit_since {
                None => {
                    self.soft_limit_since = Some(now);
                    false
                }
                Some(since) => now.duration_since(since).as_secs() > limit.soft_seconds,
            }
        } else {
            self.soft_limit_since = None;
            false
        };
        hard || soft_expired
    }
}

/// Who asks to sync, from its connection's `REPLCONF`s.
#[derive(Debug, Clone)]
pub struct ReplicaRequest {
    pub id: u64,
    pub peer: SocketAddr,
    pub ip_address: Option<String>,
    pub listening_port: i64,
    pub rdb_only: bool,
    pub pre_psync: bool,
}

/// What the connection of a registered replica holds: the link and, unless rdb-only, the
/// stream.
pub struct ReplicaSession {
    pub id: u64,
    pub link: Arc<ReplicaLink>,
    pub stream: Option<mpsc::UnboundedReceiver<Bytes>>,
}

/// The PSYNC decision (Redis's `masterTryPartialResynchronization`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncDecision {
    /// `+CONTINUE`, then the backlog from the offset asked.
    Continue,
    /// A full sync. `counts_as_error` is false for `PSYNC ? …`, a deliberate full sync
    /// (Redis then does not count `sync_partial_err`); `reason` is Redis's log line.
    Full {
        counts_as_error: bool,
        reason: String,
    },
}

/// The counters of `INFO stats`, as Redis counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Full syncs served (`SYNC`, failed or deliberate `PSYNC`, rdb-only clients included).
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    /// Partial resyncs asked for and refused (`PSYNC ?` not counted).
    pub sync_partial_err: u64,
    /// Snapshots taken for full syncs (keeper's `keeper_sync_snapshots`): less than
    /// `sync_full` when replicas shared one.
    pub snapshots: u64,
}

/// What the once-a-second replication cron asks of the engine.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CronActions {
    /// Propagate [`PING`] to the replicas.
    pub ping: bool,
    /// The backlog was freed after `repl-backlog-ttl` without replicas: take a new
    /// replication id and forget the previous one.
    pub new_replid: bool,
}

/// The replica registry, the backlog and the sync counters.
pub struct Primary {
    backlog: Option<Backlog>,
    /// In registration order (INFO's `slaveN`).
    replicas: Vec<Replica>,
    /// `repl-backlog-size`, applied to the backlog when it changes.
    backlog_size: u64,
    /// `client-output-buffer-limit replica …`.
    limit: OutputBufferLimit,
    pub stats: SyncStats,
    /// Since when the registry is empty (for `repl-backlog-ttl`).
    no_replicas_since: Instant,
    last_ping: Instant,
    /// A `WAIT` blocked: send `REPLCONF GETACK *` once the current batch is over.
    getack_pending: bool,
    acks: Arc<watch::Sender<u64>>,
    /// Full syncs that share one snapshot.
    groups: SyncGroups,
}

impl Primary {
    fn new(config: &Config) -> Primary {
        Primary {
            backlog: None,
            replicas: Vec::new(),
            backlog_size: config.repl_backlog_size,
            limit: config.client_output_buffer_limit.replica,
            stats: SyncStats::default(),
            no_replicas_since: Instant::now(),
            last_ping: Instant::now(),
            getack_pending: false,
            acks: Arc::new(watch::Sender::new(0)),
            groups: SyncGroups::default(),
        }
    }

    pub fn backlog(&self) -> Option<&Backlog> {
        self.backlog.as_ref()
    }

    /// Registered replicas, rdb-only clients included (`connected_slaves`).
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// Applies `repl-backlog-size` and `client-output-buffer-limit` (after `CONFIG SET`).
    pub fn apply_config(&mut self, config: &Config) {
        self.backlog_size = config.repl_backlog_size;
        self.limit = config.client_output_buffer_limit.replica;
        if let Some(backlog) = &mut self.backlog {
            backlog.resize(self.backlog_size);
        }
    }

    /// Creates an empty backlog for a stream whose last byte is `end_offset`.
    pub fn create_backlog(&mut self, end_offset: u64) {
        self.backlog = Some(Backlog::new(self.backlog_size, end_offset));
    }

    pub fn free_backlog(&mut self) {
        self.backlog = None;
    }

    /// Drops a backlog that is not in step with the stream (its last byte is not
    /// `repl_offset`): the offset moved without it, e.g. a new position after a full sync
    /// from another primary, so its bytes are not the history of the offsets it claims.
    pub fn check_backlog(&mut self, repl_offset: u64) {
        if let Some(backlog) = &self.backlog
            && backlog.end_offset() != repl_offset
        {
            tracing::warn!(
                "Replication backlog ends at offset {} but the stream is at {repl_offset}: \
                 freeing it",
                backlog.end_offset()
            );
            self.backlog = None;
        }
    }

    /// Appends propagated bytes to the backlog and to the queue of every replica being fed;
    /// drops replicas whose queue went over `client-output-buffer-limit replica`.
    pub fn feed(&mut self, bytes: &[u8]) {
        if let Some(backlog) = &mut self.backlog {
            backlog.append(bytes);
        }
        let attachable = self.groups.staged_still_attachable(&self.limit);
        if !attachable && !self.replicas.iter().any(|r| r.tx.is_some()) {
            return;
        }
        let chunk = Bytes::copy_from_slice(bytes);
        if attachable && let Some(group) = &mut self.groups.staged {
            group.since_len += chunk.len() as u64;
            group.since.push(chunk.clone());
        }
        let now = Instant::now();
        let limit = self.limit;
        let mut dropped = false;
        for replica in &mut self.replicas {
            let Some(tx) = &replica.tx else { continue };
            let len = chunk.len() as u64;
            replica.link.queued.fetch_add(len, Ordering::SeqCst);
            if tx.send(chunk.clone()).is_err() {
                // The connection is closing; it leaves the registry on its way out.
                replica.link.written(len);
                replica.tx = None;
                continue;
            }
            if replica.over_limit(replica.link.queued(), &limit, now) {
                tracing::warn!(
                    "Client id={} (replica {}) scheduled to be closed ASAP for overcoming of \
                     output buffer limits ({} bytes queued).",
                    replica.id,
                    replica.name(),
                    replica.link.queued()
                );
                replica.tx = None;
                replica.link.kill();
                dropped = true;
            }
        }
        if dropped {
            self.remove_killed();
        }
    }

    fn remove_killed(&mut self) {
        self.replicas.retain(|r| !r.link.is_killed());
        if self.replicas.is_empty() {
            self.no_replicas_since = Instant::now();
        }
    }

    /// The PSYNC decision for `PSYNC <replid> <offset>` given the node's ids (Redis's
    /// `masterTryPartialResynchronization`, §3.2): partial when the id is ours, or our
    /// previous one and `offset` is within its history, and the backlog holds `offset`.
    pub fn decide(&self, engine: &Engine, replid: &str, offset: i64) -> PsyncDecision {
        let ours = replid.eq_ignore_ascii_case(engine.replid());
        let previous = replid.eq_ignore_ascii_case(engine.replid2());
        if !ours && (!previous || offset > engine.second_repl_offset()) {
            let reason = if replid.starts_with('?') {
                return PsyncDecision::Full {
                    counts_as_error: false,
                    reason: "Full resync requested by replica".into(),
                };
            } else if !previous {
                format!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica \
                     asked for '{replid}', my replication IDs are '{}' and '{}')",
                    engine.replid(),
                    engine.replid2()
                )
            } else {
                format!(
                    "Partial resynchronization not accepted: Requested offset for second ID \
                     was {offset}, but I can reply up to {}",
                    engine.second_repl_offset()
                )
            };
            return PsyncDecision::Full {
                counts_as_error: true,
                reason,
            };
        }
        let covered = self
            .backlog
            .as_ref()
            .is_some_and(|b| u64::try_from(offset).is_ok_and(|o| b.covers(o)));
        if !covered {
            let mut reason = format!(
                "Unable to partial resync with replica for lack of backlog (Replica request \
                 was: {offset})."
            );
            if offset > engine.repl_offset() as i64 {
                reason.push_str(
                    " Warning: replica tried to PSYNC with an offset that is greater than the \
                     master replication offset.",
                );
            }
            return PsyncDecision::Full {
                counts_as_error: true,
                reason,
            };
        }
        PsyncDecision::Continue
    }

    /// Registers a replica. Unless rdb-only it is fed the stream from now on; `backlog`
    /// (the bytes a partial resync continues with) goes first.
    pub fn register(
        &mut self,
        request: &ReplicaRequest,
        state: ReplicaState,
        backlog: Option<Vec<u8>>,
    ) -> ReplicaSession {
        self.register_with(request, state, backlog, true)
    }

    /// Registers a replica for a full sync, in `wait_bgsave`, not fed yet: its stream starts
    /// with its snapshot ([`Primary::start_feeding`]).
    pub fn register_for_full_sync(&mut self, request: &ReplicaRequest) -> ReplicaSession {
        self.register_with(request, ReplicaState::WaitBgsave, None, false)
    }

    fn register_with(
        &mut self,
        request: &ReplicaRequest,
        state: ReplicaState,
        backlog: Option<Vec<u8>>,
        fed: bool,
    ) -> ReplicaSession {
        let link = Arc::new(ReplicaLink::new(Arc::clone(&self.acks)));
        let (tx, rx) = if request.rdb_only || !fed {
            (None, None)
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        };
        if let (Some(tx), Some(bytes)) = (&tx, backlog)
            && !bytes.is_empty()
        {
            link.queued.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            let _ = tx.send(Bytes::from(bytes));
        }
        self.replicas.push(Replica {
            id: request.id,
            ip: request
                .ip_address
                .clone()
                .unwrap_or_else(|| request.peer.ip().to_string()),
            listening_port: request.listening_port,
            state,
            rdb_only: request.rdb_only,
            pre_psync: request.pre_psync,
            link: Arc::clone(&link),
            tx,
            soft_limit_since: None,
        });
        ReplicaSession {
            id: request.id,
            link,
            stream: rx,
        }
    }

    pub fn replica_mut(&mut self, id: u64) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.id == id)
    }

    /// Starts feeding replica `id` (registered by [`Primary::register_for_full_sync`]) the
    /// stream, after `since` (the stream between its snapshot and now). Returns its receiver;
    /// `None` for an rdb-only client or a replica no longer registered.
    pub fn start_feeding(
        &mut self,
        id: u64,
        since: &[Bytes],
    ) -> Option<mpsc::UnboundedReceiver<Bytes>> {
        let replica = self.replica_mut(id)?;
        if replica.rdb_only {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for chunk in since {
            replica
                .link
                .queued
                .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            let _ = tx.send(chunk.clone());
        }
        replica.tx = Some(tx);
        Some(rx)
    }

    /// Puts replica `id` in the queue of the next diskless full sync (Redis's
    /// `SLAVE_STATE_WAIT_BGSAVE_START`); the receiver gets its start.
    pub fn wait_for_diskless(
        &mut self,
        id: u64,
        rdb: RdbRequest,
        now: Instant,
    ) -> oneshot::Receiver<SyncStart> {
        let (start, rx) = oneshot::channel();
        self.groups.waiting.push(Waiter {
            id,
            rdb,
            since: now,
            start,
        });
        rx
    }

    /// True while a diskless transfer runs (replicas asking now wait for the next one).
    pub fn diskless_running(&self) -> bool {
        self.groups.running.load(Ordering::SeqCst) > 0
    }

    /// When the waiting replicas' diskless sync is due (Redis's
    /// `replicationStartPendingFullSync`): `Ok(())` now; `Err(Some(t))` at `t` at the latest
    /// (earlier if `repl-diskless-sync-max-replicas` replicas arrive); `Err(None)` when nobody
    /// waits or a diskless transfer runs (its end wakes [`Primary::sync_wake`]).
    ///
    /// The delay is `repl-diskless-sync-delay` counted from the oldest waiter's request (with
    /// `repl-diskless-sync no`, only filtered clients sync diskless, and at once). It starts
    /// earlier once `repl-diskless-sync-max-replicas` (if not 0) replicas that can share it
    /// wait.
    pub fn diskless_due(&self, config: &Config, now: Instant) -> Result<(), Option<Instant>> {
        let Some(first) = self.groups.waiting.first() else {
            return Err(None);
        };
        if self.diskless_running() {
            return Err(None);
        }
        let delay = if config.repl_diskless_sync {
            Duration::from_secs(config.repl_diskless_sync_delay)
        } else {
            Duration::ZERO
        };
        let sharing = self
            .groups
            .waiting
            .iter()
            .filter(|w| w.rdb == first.rdb)
            .count() as u64;
        let max = config.repl_diskless_sync_max_replicas;
        let oldest = self
            .groups
            .waiting
            .iter()
            .map(|w| w.since)
            .min()
            .unwrap_or(now);
        let at = oldest + delay;
        if (max > 0 && sharing >= max) || now >= at {
            Ok(())
        } else {
            Err(Some(at))
        }
    }

    /// Takes the waiters that share the next diskless transfer: those who ask for the first
    /// waiter's RDB ([`RdbRequest`]), as Redis serves only replicas with the first one's
    /// requirements; the others wait for the transfer after. Returns the request and the
    /// waiters (ids and where to send their start).
    pub fn take_diskless_waiters(
        &mut self,
    ) -> (RdbRequest, Vec<(u64, oneshot::Sender<SyncStart>)>) {
        let Some(rdb) = self.groups.waiting.first().map(|w| w.rdb) else {
            return (RdbRequest::default(), Vec::new());
        };
        let (taken, rest) = std::mem::take(&mut self.groups.waiting)
            .into_iter()
            .partition::<Vec<_>, _>(|w| w.rdb == rdb);
        self.groups.waiting = rest;
        let taken = taken
            .into_iter()
            .filter(|w| !w.start.is_closed() && self.replicas.iter().any(|r| r.id == w.id))
            .map(|w| (w.id, w.start))
            .collect();
        (rdb, taken)
    }

    /// Marks a diskless transfer running; call the returned function when it ends.
    pub fn begin_diskless(&mut self) -> impl FnOnce() + Send + 'static {
        let running = Arc::clone(&self.groups.running);
        let wake = Arc::clone(&self.groups.wake);
        running.fetch_add(1, Ordering::SeqCst);
        move || {
            running.fetch_sub(1, Ordering::SeqCst);
            wake.notify_waiters();
        }
    }

    /// Notified when a diskless transfer ends (the next one may start).
    pub fn sync_wake(&self) -> Arc<Notify> {
        Arc::clone(&self.groups.wake)
    }

    /// Records the disk-based sync just started (snapshot at `offset` under `replid`), so
    /// replicas asking while its RDB is written attach to it.
    pub fn set_staged_sync(&mut self, replid: &str, offset: u64, rdb: &Arc<StagedRdb>) {
        self.groups.staged = Some(StagedGroup {
            replid: replid.to_owned(),
            offset,
            rdb: Arc::downgrade(rdb),
            since: Vec::new(),
            since_len: 0,
        });
    }

    /// Redis's rule for a replica asking while a BGSAVE for replication runs: it attaches when
    /// that BGSAVE writes to disk for replication (still writing, same replication id) and
    /// its stream is still held whole. Returns the snapshot's id and offset, the RDB, and the
    /// stream since the snapshot (the attaching replica's output buffer, as Redis copies the
    /// first replica's).
    pub fn attach_staged(&mut self, replid: &str) -> Option<(String, u64, Transfer, Vec<Bytes>)> {
        if !self.groups.staged_still_attachable(&self.limit) {
            return None;
        }
        let group = self.groups.staged.as_ref()?;
        if !group.replid.eq_ignore_ascii_case(replid) {
            return None;
        }
        let rdb = group.rdb.upgrade()?;
        Some((
            group.replid.clone(),
            group.offset,
            Transfer::staged(&rdb),
            group.since.clone(),
        ))
    }

    /// Sets the state of replica `id` (a transfer moving on). Going online restarts its ACK
    /// clock (Redis's "prevent false timeout"); an rdb-only client is done instead.
    pub fn set_state(&mut self, id: u64, state: ReplicaState) {
        if let Some(replica) = self.replica_mut(id) {
            replica.state = if state == ReplicaState::Online && replica.rdb_only {
                ReplicaState::RdbTransmitted
            } else {
                state
            };
            if replica.state == ReplicaState::Online {
                replica.link.touch();
            }
        }
    }

    /// Removes replica `id` (its connection closed).
    pub fn remove(&mut self, id: u64) {
        let before = self.replicas.len();
        self.replicas.retain(|r| r.id != id);
        self.groups.waiting.retain(|w| w.id != id);
        if before != self.replicas.len() && self.replicas.is_empty() {
            self.no_replicas_since = Instant::now();
        }
    }

    /// Drops every replica (they reconnect and ask again, e.g. after the ids changed).
    pub fn disconnect_all(&mut self) {
        for replica in &self.replicas {
            replica.link.kill();
        }
        self.replicas.clear();
        // Their snapshots belong to the old history.
        self.groups.waiting.clear();
        self.groups.staged = None;
        self.no_replicas_since = Instant::now();
    }

    /// Online replicas that acknowledged `offset` or more (Redis's
    /// `replicationCountAcksByOffset`).
    pub fn count_acks(&self, offset: u64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && r.link.ack_offset() >= offset)
            .count()
    }

    /// Online replicas whose last ACK is at most `max_lag` seconds old (Redis's
    /// `refreshGoodSlavesCount`, computed when asked).
    pub fn good_replicas(&self, max_lag: u64) -> usize {
        let now = now_ms() / 1000;
        self.replicas
            .iter()
            .filter(|r| {
                r.state == ReplicaState::Online
                    && now.saturating_sub(r.link.last_ack_ms.load(Ordering::SeqCst) / 1000)
                        <= max_lag
            })
            .count()
    }

    /// A receiver that changes whenever a replica acknowledges (and when the node stops
    /// being a primary, see [`Self::wake_ack_waiters`]).
    pub fn ack_changes(&self) -> watch::Receiver<u64> {
        self.acks.subscribe()
    }

    /// Wakes everyone waiting on [`Self::ack_changes`] without an ACK: the node is turning
    /// into a replica, and blocked `WAIT`s must learn it.
    pub fn wake_ack_waiters(&self) {
        self.acks.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A `WAIT` blocked: ask the replicas for an ACK once the current batch is over.
    pub fn request_getack(&mut self) {
        self.getack_pending = true;
    }

    /// Takes the pending GETACK request, if there is anyone to send it to (Redis feeds it
    /// only when a backlog or replicas exist).
    pub fn take_getack(&mut self) -> bool {
        std::mem::take(&mut self.getack_pending)
            && (self.backlog.is_some() || !self.replicas.is_empty())
    }

    /// The once-a-second part of Redis's `replicationCron` for a primary: drops online
    /// replicas silent for `repl-timeout` (legacy `SYNC` ones excepted), frees the backlog
    /// after `repl-backlog-ttl` without replicas, and says when to PING.
    pub fn cron(&mut self, config: &Config, now: Instant) -> CronActions {
        let mut actions = CronActions::default();
        let now_unix_ms = now_ms();
        let timeout_ms = config.repl_timeout.saturating_mul(1000);
        for replica in &mut self.replicas {
            let silent =
                now_unix_ms.saturating_sub(replica.link.last_ack_ms.load(Ordering::SeqCst));
            if replica.state == ReplicaState::Online && !replica.pre_psync && silent > timeout_ms {
                tracing::warn!(
                    "Disconnecting timedout replica (streaming sync): {}",
                    replica.name()
                );
                replica.tx = None;
                replica.link.kill();
            }
        }
        self.remove_killed();
        if self.replicas.is_empty() {
            let idle = now.saturating_duration_since(self.no_replicas_since);
            if self.backlog.is_some()
                && config.repl_backlog_ttl != 0
                && idle > Duration::from_secs(config.repl_backlog_ttl)
            {
                self.backlog = None;
                actions.new_replid = true;
                tracing::info!(
                    "Replication backlog freed after {} seconds without connected replicas.",
                    config.repl_backlog_ttl
                );
            }
        } else if now.saturating_duration_since(self.last_ping)
            >= Duration::from_secs(config.repl_ping_replica_period)
        {
            self.last_ping = now;
            actions.ping = true;
        }
        actions
    }
}

/// What a full-sync client asks of its RDB. Clients share one encoding only when they ask
/// the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RdbRequest {
    /// `REPLCONF rdb-filter-only`: the RDB leaves the keys out.
    pub filtered: bool,
    /// `REPLCONF keeper-rdb-compression 0` (keeper's own option, which `keeper backup create
    /// --from` sends): no LZF whatever `rdbcompression` says, because the client compresses
    /// the whole RDB itself (zstd) and LZF would only cost the node time.
    pub uncompressed: bool,
}

/// A replica waiting for the next diskless full sync.
struct Waiter {
    id: u64,
    /// What its RDB must be; it shares a transfer only with its kind.
    rdb: RdbRequest,
    /// When it asked.
    since: Instant,
    start: oneshot::Sender<SyncStart>,
}

/// What a replica waiting for its full sync gets when the sync starts: the `+FULLRESYNC`
/// position, its share of the RDB, and the stream from `offset + 1` on.
pub struct SyncStart {
    pub replid: String,
    pub offset: u64,
    pub transfer: Transfer,
    /// `None` for rdb-only clients.
    pub stream: Option<mpsc::UnboundedReceiver<Bytes>>,
}

/// The disk-based sync whose RDB is being written, while replicas may attach to it.
struct StagedGroup {
    replid: String,
    offset: u64,
    rdb: Weak<StagedRdb>,
    /// The stream since the snapshot (the same shared chunks the replicas get).
    since: Vec<Bytes>,
    since_len: u64,
}

/// Full syncs shared by several replicas (see [`Primary::diskless_due`],
/// [`Primary::attach_staged`]).
#[derive(Default)]
struct SyncGroups {
    /// In arrival order.
    waiting: Vec<Waiter>,
    /// Diskless transfers running (0 or 1 when started through [`Primary::diskless_due`]).
    running: Arc<AtomicUsize>,
    /// Notified when a diskless transfer ends.
    wake: Arc<Notify>,
    staged: Option<StagedGroup>,
}

impl SyncGroups {
    /// True while the staged group can take more replicas; forgets it otherwise (its RDB is
    /// written, every replica left, or the stream since its snapshot went over the replica
    /// output buffer's hard limit, which would drop an attaching replica at once anyway).
    fn staged_still_attachable(&mut self, limit: &OutputBufferLimit) -> bool {
        let Some(group) = &self.staged else {
            return false;
        };
        let open = group.rdb.upgrade().is_some_and(|rdb| rdb.is_writing())
            && (limit.hard == 0 || group.since_len < limit.hard);
        if !open {
            self.staged = None;
        }
        open
    }
}

/// The shared [`Primary`].
#[derive(Clone)]
pub struct PrimaryHandle(Arc<Mutex<Primary>>);

impl PrimaryHandle {
    pub fn new(config: &Config) -> PrimaryHandle {
        PrimaryHandle(Arc::new(Mutex::new(Primary::new(config))))
    }

    /// Takes the primary's lock (after the engine lock, if both are needed). A panic while
    /// it was held leaves it poisoned; the registry is still usable.
    pub fn lock(&self) -> MutexGuard<'_, Primary> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The sink to register with the engine ([`Engine::add_sink`]).
    pub fn sink(&self) -> PrimarySink {
        PrimarySink(self.clone())
    }
}

/// Feeds every propagated byte to [`Primary::feed`].
pub struct PrimarySink(PrimaryHandle);

impl PropagationSink for PrimarySink {
    fn append(&mut self, bytes: &[u8]) {
        self.0.lock().feed(bytes);
    }

    fn keeps_history(&self) -> bool {
        self.0.lock().backlog().is_some()
    }
}

/// Why [`stream_to_replica`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The replica closed the connection (or reading failed).
    Closed(String),
    /// Writing to the replica failed.
    WriteFailed(String),
    /// The registry dropped it (output buffer limit, timeout, the ids changed).
    Dropped,
}

/// Streams the replication feed of `session` to its connection until either side ends it;
/// reads the replica's `REPLCONF ACK`s meanwhile. `input` holds bytes the connection read
/// past the PSYNC. With `wait_first_ack` (after the diskless form) nothing is written before
/// the replica's first ACK. `written` counts bytes sent (`total_net_repl_output_bytes`).
pub async fn stream_to_replica(
    stream: &mut TcpStream,
    input: BytesMut,
    session: ReplicaSession,
    wait_first_ack: bool,
    written: &AtomicU64,
) -> StreamEnd {
    let ReplicaSession {
        link, stream: rx, ..
    } = session;
    let Some(mut rx) = rx else {
        return StreamEnd::Dropped;
    };
    let first_ack = Notify::new();
    let (mut reader, mut writer) = stream.split();
    let read_side = async {
        let mut input = input;
        let mut parser = RequestParser::new();
        loop {
            while let Some(argv) = match parser.next_command(&mut input, Limits::default()) {
                Ok(argv) => argv,
                Err(e) => return StreamEnd::Closed(format!("protocol error: {e}")),
            } {
                if let [cmd, sub, offset, ..] = &argv[..]
                    && cmd.eq_ignore_ascii_case(b"replconf")
                    && sub.eq_ignore_ascii_case(b"ack")
                    && let Some(offset) =
                        crate::command::parse_i64(offset).and_then(|o| u64::try_from(o).ok())
                {
                    link.ack(offset);
                    first_ack.notify_one();
                }
                // A replica sends nothing else that needs an answer; Redis never replies to
                // a replica either.
            }
            input.reserve(READ_CHUNK);
            match reader.read_buf(&mut input).await {
                Ok(0) => return StreamEnd::Closed("connection closed".into()),
                Ok(_) => link.touch(),
                Err(e) => return StreamEnd::Closed(e.to_string()),
            }
        }
    };
    let write_side = async {
        if wait_first_ack {
            first_ack.notified().await;
        }
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut scratch: Vec<u8> = Vec::with_capacity(COALESCE);
        loop {
            let Some(first) = rx.recv().await else {
                return StreamEnd::Dropped;
            };
            let mut round = first.len();
            pieces.push(first);
            while round < WRITE_ROUND {
                match rx.try_recv() {
                    Ok(piece) => {
                        round += piece.len();
                        pieces.push(piece);
                    }
                    Err(_) => break,
                }
            }
            for piece in pieces.drain(..) {
                if piece.len() >= COALESCE {
                    if !scratch.is_empty() {
                        if let Err(e) = writer.write_all(&scratch).await {
                            return StreamEnd::WriteFailed(e.to_string());
                        }
                        scratch.clear();
                    }
                    if let Err(e) = writer.write_all(&piece).await {
                        return StreamEnd::WriteFailed(e.to_string());
                    }
                } else {
                    scratch.extend_from_slice(&piece);
                    if scratch.len() >= COALESCE {
                        if let Err(e) = writer.write_all(&scratch).await {
                            return StreamEnd::WriteFailed(e.to_string());
                        }
                        scratch.clear();
                    }
                }
            }
            if !scratch.is_empty() {
                if let Err(e) = writer.write_all(&scratch).await {
                    return StreamEnd::WriteFailed(e.to_string());
                }
                scratch.clear();
            }
            link.written(round as u64);
            written.fetch_add(round as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        end = read_side => end,
        end = write_side => end,
        () = link.killed() => StreamEnd::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn engine() -> Engine {
        Engine::new(Config::default(), Arc::new(SimStorage::new(1)))
    }

    fn request(id: u64) -> ReplicaRequest {
        ReplicaRequest {
            id,
            peer: "127.0.0.1:5000".parse().unwrap(),
            ip_address: None,
            listening_port: 6400 + id as i64,
            rdb_only: false,
            pre_psync: false,
        }
    }

    /// An engine feeding a primary, with a backlog from offset 0.
    fn primary_with_backlog() -> (Engine, PrimaryHandle) {
        let mut engine = engine();
        let primary = PrimaryHandle::new(engine.config());
        engine.add_sink(Box::new(primary.sink()));
        primary.lock().create_backlog(engine.repl_offset());
        (engine, primary)
    }

    fn full(counts_as_error: bool) -> impl Fn(&PsyncDecision) -> bool {
        move |d| matches!(d, PsyncDecision::Full { counts_as_error: c, .. } if *c == counts_as_error)
    }

    #[test]
    fn psync_decides_as_redis() {
        let (mut engine, primary) = primary_with_backlog();
        engine.propagate(0, &[b"SET".as_slice(), b"k", b"v"]);
        let end = engine.repl_offset() as i64;
        let id = engine.replid().to_string();
        let p = primary.lock();
        assert!(full(false)(&p.decide(&engine, "?", -1)));
        assert_eq!(p.decide(&engine, &id, 1), PsyncDecision::Continue);
        assert_eq!(
            p.decide(&engine, &id.to_uppercase(), 1),
            PsyncDecision::Continue
        );
        assert_eq!(
            p.decide(&engine, &id, end + 1),
            PsyncDecision::Continue,
            "nothing to send"
        );
        assert!(full(true)(&p.decide(&engine, &id, end + 2)));
        assert!(full(true)(&p.decide(&engine, &id, 0)));
        assert!(full(true)(&p.decide(&engine, &"f".repeat(40), 1)));
        drop(p);

        // After a promotion the old id is good up to the shift's offset.
        engine.shift_replid();
        let p = primary.lock();
        assert_eq!(p.decide(&engine, &id, end + 1), PsyncDecision::Continue);
        assert!(full(true)(&p.decide(&engine, &id, end + 2)));
        drop(p);

        // Without a backlog: full, and counted as an error.
        primary.lock().free_backlog();
        let p = primary.lock();
        assert!(full(true)(&p.decide(&engine, engine.replid(), end + 1)));
    }

    #[test]
    fn the_sink_feeds_backlog_and_replicas_with_the_same_bytes() {
        let (mut engine, primary) = primary_with_backlog();
        let mut session = primary
            .lock()
            .register(&request(1), ReplicaState::Online, None);
        let start = engine.repl_offset();
        engine.propagate(3, &[b"SET".as_slice(), b"k", b"v"]);
        engine.propagate_to_replicas(&PING);
        let mut got = Vec::new();
        let rx = session.stream.as_mut().unwrap();
        while let Ok(piece) = rx.try_recv() {
            got.extend_from_slice(&piece);
        }
        let expected = b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nping\r\n";
        assert_eq!(got, expected);
        assert_eq!(engine.repl_offset() - start, expected.len() as u64);
        let p = primary.lock();
        assert_eq!(p.backlog().unwrap().copy_from(start + 1).unwrap(), expected);
        assert_eq!(session.link.queued(), expected.len() as u64);
    }

    #[test]
    fn a_partial_resync_queues_the_backlog_first() {
        let (mut engine, primary) = primary_with_backlog();
        engine.propagate(0, &[b"SET".as_slice(), b"a", b"1"]);
        let mid = 10; // inside the SELECT: reads may start mid-command
        let bytes = primary.lock().backlog().unwrap().copy_from(mid).unwrap();
        let mut session =
            primary
                .lock()
                .register(&request(1), ReplicaState::Online, Some(bytes.clone()));
        engine.propagate(0, &[b"SET".as_slice(), b"b", b"2"]);
        let rx = session.stream.as_mut().unwrap();
        assert_eq!(rx.try_recv().unwrap(), bytes);
        assert_eq!(
            &rx.try_recv().unwrap()[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
    }

    #[test]
    fn a_replica_over_the_hard_limit_is_dropped() {
        let (mut engine, primary) = primary_with_backlog();
        engine.update_config(|c| {
            c.client_output_buffer_limit.replica = OutputBufferLimit {
                hard: 1000,
                soft: 0,
                soft_seconds: 0,
            }
        });
        primary.lock().apply_config(engine.config());
        let slow = primary
            .lock()
            .register(&request(1), ReplicaState::Online, None);
        let rdb_only = primary.lock().register(
            &ReplicaRequest {
                rdb_only: true,
                ..request(2)
            },
            ReplicaState::WaitBgsave,
            None,
        );
        assert!(rdb_only.stream.is_none());
        let big = vec![b'x'; 600];
        engine.propagate(0, &[b"SET".as_slice(), b"k", &big]);
        assert!(!slow.link.is_killed());
        engine.propagate(0, &[b"SET".as_slice(), b"k", &big]);
        assert!(slow.link.is_killed());
        let p = primary.lock();
        assert_eq!(p.replicas().len(), 1, "the rdb-only client stays");
        assert_eq!(p.replicas()[0].id, 2);
    }

    #[test]
    fn the_soft_limit_needs_its_seconds() {
        let mut replica = Replica {
            id: 1,
            ip: "127.0.0.1".into(),
            listening_port: 0,
            state: ReplicaState::Online,
            rdb_only: false,
            pre_psync: false,
            link: Arc::new(ReplicaLink::new(Arc::new(watch::Sender::new(0)))),
            tx: None,
            soft_limit_since: None,
        };
        let limit = OutputBufferLimit {
            hard: 0,
            soft: 100,
            soft_seconds: 2,
        };
        let t0 = Instant::now();
        assert!(!replica.over_limit(150, &limit, t0));
        assert!(!replica.over_limit(150, &limit, t0 + Duration::from_secs(2)));
        assert!(replica.over_limit(150, &limit, t0 + Duration::from_secs(3)));
        // Going back under resets the clock.
        assert!(!replica.over_limit(50, &limit, t0 + Duration::from_secs(3)));
        assert!(!replica.over_limit(150, &limit, t0 + Duration::from_secs(4)));
        assert_eq!(replica.name(), "127.0.0.1:<unknown-replica-port>");
    }

    #[test]
    fn acks_count_online_replicas_only() {
        let (_engine, primary) = primary_with_backlog();
        let mut p = primary.lock();
        let a = p.register(&request(1), ReplicaState::Online, None);
        let b = p.register(&request(2), ReplicaState::WaitBgsave, None);
        let mut changes = p.ack_changes();
        a.link.ack(100);
        b.link.ack(100);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        a.link.ack(50);
        assert_eq!(a.link.ack_offset(), 100, "ACKs never go back");
        assert_eq!(p.count_acks(100), 1);
        assert_eq!(p.count_acks(101), 0);
        p.set_state(2, ReplicaState::Online);
        assert_eq!(p.count_acks(100), 2);
        assert_eq!(p.replicas()[0].name(), "127.0.0.1:6401");
        p.remove(1);
        assert_eq!(p.count_acks(0), 1);
    }

    fn ids(waiters: &[(u64, oneshot::Sender<SyncStart>)]) -> Vec<u64> {
        waiters.iter().map(|(id, _)| *id).collect()
    }

    /// Redis's `replicationStartPendingFullSync`: the delay counts from the oldest waiter,
    /// `repl-diskless-sync-max-replicas` replicas that can share start it early, a running
    /// transfer makes newcomers wait, filtered clients share only with their kind.
    #[test]
    fn diskless_syncs_wait_for_the_delay_or_enough_replicas() {
        let (engine, primary) = primary_with_backlog();
        let mut config = engine.config().clone();
        assert_eq!(config.repl_diskless_sync_delay, 5, "Redis's default");
        assert_eq!(config.repl_diskless_sync_max_replicas, 0);
        let mut p = primary.lock();
        let t0 = Instant::now();
        let secs = |n| t0 + Duration::from_secs(n);
        assert_eq!(p.diskless_due(&config, t0), Err(None), "nobody waits");
        p.register_for_full_sync(&request(1));
        let _rx1 = p.wait_for_diskless(1, RdbRequest::default(), t0);
        assert_eq!(p.diskless_due(&config, secs(1)), Err(Some(secs(5))));
        p.register_for_full_sync(&request(2));
        let _rx2 = p.wait_for_diskless(2, RdbRequest::default(), secs(2));
        p.register_for_full_sync(&request(3));
        let rx3 = p.wait_for_diskless(3, FILTERED, secs(3));
        assert_eq!(p.diskless_due(&config, secs(4)), Err(Some(secs(5))));
        assert_eq!(p.diskless_due(&config, secs(5)), Ok(()));
        config.repl_diskless_sync_max_replicas = 2;
        assert_eq!(p.diskless_due(&config, secs(3)), Ok(()), "two can share");
        config.repl_diskless_sync_max_replicas = 3;
        assert_eq!(
            p.diskless_due(&config, secs(3)),
            Err(Some(secs(5))),
            "the filtered one does not share their RDB"
        );
        config.repl_diskless_sync_delay = 0;
        assert_eq!(p.diskless_due(&config, t0), Ok(()));
        config.repl_diskless_sync_delay = 5;
        config.repl_diskless_sync = false;
        assert_eq!(
            p.diskless_due(&config, t0),
            Ok(()),
            "no delay for disk-based"
        );
        config.repl_diskless_sync = true;

        let (rdb, taken) = p.take_diskless_waiters();
        assert_eq!(rdb, RdbRequest::default());
        assert_eq!(ids(&taken), [1, 2]);
        let end = p.begin_diskless();
        assert!(p.diskless_running());
        assert_eq!(
            p.diskless_due(&config, secs(100)),
            Err(None),
            "one transfer at a time"
        );
        end();
        assert!(!p.diskless_running());
        assert_eq!(p.diskless_due(&config, secs(7)), Err(Some(secs(8))));
        assert_eq!(p.diskless_due(&config, secs(8)), Ok(()));
        // A waiter that left is not served.
        drop(rx3);
        let (rdb, taken) = p.take_diskless_waiters();
        assert_eq!(rdb, FILTERED);
        assert!(taken.is_empty());
        // Nor one removed from the registry (its connection closed).
        p.register_for_full_sync(&request(4));
        let _rx4 = p.wait_for_diskless(4, RdbRequest::default(), t0);
        p.remove(4);
        assert_eq!(p.diskless_due(&config, secs(100)), Err(None));
    }

    const FILTERED: RdbRequest = RdbRequest {
        filtered: true,
        uncompressed: false,
    };

    /// A backup client that asks for an RDB without LZF does not share a replica's
    /// encoding: it gets its own transfer, after.
    #[test]
    fn an_uncompressed_rdb_request_shares_only_with_its_kind() {
        let (_engine, primary) = primary_with_backlog();
        let mut p = primary.lock();
        let t0 = Instant::now();
        let uncompressed = RdbRequest {
            filtered: false,
            uncompressed: true,
        };
        let mut receivers = Vec::new();
        for (id, rdb) in [
            (1, RdbRequest::default()),
            (2, uncompressed),
            (3, RdbRequest::default()),
            (4, uncompressed),
        ] {
            p.register_for_full_sync(&request(id));
            receivers.push(p.wait_for_diskless(id, rdb, t0));
        }
        let (rdb, taken) = p.take_diskless_waiters();
        assert_eq!((rdb, ids(&taken)), (RdbRequest::default(), vec![1, 3]));
        let (rdb, taken) = p.take_diskless_waiters();
        assert_eq!((rdb, ids(&taken)), (uncompressed, vec![2, 4]));
        assert!(p.groups.waiting.is_empty());
    }

    /// A snapshot whose encoding waits for a signal, to hold a staged RDB in writing.
    struct Gated(Mutex<std::sync::mpsc::Receiver<()>>);

    impl crate::dataset::DatasetSnapshot for Gated {
        fn databases(&self) -> usize {
            1
        }
        fn db_size(&self, _: usize) -> (u64, u64) {
            (0, 0)
        }
        fn for_each_entry(
            &self,
            _: usize,
            _: &mut dyn FnMut(crate::model::Entry) -> crate::error::Result<()>,
        ) -> crate::error::Result<()> {
            let _ = self.0.lock().unwrap().recv();
            Ok(())
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Bytes>) -> Vec<u8> {
        let mut got = Vec::new();
        while let Ok(piece) = rx.try_recv() {
            got.extend_from_slice(&piece);
        }
        got
    }

    /// A replica asking while a disk-based sync's RDB is written gets that RDB, the snapshot's
    /// position, and the stream since the snapshot, byte for byte what the first replica
    /// gets; once the RDB is written nobody attaches any more.
    #[tokio::test]
    async fn a_replica_attaches_to_the_rdb_being_written() {
        let (mut engine, primary) = primary_with_backlog();
        let storage = Arc::new(SimStorage::new(1));
        let (release, gate) = std::sync::mpsc::channel();
        let rdb = super::super::sync::start_staged(
            Box::new(Gated(Mutex::new(gate))),
            crate::snapshot::SaveOptions::default(),
            storage as Arc<dyn crate::storage::Storage>,
            "temp-sync.rdb".into(),
        );
        let at = engine.repl_offset();
        let id = engine.replid().to_string();
        let mut first = {
            let mut p = primary.lock();
            p.register_for_full_sync(&request(1));
            let rx = p.start_feeding(1, &[]).unwrap();
            p.set_staged_sync(&id, at, &rdb);
            rx
        };
        engine.propagate(0, &[b"SET".as_slice(), b"a", b"1"]);
        let mut second = {
            let mut p = primary.lock();
            p.register_for_full_sync(&request(2));
            assert!(
                p.attach_staged(&"f".repeat(40)).is_none(),
                "another history"
            );
            let (replid, offset, transfer, since) = p.attach_staged(&id).unwrap();
            assert_eq!((replid.as_str(), offset), (id.as_str(), at));
            assert!(!transfer.is_diskless());
            p.start_feeding(2, &since).unwrap()
        };
        engine.propagate(0, &[b"SET".as_slice(), b"b", b"2"]);
        let got = drain(&mut first);
        assert!(got.ends_with(b"$1\r\nb\r\n$1\r\n2\r\n"));
        assert_eq!(got, drain(&mut second));
        assert_eq!(
            primary.lock().replica_mut(2).unwrap().link.queued(),
            got.len() as u64
        );

        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rdb.is_writing() {
            assert!(Instant::now() < deadline, "the RDB was not written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engine.propagate(0, &[b"SET".as_slice(), b"c", b"3"]);
        assert!(
            primary.lock().attach_staged(&id).is_none(),
            "written already"
        );
    }

    #[test]
    fn the_cron_pings_times_out_and_frees_the_backlog() {
        let (engine, primary) = primary_with_backlog();
        let mut config = engine.config().clone();
        config.repl_ping_replica_period = 1;
        config.repl_backlog_ttl = 1;
        let mut p = primary.lock();
        let session = p.register(&request(1), ReplicaState::Online, None);
        let now = Instant::now() + Duration::from_secs(1);
        assert_eq!(
            p.cron(&config, now),
            CronActions {
                ping: true,
                new_replid: false
            }
        );
        // Silent for longer than repl-timeout.
        session
            .link
            .last_ack_ms
            .store(now_ms() - 61_000, Ordering::SeqCst);
        p.cron(&config, now);
        assert!(session.link.is_killed());
        assert!(p.replicas().is_empty());
        assert!(p.backlog().is_some());
        let later = Instant::now() + Duration::from_secs(3);
        assert_eq!(
            p.cron(&config, later),
            CronActions {
                ping: false,
                new_replid: true
            }
        );
        assert!(p.backlog().is_none());
    }
}
