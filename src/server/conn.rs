//! One client connection: read, parse, run a batch under the engine lock, write.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

use super::pubsub::Mailbox;
use super::{ClientInfo, MAX_BATCH, Shared, State};
use crate::aof::writer::AckWait;
use crate::resp::{Limits, ProtocolError, Reply, RequestParser};

/// Initial read buffer; it grows for large arguments and pipelines.
const READ_BUFFER: usize = 16 * 1024;
/// An output buffer grown past this is shrunk after it was written.
const OUTPUT_KEEP: usize = 1024 * 1024;

/// A transaction being queued.
pub(crate) struct Multi {
    pub queue: Vec<Vec<Bytes>>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    pub failed: bool,
}

/// Per-connection state; lives in the connection's task, not under the lock.
pub(crate) struct Client {
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub multi: Option<Multi>,
    /// Keys this client watches (`WATCH`).
    pub watching: Vec<(usize, Bytes)>,
    /// Subscribed channels and patterns, in subscription order.
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    pub mailbox: Mailbox,
    /// Replies encoded for the next write.
    pub out: Vec<u8>,
    /// Close once `out` is written (QUIT, protocol error, SHUTDOWN).
    pub close: bool,
    /// Name of the last command run, for CLIENT LIST (`client|list` for subcommands).
    pub last_cmd: String,
    /// `requirepass` was set at the last batch: the parser applies unauthenticated limits.
    pub auth_required: bool,
    /// `REPLCONF capa eof`: a full sync may use the diskless `$EOF:` form.
    pub repl_capa_eof: bool,
    /// `REPLCONF rdb-only 1`: SYNC/PSYNC send the RDB alone, then the connection closes.
    pub repl_rdb_only: bool,
    /// A full sync SYNC/PSYNC accepted: sent once the replies before it are written, outside
    /// the engine lock; then the stream follows (rdb-only: the connection closes).
    pub full_sync: Option<super::replication::PendingSync>,
    /// Replication settings, the replica link after SYNC/PSYNC, a blocked `WAIT`.
    pub repl: super::replication::ReplClient,
    /// A command a failover's write pause postponed (set by dispatch, put back into the
    /// batch by [`run_batch`]).
    pub postponed: Option<Vec<Bytes>>,
    /// The batch stopped at a postponed command: wait for the pause to end, then go on.
    pub write_paused: bool,
}

impl Client {
    /// Appends `reply` in this connection's protocol.
    pub fn reply(&mut self, reply: &Reply) {
        reply.encode(&mut self.out, self.resp3);
    }

    /// True while subscribed to anything (RESP2 then only allows the pub/sub commands).
    pub fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }

    fn parser_limits(&self, max_bulk_len: u64) -> Limits {
        Limits {
            max_bulk_len,
            unauthenticated: self.auth_required && !self.authenticated,
        }
    }
}

/// Serves one connection until it closes or the server stops.
pub(crate) async fn serve(mut stream: TcpStream, addr: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let (mailbox, mut inbox) = mpsc::unbounded_channel::<Reply>();
    let killed = Arc::new(Notify::new());
    let admitted = {
        let mut state = shared.lock();
        admit(
            &mut state,
            &stream,
            addr,
            laddr,
            mailbox,
            Arc::clone(&killed),
        )
    };
    let Some(mut client) = admitted else {
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    };
    let mut input = BytesMut::with_capacity(READ_BUFFER);
    let mut parser = RequestParser::new();
    let mut batch: Vec<Vec<Bytes>> = Vec::with_capacity(64);
    let mut max_bulk_len = crate::resp::DEFAULT_MAX_BULK_LEN;

    let mut ack_wait: Option<AckWait> = None;

    'serve: loop {
        input.reserve(READ_BUFFER.max(parser.wanted(&input)));
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                match read {
                    Ok(0) | Err(_) => break 'serve,
                    Ok(n) => {
                        shared.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        let mut protocol_error: Option<ProtocolError> = None;
                        loop {
                            batch.clear();
                            while batch.len() < MAX_BATCH {
                                let limits = client.parser_limits(max_bulk_len);
                                match parser.next_command(&mut input, limits) {
                                    Ok(Some(argv)) => batch.push(argv),
                                    Ok(None) => break,
                                    Err(e) => {
                                        protocol_error = Some(e);
                                        break;
                                    }
                                }
                            }
                            if batch.is_empty() {
                                break;
                            }
                            let full = batch.len() == MAX_BATCH;
                            loop {
                                {
                                    let mut state = shared.lock();
                                    run_batch(&mut client, &mut state, &shared, &mut batch);
                                    max_bulk_len = state.engine.config().proto_max_bulk_len;
                                    // Replies wait until the AOF acknowledges everything
                                    // propagated so far (group commit under `always`).
                                    if let Some(wait) = state.engine.aof_ack_wait() {
                                        if let Some(idle) = state.engine.idle_commit() {
                                            idle.waiting(client.id);
                                        }
                                        ack_wait = Some(wait);
                                    }
                                }
                                // A write paused by a failover: send the replies before it,
                                // wait outside the lock for the pause to end, run it again.
                                if std::mem::take(&mut client.write_paused) {
                                    if !flush(&mut stream, &mut client, &shared, &mut ack_wait).await {
                                        break 'serve;
                                    }
                                    tokio::select! {
                                        () = super::failover::resumed(&shared) => {}
                                        () = peer_closed(&stream) => break 'serve,
                                    }
                                    continue;
                                }
                                // A blocked WAIT: send the replies before it, wait for the
                                // replicas outside the lock, then run the rest of the batch.
                                let Some(wait) = client.repl.wait.take() else {
                                    break;
                                };
                                if !flush(&mut stream, &mut client, &shared, &mut ack_wait).await {
                                    break 'serve;
                                }
                                let acked = tokio::select! {
                                    acked = super::replication::wait_for_replicas(&shared, wait) => acked,
                                    () = peer_closed(&stream) => break 'serve,
                                    () = killed.notified() => break 'serve,
                                };
                                match acked {
                                    Ok(acked) => client.reply(&Reply::Int(acked)),
                                    Err(unblocked) => {
                                        // Redis closes the connection after this reply, and
                                        // the rest of the batch is not run.
                                        client.reply(&Reply::error(unblocked));
                                        client.close = true;
                                        break;
                                    }
                                }
                                if batch.is_empty() {
                                    break;
                                }
                            }
                            if protocol_error.is_some()
                                || client.close
                                || client.full_sync.is_some()
                                || client.repl.session.is_some()
                                || !full
                            {
                                break;
                            }
                        }
                        if let Some(e) = protocol_error {
                            tracing::debug!("Protocol error from client {}: {e}", client.id);
                            client.reply(&Reply::error(e.0));
                            client.close = true;
                        }
                    }
                }
            }
            // CLIENT KILL from another connection: close without what was not written.
            () = killed.notified() => break 'serve,
            message = inbox.recv() => {
                if let Some(message) = message {
                    client.reply(&message);
                    while let Ok(message) = inbox.try_recv() {
                        client.reply(&message);
                    }
                }
            }
        }
        if !flush(&mut stream, &mut client, &shared, &mut ack_wait).await {
            break 'serve;
        }
        if client.repl.session.is_some() {
            // SYNC/PSYNC made this connection a replica's link (or an rdb-only transfer).
            let input = std::mem::take(&mut input);
            super::replication::serve_sync(&mut stream, input, &mut client, &shared, addr).await;
            break;
        }
        if client.close || shared.stopping.load(Ordering::SeqCst) {
            break;
        }
    }
    let _ = stream.shutdown().await;
    let mut state = shared.lock();
    super::commands::forget_client(&mut client, &mut state);
}

/// Writes the replies in `client.out` once the AOF acknowledged what they report. False when
/// the connection must close (the write failed, or the AOF cannot acknowledge).
async fn flush(
    stream: &mut TcpStream,
    client: &mut Client,
    shared: &Shared,
    ack_wait: &mut Option<AckWait>,
) -> bool {
    if let Some(wait) = ack_wait.take()
        && let Err(reason) = wait.acknowledged().await
    {
        // What these replies report may not be durable: send none of them (no
        // acknowledgement for what a failed fsync covered) and close the connection.
        tracing::warn!(
            "closing client {} without replies: the AOF cannot acknowledge them: {reason}",
            client.id
        );
        return false;
    }
    if !client.out.is_empty() {
        let written = client.out.len() as u64;
        if stream.write_all(&client.out).await.is_err() {
            return false;
        }
        client.out.clear();
        if client.out.capacity() > OUTPUT_KEEP {
            client.out.shrink_to(READ_BUFFER);
        }
        shared
            .net_output_bytes
            .fetch_add(written, Ordering::Relaxed);
    }
    true
}

/// Resolves when the peer closed the connection; pends for ever once it sent more input
/// (those commands wait for their turn).
async fn peer_closed(stream: &TcpStream) {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending::<()>().await,
    }
}

/// Runs `batch` under the engine lock held by the caller. A `WAIT` that blocks stops the
/// batch: the commands after it stay in `batch` for when it completes.
fn run_batch(client: &mut Client, state: &mut State, shared: &Shared, batch: &mut Vec<Vec<Bytes>>) {
    if !state.clients.contains_key(&client.id) {
        // Closed by CLIENT KILL: nothing more runs.
        batch.clear();
        client.out.clear();
        client.close = true;
        return;
    }
    if batch.len() > 1 {
        // A pipelined batch: start the keyspace's cache misses of all its keys (most
        // commands' first key is their first argument) before running the first.
        let keys = batch
            .iter()
            .filter_map(|argv| argv.get(1))
            .map(|key| &key[..]);
        state.engine.store().prefetch_keys(client.db, keys);
    }
    let now_ms = crate::engine::unix_now_ms();
    client.auth_required = !state.engine.config().requirepass.is_empty();
    let mut ran = 0;
    while ran < batch.len() {
        if shared.stopping.load(Ordering::Relaxed) {
            batch.clear();
            break;
        }
        let argv = std::mem::take(&mut batch[ran]);
        ran += 1;
        super::commands::dispatch(client, state, shared, argv, now_ms);
        if let Some(argv) = client.postponed.take() {
            ran -= 1;
            batch[ran] = argv;
            client.write_paused = true;
            break;
        }
        // After SYNC/PSYNC the connection carries the replication link: what follows is
        // dropped.
        if client.close || client.repl.session.is_some() {
            batch.clear();
            break;
        }
        if client.repl.wait.is_some() {
            super::replication::after_batch(state);
            break;
        }
    }
    batch.drain(..ran.min(batch.len()));
    if let Some(info) = state.clients.get_mut(&client.id) {
        info.last_interaction = Instant::now();
        info.db = client.db;
        info.subscriptions = client.channels.len();
        info.patterns = client.patterns.len();
        info.multi = client.multi.as_ref().map_or(-1, |m| m.queue.len() as i64);
        info.resp = if client.resp3 { 3 } else { 2 };
        info.cmd.clear();
        info.cmd.push_str(&client.last_cmd);
    }
}

/// Registers a new connection, or `None` when `maxclients` is reached.
fn admit(
    state: &mut State,
    stream: &TcpStream,
    addr: SocketAddr,
    laddr: SocketAddr,
    mailbox: Mailbox,
    kill: Arc<Notify>,
) -> Option<Client> {
    state.engine.stats.total_connections_received += 1;
    if state.clients.len() >= state.engine.config().maxclients as usize {
        state.engine.stats.rejected_connections += 1;
        return None;
    }
    let id = state.next_client_id;
    state.next_client_id += 1;
    let now = Instant::now();
    state.clients.insert(
        id,
        ClientInfo {
            addr,
            laddr,
            fd: stream.as_raw_fd(),
            name: None,
            created: now,
            last_interaction: now,
            db: 0,
            subscriptions: 0,
            patterns: 0,
            multi: -1,
            resp: 2,
            cmd: "NULL".into(),
            kill,
        },
    );
    let auth_required = !state.engine.config().requirepass.is_empty();
    Some(Client {
        id,
        db: 0,
        resp3: false,
        // As Redis: a client connecting while the default user has no password is
        // authenticated for good, even if `requirepass` is set later.
        authenticated: !auth_required,
        multi: None,
        watching: Vec::new(),
        channels: Vec::new(),
        patterns: Vec::new(),
        mailbox,
        out: Vec::with_capacity(READ_BUFFER),
        close: false,
        last_cmd: String::new(),
        auth_required,
        repl_capa_eof: false,
        repl_rdb_only: false,
        full_sync: None,
        repl: Default::default(),
        postponed: None,
        write_paused: false,
    })
}
