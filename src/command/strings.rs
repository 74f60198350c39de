//! String commands (Redis src/t_string.c).
//!
//! Propagation follows Redis 7.0: `SET … EX/PX/EXAT/PXAT`, `SETEX` and `PSETEX` travel as
//! `SET key value PXAT <ms>`; `SET … GET` without an expiry loses its `GET`s; `GETSET` becomes
//! `SET`; `GETDEL` becomes `DEL`; `GETEX` becomes `PEXPIREAT`, `PERSIST` or `DEL`;
//! `INCRBYFLOAT` becomes `SET key <result> KEEPTTL`.

use bytes::{Bytes, BytesMut};

use super::access::{get_string, get_string_mut};
use super::args::{int_arg, parse_i64};
use super::flags::{DENYOOM, FAST, READONLY, WRITE};
use super::longdouble::LongDouble;
use super::{CommandSpec, Ctx, errors, wrong_arity};
use crate::resp::Reply;
use crate::store::{Item, Value, own};

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("get", 2, READONLY | FAST, (1, 1, 1), get),
    command!("set", -3, WRITE | DENYOOM, (1, 1, 1), set),
    command!("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), setnx),
    command!("setex", 4, WRITE | DENYOOM, (1, 1, 1), setex),
    command!("psetex", 4, WRITE | DENYOOM, (1, 1, 1), psetex),
    command!("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), getset),
    command!("getdel", 2, WRITE | FAST, (1, 1, 1), getdel),
    command!("getex", -2, WRITE | FAST, (1, 1, 1), getex),
    command!("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), append),
    command!("strlen", 2, READONLY | FAST, (1, 1, 1), strlen),
    command!("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), incr),
    command!("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), decr),
    command!("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), incrby),
    command!("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), decrby),
    command!(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        incrbyfloat
    ),
    command!("mget", -2, READONLY | FAST, (1, -1, 1), mget),
    command!("mset", -3, WRITE | DENYOOM, (1, -1, 2), mset),
    command!("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), msetnx),
    command!("setrange", 4, WRITE | DENYOOM, (1, 1, 1), setrange),
    command!("getrange", 4, READONLY, (1, 1, 1), getrange),
    command!("substr", 4, READONLY, (1, 1, 1), getrange),
];

type Outcome = Result<Reply, Reply>;

/// Redis's default `proto-max-bulk-len`: no string may grow beyond it.
const MAX_STRING_LEN: u64 = 512 * 1024 * 1024;

fn invalid_expire(command: &str) -> Reply {
    Reply::error(errors::INVALID_EXPIRE.replace("{}", command))
}

/// The TTL of a live key (`None` when the key is absent or persistent).
fn expire_of(ctx: &mut Ctx<'_>, key: &[u8]) -> Option<i64> {
    ctx.store
        .get(ctx.db, key, ctx.now_ms)
        .and_then(|item| item.expire_at_ms)
}

/// Fails with Redis's error when a string of `len` bytes would exceed the maximum size.
fn check_length(len: u64) -> Result<(), Reply> {
    if len > MAX_STRING_LEN {
        return Err(Reply::error(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

/// A uniquely owned, growable copy-or-reuse of `bytes`: the buffer itself when nothing else
/// (a snapshot, a reply) holds it, so repeated `APPEND`s grow it in amortised O(1).
fn take_mut(bytes: &mut Bytes) -> BytesMut {
    match std::mem::take(bytes).try_into_mut() {
        Ok(unique) => unique,
        Err(shared) => BytesMut::from(&shared[..]),
    }
}

fn get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    Ok(Reply::bulk_or_nil(get_string(ctx, &argv[1])?.cloned()))
}

/// Options of SET and GETEX (Redis's `OBJ_*` flags).
mod opt {
    pub const NX: u32 = 1 << 0;
    pub const XX: u32 = 1 << 1;
    pub const EX: u32 = 1 << 2;
    pub const PX: u32 = 1 << 3;
    pub const KEEPTTL: u32 = 1 << 4;
    pub const GET: u32 = 1 << 5;
    pub const EXAT: u32 = 1 << 6;
    pub const PXAT: u32 = 1 << 7;
    pub const PERSIST: u32 = 1 << 8;
    pub const ANY_EXPIRE: u32 = EX | PX | EXAT | PXAT;
}

/// Which command's options are parsed: SET takes NX/XX/GET/KEEPTTL, GETEX takes PERSIST.
#[derive(Clone, Copy, PartialEq)]
enum OptionsOf {
    Set,
    GetEx,
}

/// `parseExtendedStringArgumentsOrReply`: the flags and the expiry argument, with Redis's
/// rule that an option conflicting with one already seen is a syntax error.
fn parse_string_options(argv: &[Bytes], of: OptionsOf) -> Result<(u32, Option<&Bytes>), Reply> {
    use opt::*;
    let mut flags = 0u32;
    let mut expire = None;
    let mut j = if of == OptionsOf::Set { 3 } else { 2 };
    while j < argv.len() {
        let option = &argv[j];
        let next = argv.get(j + 1);
        let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
        let set = of == OptionsOf::Set;
        if is("nx") && flags & XX == 0 && set {
            flags |= NX;
        } else if is("xx") && flags & NX == 0 && set {
            flags |= XX;
        } else if is("get") && set {
            flags |= GET;
        } else if is("keepttl") && flags & (PERSIST | ANY_EXPIRE) == 0 && set {
            flags |= KEEPTTL;
        } else if is("persist") && !set && flags & (ANY_EXPIRE | KEEPTTL) == 0 {
            flags |= PERSIST;
        } else if let Some(unit) = [("ex", EX), ("px", PX), ("exat", EXAT), ("pxat", PXAT)]
            .into_iter()
            .find(|(name, _)| is(name))
            .map(|(_, unit)| unit)
            && flags & (KEEPTTL | PERSIST | (ANY_EXPIRE & !unit)) == 0
            && next.is_some()
        {
            flags |= unit;
            expire = next;
            j += 1;
        } else {
            return Err(Reply::error(errors::SYNTAX));
        }
        j += 1;
    }
    Ok((flags, expire))
}

/// `getExpireMillisecondsOrReply`: the absolute expiry in milliseconds of an EX/PX/EXAT/PXAT
/// argument; it must be positive and must not overflow.
fn expire_at_ms(arg: &[u8], flags: u32, now_ms: i64, command: &str) -> Result<i64, Reply> {
    let value = int_arg(arg)?;
    let seconds = flags & (opt::EX | opt::EXAT) != 0;
    if value <= 0 || (seconds && value > i64::MAX / 1000) {
        return Err(invalid_expire(command));
    }
    let mut ms = if seconds { value * 1000 } else { value };
    if flags & (opt::EX | opt::PX) != 0 {
        ms = ms
            .checked_add(now_ms)
            .ok_or_else(|| invalid_expire(command))?;
    }
    Ok(ms)
}

/// `setGenericCommand`. `expire` is the raw expiry argument (already matched to `flags`).
/// Returns the reply, or `None` when the NX/XX condition stopped the write.
fn set_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    command: &str,
    flags: u32,
    key: &Bytes,
    value: &Bytes,
    expire: Option<&Bytes>,
) -> Result<Option<Reply>, Reply> {
    let expire_at = match expire {
        Some(arg) => Some(expire_at_ms(arg, flags, ctx.now_ms, command)?),
        None => None,
    };
    let old = if flags & opt::GET != 0 {
        Some(Reply::bulk_or_nil(get_string(ctx, key)?.cloned()))
    } else {
        None
    };
    if flags & (opt::NX | opt::XX) != 0 {
        let found = ctx.store.contains(ctx.db, key, ctx.now_ms);
        if (flags & opt::NX != 0 && found) || (flags & opt::XX != 0 && !found) {
            return Ok(old);
        }
    } else {
        // Only the lazy expiry of an old value matters (it propagates a `DEL` first, as
        // Redis's `lookupKeyWrite` does): one map descent fewer for a plain SET.
        ctx.store.expire_if_due(ctx.db, key, ctx.now_ms);
    }
    let ttl = match expire_at {
        Some(at) => Some(at),
        None if flags & opt::KEEPTTL != 0 => expire_of(ctx, key),
        None => None,
    };
    ctx.store
        .insert_copied(ctx.db, key, Value::String(own(value)), ttl);
    ctx.changed(1);
    if let Some(at) = expire_at {
        ctx.rewrite(vec![vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            value.clone(),
            Bytes::from_static(b"PXAT"),
            Bytes::from(at.to_string()),
        ]]);
    } else if flags & opt::GET != 0 {
        // Replicas must not see GET (it would only add a reply).
        let without_get = argv
            .iter()
            .enumerate()
            .filter(|(i, arg)| *i < 3 || !arg.eq_ignore_ascii_case(b"get"))
            .map(|(_, arg)| arg.clone())
            .collect();
        ctx.rewrite(vec![without_get]);
    }
    Ok(Some(old.unwrap_or(Reply::Ok)))
}

fn set(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (flags, expire) = parse_string_options(argv, OptionsOf::Set)?;
    let reply = set_generic(ctx, argv, "set", flags, &argv[1], &argv[2], expire)?;
    // `None`: NX/XX stopped the write (with GET, the old value was returned instead).
    Ok(reply.unwrap_or(Reply::Nil))
}

fn setnx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let done = set_generic(ctx, argv, "setnx", opt::NX, &argv[1], &argv[2], None)?;
    Ok(Reply::Int(i64::from(done.is_some())))
}

fn setex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    set_generic(
        ctx,
        argv,
        "setex",
        opt::EX,
        &argv[1],
        &argv[3],
        Some(&argv[2]),
    )
    .map(|reply| reply.unwrap_or(Reply::Nil))
}

fn psetex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    set_generic(
        ctx,
        argv,
        "psetex",
        opt::PX,
        &argv[1],
        &argv[3],
        Some(&argv[2]),
    )
    .map(|reply| reply.unwrap_or(Reply::Nil))
}

fn getset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let old = Reply::bulk_or_nil(get_string(ctx, &argv[1])?.cloned());
    ctx.store
        .insert(ctx.db, own(&argv[1]), Value::String(own(&argv[2])), None);
    ctx.changed(1);
    ctx.rewrite(vec![vec![
        Bytes::from_static(b"SET"),
        argv[1].clone(),
        argv[2].clone(),
    ]]);
    Ok(old)
}

fn getdel(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let Some(value) = get_string(ctx, &argv[1])?.cloned() else {
        return Ok(Reply::Nil);
    };
    ctx.store.remove(ctx.db, &argv[1]);
    ctx.changed(1);
    ctx.rewrite(vec![vec![Bytes::from_static(b"DEL"), argv[1].clone()]]);
    Ok(Reply::Bulk(value))
}

fn getex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (flags, expire) = parse_string_options(argv, OptionsOf::GetEx)?;
    let key = &argv[1];
    let Some(value) = get_string(ctx, key)?.cloned() else {
        return Ok(Reply::Nil);
    };
    let expire_at = match expire {
        Some(arg) => Some(expire_at_ms(arg, flags, ctx.now_ms, "getex")?),
        None => None,
    };
    match expire_at {
        // An absolute time already past deletes the key (never the case for EX/PX, whose
        // time is now plus a positive amount).
        Some(at) if flags & (opt::EXAT | opt::PXAT) != 0 && at <= ctx.now_ms => {
            ctx.store.remove(ctx.db, key);
            ctx.changed(1);
            ctx.rewrite(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
        }
        Some(at) => {
            ctx.store.set_expire(ctx.db, key, Some(at), ctx.now_ms);
            ctx.changed(1);
            ctx.rewrite(vec![vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                Bytes::from(at.to_string()),
            ]]);
        }
        None if flags & opt::PERSIST != 0 && expire_of(ctx, key).is_some() => {
            ctx.store.set_expire(ctx.db, key, None, ctx.now_ms);
            ctx.changed(1);
            ctx.rewrite(vec![vec![Bytes::from_static(b"PERSIST"), key.clone()]]);
        }
        None => {}
    }
    Ok(Reply::Bulk(value))
}

fn append(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (key, suffix) = (&argv[1], &argv[2]);
    let len = match get_string_mut(ctx.store, ctx.db, key, ctx.now_ms)? {
        None => {
            ctx.store
                .insert(ctx.db, own(key), Value::String(own(suffix)), None);
            suffix.len()
        }
        Some(current) => {
            check_length(current.len() as u64 + suffix.len() as u64)?;
            let mut grown = take_mut(current);
            grown.extend_from_slice(suffix);
            *current = grown.freeze();
            current.len()
        }
    };
    ctx.changed(1);
    Ok(Reply::Int(len as i64))
}

fn strlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    Ok(Reply::Int(
        get_string(ctx, &argv[1])?.map_or(0, |s| s.len() as i64),
    ))
}

/// `incrDecrCommand`: adds `by` to the integer at `key` (0 when absent), keeping its TTL.
fn incr_by(ctx: &mut Ctx<'_>, key: &Bytes, by: i64) -> Outcome {
    let current = match get_string(ctx, key)? {
        None => 0,
        Some(text) => parse_i64(text).ok_or_else(|| Reply::error(errors::NOT_INTEGER))?,
    };
    let value = current
        .checked_add(by)
        .ok_or_else(|| Reply::error(errors::OVERFLOW))?;
    store_string_keep_ttl(ctx, key, Bytes::from(value.to_string()))?;
    ctx.changed(1);
    Ok(Reply::Int(value))
}

/// Replaces the string at `key` (or creates it) without touching its TTL.
fn store_string_keep_ttl(ctx: &mut Ctx<'_>, key: &Bytes, value: Bytes) -> Result<(), Reply> {
    match get_string_mut(ctx.store, ctx.db, key, ctx.now_ms)? {
        Some(current) => *current = value,
        None => ctx
            .store
            .insert(ctx.db, own(key), Value::String(value), None),
    }
    Ok(())
}

fn incr(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    incr_by(ctx, &argv[1], 1)
}

fn decr(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    incr_by(ctx, &argv[1], -1)
}

fn incrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let by = int_arg(&argv[2])?;
    incr_by(ctx, &argv[1], by)
}

fn decrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let by = int_arg(&argv[2])?;
    if by == i64::MIN {
        return Err(Reply::error("ERR decrement would overflow"));
    }
    incr_by(ctx, &argv[1], -by)
}

fn incrbyfloat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let key = &argv[1];
    let not_float = || Reply::error(errors::NOT_FLOAT);
    let current = match get_string(ctx, key)? {
        None => LongDouble::parse(b"0").ok_or_else(not_float)?,
        Some(text) => LongDouble::parse(text).ok_or_else(not_float)?,
    };
    let increment = LongDouble::parse(&argv[2]).ok_or_else(not_float)?;
    let sum = current
        .checked_add(increment)
        .ok_or_else(|| Reply::error("ERR increment would produce NaN or Infinity"))?;
    let text = Bytes::from(sum.to_human_string());
    store_string_keep_ttl(ctx, key, text.clone())?;
    ctx.changed(1);
    // The result, not the increment, travels: float formatting must not differ on replicas.
    ctx.rewrite(vec![vec![
        Bytes::from_static(b"SET"),
        key.clone(),
        text.clone(),
        Bytes::from_static(b"KEEPTTL"),
    ]]);
    Ok(Reply::Bulk(text))
}

fn mget(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let values = argv[1..]
        .iter()
        .map(|key| match ctx.store.get(ctx.db, key, ctx.now_ms) {
            Some(Item {
                value: Value::String(s),
                ..
            }) => Reply::Bulk(s.clone()),
            _ => Reply::Nil,
        })
        .collect();
    Ok(Reply::Array(values))
}

fn mset_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], name: &str, nx: bool) -> Outcome {
    if argv.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    if nx
        && argv[1..]
            .iter()
            .step_by(2)
            .any(|key| ctx.store.contains(ctx.db, key, ctx.now_ms))
    {
        return Ok(Reply::Int(0));
    }
    for pair in argv[1..].chunks_exact(2) {
        ctx.store
            .insert(ctx.db, own(&pair[0]), Value::String(own(&pair[1])), None);
    }
    ctx.changed((argv.len() as u64 - 1) / 2);
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

fn mset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    mset_generic(ctx, argv, "mset", false)
}

fn msetnx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    mset_generic(ctx, argv, "msetnx", true)
}

fn setrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let (key, patch) = (&argv[1], &argv[3]);
    let offset = int_arg(&argv[2])?;
    if offset < 0 {
        return Err(Reply::error("ERR offset is out of range"));
    }
    let offset = offset as u64;
    let len = match get_string_mut(ctx.store, ctx.db, key, ctx.now_ms)? {
        None => {
            if patch.is_empty() {
                return Ok(Reply::Int(0));
            }
            check_length(offset + patch.len() as u64)?;
            let mut value = vec![0u8; offset as usize];
            value.extend_from_slice(patch);
            let len = value.len();
            ctx.store
                .insert(ctx.db, own(key), Value::String(Bytes::from(value)), None);
            len
        }
        Some(current) => {
            if patch.is_empty() {
                return Ok(Reply::Int(current.len() as i64));
            }
            check_length(offset + patch.len() as u64)?;
            let offset = offset as usize;
            let mut value = take_mut(current);
            if value.len() < offset + patch.len() {
                value.resize(offset + patch.len(), 0);
            }
            value[offset..offset + patch.len()].copy_from_slice(patch);
            *current = value.freeze();
            current.len()
        }
    };
    ctx.changed(1);
    Ok(Reply::Int(len as i64))
}

fn getrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Outcome {
    let mut start = int_arg(&argv[2])?;
    let mut end = int_arg(&argv[3])?;
    let Some(value) = get_string(ctx, &argv[1])? else {
        return Ok(Reply::Bulk(Bytes::new()));
    };
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    Ok(Reply::Bulk(value.slice(start as usize..=end as usize)))
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, bulk, err, propagated};
    use super::*;

    #[test]
    fn set_and_get() {
        let mut h = Harness::new();
        assert_eq!(h.reply("SET k v"), Reply::Ok);
        assert_eq!(h.reply("GET k"), bulk("v"));
        assert_eq!(h.reply("SET k w NX"), Reply::Nil);
        assert_eq!(h.reply("SET k w XX"), Reply::Ok);
        assert_eq!(h.reply("SET other w XX"), Reply::Nil);
        assert_eq!(h.reply("GET other"), Reply::Nil);
        assert_eq!(h.reply("SET k x GET"), bulk("w"));
        assert_eq!(h.reply("SET new x GET"), Reply::Nil);
        assert_eq!(
            h.reply("SET k y NX GET"),
            bulk("x"),
            "NX stops the write, GET replies"
        );
        assert_eq!(h.reply("GET k"), bulk("x"));
        assert_eq!(h.reply("RPUSH l a"), Reply::Int(1));
        assert_eq!(h.reply("GET l"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("SET l v GET"), err(errors::WRONGTYPE));
        assert_eq!(
            h.reply("SET l v"),
            Reply::Ok,
            "plain SET overwrites any type"
        );
    }

    #[test]
    fn set_option_errors_match_redis() {
        let mut h = Harness::new();
        for (line, error) in [
            ("SET a b EX 0", "ERR invalid expire time in 'set' command"),
            ("SET a b EX -1", "ERR invalid expire time in 'set' command"),
            (
                "SET a b PX 9223372036854775807",
                "ERR invalid expire time in 'set' command",
            ),
            (
                "SET a b EX 9223372036854775",
                "ERR invalid expire time in 'set' command",
            ),
            (
                "SET a b EX 9223372036854776",
                "ERR invalid expire time in 'set' command",
            ),
            ("SET a b EX abc", errors::NOT_INTEGER),
            ("SET a b EX 10 KEEPTTL", errors::SYNTAX),
            ("SET a b KEEPTTL EX 10", errors::SYNTAX),
            ("SET a b NX XX", errors::SYNTAX),
            ("SET a b EX 1 PX 1", errors::SYNTAX),
            ("SET a b EX", errors::SYNTAX),
            ("SET a b PERSIST", errors::SYNTAX),
            ("SET a b foo", errors::SYNTAX),
            ("SETEX a 0 v", "ERR invalid expire time in 'setex' command"),
            (
                "PSETEX a -5 v",
                "ERR invalid expire time in 'psetex' command",
            ),
        ] {
            assert_eq!(h.reply(line), err(error), "{line}");
        }
        assert_eq!(h.store.db(0).len(), 0);
    }

    #[test]
    fn set_expiry_propagates_as_pxat() {
        let mut h = Harness::new();
        let now = h.now_ms;
        let e = h.run("set k v EX 10");
        assert_eq!(propagated(&e), [format!("SET k v PXAT {}", now + 10_000)]);
        assert_eq!(h.reply("PTTL k"), Reply::Int(10_000));
        let e = h.run("SET k v PX 1500 NX");
        assert_eq!(e.reply, Reply::Nil);
        assert_eq!(propagated(&e), Vec::<String>::new());
        let e = h.run("SET k v2 PX 1500 XX GET");
        assert_eq!(e.reply, bulk("v"));
        assert_eq!(propagated(&e), [format!("SET k v2 PXAT {}", now + 1500)]);
        let e = h.run("SET k v EXAT 2000000000");
        assert_eq!(propagated(&e), ["SET k v PXAT 2000000000000"]);
        let e = h.run("SETEX k 5 v");
        assert_eq!(propagated(&e), [format!("SET k v PXAT {}", now + 5000)]);
        let e = h.run("PSETEX k 5 v");
        assert_eq!(propagated(&e), [format!("SET k v PXAT {}", now + 5)]);
        // Without an expiry, GET is dropped (in any case, repeated) and the rest kept.
        let e = h.run("set k get get KEEPTTL Get");
        assert_eq!(propagated(&e), ["set k get KEEPTTL"]);
        assert_eq!(e.reply, bulk("v"));
        assert_eq!(h.reply("PTTL k"), Reply::Int(5), "KEEPTTL kept the TTL");
        let e = h.run("SET k v");
        assert_eq!(e.propagate, Propagate::Verbatim);
        assert_eq!(h.reply("PTTL k"), Reply::Int(-1), "SET clears the TTL");
    }

    #[test]
    fn set_with_absolute_time_in_the_past_stores_an_expired_key() {
        let mut h = Harness::new();
        assert_eq!(h.reply("SET a b EXAT 1"), Reply::Ok);
        assert_eq!(h.reply("GET a"), Reply::Nil);
        assert_eq!(h.store.take_expired(), [(0, Bytes::from_static(b"a"))]);
    }

    #[test]
    fn setnx_getset_getdel() {
        let mut h = Harness::new();
        assert_eq!(h.reply("SETNX k v"), Reply::Int(1));
        let e = h.run("SETNX k w");
        assert_eq!((e.reply, e.dirty), (Reply::Int(0), 0));
        assert_eq!(e.propagate, Propagate::Nothing);
        h.run("EXPIRE k 100");
        let e = h.run("getset k w");
        assert_eq!(e.reply, bulk("v"));
        assert_eq!(propagated(&e), ["SET k w"]);
        assert_eq!(h.reply("TTL k"), Reply::Int(-1), "GETSET clears the TTL");
        assert_eq!(h.reply("GETSET fresh x"), Reply::Nil);
        let e = h.run("getdel k");
        assert_eq!(e.reply, bulk("w"));
        assert_eq!(propagated(&e), ["DEL k"]);
        let e = h.run("GETDEL k");
        assert_eq!((e.reply, e.propagate), (Reply::Nil, Propagate::Nothing));
        h.run("LPUSH l a");
        assert_eq!(h.reply("GETDEL l"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("GETSET l x"), err(errors::WRONGTYPE));
    }

    #[test]
    fn getex_options_and_propagation() {
        let mut h = Harness::new();
        let now = h.now_ms;
        h.run("SET k v");
        let e = h.run("GETEX k");
        assert_eq!((e.reply, e.propagate), (bulk("v"), Propagate::Nothing));
        let e = h.run("GETEX k EX 10");
        assert_eq!(propagated(&e), [format!("PEXPIREAT k {}", now + 10_000)]);
        let e = h.run("GETEX k PXAT 99999999999999");
        assert_eq!(propagated(&e), ["PEXPIREAT k 99999999999999"]);
        let e = h.run("GETEX k PERSIST");
        assert_eq!(propagated(&e), ["PERSIST k"]);
        let e = h.run("GETEX k PERSIST");
        assert_eq!(e.propagate, Propagate::Nothing, "nothing to persist");
        let e = h.run("GETEX k EXAT 1");
        assert_eq!(e.reply, bulk("v"));
        assert_eq!(propagated(&e), ["DEL k"]);
        assert_eq!(h.reply("EXISTS k"), Reply::Int(0));
        for (line, error) in [
            ("GETEX k PERSIST EX 1", errors::SYNTAX),
            ("GETEX k NX", errors::SYNTAX),
            ("GETEX k KEEPTTL", errors::SYNTAX),
            ("GETEX k foo", errors::SYNTAX),
        ] {
            assert_eq!(h.reply(line), err(error), "{line}");
        }
        assert_eq!(
            h.reply("GETEX missing EX abc"),
            Reply::Nil,
            "lookup before value"
        );
        h.run("SET k v");
        assert_eq!(
            h.reply("GETEX k EX 0"),
            err("ERR invalid expire time in 'getex' command")
        );
        assert_eq!(
            h.reply("GETEX k EXAT 0"),
            err("ERR invalid expire time in 'getex' command")
        );
    }

    #[test]
    fn append_strlen_setrange_getrange() {
        let mut h = Harness::new();
        assert_eq!(h.reply("APPEND k Hello"), Reply::Int(5));
        h.run("PEXPIRE k 5000");
        assert_eq!(h.reply("APPEND k World"), Reply::Int(10));
        assert_eq!(h.reply("GET k"), bulk("HelloWorld"));
        assert_eq!(h.reply("PTTL k"), Reply::Int(5000), "APPEND keeps the TTL");
        assert_eq!(h.reply("STRLEN k"), Reply::Int(10));
        assert_eq!(h.reply("STRLEN nokey"), Reply::Int(0));
        assert_eq!(h.reply("SETRANGE k 5 Redis"), Reply::Int(10));
        assert_eq!(h.reply("GET k"), bulk("HelloRedis"));
        assert_eq!(h.reply("SETRANGE pad 3 x"), Reply::Int(4));
        assert_eq!(h.reply("GET pad"), Reply::bulk(b"\0\0\0x"));
        assert_eq!(
            h.reply("SETRANGE k -1 x"),
            err("ERR offset is out of range")
        );
        assert_eq!(h.reply("SETRANGE k x x"), err(errors::NOT_INTEGER));
        let e = h.run_argv(&[
            Bytes::from_static(b"SETRANGE"),
            Bytes::from_static(b"nokey"),
            Bytes::from_static(b"5"),
            Bytes::new(),
        ]);
        assert_eq!((e.reply, e.dirty), (Reply::Int(0), 0));
        assert_eq!(h.reply("EXISTS nokey"), Reply::Int(0));
        assert_eq!(
            h.reply("SETRANGE k 536870911 xy"),
            err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        );
        for (line, expected) in [
            ("GETRANGE k 0 4", "Hello"),
            ("GETRANGE k -5 -1", "Redis"),
            ("GETRANGE k 0 -1", "HelloRedis"),
            ("GETRANGE k 5 100", "Redis"),
            ("GETRANGE k -100 2", "Hel"),
            ("GETRANGE k -1 -5", ""),
            ("GETRANGE k 3 2", ""),
            ("GETRANGE k 20 30", ""),
            ("GETRANGE nokey 0 -1", ""),
            ("SUBSTR k 0 0", "H"),
        ] {
            assert_eq!(h.reply(line), bulk(expected), "{line}");
        }
        assert_eq!(h.reply("GETRANGE k a 1"), err(errors::NOT_INTEGER));
        h.run("LPUSH l a");
        assert_eq!(h.reply("APPEND l x"), err(errors::WRONGTYPE));
        assert_eq!(h.reply("GETRANGE l 0 1"), err(errors::WRONGTYPE));
    }

    #[test]
    fn append_does_not_change_what_a_snapshot_sees() {
        let mut h = Harness::new();
        h.run("SET k abc");
        let snapshot = h.store.snapshot();
        h.run("APPEND k def");
        let (_, item) = snapshot.dbs()[0].iter().next().unwrap();
        assert!(matches!(&item.value, Value::String(s) if s.as_ref() == b"abc"));
        assert_eq!(h.reply("GET k"), bulk("abcdef"));
    }

    #[test]
    fn counters() {
        let mut h = Harness::new();
        assert_eq!(h.reply("INCR n"), Reply::Int(1));
        h.run("EXPIRE n 100");
        assert_eq!(h.reply("INCRBY n 10"), Reply::Int(11));
        assert_eq!(h.reply("DECR n"), Reply::Int(10));
        assert_eq!(h.reply("DECRBY n -5"), Reply::Int(15));
        assert_eq!(h.reply("TTL n"), Reply::Int(100), "counters keep the TTL");
        assert_eq!(h.reply("GET n"), bulk("15"));
        h.run("SET s abc");
        assert_eq!(h.reply("INCR s"), err(errors::NOT_INTEGER));
        h.run_argv(&[
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"s"),
            Bytes::from_static(b" 1"),
        ]);
        assert_eq!(h.reply("INCR s"), err(errors::NOT_INTEGER));
        assert_eq!(h.reply("INCRBY n x"), err(errors::NOT_INTEGER));
        h.run("SET big 9223372036854775807");
        assert_eq!(h.reply("INCR big"), err(errors::OVERFLOW));
        h.run("SET small -9223372036854775808");
        assert_eq!(h.reply("DECR small"), err(errors::OVERFLOW));
        assert_eq!(
            h.reply("DECRBY n -9223372036854775808"),
            err("ERR decrement would overflow")
        );
        h.run("RPUSH l a");
        assert_eq!(h.reply("INCR l"), err(errors::WRONGTYPE));
        let e = h.run("INCR n");
        assert_eq!(e.propagate, Propagate::Verbatim);
    }

    #[test]
    fn incrbyfloat_formats_like_redis_and_propagates_set_keepttl() {
        let mut h = Harness::new();
        h.run("SET k 10");
        h.run("EXPIRE k 100");
        let e = h.run("INCRBYFLOAT k 0.1");
        assert_eq!(e.reply, bulk("10.1"));
        assert_eq!(propagated(&e), ["SET k 10.1 KEEPTTL"]);
        assert_eq!(h.reply("TTL k"), Reply::Int(100));
        h.run("SET k 3.0e3");
        assert_eq!(h.reply("INCRBYFLOAT k 0"), bulk("3000"));
        assert_eq!(h.reply("INCRBYFLOAT k 1.1"), bulk("3001.10000000000000009"));
        assert_eq!(h.reply("INCRBYFLOAT new -5e-1"), bulk("-0.5"));
        assert_eq!(h.reply("INCRBYFLOAT k abc"), err(errors::NOT_FLOAT));
        h.run("SET s abc");
        assert_eq!(h.reply("INCRBYFLOAT s 1"), err(errors::NOT_FLOAT));
        assert_eq!(
            h.reply("INCRBYFLOAT k inf"),
            err("ERR increment would produce NaN or Infinity")
        );
        h.run("SET huge 1e4932");
        assert_eq!(
            h.reply("INCRBYFLOAT huge 1.1e4932"),
            err("ERR increment would produce NaN or Infinity")
        );
    }

    #[test]
    fn mget_mset_msetnx() {
        let mut h = Harness::new();
        h.run("SET a 1");
        h.run("EXPIRE a 100");
        h.run("LPUSH l x");
        assert_eq!(
            h.reply("MGET a l nokey"),
            Reply::Array(vec![bulk("1"), Reply::Nil, Reply::Nil])
        );
        let e = h.run("MSET a 2 b 3");
        assert_eq!((e.reply, e.dirty), (Reply::Ok, 2));
        assert_eq!(h.reply("TTL a"), Reply::Int(-1), "MSET clears TTLs");
        assert_eq!(
            h.reply("MSET a 1 b"),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(h.reply("MSETNX a 1 c 2"), Reply::Int(0));
        assert_eq!(h.reply("EXISTS c"), Reply::Int(0));
        assert_eq!(h.reply("MSETNX c 1 d 2"), Reply::Int(1));
        assert_eq!(
            h.reply("MGET c d"),
            Reply::Array(vec![bulk("1"), bulk("2")])
        );
        assert_eq!(
            h.reply("MSETNX c"),
            err("ERR wrong number of arguments for 'msetnx' command")
        );
    }

    #[test]
    fn expired_keys_read_as_absent() {
        let mut h = Harness::new();
        h.run("SET k v PX 10");
        h.now_ms += 10;
        assert_eq!(h.reply("GET k"), Reply::Nil);
        assert_eq!(h.reply("APPEND k x"), Reply::Int(1));
        assert_eq!(h.reply("PTTL k"), Reply::Int(-1));
    }
}
