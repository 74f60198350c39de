//! The writer on the simulated disk: acks per policy, acks against the durable image after a
//! power loss, group commit, poisoning, write errors and recovery, file switches, close.
//! No test asserts a duration: waits are bounded only to turn a hang into a failure.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::storage::{CrashMode, FaultError, FaultPlan, FileView, OpKind, SimStorage};

const DIR: &str = "appendonlydir";

fn fast() -> WriterTimings {
    WriterTimings {
        fsync_interval: Duration::from_millis(5),
        write_retry_interval: Duration::from_millis(5),
        delayed_fsync_after: Duration::from_millis(20),
        lent_sweep: Duration::from_millis(2),
        pace_max: Duration::from_millis(2),
    }
}

/// Timings under which a thread that lent its file out never sweeps: only the connections
/// waiting for their writes write.
fn no_sweep() -> WriterTimings {
    WriterTimings {
        lent_sweep: Duration::from_secs(3600),
        ..fast()
    }
}

/// Waits for the ack of everything appended as a connection does, on a thread named `waiter`;
/// panics after a long bound (so a waiter nobody writes for fails instead of hanging).
fn wait_as_a_connection(writer: &AofWriter) {
    let Some(wait) = writer.ack_wait(writer.offset()) else {
        return;
    };
    let end = writer.offset();
    thread::Builder::new()
        .name("waiter".into())
        .spawn(move || wait.wait_blocking())
        .unwrap();
    wait_until("the waiter's ack", || writer.ack_offset() >= end);
}

/// Waits until the thread sleeps with its file lent out.
fn wait_until_lent(writer: &AofWriter) {
    wait_until("the thread to lend its file", || {
        writer.shared.lock().parked.is_some()
    });
}

/// Timings under which a failed write is retried only at close.
fn no_retry() -> WriterTimings {
    WriterTimings {
        write_retry_interval: Duration::from_secs(3600),
        ..fast()
    }
}

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// Creates `name` in the AOF folder with its directory entry durable.
fn create(storage: &dyn Storage, name: &str) -> Box<dyn WritableFile> {
    storage.create_dir_all(Path::new(DIR)).unwrap();
    let file = storage.create(&path(name)).unwrap();
    storage.sync_dir(Path::new(DIR)).unwrap();
    file
}

fn start(storage: Arc<dyn Storage>, policy: AppendFsync, timings: WriterTimings) -> AofWriter {
    let file = create(storage.as_ref(), "a.1.incr.aof");
    AofWriter::start_with(storage, path("a.1.incr.aof"), file, policy, 0, timings).unwrap()
}

fn live(storage: &dyn Storage, name: &str) -> Vec<u8> {
    storage.read_all(&path(name)).unwrap().to_vec()
}

/// A SET as the propagated stream carries it.
fn record(i: usize) -> Vec<u8> {
    let key = format!("key:{i}");
    let value = format!("value-{i:06}");
    format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes()
}

/// Polls `done` until it holds; panics after a long bound so a bug fails instead of hanging.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// A gate syncs must pass: closed, it holds every sync until opened or let through one by
/// one (a slow disk without timing). Counts the syncs that reached it.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    /// Syncs that reached the gate.
    arrived: u64,
    /// Syncs a closed gate still lets through.
    let_through: u64,
}

impl Gate {
    fn closed() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    fn opened() -> Arc<Gate> {
        let gate = Gate::closed();
        gate.open();
        gate
    }

    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.arrived += 1;
        self.changed.notify_all();
        while !state.open && state.let_through == 0 {
            state = self.changed.wait(state).unwrap();
        }
        if !state.open {
            state.let_through -= 1;
        }
    }

    fn open(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }

    /// Lets one more sync through a closed gate (the one waiting, or the next to come).
    fn let_one_through(&self) {
        self.state.lock().unwrap().let_through += 1;
        self.changed.notify_all();
    }

    fn syncs(&self) -> u64 {
        self.state.lock().unwrap().arrived
    }

    fn wait_for_syncs(&self, n: u64) {
        let mut state = self.state.lock().unwrap();
        while state.arrived < n {
            state = self.changed.wait(state).unwrap();
        }
    }
}

/// Opens the gate when dropped: declared after the writer, it lets a failing test's writer
/// stop instead of hanging on a closed gate.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// [`SimStorage`] whose file syncs go through a [`Gate`]; with `background`, files offer a
/// background syncer that waits at the gate without blocking writes.
#[derive(Debug, Clone)]
struct GatedStorage {
    sim: SimStorage,
    gate: Arc<Gate>,
    background: bool,
    /// The name of the thread of every write, in order.
    writers: Arc<Mutex<Vec<String>>>,
}

struct GatedFile {
    inner: Arc<Mutex<Box<dyn WritableFile>>>,
    gate: Arc<Gate>,
    background: bool,
    writers: Arc<Mutex<Vec<String>>>,
}

/// The current thread's name, as [`GatedStorage::writers`] records it.
fn thread_name() -> String {
    thread::current().name().unwrap_or("unnamed").to_string()
}

impl WritableFile for GatedFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.writers.lock().unwrap().push(thread_name());
        self.inner.lock().unwrap().write_all(buf)
    }
    fn sync_data(&mut self) -> Result<()> {
        self.gate.pass();
        self.inner.lock().unwrap().sync_data()
    }
    fn len(&self) -> u64 {
        self.inner.lock().unwrap().len()
    }
    fn background_syncer(&self) -> Option<Box<dyn FnMut() -> Result<()> + Send>> {
        if !self.background {
            return None;
        }
        let inner = self.inner.clone();
        let gate = self.gate.clone();
        Some(Box::new(move || {
            gate.pass();
            inner.lock().unwrap().sync_data()
        }))
    }
}

impl GatedStorage {
    fn wrap(&self, file: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(GatedFile {
            inner: Arc::new(Mutex::new(file)),
            gate: self.gate.clone(),
            background: self.background,
            writers: self.writers.clone(),
        })
    }
}

impl Storage for GatedStorage {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(self.wrap(self.sim.create(path)?))
    }
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(self.wrap(self.sim.open_append(path)?))
    }
    fn read_all(&self, path: &Path) -> Result<FileView> {
        self.sim.read_all(path)
    }
    fn open_read(&self, path: &Path) -> Result<Box<dyn io::Read + Send>> {
        self.sim.open_read(path)
    }
    fn len(&self, path: &Path) -> Result<Option<u64>> {
        self.sim.len(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.sim.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.sim.remove(path)
    }
    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()> {
        self.sim.rename_dir(from, to)
    }
    fn remove_dir(&self, dir: &Path) -> Result<()> {
        self.sim.remove_dir(dir)
    }
    fn exchange_dirs(&self, a: &Path, b: &Path) -> Result<()> {
        self.sim.exchange_dirs(a, b)
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.sim.truncate(path, len)
    }
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.sim.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.sim.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn available_space(&self, dir: &Path) -> Result<u64> {
        self.sim.available_space(dir)
    }
}

fn gated(seed: u64, gate: Arc<Gate>, background: bool) -> (SimStorage, Arc<GatedStorage>) {
    let sim = SimStorage::new(seed);
    let storage = Arc::new(GatedStorage {
        sim: sim.clone(),
        gate,
        background,
        writers: Arc::default(),
    });
    (sim, storage)
}

#[test]
fn acks_and_files_under_each_policy() {
    for policy in [AppendFsync::Always, AppendFsync::EverySec, AppendFsync::No] {
        let gate = Gate::opened();
        let (sim, storage) = gated(7, gate.clone(), true);
        let mut writer = start(storage.clone(), policy, fast());
        let mut expected = b"#TS:1700000000\r\n".to_vec();
        writer.annotate(b"#TS:1700000000\r\n");
        assert_eq!(writer.offset(), 0, "annotations are not stream bytes");
        for i in 0..20 {
            writer.append(&record(i));
            expected.extend_from_slice(&record(i));
        }
        let end = writer.offset();
        assert_eq!(end as usize, expected.len() - 16);
        writer.acks().wait(end).unwrap();
        assert_eq!(writer.ack_offset(), end, "{policy:?}");
        let status = writer.status();
        assert_eq!(status.written_offset, end, "{policy:?}");
        assert_eq!(status.pending_bytes, 0, "{policy:?}");
        assert_eq!(status.file_len, expected.len() as u64, "{policy:?}");
        assert!(status.last_write_ok && status.poisoned.is_none());
        match policy {
            AppendFsync::Always => {
                assert_eq!(status.durable_offset, end);
                assert!(status.fsyncs >= 1);
            }
            AppendFsync::EverySec => {
                wait_until("an everysec sync", || writer.status().durable_offset == end);
            }
            AppendFsync::No => assert_eq!((status.fsyncs, gate.syncs()), (0, 0)),
        }
        assert_eq!(live(storage.as_ref(), "a.1.incr.aof"), expected);
        writer.close().unwrap();
        // Close synced everything, under every policy.
        sim.crash(CrashMode::DropUnsynced);
        assert_eq!(live(&sim, "a.1.incr.aof"), expected, "{policy:?}");
    }
}

#[test]
fn nothing_acknowledged_under_always_is_lost_at_a_power_loss() {
    for (seed, mode) in [
        (1, CrashMode::DropUnsynced),
        (2, CrashMode::KeepRandomPrefix),
        (3, CrashMode::TearLastWrite),
        (4, CrashMode::ZeroFillTail),
    ] {
        let sim = SimStorage::new(seed);
        let writer = start(Arc::new(sim.clone()), AppendFsync::Always, fast());
        let acks = writer.acks();
        // The engine: the writer and the stream it was given, under one lock.
        let engine = Arc::new(Mutex::new((writer, Vec::<u8>::new())));
        let clients: Vec<_> = (0..8)
            .map(|client| {
                let engine = engine.clone();
                let acks = acks.clone();
                thread::spawn(move || {
                    for i in 0..100 {
                        let offset = {
                            let mut engine = engine.lock().unwrap();
                            let bytes = record(client * 1000 + i);
                            engine.0.append(&bytes);
                            engine.1.extend_from_slice(&bytes);
                            engine.0.offset()
                        };
                        acks.wait(offset).unwrap();
                    }
                })
            })
            .collect();
        wait_until("some acks", || acks.current().acked() > 10_000);
        let acked = acks.current().acked() as usize;
        sim.crash(mode);
        let image = live(&sim, "a.1.incr.aof");
        let stream = engine.lock().unwrap().1.clone();
        assert!(
            image.len() >= acked,
            "seed {seed}: {} < {acked}",
            image.len()
        );
        assert_eq!(image[..acked], stream[..acked], "seed {seed} {mode:?}");
        for client in clients {
            client.join().unwrap();
        }
        let (writer, _) = Arc::into_inner(engine).unwrap().into_inner().unwrap();
        writer.close().unwrap();
    }
}

#[test]
fn always_groups_what_arrives_during_a_sync_into_one_commit() {
    let gate = Gate::closed();
    let (_sim, storage) = gated(8, gate.clone(), false);
    let mut writer = start(storage, AppendFsync::Always, fast());
    let _open = OpenOnDrop(gate.clone());
    writer.append(&record(0));
    gate.wait_for_syncs(1);
    // The first sync is stuck on the disk; 100 commands arrive meanwhile.
    for i in 1..=100 {
        writer.append(&record(i));
    }
    assert_eq!(
        writer.ack_offset(),
        0,
        "nothing is acked before its sync returns"
    );
    gate.open();
    writer.acks().wait(writer.offset()).unwrap();
    assert_eq!(
        gate.syncs(),
        2,
        "one sync for the first command, one for the 100"
    );
    assert_eq!(writer.status().fsyncs, 2);
    writer.close().unwrap();
}

#[test]
fn a_group_commit_is_paced_by_the_last_group_and_its_sync() {
    let now = Instant::now();
    let took = Duration::from_micros(300);
    let cap = Duration::from_millis(2);
    let busy = GroupPace {
        group: 20,
        ended: now,
        took,
    };
    assert_eq!(
        busy.next_start(3, now, cap),
        Some(now + took * PACE_SYNCS),
        "fewer appends than the last group wait up to two syncs' duration"
    );
    assert_eq!(
        busy.next_start(20, now, cap),
        None,
        "a full group goes at once"
    );
    assert_eq!(
        busy.next_start(3, now + took * PACE_SYNCS, cap),
        None,
        "the wait is over"
    );
    let slow = GroupPace {
        took: Duration::from_secs(1),
        ..busy
    };
    assert_eq!(
        slow.next_start(1, now, cap),
        Some(now + cap),
        "the wait is bounded"
    );
    for group in 0..PACE_MIN_GROUP {
        let quiet = GroupPace { group, ..busy };
        assert_eq!(
            quiet.next_start(1, now, cap),
            None,
            "after a group of {group}: a lone client never waits for siblings"
        );
    }
}

#[test]
fn always_waits_for_a_busy_group_to_fill_before_its_next_commit() {
    let gate = Gate::closed();
    let (_sim, storage) = gated(31, gate.clone(), false);
    // A paced commit waits at most twice as long as the last sync took: no cap here, and the gate
    // holds the paced-by sync long enough that this thread's appends all come within it.
    let timings = WriterTimings {
        pace_max: Duration::from_secs(3600),
        ..fast()
    };
    let mut writer = start(storage, AppendFsync::Always, timings);
    let _open = OpenOnDrop(gate.clone());
    let hold = Duration::from_millis(500);
    writer.append(&record(0));
    gate.wait_for_syncs(1);
    for i in 1..=8 {
        writer.append(&record(i));
    }
    gate.let_one_through();
    // The 8 that came during the first sync: a group of 8, synced slowly.
    gate.wait_for_syncs(2);
    thread::sleep(hold);
    gate.let_one_through();
    writer.acks().wait(writer.offset()).unwrap();
    // One append would start a commit at once without pacing; paced, the next commit waits
    // for 8 appends (or for twice as long as the last sync took), and takes them all.
    for i in 9..=15 {
        writer.append(&record(i));
        thread::sleep(Duration::from_millis(10));
        assert_eq!(gate.syncs(), 2, "no commit before the group of 8 is full");
    }
    writer.append(&record(16));
    gate.wait_for_syncs(3);
    thread::sleep(hold);
    gate.let_one_through();
    writer.acks().wait(writer.offset()).unwrap();
    assert_eq!(
        gate.syncs(),
        3,
        "the 8 appends after the group of 8 make one commit"
    );
    // Fewer than the last group never come: the commit goes when its wait is over.
    writer.append(&record(17));
    gate.open();
    writer.acks().wait(writer.offset()).unwrap();
    assert_eq!(gate.syncs(), 4);
    assert_eq!(writer.status().fsyncs, 4);
    writer.close().unwrap();
}

#[test]
fn a_failed_fsync_poisons_for_good() {
    for policy in [AppendFsync::Always, AppendFsync::EverySec] {
        let gate = Gate::opened();
        let (sim, storage) = gated(9, gate.clone(), true);
        let mut writer = start(storage.clone(), policy, fast());
        writer.append(b"first\r\n");
        let first = writer.offset();
        writer.acks().wait(first).unwrap();
        wait_until("the first sync", || writer.status().durable_offset == first);
        sim.set_faults(FaultPlan {
            fail_nth: Some((1, Some(OpKind::SyncData), FaultError::Io)),
            ..FaultPlan::default()
        });
        writer.append(b"second\r\n");
        let second = writer.offset();
        let outcome = writer.acks().wait(second);
        let status = writer.status();
        match policy {
            // Never acknowledged: the failed sync covered it.
            AppendFsync::Always => {
                assert!(matches!(outcome, Err(AckError::Poisoned(_))), "{outcome:?}");
                assert_eq!(writer.ack_offset(), first);
            }
            // Acknowledged when written (the everysec promise); the sync then fails.
            _ => {
                assert_eq!(outcome, Ok(()));
                wait_until("poisoning", || writer.status().poisoned.is_some());
            }
        }
        let status = if status.poisoned.is_some() {
            status
        } else {
            writer.status()
        };
        assert_eq!(status.poisoned.as_deref(), Some("Input/output error"));
        assert!(!status.last_write_ok);
        assert_eq!(status.durable_offset, first);
        let refused = writer.writes_refused().unwrap();
        assert!(
            refused.starts_with("MISCONF Errors writing to the AOF file: fsync failed"),
            "{refused}"
        );
        assert!(refused.contains("restarted"), "{refused}");
        assert!(
            matches!(writer.ack(), Ack::Poisoned { acked, .. } if acked == writer.ack_offset())
        );

        // Later appends are never acknowledged and never synced.
        let syncs = gate.syncs();
        writer.append(b"third\r\n");
        let third = writer.offset();
        assert!(matches!(
            writer.acks().wait(third),
            Err(AckError::Poisoned(_))
        ));
        let err = writer.close().unwrap_err();
        assert!(err.to_string().contains("fdatasync"), "{err}");
        assert_eq!(
            gate.syncs(),
            syncs,
            "{policy:?}: no sync after the failed one"
        );
        sim.crash(CrashMode::DropUnsynced);
        assert!(live(&sim, "a.1.incr.aof").starts_with(b"first\r\n"));
    }
}

#[test]
fn enospc_removes_the_partial_write_refuses_writes_and_recovers() {
    let sim = SimStorage::new(10);
    let mut writer = start(Arc::new(sim.clone()), AppendFsync::EverySec, fast());
    let (one, two) = (record(1), record(2));
    writer.append(&one);
    writer.acks().wait(writer.offset()).unwrap();
    sim.set_faults(FaultPlan {
        byte_budget: Some(one.len() as u64 + 7),
        ..FaultPlan::default()
    });
    writer.append(&two);
    wait_until("the write error", || !writer.status().last_write_ok);
    // The 7 bytes that fit were removed: the file holds only complete records.
    assert_eq!(live(&sim, "a.1.incr.aof"), one);
    assert_eq!(
        writer.writes_refused().as_deref(),
        Some("MISCONF Errors writing to the AOF file: No space left on device")
    );
    let status = writer.status();
    assert_eq!(status.last_write_status(), "err");
    assert_eq!(status.ack_offset, one.len() as u64);
    assert_eq!(status.pending_bytes, two.len() as u64);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("No space left on device"))
    );
    assert!(status.poisoned.is_none());

    // Space comes back: a retry writes the queued bytes and clears the error.
    sim.set_faults(FaultPlan::default());
    writer.acks().wait(writer.offset()).unwrap();
    wait_until("the status to clear", || writer.status().last_write_ok);
    assert_eq!(writer.writes_refused(), None);
    assert_eq!(live(&sim, "a.1.incr.aof"), [one, two].concat());
    writer.close().unwrap();
}

#[test]
fn eio_on_write_under_always_acks_nothing_until_written_and_synced() {
    for seed in 0..8 {
        let sim = SimStorage::new(seed);
        let mut writer = start(Arc::new(sim.clone()), AppendFsync::Always, no_retry());
        let (one, two) = (record(1), record(2));
        writer.append(&one);
        writer.acks().wait(writer.offset()).unwrap();
        sim.set_faults(FaultPlan {
            fail_nth: Some((1, Some(OpKind::Write), FaultError::Io)),
            ..FaultPlan::default()
        });
        writer.append(&two);
        wait_until("the write error", || !writer.status().last_write_ok);
        assert_eq!(live(&sim, "a.1.incr.aof"), one, "seed {seed}");
        assert_eq!(writer.ack_offset(), one.len() as u64);
        assert_eq!(
            writer.writes_refused().as_deref(),
            Some("MISCONF Errors writing to the AOF file: Input/output error")
        );
        // Close retries the write (the fault hit once), syncs and reports success.
        writer.close().unwrap();
        sim.crash(CrashMode::DropUnsynced);
        assert_eq!(
            live(&sim, "a.1.incr.aof"),
            [one, two].concat(),
            "seed {seed}"
        );
    }
}

#[test]
fn close_reports_a_write_that_still_fails() {
    let sim = SimStorage::new(11);
    let mut writer = start(Arc::new(sim.clone()), AppendFsync::No, no_retry());
    writer.append(b"kept\r\n");
    writer.acks().wait(writer.offset()).unwrap();
    sim.set_faults(FaultPlan {
        byte_budget: Some(8),
        ..FaultPlan::default()
    });
    writer.append(b"does not fit\r\n");
    let end = writer.offset();
    let acks = writer.acks();
    let err = writer.close().unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(acks.wait(end), Err(AckError::Closed));
    assert_eq!(live(&sim, "a.1.incr.aof"), b"kept\r\n");
}

#[test]
fn switch_file_splits_exactly_at_the_call() {
    let gate = Gate::closed();
    let (sim, storage) = gated(12, gate.clone(), false);
    let mut writer = start(storage.clone(), AppendFsync::Always, fast());
    let _open = OpenOnDrop(gate.clone());
    writer.append(b"old-1\r\n");
    gate.wait_for_syncs(1);
    // The switch is queued behind bytes the thread has not taken yet.
    writer.append(b"old-2\r\n");
    let file = create(storage.as_ref(), "a.2.incr.aof");
    writer.switch_file(path("a.2.incr.aof"), file);
    writer.annotate(b"#keeper-repl:abc:14\r\n");
    writer.append(b"new-1\r\n");
    gate.open();
    let end = writer.offset();
    writer.acks().wait(end).unwrap();
    assert_eq!(end, 21);
    let status = writer.status();
    assert_eq!(status.path, path("a.2.incr.aof"));
    assert_eq!(status.file_len, 28);
    writer.close().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    assert_eq!(live(&sim, "a.1.incr.aof"), b"old-1\r\nold-2\r\n");
    assert_eq!(
        live(&sim, "a.2.incr.aof"),
        b"#keeper-repl:abc:14\r\nnew-1\r\n"
    );
}

#[test]
fn switch_file_syncs_the_old_file_under_no() {
    let sim = SimStorage::new(13);
    let mut writer = start(Arc::new(sim.clone()), AppendFsync::No, fast());
    writer.append(b"old\r\n");
    let file = create(&sim, "a.2.incr.aof");
    writer.switch_file(path("a.2.incr.aof"), file);
    writer.append(b"new\r\n");
    writer.acks().wait(writer.offset()).unwrap();
    let status = writer.status();
    assert_eq!(
        status.durable_offset, 5,
        "the old file was synced at the switch"
    );
    assert_eq!(status.fsyncs, 1);
    sim.crash(CrashMode::DropUnsynced);
    assert_eq!(live(&sim, "a.1.incr.aof"), b"old\r\n");
    drop(writer);
}

#[test]
fn everysec_writes_go_on_while_a_slow_sync_runs_and_count_as_delayed() {
    let gate = Gate::closed();
    let (_sim, storage) = gated(14, gate.clone(), true);
    let timings = WriterTimings {
        fsync_interval: Duration::ZERO,
        ..fast()
    };
    let mut writer = start(storage, AppendFsync::EverySec, timings);
    let _open = OpenOnDrop(gate.clone());
    writer.append(&record(0));
    gate.wait_for_syncs(1);
    // Past the delay the writer writes anyway (and counts it), as Redis does after 2 s.
    thread::sleep(timings.delayed_fsync_after * 2);
    writer.append(&record(1));
    writer.acks().wait(writer.offset()).unwrap();
    let status = writer.status();
    assert_eq!(status.delayed_fsync, 1);
    assert_eq!(status.fsyncs, 0, "the sync still runs");
    assert_eq!(status.durable_offset, 0);
    gate.open();
    let end = writer.offset();
    wait_until("a sync of everything", || {
        writer.status().durable_offset == end
    });
    writer.close().unwrap();
}

#[test]
fn set_policy_changes_what_an_ack_means() {
    let gate = Gate::opened();
    let (_sim, storage) = gated(15, gate.clone(), false);
    let mut writer = start(storage, AppendFsync::No, fast());
    writer.append(b"one\r\n");
    writer.acks().wait(writer.offset()).unwrap();
    assert_eq!(writer.status().fsyncs, 0);
    writer.set_policy(AppendFsync::Always);
    writer.append(b"two\r\n");
    writer.acks().wait(writer.offset()).unwrap();
    let status = writer.status();
    assert_eq!(status.policy, AppendFsync::Always);
    assert_eq!(status.durable_offset, 10);
    assert!(gate.syncs() >= 1);
    writer.close().unwrap();
}

#[test]
fn async_waiters_see_acks_and_poisoning() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sim = SimStorage::new(16);
    let mut writer = start(Arc::new(sim.clone()), AppendFsync::Always, fast());
    let mut rx = writer.subscribe();
    writer.append(b"one\r\n");
    let one = writer.offset();
    runtime.block_on(wait_for_ack(&mut rx, one)).unwrap();
    sim.set_faults(FaultPlan {
        fail_nth: Some((1, Some(OpKind::SyncData), FaultError::Io)),
        ..FaultPlan::default()
    });
    writer.append(b"two\r\n");
    let two = writer.offset();
    let outcome = runtime.block_on(wait_for_ack(&mut rx, two));
    assert!(matches!(outcome, Err(AckError::Poisoned(_))), "{outcome:?}");
    // What was acknowledged before stays acknowledged.
    assert_eq!(runtime.block_on(wait_for_ack(&mut rx, one)), Ok(()));
    assert!(writer.close().is_err());
    assert!(runtime.block_on(wait_for_ack(&mut rx, two)).is_err());
}

#[test]
fn strerror_matches_c() {
    let e = Error::io("f", "write", io::Error::from_raw_os_error(28));
    assert_eq!(strerror(&e), "No space left on device");
    let e = Error::io("f", "fdatasync", io::Error::from_raw_os_error(5));
    assert_eq!(strerror(&e), "Input/output error");
}

#[test]
fn a_thread_blocked_on_an_ack_is_woken_by_the_publish() {
    // Publishes skip the condvar's wake while nobody blocks: one that blocks is counted
    // under the lock, so the publish that reaches its offset wakes it.
    let (tx, _) = watch::channel(Ack::Offset(0));
    let waiter = AckWaiter {
        cell: Arc::new(AckCell {
            ack: Mutex::new(Ack::Offset(0)),
            changed: Condvar::new(),
            blocked: std::sync::atomic::AtomicUsize::new(0),
            tx,
        }),
    };
    for round in 1..=50u64 {
        let (blocking, timed) = (waiter.clone(), waiter.clone());
        let a = thread::spawn(move || blocking.wait(round * 10));
        let b = thread::spawn(move || timed.wait_timeout(round * 10, Duration::from_secs(60)));
        if round % 2 == 0 {
            // Half the rounds publish only once both sleep on the condvar.
            wait_until("both waiters blocked", || {
                let _ack = waiter.cell.lock();
                waiter
                    .cell
                    .blocked
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == 2
            });
        }
        waiter.cell.publish(Ack::Offset(round * 10));
        assert_eq!(a.join().unwrap(), Ok(()));
        assert_eq!(b.join().unwrap(), Some(Ok(())));
        assert_eq!(
            waiter
                .cell
                .blocked
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}

#[test]
fn acks_never_move_back() {
    let (tx, _) = watch::channel(Ack::Offset(0));
    let cell = AckCell {
        ack: Mutex::new(Ack::Offset(0)),
        changed: Condvar::new(),
        blocked: std::sync::atomic::AtomicUsize::new(0),
        tx,
    };
    cell.publish(Ack::Offset(10));
    cell.publish(Ack::Offset(5));
    assert_eq!(*cell.lock(), Ack::Offset(10));
    cell.publish(Ack::Poisoned {
        acked: 3,
        reason: "x".into(),
    });
    assert_eq!(cell.lock().acked(), 10);
    cell.publish(Ack::Offset(20));
    cell.publish(Ack::Closed { acked: 30 });
    assert!(matches!(*cell.lock(), Ack::Poisoned { acked: 10, .. }));
}

#[test]
fn a_waiting_connection_writes_the_queue_itself_while_the_thread_sleeps() {
    for policy in [AppendFsync::EverySec, AppendFsync::No] {
        let (sim, storage) = gated(21, Gate::opened(), true);
        let mut writer = start(storage.clone(), policy, no_sweep());
        wait_until_lent(&writer);
        let mut expected = Vec::new();
        for round in 0..3 {
            // Two batches queued, then one waiter: it writes both with one write.
            for i in 0..2 {
                writer.append(&record(round * 2 + i));
                expected.extend_from_slice(&record(round * 2 + i));
            }
            wait_as_a_connection(&writer);
            assert_eq!(writer.ack_offset(), writer.offset(), "{policy:?}");
            assert_eq!(live(storage.as_ref(), "a.1.incr.aof"), expected);
        }
        let writers = storage.writers.lock().unwrap().clone();
        assert_eq!(
            writers, ["waiter"; 3],
            "{policy:?}: one write per waiter, by it"
        );
        let status = writer.status();
        assert_eq!(status.written_offset, writer.offset());
        assert_eq!(status.file_len, expected.len() as u64);
        assert_eq!(status.pending_bytes, 0);
        // A switch, a policy change and close take the file back and go on as before.
        writer.set_policy(AppendFsync::Always);
        writer.append(&record(9));
        expected.extend_from_slice(&record(9));
        wait_as_a_connection(&writer);
        assert_eq!(writer.status().durable_offset, writer.offset());
        assert_eq!(
            storage.writers.lock().unwrap().last().unwrap(),
            "keeper-aof"
        );
        writer.close().unwrap();
        sim.crash(CrashMode::DropUnsynced);
        assert_eq!(live(&sim, "a.1.incr.aof"), expected, "{policy:?}");
    }
}

#[test]
fn a_waiting_connection_writes_beside_a_running_everysec_sync() {
    let gate = Gate::closed();
    let (sim, storage) = gated(24, gate.clone(), true);
    let timings = no_sweep();
    let mut writer = start(storage.clone(), AppendFsync::No, timings);
    let _open = OpenOnDrop(gate.clone());
    let mut expected = record(0);
    wait_until_lent(&writer);
    writer.append(&record(0));
    wait_as_a_connection(&writer);
    // Switching to everysec wakes the thread: it starts a sync of what is written (held at
    // the gate), and lends its file again while the sync runs.
    writer.set_policy(AppendFsync::EverySec);
    gate.wait_for_syncs(1);
    wait_until_lent(&writer);
    writer.append(&record(1));
    expected.extend_from_slice(&record(1));
    wait_as_a_connection(&writer);
    // Past the delay a lent write still goes on, and counts a delayed fsync as Redis does.
    thread::sleep(timings.delayed_fsync_after * 2);
    writer.append(&record(2));
    expected.extend_from_slice(&record(2));
    wait_as_a_connection(&writer);
    assert_eq!(storage.writers.lock().unwrap().as_slice(), ["waiter"; 3]);
    let status = writer.status();
    assert_eq!(status.delayed_fsync, 1);
    assert_eq!(
        (status.fsyncs, status.durable_offset),
        (0, 0),
        "the sync still runs"
    );
    assert_eq!(writer.ack_offset(), writer.offset());
    // The sync's end wakes the thread, which takes its file back and syncs the rest.
    gate.open();
    let end = writer.offset();
    wait_until("a sync of everything", || {
        writer.status().durable_offset == end
    });
    writer.close().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    assert_eq!(live(&sim, "a.1.incr.aof"), expected);
}

#[test]
fn the_thread_writes_and_syncs_what_no_connection_waits_for() {
    let (sim, storage) = gated(22, Gate::opened(), true);
    let mut writer = start(storage.clone(), AppendFsync::EverySec, fast());
    wait_until_lent(&writer);
    writer.append(&record(1));
    // Nobody waits: the sweep writes it, then the everysec sync covers it.
    let end = writer.offset();
    wait_until("the sweep's write and sync", || {
        writer.status().durable_offset == end
    });
    assert_eq!(storage.writers.lock().unwrap().as_slice(), ["keeper-aof"]);
    writer.close().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    assert_eq!(live(&sim, "a.1.incr.aof"), record(1));
}

#[test]
fn a_lent_write_that_fails_leaves_no_partial_record_and_the_thread_takes_over() {
    let sim = SimStorage::new(23);
    let mut writer = start(Arc::new(sim.clone()), AppendFsync::EverySec, no_sweep());
    let (one, two) = (record(1), record(2));
    wait_until_lent(&writer);
    writer.append(&one);
    wait_as_a_connection(&writer);
    wait_until_lent(&writer);
    sim.set_faults(FaultPlan {
        byte_budget: Some(7),
        ..FaultPlan::default()
    });
    writer.append(&two);
    // What a waiting connection does first; the write fails part way.
    writer.shared.write_lent();
    wait_until("the write error", || !writer.status().last_write_ok);
    assert_eq!(
        live(&sim, "a.1.incr.aof"),
        one,
        "the 7 bytes that fit were removed"
    );
    assert_eq!(
        writer.writes_refused().as_deref(),
        Some("MISCONF Errors writing to the AOF file: No space left on device")
    );
    assert_eq!(writer.ack_offset(), one.len() as u64);
    assert_eq!(writer.status().pending_bytes, two.len() as u64);
    // Space comes back: the thread's retry writes the bytes the failed write gave back.
    sim.set_faults(FaultPlan::default());
    writer.acks().wait(writer.offset()).unwrap();
    wait_until("the status to clear", || writer.status().last_write_ok);
    assert_eq!(live(&sim, "a.1.incr.aof"), [one, two].concat());
    writer.close().unwrap();
}

/// An `always` writer lending its file to an [`IdleCommit`] for the lone client 7: the
/// writer's own first commit is held at the gate for a while, so its lent periods (twice
/// that sync) outlast the test's steps.
fn lending_to_idle_io_thread(seed: u64) -> (SimStorage, Arc<GatedStorage>, AofWriter, IdleCommit) {
    let gate = Gate::closed();
    let (sim, storage) = gated(seed, gate.clone(), false);
    let timings = WriterTimings {
        pace_max: Duration::from_secs(3600),
        ..fast()
    };
    let mut writer = start(storage.clone(), AppendFsync::Always, timings);
    let idle = IdleCommit::new(1);
    idle.attach(&writer);
    idle.waiting(7);
    wait_until("a lone writer", || idle.inner.lone_writer());
    writer.append(&record(0));
    gate.wait_for_syncs(1);
    thread::sleep(Duration::from_millis(300));
    gate.open();
    writer.acks().wait(writer.offset()).unwrap();
    wait_until_lent(&writer);
    (sim, storage, writer, idle)
}

#[test]
fn an_idle_io_thread_commits_a_lone_writers_write_itself() {
    let (sim, storage, mut writer, idle) = lending_to_idle_io_thread(31);
    let mut expected = record(0);
    let mut inline = 0;
    for i in 1..=50 {
        wait_until_lent(&writer);
        writer.append(&record(i));
        expected.extend_from_slice(&record(i));
        let end = writer.offset();
        idle.waiting(7);
        if idle.thread_parking() {
            inline += 1;
            // Written, synced and acknowledged before the hook returned, by this thread.
            assert_eq!(writer.ack_offset(), end);
            assert_eq!(writer.status().durable_offset, end);
            assert_eq!(
                storage.writers.lock().unwrap().last().unwrap(),
                &thread_name()
            );
        } else {
            // The thread's lent period ended just then: it commits the write itself.
            writer.acks().wait(end).unwrap();
        }
        idle.thread_unparked();
    }
    assert!(
        inline >= 40,
        "only {inline} of 50 writes committed on the idle thread"
    );
    let status = writer.status();
    assert_eq!(status.fsyncs, 51);
    assert_eq!(status.idle_commits, inline);
    assert_eq!(status.file_len, expected.len() as u64);
    writer.close().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    assert_eq!(live(&sim, "a.1.incr.aof"), expected);
}

#[test]
fn a_second_writer_gets_the_commits_back_to_the_writer_thread() {
    let (sim, storage, mut writer, idle) = lending_to_idle_io_thread(32);
    // The lone writer's write waits in the lent file for an idle moment; a second client
    // waiting for an ack hands it to the thread at once.
    writer.append(&record(1));
    let end = writer.offset();
    idle.waiting(8);
    writer.acks().wait(end).unwrap();
    assert_eq!(
        storage.writers.lock().unwrap().last().unwrap(),
        "keeper-aof"
    );
    // With two writers the thread keeps its file: an idle I/O thread commits nothing.
    for i in 2..10 {
        writer.append(&record(i));
        idle.waiting(7 + i as u64 % 2);
        assert!(!idle.thread_parking());
        idle.thread_unparked();
        writer.acks().wait(writer.offset()).unwrap();
    }
    let writers = storage.writers.lock().unwrap().clone();
    assert!(
        writers[1..].iter().all(|w| w == "keeper-aof"),
        "{writers:?}"
    );
    writer.close().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    let expected: Vec<u8> = (0..10).flat_map(record).collect();
    assert_eq!(live(&sim, "a.1.incr.aof"), expected);
}

#[test]
fn a_failed_sync_on_the_idle_io_thread_poisons_the_writer() {
    let (sim, _storage, mut writer, idle) = lending_to_idle_io_thread(33);
    let first = writer.offset();
    sim.set_faults(FaultPlan {
        fail_nth: Some((1, Some(OpKind::SyncData), FaultError::Io)),
        ..FaultPlan::default()
    });
    writer.append(&record(1));
    let second = writer.offset();
    idle.waiting(7);
    // Not committed: the sync failed. Nothing it covered is acknowledged, ever.
    let committed = idle.thread_parking();
    idle.thread_unparked();
    assert!(!committed);
    assert!(matches!(
        writer.acks().wait(second),
        Err(AckError::Poisoned(_))
    ));
    assert_eq!(writer.ack_offset(), first);
    let status = writer.status();
    assert_eq!(status.poisoned.as_deref(), Some("Input/output error"));
    assert_eq!(status.durable_offset, first);
    assert!(writer.writes_refused().is_some());
    assert!(writer.close().is_err());
}
