//! Replaying what commands propagate gives the same data.
//!
//! A seeded random mix of commands of every family (strings, keys, lists, hashes, sets,
//! sorted sets, streams) runs on one store, over a small key space shared between families
//! so they interact: `RENAME`, `DEL`, `EXPIRE`, `MOVE` or `COPY` of a set or a stream,
//! `WRONGTYPE` across families, lazily expired collections. Everything it propagates (the
//! lazily expired keys as `DEL`, then each command verbatim or as rewritten) is replayed on a
//! second, fresh store through [`Apply::apply_command`], the path of a loaded AOF, at a later
//! time. Both stores must then hold the same live data: compared every few steps (every
//! step in the ignored long run) and at the end; a failure names the seed and the step.
//!
//! Time: the primary's clock and every expiry time the mix can produce are whole seconds,
//! and the replica runs [`REPLAY_DELAY_MS`] (under a second) later, so both agree on which
//! keys have expired, while anything that read the replica's clock instead of carrying the
//! primary's (a relative TTL that escaped its rewrite to an absolute time, an `XADD *` ID, a
//! claim's delivery time) lands that much off and is caught. This is what proves the rewrites
//! of the non-deterministic commands (redis-formats.md §2.1).
//!
//! Left out of the mix: `XREADGROUP` with an explicit ID (a history read), which Redis does
//! not propagate at all (its delivery counters and a consumer it creates stay on the
//! primary), so replicas of real Redis differ there too. Consumers' seen times are not
//! compared: Redis propagates no consumer touch for `NOACK` reads.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::tests::{argv, show};
use super::{Propagate, Rng, execute};
use crate::dataset::Apply;
use crate::model;
use crate::resp::Reply;
use crate::store::Store;

const START_MS: i64 = 1_700_000_000_000;
/// How much later the replica applies what was propagated (see the module docs).
const REPLAY_DELAY_MS: i64 = 999;
/// Databases the mix selects, moves and copies between.
const DATABASES: usize = 3;

/// Keys of string, list and hash commands (the three families share them).
const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4"];
/// Every key the keyspace commands pick from: collections too, so a set or a stream gets
/// renamed, moved, copied, expired and deleted. (`x2` and `long` stay out: see
/// [`Generator::stream_command`].)
const ANY_KEYS: &[&str] = &[
    "k0", "k1", "k2", "k3", "k4", "s0", "s1", "s2", "z0", "z1", "z2", "x0", "x1",
];
const VALUES: &[&str] = &["1", "10", "-7", "3.5", "abc", "x"];
const FLOATS: &[&str] = &["0.1", "1.5", "-2.25", "1e3", "3"];

/// A key's live state in a form comparable across stores: collections that have no order
/// sorted, consumers' seen times cleared (see the module docs).
fn canonical(value: &crate::store::Value) -> model::Value {
    match value.to_model() {
        model::Value::Set(mut members) => {
            members.sort();
            model::Value::Set(members)
        }
        model::Value::Hash(mut fields) => {
            fields.sort_by(|a, b| a.field.cmp(&b.field));
            model::Value::Hash(fields)
        }
        model::Value::Stream(mut stream) => {
            for group in &mut stream.groups {
                for consumer in &mut group.consumers {
                    consumer.seen_time_ms = 0;
                    consumer.active_time_ms = 0;
                }
            }
            model::Value::Stream(stream)
        }
        other => other,
    }
}

/// Every live key of every database at `now_ms`, with its value and TTL.
type LiveData = BTreeMap<(usize, Bytes), (model::Value, Option<i64>)>;

fn live_data(store: &Store, now_ms: i64) -> LiveData {
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

/// The random command mix.
struct Generator {
    rng: Rng,
    /// IDs XADD returned lately, so deletes, acks and claims hit real entries.
    recent_ids: Vec<String>,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            recent_ids: Vec::new(),
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.below(items.len() as u64) as usize]
    }

    fn int(&mut self, low: i64, high: i64) -> i64 {
        low + self.rng.below((high - low + 1) as u64) as i64
    }

    /// `prefix` and a number below `n`: `s2`, `m7`, ….
    fn name(&mut self, prefix: &str, n: u64) -> String {
        format!("{prefix}{}", self.rng.below(n))
    }

    /// Notes what `line` replied, for later commands.
    fn observe(&mut self, line: &str, reply: &Reply) {
        if let (true, Reply::Bulk(id)) = (line.starts_with("XADD x"), reply) {
            if self.recent_ids.len() >= 30 {
                self.recent_ids.remove(0);
            }
            self.recent_ids
                .push(String::from_utf8_lossy(id).into_owned());
        }
    }

    /// One random command at `now_ms` (whole seconds); every expiry it can set is a whole
    /// second.
    fn command(&mut self, now_ms: i64) -> String {
        match self.rng.below(100) {
            0..=15 => self.string_command(now_ms),
            16..=30 => self.key_command(now_ms),
            31..=39 => self.list_command(),
            40..=46 => self.hash_command(),
            47..=55 => self.set_command(),
            56..=64 => self.zset_command(),
            _ => self.stream_command(now_ms),
        }
    }

    fn string_command(&mut self, now_ms: i64) -> String {
        let k = self.pick(KEYS);
        let k2 = self.pick(KEYS);
        let v = self.pick(VALUES);
        let secs = self.int(1, 4);
        let ms = 1000 * self.int(1, 4);
        let at_s = now_ms / 1000 + self.int(-2, 4);
        let at_ms = at_s * 1000;
        let f = self.pick(FLOATS);
        let n = self.int(-3, 3);
        let set_opt = self.pick(&["", "NX", "XX", "GET", "KEEPTTL", "NX GET", "XX GET"]);
        match self.rng.below(21) {
            0 => format!("SET {k} {v} {set_opt}"),
            1 => format!("SET {k} {v} EX {secs} {}", self.pick(&["", "NX", "GET"])),
            2 => format!("SET {k} {v} PX {ms} {}", self.pick(&["", "XX", "GET"])),
            3 => format!("SET {k} {v} EXAT {at_s}"),
            4 => format!("SET {k} {v} PXAT {at_ms} GET"),
            5 => format!("SETNX {k} {v}"),
            6 => format!("SETEX {k} {secs} {v}"),
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
            _ => format!("GET {k}"),
        }
    }

    fn key_command(&mut self, now_ms: i64) -> String {
        let k = self.pick(ANY_KEYS);
        let k2 = self.pick(ANY_KEYS);
        let secs = self.int(-1, 4);
        let ms = 1000 * self.int(1, 4);
        let at_s = now_ms / 1000 + self.int(-2, 4);
        let db = self.int(0, DATABASES as i64 - 1);
        let cond = self.pick(&["", "NX", "XX", "GT", "LT"]);
        match self.rng.below(14) {
            0 => format!("DEL {k} {k2}"),
            1 => format!("UNLINK {k}"),
            2 => format!("EXPIRE {k} {secs} {cond}"),
            3 => format!("PEXPIRE {k} {ms} {cond}"),
            4 => format!("EXPIREAT {k} {at_s} {cond}"),
            5 => format!("PEXPIREAT {k} {}", at_s * 1000),
            6 => format!("PERSIST {k}"),
            7 => format!("RENAME {k} {k2}"),
            8 => format!("RENAMENX {k} {k2}"),
            9 => format!("MOVE {k} {db}"),
            10 => format!("COPY {k} {k2} DB {db} {}", self.pick(&["", "REPLACE"])),
            11 => format!("PTTL {k}"),
            // Rare: they replace the whole database under the other families' feet.
            12 if self.rng.below(10) == 0 => {
                format!("SWAPDB {db} {}", self.int(0, DATABASES as i64 - 1))
            }
            13 if self.rng.below(10) == 0 => "FLUSHDB".to_string(),
            _ => format!("TTL {k}"),
        }
    }

    fn list_command(&mut self) -> String {
        let k = self.pick(KEYS);
        let k2 = self.pick(KEYS);
        let v = self.pick(VALUES);
        let n = self.int(-3, 3);
        let side = |g: &mut Self| g.pick(&["LEFT", "RIGHT"]);
        match self.rng.below(12) {
            0 => format!("LPUSH {k} {v} {v}"),
            1 => format!("RPUSH {k} {v}"),
            2 => format!("LPUSHX {k} {v}"),
            3 => format!("RPOP {k} {}", self.pick(&["", "0", "1", "3"])),
            4 => format!("LPOP {k}"),
            5 => format!("LSET {k} {n} {v}"),
            6 => format!("LREM {k} {n} {v}"),
            7 => format!("LTRIM {k} {n} {}", self.int(-3, 3)),
            8 => format!(
                "LINSERT {k} {} {v} {}",
                self.pick(&["BEFORE", "AFTER"]),
                self.pick(VALUES)
            ),
            9 => format!("LMOVE {k} {k2} {} {}", side(self), side(self)),
            10 => format!("RPOPLPUSH {k} {k2}"),
            _ => format!("LRANGE {k} 0 -1"),
        }
    }

    fn hash_command(&mut self) -> String {
        let k = self.pick(KEYS);
        let v = self.pick(VALUES);
        let n = self.int(-3, 3);
        let f = self.name("f", 4);
        let f2 = self.name("f", 4);
        match self.rng.below(7) {
            0 => format!("HSET {k} {f} {v}"),
            1 => format!("HSETNX {k} {f} {v}"),
            2 => format!("HDEL {k} {f} {f2}"),
            3 => format!("HINCRBY {k} {f} {n}"),
            4 => format!("HINCRBYFLOAT {k} {f} {}", self.pick(FLOATS)),
            5 => format!("HMSET {k} {f} {v} {f2} {v}"),
            _ => format!("HRANDFIELD {k} {n} WITHVALUES"),
        }
    }

    fn set_command(&mut self) -> String {
        let s = self.name("s", 3);
        let s2 = self.name("s", 3);
        let s3 = self.name("s", 3);
        let m = self.name("m", 12);
        let m2 = self.name("m", 12);
        match self.rng.below(12) {
            0..=2 => {
                let members: Vec<String> = (0..=self.rng.below(4))
                    .map(|_| self.name("m", 12))
                    .collect();
                format!("SADD {s} {}", members.join(" "))
            }
            3 => format!("SREM {s} {m} {m2}"),
            4 => format!("SPOP {s}"),
            5 => format!("SPOP {s} {}", self.rng.below(6)),
            6 => format!("SMOVE {s} {s2} {m}"),
            7 => {
                let op = self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]);
                format!("{op} {s} {s2} {s3}")
            }
            8 => format!("SRANDMEMBER {s} -{}", self.rng.below(5)),
            // Another family's key: WRONGTYPE, or a new set under that name.
            9 => format!("SADD {} {m}", self.pick(&["z0", "x1", "k0"])),
            _ => format!("SMEMBERS {s}"),
        }
    }

    fn zset_command(&mut self) -> String {
        let z = self.name("z", 3);
        let m = self.name("m", 12);
        let m2 = self.name("m", 12);
        match self.rng.below(11) {
            0..=3 => {
                let flags = self.pick(&["", "NX", "XX", "GT", "LT", "CH", "XX GT CH", "INCR"]);
                let pairs = if flags == "INCR" {
                    1
                } else {
                    1 + self.rng.below(3)
                };
                let body: Vec<String> = (0..pairs)
                    .map(|_| format!("{} {}", self.int(-5, 14), self.name("m", 12)))
                    .collect();
                format!("ZADD {z} {flags} {}", body.join(" "))
            }
            4 => format!("ZINCRBY {z} {}.5 {m}", self.rng.below(5)),
            5 => format!("ZREM {z} {m} {m2}"),
            6 => format!(
                "{} {z} {}",
                self.pick(&["ZPOPMIN", "ZPOPMAX"]),
                self.rng.below(3)
            ),
            7 => format!(
                "ZREMRANGEBYSCORE {z} ({} {}",
                self.rng.below(10),
                5 + self.rng.below(10)
            ),
            8 => format!(
                "ZREMRANGEBYRANK {z} {} {}",
                self.rng.below(3),
                self.int(-2, 2)
            ),
            9 => format!(
                "ZREMRANGEBYLEX {z} [{} ({}",
                self.name("m", 12),
                self.name("m", 12)
            ),
            _ => format!("ZADD {} 1 {m}", self.pick(&["s0", "x0", "k1"])),
        }
    }

    /// Mostly an ID XADD returned lately; sometimes one near the heads that may not exist.
    fn stream_id(&mut self, now_ms: i64) -> String {
        if !self.recent_ids.is_empty() && self.rng.below(4) != 0 {
            let i = self.rng.below(self.recent_ids.len() as u64) as usize;
            self.recent_ids[i].clone()
        } else {
            format!("{}-{}", now_ms - 1000 * self.int(0, 3), self.rng.below(3))
        }
    }

    fn stream_command(&mut self, now_ms: i64) -> String {
        // `x2` is no other family's and no keyspace command's, so its groups live long
        // enough for reads, acks and claims to find them.
        let x = self.pick(&["x0", "x1", "x2", "x2", "x2", "x2"]);
        let g = self.name("g", 2);
        let c = self.name("c", 3);
        let id = self.stream_id(now_ms);
        let id2 = self.stream_id(now_ms);
        match self.rng.below(30) {
            0..=4 => {
                let trim = self.pick(&[
                    "",
                    "",
                    "MAXLEN ~ 3",
                    "MAXLEN = 5",
                    "MINID ~ 0-1",
                    "MAXLEN ~ 0 LIMIT 200",
                ]);
                let at = if self.rng.below(4) == 0 {
                    format!("{now_ms}-*")
                } else {
                    "*".to_string()
                };
                format!("XADD {x} {trim} {at} f {} g v", self.rng.below(100))
            }
            5 => format!("XDEL {x} {id} {id2}"),
            6 => {
                let minid = format!("MINID {id}");
                let trim = self.pick(&["MAXLEN ~ 2", "MAXLEN 4", "MINID ~ 1-0", &minid]);
                format!("XTRIM {x} {trim}")
            }
            7..=9 => {
                let start = self.pick(&["0", "$", &id]);
                let extra = self.pick(&["", "MKSTREAM", "MKSTREAM", "ENTRIESREAD 2"]);
                format!("XGROUP CREATE {x} {g} {start} {extra}")
            }
            10 => {
                let start = self.pick(&["0", "$", &id]);
                let extra = self.pick(&["", "ENTRIESREAD 1", "ENTRIESREAD -1"]);
                format!("XGROUP SETID {x} {g} {start} {extra}")
            }
            11 => format!("XGROUP DESTROY {x} {g}"),
            12 => format!("XGROUP CREATECONSUMER {x} {g} {c}"),
            13 => format!("XGROUP DELCONSUMER {x} {g} {c}"),
            14..=18 => {
                let opts = self.pick(&["", "COUNT 1", "COUNT 2", "NOACK", "COUNT 1 NOACK"]);
                format!("XREADGROUP GROUP {g} {c} {opts} STREAMS {x} >")
            }
            19 => format!("XACK {x} {g} {id} {id2}"),
            20 | 21 => {
                let lastid = format!("LASTID {}", self.stream_id(now_ms));
                let opts = self.pick(&[
                    "",
                    "JUSTID",
                    "IDLE 5",
                    "TIME 1",
                    "RETRYCOUNT 9",
                    "FORCE",
                    "FORCE JUSTID",
                    &lastid,
                ]);
                format!("XCLAIM {x} {g} {c} {} {id} {id2} {opts}", self.rng.below(3))
            }
            22 => format!(
                "XSETID {x} {}-9 ENTRIESADDED {}",
                now_ms + 1,
                50 + self.rng.below(5)
            ),
            23 => format!("XADD {} * f v", self.pick(&["s1", "z1", "k2"])),
            // A long stream, so approximate trims drop whole blocks and LIMIT matters.
            _ if self.rng.below(30) == 0 => "XTRIM long MAXLEN ~ 0 LIMIT 100".to_string(),
            _ => format!("XADD long MAXLEN ~ 1000 * f {}", self.rng.below(10)),
        }
    }
}

/// Replays `argv` on `replica` in `db` at `now_ms`, failing on any error.
fn replay(replica: &mut Store, db: usize, argv: &[Bytes], now_ms: i64, context: &str) {
    if let Err(e) = replica.apply_command(db, argv, now_ms) {
        panic!("{context}: replaying `{}` failed: {e}", show(argv));
    }
}

/// What one seeded run saw, for the guard against a mix that stopped testing anything.
#[derive(Default)]
struct Tally {
    propagated: usize,
    rewritten: usize,
    errors: usize,
    expired: usize,
    /// Lazily expired keys named for a collection (`s…`, `z…`, `x…`).
    expired_collections: usize,
    /// `XREADGROUP` calls that delivered entries.
    group_reads: usize,
    /// Approximate trims of the long stream that dropped whole nodes.
    node_trims: usize,
}

/// Runs `steps` random commands on a primary and replays what they propagate on a replica,
/// comparing the two after every `compare_every` steps and at the end.
fn run_seed(seed: u64, steps: usize, compare_every: usize) -> Tally {
    let mut generator = Generator::new(seed);
    let mut primary = Store::new(16);
    let mut replica = Store::new(16);
    let mut exec_rng = Rng::new(seed ^ 0xDEAD_BEEF);
    let mut now_ms = START_MS;
    let mut db = 0usize;
    let mut tally = Tally::default();
    for step in 0..steps {
        now_ms += 1000 * generator.int(0, 2);
        // Rarely, so the groups a stream gets are there when its reads come.
        if generator.rng.below(400) == 0 {
            db = generator.rng.below(DATABASES as u64) as usize;
        }
        let line = generator.command(now_ms);
        let context = format!("seed {seed} step {step} db {db}: `{line}`");
        let argv = argv(&line);
        let effect = execute(&mut primary, db, &argv, now_ms, &mut exec_rng);
        generator.observe(&line, &effect.reply);
        let replica_ms = now_ms + REPLAY_DELAY_MS;

        // What the engine would propagate: lazily expired keys first, then the command.
        for (expired_db, key) in primary.take_expired() {
            tally.expired += 1;
            tally.expired_collections += usize::from(matches!(key[0], b's' | b'z' | b'x'));
            let del = vec![Bytes::from_static(b"DEL"), key];
            replay(&mut replica, expired_db, &del, replica_ms, &context);
        }
        let flush = argv[0].eq_ignore_ascii_case(b"flushdb");
        if effect.reply.is_error() || (effect.dirty == 0 && !flush) {
            assert_eq!(effect.propagate, Propagate::Nothing, "{context}");
        } else if effect.dirty > 0 {
            assert_ne!(effect.propagate, Propagate::Nothing, "{context}");
        }
        tally.errors += usize::from(effect.reply.is_error());
        tally.group_reads += usize::from(line.starts_with("XREADGROUP") && effect.dirty > 0);
        tally.node_trims += usize::from(line.starts_with("XTRIM long") && effect.dirty > 0);
        let commands = match effect.propagate {
            Propagate::Nothing => Vec::new(),
            Propagate::Verbatim => vec![argv],
            Propagate::Commands(commands) => {
                tally.rewritten += 1;
                commands
            }
        };
        for command in &commands {
            tally.propagated += 1;
            replay(&mut replica, db, command, replica_ms, &context);
        }
        replica.take_expired();
        if step % compare_every == 0 || step + 1 == steps {
            let (p, r) = (live_data(&primary, now_ms), live_data(&replica, replica_ms));
            assert!(
                p == r,
                "{context}: the replica diverged (reply {:?})\nprimary: {p:#?}\nreplica: {r:#?}",
                effect.reply
            );
        }
    }
    tally
}

#[test]
fn replaying_the_propagated_stream_rebuilds_the_same_data() {
    for seed in 1..=12 {
        run_seed(seed, 2000, 3);
    }
}

#[test]
fn the_mix_exercises_every_family_rewrites_and_expiry() {
    // Guard against a generator that silently stopped producing the interesting cases.
    let tally = run_seed(99, 3000, 1000);
    assert!(tally.propagated > 1000, "propagated {}", tally.propagated);
    assert!(tally.rewritten > 400, "rewritten {}", tally.rewritten);
    assert!(tally.errors > 100, "errors {}", tally.errors);
    assert!(tally.expired > 50, "expired {}", tally.expired);
    assert!(
        tally.expired_collections > 10,
        "expired collections {}",
        tally.expired_collections
    );
    assert!(tally.group_reads > 20, "group reads {}", tally.group_reads);
    assert!(tally.node_trims > 3, "node trims {}", tally.node_trims);
}

/// Ignored: a long run over other seeds (`KEEPER_PROPAGATION_SEED` picks the first).
#[test]
#[ignore]
fn replaying_the_propagated_stream_rebuilds_the_same_data_long() {
    let first: u64 = std::env::var("KEEPER_PROPAGATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    for seed in first..first + 200 {
        run_seed(seed, 3000, 1);
    }
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
        let argv = argv(line);
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
