//! `keeper check-rdb FILE`: verify everything (on two cores), print a summary.

use std::path::Path;
use std::time::Instant;

use keeper::rdb::Checksum;
use keeper::rdb::check::check;
use keeper::{OsStorage, Result, Storage, ValueType};

use super::progress::Progress;

pub fn run(path: &Path) -> Result<()> {
    let started = Instant::now();
    let view = OsStorage.read_all(path)?;
    let size = view.len() as u64;
    let progress = Progress::new(size);
    let report = check(view, &mut |at| progress.set(at)).map_err(|e| e.with_file(path));
    progress.finish();
    let report = report?;

    println!(
        "{}: RDB version {} ({:?}), {size} bytes, checked in {:.3}s",
        path.display(),
        report.version,
        report.family,
        started.elapsed().as_secs_f64()
    );
    for (key, value) in &report.aux {
        println!(
            "aux {} = {}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        );
    }
    let total: u64 = report.databases.values().map(|d| d.keys).sum();
    println!("keys: {total} in {} database(s)", report.databases.len());
    for (db, counts) in &report.databases {
        let types: Vec<String> = ValueType::ALL
            .iter()
            .filter(|t| counts.of(**t) > 0)
            .map(|t| format!("{} {}", t.name(), counts.of(*t)))
            .collect();
        println!(
            "db {db}: {} keys, {} with expiry ({})",
            counts.keys,
            counts.expires,
            types.join(", ")
        );
    }
    if report.functions > 0 {
        println!("function libraries: {}", report.functions);
    }
    if report.module_aux > 0 {
        println!("module aux sections: {}", report.module_aux);
    }
    if report.empty_keys_skipped > 0 {
        println!(
            "empty collections skipped (as Redis does): {}",
            report.empty_keys_skipped
        );
    }
    match report.checksum {
        Checksum::Verified(crc) => println!("checksum: ok ({crc:#018x})"),
        Checksum::NotStored => println!("checksum: not stored (saved with rdbchecksum no)"),
        Checksum::NotInVersion => println!("checksum: none (RDB version < 5)"),
    }
    if report.rdb_len < size {
        println!(
            "note: {} bytes follow the end of the RDB (an AOF tail, a sync EOF mark?)",
            size - report.rdb_len
        );
    }
    Ok(())
}
