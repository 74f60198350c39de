//! Differential tests: the same deterministic command scripts run over TCP on a real
//! `redis-server` 7.0.15 and on a `keeper server`, and the raw RESP bytes of every reply must
//! be identical (RESP2, and RESP3 after `HELLO 3` for some scripts).
//!
//! Script syntax: one command per line, arguments split on whitespace; `\s` is a space inside
//! an argument and `\e` alone an empty argument; `#` starts a comment line. A line may end with
//! one marker that compares a normalised form of a reply that is legitimately not
//! deterministic (keep these few):
//! - `~sorted`: the elements of the top-level aggregate sorted (set members, random picks);
//! - `~pairs`: the top-level array/map sorted as (field, value) pairs (`HGETALL`);
//! - `~len`: only the type and the element count (or string length);
//! - `~type`: only the RESP type (an ID, a time);
//! - `~range=LO..HI`: both replies are integers in `LO..=HI` (TTLs);
//! - `~scan`: a `SCAN`-family call followed to cursor 0, every page's elements collected and
//!   sorted (as pairs for `HSCAN`/`ZSCAN`);
//! - `~known`: a known difference, sent to both; the line before must be a `#` comment
//!   saying why, and the test fails once the replies match (so the marker goes away).
//!
//! A line `SLEEP MS` sends nothing and waits (keys with a short TTL expire). A line `READ`
//! sends nothing and compares the next reply each server pushes (a pub/sub
//! message). A line `@2 …` runs on a second connection (opened on first use), e.g. to invalidate a
//! `WATCH`.
//!
//! Every test starts its own pair of servers, so scripts never share a keyspace.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::RedisServer;
use support::client::KeeperServer;

// ---- raw RESP ------------------------------------------------------------------------------

/// One reply as its raw bytes: `head` is the type line (plus the payload of a string), the
/// children are the elements of an aggregate (a map's keys and values alternate).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    head: Vec<u8>,
    children: Vec<Node>,
}

impl Node {
    fn kind(&self) -> u8 {
        self.head.first().copied().unwrap_or(b'?')
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        for child in &self.children {
            out.extend(child.bytes());
        }
        out
    }

    /// The payload of a bulk string, the text of a simple string or integer.
    fn payload(&self) -> Vec<u8> {
        let line_end = self.head.iter().position(|&b| b == b'\n').unwrap_or(0);
        if matches!(self.kind(), b'$' | b'=' | b'!') && self.head.len() > line_end + 1 {
            self.head[line_end + 1..self.head.len() - 2].to_vec()
        } else {
            self.head[1..self.head.len() - 2].to_vec()
        }
    }

    fn integer(&self) -> Option<i64> {
        (self.kind() == b':')
            .then(|| String::from_utf8_lossy(&self.payload()).parse().ok())
            .flatten()
    }

    fn array(children: Vec<Node>) -> Node {
        Node {
            head: format!("*{}\r\n", children.len()).into_bytes(),
            children,
        }
    }
}

/// A connection that returns replies as raw [`Node`]s.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn call(&mut self, argv: &[Vec<u8>]) -> Node {
        let mut out = format!("*{}\r\n", argv.len()).into_bytes();
        for a in argv {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
        self.read()
    }

    fn read(&mut self) -> Node {
        let mut head = Vec::new();
        self.reader.read_until(b'\n', &mut head).unwrap();
        assert!(head.ends_with(b"\r\n"), "truncated reply {head:?}");
        let n: i64 = std::str::from_utf8(&head[1..head.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut children = Vec::new();
        match head[0] {
            b'$' | b'=' | b'!' if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                self.reader.read_exact(&mut body).unwrap();
                head.extend(body);
            }
            b'*' | b'~' | b'>' => children = (0..n.max(0)).map(|_| self.read()).collect(),
            b'%' => children = (0..2 * n.max(0)).map(|_| self.read()).collect(),
            _ => {}
        }
        Node { head, children }
    }
}

// ---- scripts -------------------------------------------------------------------------------

fn words(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace()
        .map(|w| w.replace("\\s", " ").replace("\\e", "").into_bytes())
        .collect()
}

/// The marker at the end of a line, and the command before it.
fn split_marker(line: &str) -> (&str, Option<&str>) {
    match line.rsplit_once(' ') {
        Some((cmd, marker)) if marker.starts_with('~') => (cmd.trim(), Some(marker)),
        _ => (line, None),
    }
}

/// The commands of a script (comment and empty lines skipped).
fn script_lines(script: &str) -> impl Iterator<Item = &str> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A `redis-server` and a `keeper server`, each in its own temporary folder.
struct Pair {
    redis: RedisServer,
    keeper: KeeperServer,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn pair() -> Pair {
    let redis_dir = tempfile::tempdir().unwrap();
    let keeper_dir = tempfile::tempdir().unwrap();
    Pair {
        redis: RedisServer::start(redis_dir.path(), "dump.rdb"),
        // Like RedisServer: no save points (CONFIG GET save compares them).
        keeper: KeeperServer::start(keeper_dir.path(), &["--save", ""]),
        _dirs: (redis_dir, keeper_dir),
    }
}

/// Sorts the top-level elements (`pairs`: as two-element groups, unless RESP3 already nested
/// them in two-element arrays).
fn sort_top(mut node: Node, pairs: bool) -> Node {
    let nested_pairs = node.children.first().is_some_and(|c| c.kind() == b'*');
    if (pairs && !nested_pairs) || node.kind() == b'%' {
        let mut groups: Vec<Vec<Node>> = node.children.chunks(2).map(<[Node]>::to_vec).collect();
        groups.sort();
        node.children = groups.into_iter().flatten().collect();
    } else {
        node.children.sort();
    }
    node
}

/// Follows a `SCAN`-family call to cursor 0; returns every element seen, sorted, as an array.
fn scan_all(conn: &mut Raw, argv: &[Vec<u8>]) -> Node {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let cursor_at = if name == "scan" { 1 } else { 2 };
    let mut argv = argv.to_vec();
    let mut seen = Vec::new();
    for _ in 0..100_000 {
        let reply = conn.call(&argv);
        if reply.kind() != b'*' || reply.children.len() != 2 {
            return reply; // an error: compare it as it is
        }
        seen.extend(reply.children[1].children.iter().cloned());
        let cursor = reply.children[0].payload();
        if cursor == b"0" {
            return sort_top(Node::array(seen), name == "hscan" || name == "zscan");
        }
        argv[cursor_at] = cursor;
    }
    panic!("{name}: cursor never returned to 0");
}

/// A connection to each server, after `HELLO 3` when `resp3`, with database `db` selected.
fn open(pair: &Pair, db: u32, resp3: bool) -> (Raw, Raw) {
    let mut redis = Raw::connect(pair.redis.port());
    let mut keeper = Raw::connect(pair.keeper.port);
    if resp3 {
        // The HELLO reply names the server and its version: only the shape is compared.
        let (r, k) = (
            redis.call(&words("HELLO 3")),
            keeper.call(&words("HELLO 3")),
        );
        assert_eq!((r.kind(), k.kind()), (b'%', b'%'), "HELLO 3");
    }
    let select = words(&format!("SELECT {db}"));
    assert_eq!(redis.call(&select), keeper.call(&select), "SELECT {db}");
    (redis, keeper)
}

/// Runs `script` on both servers, in database `db`, after `HELLO 3` when `resp3`; returns the
/// differences, one text per line.
fn run(pair: &Pair, db: u32, resp3: bool, script: &str) -> Vec<String> {
    // connections[0] runs unprefixed lines; a line `@N …` runs on connection N (N ≥ 2), opened
    // on first use (a second client invalidating a WATCH).
    let mut connections = vec![open(pair, db, resp3)];
    let mut failures = Vec::new();
    let mut previous = "";
    for (number, line) in script.lines().enumerate() {
        let (line_number, line) = (number + 1, line.trim());
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            previous = line;
            continue;
        }
        let (number, rest) = match line.strip_prefix('@').and_then(|l| l.split_once(' ')) {
            Some((n, rest)) => (n.parse::<usize>().expect("@N connection number"), rest),
            None => (1, line),
        };
        while connections.len() < number {
            connections.push(open(pair, db, resp3));
        }
        let (redis, keeper) = &mut connections[number - 1];
        let (command, marker) = split_marker(rest);
        if let Some(ms) = command.strip_prefix("SLEEP ") {
            std::thread::sleep(Duration::from_millis(
                ms.parse().expect("SLEEP milliseconds"),
            ));
            continue;
        }
        let argv = words(command);
        let (mut expected, mut ours) = if marker == Some("~scan") {
            (scan_all(redis, &argv), scan_all(keeper, &argv))
        } else if command == "READ" {
            (redis.read(), keeper.read())
        } else {
            (redis.call(&argv), keeper.call(&argv))
        };
        let mut same = None;
        match marker {
            None | Some("~scan") => {}
            Some("~sorted") => {
                (expected, ours) = (sort_top(expected, false), sort_top(ours, false))
            }
            Some("~pairs") => (expected, ours) = (sort_top(expected, true), sort_top(ours, true)),
            Some("~len") => {
                let len = |n: &Node| match n.kind() {
                    b'$' | b'=' => format!("{} of {}", n.kind() as char, n.payload().len()),
                    _ => format!("{} of {}", n.kind() as char, n.children.len()),
                };
                same = Some((len(&expected), len(&ours)));
            }
            Some("~type") => same = Some((expected.kind().to_string(), ours.kind().to_string())),
            Some(range) if range.starts_with("~range=") => {
                let (lo, hi) = range["~range=".len()..]
                    .split_once("..")
                    .map(|(lo, hi)| (lo.parse::<i64>().unwrap(), hi.parse::<i64>().unwrap()))
                    .unwrap_or_else(|| panic!("bad marker {range}"));
                let check = |n: &Node| match n.integer() {
                    Some(i) if (lo..=hi).contains(&i) => "in range".to_string(),
                    _ => format!("{:?}", String::from_utf8_lossy(&n.bytes())),
                };
                same = Some((check(&expected), check(&ours)));
            }
            Some("~known") => {
                assert!(
                    previous.starts_with('#'),
                    "`{line}`: a known difference needs a comment line before it"
                );
                if expected == ours {
                    failures.push(format!(
                        "line {line_number}: {line}\n  now matches Redis: drop the ~known marker"
                    ));
                }
                previous = line;
                continue;
            }
            Some(other) => panic!("unknown marker {other} in `{line}`"),
        }
        let (expected, ours) = same.unwrap_or_else(|| {
            let text = |n: &Node| format!("{:?}", String::from_utf8_lossy(&n.bytes()));
            (text(&expected), text(&ours))
        });
        if expected != ours {
            failures.push(format!(
                "line {line_number}: {line}\n  redis:  {expected}\n  keeper: {ours}"
            ));
        }
        previous = line;
    }
    failures
}

/// Runs each `(db, resp3, script)` on one fresh pair of servers and fails with every
/// difference.
fn compare(scripts: &[(u32, bool, &str)]) {
    let pair = pair();
    let mut failures = Vec::new();
    for &(db, resp3, script) in scripts {
        for f in run(&pair, db, resp3, script) {
            failures.push(format!(
                "[db {db}{}] {f}",
                if resp3 { ", RESP3" } else { "" }
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
const SETS: &str = r"
SADD s 1 2 3
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
SSCAN s \e
SSCAN s -1
SSCAN s +0
SSCAN str 0
SINTER str
SUNION s str
";

const ZSETS: &str = r"
ZADD z 1 a 2 b 3 c 4 d 5 e
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
ZADD z \s1 sp
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
ZRANGEBYSCORE z \e (
ZRANGEBYSCORE z \s1 +inf
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
ZRANGEBYLEX lex \e +
ZLEXCOUNT lex [b +
ZLEXCOUNT lex - x
ZREMRANGEBYLEX lex [b (d
ZRANGE lex 0 -1
ZADD mixed 1 b 2 a 3 c
ZRANGEBYLEX mixed - +
ZRANGEBYLEX mixed [b +
ZADD num 01 a +2 b -0 c 1e1 d 0x1p4 e
ZADD num nan f
ZADD num +inf g -inf h
ZADD num 1_0 i
ZINCRBY num nan a
ZINCRBY num +inf g
ZINCRBY num -inf g
ZRANGE num 0 -1 WITHSCORES
ZRANGEBYSCORE num (inf +inf
ZRANGEBYSCORE num (-inf (+inf WITHSCORES
ZRANGEBYSCORE num (1e1 1e1
ZRANGEBYSCORE num nan 1
ZRANGE num 01 +2
ZCOUNT num -inf (2
ZSCORE num c
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
ZSCAN str 0
";

const STREAMS: &str = r"
XADD s 1-1 f v
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
XADD s2 \s7-1 f v
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
# keeper leaves the blocking forms out (issue 4 allows it) and refuses BLOCK, even when
# entries are available and Redis would answer at once.
XREAD BLOCK 0 STREAMS s 0 ~known
# Same: Redis waits 10 ms then answers nil.
XREADGROUP GROUP g c9 BLOCK 10 STREAMS s > ~known
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
XINFO STREAM str
";

const STREAM_GROUPS: &str = r"
XADD s 1-0 a 1
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
XINFO GROUPS s
";

const HASHES: &str = r"
HSET h f v
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
HSCAN str 0
";

// ---- new scripts -----------------------------------------------------------------------------

const STRINGS: &str = r"
SET k v
GET k
SET k v2 NX
SET k v3 XX GET
GET k
SET nk v XX
SET nk v NX GET
SET nk v2 NX GET
SET k v EX 100 PX 100
SET k v NX XX
SET k v EX 0
SET k v EX -1
SET k v PX x
SET k v EX 9223372036854775807
SET k v PXAT 4000000000000
PEXPIRETIME k
SET k v2 KEEPTTL
PEXPIRETIME k
SET k v3
PEXPIRETIME k
SET k v EXAT 4000000000
EXPIRETIME k
SET k v EX 1000 KEEPTTL
SET k v FOO
SET k v EX 1000
TTL k ~range=998..1000
SET k v PX 100000 GET
PTTL k ~range=98000..100000
SET list v GET
LPUSH list a
SET list v GET
GETSET list v
GETSET k newval
GETSET nokey val
GETDEL nokey
GETDEL nokey
GETDEL list
SET k v EX 100
GETEX k
GETEX k PERSIST
TTL k
GETEX k EX 1000
TTL k ~range=998..1000
GETEX k PX 50000
PTTL k ~range=48000..50000
GETEX k EXAT 4000000000
EXPIRETIME k
GETEX k PXAT 4000000000123
PEXPIRETIME k
GETEX k EX 0
GETEX k EX 10 PX 10
GETEX k FOO
GETEX k EX
GETEX nokey EX 10
LPUSH l2 a
GETEX l2
GETEX k PERSIST EX 10
SETNX k x
SETNX newk x
SETEX k 100 v
SETEX k 0 v
SETEX k x v
PSETEX k 100000 v
PSETEX k -5 v
TTL k ~range=98..100
APPEND k more
APPEND app hello
APPEND app \sworld
GET app
STRLEN app
STRLEN nokey
STRLEN l2
SET n 10
INCR n
DECR n
INCRBY n 5
DECRBY n 3
INCRBY n x
DECRBY n -9223372036854775808
SET n 9223372036854775807
INCR n
SET n -9223372036854775808
DECR n
SET n \s1
INCR n
SET n 1.5
INCR n
INCR fresh
DECR fresh2
INCRBY l2 1
SET f 10.5
INCRBYFLOAT f 0.1
INCRBYFLOAT f -5
INCRBYFLOAT f 5.0e3
INCRBYFLOAT f 1e400
INCRBYFLOAT f inf
INCRBYFLOAT f abc
INCRBYFLOAT nf 3
GET nf
SET f 3.0
INCRBYFLOAT f 0
SET f 1e10
INCRBYFLOAT f 1
SET f 0.1
INCRBYFLOAT f 0.2
INCRBYFLOAT l2 1
MSET a 1 b 2 c 3
MSET a
MSET a 1 b
MGET a b c nokey l2
MSETNX a 1 z 2
MSETNX y 1 z 2
MGET y z
MSETNX y
SET r Hello\sWorld
SETRANGE r 6 Redis
GET r
SETRANGE r 20 x
GET r
SETRANGE r -1 x
SETRANGE r 536870912 x
SETRANGE empty 0 \e
EXISTS empty
SETRANGE empty 3 \e
EXISTS empty
SETRANGE pad 3 abc
GET pad
SETRANGE l2 0 x
GETRANGE r 0 4
GETRANGE r -5 -1
GETRANGE r 5 2
GETRANGE r 0 -100
GETRANGE r -100 3
GETRANGE r 100 200
GETRANGE r 0 9223372036854775807
GETRANGE r x 1
GETRANGE nokey 0 -1
GETRANGE l2 0 1
SUBSTR r 0 4
SET int 12345
GETRANGE int 1 2
APPEND int 6
GET int
GET l2
GET nokey
SET k v NX GET
SET k2 v NX GET
SET k2 v XX GET EX 100
TTL k2 ~range=98..100
SET k2 v GET KEEPTTL
TTL k2 ~range=98..100
SET k2 v EX 100 EXAT 4000000000
SET k2 v PXAT 0
SET k2 v EXAT -1
SET k2 v EX 1.5
SETEX k 9223372036854775807 v
PSETEX k 9223372036854775807 v
SETEX k 1 v extra
SET n 5
INCRBY n 9223372036854775807
INCRBY n -9223372036854775808
DECRBY n 9223372036854775807
SET f 5.0e3
INCRBYFLOAT f 1.23456789012345678
INCRBYFLOAT f -5001.23456789012345678
SET f 1.7976931348623157e308
INCRBYFLOAT f 1.7976931348623157e308
SET f 0x10
INCRBYFLOAT f 1
SET f 10
INCRBYFLOAT f 1e-17
INCRBYFLOAT f \s1
INCRBYFLOAT f 1\s
SET e \e
GETRANGE e 0 -1
STRLEN e
APPEND e \e
GET e
SETRANGE e 0 \e
SET int 42
STRLEN int
SETRANGE int 1 9
GET int
GETDEL int
MGET
GETSET k
# Number parsing: Redis's string2ll / strtold rules.
SET n 007
INCR n
SET n -0
INCR n
SET n +1
INCR n
SET n 9223372036854775808
INCR n
SET n 0
INCRBY n 00
INCRBY n +5
INCRBY n -0
INCRBY n 1e3
INCRBY n \e
INCRBY n 0x10
SETRANGE n 00 x
SETRANGE n 1e0 x
GETRANGE n 01 -01
SET f 1
INCRBYFLOAT f 1e
INCRBYFLOAT f nan
INCRBYFLOAT f -inf
INCRBYFLOAT f 1.
INCRBYFLOAT f .5
INCRBYFLOAT f 1e+2
INCRBYFLOAT f 0x1p3
INCRBYFLOAT f \e
INCRBYFLOAT f 1_0
INCRBYFLOAT f 00001
SET f 1.10000
INCRBYFLOAT f 0
SET f -0
INCRBYFLOAT f -0
SET f 3e-320
INCRBYFLOAT f 0
set lower v ex 100
get lower
sEt lower v Px 100000 nX
GeT lower
EXPIRE lower 010
EXPIRE lower +100
EXPIRE lower 1e2
";

const KEYS_SCRIPT: &str = r"
SET k v
EXPIRE k 100
TTL k ~range=98..100
EXPIRE k 200 NX
EXPIRE k 200 XX
TTL k ~range=198..200
EXPIRE k 100 GT
EXPIRE k 300 GT
EXPIRE k 400 LT
EXPIRE k 50 LT
TTL k ~range=48..50
EXPIRE k 10 NX XX
EXPIRE k 10 GT LT
EXPIRE k 10 FOO
EXPIRE k x
EXPIRE k 9223372036854775807
PEXPIRE k 9223372036854775807
PERSIST k
PERSIST k
TTL k
EXPIRE k 100 XX
EXPIRE k 100 GT
EXPIRE k 100 LT
TTL k ~range=98..100
PEXPIRE k 500000
PTTL k ~range=498000..500000
PEXPIRE k 600000 LT
EXPIREAT k 4000000000
EXPIRETIME k
PEXPIRETIME k
PEXPIREAT k 4000000000500
PEXPIRETIME k
EXPIRETIME k
EXPIREAT k 4100000000 GT
EXPIREAT k 3900000000 GT
EXPIRETIME k
PEXPIREAT k 3900000000000 LT
EXPIRETIME k
EXPIRE nokey 10
TTL nokey
PTTL nokey
EXPIRETIME nokey
PEXPIRETIME nokey
PERSIST nokey
SET gone v
EXPIRE gone 0
EXISTS gone
SET gone v
EXPIRE gone -5
EXISTS gone
SET gone v
PEXPIREAT gone 1
GET gone
SET gone v
EXPIREAT gone 1 NX
EXISTS gone
SET a 1
SET b 2
RENAME a c
GET c
EXISTS a
RENAME nokey x
RENAME c c
SET c v EX 1000
RENAME c d
TTL d ~range=998..1000
RENAMENX d b
RENAMENX d e
RENAMENX e e
RENAMENX nokey f
GET e
SELECT 4
SET m v
MOVE m 5
MOVE m 5
EXISTS m
SELECT 5
GET m
SET m2 x
MOVE m2 4
MOVE m2 5
MOVE m2 99
MOVE m2 x
SELECT 4
SET m2 y
SELECT 5
MOVE m2 4
SWAPDB 4 5
GET m
SWAPDB 4 99
SWAPDB x 4
SWAPDB 4 4
SELECT 3
COPY e e2
GET e2
COPY e e2
COPY e e2 REPLACE
COPY e e3 DB 4
COPY nokey x
COPY e e REPLACE
COPY e e4 DB 99
COPY e e4 FOO
RPUSH lst a b c
COPY lst lst2
LRANGE lst2 0 -1
SADD st a
HSET hs f v
ZADD zs 1 a
XADD xs 1-1 f v
TYPE e
TYPE lst
TYPE st
TYPE hs
TYPE zs
TYPE xs
TYPE nokey
EXISTS e lst nokey e
EXISTS
TOUCH e lst nokey
DEL e2 nokey e3
UNLINK lst2 nokey
DEL
KEYS * ~sorted
KEYS l*
KEYS ?s ~sorted
KEYS [hz]s ~sorted
KEYS x*
KEYS * ~sorted
DBSIZE
SCAN 0 ~scan
SCAN 0 MATCH *s ~scan
SCAN 0 COUNT 1 ~scan
SCAN 0 TYPE string ~scan
SCAN 0 TYPE list COUNT 2 ~scan
SCAN 0 TYPE nosuchtype ~scan
SCAN 0 MATCH h* TYPE hash ~scan
SCAN x
SCAN 0 COUNT 0
SCAN 0 COUNT x
SCAN 0 FOO bar
SCAN 0 MATCH
# A cursor Redis never returned: Redis masks it into its hash table and returns the keys
# of that bucket (which depend on its random hash seed) with cursor 0; keeper returns no
# keys and cursor 0. Only the shape is compared.
SCAN 18446744073709551615 ~len
SCAN -1 ~len
RANDOMKEY ~type
SELECT 6
RANDOMKEY
SET only v
RANDOMKEY
DBSIZE
FLUSHDB
DBSIZE
FLUSHDB ASYNC
FLUSHDB SYNC
FLUSHDB FOO
SELECT 3
DBSIZE
SET x1 v PX 20
SET x2 v PX 20
RPUSH x3 a
PEXPIRE x3 20
SET x4 v
EXPIRE x4 100
SLEEP 60
GET x1
EXISTS x1 x2 x3 x4
TTL x2
PTTL x3
TYPE x3
LRANGE x3 0 -1
SET x1 new KEEPTTL
TTL x1
RENAME x2 y
RENAMENX x2 y
COPY x2 y
MOVE x2 4
PERSIST x2
EXPIRE x2 100
GETEX x2 PERSIST
APPEND x2 a
GET x2
INCR x3
KEYS x* ~sorted
SCAN 0 MATCH x* ~scan
SET p v
EXPIRE p 100 GT
EXPIRE p 100 LT
TTL p ~range=98..100
PERSIST p
EXPIRE p -1 GT
EXISTS p
EXPIRE p -1 LT
EXISTS p
SET p v
PEXPIRE p -1 NX
EXISTS p
SET p v EX 100
RENAME p q
TTL q ~range=98..100
SET r v
RENAME q r
TTL r ~range=98..100
RENAME r
COPY r r
COPY r r DB 3
COPY r r2 DB x
COPY r r2 DB -1
TTL r2
COPY r r2
TTL r2 ~range=98..100
EXPIREAT r 9223372036854775807
PEXPIREAT r 9223372036854775807
EXPIRE r 922337203685477
EXPIRE r 92233720368547758
PEXPIRE r 9223372036854775806
EXPIRETIME r ~type
EXISTS r
TYPE r
MOVE r 3
SWAPDB 0
KEYS
SCAN
DBSIZE x
FLUSHALL
DBSIZE
FLUSHALL ASYNC
FLUSHALL FOO
";

const LISTS: &str = r"
LPUSH l a b c
RPUSH l d e
LPUSHX l x
RPUSHX l y
LPUSHX nokey x
RPUSHX nokey x
EXISTS nokey
LRANGE l 0 -1
LRANGE l -3 -1
LRANGE l 5 2
LRANGE l -100 100
LRANGE l x 1
LRANGE nokey 0 -1
LLEN l
LLEN nokey
LINDEX l 0
LINDEX l -1
LINDEX l 100
LINDEX l x
LINDEX nokey 0
LSET l 0 first
LSET l -1 last
LSET l 100 x
LSET nokey 0 x
LSET l x v
LRANGE l 0 -1
RPUSH r a b a c a d a
LREM r 2 a
LRANGE r 0 -1
LREM r -1 a
LRANGE r 0 -1
LREM r 0 a
LRANGE r 0 -1
LREM r 0 zz
LREM nokey 0 a
LREM r x a
RPUSH t 1 2 3 4 5 6
LTRIM t 1 -2
LRANGE t 0 -1
LTRIM t 10 20
EXISTS t
LTRIM nokey 0 1
RPUSH i a b c
LINSERT i BEFORE b x
LINSERT i AFTER c y
LINSERT i AFTER nope z
LINSERT i MIDDLE b z
LINSERT nokey BEFORE a b
LRANGE i 0 -1
RPUSH p a b c 1 2 3 c c
LPOS p c
LPOS p c RANK 2
LPOS p c RANK -1
LPOS p c RANK -2
LPOS p c COUNT 0
LPOS p c COUNT 2
LPOS p c RANK -1 COUNT 2
LPOS p c MAXLEN 3
LPOS p c MAXLEN 2
LPOS p c MAXLEN 2 COUNT 0
LPOS p zz
LPOS p zz COUNT 0
LPOS p c RANK 0
LPOS p c RANK -9223372036854775808
LPOS p c COUNT -1
LPOS p c MAXLEN -1
LPOS p c FOO 1
LPOS nokey a
LPOS nokey a COUNT 0
RPUSH src 1 2 3
LMOVE src dst LEFT RIGHT
LMOVE src dst RIGHT LEFT
LMOVE src dst LEFT LEFT
LMOVE src dst LEFT LEFT
LRANGE dst 0 -1
EXISTS src
LMOVE dst dst LEFT RIGHT
LRANGE dst 0 -1
LMOVE dst dst UP DOWN
LMOVE nokey dst LEFT LEFT
RPOPLPUSH dst dst2
RPOPLPUSH nokey dst2
LRANGE dst2 0 -1
RPUSH q 1 2 3 4 5
LPOP q
RPOP q
LPOP q 2
RPOP q 0
RPOP q 5
EXISTS q
LPOP q
LPOP q 2
LPOP nokey 0
LPOP q -1
LPOP q x
LPOP q 1 2
SET s v
LPUSH s a
RPUSH s a
LRANGE s 0 1
LLEN s
LPOP s
LMOVE s dst LEFT LEFT
LMOVE dst2 s LEFT LEFT
LPOS s a
LINSERT s BEFORE a b
RPUSH nums a b c d
LRANGE nums 01 +2
LRANGE nums -0 -01
LINDEX nums +1
LPOS nums c RANK +1
LPOS nums c RANK 01
LPOP nums 01
LPUSH
LPUSH nl
RPUSH big 1 2 3
LRANGE big 0 9223372036854775807
LRANGE big -9223372036854775808 -1
LINDEX big 9223372036854775807
LINDEX big -4
LSET big -4 x
LSET big -3 x
LTRIM big -1 -2
EXISTS big
RPUSH big 1 2 3
LTRIM big 1 0
EXISTS big
RPUSH big 1 2 3
LPOS big 3 RANK -1 MAXLEN 1
LPOS big 1 RANK -1 MAXLEN 1
LPOS big 1 COUNT 0 MAXLEN 0
LPOS big 1 RANK 2 COUNT 0
LREM big -9223372036854775808 1
LMOVE big big RIGHT LEFT
LRANGE big 0 -1
RPOPLPUSH big big
LRANGE big 0 -1
RPOP big 9223372036854775807
EXISTS big
LINSERT big BEFORE 1 2
RPUSH e \e
LRANGE e 0 -1
LPOS e \e
LREM e 0 \e
EXISTS e
";

const HASH_COMMANDS: &str = r"
HSET h a 1 b 2
HSET h a 10 c 3
HSETNX h a x
HSETNX h d 4
HGET h a
HGET h nope
HGET nokey a
HMGET h a nope b
HMGET nokey a
HMSET h e 5 f 6
HMSET h e
HGETALL h ~pairs
HGETALL nokey
HKEYS h ~sorted
HVALS h ~sorted
HLEN h
HLEN nokey
HEXISTS h a
HEXISTS h zz
HSTRLEN h a
HSTRLEN h zz
HINCRBY h a 5
HINCRBY h new -3
HINCRBY h a x
HINCRBY h a 9223372036854775807
HSET h s abc
HINCRBY h s 1
HINCRBYFLOAT h a 1.5
HINCRBYFLOAT h fl 0.1
HINCRBYFLOAT h fl 0.2
HINCRBYFLOAT h fl inf
HINCRBYFLOAT h s 1
HINCRBYFLOAT h fl x
HDEL h a nope b
HDEL h zz
HDEL nokey a
HLEN h
HSET h
HSET h a
SET str v
HSET str a 1
HGETALL str
HKEYS str
HINCRBY str a 1
SADD s1 a b c d
SADD s2 c d e
SDIFF s1 s2 ~sorted
SDIFF s1 nokey ~sorted
SDIFF nokey s1
SINTER s1 s2 ~sorted
SUNION s1 s2 ~sorted
SMEMBERS s1 ~sorted
SDIFF str s1
ZADD z 1 a 2 b 3 c
ZCARD z
ZCARD nokey
ZREM z a nope
ZREM z zz
ZREM nokey a
ZCARD z
ZREM z b c
EXISTS z
ZCARD str
ZREM str a
";

const SERVER: &str = r"
PING
PING hello
PING a b
ECHO hi
ECHO
ECHO a b
SELECT 16
SELECT -1
SELECT x
SELECT 1.5
SELECT 2
NOSUCHCOMMAND
NOSUCHCOMMAND a b
GET
GET a b
SET a
WRONGCASE_COMMAND_NAME_VERY_LONG x
SET str v
LPUSH str a
HGET str f
SADD str a
ZADD str 1 a
INCR str
MULTI
SET a 1
INCR a
GET a
EXEC
MULTI
MULTI
DISCARD
DISCARD
EXEC
MULTI
SET a 1
NOSUCHCOMMAND
GET a b
EXEC
GET a
MULTI
SET a x
INCR a
GET a
EXEC
WATCH a
SET a 5
MULTI
GET a
EXEC
WATCH a
MULTI
GET a
EXEC
WATCH a b
@2 SET b changed
MULTI
GET b
EXEC
WATCH a
@2 GET a
MULTI
GET a
EXEC
MULTI
SET a 1
EXEC
@2 MULTI
WATCH a
@2 EXEC
SET w1 v
WATCH w1
@2 SWAPDB 1 3
MULTI
PING
EXEC
@2 SWAPDB 1 3
WATCH nokey-w
@2 SWAPDB 1 3
MULTI
PING
EXEC
@2 SWAPDB 1 3
WATCH w1
@2 FLUSHDB
MULTI
PING
EXEC
WATCH nokey-w
@2 FLUSHDB
MULTI
PING
EXEC
SET w2 v
WATCH w2
@2 EXPIRE w2 100
MULTI
PING
EXEC
WATCH w2
@2 PERSIST w2
@2 PERSIST w2
MULTI
PING
EXEC
WATCH w2
@2 SET other v
@2 DEL nokey-w
@2 SELECT 3
@2 SET w2 v
MULTI
PING
EXEC
WATCH w2
@2 SELECT 1
@2 RENAME w2 w3
MULTI
PING
EXEC
UNWATCH
MULTI
WATCH a
EXEC
WATCH
MULTI
SET t 1
LPUSH t x
INCR t
EXEC
MULTI
SELECT 3
SET t 2
SELECT 2
GET t
EXEC
MULTI
EXEC extra
DISCARD
MULTI
PING
ECHO x
EXEC
HELLO 4
HELLO x
CLIENT SETNAME my-name
CLIENT GETNAME
CLIENT SETNAME has\sspace
CLIENT SETNAME \e
CLIENT GETNAME
CLIENT FOO
CONFIG GET nosuchparam
CONFIG GET
CONFIG SET nosuchparam 1
CONFIG FOO
CONFIG GET save
LASTSAVE ~type
INFO keyspace
INFO nosuchsection
CONFIG SET save \e
CONFIG SET save 100\s1
CONFIG GET save
CONFIG SET save 100
CONFIG SET save \e
CONFIG SET appendonly maybe
CONFIG SET dbfilename dump.rdb
CONFIG GET dbfilename
CONFIG GET stop-writes-on-bgsave-error
CONFIG GET rdbcompression
CONFIG GET requirepass
COMMAND GETKEYS SET a b
COMMAND GETKEYS MSET a 1 b 2
COMMAND GETKEYS MSET a 1 b
COMMAND GETKEYS GET
COMMAND GETKEYS GET a b
COMMAND GETKEYS NOSUCH a
COMMAND GETKEYS PING
COMMAND GETKEYS DEL a b c
COMMAND GETKEYS RENAME a b
COMMAND GETKEYS LMOVE a b LEFT RIGHT
COMMAND GETKEYS SINTERSTORE d a b
COMMAND GETKEYS SINTERCARD 2 a b
COMMAND GETKEYS SINTERCARD 2 a b LIMIT 1
COMMAND GETKEYS SINTERCARD 3 a b
COMMAND GETKEYS SINTERCARD 0 a b
COMMAND GETKEYS SINTERCARD x a b
COMMAND GETKEYS XREAD COUNT 2 STREAMS a b 0 0
COMMAND GETKEYS XREAD STREAMS a b 0
COMMAND GETKEYS XREAD COUNT 2 BLOCK 1
COMMAND GETKEYS XREADGROUP GROUP g c STREAMS a 0
COMMAND GETKEYS XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b > >
COMMAND GETKEYS XREADGROUP GROUP streams c STREAMS a b
COMMAND GETKEYS XGROUP CREATE s g 0
COMMAND GETKEYS XGROUP HELP
COMMAND GETKEYS XGROUP
COMMAND GETKEYS XGROUP NOSUCH s
COMMAND GETKEYS XINFO STREAM s
COMMAND GETKEYS XGROUP CREATE s
COMMAND GETKEYS
COMMAND DOCS nosuch
SAVE
PUBLISH nobody-listens hi
@3 SUBSCRIBE ch
@3 PSUBSCRIBE c*
@3 PING
@3 PING hello
@3 GET a
@3 SUBSCRIBE
@2 PUBLISH ch hello
@3 READ
@3 READ
@3 PUNSUBSCRIBE c*
@3 UNSUBSCRIBE ch
@3 UNSUBSCRIBE
@3 PING
@3 GET nokey
CONFIG GET appendonly
CONFIG GET databases
COMMAND INFO get
COMMAND INFO lpos zadd nosuch
COMMAND INFO hget
# keeper derives key specs from the write/readonly flag alone: it has no per-command notes,
# `variable_flags` (SET), RM/insert/delete key-spec flags (DEL, SADD, LPUSH), RW+access
# (INCR), command tips (DEL, EXISTS, XADD) nor subcommand entries (XGROUP).
COMMAND INFO set xadd xgroup del exists sadd lpush incr ~known
COMMAND COUNT ~type
# Replies that are random or depend on the clock: shapes only.
SADD rs a b c d e
SRANDMEMBER rs 10 ~sorted
SRANDMEMBER rs -10 ~len
SRANDMEMBER rs 2 ~len
SPOP rs 2 ~len
SPOP rs ~len
SPOP rs 10 ~len
EXISTS rs
ZADD rz 1 a 2 b
ZRANDMEMBER rz -5 ~len
ZRANDMEMBER rz 5 WITHSCORES ~pairs
HSET rh f v g w
HRANDFIELD rh -5 WITHVALUES ~len
HRANDFIELD rh 5 WITHVALUES ~pairs
XADD xs * f v ~type
XADD xs * f v ~type
XLEN xs
RANDOMKEY ~type
TIME ~len
CLIENT ID ~type
INFO server ~type
CLIENT LIST ~type
DBSIZE
";

/// Every script sent to both servers, for the coverage check.
const ALL_SCRIPTS: &[&str] = &[
    SETS,
    ZSETS,
    STREAMS,
    STREAM_GROUPS,
    HASHES,
    STRINGS,
    KEYS_SCRIPT,
    LISTS,
    HASH_COMMANDS,
    SERVER,
];

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn strings_match_redis() {
    compare(&[(1, false, STRINGS), (2, true, STRINGS)]);
}

#[test]
fn keys_match_redis() {
    // FLUSHALL at the end of the script: its own pair of servers.
    // Each run starts empty: the script ends with FLUSHALL.
    compare(&[(3, false, KEYS_SCRIPT), (3, true, KEYS_SCRIPT)]);
}

#[test]
fn lists_match_redis() {
    compare(&[(7, false, LISTS), (8, true, LISTS)]);
}

#[test]
fn server_commands_match_redis() {
    compare(&[(1, false, SERVER), (2, true, SERVER)]);
}

#[test]
fn sets_match_redis() {
    compare(&[(9, false, SETS), (10, true, SETS)]);
}

#[test]
fn sorted_sets_match_redis() {
    compare(&[(10, false, ZSETS), (11, true, ZSETS)]);
}

#[test]
fn hashes_match_redis() {
    compare(&[
        (15, false, HASHES),
        (14, true, HASHES),
        (4, false, HASH_COMMANDS),
        (5, true, HASH_COMMANDS),
    ]);
}

#[test]
fn streams_match_redis() {
    compare(&[
        (11, false, STREAMS),
        (13, false, STREAM_GROUPS),
        (12, true, STREAMS),
        (14, true, STREAM_GROUPS),
    ]);
}

/// Approximate trims drop the nodes Redis would drop (streams built by XADD).
#[test]
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
    script.push_str(
        "XINFO STREAM y FULL\nXINFO STREAM y FULL COUNT 2\nXINFO STREAM y FULL COUNT 0\n",
    );
    compare(&[(12, false, &script), (13, true, &script)]);
}

/// Collections past Redis's compact encodings (listpack, intset): orders that stay
/// deterministic (sorted sets, lists, an intset's sorted members) and full scans.
#[test]
fn big_collections_match_redis() {
    let mut rng = keeper::command::Rng::new(0xB16);
    let mut script = String::new();
    for i in 0..300 {
        let n = rng.below(100_000);
        script.push_str(&format!(
            "SADD ints {n}\nZADD z {} m{n}\nZADD lex 0 {n}\n",
            n % 7
        ));
        script.push_str(&format!(
            "RPUSH l {}\nHSET h f{i} {n}\nSADD s m{n}\n",
            n % 10
        ));
    }
    script.push_str(
        "SMEMBERS ints
         SCARD ints
         SISMEMBER ints 5
         SADD small 3 1 2 -5 100
         SMEMBERS small
         SADD small x
         SMEMBERS small ~sorted
         SSCAN ints 0 ~scan
         SSCAN s 0 COUNT 7 ~scan
         SSCAN s 0 MATCH m1* ~scan
         ZRANGE z 0 -1 WITHSCORES
         ZRANGE z 100 120 REV
         ZRANGEBYSCORE z (2 4 LIMIT 10 20 WITHSCORES
         ZRANGEBYLEX lex [5 (6
         ZRANK z m5
         ZREVRANK lex 5
         ZCOUNT z 1 3
         ZSCAN z 0 ~scan
         ZSCAN z 0 MATCH m2* COUNT 3 ~scan
         ZREMRANGEBYRANK z 10 200
         ZRANGE z 0 -1 WITHSCORES
         LRANGE l 0 -1
         LPOS l 3 COUNT 0
         LPOS l 7 RANK -3 COUNT 5
         LREM l 2 5
         LINSERT l AFTER 9 x
         LINDEX l 150
         LRANGE l 140 160
         HLEN h
         HSCAN h 0 ~scan
         HSCAN h 0 MATCH f1* COUNT 5 ~scan
         HGETALL h ~pairs
         SUNIONSTORE u ints s
         SCARD u
         SINTERCARD 2 ints u
         SDIFF ints u
         SCAN 0 COUNT 3 ~scan
         KEYS * ~sorted",
    );
    compare(&[(6, false, &script), (7, true, &script)]);
}

/// `KEYS` with random patterns over random keys finds what Redis finds: the glob matcher
/// against `stringmatchlen`, quirks included (unclosed classes, escapes at the end, ranges
/// over signed bytes, `*` runs).
#[test]
fn keys_patterns_match_redis() {
    const ALPHABET: &[u8] = b"ab*?[]^-\\A\xc3";
    let mut rng = keeper::command::Rng::new(0x61_0B);
    let mut random_text = |max: u64| -> Vec<u8> {
        let len = rng.below(max + 1) as usize;
        (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
            .collect()
    };
    let keys: Vec<Vec<u8>> = (0..60).map(|_| random_text(6)).collect();
    let patterns: Vec<Vec<u8>> = (0..3000).map(|_| random_text(7)).collect();
    let pair = pair();
    let mut redis = Raw::connect(pair.redis.port());
    let mut keeper = Raw::connect(pair.keeper.port);
    for key in &keys {
        let set = [b"SET".to_vec(), key.clone(), b"v".to_vec()];
        assert_eq!(redis.call(&set), keeper.call(&set));
    }
    let mut failures = Vec::new();
    for pattern in &patterns {
        let argv = [b"KEYS".to_vec(), pattern.clone()];
        let expected = sort_top(redis.call(&argv), false);
        let ours = sort_top(keeper.call(&argv), false);
        if ours != expected {
            failures.push(format!(
                "KEYS {:?}: redis {} keys, keeper {}",
                String::from_utf8_lossy(pattern),
                expected.children.len(),
                ours.children.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `redis-cli`'s formatted output (it formats each RESP type its own way) is the same.
#[test]
fn redis_cli_output_matches_redis() {
    let pair = pair();
    let cli = |port: u16, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-cli (install redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lines: &[&[&str]] = &[
        &["ZADD", "z", "1", "a", "2.5", "b", "inf", "c"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["-3", "ZSCORE", "z", "b"],
        &["HSET", "h", "f", "v"],
        &["HGETALL", "h"],
        &["-3", "HGETALL", "h"],
        &["XADD", "x", "1-1", "f", "v", "g", "w"],
        &["XRANGE", "x", "-", "+"],
        &["-3", "XRANGE", "x", "-", "+"],
        &["GET", "nokey"],
        &["-3", "GET", "nokey"],
        &["LPUSH", "h", "x"],
        &["NOSUCHCOMMAND"],
        &["--no-raw", "SMEMBERS", "nokey"],
        &["INCR", "n"],
        // redis-cli prints raw output to a pipe; --no-raw is the formatted, typed form.
        &["--no-raw", "ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["--no-raw", "-3", "ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["--no-raw", "HGETALL", "h"],
        &["--no-raw", "-3", "HGETALL", "h"],
        &["--no-raw", "XRANGE", "x", "-", "+"],
        &["--no-raw", "-3", "XREAD", "STREAMS", "x", "0"],
        &["--no-raw", "INCR", "n"],
        &["--no-raw", "GET", "nokey"],
        &["--no-raw", "-3", "GET", "nokey"],
        &["--no-raw", "LPUSH", "h", "x"],
        &["--no-raw", "NOSUCHCOMMAND", "a"],
        &["--no-raw", "-3", "CONFIG", "GET", "save"],
    ];
    let mut failures = Vec::new();
    for args in lines {
        let expected = cli(pair.redis.port(), args);
        let ours = cli(pair.keeper.port, args);
        if expected != ours {
            failures.push(format!(
                "redis-cli {}\n  redis:  {expected:?}\n  keeper: {ours:?}",
                args.join(" ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every data command appears in a script line sent to both servers.
#[test]
fn every_data_command_is_in_a_script() {
    let sent: BTreeSet<String> = ALL_SCRIPTS
        .iter()
        .flat_map(|script| script_lines(script))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_ascii_lowercase)
        .collect();
    let missing: Vec<&str> = keeper::command::specs()
        .map(|spec| spec.name)
        .filter(|name| !sent.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "data commands no script sends: {}",
        missing.join(" ")
    );
}
