//! An AOF directory written by `keeper server --appendonly yes` loads in redis-server 7.0.15
//! with the same data keeper holds, and passes `redis-check-aof` and `keeper check-aof`: with an
//! RDB preamble base (the default), a RESP base (`aof-use-rdb-preamble no`) and `#TS:`
//! annotations (`aof-timestamp-enabled yes`), each before and after a BGREWRITEAOF, with the
//! node stopped cleanly (SIGTERM) or killed (SIGKILL under `appendfsync always`).
//!
//! Three datasets are compared in canonical form: what the live node held before it stopped,
//! what a restarted keeper loads from the folder, and what real Redis loads from a copy of it.
//! Under `KEEPER_STORAGE=scrambled` the files are not Redis's bytes, so only the keeper side
//! runs.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::client::{Client, KeeperServer, Resp, info_fields};
use support::dump::dump_port;
use support::{RedisServer, canonical, compare, keeper, plain_files};

#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGTERM: the node flushes, syncs and closes the AOF.
    Term,
    /// SIGKILL under `appendfsync always`: every acknowledged write is already durable.
    Kill,
}

/// Runs a command and fails the test on an error reply.
fn ok(c: &mut Client, args: &[&str]) -> Resp {
    match c.cmd(args) {
        Resp::Error(e) => panic!("{args:?}: {e}"),
        reply => reply,
    }
}

/// Writes a mix of every type and of the commands whose propagation Redis rewrites (random
/// or relative ones), in several databases; keys are prefixed with `t` so calls can repeat.
fn write_mix(c: &mut Client, t: &str) {
    let k = |name: &str| format!("{t}:{name}");
    let far = (support::now_ms() + 100_000_000).to_string();
    ok(c, &["SELECT", "0"]);
    // Strings: relative TTLs, counters, floats, partial updates, deletes.
    ok(c, &["SET", &k("s"), "hello"]);
    ok(c, &["APPEND", &k("s"), " world"]);
    ok(c, &["SETRANGE", &k("s"), "0", "J"]);
    ok(c, &["SET", &k("ex"), "v", "EX", "100000"]);
    ok(c, &["SET", &k("px"), "v", "PX", "100000000"]);
    ok(c, &["SETEX", &k("setex"), "100000", "v"]);
    ok(c, &["SET", &k("n"), "10"]);
    ok(c, &["INCR", &k("n")]);
    ok(c, &["INCRBY", &k("n"), "5"]);
    ok(c, &["DECR", &k("n")]);
    ok(c, &["SET", &k("f"), "1.5"]);
    ok(c, &["EXPIRE", &k("f"), "500000"]);
    ok(c, &["INCRBYFLOAT", &k("f"), "0.1"]);
    ok(c, &["INCRBYFLOAT", &k("f"), "1e3"]);
    ok(c, &["SET", &k("gone"), "x"]);
    ok(c, &["DEL", &k("gone")]);
    ok(c, &["SET", &k("expired"), "x"]);
    ok(c, &["EXPIRE", &k("expired"), "-1"]);
    ok(c, &["SET", &k("persist"), "x", "EX", "100"]);
    ok(c, &["PERSIST", &k("persist")]);
    ok(c, &["SET", &k("kept"), "x"]);
    ok(c, &["EXPIRE", &k("kept"), "200000"]);
    ok(c, &["SET", &k("at"), "x"]);
    ok(c, &["PEXPIREAT", &k("at"), &far]);
    ok(c, &["SET", &k("getex"), "x"]);
    ok(c, &["GETEX", &k("getex"), "EX", "300000"]);
    ok(c, &["SET", &k("getdel"), "x"]);
    ok(c, &["GETDEL", &k("getdel")]);
    ok(c, &["MSET", &k("m1"), "a", &k("m2"), "b"]);
    ok(c, &["SET", &k("renamed-from"), "r", "EX", "400000"]);
    ok(c, &["RENAME", &k("renamed-from"), &k("renamed")]);
    ok(c, &["COPY", &k("renamed"), &k("copied")]);
    // Lists, one long enough to be several rewrite commands.
    ok(c, &["RPUSH", &k("l"), "a", "b", "c", "d"]);
    ok(c, &["LPUSH", &k("l"), "z"]);
    ok(c, &["LPOP", &k("l")]);
    ok(c, &["LSET", &k("l"), "1", "B"]);
    ok(c, &["LINSERT", &k("l"), "BEFORE", "c", "bc"]);
    ok(c, &["LMOVE", &k("l"), &k("l2"), "RIGHT", "LEFT"]);
    ok(c, &["LTRIM", &k("l"), "0", "2"]);
    let items: Vec<String> = (0..300).map(|i| format!("item-{i}")).collect();
    let mut rpush = vec!["RPUSH".to_string(), k("long")];
    rpush.extend(items);
    ok(c, &rpush.iter().map(String::as_str).collect::<Vec<_>>());
    // Sets: integers, strings, random pops (propagated as what they removed).
    ok(c, &["SADD", &k("ints"), "1", "2", "3", "100000"]);
    ok(c, &["SADD", &k("strs"), "a", "b", "c", "d", "e", "f"]);
    ok(c, &["SREM", &k("strs"), "a"]);
    ok(c, &["SPOP", &k("strs")]);
    ok(c, &["SPOP", &k("strs"), "2"]);
    ok(c, &["SMOVE", &k("ints"), &k("moved"), "2"]);
    ok(c, &["SINTERSTORE", &k("inter"), &k("ints"), &k("ints")]);
    // Sorted sets: infinities, fractions, increments, pops, an INCR.
    ok(
        c,
        &[
            "ZADD",
            &k("z"),
            "1",
            "a",
            "2.5",
            "b",
            "-inf",
            "c",
            "+inf",
            "d",
            "0.1",
            "e",
        ],
    );
    ok(c, &["ZINCRBY", &k("z"), "0.2", "e"]);
    ok(c, &["ZREM", &k("z"), "b"]);
    ok(c, &["ZADD", &k("z2"), "3", "x", "4", "y", "5", "zz"]);
    ok(c, &["ZPOPMIN", &k("z2")]);
    ok(c, &["ZADD", &k("z2"), "INCR", "1.75", "y"]);
    // Hashes: increments (the float one propagated as HSET), many fields.
    ok(c, &["HSET", &k("h"), "f1", "v1", "f2", "v2", "n", "1"]);
    ok(c, &["HINCRBY", &k("h"), "n", "41"]);
    ok(c, &["HINCRBYFLOAT", &k("h"), "fl", "2.5"]);
    ok(c, &["HDEL", &k("h"), "f2"]);
    ok(c, &["HSETNX", &k("h"), "f3", "v3"]);
    let mut hset = vec!["HSET".to_string(), k("bighash")];
    for i in 0..150 {
        hset.push(format!("field-{i}"));
        hset.push(format!("value-{i}"));
    }
    ok(c, &hset.iter().map(String::as_str).collect::<Vec<_>>());
    ok(c, &["EXPIRE", &k("bighash"), "600000"]);
    // Streams: explicit and generated IDs, deletions, trimming, groups with consumers and a
    // PEL (XREADGROUP is propagated as XCLAIM … and XGROUP SETID), a group with no
    // entries-read.
    let st = k("st");
    for id in ["1-1", "1-2", "2-0", "3-0", "4-0"] {
        ok(c, &["XADD", &st, id, "f", id, "g", "x"]);
    }
    ok(c, &["XADD", &st, "*", "generated", "1"]);
    ok(c, &["XDEL", &st, "1-2"]);
    ok(c, &["XGROUP", "CREATE", &st, "g1", "0"]);
    ok(c, &["XGROUP", "CREATE", &st, "g2", "$"]);
    ok(c, &["XGROUP", "CREATE", &st, "g3", "2-0"]);
    ok(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "2",
            "STREAMS",
            &st,
            ">",
        ],
    );
    ok(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            &st,
            ">",
        ],
    );
    ok(c, &["XACK", &st, "g1", "1-1"]);
    ok(c, &["XCLAIM", &st, "g1", "carol", "0", "3-0"]);
    ok(c, &["XGROUP", "CREATECONSUMER", &st, "g1", "dave"]);
    let trimmed = k("trimmed");
    for i in 1..=20 {
        ok(
            c,
            &["XADD", &trimmed, &format!("{i}-0"), "i", &i.to_string()],
        );
    }
    ok(c, &["XTRIM", &trimmed, "MAXLEN", "5"]);
    ok(c, &["XADD", &k("emptied"), "5-5", "f", "v"]);
    ok(c, &["XDEL", &k("emptied"), "5-5"]);
    // A transaction in database 3, keys in 7 and 15, a MOVE, a database emptied by FLUSHDB.
    ok(c, &["SELECT", "3"]);
    ok(c, &["MULTI"]);
    for args in [
        vec!["SET", &k("tx") as &str, "1"],
        vec!["INCR", &k("tx")],
        vec!["RPUSH", &k("txl"), "a", "b"],
        vec!["EXPIRE", &k("tx"), "700000"],
        vec!["INCRBYFLOAT", &k("txf"), "3.25"],
    ] {
        assert_eq!(c.cmd(&args), Resp::Simple("QUEUED".into()), "{args:?}");
    }
    assert_eq!(c.cmd(&["EXEC"]).items().len(), 5);
    ok(c, &["SET", &k("to-move"), "moving"]);
    ok(c, &["MOVE", &k("to-move"), "7"]);
    ok(c, &["SELECT", "7"]);
    ok(c, &["HSET", &k("h7"), "a", "1"]);
    ok(c, &["SADD", &k("s7"), "x"]);
    ok(c, &["SELECT", "15"]);
    ok(c, &["SET", &k("last-db"), "é ünïcode ✓"]);
    ok(c, &["SELECT", "9"]);
    ok(c, &["SET", &k("flushed"), "x"]);
    ok(c, &["FLUSHDB"]);
    ok(c, &["SELECT", "0"]);
}

fn wait_for_rewrite(c: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fields = info_fields(&c.cmd(&["INFO", "persistence"]));
        if fields["aof_rewrite_in_progress"] == "0" && fields["aof_rewrite_scheduled"] == "0" {
            assert_eq!(fields["aof_last_bgrewrite_status"], "ok");
            return;
        }
        assert!(Instant::now() < deadline, "the rewrite never finished");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A dataset dump in canonical form, without stream consumers' seen/active times: replaying
/// `XCLAIM` sets them to the time of the load (in Redis 7.0 as in keeper), so an AOF does not
/// keep them.
fn comparable(lines: &[String]) -> Vec<String> {
    let lines: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["type"] == "stream" {
                for g in v["value"]["groups"].as_array_mut().unwrap() {
                    for cons in g["consumers"].as_array_mut().unwrap() {
                        let cons = cons.as_object_mut().unwrap();
                        cons.remove("seen_time_ms");
                        cons.remove("active_time_ms");
                    }
                }
            }
            v.to_string()
        })
        .collect();
    canonical(&lines)
}

/// Copies every file of `from` into `to` (created).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Runs `program args…`; returns whether it exited 0 and its combined output.
fn run(mut command: Command) -> (bool, String) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// One configuration: keeper writes the mix (around a BGREWRITEAOF when `rewrite`), stops as
/// `stop` says; then Redis's and keeper's tools accept the directory, and real Redis and a
/// restarted keeper load the data the node held.
fn scenario(config: &[&str], rewrite: bool, stop: Stop) {
    let what = format!("{config:?} rewrite={rewrite} {stop:?}");
    let dir = tempfile::tempdir().unwrap();
    let policy = match stop {
        Stop::Term => "everysec",
        Stop::Kill => "always",
    };
    let mut args = vec!["--save", "", "--appendonly", "yes", "--appendfsync", policy];
    args.extend_from_slice(config);
    let mut server = KeeperServer::start(dir.path(), &args);
    let mut c = server.client();
    write_mix(&mut c, "before");
    if rewrite {
        assert_eq!(
            c.cmd(&["BGREWRITEAOF"]),
            Resp::Simple("Background append only file rewriting started".into())
        );
        write_mix(&mut c, "during");
        wait_for_rewrite(&mut c);
        write_mix(&mut c, "after");
    }
    // The first round again (its streams deleted so their IDs can repeat): overwrites and
    // appends whose newest value must win everywhere.
    ok(
        &mut c,
        &["DEL", "before:st", "before:trimmed", "before:emptied"],
    );
    write_mix(&mut c, "before");
    let held = comparable(&dump_port(server.port));
    assert!(held.len() > 30, "{what}: only {} keys written", held.len());
    drop(c);
    match stop {
        Stop::Term => {
            server.signal("TERM");
            let status = server.wait_exit();
            assert!(status.success(), "{what}: {status}\n{}", server.log());
        }
        Stop::Kill => {
            server.signal("KILL");
            server.wait_exit();
        }
    }
    drop(server);

    let aof_dir = dir.path().join("appendonlydir");
    if plain_files() {
        // The directory has the shape the configuration asks for.
        let manifest = std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).unwrap();
        let base = if config.contains(&"no") {
            ".base.aof "
        } else {
            ".base.rdb "
        };
        assert!(manifest.contains(base), "{what}: {manifest}");
        // Like Redis, a `#TS:` goes before the first write of each new second only (not at
        // the start of each incr file), so only the first incr file surely has one.
        if !rewrite {
            let incr = std::fs::read(aof_dir.join("appendonly.aof.1.incr.aof")).unwrap();
            let stamped = incr.windows(4).any(|w| w == b"#TS:");
            assert_eq!(
                stamped,
                config.contains(&"--aof-timestamp-enabled"),
                "{what}"
            );
        }

        let copy = tempfile::tempdir().unwrap();
        copy_dir(&aof_dir, &copy.path().join("appendonlydir"));
        let manifest = copy.path().join("appendonlydir/appendonly.aof.manifest");
        let mut check = Command::new("redis-check-aof");
        check.arg(&manifest);
        let (accepted, output) = run(check);
        assert!(accepted, "{what}: redis-check-aof refused:\n{output}");
        let mut check = keeper();
        check.arg("check-aof").arg(&aof_dir);
        let (accepted, output) = run(check);
        assert!(accepted, "{what}: keeper check-aof refused:\n{output}");

        let redis = RedisServer::start_with(copy.path(), "dump.rdb", &["--appendonly", "yes"]);
        let loaded = comparable(&redis.dump());
        if let Err(report) = compare(&format!("{what}: redis-server vs the node"), &held, &loaded) {
            panic!("{report}\n--- redis-server log ---\n{}", redis.log());
        }
    }

    let restarted = KeeperServer::start(dir.path(), &args);
    let reloaded = comparable(&dump_port(restarted.port));
    if let Err(report) = compare(
        &format!("{what}: restarted keeper vs the node"),
        &held,
        &reloaded,
    ) {
        panic!("{report}\n--- keeper log ---\n{}", restarted.log());
    }
}

fn both_stops(config: &[&str], rewrite: bool) {
    scenario(config, rewrite, Stop::Term);
    scenario(config, rewrite, Stop::Kill);
}

#[test]
fn rdb_preamble_directories_load_in_redis() {
    both_stops(&[], false);
}

#[test]
fn rdb_preamble_directories_after_a_rewrite_load_in_redis() {
    both_stops(&[], true);
}

#[test]
fn resp_base_directories_load_in_redis() {
    both_stops(&["--aof-use-rdb-preamble", "no"], false);
}

#[test]
fn resp_base_directories_after_a_rewrite_load_in_redis() {
    both_stops(&["--aof-use-rdb-preamble", "no"], true);
}

#[test]
fn timestamped_directories_load_in_redis() {
    both_stops(&["--aof-timestamp-enabled", "yes"], false);
}

#[test]
fn timestamped_directories_after_a_rewrite_load_in_redis() {
    both_stops(&["--aof-timestamp-enabled", "yes"], true);
}
