//! What `SSCAN` and `ZSCAN` share: cursor and option parsing as Redis does it, Redis's glob
//! matcher for `MATCH`, and paging over a collection that has no cursor of its own.
//!
//! Paging: Redis walks a hash table with a reverse-binary cursor, which guarantees that an
//! element present for the whole iteration is returned at least once. Our collections (imbl
//! hash sets and maps) cannot be positioned, so a page is chosen by a fixed hash of each
//! element instead: the cursor is the hash to resume from, a page holds the elements with the
//! smallest hashes at or after it, and a page only ends between two different hashes. The
//! same guarantee follows (hashes never change), at the price of one pass over the collection
//! per page; pages are therefore at least 1/100 of the collection (`COUNT` is a hint to Redis
//! too), so a full iteration costs at most about a hundred passes.
//!
//! Small collections are returned whole with cursor 0, as Redis does for its compact
//! encodings (intset, listpack).

use std::hash::BuildHasher;
use std::sync::LazyLock;

use bytes::Bytes;

use super::{args, errors};
use crate::resp::Reply;

/// The hasher of scan cursors: fixed for the process, so cursors stay valid between calls.
static SCAN_HASHER: LazyLock<foldhash::fast::FixedState> =
    LazyLock::new(|| foldhash::fast::FixedState::with_seed(0x5EED_CA11_0F5C_A115));

/// The scan position of `element`: never 0 (a cursor of 0 means both "start" and "done").
pub(super) fn scan_hash(element: &[u8]) -> u64 {
    SCAN_HASHER.hash_one(element) | 1
}

/// Parses a scan cursor as Redis's `parseScanCursorOrReply` does (C's `strtoul`: an optional
/// sign, a negative value wraps; no leading space; nothing after the digits; "" is 0).
pub(super) fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::error("ERR invalid cursor");
    if arg.first().is_some_and(|&b| is_c_space(b)) {
        return Err(invalid());
    }
    let (negative, digits) = match arg {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, arg),
    };
    if digits.is_empty() {
        // strtoul converted nothing: only an empty argument ends at a NUL there.
        return if arg.is_empty() {
            Ok(0)
        } else {
            Err(invalid())
        };
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(invalid());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// C's `isspace` in the "C" locale.
pub(super) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The options of a collection scan (`COUNT n`, `MATCH pattern`).
pub(super) struct ScanOptions {
    pub count: usize,
    /// `None` when every element matches (no MATCH, or MATCH `*`).
    pub pattern: Option<Bytes>,
}

/// Parses the options after the cursor, as Redis's `scanGenericCommand` does.
pub(super) fn parse_options(options: &[Bytes]) -> Result<ScanOptions, Reply> {
    let mut count = 10usize;
    let mut pattern = None;
    let mut i = 0;
    while i < options.len() {
        let more = options.len() - i - 1;
        let opt = &options[i];
        if opt.eq_ignore_ascii_case(b"count") && more >= 1 {
            let n = args::parse_i64(&options[i + 1])
                .ok_or_else(|| Reply::error(errors::NOT_INTEGER))?;
            if n < 1 {
                return Err(Reply::error(errors::SYNTAX));
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"match") && more >= 1 {
            let pat = &options[i + 1];
            pattern = (pat.as_ref() != b"*").then(|| pat.clone());
            i += 2;
        } else {
            return Err(Reply::error(errors::SYNTAX));
        }
    }
    Ok(ScanOptions { count, pattern })
}

/// One page of `elements` (each with its [`scan_hash`]) from `cursor`: the elements and the
/// cursor to continue from, 0 when the iteration is complete.
pub(super) fn page<T>(
    elements: Vec<(u64, T)>,
    total: usize,
    cursor: u64,
    count: usize,
) -> (Vec<T>, u64) {
    let want = count.max(total / 100).max(1);
    let mut candidates: Vec<(u64, T)> = elements
        .into_iter()
        .filter(|(hash, _)| *hash >= cursor)
        .collect();
    if candidates.len() <= want {
        return (candidates.into_iter().map(|(_, e)| e).collect(), 0);
    }
    // The `want`-th smallest hash is where the next page starts; everything below it is this
    // page. If every element below is tied with it, take the whole tie instead.
    candidates.select_nth_unstable_by_key(want, |(hash, _)| *hash);
    let boundary = candidates[want].0;
    let (mut below, rest): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(hash, _)| *hash < boundary);
    if !below.is_empty() {
        below.sort_unstable_by_key(|(hash, _)| *hash);
        return (below.into_iter().map(|(_, e)| e).collect(), boundary);
    }
    let (tied, after): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(hash, _)| *hash == boundary);
    let next = after.iter().map(|(hash, _)| *hash).min().unwrap_or(0);
    (tied.into_iter().map(|(_, e)| e).collect(), next)
}

/// The scan reply: the cursor as a bulk string, then the elements.
pub(super) fn reply(cursor: u64, elements: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk(cursor.to_string()),
        Reply::Array(elements),
    ])
}

/// Redis's `stringmatchlen` (case-sensitive): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
pub(super) fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_from(pattern, string, &mut skip_longer)
}

fn match_from(pattern: &[u8], string: &[u8], skip_longer: &mut bool) -> bool {
    // Indexes past the end read as NUL, as the C code reads its NUL-terminated buffers.
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if match_from(&pattern[p + 1..], &string[s..], skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                // No match for the rest of the pattern anywhere in the rest of the string:
                // a longer match for an earlier `*` cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    let remaining = pattern.len().saturating_sub(p);
                    if at(pattern, p) == b'\\' && remaining >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if remaining == 0 {
                        // Unterminated class: step back so the common advance ends the pattern.
                        p -= 1;
                        break;
                    } else if remaining >= 3 && pattern[p + 1] == b'-' {
                        // C compares plain (signed) chars here.
                        let (mut start, mut end) = (pattern[p] as i8, pattern[p + 2] as i8);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let ch = c as i8;
                        p += 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if pattern[p] == c {
                        matched = true;
                    }
                    p += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            b'\\' => {
                if pattern.len() - p >= 2 {
                    p += 1;
                }
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            other => {
                if other != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_follows_stringmatchlen() {
        let cases: &[(&str, &str, bool)] = &[
            // The C loop never runs on an empty string: only an empty pattern matches it.
            ("*", "", false),
            ("**", "", false),
            ("*", "abc", true),
            ("a*", "abc", true),
            ("a*c", "abc", true),
            ("a*d", "abc", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("h[\\]]llo", "h]llo", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("abc*", "abc", true),
            ("a**", "a", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("[abc", "a", true),
            ("[abc", "ab", false),
            (
                "*a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (pattern, string, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), string.as_bytes()),
                *expected,
                "{pattern:?} vs {string:?}"
            );
        }
    }

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+7"), Ok(7));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [&b" 1"[..], b"1 ", b"x", b"+", b"18446744073709551616"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pages_cover_every_element_once_and_end_at_zero() {
        let elements: Vec<(u64, u32)> = (0..1000u32)
            .map(|i| (scan_hash(i.to_string().as_bytes()), i))
            .collect();
        let mut seen = Vec::new();
        let mut cursor = 0;
        let mut pages = 0;
        loop {
            let (items, next) = page(elements.clone(), elements.len(), cursor, 7);
            assert!(!items.is_empty());
            seen.extend(items);
            pages += 1;
            if next == 0 {
                break;
            }
            assert!(next > cursor);
            cursor = next;
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(pages > 50, "pages of about 10: {pages}");
    }

    #[test]
    fn tied_hashes_stay_on_one_page() {
        let elements: Vec<(u64, u32)> = vec![(5, 1), (5, 2), (5, 3), (9, 4)];
        let (items, next) = page(elements.clone(), 4, 0, 1);
        assert_eq!(items.len(), 3);
        assert_eq!(next, 9);
        let (items, next) = page(elements, 4, 9, 1);
        assert_eq!(items, vec![4]);
        assert_eq!(next, 0);
    }
}
