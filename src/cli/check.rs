//! `keeper check-rdb FILE`: decode everything, verify the checksum, print a summary.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use keeper::rdb::{Checked, Checksum, Event, Reader};
use keeper::{OsStorage, Result, Storage, ValueType};

use super::progress::Progress;

#[derive(Default)]
struct DbStats {
    keys: u64,
    expires: u64,
    /// Keys per type, indexed by `ValueType as usize`.
    by_type: [u64; ValueType::ALL.len()],
}

pub fn run(path: &Path) -> Result<()> {
    let started = Instant::now();
    let view = OsStorage.read_all(path)?;
    let size = view.len() as u64;
    let progress = Progress::new(size);
    let mut reader = Reader::from_slice(view).map_err(|e| e.with_file(path))?;
    let mut aux = Vec::new();
    let mut dbs: BTreeMap<u32, DbStats> = BTreeMap::new();
    let mut current: Option<(u32, DbStats)> = None;
    let (mut functions, mut module_aux, mut events) = (0u64, 0u64, 0u64);
    while let Some(event) = reader.check_next().map_err(|e| e.with_file(path))? {
        events += 1;
        if events.is_multiple_of(4096) {
            progress.set(reader.position());
        }
        match event {
            Checked::Event(Event::Aux { key, value }) => aux.push((key, value)),
            Checked::Event(Event::Function(_)) => functions += 1,
            Checked::Event(Event::ModuleAux { .. }) => module_aux += 1,
            Checked::Key(key) => {
                // Keys of one database come together: look its stats up once per run.
                let stats = match &mut current {
                    Some((db, stats)) if *db == key.db => stats,
                    _ => {
                        if let Some((db, stats)) = current.take() {
                            merge(dbs.entry(db).or_default(), stats);
                        }
                        &mut current.insert((key.db, DbStats::default())).1
                    }
                };
                stats.keys += 1;
                stats.expires += u64::from(key.expire_at_ms.is_some());
                stats.by_type[key.value_type as usize] += 1;
            }
            Checked::Event(_) => {}
        }
    }
    if let Some((db, stats)) = current.take() {
        merge(dbs.entry(db).or_default(), stats);
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
        let types: Vec<String> = ValueType::ALL
            .iter()
            .filter(|t| stats.by_type[**t as usize] > 0)
            .map(|t| format!("{} {}", t.name(), stats.by_type[*t as usize]))
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

fn merge(into: &mut DbStats, from: DbStats) {
    into.keys += from.keys;
    into.expires += from.expires;
    for (sum, n) in into.by_type.iter_mut().zip(from.by_type) {
        *sum += n;
    }
}
