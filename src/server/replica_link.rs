//! `keeper server` as a replica: `REPLICAOF` / `SLAVEOF`, `--replicaof` at start, the link
//! task ([`crate::replication::replica`]) bound to the server's state, and the replica's
//! parts of `INFO replication` and `ROLE`.
//!
//! - `REPLICAOF host port` (or `replicaof` in the configuration) makes the node a replica:
//!   its keyspace stops expiring keys by itself (the primary's `DEL`s do), clients' writes
//!   are refused with `-READONLY` while `replica-read-only` is yes, and a link task keeps the
//!   data, the offset and the AOF following the primary. A node that was a primary asks a
//!   partial resync from its own position, as Redis synthesizes a cached master from itself;
//!   so does a node restarted from files that recorded their replication position.
//! - `REPLICAOF NO ONE` stops the link and promotes the node: the replication ids shift
//!   (the old id stays valid up to this offset, so the other replicas of the old primary can
//!   continue from this node with a partial resync), and writes are accepted again.
//!
//! The link's commands run under the engine lock like a client's; a link that was replaced
//! or stopped finds out there (its id is no longer the node's) and applies nothing more.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::commands::Call;
use super::{Shared, State};
use crate::command::parse_i64;
use crate::replication::replica::{
    self, LinkOptions, LinkState, LinkStatus, ReplicaNode, SharedStatus,
};
use crate::replication::sync::{Auth, IDLE_TIMEOUT};
use crate::resp::Reply;
use crate::store::Store;

/// Redis's reply to a client's write on a read-only replica.
pub(crate) const READONLY_ERROR: &str = "READONLY You can't write against a read only replica.";

/// Ids of links, so a stopped link can tell it was stopped.
static NEXT_LINK_ID: AtomicU64 = AtomicU64::new(1);

/// This node's primary and the link to it (`State::replica`).
pub(crate) struct ReplicaRole {
    pub host: String,
    pub port: u16,
    link_id: u64,
    status: SharedStatus,
    task: JoinHandle<()>,
}

impl ReplicaRole {
    /// The link's status right now.
    fn status(&self) -> LinkStatus {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Drop for ReplicaRole {
    fn drop(&mut self) {
        // The task may be applying nothing at this point: it needs the lock our caller holds,
        // and once it gets it, it finds its id gone.
        self.task.abort();
    }
}

/// The node as the link task sees it.
struct ServerNode {
    shared: Arc<Shared>,
    link_id: u64,
}

impl ServerNode {
    /// The state, if this link is still the node's link.
    fn current(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        let state = self.shared.lock();
        (state.replica.as_ref().map(|r| r.link_id) == Some(self.link_id)).then_some(state)
    }
}

impl ReplicaNode for ServerNode {
    fn received(&self, bytes: u64) {
        self.shared
            .net_repl_input_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    fn position(&self) -> Option<(String, u64, usize)> {
        let state = self.current()?;
        let engine = &state.engine;
        Some((
            engine.replid().to_owned(),
            engine.repl_offset(),
            engine.propagated_db().unwrap_or(0),
        ))
    }

    fn auth(&self) -> Option<Auth> {
        let state = self.shared.lock();
        let config = state.engine.config();
        (!config.masterauth.is_empty()).then(|| Auth {
            user: (!config.masteruser.is_empty()).then(|| config.masteruser.clone()),
            password: config.masterauth.clone(),
        })
    }

    fn install_full_sync(
        &self,
        store: Store,
        replid: String,
        offset: u64,
        stream_db: usize,
    ) -> Option<Store> {
        let mut state = self.current()?;
        let old = state
            .engine
            .install_synced_store(store, replid, offset, stream_db);
        // Every watched key may have changed.
        state.touch_all();
        // A new history: this node's own replicas start over from it (Redis disconnects
        // them), and the backlog restarts at the synced offset so they can resume later.
        let mut primary = state.primary.lock();
        primary.disconnect_all();
        primary.create_backlog(offset);
        drop(primary);
        Some(old)
    }

    fn continue_partial(&self, new_replid: Option<String>) -> Option<u64> {
        let mut state = self.current()?;
        let offset = state.engine.repl_offset();
        let mut primary = state.primary.lock();
        if new_replid.is_some() {
            // The ids changed: this node's replicas ask again (and continue, by replid2).
            primary.disconnect_all();
        }
        if primary.backlog().is_none() {
            // Restarted from its RDB or AOF: the history from here on can serve sub-replicas.
            primary.create_backlog(offset);
        }
        drop(primary);
        if let Some(id) = new_replid {
            state.engine.change_replid_keep_offset(id);
            state.engine.mark_aof_position();
        }
        Some(offset)
    }

    fn sends_failover(&self) -> bool {
        self.current()
            .is_some_and(|state| super::failover::link_sends_failover(&state))
    }

    fn failover_answered(&self, answer: std::result::Result<(), &str>) {
        if let Some(mut state) = self.current() {
            super::failover::link_failover_answered(&mut state, answer);
        }
    }

    fn apply(
        &self,
        commands: &[(usize, Vec<Bytes>)],
        raw: &[u8],
        db_before: usize,
        db_after: usize,
    ) -> Option<u64> {
        let mut state = self.current()?;
        let now_ms = crate::engine::unix_now_ms();
        for (db, argv) in commands {
            super::commands::run_from_primary(&mut state, *db, argv, now_ms);
        }
        state.engine.feed_replicated(raw, db_before, db_after);
        Some(state.engine.repl_offset())
    }
}

/// Makes the node a replica of `host:port` (replacing any previous link). `known_position`:
/// the node's replication id and offset are worth a partial resync; `stream_db`: the
/// database the stream had selected at that position, when known.
pub(crate) fn become_replica(
    state: &mut State,
    shared: Arc<Shared>,
    host: String,
    port: u16,
    known_position: bool,
    stream_db: Option<usize>,
) {
    state.replica = None;
    state.engine.set_replica(true);
    state
        .engine
        .update_config(|c| c.replicaof = Some((host.clone(), port)));
    let config = state.engine.config();
    let options = LinkOptions {
        host: host.clone(),
        port,
        listening_port: match config.replica_announce_port {
            0 => shared.port,
            announced => announced,
        },
        announce_ip: Some(config.replica_announce_ip.clone()).filter(|ip| !ip.is_empty()),
        databases: state.engine.store().databases(),
        known_position,
        stream_db,
        timeout: IDLE_TIMEOUT,
    };
    let link_id = NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed);
    let status: SharedStatus = Arc::new(Mutex::new(LinkStatus::default()));
    let node = ServerNode { shared, link_id };
    let task = replica::spawn(options, node, Arc::clone(&status));
    state.replica = Some(ReplicaRole {
        host,
        port,
        link_id,
        status,
        task,
    });
    // Blocked WAITs end with Redis's UNBLOCKED error (`disconnectAllBlockedClients`).
    state.primary.lock().wake_ack_waiters();
}

/// `REPLICAOF NO ONE`: stops the link and makes the node a primary with a new history (the
/// old id valid up to here, see the module docs).
pub(crate) fn promote(state: &mut State) {
    if state.replica.take().is_none() {
        return;
    }
    state.engine.set_replica(false);
    state.engine.shift_replid();
    state.engine.mark_aof_position();
    // Replicas of this node reconnect and continue with the old id (replid2), as after
    // Redis's `shiftReplicationId`.
    let offset = state.engine.repl_offset();
    let mut primary = state.primary.lock();
    primary.disconnect_all();
    if primary.backlog().is_none() {
        primary.create_backlog(offset);
    }
    drop(primary);
    state.engine.update_config(|c| c.replicaof = None);
}

/// At start, with `replicaof` configured: the link starts. `restored` is the stream's
/// database when the data loaded recorded its replication position (a partial resync is
/// then worth asking), `None` otherwise.
pub(crate) fn start_configured(shared: &Arc<Shared>, restored: Option<usize>) {
    let mut state = shared.lock();
    let Some((host, port)) = state.engine.config().replicaof.clone() else {
        if restored.is_some() {
            resume_as_primary(&mut state);
        }
        return;
    };
    tracing::info!("Replica of {host}:{port} (replicaof in the configuration)");
    become_replica(
        &mut state,
        Arc::clone(shared),
        host,
        port,
        restored.is_some(),
        restored,
    );
}

/// A primary restarted from a file that recorded its replication position (Redis 7.0 does
/// the same after loading an RDB): the loaded history becomes the previous one (`replid2`,
/// valid up to the loaded offset) under a new id, and an empty backlog starts there. Its
/// replicas that are not ahead of what was loaded continue with a partial resync; one that
/// is ahead (it got writes this node lost, e.g. under `appendfsync everysec`) cannot match the
/// old id past that offset and gets a full sync instead of a silently different history.
fn resume_as_primary(state: &mut State) {
    state.engine.shift_replid();
    let offset = state.engine.repl_offset();
    state.primary.lock().create_backlog(offset);
    state.engine.mark_aof_position();
}

/// `REPLICAOF host port` / `REPLICAOF NO ONE` (and `SLAVEOF`), as Redis 7.0's
/// `replicaofCommand`.
pub(super) fn replicaof(call: &mut Call<'_>) {
    if call.state.failover.pauses_writes() {
        return call.client.reply(&Reply::error(
            "ERR REPLICAOF not allowed while failing over.",
        ));
    }
    let (host, port) = (&call.argv[1], &call.argv[2]);
    if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        if call.state.replica.is_some() {
            promote(call.state);
            tracing::info!(
                "MASTER MODE enabled (user request from client id={})",
                call.client.id
            );
        }
        return call.client.reply(&Reply::Ok);
    }
    let Some(port) = parse_i64(port)
        .filter(|p| (0..=65535).contains(p))
        .and_then(|p| u16::try_from(p).ok())
    else {
        return call.client.reply(&Reply::error("ERR Invalid master port"));
    };
    let host = String::from_utf8_lossy(host).into_owned();
    if let Some(role) = &call.state.replica
        && role.host.eq_ignore_ascii_case(&host)
        && role.port == port
    {
        tracing::info!(
            "REPLICAOF would result into synchronization with the master we are already \
             connected with. No operation performed."
        );
        return call.client.reply(&Reply::Simple(
            "OK Already connected to specified master".into(),
        ));
    }
    let Some(shared) = call.shared.this.upgrade() else {
        return call
            .client
            .reply(&Reply::error("ERR the server is shutting down"));
    };
    if call.state.replica.is_none() {
        tracing::info!(
            "Before turning into a replica, using my own master parameters to synthesize a \
             cached master: I may be able to synchronize with the new master with just a \
             partial transfer."
        );
    }
    // A primary, or a replica of another primary: this node's own position is where it is.
    let stream_db = call.state.engine.propagated_db();
    become_replica(call.state, shared, host.clone(), port, true, stream_db);
    tracing::info!(
        "REPLICAOF {host}:{port} enabled (user request from client id={})",
        call.client.id
    );
    call.client.reply(&Reply::Ok);
}

/// True when a client's write must be refused with [`READONLY_ERROR`].
pub(crate) fn refuses_writes(state: &State) -> bool {
    state.replica.is_some() && state.engine.config().replica_read_only
}

/// `role:master`, or `role:slave` and the replica's fields of `INFO replication` (Redis
/// 7.0's order), before the fields every role shows.
pub(crate) fn info_role(out: &mut String, state: &State) -> std::fmt::Result {
    let Some(role) = &state.replica else {
        return writeln!(out, "role:master\r");
    };
    let status = role.status();
    let now = Instant::now();
    let secs = |at: Instant| now.saturating_duration_since(at).as_secs() as i64;
    let connected = status.state == LinkState::Connected;
    let offset = state.engine.repl_offset();
    writeln!(out, "role:slave\r")?;
    writeln!(out, "master_host:{}\r", role.host)?;
    writeln!(out, "master_port:{}\r", role.port)?;
    writeln!(
        out,
        "master_link_status:{}\r",
        if connected { "up" } else { "down" }
    )?;
    let last_io = match (connected, status.last_io) {
        (true, Some(at)) => secs(at),
        _ => -1,
    };
    writeln!(out, "master_last_io_seconds_ago:{last_io}\r")?;
    writeln!(
        out,
        "master_sync_in_progress:{}\r",
        u8::from(status.state == LinkState::Sync)
    )?;
    writeln!(
        out,
        "slave_read_repl_offset:{}\r",
        offset + status.unapplied
    )?;
    writeln!(out, "slave_repl_offset:{offset}\r")?;
    if let (LinkState::Sync, Some(transfer)) = (status.state, &status.transfer) {
        // The diskless form's length is unknown: Redis shows -1 (and a negative "left").
        let total = transfer.total.map_or(-1, |t| t as i64);
        let read = transfer.read as i64;
        let perc = if total > 0 {
            read as f64 / total as f64 * 100.0
        } else {
            0.0
        };
        writeln!(out, "master_sync_total_bytes:{total}\r")?;
        writeln!(out, "master_sync_read_bytes:{read}\r")?;
        writeln!(out, "master_sync_left_bytes:{}\r", total - read)?;
        writeln!(out, "master_sync_perc:{perc:.2}\r")?;
        writeln!(
            out,
            "master_sync_last_io_seconds_ago:{}\r",
            secs(transfer.last_io)
        )?;
    }
    if !connected {
        let down = status.down_since.map_or(-1, secs);
        writeln!(out, "master_link_down_since_seconds:{down}\r")?;
    }
    let config = state.engine.config();
    writeln!(out, "slave_priority:{}\r", config.replica_priority)?;
    writeln!(
        out,
        "slave_read_only:{}\r",
        u8::from(config.replica_read_only)
    )?;
    writeln!(
        out,
        "replica_announced:{}\r",
        u8::from(config.replica_announced)
    )
}

/// `ROLE` on a replica: `slave`, the primary's host and port, the link's state, and the
/// offset (-1 until the link is up, as Redis shows it without a master client); `None` on
/// a primary.
pub(crate) fn role_reply(state: &State) -> Option<Reply> {
    let role = state.replica.as_ref()?;
    let status = role.status();
    let offset = if status.state == LinkState::Connected {
        state.engine.repl_offset() as i64
    } else {
        -1
    };
    Some(Reply::Array(vec![
        Reply::bulk("slave"),
        Reply::bulk(role.host.as_str()),
        Reply::Int(i64::from(role.port)),
        Reply::bulk(status.state.role_word()),
        Reply::Int(offset),
    ]))
}

/// `host:port` of this node's primary while the link to it is up (what `CLIENT KILL` can
/// match as the master client); `None` on a primary or while the link is down.
pub(crate) fn primary_link_addr(state: &State) -> Option<String> {
    let role = state.replica.as_ref()?;
    (role.status().state == LinkState::Connected).then(|| format!("{}:{}", role.host, role.port))
}

/// `CLIENT KILL TYPE master`: drops the link to the primary; a new one connects at once and
/// asks a partial resync from this node's position, as Redis does from its cached master.
pub(crate) fn drop_primary_link(state: &mut State, shared: Arc<Shared>) {
    let Some(role) = &state.replica else {
        return;
    };
    let (host, port) = (role.host.clone(), role.port);
    tracing::info!("Connection with master lost (CLIENT KILL): reconnecting to {host}:{port}");
    let stream_db = state.engine.propagated_db();
    become_replica(state, shared, host, port, true, stream_db);
}
