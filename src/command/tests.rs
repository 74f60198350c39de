//! Shared helpers for the command tests of every family: run commands on a store at a fixed
//! time and look at replies and propagation.

use bytes::Bytes;

use super::*;
use crate::store::Store;

/// A store and a clock, driving commands like a client would.
pub(super) struct Harness {
    pub store: Store,
    pub db: usize,
    pub now_ms: i64,
    pub rng: Rng,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            store: Store::new(16),
            db: 0,
            now_ms: 1_700_000_000_000,
            rng: Rng::new(7),
        }
    }

    /// Runs a command given as whitespace-separated words.
    pub fn run(&mut self, line: &str) -> Effect {
        self.run_argv(&argv(line))
    }

    pub fn run_argv(&mut self, argv: &[Bytes]) -> Effect {
        execute(&mut self.store, self.db, argv, self.now_ms, &mut self.rng)
    }

    /// The reply of a command.
    pub fn reply(&mut self, line: &str) -> Reply {
        self.run(line).reply
    }
}

/// The arguments of a command given as whitespace-separated words.
pub(super) fn argv(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// A command's arguments as one line, for messages and comparisons.
pub(super) fn show(argv: &[Bytes]) -> String {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

pub(super) fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(Reply::bulk).collect())
}

pub(super) fn err(text: &str) -> Reply {
    Reply::error(text.to_string())
}

/// The bulk strings of an array or set reply, sorted (for replies in hash order).
pub(super) fn sorted_bulks(reply: Reply) -> Vec<String> {
    let (Reply::Array(items) | Reply::Set(items)) = reply else {
        panic!("not an array: {reply:?}")
    };
    let mut out: Vec<String> = items
        .into_iter()
        .map(|item| match item {
            Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect();
    out.sort();
    out
}

/// What a command propagated, one line per command (`<verbatim>` for the command as received).
pub(super) fn propagated(effect: &Effect) -> Vec<String> {
    match &effect.propagate {
        Propagate::Nothing => vec![],
        Propagate::Verbatim => vec!["<verbatim>".into()],
        Propagate::Commands(commands) => commands.iter().map(|argv| show(argv)).collect(),
    }
}

#[test]
fn unknown_and_arity_errors_match_redis() {
    let mut h = Harness::new();
    assert_eq!(
        h.reply("nosuch a b"),
        Reply::error("ERR unknown command 'nosuch', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        h.reply("GET"),
        Reply::error("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(h.reply("get missing"), Reply::Nil);
}
