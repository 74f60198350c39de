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
                || failpoints::AOF_WRITER.contains(point),
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
