//! The AOF manifest and the names of the files it lists, exactly as Redis 7.0 writes and reads
//! them (`aofInfoFormat`, `aofLoadManifestFromFile` in src/aof.c; redis-formats.md §2.3).
//!
//! A manifest lists one file per `\n`-terminated line, `file <name> seq <n> type <b|h|i>`: the
//! base (at most one), then history files (`h`, waiting to be deleted), then the incr files in
//! the order they are replayed. Parsing is as strict as Redis's (any violation is fatal there,
//! an [`Error::Corrupt`] naming the manifest and the byte offset of the bad line here), and
//! forward compatible the same way: extra key/value pairs on a line are ignored.

use std::path::Path;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::storage::Storage;

/// Longest manifest line, its `\n` included (`MANIFEST_MAX_LINE`).
pub const MAX_LINE: usize = 1024;

/// Redis's default `appendfilename`.
pub const DEFAULT_APPENDFILENAME: &str = "appendonly.aof";
/// Redis's default `appenddirname`.
pub const DEFAULT_APPENDDIRNAME: &str = "appendonlydir";

/// What a listed file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The snapshot the incr files build on (`b`).
    Base,
    /// A file replaced by a rewrite, kept listed until it is deleted (`h`).
    History,
    /// Commands appended after the base, replayed in manifest order (`i`).
    Incr,
}

impl FileKind {
    /// The manifest's type character.
    pub fn code(self) -> u8 {
        match self {
            FileKind::Base => b'b',
            FileKind::History => b'h',
            FileKind::Incr => b'i',
        }
    }

    fn from_code(code: u8) -> Option<FileKind> {
        match code {
            b'b' => Some(FileKind::Base),
            b'h' => Some(FileKind::History),
            b'i' => Some(FileKind::Incr),
            _ => None,
        }
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    /// A bare file name inside the AOF directory.
    pub name: String,
    /// Non-zero; the number in the name for files keeper (or Redis) created.
    pub seq: u64,
    pub kind: FileKind,
}

/// The files of an AOF directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFile>,
    pub history: Vec<AofFile>,
    /// Strictly increasing `seq`.
    pub incrs: Vec<AofFile>,
}

/// The file names derived from `appendfilename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofNames {
    pub appendfilename: String,
}

impl Default for AofNames {
    fn default() -> Self {
        AofNames {
            appendfilename: DEFAULT_APPENDFILENAME.to_owned(),
        }
    }
}

impl AofNames {
    pub fn new(appendfilename: impl Into<String>) -> Self {
        AofNames {
            appendfilename: appendfilename.into(),
        }
    }

    /// `<appendfilename>.<seq>.base.rdb` (RDB preamble) or `.base.aof` (RESP base).
    pub fn base_name(&self, seq: u64, rdb_preamble: bool) -> String {
        let format = if rdb_preamble { "rdb" } else { "aof" };
        format!("{}.{seq}.base.{format}", self.appendfilename)
    }

    /// `<appendfilename>.<seq>.incr.aof`.
    pub fn incr_name(&self, seq: u64) -> String {
        format!("{}.{seq}.incr.aof", self.appendfilename)
    }

    /// `<appendfilename>.manifest`.
    pub fn manifest_name(&self) -> String {
        format!("{}.manifest", self.appendfilename)
    }

    /// `temp-<appendfilename>.manifest`: written, synced, then renamed over the manifest.
    pub fn temp_manifest_name(&self) -> String {
        format!("temp-{}.manifest", self.appendfilename)
    }

    /// `temp-<appendfilename>.incr`: the incr file of an AOF being enabled at runtime.
    pub fn temp_incr_name(&self) -> String {
        format!("temp-{}.incr", self.appendfilename)
    }
}

impl Manifest {
    /// Parses a manifest as `aofLoadManifestFromFile` does. `path` only names the file in
    /// errors; every error is [`Error::Corrupt`] at the byte offset of the offending line.
    ///
    /// Rules: lines are read in chunks of at most [`MAX_LINE`] bytes the way `fgets` does; a
    /// chunk starting with `#` is skipped; any other chunk must hold its `\n`; trimmed of
    /// spaces, tabs, `\r` and `\n` it must not be empty; it is split like `sdssplitargs`
    /// (quotes and escapes) into an even number (≥ 6) of key/value tokens, keys compared
    /// without case, unknown keys ignored, a repeated key's last value winning. `file` must be
    /// a bare name, `seq` parses like `atoll` and must not be 0, `type` is the value's first
    /// character. At most one base; incr seqs strictly increasing. An empty file is an error.
    ///
    /// Deliberate differences, for values no Redis writes: a negative `seq` (which `atoll`
    /// would accept for base and history lines), an empty or non-UTF-8 name, and a NUL byte in
    /// a line are refused; words are split at ASCII whitespace as [`crate::resp::split_args`]
    /// defines it (C's `isspace` differs only for `\v`/`\f`).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let err = |offset: usize, line_no: usize, reason: &str| Error::Corrupt {
            file: Some(path.to_path_buf()),
            offset: offset as u64,
            reason: format!("AOF manifest line {line_no}: {reason}"),
        };
        if bytes.is_empty() {
            return Err(err(0, 0, "Found an empty AOF manifest"));
        }
        let mut manifest = Manifest::default();
        let mut max_incr_seq = 0u64;
        let mut pos = 0usize;
        let mut line_no = 0usize;
        while pos < bytes.len() {
            let start = pos;
            // fgets with a MAX_LINE+1 buffer: up to MAX_LINE bytes, through the first '\n'.
            let window = &bytes[start..bytes.len().min(start + MAX_LINE)];
            let chunk = match window.iter().position(|&b| b == b'\n') {
                Some(nl) => &window[..=nl],
                None => window,
            };
            pos += chunk.len();
            line_no += 1;
            if chunk[0] == b'#' {
                continue;
            }
            if chunk.last() != Some(&b'\n') {
                return Err(err(
                    start,
                    line_no,
                    "The AOF manifest file contains too long line",
                ));
            }
            if chunk.contains(&0) {
                return Err(err(start, line_no, "NUL byte in an AOF manifest line"));
            }
            let line = trim(chunk);
            if line.is_empty() {
                return Err(err(start, line_no, "Invalid AOF manifest file format"));
            }
            let (name, seq, kind) = parse_line(line)
                .map_err(|reason| err(start, line_no, reason))?
                .ok_or_else(|| err(start, line_no, "Invalid AOF manifest file format"))?;
            if kind == FileKind::Incr && seq <= max_incr_seq as i64 {
                return Err(err(start, line_no, "Found a non-monotonic sequence number"));
            }
            let seq =
                u64::try_from(seq).map_err(|_| err(start, line_no, "negative sequence number"))?;
            if name.is_empty() {
                return Err(err(start, line_no, "empty file name"));
            }
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| err(start, line_no, "file name is not UTF-8"))?;
            let file = AofFile { name, seq, kind };
            match file.kind {
                FileKind::Base => {
                    if manifest.base.is_some() {
                        return Err(err(start, line_no, "Found duplicate base file information"));
                    }
                    manifest.base = Some(file);
                }
                FileKind::History => manifest.history.push(file),
                FileKind::Incr => {
                    max_incr_seq = file.seq;
                    manifest.incrs.push(file);
                }
            }
        }
        Ok(manifest)
    }

    /// The manifest as `getAofManifestAsString` writes it: base, history, incr lines, names
    /// quoted like `sdscatrepr` when they need it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for file in self.base.iter().chain(&self.history).chain(&self.incrs) {
            out.extend_from_slice(b"file ");
            if needs_repr(file.name.as_bytes()) {
                cat_repr(&mut out, file.name.as_bytes());
            } else {
                out.extend_from_slice(file.name.as_bytes());
            }
            out.extend_from_slice(format!(" seq {} type ", file.seq).as_bytes());
            out.push(file.kind.code());
            out.push(b'\n');
        }
        out
    }

    /// True when neither a base nor an incr file is listed (nothing to load).
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incrs.is_empty()
    }

    /// The files to load, in order: the base, then every incr file.
    pub fn load_order(&self) -> impl Iterator<Item = &AofFile> {
        self.base.iter().chain(&self.incrs)
    }

    /// Seq of the next incr file: one past every incr listed, history included
    /// (`++curr_incr_file_seq`; 1 when there is none). Counting history too means a new name
    /// never collides with a file still waiting to be deleted.
    pub fn next_incr_seq(&self) -> u64 {
        let history = self.history.iter().filter(|f| f.name.contains(".incr."));
        self.incrs
            .iter()
            .chain(history)
            .map(|f| f.seq)
            .max()
            .map_or(1, |seq| seq + 1)
    }

    /// Seq of the next base file: one past every base listed, history included (1 when there
    /// is none).
    pub fn next_base_seq(&self) -> u64 {
        let history = self.history.iter().filter(|f| f.name.contains(".base."));
        self.base
            .iter()
            .chain(history)
            .map(|f| f.seq)
            .max()
            .map_or(1, |seq| seq + 1)
    }

    /// Lists a new incr file (`getNewIncrAofName`) and returns it.
    pub fn add_incr(&mut self, names: &AofNames) -> &AofFile {
        let seq = self.next_incr_seq();
        self.incrs.push(AofFile {
            name: names.incr_name(seq),
            seq,
            kind: FileKind::Incr,
        });
        let last = self.incrs.len() - 1;
        &self.incrs[last]
    }

    /// A rewrite's new base (`getNewBaseFileNameAndMarkPreAsHistory`): the current base, if
    /// any, becomes the first history file; the new one is listed and returned.
    pub fn set_new_base(&mut self, names: &AofNames, rdb_preamble: bool) -> &AofFile {
        let seq = self.next_base_seq();
        if let Some(mut old) = self.base.take() {
            old.kind = FileKind::History;
            self.history.insert(0, old);
        }
        &*self.base.insert(AofFile {
            name: names.base_name(seq, rdb_preamble),
            seq,
            kind: FileKind::Base,
        })
    }

    /// After a successful rewrite (`markRewrittenIncrAofAsHistory`): every incr file but the
    /// last (the one being written, which follows the new base) moves to history. With
    /// `keep_last` false (AOF off) all of them move.
    pub fn mark_rewritten_incrs_as_history(&mut self, keep_last: bool) {
        let keep = usize::from(keep_last && !self.incrs.is_empty());
        let moved = self.incrs.len() - keep;
        for mut file in self.incrs.drain(..moved) {
            file.kind = FileKind::History;
            self.history.push(file);
        }
    }

    /// Drops the history list (after its files were deleted).
    pub fn clear_history(&mut self) -> Vec<AofFile> {
        std::mem::take(&mut self.history)
    }
}

/// One manifest line's tokens → `(name, seq, kind)`; `Ok(None)` for Redis's generic "Invalid
/// AOF manifest file format" (bad token count, missing or zero field).
fn parse_line(line: &[u8]) -> std::result::Result<Option<(Bytes, i64, FileKind)>, &'static str> {
    let Some(args) = crate::resp::split_args(line) else {
        return Ok(None);
    };
    if args.len() < 6 || !args.len().is_multiple_of(2) {
        return Ok(None);
    }
    let (mut name, mut seq, mut kind) = (None, 0i64, 0u8);
    for pair in args.chunks_exact(2) {
        let (key, value) = (&pair[0], &pair[1]);
        if key.eq_ignore_ascii_case(b"file") {
            if value.contains(&b'/') || value.contains(&b'\\') {
                return Err("File can't be a path, just a filename");
            }
            name = Some(value.clone());
        } else if key.eq_ignore_ascii_case(b"seq") {
            seq = atoll(value);
        } else if key.eq_ignore_ascii_case(b"type") {
            kind = value.first().copied().unwrap_or(0);
        }
    }
    let Some(name) = name else { return Ok(None) };
    if seq == 0 || kind == 0 {
        return Ok(None);
    }
    let kind = FileKind::from_code(kind).ok_or("Unknown AOF file type")?;
    Ok(Some((name, seq, kind)))
}

/// `sdstrim(line, " \t\r\n")`.
fn trim(mut s: &[u8]) -> &[u8] {
    let strip = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while let [first, rest @ ..] = s {
        if !strip(first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !strip(last) {
            break;
        }
        s = rest;
    }
    s
}

/// C's `atoll`: optional leading whitespace and sign, then digits up to the first non-digit;
/// 0 when there are none; clamped at the `i64` range (glibc's `strtoll`).
fn atoll(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || (b'\t'..=b'\r').contains(&s[i])) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        let digit = i64::from(d - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(digit)
        } else {
            value.saturating_mul(10).saturating_add(digit)
        };
        i += 1;
    }
    value
}

/// C's `isprint` in the "C" locale.
fn is_print(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// `sdsneedsrepr`: true when the name must be quoted to survive `sdssplitargs`. One addition:
/// a single quote, which Redis leaves bare and then cannot read back (`sdssplitargs` takes it
/// for an opening quote); quoted, Redis reads it fine.
fn needs_repr(s: &[u8]) -> bool {
    s.iter().any(|&b| {
        matches!(
            b,
            b'\\' | b'"' | b'\'' | b'\n' | b'\r' | b'\t' | 0x07 | 0x08
        ) || !is_print(b)
            || b == b' '
            || (b'\t'..=b'\r').contains(&b)
    })
}

/// `sdscatrepr`: `"…"` with `\\ \" \n \r \t \a \b` escaped and other unprintable bytes as
/// `\xHH`.
pub(crate) fn cat_repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            b if is_print(b) => out.push(b),
            b => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// Reads `aof_dir/<appendfilename>.manifest`; `None` when it (or the directory) is missing.
pub fn read(storage: &dyn Storage, aof_dir: &Path, names: &AofNames) -> Result<Option<Manifest>> {
    let path = aof_dir.join(names.manifest_name());
    if storage.len(&path)?.is_none() {
        return Ok(None);
    }
    let bytes = storage.read_all(&path)?;
    Manifest::parse(&bytes, &path).map(Some)
}

/// Publishes `manifest` as `aof_dir/<appendfilename>.manifest` the way `writeAofManifestFile`
/// does: written to `temp-<appendfilename>.manifest` (truncated first), `fdatasync`ed, renamed
/// over the manifest, then the directory fsynced. A crash at any step leaves the old manifest
/// or the new one. On error before the rename the temp file is removed.
pub fn persist(
    storage: &dyn Storage,
    aof_dir: &Path,
    names: &AofNames,
    manifest: &Manifest,
) -> Result<()> {
    let temp = aof_dir.join(names.temp_manifest_name());
    let target = aof_dir.join(names.manifest_name());
    let written = (|| {
        let mut file = storage.create(&temp)?;
        file.write_all(&manifest.to_bytes())?;
        file.sync_data()
    })();
    if let Err(e) = written {
        let _ = storage.remove(&temp); // best effort: the write error is what matters
        return Err(e);
    }
    if let Err(e) = storage.rename(&temp, &target) {
        let _ = storage.remove(&temp);
        return Err(e);
    }
    storage.sync_dir(aof_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text.as_bytes(), Path::new("m"))
    }

    fn rejected(text: &[u8]) -> (u64, String) {
        match Manifest::parse(text, Path::new("m")) {
            Err(Error::Corrupt { offset, reason, .. }) => (offset, reason),
            other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(text)),
        }
    }

    fn file(name: &str, seq: u64, kind: FileKind) -> AofFile {
        AofFile {
            name: name.into(),
            seq,
            kind,
        }
    }

    #[test]
    fn parses_what_redis_writes() {
        let m = parse(
            "file appendonly.aof.2.base.rdb seq 2 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n\
             file appendonly.aof.3.incr.aof seq 3 type i\n",
        )
        .unwrap();
        assert_eq!(
            m.base,
            Some(file("appendonly.aof.2.base.rdb", 2, FileKind::Base))
        );
        assert_eq!(
            m.history,
            vec![file("appendonly.aof.1.incr.aof", 1, FileKind::History)]
        );
        assert_eq!(m.incrs.len(), 2);
        assert_eq!(m.next_incr_seq(), 4);
        assert_eq!(m.next_base_seq(), 3);
    }

    #[test]
    fn writes_base_history_incr_in_that_order() {
        let m = Manifest {
            base: Some(file("appendonly.aof.1.base.rdb", 1, FileKind::Base)),
            history: vec![file("old", 7, FileKind::History)],
            incrs: vec![file("appendonly.aof.1.incr.aof", 1, FileKind::Incr)],
        };
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            "file appendonly.aof.1.base.rdb seq 1 type b\nfile old seq 7 type h\n\
             file appendonly.aof.1.incr.aof seq 1 type i\n"
        );
    }

    #[test]
    fn quotes_names_like_sdscatrepr() {
        let m = Manifest {
            incrs: vec![file("a b\"c'\t\u{7f}é", 1, FileKind::Incr)],
            ..Manifest::default()
        };
        let text = m.to_bytes();
        assert_eq!(
            text,
            b"file \"a b\\\"c'\\t\\x7f\\xc3\\xa9\" seq 1 type i\n".to_vec()
        );
        assert_eq!(Manifest::parse(&text, Path::new("m")).unwrap(), m);
    }

    #[test]
    fn accepts_comments_extra_pairs_case_and_crlf() {
        let m = parse(
            "# written by hand\n\
             FILE 'x.aof' SEQ 5 Type i startoffset 100 endoffset 200\r\n\
             file y seq 6 type incr\n",
        )
        .unwrap();
        assert_eq!(m.incrs[0], file("x.aof", 5, FileKind::Incr));
        assert_eq!(m.incrs[1], file("y", 6, FileKind::Incr));
        // Only comments: a manifest with nothing in it, not an error.
        assert!(parse("# nothing\n").unwrap().is_empty());
        // atoll: digits up to the first non-digit.
        assert_eq!(
            parse("file z seq 12abc type b\n")
                .unwrap()
                .base
                .unwrap()
                .seq,
            12
        );
    }

    #[test]
    fn rejects_every_broken_rule() {
        let cases: &[(&[u8], u64, &str)] = &[
            (b"", 0, "empty AOF manifest"),
            (
                b"file a seq 1 type b\n\n",
                20,
                "Invalid AOF manifest file format",
            ),
            (
                b"file a seq 1 type b\n  \t\r\n",
                20,
                "Invalid AOF manifest file format",
            ),
            (b"file a seq 1 type b", 0, "too long line"),
            (
                b"file a seq 1 type\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file a seq 1 type b x\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file a seq 1 kind b\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file a seq 0 type b\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file a seq x type b\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file a seq 1 type ''\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file \"a seq 1 type b\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (
                b"file \"a\"b seq 1 type b\n",
                0,
                "Invalid AOF manifest file format",
            ),
            (b"file d/a seq 1 type b\n", 0, "just a filename"),
            (b"file d\\\\a seq 1 type b\n", 0, "just a filename"),
            (b"file a seq 1 type x\n", 0, "Unknown AOF file type"),
            (
                b"file a seq 1 type b\nfile c seq 2 type b\n",
                20,
                "duplicate base",
            ),
            (
                b"file a seq 2 type i\nfile c seq 2 type i\n",
                20,
                "non-monotonic",
            ),
            (
                b"file a seq 3 type i\nfile c seq 2 type i\n",
                20,
                "non-monotonic",
            ),
            (b"file a seq -1 type i\n", 0, "non-monotonic"),
            (b"file a seq -1 type b\n", 0, "negative"),
            (b"file \"\" seq 1 type b\n", 0, "empty file name"),
            (b"file \"\\xff\" seq 1 type b\n", 0, "not UTF-8"),
            (b"file a\0 seq 1 type b\n", 0, "NUL"),
        ];
        for (text, offset, reason) in cases {
            let (at, why) = rejected(text);
            assert_eq!(at, *offset, "{:?}: {why}", String::from_utf8_lossy(text));
            assert!(
                why.contains(reason),
                "{:?}: {why:?} lacks {reason:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn line_length_limit_is_fgets_with_1025_bytes() {
        // 1023 characters plus '\n' fit; one more does not.
        let pad = |n: usize| {
            let mut line = b"file a seq 1 type b".to_vec();
            line.resize(n, b' ');
            line.push(b'\n');
            line
        };
        assert!(Manifest::parse(&pad(1023), Path::new("m")).is_ok());
        assert!(rejected(&pad(1024)).1.contains("too long line"));
        // A long comment is read in chunks, and its second chunk is a line of its own.
        let mut long_comment = vec![b'#'];
        long_comment.resize(1100, b'x');
        long_comment.push(b'\n');
        assert_eq!(rejected(&long_comment).0, 1024);
    }

    #[test]
    fn names_follow_appendfilename() {
        let names = AofNames::new("x.aof");
        assert_eq!(names.base_name(3, true), "x.aof.3.base.rdb");
        assert_eq!(names.base_name(3, false), "x.aof.3.base.aof");
        assert_eq!(names.incr_name(4), "x.aof.4.incr.aof");
        assert_eq!(names.manifest_name(), "x.aof.manifest");
        assert_eq!(names.temp_manifest_name(), "temp-x.aof.manifest");
        assert_eq!(names.temp_incr_name(), "temp-x.aof.incr");
    }

    #[test]
    fn rewrite_bookkeeping_matches_redis() {
        let names = AofNames::default();
        let mut m = Manifest::default();
        m.set_new_base(&names, true);
        m.add_incr(&names);
        // BGREWRITEAOF: new incr first, then the new base; the old files become history.
        m.add_incr(&names);
        m.set_new_base(&names, true);
        m.mark_rewritten_incrs_as_history(true);
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            "file appendonly.aof.2.base.rdb seq 2 type b\n\
             file appendonly.aof.1.base.rdb seq 1 type h\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n"
        );
        assert_eq!(m.clear_history().len(), 2);
        assert!(m.history.is_empty());
    }

    #[test]
    fn persist_uses_redis_temp_name_and_read_finds_it() {
        let storage = SimStorage::new(7);
        let dir = Path::new("appendonlydir");
        storage.create_dir_all(dir).unwrap();
        let names = AofNames::default();
        assert_eq!(read(&storage, dir, &names).unwrap(), None);
        let mut m = Manifest::default();
        m.set_new_base(&names, false);
        m.add_incr(&names);
        persist(&storage, dir, &names, &m).unwrap();
        assert_eq!(read(&storage, dir, &names).unwrap(), Some(m));
        assert_eq!(
            storage.list(dir).unwrap(),
            vec!["appendonly.aof.manifest".to_string()]
        );
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.]{1,20}",
            proptest::collection::vec(
                any::<char>().prop_filter("no NUL/slash", |c| { !matches!(c, '\0' | '/' | '\\') }),
                1..12
            )
            .prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn arb_file(kind: FileKind) -> impl Strategy<Value = AofFile> {
        (arb_name(), 1u64..=i64::MAX as u64).prop_map(move |(name, seq)| AofFile {
            name,
            seq,
            kind,
        })
    }

    proptest! {
        #[test]
        fn round_trip(
            base in proptest::option::of(arb_file(FileKind::Base)),
            history in proptest::collection::vec(arb_file(FileKind::History), 0..4),
            mut incrs in proptest::collection::vec(arb_file(FileKind::Incr), 0..4),
        ) {
            // Incr seqs strictly increasing, as the parser demands.
            incrs.sort_by_key(|f| f.seq);
            incrs.dedup_by_key(|f| f.seq);
            let m = Manifest { base, history, incrs };
            let bytes = m.to_bytes();
            prop_assume!(!bytes.is_empty());
            // Names long enough to push a line past the limit are refused, never misread.
            match Manifest::parse(&bytes, Path::new("m")) {
                Ok(parsed) => prop_assert_eq!(parsed, m),
                Err(e) => prop_assert!(e.to_string().contains("too long line")),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::parse(&bytes, Path::new("m"));
        }
    }
}
