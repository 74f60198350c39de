//! `keeper check-aof [--fix] [--truncate-to-timestamp UNIX_SECONDS] PATH`: verify an AOF (a
//! single file, a manifest or an AOF directory), report each file with its offsets, and
//! optionally cut a torn tail (or everything after a timestamp) from the last file, keeping a
//! copy of the original. Exit 0 when the AOF is valid (after a repair), 1 when it is not.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use keeper::aof::check::{self, AofCheck, AofInput, FileCheck, Verdict};
use keeper::aof::manifest::FileKind;
use keeper::{OsStorage, Result};

pub fn run(path: &Path, fix: bool, truncate_to_timestamp: Option<i64>) -> Result<ExitCode> {
    let storage = OsStorage;
    let checked = check::check(&storage, path, truncate_to_timestamp)?;
    print_report(&checked);
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let repair = if let Some(ts) = truncate_to_timestamp {
        match check::truncate_to_timestamp(&storage, &checked, now_unix)? {
            Ok(None) => {
                println!("nothing to truncate after timestamp {ts}");
                None
            }
            Ok(Some(r)) => Some(r),
            Err(refusal) => {
                println!("not truncated: {}", refusal.0);
                return Ok(ExitCode::from(1));
            }
        }
    } else if fix && !checked.is_valid() {
        match check::fix(&storage, &checked, now_unix)? {
            Ok(r) => r,
            Err(refusal) => {
                println!("not fixed: {}", refusal.0);
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        None
    };
    let checked = match repair {
        Some(r) => {
            println!(
                "truncated {} from {} to {} bytes; the original is kept as {}",
                r.file.display(),
                r.original_len,
                r.new_len,
                r.backup.display()
            );
            let again = check::check(&storage, path, None)?;
            print_report(&again);
            again
        }
        None => checked,
    };
    if checked.is_valid() {
        println!("AOF is valid");
        Ok(ExitCode::SUCCESS)
    } else {
        let hint = if fix {
            ""
        } else {
            " (--fix cuts a torn tail of the last file)"
        };
        println!("AOF is not valid{hint}");
        Ok(ExitCode::from(1))
    }
}

fn print_report(checked: &AofCheck) {
    if let AofInput::MultiPart { manifest, .. } = &checked.input {
        let m = checked.manifest.as_ref();
        println!(
            "manifest {}: ok ({} base, {} incr, {} history)",
            manifest.display(),
            m.map_or(0, |m| usize::from(m.base.is_some())),
            m.map_or(0, |m| m.incrs.len()),
            m.map_or(0, |m| m.history.len()),
        );
    }
    for file in &checked.files {
        println!("{}", describe(file));
    }
}

fn describe(f: &FileCheck) -> String {
    let kind = match f.kind {
        Some(FileKind::Base) => "base ",
        Some(FileKind::Incr) => "incr ",
        Some(FileKind::History) => "history ",
        None => "",
    };
    let preamble = f
        .rdb_len
        .map_or(String::new(), |n| format!(", RDB preamble {n} bytes"));
    let head = format!(
        "{kind}{}: size={}{preamble}, commands={}, ok_up_to={}",
        f.path.display(),
        f.size,
        f.commands,
        f.ok_up_to
    );
    let cut = f.timestamp_cut.map_or(String::new(), |at| {
        format!(", first timestamp beyond the limit at offset {at}")
    });
    match &f.verdict {
        Verdict::Valid => format!("{head}{cut}: valid"),
        Verdict::Empty => format!("{head}: empty"),
        Verdict::Missing => format!(
            "{kind}{}: MISSING (listed in the manifest)",
            f.path.display()
        ),
        Verdict::TornTail { at, reason } => format!(
            "{head}: TORN TAIL at offset {at} ({reason}), diff={} bytes",
            f.size - f.ok_up_to
        ),
        Verdict::Corrupt { at, reason } => format!(
            "{head}: CORRUPT at offset {at}: {reason} ({} bytes follow)",
            f.size.saturating_sub(*at)
        ),
    }
}
