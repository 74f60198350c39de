//! Replaying what commands propagate gives the same data.
//!
//! A seeded random mix of string, key, list and hash commands runs on one store; everything
//! it propagates (the lazily expired keys as `DEL`, then each command verbatim or as
//! rewritten) is replayed on a second, fresh store one millisecond later. Every expiry time
//! the mix can produce is a whole second, so both stores agree on which keys have expired,
//! while a relative TTL that escaped its rewrite to an absolute time would land one
//! millisecond off and be caught. After every step both stores must hold the same live data.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{Propagate, Rng, execute};
use crate::resp::Reply;
use crate::store::{Store, Value};

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4"];
const VALUES: &[&str] = &["1", "10", "-7", "3.5", "abc", "x"];
const FLOATS: &[&str] = &["0.1", "1.5", "-2.25", "1e3", "3"];
const START_MS: i64 = 1_700_000_000_000;

/// A key's live state, comparable across stores (hash field order is per-store).
#[derive(Debug, PartialEq)]
enum Canonical {
    String(Bytes),
    List(Vec<Bytes>),
    Hash(Vec<(Bytes, Bytes)>),
    Other(String),
}

fn canonical(value: &Value) -> Canonical {
    match value {
        Value::String(s) => Canonical::String(s.clone()),
        Value::List(list) => Canonical::List(list.iter().cloned().collect()),
        Value::Hash(fields) => {
            let mut pairs: Vec<(Bytes, Bytes)> = fields
                .iter()
                .map(|(f, v)| (f.clone(), v.value.clone()))
                .collect();
            pairs.sort();
            Canonical::Hash(pairs)
        }
        other => Canonical::Other(format!("{other:?}")),
    }
}

/// Every live key of every database at `now_ms`, with its value and TTL.
fn live_data(store: &Store, now_ms: i64) -> BTreeMap<(usize, Bytes), (Canonical, Option<i64>)> {
    let mut data = BTreeMap::new();
    for db in 0..store.databases() {
        for (key, item) in store.db(db).iter() {
            if item.expire_at_ms.is_some_and(|at| at <= now_ms) {
                continue;
            }
            data.insert(
                (db, key.clone()),
                (canonical(&item.value), item.expire_at_ms),
            );
        }
    }
    data
}

struct Generator {
    rng: Rng,
}

impl Generator {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.below(items.len() as u64) as usize]
    }

    fn key(&mut self) -> &'static str {
        self.pick(KEYS)
    }

    fn value(&mut self) -> &'static str {
        self.pick(VALUES)
    }

    fn int(&mut self, low: i64, high: i64) -> i64 {
        low + self.rng.below((high - low + 1) as u64) as i64
    }

    /// One random command at `now_ms`; every expiry it can set is a whole second.
    fn command(&mut self, now_ms: i64) -> String {
        let k = self.key();
        let k2 = self.key();
        let v = self.value();
        let secs = self.int(-1, 4);
        let ms = 1000 * self.int(1, 4);
        let at_s = now_ms / 1000 + self.int(-2, 4);
        let at_ms = at_s * 1000;
        let f = self.pick(FLOATS);
        let n = self.int(-3, 3);
        let db = self.int(0, 2);
        let cond = self.pick(&["", "NX", "XX", "GT", "LT"]);
        let set_opt = self.pick(&["", "NX", "XX", "GET", "KEEPTTL", "NX GET", "XX GET"]);
        match self.rng.below(52) {
            0 => format!("SET {k} {v} {set_opt}"),
            1 => format!(
                "SET {k} {v} EX {} {}",
                secs.max(1),
                self.pick(&["", "NX", "GET"])
            ),
            2 => format!("SET {k} {v} PX {ms} {}", self.pick(&["", "XX", "GET"])),
            3 => format!("SET {k} {v} EXAT {at_s}"),
            4 => format!("SET {k} {v} PXAT {at_ms} GET"),
            5 => format!("SETNX {k} {v}"),
            6 => format!("SETEX {k} {} {v}", secs.max(1)),
            7 => format!("PSETEX {k} {ms} {v}"),
            8 => format!("GETSET {k} {v}"),
            9 => format!("GETDEL {k}"),
            10 => format!(
                "GETEX {k} {}",
                self.pick(&["", "PERSIST", "EX 3", "PX 2000"])
            ),
            11 => format!("GETEX {k} PXAT {at_ms}"),
            12 => format!("GETEX {k} EXAT {at_s}"),
            13 => format!("APPEND {k} {v}"),
            14 => format!("INCR {k}"),
            15 => format!("DECRBY {k} {n}"),
            16 => format!("INCRBYFLOAT {k} {f}"),
            17 => format!("MSET {k} {v} {k2} {v}"),
            18 => format!("MSETNX {k} {v} {k2} {v}"),
            19 => format!("SETRANGE {k} {} {v}", self.int(0, 4)),
            20 => format!("GET {k}"),
            21 => format!("DEL {k} {k2}"),
            22 => format!("UNLINK {k}"),
            23 => format!("EXPIRE {k} {secs} {cond}"),
            24 => format!("PEXPIRE {k} {ms} {cond}"),
            25 => format!("EXPIREAT {k} {at_s} {cond}"),
            26 => format!("PEXPIREAT {k} {at_ms}"),
            27 => format!("PERSIST {k}"),
            28 => format!("RENAME {k} {k2}"),
            29 => format!("RENAMENX {k} {k2}"),
            30 => format!("MOVE {k} {db}"),
            31 => format!("COPY {k} {k2} DB {db} {}", self.pick(&["", "REPLACE"])),
            32 => format!("SWAPDB {db} {}", self.int(0, 2)),
            33 => {
                if self.rng.below(10) == 0 {
                    "FLUSHDB".to_string()
                } else {
                    format!("TTL {k}")
                }
            }
            34 => format!("LPUSH {k} {v} {v}"),
            35 => format!("RPUSH {k} {v}"),
            36 => format!("LPUSHX {k} {v}"),
            37 => format!("RPOP {k} {}", self.pick(&["", "0", "1", "3"])),
            38 => format!("LPOP {k}"),
            39 => format!("LSET {k} {n} {v}"),
            40 => format!("LREM {k} {n} {v}"),
            41 => format!("LTRIM {k} {n} {}", self.int(-3, 3)),
            42 => format!(
                "LINSERT {k} {} {v} {}",
                self.pick(&["BEFORE", "AFTER"]),
                self.value()
            ),
            43 => format!(
                "LMOVE {k} {k2} {} {}",
                self.pick(&["LEFT", "RIGHT"]),
                self.pick(&["LEFT", "RIGHT"])
            ),
            44 => format!("RPOPLPUSH {k} {k2}"),
            45 => format!("HSET {k} f{} {v}", self.int(0, 3)),
            46 => format!("HSETNX {k} f{} {v}", self.int(0, 3)),
            47 => format!("HDEL {k} f{} f{}", self.int(0, 3), self.int(0, 3)),
            48 => format!("HINCRBY {k} f{} {n}", self.int(0, 3)),
            49 => format!("HINCRBYFLOAT {k} f{} {f}", self.int(0, 3)),
            50 => format!("HMSET {k} f{} {v} f{} {v}", self.int(0, 3), self.int(0, 3)),
            _ => format!("LRANGE {k} 0 -1"),
        }
    }
}

fn argv_of(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn show(argv: &[Bytes]) -> String {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replays on `replica` (one millisecond later) and fails on any error reply.
fn replay(replica: &mut Store, db: usize, argv: &[Bytes], now_ms: i64, context: &str) {
    let mut rng = Rng::new(0);
    let effect = execute(replica, db, argv, now_ms + 1, &mut rng);
    assert!(
        !effect.reply.is_error(),
        "{context}: replaying `{}` failed: {:?}",
        show(argv),
        effect.reply
    );
}

fn run_seed(seed: u64, steps: usize) {
    let mut generator = Generator {
        rng: Rng::new(seed),
    };
    let mut primary = Store::new(16);
    let mut replica = Store::new(16);
    let mut rng = Rng::new(seed ^ 0xABCD);
    let mut now_ms = START_MS;
    let mut db = 0usize;
    for step in 0..steps {
        now_ms += 1000 * generator.int(0, 2);
        if generator.rng.below(20) == 0 {
            db = generator.int(0, 2) as usize;
        }
        let line = generator.command(now_ms);
        let context = format!("seed {seed} step {step} db {db}: `{line}`");
        let argv = argv_of(&line);
        let effect = execute(&mut primary, db, &argv, now_ms, &mut rng);

        // What the engine would propagate: lazily expired keys first, then the command.
        for (expired_db, key) in primary.take_expired() {
            let del = vec![Bytes::from_static(b"DEL"), key];
            replay(&mut replica, expired_db, &del, now_ms, &context);
        }
        let flush = argv[0].eq_ignore_ascii_case(b"flushdb");
        if effect.reply.is_error() || (effect.dirty == 0 && !flush) {
            assert_eq!(effect.propagate, Propagate::Nothing, "{context}");
        } else if effect.dirty > 0 {
            assert_ne!(effect.propagate, Propagate::Nothing, "{context}");
        }
        match &effect.propagate {
            Propagate::Nothing => {}
            Propagate::Verbatim => replay(&mut replica, db, &argv, now_ms, &context),
            Propagate::Commands(commands) => {
                for command in commands {
                    replay(&mut replica, db, command, now_ms, &context);
                }
            }
        }
        replica.take_expired();
        assert_eq!(
            live_data(&primary, now_ms),
            live_data(&replica, now_ms + 1),
            "{context}: the replica diverged (reply {:?})",
            effect.reply
        );
    }
}

#[test]
fn replaying_the_propagated_stream_rebuilds_the_same_data() {
    for seed in 1..=12 {
        run_seed(seed, 1500);
    }
}

#[test]
fn the_mix_exercises_rewrites_and_expiry() {
    // Guard against a generator that silently stopped producing the interesting cases.
    let mut generator = Generator { rng: Rng::new(99) };
    let mut store = Store::new(16);
    let mut rng = Rng::new(1);
    let mut now_ms = START_MS;
    let (mut rewritten, mut expired, mut errors) = (0, 0, 0);
    for _ in 0..3000 {
        now_ms += 1000 * generator.int(0, 2);
        let argv = argv_of(&generator.command(now_ms));
        let effect = execute(&mut store, 0, &argv, now_ms, &mut rng);
        rewritten += usize::from(matches!(effect.propagate, Propagate::Commands(_)));
        errors += usize::from(matches!(effect.reply, Reply::Error(_)));
        expired += store.take_expired().len();
    }
    assert!(rewritten > 200, "rewritten {rewritten}");
    assert!(expired > 20, "expired {expired}");
    assert!(errors > 100, "errors {errors}");
}

/// The propagated form of each command, as Redis 7.0.15 wrote them to its AOF for the same
/// sequence (`@` stands for the absolute time the command computed: now + its TTL).
#[test]
fn propagated_forms_match_redis_aof() {
    let mut store = Store::new(16);
    let mut rng = Rng::new(0);
    let now_ms = START_MS;
    let cases: &[(&str, &[&str])] = &[
        ("set a 10", &["set a 10"]),
        ("set a 11 get", &["set a 11"]),
        ("set a 12 ex 100", &["SET a 12 PXAT @100000"]),
        ("set a 13 keepttl get", &["set a 13 keepttl"]),
        ("setex b 100 v", &["SET b v PXAT @100000"]),
        ("getset b w", &["SET b w"]),
        ("getdel b", &["DEL b"]),
        ("getdel b", &[]),
        ("set c 1", &["set c 1"]),
        ("getex c ex 10", &["PEXPIREAT c @10000"]),
        ("getex c persist", &["PERSIST c"]),
        ("getex c persist", &[]),
        ("getex c exat 1", &["DEL c"]),
        ("set d 10", &["set d 10"]),
        ("incrbyfloat d 0.1", &["SET d 10.1 KEEPTTL"]),
        ("hset h f 1", &["hset h f 1"]),
        ("hincrbyfloat h f 1.5", &["HSET h f 2.5"]),
        ("expire d 100 nx", &["PEXPIREAT d @100000 nx"]),
        ("pexpire d 100", &["PEXPIREAT d @100"]),
        ("expireat d 4000000000", &["PEXPIREAT d 4000000000000"]),
        ("pexpireat d 4000000000000", &["pexpireat d 4000000000000"]),
        ("expire d -1", &["DEL d"]),
        ("rpush l a b", &["rpush l a b"]),
        ("lmove l l2 left right", &["lmove l l2 left right"]),
        ("rpoplpush l l2", &["rpoplpush l l2"]),
        ("lpop nokey", &[]),
        ("lpop l2 5", &["lpop l2 5"]),
        ("flushdb", &["flushdb"]),
        ("flushall", &["flushall"]),
        ("del nokey", &[]),
        ("setnx x 1", &["setnx x 1"]),
        ("setnx x 2", &[]),
        ("lpushx nokey a", &[]),
        ("ltrim nokey 0 1", &[]),
        ("persist nokey", &[]),
        ("hdel h nofield", &[]),
        ("swapdb 0 0", &["swapdb 0 0"]),
        ("incr n", &["incr n"]),
        ("lrem n2 0 a", &[]),
    ];
    for (line, expected) in cases {
        let argv = argv_of(line);
        let effect = execute(&mut store, 0, &argv, now_ms, &mut rng);
        let got: Vec<String> = match effect.propagate {
            Propagate::Nothing => vec![],
            Propagate::Verbatim => vec![show(&argv)],
            Propagate::Commands(commands) => commands.iter().map(|c| show(c)).collect(),
        };
        let expected: Vec<String> = expected
            .iter()
            .map(|form| {
                form.split(' ')
                    .map(|word| match word.strip_prefix('@') {
                        Some(ttl) => (now_ms + ttl.parse::<i64>().unwrap_or(0)).to_string(),
                        None => word.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(got, expected, "{line}");
    }
}
