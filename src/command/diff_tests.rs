//! Differential tests against a real Redis 7.0: the same deterministic command scripts run on
//! a `redis-server` and on our store, and the RESP2 bytes of every reply must be equal.
//!
//! Ignored by default (they need a server). Run with a scratch server:
//! `redis-server --port 23917 --save '' --appendonly no &` then
//! `KEEPER_DIFF_REDIS_PORT=23917 cargo test --lib diff_tests -- --ignored`.
//! Each script flushes its own database (9 and up) of that server; scripts run in parallel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use bytes::Bytes;

use super::tests::Harness;

/// A minimal RESP2 client: sends a command, returns the raw bytes of one reply.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn call(&mut self, argv: &[Bytes]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", argv.len()).into_bytes();
        for a in argv {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
        let mut reply = Vec::new();
        self.read_one(&mut reply);
        reply
    }

    fn read_one(&mut self, out: &mut Vec<u8>) {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        out.extend_from_slice(&line);
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match line[0] {
            b'$' if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                self.reader.read_exact(&mut body).unwrap();
                out.extend_from_slice(&body);
            }
            b'*' => {
                for _ in 0..n.max(0) {
                    self.read_one(out);
                }
            }
            _ => {}
        }
    }
}

fn words(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.replace("\\s", " ").replace("\\e", "").as_bytes()))
        .collect()
}

/// The port of the scratch server (`KEEPER_DIFF_REDIS_PORT`); `None`, with a note, when unset.
fn redis_port() -> Option<u16> {
    let port = std::env::var("KEEPER_DIFF_REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    if port.is_none() {
        eprintln!("KEEPER_DIFF_REDIS_PORT not set; skipped");
    }
    port
}

/// Runs `script` in database `db` of the server (one command per line; `\s` is a space inside an argument, `\e` alone an
/// empty argument) on both and compares every reply.
fn compare(db: u32, script: &str) {
    let Some(port) = redis_port() else {
        return;
    };
    let mut redis = Client::connect(port);
    redis.call(&words(&format!("SELECT {db}")));
    redis.call(&words("FLUSHDB"));
    let mut h = Harness::new();
    let mut failures = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let argv = words(line);
        let expected = redis.call(&argv);
        let mut ours = Vec::new();
        h.run_argv(&argv).reply.encode(&mut ours, false);
        if ours != expected {
            failures.push(format!(
                "{line}\n  redis: {:?}\n  ours:  {:?}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&ours)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore]
fn sets_match_redis() {
    compare(
        9,
        "SADD s 1 2 3
         SADD s 3 4
         SREM s 4 9
         SCARD s
         SISMEMBER s 2
         SMISMEMBER s 1 9 3
         SMISMEMBER nokey 1
         SINTERCARD 1 s
         SINTERCARD 2 s nokey
         SINTERCARD 0 s
         SINTERCARD x s
         SINTERCARD 3 s
         SINTERCARD 1 s LIMIT -1
         SINTERCARD 1 s LIMIT 2
         SINTERCARD 1 s FOO
         SADD t 3 9
         SINTERSTORE d s t
         SMEMBERS d
         SUNIONSTORE d s t
         SCARD d
         SDIFFSTORE d s t
         SCARD d
         SINTERSTORE d s nokey
         EXISTS d
         SMOVE s t 1
         SMOVE s t 1
         SMOVE s s 2
         SMOVE nokey t 1
         SET str v
         SMOVE s str 2
         SMOVE str s 2
         SADD str a
         SPOP s 1 2
         SPOP s -1
         SPOP s x
         SPOP nokey
         SPOP nokey 2
         SPOP s 0
         SRANDMEMBER s 1 2
         SRANDMEMBER s x
         SRANDMEMBER s -9223372036854775808
         SRANDMEMBER nokey
         SRANDMEMBER nokey 3
         SRANDMEMBER s 0
         SSCAN s 0
         SSCAN s x
         SSCAN s 0 COUNT 0
         SSCAN s 0 MATCH 2*
         SSCAN nokey 0 COUNT 0
         SSCAN s \\e
         SSCAN s -1
         SSCAN s +0
         SSCAN str 0
         SINTER str
         SUNION s str",
    );
}

#[test]
#[ignore]
fn sorted_sets_match_redis() {
    compare(
        10,
        "ZADD z 1 a 2 b 3 c 4 d 5 e
         ZADD z NX XX 1 a
         ZADD z GT LT 1 a
         ZADD z INCR 1 a 2 b
         ZADD z NX 1
         ZADD z abc a
         ZADD z 1e400 a
         ZADD z 0x10 hex
         ZADD z 5. dot
         ZADD z .5 dot2
         ZADD z 1e-320 tiny
         ZADD z \\s1 sp
         ZSCORE z hex
         ZSCORE z tiny
         ZADD z CH 1 a 6 b 7 f
         ZADD z XX CH 9 a 9 zz
         ZADD z GT CH 3 a 10 b
         ZADD z LT CH 100 a
         ZADD z INCR 2.5 a
         ZADD z INCR NX 1 a
         ZADD z INCR GT -1 a
         ZADD z INCR XX 1 nobody
         ZADD nokey XX 1 a
         ZADD nokey XX INCR 1 a
         EXISTS nokey
         ZINCRBY z 1.1 a
         ZINCRBY z nx a
         ZADD z inf big
         ZINCRBY z -inf big
         ZRANGE z 0 -1 WITHSCORES
         ZRANGE z 2 4 REV WITHSCORES
         ZRANGE z -3 -1
         ZRANGE z 5 1
         ZRANGE z (1 10 BYSCORE LIMIT 1 3 WITHSCORES
         ZRANGE z 10 (1 BYSCORE REV LIMIT 0 2
         ZRANGE z 0 -1 LIMIT 0 1
         ZRANGE z 0 -1 REV REV
         ZRANGE z 0 -1 BYLEX
         ZRANGE z - + BYLEX WITHSCORES
         ZRANGE z a 1
         ZRANGEBYSCORE z -inf +inf LIMIT -1 2
         ZRANGEBYSCORE z -inf +inf LIMIT 1 -1
         ZRANGEBYSCORE z \\e (
         ZRANGEBYSCORE z \\s1 +inf
         ZRANGEBYSCORE z 1x 2
         ZRANGEBYSCORE z (2 (5 WITHSCORES
         ZRANGEBYSCORE z 0 -1 REV
         ZREVRANGEBYSCORE z +inf -inf WITHSCORES LIMIT 2 3
         ZREVRANGE z 0 2 WITHSCORES
         ZREVRANGE z 0 2 LIMIT 0 1
         ZCOUNT z (1 5
         ZCOUNT z x 5
         ZRANK z c
         ZREVRANK z c
         ZRANK z nobody
         ZMSCORE z a nobody c
         ZMSCORE nokey a
         ZPOPMIN z
         ZPOPMAX z 2
         ZPOPMIN z 0
         ZPOPMIN z -1
         ZPOPMIN nokey
         ZREMRANGEBYRANK z 0 0
         ZREMRANGEBYRANK z x 1
         ZREMRANGEBYSCORE z (5 8
         ZREMRANGEBYSCORE z nope 8
         ZRANGE z 0 -1 WITHSCORES
         ZSCAN z 0
         ZSCAN z 0 MATCH *e*
         ZSCAN z 0 COUNT 0
         ZADD lex 0 a 0 b 0 c 0 d 0 e 0 f
         ZRANGEBYLEX lex - +
         ZRANGEBYLEX lex [b (e
         ZRANGEBYLEX lex (b [e LIMIT 1 1
         ZREVRANGEBYLEX lex + - LIMIT 0 2
         ZREVRANGEBYLEX lex [d (a
         ZRANGEBYLEX lex + -
         ZRANGEBYLEX lex a b
         ZRANGEBYLEX lex \\e +
         ZLEXCOUNT lex [b +
         ZLEXCOUNT lex - x
         ZREMRANGEBYLEX lex [b (d
         ZRANGE lex 0 -1
         ZADD mixed 1 b 2 a 3 c
         ZRANGEBYLEX mixed - +
         ZRANGEBYLEX mixed [b +
         ZADD sc 1 a 1.5 b 100000000000000000 c -0 d 1e300 e inf f -inf g
         ZSCAN sc 0
         ZRANGE sc 0 -1 WITHSCORES
         ZRANDMEMBER nokey
         ZRANDMEMBER nokey 5
         ZRANDMEMBER sc 0
         ZRANDMEMBER sc 1 foo
         ZRANDMEMBER sc 9223372036854775807 WITHSCORES
         SET str v
         ZADD str 1 a
         ZRANGE str 0 -1
         ZSCAN str 0",
    );
}

#[test]
#[ignore]
fn streams_match_redis() {
    compare(
        11,
        "XADD s 1-1 f v
         XADD s 1-1 f v
         XADD s 0-0 f v
         XADD s 1 f
         XADD s MAXLEN = 5 LIMIT 10 9-1 f v
         XADD s MAXLEN abc 9-1 f v
         XADD s MAXLEN -1 9-1 f v
         XADD s MINID * f v
         XADD s MAXLEN 1 MINID 0 9-1 f v
         XADD s LIMIT 5 9-1 f v
         XADD s 5-* f v
         XADD s 5-* a b c d
         XADD s abc f v
         XADD s NOMKSTREAM NOMKSTREAM 6 f v
         XADD nos NOMKSTREAM * f v
         EXISTS nos
         XADD s 6 g w
         XADD s 7-0 f v
         XADD s 18446744073709551615-18446744073709551614 f v
         XADD s 18446744073709551615-* f v
         XADD s 18446744073709551615-* f v
         XADD s2 +5-1 f v
         XADD s2 \\s7-1 f v
         XADD s2 -0-5 f v
         XADD s2 8-2 f v
         XADD s2 8 f v
         XLEN s2
         XLEN s
         XLEN nos
         XRANGE s - +
         XRANGE s - + COUNT 2
         XRANGE s - + COUNT 0
         XRANGE s - + COUNT -3
         XRANGE s (5-0 +
         XRANGE s (5-1 (7
         XRANGE s 5 5
         XRANGE s (18446744073709551615-18446744073709551615 +
         XRANGE s - (0-0
         XRANGE s - + COUNT
         XRANGE s - + FOO 1
         XRANGE s (- +
         XRANGE s - (+
         XRANGE s 7 5
         XRANGE nos - +
         XREVRANGE s + - COUNT 3
         XREVRANGE s (7 5-1
         XREVRANGE s + -
         DEL s
         XADD s 1-1 a 1
         XADD s 2-1 a 2
         XADD s 3-1 a 3
         XADD s 4-1 a 4
         XADD s 5-1 a 5
         XADD s 6-1 a 6
         XDEL s 2-1 9-9 2-1
         XDEL s abc
         XDEL nos abc
         XINFO STREAM s
         XDEL s 1-1
         XINFO STREAM s
         XTRIM s
         XTRIM s MAXLEN
         XTRIM s NOMKSTREAM MAXLEN 1
         XTRIM s MAXLEN ~ 1
         XTRIM s MAXLEN = 3
         XTRIM s MAXLEN 3 LIMIT 1
         XTRIM s MINID 5
         XRANGE s - +
         XTRIM nos MAXLEN 0
         XINFO STREAM s
         XGROUP CREATE s g 0
         XGROUP CREATE s g 0
         XGROUP CREATE s g2 $ ENTRIESREAD 1
         XGROUP CREATE s g3 $ ENTRIESREAD -2
         XGROUP CREATE s g3 $ ENTRIESREAD x
         XGROUP CREATE nos g 0
         XGROUP CREATE nos g $ MKSTREAM
         XINFO STREAM nos
         XGROUP CREATE nos2 g 0 MKSTREAM FOO
         XGROUP CREATE k
         XGROUP FOO k g
         XGROUP HELP
         XGROUP HELP x
         XGROUP SETID s nog 0
         XGROUP CREATECONSUMER s nog c
         XGROUP CREATECONSUMER s g c0
         XGROUP CREATECONSUMER s g c0
         XGROUP DESTROY s nog
         XGROUP DESTROY s g3
         XINFO GROUPS s
         XREADGROUP GROUP g c1 COUNT 1 STREAMS s >
         XREADGROUP GROUP g c2 STREAMS s >
         XREADGROUP GROUP g c2 STREAMS s >
         XREADGROUP GROUP g c1 STREAMS s 0
         XREADGROUP GROUP g c1 STREAMS s $
         XREADGROUP GROUP nog c STREAMS s >
         XREADGROUP STREAMS s >
         XREADGROUP GROUP g c STREAMS s
         XREAD STREAMS s >
         XREAD GROUP g c STREAMS s 0
         XREAD NOACK STREAMS s 0
         XREAD COUNT 1 STREAMS s s 0
         XREAD STREAMS s 0
         XREAD COUNT 1 STREAMS s nos 3 0
         XREAD STREAMS s $
         XREAD STREAMS nos 0
         XREAD BLOCK -1 STREAMS s 0
         XREAD BLOCK x STREAMS s 0
         XPENDING s g
         XPENDING s g2
         XPENDING s nog
         XPENDING s g -
         XPENDING s g - + 10 nobody
         XPENDING s g IDLE 0 - +
         XPENDING s g - + x
         XINFO GROUPS s
         XACK s g 4-1 9-9
         XACK s g abc
         XACK s nog 4-1
         XACK nos g 4-1
         XPENDING s g
         XCLAIM s g c3 0 5-1 JUSTID
         XCLAIM s g c3 0 6-1
         XCLAIM s g c3 x 0
         XCLAIM s g c3 0 0 foo
         XCLAIM s g c3 0 0 IDLE x
         XCLAIM s nog c 0 0
         XCLAIM nos2 g c 0 0
         XPENDING s g
         XGROUP DELCONSUMER s g c3
         XGROUP DELCONSUMER s g nobody
         XPENDING s g
         XGROUP SETID s g 0 ENTRIESREAD 0
         XINFO GROUPS s
         XGROUP SETID s g $
         XINFO GROUPS s
         XGROUP SETID s g + ENTRIESREAD 3
         XINFO GROUPS s
         XSETID nos 1
         XSETID s 1-0
         XSETID s 99-0 ENTRIESADDED 1
         XSETID s 99-0 MAXDELETEDID 100-0
         XSETID s 99-0 ENTRIESADDED -1
         XSETID s 99-0 FOO
         XSETID s 99-0 ENTRIESADDED 50 MAXDELETEDID 7-0
         XINFO STREAM s
         XINFO GROUPS s
         XINFO FOO s
         XINFO STREAM
         XINFO STREAM s x
         XINFO STREAM nokey
         XINFO HELP
         XINFO CONSUMERS s nog
         XINFO STREAM s FULL COUNT x
         SET str v
         XADD str 1-1 f v
         XRANGE str - +
         XLEN str
         XGROUP CREATE str g 0
         XREAD STREAMS str 0
         XINFO STREAM str",
    );
}

/// Approximate trims drop the nodes Redis would drop (streams built by XADD).
#[test]
#[ignore]
fn stream_trimming_matches_redis() {
    let mut script = String::new();
    let add = |script: &mut String, from: u32, to: u32| {
        for i in from..=to {
            script.push_str(&format!("XADD y {i}-1 f v\n"));
        }
    };
    add(&mut script, 1, 250);
    script.push_str("XADD y MAXLEN ~ 10 300-1 f v\nXLEN y\nXRANGE y - + COUNT 1\n");
    script.push_str("XTRIM y MINID ~ 290-0\nXLEN y\n");
    script.push_str("XTRIM y MAXLEN = 30\nXLEN y\nXRANGE y - + COUNT 1\n");
    add(&mut script, 301, 420);
    script.push_str("XTRIM y MAXLEN ~ 5\nXLEN y\nXRANGE y - + COUNT 1\n");
    script.push_str("XTRIM y MAXLEN ~ 0 LIMIT 100\nXLEN y\n");
    script.push_str("XTRIM y MAXLEN ~ 0 LIMIT 99\nXLEN y\n");
    script.push_str("XTRIM y MAXLEN ~ 0\nXLEN y\nXINFO STREAM y\n");
    add(&mut script, 421, 460);
    script.push_str("XADD y MINID ~ 999 461-1 f v\nXLEN y\n");
    compare(12, &script);
}

/// Consumer-group bookkeeping around deletions: lag, entries-read, history with deleted
/// entries, claims of deleted entries.
#[test]
#[ignore]
fn stream_groups_around_deletions_match_redis() {
    compare(
        13,
        "XADD s 1-0 a 1
         XADD s 2-0 a 2
         XADD s 3-0 a 3
         XADD s 4-0 a 4
         XADD s 5-0 a 5
         XGROUP CREATE s g 0
         XGROUP CREATE s h $
         XGROUP CREATE s i 2-0
         XINFO GROUPS s
         XREADGROUP GROUP g c COUNT 2 STREAMS s >
         XINFO GROUPS s
         XDEL s 4-0
         XINFO GROUPS s
         XREADGROUP GROUP g c STREAMS s >
         XINFO GROUPS s
         XREADGROUP GROUP i c STREAMS s >
         XINFO GROUPS s
         XDEL s 1-0
         XREADGROUP GROUP g c STREAMS s 0
         XREADGROUP GROUP g c COUNT 1 STREAMS s 1-0
         XCLAIM s g d 0 1-0 2-0 JUSTID
         XPENDING s g
         XCLAIM s g d 0 3-0 5-0 JUSTID FORCE
         XPENDING s g
         XACK s g 3-0 5-0
         XCLAIM s h d 0 3-0 FORCE JUSTID
         XPENDING s h
         XADD s 6-0 a 6
         XINFO GROUPS s
         XGROUP SETID s h 0
         XINFO GROUPS s
         XREADGROUP GROUP h c NOACK STREAMS s >
         XINFO GROUPS s
         XPENDING s h
         XTRIM s MAXLEN 0
         XINFO GROUPS s
         XINFO STREAM s
         XADD s 7-0 a 7
         XINFO GROUPS s
         XSETID s 9-0 ENTRIESADDED 20 MAXDELETEDID 8-0
         XINFO GROUPS s
         XREADGROUP GROUP g c STREAMS s >
         XINFO GROUPS s
         XGROUP DESTROY s i
         XGROUP DELCONSUMER s g c
         XINFO GROUPS s",
    );
}

/// Hash replies whose order does not depend on the hash table: `HRANDFIELD` shapes on a
/// one-field hash, errors, and `HSCAN` of a listpack-sized hash with one matching field.
#[test]
#[ignore]
fn hashes_match_redis() {
    compare(
        15,
        "HSET h f v
         HRANDFIELD h
         HRANDFIELD nokey
         HRANDFIELD h 0
         HRANDFIELD h 1
         HRANDFIELD h 3
         HRANDFIELD h -3
         HRANDFIELD h 1 WITHVALUES
         HRANDFIELD h 5 withvalues
         HRANDFIELD h -2 withvalues
         HRANDFIELD h 0 withvalues
         HRANDFIELD nokey 2
         HRANDFIELD nokey -2 withvalues
         HRANDFIELD nokey x
         HRANDFIELD h 2 foo
         HRANDFIELD h 2 withvalues x
         HRANDFIELD h -9223372036854775808
         HRANDFIELD h -9223372036854775807 withvalues
         HRANDFIELD h 4611686018427387904 withvalues
         HRANDFIELD h 4611686018427387903 withvalues
         HSET g a1 1 b1 2 b2 3
         HSCAN g 0 MATCH a*
         HSCAN g 0 MATCH z* COUNT 1
         HSCAN g x
         HSCAN g 0 COUNT 0
         HSCAN nokey 0 COUNT 0
         SET str v
         HRANDFIELD str
         HRANDFIELD str 2
         HSCAN str 0",
    );
}

/// The bulk strings of a raw RESP2 array reply (`KEYS`).
fn bulk_items(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    let mut rest = reply;
    let mut header = true;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if std::mem::take(&mut header) {
            assert_eq!(line.first(), Some(&b'*'), "not an array");
            continue;
        }
        let len: usize = std::str::from_utf8(&line[1..]).unwrap().parse().unwrap();
        items.push(rest[..len].to_vec());
        rest = &rest[len + 2..];
    }
    items
}

/// `KEYS` with random patterns over random keys finds what Redis finds: the glob matcher
/// against `stringmatchlen`, quirks included (unclosed classes, escapes at the end, ranges
/// over signed bytes, `*` runs).
#[test]
#[ignore]
fn keys_patterns_match_redis() {
    let Some(port) = redis_port() else {
        return;
    };
    const ALPHABET: &[u8] = b"ab*?[]^-\\A\xc3";
    let mut rng = super::Rng::new(0x61_0B);
    let mut random_text = |max: u64| -> Bytes {
        let len = rng.below(max + 1) as usize;
        (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
            .collect::<Vec<u8>>()
            .into()
    };
    let keys: Vec<Bytes> = (0..60).map(|_| random_text(6)).collect();
    let patterns: Vec<Bytes> = (0..3000).map(|_| random_text(7)).collect();
    let mut redis = Client::connect(port);
    redis.call(&words("SELECT 14"));
    redis.call(&words("FLUSHDB"));
    let mut h = Harness::new();
    for key in &keys {
        let set = [
            Bytes::from_static(b"SET"),
            key.clone(),
            Bytes::from_static(b"v"),
        ];
        redis.call(&set);
        h.run_argv(&set);
    }
    let mut failures = Vec::new();
    for pattern in &patterns {
        let argv = [Bytes::from_static(b"KEYS"), pattern.clone()];
        let mut expected = bulk_items(&redis.call(&argv));
        let mut ours = Vec::new();
        h.run_argv(&argv).reply.encode(&mut ours, false);
        let mut ours = bulk_items(&ours);
        expected.sort();
        ours.sort();
        if ours != expected {
            failures.push(format!(
                "KEYS {:?}: redis {} keys, ours {}",
                String::from_utf8_lossy(pattern),
                expected.len(),
                ours.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
