//! Loading a whole AOF directory into an [`Apply`] target, as Redis 7.0's
//! `loadAppendOnlyFiles` / `loadSingleAppendOnlyFile` do (redis-formats.md §2.4).
//!
//! The base, then every incr file, in manifest order. A file starting with `REDIS` (or
//! `VALKEY`) begins with an RDB, loaded with every key, expired ones too (the commands that
//! follow were written against them); RESP commands follow, in any file. Each file starts in
//! database 0; the loader follows `SELECT` itself, buffers `MULTI` … `EXEC` and applies the
//! block at `EXEC`, and skips `#` annotation lines after noting `#TS:` and keeper's
//! `#keeper-repl:` (the replication position, see [`ReplPosition`]).
//!
//! Failure modes:
//! - a listed file missing: an error before anything is loaded;
//! - the data ends inside a record, or inside an open `MULTI` (a torn tail): in the last file,
//!   with [`LoadOptions::load_truncated`], the file is truncated to the end of the last
//!   complete command outside `MULTI` and the load succeeds (the report says so); otherwise an
//!   error;
//! - anything else (a bad byte, a damaged RDB, a command the target refuses): an error naming
//!   the file and the byte offset.
//!
//! On error the target holds whatever was applied before: the caller discards it (a server
//! refuses to start, as Redis does).
//!
//! Deliberate differences from Redis 7.0: a torn tail inside a `MULTI` block is cut before the
//! `MULTI` at once (Redis first cuts after the last complete command, and only on the next
//! start before the `MULTI`), and a damaged RDB preamble is always an error (Redis treats an
//! RDB that ends early like a torn tail and would truncate a lone base file to nothing).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::manifest::{self, AofFile, AofNames, FileKind, Manifest};
use super::record::{Parsed, Record, RecordError, next_record};
use crate::dataset::Apply;
use crate::error::{Error, Result};
use crate::rdb::{Event, Reader};
use crate::storage::Storage;

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// `aof-load-truncated`: truncate a torn tail of the last file and go on. Default: yes.
    pub load_truncated: bool,
    /// The time commands are applied at (unix milliseconds).
    pub now_ms: i64,
}

/// What one file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub kind: FileKind,
    /// Size of the file as loaded (after truncation, if it was truncated).
    pub bytes: u64,
    /// Keys of its RDB preamble.
    pub rdb_keys: u64,
    /// Commands applied (`SELECT`, `MULTI` and `EXEC` included).
    pub commands: u64,
}

/// A torn tail cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub file: PathBuf,
    pub original_len: u64,
    pub new_len: u64,
}

/// The replication offset of the byte after the loaded stream: the offset of the last
/// `#keeper-repl:<replid>:<offset>` annotation plus the command bytes after it (annotation
/// lines are not stream bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplPosition {
    pub replid: String,
    pub offset: u64,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Base first, then the incr files, in load order.
    pub files: Vec<FileReport>,
    /// Keys loaded from the base's RDB preamble.
    pub base_keys: u64,
    pub truncation: Option<Truncation>,
    /// The last `#TS:` annotation's unix seconds.
    pub last_timestamp: Option<i64>,
    pub repl: Option<ReplPosition>,
    /// The database the stream selected at its end (the last file's; a file starts in 0):
    /// where a replica restarted from its AOF continues its primary's stream.
    pub stream_db: usize,
    /// Function libraries of an RDB preamble ([`Apply`] has no place for them).
    pub functions: Vec<Bytes>,
    /// AUX fields of an RDB preamble, in file order.
    pub aux: Vec<(Bytes, Bytes)>,
}

impl LoadReport {
    /// Commands applied over all files.
    pub fn commands(&self) -> u64 {
        self.files.iter().map(|f| f.commands).sum()
    }
}

/// Loads every file `manifest` lists from `aof_dir` into `target` (see the module docs).
pub fn load(
    storage: &dyn Storage,
    aof_dir: &Path,
    names: &AofNames,
    manifest: &Manifest,
    target: &mut dyn Apply,
    options: &LoadOptions,
) -> Result<LoadReport> {
    let _ = names; // every name comes from the manifest; kept for a stable signature
    let files: Vec<&AofFile> = manifest.load_order().collect();
    // Redis sizes every file before loading any: a missing one is fatal up front.
    for file in &files {
        let path = aof_dir.join(&file.name);
        if storage.len(&path)?.is_none() {
            return Err(Error::Corrupt {
                file: Some(path),
                offset: 0,
                reason: format!(
                    "the {} file {} is listed in the manifest but does not exist",
                    kind_name(file.kind),
                    file.name
                ),
            });
        }
    }
    let mut report = LoadReport::default();
    let mut stream = StreamPosition::default();
    for (i, file) in files.iter().enumerate() {
        let path = aof_dir.join(&file.name);
        let last = i + 1 == files.len();
        let file_report = load_file(
            storage,
            &path,
            file,
            last,
            target,
            options,
            &mut report,
            &mut stream,
        )?;
        if file.kind == FileKind::Base {
            report.base_keys = file_report.rdb_keys;
        }
        report.files.push(file_report);
    }
    report.repl = stream.position();
    Ok(report)
}

/// Loads one file that need not be listed in a manifest (a pre-7.0 single-file AOF, or a file
/// named on the command line): the same rules, as the last file.
pub fn load_single(
    storage: &dyn Storage,
    path: &Path,
    target: &mut dyn Apply,
    options: &LoadOptions,
) -> Result<LoadReport> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if storage.len(path)?.is_none() {
        return Err(Error::io(
            path,
            "open",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let file = AofFile {
        name,
        seq: 1,
        kind: FileKind::Base,
    };
    let mut report = LoadReport::default();
    let mut stream = StreamPosition::default();
    let file_report = load_file(
        storage,
        path,
        &file,
        true,
        target,
        options,
        &mut report,
        &mut stream,
    )?;
    report.base_keys = file_report.rdb_keys;
    report.files.push(file_report);
    report.repl = stream.position();
    Ok(report)
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Base => "base",
        FileKind::History => "history",
        FileKind::Incr => "incr",
    }
}

/// The last `#keeper-repl` annotation and the stream bytes applied since.
#[derive(Debug, Default)]
struct StreamPosition {
    mark: Option<(String, u64)>,
    bytes_since: u64,
}

impl StreamPosition {
    fn position(&self) -> Option<ReplPosition> {
        self.mark.as_ref().map(|(replid, offset)| ReplPosition {
            replid: replid.clone(),
            offset: offset + self.bytes_since,
        })
    }
}

/// How many records the loader parses ahead of the one it applies, telling the target what
/// comes ([`Apply::coming`]): a replay of single-key writes in random key order waits on a
/// cache miss or more per command, and a hint for the commands ahead lets those misses
/// overlap the commands before them.
const READ_AHEAD: usize = 3;

/// The records after the one being applied ([`READ_AHEAD`] of them), parsed.
struct ReadAhead<'a> {
    data: &'a [u8],
    /// Where the next parse starts; `None` once a parse found anything but a record (the end
    /// of the data, a torn or bad record): the loader stops there.
    pos: Option<usize>,
    /// The database after the records parsed so far (they follow `SELECT`s).
    db: usize,
    /// Parsed records, each with the database and key its hint names.
    queue: std::collections::VecDeque<(ParseResult<'a>, Option<Hint<'a>>)>,
}

/// What `next_record` returns.
type ParseResult<'a> = std::result::Result<Option<Parsed<'a>>, RecordError>;

/// The database and key a command is about ([`Apply::coming`]).
type Hint<'a> = (usize, &'a [u8]);

impl<'a> ReadAhead<'a> {
    fn new(data: &'a [u8], pos: usize, db: usize) -> ReadAhead<'a> {
        ReadAhead {
            data,
            pos: Some(pos),
            db,
            queue: std::collections::VecDeque::with_capacity(READ_AHEAD + 1),
        }
    }

    /// The next record, exactly as `next_record` at its position would return it; before
    /// returning it, parses ahead and tells `target` about each command ahead once at every
    /// distance from [`READ_AHEAD`] down to 1.
    fn next(&mut self, target: &dyn Apply) -> ParseResult<'a> {
        while self.queue.len() <= READ_AHEAD {
            let Some(pos) = self.pos else { break };
            let parsed = next_record(self.data, pos);
            let mut hint = None;
            match &parsed {
                Ok(Some(Parsed {
                    record: Record::Command(argv),
                    end,
                    ..
                })) => {
                    self.pos = Some(*end);
                    if argv[0].eq_ignore_ascii_case(b"SELECT") {
                        self.db = parse_db(argv).unwrap_or(self.db);
                    } else if let Some(key) = argv.get(1) {
                        hint = Some((self.db, *key));
                    }
                }
                Ok(Some(Parsed { end, .. })) => self.pos = Some(*end),
                _ => self.pos = None,
            }
            self.queue.push_back((parsed, hint));
        }
        let (current, _) = self.queue.pop_front().unwrap_or((Ok(None), None));
        for (distance, (_, hint)) in self.queue.iter().enumerate() {
            if let Some((db, key)) = hint {
                target.coming(*db, key, distance + 1);
            }
        }
        current
    }
}

/// A `MULTI` block being read: where it started, the database before it, and its commands
/// (with their database and offset) waiting for `EXEC`.
struct OpenMulti {
    start: usize,
    db_before: usize,
    queued: Vec<(usize, Vec<Bytes>, usize)>,
    bytes: u64,
}

#[allow(clippy::too_many_arguments)]
fn load_file(
    storage: &dyn Storage,
    path: &Path,
    file: &AofFile,
    last: bool,
    target: &mut dyn Apply,
    options: &LoadOptions,
    report: &mut LoadReport,
    stream: &mut StreamPosition,
) -> Result<FileReport> {
    let mut out = FileReport {
        name: file.name.clone(),
        kind: file.kind,
        bytes: 0,
        rdb_keys: 0,
        commands: 0,
    };
    let len = storage.len(path)?.unwrap_or(0);
    if len == 0 {
        return Ok(out); // AOF_EMPTY: nothing to load
    }
    let view = storage.read_all(path)?;
    // Arguments are handed to the target as slices of the file, without a copy each (the
    // store copies what it keeps).
    let whole = Bytes::from_owner(view.clone());
    let data: &[u8] = &whole;
    let mut args: Vec<Bytes> = Vec::with_capacity(16);
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        file: Some(path.to_path_buf()),
        offset: offset as u64,
        reason,
    };

    let mut pos = 0usize;
    if data.starts_with(b"REDIS") || data.starts_with(b"VALKEY") {
        let mut reader = Reader::from_slice(data).map_err(|e| e.with_file(path))?;
        while let Some(event) = reader.next_event().map_err(|e| e.with_file(path))? {
            match event {
                Event::Entry(entry) => {
                    target.load_entry(entry).map_err(|e| e.with_file(path))?;
                    out.rdb_keys += 1;
                }
                Event::Aux { key, value } => report.aux.push((key, value)),
                Event::Function(code) => report.functions.push(code),
                Event::ModuleAux { .. }
                | Event::SelectDb(_)
                | Event::ResizeDb { .. }
                | Event::SlotInfo { .. } => {}
            }
        }
        pos = reader.position() as usize;
    }

    let mut db = 0usize; // Redis's AOF client starts every file in database 0
    let mut ok_up_to = pos; // end of the last complete record outside MULTI
    let mut multi: Option<OpenMulti> = None;
    let mut ahead = ReadAhead::new(data, pos, db);
    let torn_at = loop {
        let Parsed { record, start, end } = match ahead.next(&*target) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => match &multi {
                None => break None,
                Some(open) => break Some(open.start),
            },
            Err(RecordError::Eof { start }) => {
                break Some(multi.as_ref().map_or(start, |open| open.start));
            }
            Err(RecordError::Format { at, reason, .. }) => {
                return Err(corrupt(at, format!("bad AOF format: {reason}")));
            }
        };
        let argv = match record {
            Record::Annotation(text) => {
                note_annotation(text, report, stream).map_err(|why| corrupt(start, why))?;
                if multi.is_none() {
                    ok_up_to = end;
                }
                continue;
            }
            Record::Command(argv) => argv,
        };
        let bytes = (end - start) as u64;
        out.commands += 1;
        let name = argv[0];
        if name.eq_ignore_ascii_case(b"MULTI") {
            if multi.is_some() {
                return Err(corrupt(start, "MULTI calls can not be nested".into()));
            }
            multi = Some(OpenMulti {
                start,
                db_before: db,
                queued: Vec::new(),
                bytes,
            });
            continue;
        }
        if name.eq_ignore_ascii_case(b"EXEC") {
            let Some(open) = multi.take() else {
                return Err(corrupt(start, "EXEC without MULTI".into()));
            };
            for (cmd_db, args, at) in &open.queued {
                target
                    .apply_command(*cmd_db, args, options.now_ms)
                    .map_err(|e| corrupt(*at, e.to_string()))?;
            }
            stream.bytes_since += open.bytes + bytes;
            ok_up_to = end;
            continue;
        }
        if name.eq_ignore_ascii_case(b"SELECT") {
            db = parse_db(&argv).ok_or_else(|| corrupt(start, "invalid SELECT".into()))?;
        }
        // Commands of a replication stream that change no data (a replica's AOF holds its
        // primary's stream verbatim): counted, not applied, as Redis's loader runs them to no
        // effect.
        let applied = !name.eq_ignore_ascii_case(b"SELECT") && !stream_only(name);
        match &mut multi {
            Some(open) => {
                open.bytes += bytes;
                if applied {
                    let queued = argv.iter().map(|a| whole.slice_ref(a)).collect();
                    open.queued.push((db, queued, start));
                }
            }
            None => {
                if applied {
                    args.clear();
                    args.extend(argv.iter().map(|a| whole.slice_ref(a)));
                    target
                        .apply_command(db, &args, options.now_ms)
                        .map_err(|e| corrupt(start, e.to_string()))?;
                }
                stream.bytes_since += bytes;
                ok_up_to = end;
            }
        }
    };
    if let Some(open) = &multi {
        // Commands of a block that never reached EXEC were not applied, nor counted.
        out.commands -= 1 + open.queued.len() as u64;
        db = open.db_before;
    }
    report.stream_db = db;
    out.bytes = len;
    if let Some(at) = torn_at {
        let what = if multi.is_some() {
            "a MULTI block without EXEC"
        } else {
            "an incomplete command"
        };
        if !last {
            return Err(corrupt(
                at,
                format!(
                    "unexpected end of file: {what} at the end of a file that is not the last \
                     one in the manifest"
                ),
            ));
        }
        if !options.load_truncated {
            return Err(corrupt(
                at,
                format!(
                    "unexpected end of file: {what} (aof-load-truncated is off; \
                     `keeper check-aof --fix` truncates it)"
                ),
            ));
        }
        storage.truncate(path, ok_up_to as u64)?;
        report.truncation = Some(Truncation {
            file: path.to_path_buf(),
            original_len: len,
            new_len: ok_up_to as u64,
        });
        out.bytes = ok_up_to as u64;
    }
    Ok(out)
}

/// The database index of a `SELECT db` (any non-negative number; the target refuses one it
/// does not have).
/// `PING`, `REPLCONF` (`GETACK`) and `PUBLISH`: what a primary propagates to its replicas
/// besides data changes.
fn stream_only(name: &[u8]) -> bool {
    [&b"PING"[..], b"REPLCONF", b"PUBLISH"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

fn parse_db(argv: &[&[u8]]) -> Option<usize> {
    match argv {
        [_, db] => std::str::from_utf8(db).ok()?.parse().ok(),
        _ => None,
    }
}

/// Notes what an annotation says: `TS:<unix seconds>` (a malformed one is ignored, as Redis
/// ignores every annotation) and `keeper-repl:<replid>:<offset>` (a malformed one is an
/// error: a wrong replication position would let a replica diverge).
fn note_annotation(
    text: &[u8],
    report: &mut LoadReport,
    stream: &mut StreamPosition,
) -> std::result::Result<(), String> {
    if let Some(ts) = text.strip_prefix(b"TS:") {
        if let Some(ts) = std::str::from_utf8(ts).ok().and_then(|t| t.parse().ok()) {
            report.last_timestamp = Some(ts);
        }
    } else if let Some(rest) = text.strip_prefix(b"keeper-repl:") {
        let parsed = std::str::from_utf8(rest).ok().and_then(|rest| {
            let (replid, offset) = rest.rsplit_once(':')?;
            let valid_id = !replid.is_empty() && replid.bytes().all(|b| b.is_ascii_alphanumeric());
            Some((replid.to_owned(), offset.parse::<u64>().ok()?)).filter(|_| valid_id)
        });
        let (replid, offset) =
            parsed.ok_or_else(|| "malformed #keeper-repl annotation".to_string())?;
        stream.mark = Some((replid, offset));
        stream.bytes_since = 0;
    }
    Ok(())
}

/// Moves a pre-7.0 single-file AOF (`dir/<appendfilename>`) into `dir/<aof_dir_name>` under a
/// manifest naming it as base seq 1, as Redis 7's `aofUpgradePrepare` does, in the same
/// crash-safe order: create the directory, persist the manifest, rename the file (a crash in
/// between leaves a state the next call completes). Runs when the old file exists and the
/// directory or its manifest is missing, the manifest lists nothing, or it lists only that
/// base and the file has not been moved yet. Returns whether it upgraded.
pub fn upgrade_single_file(
    storage: &dyn Storage,
    dir: &Path,
    aof_dir_name: &str,
    names: &AofNames,
) -> Result<bool> {
    let old = dir.join(&names.appendfilename);
    if storage.len(&old)?.is_none() {
        return Ok(false);
    }
    let aof_dir = dir.join(aof_dir_name);
    let moved = aof_dir.join(&names.appendfilename);
    let mut manifest = manifest::read(storage, &aof_dir, names)?.unwrap_or_default();
    let needed = manifest.is_empty()
        || (manifest.incrs.is_empty()
            && manifest
                .base
                .as_ref()
                .is_some_and(|b| b.name == names.appendfilename)
            && storage.len(&moved)?.is_none());
    if !needed {
        return Ok(false);
    }
    storage.create_dir_all(&aof_dir)?;
    storage.sync_dir(dir)?;
    manifest.base = Some(AofFile {
        name: names.appendfilename.clone(),
        seq: 1,
        kind: FileKind::Base,
    });
    manifest::persist(storage, &aof_dir, names, &manifest)?;
    storage.rename(&old, &moved)?;
    storage.sync_dir(&aof_dir)?;
    storage.sync_dir(dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::write_command;
    use crate::storage::SimStorage;
    use crate::store::{Store, Value};

    const NOW: i64 = 1_700_000_000_000;

    fn cmd(out: &mut Vec<u8>, args: &[&str]) {
        write_command(out, args);
    }

    struct Dir {
        storage: SimStorage,
        dir: PathBuf,
        names: AofNames,
    }

    impl Dir {
        fn new() -> Dir {
            let storage = SimStorage::new(3);
            let dir = PathBuf::from("d/appendonlydir");
            storage.create_dir_all(&dir).unwrap();
            Dir {
                storage,
                dir,
                names: AofNames::default(),
            }
        }

        fn write(&self, name: &str, bytes: &[u8]) {
            let mut f = self.storage.create(&self.dir.join(name)).unwrap();
            f.write_all(bytes).unwrap();
            f.sync_data().unwrap();
        }

        fn manifest(&self, base: Option<&str>, incrs: &[&str]) -> Manifest {
            Manifest {
                base: base.map(|n| AofFile {
                    name: n.into(),
                    seq: 1,
                    kind: FileKind::Base,
                }),
                history: vec![],
                incrs: incrs
                    .iter()
                    .enumerate()
                    .map(|(i, n)| AofFile {
                        name: (*n).into(),
                        seq: i as u64 + 1,
                        kind: FileKind::Incr,
                    })
                    .collect(),
            }
        }

        fn load(&self, m: &Manifest, truncated: bool) -> Result<(Store, LoadReport)> {
            let mut store = Store::new(16);
            let report = load(
                &self.storage,
                &self.dir,
                &self.names,
                m,
                &mut store,
                &LoadOptions {
                    load_truncated: truncated,
                    now_ms: NOW,
                },
            )?;
            Ok((store, report))
        }
    }

    fn string(store: &mut Store, db: usize, key: &str) -> Option<Vec<u8>> {
        match store.get(db, key.as_bytes(), NOW).map(|item| &item.value) {
            Some(Value::String(v)) => Some(v.to_vec()),
            _ => None,
        }
    }

    fn sample_incr() -> Vec<u8> {
        let mut out = b"#keeper-repl:abc123:100\r\n#TS:1700000000\r\n".to_vec();
        cmd(&mut out, &["SELECT", "0"]);
        cmd(&mut out, &["set", "a", "1"]);
        cmd(&mut out, &["SELECT", "3"]);
        cmd(&mut out, &["MULTI"]);
        cmd(&mut out, &["SET", "b", "2"]);
        cmd(&mut out, &["INCR", "b"]);
        cmd(&mut out, &["EXEC"]);
        out
    }

    /// Applies to a store and records, in order, the loader's hints and the commands applied.
    struct Recorder {
        store: Store,
        /// `(db, key, distance)` for a hint, `(db, key, 0)` for a command applied.
        events: std::cell::RefCell<Vec<(usize, Vec<u8>, usize)>>,
    }

    impl Apply for Recorder {
        fn clear(&mut self) {
            self.store.flush_all();
        }

        fn load_entry(&mut self, entry: crate::model::Entry) -> Result<()> {
            self.store.load_entry(entry);
            Ok(())
        }

        fn apply_command(&mut self, db: usize, argv: &[Bytes], now_ms: i64) -> Result<()> {
            self.events.get_mut().push((db, argv[1].to_vec(), 0));
            self.store.apply_command(db, argv, now_ms)
        }

        fn coming(&self, db: usize, key: &[u8], distance: usize) {
            self.events.borrow_mut().push((db, key.to_vec(), distance));
        }
    }

    #[test]
    fn the_replay_tells_the_target_of_each_command_three_two_and_one_commands_ahead() {
        let d = Dir::new();
        let mut incr = Vec::new();
        for key in ["k0", "k1", "k2", "k3"] {
            cmd(&mut incr, &["SET", key, "v"]);
        }
        cmd(&mut incr, &["SELECT", "5"]);
        cmd(&mut incr, &["SET", "k5", "v"]);
        incr.extend_from_slice(b"#TS:1700000000\r\n");
        cmd(&mut incr, &["SET", "k7", "v"]);
        d.write("i1.aof", &incr);
        let mut target = Recorder {
            store: Store::new(16),
            events: Default::default(),
        };
        load(
            &d.storage,
            &d.dir,
            &d.names,
            &d.manifest(None, &["i1.aof"]),
            &mut target,
            &LoadOptions {
                load_truncated: false,
                now_ms: NOW,
            },
        )
        .unwrap();
        let events = target.events.into_inner();
        // Every record counts as a step of distance; each key's events end with its command.
        let of = |key: &str| -> Vec<(usize, usize)> {
            events
                .iter()
                .filter(|(_, k, _)| k == key.as_bytes())
                .map(|(db, _, distance)| (*db, *distance))
                .collect()
        };
        assert_eq!(of("k0"), [(0, 0)], "the first record comes unannounced");
        assert_eq!(of("k1"), [(0, 1), (0, 0)]);
        assert_eq!(of("k2"), [(0, 2), (0, 1), (0, 0)]);
        assert_eq!(of("k3"), [(0, 3), (0, 2), (0, 1), (0, 0)]);
        assert_eq!(of("k5"), [(5, 3), (5, 2), (5, 1), (5, 0)], "after SELECT 5");
        assert_eq!(of("k7"), [(5, 3), (5, 2), (5, 1), (5, 0)]);
        assert_eq!(of("5"), [], "SELECT names no key");
        // The hints changed nothing: every key is where its command put it.
        assert_eq!(target.store.snapshot().len(), 6);
        assert_eq!(
            string(&mut target.store, 0, "k3").as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            string(&mut target.store, 5, "k7").as_deref(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn loads_resp_base_and_incrs_with_select_multi_and_annotations() {
        let d = Dir::new();
        let mut base = Vec::new();
        cmd(&mut base, &["SELECT", "1"]);
        cmd(&mut base, &["SET", "x", "base"]);
        d.write("b.aof", &base);
        let incr = sample_incr();
        d.write("i1.aof", &incr);
        let m = d.manifest(Some("b.aof"), &["i1.aof"]);
        let (mut store, report) = d.load(&m, true).unwrap();
        assert_eq!(string(&mut store, 1, "x").as_deref(), Some(&b"base"[..]));
        assert_eq!(string(&mut store, 0, "a").as_deref(), Some(&b"1"[..]));
        assert_eq!(string(&mut store, 3, "b").as_deref(), Some(&b"3"[..]));
        assert_eq!(report.last_timestamp, Some(1_700_000_000));
        assert_eq!(report.truncation, None);
        // Stream bytes after the annotation: the whole file minus its two annotation lines.
        let annotations = b"#keeper-repl:abc123:100\r\n#TS:1700000000\r\n".len() as u64;
        assert_eq!(
            report.repl,
            Some(ReplPosition {
                replid: "abc123".into(),
                offset: 100 + incr.len() as u64 - annotations
            })
        );
        assert_eq!(report.files[1].commands, 7);
    }

    /// A replica's incr file: its primary's stream verbatim (PING, REPLCONF GETACK, PUBLISH
    /// included, counted but not applied), and a `SELECT` it wrote outside the stream, with
    /// the position marked again after it.
    #[test]
    fn a_replicas_stream_loads_with_its_offsets() {
        let d = Dir::new();
        let mut incr = b"#keeper-repl:abc123:100\r\n".to_vec();
        cmd(&mut incr, &["SELECT", "2"]);
        incr.extend_from_slice(b"#keeper-repl:abc123:100\r\n");
        let stream_start = incr.len();
        cmd(&mut incr, &["ping"]);
        cmd(&mut incr, &["set", "a", "1"]);
        cmd(&mut incr, &["REPLCONF", "GETACK", "*"]);
        cmd(&mut incr, &["MULTI"]);
        cmd(&mut incr, &["PUBLISH", "ch", "m"]);
        cmd(&mut incr, &["INCR", "a"]);
        cmd(&mut incr, &["EXEC"]);
        d.write("i1.aof", &incr);
        let m = d.manifest(None, &["i1.aof"]);
        let (mut store, report) = d.load(&m, false).unwrap();
        assert_eq!(string(&mut store, 2, "a").as_deref(), Some(&b"2"[..]));
        assert_eq!(
            report.repl,
            Some(ReplPosition {
                replid: "abc123".into(),
                offset: 100 + (incr.len() - stream_start) as u64
            })
        );
        assert_eq!(report.stream_db, 2);
    }

    #[test]
    fn torn_tail_of_last_file_is_truncated_and_reported() {
        let d = Dir::new();
        let good = sample_incr();
        for tail in [
            &b"*3\r\n$3\r\nset\r\n$1\r\nz"[..],
            b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nset\r\n$1\r\nz\r\n$1\r\n1\r\n",
        ] {
            let mut data = good.clone();
            data.extend_from_slice(tail);
            d.write("i1.aof", &data);
            let m = d.manifest(None, &["i1.aof"]);
            let (mut store, report) = d.load(&m, true).unwrap();
            assert_eq!(string(&mut store, 0, "z"), None);
            assert_eq!(string(&mut store, 3, "b").as_deref(), Some(&b"3"[..]));
            let t = report.truncation.unwrap();
            assert_eq!(
                (t.original_len, t.new_len),
                (data.len() as u64, good.len() as u64)
            );
            assert_eq!(
                d.storage.len(&d.dir.join("i1.aof")).unwrap(),
                Some(good.len() as u64)
            );
            // Refused without aof-load-truncated.
            d.write("i1.aof", &data);
            let err = d.load(&m, false).err().expect("refused");
            assert_eq!(err.offset(), Some(good.len() as u64), "{err}");
        }
    }

    #[test]
    fn torn_tail_in_a_file_that_is_not_last_is_refused() {
        let d = Dir::new();
        let mut torn = sample_incr();
        let good_len = torn.len() as u64;
        torn.extend_from_slice(b"*2\r\n$3\r\nDEL");
        d.write("i1.aof", &torn);
        d.write("i2.aof", b"");
        let m = d.manifest(None, &["i1.aof", "i2.aof"]);
        let err = d.load(&m, true).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("i1.aof") && text.contains("not the last"),
            "{text}"
        );
        assert_eq!(err.offset(), Some(good_len));
        assert_eq!(
            d.storage.len(&d.dir.join("i1.aof")).unwrap(),
            Some(torn.len() as u64)
        );
    }

    #[test]
    fn garbage_mid_file_is_refused_with_file_and_offset() {
        let d = Dir::new();
        let mut data = sample_incr();
        let at = data.len();
        data.extend_from_slice(b"xx garbage\r\n");
        cmd(&mut data, &["SET", "after", "1"]);
        d.write("i1.aof", &data);
        let m = d.manifest(None, &["i1.aof"]);
        let err = d.load(&m, true).err().expect("refused");
        assert_eq!(err.offset(), Some(at as u64));
        assert!(err.to_string().contains("i1.aof"), "{err}");
        assert_eq!(
            d.storage.len(&d.dir.join("i1.aof")).unwrap(),
            Some(data.len() as u64)
        );
    }

    #[test]
    fn missing_listed_file_is_refused_before_loading() {
        let d = Dir::new();
        d.write("i1.aof", &sample_incr());
        let m = d.manifest(Some("gone.rdb"), &["i1.aof"]);
        let err = d.load(&m, true).err().expect("refused");
        assert!(err.to_string().contains("gone.rdb"), "{err}");
    }

    #[test]
    fn stray_exec_nested_multi_and_refused_commands_are_errors() {
        for (cmds, at_cmd) in [
            (&[&["EXEC"][..]][..], 0usize),
            (&[&["MULTI"][..], &["MULTI"]][..], 1),
            (&[&["SET", "k", "v"][..], &["NOSUCHCOMMAND", "x"]][..], 1),
            (&[&["SELECT", "x"][..]][..], 0),
        ] {
            let d = Dir::new();
            let mut data = Vec::new();
            let mut offsets = Vec::new();
            for c in cmds {
                offsets.push(data.len() as u64);
                cmd(&mut data, c);
            }
            d.write("i1.aof", &data);
            let err = d
                .load(&d.manifest(None, &["i1.aof"]), true)
                .err()
                .expect("refused");
            assert_eq!(err.offset(), Some(offsets[at_cmd]), "{cmds:?}: {err}");
        }
    }

    #[test]
    fn rdb_preamble_then_resp_tail() {
        let d = Dir::new();
        let mut entry = crate::model::Entry::new(
            2,
            Bytes::from_static(b"r"),
            crate::model::Value::String(Bytes::from_static(b"rdb")),
        );
        entry.expire_at_ms = Some(1);
        let mut writer =
            crate::rdb::Writer::new(Vec::new(), crate::rdb::WriteOptions::default()).unwrap();
        writer.write_entry(&entry).unwrap();
        let mut base = writer.finish().unwrap();
        cmd(&mut base, &["SET", "tail", "t"]);
        d.write("b.rdb", &base);
        let (mut loaded, report) = d.load(&d.manifest(Some("b.rdb"), &[]), true).unwrap();
        assert_eq!(report.base_keys, 1);
        assert_eq!(string(&mut loaded, 0, "tail").as_deref(), Some(&b"t"[..]));
        // The expired key is kept: expiry is for whoever serves the data.
        assert_eq!(loaded.db(2).len(), 1);
    }

    #[test]
    fn upgrade_moves_the_single_file_under_a_manifest() {
        let storage = SimStorage::new(5);
        let dir = Path::new("data");
        storage.create_dir_all(dir).unwrap();
        let names = AofNames::default();
        let mut data = Vec::new();
        cmd(&mut data, &["SET", "k", "v"]);
        let mut f = storage.create(&dir.join("appendonly.aof")).unwrap();
        f.write_all(&data).unwrap();
        f.sync_data().unwrap();
        drop(f);
        assert!(upgrade_single_file(&storage, dir, "appendonlydir", &names).unwrap());
        let aof_dir = dir.join("appendonlydir");
        let m = manifest::read(&storage, &aof_dir, &names).unwrap().unwrap();
        assert_eq!(m.to_bytes(), b"file appendonly.aof seq 1 type b\n".to_vec());
        assert_eq!(storage.len(&dir.join("appendonly.aof")).unwrap(), None);
        let mut store = Store::new(16);
        let opts = LoadOptions {
            load_truncated: true,
            now_ms: NOW,
        };
        load(&storage, &aof_dir, &names, &m, &mut store, &opts).unwrap();
        assert_eq!(string(&mut store, 0, "k").as_deref(), Some(&b"v"[..]));
        // Nothing left to upgrade.
        assert!(!upgrade_single_file(&storage, dir, "appendonlydir", &names).unwrap());
    }
}
