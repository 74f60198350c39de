//! A point-in-time RDB over the replication protocol, on both ends (`redis-formats.md` §3.1,
//! §3.3, §3.8).
//!
//! # Fetching (client)
//!
//! [`fetch_rdb`] (or [`RdbFetch`], to pull the bytes chunk by chunk) does what `redis-cli
//! --rdb` does, against real Redis or `keeper server`: `AUTH` when a password is given,
//! `PING`, `REPLCONF capa eof capa psync2`, `REPLCONF rdb-only 1` (the primary sends the RDB
//! and nothing after it), then `PSYNC ? -1`, so the `+FULLRESYNC <replid> <offset>` reply
//! names the replication position the RDB reflects (a node that refuses PSYNC with `-ERR`
//! gets the legacy `SYNC`, and the position stays unknown). The payload comes as
//! `$<len>\r\n` and exactly `len` bytes, or in the diskless form `$EOF:<40 chars>\r\n`, the
//! bytes, then the same 40 characters (not part of the RDB); bare `\n` keep-alives before
//! either are skipped. redis-cli 7.0 itself sends `REPLCONF capa eof`, `REPLCONF rdb-only 1` and `SYNC`
//! only (observed with strace against redis-server 7.0.15); PING and PSYNC add an early auth
//! check and the replication position. With [`FetchOptions::uncompressed`] it also sends
//! keeper's own `REPLCONF keeper-rdb-compression 0` (a keeper node then skips LZF; Redis
//! refuses the option, which changes nothing).
//!
//! The peer is not trusted: a `$<len>` of any size streams in chunks of [`CHUNK`] bytes (the
//! RDB is never held whole), reply lines are capped at [`MAX_LINE`] bytes, a connection that
//! closes early or goes quiet (no byte, keep-alives included, for the idle timeout) is an
//! [`Error::Replication`] saying how many RDB bytes arrived, and the peer's error replies are
//! quoted.
//!
//! # Sending (primary)
//!
//! The RDB of a [`DatasetSnapshot`] (taken in O(1) under the engine lock, at the offset the
//! `+FULLRESYNC` line announced) is encoded once on a blocking thread, whatever the number of
//! clients sharing it, while the node keeps serving:
//!
//! - [`start_diskless`]: the `$EOF:` form, streamed as it is encoded; each chunk (one shared
//!   buffer) goes to every client's bounded queue, so the transfer goes at the pace of the
//!   slowest client with bounded memory, and a client whose socket fails is left out while
//!   the others go on.
//! - [`start_staged`]: the `$<len>` form (a client without `capa eof`, or
//!   `repl-diskless-sync no`): the RDB goes to a temp file through [`Storage`]; clients
//!   joining while it is written share it; each then sends `$<len>\r\n` and reads the file at
//!   its own pace; the file is removed when the last one is done (or gone).
//!
//! [`send_transfer`] sends one client's share (a `\n` keep-alive every second while a staged
//! file is written); [`send_rdb`] does both steps for a single client.

use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use crate::dataset::DatasetSnapshot;
use crate::error::{Error, Result};
use crate::rdb::FileSink;
use crate::snapshot::{SaveControl, SaveOptions, write_rdb_stream_controlled};
use crate::storage::Storage;

/// Time to establish the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence accepted from the peer, keep-alives included (Redis's `repl-timeout`); also
/// the longest a write to the peer may stall.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read from the socket at a time, and the most a fetch buffers.
pub const CHUNK: usize = 64 * 1024;
/// Longest reply line accepted (the longest real one, `+FULLRESYNC`, is 60 bytes).
pub const MAX_LINE: usize = 4096;
/// Length of the diskless form's end mark.
const MARK_LEN: usize = 40;
/// Bytes of a staged RDB read from its temp file per chunk sent.
const STAGED_CHUNK: usize = 256 * 1024;
/// Chunks in flight between the thread encoding the RDB and the connection.
const CHANNEL_CHUNKS: usize = 4;
/// Keep-alive period while a staged RDB is written (Redis sends one a second).
pub const KEEPALIVE_PERIOD: Duration = Duration::from_secs(1);

/// Credentials for `AUTH`: the password alone (`requirepass`, the default user), or an ACL
/// user and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    pub user: Option<String>,
    pub password: String,
}

impl Auth {
    /// `AUTH [user] password`.
    pub(crate) fn command(&self) -> Vec<&[u8]> {
        let mut args: Vec<&[u8]> = vec![&b"AUTH"[..]];
        if let Some(user) = &self.user {
            args.push(user.as_bytes());
        }
        args.push(self.password.as_bytes());
        args
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How [`fetch_rdb_with`] connects and what it announces.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `AUTH` first. Default: none.
    pub auth: Option<Auth>,
    /// Announce `capa eof`, letting the primary use the diskless `$EOF:` form. Without it a
    /// primary must send `$<len>` (Redis then writes its dump.rdb first). Default: yes.
    pub capa_eof: bool,
    /// Ask for an RDB without LZF (`REPLCONF keeper-rdb-compression 0`), for a client that
    /// compresses the whole RDB itself: LZF would cost the node time for little (zstd gets
    /// as small from the plain RDB). A keeper primary honours it; others (Redis) refuse the
    /// option and send their usual RDB. Default: no.
    pub uncompressed: bool,
    /// Default: [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Default: [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            auth: None,
            capa_eof: true,
            uncompressed: false,
            connect_timeout: CONNECT_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// What a completed fetch received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRdb {
    /// The primary's replication id from `+FULLRESYNC` (`None` after a legacy `SYNC`).
    pub replid: Option<String>,
    /// The replication offset the RDB reflects, from `+FULLRESYNC`.
    pub offset: Option<u64>,
    /// RDB bytes received (the end mark of the diskless form not counted).
    pub bytes: u64,
    /// True for the diskless `$EOF:` form, false for `$<len>`.
    pub diskless: bool,
}

/// Fetches a point-in-time RDB from the node at `addr` (`HOST:PORT`) with the default
/// [`FetchOptions`] and `auth`. `sink` gets the RDB bytes in order, in chunks of at most
/// [`CHUNK`] bytes; `progress` gets `(bytes so far, total)` after each (total known for the
/// `$<len>` form only). An error of `sink` stops the fetch and is returned as is.
pub async fn fetch_rdb(
    addr: &str,
    auth: Option<&Auth>,
    sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<FetchedRdb> {
    let options = FetchOptions {
        auth: auth.cloned(),
        ..FetchOptions::default()
    };
    fetch_rdb_with(addr, &options, sink, progress).await
}

/// [`fetch_rdb`] with explicit [`FetchOptions`].
pub async fn fetch_rdb_with(
    addr: &str,
    options: &FetchOptions,
    sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<FetchedRdb> {
    let mut fetch = RdbFetch::start(addr, options).await?;
    progress(0, fetch.total());
    while let Some(chunk) = fetch.next_chunk().await? {
        sink(chunk)?;
        progress(fetch.received(), fetch.total());
    }
    Ok(fetch.fetched())
}

/// The framing of the payload.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// `$<len>`: exactly this many bytes.
    Length(u64),
    /// `$EOF:<mark>`: bytes until the last [`MARK_LEN`] received are the mark.
    Marked([u8; MARK_LEN]),
}

/// A fetch in progress, past the handshake: pull the RDB with [`RdbFetch::next_chunk`] (for
/// a sink that is itself async, such as an upload).
pub struct RdbFetch {
    peer: Peer,
    payload: Payload,
    replid: Option<String>,
    offset: Option<u64>,
    received: u64,
    /// Bytes at the front of the buffer handed out by the last `next_chunk`, dropped at the
    /// next call.
    handed_out: usize,
    done: bool,
}

impl RdbFetch {
    /// Connects to `addr` and runs the handshake up to the payload's header (see the module
    /// docs).
    pub async fn start(addr: &str, options: &FetchOptions) -> Result<RdbFetch> {
        let mut peer = Peer::connect(addr, options.connect_timeout, options.idle_timeout).await?;

        if let Some(auth) = &options.auth {
            let reply = peer.call(&auth.command(), "AUTH").await?;
            if reply.first() != Some(&b'+') {
                return Err(peer.error(format!("AUTH refused: {}", quote(&reply))));
            }
        }

        let reply = peer.call(&[&b"PING"[..]], "PING").await?;
        match reply.first() {
            Some(b'+') => {}
            // A node whose disk fails answers PING with MISCONF yet still hands out its data,
            // which is just when a backup matters.
            Some(b'-') if reply.starts_with(b"-MISCONF") => {
                tracing::warn!("{addr} answered PING with {}", quote(&reply));
            }
            Some(b'-') if reply.starts_with(b"-NOAUTH") => {
                return Err(peer.error(format!(
                    "the node requires a password (AUTH): PING answered {}",
                    quote(&reply)
                )));
            }
            Some(b'-') => return Err(peer.error(format!("PING refused: {}", quote(&reply)))),
            _ => return Err(peer.error(format!("unexpected reply to PING: {}", quote(&reply)))),
        }

        // As redis-cli: a primary that does not know a capability or rdb-only still sends the
        // RDB (and we close after it), so their refusal is not fatal.
        let capa: &[&[u8]] = if options.capa_eof {
            &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]
        } else {
            &[b"REPLCONF", b"capa", b"psync2"]
        };
        let rdb_only: &[&[u8]] = &[b"REPLCONF", b"rdb-only", b"1"];
        let plain: &[&[u8]] = &[b"REPLCONF", b"keeper-rdb-compression", b"0"];
        let asks = [
            Some(capa),
            Some(rdb_only),
            options.uncompressed.then_some(plain),
        ];
        for args in asks.into_iter().flatten() {
            let reply = peer.call(args, "REPLCONF").await?;
            match reply.first() {
                Some(b'+') => {}
                // Only keeper knows this one: Redis's refusal is expected.
                Some(b'-') if args == plain => tracing::debug!(
                    "{addr} sends its RDB as configured (REPLCONF keeper-rdb-compression: {})",
                    quote(&reply)
                ),
                Some(b'-') => tracing::warn!(
                    "{addr} refused REPLCONF {}: {}",
                    String::from_utf8_lossy(args[1]),
                    quote(&reply)
                ),
                _ => {
                    return Err(
                        peer.error(format!("unexpected reply to REPLCONF: {}", quote(&reply)))
                    );
                }
            }
        }

        let reply = peer.call(&[&b"PSYNC"[..], b"?", b"-1"], "PSYNC").await?;
        if let Some(position) = reply.strip_prefix(b"+FULLRESYNC ") {
            let (id, at) = parse_fullresync(position).ok_or_else(|| {
                peer.error(format!("malformed reply to PSYNC: {}", quote(&reply)))
            })?;
            RdbFetch::after_fullresync(peer, Some(id), Some(at), None).await
        } else if reply.starts_with(b"+CONTINUE") {
            Err(peer.error(format!(
                "answered PSYNC ? -1 with a partial resync: {}",
                quote(&reply)
            )))
        } else if reply.starts_with(b"-ERR") {
            // A node without PSYNC (or one refusing it): the legacy SYNC sends the same RDB,
            // without the position, as a Redis replica falls back.
            tracing::info!("{addr} refused PSYNC ({}); trying SYNC", quote(&reply));
            peer.send(&[&b"SYNC"[..]], "SYNC").await?;
            RdbFetch::after_fullresync(peer, None, None, Some(reply)).await
        } else if reply.first() == Some(&b'-') {
            Err(peer.error(format!("PSYNC refused: {}", quote(&reply))))
        } else {
            Err(peer.error(format!("unexpected reply to PSYNC: {}", quote(&reply))))
        }
    }

    /// Reads the payload's header on `peer`, which received `+FULLRESYNC <replid> <offset>`
    /// (or sent a legacy `SYNC` after `psync_refusal`), and returns the transfer ready for
    /// [`RdbFetch::next_chunk`].
    pub(crate) async fn after_fullresync(
        mut peer: Peer,
        replid: Option<String>,
        offset: Option<u64>,
        psync_refusal: Option<Vec<u8>>,
    ) -> Result<RdbFetch> {
        let header = peer
            .read_line("the RDB header ($<length> or $EOF:<mark>)")
            .await?;
        let payload = match parse_payload_header(&header) {
            Some(payload) => payload,
            None if header.first() == Some(&b'-') => {
                let before = psync_refusal
                    .map(|r| format!(" (after PSYNC was refused: {})", quote(&r)))
                    .unwrap_or_default();
                return Err(peer.error(format!(
                    "the node did not send its RDB: {}{before}",
                    quote(&header)
                )));
            }
            None => {
                return Err(peer.error(format!(
                    "expected $<length> or $EOF:<40-character mark>, got {}",
                    quote(&header)
                )));
            }
        };
        Ok(RdbFetch {
            peer,
            payload,
            replid,
            offset,
            received: 0,
            handed_out: 0,
            done: false,
        })
    }

    /// The connection after the whole RDB arrived ([`RdbFetch::next_chunk`] returned
    /// `None`), holding what the primary sent after the payload (the command stream of a
    /// replica); the end mark of the diskless form is dropped.
    pub(crate) fn into_peer(mut self) -> Peer {
        self.peer.buf.advance(self.handed_out);
        if self.done && matches!(self.payload, Payload::Marked(_)) {
            // `next_chunk` leaves the mark at the front once it handed out the last bytes.
            let mark = MARK_LEN.min(self.peer.buf.len());
            self.peer.buf.advance(mark);
        }
        self.peer
    }

    /// The next chunk of RDB bytes (at most [`CHUNK`] plus what arrived with the header),
    /// `None` once the whole RDB has arrived.
    pub async fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        self.peer.buf.advance(self.handed_out);
        self.handed_out = 0;
        if self.done {
            return Ok(None);
        }
        let n = match self.payload {
            Payload::Length(total) => {
                let left = total - self.received;
                if left == 0 {
                    self.done = true;
                    return Ok(None);
                }
                if self.peer.buf.is_empty() && self.peer.fill("the RDB payload").await? == 0 {
                    return Err(self.peer.error(format!(
                        "connection closed after {} of {total} RDB bytes",
                        self.received
                    )));
                }
                usize::try_from(left).map_or(self.peer.buf.len(), |l| l.min(self.peer.buf.len()))
            }
            Payload::Marked(mark) => loop {
                let len = self.peer.buf.len();
                if len >= MARK_LEN && self.peer.buf[len - MARK_LEN..] == mark {
                    // The payload ends here; the mark is not part of it.
                    self.done = true;
                    if len == MARK_LEN {
                        return Ok(None);
                    }
                    break len - MARK_LEN;
                }
                // The last MARK_LEN bytes may be the start of the mark: keep them back.
                if len > MARK_LEN {
                    break len - MARK_LEN;
                }
                if self.peer.fill("the RDB payload").await? == 0 {
                    return Err(self.peer.error(format!(
                        "connection closed after {} RDB bytes, before the end mark",
                        self.received + len as u64
                    )));
                }
            },
        };
        self.received += n as u64;
        self.handed_out = n;
        Ok(Some(&self.peer.buf[..n]))
    }

    /// RDB bytes handed out so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The RDB's length when the primary sent `$<len>`.
    pub fn total(&self) -> Option<u64> {
        match self.payload {
            Payload::Length(total) => Some(total),
            Payload::Marked(_) => None,
        }
    }

    /// What was received so far (the whole fetch once `next_chunk` returned `None`).
    pub fn fetched(&self) -> FetchedRdb {
        FetchedRdb {
            replid: self.replid.clone(),
            offset: self.offset,
            bytes: self.received,
            diskless: matches!(self.payload, Payload::Marked(_)),
        }
    }
}

/// `<40-character replid> <offset>` of a `+FULLRESYNC` line.
pub(crate) fn parse_fullresync(position: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(position).ok()?;
    let (id, offset) = text.split_once(' ')?;
    if id.len() != MARK_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((id.to_owned(), offset.trim().parse().ok()?))
}

/// `$EOF:<40 chars>` or `$<decimal length>`.
fn parse_payload_header(header: &[u8]) -> Option<Payload> {
    let rest = header.strip_prefix(b"$")?;
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        return Some(Payload::Marked(mark.try_into().ok()?));
    }
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Payload::Length(
        std::str::from_utf8(rest).ok()?.parse().ok()?,
    ))
}

pub(crate) fn replication_error(peer: &str, reason: String) -> Error {
    Error::Replication {
        peer: peer.to_owned(),
        reason,
    }
}

/// A peer's bytes for an error message: in double quotes, bytes outside printable ASCII (and
/// `\\`) escaped, cut after 120 bytes.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const SHOWN: usize = 120;
    let mut text = String::from("\"");
    for &b in &bytes[..bytes.len().min(SHOWN)] {
        if (b' '..=b'~').contains(&b) && b != b'\\' {
            text.push(char::from(b));
        } else {
            text.extend(b.escape_ascii().map(char::from));
        }
    }
    if bytes.len() > SHOWN {
        text.push('…');
    }
    text.push('"');
    text
}

/// The connection to a primary (of a fetch, or of a replica's link), with what was read and
/// not consumed yet.
pub(crate) struct Peer {
    pub(crate) stream: TcpStream,
    /// Bytes received and not consumed yet.
    pub(crate) buf: BytesMut,
    /// `HOST:PORT`, for errors.
    pub(crate) addr: String,
    /// Longest silence (or stalled write) accepted.
    pub(crate) idle: Duration,
}

impl Peer {
    /// Connects to `addr` (`HOST:PORT`) within `connect_timeout`.
    pub(crate) async fn connect(
        addr: &str,
        connect_timeout: Duration,
        idle: Duration,
    ) -> Result<Peer> {
        let stream = match timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(replication_error(addr, format!("cannot connect: {e}"))),
            Err(_) => {
                return Err(replication_error(
                    addr,
                    format!(
                        "cannot connect: no answer within {} s",
                        connect_timeout.as_secs_f64()
                    ),
                ));
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(Peer {
            stream,
            buf: BytesMut::with_capacity(CHUNK),
            addr: addr.to_owned(),
            idle,
        })
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        replication_error(&self.addr, reason.into())
    }

    /// Sends one command.
    pub(crate) async fn send(&mut self, args: &[&[u8]], name: &str) -> Result<()> {
        let mut out = Vec::with_capacity(64);
        crate::resp::write_command(&mut out, args);
        self.send_raw(&out, name).await
    }

    /// Sends bytes as they are (several commands pipelined).
    pub(crate) async fn send_raw(&mut self, bytes: &[u8], name: &str) -> Result<()> {
        match timeout(self.idle, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(format!("sending {name}: {e}"))),
            Err(_) => Err(self.error(format!(
                "sending {name}: blocked for {} s",
                self.idle.as_secs_f64()
            ))),
        }
    }

    /// Sends a command and reads its one-line reply.
    pub(crate) async fn call(&mut self, args: &[&[u8]], name: &str) -> Result<Vec<u8>> {
        self.send(args, name).await?;
        self.read_line(&format!("the reply to {name}")).await
    }

    /// Reads more from the socket into the buffer; `Ok(0)` when the peer closed.
    pub(crate) async fn fill(&mut self, waiting_for: &str) -> Result<usize> {
        self.buf.reserve(CHUNK);
        match timeout(self.idle, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(self.error(format!("reading {waiting_for}: {e}"))),
            Err(_) => Err(self.error(format!(
                "nothing received for {} s while waiting for {waiting_for}",
                self.idle.as_secs_f64()
            ))),
        }
    }

    /// The next non-empty line, without its `\r\n`. Empty lines are the keep-alives a
    /// primary sends while it prepares the RDB.
    pub(crate) async fn read_line(&mut self, waiting_for: &str) -> Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') {
                let line = self.buf.split_to(end + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                return Ok(line.to_vec());
            }
            if self.buf.len() > MAX_LINE {
                return Err(self.error(format!(
                    "expected {waiting_for}, got a line longer than {MAX_LINE} bytes: {}",
                    quote(&self.buf)
                )));
            }
            if self.fill(waiting_for).await? == 0 {
                let partial = if self.buf.is_empty() {
                    String::new()
                } else {
                    format!(" (after {})", quote(&self.buf))
                };
                return Err(self.error(format!(
                    "connection closed while waiting for {waiting_for}{partial}"
                )));
            }
        }
    }
}

// ---- the primary's side -------------------------------------------------------------------

/// How a primary frames the RDB of a full sync (`redis-formats.md` §3.3).
pub enum SyncForm {
    /// `$EOF:<40 random hex>\r\n` + RDB + the same 40 characters, streamed as it is encoded.
    /// Only for clients that announced `REPLCONF capa eof`.
    Diskless,
    /// `$<len>\r\n` + RDB. The length must be known first, so the RDB is staged at `path`
    /// (a temp file in the data folder, through `storage`, removed afterwards in every case).
    Staged {
        storage: Arc<dyn Storage>,
        path: PathBuf,
    },
}

/// A full sync for one client, prepared under the engine lock ([`send_rdb`]).
pub struct FullSync {
    /// The point-in-time view, taken at the offset the `+FULLRESYNC` line announced.
    pub snapshot: Box<dyn DatasetSnapshot + Send>,
    /// How to encode it; `replication` should hold the id and offset announced, as Redis
    /// records them in the RDB it sends.
    pub options: SaveOptions,
    pub form: SyncForm,
}

/// What the thread producing the RDB hands to a connection.
#[derive(Clone)]
enum Piece {
    Bytes(Bytes),
    /// Every byte was sent. Only this ends a transfer well: a producer that dies (a panic)
    /// closes the channel without it, and the client then gets no end mark.
    Done,
    Failed(String),
}

/// One client's part of a full sync's RDB, encoded once for every client that shares it
/// ([`start_diskless`], [`start_staged`]); [`send_transfer`] sends it.
pub struct Transfer(TransferKind);

enum TransferKind {
    /// The diskless form: the chunks of the one encoding, as the producer fans them out.
    Diskless {
        mark: Arc<str>,
        rx: mpsc::Receiver<Piece>,
    },
    /// The `$<len>` form: the shared staged file.
    Staged(Arc<StagedRdb>),
}

impl Transfer {
    /// A client's share of a staged RDB.
    pub fn staged(rdb: &Arc<StagedRdb>) -> Transfer {
        Transfer(TransferKind::Staged(Arc::clone(rdb)))
    }

    /// True for the diskless form.
    pub fn is_diskless(&self) -> bool {
        matches!(self.0, TransferKind::Diskless { .. })
    }
}

/// Sends the RDB of `sync` on `out` (whatever precedes it, such as `+FULLRESYNC`, is already
/// written) and returns its length. `peer` names the client in errors. The caller closes the
/// connection afterwards (rdb-only: nothing follows the RDB). On error the client gets a
/// truncated payload (never the end mark), so it cannot mistake it for a whole RDB.
pub async fn send_rdb<W: AsyncWrite + Unpin>(
    out: &mut W,
    sync: FullSync,
    peer: &str,
) -> Result<u64> {
    let FullSync {
        snapshot,
        options,
        form,
    } = sync;
    let transfer = match form {
        SyncForm::Diskless => start_diskless(snapshot, options, 1, || {})
            .pop()
            .ok_or_else(|| send_error(peer, "no transfer"))?,
        SyncForm::Staged { storage, path } => {
            Transfer::staged(&start_staged(snapshot, options, storage, path))
        }
    };
    send_transfer(out, transfer, peer).await
}

/// Starts encoding `snapshot` once, in the diskless form, for `members` clients; returns one
/// [`Transfer`] each. `on_end` runs when the producer is done (all bytes handed out, every
/// client gone, or a failure).
///
/// Fan-out and pace: the producing thread hands each chunk (one shared buffer) to every
/// client's bounded queue of `CHANNEL_CHUNKS` chunks and waits while any queue is full, so
/// the transfer goes at the pace of the slowest client, as Redis's diskless transfer does (one
/// child writing to every socket), and memory stays bounded: never more than
/// `CHANNEL_CHUNKS` + 1 chunks in flight, however many clients and however slow. A client
/// whose socket fails, or that stalls past the idle timeout ([`IDLE_TIMEOUT`], Redis's
/// `repl-timeout`), drops its queue and is left out of the next chunk; the others go on.
/// When the last one is gone the encoding stops.
pub fn start_diskless(
    snapshot: Box<dyn DatasetSnapshot + Send>,
    options: SaveOptions,
    members: usize,
    on_end: impl FnOnce() + Send + 'static,
) -> Vec<Transfer> {
    let mark: Arc<str> = random_mark().into();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..members)
        .map(|_| mpsc::channel::<Piece>(CHANNEL_CHUNKS))
        .unzip();
    tokio::task::spawn_blocking(move || {
        // Runs on unwinding too: a producer that panics still ends its transfer.
        let _end = OnDrop(Some(on_end));
        let mut fan = FanOut(txs);
        let control = SaveControl::default();
        let piece = match write_rdb_stream_controlled(&mut fan, &*snapshot, &options, &control) {
            Ok(_) => Piece::Done,
            Err(e) => Piece::Failed(e.to_string()),
        };
        for tx in &fan.0 {
            let _ = tx.blocking_send(piece.clone());
        }
    });
    rxs.into_iter()
        .map(|rx| {
            Transfer(TransferKind::Diskless {
                mark: Arc::clone(&mark),
                rx,
            })
        })
        .collect()
}

/// Starts writing `snapshot` to the temp file `path` for the `$<len>` form. Every client of
/// the transfer holds the returned handle (clients asking while it is written may attach to
/// it: [`StagedRdb::is_writing`]); the file is removed once the last handle is dropped, or
/// at once when nobody holds one (the producer then stops early).
pub fn start_staged(
    snapshot: Box<dyn DatasetSnapshot + Send>,
    options: SaveOptions,
    storage: Arc<dyn Storage>,
    path: PathBuf,
) -> Arc<StagedRdb> {
    let control = Arc::new(SaveControl::default());
    let rdb = Arc::new(StagedRdb {
        storage: Arc::clone(&storage),
        path: path.clone(),
        status: watch::Sender::new(StagedStatus::Writing),
        writing: AtomicBool::new(true),
        control: Arc::clone(&control),
    });
    let weak = Arc::downgrade(&rdb);
    tokio::task::spawn_blocking(move || {
        let mut outcome = StagedOutcome {
            rdb: weak,
            status: StagedStatus::Failed("the RDB producer died".into()),
            storage: &*storage,
            path: &path,
        };
        let written = (|| {
            let mut file = storage.create(&path)?;
            let (_, stats) = write_rdb_stream_controlled(
                FileSink::new(&mut *file),
                &*snapshot,
                &options,
                &control,
            )?;
            Ok::<_, Error>(stats.bytes)
        })();
        outcome.status = match written {
            Ok(len) => StagedStatus::Ready(len),
            Err(e) => StagedStatus::Failed(e.to_string()),
        };
    });
    rdb
}

/// Where a staged RDB is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StagedStatus {
    Writing,
    Ready(u64),
    Failed(String),
}

/// A staged RDB file shared by the clients of one disk-based full sync.
pub struct StagedRdb {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    status: watch::Sender<StagedStatus>,
    /// Mirrors `status == Writing`, readable without the watch's lock.
    writing: AtomicBool,
    control: Arc<SaveControl>,
}

impl StagedRdb {
    /// True while the file is being written: a client asking now may share it (Redis attaches
    /// a replica to a BGSAVE in progress, not to a finished one).
    pub fn is_writing(&self) -> bool {
        self.writing.load(Ordering::SeqCst)
    }
}

impl Drop for StagedRdb {
    fn drop(&mut self) {
        self.control.cancel.store(true, Ordering::Relaxed);
        remove_temp(&*self.storage, &self.path);
    }
}

/// Publishes the producer's outcome when dropped (a panic included); removes the file when
/// no client holds the RDB any more.
struct StagedOutcome<'a> {
    rdb: std::sync::Weak<StagedRdb>,
    status: StagedStatus,
    storage: &'a dyn Storage,
    path: &'a std::path::Path,
}

impl Drop for StagedOutcome<'_> {
    fn drop(&mut self) {
        match self.rdb.upgrade() {
            Some(rdb) => {
                rdb.writing.store(false, Ordering::SeqCst);
                rdb.status.send_replace(self.status.clone());
                // Dropping `rdb` here may be the last handle: its own drop removes the file.
            }
            // Everyone left while it was written (possibly before the file existed, so the
            // handle's drop found nothing to remove).
            None => remove_temp(self.storage, self.path),
        }
    }
}

fn remove_temp(storage: &dyn Storage, path: &std::path::Path) {
    if matches!(storage.len(path), Ok(Some(_)))
        && let Err(e) = storage.remove(path)
    {
        tracing::warn!("removing {}: {e}", path.display());
    }
}

/// Runs its closure when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// The diskless RDB stream as `io::Write`: each buffer the RDB writer flushes (about 256 KiB)
/// becomes one shared chunk, queued for every client still there (see [`start_diskless`]).
struct FanOut(Vec<mpsc::Sender<Piece>>);

impl io::Write for FanOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let chunk = Bytes::copy_from_slice(buf);
        self.0
            .retain(|tx| tx.blocking_send(Piece::Bytes(chunk.clone())).is_ok());
        if self.0.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "every client is gone",
            ));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends one client's [`Transfer`] on `out` and returns the RDB's length (see [`send_rdb`]).
/// While a staged RDB is written, a `\n` keep-alive goes out every second.
pub async fn send_transfer<W: AsyncWrite + Unpin>(
    out: &mut W,
    transfer: Transfer,
    peer: &str,
) -> Result<u64> {
    match transfer.0 {
        TransferKind::Diskless { mark, mut rx } => {
            write_timed(out, format!("$EOF:{mark}\r\n").as_bytes(), peer).await?;
            let sent = forward(out, &mut rx, peer).await?;
            write_timed(out, mark.as_bytes(), peer).await?;
            Ok(sent)
        }
        TransferKind::Staged(rdb) => {
            let mut status = rdb.status.subscribe();
            let start = tokio::time::Instant::now() + KEEPALIVE_PERIOD;
            let mut keepalive = tokio::time::interval_at(start, KEEPALIVE_PERIOD);
            let len = loop {
                let current = status.borrow_and_update().clone();
                match current {
                    StagedStatus::Ready(len) => break len,
                    StagedStatus::Failed(e) => return Err(send_error(peer, &e)),
                    StagedStatus::Writing => {}
                }
                tokio::select! {
                    changed = status.changed() => if changed.is_err() {
                        return Err(send_error(peer, "the RDB producer died"));
                    },
                    _ = keepalive.tick() => write_timed(out, b"\n", peer).await?,
                }
            };
            write_timed(out, format!("${len}\r\n").as_bytes(), peer).await?;
            let (tx, mut rx) = mpsc::channel::<Piece>(CHANNEL_CHUNKS);
            let reader = Arc::clone(&rdb);
            let reading = tokio::task::spawn_blocking(move || read_staged(&reader, &tx));
            let sent = forward(out, &mut rx, peer).await;
            // The reader stops at its next chunk once the queue is gone; waiting for it
            // releases its handle on the file now rather than later.
            drop(rx);
            let _ = reading.await;
            let sent = sent?;
            if sent != len {
                return Err(send_error(
                    peer,
                    &format!("the staged RDB gave {sent} bytes, {len} announced"),
                ));
            }
            Ok(sent)
        }
    }
}

/// Writes the chunks of `rx` to `out` until the producer says it is done.
async fn forward<W: AsyncWrite + Unpin>(
    out: &mut W,
    rx: &mut mpsc::Receiver<Piece>,
    peer: &str,
) -> Result<u64> {
    let mut sent = 0u64;
    loop {
        match rx.recv().await {
            Some(Piece::Bytes(chunk)) => {
                write_timed(out, &chunk, peer).await?;
                sent += chunk.len() as u64;
            }
            Some(Piece::Done) => return Ok(sent),
            Some(Piece::Failed(e)) => return Err(send_error(peer, &e)),
            None => return Err(send_error(peer, "the RDB producer died")),
        }
    }
}

/// Reads the staged file into `tx` chunk by chunk (one reader per client: each goes at its
/// own pace); stops when the client is gone.
fn read_staged(rdb: &StagedRdb, tx: &mpsc::Sender<Piece>) {
    let mut reader = match rdb.storage.open_read(&rdb.path) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = tx.blocking_send(Piece::Failed(e.to_string()));
            return;
        }
    };
    loop {
        let mut chunk = vec![0u8; STAGED_CHUNK];
        let n = match read_full(&mut *reader, &mut chunk) {
            Ok(n) => n,
            Err(e) => {
                let e = Error::io(&rdb.path, "read", e);
                let _ = tx.blocking_send(Piece::Failed(e.to_string()));
                return;
            }
        };
        if n == 0 {
            let _ = tx.blocking_send(Piece::Done);
            return;
        }
        chunk.truncate(n);
        if tx.blocking_send(Piece::Bytes(Bytes::from(chunk))).is_err() {
            return;
        }
    }
}

/// Reads until `buf` is full or the end; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

async fn write_timed<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8], peer: &str) -> Result<()> {
    match timeout(IDLE_TIMEOUT, out.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(send_error(peer, &format!("writing: {e}"))),
        Err(_) => Err(send_error(
            peer,
            &format!("the client read nothing for {} s", IDLE_TIMEOUT.as_secs()),
        )),
    }
}

fn send_error(peer: &str, reason: &str) -> Error {
    replication_error(peer, format!("full sync: {reason}"))
}

/// 40 random lowercase hex characters (Redis's `getRandomHexChars`), for the `$EOF:` mark.
fn random_mark() -> String {
    let state = std::hash::RandomState::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut mark = String::with_capacity(MARK_LEN);
    let mut round = 0u64;
    while mark.len() < MARK_LEN {
        let mut hasher = state.build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(round);
        round += 1;
        let word = hasher.finish();
        for i in 0..16 {
            if mark.len() < MARK_LEN {
                let digit = (word >> (i * 4)) & 0xf;
                mark.push(char::from(b"0123456789abcdef"[digit as usize]));
            }
        }
    }
    mark
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::model::Entry;
    use crate::rdb::check::check;
    use crate::storage::{FileView, SimStorage};
    use crate::store::{Store, Value, own};

    /// A snapshot whose database 0 takes `delay` to start iterating.
    struct Slow<S>(S, Duration);

    impl<S: DatasetSnapshot> DatasetSnapshot for Slow<S> {
        fn databases(&self) -> usize {
            self.0.databases()
        }
        fn db_size(&self, db: usize) -> (u64, u64) {
            self.0.db_size(db)
        }
        fn for_each_entry(
            &self,
            db: usize,
            visit: &mut dyn FnMut(Entry) -> Result<()>,
        ) -> Result<()> {
            if db == 0 {
                std::thread::sleep(self.1);
            }
            self.0.for_each_entry(db, visit)
        }
    }

    fn snapshot(delay: Duration) -> Box<dyn DatasetSnapshot + Send> {
        let mut store = Store::new(16);
        for i in 0..1000 {
            let key = format!("key:{i}");
            let value = Value::String(own(format!("value {i}").as_bytes()));
            store.insert(i % 3, own(key.as_bytes()), value, None);
        }
        Box::new(Slow(store.snapshot(), delay))
    }

    fn keys_in(rdb: &[u8]) -> u64 {
        let report = check(FileView::from_vec(rdb.to_vec()), &mut |_| {}).unwrap();
        assert_eq!(report.rdb_len, rdb.len() as u64);
        report.databases.values().map(|c| c.keys).sum()
    }

    fn staged(storage: &Arc<SimStorage>, delay: Duration) -> FullSync {
        storage.create_dir_all(Path::new("data")).unwrap();
        FullSync {
            snapshot: snapshot(delay),
            options: SaveOptions::default(),
            form: SyncForm::Staged {
                storage: Arc::clone(storage) as Arc<dyn Storage>,
                path: PathBuf::from("data/temp-sync-1.rdb"),
            },
        }
    }

    #[tokio::test]
    async fn diskless_form_is_framed_by_the_mark() {
        let sync = FullSync {
            snapshot: snapshot(Duration::ZERO),
            options: SaveOptions::default(),
            form: SyncForm::Diskless,
        };
        let mut out = Vec::new();
        let sent = send_rdb(&mut out, sync, "test").await.unwrap();
        let header_end = out.iter().position(|&b| b == b'\n').unwrap() + 1;
        let mark = out[b"$EOF:".len()..header_end - 2].to_vec();
        assert_eq!(mark.len(), MARK_LEN);
        assert!(out.ends_with(&mark));
        let rdb = &out[header_end..out.len() - MARK_LEN];
        assert_eq!(rdb.len() as u64, sent);
        assert_eq!(keys_in(rdb), 1000);
    }

    /// A staging that takes over two seconds sends a keep-alive each second, then the length;
    /// its temp file is gone afterwards.
    #[tokio::test]
    async fn staged_form_keeps_the_client_alive_then_sends_the_length() {
        let storage = Arc::new(SimStorage::new(1));
        let sync = staged(&storage, Duration::from_millis(2300));
        let mut out = Vec::new();
        let sent = send_rdb(&mut out, sync, "test").await.unwrap();
        let keepalives = out.iter().take_while(|&&b| b == b'\n').count();
        assert!((2..=3).contains(&keepalives), "{:?}", &out[..10]);
        let header = format!("${sent}\r\n");
        assert!(out[keepalives..].starts_with(header.as_bytes()));
        let rdb = &out[keepalives + header.len()..];
        assert_eq!(rdb.len() as u64, sent);
        assert_eq!(keys_in(rdb), 1000);
        no_temp_file_soon(&storage).await;
    }

    /// The temp file goes with the last handle on it, which the producing thread may hold
    /// a moment after the transfer ended.
    async fn no_temp_file_soon(storage: &SimStorage) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !storage.list(Path::new("data")).unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the temp file stayed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client gone while the RDB is staged: the producer stops and removes its temp file.
    #[tokio::test]
    async fn a_client_gone_during_staging_leaves_no_temp_file() {
        let storage = Arc::new(SimStorage::new(1));
        let sync = staged(&storage, Duration::from_millis(1500));
        let (mut client_end, reader) = tokio::io::duplex(64);
        drop(reader);
        let err = send_rdb(&mut client_end, sync, "127.0.0.1:1")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("replication with 127.0.0.1:1: full sync: writing")
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !storage.list(Path::new("data")).unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the temp file stayed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A snapshot that panics half way.
    struct Panics;

    impl DatasetSnapshot for Panics {
        fn databases(&self) -> usize {
            1
        }
        fn db_size(&self, _: usize) -> (u64, u64) {
            (2, 0)
        }
        fn for_each_entry(
            &self,
            _: usize,
            visit: &mut dyn FnMut(Entry) -> Result<()>,
        ) -> Result<()> {
            visit(Entry::new(0, "k", crate::model::Value::String("v".into())))?;
            panic!("a bug in a dataset");
        }
    }

    /// A producer that dies mid-way never lets the end mark out: the client sees a cut.
    #[tokio::test]
    async fn a_dead_producer_sends_no_end_mark() {
        let sync = FullSync {
            snapshot: Box::new(Panics),
            options: SaveOptions::default(),
            form: SyncForm::Diskless,
        };
        let mut out = Vec::new();
        let err = send_rdb(&mut out, sync, "test").await.unwrap_err();
        assert!(err.to_string().contains("the RDB producer died"), "{err}");
        let mark = &out[b"$EOF:".len()..b"$EOF:".len() + MARK_LEN];
        assert_eq!(out.windows(MARK_LEN).filter(|w| w == &mark).count(), 1);
    }

    /// Splits what `send_transfer` wrote in the diskless form into (mark, RDB).
    fn unframe(out: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let header_end = out.iter().position(|&b| b == b'\n').unwrap() + 1;
        let mark = out[b"$EOF:".len()..header_end - 2].to_vec();
        assert!(out.ends_with(&mark));
        (mark, out[header_end..out.len() - MARK_LEN].to_vec())
    }

    /// Three clients of one diskless transfer get the same mark and the same RDB; the one
    /// encoding ends once (`on_end`) after every byte was handed out.
    #[tokio::test]
    async fn one_diskless_encoding_serves_every_client() {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        let transfers = start_diskless(
            snapshot(Duration::ZERO),
            SaveOptions::default(),
            3,
            move || {
                flag.store(true, Ordering::SeqCst);
            },
        );
        assert_eq!(transfers.len(), 3);
        assert!(transfers.iter().all(Transfer::is_diskless));
        let sends = transfers.into_iter().map(|t| async move {
            let mut out = Vec::new();
            let sent = send_transfer(&mut out, t, "test").await.unwrap();
            (sent, out)
        });
        let results = futures::future::join_all(sends).await;
        let (mark0, rdb0) = unframe(&results[0].1);
        assert_eq!(keys_in(&rdb0), 1000);
        for (sent, out) in &results {
            let (mark, rdb) = unframe(out);
            assert_eq!((&mark, &rdb), (&mark0, &rdb0));
            assert_eq!(*sent, rdb.len() as u64);
        }
        // The producing thread ends right after handing out the last piece.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ended.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "on_end never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A client that stops reading holds the others back (the pace of the slowest, bounded
    /// memory); once its socket fails it is left out and the others finish.
    #[tokio::test]
    async fn a_stalled_client_holds_the_others_back_until_it_fails() {
        let mut store = Store::new(16);
        for i in 0..3000 {
            let value = Value::String(own(format!("{i:0>2000}").as_bytes()));
            store.insert(0, own(format!("key:{i}").as_bytes()), value, None);
        }
        let options = SaveOptions {
            compression: false,
            ..SaveOptions::default()
        };
        let mut transfers = start_diskless(Box::new(store.snapshot()), options, 2, || {});
        let stalled = transfers.pop().unwrap();
        let healthy = transfers.pop().unwrap();
        // The stalled client's socket buffer holds 64 KiB and nobody reads it.
        let (mut stalled_end, stalled_reader) = tokio::io::duplex(64 * 1024);
        let stalled_send =
            tokio::spawn(async move { send_transfer(&mut stalled_end, stalled, "slow").await });
        let (healthy_end, mut healthy_reader) = tokio::io::duplex(64 * 1024);
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = healthy_reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&buf[..n]);
                counter.fetch_add(n as u64, Ordering::SeqCst);
            }
        });
        let healthy_send = tokio::spawn(async move {
            let mut end = healthy_end;
            let sent = send_transfer(&mut end, healthy, "fast").await;
            drop(end);
            sent
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        // About 6 MB of RDB: the healthy client got at most what fits in the queues and
        // buffers before the stalled one blocked the producer.
        let held_back = received.load(Ordering::SeqCst);
        assert!(
            held_back < 3 * 1024 * 1024,
            "{held_back} bytes went through"
        );
        assert!(!healthy_send.is_finished());
        // The stalled client's socket fails: the other one completes.
        drop(stalled_reader);
        let err = stalled_send.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("full sync: writing"), "{err}");
        let sent = healthy_send.await.unwrap().unwrap();
        let out = reader.await.unwrap();
        let (_, rdb) = unframe(&out);
        assert_eq!(rdb.len() as u64, sent);
        assert_eq!(keys_in(&rdb), 3000);
    }

    /// Two clients of one staged RDB (the second attached while it was written) get the same
    /// bytes; the file is removed once both are done.
    #[tokio::test]
    async fn one_staged_file_serves_every_client_then_goes() {
        let storage = Arc::new(SimStorage::new(1));
        storage.create_dir_all(Path::new("data")).unwrap();
        let rdb = start_staged(
            snapshot(Duration::from_millis(300)),
            SaveOptions::default(),
            Arc::clone(&storage) as Arc<dyn Storage>,
            PathBuf::from("data/temp-sync-shared.rdb"),
        );
        assert!(rdb.is_writing());
        let (first, second) = (Transfer::staged(&rdb), Transfer::staged(&rdb));
        assert!(!first.is_diskless());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (sa, sb) = tokio::join!(
            send_transfer(&mut a, first, "a"),
            send_transfer(&mut b, second, "b")
        );
        assert!(!rdb.is_writing());
        let sent = sa.unwrap();
        assert_eq!(sb.unwrap(), sent);
        assert_eq!(a, b);
        let header = format!("${sent}\r\n");
        assert!(a.starts_with(header.as_bytes()));
        assert_eq!(keys_in(&a[header.len()..]), 1000);
        assert_eq!(storage.list(Path::new("data")).unwrap().len(), 1);
        drop(rdb);
        no_temp_file_soon(&storage).await;
    }

    #[test]
    fn fetching_can_run_on_any_runtime_thread() {
        fn assert_send<T: Send>(_: &T) {}
        let mut sink = |_: &[u8]| Ok(());
        let mut progress = |_: u64, _: Option<u64>| {};
        assert_send(&fetch_rdb("127.0.0.1:1", None, &mut sink, &mut progress));
        let mut out = Vec::new();
        let sync = FullSync {
            snapshot: snapshot(Duration::ZERO),
            options: SaveOptions::default(),
            form: SyncForm::Diskless,
        };
        assert_send(&send_rdb(&mut out, sync, "x"));
    }

    #[test]
    fn payload_headers() {
        assert!(matches!(
            parse_payload_header(b"$123"),
            Some(Payload::Length(123))
        ));
        assert!(matches!(
            parse_payload_header(b"$18446744073709551615"),
            Some(Payload::Length(u64::MAX))
        ));
        let mark = [b'a'; 40];
        let header = [&b"$EOF:"[..], &mark].concat();
        assert!(matches!(parse_payload_header(&header), Some(Payload::Marked(m)) if m == mark));
        for bad in [
            &b"$"[..],
            b"$-1",
            b"$12x",
            b"$ 12",
            b"$EOF:short",
            b"$18446744073709551616",
            b"+OK",
        ] {
            assert!(parse_payload_header(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn fullresync_lines() {
        let id = "8ee176ff411dfaff8bbdb2f7d8ad76af0149f687";
        assert_eq!(
            parse_fullresync(format!("{id} 1234").as_bytes()),
            Some((id.to_owned(), 1234))
        );
        assert_eq!(parse_fullresync(b"abc 1"), None);
        assert_eq!(parse_fullresync(format!("{id} -1").as_bytes()), None);
        assert_eq!(parse_fullresync(id.as_bytes()), None);
    }

    #[test]
    fn marks_are_random_hex() {
        let (a, b) = (random_mark(), random_mark());
        assert_eq!(a.len(), 40);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn quotes_are_escaped_and_short() {
        assert_eq!(quote(b"-ERR 'x'\r\n"), "\"-ERR 'x'\\r\\n\"");
        assert_eq!(quote(b"a\\b\x01"), "\"a\\\\b\\x01\"");
        assert!(quote(&[0u8; 1000]).ends_with("…\""));
    }
}
