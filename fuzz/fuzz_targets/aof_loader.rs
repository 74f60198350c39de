//! Feeds arbitrary bytes as the only incr file of an AOF directory (on simulated storage) to
//! the loader and the checker: a load, a truncation or a clear error, never a panic, and the
//! checker's verdict agrees with the loader's.
#![no_main]

use std::path::Path;

use keeper::aof::check::{Verdict, check_file};
use keeper::aof::loader::{LoadOptions, load};
use keeper::aof::manifest::{AofFile, AofNames, FileKind, Manifest};
use keeper::storage::{FileView, SimStorage, Storage};
use keeper::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let storage = SimStorage::new(1);
    let dir = Path::new("appendonlydir");
    let name = "appendonly.aof.1.incr.aof";
    if storage.create_dir_all(dir).is_err() {
        return;
    }
    let Ok(mut file) = storage.create(&dir.join(name)) else { return };
    if file.write_all(data).is_err() {
        return;
    }
    drop(file);
    let manifest = Manifest {
        base: None,
        history: vec![],
        incrs: vec![AofFile { name: name.into(), seq: 1, kind: FileKind::Incr }],
    };
    let verdict = check_file(
        Path::new(name),
        &FileView::from_vec(data.to_vec()),
        Some(FileKind::Incr),
        None,
    )
    .verdict;
    let mut store = Store::new(16);
    let options = LoadOptions { load_truncated: true, now_ms: 1_700_000_000_000 };
    let loaded = load(&storage, dir, &AofNames::default(), &manifest, &mut store, &options);
    if let Ok(report) = &loaded {
        // A truncation happens exactly for torn tails.
        assert_eq!(
            report.truncation.is_some(),
            matches!(verdict, Verdict::TornTail { .. }),
            "{verdict:?}"
        );
    }
    // (RDB preambles aside: the RDB checker and reader are fuzzed on their own.)
    if matches!(verdict, Verdict::Corrupt { .. }) && !data.starts_with(b"REDIS") && !data.starts_with(b"VALKEY") {
        assert!(loaded.is_err());
    }
});
