//! The replica's side of PSYNC2 (`redis-formats.md` §3): the link to a primary, as a tokio
//! task ([`spawn`]).
//!
//! # The link, step by step
//! 1. Connect; `PING` (an answer of `-NOAUTH`, `-NOPERM` or `-ERR operation not permitted`
//!    is accepted: the primary wants `AUTH` first), then, pipelined as Redis's replica sends
//!    them, `AUTH [masteruser] masterauth` (if set; a refusal is fatal), `REPLCONF
//!    listening-port <port>` and `REPLCONF capa eof capa psync2` (their refusals are not).
//! 2. `PSYNC <replid> <offset + 1>` from this node's own position when it is worth a partial
//!    resync (the node was synced before, is a demoted primary, or restarted from files that
//!    recorded it), else `PSYNC ? -1`. During a planned failover (the node hands over to
//!    this primary, [`ReplicaNode::sends_failover`]) the PSYNC carries a `FAILOVER`
//!    argument, and its answer is reported to the node.
//! 3. `+FULLRESYNC <replid> <offset>`: the RDB (`$<len>` or the diskless `$EOF:` form, see
//!    [`super::sync`]) is decoded as it arrives, on a blocking thread, into a *fresh*
//!    [`Store`] while the node keeps serving reads from the old one; once complete, the node
//!    swaps it in at the primary's id and offset ([`ReplicaNode::install_full_sync`]).
//!    `+CONTINUE [<new id>]`: the data stays; a new id is adopted with the offsets kept.
//! 4. The command stream: commands are parsed as they arrive and applied in batches (one
//!    engine lock per read), each batch together with the exact bytes it came in
//!    ([`ReplicaNode::apply`]), so this node's offset, AOF and own replicas follow the
//!    primary's byte for byte. A `MULTI` … `EXEC` block is applied whole at its `EXEC` (the
//!    offset jumps over it then, as Redis's); `SELECT` changes the database of the commands
//!    after it; `PING` and `REPLCONF GETACK` only advance the offset, and `GETACK` is answered
//!    with `REPLCONF ACK <offset before it>`. An ACK also goes out once per second.
//! 5. Whatever breaks the link (the primary gone, a timeout, a protocol error), the task
//!    retries every second with `PSYNC` from the position reached: a partial resync when the
//!    primary's backlog still covers it. A transfer cut midway leaves the old data in place.
//!
//! The link never touches the node except through [`ReplicaNode`], whose calls take the
//! node's lock once each; a link that was stopped (`REPLICAOF NO ONE`, another primary) is
//! told so by the node and ends without applying anything more.

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sync::{Auth, CONNECT_TIMEOUT, Peer, RdbFetch, parse_fullresync, quote};
use crate::dataset::Apply;
use crate::error::{Error, Result};
use crate::model::Entry;
use crate::resp::{Limits, RequestParser};
use crate::snapshot::{ExpiredKeys, LoadStats, load_rdb_stream};
use crate::store::{BulkLoad, Store};

/// Time between two connection attempts (Redis's replication cron runs once a second).
pub const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// Period of the `REPLCONF ACK` a replica sends on its own.
pub const ACK_PERIOD: Duration = Duration::from_secs(1);
/// RDB chunks in flight between the connection and the thread loading them.
const LOAD_CHANNEL_CHUNKS: usize = 16;
/// Bytes asked of the socket per read of the stream.
const STREAM_READ: usize = 64 * 1024;

/// Where the link is, in the words of `ROLE` (Redis's `repl_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// Waiting to (re)connect.
    #[default]
    Connect,
    /// The TCP connection is being established.
    Connecting,
    /// `PING`, `AUTH`, `REPLCONF`, `PSYNC`.
    Handshake,
    /// Receiving (and loading) the RDB of a full sync.
    Sync,
    /// Receiving the command stream.
    Connected,
}

impl LinkState {
    /// The state word of `ROLE`.
    pub fn role_word(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// Progress of the RDB transfer of a full sync (`master_sync_*` of `INFO replication`).
#[derive(Debug, Clone)]
pub struct TransferStatus {
    /// Length announced by `$<len>`; `None` for the diskless form.
    pub total: Option<u64>,
    /// RDB bytes received so far.
    pub read: u64,
    /// Last time RDB bytes arrived.
    pub last_io: Instant,
}

/// What the link reports, for `INFO replication` and `ROLE`.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    pub state: LinkState,
    /// Last time anything arrived from the primary on the current link.
    pub last_io: Option<Instant>,
    /// When the link was lost; `None` while it is up, or when it never was up.
    pub down_since: Option<Instant>,
    /// The transfer of a full sync in progress.
    pub transfer: Option<TransferStatus>,
    /// Stream bytes received and not applied yet (an open `MULTI` block, a partial
    /// command): `slave_read_repl_offset` is the applied offset plus these.
    pub unapplied: u64,
    /// Full and partial resyncs this link went through.
    pub full_syncs: u64,
    pub partial_syncs: u64,
}

/// The link's status, shared with the node (read under its own small lock).
pub type SharedStatus = Arc<Mutex<LinkStatus>>;

fn status_of(status: &SharedStatus) -> MutexGuard<'_, LinkStatus> {
    status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the link needs from the node it feeds. Every call takes the node's lock once; every
/// call but [`ReplicaNode::position`] returns `None` (having changed nothing) when this link
/// is no longer the node's link, and the link then ends.
pub trait ReplicaNode: Send + Sync + 'static {
    /// The node's replication id and offset, and the database its stream has selected.
    fn position(&self) -> Option<(String, u64, usize)>;

    /// The credentials to send the primary (`masteruser`, `masterauth`), read at every
    /// connection so a change applies at the next one.
    fn auth(&self) -> Option<Auth>;

    /// A full sync is loaded: `store` replaces the keyspace at the primary's `replid` and
    /// `offset`, the stream in database `stream_db`. Returns the old keyspace (the link drops it off the lock).
    fn install_full_sync(
        &self,
        store: Store,
        replid: String,
        offset: u64,
        stream_db: usize,
    ) -> Option<Store>;

    /// `+CONTINUE`: the node keeps its data; `new_replid` is the primary's id when it differs
    /// from the node's (the offsets are kept). Returns the node's offset.
    fn continue_partial(&self, new_replid: Option<String>) -> Option<u64>;

    /// True when this node hands over to the primary (a planned failover, Redis's
    /// `FAILOVER_IN_PROGRESS`): the PSYNC then carries a `FAILOVER` argument.
    fn sends_failover(&self) -> bool {
        false
    }

    /// The answer to a `PSYNC … FAILOVER`: `Ok` when the primary took over (`+CONTINUE` or
    /// `+FULLRESYNC`), else why the failover failed.
    fn failover_answered(&self, _answer: std::result::Result<(), &str>) {}

    /// `bytes` more came from the primary (RDB or stream): INFO's `total_net_repl_input_bytes`.
    fn received(&self, _bytes: u64) {}

    /// Applies `commands` (`(database, argv)`, in order) and appends `raw`, the stream bytes
    /// they came in, to the node's stream. `db_before`/`db_after`: the stream's database
    /// before and after `raw`. Returns the node's offset after them.
    fn apply(
        &self,
        commands: &[(usize, Vec<Bytes>)],
        raw: &[u8],
        db_before: usize,
        db_after: usize,
    ) -> Option<u64>;
}

/// How to reach the primary and what to tell it.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub host: String,
    pub port: u16,
    /// This node's port (or `replica-announce-port`), sent with `REPLCONF listening-port`.
    pub listening_port: u16,
    /// `replica-announce-ip`, sent with `REPLCONF ip-address` when set.
    pub announce_ip: Option<String>,
    /// Databases of a freshly loaded keyspace.
    pub databases: usize,
    /// The node's own position is worth asking a partial resync from (see the module docs);
    /// false: the first attempt sends `PSYNC ? -1`.
    pub known_position: bool,
    /// The database the stream had selected at the node's position, when known (else the
    /// node's last propagated database is used).
    pub stream_db: Option<usize>,
    /// Longest silence accepted from the primary (`repl-timeout`). Default: 60 s.
    pub timeout: Duration,
}

impl LinkOptions {
    /// `HOST:PORT` (IPv6 addresses in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Starts the link as a tokio task; it runs until aborted (or told by the node that it was
/// stopped).
pub fn spawn<N: ReplicaNode>(
    options: LinkOptions,
    node: N,
    status: SharedStatus,
) -> JoinHandle<()> {
    tokio::spawn(run(options, node, status))
}

/// Why a session ended.
enum Ended {
    /// The node stopped this link.
    Stopped,
    /// The link broke; retry.
    Broken(Error),
}

impl From<Error> for Ended {
    fn from(e: Error) -> Self {
        Ended::Broken(e)
    }
}

async fn run<N: ReplicaNode>(mut options: LinkOptions, node: N, status: SharedStatus) {
    let addr = options.addr();
    // The database the primary's stream has selected, kept across connections: a partial
    // resync continues the stream where it was.
    let mut link_db = options.stream_db;
    tracing::info!("Connecting to MASTER {addr}");
    loop {
        let ended = session(&options, &node, &status, &mut link_db).await;
        {
            let mut s = status_of(&status);
            if s.state == LinkState::Connected {
                s.down_since = Some(Instant::now());
            }
            s.state = LinkState::Connect;
            s.transfer = None;
            s.last_io = None;
            s.unapplied = 0;
        }
        match ended {
            Ended::Stopped => return,
            Ended::Broken(e) => tracing::warn!("{e}"),
        }
        // Whatever was reached (a sync, a partial stream) is worth a partial resync now.
        options.known_position = options.known_position || status_of(&status).full_syncs > 0;
        tokio::time::sleep(RETRY_PERIOD).await;
        tracing::info!("Connecting to MASTER {addr}");
    }
}

/// One connection to the primary, from connect to loss.
async fn session<N: ReplicaNode>(
    options: &LinkOptions,
    node: &N,
    status: &SharedStatus,
    link_db: &mut Option<usize>,
) -> Ended {
    match session_inner(options, node, status, link_db).await {
        Ok(()) => Ended::Stopped,
        Err(ended) => ended,
    }
}

async fn session_inner<N: ReplicaNode>(
    options: &LinkOptions,
    node: &N,
    status: &SharedStatus,
    link_db: &mut Option<usize>,
) -> std::result::Result<(), Ended> {
    let addr = options.addr();
    status_of(status).state = LinkState::Connecting;
    let mut peer = Peer::connect(&addr, CONNECT_TIMEOUT, options.timeout).await?;
    tracing::info!("MASTER <-> REPLICA sync started");
    status_of(status).state = LinkState::Handshake;
    handshake(&mut peer, options, node.auth().as_ref()).await?;

    let Some((replid, offset, db)) = node.position() else {
        return Err(Ended::Stopped);
    };
    let psync: [Vec<u8>; 3] = if options.known_position {
        tracing::info!(
            "Trying a partial resynchronization (request {replid}:{}).",
            offset + 1
        );
        [
            b"PSYNC".to_vec(),
            replid.clone().into_bytes(),
            (offset + 1).to_string().into_bytes(),
        ]
    } else {
        tracing::info!("Partial resynchronization not possible (no cached master)");
        [b"PSYNC".to_vec(), b"?".to_vec(), b"-1".to_vec()]
    };
    let mut args: Vec<&[u8]> = psync.iter().map(Vec::as_slice).collect();
    // A planned failover: the target promotes itself before it answers.
    let failover = node.sends_failover();
    if failover {
        args.push(b"FAILOVER");
    }
    if let Err(e) = peer.send(&args, "PSYNC").await {
        if failover {
            node.failover_answered(Err("Write error to failover target"));
        }
        return Err(e.into());
    }
    let reply = peer.read_line("the reply to PSYNC").await?;
    if failover {
        let taken_over = reply.starts_with(b"+CONTINUE") || reply.starts_with(b"+FULLRESYNC");
        if !taken_over {
            tracing::info!(
                "Master does not support PSYNC or is in error state (reply: {})",
                quote(&reply)
            );
        }
        node.failover_answered(if taken_over {
            Ok(())
        } else {
            Err("Failover target rejected psync request")
        });
    }

    let (mut peer, offset) = if let Some(position) = reply.strip_prefix(b"+FULLRESYNC ") {
        let (primary_id, primary_offset) = parse_fullresync(position)
            .ok_or_else(|| peer.error(format!("malformed reply to PSYNC: {}", quote(&reply))))?;
        tracing::info!("Full resync from master: {primary_id}:{primary_offset}");
        let (peer, stream_db) =
            full_sync(peer, options, node, status, primary_id, primary_offset).await?;
        *link_db = Some(stream_db);
        (peer, primary_offset)
    } else if let Some(rest) = reply.strip_prefix(b"+CONTINUE") {
        let new_id = std::str::from_utf8(rest)
            .map(str::trim)
            .ok()
            .filter(|id| id.len() == 40 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned);
        let changed = new_id.filter(|id| *id != replid);
        if let Some(id) = &changed {
            tracing::info!("Master replication ID changed to {id}");
        }
        tracing::info!("Successful partial resynchronization with master.");
        let Some(offset) = node.continue_partial(changed) else {
            return Err(Ended::Stopped);
        };
        status_of(status).partial_syncs += 1;
        tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        link_db.get_or_insert(db);
        (peer, offset)
    } else if reply.starts_with(b"-NOMASTERLINK") || reply.starts_with(b"-LOADING") {
        return Err(peer
            .error(format!(
                "Master is currently unable to PSYNC but should be in the future: {}",
                quote(&reply)
            ))
            .into());
    } else {
        return Err(peer
            .error(format!("unexpected reply to PSYNC: {}", quote(&reply)))
            .into());
    };

    {
        let mut s = status_of(status);
        s.state = LinkState::Connected;
        s.transfer = None;
        s.down_since = None;
        s.last_io = Some(Instant::now());
    }
    // The primary starts the stream of a diskless sync on the first ACK; every sync gets one.
    send_ack(&mut peer, offset).await?;
    stream(peer, options, node, status, offset, link_db).await
}

/// `PING`, then `AUTH`, `REPLCONF listening-port`, `REPLCONF ip-address` (with
/// `replica-announce-ip`) and `REPLCONF capa` pipelined, in Redis's order.
async fn handshake(peer: &mut Peer, options: &LinkOptions, auth: Option<&Auth>) -> Result<()> {
    let reply = peer.call(&[&b"PING"[..]], "PING").await?;
    // A primary that wants AUTH first answers PING with an error Redis's replica accepts.
    let accepted = reply.first() == Some(&b'+')
        || reply.starts_with(b"-NOAUTH")
        || reply.starts_with(b"-NOPERM")
        || reply.starts_with(b"-ERR operation not permitted");
    if !accepted {
        return Err(peer.error(format!(
            "Error reply to PING from master: {}",
            quote(&reply)
        )));
    }
    let mut out = Vec::with_capacity(128);
    if let Some(auth) = auth {
        crate::resp::write_command(&mut out, &auth.command());
    }
    let port = options.listening_port.to_string();
    crate::resp::write_command(
        &mut out,
        &[&b"REPLCONF"[..], b"listening-port", port.as_bytes()],
    );
    if let Some(ip) = &options.announce_ip {
        crate::resp::write_command(&mut out, &[&b"REPLCONF"[..], b"ip-address", ip.as_bytes()]);
    }
    crate::resp::write_command(
        &mut out,
        &[&b"REPLCONF"[..], b"capa", b"eof", b"capa", b"psync2"],
    );
    peer.send_raw(&out, "the handshake").await?;
    if auth.is_some() {
        let reply = peer.read_line("the reply to AUTH").await?;
        if reply.first() == Some(&b'-') {
            return Err(peer.error(format!("Unable to AUTH to MASTER: {}", quote(&reply))));
        }
    }
    let replies: &[&str] = if options.announce_ip.is_some() {
        &["listening-port", "ip-address", "capa"]
    } else {
        &["listening-port", "capa"]
    };
    for what in replies {
        let reply = peer
            .read_line(&format!("the reply to REPLCONF {what}"))
            .await?;
        if reply.first() == Some(&b'-') {
            // Not fatal, as in Redis (an older primary may not know the option).
            tracing::info!(
                "(Non critical) Master does not understand REPLCONF {what}: {}",
                quote(&reply)
            );
        }
    }
    Ok(())
}

/// Receives the RDB of a full sync and loads it into a fresh keyspace on a blocking thread
/// while it arrives; then installs it. Returns the connection (holding whatever followed the
/// RDB) and the stream's database (the RDB's `repl-stream-db`).
async fn full_sync<N: ReplicaNode>(
    peer: Peer,
    options: &LinkOptions,
    node: &N,
    status: &SharedStatus,
    replid: String,
    offset: u64,
) -> std::result::Result<(Peer, usize), Ended> {
    let addr = options.addr();
    {
        let mut s = status_of(status);
        s.state = LinkState::Sync;
        s.transfer = Some(TransferStatus {
            total: None,
            read: 0,
            last_io: Instant::now(),
        });
    }
    let mut fetch =
        RdbFetch::after_fullresync(peer, Some(replid.clone()), Some(offset), None).await?;
    match fetch.total() {
        Some(len) => tracing::info!("MASTER <-> REPLICA sync: receiving {len} bytes from master"),
        None => tracing::info!("MASTER <-> REPLICA sync: receiving streamed RDB from master"),
    }
    if let Some(t) = &mut status_of(status).transfer {
        t.total = fetch.total();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(LOAD_CHANNEL_CHUNKS);
    let databases = options.databases;
    let name = format!("the full sync from {addr}");
    let loader = tokio::task::spawn_blocking(move || load_store(rx, databases, &name));
    let mut loader_gone = false;
    let started = Instant::now();
    loop {
        let chunk = match fetch.next_chunk().await {
            Ok(Some(chunk)) => {
                node.received(chunk.len() as u64);
                Bytes::copy_from_slice(chunk)
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("I/O error trying to sync with MASTER: {e}");
                // Dropping the channel ends the loader; the old data stays.
                return Err(e.into());
            }
        };
        if let Some(t) = &mut status_of(status).transfer {
            t.read = fetch.received();
            t.last_io = Instant::now();
        }
        // The loader stops early only on an error (or once it read the RDB's end): the
        // rest of the payload is still read off the connection.
        if !loader_gone && tx.send(chunk).await.is_err() {
            loader_gone = true;
        }
    }
    drop(tx);
    let loaded = match loader.await {
        Ok(loaded) => loaded,
        Err(e) => Err(Error::Replication {
            peer: addr.clone(),
            reason: format!("the thread loading the RDB failed: {e}"),
        }),
    };
    let (store, stats) = loaded.map_err(|e| {
        tracing::warn!("Failed trying to load the MASTER synchronization DB from socket: {e}");
        e
    })?;
    tracing::info!(
        "MASTER <-> REPLICA sync: Loaded {} keys from {} bytes of RDB in {:.3} seconds",
        stats.keys_loaded,
        fetch.received(),
        started.elapsed().as_secs_f64()
    );
    let stream_db = stats
        .replication
        .as_ref()
        .map_or(0, |r| r.stream_db as usize);
    let Some(old) = node.install_full_sync(store, replid, offset, stream_db) else {
        return Err(Ended::Stopped);
    };
    // Freeing millions of keys takes a while: not on the runtime's threads.
    tokio::task::spawn_blocking(move || drop(old));
    status_of(status).full_syncs += 1;
    tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    Ok((fetch.into_peer(), stream_db))
}

/// Decodes the RDB arriving on `chunks` into a new keyspace of `databases` databases.
fn load_store(
    chunks: mpsc::Receiver<Bytes>,
    databases: usize,
    name: &str,
) -> Result<(Store, LoadStats)> {
    let mut store = Store::new(databases);
    let stats = {
        let mut target = SyncLoad {
            load: store.bulk_load(),
            name,
        };
        // Every key is kept: the primary expires keys and sends their `DEL`s.
        let stats = load_rdb_stream(
            ChunkReader {
                chunks,
                current: Bytes::new(),
            },
            &mut target,
            ExpiredKeys::Keep,
            Path::new(name),
        );
        target.load.finish();
        stats?
    };
    Ok((store, stats))
}

/// The fresh keyspace as the target of a full sync: a key in a database this node does not
/// have fails the sync (its data could not be complete).
struct SyncLoad<'a> {
    load: BulkLoad<'a>,
    name: &'a str,
}

impl Apply for SyncLoad<'_> {
    fn clear(&mut self) {
        self.load.clear();
    }

    fn load_entry(&mut self, entry: Entry) -> Result<()> {
        let databases = self.load.databases();
        if entry.db as usize >= databases {
            return Err(Error::InvalidArgument(format!(
                "{}: a key in database {} but `databases` is {databases}",
                self.name, entry.db
            )));
        }
        self.load.load_entry(entry);
        Ok(())
    }

    fn apply_command(&mut self, db: usize, argv: &[Bytes], now_ms: i64) -> Result<()> {
        Apply::apply_command(&mut self.load, db, argv, now_ms)
    }
}

/// The RDB chunks of a transfer as `io::Read`, for the loading thread; the end of the
/// channel is the end of the stream.
struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

async fn send_ack(peer: &mut Peer, offset: u64) -> Result<()> {
    let offset = offset.to_string();
    peer.send(
        &[&b"REPLCONF"[..], b"ACK", offset.as_bytes()],
        "REPLCONF ACK",
    )
    .await
}

/// The command stream: read, parse, apply in batches, acknowledge. Returns only when the
/// node stopped the link; every other end is an error (the link broke).
async fn stream<N: ReplicaNode>(
    mut peer: Peer,
    options: &LinkOptions,
    node: &N,
    status: &SharedStatus,
    mut offset: u64,
    link_db: &mut Option<usize>,
) -> std::result::Result<(), Ended> {
    let stream_db = link_db.unwrap_or(0);
    let mut input = std::mem::take(&mut peer.buf);
    let mut parsed = StreamParser::new(stream_db, &input);
    let mut ticker = tokio::time::interval(ACK_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_io = Instant::now();
    loop {
        let batch = parsed
            .parse(&mut input)
            .map_err(|e| peer.error(format!("protocol error in the stream: {e}")))?;
        if batch.raw_len > 0 {
            let raw = &parsed.raw[..batch.raw_len];
            let Some(after) = node.apply(&batch.commands, raw, batch.db_before, batch.db_after)
            else {
                return Err(Ended::Stopped);
            };
            offset = after;
            parsed.fed(&batch);
            *link_db = Some(batch.db_after);
            if let Some(before_getack) = batch.getack_at {
                // Redis answers GETACK with the offset before the GETACK itself.
                let acked = offset - (batch.raw_len - before_getack) as u64;
                send_ack(&mut peer, acked).await?;
            }
        }
        status_of(status).unapplied = parsed.raw.len() as u64;
        input.reserve(STREAM_READ.max(parsed.parser.wanted(&input)));
        tokio::select! {
            read = peer.stream.read_buf(&mut input) => {
                let n = read.map_err(|e| peer.error(format!("reading the stream: {e}")))?;
                if n == 0 {
                    return Err(peer.error("the primary closed the connection").into());
                }
                parsed.received(&input[input.len() - n..]);
                node.received(n as u64);
                last_io = Instant::now();
                status_of(status).last_io = Some(last_io);
            }
            _ = ticker.tick() => {
                if last_io.elapsed() > options.timeout {
                    return Err(peer
                        .error(format!(
                            "MASTER timeout: no data nor PING received for {} s",
                            options.timeout.as_secs()
                        ))
                        .into());
                }
                send_ack(&mut peer, offset).await?;
            }
        }
    }
}

/// What one call of [`StreamParser::parse`] makes ready to apply.
#[derive(Debug, Default, PartialEq)]
struct Batch {
    /// Commands to apply, `(database, argv)`, whole transactions only.
    commands: Vec<(usize, Vec<Bytes>)>,
    /// Bytes at the front of [`StreamParser::raw`] these commands (and the `SELECT`s,
    /// `PING`s and `REPLCONF`s among them) came in.
    raw_len: usize,
    db_before: usize,
    db_after: usize,
    /// A `REPLCONF GETACK` was among them: bytes before the last one.
    getack_at: Option<usize>,
}

/// The command stream being parsed: commands are taken off the input as they complete, and
/// the received bytes are kept until the commands they carry are applied, so they can be
/// fed on verbatim.
///
/// Invariant: `raw` = the bytes the parser consumed and were not fed yet (`consumed` of
/// them), followed by the input buffer's bytes.
struct StreamParser {
    parser: RequestParser,
    raw: Vec<u8>,
    consumed: usize,
    /// Database of the stream where the parser is.
    parse_db: usize,
    /// Database of the stream after the last byte fed.
    applied_db: usize,
    /// The transaction being received (`MULTI` seen, `EXEC` not yet).
    multi: Option<Vec<(usize, Vec<Bytes>)>>,
}

impl StreamParser {
    /// A parser at the start of a stream whose database is `db`; `input` holds bytes already
    /// received.
    fn new(db: usize, input: &BytesMut) -> Self {
        StreamParser {
            parser: RequestParser::new(),
            raw: input.to_vec(),
            consumed: 0,
            parse_db: db,
            applied_db: db,
            multi: None,
        }
    }

    /// Notes bytes just read into the input buffer.
    fn received(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// Parses every complete command in `input`; returns those ready to apply.
    fn parse(&mut self, input: &mut BytesMut) -> std::result::Result<Batch, String> {
        let mut batch = Batch {
            db_before: self.applied_db,
            db_after: self.applied_db,
            ..Batch::default()
        };
        loop {
            let before = input.len();
            let next = self
                .parser
                .next_command(input, Limits::default())
                .map_err(|e| e.0)?;
            self.consumed += before - input.len();
            let Some(argv) = next else { break };
            let name = argv[0].to_ascii_lowercase();
            match name.as_slice() {
                b"multi" => {
                    if self.multi.is_none() {
                        self.multi = Some(Vec::new());
                    }
                    continue;
                }
                b"exec" => {
                    if let Some(queued) = self.multi.take() {
                        batch.commands.extend(queued);
                    }
                }
                b"discard" => self.multi = None,
                b"select" => {
                    match std::str::from_utf8(argv.get(1).map_or(&b""[..], |a| a))
                        .ok()
                        .and_then(|db| db.parse::<usize>().ok())
                    {
                        Some(db) => self.parse_db = db,
                        None => tracing::warn!(
                            "the primary sent an invalid SELECT: {}",
                            quote(&argv.concat())
                        ),
                    }
                    if self.multi.is_some() {
                        continue;
                    }
                }
                b"ping" => {
                    if self.multi.is_some() {
                        continue;
                    }
                }
                b"replconf" => {
                    if self.multi.is_some() {
                        continue;
                    }
                    if argv
                        .get(1)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"))
                    {
                        batch.getack_at = Some(batch.raw_len);
                    }
                }
                _ => match &mut self.multi {
                    Some(queued) => {
                        queued.push((self.parse_db, argv));
                        continue;
                    }
                    None => batch.commands.push((self.parse_db, argv)),
                },
            }
            // A whole unit ends here.
            batch.raw_len = self.consumed;
            batch.db_after = self.parse_db;
        }
        Ok(batch)
    }

    /// The batch's bytes (the first `raw_len` of `raw`) were applied and fed.
    fn fed(&mut self, batch: &Batch) {
        self.raw.drain(..batch.raw_len);
        self.consumed -= batch.raw_len;
        self.applied_db = batch.db_after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::resp::write_command(&mut out, words);
        out
    }

    /// Feeds `bytes` to the parser in pieces of `step` bytes, applying every batch as the
    /// link does; returns the batches (commands as space-joined words) and the bytes fed.
    fn run(stream: &[u8], step: usize, db: usize) -> (Vec<Batch>, Vec<u8>, StreamParser) {
        let mut input = BytesMut::new();
        let mut parser = StreamParser::new(db, &input);
        let mut batches = Vec::new();
        let mut fed = Vec::new();
        for piece in stream.chunks(step) {
            input.extend_from_slice(piece);
            parser.received(piece);
            let batch = parser.parse(&mut input).unwrap();
            assert_eq!(parser.raw.len(), parser.consumed + input.len(), "invariant");
            if batch.raw_len > 0 {
                fed.extend_from_slice(&parser.raw[..batch.raw_len]);
                parser.fed(&batch);
                batches.push(batch);
            }
        }
        (batches, fed, parser)
    }

    fn words(batches: &[Batch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| &b.commands)
            .map(|(db, argv)| {
                let argv: Vec<String> = argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                format!("{db}: {}", argv.join(" "))
            })
            .collect()
    }

    fn sample() -> Vec<u8> {
        [
            cmd(&["SELECT", "3"]),
            cmd(&["set", "a", "1"]),
            cmd(&["ping"]),
            cmd(&["MULTI"]),
            cmd(&["incr", "a"]),
            cmd(&["SELECT", "5"]),
            cmd(&["set", "b", "2"]),
            cmd(&["EXEC"]),
            cmd(&["del", "c"]),
            cmd(&["REPLCONF", "GETACK", "*"]),
        ]
        .concat()
    }

    #[test]
    fn every_byte_is_fed_once_in_order_whatever_the_reads() {
        let stream = sample();
        for step in [1, 2, 3, 7, 13, 64, stream.len()] {
            let (batches, fed, parser) = run(&stream, step, 0);
            assert_eq!(fed, stream, "step {step}");
            assert_eq!(
                words(&batches),
                ["3: set a 1", "3: incr a", "5: set b 2", "5: del c"],
                "step {step}"
            );
            assert_eq!(parser.applied_db, 5);
            assert!(parser.raw.is_empty());
        }
    }

    #[test]
    fn a_transaction_is_applied_whole_at_exec() {
        let stream = sample();
        let exec_end = stream
            .windows(b"EXEC\r\n".len())
            .position(|w| w == b"EXEC\r\n")
            .unwrap()
            + b"EXEC\r\n".len();
        // Everything up to just before EXEC's last byte: the block is held back, bytes too.
        let (batches, fed, parser) = run(&stream[..exec_end - 1], 5, 0);
        assert_eq!(words(&batches), ["3: set a 1"]);
        assert_eq!(
            fed.len(),
            [
                cmd(&["SELECT", "3"]),
                cmd(&["set", "a", "1"]),
                cmd(&["ping"])
            ]
            .concat()
            .len()
        );
        assert_eq!(
            parser.applied_db, 3,
            "the SELECT inside the open block is not applied"
        );
        assert!(parser.multi.is_some());
    }

    #[test]
    fn getack_is_answered_with_the_offset_before_it() {
        let stream = sample();
        let (batches, fed, _) = run(&stream, stream.len(), 0);
        assert_eq!(batches.len(), 1);
        let getack = cmd(&["REPLCONF", "GETACK", "*"]);
        assert_eq!(batches[0].getack_at, Some(fed.len() - getack.len()));
        assert_eq!((batches[0].db_before, batches[0].db_after), (0, 5));
    }

    #[test]
    fn a_protocol_error_is_reported() {
        let mut input = BytesMut::from(&b"*1\r\n+x\r\n"[..]);
        let mut parser = StreamParser::new(0, &input);
        assert!(parser.parse(&mut input).is_err());
    }
}
