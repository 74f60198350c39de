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
        let argv: Vec<Bytes> = line
            .split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        self.run_argv(&argv)
    }

    pub fn run_argv(&mut self, argv: &[Bytes]) -> Effect {
        execute(&mut self.store, self.db, argv, self.now_ms, &mut self.rng)
    }

    /// The reply of a command.
    pub fn reply(&mut self, line: &str) -> Reply {
        self.run(line).reply
    }
}

pub(super) fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

#[test]
fn unknown_and_arity_errors_match_redis() {
    let mut h = Harness::new();
    assert_eq!(
        h.reply("nosuch a b"),
        Reply::error("ERR unknown command 'nosuch', with args beginning with: 'a', 'b', ")
    );
    assert_eq!(
        h.reply("GET"),
        Reply::error("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(h.reply("get missing"), Reply::Nil);
    let _ = bulk("x");
}
