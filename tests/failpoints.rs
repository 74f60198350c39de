//! Every fail point of `keeper::failpoints::ALL`, driven on the simulated disk: an error at the
//! point leaves the previous good state in place, and a power loss right after leaves either
//! the old file or the complete new one. Needs `--features failpoints`; fail points are global,
//! so run with `--test-threads=1` (`tools/test` does).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keeper::aof::writer::{AckError, AofWriter, WriterTimings};
use keeper::config::AppendFsync;
use keeper::failpoints;
use keeper::snapshot::{self, ExpiredKeys, LoadOutcome, SaveOptions};
use keeper::storage::{CrashMode, SimStorage, publish_atomically};
use keeper::store::{Store, Value, own};
use keeper::{Storage, WritableFile};

const CRASH_MODES: [(u64, CrashMode); 4] = [
    (1, CrashMode::DropUnsynced),
    (2, CrashMode::KeepRandomPrefix),
    (3, CrashMode::TearLastWrite),
    (4, CrashMode::ZeroFillTail),
];

fn publish(storage: &SimStorage, bytes: &[u8]) -> keeper::Result<()> {
    publish_atomically(storage, Path::new("d/file"), |f: &mut dyn WritableFile| {
        f.write_all(bytes)
    })
}

fn content(storage: &SimStorage) -> Vec<u8> {
    storage.read_all(Path::new("d/file")).unwrap().to_vec()
}

#[test]
fn every_publish_fail_point_keeps_the_old_file_or_the_whole_new_one() {
    let scenario = fail::FailScenario::setup();
    for &point in failpoints::PUBLISH {
        for (seed, mode) in CRASH_MODES {
            let storage = SimStorage::new(seed);
            publish(&storage, b"old content").unwrap();
            fail::cfg(point, "return").unwrap();
            let err = publish(&storage, b"new content").unwrap_err();
            fail::remove(point);
            assert!(err.to_string().contains(point), "{point}: {err}");

            // What the process sees: the old file, or (renamed, not yet promised) the new one.
            let live = content(&storage);
            if point == failpoints::PUBLISH_BEFORE_SYNC_DIR {
                assert_eq!(live, b"new content", "{point}");
            } else {
                assert_eq!(live, b"old content", "{point}");
                let names = storage.list(Path::new("d")).unwrap();
                assert_eq!(names, vec!["file".to_string()], "{point}: temp file left");
            }

            // A power loss now: never a mix of the two.
            storage.crash(mode);
            let after = content(&storage);
            assert!(
                after == b"old content" || after == b"new content",
                "{point} {mode:?}: {after:?}"
            );
        }
    }
    scenario.teardown();
}

#[test]
fn every_fail_point_is_driven_by_a_test() {
    for point in failpoints::ALL {
        assert!(
            failpoints::PUBLISH.contains(point)
                || failpoints::SNAPSHOT_SAVE.contains(point)
                || failpoints::AOF_WRITER.contains(point)
                || failpoints::AOF_REWRITE.contains(point)
                || failpoints::BACKUP.contains(point),
            "{point} is driven by no test"
        );
    }
}

/// A store whose every key says which version of the dataset it belongs to, in two databases.
fn dataset(version: &str) -> Store {
    let mut store = Store::new(16);
    for db in [0, 5] {
        for i in 0..50 {
            let value = Value::String(own(format!("{version}-{i}").as_bytes()));
            store.insert(db, own(format!("key{i}").as_bytes()), value, None);
        }
    }
    store
}

/// The version of the dataset `dump.rdb` holds; panics on a mix, a damaged or a missing file.
fn saved_version(storage: &SimStorage, path: &Path) -> String {
    let mut store = Store::new(16);
    match snapshot::load_rdb(storage, path, &mut store, ExpiredKeys::Keep) {
        Ok(LoadOutcome::Loaded(_)) => {}
        Ok(LoadOutcome::Missing) => panic!("dump.rdb missing"),
        Err(e) => panic!("dump.rdb damaged: {e}"),
    }
    let mut versions: Vec<String> = [0, 5]
        .iter()
        .flat_map(|&db| {
            store
                .db(db)
                .iter()
                .map(|(_, item)| item.value.clone())
                .collect::<Vec<_>>()
        })
        .map(|value| match value {
            Value::String(v) => String::from_utf8_lossy(&v)
                .split('-')
                .next()
                .unwrap_or("")
                .to_owned(),
            other => panic!("unexpected {}", other.type_name()),
        })
        .collect();
    assert_eq!(versions.len(), 100, "keys missing");
    versions.dedup();
    assert_eq!(versions.len(), 1, "a mix of versions: {versions:?}");
    versions.remove(0)
}

#[test]
fn every_snapshot_fail_point_keeps_the_old_dump_or_the_whole_new_one() {
    let scenario = fail::FailScenario::setup();
    let path = Path::new("data/dump.rdb");
    let (old, new) = (dataset("old"), dataset("new"));
    for (index, &point) in failpoints::SNAPSHOT_SAVE.iter().enumerate() {
        // Points up to the rename leave the old file; from the rename on, the new one is
        // visible, and once the directory is synced it is also durable.
        let renamed = index
            >= failpoints::SNAPSHOT_SAVE
                .iter()
                .position(|p| *p == failpoints::PUBLISH_BEFORE_SYNC_DIR)
                .unwrap();
        let durable = point == failpoints::SNAPSHOT_AFTER_PUBLISH;
        for (seed, mode) in CRASH_MODES {
            let storage = SimStorage::new(seed);
            snapshot::write_rdb(&storage, path, &old.snapshot(), SaveOptions::default()).unwrap();
            fail::cfg(point, "return").unwrap();
            let err = snapshot::write_rdb(&storage, path, &new.snapshot(), SaveOptions::default())
                .unwrap_err();
            fail::remove(point);
            assert!(err.to_string().contains(point), "{point}: {err}");
            assert_eq!(
                storage.list(Path::new("data")).unwrap(),
                vec!["dump.rdb".to_string()],
                "{point}: temp file left"
            );
            let live = saved_version(&storage, path);
            assert_eq!(live, if renamed { "new" } else { "old" }, "{point}");

            storage.crash(mode);
            let after = saved_version(&storage, path);
            if durable {
                assert_eq!(after, "new", "{point} {mode:?}");
            } else if !renamed {
                assert_eq!(after, "old", "{point} {mode:?}");
            }
        }
    }
    scenario.teardown();
}

/// The AOF writer on a fresh incr file, syncing on every round, retrying failed writes fast.
fn aof_writer(storage: &SimStorage) -> AofWriter {
    let dir = Path::new("appendonlydir");
    storage.create_dir_all(dir).unwrap();
    let path = dir.join("appendonly.aof.1.incr.aof");
    let file = storage.create(&path).unwrap();
    storage.sync_dir(dir).unwrap();
    let timings = WriterTimings {
        write_retry_interval: Duration::from_millis(5),
        ..WriterTimings::default()
    };
    AofWriter::start_with(
        Arc::new(storage.clone()),
        path,
        file,
        AppendFsync::Always,
        0,
        timings,
    )
    .unwrap()
}

fn aof_content(storage: &SimStorage) -> Vec<u8> {
    storage
        .read_all(Path::new("appendonlydir/appendonly.aof.1.incr.aof"))
        .unwrap()
        .to_vec()
}

#[test]
fn an_aof_write_error_refuses_writes_until_a_retry_succeeds() {
    let scenario = fail::FailScenario::setup();
    for (seed, mode) in CRASH_MODES {
        let storage = SimStorage::new(seed);
        let mut writer = aof_writer(&storage);
        writer.append(b"*1\r\n$4\r\nPING\r\n");
        let first = writer.offset();
        writer.acks().wait(first).unwrap();

        fail::cfg(failpoints::AOF_WRITE, "return").unwrap();
        writer.append(b"*1\r\n$5\r\nMULTI\r\n");
        while writer.writes_refused().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            writer.writes_refused().unwrap(),
            format!(
                "MISCONF Errors writing to the AOF file: injected failure at {}",
                failpoints::AOF_WRITE
            )
        );
        assert_eq!(
            writer.ack_offset(),
            first,
            "nothing unwritten is acknowledged"
        );
        assert_eq!(aof_content(&storage), b"*1\r\n$4\r\nPING\r\n");

        fail::remove(failpoints::AOF_WRITE);
        writer.acks().wait(writer.offset()).unwrap();
        assert_eq!(writer.writes_refused(), None);
        assert_eq!(writer.status().last_write_status(), "ok");
        // Acknowledged under `always`: durable.
        storage.crash(mode);
        assert_eq!(
            aof_content(&storage),
            b"*1\r\n$4\r\nPING\r\n*1\r\n$5\r\nMULTI\r\n",
            "{mode:?}"
        );
        drop(writer);
    }
    scenario.teardown();
}

#[test]
fn an_aof_fsync_error_poisons_the_writer() {
    let scenario = fail::FailScenario::setup();
    for (seed, mode) in CRASH_MODES {
        let storage = SimStorage::new(seed);
        let mut writer = aof_writer(&storage);
        writer.append(b"*1\r\n$4\r\nPING\r\n");
        let first = writer.offset();
        writer.acks().wait(first).unwrap();

        fail::cfg(failpoints::AOF_FSYNC, "return").unwrap();
        writer.append(b"*1\r\n$5\r\nMULTI\r\n");
        let outcome = writer.acks().wait(writer.offset());
        fail::remove(failpoints::AOF_FSYNC);
        assert!(matches!(outcome, Err(AckError::Poisoned(_))), "{outcome:?}");
        assert_eq!(writer.ack_offset(), first);
        let refused = writer.writes_refused().unwrap();
        assert!(refused.starts_with("MISCONF Errors writing to the AOF file: fsync failed"));
        // Removing the fault does not unpoison: a restart is needed.
        writer.append(b"*1\r\n$4\r\nEXEC\r\n");
        assert!(writer.acks().wait(writer.offset()).is_err());
        assert!(writer.close().is_err());
        storage.crash(mode);
        assert!(aof_content(&storage).starts_with(b"*1\r\n$4\r\nPING\r\n"));
    }
    scenario.teardown();
}

// ---- AOF rewrite ------------------------------------------------------------------------

fn aof_config(rdb_preamble: bool) -> keeper::config::Config {
    keeper::config::Config {
        dir: std::path::PathBuf::from("data"),
        save: keeper::snapshot::SavePoints::disabled(),
        appendonly: true,
        appendfsync: AppendFsync::Always,
        aof_use_rdb_preamble: rdb_preamble,
        aof_disk_reserve: 0,
        auto_aof_rewrite_percentage: 0,
        ..keeper::config::Config::default()
    }
}

fn aof_node(storage: &SimStorage, config: keeper::config::Config) -> keeper::engine::Engine {
    let storage: Arc<dyn Storage> = Arc::new(storage.clone());
    let mut engine = keeper::engine::Engine::new(config, storage);
    engine.open_aof().expect("the AOF loads");
    engine
}

/// `SET k<i> <i>` as a connection runs it, and its acknowledgement under `always`.
fn set_acknowledged(engine: &mut keeper::engine::Engine, i: usize) {
    let argv: Vec<keeper::Bytes> = ["SET".to_string(), format!("k{i}"), i.to_string()]
        .iter()
        .map(|w| keeper::Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    assert_eq!(engine.write_refusal(64), None, "k{i}: write refused");
    let spec = keeper::command::lookup(&argv[0]).unwrap();
    let reply = engine.execute(spec, 0, &argv, keeper::engine::unix_now_ms());
    assert!(!reply.is_error(), "k{i}: {reply:?}");
    if let Some(wait) = engine.aof_ack_wait() {
        wait.wait_blocking().expect("acknowledged");
    }
}

fn string_value(engine: &keeper::engine::Engine, key: &str) -> Option<String> {
    let snapshot = engine.store().snapshot();
    snapshot.dbs()[0]
        .iter()
        .find(|(k, _)| &k[..] == key.as_bytes())
        .map(|(_, item)| match &item.value {
            Value::String(s) => String::from_utf8_lossy(s).into_owned(),
            other => panic!("{key}: {}", other.type_name()),
        })
}

/// The names the AOF manifest lists (and the manifest itself).
fn listed_files(storage: &SimStorage) -> Vec<String> {
    let manifest = storage
        .read_all(Path::new("data/appendonlydir/appendonly.aof.manifest"))
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&manifest)
        .lines()
        .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
        .collect();
    names.push("appendonly.aof.manifest".into());
    names.sort();
    names
}

fn all_present(engine: &keeper::engine::Engine, keys: std::ops::Range<usize>, what: &str) {
    for i in keys {
        assert_eq!(
            string_value(engine, &format!("k{i}")),
            Some(i.to_string()),
            "{what}: acknowledged k{i} lost"
        );
    }
}

/// A rewrite that fails at `point` (configured before the rewrite starts when `at_start`,
/// else just before its finish installs the new base), with acknowledged writes before,
/// during and after it; then a power loss in `mode`. Every acknowledged write survives, no
/// unlisted file is left behind, and a later rewrite succeeds.
fn rewrite_failing_at(point: &str, at_start: bool, rdb_preamble: bool, seed: u64, mode: CrashMode) {
    let what = format!("{point} preamble={rdb_preamble} {mode:?}");
    let storage = SimStorage::new(seed);
    let mut engine = aof_node(&storage, aof_config(rdb_preamble));
    for i in 0..30 {
        set_acknowledged(&mut engine, i);
    }
    if at_start {
        fail::cfg(point, "return").unwrap();
    }
    engine.bgrewriteaof().expect("the rewrite starts");
    for i in 30..60 {
        set_acknowledged(&mut engine, i);
    }
    if !at_start {
        fail::cfg(point, "return").unwrap();
    }
    assert!(engine.finish_aof_rewrite(), "{what}: no rewrite ran");
    fail::remove(point);
    let info = engine.aof().unwrap().info_fields();
    assert!(
        info.contains("aof_last_bgrewrite_status:err"),
        "{what}: {info}"
    );
    for i in 60..90 {
        set_acknowledged(&mut engine, i);
    }
    // The live node: no temp base in the data folder, nothing unlisted in the AOF directory.
    assert_eq!(
        storage.list(Path::new("data")).unwrap(),
        vec!["appendonlydir".to_string()],
        "{what}: temp file left"
    );
    let mut present = storage.list(Path::new("data/appendonlydir")).unwrap();
    present.sort();
    assert_eq!(
        present,
        listed_files(&storage),
        "{what}: unlisted files left"
    );

    let config = engine.config().clone();
    engine.abandon_aof();
    drop(engine);
    storage.crash(mode);
    let mut engine = aof_node(&storage, config.clone());
    all_present(&engine, 0..90, &what);

    // The next rewrite succeeds and keeps everything.
    engine.bgrewriteaof().expect("a later rewrite starts");
    assert!(engine.finish_aof_rewrite());
    let info = engine.aof().unwrap().info_fields();
    assert!(
        info.contains("aof_last_bgrewrite_status:ok"),
        "{what}: {info}"
    );
    set_acknowledged(&mut engine, 90);
    engine.abandon_aof();
    drop(engine);
    storage.crash(mode);
    let engine = aof_node(&storage, config);
    all_present(&engine, 0..91, &what);
}

#[test]
fn every_aof_rewrite_fail_point_keeps_every_acknowledged_write() {
    let scenario = fail::FailScenario::setup();
    for &point in failpoints::AOF_REWRITE {
        for rdb_preamble in [true, false] {
            for (seed, mode) in CRASH_MODES {
                rewrite_failing_at(point, false, rdb_preamble, seed, mode);
            }
        }
    }
    scenario.teardown();
}

#[test]
fn every_fail_point_a_rewrite_base_passes_keeps_every_acknowledged_write() {
    let scenario = fail::FailScenario::setup();
    // An RDB preamble base is a snapshot save; a RESP base is an atomic publish.
    for (rdb_preamble, points) in [
        (true, failpoints::SNAPSHOT_SAVE),
        (false, failpoints::PUBLISH),
    ] {
        for &point in points {
            for (seed, mode) in CRASH_MODES {
                rewrite_failing_at(point, true, rdb_preamble, seed + 10, mode);
            }
        }
    }
    scenario.teardown();
}

/// A rewrite lists a new incr file after the current one, so the current one must be whole on
/// disk before that manifest is: a file that is not the last one may not have a torn tail
/// (CI once caught it in `tests/power_loss.rs`). Under `appendfsync no` the policy syncs
/// nothing, and the writer thread is held in its write when the rewrite starts; the power
/// fails right after the rewrite started.
#[test]
fn a_power_loss_just_after_a_rewrite_starts_keeps_everything_written_before_it() {
    let scenario = fail::FailScenario::setup();
    for (seed, mode) in CRASH_MODES {
        let storage = SimStorage::new(seed);
        let config = keeper::config::Config {
            appendfsync: AppendFsync::No,
            ..aof_config(true)
        };
        let mut engine = aof_node(&storage, config.clone());
        for i in 0..100 {
            set_acknowledged(&mut engine, i);
        }
        fail::cfg(failpoints::AOF_WRITE, "sleep(100)").unwrap();
        let argv: Vec<keeper::Bytes> = ["SET", "last", "written before the rewrite"]
            .iter()
            .map(|w| keeper::Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let spec = keeper::command::lookup(&argv[0]).unwrap();
        engine.execute(spec, 0, &argv, keeper::engine::unix_now_ms());
        engine.bgrewriteaof().expect("a rewrite starts");
        let disk = storage.crashed_copy(mode);
        fail::remove(failpoints::AOF_WRITE);
        engine.abandon_aof();

        let engine = aof_node(&disk, config);
        all_present(&engine, 0..100, &format!("{mode:?}"));
        assert_eq!(
            string_value(&engine, "last").as_deref(),
            Some("written before the rewrite"),
            "{mode:?}"
        );
    }
    scenario.teardown();
}

// ---- Backups and restores ------------------------------------------------------------------

mod backups {
    use super::*;
    use chrono::{Duration as Days, Utc};
    use keeper::OsStorage;
    use keeper::backup::catalog::{self, Catalog};
    use keeper::backup::create::{self, CreateRequest, RdbSource};
    use keeper::backup::manifest::{Source, SourceKind};
    use keeper::backup::restore::{self, InstallOptions};
    use keeper::backup::schedule::Retention;
    use keeper::backup::target::Target;
    use keeper::backup::{BackupKind, manifest::BackupManifest};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::PathBuf;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn make(
        rt: &tokio::runtime::Runtime,
        target: &Target,
        id: &str,
        version: &str,
    ) -> keeper::Result<BackupManifest> {
        let store = dataset(version);
        let request = CreateRequest {
            id: Some(id.into()),
            kind: BackupKind::Manual,
            created: Utc::now(),
            source: Source {
                kind: SourceKind::Node,
                name: "test".into(),
                replid: None,
                offset: None,
            },
            level: create::DEFAULT_LEVEL,
        };
        let source = RdbSource::Snapshot {
            snapshot: Box::new(store.snapshot()),
            options: SaveOptions::default(),
        };
        rt.block_on(create::create(target, request, source, None))
    }

    fn catalog(rt: &tokio::runtime::Runtime, target: &Target) -> Catalog {
        rt.block_on(catalog::list(target)).unwrap()
    }

    fn ids(catalog: &Catalog) -> Vec<String> {
        catalog.backups.iter().map(|b| b.id.clone()).collect()
    }

    /// Prunes as if a day and more had passed: leftovers of a crash go, backups stay.
    fn prune_later(rt: &tokio::runtime::Runtime, target: &Target) {
        let later = Utc::now() + Days::hours(25);
        rt.block_on(catalog::prune(
            target,
            Retention::new(1).unwrap(),
            later,
            &[],
        ))
        .unwrap();
    }

    /// What a restore of `id` from `target` writes, as the version it holds.
    fn restored_version(
        rt: &tokio::runtime::Runtime,
        target: &Target,
        id: &str,
        dir: &Path,
    ) -> String {
        let (_, verified) = rt.block_on(catalog::verify(target, id, None)).unwrap();
        restore::install(&OsStorage, &verified.rdb, &InstallOptions::new(dir)).unwrap();
        saved_version(&dump_of(dir), Path::new("dump.rdb"))
    }

    /// `dir/dump.rdb` copied onto a simulated disk, for `saved_version`.
    fn dump_of(dir: &Path) -> SimStorage {
        let storage = SimStorage::new(9);
        let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();
        let mut file = storage.create(Path::new("dump.rdb")).unwrap();
        file.write_all(&bytes).unwrap();
        storage
    }

    #[test]
    fn a_failed_or_crashed_backup_leaves_the_catalog_as_it_was() {
        let scenario = fail::FailScenario::setup();
        let rt = runtime();
        for point in [
            failpoints::BACKUP_BEFORE_PUBLISH,
            failpoints::BACKUP_BEFORE_MANIFEST,
        ] {
            for action in ["return", "panic"] {
                let tmp = tempfile::tempdir().unwrap();
                let target = Target::parse(tmp.path().join("backups").to_str().unwrap()).unwrap();
                make(&rt, &target, "old", "v1").unwrap();
                fail::cfg(point, action).unwrap();
                let outcome = catch_unwind(AssertUnwindSafe(|| make(&rt, &target, "new", "v2")));
                fail::remove(point);
                match action {
                    "return" => {
                        let err = outcome.expect("no panic").unwrap_err();
                        assert!(err.to_string().contains(point), "{point}: {err}");
                        // The error path removed what it uploaded.
                        let listed = catalog(&rt, &target);
                        assert!(listed.orphans.is_empty(), "{point}: {:?}", listed.orphans);
                    }
                    _ => assert!(outcome.is_err(), "{point}: the crash did not happen"),
                }
                let listed = catalog(&rt, &target);
                assert_eq!(ids(&listed), vec!["old".to_string()], "{point} {action}");
                // Leftovers of the crash are not backups, and pruning removes them later.
                prune_later(&rt, &target);
                let listed = catalog(&rt, &target);
                assert!(
                    listed.orphans.is_empty(),
                    "{point} {action}: {:?}",
                    listed.orphans
                );
                assert_eq!(ids(&listed), vec!["old".to_string()]);
                // The old backup is whole, and the same id can be made again.
                let dir = tmp.path().join("restored");
                assert_eq!(restored_version(&rt, &target, "old", &dir), "v1");
                make(&rt, &target, "new", "v2").unwrap();
                let dir = tmp.path().join("restored-new");
                assert_eq!(restored_version(&rt, &target, "new", &dir), "v2");
            }
        }
        scenario.teardown();
    }

    #[test]
    fn a_delete_that_fails_between_manifest_and_data_leaves_a_consistent_catalog() {
        let scenario = fail::FailScenario::setup();
        let rt = runtime();
        let tmp = tempfile::tempdir().unwrap();
        let target = Target::parse(tmp.path().join("backups").to_str().unwrap()).unwrap();
        make(&rt, &target, "keep", "v1").unwrap();
        make(&rt, &target, "gone", "v2").unwrap();
        fail::cfg(failpoints::BACKUP_DELETE_BEFORE_DATA, "return").unwrap();
        let err = rt.block_on(catalog::delete(&target, "gone")).unwrap_err();
        fail::remove(failpoints::BACKUP_DELETE_BEFORE_DATA);
        assert!(
            err.to_string()
                .contains(failpoints::BACKUP_DELETE_BEFORE_DATA)
        );
        let listed = catalog(&rt, &target);
        assert_eq!(ids(&listed), vec!["keep".to_string()]);
        assert_eq!(listed.orphans.len(), 1, "the data object is a leftover");
        prune_later(&rt, &target);
        let listed = catalog(&rt, &target);
        assert!(listed.orphans.is_empty());
        assert_eq!(ids(&listed), vec!["keep".to_string()]);
        scenario.teardown();
    }

    /// The data folder `dir` holds the old contents (a marker file) and nothing new.
    fn holds_old(dir: &Path) -> bool {
        std::fs::read(dir.join("old.txt")).ok().as_deref() == Some(b"old data".as_slice())
            && !dir.join("dump.rdb").exists()
    }

    fn staging_folders(parent: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(".restore-")
            })
            .collect()
    }

    #[test]
    fn a_failed_or_crashed_restore_leaves_the_old_folder_or_the_complete_new_one() {
        let scenario = fail::FailScenario::setup();
        let rt = runtime();
        for point in [
            failpoints::RESTORE_BEFORE_RENAME,
            failpoints::RESTORE_AFTER_EXCHANGE,
        ] {
            for action in ["return", "panic"] {
                let tmp = tempfile::tempdir().unwrap();
                let target = Target::parse(tmp.path().join("backups").to_str().unwrap()).unwrap();
                make(&rt, &target, "b", "v2").unwrap();
                let (_, verified) = rt.block_on(catalog::verify(&target, "b", None)).unwrap();
                let dir = tmp.path().join("data");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("old.txt"), b"old data").unwrap();
                let options = InstallOptions {
                    force: true,
                    ..InstallOptions::new(&dir)
                };
                fail::cfg(point, action).unwrap();
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    restore::install(&OsStorage, &verified.rdb, &options)
                }));
                fail::remove(point);
                let what = format!("{point} {action}");
                match (point, action) {
                    (_, "return") => {
                        let err = outcome.expect("no panic").unwrap_err();
                        assert!(err.to_string().contains(point), "{what}: {err}");
                        assert!(holds_old(&dir), "{what}: the old folder is not in place");
                        assert!(
                            staging_folders(tmp.path()).is_empty(),
                            "{what}: staging left"
                        );
                    }
                    (p, _) if p == failpoints::RESTORE_BEFORE_RENAME => {
                        assert!(outcome.is_err(), "{what}: no crash");
                        assert!(holds_old(&dir), "{what}: the old folder is not in place");
                    }
                    _ => {
                        assert!(outcome.is_err(), "{what}: no crash");
                        // The new data is in place, whole; the old contents are whole beside it.
                        assert_eq!(
                            saved_version(&dump_of(&dir), Path::new("dump.rdb")),
                            "v2",
                            "{what}"
                        );
                        let staged = staging_folders(tmp.path());
                        assert_eq!(staged.len(), 1, "{what}");
                        assert!(holds_old(&staged[0]), "{what}: old contents lost");
                    }
                }
            }
        }
        scenario.teardown();
    }
}
