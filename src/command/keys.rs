//! Keyspace commands (Redis src/db.c and src/expire.c).
//!
//! Propagation follows Redis 7.0: `EXPIRE`, `PEXPIRE` and `EXPIREAT` travel as `PEXPIREAT key
//! <absolute ms>` (their NX/XX/GT/LT options kept), and any expiry time already past deletes
//! the key and travels as `DEL key`. `FLUSHDB`/`FLUSHALL` always propagate, even on an empty
//! database (Redis forces it), so replicas flush too.

use bytes::Bytes;

use super::args::{c_int_arg, int_arg};
use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::scan::{self, ScanOptions};
use super::{CommandSpec, Ctx, errors};
use crate::glob::glob_match;
use crate::resp::Reply;
use crate::store::{Item, Value, own};

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("del", -2, WRITE, (1, -1, 1), del),
    command!("unlink", -2, WRITE | FAST, (1, -1, 1), del),
    command!("exists", -2, READONLY | FAST, (1, -1, 1), exists),
    command!("touch", -2, READONLY | FAST, (1, -1, 1), exists),
    command!("type", 2, READONLY | FAST, (1, 1, 1), type_of),
    command!("expire", -3, WRITE | FAST, (1, 1, 1), expire),
    command!("pexpire", -3, WRITE | FAST, (1, 1, 1), pexpire),
    command!("expireat", -3, WRITE | FAST, (1, 1, 1), expireat),
    command!("pexpireat", -3, WRITE | FAST, (1, 1, 1), pexpireat),
    command!("ttl", 2, READONLY | FAST, (1, 1, 1), ttl),
    command!("pttl", 2, READONLY | FAST, (1, 1, 1), pttl),
    command!("expiretime", 2, READONLY | FAST, (1, 1, 1), expiretime),
    command!("pexpiretime", 2, READONLY | FAST, (1, 1, 1), pexpiretime),
    command!("persist", 2, WRITE | FAST, (1, 1, 1), persist),
    command!("keys", 2, READONLY, (0, 0, 0), keys),
    command!("scan", -2, READONLY, (0, 0, 0), scan),
    command!("rename", 3, WRITE, (1, 2, 1), rename),
    command!("renamenx", 3, WRITE | FAST, (1, 2, 1), renamenx),
    command!("randomkey", 1, READONLY, (0, 0, 0), randomkey),
    command!("dbsize", 1, READONLY | FAST, (0, 0, 0), dbsize),
    command!("flushdb", -1, WRITE, (0, 0, 0), flushdb),
    command!("flushall", -1, WRITE, (0, 0, 0), flushall),
    command!("move", 3, WRITE | FAST, (1, 1, 1), move_key),
    command!("swapdb", 3, WRITE | FAST, (0, 0, 0), swapdb),
    command!("copy", -3, WRITE | DENYOOM, (1, 2, 1), copy),
];

type Outcome = Result<Reply, Reply>;

const SAME_OBJECT: &str = "ERR source and destination objects are the same";

/// DEL and UNLINK (freeing memory lazily is the server's business, not the keyspace's).
fn del(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let mut deleted = 0;
    for key in &argv[1..] {
        // An expired key is removed by the lookup (and propagated as such), not counted.
        if ctx.store.contains(ctx.db, key, ctx.now_ms) {
            ctx.store.remove(ctx.db, key);
            deleted += 1;
        }
    }
    ctx.changed(deleted);
    Ok(Reply::Int(deleted as i64))
}

/// EXISTS and TOUCH: how many of the arguments exist (a repeated key counts each time).
fn exists(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let count = argv[1..]
        .iter()
        .filter(|key| ctx.store.contains(ctx.db, key, ctx.now_ms))
        .count();
    Ok(Reply::Int(count as i64))
}

fn type_of(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let name = match ctx.store.get(ctx.db, &argv[1], ctx.now_ms) {
        None => "none".to_string(),
        Some(item) => type_name(&item.value),
    };
    Ok(Reply::Simple(name.into()))
}

/// The name TYPE reports: a module value reports its module type's name.
fn type_name(value: &Value) -> String {
    match value {
        Value::Module(module) => module.type_name(),
        other => other.type_name().to_string(),
    }
}

/// Options of the EXPIRE family (Redis 7).
mod when {
    pub const NX: u32 = 1 << 0;
    pub const XX: u32 = 1 << 1;
    pub const GT: u32 = 1 << 2;
    pub const LT: u32 = 1 << 3;
}

/// `parseExtendedExpireArgumentsOrReply`.
fn parse_expire_options(argv: &[Bytes]) -> Result<u32, Reply> {
    let mut flags = 0;
    for option in &argv[3..] {
        flags |= match option.to_ascii_lowercase().as_slice() {
            b"nx" => when::NX,
            b"xx" => when::XX,
            b"gt" => when::GT,
            b"lt" => when::LT,
            _ => {
                return Err(Reply::error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(option)
                )));
            }
        };
    }
    if flags & when::NX != 0 && flags & (when::XX | when::GT | when::LT) != 0 {
        return Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if flags & when::GT != 0 && flags & when::LT != 0 {
        return Err(Reply::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(flags)
}

/// `expireGenericCommand`: `relative` adds the current time, `seconds` scales the argument.
fn expire_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    name: &str,
    relative: bool,
    seconds: bool,
) -> Outcome {
    let key = &argv[1];
    let flags = parse_expire_options(argv)?;
    let invalid = || Reply::error(errors::INVALID_EXPIRE.replace("{}", name));
    let mut at = int_arg(&argv[2])?;
    if seconds {
        at = at.checked_mul(1000).ok_or_else(invalid)?;
    }
    if relative {
        at = at.checked_add(ctx.now_ms).ok_or_else(invalid)?;
    }
    let Some(item) = ctx.store.get(ctx.db, key, ctx.now_ms) else {
        return Ok(Reply::Int(0));
    };
    let current = item.expire_at_ms;
    let refused = match current {
        // No TTL counts as an infinite one: GT never passes, LT always does.
        None => flags & (when::XX | when::GT) != 0,
        Some(current) => {
            flags & when::NX != 0
                || (flags & when::GT != 0 && at <= current)
                || (flags & when::LT != 0 && at >= current)
        }
    };
    if refused {
        return Ok(Reply::Int(0));
    }
    if at <= ctx.now_ms {
        ctx.store.remove(ctx.db, key);
        ctx.changed(1);
        ctx.rewrite(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
        return Ok(Reply::Int(1));
    }
    ctx.store.set_expire(ctx.db, key, Some(at), ctx.now_ms);
    ctx.changed(1);
    if relative || seconds {
        let mut rewritten = argv.to_vec();
        rewritten[0] = Bytes::from_static(b"PEXPIREAT");
        rewritten[2] = Bytes::from(at.to_string());
        ctx.rewrite(vec![rewritten]);
    }
    Ok(Reply::Int(1))
}

fn expire(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    expire_generic(ctx, argv, "expire", true, true)
}

fn pexpire(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    expire_generic(ctx, argv, "pexpire", true, false)
}

fn expireat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    expire_generic(ctx, argv, "expireat", false, true)
}

fn pexpireat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    expire_generic(ctx, argv, "pexpireat", false, false)
}

/// `ttlGenericCommand`: -2 for a missing key, -1 without TTL, else the (absolute or
/// remaining) time; TTL in seconds rounds to nearest.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], millis: bool, absolute: bool) -> Outcome {
    let Some(item) = ctx.store.get(ctx.db, key, ctx.now_ms) else {
        return Ok(Reply::Int(-2));
    };
    let Some(at) = item.expire_at_ms else {
        return Ok(Reply::Int(-1));
    };
    let ttl = if absolute { at } else { at - ctx.now_ms }.max(0);
    Ok(Reply::Int(if millis { ttl } else { (ttl + 500) / 1000 }))
}

fn ttl(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    ttl_generic(ctx, &argv[1], false, false)
}

fn pttl(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    ttl_generic(ctx, &argv[1], true, false)
}

fn expiretime(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    ttl_generic(ctx, &argv[1], false, true)
}

fn pexpiretime(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    ttl_generic(ctx, &argv[1], true, true)
}

fn persist(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let key = &argv[1];
    let has_ttl = ctx
        .store
        .get(ctx.db, key, ctx.now_ms)
        .is_some_and(|item| item.expire_at_ms.is_some());
    if !has_ttl {
        return Ok(Reply::Int(0));
    }
    ctx.store.set_expire(ctx.db, key, None, ctx.now_ms);
    ctx.changed(1);
    Ok(Reply::Int(1))
}

fn keys(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let pattern = &argv[1];
    let all = pattern.as_ref() == b"*";
    let now = ctx.now_ms;
    // Expired keys are skipped, not removed (as Redis's KEYS does).
    let found = ctx
        .store
        .db(ctx.db)
        .iter()
        .filter(|(key, item)| {
            item.expire_at_ms.is_none_or(|at| at > now) && (all || glob_match(pattern, key))
        })
        .map(|(key, _)| Reply::Bulk(key.clone()))
        .collect();
    Ok(Reply::Array(found))
}

fn scan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let cursor = scan::parse_cursor(&argv[1])?;
    let options = ScanOptions::parse(argv, 2, true)?;
    let page = ctx.store.scan(ctx.db, cursor, options.count, ctx.now_ms);
    let mut keys = Vec::with_capacity(page.keys.len());
    for key in page.keys {
        if !options.matches(&key) {
            continue;
        }
        if options.type_name.is_some() {
            let type_name = ctx
                .store
                .get(ctx.db, &key, ctx.now_ms)
                .map_or_else(|| "none".to_string(), |item| type_name(&item.value));
            if !options.type_matches(&type_name) {
                continue;
            }
        }
        keys.push(Reply::Bulk(key));
    }
    Ok(scan::reply(page.cursor, keys))
}

/// `renameGenericCommand`: the value and its TTL move to the new name, replacing it
/// (RENAME) or only if it is free (RENAMENX).
fn rename_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], nx: bool) -> Outcome {
    let (from, to) = (&argv[1], &argv[2]);
    if !ctx.store.contains(ctx.db, from, ctx.now_ms) {
        return Err(Reply::error(errors::NO_SUCH_KEY));
    }
    let done = if nx { Reply::Int(1) } else { Reply::Ok };
    if from == to {
        return Ok(if nx { Reply::Int(0) } else { done });
    }
    if ctx.store.contains(ctx.db, to, ctx.now_ms) {
        if nx {
            return Ok(Reply::Int(0));
        }
        ctx.store.remove(ctx.db, to);
    }
    if let Some(Item {
        value,
        expire_at_ms,
    }) = ctx.store.remove(ctx.db, from)
    {
        ctx.store.insert(ctx.db, own(to), value, expire_at_ms);
    }
    ctx.changed(1);
    Ok(done)
}

fn rename(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    rename_generic(ctx, argv, false)
}

fn renamenx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    rename_generic(ctx, argv, true)
}

fn randomkey(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> Outcome {
    let random = ctx.rng.next_u64();
    Ok(Reply::bulk_or_nil(
        ctx.store.random_key(ctx.db, random, ctx.now_ms),
    ))
}

/// DBSIZE counts keys whose TTL passed but were not removed yet, as Redis does.
fn dbsize(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> Outcome {
    Ok(Reply::Int(ctx.store.db(ctx.db).len() as i64))
}

/// `getFlushCommandFlags`: nothing, `SYNC` or `ASYNC` (the store frees at once either way).
fn check_flush_options(argv: &[Bytes]) -> Result<(), Reply> {
    match argv {
        [_] => Ok(()),
        [_, mode] if mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async") => {
            Ok(())
        }
        _ => Err(Reply::error(errors::SYNTAX)),
    }
}

fn flushdb(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    check_flush_options(argv)?;
    let removed = ctx.store.db(ctx.db).len();
    ctx.store.flush_db(ctx.db);
    ctx.changed(removed as u64);
    ctx.rewrite(vec![argv.to_vec()]);
    Ok(Reply::Ok)
}

fn flushall(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    check_flush_options(argv)?;
    let removed: usize = (0..ctx.store.databases())
        .map(|db| ctx.store.db(db).len())
        .sum();
    ctx.store.flush_all();
    ctx.changed(removed as u64);
    ctx.rewrite(vec![argv.to_vec()]);
    Ok(Reply::Ok)
}

/// A database index argument: an integer (Redis's `int` errors) naming an existing database.
fn db_index(ctx: &Ctx<'_>, arg: &[u8], message: Option<&'static str>) -> Result<usize, Reply> {
    let index = c_int_arg(arg, message)?;
    usize::try_from(index)
        .ok()
        .filter(|&db| db < ctx.store.databases())
        .ok_or_else(|| Reply::error(errors::DB_INDEX_OUT_OF_RANGE))
}

fn move_key(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let key = &argv[1];
    let target = db_index(ctx, &argv[2], None)?;
    if target == ctx.db {
        return Err(Reply::error(SAME_OBJECT));
    }
    if !ctx.store.contains(ctx.db, key, ctx.now_ms) || ctx.store.contains(target, key, ctx.now_ms) {
        return Ok(Reply::Int(0));
    }
    if let Some(Item {
        value,
        expire_at_ms,
    }) = ctx.store.remove(ctx.db, key)
    {
        ctx.store.insert(target, own(key), value, expire_at_ms);
    }
    ctx.changed(1);
    Ok(Reply::Int(1))
}

fn swapdb(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let first = c_int_arg(&argv[1], Some("ERR invalid first DB index"))?;
    let second = c_int_arg(&argv[2], Some("ERR invalid second DB index"))?;
    let databases = ctx.store.databases();
    let valid = |index: i32| usize::try_from(index).ok().filter(|&db| db < databases);
    let (Some(first), Some(second)) = (valid(first), valid(second)) else {
        return Err(Reply::error(errors::DB_INDEX_OUT_OF_RANGE));
    };
    ctx.store.swap_dbs(first, second);
    ctx.changed(1);
    Ok(Reply::Ok)
}

fn copy(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (from, to) = (&argv[1], &argv[2]);
    let mut target = ctx.db;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if argv[j].eq_ignore_ascii_case(b"db") && j + 1 < argv.len() {
            target = db_index(ctx, &argv[j + 1], None)?;
            j += 1;
        } else {
            return Err(Reply::error(errors::SYNTAX));
        }
        j += 1;
    }
    if target == ctx.db && from == to {
        return Err(Reply::error(SAME_OBJECT));
    }
    // Values are persistent collections: the copy is O(1) and later writes to either key
    // copy only what they touch.
    let Some(item) = ctx.store.get(ctx.db, from, ctx.now_ms).cloned() else {
        return Ok(Reply::Int(0));
    };
    if ctx.store.contains(target, to, ctx.now_ms) {
        if !replace {
            return Ok(Reply::Int(0));
        }
        ctx.store.remove(target, to);
    }
    ctx.store
        .insert(target, own(to), item.value, item.expire_at_ms);
    ctx.changed(1);
    Ok(Reply::Int(1))
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, bulks, err, propagated, sorted_bulks};
    use super::*;

    #[test]
    fn del_exists_type() {
        let mut h = Harness::new();
        h.run("SET a 1");
        h.run("RPUSH l x");
        h.run("HSET h f v");
        assert_eq!(h.reply("EXISTS a a l nokey"), Reply::Int(3));
        assert_eq!(h.reply("TOUCH a nokey"), Reply::Int(1));
        assert_eq!(h.reply("TYPE a"), Reply::Simple("string".into()));
        assert_eq!(h.reply("TYPE l"), Reply::Simple("list".into()));
        assert_eq!(h.reply("TYPE h"), Reply::Simple("hash".into()));
        assert_eq!(h.reply("TYPE nokey"), Reply::Simple("none".into()));
        let e = h.run("DEL a l nokey a");
        assert_eq!((e.reply, e.dirty), (Reply::Int(2), 2));
        assert_eq!(e.propagate, Propagate::Verbatim);
        let e = h.run("UNLINK nokey");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert_eq!(h.reply("UNLINK h"), Reply::Int(1));
        assert_eq!(h.reply("DBSIZE"), Reply::Int(0));
    }

    #[test]
    fn expire_family_replies_and_propagation() {
        let mut h = Harness::new();
        let now = h.now_ms;
        h.run("SET k v");
        assert_eq!(h.reply("EXPIRE nokey 10"), Reply::Int(0));
        let e = h.run("expire k 100");
        assert_eq!(e.reply, Reply::Int(1));
        assert_eq!(propagated(&e), [format!("PEXPIREAT k {}", now + 100_000)]);
        assert_eq!(h.reply("TTL k"), Reply::Int(100));
        assert_eq!(h.reply("PTTL k"), Reply::Int(100_000));
        assert_eq!(h.reply("EXPIRETIME k"), Reply::Int((now + 100_000) / 1000));
        assert_eq!(h.reply("PEXPIRETIME k"), Reply::Int(now + 100_000));
        let e = h.run("PEXPIRE k 5000 lt");
        assert_eq!(propagated(&e), [format!("PEXPIREAT k {} lt", now + 5000)]);
        let e = h.run("EXPIREAT k 2000000000");
        assert_eq!(propagated(&e), ["PEXPIREAT k 2000000000000"]);
        let e = h.run("pexpireat k 2000000000001");
        assert_eq!(
            e.propagate,
            Propagate::Verbatim,
            "already absolute milliseconds"
        );
        assert_eq!(h.reply("TTL nokey"), Reply::Int(-2));
        h.run("SET p v");
        assert_eq!(h.reply("TTL p"), Reply::Int(-1));
        assert_eq!(h.reply("PEXPIRETIME p"), Reply::Int(-1));
        // TTL rounds to the nearest second.
        h.run("PEXPIRE p 1499");
        assert_eq!(h.reply("TTL p"), Reply::Int(1));
        h.run("PEXPIRE p 1500");
        assert_eq!(h.reply("TTL p"), Reply::Int(2));
        let e = h.run("PERSIST p");
        assert_eq!((e.reply, e.propagate), (Reply::Int(1), Propagate::Verbatim));
        let e = h.run("PERSIST p");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert_eq!(h.reply("PERSIST nokey"), Reply::Int(0));
    }

    #[test]
    fn expire_in_the_past_deletes_and_propagates_del() {
        let mut h = Harness::new();
        h.run("SET k v");
        let e = h.run("EXPIRE k -1");
        assert_eq!(e.reply, Reply::Int(1));
        assert_eq!(propagated(&e), ["DEL k"]);
        assert_eq!(h.reply("EXISTS k"), Reply::Int(0));
        h.run("SET k v");
        let e = h.run("PEXPIREAT k 1");
        assert_eq!(propagated(&e), ["DEL k"]);
        h.run("SET k v");
        let now = h.now_ms;
        let e = h.run(&format!("PEXPIREAT k {now}"));
        assert_eq!(propagated(&e), ["DEL k"], "a time equal to now is past");
    }

    #[test]
    fn expire_conditions() {
        let mut h = Harness::new();
        h.run("SET k v");
        assert_eq!(h.reply("EXPIRE k 100 XX"), Reply::Int(0), "no TTL yet");
        assert_eq!(
            h.reply("EXPIRE k 100 GT"),
            Reply::Int(0),
            "no TTL is infinite"
        );
        assert_eq!(h.reply("EXPIRE k 100 LT"), Reply::Int(1));
        assert_eq!(h.reply("EXPIRE k 50 NX"), Reply::Int(0));
        assert_eq!(h.reply("EXPIRE k 200 LT"), Reply::Int(0));
        assert_eq!(h.reply("EXPIRE k 200 GT"), Reply::Int(1));
        assert_eq!(
            h.reply("EXPIRE k 200 GT"),
            Reply::Int(0),
            "equal is not greater"
        );
        assert_eq!(h.reply("EXPIRE k 300 XX gt"), Reply::Int(1));
        assert_eq!(h.reply("TTL k"), Reply::Int(300));
        for (line, error) in [
            (
                "EXPIRE k 1 NX XX",
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ),
            (
                "EXPIRE k 1 lt NX",
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ),
            (
                "EXPIRE k 1 GT LT",
                "ERR GT and LT options at the same time are not compatible",
            ),
            ("EXPIRE k 1 foo", "ERR Unsupported option foo"),
            ("EXPIRE k abc", errors::NOT_INTEGER),
            (
                "EXPIRE k 9223372036854775807",
                "ERR invalid expire time in 'expire' command",
            ),
            (
                "PEXPIRE k 9223372036854775807",
                "ERR invalid expire time in 'pexpire' command",
            ),
            (
                "EXPIREAT k -9223372036854775807",
                "ERR invalid expire time in 'expireat' command",
            ),
        ] {
            assert_eq!(h.reply(line), err(error), "{line}");
        }
        assert_eq!(
            h.reply("EXPIRE nokey 1 foo"),
            err("ERR Unsupported option foo")
        );
        assert_eq!(h.reply("TTL k"), Reply::Int(300));
    }

    #[test]
    fn keys_and_scan() {
        let mut h = Harness::new();
        for key in ["user:1", "user:2", "user:10", "order:1", "u"] {
            h.run(&format!("SET {key} v"));
        }
        h.run("RPUSH user:list a");
        h.run("SET gone v PX 10");
        h.now_ms += 10;
        assert_eq!(sorted_bulks(h.reply("KEYS user:?")), ["user:1", "user:2"]);
        assert_eq!(
            sorted_bulks(h.reply("KEYS *")),
            ["order:1", "u", "user:1", "user:10", "user:2", "user:list"]
        );
        assert_eq!(sorted_bulks(h.reply("KEYS u[^s]*")), Vec::<String>::new());
        assert_eq!(sorted_bulks(h.reply("KEYS user:1*")), ["user:1", "user:10"]);
        // The empty key: "*" finds it (a shortcut in Redis), "**" does not.
        let empty = [
            Bytes::from_static(b"SET"),
            Bytes::new(),
            Bytes::from_static(b"v"),
        ];
        h.run_argv(&empty);
        assert!(sorted_bulks(h.reply("KEYS *")).contains(&String::new()));
        assert!(!sorted_bulks(h.reply("KEYS **")).contains(&String::new()));
        h.run_argv(&[Bytes::from_static(b"DEL"), Bytes::new()]);

        // A full SCAN with a small COUNT returns every key exactly once.
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        loop {
            let Reply::Array(parts) = h.reply(&format!("SCAN {cursor} COUNT 2")) else {
                panic!("SCAN reply")
            };
            let Reply::Bulk(next) = &parts[0] else {
                panic!("cursor")
            };
            seen.extend(sorted_bulks(parts[1].clone()));
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            ["order:1", "u", "user:1", "user:10", "user:2", "user:list"]
        );

        let Reply::Array(parts) = h.reply("SCAN 0 MATCH user:* COUNT 100 TYPE LIST") else {
            panic!("SCAN reply")
        };
        assert_eq!(parts[0], Reply::bulk("0"));
        assert_eq!(parts[1], bulks(&["user:list"]));
        let Reply::Array(parts) = h.reply("SCAN 0 COUNT 100 TYPE nosuchtype") else {
            panic!("SCAN reply")
        };
        assert_eq!(parts[1], Reply::Array(vec![]));
        assert_eq!(h.reply("SCAN x"), err("ERR invalid cursor"));
        assert_eq!(h.reply("SCAN 0 COUNT 0"), err(errors::SYNTAX));
        assert_eq!(h.reply("SCAN 0 MATCH"), err(errors::SYNTAX));
    }

    #[test]
    fn rename_keeps_the_ttl() {
        let mut h = Harness::new();
        assert_eq!(h.reply("RENAME nokey x"), err(errors::NO_SUCH_KEY));
        assert_eq!(h.reply("RENAMENX nokey x"), err(errors::NO_SUCH_KEY));
        h.run("SET a 1");
        h.run("EXPIRE a 100");
        assert_eq!(h.reply("RENAME a a"), Reply::Ok);
        assert_eq!(h.reply("RENAMENX a a"), Reply::Int(0));
        let e = h.run("RENAME a b");
        assert_eq!((e.reply, e.propagate), (Reply::Ok, Propagate::Verbatim));
        assert_eq!(h.reply("EXISTS a"), Reply::Int(0));
        assert_eq!(h.reply("TTL b"), Reply::Int(100));
        h.run("RPUSH c x");
        assert_eq!(h.reply("RENAMENX b c"), Reply::Int(0));
        assert_eq!(h.reply("RENAME b c"), Reply::Ok);
        assert_eq!(h.reply("TYPE c"), Reply::Simple("string".into()));
        assert_eq!(h.reply("TTL c"), Reply::Int(100));
        assert_eq!(h.reply("RENAMENX c d"), Reply::Int(1));
    }

    #[test]
    fn randomkey_dbsize() {
        let mut h = Harness::new();
        assert_eq!(h.reply("RANDOMKEY"), Reply::Nil);
        h.run("SET a 1");
        h.run("SET b 1");
        for _ in 0..10 {
            let Reply::Bulk(key) = h.reply("RANDOMKEY") else {
                panic!("RANDOMKEY")
            };
            assert!(key.as_ref() == b"a" || key.as_ref() == b"b");
        }
        assert_eq!(h.reply("DBSIZE"), Reply::Int(2));
    }

    #[test]
    fn flush_always_propagates() {
        let mut h = Harness::new();
        let e = h.run("FLUSHDB");
        assert_eq!(propagated(&e), ["FLUSHDB"]);
        assert_eq!((e.reply, e.dirty), (Reply::Ok, 0));
        h.run("SET a 1");
        h.db = 1;
        h.run("SET b 1");
        h.run("SET c 1");
        let e = h.run("flushdb async");
        assert_eq!(
            (e.dirty, propagated(&e)),
            (2, vec!["flushdb async".to_string()])
        );
        h.db = 0;
        assert_eq!(h.reply("DBSIZE"), Reply::Int(1));
        h.db = 1;
        h.run("SET b 1");
        let e = h.run("FLUSHALL SYNC");
        assert_eq!(e.dirty, 2);
        assert_eq!(h.reply("DBSIZE"), Reply::Int(0));
        h.db = 0;
        assert_eq!(h.reply("DBSIZE"), Reply::Int(0));
        assert_eq!(h.reply("FLUSHDB foo"), err(errors::SYNTAX));
        assert_eq!(h.reply("FLUSHALL SYNC x"), err(errors::SYNTAX));
    }

    #[test]
    fn move_swapdb_copy() {
        let mut h = Harness::new();
        h.run("SET a 1");
        h.run("EXPIRE a 100");
        assert_eq!(h.reply("MOVE a 0"), err(SAME_OBJECT));
        assert_eq!(h.reply("MOVE a 16"), err(errors::DB_INDEX_OUT_OF_RANGE));
        assert_eq!(h.reply("MOVE a -1"), err(errors::DB_INDEX_OUT_OF_RANGE));
        assert_eq!(
            h.reply("MOVE a 3000000000"),
            err("ERR value is out of range, value must between -2147483648 and 2147483647")
        );
        assert_eq!(h.reply("MOVE a x"), err(errors::NOT_INTEGER));
        assert_eq!(h.reply("MOVE nokey 1"), Reply::Int(0));
        let e = h.run("MOVE a 1");
        assert_eq!((e.reply, e.propagate), (Reply::Int(1), Propagate::Verbatim));
        assert_eq!(h.reply("EXISTS a"), Reply::Int(0));
        h.run("SET a 2");
        h.db = 1;
        assert_eq!(h.reply("TTL a"), Reply::Int(100));
        assert_eq!(
            h.reply("MOVE a 0"),
            Reply::Int(0),
            "the target already has it"
        );

        assert_eq!(h.reply("SWAPDB x 1"), err("ERR invalid first DB index"));
        assert_eq!(h.reply("SWAPDB 1 x"), err("ERR invalid second DB index"));
        assert_eq!(h.reply("SWAPDB 0 16"), err(errors::DB_INDEX_OUT_OF_RANGE));
        let e = h.run("SWAPDB 0 1");
        assert_eq!((e.reply, e.dirty), (Reply::Ok, 1));
        assert_eq!(
            h.reply("GET a"),
            Reply::bulk("2"),
            "db 1 now holds db 0's data"
        );

        assert_eq!(h.reply("COPY a a"), err(SAME_OBJECT));
        assert_eq!(
            h.reply("COPY a b DB 99"),
            err(errors::DB_INDEX_OUT_OF_RANGE)
        );
        assert_eq!(h.reply("COPY a b foo"), err(errors::SYNTAX));
        assert_eq!(h.reply("COPY a b DB"), err(errors::SYNTAX));
        assert_eq!(h.reply("COPY nokey b"), Reply::Int(0));
        h.run("RPUSH list x y");
        h.run("PEXPIRE list 5000");
        assert_eq!(h.reply("COPY list list2"), Reply::Int(1));
        assert_eq!(h.reply("COPY list list2"), Reply::Int(0));
        h.run("RPUSH list2 z");
        assert_eq!(
            h.reply("LLEN list"),
            Reply::Int(2),
            "the copy is independent"
        );
        assert_eq!(h.reply("PTTL list2"), Reply::Int(5000));
        assert_eq!(h.reply("COPY list list2 REPLACE"), Reply::Int(1));
        assert_eq!(h.reply("LLEN list2"), Reply::Int(2));
        assert_eq!(h.reply("COPY list list DB 0"), Reply::Int(1));
        h.db = 0;
        assert_eq!(h.reply("LRANGE list 0 -1"), bulks(&["x", "y"]));
    }
}
