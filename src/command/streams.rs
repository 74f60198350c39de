//! Stream commands (Redis 7.0 `t_stream.c`), non-blocking forms only: `XREAD`/`XREADGROUP`
//! with `BLOCK` are refused with an error.
//!
//! The stream is [`crate::model::Stream`] (a flat, ID-ordered entry list with Redis 7's
//! bookkeeping: `entries_added`, `max_deleted_id`, `first_id`, and per group `entries_read`),
//! shared with snapshots through `Arc` and copied on the first write under a snapshot. Its
//! fields change exactly where Redis changes them, because RDB 10 files carry them and real
//! Redis loads our files.
//!
//! Redis keeps entries in radix-tree nodes of up to 100 (`stream-node-max-entries`), and
//! `MAXLEN ~`/`MINID ~` only drop whole nodes. We keep no nodes: approximate trimming drops
//! the nodes Redis would have made by filling them in order of addition (see
//! [`whole_nodes`]), and `XINFO STREAM`'s `radix-tree-*` figures are estimates. Trimming is
//! propagated exactly, as Redis does: `~` becomes `=` with the resulting length or first ID.
//!
//! Propagation, as Redis: `XADD` with `*` or `ms-*` carries the generated ID; `XREADGROUP`
//! and `XCLAIM` become `XCLAIM … FORCE JUSTID LASTID` per delivered entry and `XGROUP
//! CREATECONSUMER` for a consumer created by a `NOACK` read. After a read that moved the
//! group's last ID, `XGROUP SETID … ENTRIESREAD` follows unconditionally (Redis ≥ 7.4,
//! redis#12898; Redis 7.0 sent it only for `NOACK`, which leaves `entries_read` stale on its
//! replicas; a 7.0 replica accepts the extra command). A history read (`XREADGROUP` with an
//! explicit ID) propagates nothing, as in Redis.

use std::sync::Arc;

use bytes::Bytes;

use super::access::{get_stream, get_stream_mut, wrongtype};
use super::args::is_c_space;
use super::{CommandSpec, Ctx, Subcommand, args, errors, flags, wrong_arity};
use crate::model::{Consumer, ConsumerGroup, PendingEntry, Stream, StreamEntry, StreamId};
use crate::resp::Reply;
use crate::store::{Store, Value, own};

use flags::{BLOCKING, DENYOOM, FAST, LOADING, MOVABLEKEYS, READONLY, STALE, WRITE};

/// `XGROUP` and `XINFO` are container commands: `COMMAND` reports no flags for them, their
/// subcommands carry the flags (Redis 7.0.15's `COMMAND INFO xgroup|create`, …).
const XGROUP_SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "create",
        arity: -5,
        flags: WRITE | DENYOOM,
    },
    Subcommand {
        name: "setid",
        arity: -5,
        flags: WRITE,
    },
    Subcommand {
        name: "destroy",
        arity: 4,
        flags: WRITE,
    },
    Subcommand {
        name: "createconsumer",
        arity: 5,
        flags: WRITE | DENYOOM,
    },
    Subcommand {
        name: "delconsumer",
        arity: 5,
        flags: WRITE,
    },
    Subcommand {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
    },
];

const XINFO_SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "stream",
        arity: -3,
        flags: READONLY,
    },
    Subcommand {
        name: "groups",
        arity: 3,
        flags: READONLY,
    },
    Subcommand {
        name: "consumers",
        arity: 4,
        flags: READONLY,
    },
    Subcommand {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
    },
];

pub(super) const COMMANDS: &[CommandSpec] = &[
    command!("xadd", -5, WRITE | DENYOOM | FAST, (1, 1, 1), xadd),
    command!("xlen", 2, READONLY | FAST, (1, 1, 1), xlen),
    command!("xrange", -4, READONLY, (1, 1, 1), xrange),
    command!("xrevrange", -4, READONLY, (1, 1, 1), xrevrange),
    command!("xdel", -3, WRITE | FAST, (1, 1, 1), xdel),
    command!("xtrim", -4, WRITE, (1, 1, 1), xtrim),
    command!("xgroup", -2, 0, (0, 0, 0), xgroup, subcommands: XGROUP_SUBCOMMANDS),
    command!(
        "xreadgroup",
        -7,
        WRITE | BLOCKING | MOVABLEKEYS,
        (0, 0, 0),
        xreadgroup,
    ),
    command!(
        "xread",
        -4,
        READONLY | BLOCKING | MOVABLEKEYS,
        (0, 0, 0),
        xread,
    ),
    command!("xack", -4, WRITE | FAST, (1, 1, 1), xack),
    command!("xpending", -3, READONLY, (1, 1, 1), xpending),
    command!("xclaim", -6, WRITE | FAST, (1, 1, 1), xclaim),
    command!("xsetid", -3, WRITE | DENYOOM | FAST, (1, 1, 1), xsetid),
    command!("xinfo", -2, 0, (0, 0, 0), xinfo, subcommands: XINFO_SUBCOMMANDS),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const MAX_ID: StreamId = StreamId::new(u64::MAX, u64::MAX);
const ZERO_ID: StreamId = StreamId::new(0, 0);
/// Entries per radix-tree node in Redis (`stream-node-max-entries`, default 100).
const NODE_ENTRIES: u64 = 100;
/// `STREAM_LISTPACK_MAX_SIZE`: the largest entry Redis stores.
const MAX_ENTRY_BYTES: usize = 1 << 30;

fn upper(name: &'static str) -> Bytes {
    Bytes::from_static(name.as_bytes())
}

fn id_arg(id: StreamId) -> Bytes {
    Bytes::from(id.to_string())
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id_arg(id))
}

// ---------------------------------------------------------------------------------------
// IDs.

/// The C string view of an argument (Redis copies IDs into a NUL-terminated buffer).
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter()
        .position(|&b| b == 0)
        .map_or(arg, |end| &arg[..end])
}

/// Redis's `string2ull`: `string2ll` if non-negative, else C's `strtoull` (leading spaces,
/// a sign, a negative value wraps; the whole string must be consumed).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = args::parse_i64(s) {
        return u64::try_from(v).ok();
    }
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// `streamGenericParseIDOrReply`: `ms-seq`, `ms` (sequence `missing_seq`), `-`/`+` unless
/// `strict`, and `ms-*` when `seq_star` (then the second value is false: "sequence not
/// given").
fn parse_id(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    seq_star: bool,
) -> Result<(StreamId, bool), Reply> {
    let invalid = || Reply::error(INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    let buf = c_str(arg);
    match buf {
        b"-" | b"+" if strict => return Err(invalid()),
        b"-" => return Ok((ZERO_ID, true)),
        b"+" => return Ok((MAX_ID, true)),
        _ => {}
    }
    let (ms_part, seq_part) = match buf.iter().position(|&b| b == b'-') {
        Some(dash) => (&buf[..dash], Some(&buf[dash + 1..])),
        None => (buf, None),
    };
    let ms = string2ull(ms_part).ok_or_else(invalid)?;
    match seq_part {
        None => Ok((StreamId::new(ms, missing_seq), true)),
        Some(b"*") if seq_star => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((
            StreamId::new(ms, string2ull(seq).ok_or_else(invalid)?),
            true,
        )),
    }
}

fn parse_strict(arg: &[u8]) -> Result<StreamId, Reply> {
    parse_id(arg, 0, true, false).map(|(id, _)| id)
}

/// `streamParseIntervalIDOrReply`: returns the ID and whether it was `(`-exclusive.
fn parse_interval(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    if arg.len() > 1 && arg[0] == b'(' {
        Ok((parse_id(&arg[1..], missing_seq, true, false)?.0, true))
    } else {
        Ok((parse_id(arg, missing_seq, false, false)?.0, false))
    }
}

fn incr_id(id: StreamId) -> Option<StreamId> {
    if id.seq == u64::MAX {
        if id.ms == u64::MAX {
            None
        } else {
            Some(StreamId::new(id.ms + 1, 0))
        }
    } else {
        Some(StreamId::new(id.ms, id.seq + 1))
    }
}

fn decr_id(id: StreamId) -> Option<StreamId> {
    if id.seq == 0 {
        if id.ms == 0 {
            None
        } else {
            Some(StreamId::new(id.ms - 1, u64::MAX))
        }
    } else {
        Some(StreamId::new(id.ms, id.seq - 1))
    }
}

/// `[start, end]` from the `XRANGE`/`XPENDING` arguments (exclusive forms adjusted).
fn parse_range(start: &[u8], end: &[u8]) -> Result<(StreamId, StreamId), Reply> {
    let (mut from, exclusive) = parse_interval(start, 0)?;
    if exclusive {
        from =
            incr_id(from).ok_or_else(|| Reply::error("ERR invalid start ID for the interval"))?;
    }
    let (mut to, exclusive) = parse_interval(end, u64::MAX)?;
    if exclusive {
        to = decr_id(to).ok_or_else(|| Reply::error("ERR invalid end ID for the interval"))?;
    }
    Ok((from, to))
}

// ---------------------------------------------------------------------------------------
// Access and stream bookkeeping.

/// The stream at `key` as an O(1) shared copy (so the caller may write meanwhile): `None`
/// when missing, WRONGTYPE for other types.
fn read_stream(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Arc<Stream>>, Reply> {
    Ok(get_stream(ctx, key)?.cloned())
}

/// The stream at `key` for modification, copied first if a snapshot shares it.
fn write_stream<'a>(
    store: &'a mut Store,
    db: usize,
    key: &[u8],
    now_ms: i64,
) -> Result<Option<&'a mut Stream>, Reply> {
    Ok(get_stream_mut(store, db, key, now_ms)?.map(Arc::make_mut))
}

fn entry_reply(entry: &StreamEntry) -> Reply {
    Reply::Array(vec![
        id_reply(entry.id),
        Reply::Array(
            entry
                .fields
                .iter()
                .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                .collect(),
        ),
    ])
}

/// Index of the first entry with an ID ≥ `id`.
fn lower_bound(stream: &Stream, id: StreamId) -> usize {
    stream.entries.partition_point(|e| e.id < id)
}

fn find_entry(stream: &Stream, id: StreamId) -> Option<&StreamEntry> {
    stream
        .entries
        .binary_search_by(|e| e.id.cmp(&id))
        .ok()
        .map(|i| &stream.entries[i])
}

/// Keeps `first_id` as Redis records it: the first live entry, 0-0 when empty.
fn refresh_first_id(stream: &mut Stream) {
    stream.first_id = stream.entries.first().map_or(ZERO_ID, |e| e.id);
}

/// `streamRangeHasTombstones` (Redis 7.0): may an entry in `[start, ∞)` have been deleted?
fn range_has_tombstones(stream: &Stream, start: StreamId) -> bool {
    if stream.entries.is_empty() || stream.max_deleted_id == ZERO_ID {
        return false;
    }
    if stream.first_id > stream.max_deleted_id {
        return false;
    }
    start <= stream.max_deleted_id
}

/// `streamEstimateDistanceFromFirstEverEntry`: the logical read counter of `id`, when it can
/// be known.
fn estimate_distance(stream: &Stream, id: StreamId) -> Option<u64> {
    if stream.entries_added == 0 {
        return Some(0);
    }
    let len = stream.entries.len() as u64;
    if len == 0 && id <= stream.last_id {
        return Some(stream.entries_added);
    }
    match id.cmp(&stream.last_id) {
        std::cmp::Ordering::Equal => return Some(stream.entries_added),
        std::cmp::Ordering::Greater => return None,
        std::cmp::Ordering::Less => {}
    }
    if stream.max_deleted_id == ZERO_ID || stream.max_deleted_id < stream.first_id {
        if id < stream.first_id {
            return Some(stream.entries_added - len);
        }
        if id == stream.first_id {
            return Some(stream.entries_added - len + 1);
        }
    }
    None
}

/// `streamReplyWithCGLag`: entries not yet delivered to the group, when known.
fn group_lag(stream: &Stream, group: &ConsumerGroup) -> Reply {
    if stream.entries_added == 0 {
        return Reply::Int(0);
    }
    if let Some(read) = group.entries_read
        && !range_has_tombstones(stream, group.last_id)
    {
        return Reply::Int(stream.entries_added.wrapping_sub(read) as i64);
    }
    match estimate_distance(stream, group.last_id) {
        Some(read) => Reply::Int(stream.entries_added.wrapping_sub(read) as i64),
        None => Reply::Nil,
    }
}

/// How a stream is trimmed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trim {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

/// `streamTrim`: removes entries from the head. With `approx`, only whole radix-tree nodes
/// go, as in Redis; `limit` (0: none) caps the entries removed.
fn trim(stream: &mut Stream, strategy: Trim, approx: bool, limit: u64) -> u64 {
    let len = stream.entries.len() as u64;
    let removable = match strategy {
        Trim::None => return 0,
        Trim::MaxLen(max) => len.saturating_sub(max),
        Trim::MinId(min) => lower_bound(stream, min) as u64,
    };
    let remove = if approx {
        whole_nodes(stream, removable, limit)
    } else if limit > 0 {
        removable.min(limit)
    } else {
        removable
    };
    if remove == 0 {
        return 0;
    }
    stream.entries.drain(..remove as usize);
    refresh_first_id(stream);
    remove
}

/// How many head entries an approximate trim removes: whole nodes only. Redis fills a node
/// with [`NODE_ENTRIES`] consecutive additions, so node boundaries fall on multiples of 100
/// in the order of addition; without deletions the head entry's addition index is
/// `entries_added - len` and the boundaries are known (a stream emptied and refilled, or nodes
/// closed early by `stream-node-max-bytes`, differ), otherwise nodes are counted from the
/// head. The last, partly filled node can go too.
fn whole_nodes(stream: &Stream, removable: u64, limit: u64) -> u64 {
    let len = stream.entries.len() as u64;
    let mut node = if stream.max_deleted_id == ZERO_ID {
        NODE_ENTRIES - stream.entries_added.saturating_sub(len) % NODE_ENTRIES
    } else {
        NODE_ENTRIES
    };
    let mut removed = 0u64;
    while removed < len {
        node = node.min(len - removed);
        if limit > 0 && removed + node > limit {
            break;
        }
        // Redis removes a node when the stream keeps at least MAXLEN entries without it, or
        // when its last entry is below MINID: both mean the node lies within `removable`.
        if removed + node > removable {
            break;
        }
        removed += node;
        node = NODE_ENTRIES;
    }
    removed
}

// ---------------------------------------------------------------------------------------
// XADD / XTRIM.

struct AddTrimArgs {
    /// The explicit ID and whether its sequence was given (`None`: `*`).
    id: Option<(StreamId, bool)>,
    id_pos: usize,
    no_mkstream: bool,
    trim: Trim,
    /// Position of the MAXLEN/MINID value, for the exact rewrite.
    trim_arg_idx: usize,
    approx: bool,
    limit: u64,
}

/// `streamParseAddOrTrimArgsOrReply`.
fn parse_add_trim(argv: &[Bytes], xadd: bool, replaying: bool) -> Result<AddTrimArgs, Reply> {
    let mut a = AddTrimArgs {
        id: None,
        id_pos: 0,
        no_mkstream: false,
        trim: Trim::None,
        trim_arg_idx: 0,
        approx: false,
        limit: 0,
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = argv[i].as_ref();
        let incompatible =
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
        if xadd && opt == b"*" {
            break;
        } else if opt.eq_ignore_ascii_case(b"maxlen") && more > 0 {
            if a.trim != Trim::None {
                return Err(Reply::error(incompatible));
            }
            a.approx = false;
            let next = argv[i + 1].as_ref();
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let max =
                args::parse_i64(&argv[i + 1]).ok_or_else(|| Reply::error(errors::NOT_INTEGER))?;
            if max < 0 {
                return Err(Reply::error("ERR The MAXLEN argument must be >= 0."));
            }
            i += 1;
            a.trim = Trim::MaxLen(max as u64);
            a.trim_arg_idx = i;
        } else if opt.eq_ignore_ascii_case(b"minid") && more > 0 {
            if a.trim != Trim::None {
                return Err(Reply::error(incompatible));
            }
            a.approx = false;
            let next = argv[i + 1].as_ref();
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let min = parse_strict(&argv[i + 1])?;
            i += 1;
            a.trim = Trim::MinId(min);
            a.trim_arg_idx = i;
        } else if opt.eq_ignore_ascii_case(b"limit") && more > 0 {
            let limit =
                args::parse_i64(&argv[i + 1]).ok_or_else(|| Reply::error(errors::NOT_INTEGER))?;
            if limit < 0 {
                return Err(Reply::error("ERR The LIMIT argument must be >= 0."));
            }
            a.limit = limit as u64;
            limit_given = true;
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            a.id = Some(parse_id(opt, 0, true, true)?);
            break;
        } else {
            return Err(Reply::error(errors::SYNTAX));
        }
        i += 1;
    }
    a.id_pos = i;
    if a.limit > 0 && a.trim == Trim::None {
        return Err(Reply::error(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.trim == Trim::None {
        return Err(Reply::error(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if replaying {
        // Propagated trims were made exact; never limit their work.
        a.limit = 0;
    } else if limit_given {
        if !a.approx {
            return Err(Reply::error(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if a.approx {
        a.limit = 100 * NODE_ENTRIES;
    } else {
        a.limit = 0;
    }
    Ok(a)
}

/// Rewrites an approximate trim as the exact one it turned out to be
/// (`streamRewriteApproxSpecifier` + `streamRewriteTrimArgument`).
fn exact_trim_args(argv: &mut [Bytes], a: &AddTrimArgs, stream: &Stream) {
    argv[a.trim_arg_idx - 1] = Bytes::from_static(b"=");
    argv[a.trim_arg_idx] = match a.trim {
        Trim::MinId(_) => id_arg(stream.entries.first().map_or(MAX_ID, |e| e.id)),
        _ => Bytes::from(stream.entries.len().to_string()),
    };
}

fn xadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let a = match parse_add_trim(argv, true, ctx.replaying) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let field_pos = a.id_pos + 1;
    let fields = argv.len().saturating_sub(field_pos);
    if argv.len() < field_pos + 2 || fields % 2 == 1 {
        return wrong_arity("xadd");
    }
    if let Some((id, true)) = a.id
        && id == ZERO_ID
    {
        return Reply::error("ERR The ID specified in XADD must be greater than 0-0");
    }
    let now_ms = ctx.now_ms;
    let mut created = None;
    let stream = match write_stream(ctx.store, ctx.db, key, now_ms) {
        Err(e) => return e,
        Ok(Some(s)) => s,
        Ok(None) if a.no_mkstream => return Reply::Nil,
        Ok(None) => created.insert(Stream::default()),
    };
    if stream.last_id == MAX_ID {
        return Reply::error(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
    }
    let too_small =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    let last = stream.last_id;
    let id = match a.id {
        None => {
            let ms = u64::try_from(now_ms).unwrap_or(0);
            if ms > last.ms {
                StreamId::new(ms, 0)
            } else {
                match incr_id(last) {
                    Some(id) => id,
                    None => return Reply::error(too_small),
                }
            }
        }
        Some((id, true)) => id,
        Some((id, false)) if id.ms == last.ms => {
            if last.seq == u64::MAX {
                return Reply::error(too_small);
            }
            StreamId::new(last.ms, last.seq + 1)
        }
        Some((id, false)) => id,
    };
    if id <= last {
        return Reply::error(too_small);
    }
    let body = &argv[field_pos..];
    if body.iter().map(|b| b.len()).sum::<usize>() > MAX_ENTRY_BYTES {
        return Reply::error("ERR Elements are too large to be stored");
    }
    stream.entries.push(StreamEntry {
        id,
        fields: body
            .chunks_exact(2)
            .map(|p| (own(&p[0]), own(&p[1])))
            .collect(),
    });
    stream.entries_added += 1;
    stream.last_id = id;
    if stream.entries.len() == 1 {
        stream.first_id = id;
    }
    trim(stream, a.trim, a.approx, a.limit);

    let mut propagated = None;
    if a.trim != Trim::None && a.approx {
        let mut rewritten = argv.to_vec();
        exact_trim_args(&mut rewritten, &a, stream);
        propagated = Some(rewritten);
    }
    if !matches!(a.id, Some((_, true))) {
        propagated.get_or_insert_with(|| argv.to_vec())[a.id_pos] = id_arg(id);
    }
    if let Some(stream) = created {
        ctx.store
            .insert(ctx.db, own(key), Value::Stream(Arc::new(stream)), None);
    }
    ctx.changed(1);
    if let Some(cmd) = propagated {
        ctx.rewrite(vec![cmd]);
    }
    id_reply(id)
}

fn xtrim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let a = match parse_add_trim(argv, false, ctx.replaying) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (deleted, rewritten) = match write_stream(ctx.store, ctx.db, &argv[1], ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(stream)) => {
            let deleted = trim(stream, a.trim, a.approx, a.limit);
            let rewritten = (deleted > 0 && a.approx).then(|| {
                let mut cmd = argv.to_vec();
                exact_trim_args(&mut cmd, &a, stream);
                cmd
            });
            (deleted, rewritten)
        }
    };
    ctx.changed(deleted);
    if let Some(cmd) = rewritten {
        ctx.rewrite(vec![cmd]);
    }
    Reply::Int(deleted as i64)
}

// ---------------------------------------------------------------------------------------
// XLEN / XRANGE / XREVRANGE / XDEL.

fn xlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match read_stream(ctx, &argv[1]) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.map_or(0, |s| s.entries.len()) as i64),
    }
}

fn xrange_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], rev: bool) -> Reply {
    let (start_arg, end_arg) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let (start, end) = match parse_range(start_arg, end_arg) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"count") && j + 1 < argv.len() {
            match args::parse_i64(&argv[j + 1]) {
                Some(n) => count = n.max(0),
                None => return Reply::error(errors::NOT_INTEGER),
            }
            j += 2;
        } else {
            return Reply::error(errors::SYNTAX);
        }
    }
    let stream = match read_stream(ctx, &argv[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Reply::NilArray;
    }
    let limit = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    if start > end {
        return Reply::Array(Vec::new());
    }
    let from = lower_bound(&stream, start);
    let to = stream.entries.partition_point(|e| e.id <= end);
    let slice = &stream.entries[from..to.max(from)];
    let items: Vec<Reply> = if rev {
        slice.iter().rev().take(limit).map(entry_reply).collect()
    } else {
        slice.iter().take(limit).map(entry_reply).collect()
    };
    Reply::Array(items)
}

fn xrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    xrange_generic(ctx, argv, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    xrange_generic(ctx, argv, true)
}

fn xdel(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let stream = match write_stream(ctx.store, ctx.db, &argv[1], ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s,
    };
    let mut ids = Vec::with_capacity(argv.len() - 2);
    for arg in &argv[2..] {
        match parse_strict(arg) {
            Ok(id) => ids.push(id),
            Err(e) => return e,
        }
    }
    let mut deleted = 0u64;
    for id in ids {
        if let Ok(index) = stream.entries.binary_search_by(|e| e.id.cmp(&id)) {
            stream.entries.remove(index);
            if id > stream.max_deleted_id {
                stream.max_deleted_id = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        refresh_first_id(stream);
    }
    ctx.changed(deleted);
    Reply::Int(deleted as i64)
}

// ---------------------------------------------------------------------------------------
// Consumer groups: lookups.

fn group_index(stream: &Stream, name: &[u8]) -> Option<usize> {
    stream.groups.iter().position(|g| g.name == name)
}

fn consumer_index(group: &ConsumerGroup, name: &[u8]) -> Option<usize> {
    group.consumers.iter().position(|c| c.name == name)
}

/// Adds a consumer (groups keep consumers in name order, as Redis's radix tree does).
fn create_consumer(group: &mut ConsumerGroup, name: &[u8], now_ms: i64) -> usize {
    let at = group.consumers.partition_point(|c| c.name.as_ref() < name);
    group.consumers.insert(
        at,
        Consumer {
            name: own(name),
            seen_time_ms: now_ms,
            active_time_ms: now_ms,
            pending: Vec::new(),
        },
    );
    at
}

/// `streamLookupConsumer` with refresh: marks the consumer seen now.
fn touch_consumer(group: &mut ConsumerGroup, index: usize, now_ms: i64) {
    let consumer = &mut group.consumers[index];
    consumer.seen_time_ms = now_ms;
    consumer.active_time_ms = now_ms;
}

fn insert_sorted(ids: &mut Vec<StreamId>, id: StreamId) {
    if let Err(at) = ids.binary_search(&id) {
        ids.insert(at, id);
    }
}

fn remove_sorted(ids: &mut Vec<StreamId>, id: StreamId) -> bool {
    match ids.binary_search(&id) {
        Ok(at) => {
            ids.remove(at);
            true
        }
        Err(_) => false,
    }
}

/// The consumer owning pending entry `id`.
fn owner_of(group: &ConsumerGroup, id: StreamId) -> Option<usize> {
    group
        .consumers
        .iter()
        .position(|c| c.pending.binary_search(&id).is_ok())
}

fn pel_index(group: &ConsumerGroup, id: StreamId) -> Result<usize, usize> {
    group.pending.binary_search_by(|p| p.id.cmp(&id))
}

fn nogroup(key: &[u8], group: &[u8]) -> Reply {
    Reply::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// `XCLAIM <key> <group> <consumer> 0 <id> TIME <ms> RETRYCOUNT <n> FORCE JUSTID LASTID
/// <group-last-id>` (`streamPropagateXCLAIM`).
fn xclaim_command(
    key: &Bytes,
    group_name: &Bytes,
    consumer: &Bytes,
    id: Bytes,
    pending: &PendingEntry,
    group_last_id: StreamId,
) -> Vec<Bytes> {
    vec![
        upper("XCLAIM"),
        key.clone(),
        group_name.clone(),
        consumer.clone(),
        Bytes::from_static(b"0"),
        id,
        upper("TIME"),
        Bytes::from(pending.delivery_time_ms.to_string()),
        upper("RETRYCOUNT"),
        Bytes::from(pending.delivery_count.to_string()),
        upper("FORCE"),
        upper("JUSTID"),
        upper("LASTID"),
        id_arg(group_last_id),
    ]
}

/// `XGROUP SETID <key> <group> <last-id> ENTRIESREAD <n>` (`streamPropagateGroupID`).
fn setid_command(key: &Bytes, group_name: &Bytes, group: &ConsumerGroup) -> Vec<Bytes> {
    let read = group
        .entries_read
        .map_or_else(|| "-1".to_string(), |n| n.to_string());
    vec![
        upper("XGROUP"),
        upper("SETID"),
        key.clone(),
        group_name.clone(),
        id_arg(group.last_id),
        upper("ENTRIESREAD"),
        Bytes::from(read),
    ]
}

// ---------------------------------------------------------------------------------------
// XREAD / XREADGROUP.

fn xread(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    xread_generic(ctx, argv, false)
}

fn xreadgroup(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    xread_generic(ctx, argv, true)
}

fn xread_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], group_form: bool) -> Reply {
    let mut count = 0usize;
    let mut block = false;
    let mut streams_arg = 0;
    let mut group: Option<(Bytes, Bytes)> = None;
    let mut noack = false;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let opt = argv[i].as_ref();
        if opt.eq_ignore_ascii_case(b"block") && more > 0 {
            i += 1;
            match args::parse_i64(&argv[i]) {
                None => return Reply::error("ERR timeout is not an integer or out of range"),
                Some(t) if t < 0 => return Reply::error("ERR timeout is negative"),
                Some(_) => block = true,
            }
        } else if opt.eq_ignore_ascii_case(b"count") && more > 0 {
            i += 1;
            match args::parse_i64(&argv[i]) {
                None => return Reply::error(errors::NOT_INTEGER),
                Some(n) => count = usize::try_from(n.max(0)).unwrap_or(usize::MAX),
            }
        } else if opt.eq_ignore_ascii_case(b"streams") && more > 0 {
            streams_arg = i + 1;
            if !(argv.len() - streams_arg).is_multiple_of(2) {
                return Reply::error(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                );
            }
            break;
        } else if opt.eq_ignore_ascii_case(b"group") && more >= 2 {
            if !group_form {
                return Reply::error(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                );
            }
            group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"noack") {
            if !group_form {
                return Reply::error(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                );
            }
            noack = true;
        } else {
            return Reply::error(errors::SYNTAX);
        }
        i += 1;
    }
    if streams_arg == 0 {
        return Reply::error(errors::SYNTAX);
    }
    if group_form && group.is_none() {
        return Reply::error("ERR Missing GROUP option for XREADGROUP");
    }
    let n = (argv.len() - streams_arg) / 2;
    let keys = &argv[streams_arg..streams_arg + n];
    let id_args = &argv[streams_arg + n..];

    // Resolve IDs (and check keys and groups) in argument order, as Redis does.
    let mut ids = Vec::with_capacity(n);
    for (key, id_arg) in keys.iter().zip(id_args) {
        let stream = match read_stream(ctx, key) {
            Ok(s) => s,
            Err(e) => return e,
        };
        if let Some((group_name, _)) = &group
            && stream
                .as_ref()
                .is_none_or(|s| group_index(s, group_name).is_none())
        {
            return Reply::error(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(group_name)
            ));
        }
        let id = match id_arg.as_ref() {
            b"$" => {
                if group_form {
                    return Reply::error(
                        "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                    );
                }
                stream.map_or(ZERO_ID, |s| s.last_id)
            }
            b">" => {
                if !group_form {
                    return Reply::error(
                        "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                    );
                }
                MAX_ID
            }
            other => match parse_strict(other) {
                Ok(id) => id,
                Err(e) => return e,
            },
        };
        ids.push(id);
    }
    if block {
        return Reply::error(
            "ERR BLOCK is not supported: XREAD and XREADGROUP only serve what is available now",
        );
    }

    let mut served = Vec::new();
    let mut propagate = Vec::new();
    for (key, gt) in keys.iter().zip(ids) {
        let result = match &group {
            None => match read_stream(ctx, key) {
                Ok(Some(stream)) => read_after(&stream, gt, count),
                _ => None,
            },
            Some((group_name, _)) if gt == MAX_ID && !has_undelivered(ctx, key, group_name) => {
                // Nothing new for the group: no write (and no copy of a snapshot-shared
                // stream).
                None
            }
            Some((group_name, consumer_name)) => {
                let now_ms = ctx.now_ms;
                let mut dirty = 0;
                let result = match write_stream(ctx.store, ctx.db, key, now_ms) {
                    Ok(Some(stream)) => read_group(
                        stream,
                        GroupRead {
                            key,
                            group_name,
                            consumer_name,
                            gt,
                            count,
                            noack,
                            now_ms,
                        },
                        &mut propagate,
                        &mut dirty,
                    ),
                    _ => None,
                };
                ctx.changed(dirty);
                result
            }
        };
        if let Some(entries) = result {
            served.push((Reply::Bulk(key.clone()), entries));
        }
    }
    if group.is_some() {
        // The reads propagate as the commands gathered above, never as XREADGROUP.
        ctx.rewrite(propagate);
    }
    if served.is_empty() {
        Reply::NilArray
    } else {
        Reply::KeyedArrays(served)
    }
}

/// True when the stream at `key` has entries after the last one delivered to `group_name`.
fn has_undelivered(ctx: &mut Ctx<'_>, key: &[u8], group_name: &[u8]) -> bool {
    let Ok(Some(stream)) = read_stream(ctx, key) else {
        return false;
    };
    let (Some(last), Some(gi)) = (stream.entries.last(), group_index(&stream, group_name)) else {
        return false;
    };
    last.id > stream.groups[gi].last_id
}

/// Plain XREAD of one stream: entries after `gt`, `None` when there are none.
fn read_after(stream: &Stream, gt: StreamId, count: usize) -> Option<Reply> {
    let last = stream.entries.last()?;
    if last.id <= gt {
        return None;
    }
    let start = incr_id(gt).unwrap_or(ZERO_ID);
    let from = lower_bound(stream, start);
    let limit = if count == 0 { usize::MAX } else { count };
    Some(Reply::Array(
        stream.entries[from..]
            .iter()
            .take(limit)
            .map(entry_reply)
            .collect(),
    ))
}

struct GroupRead<'a> {
    key: &'a Bytes,
    group_name: &'a Bytes,
    consumer_name: &'a Bytes,
    /// `MAX_ID` for `>`, otherwise the history position.
    gt: StreamId,
    count: usize,
    noack: bool,
    now_ms: i64,
}

/// XREADGROUP of one stream; `None` when nothing is served (then nothing changes).
fn read_group(
    stream: &mut Stream,
    r: GroupRead<'_>,
    propagate: &mut Vec<Vec<Bytes>>,
    dirty: &mut u64,
) -> Option<Reply> {
    let gi = group_index(stream, r.group_name)?;
    let history = r.gt != MAX_ID;
    let gt = if history {
        r.gt
    } else {
        let last_valid = stream.entries.last()?.id;
        if last_valid <= stream.groups[gi].last_id {
            return None;
        }
        stream.groups[gi].last_id
    };
    let start = incr_id(gt).unwrap_or(ZERO_ID);
    let limit = if r.count == 0 { usize::MAX } else { r.count };

    let ci = match consumer_index(&stream.groups[gi], r.consumer_name) {
        Some(ci) => {
            touch_consumer(&mut stream.groups[gi], ci, r.now_ms);
            ci
        }
        None => {
            let ci = create_consumer(&mut stream.groups[gi], r.consumer_name, r.now_ms);
            *dirty += 1;
            if r.noack {
                propagate.push(vec![
                    upper("XGROUP"),
                    upper("CREATECONSUMER"),
                    r.key.clone(),
                    r.group_name.clone(),
                    r.consumer_name.clone(),
                ]);
            }
            ci
        }
    };
    *dirty += 1;

    if history {
        // The consumer's own pending entries after `gt`, re-delivered.
        let group = &mut stream.groups[gi];
        let ids: Vec<StreamId> = group.consumers[ci]
            .pending
            .iter()
            .copied()
            .filter(|id| *id >= start)
            .take(limit)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match find_entry_in(&stream.entries, id) {
                Some(entry) => {
                    out.push(entry_reply(entry));
                    if let Ok(p) = pel_index(&stream.groups[gi], id) {
                        let pending = &mut stream.groups[gi].pending[p];
                        pending.delivery_time_ms = r.now_ms;
                        pending.delivery_count += 1;
                    }
                }
                // Acknowledged-not-yet but deleted from the stream: the ID with a nil body.
                None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
            }
        }
        return Some(Reply::Array(out));
    }

    let from = lower_bound(stream, start);
    let to = (from.saturating_add(limit)).min(stream.entries.len());
    let mut out = Vec::with_capacity(to - from);
    let mut moved_last_id = false;
    for index in from..to {
        let id = stream.entries[index].id;
        out.push(entry_reply(&stream.entries[index]));
        if id > stream.groups[gi].last_id {
            let valid_counter =
                stream.groups[gi].entries_read.is_some() && !range_has_tombstones(stream, id);
            if valid_counter {
                if let Some(read) = stream.groups[gi].entries_read.as_mut() {
                    *read += 1;
                }
            } else if stream.entries_added > 0 {
                stream.groups[gi].entries_read = estimate_distance(stream, id);
            }
            stream.groups[gi].last_id = id;
            moved_last_id = true;
        }
        if r.noack {
            continue;
        }
        let group = &mut stream.groups[gi];
        let pending = match pel_index(group, id) {
            Err(at) => {
                group.pending.insert(
                    at,
                    PendingEntry {
                        id,
                        delivery_time_ms: r.now_ms,
                        delivery_count: 1,
                    },
                );
                at
            }
            Ok(at) => {
                // Already pending (the group's ID was moved back): the entry changes owner.
                if let Some(owner) = owner_of(group, id) {
                    remove_sorted(&mut group.consumers[owner].pending, id);
                }
                group.pending[at].delivery_time_ms = r.now_ms;
                group.pending[at].delivery_count = 1;
                at
            }
        };
        insert_sorted(&mut group.consumers[ci].pending, id);
        propagate.push(xclaim_command(
            r.key,
            r.group_name,
            &group.consumers[ci].name,
            id_arg(id),
            &group.pending[pending],
            group.last_id,
        ));
    }
    if moved_last_id {
        propagate.push(setid_command(r.key, r.group_name, &stream.groups[gi]));
    }
    Some(Reply::Array(out))
}

fn find_entry_in(entries: &[StreamEntry], id: StreamId) -> Option<&StreamEntry> {
    entries
        .binary_search_by(|e| e.id.cmp(&id))
        .ok()
        .map(|i| &entries[i])
}

// ---------------------------------------------------------------------------------------
// XGROUP.

/// Checks a container command's subcommand and arity as Redis's command lookup does.
fn check_subcommand(container: &'static str, argv: &[Bytes]) -> Result<&'static str, Reply> {
    let table = if container == "xgroup" {
        XGROUP_SUBCOMMANDS
    } else {
        XINFO_SUBCOMMANDS
    };
    Ok(super::find_subcommand(container, table, argv)?.name)
}

fn subcommand_syntax_error(container: &str, argv: &[Bytes]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&argv[1][..argv[1].len().min(128)]),
        container.to_ascii_uppercase()
    ))
}

fn help(container: &str, lines: &[&'static str]) -> Reply {
    let mut out = vec![Reply::Simple(
        format!(
            "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            container.to_ascii_uppercase()
        )
        .into(),
    )];
    out.extend(lines.iter().map(|l| Reply::Simple((*l).into())));
    out.push(Reply::Simple("HELP".into()));
    out.push(Reply::Simple("    Prints this help.".into()));
    Reply::Array(out)
}

fn xgroup(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let sub = match check_subcommand("xgroup", argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if sub == "help" {
        return help(
            "xgroup",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        );
    }
    let (key, group_name) = (&argv[2], &argv[3]);
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    let mut i = 5;
    while i < argv.len() {
        if sub == "create" && argv[i].eq_ignore_ascii_case(b"mkstream") {
            mkstream = true;
            i += 1;
        } else if matches!(sub, "create" | "setid")
            && argv[i].eq_ignore_ascii_case(b"entriesread")
            && i + 1 < argv.len()
        {
            entries_read = match args::parse_i64(&argv[i + 1]) {
                None => return Reply::error(errors::NOT_INTEGER),
                Some(n) if n < -1 => {
                    return Reply::error("ERR value for ENTRIESREAD must be positive or -1");
                }
                Some(n) => n,
            };
            i += 2;
        } else {
            return subcommand_syntax_error("xgroup", argv);
        }
    }
    let stream = match read_stream(ctx, key) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !mkstream {
        let Some(stream) = &stream else {
            return Reply::error(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            );
        };
        if group_index(stream, group_name).is_none() && sub != "create" && sub != "destroy" {
            return Reply::error(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(group_name),
                String::from_utf8_lossy(key)
            ));
        }
    }
    let entries_read = u64::try_from(entries_read).ok();
    let now_ms = ctx.now_ms;
    match sub {
        "create" => {
            if argv.len() > 8 {
                return subcommand_syntax_error("xgroup", argv);
            }
            let id = if argv[4].as_ref() == b"$" {
                stream.as_ref().map_or(ZERO_ID, |s| s.last_id)
            } else {
                match parse_strict(&argv[4]) {
                    Ok(id) => id,
                    Err(e) => return e,
                }
            };
            if stream.is_none() {
                ctx.store.insert(
                    ctx.db,
                    own(key),
                    Value::Stream(Arc::new(Stream::default())),
                    None,
                );
            }
            let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, now_ms) else {
                return wrongtype();
            };
            if group_index(stream, group_name).is_some() {
                return Reply::error("BUSYGROUP Consumer Group name already exists");
            }
            let at = stream
                .groups
                .partition_point(|g| g.name.as_ref() < group_name.as_ref());
            stream.groups.insert(
                at,
                ConsumerGroup {
                    name: own(group_name),
                    last_id: id,
                    entries_read,
                    pending: Vec::new(),
                    consumers: Vec::new(),
                },
            );
            ctx.changed(1);
            Reply::Ok
        }
        "setid" => {
            if argv.len() != 5 && argv.len() != 7 {
                return subcommand_syntax_error("xgroup", argv);
            }
            let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, now_ms) else {
                return wrongtype();
            };
            let id = if argv[4].as_ref() == b"$" {
                stream.last_id
            } else {
                match parse_id(&argv[4], 0, false, false) {
                    Ok((id, _)) => id,
                    Err(e) => return e,
                }
            };
            let Some(gi) = group_index(stream, group_name) else {
                return nogroup(key, group_name);
            };
            stream.groups[gi].last_id = id;
            stream.groups[gi].entries_read = entries_read;
            ctx.changed(1);
            Reply::Ok
        }
        "destroy" => {
            if argv.len() != 4 {
                return subcommand_syntax_error("xgroup", argv);
            }
            let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, now_ms) else {
                return wrongtype();
            };
            match group_index(stream, group_name) {
                Some(gi) => {
                    stream.groups.remove(gi);
                    ctx.changed(1);
                    Reply::Int(1)
                }
                None => Reply::Int(0),
            }
        }
        "createconsumer" => {
            let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, now_ms) else {
                return wrongtype();
            };
            let Some(gi) = group_index(stream, group_name) else {
                return nogroup(key, group_name);
            };
            if consumer_index(&stream.groups[gi], &argv[4]).is_some() {
                Reply::Int(0)
            } else {
                create_consumer(&mut stream.groups[gi], &argv[4], now_ms);
                ctx.changed(1);
                Reply::Int(1)
            }
        }
        _ => {
            // delconsumer
            let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, now_ms) else {
                return wrongtype();
            };
            let Some(gi) = group_index(stream, group_name) else {
                return nogroup(key, group_name);
            };
            let group = &mut stream.groups[gi];
            match consumer_index(group, &argv[4]) {
                None => Reply::Int(0),
                Some(ci) => {
                    let consumer = group.consumers.remove(ci);
                    group
                        .pending
                        .retain(|p| consumer.pending.binary_search(&p.id).is_err());
                    ctx.changed(1);
                    Reply::Int(consumer.pending.len() as i64)
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// XSETID / XACK / XPENDING / XCLAIM.

fn xsetid(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let id = match parse_strict(&argv[2]) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = ZERO_ID;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if argv[i].eq_ignore_ascii_case(b"entriesadded") && more > 0 {
            match args::parse_i64(&argv[i + 1]) {
                None => return Reply::error(errors::NOT_INTEGER),
                Some(n) if n < 0 => return Reply::error("ERR entries_added must be positive"),
                Some(n) => entries_added = Some(n as u64),
            }
            i += 2;
        } else if argv[i].eq_ignore_ascii_case(b"maxdeletedid") && more > 0 {
            max_deleted = match parse_strict(&argv[i + 1]) {
                Ok(m) => m,
                Err(e) => return e,
            };
            if id < max_deleted {
                return Reply::error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
            }
            i += 2;
        } else {
            return Reply::error(errors::SYNTAX);
        }
    }
    let stream = match write_stream(ctx.store, ctx.db, &argv[1], ctx.now_ms) {
        Err(e) => return e,
        Ok(None) => return Reply::error(errors::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    if let Some(last) = stream.entries.last() {
        if id < last.id {
            return Reply::error(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added.is_some_and(|n| (stream.entries.len() as u64) > n) {
            return Reply::error(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    stream.last_id = id;
    if let Some(n) = entries_added {
        stream.entries_added = n;
    }
    if max_deleted != ZERO_ID {
        stream.max_deleted_id = max_deleted;
    }
    ctx.changed(1);
    Reply::Ok
}

fn xack(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let (key, group_name) = (&argv[1], &argv[2]);
    match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) if group_index(&s, group_name).is_none() => return Reply::Int(0),
        Ok(Some(_)) => {}
    }
    let mut ids = Vec::with_capacity(argv.len() - 3);
    for arg in &argv[3..] {
        match parse_strict(arg) {
            Ok(id) => ids.push(id),
            Err(e) => return e,
        }
    }
    let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, ctx.now_ms) else {
        return Reply::Int(0);
    };
    let Some(gi) = group_index(stream, group_name) else {
        return Reply::Int(0);
    };
    let group = &mut stream.groups[gi];
    let mut acknowledged = 0u64;
    for id in ids {
        if let Ok(at) = pel_index(group, id) {
            group.pending.remove(at);
            if let Some(owner) = owner_of(group, id) {
                remove_sorted(&mut group.consumers[owner].pending, id);
            }
            acknowledged += 1;
        }
    }
    ctx.changed(acknowledged);
    Reply::Int(acknowledged as i64)
}

fn xpending(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let (key, group_name) = (&argv[1], &argv[2]);
    let argc = argv.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Reply::error(errors::SYNTAX);
    }
    let mut range = None;
    if argc >= 6 {
        let mut start_idx = 3;
        let mut min_idle = 0i64;
        if argv[3].eq_ignore_ascii_case(b"idle") {
            min_idle = match args::parse_i64(&argv[4]) {
                Some(n) => n,
                None => return Reply::error(errors::NOT_INTEGER),
            };
            if argc < 8 {
                return Reply::error(errors::SYNTAX);
            }
            start_idx += 2;
        }
        let count = match args::parse_i64(&argv[start_idx + 2]) {
            Some(n) => n.max(0) as u64,
            None => return Reply::error(errors::NOT_INTEGER),
        };
        let (start, end) = match parse_range(&argv[start_idx], &argv[start_idx + 1]) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let consumer = argv.get(start_idx + 3).cloned();
        range = Some((start, end, count, min_idle, consumer));
    }
    let stream = match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(s) => s,
    };
    let Some((stream, gi)) = stream.and_then(|s| group_index(&s, group_name).map(|gi| (s, gi)))
    else {
        return nogroup(key, group_name);
    };
    let group = &stream.groups[gi];
    let Some((start, end, count, min_idle, consumer)) = range else {
        let (Some(first), Some(last)) = (group.pending.first(), group.pending.last()) else {
            return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
        };
        let per_consumer = group
            .consumers
            .iter()
            .filter(|c| !c.pending.is_empty())
            .map(|c| {
                Reply::Array(vec![
                    Reply::Bulk(c.name.clone()),
                    Reply::bulk(c.pending.len().to_string()),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::Int(group.pending.len() as i64),
            id_reply(first.id),
            id_reply(last.id),
            Reply::Array(per_consumer),
        ]);
    };
    let owned: Option<&Consumer> = match &consumer {
        None => None,
        Some(name) => match consumer_index(group, name) {
            Some(ci) => Some(&group.consumers[ci]),
            None => return Reply::Array(Vec::new()),
        },
    };
    let now = ctx.now_ms;
    let mut out = Vec::new();
    let mut remaining = count;
    for pending in &group.pending {
        if remaining == 0 || pending.id > end {
            break;
        }
        if pending.id < start {
            continue;
        }
        if owned.is_some_and(|c| c.pending.binary_search(&pending.id).is_err()) {
            continue;
        }
        if min_idle > 0 && now - pending.delivery_time_ms < min_idle {
            continue;
        }
        remaining -= 1;
        let owner = owned
            .map(|c| c.name.clone())
            .or_else(|| owner_of(group, pending.id).map(|ci| group.consumers[ci].name.clone()))
            .unwrap_or_default();
        out.push(Reply::Array(vec![
            id_reply(pending.id),
            Reply::Bulk(owner),
            Reply::Int((now - pending.delivery_time_ms).max(0)),
            Reply::Int(pending.delivery_count as i64),
        ]));
    }
    Reply::Array(out)
}

fn xclaim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let (key, group_name, consumer_name) = (&argv[1], &argv[2], &argv[3]);
    match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(Some(s)) if group_index(&s, group_name).is_some() => {}
        Ok(_) => return nogroup(key, group_name),
    }
    let Some(min_idle) = args::parse_i64(&argv[4]) else {
        return Reply::error("ERR Invalid min-idle-time argument for XCLAIM");
    };
    let min_idle = min_idle.max(0);
    // IDs run until the first argument that is not one; options follow.
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_strict(&argv[j]) {
            Ok(id) => ids.push((id, argv[j].clone())),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let (mut force, mut justid) = (false, false);
    let mut delivery_time: Option<i64> = None;
    let mut retry_count: Option<i64> = None;
    let mut last_id = ZERO_ID;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = argv[j].as_ref();
        let number = |arg: &[u8], what: &str| {
            args::parse_i64(arg).ok_or_else(|| {
                Reply::error(format!("ERR Invalid {what} option argument for XCLAIM"))
            })
        };
        if opt.eq_ignore_ascii_case(b"force") {
            force = true;
        } else if opt.eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else if opt.eq_ignore_ascii_case(b"idle") && more > 0 {
            j += 1;
            match number(&argv[j], "IDLE") {
                Ok(idle) => delivery_time = Some(now.wrapping_sub(idle)),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"time") && more > 0 {
            j += 1;
            match number(&argv[j], "TIME") {
                Ok(t) => delivery_time = Some(t),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"retrycount") && more > 0 {
            j += 1;
            match number(&argv[j], "RETRYCOUNT") {
                Ok(n) => retry_count = Some(n),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"lastid") && more > 0 {
            j += 1;
            match parse_strict(&argv[j]) {
                Ok(id) => last_id = id,
                Err(e) => return e,
            }
        } else {
            return Reply::error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            ));
        }
        j += 1;
    }
    // A bogus delivery time (negative, or in the future) becomes now, as in Redis.
    let delivery_time = match delivery_time {
        Some(t) if (0..=now).contains(&t) => t,
        _ => now,
    };

    let Ok(Some(stream)) = write_stream(ctx.store, ctx.db, key, now) else {
        return nogroup(key, group_name);
    };
    let Some(gi) = group_index(stream, group_name) else {
        return nogroup(key, group_name);
    };
    let mut dirty = 0u64;
    let mut propagate = Vec::new();
    let mut propagate_last_id = false;
    if last_id > stream.groups[gi].last_id {
        stream.groups[gi].last_id = last_id;
        propagate_last_id = true;
    }
    let mut consumer: Option<usize> = None;
    let mut out = Vec::new();
    for (id, id_text) in ids {
        let exists = find_entry(stream, id).is_some();
        let group = &mut stream.groups[gi];
        let mut pel = pel_index(group, id).ok();
        if !exists {
            // The entry is gone: drop its pending entry (and propagate that).
            if let Some(at) = pel {
                let owner = owner_of(group, id);
                let owner_name = owner
                    .map(|o| group.consumers[o].name.clone())
                    .unwrap_or_default();
                propagate.push(xclaim_command(
                    key,
                    group_name,
                    &owner_name,
                    id_text,
                    &group.pending[at],
                    group.last_id,
                ));
                propagate_last_id = false;
                dirty += 1;
                group.pending.remove(at);
                if let Some(o) = owner {
                    remove_sorted(&mut group.consumers[o].pending, id);
                }
            }
            continue;
        }
        let mut previous_owner = pel.and_then(|_| owner_of(group, id));
        if force && pel.is_none() {
            let at = pel_index(group, id).unwrap_or_else(|at| at);
            group.pending.insert(
                at,
                PendingEntry {
                    id,
                    delivery_time_ms: now,
                    delivery_count: 1,
                },
            );
            pel = Some(at);
            previous_owner = None;
        }
        let Some(at) = pel else {
            continue;
        };
        // A pending entry created just now by FORCE has no owner and ignores min-idle.
        if previous_owner.is_some()
            && min_idle > 0
            && now - group.pending[at].delivery_time_ms < min_idle
        {
            continue;
        }
        let ci = match consumer {
            Some(ci) => ci,
            None => {
                let ci = match consumer_index(group, consumer_name) {
                    Some(ci) => {
                        touch_consumer(group, ci, now);
                        ci
                    }
                    None => {
                        dirty += 1;
                        create_consumer(group, consumer_name, now)
                    }
                };
                consumer = Some(ci);
                ci
            }
        };
        // Creating the consumer may have shifted indexes: find the owner again.
        let previous_owner = previous_owner.and_then(|_| owner_of(group, id));
        if previous_owner != Some(ci)
            && let Some(o) = previous_owner
        {
            remove_sorted(&mut group.consumers[o].pending, id);
        }
        group.pending[at].delivery_time_ms = delivery_time;
        match retry_count {
            Some(n) if n >= 0 => group.pending[at].delivery_count = n as u64,
            _ if !justid => group.pending[at].delivery_count += 1,
            _ => {}
        }
        insert_sorted(&mut group.consumers[ci].pending, id);
        if justid {
            out.push(id_reply(id));
        } else if let Some(entry) = find_entry_in(&stream.entries, id) {
            out.push(entry_reply(entry));
        }
        let group = &stream.groups[gi];
        propagate.push(xclaim_command(
            key,
            group_name,
            &group.consumers[ci].name,
            id_text,
            &group.pending[at],
            group.last_id,
        ));
        propagate_last_id = false;
        dirty += 1;
    }
    if propagate_last_id {
        propagate.push(setid_command(key, group_name, &stream.groups[gi]));
        dirty += 1;
    }
    ctx.changed(dirty);
    ctx.rewrite(propagate);
    Reply::Array(out)
}

// ---------------------------------------------------------------------------------------
// XINFO.

fn xinfo(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    let sub = match check_subcommand("xinfo", argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if sub == "help" {
        return help(
            "xinfo",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        );
    }
    let key = &argv[2];
    let stream = match read_stream(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::error(errors::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    let now = ctx.now_ms;
    let text = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    match sub {
        "consumers" => {
            let Some(gi) = group_index(&stream, &argv[3]) else {
                return Reply::error(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(&argv[3]),
                    String::from_utf8_lossy(key)
                ));
            };
            Reply::Array(
                stream.groups[gi]
                    .consumers
                    .iter()
                    .map(|c| {
                        Reply::Map(vec![
                            (text("name"), Reply::Bulk(c.name.clone())),
                            (text("pending"), Reply::Int(c.pending.len() as i64)),
                            (text("idle"), Reply::Int((now - c.seen_time_ms).max(0))),
                        ])
                    })
                    .collect(),
            )
        }
        "groups" => Reply::Array(
            stream
                .groups
                .iter()
                .map(|g| {
                    Reply::Map(vec![
                        (text("name"), Reply::Bulk(g.name.clone())),
                        (text("consumers"), Reply::Int(g.consumers.len() as i64)),
                        (text("pending"), Reply::Int(g.pending.len() as i64)),
                        (text("last-delivered-id"), id_reply(g.last_id)),
                        (
                            text("entries-read"),
                            g.entries_read.map_or(Reply::Nil, |n| Reply::Int(n as i64)),
                        ),
                        (text("lag"), group_lag(&stream, g)),
                    ])
                })
                .collect(),
        ),
        _ => xinfo_stream(&stream, &argv[3..], argv),
    }
}

fn xinfo_stream(stream: &Stream, options: &[Bytes], argv: &[Bytes]) -> Reply {
    let text = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    let mut full = false;
    let mut count: i64 = 10;
    if !options.is_empty() {
        if (options.len() != 1 && options.len() != 3) || !options[0].eq_ignore_ascii_case(b"full") {
            return subcommand_syntax_error("xinfo", argv);
        }
        if options.len() == 3 {
            if !options[1].eq_ignore_ascii_case(b"count") {
                return subcommand_syntax_error("xinfo", argv);
            }
            count = match args::parse_i64(&options[2]) {
                Some(n) if n < 0 => 10,
                Some(n) => n,
                None => return Reply::error(errors::NOT_INTEGER),
            };
        }
        full = true;
    }
    // Estimates: Redis stores up to 100 entries per radix-tree key.
    let keys = (stream.entries.len() as u64).div_ceil(NODE_ENTRIES);
    let mut fields = vec![
        (text("length"), Reply::Int(stream.entries.len() as i64)),
        (text("radix-tree-keys"), Reply::Int(keys as i64)),
        (text("radix-tree-nodes"), Reply::Int(keys as i64 + 1)),
        (text("last-generated-id"), id_reply(stream.last_id)),
        (
            text("max-deleted-entry-id"),
            id_reply(stream.max_deleted_id),
        ),
        (
            text("entries-added"),
            Reply::Int(stream.entries_added as i64),
        ),
        (text("recorded-first-entry-id"), id_reply(stream.first_id)),
    ];
    let limit = |n: usize| if count == 0 { n } else { n.min(count as usize) };
    if !full {
        fields.push((text("groups"), Reply::Int(stream.groups.len() as i64)));
        fields.push((
            text("first-entry"),
            stream.entries.first().map_or(Reply::Nil, entry_reply),
        ));
        fields.push((
            text("last-entry"),
            stream.entries.last().map_or(Reply::Nil, entry_reply),
        ));
        return Reply::Map(fields);
    }
    fields.push((
        text("entries"),
        Reply::Array(
            stream.entries[..limit(stream.entries.len())]
                .iter()
                .map(entry_reply)
                .collect(),
        ),
    ));
    let groups = stream
        .groups
        .iter()
        .map(|g| {
            let pel = g.pending[..limit(g.pending.len())]
                .iter()
                .map(|p| {
                    let owner = owner_of(g, p.id)
                        .map(|ci| g.consumers[ci].name.clone())
                        .unwrap_or_default();
                    Reply::Array(vec![
                        id_reply(p.id),
                        Reply::Bulk(owner),
                        Reply::Int(p.delivery_time_ms),
                        Reply::Int(p.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|c| {
                    let pel = c.pending[..limit(c.pending.len())]
                        .iter()
                        .map(|id| {
                            let p = pel_index(g, *id).ok().map(|at| &g.pending[at]);
                            Reply::Array(vec![
                                id_reply(*id),
                                Reply::Int(p.map_or(0, |p| p.delivery_time_ms)),
                                Reply::Int(p.map_or(0, |p| p.delivery_count as i64)),
                            ])
                        })
                        .collect();
                    Reply::Map(vec![
                        (text("name"), Reply::Bulk(c.name.clone())),
                        (text("seen-time"), Reply::Int(c.seen_time_ms)),
                        (text("pel-count"), Reply::Int(c.pending.len() as i64)),
                        (text("pending"), Reply::Array(pel)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (text("name"), Reply::Bulk(g.name.clone())),
                (text("last-delivered-id"), id_reply(g.last_id)),
                (
                    text("entries-read"),
                    g.entries_read.map_or(Reply::Nil, |n| Reply::Int(n as i64)),
                ),
                (text("lag"), group_lag(stream, g)),
                (text("pel-count"), Reply::Int(g.pending.len() as i64)),
                (text("pending"), Reply::Array(pel)),
                (text("consumers"), Reply::Array(consumers)),
            ])
        })
        .collect();
    fields.push((text("groups"), Reply::Array(groups)));
    Reply::Map(fields)
}

#[cfg(test)]
mod tests {
    use super::super::Propagate;
    use super::super::tests::{Harness, argv, bulk};
    use super::*;

    fn commands(lines: &[&str]) -> Propagate {
        Propagate::Commands(lines.iter().map(|l| argv(l)).collect())
    }

    fn stream(h: &mut Harness, key: &str) -> Stream {
        match &h.store.get(0, key.as_bytes(), h.now_ms).unwrap().value {
            Value::Stream(s) => (**s).clone(),
            other => panic!("not a stream: {other:?}"),
        }
    }

    #[test]
    fn ids_parse_like_redis() {
        assert_eq!(
            parse_id(b"1-2", 0, true, false),
            Ok((StreamId::new(1, 2), true))
        );
        assert_eq!(
            parse_id(b"5", 7, true, false),
            Ok((StreamId::new(5, 7), true))
        );
        assert_eq!(
            parse_id(b"5-*", 0, true, true),
            Ok((StreamId::new(5, 0), false))
        );
        assert!(parse_id(b"5-*", 0, true, false).is_err());
        assert_eq!(parse_id(b"-", 0, false, false), Ok((ZERO_ID, true)));
        assert_eq!(parse_id(b"+", 0, false, false), Ok((MAX_ID, true)));
        assert!(parse_id(b"+", 0, true, false).is_err());
        // strtoull leniency that string2ull keeps.
        assert_eq!(parse_strict(b"+5-1"), Ok(StreamId::new(5, 1)));
        assert_eq!(parse_strict(b" 7-1"), Ok(StreamId::new(7, 1)));
        assert_eq!(parse_strict(b"05-1"), Ok(StreamId::new(5, 1)));
        assert_eq!(
            parse_strict(b"-0-5"),
            Err(Reply::error(INVALID_ID)),
            "ms part is empty"
        );
        assert_eq!(
            parse_strict(b"18446744073709551616-0"),
            Err(Reply::error(INVALID_ID))
        );
        assert_eq!(parse_strict(b"1-2-3"), Err(Reply::error(INVALID_ID)));
        assert_eq!(parse_strict(&[b'1'; 128]), Err(Reply::error(INVALID_ID)));
    }

    #[test]
    fn xadd_generates_ids_and_propagates_them() {
        let mut h = Harness::new();
        let now = h.now_ms;
        let e = h.run("XADD s * f v");
        let first = format!("{now}-0");
        assert_eq!(e.reply, bulk(&first));
        assert_eq!(e.propagate, commands(&[&format!("XADD s {first} f v")]));
        // Same millisecond: the sequence grows.
        let e = h.run("XADD s * f v");
        assert_eq!(e.reply, bulk(&format!("{now}-1")));
        // A clock behind the last ID never goes backwards.
        h.now_ms -= 10;
        assert_eq!(h.reply("XADD s * f v"), bulk(&format!("{now}-2")));
        h.now_ms += 10;
        let e = h.run(&format!("XADD s {} a b", now + 5));
        assert_eq!(e.reply, bulk(&format!("{}-0", now + 5)));
        assert_eq!(e.propagate, Propagate::Verbatim, "explicit ID: verbatim");
        let e = h.run(&format!("XADD s {}-* a b", now + 5));
        assert_eq!(e.reply, bulk(&format!("{}-1", now + 5)));
        assert_eq!(
            e.propagate,
            commands(&[&format!("XADD s {}-1 a b", now + 5)])
        );
        let e = h.run("XADD s NOMKSTREAM 1-1 a b");
        assert_eq!(e.propagate, Propagate::Nothing);
        assert!(e.reply.is_error());
        assert_eq!(h.reply("XADD nos NOMKSTREAM * f v"), Reply::Nil);
        assert!(h.store.get(0, b"nos", h.now_ms).is_none());
        assert_eq!(h.reply("XADD s * f"), wrong_arity("xadd"));

        let s = stream(&mut h, "s");
        assert_eq!(s.entries.len(), 5);
        assert_eq!(s.entries_added, 5);
        assert_eq!(s.first_id, StreamId::new(now as u64, 0));
        assert_eq!(s.last_id, StreamId::new(now as u64 + 5, 1));
    }

    #[test]
    fn approximate_trims_propagate_exactly() {
        let mut h = Harness::new();
        for i in 1..=250 {
            h.run(&format!("XADD s {i}-1 f v"));
        }
        // ~ drops whole blocks of 100 only.
        let e = h.run("XADD s MAXLEN ~ 120 251-1 f v");
        assert_eq!(
            e.propagate,
            commands(&["XADD s MAXLEN = 151 251-1 f v"]),
            "251 entries, one block of 100 dropped"
        );
        assert_eq!(h.reply("XLEN s"), Reply::Int(151));
        let e = h.run("XADD s MAXLEN ~ 100 LIMIT 50 * f v");
        let Propagate::Commands(cmds) = &e.propagate else {
            panic!()
        };
        assert_eq!(&cmds[0][..6], &argv("XADD s MAXLEN = 152 LIMIT")[..]);
        assert_eq!(
            h.reply("XLEN s"),
            Reply::Int(152),
            "LIMIT below a block: nothing dropped"
        );
        let e = h.run("XTRIM s MINID ~ 205-0");
        assert_eq!(e.reply, Reply::Int(100));
        assert_eq!(e.propagate, commands(&["XTRIM s MINID = 201-1"]));
        let e = h.run("XTRIM s MAXLEN = 10");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::Int(42), Propagate::Verbatim)
        );
        let e = h.run("XTRIM s MAXLEN ~ 5");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        let e = h.run("XTRIM s MINID ~ 999999999999-0");
        assert_eq!(e.propagate, Propagate::Nothing, "fewer than a block");
        assert_eq!(
            h.reply("XTRIM s MAXLEN = 5 LIMIT 10"),
            Reply::error("ERR syntax error, LIMIT cannot be used without the special ~ option")
        );
        // Replayed streams carry `= n LIMIT m` (Redis propagates LIMIT along): accepted there.
        let replayed = super::super::execute_replayed(
            &mut h.store,
            0,
            &argv("XADD s MAXLEN = 3 LIMIT 10000 1800000000000-1 f v"),
            h.now_ms,
            &mut h.rng,
        );
        assert_eq!(replayed.reply, bulk("1800000000000-1"));
        assert_eq!(h.reply("XLEN s"), Reply::Int(3));
        let s = stream(&mut h, "s");
        assert_eq!(s.first_id, s.entries[0].id, "first ID follows trimming");
        assert_eq!(s.max_deleted_id, ZERO_ID, "trimming is not deletion");
    }

    #[test]
    fn xdel_keeps_redis_bookkeeping() {
        let mut h = Harness::new();
        for i in 1..=4 {
            h.run(&format!("XADD s {i}-0 f v"));
        }
        assert_eq!(h.reply("XDEL s 3-0 9-0"), Reply::Int(1));
        let s = stream(&mut h, "s");
        assert_eq!(
            (s.max_deleted_id, s.first_id),
            (StreamId::new(3, 0), StreamId::new(1, 0))
        );
        assert_eq!(h.reply("XDEL s 1-0"), Reply::Int(1));
        let s = stream(&mut h, "s");
        assert_eq!(
            (s.max_deleted_id, s.first_id),
            (StreamId::new(3, 0), StreamId::new(2, 0))
        );
        assert_eq!(h.run("XDEL s 1-0").propagate, Propagate::Nothing);
        h.run("XDEL s 2-0 4-0");
        let s = stream(&mut h, "s");
        assert_eq!(
            (s.entries.len(), s.first_id, s.last_id),
            (0, ZERO_ID, StreamId::new(4, 0))
        );
        assert_eq!(s.entries_added, 4);
        assert!(
            h.store.get(0, b"s", h.now_ms).is_some(),
            "empty streams stay"
        );
        assert!(h.reply("XADD s 3-0 f v").is_error(), "IDs never go back");
    }

    #[test]
    fn xreadgroup_propagates_claims_and_group_position() {
        let mut h = Harness::new();
        for i in 1..=3 {
            h.run(&format!("XADD s {i}-0 f v{i}"));
        }
        let e = h.run("XGROUP CREATE s g 0");
        assert_eq!((e.reply, e.propagate), (Reply::Ok, Propagate::Verbatim));
        let now = h.now_ms;
        let e = h.run("XREADGROUP GROUP g alice COUNT 2 STREAMS s >");
        assert_eq!(
            e.propagate,
            commands(&[
                &format!("XCLAIM s g alice 0 1-0 TIME {now} RETRYCOUNT 1 FORCE JUSTID LASTID 1-0"),
                &format!("XCLAIM s g alice 0 2-0 TIME {now} RETRYCOUNT 1 FORCE JUSTID LASTID 2-0"),
                "XGROUP SETID s g 2-0 ENTRIESREAD 2",
            ])
        );
        let Reply::KeyedArrays(served) = e.reply else {
            panic!("{:?}", e.reply)
        };
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].0, bulk("s"));
        let e = h.run("XREADGROUP GROUP g bob NOACK STREAMS s >");
        assert_eq!(
            e.propagate,
            commands(&[
                "XGROUP CREATECONSUMER s g bob",
                "XGROUP SETID s g 3-0 ENTRIESREAD 3"
            ])
        );
        let e = h.run("XREADGROUP GROUP g carol STREAMS s >");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::NilArray, Propagate::Nothing)
        );
        // History reads re-deliver and propagate nothing (as Redis).
        h.now_ms += 50;
        let e = h.run("XREADGROUP GROUP g alice STREAMS s 0");
        assert_eq!(e.propagate, Propagate::Nothing);
        let s = stream(&mut h, "s");
        let g = &s.groups[0];
        assert_eq!(g.pending.len(), 2);
        assert_eq!(g.pending[0].delivery_count, 2);
        assert_eq!(g.pending[0].delivery_time_ms, h.now_ms);
        assert_eq!(g.entries_read, Some(3));
        assert_eq!(
            g.consumers.iter().map(|c| &c.name[..]).collect::<Vec<_>>(),
            [&b"alice"[..], b"bob"]
        );
        // Deleted entries show as nil bodies in history.
        h.run("XDEL s 1-0");
        let Reply::KeyedArrays(served) = h.reply("XREADGROUP GROUP g alice STREAMS s 0") else {
            panic!()
        };
        let Reply::Array(entries) = &served[0].1 else {
            panic!()
        };
        assert_eq!(entries[0], Reply::Array(vec![bulk("1-0"), Reply::NilArray]));
        assert_eq!(
            h.reply("XREADGROUP BLOCK 0 GROUP g alice STREAMS s >"),
            Reply::error(
                "ERR BLOCK is not supported: XREAD and XREADGROUP only serve what is available now"
            )
        );
    }

    #[test]
    fn xclaim_moves_ownership_and_propagates() {
        let mut h = Harness::new();
        for i in 1..=3 {
            h.run(&format!("XADD s {i}-0 f v{i}"));
        }
        h.run("XGROUP CREATE s g 0");
        h.run("XREADGROUP GROUP g alice STREAMS s >");
        h.now_ms += 1000;
        let now = h.now_ms;
        let e = h.run("XCLAIM s g bob 500 1-0 2-0 JUSTID");
        assert_eq!(e.reply, Reply::Array(vec![bulk("1-0"), bulk("2-0")]));
        assert_eq!(
            e.propagate,
            commands(&[
                &format!("XCLAIM s g bob 0 1-0 TIME {now} RETRYCOUNT 1 FORCE JUSTID LASTID 3-0"),
                &format!("XCLAIM s g bob 0 2-0 TIME {now} RETRYCOUNT 1 FORCE JUSTID LASTID 3-0"),
            ])
        );
        let e = h.run("XCLAIM s g carol 500 1-0");
        assert_eq!(
            (e.reply, e.propagate),
            (Reply::Array(vec![]), Propagate::Nothing),
            "not idle enough"
        );
        let e = h.run("XCLAIM s g carol 0 3-0 RETRYCOUNT 7 IDLE 100");
        let Reply::Array(claimed) = e.reply else {
            panic!()
        };
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            e.propagate,
            commands(&[&format!(
                "XCLAIM s g carol 0 3-0 TIME {} RETRYCOUNT 7 FORCE JUSTID LASTID 3-0",
                now - 100
            )])
        );
        // A claimed entry that was deleted leaves the PEL (propagated as an XCLAIM too).
        h.run("XDEL s 1-0");
        let e = h.run("XCLAIM s g carol 0 1-0");
        assert_eq!(e.reply, Reply::Array(vec![]));
        assert_eq!(e.dirty, 1);
        let s = stream(&mut h, "s");
        let g = &s.groups[0];
        assert_eq!(
            g.pending.iter().map(|p| p.id.ms).collect::<Vec<_>>(),
            [2, 3]
        );
        let owner = |name: &str| {
            g.consumers
                .iter()
                .find(|c| c.name == name.as_bytes())
                .unwrap()
        };
        assert!(owner("alice").pending.is_empty());
        assert_eq!(owner("bob").pending, [StreamId::new(2, 0)]);
        assert_eq!(owner("carol").pending, [StreamId::new(3, 0)]);
        // LASTID alone moves the group and propagates SETID.
        let e = h.run("XCLAIM s g carol 0 9-9 LASTID 5-0");
        assert_eq!(
            e.propagate,
            commands(&["XGROUP SETID s g 5-0 ENTRIESREAD 3"])
        );
        assert_eq!(h.reply("XACK s g 2-0 3-0 3-0"), Reply::Int(2));
        assert_eq!(
            h.reply("XPENDING s g"),
            Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray])
        );
    }

    #[test]
    fn xpending_extended_reports_idle_and_counts() {
        let mut h = Harness::new();
        h.run("XADD s 1-0 f v");
        h.run("XADD s 2-0 f v");
        h.run("XGROUP CREATE s g 0");
        h.run("XREADGROUP GROUP g alice COUNT 1 STREAMS s >");
        h.now_ms += 30;
        h.run("XREADGROUP GROUP g bob STREAMS s >");
        h.now_ms += 20;
        assert_eq!(
            h.reply("XPENDING s g - + 10"),
            Reply::Array(vec![
                Reply::Array(vec![
                    bulk("1-0"),
                    bulk("alice"),
                    Reply::Int(50),
                    Reply::Int(1)
                ]),
                Reply::Array(vec![
                    bulk("2-0"),
                    bulk("bob"),
                    Reply::Int(20),
                    Reply::Int(1)
                ]),
            ])
        );
        assert_eq!(
            h.reply("XPENDING s g IDLE 40 - + 10"),
            Reply::Array(vec![Reply::Array(vec![
                bulk("1-0"),
                bulk("alice"),
                Reply::Int(50),
                Reply::Int(1)
            ])])
        );
        assert_eq!(
            h.reply("XPENDING s g (1-0 + 10 bob"),
            Reply::Array(vec![Reply::Array(vec![
                bulk("2-0"),
                bulk("bob"),
                Reply::Int(20),
                Reply::Int(1)
            ])])
        );
        assert_eq!(
            h.reply("XPENDING s g - + 1 alice").to_owned(),
            h.reply("XPENDING s g - 1-0 5")
        );
    }

    #[test]
    fn xgroup_and_xsetid_keep_counters() {
        let mut h = Harness::new();
        h.run("XADD s 1-0 f v");
        h.run("XADD s 2-0 f v");
        h.run("XGROUP CREATE s g $ ENTRIESREAD 2");
        h.run("XGROUP CREATE s a 0");
        let s = stream(&mut h, "s");
        assert_eq!(
            s.groups
                .iter()
                .map(|g| (&g.name[..], g.last_id, g.entries_read))
                .collect::<Vec<_>>(),
            [
                (&b"a"[..], ZERO_ID, None),
                (&b"g"[..], StreamId::new(2, 0), Some(2))
            ],
            "groups in name order"
        );
        let e = h.run("XGROUP SETID s g 1-0");
        assert_eq!(e.propagate, Propagate::Verbatim);
        assert_eq!(
            stream(&mut h, "s").groups[1].entries_read,
            None,
            "SETID without ENTRIESREAD"
        );
        let e = h.run("XGROUP CREATECONSUMER s g c");
        assert_eq!((e.reply, e.dirty), (Reply::Int(1), 1));
        let e = h.run("XGROUP CREATECONSUMER s g c");
        assert_eq!((e.reply, e.propagate), (Reply::Int(0), Propagate::Nothing));
        assert_eq!(h.reply("XGROUP DESTROY s a"), Reply::Int(1));
        assert_eq!(h.run("XGROUP DESTROY s a").propagate, Propagate::Nothing);
        let e = h.run("XGROUP CREATE t g $ MKSTREAM");
        assert_eq!((e.reply, e.dirty), (Reply::Ok, 1));
        assert_eq!(
            stream(&mut h, "t"),
            Stream {
                groups: vec![ConsumerGroup {
                    name: Bytes::from_static(b"g"),
                    last_id: ZERO_ID,
                    entries_read: None,
                    pending: vec![],
                    consumers: vec![],
                }],
                ..Stream::default()
            }
        );
        assert_eq!(
            h.reply("XSETID s 9-0 ENTRIESADDED 7 MAXDELETEDID 3-0"),
            Reply::Ok
        );
        let s = stream(&mut h, "s");
        assert_eq!(
            (s.last_id, s.entries_added, s.max_deleted_id),
            (StreamId::new(9, 0), 7, StreamId::new(3, 0))
        );
        assert_eq!(
            h.reply("XSETID missing 1-0"),
            Reply::error(errors::NO_SUCH_KEY)
        );
        h.store.insert(
            0,
            own(b"str"),
            Value::String(Bytes::from_static(b"v")),
            None,
        );
        for cmd in [
            "XADD str * f v",
            "XLEN str",
            "XRANGE str - +",
            "XDEL str 1-0",
            "XTRIM str MAXLEN 1",
            "XGROUP CREATE str g 0",
            "XREAD STREAMS str 0",
            "XACK str g 1-0",
            "XPENDING str g",
            "XCLAIM str g c 0 1-0",
            "XSETID str 1-0",
            "XINFO STREAM str",
        ] {
            assert_eq!(h.reply(cmd), Reply::error(errors::WRONGTYPE), "{cmd}");
        }
    }

    #[test]
    fn xinfo_reports_lag_and_counters() {
        let mut h = Harness::new();
        for i in 1..=5 {
            h.run(&format!("XADD s {i}-0 f v"));
        }
        h.run("XGROUP CREATE s g 0");
        h.run("XREADGROUP GROUP g c COUNT 2 STREAMS s >");
        let Reply::Array(groups) = h.reply("XINFO GROUPS s") else {
            panic!()
        };
        let Reply::Map(fields) = &groups[0] else {
            panic!()
        };
        assert_eq!(fields[4], (bulk("entries-read"), Reply::Int(2)));
        assert_eq!(fields[5], (bulk("lag"), Reply::Int(3)));
        // A deletion after the group's position makes the lag unknown.
        h.run("XDEL s 4-0");
        let Reply::Array(groups) = h.reply("XINFO GROUPS s") else {
            panic!()
        };
        let Reply::Map(fields) = &groups[0] else {
            panic!()
        };
        assert_eq!(fields[5], (bulk("lag"), Reply::Nil));
        let Reply::Map(full) = h.reply("XINFO STREAM s FULL") else {
            panic!()
        };
        assert_eq!(full.len(), 9);
        assert_eq!(full[0], (bulk("length"), Reply::Int(4)));
    }
}
