//! `keeper server` as a replica of a real `redis-server` 7.0 primary
//! (`keeper::replication::replica`, `REPLICAOF`): full sync in both payload forms, the live
//! stream under write load (every type, transactions, scripts, expiry, several databases,
//! flushes), a broken link resumed with a partial resync, restarts from the replica's own
//! RDB or AOF resumed with a partial resync, read-only to clients, promotion with `REPLICAOF
//! NO ONE`, `masterauth`, and INFO/ROLE as a real Redis replica shows them.
//!
//! Every check of data compares the whole dataset of both servers key by key (read over RESP
//! the same way from both), after the replica's `slave_repl_offset` reached the primary's
//! `master_repl_offset`.

mod support;

use std::collections::HashMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::client::{Client, KeeperServer, Resp, info_fields};
use support::dump::dump_port;
use support::{RedisServer, canonical, compare};

/// Longest wait for a replica to catch up.
const CATCH_UP: Duration = Duration::from_secs(60);

/// A real Redis primary that starts a diskless sync at once (no 5 s batching delay), with
/// `extra` options.
fn primary(dir: &std::path::Path, extra: &[&str]) -> RedisServer {
    let mut options = vec![
        "--repl-diskless-sync-delay",
        "0",
        "--enable-debug-command",
        "yes",
    ];
    options.extend_from_slice(extra);
    RedisServer::start_with(dir, "primary.rdb", &options)
}

fn info(port: u16, password: Option<&str>, section: &str) -> HashMap<String, String> {
    let mut c = Client::connect(port).unwrap();
    if let Some(p) = password {
        assert_eq!(c.cmd(&["AUTH", p]), Resp::Simple("OK".into()));
    }
    info_fields(&c.cmd(&["INFO", section]))
}

/// Sends `args` and fails the test on an error reply.
fn ok(c: &mut Client, args: &[&str]) -> Resp {
    let reply = c.cmd(args);
    assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
    reply
}

/// Waits until the keeper replica's link is up and its offset is the primary's; returns the
/// offset.
fn caught_up(primary: u16, password: Option<&str>, replica: &KeeperServer) -> u64 {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let p = info(primary, password, "replication");
        let r = info(replica.port, None, "replication");
        let wanted = &p["master_repl_offset"];
        if r["master_link_status"] == "up" && &r["slave_repl_offset"] == wanted {
            assert_eq!(&r["master_repl_offset"], wanted);
            assert_eq!(r["master_replid"], p["master_replid"]);
            return wanted.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not catch up: primary {wanted}, replica {r:?}\n--- keeper log \
             ---\n{}",
            replica.log()
        );
        sleep(Duration::from_millis(50));
    }
}

/// Compares the replica's dataset with the primary's, except what Redis 7.0 itself does not
/// replicate (see [`replica_view`]).
fn assert_same_data(what: &str, primary: u16, password: Option<&str>, replica: &KeeperServer) {
    let expected = canonical(&replica_view(dump_authenticated(primary, password), true));
    let actual = canonical(&replica_view(dump_port(replica.port), true));
    if let Err(report) = compare(what, &expected, &actual) {
        panic!("{report}\n--- keeper log ---\n{}", replica.log());
    }
    assert!(!expected.is_empty(), "{what}: nothing to compare");
}

/// A dataset without what a Redis 7.0 replica holds differently from its primary: a
/// consumer's seen time (set by the replica's clock when it applies the primary's
/// `XCLAIM`), and, with `entries_read`, a group's `entries_read` (not propagated after
/// `XREADGROUP` until Redis 7.4, redis#12898). Compared with a real replica, only the times
/// are left out.
fn replica_view(lines: Vec<String>, entries_read: bool) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if let Some(groups) = v
                .pointer_mut("/value/groups")
                .and_then(serde_json::Value::as_array_mut)
            {
                for group in groups {
                    if entries_read {
                        group["entries_read"] = serde_json::Value::Null;
                    }
                    for consumer in group["consumers"].as_array_mut().into_iter().flatten() {
                        consumer["seen_time_ms"] = serde_json::Value::Null;
                        consumer["active_time_ms"] = serde_json::Value::Null;
                    }
                }
            }
            v.to_string()
        })
        .collect()
}

/// `dump_port` of a server that wants a password: the dump's client cannot AUTH, so the
/// password is lifted for the moment of the dump.
fn dump_authenticated(port: u16, password: Option<&str>) -> Vec<String> {
    let Some(password) = password else {
        return dump_port(port);
    };
    let mut c = Client::connect(port).unwrap();
    ok(&mut c, &["AUTH", password]);
    ok(&mut c, &["CONFIG", "SET", "requirepass", ""]);
    let lines = dump_port(port);
    ok(&mut c, &["CONFIG", "SET", "requirepass", password]);
    lines
}

/// Every value type in two databases, TTLs, and strings big enough for the RDB to span many
/// chunks.
fn populate(c: &mut Client) {
    ok(c, &["SELECT", "0"]);
    ok(c, &["SET", "plain", "hello"]);
    ok(c, &["SET", "counter", "10"]);
    ok(c, &["SET", "ttl", "later", "EX", "100000"]);
    ok(c, &["RPUSH", "list", "a", "b", "c", "d"]);
    ok(c, &["SADD", "set", "x", "y", "z", "1", "2"]);
    ok(c, &["ZADD", "zset", "1.5", "m1", "-2", "m2", "3", "m3"]);
    ok(c, &["HSET", "hash", "f1", "v1", "f2", "1.5"]);
    ok(c, &["XADD", "stream", "1-1", "field", "value"]);
    ok(c, &["XGROUP", "CREATE", "stream", "group", "0"]);
    for i in 0..30 {
        let value = format!("{i}:{}", "abcdefghij".repeat(2000 + i));
        ok(c, &["SET", &format!("big:{i}"), &value]);
    }
    ok(c, &["SELECT", "4"]);
    for i in 0..500 {
        ok(c, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    ok(c, &["SELECT", "0"]);
}

/// Writes of every kind Redis rewrites or wraps for its replicas.
fn write_everything(c: &mut Client, round: usize) {
    let r = round.to_string();
    ok(c, &["SELECT", "0"]);
    ok(c, &["MULTI"]);
    c.cmd(&["INCR", "counter"]);
    c.cmd(&["RPUSH", "list", &r]);
    c.cmd(&["HSET", "hash", &format!("f{r}"), &r]);
    ok(c, &["EXEC"]);
    ok(c, &["EXPIRE", "plain", "5000"]);
    ok(c, &["SET", &format!("ex:{r}"), "v", "EX", "1000"]);
    ok(c, &["SET", &format!("px:{r}"), "v", "PX", "1000000", "GET"]);
    ok(c, &["INCRBYFLOAT", "float", "1.1"]);
    ok(c, &["HINCRBYFLOAT", "hash", "f2", "0.25"]);
    ok(c, &["SPOP", "set"]);
    ok(c, &["SADD", "set", &format!("m{r}"), &format!("n{r}")]);
    ok(c, &["SRANDMEMBER", "set"]);
    ok(c, &["ZINCRBY", "zset", "2.5", "m1"]);
    ok(c, &["ZPOPMIN", "zset"]);
    ok(c, &["ZADD", "zset", &r, &format!("z{r}")]);
    ok(c, &["LPOP", "list"]);
    ok(c, &["LMOVE", "list", "list2", "LEFT", "RIGHT"]);
    ok(c, &["XADD", "stream", "*", "round", &r]);
    ok(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "group",
            "consumer",
            "COUNT",
            "1",
            "STREAMS",
            "stream",
            ">",
        ],
    );
    ok(c, &["GETEX", "counter", "PX", "9000000"]);
    ok(c, &["PERSIST", "counter"]);
    ok(c, &["APPEND", "plain", &r]);
    ok(c, &["SETRANGE", "plain", "1", "E"]);
    ok(
        c,
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[2]); return 1",
            "2",
            &format!("script:{r}"),
            "script-count",
            &r,
        ],
    );
    ok(c, &["SELECT", "4"]);
    ok(c, &["SET", &format!("db4:{r}"), &r]);
    ok(c, &["DEL", &format!("k{round}")]);
    ok(
        c,
        &[
            "RENAME",
            &format!("k{}", round + 100),
            &format!("renamed{r}"),
        ],
    );
    ok(c, &["SELECT", "7"]);
    ok(c, &["SET", "in7", &r]);
    if round % 3 == 2 {
        ok(c, &["FLUSHDB"]);
    }
    ok(c, &["SELECT", "0"]);
}

/// Pipelined writes from a thread (a write load while the test does other things).
fn write_load(port: u16, password: Option<String>, commands: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = Client::connect(port).unwrap();
        if let Some(p) = password {
            ok(&mut c, &["AUTH", &p]);
        }
        let mut sent = 0;
        while sent < commands {
            let mut out = Vec::new();
            for i in sent..(sent + 200).min(commands) {
                let key = format!("load:{}", i % 997);
                let value = format!("{i}");
                let args: Vec<&str> = match i % 5 {
                    0 => vec!["SET", &key, &value],
                    1 => vec!["INCR", "load:counter"],
                    2 => vec!["RPUSH", "load:list", &value],
                    3 => vec!["HSET", "load:hash", &key, &value],
                    _ => vec!["ZADD", "load:zset", &value, &key],
                };
                support::client::encode(&mut out, &args);
            }
            let n = (sent + 200).min(commands) - sent;
            c.send_raw(&out);
            for _ in 0..n {
                let reply = c.read();
                assert!(!matches!(reply, Resp::Error(_)), "{reply:?}");
            }
            sent += n;
        }
    })
}

/// Waits until the real replica reached `offset` too, then compares the datasets exactly.
fn keeper_matches_a_real_replica(real: &RedisServer, offset: u64, keeper: &KeeperServer) {
    let deadline = Instant::now() + CATCH_UP;
    while info(real.port(), None, "replication")["slave_repl_offset"] != offset.to_string() {
        assert!(
            Instant::now() < deadline,
            "the real replica did not catch up"
        );
        sleep(Duration::from_millis(50));
    }
    let expected = canonical(&replica_view(dump_port(real.port()), false));
    let actual = canonical(&replica_view(dump_port(keeper.port), false));
    if let Err(report) = compare("keeper vs a real Redis replica", &expected, &actual) {
        panic!("{report}");
    }
}

fn keeper_replica(dir: &std::path::Path, primary: u16, extra: &[&str]) -> KeeperServer {
    let port = primary.to_string();
    let mut args = vec!["--save", "", "--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    KeeperServer::start(dir, &args)
}

#[test]
fn full_sync_stream_and_partial_resync_from_real_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = primary(dir.path(), &[]);
    let mut c = Client::connect(redis.port()).unwrap();
    populate(&mut c);
    let kdir = dir.path().join("keeper");
    std::fs::create_dir(&kdir).unwrap();
    let keeper = keeper_replica(&kdir, redis.port(), &[]);
    // A real Redis replica beside it: keeper's data must equal it exactly.
    let rdir = dir.path().join("redis-replica");
    std::fs::create_dir(&rdir).unwrap();
    let port = redis.port().to_string();
    let real = RedisServer::start_with(&rdir, "replica.rdb", &["--replicaof", "127.0.0.1", &port]);

    caught_up(redis.port(), None, &keeper);
    assert_same_data("after the full sync", redis.port(), None, &keeper);
    // The live stream, with a write load beside the test's own writes.
    let load = write_load(redis.port(), None, 20_000);
    for round in 0..6 {
        write_everything(&mut c, round);
    }
    load.join().unwrap();
    let offset = caught_up(redis.port(), None, &keeper);
    assert_same_data("after the stream", redis.port(), None, &keeper);
    keeper_matches_a_real_replica(&real, offset, &keeper);

    // Read-only to clients.
    let mut k = keeper.client();
    assert_eq!(
        k.cmd(&["SET", "x", "1"]),
        Resp::Error("READONLY You can't write against a read only replica.".into())
    );
    ok(&mut k, &["MULTI"]);
    assert_eq!(
        k.cmd(&["INCR", "counter"]),
        Resp::Error("READONLY You can't write against a read only replica.".into())
    );
    assert_eq!(
        k.cmd(&["EXEC"]),
        Resp::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    assert_eq!(
        k.cmd(&["GET", "plain"]),
        c.cmd(&["GET", "plain"]),
        "reads are served"
    );

    // The link broken under write load: the replica comes back with a partial resync.
    let load = write_load(redis.port(), None, 20_000);
    sleep(Duration::from_millis(50));
    assert_eq!(
        ok(&mut c, &["CLIENT", "KILL", "TYPE", "replica"]),
        Resp::Int(2)
    );
    write_everything(&mut c, 6);
    load.join().unwrap();
    caught_up(redis.port(), None, &keeper);
    assert_same_data("after the partial resync", redis.port(), None, &keeper);
    let stats = info(redis.port(), None, "stats");
    assert_eq!(
        (
            stats["sync_full"].as_str(),
            stats["sync_partial_ok"].as_str()
        ),
        ("2", "2"),
        "one full sync each for keeper and the real replica, then a partial resync each: {}",
        keeper.log()
    );
    assert!(
        keeper
            .log()
            .contains("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization."),
        "{}",
        keeper.log()
    );

    // Promotion: a new history, the old one valid up to here; writes accepted.
    let before = info(keeper.port, None, "replication");
    assert_eq!(
        ok(&mut k, &["REPLICAOF", "NO", "ONE"]),
        Resp::Simple("OK".into())
    );
    let after = info(keeper.port, None, "replication");
    assert_eq!(after["role"], "master");
    assert_eq!(after["master_replid2"], before["master_replid"]);
    assert_ne!(after["master_replid"], before["master_replid"]);
    let offset: u64 = before["master_repl_offset"].parse().unwrap();
    assert_eq!(after["second_repl_offset"], (offset + 1).to_string());
    ok(&mut k, &["SET", "x", "1"]);
    assert_eq!(k.cmd(&["GET", "x"]), Resp::bulk("1"));
    // The primary's writes no longer reach it.
    ok(&mut c, &["SET", "after-promotion", "1"]);
    sleep(Duration::from_millis(300));
    assert_eq!(k.cmd(&["EXISTS", "after-promotion"]), Resp::Int(0));
}

#[test]
fn disk_form_and_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let redis = primary(dir.path(), &["--repl-diskless-sync", "no"]);
    let mut c = Client::connect(redis.port()).unwrap();
    // Set after the start: the helper's readiness check pings without a password.
    ok(&mut c, &["CONFIG", "SET", "requirepass", "s3cret"]);
    populate(&mut c);

    // A wrong password: the link stays down and no sync happens.
    let kdir = dir.path().join("keeper");
    std::fs::create_dir(&kdir).unwrap();
    let keeper = keeper_replica(&kdir, redis.port(), &["--masterauth", "nope"]);
    sleep(Duration::from_millis(1500));
    let r = info(keeper.port, None, "replication");
    assert_eq!(r["master_link_status"], "down");
    assert_eq!(keeper.client().cmd(&["DBSIZE"]), Resp::Int(0));
    assert!(
        keeper.log().contains("Unable to AUTH to MASTER"),
        "{}",
        keeper.log()
    );
    // The right one, set at run time, is used at the next attempt.
    ok(
        &mut keeper.client(),
        &["CONFIG", "SET", "masterauth", "s3cret"],
    );
    caught_up(redis.port(), Some("s3cret"), &keeper);
    assert!(
        keeper.log().contains("receiving") && keeper.log().contains("bytes from master"),
        "the $<len> form: {}",
        keeper.log()
    );
    assert_same_data("after the full sync", redis.port(), Some("s3cret"), &keeper);
    for round in 0..3 {
        write_everything(&mut c, round);
    }
    caught_up(redis.port(), Some("s3cret"), &keeper);
    assert_same_data("after the stream", redis.port(), Some("s3cret"), &keeper);
}

/// INFO replication and ROLE of a keeper replica against a real Redis replica of the same
/// primary: the same fields in the same order, the same shapes.
#[test]
fn info_and_role_as_a_real_replica_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let redis = primary(dir.path(), &[]);
    let mut c = Client::connect(redis.port()).unwrap();
    ok(&mut c, &["SET", "a", "1"]);
    let rdir = dir.path().join("redis-replica");
    std::fs::create_dir(&rdir).unwrap();
    let port = redis.port().to_string();
    let real = RedisServer::start_with(&rdir, "replica.rdb", &["--replicaof", "127.0.0.1", &port]);

    // keeper starts as a primary with data of its own, then is pointed at the primary.
    let kdir = dir.path().join("keeper");
    std::fs::create_dir(&kdir).unwrap();
    let keeper = KeeperServer::start(&kdir, &["--save", ""]);
    let mut k = keeper.client();
    ok(&mut k, &["SET", "own", "data"]);
    assert_eq!(
        k.cmd(&["REPLICAOF", "127.0.0.1", "70000"]),
        Resp::Error("ERR Invalid master port".into())
    );
    assert_eq!(
        k.cmd(&["REPLICAOF", "127.0.0.1", "x"]),
        Resp::Error("ERR Invalid master port".into())
    );
    assert_eq!(
        ok(&mut k, &["REPLICAOF", "127.0.0.1", &port]),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        ok(&mut k, &["SLAVEOF", "127.0.0.1", &port]),
        Resp::Simple("OK Already connected to specified master".into())
    );
    caught_up(redis.port(), None, &keeper);
    assert_eq!(
        k.cmd(&["EXISTS", "own"]),
        Resp::Int(0),
        "the sync replaced the data"
    );
    assert_eq!(k.cmd(&["GET", "a"]), Resp::bulk("1"));
    let deadline = Instant::now() + CATCH_UP;
    while info(real.port(), None, "replication")["master_link_status"] != "up" {
        assert!(Instant::now() < deadline, "the real replica did not sync");
        sleep(Duration::from_millis(50));
    }

    let names = |port: u16| -> Vec<String> {
        let mut c = Client::connect(port).unwrap();
        c.cmd(&["INFO", "replication"])
            .text()
            .lines()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
            .collect()
    };
    assert_eq!(names(keeper.port), names(real.port()));
    let r = info(keeper.port, None, "replication");
    for (field, value) in [
        ("role", "slave"),
        ("master_host", "127.0.0.1"),
        ("master_port", port.as_str()),
        ("master_sync_in_progress", "0"),
        ("slave_priority", "100"),
        ("slave_read_only", "1"),
        ("replica_announced", "1"),
    ] {
        assert_eq!(r[field], value, "{field}");
    }

    let role = |port: u16| -> Vec<Resp> {
        let mut c = Client::connect(port).unwrap();
        let reply = c.cmd(&["ROLE"]);
        reply.items().to_vec()
    };
    let offset = caught_up(redis.port(), None, &keeper);
    let keeper_role = role(keeper.port);
    assert_eq!(
        keeper_role,
        [
            Resp::bulk("slave"),
            Resp::bulk("127.0.0.1"),
            Resp::Int(redis.port().into()),
            Resp::bulk("connected"),
            Resp::Int(offset as i64),
        ]
    );
    let real_role = role(real.port());
    assert_eq!(real_role.len(), keeper_role.len());
    assert_eq!(real_role[..4], keeper_role[..4]);

    // A writable replica: its own writes stay local, outside the primary's offsets.
    ok(&mut k, &["CONFIG", "SET", "replica-read-only", "no"]);
    assert_eq!(
        info(keeper.port, None, "replication")["slave_read_only"],
        "0"
    );
    ok(&mut k, &["SET", "local", "1"]);
    ok(&mut c, &["SET", "b", "2"]);
    caught_up(redis.port(), None, &keeper);
    assert_eq!(
        k.cmd(&["MGET", "local", "b"]),
        Resp::Array(vec![Resp::bulk("1"), Resp::bulk("2")])
    );
    ok(&mut k, &["CONFIG", "SET", "replica-read-only", "yes"]);

    // With the primary gone: down, and ROLE's offset is -1 (as Redis shows it).
    drop(redis);
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let r = info(keeper.port, None, "replication");
        if r["master_link_status"] == "down" {
            assert_eq!(r["master_last_io_seconds_ago"], "-1");
            assert!(r.contains_key("master_link_down_since_seconds"));
            break;
        }
        assert!(Instant::now() < deadline);
        sleep(Duration::from_millis(50));
    }
    let keeper_role = role(keeper.port);
    assert_eq!(keeper_role[4], Resp::Int(-1));
    assert!(
        ["connect", "connecting"].contains(&keeper_role[3].text().as_str()),
        "{keeper_role:?}"
    );
    assert_eq!(
        keeper.client().cmd(&["GET", "a"]),
        Resp::bulk("1"),
        "the data stays"
    );
}

/// A key whose TTL passed on the replica is hidden from reads but stays until the
/// primary's `DEL` (the replica does not expire keys itself).
#[test]
fn expired_keys_wait_for_the_primarys_del() {
    let dir = tempfile::tempdir().unwrap();
    let redis = primary(dir.path(), &[]);
    let mut c = Client::connect(redis.port()).unwrap();
    ok(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let kdir = dir.path().join("keeper");
    std::fs::create_dir(&kdir).unwrap();
    let keeper = keeper_replica(&kdir, redis.port(), &[]);
    ok(&mut c, &["SET", "soon", "v", "PX", "300"]);
    ok(&mut c, &["SET", "stays", "v"]);
    caught_up(redis.port(), None, &keeper);
    let mut k = keeper.client();
    assert_eq!(k.cmd(&["GET", "soon"]), Resp::bulk("v"));
    sleep(Duration::from_millis(500));
    assert_eq!(k.cmd(&["GET", "soon"]), Resp::Nil);
    assert_eq!(k.cmd(&["EXISTS", "soon"]), Resp::Int(0));
    assert_eq!(
        k.cmd(&["DBSIZE"]),
        Resp::Int(2),
        "still there until the primary's DEL"
    );
    // The primary finds it expired on access and propagates the DEL.
    assert_eq!(c.cmd(&["GET", "soon"]), Resp::Nil);
    caught_up(redis.port(), None, &keeper);
    assert_eq!(k.cmd(&["DBSIZE"]), Resp::Int(1));
}

/// A keeper replica stopped and started again from its own files (an RDB it saved, or its
/// AOF) resumes with a partial resync.
#[test]
fn a_restarted_replica_resumes_with_a_partial_resync() {
    for (form, extra) in [("rdb", &[][..]), ("aof", &["--appendonly", "yes"][..])] {
        let dir = tempfile::tempdir().unwrap();
        let redis = primary(dir.path(), &[]);
        let mut c = Client::connect(redis.port()).unwrap();
        populate(&mut c);
        let kdir = dir.path().join("keeper");
        std::fs::create_dir(&kdir).unwrap();
        let keeper = keeper_replica(&kdir, redis.port(), extra);
        caught_up(redis.port(), None, &keeper);
        write_everything(&mut c, 0);
        caught_up(redis.port(), None, &keeper);
        if form == "rdb" {
            ok(&mut keeper.client(), &["SAVE"]);
        }
        // Stopped (no save at exit: `save ""`); the primary goes on meanwhile.
        keeper.signal("TERM");
        let mut keeper = keeper;
        keeper.wait_exit();
        drop(keeper);
        write_everything(&mut c, 1);

        let keeper = keeper_replica(&kdir, redis.port(), extra);
        caught_up(redis.port(), None, &keeper);
        assert_same_data(
            &format!("after a restart from the {form}"),
            redis.port(),
            None,
            &keeper,
        );
        let stats = info(redis.port(), None, "stats");
        assert_eq!(
            (
                stats["sync_full"].as_str(),
                stats["sync_partial_ok"].as_str()
            ),
            ("1", "1"),
            "{form}: {}",
            keeper.log()
        );
    }
}

/// A fake primary: answers the handshake of each connection, then plays the next of
/// `payloads` (bytes after `+FULLRESYNC`) and closes — except the last, which stays open.
/// Reports each connection's PSYNC arguments.
fn fake_primary(
    payloads: Vec<Vec<u8>>,
    replid: &'static str,
) -> (u16, std::sync::mpsc::Receiver<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let count = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            // Reads one multibulk command.
            let mut command = || -> Option<Vec<String>> {
                let mut line = String::new();
                reader.read_line(&mut line).ok()?;
                let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
                let mut args = Vec::new();
                for _ in 0..n {
                    line.clear();
                    reader.read_line(&mut line).ok()?;
                    let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
                    let mut arg = vec![0; len + 2];
                    reader.read_exact(&mut arg).ok()?;
                    arg.truncate(len);
                    args.push(String::from_utf8_lossy(&arg).into_owned());
                }
                Some(args)
            };
            while let Some(args) = command() {
                match args[0].to_ascii_uppercase().as_str() {
                    "PING" => writer.write_all(b"+PONG\r\n").unwrap(),
                    // An ACK gets no reply.
                    "REPLCONF" if !args[1].eq_ignore_ascii_case("ack") => {
                        writer.write_all(b"+OK\r\n").unwrap();
                    }
                    "PSYNC" => {
                        let _ = tx.send(args.clone());
                        writer
                            .write_all(format!("+FULLRESYNC {replid} 0\r\n").as_bytes())
                            .unwrap();
                        writer.write_all(&payload).unwrap();
                        if i + 1 < count {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    });
    (port, rx)
}

/// A full sync cut midway, then one whose RDB is damaged: the replica keeps serving its old
/// data and retries; the third, whole, replaces the data.
#[test]
fn a_failed_full_sync_keeps_the_old_data_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), "source.rdb");
    let mut c = Client::connect(redis.port()).unwrap();
    populate(&mut c);
    ok(&mut c, &["SAVE"]);
    let rdb = std::fs::read(dir.path().join("source.rdb")).unwrap();
    let mark = "0123456789abcdef0123456789abcdef01234567";
    let cut = [
        format!("${}\r\n", rdb.len()).into_bytes(),
        rdb[..rdb.len() / 2].to_vec(),
    ]
    .concat();
    let mut damaged = rdb.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0xff;
    let damaged = [
        format!("$EOF:{mark}\r\n").into_bytes(),
        damaged,
        mark.as_bytes().to_vec(),
    ]
    .concat();
    let whole = [format!("${}\r\n", rdb.len()).into_bytes(), rdb.clone()].concat();
    let replid = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (port, psyncs) = fake_primary(vec![cut, damaged, whole], replid);

    let kdir = dir.path().join("keeper");
    std::fs::create_dir(&kdir).unwrap();
    let keeper = KeeperServer::start(&kdir, &["--save", ""]);
    let mut k = keeper.client();
    ok(&mut k, &["SET", "old", "data"]);
    let own = info(keeper.port, None, "replication");
    ok(&mut k, &["REPLICAOF", "127.0.0.1", &port.to_string()]);
    let wait = Duration::from_secs(30);
    let first = psyncs.recv_timeout(wait).unwrap();
    // A demoted primary asks a partial resync from its own position.
    let offset: u64 = own["master_repl_offset"].parse().unwrap();
    assert_eq!(
        first,
        [
            "PSYNC",
            own["master_replid"].as_str(),
            &(offset + 1).to_string()
        ]
    );
    for attempt in 1..3 {
        let next = psyncs.recv_timeout(wait).unwrap();
        assert_eq!(next[0], "PSYNC", "attempt {attempt}");
        if attempt < 2 {
            // Between the failed attempts the old data is served.
            assert_eq!(k.cmd(&["GET", "old"]), Resp::bulk("data"));
        }
    }
    let deadline = Instant::now() + CATCH_UP;
    while info(keeper.port, None, "replication")["master_link_status"] != "up" {
        assert!(Instant::now() < deadline, "{}", keeper.log());
        sleep(Duration::from_millis(50));
    }
    let log = keeper.log();
    assert!(log.contains("connection closed after"), "{log}");
    assert!(
        log.contains("Failed trying to load the MASTER synchronization DB"),
        "{log}"
    );
    assert_eq!(k.cmd(&["EXISTS", "old"]), Resp::Int(0));
    let expected = canonical(&dump_port(redis.port()));
    let actual = canonical(&dump_port(keeper.port));
    if let Err(report) = compare("after the whole sync", &expected, &actual) {
        panic!("{report}");
    }
    let r = info(keeper.port, None, "replication");
    assert_eq!(r["master_replid"], replid);
}
