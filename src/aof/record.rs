//! Strict reading of AOF records (redis-formats.md §2.1, §2.4): RESP2 multibulk commands
//! (`*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument) and `#` annotation lines.
//!
//! Unlike a client connection, an AOF holds no inline commands, and the reader tells apart the
//! two ways a file can be bad, as Redis's loader does:
//! - [`RecordError::Eof`]: the data ends inside a record, a torn tail left by a crash mid-write,
//!   which Redis truncates (`aof-load-truncated`);
//! - [`RecordError::Format`]: a byte that no writer produces, with more data after it or not:
//!   mid-file damage, never truncated away silently.
//!
//! Stricter than Redis in two places where Redis reads garbage without noticing: header lines
//! must be exactly `*<digits>\r\n` / `$<digits>\r\n`, and the two bytes after a bulk must be
//! `\r\n`. Nothing a correct writer produces is refused.
//!
//! Hostile lengths allocate nothing: a bulk length is checked against the bytes that remain,
//! and arguments are slices of the input, collected into a vector that grows only as they are
//! actually found.

/// Longest annotation line, `\n` included (`AOF_ANNOTATION_LINE_MAX_LEN`).
pub const ANNOTATION_MAX_LEN: usize = 1024;
/// Longest `*N` / `$N` header line, `\r\n` included. Redis reads them with a 1024-byte buffer
/// too; no valid header is longer than 22 bytes.
const HEADER_MAX_LEN: usize = 1024;
/// Largest bulk accepted (`proto-max-bulk-len`'s default, 512 MiB): a longer one cannot have
/// been written by a server, so it is damage, not a torn tail.
pub const MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// Largest argument count (`INT_MAX`, as Redis's `atoi`).
const MAX_ARGC: u64 = i32::MAX as u64;
/// Initial capacity of an argument vector whatever the count says.
const ARGV_INITIAL_CAPACITY: usize = 64;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A `#` line: its text after `#`, without the line end.
    Annotation(&'a [u8]),
    /// A command's arguments (at least one).
    Command(Vec<&'a [u8]>),
}

/// A record and where it lies in the data: `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub record: Record<'a>,
    pub start: usize,
    pub end: usize,
}

/// Why no record could be read at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The data ends inside the record starting at `start`.
    Eof { start: usize },
    /// The byte at `at` cannot be part of a valid record (which started at `start`).
    Format {
        start: usize,
        at: usize,
        reason: String,
    },
}

/// The record starting at `pos`, `Ok(None)` at the end of `data`.
///
/// A bad byte followed by nothing but zeros to the end of the data is a torn tail
/// ([`RecordError::Eof`]), not damage: after a power loss ext4 and XFS can keep a file's new
/// length while the data written there never reached the disk, and the tail reads as zeros.
pub fn next_record(data: &[u8], pos: usize) -> Result<Option<Parsed<'_>>, RecordError> {
    match next_record_strict(data, pos) {
        Err(RecordError::Format { start, at, .. })
            if at < data.len() && data[at..].iter().all(|&b| b == 0) =>
        {
            Err(RecordError::Eof { start })
        }
        other => other,
    }
}

fn next_record_strict(data: &[u8], pos: usize) -> Result<Option<Parsed<'_>>, RecordError> {
    let start = pos;
    let Some(&first) = data.get(pos) else {
        return Ok(None);
    };
    let format = |at: usize, reason: String| RecordError::Format { start, at, reason };
    match first {
        b'#' => {
            let (line, end) = line(data, pos, ANNOTATION_MAX_LEN).map_err(|e| match e {
                LineError::Eof => RecordError::Eof { start },
                LineError::TooLong => format(
                    pos,
                    format!("annotation line longer than {ANNOTATION_MAX_LEN} bytes"),
                ),
            })?;
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(Some(Parsed {
                record: Record::Annotation(&text[1..]),
                start,
                end,
            }))
        }
        b'*' => {
            let (argc, mut pos) = header(data, pos, b'*').map_err(|e| e.at(start))?;
            if argc == 0 || argc > MAX_ARGC {
                return Err(format(start, format!("invalid argument count {argc}")));
            }
            let mut argv = Vec::with_capacity((argc as usize).min(ARGV_INITIAL_CAPACITY));
            for _ in 0..argc {
                match data.get(pos) {
                    None => return Err(RecordError::Eof { start }),
                    Some(b'$') => {}
                    Some(&b) => {
                        return Err(format(
                            pos,
                            format!("expected '$', got {:?}", char::from(b)),
                        ));
                    }
                }
                let (len, data_at) = header(data, pos, b'$').map_err(|e| e.at(start))?;
                if len > MAX_BULK_LEN {
                    return Err(format(pos, format!("bulk length {len} is too large")));
                }
                let len = len as usize; // ≤ 512 MiB
                let Some(arg) = data.get(data_at..data_at + len) else {
                    return Err(RecordError::Eof { start });
                };
                let crlf_at = data_at + len;
                match data.get(crlf_at..crlf_at + 2) {
                    Some(b"\r\n") => {}
                    Some(_) => {
                        return Err(format(crlf_at, "bulk not followed by \\r\\n".into()));
                    }
                    // A single byte left: fine if it is the '\r' of a torn line end.
                    None if data.get(crlf_at).is_none_or(|&b| b == b'\r') => {
                        return Err(RecordError::Eof { start });
                    }
                    None => return Err(format(crlf_at, "bulk not followed by \\r\\n".into())),
                }
                argv.push(arg);
                pos = crlf_at + 2;
            }
            Ok(Some(Parsed {
                record: Record::Command(argv),
                start,
                end: pos,
            }))
        }
        b => Err(format(
            pos,
            format!(
                "expected '*' or '#' at the start of a record, got {:?}",
                char::from(b)
            ),
        )),
    }
}

enum LineError {
    Eof,
    TooLong,
}

/// The line at `pos` without its `\n`, and the offset after the `\n`. A line longer than
/// `max` (with its `\n`) is an error; so is a shorter one that the data ends in (EOF).
fn line(data: &[u8], pos: usize, max: usize) -> Result<(&[u8], usize), LineError> {
    let window = &data[pos..data.len().min(pos + max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => Ok((&window[..nl], pos + nl + 1)),
        None if window.len() < max => Err(LineError::Eof),
        None => Err(LineError::TooLong),
    }
}

/// A header error before its record's start is known.
enum HeaderError {
    Eof,
    Format { at: usize, reason: String },
}

impl HeaderError {
    fn at(self, start: usize) -> RecordError {
        match self {
            HeaderError::Eof => RecordError::Eof { start },
            HeaderError::Format { at, reason } => RecordError::Format { start, at, reason },
        }
    }
}

/// `<prefix><digits>\r\n` at `pos`: the number and the offset after the line. A prefix of a
/// valid header that the data ends in is EOF; anything else that is not one is a format error.
fn header(data: &[u8], pos: usize, prefix: u8) -> Result<(u64, usize), HeaderError> {
    // The common case, parsed in place: 1 to 19 digits (no u64 overflow) and "\r\n". Anything
    // else takes the checked path below, which also finds the error.
    let mut value = 0u64;
    let mut at = pos + 1;
    while at - pos <= 19
        && let Some(&digit) = data.get(at)
        && digit.is_ascii_digit()
    {
        value = value * 10 + u64::from(digit - b'0');
        at += 1;
    }
    if at > pos + 1 && data.get(at..at + 2) == Some(b"\r\n") {
        return Ok((value, at + 2));
    }
    header_checked(data, pos, prefix)
}

/// [`header`] line by line, with the reason for anything that is not a valid header.
fn header_checked(data: &[u8], pos: usize, prefix: u8) -> Result<(u64, usize), HeaderError> {
    let bad = |reason: &str| HeaderError::Format {
        at: pos,
        reason: format!("{reason} in the '{}' line", char::from(prefix)),
    };
    let (line, end) = match line(data, pos, HEADER_MAX_LEN) {
        Ok(found) => found,
        Err(LineError::TooLong) => return Err(bad("no line end")),
        Err(LineError::Eof) => {
            // Torn only if what is there could still become a valid header.
            let rest = &data[pos + 1..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            return match &rest[digits..] {
                [] | [b'\r'] if digits <= 20 => Err(HeaderError::Eof),
                _ => Err(bad("invalid number")),
            };
        }
    };
    let Some(digits) = line[1..].strip_suffix(b"\r") else {
        return Err(bad("missing \\r before \\n"));
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid number"));
    }
    let value = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| bad("number out of range"))?;
    Ok((value, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(data: &[u8]) -> Result<Vec<Record<'_>>, RecordError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(p) = next_record(data, pos)? {
            pos = p.end;
            out.push(p.record);
        }
        Ok(out)
    }

    #[test]
    fn reads_commands_and_annotations() {
        let data = b"#TS:1700000000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$0\r\n\r\n";
        assert_eq!(
            all(data).unwrap(),
            vec![
                Record::Annotation(b"TS:1700000000"),
                Record::Command(vec![b"SELECT", b"0"]),
                Record::Command(vec![b"set", b"k", b""]),
            ]
        );
    }

    #[test]
    fn every_proper_prefix_is_a_torn_tail() {
        let data = b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$10\r\n0123456789\r\n";
        for cut in 1..data.len() {
            assert_eq!(
                next_record(&data[..cut], 0),
                Err(RecordError::Eof { start: 0 }),
                "cut at {cut}"
            );
        }
        let ann = b"#TS:1\r\n";
        for cut in 1..ann.len() {
            assert_eq!(
                next_record(&ann[..cut], 0),
                Err(RecordError::Eof { start: 0 })
            );
        }
    }

    #[test]
    fn bad_bytes_are_format_errors_with_their_offset() {
        let cases: &[(&[u8], usize)] = &[
            (b"set k v\r\n", 0),
            (b"*0\r\n", 0),
            (b"*-1\r\n", 0),
            (b"*x\r\n", 0),
            (b"*1\n$1\r\nx\r\n", 0),
            (b"*1\r\n:1\r\n", 4),
            (b"*1\r\n$1x\r\nx\r\n", 4),
            (b"*1\r\n$1\r\nxyz", 9),
            (b"*1\r\n$1\r\nxy", 9),
            (b"*1\r\n$999999999999\r\n", 4),
            (b"*1\r\n$99999999999999999999999\r\n", 4),
            (b"*1x", 0),
            (b"*1\r\n$1\r\nx\r\n\x00\x00x", 11),
        ];
        for (data, at) in cases {
            let mut pos = 0;
            let err = loop {
                match next_record(data, pos) {
                    Ok(Some(p)) => pos = p.end,
                    Ok(None) => panic!("{:?} accepted", String::from_utf8_lossy(data)),
                    Err(e) => break e,
                }
            };
            match err {
                RecordError::Format { at: got, .. } => {
                    assert_eq!(got, *at, "{:?}", String::from_utf8_lossy(data))
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
            }
        }
        let mut long = vec![b'#'; ANNOTATION_MAX_LEN + 10];
        long.push(b'\n');
        assert!(matches!(
            next_record(&long, 0),
            Err(RecordError::Format { .. })
        ));
    }

    #[test]
    fn a_tail_of_zeros_is_a_torn_tail() {
        // Whole records, then the length of a write whose data never reached the disk.
        let data = b"*1\r\n$1\r\nx\r\n\x00\x00\x00\x00";
        assert_eq!(next_record(data, 11), Err(RecordError::Eof { start: 11 }));
        // Zeros from inside a record on.
        assert_eq!(
            next_record(b"*2\r\n$1\r\nx\r\n\x00\x00\x00", 0),
            Err(RecordError::Eof { start: 0 })
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // Two billion arguments announced, one present: a torn tail, found without allocating
        // for the count.
        assert_eq!(
            next_record(b"*2147483647\r\n$1\r\nx\r\n", 0),
            Err(RecordError::Eof { start: 0 })
        );
        assert_eq!(
            next_record(b"*1\r\n$536870912\r\nxx", 0),
            Err(RecordError::Eof { start: 0 })
        );
    }
}
