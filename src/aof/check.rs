//! Checking (and carefully repairing) AOF files: what `keeper check-aof` runs, in the spirit of
//! `redis-check-aof` (redis-formats.md §2.4) but telling apart the two kinds of damage:
//!
//! - a **torn tail**: the file ends inside a command, or inside a `MULTI` block without its
//!   `EXEC`: what a crash mid-write leaves, safe to cut off (only from the last file: a gap
//!   in the middle of the history cannot be repaired by cutting);
//! - **mid-file corruption**: a byte no writer produces, with data after it. Cutting there
//!   would silently drop every later write, so `--fix` refuses (unlike `redis-check-aof
//!   --fix`, which truncates at the last good command whatever follows).
//!
//! `ok_up_to` is, as in `redis-check-aof`, the offset after the last valid command outside a
//! `MULTI` block. Repairs keep a copy of the original file (`<file>.bak-<unix seconds>`).
//! Everything goes through [`Storage`].

use std::path::{Path, PathBuf};

use super::manifest::{AofNames, FileKind, Manifest};
use super::record::{Record, RecordError, next_record};
use crate::error::{Error, Result};
use crate::storage::{FileView, Storage};

/// What a file check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record is complete and valid.
    Valid,
    /// The file has no bytes.
    Empty,
    /// Listed in the manifest, absent from the directory.
    Missing,
    /// Valid up to `ok_up_to`, then the data ends inside a record (at `at`) or inside an open
    /// `MULTI` (starting at `at`).
    TornTail { at: u64, reason: String },
    /// A bad byte at `at` (or a damaged RDB preamble), with or without data after it.
    Corrupt { at: u64, reason: String },
}

/// One file's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    pub path: PathBuf,
    /// The manifest's kind for the file; `None` for a file checked on its own.
    pub kind: Option<FileKind>,
    pub size: u64,
    /// Length of the RDB preamble, when the file starts with one.
    pub rdb_len: Option<u64>,
    /// Offset after the last valid command outside `MULTI`.
    pub ok_up_to: u64,
    /// Complete commands read.
    pub commands: u64,
    pub verdict: Verdict,
    /// With a timestamp limit: where the first `#TS:` annotation beyond it starts (before its
    /// `MULTI` if it is inside one). Checking stops there.
    pub timestamp_cut: Option<u64>,
}

impl FileCheck {
    /// True for [`Verdict::Valid`] and [`Verdict::Empty`].
    pub fn is_valid(&self) -> bool {
        matches!(self.verdict, Verdict::Valid | Verdict::Empty)
    }
}

/// Checks one file's bytes. `truncate_to_timestamp`: stop at the first `#TS:` annotation with
/// a larger value and note its offset.
pub fn check_file(
    path: &Path,
    data: &FileView,
    kind: Option<FileKind>,
    truncate_to_timestamp: Option<i64>,
) -> FileCheck {
    let mut out = FileCheck {
        path: path.to_path_buf(),
        kind,
        size: data.len() as u64,
        rdb_len: None,
        ok_up_to: 0,
        commands: 0,
        verdict: Verdict::Valid,
        timestamp_cut: None,
    };
    if data.is_empty() {
        out.verdict = Verdict::Empty;
        return out;
    }
    let mut pos = 0usize;
    if data.starts_with(b"REDIS") || data.starts_with(b"VALKEY") {
        match crate::rdb::check::check(data.clone(), &mut |_| {}) {
            Ok(report) => {
                out.rdb_len = Some(report.rdb_len);
                pos = report.rdb_len as usize;
            }
            Err(e) => {
                out.verdict = Verdict::Corrupt {
                    at: e.offset().unwrap_or(0),
                    reason: format!("RDB preamble: {e}"),
                };
                return out;
            }
        }
    }
    out.ok_up_to = pos as u64;
    let mut multi_start: Option<usize> = None;
    loop {
        let parsed = match next_record(data, pos) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                if let Some(at) = multi_start {
                    out.verdict = Verdict::TornTail {
                        at: at as u64,
                        reason: "MULTI without EXEC at the end of the file".into(),
                    };
                }
                return out;
            }
            Err(RecordError::Eof { start }) => {
                out.verdict = Verdict::TornTail {
                    at: multi_start.unwrap_or(start) as u64,
                    reason: format!("the file ends inside the record at offset {start}"),
                };
                return out;
            }
            Err(RecordError::Format { at, reason, .. }) => {
                out.verdict = Verdict::Corrupt {
                    at: at as u64,
                    reason,
                };
                return out;
            }
        };
        pos = parsed.end;
        match parsed.record {
            Record::Annotation(text) => {
                let ts = text
                    .strip_prefix(b"TS:")
                    .and_then(|t| std::str::from_utf8(t).ok()?.parse::<i64>().ok());
                if let (Some(ts), Some(limit)) = (ts, truncate_to_timestamp)
                    && ts > limit
                {
                    out.timestamp_cut = Some(multi_start.unwrap_or(parsed.start) as u64);
                    return out;
                }
            }
            Record::Command(argv) => {
                out.commands += 1;
                if argv[0].eq_ignore_ascii_case(b"MULTI") {
                    if multi_start.is_some() {
                        out.verdict = Verdict::Corrupt {
                            at: parsed.start as u64,
                            reason: "unexpected MULTI inside a MULTI block".into(),
                        };
                        return out;
                    }
                    multi_start = Some(parsed.start);
                } else if argv[0].eq_ignore_ascii_case(b"EXEC") && multi_start.take().is_none() {
                    out.verdict = Verdict::Corrupt {
                        at: parsed.start as u64,
                        reason: "unexpected EXEC without MULTI".into(),
                    };
                    return out;
                }
            }
        }
        if multi_start.is_none() {
            out.ok_up_to = pos as u64;
        }
    }
}

/// What `check-aof` was pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AofInput {
    /// One file (pre-7.0 single-file AOF, or one file of a directory).
    Single(PathBuf),
    /// A manifest and the directory holding it and its files.
    MultiPart { manifest: PathBuf, dir: PathBuf },
}

/// Finds out what `path` is: a directory (holding `appendonly.aof.manifest`, or exactly one
/// other `*.manifest`), a manifest (named `*.manifest`, or its first line that is not a
/// comment starts with `file`, as `redis-check-aof` decides), or a single AOF file.
pub fn locate(storage: &dyn Storage, path: &Path) -> Result<AofInput> {
    if storage.len(path)?.is_none() {
        return Err(Error::io(
            path,
            "open",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    if path.is_dir() {
        let names = storage.list(path)?;
        let default = AofNames::default().manifest_name();
        let manifest = if names.contains(&default) {
            default
        } else {
            let mut found = names
                .into_iter()
                .filter(|n| n.ends_with(".manifest") && !n.starts_with("temp-"));
            match (found.next(), found.next()) {
                (Some(only), None) => only,
                (None, _) => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: no AOF manifest in this directory",
                        path.display()
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: several AOF manifests in this directory; name one",
                        path.display()
                    )));
                }
            }
        };
        return Ok(AofInput::MultiPart {
            manifest: path.join(manifest),
            dir: path.to_path_buf(),
        });
    }
    let named_manifest = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".manifest"));
    let data = storage.read_all(path)?;
    let first_line = data
        .split(|&b| b == b'\n')
        .find(|line| !line.starts_with(b"#"))
        .unwrap_or_default();
    if named_manifest || first_line.starts_with(b"file") {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        return Ok(AofInput::MultiPart {
            manifest: path.to_path_buf(),
            dir,
        });
    }
    Ok(AofInput::Single(path.to_path_buf()))
}

/// A whole check: the manifest (if any) and every file in load order.
#[derive(Debug, Clone)]
pub struct AofCheck {
    pub input: AofInput,
    pub manifest: Option<Manifest>,
    pub files: Vec<FileCheck>,
}

impl AofCheck {
    /// True when every file is valid (or empty).
    pub fn is_valid(&self) -> bool {
        self.files.iter().all(FileCheck::is_valid)
    }
}

/// Checks everything `path` names (see [`locate`]). A damaged manifest is an error
/// ([`Error::Corrupt`] at the bad line).
pub fn check(
    storage: &dyn Storage,
    path: &Path,
    truncate_to_timestamp: Option<i64>,
) -> Result<AofCheck> {
    let input = locate(storage, path)?;
    match &input {
        AofInput::Single(file) => {
            let data = storage.read_all(file)?;
            let checked = check_file(file, &data, None, truncate_to_timestamp);
            Ok(AofCheck {
                input,
                manifest: None,
                files: vec![checked],
            })
        }
        AofInput::MultiPart { manifest, dir } => {
            let bytes = storage.read_all(manifest)?;
            let parsed = Manifest::parse(&bytes, manifest)?;
            let mut files = Vec::new();
            for file in parsed.load_order() {
                let path = dir.join(&file.name);
                if storage.len(&path)?.is_none() {
                    files.push(FileCheck {
                        path,
                        kind: Some(file.kind),
                        size: 0,
                        rdb_len: None,
                        ok_up_to: 0,
                        commands: 0,
                        verdict: Verdict::Missing,
                        timestamp_cut: None,
                    });
                    continue;
                }
                let data = storage.read_all(&path)?;
                files.push(check_file(
                    &path,
                    &data,
                    Some(file.kind),
                    truncate_to_timestamp,
                ));
            }
            Ok(AofCheck {
                input,
                manifest: Some(parsed),
                files,
            })
        }
    }
}

/// A truncation done by [`fix`] or [`truncate_to_timestamp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub file: PathBuf,
    /// The untouched original.
    pub backup: PathBuf,
    pub original_len: u64,
    pub new_len: u64,
}

/// Why a repair was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// `--fix`: cuts the torn tail of the last file (the only damage it repairs), keeping a copy
/// of the original. `Ok(Err(_))` explains a refusal; `Ok(Ok(None))`: nothing to fix.
pub fn fix(
    storage: &dyn Storage,
    checked: &AofCheck,
    now_unix: i64,
) -> Result<std::result::Result<Option<Repair>, Refusal>> {
    let Some((last, before)) = checked.files.split_last() else {
        return Ok(Ok(None));
    };
    if let Some(bad) = before.iter().find(|f| !f.is_valid()) {
        return Ok(Err(Refusal(format!(
            "{} is damaged but is not the last file: only the tail of the last file can be \
             cut without losing writes that follow it",
            bad.path.display()
        ))));
    }
    match &last.verdict {
        Verdict::Valid | Verdict::Empty => Ok(Ok(None)),
        Verdict::Missing => Ok(Err(Refusal(format!(
            "{} is missing; nothing can replace it",
            last.path.display()
        )))),
        Verdict::Corrupt { at, .. } => Ok(Err(Refusal(format!(
            "{} is corrupt at offset {at}, {} bytes before its end: not a torn tail; cutting \
             at ok_up_to={} would discard every write after the damage, so --fix leaves it \
             alone (repair by hand from the backup of your choice)",
            last.path.display(),
            last.size - at,
            last.ok_up_to
        )))),
        Verdict::TornTail { .. } => {
            truncate_with_backup(storage, &last.path, last.ok_up_to, now_unix).map(|r| Ok(Some(r)))
        }
    }
}

/// `--truncate-to-timestamp`: cuts the last file at its first `#TS:` annotation beyond the
/// limit given to [`check`], keeping a copy of the original. Refused when that annotation is
/// in an earlier file, or when nothing precedes it.
pub fn truncate_to_timestamp(
    storage: &dyn Storage,
    checked: &AofCheck,
    now_unix: i64,
) -> Result<std::result::Result<Option<Repair>, Refusal>> {
    let Some((last, before)) = checked.files.split_last() else {
        return Ok(Ok(None));
    };
    if let Some(f) = before.iter().find(|f| f.timestamp_cut.is_some()) {
        return Ok(Err(Refusal(format!(
            "{} has a timestamp beyond the limit at offset {} but is not the last file",
            f.path.display(),
            f.timestamp_cut.unwrap_or(0)
        ))));
    }
    match last.timestamp_cut {
        None => Ok(Ok(None)),
        Some(0) => Ok(Err(Refusal(format!(
            "{} has nothing before the timestamp limit",
            last.path.display()
        )))),
        Some(cut) => truncate_with_backup(storage, &last.path, cut, now_unix).map(|r| Ok(Some(r))),
    }
}

/// Copies `path` to `<path>.bak-<now_unix>` (synced), then truncates `path` to `len`.
fn truncate_with_backup(
    storage: &dyn Storage,
    path: &Path,
    len: u64,
    now_unix: i64,
) -> Result<Repair> {
    let original = storage.read_all(path)?;
    let mut backup = path.as_os_str().to_owned();
    backup.push(format!(".bak-{now_unix}"));
    let backup = PathBuf::from(backup);
    let mut copy = storage.create(&backup)?;
    copy.write_all(&original)?;
    copy.sync_data()?;
    drop(copy);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    storage.sync_dir(dir)?;
    storage.truncate(path, len)?;
    Ok(Repair {
        file: path.to_path_buf(),
        backup,
        original_len: original.len() as u64,
        new_len: len,
    })
}

/// Loads whatever `path` names (see [`locate`]) into `target`, without modifying anything: a
/// torn tail is an error here (`keeper check-aof --fix` repairs it). For `keeper inspect` and
/// `keeper convert`.
pub fn load_path(
    storage: &dyn Storage,
    path: &Path,
    target: &mut dyn crate::dataset::Apply,
    now_ms: i64,
) -> Result<super::loader::LoadReport> {
    let options = super::loader::LoadOptions {
        load_truncated: false,
        now_ms,
    };
    match locate(storage, path)? {
        AofInput::Single(file) => super::loader::load_single(storage, &file, target, &options),
        AofInput::MultiPart { manifest, dir } => {
            let bytes = storage.read_all(&manifest)?;
            let parsed = Manifest::parse(&bytes, &manifest)?;
            super::loader::load(
                storage,
                &dir,
                &AofNames::default(),
                &parsed,
                target,
                &options,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::write_command;

    fn view(bytes: &[u8]) -> FileView {
        FileView::from_vec(bytes.to_vec())
    }

    fn good() -> Vec<u8> {
        let mut out = b"#TS:100\r\n".to_vec();
        write_command(&mut out, &["SELECT", "0"]);
        write_command(&mut out, &["SET", "a", "1"]);
        out.extend_from_slice(b"#TS:200\r\n");
        write_command(&mut out, &["MULTI"]);
        write_command(&mut out, &["SET", "b", "1"]);
        write_command(&mut out, &["EXEC"]);
        out
    }

    #[test]
    fn valid_file() {
        let data = good();
        let c = check_file(Path::new("f"), &view(&data), None, None);
        assert_eq!(c.verdict, Verdict::Valid);
        assert_eq!(c.ok_up_to, data.len() as u64);
        assert_eq!(c.commands, 5);
    }

    #[test]
    fn torn_tails_and_open_multi() {
        let data = good();
        let mut torn = data.clone();
        torn.extend_from_slice(b"*2\r\n$3\r\nDEL\r\n$1");
        let c = check_file(Path::new("f"), &view(&torn), None, None);
        assert!(matches!(c.verdict, Verdict::TornTail { at, .. } if at == data.len() as u64));
        assert_eq!(c.ok_up_to, data.len() as u64);

        let mut open = data.clone();
        write_command(&mut open, &["MULTI"]);
        write_command(&mut open, &["SET", "c", "1"]);
        let c = check_file(Path::new("f"), &view(&open), None, None);
        assert!(matches!(c.verdict, Verdict::TornTail { at, .. } if at == data.len() as u64));
        assert_eq!(c.ok_up_to, data.len() as u64);
    }

    #[test]
    fn mid_file_corruption() {
        let mut data = good();
        let at = 9; // the `*` of the SELECT
        data[at] = b'!';
        let c = check_file(Path::new("f"), &view(&data), None, None);
        assert!(matches!(c.verdict, Verdict::Corrupt { at: 9, .. }), "{c:?}");
        assert_eq!(c.ok_up_to, 9);
    }

    #[test]
    fn timestamp_cut() {
        let data = good();
        let second_ts = data.windows(7).position(|w| w == b"#TS:200").unwrap() as u64;
        let c = check_file(Path::new("f"), &view(&data), None, Some(150));
        assert_eq!(c.timestamp_cut, Some(second_ts));
        let c = check_file(Path::new("f"), &view(&data), None, Some(50));
        assert_eq!(c.timestamp_cut, Some(0));
        let c = check_file(Path::new("f"), &view(&data), None, Some(500));
        assert_eq!(c.timestamp_cut, None);
    }

    #[test]
    fn fix_cuts_only_torn_tails_of_the_last_file_and_keeps_a_backup() {
        let storage = crate::storage::SimStorage::new(9);
        let dir = Path::new("d");
        storage.create_dir_all(dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let mut f = storage.create(&dir.join(name)).unwrap();
            f.write_all(bytes).unwrap();
            f.sync_data().unwrap();
        };
        let data = good();
        let mut torn = data.clone();
        torn.extend_from_slice(b"*1\r\n$4\r\nPI");
        write(
            "appendonly.aof.manifest",
            b"file a.aof seq 1 type i\nfile b.aof seq 2 type i\n",
        );
        write("a.aof", &data);
        write("b.aof", &torn);
        let checked = check(&storage, &dir.join("appendonly.aof.manifest"), None).unwrap();
        assert!(!checked.is_valid());
        let repair = fix(&storage, &checked, 42).unwrap().unwrap().unwrap();
        assert_eq!(repair.new_len, data.len() as u64);
        assert_eq!(repair.backup, dir.join("b.aof.bak-42"));
        assert_eq!(&*storage.read_all(&repair.backup).unwrap(), &torn[..]);
        let again = check(&storage, &dir.join("appendonly.aof.manifest"), None).unwrap();
        assert!(again.is_valid());

        // Torn in the first file: refused.
        write("a.aof", &torn);
        let checked = check(&storage, &dir.join("appendonly.aof.manifest"), None).unwrap();
        assert!(fix(&storage, &checked, 43).unwrap().is_err());
        // Mid-file corruption in the last: refused, the file untouched.
        write("a.aof", &data);
        let mut bad = data.clone();
        bad[9] = b'!';
        write("b.aof", &bad);
        let checked = check(&storage, &dir.join("appendonly.aof.manifest"), None).unwrap();
        assert!(fix(&storage, &checked, 44).unwrap().is_err());
        assert_eq!(
            storage.len(&dir.join("b.aof")).unwrap(),
            Some(bad.len() as u64)
        );
    }
}
