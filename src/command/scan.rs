//! The cursor and options shared by `SCAN`, `HSCAN`, `SSCAN` and `ZSCAN`, parsed with
//! Redis's rules (src/db.c `parseScanCursorOrReply`, `scanGenericCommand`).

use bytes::Bytes;

use super::{args, errors, glob};
use crate::resp::Reply;

/// The options after the cursor: `COUNT n`, `MATCH pattern`, and for the keyspace only,
/// `TYPE name`. Later repetitions override earlier ones, as in Redis.
#[derive(Debug, Default)]
pub struct ScanOptions {
    /// `COUNT` (default 10): how much work one call does, not an exact page size.
    pub count: usize,
    /// `MATCH`, unless it was `*` (which matches everything and is ignored, as in Redis).
    pub pattern: Option<Bytes>,
    /// `TYPE` (keyspace `SCAN` only): compared with the type name ignoring case.
    pub type_name: Option<Bytes>,
}

impl ScanOptions {
    /// Parses `argv[first..]`. `allow_type` is true only for the keyspace `SCAN`.
    pub fn parse(argv: &[Bytes], first: usize, allow_type: bool) -> Result<ScanOptions, Reply> {
        let mut options = ScanOptions {
            count: 10,
            ..ScanOptions::default()
        };
        let mut i = first;
        while i < argv.len() {
            let has_value = argv.len() - i >= 2;
            let option = &argv[i];
            if option.eq_ignore_ascii_case(b"count") && has_value {
                let count = args::parse_i64(&argv[i + 1])
                    .ok_or_else(|| Reply::error(errors::NOT_INTEGER))?;
                if count < 1 {
                    return Err(Reply::error(errors::SYNTAX));
                }
                options.count = usize::try_from(count).unwrap_or(usize::MAX);
            } else if option.eq_ignore_ascii_case(b"match") && has_value {
                let pattern = &argv[i + 1];
                options.pattern = (pattern.as_ref() != b"*").then(|| pattern.clone());
            } else if option.eq_ignore_ascii_case(b"type") && allow_type && has_value {
                options.type_name = Some(argv[i + 1].clone());
            } else {
                return Err(Reply::error(errors::SYNTAX));
            }
            i += 2;
        }
        Ok(options)
    }

    /// True when `item` passes the `MATCH` pattern (always, without one).
    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|pattern| glob::glob_match(pattern, item))
    }

    /// True when a key of type `type_name` passes the `TYPE` filter (always, without one).
    pub fn type_matches(&self, type_name: &str) -> bool {
        self.type_name
            .as_ref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(type_name.as_bytes()))
    }
}

/// Parses a cursor as Redis does with `strtoul(…, 10)`: optional sign (a negative cursor
/// wraps around, as in C), digits, nothing after; an empty string is cursor 0; a leading
/// space or an overflow is refused with `ERR invalid cursor`.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::error("ERR invalid cursor");
    // C sees the string only up to its first NUL byte.
    let arg = arg.split(|&b| b == 0).next().unwrap_or(&[]);
    if arg.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The reply of every SCAN variant: the next cursor (as a bulk string) and the items.
pub fn reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(items),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Bytes> {
        line.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+5"), Ok(5));
        assert_eq!(parse_cursor(b"007"), Ok(7));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"5\0junk"), Ok(5));
        for bad in [
            &b"18446744073709551616"[..],
            b" 1",
            b"1 ",
            b"-",
            b"+",
            b"0x10",
            b"abc",
        ] {
            assert_eq!(
                parse_cursor(bad),
                Err(Reply::error("ERR invalid cursor")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn options_follow_redis() {
        let o = ScanOptions::parse(&words("0 MATCH a* count 5 TYPE hash"), 1, true).unwrap();
        assert_eq!(o.count, 5);
        assert!(o.matches(b"abc") && !o.matches(b"bc"));
        assert!(o.type_matches("HASH") && !o.type_matches("string"));
        let star = ScanOptions::parse(&words("0 MATCH *"), 1, false).unwrap();
        assert!(star.pattern.is_none());
        for (line, error) in [
            ("0 COUNT 0", errors::SYNTAX),
            ("0 COUNT x", errors::NOT_INTEGER),
            ("0 MATCH", errors::SYNTAX),
            ("0 TYPE string", errors::SYNTAX),
            ("0 foo bar", errors::SYNTAX),
        ] {
            assert_eq!(
                ScanOptions::parse(&words(line), 1, false).unwrap_err(),
                Reply::error(error),
                "{line}"
            );
        }
    }
}
