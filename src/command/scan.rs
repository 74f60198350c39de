//! What `SCAN`, `HSCAN`, `SSCAN` and `ZSCAN` share: the cursor and the options, parsed with
//! Redis's rules (src/db.c `parseScanCursorOrReply`, `scanGenericCommand`), the reply, and
//! paging over a collection that has no cursor of its own. The keyspace `SCAN` pages with the
//! store's own cursor ([`crate::store::Store::scan`]).
//!
//! Collection paging: Redis walks a hash table with a reverse-binary cursor, which guarantees
//! that an element present for the whole iteration is returned at least once. Our collections
//! (imbl hash sets and maps) cannot be positioned, so a page is chosen by a fixed hash of each
//! element instead: the cursor is the hash to resume from, a page holds the elements with the
//! smallest hashes at or after it, and a page only ends between two different hashes. The
//! same guarantee follows (hashes never change), at the price of one pass over the collection
//! per page; pages are therefore at least 1/100 of the collection (`COUNT` is a hint to Redis
//! too), so a full iteration costs at most about a hundred passes.
//!
//! A collection Redis would keep in a compact encoding (intset, listpack) is returned whole
//! with cursor 0, as Redis does; `COUNT` is then ignored but `MATCH` applies.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use bytes::Bytes;

use super::{args, errors};
use crate::glob;
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

/// The hasher of collection cursors: fixed for the process, so cursors stay valid between
/// calls.
static SCAN_HASHER: LazyLock<foldhash::fast::FixedState> =
    LazyLock::new(|| foldhash::fast::FixedState::with_seed(0x5EED_CA11_0F5C_A115));

/// The scan position of a collection element: never 0 (a cursor of 0 means both "start" and
/// "done").
fn scan_hash(element: &[u8]) -> u64 {
    SCAN_HASHER.hash_one(element) | 1
}

/// One page of a collection scan (`HSCAN`, `SSCAN`, `ZSCAN`) from `cursor`: `elements` are
/// the whole collection, each named by what `MATCH` applies to (field or member) with what
/// goes with it. `compact` is true when Redis would keep the collection in a compact
/// encoding: then every element is returned, in the given order, with cursor 0. Returns the
/// page's elements that pass `MATCH`, and the cursor to continue from (0 when complete).
pub(super) fn collection_page<T>(
    elements: Vec<(Bytes, T)>,
    cursor: u64,
    options: &ScanOptions,
    compact: bool,
) -> (Vec<(Bytes, T)>, u64) {
    let (mut items, next) = if compact {
        (elements, 0)
    } else {
        let total = elements.len();
        let hashed = elements
            .into_iter()
            .map(|(name, rest)| (scan_hash(&name), (name, rest)))
            .collect();
        page(hashed, total, cursor, options.count)
    };
    // Redis filters the page it collected, so a page may come back empty.
    items.retain(|(name, _)| options.matches(name));
    (items, next)
}

/// One page of `elements` (each with its [`scan_hash`]) from `cursor`: the elements and the
/// cursor to continue from, 0 when the iteration is complete.
fn page<T>(elements: Vec<(u64, T)>, total: usize, cursor: u64, count: usize) -> (Vec<T>, u64) {
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

#[cfg(test)]
mod tests {
    use super::super::tests::argv;
    use super::*;

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
        let o = ScanOptions::parse(&argv("0 MATCH a* count 5 TYPE hash"), 1, true).unwrap();
        assert_eq!(o.count, 5);
        assert!(o.matches(b"abc") && !o.matches(b"bc"));
        assert!(o.type_matches("HASH") && !o.type_matches("string"));
        let star = ScanOptions::parse(&argv("0 MATCH *"), 1, false).unwrap();
        assert!(star.pattern.is_none());
        for (line, error) in [
            ("0 COUNT 0", errors::SYNTAX),
            ("0 COUNT x", errors::NOT_INTEGER),
            ("0 MATCH", errors::SYNTAX),
            ("0 TYPE string", errors::SYNTAX),
            ("0 foo bar", errors::SYNTAX),
        ] {
            assert_eq!(
                ScanOptions::parse(&argv(line), 1, false).unwrap_err(),
                Reply::error(error),
                "{line}"
            );
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

    #[test]
    fn collection_pages_filter_after_paging() {
        let elements: Vec<(Bytes, usize)> = (0..500)
            .map(|i| (Bytes::from(format!("m{i}")), i))
            .collect();
        let options = ScanOptions::parse(&argv("MATCH m1*"), 0, false).unwrap();
        let (whole, next) = collection_page(elements.clone(), 0, &options, true);
        assert_eq!(next, 0);
        assert_eq!(whole.len(), 111, "m1, m10..m19, m100..m199");
        let (mut seen, mut cursor, mut empty_pages) = (0, 0, 0);
        loop {
            let (items, next) = collection_page(elements.clone(), cursor, &options, false);
            seen += items.len();
            empty_pages += usize::from(items.is_empty());
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen, 111);
        assert!(
            empty_pages > 0,
            "MATCH filters pages, it does not fill them"
        );
    }
}
