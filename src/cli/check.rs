//! `keeper check-rdb FILE`: decode everything, verify the checksum, print a summary.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use keeper::rdb::{Checksum, Event, Reader};
use keeper::{OsStorage, Result, Storage};

use super::progress::Progress;

#[derive(Default)]
struct DbStats {
    keys: u64,
    expires: u64,
    by_type: BTreeMap<&'static str, u64>,
}

pub fn run(path: &Path) -> Result<()> {
    let started = Instant::now();
    let view = OsStorage.read_all(path)?;
    let size = view.len() as u64;
    let progress = Progress::new(size);
    let mut reader = Reader::from_slice(view).map_err(|e| e.with_file(path))?;
    let mut aux = Vec::new();
    let mut dbs: BTreeMap<u32, DbStats> = BTreeMap::new();
    let (mut functions, mut module_aux, mut events) = (0u64, 0u64, 0u64);
    while let Some(event) = reader.next_event().map_err(|e| e.with_file(path))? {
        events += 1;
        if events.is_multiple_of(4096) {
            progress.set(reader.position());
        }
        match event {
            Event::Aux { key, value } => aux.push((key, value)),
            Event::Function(_) => functions += 1,
            Event::ModuleAux { .. } => module_aux += 1,
            Event::Entry(entry) => {
                let stats = dbs.entry(entry.db).or_default();
                stats.keys += 1;
                stats.expires += u64::from(entry.expire_at_ms.is_some());
                *stats.by_type.entry(entry.value.type_name()).or_default() += 1;
            }
            Event::SelectDb(_) | Event::ResizeDb { .. } | Event::SlotInfo { .. } => {}
        }
    }
    progress.finish();
    let trailing = size - reader.position();

    println!(
        "{}: RDB version {} ({:?}), {size} bytes, checked in {:.3}s",
        path.display(),
        reader.version(),
        reader.family(),
        started.elapsed().as_secs_f64()
    );
    for (key, value) in &aux {
        println!(
            "aux {} = {}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        );
    }
    let total: u64 = dbs.values().map(|d| d.keys).sum();
    println!("keys: {total} in {} database(s)", dbs.len());
    for (db, stats) in &dbs {
        let types: Vec<String> = stats
            .by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!(
            "db {db}: {} keys, {} with expiry ({})",
            stats.keys,
            stats.expires,
            types.join(", ")
        );
    }
    if functions > 0 {
        println!("function libraries: {functions}");
    }
    if module_aux > 0 {
        println!("module aux sections: {module_aux}");
    }
    if reader.empty_keys_skipped() > 0 {
        println!(
            "empty collections skipped (as Redis does): {}",
            reader.empty_keys_skipped()
        );
    }
    match reader.checksum() {
        Some(Checksum::Verified(crc)) => println!("checksum: ok ({crc:#018x})"),
        Some(Checksum::NotStored) => println!("checksum: not stored (saved with rdbchecksum no)"),
        Some(Checksum::NotInVersion) | None => println!("checksum: none (RDB version < 5)"),
    }
    if trailing > 0 {
        println!("note: {trailing} bytes follow the end of the RDB (an AOF tail?)");
    }
    Ok(())
}
