//! Reading commands from a byte stream: client requests, and later AOF files and the
//! replication stream, which carry the same multibulk form.
//!
//! [`RequestParser::next_command`] takes complete commands off the front of a read buffer.
//! It is incremental: on partial input it consumes what it can (finished arguments), keeps its
//! position in `self`, and returns `Ok(None)`; the caller reads more bytes into the same buffer
//! and calls again. Arguments are split off the buffer as frozen [`Bytes`], so a multibulk
//! argument is never copied (inline commands, which need unquoting, are copied).
//!
//! Limits and error texts are Redis 7.0's (`processMultibulkBuffer`, `processInlineBuffer` in
//! `networking.c`, checked against redis-server 7.0.15):
//! - a header line (`*N`, `$N`) or an inline command longer than 64 KiB without its line end is
//!   an error ("too big mbulk count string", "too big bulk count string", "too big inline
//!   request");
//! - the multibulk count must be a `string2ll` integer ≤ `i32::MAX` (≤ 0 is an empty command,
//!   skipped); before authentication at most 10;
//! - a bulk length must be 0..=`proto-max-bulk-len` (512 MiB); before authentication at most
//!   16384;
//! - the two bytes after a bulk's data are skipped unchecked, as Redis does.
//!
//! Hostile lengths never allocate by themselves: the argument vector grows as arguments arrive
//! (its initial capacity is capped), and [`RequestParser::wanted`] caps the read-ahead hint.
//!
//! After an error the stream is out of sync: the caller replies with the error text and closes
//! the connection (as Redis does).

use bytes::{Buf, Bytes, BytesMut};

use crate::command::parse_i64;

/// Longest header line or inline command (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;
/// Default largest bulk argument (`proto-max-bulk-len`).
pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// Largest multibulk count (`INT_MAX`).
const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;
/// Largest multibulk count and bulk length before authentication.
const UNAUTHENTICATED_MULTIBULK_LEN: i64 = 10;
const UNAUTHENTICATED_BULK_LEN: i64 = 16384;
/// Initial capacity of an argument vector, whatever the count says (Redis caps it at 1024 too).
const ARGV_INITIAL_CAPACITY: usize = 1024;
/// Largest read-ahead [`RequestParser::wanted`] suggests for one bulk.
const MAX_READ_AHEAD: usize = 1024 * 1024;

/// A protocol violation. The text is the whole error reply (`ERR Protocol error: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: impl AsRef<str>) -> Self {
        ProtocolError(format!("ERR Protocol error: {}", what.as_ref()))
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk argument (`proto-max-bulk-len`). Default: 512 MiB.
    pub max_bulk_len: u64,
    /// True while the client has not authenticated: counts above 10 and bulks above 16384
    /// bytes are refused, so an unauthenticated client cannot make the server buffer much.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            unauthenticated: false,
        }
    }
}

/// An incremental command parser (state kept between reads).
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments still expected in the current multibulk; 0 when between commands.
    remaining: usize,
    /// Length of the bulk being read, once its `$N` line was consumed.
    bulk_len: Option<usize>,
    argv: Vec<Bytes>,
}

impl RequestParser {
    /// A parser positioned between commands.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the parser holds part of a command (more input is needed).
    pub fn in_command(&self) -> bool {
        self.remaining > 0
    }

    /// How many more bytes the current bulk needs beyond what `buf` holds (capped), so the
    /// caller can reserve read space once for a large argument. 0 when nothing is known.
    pub fn wanted(&self, buf: &BytesMut) -> usize {
        match self.bulk_len {
            Some(len) => (len + 2).saturating_sub(buf.len()).min(MAX_READ_AHEAD),
            None => 0,
        }
    }

    /// Takes the next complete command off the front of `buf`. `Ok(None)`: more input is
    /// needed (whatever was complete has been consumed into the parser's state).
    pub fn next_command(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.remaining == 0 {
                match buf.first() {
                    None => return Ok(None),
                    Some(b'*') => {
                        let Some(line) = take_line(buf, "too big mbulk count string")? else {
                            return Ok(None);
                        };
                        let count = parse_i64(&line[1..]);
                        let count = match count {
                            Some(n) if n <= MAX_MULTIBULK_LEN => n,
                            _ => return Err(ProtocolError::new("invalid multibulk length")),
                        };
                        if limits.unauthenticated && count > UNAUTHENTICATED_MULTIBULK_LEN {
                            return Err(ProtocolError::new("unauthenticated multibulk length"));
                        }
                        if count <= 0 {
                            continue; // an empty command: nothing to run
                        }
                        self.remaining = count as usize;
                        self.argv = Vec::with_capacity(self.remaining.min(ARGV_INITIAL_CAPACITY));
                    }
                    Some(_) => match parse_inline(buf)? {
                        None => return Ok(None),
                        Some(argv) if argv.is_empty() => continue,
                        Some(argv) => return Ok(Some(argv)),
                    },
                }
            }
            // Inside a multibulk: read arguments.
            while self.remaining > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        let Some(line) = take_line(buf, "too big bulk count string")? else {
                            return Ok(None);
                        };
                        if line.first() != Some(&b'$') {
                            // An empty line: Redis reports the `\r` it found there.
                            let got = line.first().copied().unwrap_or(b'\r');
                            return Err(ProtocolError::new(format!(
                                "expected '$', got '{}'",
                                char::from(got)
                            )));
                        }
                        let len = match parse_i64(&line[1..]) {
                            Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len => n,
                            _ => return Err(ProtocolError::new("invalid bulk length")),
                        };
                        if limits.unauthenticated && len > UNAUTHENTICATED_BULK_LEN {
                            return Err(ProtocolError::new("unauthenticated bulk length"));
                        }
                        let len = usize::try_from(len)
                            .map_err(|_| ProtocolError::new("invalid bulk length"))?;
                        self.bulk_len = Some(len);
                        len
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                let arg = buf.split_to(len).freeze();
                buf.advance(2); // the CRLF, not checked (as Redis)
                self.argv.push(arg);
                self.bulk_len = None;
                self.remaining -= 1;
            }
            return Ok(Some(std::mem::take(&mut self.argv)));
        }
    }
}

/// Takes one `\r\n`-terminated header line off `buf` (returned without its terminator), or
/// `None` when the line is incomplete. Like Redis, the line ends at the first `\r`, which must
/// be followed by one more byte (assumed `\n`).
fn take_line(buf: &mut BytesMut, too_big: &str) -> Result<Option<BytesMut>, ProtocolError> {
    match memchr(b'\r', buf) {
        Some(cr) if cr + 1 < buf.len() => {
            let line = buf.split_to(cr);
            buf.advance(2);
            Ok(Some(line))
        }
        Some(_) => Ok(None),
        None if buf.len() > INLINE_MAX_SIZE => Err(ProtocolError::new(too_big)),
        None => Ok(None),
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Takes one inline command (a line of space-separated words, quotes as in `redis-cli`) off
/// `buf`. `Some(empty)` for a blank line.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(newline + 1);
    let mut text = &line[..newline];
    if let [rest @ .., b'\r'] = text {
        text = rest;
    }
    split_args(text)
        .map(Some)
        .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))
}

/// Splits a line into arguments as Redis's `sdssplitargs` does: words separated by
/// whitespace; `"…"` with `\n \r \t \b \a \\ \" \xHH` escapes; `'…'` with only `\'`. A closing
/// quote must be followed by whitespace or the end. `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = line.get(i).copied();
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\')
                        if i + 3 < line.len()
                            && line[i + 1] == b'x'
                            && line[i + 2].is_ascii_hexdigit()
                            && line[i + 3].is_ascii_hexdigit() =>
                    {
                        current.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        current.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b) if b.is_ascii_whitespace() => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(current));
    }
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = parser.next_command(&mut buf, Limits::default())? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn words(cmd: &[Bytes]) -> Vec<&str> {
        cmd.iter()
            .map(|a| std::str::from_utf8(a).unwrap())
            .collect()
    }

    fn err(input: &[u8]) -> String {
        parse_all(input).unwrap_err().0
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds =
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nECHO \"a\\x41\\n\" 'b c'\n")
                .unwrap();
        assert_eq!(words(&cmds[0]), ["GET", "k"]);
        assert_eq!(words(&cmds[1]), ["PING"]);
        assert_eq!(words(&cmds[2]), ["ECHO", "aA\n", "b c"]);
        assert_eq!(cmds.len(), 3);
    }

    #[test]
    fn empty_and_negative_counts_are_skipped() {
        let cmds = parse_all(b"*0\r\n*-10\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 1);
    }

    #[test]
    fn partial_input_waits_and_resumes() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$5\r\nhel"[..]);
        assert_eq!(parser.next_command(&mut buf, Limits::default()), Ok(None));
        assert!(parser.in_command());
        assert_eq!(parser.wanted(&buf), 4);
        buf.extend_from_slice(b"lo\r\n");
        let cmd = parser.next_command(&mut buf, Limits::default()).unwrap();
        assert_eq!(words(&cmd.unwrap()), ["SET", "hello"]);
        assert!(buf.is_empty() && !parser.in_command());
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(
            err(b"*3000000000\r\n"),
            "ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            err(b"*x\r\n"),
            "ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            err(b"*1 \r\n"),
            "ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
            "ERR Protocol error: expected '$', got 'f'"
        );
        assert_eq!(
            err(b"*1\r\n$-1\r\n"),
            "ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            err(b"*2\r\n$600000000\r\n"),
            "ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            err(b"PING \"a\r\n"),
            "ERR Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err(b"ECHO \"a\"b\r\n"),
            "ERR Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err(&[b'A'; INLINE_MAX_SIZE + 1]),
            "ERR Protocol error: too big inline request"
        );
        let mut long = b"*".to_vec();
        long.extend_from_slice(&[b'1'; INLINE_MAX_SIZE + 1]);
        assert_eq!(err(&long), "ERR Protocol error: too big mbulk count string");
        let mut long = b"*1\r\n$".to_vec();
        long.extend_from_slice(&[b'1'; INLINE_MAX_SIZE + 1]);
        assert_eq!(err(&long), "ERR Protocol error: too big bulk count string");
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = Limits {
            unauthenticated: true,
            ..Limits::default()
        };
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parser.next_command(&mut buf, limits).unwrap_err().0,
            "ERR Protocol error: unauthenticated multibulk length"
        );
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$16385\r\n"[..]);
        assert_eq!(
            parser.next_command(&mut buf, limits).unwrap_err().0,
            "ERR Protocol error: unauthenticated bulk length"
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*2147483647\r\n$536870912\r\n"[..]);
        assert_eq!(parser.next_command(&mut buf, Limits::default()), Ok(None));
        assert!(parser.argv.capacity() <= ARGV_INITIAL_CAPACITY);
        assert_eq!(parser.wanted(&buf), MAX_READ_AHEAD);
    }

    #[test]
    fn bulk_crlf_is_not_checked() {
        let cmds = parse_all(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 2);
    }

    fn encode(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for cmd in cmds {
            crate::resp::write_command(&mut out, cmd);
        }
        out
    }

    proptest! {
        /// Any way of cutting a valid stream into reads gives the same commands.
        #[test]
        fn arbitrary_splits_parse_the_same(
            cmds in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6), 1..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let stream = encode(&cmds);
            let mut cut_points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            cut_points.sort_unstable();
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::new();
            let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
            let mut from = 0;
            for to in cut_points.into_iter().chain([stream.len()]) {
                buf.extend_from_slice(&stream[from..to]);
                from = to;
                while let Some(cmd) = parser.next_command(&mut buf, Limits::default()).unwrap() {
                    got.push(cmd.iter().map(|a| a.to_vec()).collect());
                }
            }
            prop_assert_eq!(got, cmds);
            prop_assert!(buf.is_empty());
        }

        /// Inline words without quotes or spaces split back to themselves.
        #[test]
        fn inline_words(words in prop::collection::vec("[a-zA-Z0-9:_-]{1,10}", 1..6)) {
            let line = format!("{}\r\n", words.join(" "));
            let cmds = parse_all(line.as_bytes()).unwrap();
            let got: Vec<String> = cmds[0].iter().map(|a| String::from_utf8(a.to_vec()).unwrap()).collect();
            prop_assert_eq!(got, words);
        }
    }
}
