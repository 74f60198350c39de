//! Hash commands (Redis src/t_hash.c).
//!
//! `HINCRBYFLOAT` propagates as `HSET key field <result>` so replicas store the same text;
//! every other hash command propagates as received. Removing the last field deletes the key.
//!
//! Fields loaded with a Redis 7.4 field TTL keep it as loaded, but Redis 7.0 semantics apply:
//! such a TTL is not enforced, and writing a field clears it.

use bytes::Bytes;

use super::access::{Fields, get_hash, get_hash_mut, wrongtype};
use super::args::int_arg;
use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::longdouble::LongDouble;
use super::scan::{self, ScanOptions};
use super::{CommandSpec, Ctx, errors, random, wrong_arity};
use crate::resp::Reply;
use crate::store::{HashValue, Item, Value, own};

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hset),
    command!("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hsetnx),
    command!("hget", 3, READONLY | FAST, (1, 1, 1), hget),
    command!("hmget", -3, READONLY | FAST, (1, 1, 1), hmget),
    command!("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hmset),
    command!("hdel", -3, WRITE | FAST, (1, 1, 1), hdel),
    command!("hgetall", 2, READONLY, (1, 1, 1), hgetall),
    command!("hkeys", 2, READONLY, (1, 1, 1), hkeys),
    command!("hvals", 2, READONLY, (1, 1, 1), hvals),
    command!("hlen", 2, READONLY | FAST, (1, 1, 1), hlen),
    command!("hexists", 3, READONLY | FAST, (1, 1, 1), hexists),
    command!("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hincrby),
    command!(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        hincrbyfloat
    ),
    command!("hstrlen", 3, READONLY | FAST, (1, 1, 1), hstrlen),
    command!("hscan", -3, READONLY, (1, 1, 1), hscan),
    command!("hrandfield", -2, READONLY, (1, 1, 1), hrandfield),
];

type Outcome = Result<Reply, Reply>;

/// The hash at `key` for modification, created empty when absent
/// (`hashTypeLookupWriteOrCreate`). The caller must add a field before returning, so no
/// empty hash stays in the keyspace.
fn hash_for_write<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<&'a mut Fields, Reply> {
    if get_hash(ctx, key)?.is_none() {
        ctx.store
            .insert(ctx.db, own(key), Value::Hash(Fields::default()), None);
    }
    get_hash_mut(ctx.store, ctx.db, key, ctx.now_ms)?.ok_or_else(wrongtype)
}

fn field_value(value: &[u8]) -> HashValue {
    HashValue {
        value: own(value),
        expire_at_ms: None,
    }
}

fn hset_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], name: &str) -> Result<i64, Reply> {
    if argv.len() % 2 == 1 {
        return Err(wrong_arity(name));
    }
    let fields = hash_for_write(ctx, &argv[1])?;
    let mut created = 0;
    for pair in argv[2..].chunks_exact(2) {
        if fields
            .insert(own(&pair[0]), field_value(&pair[1]))
            .is_none()
        {
            created += 1;
        }
    }
    ctx.changed((argv.len() as u64 - 2) / 2);
    Ok(created)
}

fn hset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    hset_generic(ctx, argv, "hset").map(Reply::Int)
}

fn hmset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    hset_generic(ctx, argv, "hmset").map(|_| Reply::Ok)
}

fn hsetnx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    if get_hash(ctx, &argv[1])?.is_some_and(|fields| fields.contains_key(&argv[2])) {
        return Ok(Reply::Int(0));
    }
    hash_for_write(ctx, &argv[1])?.insert(own(&argv[2]), field_value(&argv[3]));
    ctx.changed(1);
    Ok(Reply::Int(1))
}

fn hget(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let value = get_hash(ctx, &argv[1])?
        .and_then(|fields| fields.get(&argv[2]))
        .map(|v| v.value.clone());
    Ok(Reply::bulk_or_nil(value))
}

fn hmget(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let fields = get_hash(ctx, &argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|field| {
                Reply::bulk_or_nil(fields.and_then(|f| f.get(field)).map(|v| v.value.clone()))
            })
            .collect(),
    ))
}

fn hdel(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let key = &argv[1];
    if get_hash(ctx, key)?.is_none() {
        return Ok(Reply::Int(0));
    }
    let mut deleted = 0;
    let mut now_empty = false;
    if let Some(Item {
        value: Value::Hash(fields),
        ..
    }) = ctx.store.get_mut(ctx.db, key, ctx.now_ms)
    {
        for field in &argv[2..] {
            if fields.remove(field).is_some() {
                deleted += 1;
            }
        }
        now_empty = fields.is_empty();
    }
    if now_empty {
        ctx.store.remove(ctx.db, key);
    }
    ctx.changed(deleted);
    Ok(Reply::Int(deleted as i64))
}

fn hgetall(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let pairs = get_hash(ctx, &argv[1])?.map_or_else(Vec::new, |fields| {
        fields
            .iter()
            .map(|(field, v)| (Reply::Bulk(field.clone()), Reply::Bulk(v.value.clone())))
            .collect()
    });
    Ok(Reply::Map(pairs))
}

fn hkeys(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let keys = get_hash(ctx, &argv[1])?.map_or_else(Vec::new, |fields| {
        fields.keys().map(|f| Reply::Bulk(f.clone())).collect()
    });
    Ok(Reply::Array(keys))
}

fn hvals(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let values = get_hash(ctx, &argv[1])?.map_or_else(Vec::new, |fields| {
        fields
            .values()
            .map(|v| Reply::Bulk(v.value.clone()))
            .collect()
    });
    Ok(Reply::Array(values))
}

fn hlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    Ok(Reply::Int(
        get_hash(ctx, &argv[1])?.map_or(0, |fields| fields.len() as i64),
    ))
}

fn hexists(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let found = get_hash(ctx, &argv[1])?.is_some_and(|fields| fields.contains_key(&argv[2]));
    Ok(Reply::Int(i64::from(found)))
}

fn hstrlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let len = get_hash(ctx, &argv[1])?
        .and_then(|fields| fields.get(&argv[2]))
        .map_or(0, |v| v.value.len() as i64);
    Ok(Reply::Int(len))
}

/// The current text of `field`, for the increment commands (`None` when absent).
fn current_text(ctx: &mut Ctx<'_>, key: &[u8], field: &[u8]) -> Result<Option<Bytes>, Reply> {
    Ok(get_hash(ctx, key)?
        .and_then(|fields| fields.get(field))
        .map(|v| v.value.clone()))
}

fn hincrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (key, field) = (&argv[1], &argv[2]);
    let by = int_arg(&argv[3])?;
    let current = match current_text(ctx, key, field)? {
        None => 0,
        Some(text) => super::parse_i64(&text)
            .ok_or_else(|| Reply::error("ERR hash value is not an integer"))?,
    };
    let value = current
        .checked_add(by)
        .ok_or_else(|| Reply::error(errors::OVERFLOW))?;
    hash_for_write(ctx, key)?.insert(own(field), field_value(value.to_string().as_bytes()));
    ctx.changed(1);
    Ok(Reply::Int(value))
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (key, field) = (&argv[1], &argv[2]);
    let increment = LongDouble::parse(&argv[3]).ok_or_else(|| Reply::error(errors::NOT_FLOAT))?;
    if matches!(increment, LongDouble::Infinite { .. }) {
        return Err(Reply::error("ERR value is NaN or Infinity"));
    }
    let current = match current_text(ctx, key, field)? {
        None => LongDouble::parse(b"0"),
        Some(text) => LongDouble::parse(&text),
    }
    .ok_or_else(|| Reply::error("ERR hash value is not a float"))?;
    let sum = current
        .checked_add(increment)
        .ok_or_else(|| Reply::error("ERR increment would produce NaN or Infinity"))?;
    let text = Bytes::from(sum.to_human_string());
    hash_for_write(ctx, key)?.insert(
        own(field),
        HashValue {
            value: text.clone(),
            expire_at_ms: None,
        },
    );
    ctx.changed(1);
    ctx.rewrite(vec![vec![
        Bytes::from_static(b"HSET"),
        key.clone(),
        field.clone(),
        text.clone(),
    ]]);
    Ok(Reply::Bulk(text))
}

/// Redis 7.0 keeps a hash of at most 128 fields, with fields and values of at most 64 bytes,
/// as a listpack (`hash-max-listpack-entries`/`-value`): scanned in one page.
fn is_listpack_sized(fields: &Fields) -> bool {
    fields.len() <= 128
        && fields
            .iter()
            .all(|(field, v)| field.len() <= 64 && v.value.len() <= 64)
}

fn hscan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let cursor = scan::parse_cursor(&argv[2])?;
    let Some(fields) = get_hash(ctx, &argv[1])? else {
        return Ok(scan::reply(0, Vec::new()));
    };
    let fields = fields.clone();
    let options = ScanOptions::parse(argv, 3, false)?;
    let all = fields
        .iter()
        .map(|(field, v)| (field.clone(), v.value.clone()))
        .collect();
    let (page, next) = scan::collection_page(all, cursor, &options, is_listpack_sized(&fields));
    let mut items = Vec::with_capacity(page.len() * 2);
    for (field, value) in page {
        items.push(Reply::Bulk(field));
        items.push(Reply::Bulk(value));
    }
    Ok(scan::reply(next, items))
}

/// `HRANDFIELD key [count [WITHVALUES]]`: without a count, one random field (nil for a
/// missing key); with one, fields picked as `SRANDMEMBER` picks members (see
/// [`random::sample`]), with their values as pairs (flat in RESP2, two-element arrays in
/// RESP3).
fn hrandfield(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    if argv.len() == 2 {
        let Some(fields) = get_hash(ctx, &argv[1])?.cloned() else {
            return Ok(Reply::Nil);
        };
        let index = ctx.rng.below(fields.len() as u64) as usize;
        return Ok(Reply::bulk_or_nil(fields.keys().nth(index).cloned()));
    }
    let (requested, with_values) = random::count_and_flag(argv, b"withvalues")?;
    let Some(fields) = get_hash(ctx, &argv[1])?.cloned() else {
        return Ok(Reply::Array(Vec::new()));
    };
    let all = fields
        .iter()
        .map(|(field, v)| (field.clone(), v.value.clone()))
        .collect();
    let picked = random::sample(all, requested, ctx.rng)?;
    Ok(if with_values {
        Reply::Pairs(
            picked
                .into_iter()
                .map(|(field, value)| (Reply::Bulk(field), Reply::Bulk(value)))
                .collect(),
        )
    } else {
        Reply::Array(
            picked
                .into_iter()
                .map(|(field, _)| Reply::Bulk(field))
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, err, sorted_bulks};
    use super::*;

    #[test]
    fn set_get_delete() {
        let mut h = Harness::new();
        let e = h.run("HSET h a 1 b 2");
        assert_eq!((e.reply, e.dirty), (Reply::Int(2), 2));
        assert_eq!(h.reply("HSET h a 10 c 3"), Reply::Int(1));
        assert_eq!(h.reply("HMSET h d 4"), Reply::Ok);
        assert_eq!(
            h.reply("HSET h a"),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            h.reply("HMSET h a 1 b"),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        assert_eq!(h.reply("HGET h a"), Reply::bulk("10"));
        assert_eq!(h.reply("HGET h zz"), Reply::Nil);
        assert_eq!(h.reply("HGET nokey a"), Reply::Nil);
        assert_eq!(
            h.reply("HMGET h a zz"),
            Reply::Array(vec![Reply::bulk("10"), Reply::Nil])
        );
        assert_eq!(
            h.reply("HMGET nokey a b"),
            Reply::Array(vec![Reply::Nil, Reply::Nil])
        );
        assert_eq!(h.reply("HLEN h"), Reply::Int(4));
        assert_eq!(h.reply("HEXISTS h a"), Reply::Int(1));
        assert_eq!(h.reply("HEXISTS h zz"), Reply::Int(0));
        assert_eq!(h.reply("HSTRLEN h a"), Reply::Int(2));
        assert_eq!(h.reply("HSTRLEN h zz"), Reply::Int(0));
        assert_eq!(h.reply("HSETNX h a x"), Reply::Int(0));
        assert_eq!(h.reply("HSETNX h e 5"), Reply::Int(1));
        assert_eq!(h.reply("HSETNX new f v"), Reply::Int(1));
        assert_eq!(sorted_bulks(h.reply("HKEYS h")), ["a", "b", "c", "d", "e"]);
        assert_eq!(sorted_bulks(h.reply("HVALS h")), ["10", "2", "3", "4", "5"]);
        let Reply::Map(pairs) = h.reply("HGETALL new") else {
            panic!("HGETALL is a map")
        };
        assert_eq!(pairs, vec![(Reply::bulk("f"), Reply::bulk("v"))]);
        assert_eq!(h.reply("HGETALL nokey"), Reply::Map(vec![]));
        assert_eq!(h.reply("HKEYS nokey"), Reply::Array(vec![]));
        let e = h.run("HDEL h a zz b");
        assert_eq!((e.reply, e.dirty), (Reply::Int(2), 2));
        let e = h.run("HDEL h zz");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert_eq!(h.reply("HDEL nokey a"), Reply::Int(0));
        assert_eq!(h.reply("HDEL h c d e"), Reply::Int(3));
        assert_eq!(
            h.reply("EXISTS h"),
            Reply::Int(0),
            "the last HDEL deletes the key"
        );
        h.run("SET s v");
        for line in [
            "HSET s a 1",
            "HGET s a",
            "HMGET s a",
            "HDEL s a",
            "HGETALL s",
            "HLEN s",
        ] {
            assert_eq!(h.reply(line), err(errors::WRONGTYPE), "{line}");
        }
    }

    #[test]
    fn increments() {
        let mut h = Harness::new();
        assert_eq!(h.reply("HINCRBY h n 5"), Reply::Int(5));
        assert_eq!(h.reply("HINCRBY h n -7"), Reply::Int(-2));
        h.run("HSET h s abc");
        assert_eq!(
            h.reply("HINCRBY h s 1"),
            err("ERR hash value is not an integer")
        );
        assert_eq!(h.reply("HINCRBY h n x"), err(errors::NOT_INTEGER));
        h.run("HSET h big 9223372036854775807");
        assert_eq!(h.reply("HINCRBY h big 1"), err(errors::OVERFLOW));
        h.run("HSET h f 10");
        let e = h.run("HINCRBYFLOAT h f 0.1");
        assert_eq!(e.reply, Reply::bulk("10.1"));
        assert_eq!(
            e.propagate,
            Propagate::Commands(vec![vec![
                Bytes::from_static(b"HSET"),
                Bytes::from_static(b"h"),
                Bytes::from_static(b"f"),
                Bytes::from_static(b"10.1"),
            ]])
        );
        assert_eq!(h.reply("HINCRBYFLOAT h fresh 2.5e3"), Reply::bulk("2500"));
        assert_eq!(
            h.reply("HINCRBYFLOAT h s 1"),
            err("ERR hash value is not a float")
        );
        assert_eq!(h.reply("HINCRBYFLOAT h f x"), err(errors::NOT_FLOAT));
        assert_eq!(
            h.reply("HINCRBYFLOAT h f inf"),
            err("ERR value is NaN or Infinity")
        );
        h.run("HSET h huge 1.1e4932");
        assert_eq!(
            h.reply("HINCRBYFLOAT h huge 1e4932"),
            err("ERR increment would produce NaN or Infinity")
        );
        h.run("SET str v");
        assert_eq!(h.reply("HINCRBY str f 1"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("HINCRBYFLOAT str f 1"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("HINCRBY nokey2 f x"), err(errors::NOT_INTEGER));
        assert_eq!(
            h.reply("EXISTS nokey2"),
            Reply::Int(0),
            "no empty hash left behind"
        );
    }

    #[test]
    fn hscan_of_a_listpack_sized_hash_is_one_page() {
        let mut h = Harness::new();
        h.run("HSET h a1 1 a2 2 b1 3");
        let Reply::Array(parts) = h.reply("HSCAN h 0 MATCH a* COUNT 1") else {
            panic!("HSCAN reply")
        };
        assert_eq!(parts[0], Reply::bulk("0"));
        let Reply::Array(items) = &parts[1] else {
            panic!("items")
        };
        let mut pairs: Vec<(Reply, Reply)> = items
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        pairs.sort_by_key(|(field, _)| format!("{field:?}"));
        assert_eq!(
            pairs,
            vec![
                (Reply::bulk("a1"), Reply::bulk("1")),
                (Reply::bulk("a2"), Reply::bulk("2"))
            ]
        );
        assert_eq!(
            h.reply("HSCAN nokey 0 badoption"),
            Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]),
            "a missing key answers before options are checked"
        );
        assert_eq!(h.reply("HSCAN h x"), err("ERR invalid cursor"));
        assert_eq!(h.reply("HSCAN h 0 COUNT 0"), err(errors::SYNTAX));
        assert_eq!(h.reply("HSCAN h 0 TYPE string"), err(errors::SYNTAX));
        h.run("SET s v");
        assert_eq!(h.reply("HSCAN s 0"), err(errors::WRONGTYPE));
    }

    /// Every field of `key` through HSCAN with `tail` options, and how many calls it took.
    fn hscan_all(h: &mut Harness, key: &str, tail: &str) -> (Vec<(Bytes, Bytes)>, usize) {
        let (mut cursor, mut all, mut calls) = ("0".to_string(), Vec::new(), 0);
        loop {
            let Reply::Array(parts) = h.reply(&format!("HSCAN {key} {cursor} {tail}")) else {
                panic!("HSCAN reply")
            };
            calls += 1;
            let [Reply::Bulk(next), Reply::Array(items)] = &parts[..] else {
                panic!("{parts:?}")
            };
            for pair in items.chunks(2) {
                let [Reply::Bulk(field), Reply::Bulk(value)] = pair else {
                    panic!("{pair:?}")
                };
                all.push((field.clone(), value.clone()));
            }
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
        }
        all.sort();
        (all, calls)
    }

    #[test]
    fn hscan_pages_a_large_hash() {
        let mut h = Harness::new();
        let pairs: Vec<String> = (0..300).map(|i| format!("f{i} v{i}")).collect();
        h.run(&format!("HSET big {}", pairs.join(" ")));
        let (all, calls) = hscan_all(&mut h, "big", "COUNT 10");
        let mut expected: Vec<(Bytes, Bytes)> = (0..300)
            .map(|i| (Bytes::from(format!("f{i}")), Bytes::from(format!("v{i}"))))
            .collect();
        expected.sort();
        assert_eq!(all, expected, "every field once, with its value");
        assert!(calls >= 10, "paged: {calls}");
        let (matched, _) = hscan_all(&mut h, "big", "MATCH f1? COUNT 5");
        assert_eq!(matched.len(), 10);
        // A value over 64 bytes makes even a small hash a hash table (paged).
        h.run(&format!("HSET long a 1 b 2 c {}", "x".repeat(65)));
        let (all, calls) = hscan_all(&mut h, "long", "COUNT 1");
        assert_eq!((all.len(), calls), (3, 3));
    }

    #[test]
    fn hrandfield_counts_and_shapes_follow_redis() {
        let mut h = Harness::new();
        h.run("HSET h a 1 b 2 c 3");
        let e = h.run("HRANDFIELD h");
        assert!(matches!(e.reply, Reply::Bulk(_)), "{:?}", e.reply);
        assert_eq!(e.propagate, Propagate::Nothing);
        assert_eq!(h.reply("HRANDFIELD nokey"), Reply::Nil);
        assert_eq!(h.reply("HRANDFIELD nokey 2"), Reply::Array(vec![]));
        assert_eq!(
            h.reply("HRANDFIELD nokey -2 WITHVALUES"),
            Reply::Array(vec![])
        );
        assert_eq!(h.reply("HRANDFIELD h 0"), Reply::Array(vec![]));
        let distinct = sorted_bulks(h.reply("HRANDFIELD h 2"));
        assert_eq!(distinct.len(), 2);
        assert_ne!(distinct[0], distinct[1]);
        assert_eq!(sorted_bulks(h.reply("HRANDFIELD h 10")), ["a", "b", "c"]);
        let repeated = sorted_bulks(h.reply("HRANDFIELD h -50"));
        assert_eq!(repeated.len(), 50);
        let Reply::Pairs(pairs) = h.reply("HRANDFIELD h -20 withvalues") else {
            panic!("pairs")
        };
        assert_eq!(pairs.len(), 20);
        for (field, value) in &pairs {
            let expected = match field {
                Reply::Bulk(f) if f.as_ref() == b"a" => "1",
                Reply::Bulk(f) if f.as_ref() == b"b" => "2",
                _ => "3",
            };
            assert_eq!(value, &Reply::bulk(expected));
        }
        let Reply::Pairs(all) = h.reply("HRANDFIELD h 5 WITHVALUES") else {
            panic!("pairs")
        };
        assert_eq!(all.len(), 3);
        // One pair, flat in RESP2 and nested in RESP3, as Redis sends it.
        h.run("HSET one f v");
        let reply = h.reply("HRANDFIELD one 1 WITHVALUES");
        let (mut resp2, mut resp3) = (Vec::new(), Vec::new());
        reply.encode(&mut resp2, false);
        reply.encode(&mut resp3, true);
        assert_eq!(resp2, b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
        assert_eq!(resp3, b"*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
        for (line, error) in [
            ("HRANDFIELD h 2 foo", errors::SYNTAX),
            ("HRANDFIELD h 2 withvalues x", errors::SYNTAX),
            ("HRANDFIELD h x", errors::NOT_INTEGER),
            ("HRANDFIELD nokey x", errors::NOT_INTEGER),
            (
                "HRANDFIELD h -9223372036854775808",
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ),
            (
                "HRANDFIELD h -9223372036854775807 withvalues",
                "ERR value is out of range",
            ),
            (
                "HRANDFIELD h 4611686018427387904 withvalues",
                "ERR value is out of range",
            ),
            ("HRANDFIELD h -100000000000", "ERR value is out of range"),
        ] {
            assert_eq!(h.reply(line), err(error), "{line}");
        }
        h.run("SET s v");
        assert_eq!(h.reply("HRANDFIELD s"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("HRANDFIELD s 2"), err(errors::WRONGTYPE));
    }
}
