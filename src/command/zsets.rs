//! Sorted-set commands (Redis 7.0 `t_zset.c`).
//!
//! The store's [`SortedSet`] keeps member → score and an ordered `(score, member)` set
//! without rank information, so rank queries (`ZRANK`, `ZRANGE` by index, `ZREMRANGEBYRANK`)
//! walk the ordered set: O(rank) from the nearer end, where Redis's skiplist is O(log N).
//! Score and lex ranges seek in O(log N) like Redis.
//!
//! Every sorted-set write is deterministic, so writes propagate verbatim (`ZADD … INCR` and
//! `ZINCRBY` included).

use std::ops::Bound;

use bytes::Bytes;

use super::access::{delete_if_empty, get_zset, get_zset_mut};
use super::scan::{self, ScanOptions};
use super::{CommandSpec, Ctx, Rng, args, errors, flags, random};
use crate::resp::Reply;
use crate::store::{Score, SortedSet, Value, own};

use flags::{DENYOOM, FAST, READONLY, WRITE};

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), zadd),
    command!("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), zincrby),
    command!("zrem", -3, WRITE | FAST, (1, 1, 1), zrem),
    command!("zscore", 3, READONLY | FAST, (1, 1, 1), zscore),
    command!("zmscore", -3, READONLY | FAST, (1, 1, 1), zmscore),
    command!("zcard", 2, READONLY | FAST, (1, 1, 1), zcard),
    command!("zrank", 3, READONLY | FAST, (1, 1, 1), zrank),
    command!("zrevrank", 3, READONLY | FAST, (1, 1, 1), zrevrank),
    command!("zrange", -4, READONLY, (1, 1, 1), zrange),
    command!("zrangebyscore", -4, READONLY, (1, 1, 1), zrangebyscore),
    command!(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        zrevrangebyscore,
    ),
    command!("zrangebylex", -4, READONLY, (1, 1, 1), zrangebylex),
    command!("zrevrangebylex", -4, READONLY, (1, 1, 1), zrevrangebylex),
    command!("zrevrange", -4, READONLY, (1, 1, 1), zrevrange),
    command!("zcount", 4, READONLY | FAST, (1, 1, 1), zcount),
    command!("zlexcount", 4, READONLY | FAST, (1, 1, 1), zlexcount),
    command!("zpopmin", -2, WRITE | FAST, (1, 1, 1), zpopmin),
    command!("zpopmax", -2, WRITE | FAST, (1, 1, 1), zpopmax),
    command!("zremrangebyscore", 4, WRITE, (1, 1, 1), zremrangebyscore),
    command!("zremrangebyrank", 4, WRITE, (1, 1, 1), zremrangebyrank),
    command!("zremrangebylex", 4, WRITE, (1, 1, 1), zremrangebylex),
    command!("zscan", -3, READONLY, (1, 1, 1), zscan),
    command!("zrandmember", -2, READONLY, (1, 1, 1), zrandmember),
];

const NOT_A_RANGE_FLOAT: &str = "ERR min or max is not a float";
const NOT_A_LEX_RANGE: &str = "ERR min or max not valid string range item";
const NAN_RESULT: &str = "ERR resulting score is not a number (NaN)";

// ---------------------------------------------------------------------------------------
// Number parsing exactly as Redis's C library calls do it.

/// C's `strtod` on the longest valid prefix of `s`: the value, the bytes consumed (0 when
/// nothing converts) and whether the value is out of range (overflow to ±inf, or underflow of
/// a non-zero number to 0: the cases Redis rejects through `errno == ERANGE`).
fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = 0;
    while i < s.len() && args::is_c_space(s[i]) {
        i += 1;
    }
    let start = i;
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let lower_starts =
        |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if lower_starts(b"infinity") {
        return (sign * f64::INFINITY, i + 8, false);
    }
    if lower_starts(b"inf") {
        return (sign * f64::INFINITY, i + 3, false);
    }
    if lower_starts(b"nan") {
        let mut end = i + 3;
        if s.get(end) == Some(&b'(') {
            let close = s[end..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'('));
            if let Some(off) = close
                && s[end + off] == b')'
            {
                end += off + 1;
            }
        }
        return (f64::NAN, end, false);
    }
    if (rest.starts_with(b"0x") || rest.starts_with(b"0X"))
        && rest.get(2).is_some_and(|&b| {
            b.is_ascii_hexdigit() || (b == b'.' && rest.get(3).is_some_and(u8::is_ascii_hexdigit))
        })
    {
        let (value, used, range) = hex_float(&rest[2..]);
        return (sign * value, i + 2 + used, range);
    }
    let digits_from = |mut j: usize| {
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits_from(i);
    let mut end = int_end;
    let mut mantissa_digits = int_end - i;
    if s.get(end) == Some(&b'.') {
        let frac_end = digits_from(end + 1);
        mantissa_digits += frac_end - end - 1;
        if mantissa_digits > 0 {
            end = frac_end;
        }
    }
    if mantissa_digits == 0 {
        return (0.0, 0, false);
    }
    let mantissa_end = end;
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    let text = std::str::from_utf8(&s[start..end]).unwrap_or("0");
    let value: f64 = text.parse().unwrap_or(0.0);
    let nonzero_mantissa = s[i..mantissa_end]
        .iter()
        .any(|&b| (b'1'..=b'9').contains(&b));
    let out_of_range = value.is_infinite() || (value == 0.0 && nonzero_mantissa);
    (value, end, out_of_range)
}

/// The hexadecimal float after `0x`: `h[.h][p±d]`.
fn hex_float(s: &[u8]) -> (f64, usize, bool) {
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut nonzero = false;
    let mut i = 0;
    let mut seen_point = false;
    while i < s.len() {
        let b = s[i];
        if b == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = (b as char).to_digit(16) {
            nonzero |= d != 0;
            if mantissa < (1 << 58) {
                mantissa = mantissa * 16 + u64::from(d);
                if seen_point {
                    exponent -= 4;
                }
            } else if !seen_point {
                exponent += 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut j = i + 1;
        let negative = s.get(j) == Some(&b'-');
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let digits_start = j;
        let mut e: i64 = 0;
        while j < s.len() && s[j].is_ascii_digit() {
            e = (e * 10 + i64::from(s[j] - b'0')).min(100_000);
            j += 1;
        }
        if j > digits_start {
            exponent += if negative { -e } else { e };
            i = j;
        }
    }
    let value = mantissa as f64 * 2f64.powi(exponent.clamp(-100_000, 100_000) as i32);
    let out_of_range = value.is_infinite() || (value == 0.0 && nonzero);
    (value, i, out_of_range)
}

/// A score argument as `getDoubleFromObject` (`string2d`) accepts it.
fn parse_score(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || args::is_c_space(arg[0]) {
        return None;
    }
    let (value, used, out_of_range) = strtod(arg);
    (used == arg.len() && !out_of_range && !value.is_nan()).then_some(value)
}

/// The C string view of an argument (C stops at the first NUL).
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter()
        .position(|&b| b == 0)
        .map_or(arg, |end| &arg[..end])
}

// ---------------------------------------------------------------------------------------
// Ranges.

/// A score interval as `zslParseRange` reads it (`(` makes a bound exclusive).
#[derive(Clone, Copy, Debug)]
struct ScoreRange {
    min: f64,
    max: f64,
    min_exclusive: bool,
    max_exclusive: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let bound = |arg: &[u8]| -> Option<(f64, bool)> {
            let arg = c_str(arg);
            let (exclusive, text) = match arg {
                [b'(', rest @ ..] => (true, rest),
                _ => (false, arg),
            };
            let (value, used, _) = strtod(text);
            // -0 and 0 are one score (stored scores are normalised to 0).
            let value = if value == 0.0 { 0.0 } else { value };
            (used == text.len() && !value.is_nan()).then_some((value, exclusive))
        };
        let (min, min_exclusive) = bound(min)?;
        let (max, max_exclusive) = bound(max)?;
        Some(ScoreRange {
            min,
            max,
            min_exclusive,
            max_exclusive,
        })
    }

    fn above_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }

    /// Members in range, ascending.
    fn ascending<'a>(&self, zset: &'a SortedSet) -> impl Iterator<Item = (&'a Bytes, f64)> + 'a {
        let range = *self;
        zset.range((
            Bound::Included((Score(range.min), Bytes::new())),
            Bound::Unbounded,
        ))
        .map(|(s, m)| (m, s.0))
        .skip_while(move |(_, s)| !range.above_min(*s))
        .take_while(move |(_, s)| range.below_max(*s))
    }

    /// Members in range, descending.
    fn descending<'a>(&self, zset: &'a SortedSet) -> impl Iterator<Item = (&'a Bytes, f64)> + 'a {
        let range = *self;
        let upper = if range.max == f64::INFINITY {
            Bound::Unbounded
        } else {
            Bound::Excluded((Score(range.max.next_up()), Bytes::new()))
        };
        zset.range((Bound::Unbounded, upper))
            .rev()
            .map(|(s, m)| (m, s.0))
            .skip_while(move |(_, s)| !range.below_max(*s))
            .take_while(move |(_, s)| range.above_min(*s))
    }
}

/// One end of a lex range (`zslParseLexRangeItem`).
#[derive(Clone, Debug)]
enum LexBound {
    /// `-`: below every string.
    Least,
    /// `+`: above every string.
    Greatest,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

#[derive(Clone, Debug)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        let bound = |arg: &[u8]| match arg {
            [b'+'] => Some(LexBound::Greatest),
            [b'-'] => Some(LexBound::Least),
            [b'(', rest @ ..] => Some(LexBound::Exclusive(Bytes::copy_from_slice(rest))),
            [b'[', rest @ ..] => Some(LexBound::Inclusive(Bytes::copy_from_slice(rest))),
            _ => None,
        };
        Some(LexRange {
            min: bound(min)?,
            max: bound(max)?,
        })
    }

    fn above_min(&self, member: &[u8]) -> bool {
        match &self.min {
            LexBound::Least => true,
            LexBound::Greatest => false,
            LexBound::Inclusive(m) => member >= m.as_ref(),
            LexBound::Exclusive(m) => member > m.as_ref(),
        }
    }

    fn below_max(&self, member: &[u8]) -> bool {
        match &self.max {
            LexBound::Greatest => true,
            LexBound::Least => false,
            LexBound::Inclusive(m) => member <= m.as_ref(),
            LexBound::Exclusive(m) => member < m.as_ref(),
        }
    }

    /// The score every member shares, when they all do (lex ranges are only meaningful then,
    /// and then a seek replaces a scan).
    fn common_score(zset: &SortedSet) -> Option<Score> {
        let first = zset.first()?.0;
        (zset.last()?.0 == first).then_some(first)
    }

    fn ascending<'a>(
        &self,
        zset: &'a SortedSet,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a> {
        let range = self.clone();
        let keep = self.clone();
        let start = match (Self::common_score(zset), &self.min) {
            (Some(score), LexBound::Inclusive(m) | LexBound::Exclusive(m)) => {
                Bound::Included((score, m.clone()))
            }
            _ => Bound::Unbounded,
        };
        Box::new(
            zset.range((start, Bound::Unbounded))
                .map(|(s, m)| (m, s.0))
                .skip_while(move |(m, _)| !range.above_min(m))
                .take_while(move |(m, _)| keep.below_max(m)),
        )
    }

    fn descending<'a>(
        &self,
        zset: &'a SortedSet,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a> {
        let range = self.clone();
        let keep = self.clone();
        let end = match (Self::common_score(zset), &self.max) {
            (Some(score), LexBound::Inclusive(m) | LexBound::Exclusive(m)) => {
                Bound::Included((score, m.clone()))
            }
            _ => Bound::Unbounded,
        };
        Box::new(
            zset.range((Bound::Unbounded, end))
                .rev()
                .map(|(s, m)| (m, s.0))
                .skip_while(move |(m, _)| !range.below_max(m))
                .take_while(move |(m, _)| keep.above_min(m)),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Access.

/// The sorted set at `key` as an O(1) shared copy (so the caller may write meanwhile):
/// `None` when missing, WRONGTYPE for other types.
fn read_zset(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<SortedSet>, Reply> {
    Ok(get_zset(ctx, key)?.cloned())
}

/// Zero-based rank of `member` in ascending order (O(rank)).
fn rank_of(zset: &SortedSet, member: &[u8]) -> Option<usize> {
    let score = zset.score(member)?;
    let key = (Score(score), Bytes::copy_from_slice(member));
    Some(zset.range(..key).count())
}

/// Members at ranks `start..=end` (already clamped, `start <= end < len`), ascending or
/// descending; walks from the nearer end.
fn by_rank(zset: &SortedSet, start: usize, end: usize, reverse: bool) -> Vec<(Bytes, f64)> {
    let len = zset.len();
    let n = end - start + 1;
    // Ascending ranks of the wanted slice.
    let (lo, hi) = if reverse {
        (len - 1 - end, len - 1 - start)
    } else {
        (start, end)
    };
    let mut out: Vec<(Bytes, f64)> = if lo <= len - 1 - hi {
        zset.iter()
            .skip(lo)
            .take(n)
            .map(|(m, s)| (m.clone(), s))
            .collect()
    } else {
        let mut v: Vec<(Bytes, f64)> = zset
            .iter()
            .rev()
            .skip(len - 1 - hi)
            .take(n)
            .map(|(m, s)| (m.clone(), s))
            .collect();
        v.reverse();
        v
    };
    if reverse {
        out.reverse();
    }
    out
}

/// Clamps Redis rank arguments (negative from the end) to `start..=end`, `None` when empty.
fn clamp_ranks(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize))
}

fn scored(items: Vec<(Bytes, f64)>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(
            items
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

// ---------------------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM.

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

enum AddOutcome {
    Added(f64),
    Updated(f64),
    /// Processed without a change (same score): INCR still replies the score.
    Unchanged(f64),
    /// Skipped by NX/XX/GT/LT.
    Nop,
}

/// `zsetAdd`: applies one score/member pair. `Err` when INCR produces NaN.
fn zset_add(
    zset: &mut SortedSet,
    score: f64,
    member: &[u8],
    f: AddFlags,
) -> Result<AddOutcome, ()> {
    match zset.score(member) {
        Some(current) => {
            if f.nx {
                return Ok(AddOutcome::Nop);
            }
            let score = if f.incr { score + current } else { score };
            if score.is_nan() {
                return Err(());
            }
            if (f.lt && score >= current) || (f.gt && score <= current) {
                return Ok(AddOutcome::Nop);
            }
            if score == current {
                Ok(AddOutcome::Unchanged(score))
            } else {
                zset.insert(own(member), score);
                Ok(AddOutcome::Updated(score))
            }
        }
        None if f.xx => Ok(AddOutcome::Nop),
        None => {
            zset.insert(own(member), score);
            Ok(AddOutcome::Added(score))
        }
    }
}

fn zadd_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], mut f: AddFlags) -> Reply {
    let key = &argv[1];
    let mut ch = false;
    let mut score_idx = 2;
    while score_idx < argv.len() {
        let opt = argv[score_idx].as_ref();
        if opt.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"ch") {
            ch = true;
        } else if opt.eq_ignore_ascii_case(b"incr") {
            f.incr = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            break;
        }
        score_idx += 1;
    }
    let elements = argv.len() - score_idx;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Reply::error(errors::SYNTAX);
    }
    if f.nx && f.xx {
        return Reply::error("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 2 {
        return Reply::error("ERR INCR option supports a single increment-element pair");
    }
    let mut pairs = Vec::with_capacity(elements / 2);
    for pair in argv[score_idx..].chunks_exact(2) {
        let Some(score) = parse_score(&pair[0]) else {
            return Reply::error(errors::NOT_FLOAT);
        };
        pairs.push((score, &pair[1]));
    }

    let mut created = None;
    let zset = match get_zset_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(Some(zset)) => zset,
        Ok(None) if f.xx => {
            return if f.incr { Reply::Nil } else { Reply::Int(0) };
        }
        Ok(None) => created.insert(SortedSet::default()),
    };
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last_score = 0.0;
    for (score, member) in pairs {
        match zset_add(zset, score, member, f) {
            Err(()) => return Reply::error(NAN_RESULT),
            Ok(AddOutcome::Added(s)) => {
                added += 1;
                processed += 1;
                last_score = s;
            }
            Ok(AddOutcome::Updated(s)) => {
                updated += 1;
                processed += 1;
                last_score = s;
            }
            Ok(AddOutcome::Unchanged(s)) => {
                processed += 1;
                last_score = s;
            }
            Ok(AddOutcome::Nop) => {}
        }
    }
    if let Some(zset) = created
        && !zset.is_empty()
    {
        ctx.store
            .insert(ctx.db, own(key), Value::SortedSet(zset), None);
    }
    ctx.changed(added + updated);
    if f.incr {
        if processed > 0 {
            Reply::Double(last_score)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int((if ch { added + updated } else { added }) as i64)
    }
}

fn zadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zadd_generic(ctx, argv, AddFlags::default())
}

fn zincrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zadd_generic(
        ctx,
        argv,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
    )
}

fn zrem(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let removed = match get_zset_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(zset)) => argv[2..]
            .iter()
            .filter(|m| zset.remove(m).is_some())
            .count() as u64,
    };
    delete_if_empty(ctx, key);
    ctx.changed(removed);
    Reply::Int(removed as i64)
}

// ---------------------------------------------------------------------------------------
// Reads.

fn zscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(zset) => zset
            .and_then(|z| z.score(&argv[2]))
            .map_or(Reply::Nil, Reply::Double),
    }
}

fn zmscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(zset) => Reply::Array(
            argv[2..]
                .iter()
                .map(|m| {
                    zset.as_ref()
                        .and_then(|z| z.score(m))
                        .map_or(Reply::Nil, Reply::Double)
                })
                .collect(),
        ),
    }
}

fn zcard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(zset) => Reply::Int(zset.map_or(0, |z| z.len()) as i64),
    }
}

fn zrank_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], reverse: bool) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Nil,
        Ok(Some(zset)) => match rank_of(&zset, &argv[2]) {
            None => Reply::Nil,
            Some(rank) if reverse => Reply::Int((zset.len() - 1 - rank) as i64),
            Some(rank) => Reply::Int(rank as i64),
        },
    }
}

fn zrank(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrank_generic(ctx, argv, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrank_generic(ctx, argv, true)
}

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// Applies `LIMIT offset count` to a range walk as Redis's loops do: a negative offset skips
/// everything, a negative count means no limit.
fn limited<'a>(
    iter: impl Iterator<Item = (&'a Bytes, f64)>,
    offset: i64,
    limit: i64,
) -> Vec<(Bytes, f64)> {
    if offset < 0 {
        return Vec::new();
    }
    let take = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    iter.skip(offset as usize)
        .take(take)
        .map(|(m, s)| (m.clone(), s))
        .collect()
}

/// `zrangeGenericCommand`: ZRANGE and the older Z[REV]RANGE[BYSCORE|BYLEX] forms.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    mut range_type: RangeType,
    mut direction: Direction,
) -> Reply {
    let key = &argv[1];
    let (mut min_idx, mut max_idx) = (2, 3);
    let mut with_scores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = 4;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let arg = argv[j].as_ref();
        if arg.eq_ignore_ascii_case(b"withscores") {
            with_scores = true;
        } else if arg.eq_ignore_ascii_case(b"limit") && left >= 2 {
            match (args::parse_i64(&argv[j + 1]), args::parse_i64(&argv[j + 2])) {
                (Some(o), Some(l)) => (offset, limit) = (o, l),
                _ => return Reply::error(errors::NOT_INTEGER),
            }
            j += 2;
        } else if direction == Direction::Auto && arg.eq_ignore_ascii_case(b"rev") {
            direction = Direction::Reverse;
        } else if range_type == RangeType::Auto && arg.eq_ignore_ascii_case(b"bylex") {
            range_type = RangeType::Lex;
        } else if range_type == RangeType::Auto && arg.eq_ignore_ascii_case(b"byscore") {
            range_type = RangeType::Score;
        } else {
            return Reply::error(errors::SYNTAX);
        }
        j += 1;
    }
    if direction == Direction::Auto {
        direction = Direction::Forward;
    }
    if range_type == RangeType::Auto {
        range_type = RangeType::Rank;
    }
    if limit != -1 && range_type == RangeType::Rank {
        return Reply::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if with_scores && range_type == RangeType::Lex {
        return Reply::error(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        );
    }
    let reverse = direction == Direction::Reverse;
    if reverse && range_type != RangeType::Rank {
        // The range is given as max, min.
        std::mem::swap(&mut min_idx, &mut max_idx);
    }

    enum Parsed {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let parsed = match range_type {
        RangeType::Score => match ScoreRange::parse(&argv[min_idx], &argv[max_idx]) {
            Some(r) => Parsed::Score(r),
            None => return Reply::error(NOT_A_RANGE_FLOAT),
        },
        RangeType::Lex => match LexRange::parse(&argv[min_idx], &argv[max_idx]) {
            Some(r) => Parsed::Lex(r),
            None => return Reply::error(NOT_A_LEX_RANGE),
        },
        _ => match (
            args::parse_i64(&argv[min_idx]),
            args::parse_i64(&argv[max_idx]),
        ) {
            (Some(a), Some(b)) => Parsed::Rank(a, b),
            _ => return Reply::error(errors::NOT_INTEGER),
        },
    };
    let zset = match read_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(zset)) => zset,
    };
    let items = match parsed {
        Parsed::Rank(start, end) => match clamp_ranks(start, end, zset.len()) {
            None => Vec::new(),
            Some((start, end)) => by_rank(&zset, start, end, reverse),
        },
        Parsed::Score(range) => {
            if offset > 0 && offset as u64 >= zset.len() as u64 {
                Vec::new()
            } else if reverse {
                limited(range.descending(&zset), offset, limit)
            } else {
                limited(range.ascending(&zset), offset, limit)
            }
        }
        Parsed::Lex(range) => {
            if reverse {
                limited(range.descending(&zset), offset, limit)
            } else {
                limited(range.ascending(&zset), offset, limit)
            }
        }
    };
    scored(items, with_scores)
}

fn zrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, RangeType::Auto, Direction::Auto)
}

fn zrevrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, RangeType::Rank, Direction::Reverse)
}

fn zrangebyscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, RangeType::Score, Direction::Forward)
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, RangeType::Score, Direction::Reverse)
}

fn zrangebylex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, RangeType::Lex, Direction::Forward)
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zrange_generic(ctx, argv, RangeType::Lex, Direction::Reverse)
}

fn zcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let Some(range) = ScoreRange::parse(&argv[2], &argv[3]) else {
        return Reply::error(NOT_A_RANGE_FLOAT);
    };
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(zset)) => Reply::Int(range.ascending(&zset).count() as i64),
    }
}

fn zlexcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let Some(range) = LexRange::parse(&argv[2], &argv[3]) else {
        return Reply::error(NOT_A_LEX_RANGE);
    };
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(zset)) => Reply::Int(range.ascending(&zset).count() as i64),
    }
}

// ---------------------------------------------------------------------------------------
// Pops and range removals.

fn zpop_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], max: bool) -> Reply {
    if argv.len() > 3 {
        return Reply::error(errors::SYNTAX);
    }
    let count = if argv.len() == 3 {
        match args::parse_i64(&argv[2]) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return Reply::error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    let key = &argv[1];
    let popped = match get_zset_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(_)) if count == Some(0) => return Reply::Array(Vec::new()),
        Ok(Some(zset)) => {
            let n = count.unwrap_or(1).min(zset.len() as u64);
            let mut popped = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let next = if max { zset.last() } else { zset.first() };
                let Some((_, member)) = next.cloned() else {
                    break;
                };
                if let Some(score) = zset.remove(&member) {
                    popped.push((member, score));
                }
            }
            popped
        }
    };
    delete_if_empty(ctx, key);
    ctx.changed(popped.len() as u64);
    if count.is_some() {
        scored(popped, true)
    } else {
        // Without a count the reply is flat in RESP3 too.
        Reply::Array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        )
    }
}

fn zpopmin(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zpop_generic(ctx, argv, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    zpop_generic(ctx, argv, true)
}

/// Removes the members `select` picks from the sorted set at `argv[1]`.
fn zremrange(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    select: impl FnOnce(&SortedSet) -> Vec<Bytes>,
) -> Reply {
    let key = &argv[1];
    let removed = match get_zset_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(zset)) => {
            let members = select(zset);
            for member in &members {
                zset.remove(member);
            }
            members.len() as u64
        }
    };
    delete_if_empty(ctx, key);
    ctx.changed(removed);
    Reply::Int(removed as i64)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let Some(range) = ScoreRange::parse(&argv[2], &argv[3]) else {
        return Reply::error(NOT_A_RANGE_FLOAT);
    };
    zremrange(ctx, argv, |zset| {
        range.ascending(zset).map(|(m, _)| m.clone()).collect()
    })
}

fn zremrangebylex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let Some(range) = LexRange::parse(&argv[2], &argv[3]) else {
        return Reply::error(NOT_A_LEX_RANGE);
    };
    zremrange(ctx, argv, |zset| {
        range.ascending(zset).map(|(m, _)| m.clone()).collect()
    })
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let (Some(start), Some(end)) = (args::parse_i64(&argv[2]), args::parse_i64(&argv[3])) else {
        return Reply::error(errors::NOT_INTEGER);
    };
    zremrange(ctx, argv, |zset| {
        match clamp_ranks(start, end, zset.len()) {
            None => Vec::new(),
            Some((start, end)) => by_rank(zset, start, end, false)
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
        }
    })
}

// ---------------------------------------------------------------------------------------
// ZSCAN and ZRANDMEMBER.

/// Redis 7.0 keeps a sorted set of at most 128 members of at most 64 bytes as a listpack
/// (`zset-max-listpack-entries`/`-value`): scanned in one page, with scores as the listpack
/// stores them.
fn is_listpack_sized(zset: &SortedSet) -> bool {
    zset.len() <= 128 && zset.iter().all(|(m, _)| m.len() <= 64)
}

/// A score as a listpack holds it (`zzlInsertAt`): an integer when it is one (`double2ll`),
/// otherwise `d2string`'s `%.17g`.
fn listpack_score(score: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if score.is_finite() && (-LIMIT..=LIMIT).contains(&score) && score.fract() == 0.0 {
        return (score as i64).to_string();
    }
    crate::resp::format_double(score)
}

fn zscan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Result<Reply, Reply> {
    let cursor = scan::parse_cursor(&argv[2])?;
    let Some(zset) = read_zset(ctx, &argv[1])? else {
        return Ok(scan::reply(0, Vec::new()));
    };
    let options = ScanOptions::parse(argv, 3, false)?;
    let compact = is_listpack_sized(&zset);
    let all = zset.iter().map(|(m, s)| (m.clone(), s)).collect();
    let (items, next) = scan::collection_page(all, cursor, &options, compact);
    let mut out = Vec::with_capacity(items.len() * 2);
    for (member, score) in items {
        let text = if compact {
            listpack_score(score)
        } else {
            crate::resp::format_double(score)
        };
        out.push(Reply::Bulk(member));
        out.push(Reply::bulk(text));
    }
    Ok(scan::reply(next, out))
}

fn random_pair(zset: &SortedSet, rng: &mut Rng) -> Option<(Bytes, f64)> {
    let index = rng.below(zset.len() as u64) as usize;
    zset.iter().nth(index).map(|(m, s)| (m.clone(), s))
}

fn zrandmember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Result<Reply, Reply> {
    if argv.len() == 2 {
        return Ok(match read_zset(ctx, &argv[1])? {
            None => Reply::Nil,
            Some(zset) => Reply::bulk_or_nil(random_pair(&zset, ctx.rng).map(|(m, _)| m)),
        });
    }
    let (requested, with_scores) = random::count_and_flag(argv, b"withscores")?;
    let Some(zset) = read_zset(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let all = zset.iter().map(|(m, s)| (m.clone(), s)).collect();
    Ok(scored(
        random::sample(all, requested, ctx.rng)?,
        with_scores,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, bulk};
    use super::*;

    fn bulks(words: &str) -> Reply {
        Reply::Array(words.split_whitespace().map(bulk).collect())
    }

    fn pairs(items: &[(&str, f64)]) -> Reply {
        Reply::Pairs(
            items
                .iter()
                .map(|(m, s)| (bulk(m), Reply::Double(*s)))
                .collect(),
        )
    }

    #[test]
    fn strtod_accepts_what_c_accepts() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"0x1p3"), Some(8.0));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"5."), Some(5.0));
        assert_eq!(
            parse_score(b"1e-320"),
            Some(1e-320),
            "subnormal is accepted"
        );
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"1e400",
            b"-1e400",
            b"1e-400",
            b"nan",
            b"abc",
            b"1e",
            b"0x",
        ] {
            assert_eq!(parse_score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let range = ScoreRange::parse(b"", b"(").unwrap();
        assert_eq!(
            (range.min, range.max, range.max_exclusive),
            (0.0, 0.0, true)
        );
        assert!(ScoreRange::parse(b" 1", b"(1e400").is_some());
        assert!(ScoreRange::parse(b"1x", b"2").is_none());
        assert!(ScoreRange::parse(b"nan", b"2").is_none());
    }

    #[test]
    fn zadd_options_and_errors_match_redis() {
        let mut h = Harness::new();
        assert_eq!(
            h.reply("ZADD z NX XX 1 a"),
            Reply::error("ERR XX and NX options at the same time are not compatible")
        );
        let gtlt =
            Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
        assert_eq!(h.reply("ZADD z GT LT 1 a"), gtlt);
        assert_eq!(h.reply("ZADD z NX GT 1 a"), gtlt);
        assert_eq!(
            h.reply("ZADD z INCR 1 a 2 b"),
            Reply::error("ERR INCR option supports a single increment-element pair")
        );
        assert_eq!(h.reply("ZADD z NX 1"), Reply::error(errors::SYNTAX));
        assert_eq!(h.reply("ZADD z 1 a 2"), Reply::error(errors::SYNTAX));
        assert_eq!(h.reply("ZADD z abc a"), Reply::error(errors::NOT_FLOAT));
        assert_eq!(h.reply("ZADD z 1 a x b"), Reply::error(errors::NOT_FLOAT));
        assert!(
            h.store.get(0, b"z", h.now_ms).is_none(),
            "nothing applied on errors"
        );

        let e = h.run("ZADD z XX 1 a");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert!(h.store.get(0, b"z", h.now_ms).is_none(), "XX never creates");
        let e = h.run("ZADD z 1 a 2 b 3 c");
        assert_eq!(
            (e.reply, e.dirty, e.propagate),
            (Reply::Int(3), 3, Propagate::Verbatim)
        );
        assert_eq!(h.reply("ZADD z CH 1 a 5 b 4 d"), Reply::Int(2));
        assert_eq!(h.reply("ZADD z NX 9 a 6 e"), Reply::Int(1));
        assert_eq!(h.reply("ZSCORE z a"), Reply::Double(1.0));
        assert_eq!(h.reply("ZADD z XX CH 7 a 7 zz"), Reply::Int(1));
        assert_eq!(h.reply("ZCARD z"), Reply::Int(5));
        assert_eq!(h.reply("ZADD z GT CH 3 a 8 a"), Reply::Int(1));
        assert_eq!(h.reply("ZSCORE z a"), Reply::Double(8.0));
        assert_eq!(h.reply("ZADD z LT CH 9 a"), Reply::Int(0));
        let e = h.run("ZADD z 8 a");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::Int(0), Propagate::Nothing),
            "same score"
        );
        assert_eq!(h.reply("ZADD z INCR 2.5 a"), Reply::Double(10.5));
        assert_eq!(h.reply("ZADD z INCR NX 1 a"), Reply::Nil);
        assert_eq!(h.reply("ZADD z INCR GT -1 a"), Reply::Nil);
        assert_eq!(h.reply("ZADD z INCR XX 1 nobody"), Reply::Nil);
        assert_eq!(
            h.reply("ZADD z INCR 0 a"),
            Reply::Double(10.5),
            "processed, unchanged"
        );
        assert_eq!(
            h.reply("ZADD z GT 1 fresh"),
            Reply::Int(1),
            "GT still adds new members"
        );
        h.run("ZADD z inf big");
        assert_eq!(h.reply("ZINCRBY z -inf big"), Reply::error(NAN_RESULT));
        assert_eq!(h.reply("ZSCORE z big"), Reply::Double(f64::INFINITY));
        assert_eq!(h.reply("ZINCRBY z x a"), Reply::error(errors::NOT_FLOAT));
        assert_eq!(h.reply("ZINCRBY z nx a"), Reply::error(errors::SYNTAX));
        let e = h.run("ZINCRBY z 1.5 new");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::Double(1.5), Propagate::Verbatim)
        );
        assert_eq!(h.reply("ZADD z 0x10 hex"), Reply::Int(1));
        assert_eq!(h.reply("ZSCORE z hex"), Reply::Double(16.0));
    }

    #[test]
    fn zrem_zscore_zmscore_ranks() {
        let mut h = Harness::new();
        h.run("ZADD z 1 a 2 b 3 c 3 d");
        assert_eq!(h.reply("ZRANK z a"), Reply::Int(0));
        assert_eq!(h.reply("ZRANK z d"), Reply::Int(3));
        assert_eq!(h.reply("ZREVRANK z d"), Reply::Int(0));
        assert_eq!(h.reply("ZRANK z x"), Reply::Nil);
        assert_eq!(h.reply("ZRANK missing x"), Reply::Nil);
        assert_eq!(
            h.reply("ZMSCORE z a x c"),
            Reply::Array(vec![Reply::Double(1.0), Reply::Nil, Reply::Double(3.0)])
        );
        assert_eq!(h.reply("ZMSCORE missing a"), Reply::Array(vec![Reply::Nil]));
        assert_eq!(h.reply("ZSCORE missing a"), Reply::Nil);
        let e = h.run("ZREM z a x b");
        assert_eq!((e.reply, e.dirty), (Reply::Int(2), 2));
        assert_eq!(h.run("ZREM z x").propagate, Propagate::Nothing);
        h.run("ZREM z c d");
        assert!(
            h.store.get(0, b"z", h.now_ms).is_none(),
            "emptied zset deleted"
        );
        h.store
            .insert(0, own(b"s"), Value::String(Bytes::from_static(b"v")), None);
        for cmd in [
            "ZADD s 1 a",
            "ZINCRBY s 1 a",
            "ZREM s a",
            "ZSCORE s a",
            "ZMSCORE s a",
            "ZCARD s",
            "ZRANK s a",
            "ZRANGE s 0 -1",
            "ZRANGEBYSCORE s 0 1",
            "ZRANGEBYLEX s - +",
            "ZCOUNT s 0 1",
            "ZLEXCOUNT s - +",
            "ZPOPMIN s",
            "ZREMRANGEBYRANK s 0 1",
            "ZREMRANGEBYSCORE s 0 1",
            "ZREMRANGEBYLEX s - +",
            "ZSCAN s 0",
            "ZRANDMEMBER s",
        ] {
            assert_eq!(h.reply(cmd), Reply::error(errors::WRONGTYPE), "{cmd}");
        }
    }

    #[test]
    fn zrange_forms() {
        let mut h = Harness::new();
        h.run("ZADD z 1 a 2 b 3 c 4 d 5 e");
        assert_eq!(h.reply("ZRANGE z 0 -1"), bulks("a b c d e"));
        assert_eq!(
            h.reply("ZRANGE z 1 2 WITHSCORES"),
            pairs(&[("b", 2.0), ("c", 3.0)])
        );
        assert_eq!(h.reply("ZRANGE z -2 100"), bulks("d e"));
        assert_eq!(h.reply("ZRANGE z 3 1"), bulks(""));
        assert_eq!(h.reply("ZRANGE z 0 1 REV"), bulks("e d"));
        assert_eq!(
            h.reply("ZREVRANGE z 0 1 WITHSCORES"),
            pairs(&[("e", 5.0), ("d", 4.0)])
        );
        assert_eq!(h.reply("ZREVRANGE z 3 10"), bulks("b a"));
        assert_eq!(h.reply("ZRANGE z (1 3 BYSCORE"), bulks("b c"));
        assert_eq!(
            h.reply("ZRANGE z 3 (1 BYSCORE REV WITHSCORES"),
            pairs(&[("c", 3.0), ("b", 2.0)])
        );
        assert_eq!(
            h.reply("ZRANGE z -inf +inf BYSCORE LIMIT 1 2"),
            bulks("b c")
        );
        assert_eq!(h.reply("ZRANGEBYSCORE z -inf +inf LIMIT -1 2"), bulks(""));
        assert_eq!(
            h.reply("ZRANGEBYSCORE z -inf +inf LIMIT 1 -1"),
            bulks("b c d e")
        );
        assert_eq!(h.reply("ZRANGEBYSCORE z -inf +inf LIMIT 1 0"), bulks(""));
        assert_eq!(h.reply("ZRANGEBYSCORE z -inf +inf LIMIT 5 1"), bulks(""));
        assert_eq!(h.reply("ZRANGEBYSCORE z (2 (4"), bulks("c"));
        assert_eq!(
            h.reply("ZREVRANGEBYSCORE z (4 -inf LIMIT 1 5"),
            bulks("b a")
        );
        assert_eq!(
            h.reply("ZREVRANGEBYSCORE z +inf 4 WITHSCORES"),
            pairs(&[("e", 5.0), ("d", 4.0)])
        );
        assert_eq!(h.reply("ZRANGEBYSCORE z 5 1"), bulks(""));
        assert_eq!(
            h.reply("ZRANGEBYSCORE z x 1"),
            Reply::error(NOT_A_RANGE_FLOAT)
        );
        assert_eq!(
            h.reply("ZRANGE z 0 -1 LIMIT 0 1"),
            Reply::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
            )
        );
        assert_eq!(
            h.reply("ZRANGE z - + BYLEX WITHSCORES"),
            Reply::error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        );
        assert_eq!(
            h.reply("ZRANGE z 0 -1 REV REV"),
            Reply::error(errors::SYNTAX)
        );
        assert_eq!(
            h.reply("ZRANGEBYSCORE z 0 1 REV"),
            Reply::error(errors::SYNTAX)
        );
        assert_eq!(
            h.reply("ZRANGE z 0 -1 LIMIT 1"),
            Reply::error(errors::SYNTAX)
        );
        assert_eq!(h.reply("ZRANGE z a -1"), Reply::error(errors::NOT_INTEGER));
        assert_eq!(h.reply("ZRANGE missing 0 -1 WITHSCORES"), bulks(""));
        assert_eq!(h.reply("ZCOUNT z (1 3"), Reply::Int(2));
        assert_eq!(h.reply("ZCOUNT z -inf +inf"), Reply::Int(5));
        assert_eq!(h.reply("ZCOUNT z 1 x"), Reply::error(NOT_A_RANGE_FLOAT));
        assert_eq!(h.reply("ZCOUNT missing 0 1"), Reply::Int(0));
    }

    #[test]
    fn lex_ranges() {
        let mut h = Harness::new();
        h.run("ZADD z 0 a 0 b 0 c 0 d 0 e");
        assert_eq!(h.reply("ZRANGEBYLEX z - +"), bulks("a b c d e"));
        assert_eq!(h.reply("ZRANGEBYLEX z [b (d"), bulks("b c"));
        assert_eq!(h.reply("ZRANGEBYLEX z (b [d"), bulks("c d"));
        assert_eq!(h.reply("ZRANGEBYLEX z - + LIMIT 1 1"), bulks("b"));
        assert_eq!(h.reply("ZREVRANGEBYLEX z + - LIMIT 0 2"), bulks("e d"));
        assert_eq!(h.reply("ZREVRANGEBYLEX z [d (a"), bulks("d c b"));
        assert_eq!(h.reply("ZRANGE z [c + BYLEX"), bulks("c d e"));
        assert_eq!(h.reply("ZRANGE z + [c BYLEX REV"), bulks("e d c"));
        assert_eq!(h.reply("ZRANGEBYLEX z + -"), bulks(""));
        assert_eq!(h.reply("ZLEXCOUNT z [b +"), Reply::Int(4));
        assert_eq!(h.reply("ZLEXCOUNT z - [a"), Reply::Int(1));
        for bad in [
            "ZRANGEBYLEX z a b",
            "ZRANGEBYLEX z [a +x",
            "ZLEXCOUNT z - x",
        ] {
            assert_eq!(
                h.run_argv(&args(bad)).reply,
                Reply::error(NOT_A_LEX_RANGE),
                "{bad}"
            );
        }
        assert_eq!(
            h.run_argv(&[
                b"ZRANGEBYLEX"[..].into(),
                b"z"[..].into(),
                b""[..].into(),
                b"+"[..].into()
            ])
            .reply,
            Reply::error(NOT_A_LEX_RANGE)
        );
        let e = h.run("ZREMRANGEBYLEX z [b (d");
        assert_eq!((e.reply, e.dirty), (Reply::Int(2), 2));
        assert_eq!(h.reply("ZRANGE z 0 -1"), bulks("a d e"));
        // Mixed scores: a walk in (score, member) order.
        h.run("ZADD m 1 b 2 a");
        assert_eq!(h.reply("ZRANGEBYLEX m - +"), bulks("b a"));
    }

    fn args(line: &str) -> Vec<Bytes> {
        line.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn pops_and_range_removals() {
        let mut h = Harness::new();
        h.run("ZADD z 1 a 2 b 3 c 4 d 5 e");
        let e = h.run("ZPOPMIN z");
        assert_eq!(e.reply, Reply::Array(vec![bulk("a"), Reply::Double(1.0)]));
        assert_eq!((e.dirty, e.propagate), (1, Propagate::Verbatim));
        assert_eq!(h.reply("ZPOPMAX z 2"), pairs(&[("e", 5.0), ("d", 4.0)]));
        assert_eq!(h.reply("ZPOPMIN z 0"), bulks(""));
        assert_eq!(h.run("ZPOPMIN z 0").propagate, Propagate::Nothing);
        assert_eq!(
            h.reply("ZPOPMIN z -1"),
            Reply::error("ERR value is out of range, must be positive")
        );
        assert_eq!(h.reply("ZPOPMIN z 1 2"), Reply::error(errors::SYNTAX));
        assert_eq!(h.reply("ZPOPMIN z 10"), pairs(&[("b", 2.0), ("c", 3.0)]));
        assert!(h.store.get(0, b"z", h.now_ms).is_none());
        assert_eq!(h.reply("ZPOPMAX z"), bulks(""));

        h.run("ZADD z 1 a 2 b 3 c 4 d 5 e");
        assert_eq!(h.reply("ZREMRANGEBYRANK z 1 -2"), Reply::Int(3));
        assert_eq!(h.reply("ZRANGE z 0 -1"), bulks("a e"));
        assert_eq!(
            h.run("ZREMRANGEBYRANK z 5 10").propagate,
            Propagate::Nothing
        );
        assert_eq!(
            h.reply("ZREMRANGEBYRANK z x 1"),
            Reply::error(errors::NOT_INTEGER)
        );
        assert_eq!(h.reply("ZREMRANGEBYSCORE z (1 +inf"), Reply::Int(1));
        assert_eq!(
            h.reply("ZREMRANGEBYSCORE z x 1"),
            Reply::error(NOT_A_RANGE_FLOAT)
        );
        assert_eq!(h.reply("ZREMRANGEBYSCORE z -inf 1"), Reply::Int(1));
        assert!(h.store.get(0, b"z", h.now_ms).is_none());
        assert_eq!(h.reply("ZREMRANGEBYSCORE z -inf 1"), Reply::Int(0));
    }

    #[test]
    fn zscan_and_zrandmember() {
        let mut h = Harness::new();
        h.run("ZADD z 1 a 1.5 b 100000000000000000 c");
        assert_eq!(
            h.reply("ZSCAN z 0"),
            scan::reply(
                0,
                ["a", "1", "b", "1.5", "c", "100000000000000000"]
                    .map(bulk)
                    .to_vec()
            )
        );
        assert_eq!(
            h.reply("ZSCAN z 0 MATCH b"),
            scan::reply(0, vec![bulk("b"), bulk("1.5")])
        );
        assert_eq!(h.reply("ZSCAN missing 0"), scan::reply(0, vec![]));
        assert_eq!(h.reply("ZSCAN z x"), Reply::error("ERR invalid cursor"));
        let members: Vec<String> = (0..200).map(|i| format!("{i} m{i}")).collect();
        h.run(&format!("ZADD big {}", members.join(" ")));
        let mut cursor = "0".to_string();
        let mut seen = 0;
        let mut calls = 0;
        loop {
            let Reply::Array(parts) = h.reply(&format!("ZSCAN big {cursor} COUNT 10")) else {
                panic!()
            };
            let [Reply::Bulk(next), Reply::Array(items)] = &parts[..] else {
                panic!()
            };
            seen += items.len() / 2;
            calls += 1;
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen, 200);
        assert!(calls > 5, "{calls}");

        assert!(matches!(h.reply("ZRANDMEMBER z"), Reply::Bulk(_)));
        assert_eq!(h.reply("ZRANDMEMBER missing"), Reply::Nil);
        let Reply::Pairs(p) = h.reply("ZRANDMEMBER z 2 WITHSCORES") else {
            panic!()
        };
        assert_eq!(p.len(), 2);
        assert_ne!(p[0].0, p[1].0);
        let Reply::Array(a) = h.reply("ZRANDMEMBER z -7") else {
            panic!()
        };
        assert_eq!(a.len(), 7);
        let Reply::Array(a) = h.reply("ZRANDMEMBER z 10") else {
            panic!()
        };
        assert_eq!(a.len(), 3);
        assert_eq!(h.reply("ZRANDMEMBER z 1 foo"), Reply::error(errors::SYNTAX));
        assert_eq!(
            h.reply("ZRANDMEMBER z x"),
            Reply::error(errors::NOT_INTEGER)
        );
        assert_eq!(
            h.reply("ZRANDMEMBER z 9223372036854775807 WITHSCORES"),
            Reply::error("ERR value is out of range")
        );
    }
}
