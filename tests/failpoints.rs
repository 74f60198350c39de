//! Every fail point of `keeper::failpoints::ALL`, driven on the simulated disk: an error at the
//! point leaves the previous good state in place, and a power loss right after leaves either
//! the old file or the complete new one. Needs `--features failpoints`; fail points are global,
//! so everything runs in one test.

use std::path::Path;

use keeper::failpoints;
use keeper::storage::{CrashMode, SimStorage, publish_atomically};
use keeper::{Storage, WritableFile};

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
    for &point in failpoints::ALL {
        for (seed, mode) in [
            (1, CrashMode::DropUnsynced),
            (2, CrashMode::KeepRandomPrefix),
            (3, CrashMode::TearLastWrite),
            (4, CrashMode::ZeroFillTail),
        ] {
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
