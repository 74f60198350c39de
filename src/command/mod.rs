//! Data commands: applying a command to a [`Store`] and deciding what to propagate.
//!
//! [`execute`] runs one command against one database and returns an [`Effect`]: the reply,
//! and what must travel the propagation road (AOF, replicas). Commands that are not
//! deterministic are rewritten as Redis rewrites them (redis-formats.md §2.1): `EXPIRE` →
//! `PEXPIREAT`, `SET … EX` → `SET … PXAT`, `INCRBYFLOAT` → `SET … KEEPTTL`, `SPOP` → `SREM`, …,
//! so replaying the propagated stream on another store gives the same data.
//!
//! Connection-level and server commands (`SELECT`, `MULTI`, `AUTH`, `INFO`, `SAVE`, pub/sub, …)
//! belong to the server (`crate::server`), which also answers `COMMAND` from [`specs`].
//!
//! Each family of commands lives in its own file with a `COMMANDS` table; [`lookup`] finds a
//! command by name in any case.

/// A [`CommandSpec`] for every family's table. The handler returns a [`Reply`] or a
/// `Result<Reply, Reply>` (`Err` holding an error reply, so handlers can use `?`); see
/// [`IntoReply`]. Key positions are `(first, last, step)`. A container command (`XGROUP`)
/// ends with `subcommands: TABLE` (see [`Subcommand`]).
macro_rules! command {
    ($name:literal, $arity:expr, $flags:expr, ($first:expr, $last:expr, $step:expr), $handler:path $(,)?) => {
        command!($name, $arity, $flags, ($first, $last, $step), $handler, subcommands: &[])
    };
    ($name:literal, $arity:expr, $flags:expr, ($first:expr, $last:expr, $step:expr), $handler:path, subcommands: $subcommands:expr $(,)?) => {
        $crate::command::CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            run: |ctx, argv| $crate::command::IntoReply::into_reply($handler(ctx, argv)),
            subcommands: $subcommands,
        }
    };
}

/// What a handler may return (see [`command!`]).
trait IntoReply {
    fn into_reply(self) -> Reply;
}

impl IntoReply for Reply {
    fn into_reply(self) -> Reply {
        self
    }
}

impl IntoReply for Result<Reply, Reply> {
    fn into_reply(self) -> Reply {
        self.unwrap_or_else(|error| error)
    }
}

mod access;
mod args;
mod hashes;
mod keys;
mod lists;
mod longdouble;
mod random;
mod scan;
mod sets;
mod streams;
mod strings;
mod zsets;

#[cfg(test)]
mod propagation_tests;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

pub use args::{parse_f64, parse_i64};
pub use random::Rng;

use crate::resp::Reply;
use crate::store::Store;

/// The error texts clients match on, exactly as Redis words them.
pub mod errors {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
    pub const INVALID_EXPIRE: &str = "ERR invalid expire time in '{}' command";
    pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
}

/// Command flags (Redis's names, for `COMMAND` and for the server's checks).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory (refused under `stop-writes-on-bgsave-error` and the disk budget).
    pub const DENYOOM: u32 = 1 << 2;
    pub const FAST: u32 = 1 << 3;
    pub const ADMIN: u32 = 1 << 4;
    pub const PUBSUB: u32 = 1 << 5;
    pub const NOSCRIPT: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    /// Allowed before `AUTH`.
    pub const NO_AUTH: u32 = 1 << 9;
    /// May block the client (`XREAD BLOCK`; keeper refuses the blocking form).
    pub const BLOCKING: u32 = 1 << 10;
    /// Key positions depend on the arguments (`COMMAND GETKEYS` must parse them).
    pub const MOVABLEKEYS: u32 = 1 << 11;
    /// Refused inside `MULTI` (`SYNC`, `PSYNC`).
    pub const NO_MULTI: u32 = 1 << 12;

    /// The names `COMMAND` reports, in Redis's order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
    ];
}

/// What a command handler receives besides its arguments.
pub struct Ctx<'a> {
    pub store: &'a mut Store,
    /// The selected database.
    pub db: usize,
    /// The time the command runs at, unix milliseconds (one value per command, so a command
    /// and what it propagates agree).
    pub now_ms: i64,
    pub rng: &'a mut Rng,
    /// True when the command comes from a propagated stream (AOF loading, a primary): Redis's
    /// "must obey" clients, for which a few checks are relaxed (e.g. `XADD … MAXLEN = n LIMIT
    /// m`, which Redis itself propagates, is accepted).
    pub replaying: bool,
    dirty: u64,
    propagate: Option<Propagate>,
}

impl Ctx<'_> {
    /// Counts `n` changes to the keyspace (Redis's `dirty` counter: save points and
    /// `rdb_changes_since_last_save` read it). A write command that changed nothing must not
    /// call this, and then propagates nothing.
    pub fn changed(&mut self, n: u64) {
        self.dirty += n;
    }

    /// Propagates `commands` (in this database) instead of the command as received.
    pub fn rewrite(&mut self, commands: Vec<Vec<Bytes>>) {
        self.propagate = Some(if commands.is_empty() {
            Propagate::Nothing
        } else {
            Propagate::Commands(commands)
        });
    }
}

/// What must be propagated after a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Propagate {
    Nothing,
    /// The command exactly as received.
    Verbatim,
    /// These commands instead, in order.
    Commands(Vec<Vec<Bytes>>),
}

/// The outcome of one command.
#[derive(Debug)]
pub struct Effect {
    pub reply: Reply,
    pub propagate: Propagate,
    /// Changes made (see [`Ctx::changed`]).
    pub dirty: u64,
}

/// A handler: runs with the whole argv (`argv[0]` is the command name).
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Reply;

/// One command's description.
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis's arity: N means exactly N arguments including the name, -N means at least N.
    pub arity: i32,
    /// The command's own flags; a container command (`XGROUP`, `XINFO`) has none, as in
    /// Redis's `COMMAND`: its [`subcommands`](Self::subcommands) carry them.
    pub flags: u32,
    /// Key positions for `COMMAND`: first, last (-1 = last argument), step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub run: Handler,
    /// The subcommands of a container command; empty for every other command.
    pub subcommands: &'static [Subcommand],
}

/// One subcommand of a container command (`XGROUP CREATE`): Redis gives each its own arity
/// and flags.
#[derive(Debug)]
pub struct Subcommand {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis's arity, counting the container's name and the subcommand's.
    pub arity: i32,
    pub flags: u32,
}

/// True when `argc` arguments satisfy Redis's `arity` (N: exactly N, -N: at least N).
fn arity_allows(arity: i32, argc: usize) -> bool {
    let argc = i32::try_from(argc).unwrap_or(i32::MAX);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

impl CommandSpec {
    /// True when `argc` arguments (including the name) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_allows(self.arity, argc)
    }

    /// True when the command's own flags say `write`. A container command's subcommands
    /// carry the flags, so this is false for `XGROUP CREATE`: to decide about one call
    /// (refusing writes under MISCONF or on a read-only replica) use
    /// [`is_write_call`](Self::is_write_call).
    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }

    /// The subcommand `argv[1]` names, for a container command (any case); `None` for other
    /// commands and unknown subcommands.
    pub fn subcommand(&self, argv: &[Bytes]) -> Option<&'static Subcommand> {
        named(self.subcommands, argv.get(1)?)
    }

    /// The flags that apply to the call `argv`: the subcommand's for a container command
    /// (none when the subcommand is unknown: the handler refuses it), the command's own
    /// otherwise. The server checks these, not [`flags`](Self::flags), before running a
    /// call (`DENYOOM` under the memory or disk budget, …).
    pub fn call_flags(&self, argv: &[Bytes]) -> u32 {
        if self.subcommands.is_empty() {
            self.flags
        } else {
            self.subcommand(argv).map_or(0, |sub| sub.flags)
        }
    }

    /// True when the call `argv` may change the keyspace: `SET`, `XGROUP CREATE`, but not
    /// `GET` or `XGROUP HELP`. This is the method the server must call to refuse writes
    /// (`MISCONF` after a failed save, a read-only replica); [`is_write`](Self::is_write)
    /// misses the subcommands of container commands.
    pub fn is_write_call(&self, argv: &[Bytes]) -> bool {
        self.call_flags(argv) & flags::WRITE != 0
    }
}

/// The subcommand of `table` called `name` (any case).
fn named(table: &'static [Subcommand], name: &[u8]) -> Option<&'static Subcommand> {
    table
        .iter()
        .find(|sub| name.eq_ignore_ascii_case(sub.name.as_bytes()))
}

/// The subcommand of the container `container` that `argv[1]` names in `table`, with its
/// arity checked, or the error Redis's command lookup gives.
fn find_subcommand(
    container: &str,
    table: &'static [Subcommand],
    argv: &[Bytes],
) -> Result<&'static Subcommand, Reply> {
    let name = argv.get(1).map_or(&b""[..], |name| name.as_ref());
    let Some(sub) = named(table, name) else {
        return Err(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&name[..name.len().min(128)]),
            container.to_ascii_uppercase()
        )));
    };
    if !arity_allows(sub.arity, argv.len()) {
        return Err(Reply::error(format!(
            "ERR wrong number of arguments for '{container}|{}' command",
            sub.name
        )));
    }
    Ok(sub)
}

/// Every data command, family by family.
pub fn specs() -> impl Iterator<Item = &'static CommandSpec> {
    [
        strings::COMMANDS,
        keys::COMMANDS,
        lists::COMMANDS,
        hashes::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        streams::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

/// The ACL category of the family `spec` belongs to (`@string`, `@keyspace`, …), as
/// `COMMAND INFO` lists it.
pub fn category(spec: &CommandSpec) -> &'static str {
    let families: [(&[CommandSpec], &str); 7] = [
        (strings::COMMANDS, "@string"),
        (keys::COMMANDS, "@keyspace"),
        (lists::COMMANDS, "@list"),
        (hashes::COMMANDS, "@hash"),
        (sets::COMMANDS, "@set"),
        (zsets::COMMANDS, "@sortedset"),
        (streams::COMMANDS, "@stream"),
    ];
    families
        .iter()
        .find(|(table, _)| table.iter().any(|s| std::ptr::eq(s, spec)))
        .map_or("", |(_, category)| category)
}

/// Commands by lower-case name, as bytes: a lookup needs no UTF-8 check, and foldhash
/// instead of SipHash (names are not attacker-chosen keys of a growing table).
static BY_NAME: LazyLock<
    HashMap<&'static [u8], &'static CommandSpec, foldhash::fast::RandomState>,
> = LazyLock::new(|| specs().map(|spec| (spec.name.as_bytes(), spec)).collect());

/// The data command named `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 32];
    if name.len() > lower.len() {
        return None;
    }
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(&*lower).copied()
}

/// The error for an unknown command, as Redis words it (arguments quoted, at most 128 bytes
/// of them).
pub fn unknown_command(argv: &[Bytes]) -> Reply {
    // Redis 7.0: `'%.128s'` for the name, then `'%.*s' ` per argument while the list is
    // shorter than 128 bytes, each argument cut to what is left of those 128.
    let name = argv.first().map_or(&b""[..], |a| &a[..a.len().min(128)]);
    let mut args: Vec<u8> = Vec::new();
    for arg in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&arg[..arg.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    Reply::error(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(&args)
    ))
}

/// The error for a wrong argument count.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Runs the data command `argv` against database `db` of `store` at `now_ms`.
pub fn execute(store: &mut Store, db: usize, argv: &[Bytes], now_ms: i64, rng: &mut Rng) -> Effect {
    execute_as(store, db, argv, now_ms, rng, false)
}

/// Like [`execute`], for a command replayed from a propagated stream (see [`Ctx::replaying`]).
pub fn execute_replayed(
    store: &mut Store,
    db: usize,
    argv: &[Bytes],
    now_ms: i64,
    rng: &mut Rng,
) -> Effect {
    execute_as(store, db, argv, now_ms, rng, true)
}

fn execute_as(
    store: &mut Store,
    db: usize,
    argv: &[Bytes],
    now_ms: i64,
    rng: &mut Rng,
    replaying: bool,
) -> Effect {
    let Some(spec) = argv.first().and_then(|name| lookup(name)) else {
        return Effect {
            reply: unknown_command(argv),
            propagate: Propagate::Nothing,
            dirty: 0,
        };
    };
    if !spec.arity_ok(argv.len()) {
        return Effect {
            reply: wrong_arity(spec.name),
            propagate: Propagate::Nothing,
            dirty: 0,
        };
    }
    run_as(spec, store, db, argv, now_ms, rng, replaying)
}

/// Runs an already looked-up, arity-checked command.
pub fn run(
    spec: &CommandSpec,
    store: &mut Store,
    db: usize,
    argv: &[Bytes],
    now_ms: i64,
    rng: &mut Rng,
) -> Effect {
    run_as(spec, store, db, argv, now_ms, rng, false)
}

/// [`run`] for a command of a propagated stream (a primary's, on a replica): see
/// [`Ctx::replaying`].
pub fn run_replayed(
    spec: &CommandSpec,
    store: &mut Store,
    db: usize,
    argv: &[Bytes],
    now_ms: i64,
    rng: &mut Rng,
) -> Effect {
    run_as(spec, store, db, argv, now_ms, rng, true)
}

fn run_as(
    spec: &CommandSpec,
    store: &mut Store,
    db: usize,
    argv: &[Bytes],
    now_ms: i64,
    rng: &mut Rng,
    replaying: bool,
) -> Effect {
    let mut ctx = Ctx {
        store,
        db,
        now_ms,
        rng,
        replaying,
        dirty: 0,
        propagate: None,
    };
    let reply = (spec.run)(&mut ctx, argv);
    let propagate = match ctx.propagate {
        Some(p) => p,
        None if ctx.dirty > 0 && spec.is_write_call(argv) => Propagate::Verbatim,
        None => Propagate::Nothing,
    };
    Effect {
        reply,
        propagate,
        dirty: ctx.dirty,
    }
}
