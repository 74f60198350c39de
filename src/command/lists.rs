//! List commands (Redis src/t_list.c), without the blocking forms.
//!
//! Every list command is deterministic and propagates as received; a command that removes
//! the last element deletes the key, as Redis never keeps empty lists.

use bytes::Bytes;

use super::access::{delete_if_empty, get_list, get_list_mut};
use super::args::{int_arg, non_negative_arg};
use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::{CommandSpec, Ctx, errors};
use crate::resp::Reply;
use crate::store::{Elements, Value, own};

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpush),
    command!("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpush),
    command!("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpushx),
    command!("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpushx),
    command!("lpop", -2, WRITE | FAST, (1, 1, 1), lpop),
    command!("rpop", -2, WRITE | FAST, (1, 1, 1), rpop),
    command!("lrange", 4, READONLY, (1, 1, 1), lrange),
    command!("llen", 2, READONLY | FAST, (1, 1, 1), llen),
    command!("lindex", 3, READONLY, (1, 1, 1), lindex),
    command!("lset", 4, WRITE | DENYOOM, (1, 1, 1), lset),
    command!("lrem", 4, WRITE, (1, 1, 1), lrem),
    command!("ltrim", 4, WRITE, (1, 1, 1), ltrim),
    command!("linsert", 5, WRITE | DENYOOM, (1, 1, 1), linsert),
    command!("lmove", 5, WRITE | DENYOOM, (1, 2, 1), lmove),
    command!("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), rpoplpush),
    command!("lpos", -3, READONLY, (1, 1, 1), lpos),
];

type Outcome = Result<Reply, Reply>;

/// Which end of a list.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Head,
    Tail,
}

fn push(list: &mut Elements, end: End, element: Bytes) {
    match end {
        End::Head => list.push_front(element),
        End::Tail => list.push_back(element),
    }
}

/// `pushGenericCommand`; `only_existing` for LPUSHX/RPUSHX.
fn push_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], end: End, only_existing: bool) -> Outcome {
    let key = &argv[1];
    let elements = &argv[2..];
    let len = match get_list_mut(ctx.store, ctx.db, key, ctx.now_ms)? {
        Some(list) => {
            for element in elements {
                push(list, end, own(element));
            }
            list.len()
        }
        None if only_existing => return Ok(Reply::Int(0)),
        None => {
            let mut list = Elements::new();
            for element in elements {
                push(&mut list, end, own(element));
            }
            let len = list.len();
            ctx.store.insert(ctx.db, own(key), Value::List(list), None);
            len
        }
    };
    ctx.changed(elements.len() as u64);
    Ok(Reply::Int(len as i64))
}

fn lpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    push_generic(ctx, argv, End::Head, false)
}

fn rpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    push_generic(ctx, argv, End::Tail, false)
}

fn lpushx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    push_generic(ctx, argv, End::Head, true)
}

fn rpushx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    push_generic(ctx, argv, End::Tail, true)
}

/// `popGenericCommand`: one element as a bulk string, or with a count an array (a missing
/// key is then a null array).
fn pop_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], end: End) -> Outcome {
    if argv.len() > 3 {
        return Err(super::wrong_arity(if end == End::Head {
            "lpop"
        } else {
            "rpop"
        }));
    }
    let count = match argv.get(2) {
        Some(arg) => Some(non_negative_arg(arg, None)?),
        None => None,
    };
    let key = &argv[1];
    let Some(list) = get_list_mut(ctx.store, ctx.db, key, ctx.now_ms)? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let pop = |list: &mut Elements| match end {
        End::Head => list.pop_front(),
        End::Tail => list.pop_back(),
    };
    let (reply, popped) = match count {
        None => match pop(list) {
            Some(element) => (Reply::Bulk(element), 1),
            None => (Reply::Nil, 0),
        },
        Some(0) => return Ok(Reply::Array(Vec::new())),
        Some(count) => {
            let mut elements = Vec::new();
            while (elements.len() as i64) < count {
                match pop(list) {
                    Some(element) => elements.push(Reply::Bulk(element)),
                    None => break,
                }
            }
            let popped = elements.len() as u64;
            (Reply::Array(elements), popped)
        }
    };
    delete_if_empty(ctx, key);
    ctx.changed(popped);
    Ok(reply)
}

fn lpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    pop_generic(ctx, argv, End::Head)
}

fn rpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    pop_generic(ctx, argv, End::Tail)
}

/// Redis's range normalisation (`addListRangeReply`, LTRIM): negative indexes count from
/// the end; `None` when the range is empty, else inclusive `(start, end)` within the list.
fn normalize_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

fn lrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let start = int_arg(&argv[2])?;
    let end = int_arg(&argv[3])?;
    let Some(list) = get_list(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((start, end)) = normalize_range(start, end, list.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(Reply::Array(
        list.range(start..end + 1)
            .map(|element| Reply::Bulk(element.clone()))
            .collect(),
    ))
}

fn llen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    Ok(Reply::Int(
        get_list(ctx, &argv[1])?.map_or(0, |l| l.len() as i64),
    ))
}

/// A list index (negative from the end) as a position, if inside the list.
fn position(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { index + len as i64 } else { index };
    usize::try_from(index).ok().filter(|&i| i < len)
}

fn lindex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let Some(list) = get_list(ctx, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    let index = int_arg(&argv[2])?;
    Ok(Reply::bulk_or_nil(
        position(index, list.len()).and_then(|i| list.get(i).cloned()),
    ))
}

fn lset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let Some(list) = get_list_mut(ctx.store, ctx.db, &argv[1], ctx.now_ms)? else {
        return Err(Reply::error(errors::NO_SUCH_KEY));
    };
    let index = int_arg(&argv[2])?;
    let Some(i) = position(index, list.len()) else {
        return Err(Reply::error(errors::INDEX_OUT_OF_RANGE));
    };
    list.set(i, own(&argv[3]));
    ctx.changed(1);
    Ok(Reply::Ok)
}

fn lrem(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let count = int_arg(&argv[2])?;
    let (key, element) = (&argv[1], &argv[3]);
    let Some(list) = get_list_mut(ctx.store, ctx.db, key, ctx.now_ms)? else {
        return Ok(Reply::Int(0));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
    };
    let matching = |(_, e): &(usize, &Bytes)| e.as_ref() == element.as_ref();
    // Positions to remove, found from the head (count ≥ 0) or the tail (count < 0).
    let mut doomed: Vec<usize> = if count >= 0 {
        list.iter()
            .enumerate()
            .filter(matching)
            .take(limit)
            .map(|(i, _)| i)
            .collect()
    } else {
        list.iter()
            .enumerate()
            .rev()
            .filter(matching)
            .take(limit)
            .map(|(i, _)| i)
            .collect()
    };
    doomed.sort_unstable_by(|a, b| b.cmp(a));
    for &i in &doomed {
        list.remove(i);
    }
    delete_if_empty(ctx, key);
    ctx.changed(doomed.len() as u64);
    Ok(Reply::Int(doomed.len() as i64))
}

fn ltrim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let start = int_arg(&argv[2])?;
    let end = int_arg(&argv[3])?;
    let key = &argv[1];
    let Some(list) = get_list_mut(ctx.store, ctx.db, key, ctx.now_ms)? else {
        return Ok(Reply::Ok);
    };
    let len = list.len();
    let (keep_from, keep_to) = match normalize_range(start, end, len) {
        Some((start, end)) => (start, end + 1),
        None => (len, len),
    };
    list.keep(keep_from..keep_to);
    let removed = len - (keep_to - keep_from);
    delete_if_empty(ctx, key);
    ctx.changed(removed as u64);
    Ok(Reply::Ok)
}

fn linsert(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let after = if argv[2].eq_ignore_ascii_case(b"after") {
        true
    } else if argv[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Err(Reply::error(errors::SYNTAX));
    };
    let Some(list) = get_list_mut(ctx.store, ctx.db, &argv[1], ctx.now_ms)? else {
        return Ok(Reply::Int(0));
    };
    let Some(pivot) = list.iter().position(|e| e.as_ref() == argv[3].as_ref()) else {
        return Ok(Reply::Int(-1));
    };
    list.insert(pivot + usize::from(after), own(&argv[4]));
    let len = list.len();
    ctx.changed(1);
    Ok(Reply::Int(len as i64))
}

fn parse_end(arg: &[u8]) -> Result<End, Reply> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(End::Head)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(End::Tail)
    } else {
        Err(Reply::error(errors::SYNTAX))
    }
}

/// `lmoveGenericCommand`: pops from one end of `source`, pushes on one end of
/// `destination` (which may be the same list: a rotation that keeps the key and its TTL).
fn lmove_generic(
    ctx: &mut Ctx<'_>,
    source: &Bytes,
    destination: &Bytes,
    from: End,
    to: End,
) -> Outcome {
    if get_list(ctx, source)?.is_none() {
        return Ok(Reply::Nil);
    }
    get_list(ctx, destination)?;
    let element = match get_list_mut(ctx.store, ctx.db, source, ctx.now_ms)? {
        Some(list) => match from {
            End::Head => list.pop_front(),
            End::Tail => list.pop_back(),
        },
        None => None,
    };
    let Some(element) = element else {
        return Ok(Reply::Nil);
    };
    match get_list_mut(ctx.store, ctx.db, destination, ctx.now_ms)? {
        Some(list) => push(list, to, element.clone()),
        None => {
            ctx.store.insert(
                ctx.db,
                own(destination),
                Value::List(Elements::unit(element.clone())),
                None,
            );
        }
    }
    delete_if_empty(ctx, source);
    ctx.changed(1);
    Ok(Reply::Bulk(element))
}

fn lmove(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let from = parse_end(&argv[3])?;
    let to = parse_end(&argv[4])?;
    lmove_generic(ctx, &argv[1], &argv[2], from, to)
}

fn rpoplpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    lmove_generic(ctx, &argv[1], &argv[2], End::Tail, End::Head)
}

/// `LPOS key element [RANK r] [COUNT n] [MAXLEN m]`.
fn lpos(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let option = &argv[j];
        let has_value = j + 1 < argv.len();
        if option.eq_ignore_ascii_case(b"rank") && has_value {
            rank = int_arg(&argv[j + 1])?;
            if rank == 0 {
                return Err(Reply::error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                ));
            }
        } else if option.eq_ignore_ascii_case(b"count") && has_value {
            count = Some(non_negative_arg(
                &argv[j + 1],
                Some("ERR COUNT can't be negative"),
            )?);
        } else if option.eq_ignore_ascii_case(b"maxlen") && has_value {
            maxlen = non_negative_arg(&argv[j + 1], Some("ERR MAXLEN can't be negative"))?;
        } else {
            return Err(Reply::error(errors::SYNTAX));
        }
        j += 2;
    }
    let Some(list) = get_list(ctx, &argv[1])? else {
        return Ok(if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        });
    };
    let element = argv[2].as_ref();
    let len = list.len();
    let from_tail = rank < 0;
    // Redis negates a negative rank in a `long`: -LONG_MIN wraps to LONG_MIN, still negative,
    // and every match is then ">= rank", so RANK -9223372036854775808 acts like RANK -1.
    let skip = if rank == i64::MIN {
        0
    } else {
        rank.unsigned_abs() - 1
    };
    let scan_limit = if maxlen == 0 {
        len
    } else {
        (maxlen as usize).min(len)
    };
    let positions: Box<dyn Iterator<Item = usize>> = if from_tail {
        Box::new((0..len).rev().take(scan_limit))
    } else {
        Box::new((0..len).take(scan_limit))
    };
    let wanted = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n as usize,
    };
    let found: Vec<Reply> = positions
        .filter(|&i| list.get(i).is_some_and(|e| e.as_ref() == element))
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(wanted)
        .map(|i| Reply::Int(i as i64))
        .collect();
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.into_iter().next().unwrap_or(Reply::Nil),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, bulks, err};
    use super::*;

    fn ints(items: &[i64]) -> Reply {
        Reply::Array(items.iter().map(|&i| Reply::Int(i)).collect())
    }

    #[test]
    fn push_and_range() {
        let mut h = Harness::new();
        assert_eq!(h.reply("RPUSH l a b c"), Reply::Int(3));
        let e = h.run("LPUSH l z y");
        assert_eq!((e.reply, e.dirty), (Reply::Int(5), 2));
        assert_eq!(e.propagate, Propagate::Verbatim);
        assert_eq!(h.reply("LRANGE l 0 -1"), bulks(&["y", "z", "a", "b", "c"]));
        assert_eq!(h.reply("LRANGE l -2 -1"), bulks(&["b", "c"]));
        assert_eq!(h.reply("LRANGE l -100 1"), bulks(&["y", "z"]));
        assert_eq!(h.reply("LRANGE l 3 100"), bulks(&["b", "c"]));
        assert_eq!(h.reply("LRANGE l 4 3"), bulks(&[]));
        assert_eq!(h.reply("LRANGE l 5 10"), bulks(&[]));
        assert_eq!(h.reply("LRANGE nokey 0 -1"), bulks(&[]));
        assert_eq!(h.reply("LRANGE l x 1"), err(errors::NOT_INTEGER));
        assert_eq!(h.reply("LLEN l"), Reply::Int(5));
        assert_eq!(h.reply("LLEN nokey"), Reply::Int(0));
        let e = h.run("LPUSHX nokey a");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert_eq!(h.reply("RPUSHX l d"), Reply::Int(6));
        h.run("SET s v");
        assert_eq!(h.reply("LPUSH s a"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("LRANGE s 0 1"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("LLEN s"), err(errors::WRONGTYPE));
    }

    #[test]
    fn pops() {
        let mut h = Harness::new();
        assert_eq!(h.reply("LPOP nokey"), Reply::Nil);
        assert_eq!(h.reply("LPOP nokey 2"), Reply::NilArray);
        assert_eq!(h.reply("LPOP nokey 0"), Reply::NilArray);
        h.run("RPUSH l a b c d e");
        h.run("EXPIRE l 100");
        assert_eq!(h.reply("LPOP l 0"), bulks(&[]));
        assert_eq!(h.reply("LPOP l"), Reply::bulk("a"));
        assert_eq!(h.reply("RPOP l"), Reply::bulk("e"));
        assert_eq!(h.reply("RPOP l 2"), bulks(&["d", "c"]));
        assert_eq!(h.reply("TTL l"), Reply::Int(100));
        assert_eq!(
            h.reply("LPOP l -1"),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            h.reply("LPOP l x"),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            h.reply("LPOP l 1 2"),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        let e = h.run("LPOP l 10");
        assert_eq!((e.reply, e.dirty), (bulks(&["b"]), 1));
        assert_eq!(
            h.reply("EXISTS l"),
            Reply::Int(0),
            "the last pop deletes the key"
        );
        h.run("SET s v");
        assert_eq!(h.reply("RPOP s"), err(errors::WRONGTYPE));
    }

    #[test]
    fn index_set_insert() {
        let mut h = Harness::new();
        h.run("RPUSH l a b c");
        assert_eq!(h.reply("LINDEX l 0"), Reply::bulk("a"));
        assert_eq!(h.reply("LINDEX l -1"), Reply::bulk("c"));
        assert_eq!(h.reply("LINDEX l 3"), Reply::Nil);
        assert_eq!(h.reply("LINDEX l -4"), Reply::Nil);
        assert_eq!(h.reply("LINDEX l x"), err(errors::NOT_INTEGER));
        assert_eq!(h.reply("LINDEX nokey x"), Reply::Nil, "lookup before index");
        assert_eq!(h.reply("LSET l -1 z"), Reply::Ok);
        assert_eq!(h.reply("LSET l 5 z"), err(errors::INDEX_OUT_OF_RANGE));
        assert_eq!(h.reply("LSET l x z"), err(errors::NOT_INTEGER));
        assert_eq!(h.reply("LSET nokey 0 z"), err(errors::NO_SUCH_KEY));
        assert_eq!(h.reply("LINSERT l BEFORE b x"), Reply::Int(4));
        assert_eq!(h.reply("LINSERT l after z y"), Reply::Int(5));
        assert_eq!(h.reply("LRANGE l 0 -1"), bulks(&["a", "x", "b", "z", "y"]));
        let e = h.run("LINSERT l BEFORE nothere x");
        assert_eq!((e.reply, e.propagate), (Reply::Int(-1), Propagate::Nothing));
        assert_eq!(h.reply("LINSERT nokey BEFORE a b"), Reply::Int(0));
        assert_eq!(h.reply("LINSERT l middle a b"), err(errors::SYNTAX));
    }

    #[test]
    fn lrem_and_ltrim() {
        let mut h = Harness::new();
        h.run("RPUSH l a b a c a b a");
        assert_eq!(h.reply("LREM l 2 a"), Reply::Int(2));
        assert_eq!(h.reply("LRANGE l 0 -1"), bulks(&["b", "c", "a", "b", "a"]));
        assert_eq!(h.reply("LREM l -1 b"), Reply::Int(1));
        assert_eq!(h.reply("LRANGE l 0 -1"), bulks(&["b", "c", "a", "a"]));
        assert_eq!(h.reply("LREM l 0 a"), Reply::Int(2));
        let e = h.run("LREM l 0 zz");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert_eq!(h.reply("LREM l x a"), err(errors::NOT_INTEGER));
        assert_eq!(h.reply("LREM nokey 0 a"), Reply::Int(0));
        assert_eq!(h.reply("LREM l 0 b"), Reply::Int(1));
        assert_eq!(h.reply("LREM l 0 c"), Reply::Int(1));
        assert_eq!(h.reply("EXISTS l"), Reply::Int(0));

        h.run("RPUSH t 0 1 2 3 4 5");
        let e = h.run("LTRIM t 1 -2");
        assert_eq!((e.reply, e.dirty), (Reply::Ok, 2));
        assert_eq!(h.reply("LRANGE t 0 -1"), bulks(&["1", "2", "3", "4"]));
        let e = h.run("LTRIM t 0 100");
        assert_eq!((e.dirty, e.propagate), (0, Propagate::Nothing));
        assert_eq!(h.reply("LTRIM t -2 -1"), Reply::Ok);
        assert_eq!(h.reply("LRANGE t 0 -1"), bulks(&["3", "4"]));
        assert_eq!(h.reply("LTRIM nokey 0 1"), Reply::Ok);
        assert_eq!(h.reply("LTRIM t 1 0"), Reply::Ok);
        assert_eq!(
            h.reply("EXISTS t"),
            Reply::Int(0),
            "an empty trim deletes the key"
        );
    }

    #[test]
    fn lmove_and_rpoplpush() {
        let mut h = Harness::new();
        assert_eq!(h.reply("LMOVE nokey d LEFT LEFT"), Reply::Nil);
        assert_eq!(h.reply("RPOPLPUSH nokey d"), Reply::Nil);
        h.run("RPUSH s a b c");
        assert_eq!(h.reply("LMOVE s d up LEFT"), err(errors::SYNTAX));
        let e = h.run("RPOPLPUSH s d");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::bulk("c"), Propagate::Verbatim)
        );
        assert_eq!(h.reply("LMOVE s d LEFT RIGHT"), Reply::bulk("a"));
        assert_eq!(h.reply("LRANGE d 0 -1"), bulks(&["c", "a"]));
        h.run("SET str v");
        assert_eq!(h.reply("LMOVE s str LEFT LEFT"), err(errors::WRONGTYPE));
        assert_eq!(
            h.reply("LRANGE s 0 -1"),
            bulks(&["b"]),
            "nothing popped on error"
        );
        // Rotating a one-element list keeps the key and its TTL.
        h.run("EXPIRE s 100");
        assert_eq!(h.reply("LMOVE s s LEFT RIGHT"), Reply::bulk("b"));
        assert_eq!(h.reply("TTL s"), Reply::Int(100));
        assert_eq!(h.reply("LMOVE s d RIGHT LEFT"), Reply::bulk("b"));
        assert_eq!(h.reply("EXISTS s"), Reply::Int(0));
        h.run("RPUSH r 1 2 3");
        assert_eq!(h.reply("RPOPLPUSH r r"), Reply::bulk("3"));
        assert_eq!(h.reply("LRANGE r 0 -1"), bulks(&["3", "1", "2"]));
    }

    #[test]
    fn lpos_follows_redis() {
        let mut h = Harness::new();
        h.run("RPUSH l a b c 1 2 3 c c");
        assert_eq!(h.reply("LPOS l c"), Reply::Int(2));
        assert_eq!(h.reply("LPOS l c RANK 2"), Reply::Int(6));
        assert_eq!(h.reply("LPOS l c RANK -1"), Reply::Int(7));
        assert_eq!(h.reply("LPOS l c COUNT 0"), ints(&[2, 6, 7]));
        assert_eq!(h.reply("LPOS l c COUNT 2 RANK -1"), ints(&[7, 6]));
        assert_eq!(h.reply("LPOS l c MAXLEN 2"), Reply::Nil);
        assert_eq!(h.reply("LPOS l c COUNT 0 MAXLEN 7"), ints(&[2, 6]));
        assert_eq!(h.reply("LPOS l zz"), Reply::Nil);
        assert_eq!(h.reply("LPOS l zz COUNT 1"), ints(&[]));
        assert_eq!(h.reply("LPOS nokey a"), Reply::Nil);
        assert_eq!(h.reply("LPOS nokey a COUNT 1"), ints(&[]));
        assert_eq!(
            h.reply("LPOS l a RANK 0"),
            err(
                "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
            )
        );
        assert_eq!(
            h.reply("LPOS l a COUNT -1"),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.reply("LPOS l a MAXLEN -1"),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(h.reply("LPOS l a RANK"), err(errors::SYNTAX));
        h.run("SET s v");
        assert_eq!(h.reply("LPOS s a"), err(errors::WRONGTYPE));
    }
}
