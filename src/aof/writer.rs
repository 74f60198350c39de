//! The incr-file writer: one thread that owns the AOF file being appended to, and turns what
//! the engine propagates into bytes on disk under the `appendfsync` policy.
//!
//! The engine calls [`AofWriter::append`] (and [`AofWriter::annotate`]) under its own lock;
//! both only copy bytes into a shared queue and, when the thread sleeps, wake it. The engine
//! never waits on the disk. Connections wait for their *ack* instead: every stream byte below
//! the ack offset is as safe as the policy promises, published through a
//! [`tokio::sync::watch`] channel ([`wait_for_ack`]) and a blocking [`AckWaiter::wait`].
//!
//! | Policy | ack offset | what survives |
//! |---|---|---|
//! | [`AppendFsync::Always`] | durable offset: written **and** `fdatasync`ed | a power loss loses nothing acknowledged |
//! | [`AppendFsync::EverySec`] | written offset | a process crash loses nothing acknowledged; a power loss up to about a second |
//! | [`AppendFsync::No`] | written offset | a process crash loses nothing acknowledged; a power loss whatever the OS had not flushed |
//!
//! Under `everysec` and `no`, the thread lends its file out while it sleeps with nothing to
//! do (`Parked`): the connection waiting for its write then writes everything queued itself
//! ([`AckWait::acknowledged`]), as Redis writes its AOF buffer on its own event loop. That
//! saves two thread hand-offs per batch (waking the thread, and the thread waking the
//! connection), which on a small machine cost more than the `write(2)`. Whatever nobody
//! writes that way (an expiry's `DEL` from the cron, a replica's stream) the thread writes
//! within [`WriterTimings::lent_sweep`], when it also plans the next `everysec` sync.
//!
//! `always` is a group commit: the thread takes everything queued, writes it with one
//! `write_all`, syncs once and acknowledges it all; what arrives during the sync goes in the next
//! round. Rounds are *paced* (`GroupPace`): after a sync that covered a busy group, the next
//! one waits until as many appends are queued again, or for twice as long as that sync took
//! (at most [`WriterTimings::pace_max`]), whichever comes first. An `fdatasync` costs CPU as
//! well as time (about 100 µs of system time each on the virtual disk BENCHMARKS.md was
//! measured on), and a thread that syncs as soon as the last sync returns splits a steady load
//! into many small groups, each paying it; paced, the groups stay as large as the load makes
//! them. Twice, not once: measured, a wait of one sync still cut a `-P 16` load's groups short
//! (BENCHMARKS.md, "A pipelined batch's keys prefetched").
//!
//! A lone client's `always` commit runs on the server's I/O thread instead, when that thread
//! has nothing else to do ([`IdleCommit`]): about to sleep with the client waiting for its
//! ack, the thread writes and syncs the write itself, as Redis does in `beforeSleep`, and the
//! two hand-offs between threads (waking the writer, then the writer waking the connection)
//! drop out of the write's latency: on the 2-core virtual machine of BENCHMARKS.md a lone
//! client's `SET`s went from about 2,500 to 2,700–2,850 a second ("A lone client's commit on
//! the idle I/O thread"). For that the thread lends its file out between commits while one
//! client alone writes, one write per commit, and sleeps at most as long as a paced commit
//! would wait (twice the last sync, at most [`WriterTimings::pace_max`]): if no I/O thread
//! went idle by then, it commits the write itself. With two writers or more it keeps its
//! file, as before: a commit on the I/O thread would hold the other writers' commands behind
//! the sync, which the writer thread overlaps with them. A load that stops ends the lending;
//! the next write wakes the thread as before.
//!
//! `everysec` writes as data comes and syncs at most once per interval on a separate
//! thread (through [`WritableFile::background_syncer`]; files without one are synced by the
//! writer thread between writes), so writes go on while a sync runs (the thread lends its file
//! to the connections meanwhile, as when it sleeps); a sync still running after
//! 2 s while data is being written counts one `aof_delayed_fsync`, as Redis counts it.
//!
//! Failures (issue 5):
//! - a failed `fdatasync` **poisons** the writer for good: the bytes it covered may be lost
//!   although a later sync would "succeed" (Linux reports a writeback error once), so nothing it
//!   covered is acknowledged, the writer never syncs again, subscribers see [`Ack::Poisoned`] and
//!   writes are refused ([`AofWriter::writes_refused`]) until an operator restarts the server;
//! - a failed write (`ENOSPC`, `EIO`) truncates the file back to its length before the write, so
//!   no partial record stays behind, keeps the bytes queued, refuses writes with Redis's
//!   `MISCONF Errors writing to the AOF file: <strerror>`, and retries about once a second;
//!   the first retry that succeeds clears the error.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::AppendFsync;
use crate::error::{Error, Result};
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use crate::failpoints;
use crate::storage::{Storage, WritableFile};

/// How Redis 7.0 starts the error that refuses writes after an AOF write error
/// (`writeCommandsGetDiskErrorMessage`), without the leading `-`.
pub const MISCONF_AOF_PREFIX: &str = "MISCONF Errors writing to the AOF file: ";

/// The smallest group whose size paces the next `always` commit: below it, a commit starts as
/// soon as there is something to sync, so a lone client never waits for siblings.
const PACE_MIN_GROUP: u64 = 4;

/// The largest group an idle I/O thread commits itself ([`IdleCommit`]): a lone writer's one
/// write. A larger group means more writers, whose commands the writer thread's commit lets
/// run beside the sync.
const IDLE_COMMIT_MAX_GROUP: u64 = 1;

/// How many of the last sync's durations a paced commit waits at most for its group to fill.
const PACE_SYNCS: u32 = 2;

/// The last `always` commit, which paces the next (module docs): how many appends it covered,
/// when it ended and how long its sync took.
#[derive(Debug, Clone, Copy)]
struct GroupPace {
    group: u64,
    ended: Instant,
    took: Duration,
}

impl GroupPace {
    /// When the next commit may start with `queued` appends waiting: `None` at once, else
    /// the time to start even if no more come. A group as large as the last one goes at once
    /// (the load is as steady as before); a smaller one waits at most [`PACE_SYNCS`] times the
    /// last sync's duration (bounded by `pace_max`) after the last commit ended, so the wait a
    /// paced write adds is never more than [`PACE_SYNCS`] syncs.
    fn next_start(&self, queued: u64, now: Instant, pace_max: Duration) -> Option<Instant> {
        if self.group < PACE_MIN_GROUP || queued >= self.group {
            return None;
        }
        let due = self.ended + (self.took * PACE_SYNCS).min(pace_max);
        (due > now).then_some(due)
    }
}

/// What a connection waiting for its write learns from the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Every stream byte below this offset is acknowledged.
    Offset(u64),
    /// An `fdatasync` failed: bytes below `acked` were acknowledged before it and stay so;
    /// nothing after them ever will be.
    Poisoned { acked: u64, reason: Arc<str> },
    /// The writer stopped (closed or dropped) with bytes below `acked` acknowledged.
    Closed { acked: u64 },
}

impl Ack {
    /// The acknowledged offset.
    pub fn acked(&self) -> u64 {
        match self {
            Ack::Offset(acked) | Ack::Poisoned { acked, .. } | Ack::Closed { acked } => *acked,
        }
    }

    /// The outcome for a write that ends at stream offset `offset`: `None` while it must still
    /// wait, `Ok` once acknowledged, an error when it never will be.
    pub fn outcome(&self, offset: u64) -> Option<std::result::Result<(), AckError>> {
        if offset <= self.acked() {
            return Some(Ok(()));
        }
        match self {
            Ack::Offset(_) => None,
            Ack::Poisoned { reason, .. } => Some(Err(AckError::Poisoned(reason.clone()))),
            Ack::Closed { .. } => Some(Err(AckError::Closed)),
        }
    }
}

/// Why a write will never be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// The AOF is poisoned by a failed `fdatasync` (the reason names file and OS error).
    Poisoned(Arc<str>),
    /// The writer stopped before the write was acknowledged.
    Closed,
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Poisoned(reason) => write!(f, "the AOF is poisoned: {reason}"),
            AckError::Closed => f.write_str("the AOF writer stopped before the write was durable"),
        }
    }
}

impl std::error::Error for AckError {}

/// Waits, without blocking a runtime thread, until the write ending at stream offset `offset`
/// is acknowledged (`Ok`) or never will be.
pub async fn wait_for_ack(
    rx: &mut watch::Receiver<Ack>,
    offset: u64,
) -> std::result::Result<(), AckError> {
    let waited = rx
        .wait_for(|ack| ack.outcome(offset).is_some())
        .await
        .map(|ack| ack.outcome(offset));
    // An error: the sender is gone, and its last value is final.
    let outcome = match waited {
        Ok(outcome) => outcome,
        Err(_) => rx.borrow().outcome(offset),
    };
    outcome.unwrap_or(Err(AckError::Closed))
}

/// The ack state shared by the writer thread, [`AckWaiter`]s and watch subscribers.
struct AckCell {
    ack: Mutex<Ack>,
    changed: Condvar,
    /// Threads blocked on `changed` ([`AckWaiter::wait`]). Changed and read only under `ack`'s
    /// lock, so a publish that reads 0 cannot miss a waiter (it would see the new ack before
    /// it waits). Why: the futex `Condvar::notify_all` is a system call even with nobody
    /// waiting, and connections publish once per AOF write (async waiters use `tx`).
    blocked: AtomicUsize,
    tx: watch::Sender<Ack>,
}

impl AckCell {
    fn lock(&self) -> MutexGuard<'_, Ack> {
        self.ack.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `next`. An ack offset never moves back (an ack is a promise), and
    /// [`Ack::Poisoned`] and [`Ack::Closed`] are final.
    fn publish(&self, next: Ack) {
        let mut ack = self.lock();
        let next = match (&*ack, next) {
            (Ack::Poisoned { .. } | Ack::Closed { .. }, _) => return,
            (current, Ack::Offset(offset)) if offset <= current.acked() => return,
            (_, Ack::Offset(offset)) => Ack::Offset(offset),
            (current, Ack::Poisoned { acked, reason }) => Ack::Poisoned {
                acked: acked.max(current.acked()),
                reason,
            },
            (current, Ack::Closed { acked }) => Ack::Closed {
                acked: acked.max(current.acked()),
            },
        };
        *ack = next.clone();
        let blocked = self.blocked.load(Ordering::Relaxed) > 0;
        drop(ack);
        if blocked {
            self.changed.notify_all();
        }
        self.tx.send_replace(next);
    }
}

/// A cloneable handle to wait for acks from any thread, without the engine's lock.
#[derive(Clone)]
pub struct AckWaiter {
    cell: Arc<AckCell>,
}

impl fmt::Debug for AckWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckWaiter")
            .field("ack", &*self.cell.lock())
            .finish()
    }
}

impl AckWaiter {
    /// The current ack.
    pub fn current(&self) -> Ack {
        self.cell.lock().clone()
    }

    /// Blocks until the write ending at `offset` is acknowledged or never will be.
    pub fn wait(&self, offset: u64) -> std::result::Result<(), AckError> {
        let mut ack = self.cell.lock();
        loop {
            if let Some(outcome) = ack.outcome(offset) {
                return outcome;
            }
            self.cell.blocked.fetch_add(1, Ordering::Relaxed);
            ack = self
                .cell
                .changed
                .wait(ack)
                .unwrap_or_else(|p| p.into_inner());
            self.cell.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// As [`AckWaiter::wait`], giving up after `timeout` (`None`: still waiting).
    pub fn wait_timeout(
        &self,
        offset: u64,
        timeout: Duration,
    ) -> Option<std::result::Result<(), AckError>> {
        let deadline = Instant::now() + timeout;
        let mut ack = self.cell.lock();
        loop {
            if let Some(outcome) = ack.outcome(offset) {
                return Some(outcome);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.cell.blocked.fetch_add(1, Ordering::Relaxed);
            ack = self
                .cell
                .changed
                .wait_timeout(ack, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            self.cell.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A watch receiver for async waiters ([`wait_for_ack`]).
    pub fn subscribe(&self) -> watch::Receiver<Ack> {
        self.cell.tx.subscribe()
    }
}

/// A wait for the ack of one offset, taken under the engine lock and awaited without it.
pub struct AckWait {
    offset: u64,
    waiter: AckWaiter,
    /// The writer's queue, to write what is queued on the waiting thread when the writer
    /// lends its file ([`Parked`]).
    shared: Arc<Shared>,
}

impl fmt::Debug for AckWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckWait")
            .field("offset", &self.offset)
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}

impl AckWait {
    /// The offset waited for.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Waits without blocking a runtime thread; `Err` says why it never will be acknowledged.
    /// Under `everysec` and `no`, first writes what is queued itself when the writer thread
    /// lends its file, so the usual wait ends at once. Before that write it yields once, so
    /// the other connections with commands ready run theirs first and one write covers them
    /// all, as Redis writes its AOF buffer once per event-loop turn.
    pub async fn acknowledged(self) -> std::result::Result<(), String> {
        if self.shared.lends() {
            tokio::task::yield_now().await;
            self.shared.write_lent();
        }
        let mut rx = self.waiter.subscribe();
        wait_for_ack(&mut rx, self.offset)
            .await
            .map_err(|e| e.to_string())
    }

    /// Blocks the calling thread until acknowledged (or never). As
    /// [`AckWait::acknowledged`], first writes what is queued itself when the writer thread
    /// lends its file.
    pub fn wait_blocking(self) -> std::result::Result<(), String> {
        self.shared.write_lent();
        self.waiter.wait(self.offset).map_err(|e| e.to_string())
    }

    /// As [`AckWait::wait_blocking`], giving up after `timeout` (`None`: still waiting).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<std::result::Result<(), String>> {
        self.shared.write_lent();
        self.waiter
            .wait_timeout(self.offset, timeout)
            .map(|r| r.map_err(|e| e.to_string()))
    }
}

/// The writer's clocks. [`Default`] is Redis's; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterTimings {
    /// `everysec`: least time between the starts of two syncs. Default: 1 s.
    pub fsync_interval: Duration,
    /// Wait between retries of a failed write (Redis retries from `serverCron`). Default: 1 s.
    pub write_retry_interval: Duration,
    /// `everysec`: a sync running this long while data is written counts one
    /// `aof_delayed_fsync` (and then again every such period). Default: 2 s.
    pub delayed_fsync_after: Duration,
    /// `everysec`/`no`: how often a thread that lent its file out (`Parked`) wakes to write
    /// what no waiting connection wrote, and to plan the next `everysec` sync after such
    /// writes. Default: 10 ms.
    pub lent_sweep: Duration,
    /// `always`: the longest a commit waits for its group to fill after a busy one
    /// (it waits at most twice as long as the last sync took: module docs). Default: 2 ms.
    pub pace_max: Duration,
}

impl Default for WriterTimings {
    fn default() -> Self {
        WriterTimings {
            fsync_interval: Duration::from_secs(1),
            write_retry_interval: Duration::from_secs(1),
            delayed_fsync_after: Duration::from_secs(2),
            lent_sweep: Duration::from_millis(10),
            pace_max: Duration::from_millis(2),
        }
    }
}

/// The writer as `INFO persistence` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStatus {
    /// The policy in force.
    pub policy: AppendFsync,
    /// The file appended to now.
    pub path: PathBuf,
    /// `aof_last_write_status`: false while a write error is unresolved or after a failed sync.
    pub last_write_ok: bool,
    /// The last write or sync error, in full (file, operation, OS error); kept after recovery.
    pub last_error: Option<String>,
    /// The failed sync that poisoned the writer, if one did.
    pub poisoned: Option<String>,
    /// `aof_delayed_fsync`.
    pub delayed_fsync: u64,
    /// End of what was appended (stream offset).
    pub appended_offset: u64,
    /// End of what was written to the file(s).
    pub written_offset: u64,
    /// End of what a successful `fdatasync` covered.
    pub durable_offset: u64,
    /// What acks promise (see the module docs).
    pub ack_offset: u64,
    /// Successful `fdatasync` calls.
    pub fsyncs: u64,
    /// Of those, `always` commits an idle I/O thread made ([`IdleCommit`]).
    pub idle_commits: u64,
    /// Duration of the last successful `fdatasync`, microseconds.
    pub last_fsync_micros: u64,
    /// Longest successful `fdatasync`, microseconds.
    pub max_fsync_micros: u64,
    /// Length of the current file (`aof_current_size` of the incr part).
    pub file_len: u64,
    /// Bytes appended and not yet written (`aof_buffer_length`).
    pub pending_bytes: u64,
}

impl WriterStatus {
    /// `aof_last_write_status`: `ok` or `err`.
    pub fn last_write_status(&self) -> &'static str {
        if self.last_write_ok { "ok" } else { "err" }
    }
}

/// A file queued by [`AofWriter::switch_file`], with what was appended after the switch.
struct NextFile {
    path: PathBuf,
    file: Box<dyn WritableFile>,
    bytes: Vec<u8>,
    /// Stream offset at the end of `bytes`.
    end: u64,
}

/// The current file, lent out by the sleeping writer thread (`everysec` and `no` only) so
/// that a connection waiting for its write writes the queue itself ([`Shared::write_lent`]).
///
/// Invariants: the thread lends its file only with nothing of its own to do — no bytes taken
/// and unwritten, no failed write to repair or retry, no switch, sync request or close
/// pending, not poisoned; and it takes the file back (waiting while a writer holds it) as
/// soon as it wakes, before it looks at anything else. An `everysec` sync may be in flight on
/// the sync thread: writes go on beside it, as Redis's event loop writes while its
/// background fsync runs, and its end wakes the thread.
struct Parked {
    file: Box<dyn WritableFile>,
    /// Stream offset at the end of what is written to `file`.
    written: u64,
    /// A lent write failed: the file's length before it (to cut back to) and the error. The
    /// bytes went back to the front of the queue, and the thread repairs and retries.
    failed: Option<(u64, Error)>,
    /// The background sync in flight when the file was lent: its [`InFlight::delay_mark`],
    /// moved on by a lent write that counts a delayed fsync, and the delay that counts one
    /// ([`WriterTimings::delayed_fsync_after`]).
    in_flight: Option<(Instant, Duration)>,
    /// Stream offset at the end of what is synced in `file`: moved on by an [`IdleCommit`].
    synced: u64,
    /// An [`IdleCommit`]'s sync failed: the thread poisons the writer when it takes the file
    /// back (nothing that sync covered was acknowledged).
    sync_failed: Option<Error>,
}

/// A background sync that finished, posted by the sync thread.
struct SyncDone {
    sync: Box<dyn FnMut() -> Result<()> + Send>,
    generation: u64,
    covers: u64,
    elapsed: Duration,
    result: Result<()>,
}

/// What the writer thread reports, under the queue lock.
#[derive(Default)]
struct Stats {
    write_error: Option<String>,
    last_error: Option<String>,
    poisoned: Option<String>,
    delayed_fsync: u64,
    written: u64,
    durable: u64,
    fsyncs: u64,
    idle_commits: u64,
    last_fsync_micros: u64,
    max_fsync_micros: u64,
    file_len: u64,
    path: PathBuf,
    /// Bytes the thread took from the queue and has not written yet.
    unwritten: u64,
}

struct Queue {
    /// Bytes for the file the thread writes to now.
    head: Vec<u8>,
    /// Stream offset at the end of `head`.
    head_end: u64,
    /// Files to move to, in order; appends go to the last one once there is one.
    next_files: VecDeque<NextFile>,
    /// Stream offset at the end of everything appended.
    appended: u64,
    policy: AppendFsync,
    closing: bool,
    /// Stop at once, writing and syncing nothing more (a simulated crash).
    abandoned: bool,
    /// The thread sleeps on `work`: the next append must wake it.
    worker_idle: bool,
    /// The file, while the sleeping thread lends it out.
    parked: Option<Parked>,
    /// A lent file is being written to outside the lock; it comes back into `parked`.
    lent: bool,
    /// The thread woke and waits on `work` for the lent file to come back.
    reclaiming: bool,
    sync_done: Option<SyncDone>,
    /// Requests to write and sync everything queued ([`AofWriter::sync_all`]), counted; the
    /// thread serves them in order.
    sync_requested: u64,
    sync_served: u64,
    /// Appends in `head` (commands, not annotations), for pacing `always` commits.
    head_appends: u64,
    /// While an `always` commit is paced ([`GroupPace`]): appends do not wake the thread
    /// until `head` holds this many.
    pace_wake_at: Option<u64>,
    /// The idle I/O threads that commit for a lone writer, when attached ([`IdleCommit`]).
    idle: Option<Arc<IdleInner>>,
    stats: Stats,
}

impl Queue {
    /// Under `always`, whether the thread lends its file out between commits: an
    /// [`IdleCommit`] is attached and one connection alone is writing.
    fn lone_writer(&self) -> bool {
        self.policy == AppendFsync::Always && self.idle.as_ref().is_some_and(|i| i.lone_writer())
    }

    /// Takes in the outcome of a write of `bytes` (ending at stream offset `end`) to the lent
    /// file `parked`, made outside the lock: written, the file's end moves on and the buffer's
    /// capacity is kept for the next batch; failed, the bytes go back to the front of the
    /// queue and the thread will cut the file back to `before`. Returns whether it was
    /// written.
    fn settle_lent_write(
        &mut self,
        parked: &mut Parked,
        bytes: Vec<u8>,
        end: u64,
        before: u64,
        result: Result<()>,
    ) -> bool {
        match result {
            Ok(()) => {
                parked.written = end;
                self.stats.written = end;
                self.stats.file_len = parked.file.len();
                if self.head.is_empty() {
                    let mut buffer = bytes;
                    buffer.clear();
                    self.head = buffer;
                }
                true
            }
            Err(e) => {
                let mut returned = bytes;
                returned.extend_from_slice(&self.head);
                self.head = returned;
                parked.failed = Some((before, e));
                false
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        match self.next_files.back_mut() {
            Some(next) => {
                next.bytes.extend_from_slice(bytes);
                next.end = self.appended;
            }
            None => {
                self.head.extend_from_slice(bytes);
                self.head_end = self.appended;
            }
        }
    }

    fn queued_bytes(&self) -> u64 {
        (self.head.len() + self.next_files.iter().map(|n| n.bytes.len()).sum::<usize>()) as u64
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer thread: data, a switch, a policy change, close, a finished sync.
    work: Condvar,
    /// Set while writes must be refused (a write error or poisoning), for a lock-free check.
    refusing: AtomicBool,
    acks: Arc<AckCell>,
    /// Wakes [`AofWriter::sync_all`] callers: a request served.
    sync_served: Condvar,
    /// Set while the thread lends its file out under `always` for a lone writer, so the idle
    /// I/O threads' hook ([`IdleCommit::thread_parking`]) does not take the queue's lock at
    /// every park of a busy server.
    lent_always: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds plain data; a panic elsewhere does not make it inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes and syncs what is queued for the current file on the calling thread while the
    /// writer thread lends its file out under `always`, and acknowledges it ([`IdleCommit`]).
    /// Returns whether it committed. Unless `lone_writer` and the group is a single write, it
    /// wakes the thread to commit instead. A failed write gives the bytes back, a failed sync
    /// the poisoning, to the thread.
    fn commit_lent(&self, lone_writer: bool) -> bool {
        if !self.lent_always.load(Ordering::Acquire) {
            return false;
        }
        let mut queue = self.lock();
        if queue.head.is_empty()
            || queue.policy != AppendFsync::Always
            || queue.closing
            || !queue.next_files.is_empty()
            || queue.sync_requested > queue.sync_served
            || queue.parked.is_none()
        {
            return false;
        }
        if queue.head_appends > IDLE_COMMIT_MAX_GROUP || !lone_writer {
            // More than one client writes: hand the group over at once.
            Self::hand_over(&self.work, queue);
            return false;
        }
        let Some(mut parked) = queue.parked.take() else {
            return false;
        };
        queue.lent = true;
        queue.head_appends = 0;
        queue.pace_wake_at = None;
        let bytes = std::mem::take(&mut queue.head);
        let end = queue.head_end;
        drop(queue);
        let before = parked.file.len();
        let written = write_file(parked.file.as_mut(), &bytes);
        let started = Instant::now();
        let synced = written.is_ok().then(|| sync_file(parked.file.as_mut()));
        let elapsed = started.elapsed();
        let mut queue = self.lock();
        queue.lent = false;
        let mut wake = std::mem::take(&mut queue.reclaiming);
        if !queue.settle_lent_write(&mut parked, bytes, end, before, written) {
            wake = true;
        }
        let committed = matches!(synced, Some(Ok(())));
        match synced {
            Some(Ok(())) => {
                parked.synced = end;
                let stats = &mut queue.stats;
                stats.durable = end;
                stats.fsyncs += 1;
                stats.idle_commits += 1;
                let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                stats.last_fsync_micros = micros;
                stats.max_fsync_micros = stats.max_fsync_micros.max(micros);
            }
            Some(Err(e)) => {
                parked.sync_failed = Some(e);
                wake = true;
            }
            None => {}
        }
        queue.parked = Some(parked);
        if committed {
            // Published under the queue lock, so the thread taking the file back next sees
            // the ack and the file's state together.
            self.acks.publish(Ack::Offset(end));
        }
        if wake {
            Self::hand_over(&self.work, queue);
        }
        committed
    }

    /// Wakes the thread to take over: to commit what is queued while it lends its file out,
    /// or to take the file back when it waits for it (`reclaiming`) or a lent write failed.
    fn hand_over(work: &Condvar, mut queue: MutexGuard<'_, Queue>) {
        queue.worker_idle = false;
        drop(queue);
        work.notify_one();
    }

    /// True while the thread lends its file out and has bytes queued.
    fn lends(&self) -> bool {
        let queue = self.lock();
        queue.parked.is_some() && !queue.head.is_empty() && queue.policy != AppendFsync::Always
    }

    /// Writes what is queued for the current file on the calling thread, while the writer
    /// thread lends its file out ([`Parked`]), and acknowledges it; does nothing otherwise
    /// (the thread writes). Writes again while others queued more meanwhile, so concurrent
    /// callers combine into one writer. A failed write gives the bytes and the repair back to
    /// the thread.
    fn write_lent(&self) {
        let mut queue = self.lock();
        loop {
            if queue.head.is_empty()
                || queue.policy == AppendFsync::Always
                || queue.closing
                || !queue.next_files.is_empty()
                || queue.sync_requested > queue.sync_served
            {
                return;
            }
            let Some(mut parked) = queue.parked.take() else {
                return;
            };
            if let Some((delay_mark, delayed_after)) = &mut parked.in_flight
                && delay_mark.elapsed() >= *delayed_after
            {
                *delay_mark = Instant::now();
                warn_delayed_fsync();
                queue.stats.delayed_fsync += 1;
            }
            queue.lent = true;
            queue.head_appends = 0;
            let bytes = std::mem::take(&mut queue.head);
            let end = queue.head_end;
            drop(queue);
            let before = parked.file.len();
            let result = write_file(parked.file.as_mut(), &bytes);
            queue = self.lock();
            queue.lent = false;
            let mut wake = std::mem::take(&mut queue.reclaiming);
            let written = queue.settle_lent_write(&mut parked, bytes, end, before, result);
            queue.parked = Some(parked);
            if written {
                self.acks.publish(Ack::Offset(end));
            } else {
                wake = true;
            }
            if wake {
                // The thread wants its file back: leave the rest to it.
                Self::hand_over(&self.work, queue);
                return;
            }
        }
    }
}

/// Lets a server's I/O threads commit a lone client's `always` writes themselves when they
/// have nothing else to do (module docs). The server calls [`IdleCommit::thread_parking`] from
/// its runtime's `on_thread_park` hook and [`IdleCommit::thread_unparked`] from
/// `on_thread_unpark`; the engine attaches each AOF writer it starts ([`IdleCommit::attach`]).
/// Clones share state.
#[derive(Clone)]
pub struct IdleCommit {
    inner: Arc<IdleInner>,
}

struct IdleInner {
    writer: Mutex<Weak<Shared>>,
    /// I/O threads not parked. Only the last one to park commits: while another runs, the
    /// connections it serves may still add to the group.
    awake: AtomicIsize,
    /// The connection that last waited for an ack ([`IdleCommit::waiting`]).
    last_waiter: AtomicU64,
    /// When another connection than the one before last waited, in microseconds since
    /// `epoch`: idle commits stay off for [`LONE_WRITER_QUIET`] after it.
    other_waiter_at: AtomicU64,
    epoch: Instant,
}

/// How long after a second connection waited for an ack idle commits stay off (module docs:
/// a second writer's commands would wait behind a sync on the I/O thread).
const LONE_WRITER_QUIET: Duration = Duration::from_millis(100);

impl IdleInner {
    fn micros_now(&self) -> u64 {
        // At least 1, so that 0 in `other_waiter_at` means "never" (see `lone_writer`).
        u64::try_from(self.epoch.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// True when one connection alone waited for acks for [`LONE_WRITER_QUIET`].
    fn lone_writer(&self) -> bool {
        let other = self.other_waiter_at.load(Ordering::Relaxed);
        let quiet = u64::try_from(LONE_WRITER_QUIET.as_micros()).unwrap_or(u64::MAX);
        // The first waiter also stores a time: a writer is lone once it wrote alone that long.
        other != 0 && self.micros_now().saturating_sub(other) >= quiet
    }
}

impl fmt::Debug for IdleCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleCommit")
            .field("awake", &self.inner.awake.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl IdleCommit {
    /// For a runtime of `io_threads` worker threads, all running at first.
    pub fn new(io_threads: usize) -> Self {
        IdleCommit {
            inner: Arc::new(IdleInner {
                writer: Mutex::new(Weak::new()),
                awake: AtomicIsize::new(isize::try_from(io_threads).unwrap_or(isize::MAX)),
                last_waiter: AtomicU64::new(0),
                other_waiter_at: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// Commits for `writer` from now on (replacing the writer attached before), which starts
    /// lending its file out between `always` commits.
    pub fn attach(&self, writer: &AofWriter) {
        writer.shared.lock().idle = Some(self.inner.clone());
        *self.inner.writer.lock().unwrap_or_else(|p| p.into_inner()) =
            Arc::downgrade(&writer.shared);
    }

    /// Connection `client` (any id unique among the server's connections) waits for the ack
    /// of its writes. Idle commits serve one lone writer only.
    pub fn waiting(&self, client: u64) {
        let inner = &*self.inner;
        // `client + 1`: 0 stands for "nobody yet".
        let client = client.wrapping_add(1);
        if inner.last_waiter.swap(client, Ordering::Relaxed) != client {
            let was_lone = inner.lone_writer();
            inner
                .other_waiter_at
                .store(inner.micros_now(), Ordering::Relaxed);
            if was_lone {
                // The lone writer's last write may wait in a lent file for an idle moment
                // that a second client's commands put off: hand it to the thread now.
                let writer = inner
                    .writer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .upgrade();
                if let Some(shared) = writer {
                    let queue = shared.lock();
                    if queue.parked.is_some() && !queue.head.is_empty() {
                        Shared::hand_over(&shared.work, queue);
                    }
                }
            }
        }
    }

    /// An I/O thread is about to sleep. The last one to do so writes and syncs the queued
    /// `always` group when the writer thread lends its file and one connection alone has
    /// been writing; returns whether it did.
    pub fn thread_parking(&self) -> bool {
        if self.inner.awake.fetch_sub(1, Ordering::AcqRel) > 1 {
            return false;
        }
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        writer.is_some_and(|shared| shared.commit_lent(self.inner.lone_writer()))
    }

    /// An I/O thread woke.
    pub fn thread_unparked(&self) {
        self.inner.awake.fetch_add(1, Ordering::AcqRel);
    }
}

/// The AOF incr-file writer (see the module docs). Dropping it stops the thread as
/// [`AofWriter::close`] does, without reporting errors.
pub struct AofWriter {
    shared: Arc<Shared>,
    appended: u64,
    thread: Option<JoinHandle<Result<()>>>,
}

impl fmt::Debug for AofWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AofWriter")
            .field("appended", &self.appended)
            .finish_non_exhaustive()
    }
}

impl AofWriter {
    /// Starts the writer thread on `file` (open for appending at `path`, whose stream starts at
    /// offset `start_offset`), with Redis's timings.
    pub fn start(
        storage: Arc<dyn Storage>,
        path: PathBuf,
        file: Box<dyn WritableFile>,
        policy: AppendFsync,
        start_offset: u64,
    ) -> Result<AofWriter> {
        Self::start_with(
            storage,
            path,
            file,
            policy,
            start_offset,
            WriterTimings::default(),
        )
    }

    /// [`AofWriter::start`] with chosen timings.
    pub fn start_with(
        storage: Arc<dyn Storage>,
        path: PathBuf,
        file: Box<dyn WritableFile>,
        policy: AppendFsync,
        start_offset: u64,
        timings: WriterTimings,
    ) -> Result<AofWriter> {
        let (tx, _) = watch::channel(Ack::Offset(start_offset));
        let acks = Arc::new(AckCell {
            ack: Mutex::new(Ack::Offset(start_offset)),
            changed: Condvar::new(),
            blocked: AtomicUsize::new(0),
            tx,
        });
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                head: Vec::new(),
                head_end: start_offset,
                next_files: VecDeque::new(),
                appended: start_offset,
                policy,
                closing: false,
                abandoned: false,
                worker_idle: false,
                parked: None,
                lent: false,
                reclaiming: false,
                sync_done: None,
                sync_requested: 0,
                sync_served: 0,
                head_appends: 0,
                pace_wake_at: None,
                idle: None,
                stats: Stats {
                    written: start_offset,
                    durable: start_offset,
                    file_len: file.len(),
                    path: path.clone(),
                    ..Stats::default()
                },
            }),
            work: Condvar::new(),
            refusing: AtomicBool::new(false),
            acks,
            sync_served: Condvar::new(),
            lent_always: AtomicBool::new(false),
        });
        let worker = Worker {
            shared: shared.clone(),
            storage,
            path,
            file: Some(file),
            generation: 0,
            syncer: None,
            sync_thread: None,
            in_flight: None,
            timings,
            policy,
            unwritten: Vec::new(),
            unwritten_end: start_offset,
            written: start_offset,
            synced: start_offset,
            repair_to: None,
            next_retry: None,
            group: 0,
            pace: None,
            last_sync_start: None,
            poison: None,
            lending_always: false,
        };
        let thread = std::thread::Builder::new()
            .name("keeper-aof".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Io {
                path: None,
                op: "start the AOF writer thread",
                source: e,
            })?;
        Ok(AofWriter {
            shared,
            appended: start_offset,
            thread: Some(thread),
        })
    }

    /// Queues propagated stream bytes; the offset grows by their length.
    pub fn append(&mut self, stream_bytes: &[u8]) {
        if stream_bytes.is_empty() {
            return;
        }
        self.appended += stream_bytes.len() as u64;
        let mut queue = self.shared.lock();
        queue.appended = self.appended;
        queue.push(stream_bytes);
        if queue.next_files.is_empty() {
            queue.head_appends += 1;
        }
        match queue.pace_wake_at {
            // A paced commit waits for its group; its deadline wakes the thread otherwise.
            Some(wake_at) if queue.head_appends < wake_at => {}
            // The group is full: the thread commits it now, also when it lent its file.
            Some(_) => self.wake(queue),
            // Under `always`, a lent file waits for an idle I/O thread only while groups stay
            // small ([`IdleCommit`]); past that the thread takes the load back.
            None if queue.parked.is_some()
                && queue.policy == AppendFsync::Always
                && (queue.head_appends > IDLE_COMMIT_MAX_GROUP || !queue.lone_writer()) =>
            {
                self.wake(queue)
            }
            None => self.wake_unless_lent(queue),
        }
    }

    /// Queues an annotation line (`#…\r\n`): written to the file, not counted in the offset.
    pub fn annotate(&mut self, line: &[u8]) {
        debug_assert!(line.starts_with(b"#") && line.ends_with(b"\r\n"));
        self.insert(line);
    }

    /// Queues bytes that are written to the file but are not part of the stream, so not
    /// counted in the offset (annotations, a replica's `SELECT` before its primary's bytes).
    pub fn insert(&mut self, bytes: &[u8]) {
        let mut queue = self.shared.lock();
        queue.push(bytes);
        self.wake_unless_lent(queue);
    }

    /// Wakes the thread for new bytes, unless it lent its file out: then the connection
    /// waiting for them writes them, or the thread's sweep does
    /// ([`WriterTimings::lent_sweep`]).
    fn wake_unless_lent(&self, queue: MutexGuard<'_, Queue>) {
        if queue.parked.is_some() || queue.lent {
            return;
        }
        self.wake(queue);
    }

    fn wake(&self, mut queue: MutexGuard<'_, Queue>) {
        if std::mem::take(&mut queue.worker_idle) {
            drop(queue);
            self.shared.work.notify_one();
        }
    }

    /// Stream offset at the end of what was appended.
    pub fn offset(&self) -> u64 {
        self.appended
    }

    /// What acks promise now (see the module docs).
    pub fn ack_offset(&self) -> u64 {
        self.shared.acks.lock().acked()
    }

    /// The current ack.
    pub fn ack(&self) -> Ack {
        self.shared.acks.lock().clone()
    }

    /// A watch receiver of acks, for connections.
    pub fn subscribe(&self) -> watch::Receiver<Ack> {
        self.shared.acks.tx.subscribe()
    }

    /// A handle to wait for acks from other threads (blocking or async).
    pub fn acks(&self) -> AckWaiter {
        AckWaiter {
            cell: self.shared.acks.clone(),
        }
    }

    /// Moves appending to `file` at `path` (an AOF rewrite's new incr file): everything
    /// appended before this call goes to the current file, which is synced and closed; the
    /// rest goes to `file`.
    pub fn switch_file(&mut self, path: PathBuf, file: Box<dyn WritableFile>) {
        let mut queue = self.shared.lock();
        let end = queue.appended;
        queue.next_files.push_back(NextFile {
            path,
            file,
            bytes: Vec::new(),
            end,
        });
        self.wake(queue);
    }

    /// Blocks until everything queued so far (annotations included, in every file before a
    /// queued switch) is written and synced, under any policy. The AOF calls it before it
    /// persists a manifest that lists a file after the current one: a file that is not the last
    /// one must never lose its tail to a power loss (the loader would refuse it, as Redis's does).
    /// Fails, without waiting for a retry, when the writer has a write error, is poisoned or
    /// has stopped.
    pub fn sync_all(&self) -> Result<()> {
        let failed = |why: String| {
            Err(Error::Io {
                path: None,
                op: "sync the AOF before switching files",
                source: io::Error::other(why),
            })
        };
        let mut queue = self.shared.lock();
        queue.sync_requested += 1;
        let request = queue.sync_requested;
        queue.worker_idle = false;
        self.shared.work.notify_one();
        loop {
            if queue.sync_served >= request {
                return Ok(());
            }
            if let Some(reason) = &queue.stats.poisoned {
                return failed(format!("the AOF is poisoned: {reason}"));
            }
            if let Some(strerror) = &queue.stats.write_error {
                return failed(format!("AOF write error: {strerror}"));
            }
            if queue.closing || self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return failed("the AOF writer has stopped".into());
            }
            // A timeout, so an error that does not notify is still seen.
            queue = self
                .shared
                .sync_served
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Changes the `appendfsync` policy from the next round on. Acks never move back: what
    /// was acknowledged under `everysec` stays acknowledged under `always`.
    pub fn set_policy(&mut self, policy: AppendFsync) {
        let mut queue = self.shared.lock();
        queue.policy = policy;
        self.wake(queue);
    }

    /// The error to refuse writes with, as the server sends it (without the leading `-`):
    /// Redis's `MISCONF Errors writing to the AOF file: <strerror>` during a write error, and
    /// a message in the same form after a failed sync poisoned the AOF.
    pub fn writes_refused(&self) -> Option<String> {
        if !self.shared.refusing.load(Ordering::Acquire) {
            return None;
        }
        let queue = self.shared.lock();
        let stats = &queue.stats;
        if let Some(reason) = &stats.poisoned {
            return Some(format!(
                "{MISCONF_AOF_PREFIX}fsync failed ({reason}), so the AOF may not hold what it \
                 acknowledged. Writes are refused until the server is restarted."
            ));
        }
        stats
            .write_error
            .as_ref()
            .map(|strerror| format!("{MISCONF_AOF_PREFIX}{strerror}"))
    }

    /// The writer for `INFO persistence`.
    pub fn status(&self) -> WriterStatus {
        let ack_offset = self.ack_offset();
        let queue = self.shared.lock();
        let stats = &queue.stats;
        WriterStatus {
            policy: queue.policy,
            path: stats.path.clone(),
            last_write_ok: stats.write_error.is_none() && stats.poisoned.is_none(),
            last_error: stats.last_error.clone(),
            poisoned: stats.poisoned.clone(),
            delayed_fsync: stats.delayed_fsync,
            appended_offset: queue.appended,
            written_offset: stats.written,
            durable_offset: stats.durable,
            ack_offset,
            fsyncs: stats.fsyncs,
            idle_commits: stats.idle_commits,
            last_fsync_micros: stats.last_fsync_micros,
            max_fsync_micros: stats.max_fsync_micros,
            file_len: stats.file_len,
            pending_bytes: queue.queued_bytes() + stats.unwritten,
        }
    }

    /// Stops the thread as a crash would: what is queued is dropped, nothing more is written
    /// or synced (a sync already running finishes). Power-loss tests stop a node this way
    /// before cutting the power.
    pub fn abandon(mut self) {
        if let Some(thread) = self.thread.take() {
            {
                let mut queue = self.shared.lock();
                queue.abandoned = true;
                queue.closing = true;
                queue.worker_idle = false;
            }
            self.shared.work.notify_one();
            let _ = thread.join();
        }
    }

    /// What a connection that just ran commands waits for before replying: the ack of
    /// `offset` (the end of the stream after its commands). `None` when it is already
    /// acknowledged.
    pub fn ack_wait(&self, offset: u64) -> Option<AckWait> {
        if self.ack_offset() >= offset {
            return None;
        }
        Some(AckWait {
            offset,
            waiter: self.acks(),
            shared: self.shared.clone(),
        })
    }

    /// Writes everything queued, syncs it (under every policy) and stops the thread. Returns
    /// the error that poisoned the writer, or the error that kept the last bytes from the
    /// disk.
    pub fn close(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        {
            let mut queue = self.shared.lock();
            queue.closing = true;
            queue.worker_idle = false;
        }
        self.shared.work.notify_one();
        thread.join().unwrap_or_else(|_| {
            Err(Error::Io {
                path: None,
                op: "AOF writer",
                source: io::Error::other("the AOF writer thread panicked"),
            })
        })
    }
}

impl Drop for AofWriter {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("AOF writer stopped with an error: {e}");
        }
    }
}

/// A background sync on its way.
struct InFlight {
    /// When the sync started, or when it was last counted as delayed.
    delay_mark: Instant,
}

/// The writer thread.
struct Worker {
    shared: Arc<Shared>,
    storage: Arc<dyn Storage>,
    path: PathBuf,
    /// The current file; `None` only while lent out ([`Parked`]) as the thread sleeps in
    /// [`Worker::next_round`].
    file: Option<Box<dyn WritableFile>>,
    /// Counts file handles, so a background sync of a replaced handle does not hand its
    /// syncer back for reuse.
    generation: u64,
    /// The current file's background syncer, while no sync is in flight.
    syncer: Option<Box<dyn FnMut() -> Result<()> + Send>>,
    sync_thread: Option<SyncThread>,
    in_flight: Option<InFlight>,
    timings: WriterTimings,
    policy: AppendFsync,
    /// Bytes taken from the queue and not written yet (kept across a failed write).
    unwritten: Vec<u8>,
    /// Stream offset at the end of `unwritten`.
    unwritten_end: u64,
    written: u64,
    synced: u64,
    /// After a failed write: the file must be cut back to this length before writing again.
    repair_to: Option<u64>,
    /// After a failed write: when to try again.
    next_retry: Option<Instant>,
    /// Appends taken from the queue since the last inline sync.
    group: u64,
    /// The last inline sync, which paces the next `always` commit.
    pace: Option<GroupPace>,
    last_sync_start: Option<Instant>,
    /// The failed sync that poisoned the writer.
    poison: Option<Error>,
    /// Under `always`: the last commit looked like a lone writer's (one write, and none came
    /// during its sync), so the thread lends its file out between commits while the
    /// [`IdleCommit`] also sees one connection alone waiting. Set or cleared by each of the
    /// thread's commits; kept by a lent period in which an idle I/O thread committed, cleared
    /// by one with nothing written, so an idle server's thread sleeps until the next write.
    lending_always: bool,
}

struct SyncThread {
    requests: mpsc::Sender<SyncRequest>,
    thread: JoinHandle<()>,
}

struct SyncRequest {
    sync: Box<dyn FnMut() -> Result<()> + Send>,
    generation: u64,
    covers: u64,
}

impl Worker {
    fn run(mut self) -> Result<()> {
        let result = self.run_rounds();
        // Wait for a background sync in flight so its outcome is counted, then stop its thread.
        self.settle_background_sync();
        if let Some(sync_thread) = self.sync_thread.take() {
            drop(sync_thread.requests);
            let _ = sync_thread.thread.join();
        }
        let acked = self.shared.acks.lock().acked();
        self.shared.acks.publish(Ack::Closed { acked });
        match self.poison.take() {
            Some(poison) => Err(Error::Poisoned {
                source: Box::new(poison),
            }),
            None => result,
        }
    }

    fn run_rounds(&mut self) -> Result<()> {
        loop {
            let closing = self.next_round();
            if self.poison.is_some() || self.shared.lock().abandoned {
                return Ok(());
            }
            let retry_due = self.next_retry.is_none_or(|at| Instant::now() >= at);
            if !self.unwritten.is_empty()
                && (closing || retry_due)
                && let Err(e) = self.write_unwritten()
            {
                if closing {
                    return Err(e);
                }
                continue;
            }
            if self.unwritten.is_empty() && !self.switch_if_queued() {
                return Ok(());
            }
            match self.policy {
                AppendFsync::Always if self.written > self.synced => {
                    self.sync_inline();
                }
                AppendFsync::EverySec if self.everysec_sync_due() => self.start_everysec_sync(),
                _ => {}
            }
            if self.unwritten.is_empty() {
                self.serve_sync_request();
            }
            if closing && self.unwritten.is_empty() && self.queue_is_empty() {
                self.settle_background_sync();
                if self.poison.is_none() && self.written > self.synced {
                    self.sync_inline();
                }
                return Ok(());
            }
        }
    }

    fn queue_is_empty(&self) -> bool {
        let queue = self.shared.lock();
        queue.head.is_empty() && queue.next_files.is_empty()
    }

    /// Waits for something to do, takes the queued bytes of the current file and returns
    /// whether the writer is closing.
    fn next_round(&mut self) -> bool {
        let shared = self.shared.clone();
        let mut queue = shared.lock();
        loop {
            if let Some(done) = queue.sync_done.take() {
                drop(queue);
                self.background_sync_finished(done);
                queue = shared.lock();
                continue;
            }
            self.policy = queue.policy;
            if self.poison.is_some() {
                // Nothing will ever be written again: drop what is queued, wait for close.
                queue.head = Vec::new();
                queue.next_files.clear();
                self.unwritten = Vec::new();
                queue.stats.unwritten = 0;
                if queue.closing {
                    return true;
                }
                queue.worker_idle = true;
                queue = shared.work.wait(queue).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let now = Instant::now();
            let retry_at = self.next_retry.filter(|at| *at > now && !queue.closing);
            let has_data = !queue.head.is_empty() || !queue.next_files.is_empty();
            let sync_at = self.everysec_sync_at(now);
            let paced = self.paced_until(&queue, now);
            queue.pace_wake_at = paced.map(|(_, group)| group);
            let paced = paced.map(|(until, _)| until);
            let work = queue.closing
                || (retry_at.is_none()
                    && paced.is_none()
                    && (has_data || !self.unwritten.is_empty()))
                || queue.sync_requested > queue.sync_served
                || (self.policy == AppendFsync::Always && self.written > self.synced)
                || sync_at.is_some_and(|at| at <= now);
            if work {
                queue.pace_wake_at = None;
                let taken = std::mem::take(&mut queue.head_appends);
                if self.policy == AppendFsync::Always {
                    self.group += taken;
                }
                if !queue.head.is_empty() {
                    if self.unwritten.is_empty() {
                        // Swap buffers: the queue keeps the capacity of the last batch.
                        std::mem::swap(&mut self.unwritten, &mut queue.head);
                    } else {
                        self.unwritten.extend_from_slice(&queue.head);
                        queue.head.clear();
                    }
                    self.unwritten_end = queue.head_end;
                    queue.stats.unwritten = self.unwritten.len() as u64;
                }
                return queue.closing;
            }
            let mut deadline = [retry_at, sync_at, paced].into_iter().flatten().min();
            let lend_always = self.policy == AppendFsync::Always
                && self.lending_always
                && self.written == self.synced
                && queue.lone_writer();
            let lend = (self.policy != AppendFsync::Always || lend_always)
                && self.unwritten.is_empty()
                && self.repair_to.is_none()
                && self.next_retry.is_none();
            if lend {
                let file = self
                    .file
                    .take()
                    .expect("the thread holds its file when awake");
                queue.parked = Some(Parked {
                    file,
                    written: self.written,
                    failed: None,
                    in_flight: self
                        .in_flight
                        .as_ref()
                        .map(|sync| (sync.delay_mark, self.timings.delayed_fsync_after)),
                    synced: self.synced,
                    sync_failed: None,
                });
                if lend_always {
                    shared.lent_always.store(true, Ordering::Release);
                }
                // Under `always`, appends do not wake a thread that lent its file: an idle
                // I/O thread commits them, or this thread does when it wakes, no later than
                // a paced commit would.
                let sweep = now
                    + if lend_always {
                        self.pace.map_or(self.timings.pace_max, |pace| {
                            (pace.took * PACE_SYNCS).min(self.timings.pace_max)
                        })
                    } else {
                        self.timings.lent_sweep
                    };
                deadline = Some(deadline.map_or(sweep, |at| at.min(sweep)));
            }
            queue.worker_idle = true;
            queue = match deadline {
                Some(at) => {
                    let timeout = at.saturating_duration_since(now);
                    shared
                        .work
                        .wait_timeout(queue, timeout)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => shared.work.wait(queue).unwrap_or_else(|p| p.into_inner()),
            };
            queue.worker_idle = false;
            queue = self.reclaim(&shared, queue);
        }
    }

    /// Until when the next `always` commit waits for its group to fill ([`GroupPace`]) and
    /// how many appends fill it, or `None` to go now. Only a plain round is paced: not one
    /// that closes, serves a [`AofWriter::sync_all`], moves to the next file or holds bytes a
    /// failed write left.
    fn paced_until(&self, queue: &Queue, now: Instant) -> Option<(Instant, u64)> {
        if self.policy != AppendFsync::Always
            || queue.head.is_empty()
            || queue.closing
            || !queue.next_files.is_empty()
            || queue.sync_requested > queue.sync_served
            || !self.unwritten.is_empty()
        {
            return None;
        }
        let pace = self.pace?;
        let until = pace.next_start(queue.head_appends, now, self.timings.pace_max)?;
        Some((until, pace.group))
    }

    /// Takes the lent file back ([`Parked`]), waiting while a connection writes to it, with
    /// what was written meanwhile and a failed write to repair.
    fn reclaim<'a>(
        &mut self,
        shared: &'a Shared,
        mut queue: MutexGuard<'a, Queue>,
    ) -> MutexGuard<'a, Queue> {
        loop {
            if let Some(parked) = queue.parked.take() {
                shared.lent_always.store(false, Ordering::Release);
                self.file = Some(parked.file);
                self.written = self.written.max(parked.written);
                if self.policy == AppendFsync::Always && self.lending_always {
                    // An idle commit since the file was lent keeps the lending on; a lent
                    // period with none, and nothing queued, ends it.
                    self.lending_always = parked.synced > self.synced || !queue.head.is_empty();
                }
                self.synced = self.synced.max(parked.synced);
                if let Some(e) = parked.sync_failed {
                    drop(queue);
                    self.poison(e);
                    return shared.lock();
                }
                if let (Some(sync), Some((delay_mark, _))) = (&mut self.in_flight, parked.in_flight)
                {
                    sync.delay_mark = delay_mark;
                }
                if let Some((len, e)) = parked.failed {
                    // The bytes are back in the queue: cut the file back and write them again
                    // as after a failed write of this thread's own.
                    tracing::warn!("Error writing to the AOF file: {e}");
                    queue.stats.last_error = Some(e.to_string());
                    self.repair_to = Some(len);
                }
                return queue;
            }
            if !queue.lent {
                return queue;
            }
            queue.reclaiming = true;
            queue = shared.work.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The current file. Only [`Worker::next_round`] lends it out, and takes it back before
    /// it returns.
    fn file(&mut self) -> &mut dyn WritableFile {
        self.file
            .as_deref_mut()
            .expect("the thread holds its file when awake")
    }

    fn file_len(&self) -> u64 {
        self.file
            .as_deref()
            .expect("the thread holds its file when awake")
            .len()
    }

    /// Writes `unwritten` with one `write_all`. On failure the file is cut back to its length
    /// before the write, the bytes stay in `unwritten` and a retry is scheduled.
    fn write_unwritten(&mut self) -> Result<()> {
        let result = self.repair().and_then(|()| {
            if let Some(in_flight) = &mut self.in_flight
                && in_flight.delay_mark.elapsed() >= self.timings.delayed_fsync_after
            {
                in_flight.delay_mark = Instant::now();
                warn_delayed_fsync();
                self.shared.lock().stats.delayed_fsync += 1;
            }
            let file = self
                .file
                .as_deref_mut()
                .expect("the thread holds its file when awake");
            let before = file.len();
            let result = write_file(file, &self.unwritten);
            if result.is_err() {
                self.repair_to = Some(before);
                // Remove the partial bytes now, so the file never shows a torn record while
                // the error lasts; if this fails too, the next retry tries again first.
                let _ = self.repair();
            }
            result
        });
        match result {
            Ok(()) => {
                self.written = self.unwritten_end;
                self.unwritten.clear();
                self.next_retry = None;
                let recovered = {
                    let mut queue = self.shared.lock();
                    queue.stats.unwritten = 0;
                    queue.stats.written = self.written;
                    queue.stats.file_len = self.file_len();
                    queue.stats.write_error.take().is_some()
                };
                if recovered {
                    self.update_refusing();
                    tracing::warn!("AOF write error looks solved, Redis can write again.");
                }
                if self.policy != AppendFsync::Always {
                    self.shared.acks.publish(Ack::Offset(self.written));
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!("Error writing to the AOF file: {e}");
                self.next_retry = Some(Instant::now() + self.timings.write_retry_interval);
                {
                    let mut queue = self.shared.lock();
                    queue.stats.write_error = Some(strerror(&e));
                    queue.stats.last_error = Some(e.to_string());
                    queue.stats.file_len = self.file_len();
                }
                self.update_refusing();
                Err(e)
            }
        }
    }

    /// Cuts the file back to where the failed write started and reopens it, so the next write
    /// lands right after the last complete one (a handle from `create` keeps its position).
    fn repair(&mut self) -> Result<()> {
        let Some(len) = self.repair_to else {
            return Ok(());
        };
        self.storage.truncate(&self.path, len)?;
        let file = self.storage.open_append(&self.path)?;
        if file.len() != len {
            return Err(Error::io(
                &self.path,
                "truncate",
                io::Error::other(format!(
                    "the file has {} bytes after truncating to {len}",
                    file.len()
                )),
            ));
        }
        self.replace_file(file);
        self.repair_to = None;
        Ok(())
    }

    fn replace_file(&mut self, file: Box<dyn WritableFile>) {
        self.file = Some(file);
        self.generation += 1;
        self.syncer = None;
    }

    fn update_refusing(&self) {
        let queue = self.shared.lock();
        let refusing = queue.stats.write_error.is_some() || queue.stats.poisoned.is_some();
        self.shared.refusing.store(refusing, Ordering::Release);
    }

    /// Moves to the next queued file once the current one has everything appended before the
    /// switch: syncs and closes the current file. False when the writer got poisoned.
    fn switch_if_queued(&mut self) -> bool {
        let next = {
            let mut queue = self.shared.lock();
            if !queue.head.is_empty() {
                return true;
            }
            let Some(next) = queue.next_files.pop_front() else {
                return true;
            };
            queue.head = next.bytes;
            queue.head_end = next.end;
            (next.path, next.file)
        };
        self.settle_background_sync();
        if self.poison.is_none() && self.written > self.synced {
            self.sync_inline();
        }
        if self.poison.is_some() {
            return false;
        }
        let (path, file) = next;
        self.path = path;
        self.replace_file(file);
        self.repair_to = None;
        // The new file's first bytes were counted in no group: start it unpaced.
        self.pace = None;
        let mut queue = self.shared.lock();
        queue.stats.path = self.path.clone();
        queue.stats.file_len = self.file_len();
        true
    }

    /// Serves the [`AofWriter::sync_all`] requests made so far once everything queued before
    /// them is written: earlier files were synced when the thread left them, the current one
    /// is synced now (also when only annotations were written since the last sync).
    fn serve_sync_request(&mut self) {
        let requested = {
            let queue = self.shared.lock();
            if queue.sync_requested == queue.sync_served
                || !queue.head.is_empty()
                || !queue.next_files.is_empty()
            {
                return;
            }
            queue.sync_requested
        };
        self.sync_inline();
        if self.poison.is_some() {
            // The waiter sees the poisoning.
            return;
        }
        self.shared.lock().sync_served = requested;
        self.shared.sync_served.notify_all();
    }

    /// Syncs the current file on this thread. A failure poisons the writer.
    fn sync_inline(&mut self) {
        self.settle_background_sync();
        if self.poison.is_some() {
            return;
        }
        let covers = self.written;
        let started = Instant::now();
        self.last_sync_start = Some(started);
        let result = sync_file(self.file());
        let elapsed = started.elapsed();
        let group = std::mem::take(&mut self.group);
        self.pace = Some(GroupPace {
            group,
            ended: Instant::now(),
            took: elapsed,
        });
        if self.policy == AppendFsync::Always {
            // A lone writer: one write in the group, and none came while it was synced (a
            // client waiting for its reply sends nothing). Its next commits go to an idle I/O
            // thread ([`IdleCommit`]).
            let arrived = self.shared.lock().head_appends > 0;
            self.lending_always = result.is_ok() && group <= IDLE_COMMIT_MAX_GROUP && !arrived;
        }
        self.sync_finished(covers, elapsed, result);
        if self.policy == AppendFsync::EverySec && elapsed >= self.timings.delayed_fsync_after {
            // Writes waited for this sync as they wait for a delayed background one.
            let mut queue = self.shared.lock();
            if !queue.head.is_empty() {
                queue.stats.delayed_fsync += periods(elapsed, self.timings.delayed_fsync_after);
            }
        }
    }

    fn sync_finished(&mut self, covers: u64, elapsed: Duration, result: Result<()>) {
        match result {
            Ok(()) => {
                self.synced = self.synced.max(covers);
                {
                    let mut queue = self.shared.lock();
                    let stats = &mut queue.stats;
                    stats.durable = self.synced;
                    stats.fsyncs += 1;
                    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                    stats.last_fsync_micros = micros;
                    stats.max_fsync_micros = stats.max_fsync_micros.max(micros);
                }
                if self.policy == AppendFsync::Always {
                    self.shared.acks.publish(Ack::Offset(self.synced));
                }
            }
            Err(e) => self.poison(e),
        }
    }

    /// A failed sync: the bytes it covered may be gone although the process still reads them,
    /// and a later sync cannot bring them back, so the writer stops for good.
    fn poison(&mut self, e: Error) {
        tracing::error!(
            "Can't persist AOF: fdatasync failed ({e}). The AOF is poisoned: writes are refused \
             until the server is restarted."
        );
        let reason: Arc<str> = e.to_string().into();
        {
            let mut queue = self.shared.lock();
            queue.stats.poisoned = Some(strerror(&e));
            queue.stats.last_error = Some(e.to_string());
        }
        self.update_refusing();
        let acked = self.shared.acks.lock().acked();
        self.shared.acks.publish(Ack::Poisoned { acked, reason });
        if self.poison.is_none() {
            self.poison = Some(e);
        }
    }

    /// When the next `everysec` sync may start, if one is needed: `now` when none ran yet.
    /// (Never a fresh `Instant::now()`: compared with the caller's `now` it would always lie
    /// ahead, and a thread whose connections write everything themselves would wait for it
    /// forever, a zero timeout at a time.)
    fn everysec_sync_at(&self, now: Instant) -> Option<Instant> {
        if self.policy != AppendFsync::EverySec
            || self.written <= self.synced
            || self.in_flight.is_some()
        {
            return None;
        }
        Some(match self.last_sync_start {
            Some(at) => at + self.timings.fsync_interval,
            None => now,
        })
    }

    fn everysec_sync_due(&self) -> bool {
        let now = Instant::now();
        self.everysec_sync_at(now).is_some_and(|at| at <= now)
    }

    /// Starts an `everysec` sync on the sync thread, or runs it here when the file offers no
    /// background syncer (or the thread cannot start).
    fn start_everysec_sync(&mut self) {
        if self.syncer.is_none() {
            self.syncer = self.file().background_syncer();
        }
        if self.syncer.is_some() && self.sync_thread.is_none() {
            self.sync_thread = SyncThread::start(self.shared.clone());
        }
        let (Some(sync), Some(sync_thread)) = (self.syncer.take(), &self.sync_thread) else {
            self.sync_inline();
            return;
        };
        let request = SyncRequest {
            sync,
            generation: self.generation,
            covers: self.written,
        };
        let now = Instant::now();
        match sync_thread.requests.send(request) {
            Ok(()) => {
                self.last_sync_start = Some(now);
                self.in_flight = Some(InFlight { delay_mark: now });
            }
            Err(mpsc::SendError(request)) => {
                self.syncer = Some(request.sync);
                self.sync_thread = None;
                self.sync_inline();
            }
        }
    }

    fn background_sync_finished(&mut self, done: SyncDone) {
        self.in_flight = None;
        if done.generation == self.generation {
            self.syncer = Some(done.sync);
        }
        self.sync_finished(done.covers, done.elapsed, done.result);
    }

    /// Waits for the background sync in flight, if any, and takes its outcome.
    fn settle_background_sync(&mut self) {
        if self.in_flight.is_none() {
            return;
        }
        let shared = self.shared.clone();
        let mut queue = shared.lock();
        loop {
            if let Some(done) = queue.sync_done.take() {
                drop(queue);
                self.background_sync_finished(done);
                return;
            }
            queue.worker_idle = true;
            queue = shared.work.wait(queue).unwrap_or_else(|p| p.into_inner());
            queue.worker_idle = false;
        }
    }
}

impl SyncThread {
    /// `None` when the thread cannot start (the writer then syncs inline).
    fn start(shared: Arc<Shared>) -> Option<SyncThread> {
        let (requests, rx) = mpsc::channel::<SyncRequest>();
        let thread = std::thread::Builder::new()
            .name("keeper-aof-fsync".into())
            .spawn(move || {
                while let Ok(mut request) = rx.recv() {
                    let started = Instant::now();
                    let result = background_sync(&mut request.sync);
                    let done = SyncDone {
                        sync: request.sync,
                        generation: request.generation,
                        covers: request.covers,
                        elapsed: started.elapsed(),
                        result,
                    };
                    shared.lock().sync_done = Some(done);
                    shared.work.notify_one();
                }
            })
            .ok()?;
        Some(SyncThread { requests, thread })
    }
}

/// Redis's warning when it writes while its background fsync has run for 2 s (it then
/// writes anyway, and counts an `aof_delayed_fsync`); keeper writes beside a running sync
/// from the start, and counts and warns as Redis does.
fn warn_delayed_fsync() {
    tracing::warn!(
        "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer \
         without waiting for fsync to complete, this may slow down Redis."
    );
}

fn write_file(file: &mut dyn WritableFile, bytes: &[u8]) -> Result<()> {
    fail::fail_point!(failpoints::AOF_WRITE, |_| Err(failpoints::injected(
        failpoints::AOF_WRITE
    )));
    file.write_all(bytes)
}

fn sync_file(file: &mut dyn WritableFile) -> Result<()> {
    fail::fail_point!(failpoints::AOF_FSYNC, |_| Err(failpoints::injected(
        failpoints::AOF_FSYNC
    )));
    file.sync_data()
}

fn background_sync(sync: &mut Box<dyn FnMut() -> Result<()> + Send>) -> Result<()> {
    fail::fail_point!(failpoints::AOF_FSYNC, |_| Err(failpoints::injected(
        failpoints::AOF_FSYNC
    )));
    sync()
}

/// How many whole `period`s fit in `elapsed` (at least one when called).
fn periods(elapsed: Duration, period: Duration) -> u64 {
    if period.is_zero() {
        return 1;
    }
    u64::try_from(elapsed.as_nanos() / period.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What C's `strerror` says for the OS error behind `e` (Redis's MISCONF text), or the error's
/// own text when no OS error is behind it.
fn strerror(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => match source.raw_os_error() {
            Some(code) => {
                let text = io::Error::from_raw_os_error(code).to_string();
                let suffix = format!(" (os error {code})");
                text.strip_suffix(&suffix).unwrap_or(&text).to_string()
            }
            None => source.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
