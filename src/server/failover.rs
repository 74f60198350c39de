//! `FAILOVER` on both ends, bound to the server (the state machine is
//! [`crate::replication::failover`]).
//!
//! - **The old primary.** `FAILOVER` starts the wait and spawns [`drive`], a task that polls
//!   the machine under the engine lock whenever a replica acknowledges (and every
//!   [`TICK`]), sends the `REPLCONF GETACK *` it asks for, and once the target caught up
//!   turns the node into the target's replica ([`replica_link::become_replica`]). The
//!   replica link sends its first `PSYNC` with the `FAILOVER` argument and reports the
//!   answer ([`link_failover_answered`]): `+CONTINUE`/`+FULLRESYNC` end the failover, an
//!   error aborts it (the node turns back into a primary, as Redis's `abortFailover`).
//! - **Paused writes.** From `FAILOVER` to its end, a client's write (or `PUBLISH`,
//!   `PFCOUNT`, an `EXEC` of writes: Redis's `CLIENT PAUSE WRITE`) is postponed: the
//!   connection sends the replies before it and waits *outside* the lock ([`resumed`]),
//!   then runs it again, which on a node turned replica answers `-READONLY`. Reads go on.
//!   The cron's active expiry and replication PING stop meanwhile, so the stream (and
//!   `master_repl_offset`) only moves by this module's GETACKs.
//! - **The target.** `PSYNC <replid> <offset> FAILOVER` from its primary, with the replid
//!   its own, promotes it (as `REPLICAOF NO ONE`) before the PSYNC is answered as usual:
//!   the old primary continues from the promoted node's previous id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::commands::Call;
use super::{Shared, State, replica_link};
use crate::replication::failover::{
    Failover, FailoverState, ReplicaView, Request, Step, Target, parse,
};
use crate::replication::primary::{self, Primary, ReplicaState};
use crate::resp::Reply;

/// How often a waiting failover looks again without an ACK (Redis runs its replication
/// cron every 100 ms during a failover).
const TICK: Duration = Duration::from_millis(100);

/// The node's failover and the pause it holds (`State::failover`).
pub(crate) struct FailoverControl {
    machine: Failover,
    /// True while writes are paused; postponed clients wait for false.
    paused: watch::Sender<bool>,
}

impl Default for FailoverControl {
    fn default() -> Self {
        FailoverControl {
            machine: Failover::default(),
            paused: watch::Sender::new(false),
        }
    }
}

impl FailoverControl {
    pub fn state(&self) -> FailoverState {
        self.machine.state()
    }

    /// True while clients' writes wait.
    pub fn pauses_writes(&self) -> bool {
        self.machine.pauses_writes()
    }

    /// Publishes the machine's pause to the postponed clients.
    fn sync_pause(&self) {
        self.paused.send_if_modified(|paused| {
            let now = self.machine.pauses_writes();
            std::mem::replace(paused, now) != now
        });
    }
}

/// Commands Redis 7.0 flags `may-replicate` (paused like writes) that keeper has.
pub(super) fn may_replicate(name: &str) -> bool {
    matches!(name, "publish" | "spublish" | "pfcount")
}

/// Resolves once writes are no longer paused.
pub(super) async fn resumed(shared: &Shared) {
    let mut paused = shared.lock().failover.paused.subscribe();
    // `wait_for` looks at the current value first: an end of the pause before this call
    // is not missed. An error means the sender is gone (the server is stopping).
    let _ = paused.wait_for(|paused| !*paused).await;
}

/// What the failover sees of the registered replicas.
fn views(registry: &Primary) -> Vec<ReplicaView<'_>> {
    registry
        .replicas()
        .iter()
        .map(|r| ReplicaView {
            host: &r.ip,
            port: r.listening_port,
            online: r.state == ReplicaState::Online,
            ack: r.link().ack_offset(),
        })
        .collect()
}

/// `FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]`.
pub(super) fn failover(call: &mut Call<'_>) {
    let args: Vec<&[u8]> = call.argv[1..].iter().map(|a| a.as_ref()).collect();
    let start = match parse(&args) {
        Ok(Request::Start(start)) => start,
        Ok(Request::Abort) => {
            if call.state.failover.state() == FailoverState::NoFailover {
                return call
                    .client
                    .reply(&Reply::error("ERR No failover in progress."));
            }
            abort(call.state, "Failover manually aborted");
            return call.client.reply(&Reply::Ok);
        }
        Err(e) => return call.client.reply(&Reply::error(e)),
    };
    let Some(shared) = call.shared.this.upgrade() else {
        return call
            .client
            .reply(&Reply::error("ERR the server is shutting down"));
    };
    let State {
        primary,
        failover,
        replica,
        ..
    } = &mut *call.state;
    let started = {
        let registry = primary.lock();
        failover
            .machine
            .start(start, replica.is_some(), &views(&registry), Instant::now())
    };
    let generation = match started {
        Ok(generation) => generation,
        Err(e) => return call.client.reply(&Reply::error(e)),
    };
    match failover.machine.target() {
        Some(Target { host, port }) => tracing::info!("FAILOVER requested to {host}:{port}."),
        None => tracing::info!("FAILOVER requested to any replica."),
    }
    failover.sync_pause();
    tokio::spawn(drive(shared, generation));
    call.client.reply(&Reply::Ok);
}

/// Follows the failover `generation` while it waits for its target: polls the machine at
/// every ACK and every [`TICK`] until it fails over, aborts, or is no longer the node's.
async fn drive(shared: Arc<Shared>, generation: u64) {
    loop {
        let (mut acks, wake_at) = {
            let mut state = shared.lock();
            let machine = &state.failover.machine;
            if machine.generation() != generation
                || machine.state() != FailoverState::WaitingForSync
            {
                return;
            }
            // Subscribed before polling: an ACK after the poll still wakes us.
            let acks = state.primary.lock().ack_changes();
            if !poll(&mut state, &shared) {
                return;
            }
            let tick = Instant::now() + TICK;
            let deadline = state.failover.machine.deadline();
            (acks, deadline.map_or(tick, |d| d.min(tick)))
        };
        tokio::select! {
            changed = acks.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(wake_at.into()).await;
                }
            }
            () = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

/// One look at a waiting failover, under the lock. False once it stopped waiting.
fn poll(state: &mut State, shared: &Arc<Shared>) -> bool {
    let now = Instant::now();
    let offset = state.engine.repl_offset();
    let step = {
        let State {
            primary, failover, ..
        } = &mut *state;
        let registry = primary.lock();
        failover.machine.poll(now, offset, &views(&registry))
    };
    match step {
        Step::Wait => true,
        Step::SendGetack => {
            state.engine.propagate_to_replicas(&primary::GETACK);
            let after = state.engine.repl_offset();
            state.failover.machine.getack_sent(offset, after, now);
            true
        }
        Step::Abort(reason) => {
            abort(state, reason);
            false
        }
        Step::FailOver { target, forced } => {
            if forced {
                tracing::info!(
                    "FAILOVER to {}:{} time out exceeded, failing over.",
                    target.host,
                    target.port
                );
            } else {
                tracing::info!(
                    "Failover target {}:{} is synced, failing over.",
                    target.host,
                    target.port
                );
            }
            let Ok(port) = u16::try_from(target.port) else {
                abort(state, "the target's port is not a TCP port");
                return false;
            };
            tracing::info!(
                "Before turning into a replica, using my own master parameters to synthesize \
                 a cached master: I may be able to synchronize with the new master with just a \
                 partial transfer."
            );
            // This node's own position is where the target is (or, forced, behind it).
            let stream_db = state.engine.propagated_db();
            replica_link::become_replica(
                state,
                Arc::clone(shared),
                target.host,
                port,
                true,
                stream_db,
            );
            false
        }
    }
}

/// Ends the failover without handing over (Redis's `abortFailover`): a node that already
/// turned replica becomes a primary again with a new history; the pause ends.
pub(crate) fn abort(state: &mut State, reason: &str) {
    let machine = &mut state.failover.machine;
    if machine.state() == FailoverState::NoFailover {
        return;
    }
    tracing::info!("{}", machine.abort_message(reason));
    if machine.clear() == FailoverState::InProgress {
        replica_link::promote(state);
        log_shifted_ids(state);
    }
    state.failover.sync_pause();
}

/// Redis's `shiftReplicationId` line.
fn log_shifted_ids(state: &State) {
    let engine = &state.engine;
    tracing::info!(
        "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID \
         is {}",
        engine.replid2(),
        engine.second_repl_offset(),
        engine.replid()
    );
}

/// The replica link is about to send its PSYNC: true when it carries `FAILOVER` (this node
/// is handing over to its new primary).
pub(crate) fn link_sends_failover(state: &State) -> bool {
    state.failover.state() == FailoverState::InProgress
}

/// The answer to the link's `PSYNC … FAILOVER`: `Ok` for `+CONTINUE`/`+FULLRESYNC` (the
/// failover is done), else why it failed (the failover is aborted).
pub(crate) fn link_failover_answered(state: &mut State, answer: Result<(), &str>) {
    if state.failover.state() != FailoverState::InProgress {
        return;
    }
    match answer {
        Ok(()) => {
            state.failover.machine.clear();
            state.failover.sync_pause();
        }
        Err(reason) => abort(state, reason),
    }
}

/// `SYNC`/`PSYNC` while this node fails over: refused, as Redis (true when answered).
pub(super) fn refuses_sync(call: &mut Call<'_>) -> bool {
    if call.state.failover.state() == FailoverState::NoFailover {
        return false;
    }
    call.client
        .reply(&Reply::error("NOMASTERLINK Can't SYNC while failing over"));
    true
}

/// `PSYNC <replid> <offset> FAILOVER` on a replica: its primary hands over. With `replid`
/// this node's own, the node is promoted and true returned (the PSYNC then proceeds); else
/// the error is answered and false returned.
pub(super) fn psync_failover(call: &mut Call<'_>) -> bool {
    let replid = String::from_utf8_lossy(&call.argv[1]).into_owned();
    tracing::warn!("Failover request received for replid {replid}.");
    if call.state.replica.is_none() {
        call.client.reply(&Reply::error(
            "ERR PSYNC FAILOVER can't be sent to a master.",
        ));
        return false;
    }
    if !replid.eq_ignore_ascii_case(call.state.engine.replid()) {
        call.client.reply(&Reply::error(
            "ERR PSYNC FAILOVER replid must match my replid.",
        ));
        return false;
    }
    replica_link::promote(call.state);
    log_shifted_ids(call.state);
    tracing::info!(
        "MASTER MODE enabled (failover request from client id={})",
        call.client.id
    );
    true
}
