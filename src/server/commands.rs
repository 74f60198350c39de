//! Command dispatch and the server-level commands (connection, transactions, pub/sub,
//! persistence, introspection). Data commands come from [`crate::command`].
//!
//! [`dispatch`] applies Redis 7.0's `processCommand` checks in its order: QUIT, lookup
//! (unknown command), arity, authentication, MISCONF for writes, the RESP2 pub/sub context,
//! MULTI queueing; a refusal inside MULTI aborts the transaction at EXEC.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::conn::{Client, Multi};
use super::{Shared, State};
use crate::command::{self, CommandSpec, flags, parse_i64};
use crate::resp::Reply;
use crate::snapshot;

/// The version Redis clients and tools see (`redis_version`, HELLO): keeper speaks Redis
/// 7.0.15's protocol and formats. keeper's own version is `keeper_version` in INFO.
pub const REDIS_VERSION: &str = "7.0.15";

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// What a server command handler gets.
pub(crate) struct Call<'a> {
    pub client: &'a mut Client,
    pub state: &'a mut State,
    pub shared: &'a Shared,
    pub argv: &'a [Bytes],
    pub now_ms: i64,
    /// True while EXEC runs its queue.
    pub in_exec: bool,
}

impl Call<'_> {
    fn reply(&mut self, reply: Reply) {
        self.client.reply(&reply);
    }
}

type ServerHandler = fn(&mut Call<'_>);

/// A server command's description (same fields as [`CommandSpec`] for `COMMAND`).
pub(crate) struct ServerSpec {
    name: &'static str,
    arity: i32,
    flags: u32,
    first_key: i32,
    last_key: i32,
    step: i32,
    group: &'static str,
    summary: &'static str,
    since: &'static str,
    run: ServerHandler,
}

const fn server(
    name: &'static str,
    arity: i32,
    flags: u32,
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    run: ServerHandler,
) -> ServerSpec {
    ServerSpec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group,
        summary,
        since,
        run,
    }
}

use super::replica_link::replicaof;
use super::replication::{psync, replconf, sync, wait};
use flags::{ADMIN, FAST, LOADING, NO_AUTH, NO_MULTI, NOSCRIPT, PUBSUB, READONLY, STALE};

static SERVER_COMMANDS: &[ServerSpec] = &[
    server(
        "ping",
        -1,
        FAST | STALE,
        "connection",
        "1.0.0",
        "Ping the server",
        ping,
    ),
    server(
        "echo",
        2,
        FAST,
        "connection",
        "1.0.0",
        "Echo the given string",
        echo,
    ),
    server(
        "quit",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "1.0.0",
        "Close the connection",
        quit,
    ),
    server(
        "select",
        2,
        LOADING | STALE | FAST,
        "connection",
        "1.0.0",
        "Change the selected database for the current connection",
        select,
    ),
    server(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "1.0.0",
        "Authenticate to the server",
        auth,
    ),
    server(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "6.0.0",
        "Handshake with Redis",
        hello,
    ),
    server(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "6.2.0",
        "Reset the connection",
        reset,
    ),
    server(
        "client",
        -2,
        NOSCRIPT | LOADING | STALE,
        "connection",
        "2.4.0",
        "A container for client connection commands",
        client_command,
    ),
    server(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        "transactions",
        "1.2.0",
        "Mark the start of a transaction block",
        multi,
    ),
    server(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE,
        "transactions",
        "1.2.0",
        "Execute all commands issued after MULTI",
        exec,
    ),
    server(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        "transactions",
        "2.0.0",
        "Discard all commands issued after MULTI",
        discard,
    ),
    ServerSpec {
        first_key: 1,
        last_key: -1,
        step: 1,
        ..server(
            "watch",
            -2,
            NOSCRIPT | LOADING | STALE | FAST,
            "transactions",
            "2.2.0",
            "Watch the given keys to determine execution of the MULTI/EXEC block",
            watch,
        )
    },
    server(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        "transactions",
        "2.2.0",
        "Forget about all watched keys",
        unwatch,
    ),
    server(
        "info",
        -1,
        LOADING | STALE,
        "server",
        "1.0.0",
        "Get information and statistics about the server",
        info,
    ),
    server(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "2.0.0",
        "A container for server configuration commands",
        config,
    ),
    server(
        "command",
        -1,
        LOADING | STALE,
        "server",
        "2.8.13",
        "Get array of Redis command details",
        command_command,
    ),
    server(
        "dbsize",
        1,
        READONLY | FAST,
        "server",
        "1.0.0",
        "Return the number of keys in the selected database",
        dbsize,
    ),
    server(
        "time",
        1,
        LOADING | STALE | FAST,
        "server",
        "2.6.0",
        "Return the current server time",
        time,
    ),
    server(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        "server",
        "1.0.0",
        "Get the UNIX time stamp of the last successful save to disk",
        lastsave,
    ),
    server(
        "save",
        1,
        ADMIN | NOSCRIPT,
        "server",
        "1.0.0",
        "Synchronously save the dataset to disk",
        save,
    ),
    server(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT,
        "server",
        "1.0.0",
        "Asynchronously save the dataset to disk",
        bgsave,
    ),
    server(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT,
        "server",
        "1.0.0",
        "Asynchronously rewrite the append-only file",
        bgrewriteaof,
    ),
    server(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "1.0.0",
        "Synchronously save the dataset to disk and then shut down the server",
        shutdown,
    ),
    server(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        "server",
        "2.8.12",
        "Return the role of the instance in the context of replication",
        role,
    ),
    server(
        "sync",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        "server",
        "1.0.0",
        "Internal command used for replication",
        sync,
    ),
    server(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_MULTI,
        "server",
        "2.8.0",
        "Internal command used for replication",
        psync,
    ),
    server(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE,
        "server",
        "5.0.0",
        "Make the server a replica of another instance, or promote it as master.",
        replicaof,
    ),
    server(
        "slaveof",
        3,
        ADMIN | NOSCRIPT | STALE,
        "server",
        "1.0.0",
        "Make the server a replica of another instance, or promote it as master.",
        replicaof,
    ),
    server(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "3.0.0",
        "An internal command for configuring the replication stream",
        replconf,
    ),
    server(
        "failover",
        -1,
        ADMIN | NOSCRIPT | STALE,
        "server",
        "6.2.0",
        "Start a coordinated failover between this server and one of its replicas.",
        super::failover::failover,
    ),
    server(
        "wait",
        3,
        NOSCRIPT,
        "generic",
        "3.0.0",
        "Wait for the synchronous replication of all the write commands sent in the context \
         of the current connection",
        wait,
    ),
    server(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        "pubsub",
        "2.0.0",
        "Post a message to a channel",
        publish,
    ),
    server(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
        "2.0.0",
        "Listen for messages published to the given channels",
        subscribe,
    ),
    server(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
        "2.0.0",
        "Stop listening for messages posted to the given channels",
        unsubscribe,
    ),
    server(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
        "2.0.0",
        "Listen for messages published to channels matching the given patterns",
        psubscribe,
    ),
    server(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        "pubsub",
        "2.0.0",
        "Stop listening for messages posted to channels matching the given patterns",
        punsubscribe,
    ),
    server(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        "pubsub",
        "2.8.0",
        "A container for Pub/Sub commands",
        pubsub_command,
    ),
];

/// Names of the server-level commands (for the lead's overlap checks with data commands).
pub fn server_command_names() -> impl Iterator<Item = &'static str> {
    SERVER_COMMANDS.iter().map(|s| s.name)
}

/// A command of either kind.
#[derive(Clone, Copy)]
pub(crate) enum Cmd {
    Data(&'static CommandSpec),
    Server(&'static ServerSpec),
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Data(s) => s.name,
            Cmd::Server(s) => s.name,
        }
    }
    fn arity(self) -> i32 {
        match self {
            Cmd::Data(s) => s.arity,
            Cmd::Server(s) => s.arity,
        }
    }
    fn flags(self) -> u32 {
        match self {
            Cmd::Data(s) => s.flags,
            Cmd::Server(s) => s.flags,
        }
    }
    /// The flags of this call: a container command's subcommand decides.
    fn call_flags(self, argv: &[Bytes]) -> u32 {
        match self {
            Cmd::Data(s) => s.call_flags(argv),
            Cmd::Server(s) => s.flags,
        }
    }
    fn keys(self) -> (i32, i32, i32) {
        match self {
            Cmd::Data(s) => (s.first_key, s.last_key, s.step),
            Cmd::Server(s) => (s.first_key, s.last_key, s.step),
        }
    }
    fn arity_ok(self, argc: usize) -> bool {
        let (arity, argc) = (self.arity(), argc as i32);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
    fn is(self, name: &str) -> bool {
        self.name() == name
    }
}

/// Every command by lowercase name; a server command wins over a data command of the same
/// name (SELECT, DBSIZE need the connection).
static TABLE: LazyLock<HashMap<&'static str, Cmd, foldhash::fast::RandomState>> =
    LazyLock::new(|| {
        let mut table: HashMap<&'static str, Cmd, foldhash::fast::RandomState> =
            command::specs().map(|s| (s.name, Cmd::Data(s))).collect();
        for spec in SERVER_COMMANDS {
            table.insert(spec.name, Cmd::Server(spec));
        }
        table
    });

/// The command named `name` (any case), without allocating.
pub(crate) fn lookup(name: &[u8]) -> Option<Cmd> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    TABLE.get(std::str::from_utf8(lower).ok()?).copied()
}

/// Replies with a refusal; inside MULTI the transaction is flagged (or, for EXEC itself,
/// aborted with the reason) as Redis's `rejectCommand` does.
fn reject(client: &mut Client, cmd: Option<Cmd>, error: String) {
    if cmd.is_some_and(|c| c.is("exec")) && client.multi.is_some() {
        client.multi = None;
        let reason = error.strip_prefix("ERR ").unwrap_or(&error);
        client.reply(&Reply::error(format!(
            "EXECABORT Transaction discarded because of: {reason}"
        )));
        return;
    }
    if let Some(multi) = &mut client.multi {
        multi.failed = true;
    }
    client.reply(&Reply::error(error));
}

/// Runs one command from a client (see the module docs for the order of checks).
pub(crate) fn dispatch(
    client: &mut Client,
    state: &mut State,
    shared: &Shared,
    argv: Vec<Bytes>,
    now_ms: i64,
) {
    let Some(name) = argv.first() else { return };
    let Some(cmd) = lookup(name) else {
        let Reply::Error(text) = command::unknown_command(&argv) else {
            return;
        };
        reject(client, None, text.into_owned());
        return;
    };
    if cmd.is("quit") {
        client.reply(&Reply::Ok);
        client.close = true;
        return;
    }
    if !cmd.arity_ok(argv.len()) {
        reject(client, Some(cmd), wrong_arity(cmd.name()));
        return;
    }
    if client.auth_required && !client.authenticated && cmd.flags() & NO_AUTH == 0 {
        reject(client, Some(cmd), NOAUTH.into());
        return;
    }
    if client.multi.is_some() && cmd.flags() & flags::NO_MULTI != 0 {
        reject(
            client,
            Some(cmd),
            "ERR Command not allowed inside a transaction".into(),
        );
        return;
    }
    // Container commands (XGROUP, …) are writes or not by subcommand.
    let is_write = cmd.call_flags(&argv) & flags::WRITE != 0;
    let refusal = if is_write {
        let incoming = argv.iter().map(|a| a.len() as u64 + 16).sum();
        state
            .engine
            .write_refusal(incoming)
            .or_else(|| super::replication::min_replicas_refusal(state))
    } else if cmd.is("ping") {
        // As Redis, PING reports a persistence error; the disk budget leaves reads (and
        // PING) alone.
        state.engine.write_refusal_without_budget()
    } else {
        None
    };
    if let Some(refusal) = refusal {
        reject(client, Some(cmd), refusal);
        return;
    }
    // A read-only replica: a write, or an EXEC whose queue holds one (as Redis's
    // `processCommand`, after the disk errors).
    if super::replica_link::refuses_writes(state)
        && (is_write || (cmd.is("exec") && queues_a_write(client)))
    {
        reject(
            client,
            Some(cmd),
            super::replica_link::READONLY_ERROR.into(),
        );
        return;
    }
    if client.subscribed() && !client.resp3 && !allowed_when_subscribed(cmd) {
        reject(
            client,
            Some(cmd),
            format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
                 RESET are allowed in this context",
                cmd.name()
            ),
        );
        return;
    }
    // A failover pauses writes (Redis's CLIENT PAUSE WRITE, checked before queuing): the
    // connection runs the command again once the pause ends.
    if state.failover.pauses_writes()
        && (is_write
            || super::failover::may_replicate(cmd.name())
            || (cmd.is("exec") && queues_a_write(client)))
    {
        client.postponed = Some(argv);
        return;
    }
    if let Some(multi) = &mut client.multi
        && !["exec", "discard", "multi", "watch", "reset"].contains(&cmd.name())
    {
        multi.queue.push(argv);
        client.reply(&Reply::Simple("QUEUED".into()));
        return;
    }
    run_command(client, state, shared, cmd, &argv, now_ms, false);
    client.repl.woff = state.engine.repl_offset();
}

/// True when the transaction being queued holds a write command.
fn queues_a_write(client: &Client) -> bool {
    client.multi.as_ref().is_some_and(|multi| {
        multi.queue.iter().any(|argv| {
            argv.first()
                .and_then(|name| lookup(name))
                .is_some_and(|c| c.call_flags(argv) & flags::WRITE != 0)
        })
    })
}

/// Runs a command of the primary's stream on this replica (see `replica_link`): a data
/// command through [`crate::engine::Engine::execute_replicated`] (no refusal applies, and
/// the watchers of the keys it changes are touched as for a client's write); `PUBLISH`
/// reaches this node's subscribers; anything else changes nothing here and is skipped.
pub(crate) fn run_from_primary(state: &mut State, db: usize, argv: &[Bytes], now_ms: i64) {
    let Some(name) = argv.first() else { return };
    let cmd = lookup(name).filter(|cmd| cmd.arity_ok(argv.len()));
    match cmd {
        Some(Cmd::Data(spec)) => {
            if db >= state.engine.store().databases() {
                tracing::warn!(
                    "the primary sent {} for database {db}, which this node does not have",
                    spec.name
                );
                return;
            }
            state.engine.stats.total_commands_processed += 1;
            let changes_before = state.engine.changes();
            let emptied = if state.watched.is_empty() || !spec.is_write_call(argv) {
                None
            } else {
                watchers_of_emptied_keys(state, db, spec.name, argv, now_ms)
            };
            let reply = state.engine.execute_replicated(spec, db, argv, now_ms);
            if let Reply::Error(e) = &reply {
                // Redis logs it too: the data may now differ from the primary's.
                tracing::warn!(
                    "== CRITICAL == This replica got an error applying the command '{}' from                      its master: '{e}'",
                    spec.name
                );
            }
            if !state.watched.is_empty()
                && spec.is_write_call(argv)
                && state.engine.changes() != changes_before
            {
                match emptied {
                    Some(ids) => state.dirty_cas.extend(ids),
                    None => touch_command_keys(state, db, Cmd::Data(spec), argv),
                }
            }
        }
        Some(Cmd::Server(spec)) if spec.name == "publish" => {
            state.engine.stats.total_commands_processed += 1;
            // No client of this node published it: every subscriber gets it in its mailbox.
            let _ = state.pubsub.publish(&argv[1], &argv[2], 0);
        }
        _ => tracing::warn!(
            "skipping a command of the primary's stream that changes nothing here: {}",
            String::from_utf8_lossy(name)
        ),
    }
}

fn allowed_when_subscribed(cmd: Cmd) -> bool {
    matches!(
        cmd.name(),
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
    )
}

fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Runs a command that passed the checks.
fn run_command(
    client: &mut Client,
    state: &mut State,
    shared: &Shared,
    cmd: Cmd,
    argv: &[Bytes],
    now_ms: i64,
    in_exec: bool,
) {
    state.engine.stats.total_commands_processed += 1;
    client.last_cmd.clear();
    client.last_cmd.push_str(cmd.name());
    match cmd {
        Cmd::Data(spec) => {
            let changes_before = state.engine.changes();
            // FLUSHDB, FLUSHALL and SWAPDB touch only the watched keys that exist in the
            // databases they empty or exchange, so look before they run.
            let emptied = if state.watched.is_empty() || !spec.is_write_call(argv) {
                None
            } else {
                watchers_of_emptied_keys(state, client.db, spec.name, argv, now_ms)
            };
            let reply = state.engine.execute(spec, client.db, argv, now_ms);
            if !state.watched.is_empty()
                && spec.is_write_call(argv)
                && state.engine.changes() != changes_before
            {
                match emptied {
                    Some(ids) => state.dirty_cas.extend(ids),
                    None => touch_command_keys(state, client.db, cmd, argv),
                }
            }
            client.reply(&reply);
        }
        Cmd::Server(spec) => {
            if matches!(spec.name, "client" | "config" | "command" | "pubsub")
                && let Some(sub) = argv.get(1)
            {
                client.last_cmd.push('|');
                client
                    .last_cmd
                    .push_str(&String::from_utf8_lossy(sub).to_ascii_lowercase());
            }
            let mut call = Call {
                client,
                state,
                shared,
                argv,
                now_ms,
                in_exec,
            };
            (spec.run)(&mut call);
        }
    }
}

/// For FLUSHDB, FLUSHALL and SWAPDB, the clients whose watched keys exist in the databases the
/// command empties or exchanges (Redis 7.0's `touchAllWatchedKeysInDb`: watching a missing
/// key survives a flush); `None` for every other command.
fn watchers_of_emptied_keys(
    state: &mut State,
    db: usize,
    name: &str,
    argv: &[Bytes],
    now_ms: i64,
) -> Option<Vec<u64>> {
    let databases: Vec<usize> = match name {
        "flushdb" => vec![db],
        "flushall" => (0..state.engine.store().databases()).collect(),
        "swapdb" => {
            let index = |arg: Option<&Bytes>| {
                arg.and_then(|a| std::str::from_utf8(a).ok()?.parse::<usize>().ok())
            };
            // An invalid index fails the command: nothing changes, nobody is touched.
            vec![index(argv.get(1))?, index(argv.get(2))?]
        }
        _ => return None,
    };
    let watched: Vec<((usize, Bytes), Vec<u64>)> = state
        .watched
        .iter()
        .filter(|((watched_db, _), _)| databases.contains(watched_db))
        .map(|(key, ids)| (key.clone(), ids.clone()))
        .collect();
    let store = state.engine.store_mut();
    let mut touched = Vec::new();
    for ((watched_db, key), ids) in watched {
        // A flushed key must exist in its database; a swapped one in either database.
        let exists = if name == "swapdb" {
            databases
                .iter()
                .any(|&d| d < store.databases() && store.contains(d, &key, now_ms))
        } else {
            store.contains(watched_db, &key, now_ms)
        };
        if exists {
            touched.extend(ids);
        }
    }
    Some(touched)
}

/// Marks the watchers of the keys a write command named (every watcher for commands
/// without key positions, such as FLUSHALL or SWAPDB).
fn touch_command_keys(state: &mut State, db: usize, cmd: Cmd, argv: &[Bytes]) {
    let (first, last, step) = cmd.keys();
    if first <= 0 || step <= 0 {
        state.touch_all();
        return;
    }
    let argc = argv.len() as i32;
    let last = if last < 0 {
        argc + last
    } else {
        last.min(argc - 1)
    };
    let mut i = first;
    while i <= last {
        state.touch_key(db, &argv[i as usize]);
        i += step;
    }
}

/// Removes a closing connection from every registry.
pub(crate) fn forget_client(client: &mut Client, state: &mut State) {
    for channel in client.channels.drain(..) {
        state.pubsub.unsubscribe(&channel, client.id);
    }
    for pattern in client.patterns.drain(..) {
        state.pubsub.punsubscribe(&pattern, client.id);
    }
    unwatch_all(client, state);
    super::replication::forget_replica(state, client.id);
    state.clients.remove(&client.id);
}

fn unwatch_all(client: &mut Client, state: &mut State) {
    for key in client.watching.drain(..) {
        if let Some(ids) = state.watched.get_mut(&key) {
            ids.retain(|&id| id != client.id);
            if ids.is_empty() {
                state.watched.remove(&key);
            }
        }
    }
    state.dirty_cas.remove(&client.id);
}

fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

fn unknown_subcommand(call: &mut Call<'_>, container: &str) {
    let sub = text(&call.argv[1]);
    call.reply(Reply::error(format!(
        "ERR unknown subcommand '{sub}'. Try {container} HELP."
    )));
}

// ---- connection ---------------------------------------------------------------------------

fn ping(call: &mut Call<'_>) {
    if call.argv.len() > 2 {
        return call.reply(Reply::error(wrong_arity("ping")));
    }
    let arg = call.argv.get(1).cloned();
    if call.client.subscribed() && !call.client.resp3 {
        let reply = Reply::Array(vec![
            Reply::bulk("pong"),
            Reply::Bulk(arg.unwrap_or_default()),
        ]);
        return call.reply(reply);
    }
    call.reply(match arg {
        Some(arg) => Reply::Bulk(arg),
        None => Reply::Simple("PONG".into()),
    });
}

fn echo(call: &mut Call<'_>) {
    let arg = call.argv[1].clone();
    call.reply(Reply::Bulk(arg));
}

fn quit(call: &mut Call<'_>) {
    call.client.close = true;
    call.reply(Reply::Ok);
}

fn select(call: &mut Call<'_>) {
    let Some(db) = parse_i64(&call.argv[1]) else {
        return call.reply(Reply::error(command::errors::NOT_INTEGER));
    };
    if db < 0 || db as usize >= call.state.engine.store().databases() {
        return call.reply(Reply::error(command::errors::DB_INDEX_OUT_OF_RANGE));
    }
    call.client.db = db as usize;
    call.reply(Reply::Ok);
}

/// Checks a username/password pair against the default user. `Err` is the error reply.
fn check_password(state: &State, user: Option<&[u8]>, password: &[u8]) -> Result<(), String> {
    let requirepass = &state.engine.config().requirepass;
    if user.is_some_and(|u| u != b"default") {
        return Err(WRONGPASS.into());
    }
    if requirepass.is_empty() {
        // The default user has `nopass`: any password works with a username.
        return Ok(());
    }
    if password == requirepass.as_bytes() {
        Ok(())
    } else {
        Err(WRONGPASS.into())
    }
}

fn auth(call: &mut Call<'_>) {
    let (user, password) = match call.argv {
        [_, password] => (None, password),
        [_, user, password] => (Some(&user[..]), password),
        _ => return call.reply(Reply::error(command::errors::SYNTAX)),
    };
    if user.is_none() && call.state.engine.config().requirepass.is_empty() {
        return call.reply(Reply::error(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ));
    }
    match check_password(call.state, user, password) {
        Ok(()) => {
            call.client.authenticated = true;
            call.reply(Reply::Ok);
        }
        Err(e) => {
            tracing::debug!("client {}: authentication failed", call.client.id);
            call.reply(Reply::error(e));
        }
    }
}

fn hello(call: &mut Call<'_>) {
    let mut resp3 = call.client.resp3;
    let mut i = 1;
    if let Some(version) = call.argv.get(1) {
        match parse_i64(version) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => {
                return call.reply(Reply::error("NOPROTO unsupported protocol version"));
            }
            None => {
                return call.reply(Reply::error(
                    "ERR Protocol version is not an integer or out of range",
                ));
            }
        }
        i = 2;
    }
    let mut credentials = None;
    let mut name = None;
    while i < call.argv.len() {
        let option = lower(&call.argv[i]);
        let more = call.argv.len() - i - 1;
        if option == "auth" && more >= 2 {
            credentials = Some((call.argv[i + 1].clone(), call.argv[i + 2].clone()));
            i += 3;
        } else if option == "setname" && more >= 1 {
            name = Some(call.argv[i + 1].clone());
            i += 2;
        } else {
            let option = text(&call.argv[i]);
            return call.reply(Reply::error(format!(
                "ERR Syntax error in HELLO option '{option}'"
            )));
        }
    }
    if let Some((user, password)) = &credentials {
        if let Err(e) = check_password(call.state, Some(user), password) {
            return call.reply(Reply::error(e));
        }
        call.client.authenticated = true;
    }
    if call.client.auth_required && !call.client.authenticated {
        return call.reply(Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = name
        && let Err(e) = set_client_name(call, name)
    {
        return call.reply(e);
    }
    call.client.resp3 = resp3;
    let reply = Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(if resp3 { 3 } else { 2 })),
        (Reply::bulk("id"), Reply::Int(call.client.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (
            Reply::bulk("role"),
            Reply::bulk(if call.state.replica.is_some() {
                "replica"
            } else {
                "master"
            }),
        ),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ]);
    call.reply(reply);
}

fn reset(call: &mut Call<'_>) {
    call.client.multi = None;
    unwatch_all(call.client, call.state);
    for channel in call.client.channels.drain(..) {
        call.state.pubsub.unsubscribe(&channel, call.client.id);
    }
    for pattern in call.client.patterns.drain(..) {
        call.state.pubsub.punsubscribe(&pattern, call.client.id);
    }
    call.client.db = 0;
    call.client.resp3 = false;
    call.client.authenticated = !call.client.auth_required;
    call.reply(Reply::Simple("RESET".into()));
}

fn set_client_name(call: &mut Call<'_>, name: Bytes) -> Result<(), Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    if let Some(info) = call.state.clients.get_mut(&call.client.id) {
        info.name = (!name.is_empty()).then(|| crate::store::own(&name));
    }
    Ok(())
}

fn client_command(call: &mut Call<'_>) {
    let sub = lower(&call.argv[1]);
    let argc = call.argv.len();
    let arity_error = |sub: &str| Reply::error(wrong_arity(&format!("client|{sub}")));
    match sub.as_str() {
        "id" if argc == 2 => {
            let id = call.client.id as i64;
            call.reply(Reply::Int(id));
        }
        "setname" if argc == 3 => {
            let name = call.argv[2].clone();
            match set_client_name(call, name) {
                Ok(()) => call.reply(Reply::Ok),
                Err(e) => call.reply(e),
            }
        }
        "getname" if argc == 2 => {
            let name = call
                .state
                .clients
                .get(&call.client.id)
                .and_then(|i| i.name.clone());
            call.reply(Reply::bulk_or_nil(name));
        }
        "info" if argc == 2 => {
            let line = call
                .state
                .clients
                .get(&call.client.id)
                .map(|info| client_line(call.client.id, info, call.client))
                .unwrap_or_default();
            call.reply(Reply::Bulk(Bytes::from(line + "\n")));
        }
        "list" => {
            // CLIENT LIST [TYPE normal|pubsub|master|replica] [ID id …]
            let mut ids: Option<Vec<u64>> = None;
            let mut kind: Option<String> = None;
            let mut i = 2;
            while i < argc {
                let option = lower(&call.argv[i]);
                if option == "type" && i + 1 < argc {
                    let t = lower(&call.argv[i + 1]);
                    if !["normal", "pubsub", "master", "replica", "slave"].contains(&t.as_str()) {
                        let t = text(&call.argv[i + 1]);
                        return call.reply(Reply::error(format!("ERR Unknown client type '{t}'")));
                    }
                    kind = Some(t);
                    i += 2;
                } else if option == "id" && i + 1 < argc {
                    let mut list = Vec::new();
                    for arg in &call.argv[i + 1..] {
                        match parse_i64(arg) {
                            Some(id) if id > 0 => list.push(id as u64),
                            _ => {
                                return call.reply(Reply::error("ERR Invalid client ID"));
                            }
                        }
                    }
                    ids = Some(list);
                    i = argc;
                } else {
                    return call.reply(Reply::error(command::errors::SYNTAX));
                }
            }
            let mut out = String::new();
            for (&id, info) in &call.state.clients {
                if ids.as_ref().is_some_and(|ids| !ids.contains(&id)) {
                    continue;
                }
                let keep = kind.as_deref().is_none_or(|kind| {
                    super::client_kill::ClientType::parse(kind.as_bytes())
                        == Some(super::client_kill::client_type(call.state, id))
                });
                if keep {
                    let line = if id == call.client.id {
                        client_line(id, info, call.client)
                    } else {
                        client_line_from_info(id, info)
                    };
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            call.reply(Reply::Verbatim(Bytes::from(out)));
        }
        "kill" => super::client_kill::client_kill(call),
        "id" | "getname" | "info" | "setname" => call.reply(arity_error(&sub)),
        _ => unknown_subcommand(call, "CLIENT"),
    }
}

/// A CLIENT LIST line for the calling client (its live state, not the per-batch copy).
fn client_line(id: u64, info: &super::ClientInfo, client: &Client) -> String {
    let mut line = client_line_from_info(id, info);
    // The caller's own line reflects the command being run right now.
    if let Some(at) = line.find(" cmd=") {
        let end = line[at + 5..].find(' ').map_or(line.len(), |e| at + 5 + e);
        line.replace_range(at + 5..end, &client.last_cmd);
    }
    line
}

fn client_line_from_info(id: u64, info: &super::ClientInfo) -> String {
    let name = info
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let mut flags = String::new();
    if info.subscriptions + info.patterns > 0 {
        flags.push('P');
    }
    if info.multi >= 0 {
        flags.push('x');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={id} addr={} laddr={} fd={} name={name} age={} idle={} flags={flags} db={} sub={} \
         psub={} ssub=0 multi={} cmd={} user=default redir=-1 resp={}",
        info.addr,
        info.laddr,
        info.fd,
        info.created.elapsed().as_secs(),
        info.last_interaction.elapsed().as_secs(),
        info.db,
        info.subscriptions,
        info.patterns,
        info.multi,
        info.cmd,
        info.resp
    )
}

// ---- transactions -------------------------------------------------------------------------

fn multi(call: &mut Call<'_>) {
    if call.client.multi.is_some() {
        return call.reply(Reply::error("ERR MULTI calls can not be nested"));
    }
    call.client.multi = Some(Multi {
        queue: Vec::new(),
        failed: false,
    });
    call.reply(Reply::Ok);
}

fn discard(call: &mut Call<'_>) {
    if call.client.multi.take().is_none() {
        return call.reply(Reply::error("ERR DISCARD without MULTI"));
    }
    unwatch_all(call.client, call.state);
    call.reply(Reply::Ok);
}

fn exec(call: &mut Call<'_>) {
    let Some(multi) = call.client.multi.take() else {
        return call.reply(Reply::error("ERR EXEC without MULTI"));
    };
    if multi.failed {
        unwatch_all(call.client, call.state);
        return call.reply(Reply::error(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let watched_changed = call.state.dirty_cas.contains(&call.client.id);
    unwatch_all(call.client, call.state);
    if watched_changed {
        return call.reply(Reply::NilArray);
    }
    let out = &mut call.client.out;
    out.push(b'*');
    out.extend_from_slice(multi.queue.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    call.state.engine.begin_unit();
    for argv in &multi.queue {
        // Queued commands passed lookup and arity when queued.
        let Some(cmd) = argv.first().and_then(|n| lookup(n)) else {
            call.client.reply(&command::unknown_command(argv));
            continue;
        };
        call_in_exec(call, cmd, argv);
    }
    call.state.engine.end_unit();
}

fn call_in_exec(call: &mut Call<'_>, cmd: Cmd, argv: &[Bytes]) {
    run_command(
        call.client,
        call.state,
        call.shared,
        cmd,
        argv,
        call.now_ms,
        true,
    );
}

fn watch(call: &mut Call<'_>) {
    if call.client.multi.is_some() {
        return call.reply(Reply::error("ERR WATCH inside MULTI is not allowed"));
    }
    let db = call.client.db;
    for key in &call.argv[1..] {
        let entry = (db, crate::store::own(key));
        if call.client.watching.contains(&entry) {
            continue;
        }
        call.state
            .watched
            .entry(entry.clone())
            .or_default()
            .push(call.client.id);
        call.client.watching.push(entry);
    }
    call.reply(Reply::Ok);
}

fn unwatch(call: &mut Call<'_>) {
    unwatch_all(call.client, call.state);
    call.reply(Reply::Ok);
}

// ---- server -------------------------------------------------------------------------------

fn info(call: &mut Call<'_>) {
    let sections: Vec<String> = call.argv[1..].iter().map(|a| lower(a)).collect();
    let text = super::info::render(call.state, call.shared, &sections);
    call.reply(Reply::Verbatim(Bytes::from(text)));
}

fn config(call: &mut Call<'_>) {
    let sub = lower(&call.argv[1]);
    let argc = call.argv.len();
    match sub.as_str() {
        "get" if argc >= 3 => {
            let mut pairs: Vec<(String, String)> = Vec::new();
            for pattern in &call.argv[2..] {
                for pair in call.state.engine.config().get(&text(pattern)) {
                    if !pairs.iter().any(|(n, _)| n == &pair.0) {
                        pairs.push(pair);
                    }
                }
            }
            let reply = Reply::Map(
                pairs
                    .into_iter()
                    .map(|(n, v)| (Reply::bulk(n), Reply::bulk(v)))
                    .collect(),
            );
            call.reply(reply);
        }
        "set" if argc >= 4 && argc.is_multiple_of(2) => {
            let pairs: Vec<(String, String)> = call.argv[2..]
                .chunks(2)
                .map(|p| (text(&p[0]), text(&p[1])))
                .collect();
            match call.state.engine.config_set(&pairs) {
                Ok(()) => {
                    super::replication::apply_config(call.state);
                    call.reply(Reply::Ok)
                }
                Err(e) => call.reply(Reply::error(e)),
            }
        }
        "resetstat" if argc == 2 => {
            call.state.engine.stats = Default::default();
            super::replication::reset_stats(call.state);
            call.shared.net_input_bytes.store(0, Ordering::Relaxed);
            call.shared.net_output_bytes.store(0, Ordering::Relaxed);
            call.shared.net_repl_input_bytes.store(0, Ordering::Relaxed);
            call.shared
                .net_repl_output_bytes
                .store(0, Ordering::Relaxed);
            call.reply(Reply::Ok);
        }
        "rewrite" if argc == 2 => config_rewrite(call),
        "get" | "set" | "resetstat" | "rewrite" => {
            call.reply(Reply::error(wrong_arity(&format!("config|{sub}"))))
        }
        _ => unknown_subcommand(call, "CONFIG"),
    }
}

/// `CONFIG REWRITE` ([`crate::config::rewrite`]). The config file is the operator's text
/// file, read at start with plain file I/O, so it is written through the OS storage whatever
/// backend holds the data.
fn config_rewrite(call: &mut Call<'_>) {
    let Some(path) = call.state.config_file.clone() else {
        return call.reply(Reply::error(
            "ERR The server is running without a config file",
        ));
    };
    let storage = crate::storage::OsStorage;
    let config = call.state.engine.config();
    match crate::config::rewrite::rewrite_file(&storage, Path::new(&path), config) {
        Ok(()) => {
            tracing::warn!("CONFIG REWRITE executed with success.");
            call.reply(Reply::Ok);
        }
        Err(e) => {
            tracing::warn!("CONFIG REWRITE failed: {e}");
            call.reply(Reply::error(format!("ERR Rewriting config file: {e}")));
        }
    }
}

fn dbsize(call: &mut Call<'_>) {
    let n = call.state.engine.store().db(call.client.db).len();
    call.reply(Reply::Int(n as i64));
}

fn time(call: &mut Call<'_>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    call.reply(Reply::Array(vec![
        Reply::bulk(now.as_secs().to_string()),
        Reply::bulk(now.subsec_micros().to_string()),
    ]));
}

fn lastsave(call: &mut Call<'_>) {
    let at = call.state.engine.persistence().state().last_save_unix();
    call.reply(Reply::Int(at));
}

fn save(call: &mut Call<'_>) {
    if call.state.engine.persistence().bgsave_in_progress() {
        return call.reply(Reply::error(snapshot::BGSAVE_IN_PROGRESS_ERROR));
    }
    match call.state.engine.save() {
        Ok(()) => call.reply(Reply::Ok),
        // Redis answers a failed SAVE with a bare `-ERR` (the reason is in the log).
        Err(_) => call.reply(Reply::error("ERR")),
    }
}

fn bgsave(call: &mut Call<'_>) {
    // SCHEDULE matters in Redis only while another child (an AOF rewrite) runs; keeper has
    // none, so both forms start a save now (or say one is already running).
    match call.argv {
        [_] => {}
        [_, arg] if arg.eq_ignore_ascii_case(b"schedule") => {}
        _ => return call.reply(Reply::error(command::errors::SYNTAX)),
    }
    let engine = &mut call.state.engine;
    if engine.persistence().bgsave_in_progress() {
        return call.reply(Reply::error(snapshot::BGSAVE_IN_PROGRESS_ERROR));
    }
    if call.in_exec {
        // A save started inside EXEC would see half a transaction's effects in no way a
        // client can tell; Redis schedules it for after the transaction, and so do we.
        engine.schedule_bgsave();
        return call.reply(Reply::Simple("Background saving scheduled".into()));
    }
    match engine.bgsave() {
        Ok(()) => call.reply(Reply::Simple("Background saving started".into())),
        Err(e) => call.reply(Reply::error(e)),
    }
}

fn bgrewriteaof(call: &mut Call<'_>) {
    let engine = &mut call.state.engine;
    if engine.aof().is_some_and(|aof| aof.rewrite_in_progress()) {
        return call.reply(Reply::error(crate::aof::REWRITE_IN_PROGRESS_ERROR));
    }
    if call.in_exec {
        // As BGSAVE: the rewrite's snapshot must not fall inside a transaction.
        if let Some(aof) = engine.aof_mut() {
            aof.schedule_rewrite();
            return call.reply(Reply::Simple(
                "Background append only file rewriting scheduled".into(),
            ));
        }
    }
    match engine.bgrewriteaof() {
        Ok(status) => call.reply(Reply::Simple(status.into())),
        Err(e) => call.reply(Reply::error(e)),
    }
}

fn shutdown(call: &mut Call<'_>) {
    let mut save = None;
    let mut force = false;
    for arg in &call.argv[1..] {
        match lower(arg).as_str() {
            "nosave" => save = Some(false),
            "save" => save = Some(true),
            "now" => {}
            "force" => force = true,
            "abort" if call.argv.len() == 2 => {
                return call.reply(Reply::error("ERR No shutdown in progress."));
            }
            _ => return call.reply(Reply::error(command::errors::SYNTAX)),
        }
    }
    let save = save.unwrap_or(!call.state.engine.config().save.is_empty());
    tracing::info!("User requested shutdown...");
    if save
        && let Err(e) = call.state.engine.shutdown_save()
        && !force
    {
        tracing::warn!("Error trying to save the DB, can't exit: {e}");
        return call.reply(Reply::error("ERR Errors trying to SHUTDOWN. Check logs."));
    }
    call.shared.stopping.store(true, Ordering::SeqCst);
    call.shared.shutdown.notify_one();
    // No reply: the connection closes, as with Redis.
    call.client.close = true;
}

fn role(call: &mut Call<'_>) {
    if let Some(reply) = super::replica_link::role_reply(call.state) {
        return call.reply(reply);
    }
    let reply = super::replication::role(call.state);
    call.reply(reply);
}

// ---- COMMAND ------------------------------------------------------------------------------

fn all_commands() -> Vec<Cmd> {
    let mut cmds: Vec<Cmd> = TABLE.values().copied().collect();
    cmds.sort_by_key(|c| c.name());
    cmds
}

/// One command's `COMMAND INFO` entry, in Redis 7.0's shape: name, arity, flags, first key,
/// last key, step, ACL categories, tips, key specs, subcommands.
fn command_entry(cmd: Cmd) -> Reply {
    let flag_bits = cmd.flags();
    let flag_names: Vec<Reply> = flags::NAMES
        .iter()
        .filter(|(bit, _)| flag_bits & bit != 0)
        .map(|(_, name)| Reply::Simple((*name).into()))
        .collect();
    // Redis lists categories in the order of their bits: keyspace, read, write, then the
    // data type, …
    let family = match cmd {
        Cmd::Data(spec) => command::category(spec),
        Cmd::Server(_) => "",
    };
    let mut categories = Vec::new();
    if family == "@keyspace" {
        categories.push(family);
    }
    if flag_bits & flags::READONLY != 0 {
        categories.push("@read");
    }
    if flag_bits & flags::WRITE != 0 {
        categories.push("@write");
    }
    if !family.is_empty() && family != "@keyspace" {
        categories.push(family);
    }
    if flag_bits & flags::ADMIN != 0 {
        categories.extend(["@admin", "@dangerous"]);
    }
    if flag_bits & flags::PUBSUB != 0 {
        categories.push("@pubsub");
    }
    categories.push(if flag_bits & flags::FAST != 0 {
        "@fast"
    } else {
        "@slow"
    });
    let (first, last, step) = cmd.keys();
    let key_specs = if first > 0 {
        let access = if flag_bits & flags::WRITE != 0 {
            ["RW", "update"]
        } else {
            ["RO", "access"]
        };
        let last_relative = if last < 0 { last } else { last - first };
        vec![Reply::Map(vec![
            (
                Reply::bulk("flags"),
                Reply::Set(access.iter().map(|f| Reply::Simple((*f).into())).collect()),
            ),
            (
                Reply::bulk("begin_search"),
                Reply::Map(vec![
                    (Reply::bulk("type"), Reply::bulk("index")),
                    (
                        Reply::bulk("spec"),
                        Reply::Map(vec![(Reply::bulk("index"), Reply::Int(first.into()))]),
                    ),
                ]),
            ),
            (
                Reply::bulk("find_keys"),
                Reply::Map(vec![
                    (Reply::bulk("type"), Reply::bulk("range")),
                    (
                        Reply::bulk("spec"),
                        Reply::Map(vec![
                            (Reply::bulk("lastkey"), Reply::Int(last_relative.into())),
                            (Reply::bulk("keystep"), Reply::Int(step.into())),
                            (Reply::bulk("limit"), Reply::Int(0)),
                        ]),
                    ),
                ]),
            ),
        ])]
    } else {
        Vec::new()
    };
    Reply::Array(vec![
        Reply::bulk(cmd.name()),
        Reply::Int(cmd.arity().into()),
        Reply::Set(flag_names),
        Reply::Int(first.into()),
        Reply::Int(last.into()),
        Reply::Int(step.into()),
        Reply::Set(
            categories
                .into_iter()
                .map(|c| Reply::Simple(c.into()))
                .collect(),
        ),
        Reply::Set(Vec::new()),
        Reply::Set(key_specs),
        // Redis: an empty set without subcommands, an array of entries with them.
        Reply::Set(Vec::new()),
    ])
}

/// `COMMAND DOCS` for the commands keeper documents (the server commands); data commands
/// have no docs entry yet, which clients treat as "no help available".
fn command_docs(cmd: Cmd) -> Option<Reply> {
    let Cmd::Server(spec) = cmd else { return None };
    Some(Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk(spec.since)),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ]))
}

/// `COMMAND GETKEYS command args…`: the key arguments of that call, with Redis 7.0's
/// errors. Keys come from the key positions; the commands whose keys move are parsed
/// (SINTERCARD's numkeys, XREAD/XREADGROUP's `STREAMS` keyword: the first half after it).
fn command_getkeys(argv: &[Bytes]) -> Reply {
    let invalid = || Reply::error("ERR Invalid arguments specified for command");
    let Some(cmd) = lookup(&argv[0]) else {
        return Reply::error("ERR Invalid command specified");
    };
    let argc = argv.len();
    // A container's subcommands (XGROUP CREATE, XINFO STREAM) take their key at index 2.
    let (arity, (first, last, step)) = match cmd {
        Cmd::Data(spec) if !spec.subcommands.is_empty() && argc >= 2 => {
            let Some(sub) = spec.subcommand(argv) else {
                return Reply::error("ERR Invalid command specified");
            };
            (
                sub.arity,
                if sub.name == "help" {
                    (0, 0, 0)
                } else {
                    (2, 2, 1)
                },
            )
        }
        _ => (cmd.arity(), cmd.keys()),
    };
    let movable = cmd.flags() & flags::MOVABLEKEYS != 0;
    if first <= 0 && !movable {
        return Reply::error("ERR The command has no key arguments");
    }
    if (arity > 0 && arity as usize != argc) || (argc as i64) < -i64::from(arity) {
        return Reply::error("ERR Invalid number of arguments specified for command");
    }
    let positions: Vec<usize> = match cmd.name() {
        "sintercard" => {
            let numkeys = std::str::from_utf8(&argv[1])
                .ok()
                .and_then(|n| n.parse::<usize>().ok());
            match numkeys {
                Some(n) if n >= 1 && n <= argc - 2 => (2..2 + n).collect(),
                _ => return invalid(),
            }
        }
        "xread" | "xreadgroup" => {
            let start = if cmd.name() == "xread" { 1 } else { 4 };
            let Some(keyword) = (start..argc).find(|&i| argv[i].eq_ignore_ascii_case(b"streams"))
            else {
                return invalid();
            };
            let count = (argc - keyword - 1) / 2;
            if count == 0 {
                return invalid();
            }
            (keyword + 1..keyword + 1 + count).collect()
        }
        _ => {
            let last = if last < 0 {
                argc as i64 + i64::from(last)
            } else {
                i64::from(last)
            };
            (i64::from(first)..=last.min(argc as i64 - 1))
                .step_by(step.max(1) as usize)
                .map(|i| i as usize)
                .collect()
        }
    };
    Reply::Array(
        positions
            .into_iter()
            .map(|i| Reply::Bulk(argv[i].clone()))
            .collect(),
    )
}

fn command_command(call: &mut Call<'_>) {
    if call.argv.len() == 1 {
        let reply = Reply::Array(all_commands().into_iter().map(command_entry).collect());
        return call.reply(reply);
    }
    let sub = lower(&call.argv[1]);
    let argc = call.argv.len();
    match sub.as_str() {
        "count" if argc == 2 => call.reply(Reply::Int(TABLE.len() as i64)),
        "getkeys" if argc >= 4 => {
            let reply = command_getkeys(&call.argv[2..]);
            call.reply(reply);
        }
        "list" if argc == 2 => {
            let names = all_commands()
                .into_iter()
                .map(|c| Reply::bulk(c.name()))
                .collect();
            call.reply(Reply::Array(names));
        }
        "info" => {
            let reply = if argc == 2 {
                Reply::Array(all_commands().into_iter().map(command_entry).collect())
            } else {
                Reply::Array(
                    call.argv[2..]
                        .iter()
                        .map(|name| lookup(name).map_or(Reply::Nil, command_entry))
                        .collect(),
                )
            };
            call.reply(reply);
        }
        "docs" => {
            let cmds: Vec<Cmd> = if argc == 2 {
                all_commands()
            } else {
                call.argv[2..].iter().filter_map(|n| lookup(n)).collect()
            };
            let docs = cmds
                .into_iter()
                .filter_map(|c| command_docs(c).map(|d| (Reply::bulk(c.name()), d)))
                .collect();
            call.reply(Reply::Map(docs));
        }
        "count" | "list" | "getkeys" => {
            call.reply(Reply::error(wrong_arity(&format!("command|{sub}"))))
        }
        _ => unknown_subcommand(call, "COMMAND"),
    }
}

// ---- pub/sub ------------------------------------------------------------------------------

fn publish(call: &mut Call<'_>) {
    let (receivers, own) = call
        .state
        .pubsub
        .publish(&call.argv[1], &call.argv[2], call.client.id);
    // As Redis 7.0 outside cluster mode, a primary's PUBLISH reaches its replicas' clients
    // through the replication stream (not the AOF); a replica passes nothing on.
    if !call.state.engine.is_replica() {
        let db = call.client.db;
        call.state.engine.propagate_publish(db, call.argv);
    }
    for message in &own {
        call.client.reply(message);
    }
    call.reply(Reply::Int(receivers));
}

fn subscription_reply(kind: &'static str, name: Option<Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::bulk(kind),
        Reply::bulk_or_nil(name),
        Reply::Int(count as i64),
    ])
}

fn subscribe(call: &mut Call<'_>) {
    for channel in &call.argv[1..] {
        let channel = crate::store::own(channel);
        if call
            .state
            .pubsub
            .subscribe(&channel, call.client.id, &call.client.mailbox)
        {
            call.client.channels.push(channel.clone());
        }
        let count = call.client.channels.len() + call.client.patterns.len();
        call.client
            .reply(&subscription_reply("subscribe", Some(channel), count));
    }
}

fn psubscribe(call: &mut Call<'_>) {
    for pattern in &call.argv[1..] {
        let pattern = crate::store::own(pattern);
        if call
            .state
            .pubsub
            .psubscribe(&pattern, call.client.id, &call.client.mailbox)
        {
            call.client.patterns.push(pattern.clone());
        }
        let count = call.client.channels.len() + call.client.patterns.len();
        call.client
            .reply(&subscription_reply("psubscribe", Some(pattern), count));
    }
}

fn unsubscribe(call: &mut Call<'_>) {
    let targets: Vec<Bytes> = if call.argv.len() > 1 {
        call.argv[1..].to_vec()
    } else {
        call.client.channels.clone()
    };
    if targets.is_empty() {
        let count = call.client.patterns.len();
        return call
            .client
            .reply(&subscription_reply("unsubscribe", None, count));
    }
    for channel in targets {
        call.state.pubsub.unsubscribe(&channel, call.client.id);
        call.client.channels.retain(|c| c != &channel);
        let count = call.client.channels.len() + call.client.patterns.len();
        call.client
            .reply(&subscription_reply("unsubscribe", Some(channel), count));
    }
}

fn punsubscribe(call: &mut Call<'_>) {
    let targets: Vec<Bytes> = if call.argv.len() > 1 {
        call.argv[1..].to_vec()
    } else {
        call.client.patterns.clone()
    };
    if targets.is_empty() {
        let count = call.client.channels.len();
        return call
            .client
            .reply(&subscription_reply("punsubscribe", None, count));
    }
    for pattern in targets {
        call.state.pubsub.punsubscribe(&pattern, call.client.id);
        call.client.patterns.retain(|p| p != &pattern);
        let count = call.client.channels.len() + call.client.patterns.len();
        call.client
            .reply(&subscription_reply("punsubscribe", Some(pattern), count));
    }
}

fn pubsub_command(call: &mut Call<'_>) {
    let sub = lower(&call.argv[1]);
    let argc = call.argv.len();
    match sub.as_str() {
        "channels" if argc <= 3 => {
            let pattern = call.argv.get(2).map(|p| &p[..]);
            let names = call.state.pubsub.channels_matching(pattern);
            call.reply(Reply::Array(names.into_iter().map(Reply::Bulk).collect()));
        }
        "numsub" => {
            let pairs = call.argv[2..]
                .iter()
                .map(|c| {
                    (
                        Reply::Bulk(c.clone()),
                        Reply::Int(call.state.pubsub.subscribers(c) as i64),
                    )
                })
                .collect();
            call.reply(Reply::Map(pairs));
        }
        "numpat" if argc == 2 => {
            let n = call.state.pubsub.pattern_count() as i64;
            call.reply(Reply::Int(n));
        }
        "channels" | "numpat" => {
            call.reply(Reply::error(wrong_arity(&format!("pubsub|{sub}"))));
        }
        _ => unknown_subcommand(call, "PUBSUB"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_both_kinds_in_any_case() {
        assert!(matches!(lookup(b"GeT"), Some(Cmd::Data(_))));
        assert!(matches!(lookup(b"PING"), Some(Cmd::Server(_))));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 40]).is_none());
    }

    #[test]
    fn command_entries_have_redis_7_shape() {
        let Reply::Array(items) = command_entry(lookup(b"get").unwrap()) else {
            panic!()
        };
        assert_eq!(items.len(), 10);
        assert_eq!(items[0], Reply::bulk("get"));
        assert_eq!(items[1], Reply::Int(2));
        assert_eq!(items[3], Reply::Int(1));
    }
}
