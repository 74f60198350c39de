use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::model::{Entry, Value as ModelValue};
use crate::storage::{CrashMode, FaultError, FaultPlan, OpKind, SimStorage};
use crate::store::{Store, StoreSnapshot, Value, own};

const PATH: &str = "data/dump.rdb";

fn path() -> PathBuf {
    PathBuf::from(PATH)
}

fn s(v: &str) -> Value {
    Value::String(own(v.as_bytes()))
}

/// Every entry of a snapshot, sorted by (db, key), sets and hashes in byte order.
fn entries(snapshot: &dyn DatasetSnapshot) -> Vec<Entry> {
    let mut out = Vec::new();
    for db in 0..snapshot.databases() {
        snapshot
            .for_each_entry(db, &mut |mut e| {
                match &mut e.value {
                    ModelValue::Set(m) => m.sort(),
                    ModelValue::Hash(f) => f.sort_by(|a, b| a.field.cmp(&b.field)),
                    _ => {}
                }
                out.push(e);
                Ok(())
            })
            .unwrap();
    }
    out.sort_by(|a, b| (a.db, &a.key).cmp(&(b.db, &b.key)));
    out
}

fn small_store() -> Store {
    let mut store = Store::new(16);
    store.insert(0, own(b"a"), s("1"), None);
    store.insert(0, own(b"ttl"), s("x"), Some(5_000));
    store.insert(
        3,
        own(b"list"),
        Value::List(["x", "y"].map(|v| own(v.as_bytes())).into_iter().collect()),
        None,
    );
    store
}

fn load(storage: &dyn Storage, expired: ExpiredKeys) -> (Store, LoadStats) {
    let mut store = Store::new(16);
    match load_rdb(storage, &path(), &mut store, expired).unwrap() {
        LoadOutcome::Loaded(stats) => (store, stats),
        LoadOutcome::Missing => panic!("{PATH} missing"),
    }
}

#[test]
fn save_and_load_round_trip_on_the_simulated_disk() {
    let storage = SimStorage::new(1);
    let store = small_store();
    let stats = write_rdb(&storage, &path(), &store.snapshot(), SaveOptions::default()).unwrap();
    assert_eq!(stats.keys, 3);
    assert_eq!(Some(stats.bytes), storage.len(&path()).unwrap());
    assert_eq!(storage.list(Path::new("data")).unwrap(), ["dump.rdb"]);

    let (loaded, stats) = load(&storage, ExpiredKeys::Keep);
    assert_eq!(entries(&loaded.snapshot()), entries(&store.snapshot()));
    assert_eq!((stats.keys_loaded, stats.keys_expired), (3, 0));
    assert_eq!(stats.rdb_version, 10);
    let aux = |k: &str| {
        stats
            .aux
            .iter()
            .find(|(key, _)| key == k.as_bytes())
            .map(|(_, v)| v.clone())
    };
    assert_eq!(aux("redis-ver").as_deref(), Some(&b"7.0.15"[..]));
    assert_eq!(
        aux("keeper-ver").as_deref(),
        Some(env!("CARGO_PKG_VERSION").as_bytes())
    );
    assert_eq!(stats.replication, None);
}

#[test]
fn only_databases_with_keys_are_selected() {
    let storage = SimStorage::new(2);
    write_rdb(
        &storage,
        &path(),
        &small_store().snapshot(),
        SaveOptions::default(),
    )
    .unwrap();
    let view = storage.read_all(&path()).unwrap();
    let mut reader = crate::rdb::Reader::from_slice(view).unwrap();
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        match event {
            Event::SelectDb(db) => events.push(format!("select {db}")),
            Event::ResizeDb {
                db_size,
                expires_size,
            } => events.push(format!("resize {db_size} {expires_size}")),
            _ => {}
        }
    }
    assert_eq!(events, ["select 0", "resize 2 1", "select 3", "resize 1 0"]);
}

#[test]
fn expired_keys_are_skipped_on_a_primary_and_kept_otherwise() {
    let storage = SimStorage::new(3);
    write_rdb(
        &storage,
        &path(),
        &small_store().snapshot(),
        SaveOptions::default(),
    )
    .unwrap();
    // Redis keeps a key whose expiry equals "now" (`expiretime < now` drops).
    let (store, stats) = load(&storage, ExpiredKeys::SkipAt(5_000));
    assert_eq!((stats.keys_loaded, stats.keys_expired), (3, 0));
    assert_eq!(store.db(0).len(), 2);
    let (store, stats) = load(&storage, ExpiredKeys::SkipAt(5_001));
    assert_eq!((stats.keys_loaded, stats.keys_expired), (2, 1));
    assert_eq!(store.db(0).len(), 1);
}

#[test]
fn a_missing_file_is_an_empty_dataset_not_an_error() {
    let storage = SimStorage::new(4);
    let mut store = Store::new(16);
    let outcome = load_rdb(&storage, &path(), &mut store, ExpiredKeys::Keep).unwrap();
    assert_eq!(outcome, LoadOutcome::Missing);
}

#[test]
fn a_damaged_file_names_the_file_and_offset() {
    let storage = SimStorage::new(5);
    write_rdb(
        &storage,
        &path(),
        &small_store().snapshot(),
        SaveOptions::default(),
    )
    .unwrap();
    let mut bytes = storage.read_all(&path()).unwrap().to_vec();
    let at = bytes.len() - 12; // inside the last key, before EOF and checksum
    bytes.truncate(at);
    let mut file = storage.create(&path()).unwrap();
    file.write_all(&bytes).unwrap();
    drop(file);
    let mut store = Store::new(16);
    let err = load_rdb(&storage, &path(), &mut store, ExpiredKeys::Keep).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&format!("{PATH}: offset ")), "{text}");
    assert!(err.offset().is_some_and(|o| o <= at as u64), "{text}");

    // An empty file is damaged too (Redis refuses to start on it).
    storage.create(&path()).unwrap();
    let err = load_rdb(&storage, &path(), &mut store, ExpiredKeys::Keep).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("{PATH}: offset 0: ")),
        "{err}"
    );
}

#[test]
fn replication_position_round_trips_through_aux_fields() {
    let storage = SimStorage::new(6);
    let replication = ReplicationInfo {
        id: "a".repeat(40),
        offset: 123_456,
        stream_db: 2,
    };
    let options = SaveOptions {
        replication: Some(replication.clone()),
        ..SaveOptions::default()
    };
    write_rdb(&storage, &path(), &small_store().snapshot(), options).unwrap();
    let (_, stats) = load(&storage, ExpiredKeys::Keep);
    assert_eq!(stats.replication, Some(replication));
}

#[test]
fn replication_aux_needs_a_40_character_id_and_an_offset() {
    let aux = |pairs: &[(&str, &str)]| -> Vec<(Bytes, Bytes)> {
        pairs
            .iter()
            .map(|(k, v)| (Bytes::from(k.to_string()), Bytes::from(v.to_string())))
            .collect()
    };
    let id = "0123456789012345678901234567890123456789";
    assert_eq!(
        replication_from_aux(&aux(&[("repl-id", id), ("repl-offset", "7")])),
        Some(ReplicationInfo {
            id: id.into(),
            offset: 7,
            stream_db: 0
        })
    );
    assert_eq!(
        replication_from_aux(&aux(&[("repl-id", "short"), ("repl-offset", "7")])),
        None
    );
    assert_eq!(replication_from_aux(&aux(&[("repl-id", id)])), None);
    assert_eq!(
        replication_from_aux(&aux(&[("repl-id", id), ("repl-offset", "x")])),
        None
    );
}

/// A snapshot of one database that offers an empty list among its keys (a foreign dataset
/// might; Redis never stores one).
struct WithEmptyCollection;

impl DatasetSnapshot for WithEmptyCollection {
    fn databases(&self) -> usize {
        1
    }
    fn db_size(&self, _db: usize) -> (u64, u64) {
        (2, 0)
    }
    fn for_each_entry(&self, db: usize, visit: &mut dyn FnMut(Entry) -> Result<()>) -> Result<()> {
        visit(Entry::new(db as u32, "empty", ModelValue::List(Vec::new())))?;
        visit(Entry::new(db as u32, "k", ModelValue::String("v".into())))
    }
}

#[test]
fn empty_collections_are_left_out() {
    let storage = SimStorage::new(7);
    let stats = write_rdb(
        &storage,
        &path(),
        &WithEmptyCollection,
        SaveOptions::default(),
    )
    .unwrap();
    assert_eq!((stats.keys, stats.empty_values_skipped), (1, 1));
    let (store, stats) = load(&storage, ExpiredKeys::Keep);
    assert_eq!(stats.empty_keys_skipped, 0);
    assert_eq!(store.db(0).len(), 1);
}

#[test]
fn a_failed_save_leaves_the_previous_file() {
    let storage = SimStorage::new(8);
    let old = small_store();
    write_rdb(&storage, &path(), &old.snapshot(), SaveOptions::default()).unwrap();
    let mut new = small_store();
    new.insert(1, own(b"new"), s("v"), None);
    for (kind, error) in [
        (OpKind::Create, FaultError::NoSpace),
        (OpKind::Write, FaultError::NoSpace),
        (OpKind::SyncData, FaultError::Io),
        (OpKind::Rename, FaultError::Io),
    ] {
        storage.set_faults(FaultPlan {
            fail_nth: Some((1, Some(kind), error)),
            ..FaultPlan::default()
        });
        let err = write_rdb(&storage, &path(), &new.snapshot(), SaveOptions::default());
        storage.set_faults(FaultPlan::default());
        assert!(err.is_err(), "{kind:?}");
        assert_eq!(
            storage.list(Path::new("data")).unwrap(),
            ["dump.rdb"],
            "{kind:?}"
        );
        let (loaded, _) = load(&storage, ExpiredKeys::Keep);
        assert_eq!(
            entries(&loaded.snapshot()),
            entries(&old.snapshot()),
            "{kind:?}"
        );
    }
}

/// Counts syncs of a file kept in memory.
#[derive(Default)]
struct CountingFile {
    bytes: u64,
    syncs: u64,
}

impl WritableFile for CountingFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.bytes += buf.len() as u64;
        Ok(())
    }
    fn sync_data(&mut self) -> Result<()> {
        self.syncs += 1;
        Ok(())
    }
    fn len(&self) -> u64 {
        self.bytes
    }
}

#[test]
fn incremental_fsync_syncs_every_4_mib() {
    for (enabled, want) in [(true, 2), (false, 0)] {
        let mut inner = CountingFile::default();
        let mut file = IncrementalSync::new(&mut inner, enabled, None);
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..9 {
            file.write_all(&chunk).unwrap();
        }
        assert_eq!(file.len(), 9 << 20);
        assert_eq!(inner.syncs, want, "enabled: {enabled}");
    }
}

#[test]
fn a_successful_save_survives_power_loss_in_every_mode() {
    for mode in [
        CrashMode::DropUnsynced,
        CrashMode::KeepRandomPrefix,
        CrashMode::TearLastWrite,
        CrashMode::ZeroFillTail,
    ] {
        let storage = SimStorage::new(9);
        let store = small_store();
        write_rdb(&storage, &path(), &store.snapshot(), SaveOptions::default()).unwrap();
        storage.crash(mode);
        let (loaded, _) = load(&storage, ExpiredKeys::Keep);
        assert_eq!(
            entries(&loaded.snapshot()),
            entries(&store.snapshot()),
            "{mode:?}"
        );
    }
}

// ---- background saves ----------------------------------------------------------------------

/// Wraps a store snapshot and holds the save at its first key until released, so a test can
/// act while a save is known to be running.
struct Gated {
    inner: StoreSnapshot,
    entered: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl DatasetSnapshot for Gated {
    fn databases(&self) -> usize {
        self.inner.databases()
    }
    fn db_size(&self, db: usize) -> (u64, u64) {
        self.inner.db_size(db)
    }
    fn for_each_entry(&self, db: usize, visit: &mut dyn FnMut(Entry) -> Result<()>) -> Result<()> {
        self.inner.for_each_entry(db, &mut |entry| {
            let _ = self.entered.try_send(());
            if let Ok(release) = self.release.lock() {
                let _ = release.recv();
            }
            visit(entry)
        })
    }
}

fn gated(
    store: &Store,
) -> (
    Gated,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let snapshot = Gated {
        inner: store.snapshot(),
        entered: entered_tx,
        release: std::sync::Mutex::new(release_rx),
    };
    (snapshot, entered_rx, release_tx)
}

#[test]
fn background_save_reports_progress_and_finishes() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new(10));
    let store = small_store();
    let (snapshot, entered, release) = gated(&store);
    let mut job =
        BackgroundSave::start(storage.clone(), path(), snapshot, SaveOptions::default()).unwrap();
    entered.recv().unwrap();
    let progress = job.progress();
    assert_eq!((progress.keys_processed, progress.keys_total), (0, 3));
    job = match job.try_finish() {
        Ok(_) => panic!("finished while held at its first key"),
        Err(job) => job,
    };
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    let outcome = job.wait();
    match &outcome.status {
        BgsaveStatus::Saved(stats) => assert_eq!(stats.keys, 3),
        other => panic!("{other:?}"),
    }
    let (loaded, _) = load(&*storage, ExpiredKeys::Keep);
    assert_eq!(entries(&loaded.snapshot()), entries(&store.snapshot()));
}

#[test]
fn a_cancelled_background_save_keeps_the_old_file() {
    let sim = SimStorage::new(11);
    let old = small_store();
    write_rdb(&sim, &path(), &old.snapshot(), SaveOptions::default()).unwrap();
    let mut new = small_store();
    new.insert(0, own(b"extra"), s("v"), None);
    let (snapshot, entered, release) = gated(&new);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let job = BackgroundSave::start(storage, path(), snapshot, SaveOptions::default()).unwrap();
    entered.recv().unwrap();
    job.cancel();
    drop(release); // every later recv() returns at once
    let outcome = job.wait();
    assert!(
        matches!(outcome.status, BgsaveStatus::Cancelled),
        "{:?}",
        outcome.status
    );
    assert_eq!(sim.list(Path::new("data")).unwrap(), ["dump.rdb"]);
    let (loaded, _) = load(&sim, ExpiredKeys::Keep);
    assert_eq!(entries(&loaded.snapshot()), entries(&old.snapshot()));
}

/// A snapshot whose iteration panics.
struct Panicking;

impl DatasetSnapshot for Panicking {
    fn databases(&self) -> usize {
        1
    }
    fn db_size(&self, _db: usize) -> (u64, u64) {
        (1, 0)
    }
    fn for_each_entry(&self, _: usize, _: &mut dyn FnMut(Entry) -> Result<()>) -> Result<()> {
        panic!("dataset bug")
    }
}

#[test]
fn a_panicking_snapshot_is_a_failed_save() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new(12));
    let job = BackgroundSave::start(storage, path(), Panicking, SaveOptions::default()).unwrap();
    let outcome = job.wait();
    match outcome.status {
        BgsaveStatus::Failed(e) => assert!(e.to_string().contains("dataset bug"), "{e}"),
        other => panic!("{other:?}"),
    }
}

static RSS_SAMPLES: AtomicUsize = AtomicUsize::new(0);

/// Resident sizes as a sampler sees them: 1000 at the start, then a rise to 9000 and back.
fn scripted_rss() -> Option<u64> {
    const SAMPLES: [u64; 5] = [1000, 4000, 9000, 2000, 1500];
    let i = RSS_SAMPLES.fetch_add(1, Ordering::Relaxed);
    Some(SAMPLES[i.min(SAMPLES.len() - 1)])
}

#[test]
fn background_save_reports_the_peak_memory_above_its_start() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new(13));
    let store = small_store();
    let (snapshot, entered, release) = gated(&store);
    let job = BackgroundSave::start_with(
        storage,
        path(),
        snapshot,
        SaveOptions::default(),
        scripted_rss,
    )
    .unwrap();
    entered.recv().unwrap();
    // Hold the save until the sampler has seen the whole script.
    while RSS_SAMPLES.load(Ordering::Relaxed) < 6 {
        std::thread::sleep(RSS_SAMPLE_INTERVAL);
    }
    assert_eq!(job.progress().peak_extra_bytes, 8000);
    assert_eq!(job.progress().extra_bytes, 500);
    drop(release);
    let outcome = job.wait();
    assert!(outcome.is_ok(), "{:?}", outcome.status);
    assert_eq!(outcome.peak_extra_bytes, 8000);
}

#[test]
fn a_save_larger_than_several_sync_chunks_round_trips_on_the_real_disk() {
    // Incompressible values, so the file spans several INCREMENTAL_FSYNC_BYTES chunks and the
    // background fdatasync thread runs more than once.
    let mut store = Store::new(16);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..3_000u32 {
        let value: Vec<u8> = (0..5_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        store.insert(
            0,
            own(format!("k{i}").as_bytes()),
            Value::String(own(&value)),
            None,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");
    let storage = crate::storage::OsStorage;
    let stats = write_rdb(&storage, &path, &store.snapshot(), SaveOptions::default()).unwrap();
    assert!(
        stats.bytes > 3 * INCREMENTAL_FSYNC_BYTES,
        "{} bytes",
        stats.bytes
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), stats.bytes);
    let mut loaded = Store::new(16);
    let outcome = load_rdb(&storage, &path, &mut loaded, ExpiredKeys::Keep).unwrap();
    assert!(matches!(outcome, LoadOutcome::Loaded(s) if s.keys_loaded == 3_000));
    assert_eq!(entries(&loaded.snapshot()), entries(&store.snapshot()));
}
