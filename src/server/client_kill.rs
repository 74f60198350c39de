//! `CLIENT KILL`, as Redis 7.0's `clientCommand`:
//!
//! - the old form `CLIENT KILL addr:port` answers `+OK` or `-ERR No such client`, and may
//!   close the caller itself;
//! - the new form takes filters `ID id`, `TYPE normal|master|replica|slave|pubsub`,
//!   `USER name`, `ADDR addr:port`, `LADDR addr:port`, `SKIPME yes|no` (default yes), all of
//!   which a client must match, and answers how many were closed.
//!
//! Closing a connection is immediate for everyone else: it leaves the client registry at
//! once (its task, woken by its kill signal, stops before running anything more and
//! discards what it had not written); a replica's link is dropped from the primary's
//! registry, and its stream stops. `TYPE master` on a replica drops the link to its primary,
//! which reconnects and asks a partial resync from where it was, as Redis does with its
//! cached master. A client that closes itself gets its reply first (Redis's
//! close-after-reply).

use super::State;
use super::commands::Call;
use crate::command::{errors, parse_i64};
use crate::resp::Reply;

/// Redis's client classes (`getClientType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientType {
    Normal,
    /// A replica's connection on its primary (`slave` / `replica`).
    Replica,
    Pubsub,
    /// A replica's link to its primary.
    Master,
}

impl ClientType {
    /// `getClientTypeByName`.
    pub fn parse(name: &[u8]) -> Option<ClientType> {
        match name.to_ascii_lowercase().as_slice() {
            b"normal" => Some(ClientType::Normal),
            b"slave" | b"replica" => Some(ClientType::Replica),
            b"pubsub" => Some(ClientType::Pubsub),
            b"master" => Some(ClientType::Master),
            _ => None,
        }
    }
}

/// The class of connected client `id` (a replica's connection counts as `Replica` from its
/// SYNC/PSYNC on, as in Redis).
pub(crate) fn client_type(state: &State, id: u64) -> ClientType {
    if state
        .primary
        .lock()
        .replicas()
        .iter()
        .any(|replica| replica.id == id)
    {
        return ClientType::Replica;
    }
    match state.clients.get(&id) {
        Some(info) if info.subscriptions + info.patterns > 0 => ClientType::Pubsub,
        _ => ClientType::Normal,
    }
}

/// What a client must match to be closed.
#[derive(Default)]
struct Filter {
    id: Option<u64>,
    kind: Option<ClientType>,
    addr: Option<String>,
    laddr: Option<String>,
    skipme: bool,
}

/// `CLIENT KILL …` (argv[0..2] are `CLIENT KILL`).
pub(crate) fn client_kill(call: &mut Call<'_>) {
    let argv = call.argv;
    if argv.len() < 3 {
        return call.client.reply(&Reply::error(
            "ERR wrong number of arguments for 'client|kill' command",
        ));
    }
    let old_form = argv.len() == 3;
    let filter = if old_form {
        Filter {
            addr: Some(String::from_utf8_lossy(&argv[2]).into_owned()),
            // With the old form, a client can close itself.
            skipme: false,
            ..Filter::default()
        }
    } else {
        match parse_filter(&argv[2..]) {
            Ok(filter) => filter,
            Err(error) => return call.client.reply(&error),
        }
    };
    let own_id = call.client.id;
    let mut victims = Vec::new();
    let mut close_self = false;
    for (&id, info) in &call.state.clients {
        let matches = filter.id.is_none_or(|want| want == id)
            && filter
                .addr
                .as_deref()
                .is_none_or(|a| a == info.addr.to_string())
            && filter
                .laddr
                .as_deref()
                .is_none_or(|a| a == info.laddr.to_string())
            && filter
                .kind
                .is_none_or(|kind| kind == client_type(call.state, id));
        if !matches || (id == own_id && filter.skipme) {
            continue;
        }
        if id == own_id {
            close_self = true;
        } else {
            victims.push(id);
        }
    }
    let mut killed = victims.len() + usize::from(close_self);
    for id in victims {
        kill(call.state, id);
    }
    // The link to this node's primary is a client of the master class for Redis, with no
    // id or local address a filter could name here.
    let master_matches = filter.id.is_none()
        && filter.laddr.is_none()
        && filter.kind.is_none_or(|kind| kind == ClientType::Master)
        && super::replica_link::primary_link_addr(call.state)
            .is_some_and(|addr| filter.addr.as_deref().is_none_or(|a| a == addr));
    if master_matches && let Some(shared) = call.shared.this.upgrade() {
        super::replica_link::drop_primary_link(call.state, shared);
        killed += 1;
    }
    if old_form {
        call.client.reply(&if killed == 0 {
            Reply::error("ERR No such client")
        } else {
            Reply::Ok
        });
    } else {
        call.client.reply(&Reply::Int(killed as i64));
    }
    if close_self {
        call.client.close = true;
    }
}

fn parse_filter(args: &[bytes::Bytes]) -> Result<Filter, Reply> {
    let mut filter = Filter {
        skipme: true,
        ..Filter::default()
    };
    let mut pairs = args.chunks(2);
    for pair in &mut pairs {
        let [option, value] = pair else {
            return Err(Reply::error(errors::SYNTAX));
        };
        let text = || String::from_utf8_lossy(value).into_owned();
        match option.to_ascii_lowercase().as_slice() {
            b"id" => match parse_i64(value) {
                Some(id) if id >= 1 => filter.id = Some(id as u64),
                _ => {
                    return Err(Reply::error("ERR client-id should be greater than 0"));
                }
            },
            b"type" => match ClientType::parse(value) {
                Some(kind) => filter.kind = Some(kind),
                None => {
                    return Err(Reply::error(format!(
                        "ERR Unknown client type '{}'",
                        text()
                    )));
                }
            },
            b"addr" => filter.addr = Some(text()),
            b"laddr" => filter.laddr = Some(text()),
            // keeper has the `default` user only, and every client is logged in as it: the
            // filter matches everyone.
            b"user" => {
                if value.as_ref() != b"default" {
                    return Err(Reply::error(format!("ERR No such user '{}'", text())));
                }
            }
            b"skipme" => match value.to_ascii_lowercase().as_slice() {
                b"yes" => filter.skipme = true,
                b"no" => filter.skipme = false,
                _ => return Err(Reply::error(errors::SYNTAX)),
            },
            _ => return Err(Reply::error(errors::SYNTAX)),
        }
    }
    Ok(filter)
}

/// Closes connection `id` (not the caller's): out of the registry now, its task stops at
/// its next turn; a replica's link and stream stop at once.
pub(crate) fn kill(state: &mut State, id: u64) {
    let mut primary = state.primary.lock();
    if let Some(replica) = primary.replica_mut(id) {
        replica.link().kill();
        primary.remove(id);
    }
    drop(primary);
    state.pubsub.forget(id);
    if let Some(info) = state.clients.remove(&id) {
        info.kill.notify_one();
    }
}
