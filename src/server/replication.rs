//! The primary's replication commands and the connection of a replica: `REPLCONF`, `SYNC`,
//! `PSYNC`, `WAIT`, `ROLE` and `INFO replication` for a primary, and the transfer that follows
//! a sync ([`serve_sync`]). The registry, backlog and stream are
//! [`crate::replication::primary`]'s.
//!
//! `SYNC`/`PSYNC` decide under the engine lock (Redis's `syncCommand`): a `PSYNC` that can
//! continue registers the replica online and answers `+CONTINUE [<replid>]`; anything else is
//! a full sync: the replica is registered (not fed yet), and the first replica of a node
//! without a backlog creates it with a new replication id. The snapshot is shared with the
//! replicas asking at about the same time ([`crate::replication::primary`] has the rules:
//! `repl-diskless-sync-delay`, `repl-diskless-sync-max-replicas`, attaching to a disk-based
//! RDB being written); [`start_due_sync`] takes it at `master_repl_offset` when a diskless
//! group is due. [`serve_sync`] waits for the replica's start (sending the `\n` keep-alive
//! every second, as Redis does to replicas in `wait_bgsave`), answers `+FULLRESYNC <replid>
//! <offset>` (`SYNC` gets no line), sends the RDB outside the lock
//! ([`crate::replication::sync::send_transfer`]: the `$EOF:` form when the replica announced
//! `capa eof` and `repl-diskless-sync` is yes, else `$<len>`), puts the replica online and
//! streams to it until the link ends. rdb-only clients (`redis-cli --rdb`, `keeper backup
//! create --from`) get the RDB alone, then the connection closes; a client that sends
//! `REPLCONF keeper-rdb-compression 0` (keeper's backup client, which zstd-compresses the
//! whole RDB) gets it without LZF, in a transfer of its own. INFO stats count
//! `sync_full` per replica and `keeper_sync_snapshots` per snapshot taken.
//!
//! `WAIT` never blocks under the lock: it leaves a [`WaitRequest`] on the client, the
//! connection writes the replies so far and awaits the ACKs outside the lock
//! ([`wait_for_replicas`]); a `REPLCONF GETACK *` goes to the replicas once the batch is over.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::commands::Call;
use super::conn::Client;
use super::{Shared, State};
use crate::command::{self, parse_i64};
use crate::engine::Engine;
use crate::rdb::ReplicationInfo;
use crate::replication::primary::{
    self, PrimaryHandle, PsyncDecision, RdbRequest, ReplicaRequest, ReplicaSession, ReplicaState,
    StreamEnd, SyncStart,
};
use crate::replication::sync::{
    IDLE_TIMEOUT, KEEPALIVE_PERIOD, Transfer, send_transfer, start_diskless, start_staged,
};
use crate::resp::Reply;
use crate::snapshot::SaveOptions;

/// Redis 7.0's `NET_HOST_STR_LEN`: the longest `REPLCONF ip-address` (an IP or a hostname)
/// accepted, plus one.
const NET_HOST_STR_LEN: usize = 256;

/// A client's replication settings and roles (per connection, outside the lock).
#[derive(Default)]
pub(crate) struct ReplClient {
    /// `REPLCONF listening-port`.
    pub listening_port: i64,
    /// `REPLCONF ip-address`.
    pub ip_address: Option<String>,
    /// `REPLCONF capa psync2`: `+CONTINUE` carries the replication id.
    pub capa_psync2: bool,
    /// `REPLCONF rdb-filter-only …`: the RDB of a full sync leaves the keys out (keeper has
    /// no functions, so `functions` leaves it empty too). `redis-cli --replica` asks for it.
    pub rdb_filtered: bool,
    /// `REPLCONF keeper-rdb-compression 0`: the RDB of a full sync goes without LZF (see
    /// [`RdbRequest::uncompressed`]).
    pub rdb_uncompressed: bool,
    /// Registered as a replica by SYNC/PSYNC: the connection becomes its link.
    pub session: Option<ReplicaSession>,
    /// `master_repl_offset` after this client's last command (Redis's `woff`): what `WAIT`
    /// waits for.
    pub woff: u64,
    /// A blocked `WAIT`.
    pub wait: Option<WaitRequest>,
}

/// A `WAIT numreplicas timeout` to complete outside the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitRequest {
    pub offset: u64,
    pub numreplicas: i64,
    /// `None`: wait for ever (`timeout 0`).
    pub deadline: Option<Instant>,
}

/// `REPLCONF <option> <value> …`, as Redis 7.0's `replconfCommand`: options apply in order,
/// the first bad one answers an error; `ack` and `getack` answer nothing at all (a replica's
/// ACKs arrive on its link, see [`primary::stream_to_replica`]; a primary that is no
/// replica has nothing to acknowledge).
pub(super) fn replconf(call: &mut Call<'_>) {
    if call.argv.len().is_multiple_of(2) {
        return call.client.reply(&Reply::error(command::errors::SYNTAX));
    }
    for pair in call.argv[1..].chunks_exact(2) {
        let (option, value) = (&pair[0], &pair[1]);
        match option.to_ascii_lowercase().as_slice() {
            b"listening-port" => match parse_i64(value) {
                Some(port) => call.client.repl.listening_port = port,
                None => {
                    return call
                        .client
                        .reply(&Reply::error(command::errors::NOT_INTEGER));
                }
            },
            b"ip-address" => {
                if value.len() >= NET_HOST_STR_LEN {
                    return call.client.reply(&Reply::error(format!(
                        "ERR REPLCONF ip-address provided by replica instance is too long: {} \
                         bytes",
                        value.len()
                    )));
                }
                call.client.repl.ip_address = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"capa" => {
                // Capabilities this primary does not know are ignored, as Redis does.
                if value.eq_ignore_ascii_case(b"eof") {
                    call.client.repl_capa_eof = true;
                } else if value.eq_ignore_ascii_case(b"psync2") {
                    call.client.repl.capa_psync2 = true;
                }
            }
            b"ack" | b"getack" => return,
            b"rdb-filter-only" => {
                let Some(filters) = crate::resp::split_args(value) else {
                    return call
                        .client
                        .reply(&Reply::error("ERR Missing rdb-filter-only values"));
                };
                if let Some(bad) = filters
                    .iter()
                    .find(|f| !f.eq_ignore_ascii_case(b"functions"))
                {
                    return call.client.reply(&Reply::error(format!(
                        "ERR Unsupported rdb-filter-only option: {}",
                        String::from_utf8_lossy(bad)
                    )));
                }
                call.client.repl.rdb_filtered = true;
            }
            b"keeper-rdb-compression" => match replconf_flag(value) {
                Ok(compress) => call.client.repl.rdb_uncompressed = !compress,
                Err(e) => return call.client.reply(&Reply::error(e)),
            },
            b"rdb-only" => match replconf_flag(value) {
                Ok(only) => call.client.repl_rdb_only = only,
                Err(e) => return call.client.reply(&Reply::error(e)),
            },
            _ => {
                return call.client.reply(&Reply::error(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(option)
                )));
            }
        }
    }
    call.client.reply(&Reply::Ok);
}

/// A `REPLCONF` option's 0/1 value, or Redis's error for anything else.
fn replconf_flag(value: &[u8]) -> std::result::Result<bool, &'static str> {
    match parse_i64(value) {
        Some(flag @ (0 | 1)) => Ok(flag == 1),
        Some(_) => Err("ERR value is out of range, value must between 0 and 1"),
        None => Err(command::errors::NOT_INTEGER),
    }
}

/// `SYNC`: a full sync without the `+FULLRESYNC` line; the replica sends no ACKs.
pub(super) fn sync(call: &mut Call<'_>) {
    if super::failover::refuses_sync(call) {
        return;
    }
    start_sync(call, None);
}

/// `PSYNC <replid> <offset>`: a partial resync when the history allows, else a full one.
/// `PSYNC <replid> <offset> FAILOVER`: the primary of this replica hands over to it first
/// (see `server/failover.rs`).
pub(super) fn psync(call: &mut Call<'_>) {
    if call.argv.len() > 3
        && call.argv[3].eq_ignore_ascii_case(b"failover")
        && !super::failover::psync_failover(call)
    {
        return;
    }
    if super::failover::refuses_sync(call) {
        return;
    }
    let Some(offset) = parse_i64(&call.argv[2]) else {
        return call
            .client
            .reply(&Reply::error(command::errors::NOT_INTEGER));
    };
    let replid = String::from_utf8_lossy(&call.argv[1]).into_owned();
    start_sync(call, Some((replid, offset)));
}

fn start_sync(call: &mut Call<'_>, psync: Option<(String, i64)>) {
    // As Redis: the RDB must not be interleaved with replies still waiting to be written.
    if !call.client.out.is_empty() {
        return call.client.reply(&Reply::error(
            "ERR SYNC and PSYNC are invalid with pending output",
        ));
    }
    // A filtered RDB is only ever streamed (it must not replace the node's dump file in
    // Redis), which needs the end-mark form.
    let filtered = call.client.repl.rdb_filtered;
    if filtered && !call.client.repl_capa_eof {
        return call.client.reply(&Reply::error(
            "ERR Filtered replica requires EOF capability",
        ));
    }
    let peer = call
        .state
        .clients
        .get(&call.client.id)
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |info| info.addr);
    let request = ReplicaRequest {
        id: call.client.id,
        peer,
        ip_address: call.client.repl.ip_address.clone(),
        listening_port: call.client.repl.listening_port,
        rdb_only: call.client.repl_rdb_only,
        pre_psync: psync.is_none(),
    };
    let name = replica_name(&request);
    tracing::info!("Replica {name} asks for synchronization");
    let State {
        engine, primary, ..
    } = &mut *call.state;
    let mut registry = primary.lock();
    registry.check_backlog(engine.repl_offset());
    if let Some((replid, offset)) = &psync {
        match registry.decide(engine, replid, *offset) {
            PsyncDecision::Continue => {
                let from = *offset as u64;
                let bytes = registry
                    .backlog()
                    .and_then(|b| b.copy_from(from))
                    .unwrap_or_default();
                let len = bytes.len();
                let session = registry.register(&request, ReplicaState::Online, Some(bytes));
                registry.stats.sync_partial_ok += 1;
                drop(registry);
                tracing::info!(
                    "Partial resynchronization request from {name} accepted. Sending {len} \
                     bytes of backlog starting from offset {from}."
                );
                let line = if call.client.repl.capa_psync2 {
                    format!("CONTINUE {}", engine.replid())
                } else {
                    "CONTINUE".to_owned()
                };
                call.client.reply(&Reply::Simple(line.into()));
                call.client.repl.session = Some(session);
                return;
            }
            PsyncDecision::Full {
                counts_as_error,
                reason,
            } => {
                tracing::info!("{reason} (replica {name})");
                if counts_as_error {
                    registry.stats.sync_partial_err += 1;
                }
            }
        }
    }
    registry.stats.sync_full += 1;
    let session = registry.register_for_full_sync(&request);
    let first_without_backlog = registry.replicas().len() == 1 && registry.backlog().is_none();
    if first_without_backlog {
        // A backlog from scratch has no valid past: a new id and no previous one, as Redis.
        engine.new_replid();
        // The AOF records the new id, or a restart from it would not know this history.
        engine.mark_aof_position();
        registry.create_backlog(engine.repl_offset());
        tracing::info!(
            "Replication backlog created, my new replication IDs are '{}' and '{}'",
            engine.replid(),
            engine.replid2()
        );
    }
    let config = engine.config();
    let diskless = call.client.repl_capa_eof && (config.repl_diskless_sync || filtered);
    let start = if diskless {
        // Redis's syncCommand: a diskless sync waits for more replicas (the delay), or for
        // the running diskless transfer to end; it starts below if due already.
        let rdb = RdbRequest {
            filtered,
            uncompressed: call.client.repl.rdb_uncompressed,
        };
        let start = registry.wait_for_diskless(call.client.id, rdb, Instant::now());
        if registry.diskless_running() {
            tracing::info!("Current BGSAVE has socket target. Waiting for next BGSAVE for SYNC");
        } else if registry.diskless_due(config, Instant::now()).is_err() {
            tracing::info!("Delay next BGSAVE for diskless SYNC");
        }
        drop(registry);
        start_due_sync(engine, primary);
        start
    } else {
        let (tx, start) = tokio::sync::oneshot::channel();
        let attached = registry.attach_staged(engine.replid());
        let sync_start = if let Some((replid, offset, transfer, since)) = attached {
            tracing::info!("Waiting for end of BGSAVE for SYNC");
            let stream = registry.start_feeding(call.client.id, &since);
            SyncStart {
                replid,
                offset,
                transfer,
                stream,
            }
        } else {
            registry.stats.snapshots += 1;
            let stream = registry.start_feeding(call.client.id, &[]);
            drop(registry);
            let replid = engine.replid().to_owned();
            let offset = engine.repl_offset();
            let path = config.dir.join(format!(
                "temp-sync-{}-{}.rdb",
                std::process::id(),
                call.client.id
            ));
            tracing::info!("Starting BGSAVE for SYNC with target: disk");
            let rdb = start_staged(
                Box::new(engine.store().one_pass_snapshot()),
                sync_options(engine, !call.client.repl.rdb_uncompressed),
                std::sync::Arc::clone(engine.persistence().storage()),
                path,
            );
            // The stream after the snapshot starts with a SELECT (Redis's `slaveseldb = -1`).
            engine.force_select();
            let mut registry = primary.lock();
            registry.set_staged_sync(&replid, offset, &rdb);
            SyncStart {
                replid,
                offset,
                transfer: Transfer::staged(&rdb),
                stream,
            }
        };
        let _ = tx.send(sync_start);
        start
    };
    call.client.full_sync = Some(PendingSync {
        start,
        psync: psync.is_some(),
    });
    call.client.repl.session = Some(session);
}

/// A full sync accepted by SYNC/PSYNC, waiting for its snapshot: [`serve_sync`] sends
/// `+FULLRESYNC` (for PSYNC) and the RDB once it starts.
pub(crate) struct PendingSync {
    start: tokio::sync::oneshot::Receiver<SyncStart>,
    psync: bool,
}

/// The options of an RDB sent for a full sync at the engine's current position: the
/// replication id and offset the `+FULLRESYNC` line announces, as Redis records them.
/// How the RDB of a full sync is written; `lzf`: as `rdbcompression` says (false: never).
fn sync_options(engine: &Engine, lzf: bool) -> SaveOptions {
    let config = engine.config();
    SaveOptions {
        compression: lzf && config.rdbcompression,
        checksum: config.rdbchecksum,
        incremental_fsync: false,
        used_mem: crate::snapshot::rss::resident_bytes().unwrap_or(0),
        replication: Some(ReplicationInfo {
            id: engine.replid().to_owned(),
            offset: engine.repl_offset(),
            stream_db: engine
                .propagated_db()
                .and_then(|db| u32::try_from(db).ok())
                .unwrap_or(0),
        }),
        ..SaveOptions::default()
    }
}

/// Starts the waiting replicas' diskless sync if it is due ([`Primary::diskless_due`]): one
/// snapshot at the current offset, one RDB encoding fanned out to all of them
/// ([`start_diskless`]), each fed the stream from that offset on. Returns when to look again
/// (`None`: when a transfer ends, or never if nobody waits). Under the engine lock.
fn start_due_sync(engine: &mut Engine, primary: &PrimaryHandle) -> Option<Instant> {
    let mut registry = primary.lock();
    if let Err(next) = registry.diskless_due(engine.config(), Instant::now()) {
        return next;
    }
    let (rdb, waiters) = registry.take_diskless_waiters();
    if waiters.is_empty() {
        return None;
    }
    registry.stats.snapshots += 1;
    let replid = engine.replid().to_owned();
    let offset = engine.repl_offset();
    let snapshot = if rdb.filtered {
        crate::store::Store::new(engine.store().databases()).one_pass_snapshot()
    } else {
        engine.store().one_pass_snapshot()
    };
    tracing::info!("Starting BGSAVE for SYNC with target: replicas sockets");
    tracing::info!(
        "One snapshot at offset {offset} for {} replica{}",
        waiters.len(),
        if waiters.len() == 1 { "" } else { "s" }
    );
    let on_end = registry.begin_diskless();
    let transfers = start_diskless(
        Box::new(snapshot),
        sync_options(engine, !rdb.uncompressed),
        waiters.len(),
        on_end,
    );
    for ((id, start), transfer) in waiters.into_iter().zip(transfers) {
        let stream = registry.start_feeding(id, &[]);
        let sync_start = SyncStart {
            replid: replid.clone(),
            offset,
            transfer,
            stream,
        };
        if start.send(sync_start).is_err() {
            // Its connection closed meanwhile; its share of the RDB is dropped with it.
            registry.remove(id);
        }
    }
    drop(registry);
    // The stream after the snapshot starts with a SELECT (Redis's `slaveseldb = -1`).
    engine.force_select();
    None
}

/// Redis's `replicationGetSlaveName` for a replica about to register.
fn replica_name(request: &ReplicaRequest) -> String {
    let ip = request
        .ip_address
        .clone()
        .unwrap_or_else(|| request.peer.ip().to_string());
    if request.listening_port != 0 {
        format!("{ip}:{}", request.listening_port)
    } else {
        format!("{ip}:<unknown-replica-port>")
    }
}

/// After SYNC/PSYNC, with the replies before it written: the RDB of a full sync, then the
/// stream until the link ends (nothing more for an rdb-only client). `input` holds bytes the
/// connection read past the command. The caller closes the connection afterwards.
pub(super) async fn serve_sync(
    stream: &mut TcpStream,
    input: BytesMut,
    client: &mut Client,
    shared: &Shared,
    addr: SocketAddr,
) {
    let Some(mut session) = client.repl.session.take() else {
        return;
    };
    let mut diskless = false;
    if let Some(pending) = client.full_sync.take() {
        let name = shared
            .lock()
            .primary
            .lock()
            .replica_mut(session.id)
            .map_or_else(|| addr.to_string(), |r| r.name());
        let peer = addr.to_string();
        let Some(start) = wait_for_start(stream, pending.start, &session, shared, &peer).await
        else {
            tracing::info!("Replica {name} left before its full sync started");
            return;
        };
        let SyncStart {
            replid,
            offset,
            transfer,
            stream: feed,
        } = start;
        if pending.psync {
            let line = format!("+FULLRESYNC {replid} {offset}\r\n");
            if let Err(e) = write_line(stream, line.as_bytes()).await {
                tracing::warn!("Full sync to replica {name} failed: {e}");
                return;
            }
        }
        session.stream = feed;
        diskless = transfer.is_diskless();
        if !diskless {
            // The staged file is complete and goes out now: Redis's `send_bulk` (a diskless
            // transfer stays `wait_bgsave` until it ends, as in Redis).
            shared
                .lock()
                .primary
                .lock()
                .set_state(session.id, ReplicaState::SendBulk);
        }
        let started = Instant::now();
        let sent = tokio::select! {
            sent = send_transfer(stream, transfer, &peer) => sent,
            () = session.link.killed() => {
                tracing::warn!("Replica {name} dropped during its full sync");
                return;
            }
        };
        let bytes = match sent {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!("Full sync to replica {name} failed: {e}");
                return;
            }
        };
        shared
            .net_repl_output_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        let rdb_only = session.stream.is_none();
        if diskless {
            tracing::info!(
                "Streamed RDB transfer with replica {name} succeeded (socket). Waiting for \
                 REPLCONF ACK from slave to enable streaming"
            );
        }
        tracing::info!(
            "Synchronization with replica {name} succeeded ({bytes} RDB bytes in {:.3} seconds)",
            started.elapsed().as_secs_f64(),
        );
        if rdb_only {
            tracing::info!(
                "RDB transfer completed, rdb only replica ({name}) should be disconnected asap"
            );
        }
        let state = shared.lock();
        state
            .primary
            .lock()
            .set_state(session.id, ReplicaState::Online);
        drop(state);
        if rdb_only {
            return;
        }
    }
    let end = primary::stream_to_replica(
        stream,
        input,
        session,
        diskless,
        &shared.net_repl_output_bytes,
    )
    .await;
    match end {
        StreamEnd::Closed(reason) => {
            tracing::info!("Connection with replica {addr} lost: {reason}")
        }
        StreamEnd::WriteFailed(reason) => {
            tracing::warn!("Error writing to replica {addr}: {reason}")
        }
        StreamEnd::Dropped => tracing::info!("Replica {addr} disconnected by the primary"),
    }
}

/// Waits for the start of a full sync (the diskless delay, or a diskless transfer running),
/// sending the `\n` keep-alive every second as Redis does to replicas in `wait_bgsave`, and
/// starting the waiting replicas' sync once it is due (any waiting connection may be the one
/// that starts it). `None` when the replica is gone or dropped meanwhile.
async fn wait_for_start(
    stream: &mut TcpStream,
    mut start: tokio::sync::oneshot::Receiver<SyncStart>,
    session: &ReplicaSession,
    shared: &Shared,
    peer: &str,
) -> Option<SyncStart> {
    use tokio::sync::oneshot::error::TryRecvError;
    let wake = shared.lock().primary.lock().sync_wake();
    let first = tokio::time::Instant::now() + KEEPALIVE_PERIOD;
    let mut keepalive = tokio::time::interval_at(first, KEEPALIVE_PERIOD);
    loop {
        // Subscribe before looking, so a transfer ending in between still wakes us.
        let woken = wake.notified();
        let next = {
            let mut state = shared.lock();
            let State {
                engine, primary, ..
            } = &mut *state;
            start_due_sync(engine, primary)
        };
        match start.try_recv() {
            Ok(sync_start) => return Some(sync_start),
            Err(TryRecvError::Closed) => return None,
            Err(TryRecvError::Empty) => {}
        }
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            sync_start = &mut start => return sync_start.ok(),
            _ = keepalive.tick() => {
                if let Err(e) = write_line(stream, b"\n").await {
                    tracing::info!("Replica {peer} waiting for its full sync is gone: {e}");
                    return None;
                }
            }
            () = due => {}
            () = woken => {}
            () = session.link.killed() => return None,
        }
    }
}

/// Writes a line to a replica waiting for its RDB, within the idle timeout.
async fn write_line(stream: &mut TcpStream, line: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    match tokio::time::timeout(IDLE_TIMEOUT, stream.write_all(line)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the replica read nothing for the idle timeout",
        )),
    }
}

/// Removes a closing connection from the replica registry, if it was a replica.
pub(super) fn forget_replica(state: &mut State, id: u64) {
    state.primary.lock().remove(id);
}

/// Once the batch that blocked a `WAIT` is over: `REPLCONF GETACK *` to the replicas (Redis
/// sends it from `beforeSleep`, so a burst of WAITs shares one).
pub(super) fn after_batch(state: &mut State) {
    let send = state.primary.lock().take_getack();
    if send {
        state.engine.propagate_to_replicas(&primary::GETACK);
    }
}

/// The replication part of the server cron, at most once a second: timeouts, the backlog's
/// TTL, the PING in the stream.
pub(super) fn cron(state: &mut State) {
    let now = Instant::now();
    if now.saturating_duration_since(state.repl_cron_at) < Duration::from_secs(1) {
        return;
    }
    state.repl_cron_at = now;
    let engine = &mut state.engine;
    let actions = state.primary.lock().cron(engine.config(), now);
    // A replica's stream is its primary's, byte for byte (its PINGs included): it adds
    // nothing of its own, and its ids follow the primary's.
    if state.replica.is_some() {
        return;
    }
    if actions.new_replid {
        engine.new_replid();
        engine.mark_aof_position();
    }
    // A failover's pause keeps the stream still; its GETACKs keep the links busy instead.
    if actions.ping && !state.failover.pauses_writes() {
        engine.propagate_to_replicas(&primary::PING);
    }
}

/// Applies the replication options after `CONFIG SET`.
pub(super) fn apply_config(state: &mut State) {
    state.primary.lock().apply_config(state.engine.config());
}

/// The refusal of a write when `min-replicas-to-write` and `min-replicas-max-lag` are both
/// set and fewer good replicas are connected (Redis's `checkGoodReplicasStatus`).
pub(super) fn min_replicas_refusal(state: &State) -> Option<String> {
    if state.replica.is_some() {
        // A writable replica's own writes are local; the rule is its primary's.
        return None;
    }
    let config = state.engine.config();
    if config.min_replicas_to_write == 0 || config.min_replicas_max_lag == 0 {
        return None;
    }
    let good = state
        .primary
        .lock()
        .good_replicas(config.min_replicas_max_lag);
    (good < config.min_replicas_to_write as usize)
        .then(|| "NOREPLICAS Not enough good replicas to write.".to_owned())
}

/// `CONFIG RESETSTAT`: the sync counters too.
pub(super) fn reset_stats(state: &mut State) {
    state.primary.lock().stats = Default::default();
}

/// `WAIT numreplicas timeout`: the number of replicas that acknowledged this client's last
/// write, at once when enough did (or inside `MULTI`), else once enough do or the timeout
/// (ms, 0 = none) passes — outside the lock, see [`wait_for_replicas`].
pub(super) fn wait(call: &mut Call<'_>) {
    if call.state.replica.is_some() {
        return call.client.reply(&Reply::error(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis \
             4.0 if a replica is configured to be writable (which is not the default) writes to \
             replicas are just local and are not propagated.",
        ));
    }
    let Some(numreplicas) = parse_i64(&call.argv[1]) else {
        return call
            .client
            .reply(&Reply::error(command::errors::NOT_INTEGER));
    };
    let Some(timeout) = parse_i64(&call.argv[2]) else {
        return call.client.reply(&Reply::error(
            "ERR timeout is not an integer or out of range",
        ));
    };
    if timeout < 0 {
        return call.client.reply(&Reply::error("ERR timeout is negative"));
    }
    let offset = call.client.repl.woff;
    let mut registry = call.state.primary.lock();
    let acked = registry.count_acks(offset) as i64;
    if acked >= numreplicas || call.in_exec {
        drop(registry);
        return call.client.reply(&Reply::Int(acked));
    }
    registry.request_getack();
    call.client.repl.wait = Some(WaitRequest {
        offset,
        numreplicas,
        deadline: (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout as u64)),
    });
}

/// What a blocked `WAIT` gets when its node turns into a replica (REPLICAOF, FAILOVER):
/// Redis's `disconnectAllBlockedClients` text, after which the connection is closed.
pub(super) const WAIT_UNBLOCKED: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";

/// Completes a blocked `WAIT`: returns the number of replicas that acknowledged its offset,
/// once there are enough or at the deadline. Takes the engine lock only to count. Fails with
/// [`WAIT_UNBLOCKED`] once the node is a replica.
pub(super) async fn wait_for_replicas(
    shared: &Shared,
    request: WaitRequest,
) -> Result<i64, &'static str> {
    /// Counts the connection in INFO's `blocked_clients` while it waits, however the wait
    /// ends (the future may be dropped when the client goes away).
    struct Blocked<'a>(&'a Shared);
    impl Drop for Blocked<'_> {
        fn drop(&mut self) {
            self.0.blocked_clients.fetch_sub(1, Ordering::Relaxed);
        }
    }
    shared.blocked_clients.fetch_add(1, Ordering::Relaxed);
    let _blocked = Blocked(shared);
    loop {
        let (acked, mut changes) = {
            let state = shared.lock();
            if state.replica.is_some() {
                return Err(WAIT_UNBLOCKED);
            }
            let registry = state.primary.lock();
            // Subscribe before counting: an ACK after the count still wakes us.
            let changes = registry.ack_changes();
            (registry.count_acks(request.offset) as i64, changes)
        };
        if acked >= request.numreplicas {
            return Ok(acked);
        }
        let changed = changes.changed();
        match request.deadline {
            Some(deadline) => {
                if tokio::time::timeout_at(deadline.into(), changed)
                    .await
                    .is_err()
                {
                    let state = shared.lock();
                    if state.replica.is_some() {
                        return Err(WAIT_UNBLOCKED);
                    }
                    let acked = state.primary.lock().count_acks(request.offset);
                    return Ok(acked as i64);
                }
            }
            None => {
                if changed.await.is_err() {
                    return Ok(acked);
                }
            }
        }
    }
}

/// `ROLE` on a primary: `master`, the offset, and `[ip, port, acked offset]` of every online
/// replica.
pub(super) fn role(state: &State) -> Reply {
    let registry = state.primary.lock();
    let replicas = registry
        .replicas()
        .iter()
        .filter(|r| r.state == ReplicaState::Online)
        .map(|r| {
            Reply::Array(vec![
                Reply::bulk(&r.ip),
                Reply::bulk(r.listening_port.to_string()),
                Reply::bulk(r.link().ack_offset().to_string()),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk("master"),
        Reply::Int(state.engine.repl_offset() as i64),
        Reply::Array(replicas),
    ])
}

/// `INFO replication` of a primary, Redis 7.0's fields in its order.
pub(super) fn info_primary(out: &mut String, state: &State) -> std::fmt::Result {
    let engine = &state.engine;
    let registry = state.primary.lock();
    let now_ms = crate::engine::unix_now_ms().max(0) as u64;
    writeln!(out, "# Replication\r")?;
    // `role:master`, or a replica's `role:slave` and its link to its primary.
    super::replica_link::info_role(out, state)?;
    writeln!(out, "connected_slaves:{}\r", registry.replicas().len())?;
    let config = engine.config();
    if config.min_replicas_to_write != 0 && config.min_replicas_max_lag != 0 {
        writeln!(
            out,
            "min_slaves_good_slaves:{}\r",
            registry.good_replicas(config.min_replicas_max_lag)
        )?;
    }
    let listed = registry
        .replicas()
        .iter()
        .filter(|r| !r.state.as_str().is_empty());
    for (n, replica) in listed.enumerate() {
        writeln!(
            out,
            "slave{n}:ip={},port={},state={},offset={},lag={}\r",
            replica.ip,
            replica.listening_port,
            replica.state.as_str(),
            replica.link().ack_offset(),
            replica.lag_seconds(now_ms)
        )?;
    }
    writeln!(
        out,
        "master_failover_state:{}\r",
        state.failover.state().as_str()
    )?;
    writeln!(out, "master_replid:{}\r", engine.replid())?;
    writeln!(out, "master_replid2:{}\r", engine.replid2())?;
    writeln!(out, "master_repl_offset:{}\r", engine.repl_offset())?;
    writeln!(out, "second_repl_offset:{}\r", engine.second_repl_offset())?;
    let backlog = registry.backlog();
    writeln!(out, "repl_backlog_active:{}\r", u8::from(backlog.is_some()))?;
    writeln!(
        out,
        "repl_backlog_size:{}\r",
        crate::replication::backlog::clamp_size(engine.config().repl_backlog_size)
    )?;
    writeln!(
        out,
        "repl_backlog_first_byte_offset:{}\r",
        backlog.map_or(0, |b| b.first_byte_offset())
    )?;
    writeln!(
        out,
        "repl_backlog_histlen:{}\r",
        backlog.map_or(0, |b| b.histlen())
    )
}

/// The sync counters of `INFO stats` (after `rejected_connections`, as Redis).
pub(super) fn info_stats(out: &mut String, state: &State) -> std::fmt::Result {
    let stats = state.primary.lock().stats;
    writeln!(out, "sync_full:{}\r", stats.sync_full)?;
    writeln!(out, "sync_partial_ok:{}\r", stats.sync_partial_ok)?;
    writeln!(out, "sync_partial_err:{}\r", stats.sync_partial_err)?;
    // keeper's own: snapshots taken for full syncs (replicas that shared one count once).
    writeln!(out, "keeper_sync_snapshots:{}\r", stats.snapshots)
}
