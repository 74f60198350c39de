//! Set commands (Redis 7.0 `t_set.c`).
//!
//! Picking random members walks the set (imbl hash sets cannot be indexed), so `SPOP` and
//! `SRANDMEMBER` cost O(N) per call rather than Redis's O(1) per member; a call that needs
//! several members walks once.
//!
//! Propagation: `SPOP` is replaced by one `SREM key member` per popped member, or by
//! `DEL key` when it pops the whole set, exactly as Redis 7.0 does.

use bytes::Bytes;

use super::access::{get_set, get_set_mut, wrongtype};
use super::scan::{self, ScanOptions};
use super::{CommandSpec, Ctx, Rng, args, errors, flags, random};
use crate::resp::Reply;
use crate::store::{Value, own};

type Set = crate::store::Members;

use flags::{DENYOOM, FAST, MOVABLEKEYS, READONLY, WRITE};

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), sadd),
    command!("srem", -3, WRITE | FAST, (1, 1, 1), srem),
    command!("smembers", 2, READONLY, (1, 1, 1), smembers),
    command!("sismember", 3, READONLY | FAST, (1, 1, 1), sismember),
    command!("smismember", -3, READONLY | FAST, (1, 1, 1), smismember),
    command!("scard", 2, READONLY | FAST, (1, 1, 1), scard),
    command!("spop", -2, WRITE | FAST, (1, 1, 1), spop),
    command!("srandmember", -2, READONLY, (1, 1, 1), srandmember),
    command!("smove", 4, WRITE | FAST, (1, 2, 1), smove),
    command!("sinter", -2, READONLY, (1, -1, 1), sinter),
    command!("sunion", -2, READONLY, (1, -1, 1), sunion),
    command!("sdiff", -2, READONLY, (1, -1, 1), sdiff),
    command!("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), sinterstore),
    command!("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), sunionstore),
    command!("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), sdiffstore),
    command!(
        "sintercard",
        -3,
        READONLY | MOVABLEKEYS,
        (0, 0, 0),
        sintercard,
    ),
    command!("sscan", -3, READONLY, (1, 1, 1), sscan),
];

/// The set at `key` as an O(1) shared copy (so the caller may write meanwhile): `None` when
/// missing, WRONGTYPE for other types.
fn read_set(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Set>, Reply> {
    Ok(get_set(ctx, key)?.cloned())
}

/// Redis 7.0 keeps a set of at most 512 integers as an intset (`set-max-intset-entries`):
/// sorted, and scanned in one page.
fn is_intset_sized(set: &Set) -> bool {
    set.len() <= 512 && set.iter().all(|m| args::parse_i64(m).is_some())
}

/// The members as bulk replies, in the order of [`ordered_members`].
fn members(set: &Set) -> Vec<Reply> {
    ordered_members(set).into_iter().map(Reply::Bulk).collect()
}

/// The members in the order Redis replies them: ascending for an intset-sized set of
/// integers, iteration order otherwise (a hash table's order is arbitrary in Redis too).
fn ordered_members(set: &Set) -> Vec<Bytes> {
    let mut members: Vec<&Bytes> = set.iter().collect();
    if is_intset_sized(set) {
        members.sort_by_key(|m| args::parse_i64(m).unwrap_or_default());
    }
    members.into_iter().cloned().collect()
}

fn sadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let added = match get_set_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(Some(set)) => argv[2..]
            .iter()
            .filter(|m| set.insert(own(m)).is_none())
            .count(),
        Ok(None) => {
            let set: Set = argv[2..].iter().map(|m| own(m)).collect();
            let added = set.len();
            ctx.store.insert(ctx.db, own(key), Value::Set(set), None);
            added
        }
    };
    ctx.changed(added as u64);
    Reply::Int(added as i64)
}

fn srem(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let (removed, now_empty) = match get_set_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(set)) => {
            let mut removed = 0;
            for member in &argv[2..] {
                if set.remove(member.as_ref()).is_some() {
                    removed += 1;
                    if set.is_empty() {
                        break;
                    }
                }
            }
            (removed, set.is_empty())
        }
    };
    if now_empty {
        ctx.store.remove(ctx.db, key);
    }
    ctx.changed(removed);
    Reply::Int(removed as i64)
}

fn smembers(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_set(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Set(Vec::new()),
        Ok(Some(set)) => Reply::Set(members(&set)),
    }
}

fn sismember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_set(ctx, &argv[1]) {
        Err(e) => e,
        Ok(set) => Reply::Int(i64::from(set.is_some_and(|s| s.contains(argv[2].as_ref())))),
    }
}

fn smismember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_set(ctx, &argv[1]) {
        Err(e) => e,
        Ok(set) => Reply::Array(
            argv[2..]
                .iter()
                .map(|m| {
                    Reply::Int(i64::from(
                        set.as_ref().is_some_and(|s| s.contains(m.as_ref())),
                    ))
                })
                .collect(),
        ),
    }
}

fn scard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_set(ctx, &argv[1]) {
        Err(e) => e,
        Ok(set) => Reply::Int(set.map_or(0, |s| s.len()) as i64),
    }
}

/// A uniformly random member of a non-empty set (walks the set).
fn random_member(set: &Set, rng: &mut Rng) -> Option<Bytes> {
    let index = rng.below(set.len() as u64) as usize;
    set.iter().nth(index).cloned()
}

/// Parses a count that must be ≥ 0, with the message Redis uses for both bad forms.
fn positive_count(arg: &[u8]) -> Result<u64, Reply> {
    match args::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(Reply::error("ERR value is out of range, must be positive")),
    }
}

fn spop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match argv.len() {
        2 => spop_one(ctx, argv),
        3 => spop_count(ctx, argv),
        _ => Reply::error(errors::SYNTAX),
    }
}

fn spop_one(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let rng = &mut *ctx.rng;
    let (member, now_empty) = match get_set_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(set)) => {
            let Some(member) = random_member(set, rng) else {
                return Reply::Nil;
            };
            set.remove(&member);
            (member, set.is_empty())
        }
    };
    if now_empty {
        ctx.store.remove(ctx.db, key);
    }
    ctx.changed(1);
    ctx.rewrite(vec![vec![
        Bytes::from_static(b"SREM"),
        key.clone(),
        member.clone(),
    ]]);
    Reply::Bulk(member)
}

fn spop_count(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let count = match positive_count(&argv[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let rng = &mut *ctx.rng;
    let popped = match get_set_mut(ctx.store, ctx.db, key, ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Set(Vec::new()),
        Ok(Some(_)) if count == 0 => return Reply::Set(Vec::new()),
        Ok(Some(set)) if count >= set.len() as u64 => None,
        Ok(Some(set)) => {
            let popped = random::distinct(set.iter().cloned().collect(), count as usize, rng);
            for member in &popped {
                set.remove(member);
            }
            Some(popped)
        }
    };
    match popped {
        // The whole set: the reply is every member, the key goes, and Redis propagates DEL.
        None => {
            let Some(item) = ctx.store.remove(ctx.db, key) else {
                return Reply::Set(Vec::new());
            };
            let Value::Set(set) = item.value else {
                return wrongtype();
            };
            ctx.changed(set.len() as u64);
            ctx.rewrite(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
            Reply::Set(members(&set))
        }
        Some(popped) => {
            ctx.changed(popped.len() as u64);
            ctx.rewrite(
                popped
                    .iter()
                    .map(|m| vec![Bytes::from_static(b"SREM"), key.clone(), m.clone()])
                    .collect(),
            );
            Reply::Set(popped.into_iter().map(Reply::Bulk).collect())
        }
    }
}

fn srandmember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Result<Reply, Reply> {
    if argv.len() > 3 {
        return Err(Reply::error(errors::SYNTAX));
    }
    if argv.len() == 2 {
        return Ok(match read_set(ctx, &argv[1])? {
            None => Reply::Nil,
            Some(set) => Reply::bulk_or_nil(random_member(&set, ctx.rng)),
        });
    }
    let requested = random::count_arg(&argv[2])?;
    let Some(set) = read_set(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked = random::sample(ordered_members(&set), requested, ctx.rng)?;
    Ok(Reply::Array(picked.into_iter().map(Reply::Bulk).collect()))
}

fn smove(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let (src, dst, member) = (&argv[1], &argv[2], &argv[3]);
    let source = match read_set(ctx, src) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(set)) => set,
    };
    let destination = match read_set(ctx, dst) {
        Err(e) => return e,
        Ok(set) => set,
    };
    if src == dst {
        return Reply::Int(i64::from(source.contains(member.as_ref())));
    }
    let now_empty = match get_set_mut(ctx.store, ctx.db, src, ctx.now_ms) {
        Ok(Some(set)) => {
            if set.remove(member.as_ref()).is_none() {
                return Reply::Int(0);
            }
            set.is_empty()
        }
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    if now_empty {
        ctx.store.remove(ctx.db, src);
    }
    ctx.changed(1);
    let added = match destination {
        None => {
            let set: Set = std::iter::once(own(member)).collect();
            ctx.store.insert(ctx.db, own(dst), Value::Set(set), None);
            true
        }
        Some(_) => match get_set_mut(ctx.store, ctx.db, dst, ctx.now_ms) {
            Ok(Some(set)) => set.insert(own(member)).is_none(),
            _ => false,
        },
    };
    if added {
        ctx.changed(1);
    }
    Reply::Int(1)
}

/// The sets named by `keys`, `None` for missing keys; WRONGTYPE if any key holds another type.
fn read_sets(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> Result<Vec<Option<Set>>, Reply> {
    keys.iter().map(|key| read_set(ctx, key)).collect()
}

/// The intersection of `sets` (a missing set is empty), stopping after `limit` members when
/// `limit > 0`.
fn intersection(sets: Vec<Option<Set>>, limit: usize) -> Vec<Bytes> {
    let Some(mut sets) = sets.into_iter().collect::<Option<Vec<Set>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|s| s.len());
    let Some((smallest, others)) = sets.split_first() else {
        return Vec::new();
    };
    let mut result = Vec::new();
    for member in smallest {
        if others.iter().all(|s| s.contains(member)) {
            result.push(member.clone());
            if limit > 0 && result.len() >= limit {
                break;
            }
        }
    }
    result
}

fn union(sets: Vec<Option<Set>>) -> Set {
    let mut sets: Vec<Set> = sets.into_iter().flatten().collect();
    // Grow the largest set: its structure is shared, only the additions are copied.
    sets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut iter = sets.into_iter();
    let mut result = iter.next().unwrap_or_default();
    for set in iter {
        for member in &set {
            result.insert(member.clone());
        }
    }
    result
}

fn difference(sets: Vec<Option<Set>>) -> Set {
    let mut iter = sets.into_iter();
    let Some(Some(mut result)) = iter.next() else {
        return Set::default();
    };
    for set in iter.flatten() {
        if result.is_empty() {
            break;
        }
        if set.len() < result.len() {
            for member in &set {
                result.remove(member);
            }
        } else {
            result.retain(|m| !set.contains(m));
        }
    }
    result
}

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

fn compute(op: SetOp, sets: Vec<Option<Set>>) -> Set {
    match op {
        SetOp::Inter => intersection(sets, 0).into_iter().collect(),
        SetOp::Union => union(sets),
        SetOp::Diff => difference(sets),
    }
}

fn set_op(ctx: &mut Ctx<'_>, argv: &[Bytes], op: SetOp) -> Reply {
    match read_sets(ctx, &argv[1..]) {
        Err(e) => e,
        Ok(sets) => Reply::Set(members(&compute(op, sets))),
    }
}

/// The `*STORE` form: the result replaces `argv[1]` (dropping its TTL), or deletes it when
/// empty.
fn set_op_store(ctx: &mut Ctx<'_>, argv: &[Bytes], op: SetOp) -> Reply {
    let dst = &argv[1];
    let result = match read_sets(ctx, &argv[2..]) {
        Err(e) => return e,
        Ok(sets) => compute(op, sets),
    };
    if result.is_empty() {
        if ctx.store.remove(ctx.db, dst).is_some() {
            ctx.changed(1);
        }
        return Reply::Int(0);
    }
    let len = result.len();
    ctx.store.insert(ctx.db, own(dst), Value::Set(result), None);
    ctx.changed(1);
    Reply::Int(len as i64)
}

fn sinter(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    set_op(ctx, argv, SetOp::Inter)
}

fn sunion(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    set_op(ctx, argv, SetOp::Union)
}

fn sdiff(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    set_op(ctx, argv, SetOp::Diff)
}

fn sinterstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    set_op_store(ctx, argv, SetOp::Inter)
}

fn sunionstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    set_op_store(ctx, argv, SetOp::Union)
}

fn sdiffstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    set_op_store(ctx, argv, SetOp::Diff)
}

fn sintercard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let numkeys = match args::parse_i64(&argv[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Reply::error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (argv.len() - 2) as u64 {
        return Reply::error("ERR Number of keys can't be greater than number of args");
    }
    let keys_end = 2 + numkeys as usize;
    let mut limit = 0usize;
    let mut i = keys_end;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if argv[i].eq_ignore_ascii_case(b"limit") && more > 0 {
            i += 1;
            limit = match args::parse_i64(&argv[i]) {
                Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Reply::error("ERR LIMIT can't be negative"),
            };
        } else {
            return Reply::error(errors::SYNTAX);
        }
        i += 1;
    }
    match read_sets(ctx, &argv[2..keys_end]) {
        Err(e) => e,
        Ok(sets) => Reply::Int(intersection(sets, limit).len() as i64),
    }
}

fn sscan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Result<Reply, Reply> {
    let cursor = scan::parse_cursor(&argv[2])?;
    let Some(set) = read_set(ctx, &argv[1])? else {
        return Ok(scan::reply(0, Vec::new()));
    };
    let options = ScanOptions::parse(argv, 3, false)?;
    let all = ordered_members(&set).into_iter().map(|m| (m, ())).collect();
    let (page, next) = scan::collection_page(all, cursor, &options, is_intset_sized(&set));
    Ok(scan::reply(
        next,
        page.into_iter().map(|(m, ())| Reply::Bulk(m)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, bulk, sorted_bulks};
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn sadd_srem_count_changes_and_delete_empty_sets() {
        let mut h = Harness::new();
        let e = h.run("SADD s a b a c");
        assert_eq!(e.reply, Reply::Int(3));
        assert_eq!(e.dirty, 3);
        assert_eq!(e.propagate, Propagate::Verbatim);
        let e = h.run("SADD s a");
        assert_eq!(e.reply, Reply::Int(0));
        assert_eq!(e.propagate, Propagate::Nothing);
        assert_eq!(h.reply("SCARD s"), Reply::Int(3));
        assert_eq!(h.reply("SISMEMBER s b"), Reply::Int(1));
        assert_eq!(
            h.reply("SMISMEMBER s a x c"),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0), Reply::Int(1)])
        );
        assert_eq!(sorted_bulks(h.reply("SMEMBERS s")), words("a b c"));
        let e = h.run("SREM s a x");
        assert_eq!((e.reply, e.dirty), (Reply::Int(1), 1));
        assert_eq!(h.run("SREM s x").propagate, Propagate::Nothing);
        assert_eq!(h.reply("SREM s b c"), Reply::Int(2));
        assert!(
            h.store.get(0, b"s", h.now_ms).is_none(),
            "empty set deleted"
        );
        assert_eq!(h.reply("SMEMBERS s"), Reply::Set(vec![]));
        assert_eq!(h.reply("SCARD s"), Reply::Int(0));
    }

    #[test]
    fn wrong_type_is_refused() {
        let mut h = Harness::new();
        h.store.insert(
            0,
            own(b"str"),
            Value::String(Bytes::from_static(b"v")),
            None,
        );
        let wrongtype = Reply::error(errors::WRONGTYPE);
        for cmd in [
            "SADD str a",
            "SREM str a",
            "SMEMBERS str",
            "SISMEMBER str a",
            "SMISMEMBER str a",
            "SCARD str",
            "SPOP str",
            "SPOP str 2",
            "SRANDMEMBER str",
            "SRANDMEMBER str 2",
            "SMOVE str x a",
            "SINTER str",
            "SUNION str",
            "SDIFF str",
            "SINTERSTORE d str",
            "SINTERCARD 1 str",
            "SSCAN str 0",
        ] {
            assert_eq!(h.reply(cmd), wrongtype, "{cmd}");
        }
        h.run("SADD s a");
        assert_eq!(h.reply("SMOVE s str a"), wrongtype);
        assert_eq!(
            h.reply("SMOVE missing str a"),
            Reply::Int(0),
            "source checked first"
        );
        assert_eq!(h.reply("SINTER missing str"), wrongtype);
    }

    #[test]
    fn spop_propagates_srem_or_del() {
        let mut h = Harness::new();
        h.run("SADD s a b c d e");
        let e = h.run("SPOP s");
        let Reply::Bulk(member) = e.reply.clone() else {
            panic!("{:?}", e.reply)
        };
        assert_eq!(
            e.propagate,
            Propagate::Commands(vec![vec![
                Bytes::from_static(b"SREM"),
                Bytes::from_static(b"s"),
                member.clone()
            ]])
        );
        assert_eq!(
            h.reply(&format!("SISMEMBER s {}", String::from_utf8_lossy(&member))),
            Reply::Int(0)
        );

        let e = h.run("SPOP s 2");
        let popped = sorted_bulks(e.reply);
        assert_eq!(popped.len(), 2);
        let Propagate::Commands(cmds) = e.propagate else {
            panic!()
        };
        let mut propagated: Vec<String> = cmds
            .iter()
            .map(|c| {
                assert_eq!(
                    &c[..2],
                    &[Bytes::from_static(b"SREM"), Bytes::from_static(b"s")]
                );
                String::from_utf8(c[2].to_vec()).unwrap()
            })
            .collect();
        propagated.sort();
        assert_eq!(propagated, popped);
        assert_eq!(e.dirty, 2);
        assert_eq!(h.reply("SCARD s"), Reply::Int(2));

        let e = h.run("SPOP s 10");
        assert_eq!(sorted_bulks(e.reply).len(), 2);
        assert_eq!(
            e.propagate,
            Propagate::Commands(vec![vec![
                Bytes::from_static(b"DEL"),
                Bytes::from_static(b"s")
            ]])
        );
        assert_eq!(e.dirty, 2);
        assert!(h.store.get(0, b"s", h.now_ms).is_none());

        assert_eq!(h.reply("SPOP s"), Reply::Nil);
        assert_eq!(h.reply("SPOP s 3"), Reply::Set(vec![]));
        h.run("SADD t x");
        let e = h.run("SPOP t 0");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::Set(vec![]), Propagate::Nothing)
        );
        let e = h.run("SPOP t");
        assert_eq!(e.reply, bulk("x"));
        assert!(
            h.store.get(0, b"t", h.now_ms).is_none(),
            "last member popped deletes"
        );
        let positive = Reply::error("ERR value is out of range, must be positive");
        assert_eq!(h.reply("SPOP t -1"), positive);
        assert_eq!(h.reply("SPOP t abc"), positive);
        assert_eq!(h.reply("SPOP t 1 2"), Reply::error(errors::SYNTAX));
    }

    #[test]
    fn srandmember_counts_follow_redis() {
        let mut h = Harness::new();
        h.run("SADD s a b c d e f g h i j");
        let e = h.run("SRANDMEMBER s");
        assert!(matches!(e.reply, Reply::Bulk(_)));
        assert_eq!(e.propagate, Propagate::Nothing);
        // Positive: distinct members, at most the set.
        for n in [1usize, 3, 9] {
            let got = sorted_bulks(h.reply(&format!("SRANDMEMBER s {n}")));
            assert_eq!(got.len(), n);
            let mut dedup = got.clone();
            dedup.dedup();
            assert_eq!(dedup, got, "distinct for {n}");
        }
        assert_eq!(
            sorted_bulks(h.reply("SRANDMEMBER s 100")),
            words("a b c d e f g h i j")
        );
        // Negative: exactly |n| picks, repeats allowed (200 picks of 10 must repeat).
        let got = sorted_bulks(h.reply("SRANDMEMBER s -200"));
        assert_eq!(got.len(), 200);
        let mut dedup = got.clone();
        dedup.dedup();
        assert!(dedup.len() <= 10);
        assert_eq!(h.reply("SRANDMEMBER s 0"), Reply::Array(vec![]));
        assert_eq!(h.reply("SRANDMEMBER missing"), Reply::Nil);
        assert_eq!(h.reply("SRANDMEMBER missing 5"), Reply::Array(vec![]));
        assert_eq!(
            h.reply("SRANDMEMBER s x"),
            Reply::error(errors::NOT_INTEGER)
        );
        assert_eq!(
            h.reply("SRANDMEMBER s -9223372036854775808"),
            Reply::error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
        assert_eq!(h.reply("SCARD s"), Reply::Int(10), "read-only");
    }

    #[test]
    fn smove_moves_and_counts() {
        let mut h = Harness::new();
        h.run("SADD src a b");
        h.run("SADD dst b");
        let e = h.run("SMOVE src dst a");
        assert_eq!(
            (e.reply, e.dirty, e.propagate),
            (Reply::Int(1), 2, Propagate::Verbatim)
        );
        let e = h.run("SMOVE src dst b");
        assert_eq!(
            (e.reply, e.dirty),
            (Reply::Int(1), 1),
            "already in dst: only the removal"
        );
        assert!(
            h.store.get(0, b"src", h.now_ms).is_none(),
            "emptied source deleted"
        );
        assert_eq!(sorted_bulks(h.reply("SMEMBERS dst")), words("a b"));
        let e = h.run("SMOVE dst dst a");
        assert_eq!((e.reply, e.propagate), (Reply::Int(1), Propagate::Nothing));
        assert_eq!(h.reply("SMOVE dst dst zz"), Reply::Int(0));
        assert_eq!(h.run("SMOVE dst new zz").propagate, Propagate::Nothing);
        assert_eq!(h.reply("SMOVE dst new a"), Reply::Int(1));
        assert_eq!(sorted_bulks(h.reply("SMEMBERS new")), words("a"));
    }

    #[test]
    fn algebra_and_store_forms() {
        let mut h = Harness::new();
        h.run("SADD a 1 2 3 4");
        h.run("SADD b 3 4 5");
        h.run("SADD c 4 5 6");
        assert_eq!(sorted_bulks(h.reply("SINTER a b")), words("3 4"));
        assert_eq!(sorted_bulks(h.reply("SINTER a b c")), words("4"));
        assert_eq!(h.reply("SINTER a missing"), Reply::Set(vec![]));
        assert_eq!(
            sorted_bulks(h.reply("SUNION a b missing")),
            words("1 2 3 4 5")
        );
        assert_eq!(sorted_bulks(h.reply("SDIFF a b c")), words("1 2"));
        assert_eq!(sorted_bulks(h.reply("SDIFF a missing")), words("1 2 3 4"));
        assert_eq!(h.reply("SDIFF missing a"), Reply::Set(vec![]));
        assert_eq!(h.reply("SDIFF a a"), Reply::Set(vec![]));

        h.store.insert(
            0,
            own(b"d"),
            Value::String(Bytes::from_static(b"old")),
            Some(h.now_ms + 10_000),
        );
        let e = h.run("SUNIONSTORE d a c");
        assert_eq!(
            (e.reply, e.dirty, e.propagate),
            (Reply::Int(6), 1, Propagate::Verbatim)
        );
        let item = h.store.get(0, b"d", h.now_ms).unwrap();
        assert!(item.expire_at_ms.is_none(), "overwrite drops the TTL");
        assert_eq!(h.reply("SINTERSTORE d a b"), Reply::Int(2));
        assert_eq!(sorted_bulks(h.reply("SMEMBERS d")), words("3 4"));
        assert_eq!(h.reply("SDIFFSTORE d b a"), Reply::Int(1));
        let e = h.run("SINTERSTORE d a missing");
        assert_eq!((e.reply, e.dirty), (Reply::Int(0), 1));
        assert!(
            h.store.get(0, b"d", h.now_ms).is_none(),
            "empty result deletes destination"
        );
        let e = h.run("SDIFFSTORE d a a");
        assert_eq!(
            (e.reply, e.dirty, e.propagate),
            (Reply::Int(0), 0, Propagate::Nothing)
        );
        assert_eq!(
            h.reply("SUNIONSTORE a a b"),
            Reply::Int(5),
            "destination may be a source"
        );
    }

    #[test]
    fn sintercard_limits_and_errors() {
        let mut h = Harness::new();
        h.run("SADD a 1 2 3 4");
        h.run("SADD b 2 3 4 5");
        assert_eq!(h.reply("SINTERCARD 2 a b"), Reply::Int(3));
        assert_eq!(h.reply("SINTERCARD 2 a b LIMIT 2"), Reply::Int(2));
        assert_eq!(h.reply("SINTERCARD 2 a b LIMIT 0"), Reply::Int(3));
        assert_eq!(h.reply("SINTERCARD 1 missing"), Reply::Int(0));
        assert_eq!(
            h.reply("SINTERCARD 0 a"),
            Reply::error("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.reply("SINTERCARD x a"),
            Reply::error("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.reply("SINTERCARD 3 a b"),
            Reply::error("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            h.reply("SINTERCARD 2 a b LIMIT -1"),
            Reply::error("ERR LIMIT can't be negative")
        );
        assert_eq!(
            h.reply("SINTERCARD 2 a b LIMIT"),
            Reply::error(errors::SYNTAX)
        );
        assert_eq!(h.reply("SINTERCARD 1 a b"), Reply::error(errors::SYNTAX));
    }

    fn scan_all(h: &mut Harness, tail: &str) -> (Vec<String>, usize) {
        let mut cursor = "0".to_string();
        let mut all = Vec::new();
        let mut calls = 0;
        loop {
            let reply = h.reply(&format!("SSCAN s {cursor} {tail}"));
            calls += 1;
            let Reply::Array(parts) = reply else {
                panic!("{reply:?}")
            };
            let [Reply::Bulk(next), items] = &parts[..] else {
                panic!()
            };
            all.extend(sorted_bulks(items.clone()));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        all.sort();
        (all, calls)
    }

    #[test]
    fn sscan_pages_and_matches() {
        let mut h = Harness::new();
        h.run("SADD s 1 2 3 10 20");
        assert_eq!(
            scan_all(&mut h, ""),
            (words("1 10 2 20 3"), 1),
            "intset-like: one page"
        );
        assert_eq!(scan_all(&mut h, "MATCH 1*").0, words("1 10"));
        let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        h.run(&format!("SADD s {}", members.join(" ")));
        let (all, calls) = scan_all(&mut h, "COUNT 20");
        assert_eq!(all.len(), 305);
        assert!(calls >= 10, "paged: {calls}");
        let (matched, _) = scan_all(&mut h, "MATCH m1? COUNT 5");
        assert_eq!(
            matched,
            (10..20).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );
        assert_eq!(h.reply("SSCAN s x"), Reply::error("ERR invalid cursor"));
        assert_eq!(h.reply("SSCAN s 0 COUNT 0"), Reply::error(errors::SYNTAX));
        assert_eq!(
            h.reply("SSCAN s 0 COUNT x"),
            Reply::error(errors::NOT_INTEGER)
        );
        assert_eq!(h.reply("SSCAN s 0 FOO"), Reply::error(errors::SYNTAX));
        assert_eq!(
            h.reply("SSCAN missing 0 COUNT 0"),
            scan::reply(0, vec![]),
            "options are not checked on a missing key"
        );
    }
}
