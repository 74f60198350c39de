//! `keeper server` driven over TCP: real `redis-cli`, `redis-benchmark`, `redis-check-rdb`
//! and real `redis-server` (to seed and to load datasets), plus a tiny RESP client
//! (`support::client`) for protocol-level checks.
//!
//! Data written before the server starts comes from real Redis (a `dump.rdb` it saved), so
//! these tests hold whatever data commands the build has.
//!
//! The node's files go through `keeper::storage::from_env()`: with `KEEPER_STORAGE=scrambled`
//! they are transformed on disk, so seeding and reading them back go through the same
//! storage, and handing them to real Redis tools is skipped ([`support::plain_files`]).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keeper::Storage;
use keeper::snapshot::{self, ExpiredKeys, LoadOutcome};
use keeper::store::{Store, Value};
use support::client::{Client, KeeperServer, Resp, info_fields};
use support::{RedisServer, canonical, keeper, lines, plain_files, redis_check_rdb};

/// The storage the node under test uses (see the module docs).
fn node_storage() -> Arc<dyn Storage> {
    keeper::storage::from_env().expect("KEEPER_STORAGE")
}

/// A `dump.rdb` written by real Redis with every value type, a TTL and two databases,
/// placed in `dir` through the node's storage.
fn seed_dump(dir: &Path) -> PathBuf {
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port().to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    cli(&["set", "greeting", "hello"]);
    cli(&["set", "counter", "42"]);
    cli(&["set", "session", "abc", "ex", "100000"]);
    cli(&["rpush", "list", "a", "b", "c"]);
    cli(&["hset", "hash", "f1", "v1", "f2", "v2"]);
    cli(&["sadd", "set", "x", "y"]);
    cli(&["zadd", "zset", "1.5", "m1", "2", "m2"]);
    cli(&["-n", "3", "set", "in-db-3", "three"]);
    cli(&["save"]);
    let target = dir.join("dump.rdb");
    let bytes = std::fs::read(redis_dir.path().join("dump.rdb")).unwrap();
    keeper::storage::publish_atomically(&*node_storage(), &target, |f| f.write_all(&bytes))
        .unwrap();
    target
}

/// The dataset of a node's RDB file in canonical JSON lines (via `keeper inspect`, which
/// reads plain files: the file is read through the node's storage first).
fn dataset(path: &Path) -> Vec<String> {
    let plain = tempfile::tempdir().unwrap();
    let plain_path = plain.path().join("dump.rdb");
    std::fs::write(&plain_path, &*node_storage().read_all(path).unwrap()).unwrap();
    let out = keeper()
        .args(["inspect", "--format", "json"])
        .arg(&plain_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    canonical(&lines(&out.stdout))
}

/// True when the server knows `command` (data commands arrive family by family).
fn has_command(client: &mut Client, command: &str) -> bool {
    client.cmd(&["COMMAND", "INFO", command]).items()[0] != Resp::Nil
}

fn wait_for_bgsave(client: &mut Client) -> std::collections::HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = info_fields(&client.cmd(&["INFO", "persistence"]));
        if info["rdb_bgsave_in_progress"] == "0" {
            return info;
        }
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok() -> Resp {
    Resp::Simple("OK".into())
}

#[test]
fn redis_cli_talks_to_keeper() {
    let dir = tempfile::tempdir().unwrap();
    seed_dump(dir.path());
    let server = KeeperServer::start(dir.path(), &[]);
    assert_eq!(server.cli(&["ping"]).trim(), "PONG");
    assert_eq!(server.cli(&["get", "greeting"]).trim(), "hello");
    assert_eq!(server.cli(&["--no-raw", "get", "missing"]).trim(), "(nil)");
    assert_eq!(server.cli(&["-n", "3", "get", "in-db-3"]).trim(), "three");
    assert_eq!(
        server
            .cli(&["--no-raw", "nosuch", "a"])
            .trim_end_matches('\n'),
        "(error) ERR unknown command 'nosuch', with args beginning with: 'a' "
    );
    let hello = server.cli(&["-3", "hello", "3"]);
    assert!(hello.contains("proto") && hello.contains('3'), "{hello}");
    // A whole transaction in one redis-cli session.
    let out = server.cli_stdin(&[], "MULTI\nPING\nGET greeting\nEXEC\n");
    assert_eq!(
        lines(out.as_bytes()),
        ["OK", "QUEUED", "QUEUED", "PONG", "hello"]
    );
    assert!(
        server
            .cli(&["command", "count"])
            .trim()
            .parse::<u32>()
            .unwrap()
            > 20
    );
    assert_eq!(server.cli(&["dbsize"]).trim(), "7");
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &[]);
    let mut client = server.client();
    let mut batch = Vec::new();
    for i in 0..100 {
        support::client::encode(&mut batch, &["ECHO", &format!("m{i}")]);
    }
    batch.extend_from_slice(b"PING\r\n"); // inline, in the same write
    client.send_raw(&batch);
    for i in 0..100 {
        assert_eq!(client.read(), Resp::bulk(&format!("m{i}")));
    }
    assert_eq!(client.read(), Resp::Simple("PONG".into()));
    // A command split across writes.
    client.send_raw(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel");
    std::thread::sleep(Duration::from_millis(50));
    client.send_raw(b"lo\r\n");
    assert_eq!(client.read(), Resp::bulk("hello"));
}

#[test]
fn protocol_errors_reply_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &[]);
    for (input, error) in [
        (
            &b"*1\r\n$x\r\n"[..],
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*3000000000\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"*1\r\nfoo\r\n",
            "ERR Protocol error: expected '$', got 'f'",
        ),
        (
            b"ECHO \"a\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
    ] {
        let mut client = server.client();
        client.send_raw(input);
        assert_eq!(client.read(), Resp::Error(error.into()));
        assert!(client.is_closed());
    }
}

#[test]
fn auth_and_hello() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &["--requirepass", "s3cret"]);
    let mut client = server.client();
    assert_eq!(
        client.cmd(&["PING"]).error(),
        "NOAUTH Authentication required."
    );
    // Unknown commands and arity errors come before the authentication check, as in Redis.
    assert!(
        client
            .cmd(&["NOSUCH"])
            .error()
            .starts_with("ERR unknown command")
    );
    assert_eq!(
        client.cmd(&["AUTH", "wrong"]).error(),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert!(
        client
            .cmd(&["HELLO", "3"])
            .error()
            .starts_with("NOAUTH HELLO must be called")
    );
    assert_eq!(client.cmd(&["AUTH", "s3cret"]), ok());
    assert_eq!(client.cmd(&["PING"]), Resp::Simple("PONG".into()));

    // HELLO 3 AUTH … SETNAME … switches to RESP3 and answers a map.
    let mut resp3 = server.client();
    let Resp::Map(hello) = resp3.cmd(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "me"])
    else {
        panic!("HELLO 3 must answer a map");
    };
    let keys: Vec<String> = hello.iter().map(|(k, _)| k.text()).collect();
    assert_eq!(
        keys,
        [
            "server", "version", "proto", "id", "mode", "role", "modules"
        ]
    );
    assert_eq!(hello[2].1, Resp::Int(3));
    assert_eq!(resp3.cmd(&["GET", "missing"]), Resp::Nil);
    assert_eq!(resp3.cmd(&["CLIENT", "GETNAME"]), Resp::bulk("me"));
    assert_eq!(
        resp3.cmd(&["HELLO", "4"]).error(),
        "NOPROTO unsupported protocol version"
    );

    // Before AUTH, big requests are refused outright.
    let mut big = server.client();
    big.send_raw(b"*20\r\n");
    assert_eq!(
        big.read().error(),
        "ERR Protocol error: unauthenticated multibulk length"
    );
    assert!(big.is_closed());

    let open_dir = tempfile::tempdir().unwrap();
    let open = KeeperServer::start(open_dir.path(), &[]);
    assert_eq!(
        open.client().cmd(&["AUTH", "x"]).error(),
        "ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?"
    );
}

#[test]
fn transactions_match_redis() {
    let dir = tempfile::tempdir().unwrap();
    seed_dump(dir.path());
    let server = KeeperServer::start(dir.path(), &[]);
    let mut c = server.client();
    assert_eq!(c.cmd(&["EXEC"]).error(), "ERR EXEC without MULTI");
    assert_eq!(c.cmd(&["DISCARD"]).error(), "ERR DISCARD without MULTI");
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(
        c.cmd(&["MULTI"]).error(),
        "ERR MULTI calls can not be nested"
    );
    assert_eq!(c.cmd(&["GET", "greeting"]), Resp::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["ECHO", "x"]), Resp::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd(&["EXEC"]),
        Resp::Array(vec![Resp::bulk("hello"), Resp::bulk("x")])
    );
    // DISCARD drops the queue.
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["DISCARD"]), ok());
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    // An unknown command or an arity error while queuing aborts EXEC.
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert!(
        c.cmd(&["GET"])
            .error()
            .starts_with("ERR wrong number of arguments")
    );
    assert!(
        c.cmd(&["NOSUCH"])
            .error()
            .starts_with("ERR unknown command")
    );
    assert_eq!(
        c.cmd(&["EXEC"]).error(),
        "EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(
        c.cmd(&["WATCH", "x"]).error(),
        "ERR WATCH inside MULTI is not allowed"
    );
    assert_eq!(c.cmd(&["DISCARD"]), ok());

    // WATCH: a write by another client makes EXEC fail (needs a write command).
    if has_command(&mut c, "set") {
        let mut other = server.client();
        assert_eq!(c.cmd(&["WATCH", "greeting"]), ok());
        assert_eq!(other.cmd(&["SET", "greeting", "changed"]), ok());
        assert_eq!(c.cmd(&["MULTI"]), ok());
        c.cmd(&["GET", "greeting"]);
        assert_eq!(c.cmd(&["EXEC"]), Resp::Nil);
        assert_eq!(c.cmd(&["WATCH", "greeting"]), ok());
        assert_eq!(c.cmd(&["MULTI"]), ok());
        c.cmd(&["GET", "greeting"]);
        assert_eq!(c.cmd(&["EXEC"]), Resp::Array(vec![Resp::bulk("changed")]));
    } else {
        eprintln!("SET not built in: WATCH conflict check skipped");
    }
}

#[test]
fn pubsub_between_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &[]);
    let mut sub = server.client();
    let mut publisher = server.client();
    let push = |items: &[Resp]| Resp::Array(items.to_vec());
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "news"]),
        push(&[Resp::bulk("subscribe"), Resp::bulk("news"), Resp::Int(1)])
    );
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "n*"]),
        push(&[Resp::bulk("psubscribe"), Resp::bulk("n*"), Resp::Int(2)])
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "hi"]), Resp::Int(2));
    assert_eq!(
        publisher.cmd(&["PUBLISH", "nothing-here", "x"]),
        Resp::Int(1)
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "other", "x"]), Resp::Int(0));
    assert_eq!(
        sub.read(),
        push(&[Resp::bulk("message"), Resp::bulk("news"), Resp::bulk("hi")])
    );
    assert_eq!(
        sub.read(),
        push(&[
            Resp::bulk("pmessage"),
            Resp::bulk("n*"),
            Resp::bulk("news"),
            Resp::bulk("hi")
        ])
    );
    assert_eq!(sub.read().items()[2], Resp::bulk("nothing-here"));
    // RESP2 subscribed context.
    assert_eq!(
        sub.cmd(&["GET", "x"]).error(),
        "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET \
         are allowed in this context"
    );
    assert_eq!(
        sub.cmd(&["PING"]),
        push(&[Resp::bulk("pong"), Resp::bulk("")])
    );
    assert_eq!(
        sub.cmd(&["UNSUBSCRIBE"]),
        push(&[Resp::bulk("unsubscribe"), Resp::bulk("news"), Resp::Int(1)])
    );
    assert_eq!(
        sub.cmd(&["PUNSUBSCRIBE"]),
        push(&[Resp::bulk("punsubscribe"), Resp::bulk("n*"), Resp::Int(0)])
    );
    assert_eq!(
        sub.cmd(&["UNSUBSCRIBE"]),
        push(&[Resp::bulk("unsubscribe"), Resp::Nil, Resp::Int(0)])
    );
    assert_eq!(sub.cmd(&["GET", "x"]), Resp::Nil);

    // RESP3: pushes, and a client's own message comes before its PUBLISH reply.
    let mut r3 = server.client();
    r3.cmd(&["HELLO", "3"]);
    assert_eq!(
        r3.cmd(&["SUBSCRIBE", "me"]),
        Resp::Push(vec![
            Resp::bulk("subscribe"),
            Resp::bulk("me"),
            Resp::Int(1)
        ])
    );
    assert_eq!(
        r3.cmd(&["PUBLISH", "me", "self"]),
        Resp::Push(vec![
            Resp::bulk("message"),
            Resp::bulk("me"),
            Resp::bulk("self")
        ])
    );
    assert_eq!(r3.read(), Resp::Int(1));
    assert_eq!(
        r3.cmd(&["GET", "x"]),
        Resp::Nil,
        "RESP3 allows commands while subscribed"
    );
}

#[test]
fn info_has_redis_sections_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    seed_dump(dir.path());
    let server = KeeperServer::start(dir.path(), &[]);
    let mut c = server.client();
    let info = c.cmd(&["INFO"]).text();
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# Keyspace",
    ] {
        assert!(info.contains(section), "missing {section}");
    }
    let fields = info_fields(&c.cmd(&["INFO"]));
    assert_eq!(fields["redis_version"], "7.0.15");
    assert_eq!(fields["keeper_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(fields["tcp_port"], server.port.to_string());
    assert_eq!(fields["role"], "master");
    assert_eq!(fields["master_replid"].len(), 40);
    assert_eq!(fields["db0"], "keys=7,expires=1,avg_ttl=0");
    assert_eq!(fields["db3"], "keys=1,expires=0,avg_ttl=0");
    assert_eq!(fields["rdb_last_load_keys_loaded"], "8");
    assert!(fields["used_memory"].parse::<u64>().unwrap() > 0);
    assert!(fields["connected_clients"].parse::<u64>().unwrap() >= 1);
    for field in [
        "uptime_in_seconds",
        "master_repl_offset",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "rdb_changes_since_last_save",
        "rdb_bgsave_in_progress",
        "rdb_last_save_time",
        "rdb_last_bgsave_status",
        "rdb_last_bgsave_time_sec",
    ] {
        assert!(fields.contains_key(field), "missing {field}");
    }
    // One section only.
    let server_only = c.cmd(&["INFO", "server"]).text();
    assert!(server_only.starts_with("# Server") && !server_only.contains("# Keyspace"));
}

#[test]
fn config_get_set_and_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &["--save", "900 1", "--hz", "20"]);
    let mut c = server.client();
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]),
        Resp::Array(vec![Resp::bulk("save"), Resp::bulk("900 1")])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "hz"]),
        Resp::Array(vec![Resp::bulk("hz"), Resp::bulk("20")])
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "save", "60 5 10 100"]), ok());
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]).items()[1],
        Resp::bulk("60 5 10 100")
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "nosuch", "1"]).error(),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "save"]).error(),
        "ERR wrong number of arguments for 'config|set' command"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "FOO"]).error(),
        "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
    );
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), ok());
    // COMMAND INFO in Redis 7's ten-field shape.
    let info = c.cmd(&["COMMAND", "INFO", "get", "nosuch"]);
    assert_eq!(info.items()[0].items()[0], Resp::bulk("get"));
    assert_eq!(info.items()[0].items().len(), 10);
    assert_eq!(info.items()[1], Resp::Nil);
    assert!(matches!(c.cmd(&["COMMAND"]), Resp::Array(ref v) if v.len() > 20));
}

#[test]
fn shutdown_save_then_restart_brings_the_data_back() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = dataset(&seed_dump(dir.path()));
    let mut server = KeeperServer::start(dir.path(), &["--save", ""]);
    // Redis 7.0's lines.
    let log = server.log();
    assert!(
        log.contains("Done loading RDB, keys loaded: 8, keys expired: 0."),
        "{log}"
    );
    assert!(log.contains("DB loaded from disk: "), "{log}");
    std::fs::remove_file(dir.path().join("dump.rdb")).unwrap();
    let mut c = server.client();
    c.send(&["SHUTDOWN", "SAVE"]);
    assert!(
        c.is_closed(),
        "SHUTDOWN closes the connection without a reply"
    );
    assert!(server.wait_exit().success());
    let path = dir.path().join("dump.rdb");
    assert_eq!(
        dataset(&path),
        seeded,
        "SHUTDOWN SAVE wrote the whole dataset"
    );

    let server = KeeperServer::start(dir.path(), &[]);
    let mut c = server.client();
    assert_eq!(c.cmd(&["GET", "greeting"]), Resp::bulk("hello"));
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(7));
}

#[test]
fn sigterm_saves_when_save_points_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = dataset(&seed_dump(dir.path()));
    let mut server = KeeperServer::start(dir.path(), &["--save", "3600 1"]);
    std::fs::remove_file(dir.path().join("dump.rdb")).unwrap();
    server.signal("TERM");
    assert!(server.wait_exit().success());
    assert!(
        server.log().contains("Saving the final RDB snapshot"),
        "{}",
        server.log()
    );
    assert_eq!(dataset(&dir.path().join("dump.rdb")), seeded);

    // Without save points SIGTERM does not write.
    let mut server = KeeperServer::start(dir.path(), &["--save", ""]);
    std::fs::remove_file(dir.path().join("dump.rdb")).unwrap();
    server.signal("TERM");
    assert!(server.wait_exit().success());
    assert!(!dir.path().join("dump.rdb").exists());
}

#[test]
fn sigkill_leaves_the_last_saved_state() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = dataset(&seed_dump(dir.path()));
    let server = KeeperServer::start(dir.path(), &[]);
    let mut c = server.client();
    assert_eq!(c.cmd(&["SAVE"]), ok());
    let wrote_after_save = has_command(&mut c, "set");
    if wrote_after_save {
        assert_eq!(c.cmd(&["SET", "unsaved", "1"]), ok());
    }
    server.signal("KILL");
    drop(server);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".log"))
        .collect();
    assert_eq!(files, ["dump.rdb"], "no temp file left behind");
    assert_eq!(dataset(&dir.path().join("dump.rdb")), seeded);
    let server = KeeperServer::start(dir.path(), &[]);
    let mut c = server.client();
    assert_eq!(c.cmd(&["GET", "greeting"]), Resp::bulk("hello"));
    if wrote_after_save {
        assert_eq!(c.cmd(&["GET", "unsaved"]), Resp::Nil);
    }
}

#[test]
fn bgsave_writes_a_file_redis_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = dataset(&seed_dump(dir.path()));
    let server = KeeperServer::start(dir.path(), &[]);
    std::fs::remove_file(dir.path().join("dump.rdb")).unwrap();
    let mut c = server.client();
    assert_eq!(
        c.cmd(&["BGSAVE"]),
        Resp::Simple("Background saving started".into())
    );
    let info = wait_for_bgsave(&mut c);
    assert_eq!(info["rdb_last_bgsave_status"], "ok");
    assert_eq!(info["rdb_changes_since_last_save"], "0");
    let path = dir.path().join("dump.rdb");
    assert_eq!(dataset(&path), seeded);
    assert_eq!(c.cmd(&["BGSAVE", "NOW"]).error(), "ERR syntax error");
    let lastsave = match c.cmd(&["LASTSAVE"]) {
        Resp::Int(t) => t,
        other => panic!("{other:?}"),
    };
    assert!((lastsave - support::now_ms() / 1000).abs() < 60);
    assert_eq!(info["rdb_saves"], "1");
    assert!(info.contains_key("keeper_snapshot_peak_extra_bytes"));

    if !plain_files() {
        eprintln!("KEEPER_STORAGE=scrambled: redis-check-rdb and redis-server checks skipped");
        return;
    }
    let (accepted, report) = redis_check_rdb(&path);
    assert!(accepted, "redis-check-rdb refused keeper's file:\n{report}");
    // Real Redis loads it with the same data.
    let redis_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&path, redis_dir.path().join("dump.rdb")).unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    assert_eq!(canonical(&redis.dump()), seeded);
}

#[test]
fn failed_bgsave_refuses_writes_with_misconf() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &["--save", "3600 1"]);
    // A directory where the file must go makes the final rename fail.
    std::fs::create_dir(dir.path().join("dump.rdb")).unwrap();
    let mut c = server.client();
    assert_eq!(c.cmd(&["SAVE"]).error(), "ERR");
    c.cmd(&["BGSAVE"]);
    assert_eq!(wait_for_bgsave(&mut c)["rdb_last_bgsave_status"], "err");
    // PING counts as a write for MISCONF, as in Redis 7.0; reads still work.
    assert!(
        c.cmd(&["PING"])
            .error()
            .starts_with("MISCONF Redis is configured to save RDB")
    );
    assert_eq!(c.cmd(&["GET", "x"]), Resp::Nil);
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"]),
        ok()
    );
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"]),
        ok()
    );
    std::fs::remove_dir(dir.path().join("dump.rdb")).unwrap();
    assert_eq!(c.cmd(&["SAVE"]), ok());
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

#[test]
fn bad_options_and_corrupt_dump_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = keeper()
        .args(["server", "--port", "0", "--no-such-option", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-option: unknown option"));

    let path = seed_dump(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes.truncate(at);
    std::fs::write(&path, &bytes).unwrap();
    let out = keeper()
        .args(["server", "--port", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dump.rdb: offset "),
        "the error names the file and offset: {stderr}"
    );
}

#[test]
fn config_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keeper.conf");
    std::fs::write(&conf, "# test\nrequirepass fromfile\nsave \"\"\nhz 50\n").unwrap();
    let server = KeeperServer::start(dir.path(), &["--config", conf.to_str().unwrap()]);
    let mut c = server.client();
    assert!(c.cmd(&["PING"]).error().starts_with("NOAUTH"));
    assert_eq!(c.cmd(&["AUTH", "fromfile"]), ok());
    assert_eq!(c.cmd(&["CONFIG", "GET", "hz"]).items()[1], Resp::bulk("50"));
    let info = info_fields(&c.cmd(&["INFO", "server"]));
    assert_eq!(info["config_file"], conf.to_str().unwrap());
}

/// `redis-benchmark`'s default test suite (`-q`, 50 clients), with and without `-P 16`, runs
/// with no errors and gives a result for every test in it.
#[test]
fn redis_benchmark_default_suite_runs_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &[]);
    const SUITE: &[&str] = &[
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LPUSH (needed to benchmark LRANGE)",
        "LRANGE_100 (first 100 elements)",
        "LRANGE_300 (first 300 elements)",
        "LRANGE_500 (first 500 elements)",
        "LRANGE_600 (first 600 elements)",
        "MSET (10 keys)",
    ];
    for pipeline in ["1", "16"] {
        let out = std::process::Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args(["-q", "-c", "50", "-n", "2000", "-P", pipeline])
            .output()
            .expect("cannot run redis-benchmark (install redis-tools)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "-P {pipeline}: {text}");
        assert!(
            !text.contains("ERR") && !text.contains("rror"),
            "-P {pipeline}: {text}"
        );
        for name in SUITE {
            assert!(
                text.split(['\r', '\n'])
                    .any(|l| l.starts_with(&format!("{name}: "))
                        && l.contains("requests per second")),
                "-P {pipeline}: no result for {name}:\n{text}"
            );
        }
    }
}

/// Writes move `master_repl_offset` by exactly the bytes Redis would propagate: a
/// transaction of two writes is one `MULTI … EXEC` block, a transaction of one is bare.
#[test]
fn propagation_offset_counts_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &["--save", ""]);
    let mut c = server.client();
    if !has_command(&mut c, "set") {
        eprintln!("SET not built in: propagation offsets checked by engine unit tests only");
        return;
    }
    let offset = |c: &mut Client| -> u64 {
        info_fields(&c.cmd(&["INFO", "replication"]))["master_repl_offset"]
            .parse()
            .unwrap()
    };
    let select = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n".len() as u64;
    let set = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n".len() as u64;
    let multi = b"*1\r\n$5\r\nMULTI\r\n".len() as u64;
    let exec = b"*1\r\n$4\r\nEXEC\r\n".len() as u64;
    assert_eq!(offset(&mut c), 0);
    for cmd in ["MULTI", "SET a 1", "SET b 2", "EXEC"] {
        c.cmd(&cmd.split(' ').collect::<Vec<_>>());
    }
    assert_eq!(offset(&mut c), select + multi + 2 * set + exec);
    for cmd in ["MULTI", "SET c 3", "GET a", "EXEC"] {
        c.cmd(&cmd.split(' ').collect::<Vec<_>>());
    }
    assert_eq!(offset(&mut c), select + multi + 3 * set + exec);
    c.cmd(&["GET", "a"]);
    assert_eq!(
        offset(&mut c),
        select + multi + 3 * set + exec,
        "reads propagate nothing"
    );
}

/// The RDB file's keys, loaded with keeper's own loader through the node's storage.
fn load_store(path: &Path) -> Store {
    let mut store = Store::new(16);
    match snapshot::load_rdb(&*node_storage(), path, &mut store, ExpiredKeys::Keep) {
        Ok(LoadOutcome::Loaded(_)) => store,
        other => panic!("{}: {other:?}", path.display()),
    }
}

/// Point in time at node level: while clients keep running `MULTI; INCR counter:i; RPUSH
/// log:i n; EXEC`, several BGSAVEs each write a file in which every counter equals the length
/// of its log (and the log is 1..=counter): each file holds one moment between two
/// transactions, never half of one.
#[test]
fn bgsave_files_hold_one_moment_while_transactions_run() {
    const WRITERS: usize = 4;
    const FILLER_KEYS: usize = 20_000;
    const ROUNDS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &["--save", ""]);
    let mut c = server.client();
    // Filler, so that each save takes a while and transactions land while it writes.
    let mut batch = Vec::new();
    for chunk in 0..FILLER_KEYS / 100 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..100 {
            args.push(format!("filler:{chunk}:{i}"));
            args.push(format!("{:0>100}", chunk * 100 + i));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::client::encode(&mut batch, &args);
    }
    c.send_raw(&batch);
    for _ in 0..FILLER_KEYS / 100 {
        assert_eq!(c.read(), ok());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let mut client = server.client();
            std::thread::spawn(move || {
                let (counter, log) = (format!("counter:{i}"), format!("log:{i}"));
                let mut n: i64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let mut tx = Vec::new();
                    support::client::encode(&mut tx, &["MULTI"]);
                    support::client::encode(&mut tx, &["INCR", &counter]);
                    support::client::encode(&mut tx, &["RPUSH", &log, &n.to_string()]);
                    support::client::encode(&mut tx, &["EXEC"]);
                    client.send_raw(&tx);
                    assert_eq!(client.read(), ok());
                    assert_eq!(client.read(), Resp::Simple("QUEUED".into()));
                    assert_eq!(client.read(), Resp::Simple("QUEUED".into()));
                    assert_eq!(client.read(), Resp::Array(vec![Resp::Int(n), Resp::Int(n)]));
                }
                n
            })
        })
        .collect();

    let mut files = Vec::new();
    let mut writes_during_a_save = false;
    for round in 0..ROUNDS {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            c.cmd(&["BGSAVE"]),
            Resp::Simple("Background saving started".into())
        );
        let info = wait_for_bgsave(&mut c);
        assert_eq!(info["rdb_last_bgsave_status"], "ok");
        // Changes made after the snapshot stay counted as unsaved.
        writes_during_a_save |= info["rdb_changes_since_last_save"] != "0";
        let copy = dir.path().join(format!("dump-{round}.rdb"));
        // A byte copy: a scrambled file's transform depends on offsets only.
        std::fs::copy(dir.path().join("dump.rdb"), &copy).unwrap();
        files.push(copy);
    }
    stop.store(true, Ordering::Relaxed);
    let done: Vec<i64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        writes_during_a_save,
        "no transaction ran while a save was written"
    );

    let mut previous_total = 0;
    for path in &files {
        let mut store = load_store(path);
        let mut total = 0;
        // Writers that had written before this snapshot hold two keys (counter and log).
        let mut started = 0;
        for (i, &last) in done.iter().enumerate() {
            let counter = match store.get(0, format!("counter:{i}").as_bytes(), 0) {
                Some(item) => match &item.value {
                    Value::String(s) => std::str::from_utf8(s).unwrap().parse::<i64>().unwrap(),
                    other => panic!("counter:{i} is {other:?}"),
                },
                None => 0,
            };
            let log: Vec<i64> = match store.get(0, format!("log:{i}").as_bytes(), 0) {
                Some(item) => match &item.value {
                    Value::List(items) => items
                        .iter()
                        .map(|b| std::str::from_utf8(b).unwrap().parse().unwrap())
                        .collect(),
                    other => panic!("log:{i} is {other:?}"),
                },
                None => Vec::new(),
            };
            assert_eq!(
                log,
                (1..=counter).collect::<Vec<_>>(),
                "{}: counter:{i} is {counter} but log:{i} has {} entries",
                path.display(),
                log.len()
            );
            assert!(counter <= last);
            total += counter;
            started += usize::from(counter > 0);
        }
        assert_eq!(store.db(0).len(), FILLER_KEYS + 2 * started);
        assert!(
            total >= previous_total,
            "{}: time went back",
            path.display()
        );
        previous_total = total;
        if plain_files() {
            let (accepted, report) = redis_check_rdb(path);
            assert!(accepted, "{report}");
        }
    }
    assert!(previous_total > 0, "the writers wrote before the last save");
}

/// FLUSHALL with save points saves the empty dataset at once, as Redis 7.0's
/// `flushAllDataAndResetRDB` does: a restart does not bring the keys back, and the counters
/// move as in a real redis-server given the same commands.
#[test]
fn flushall_with_save_points_saves_like_redis() {
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let mut real = Client::connect(redis.port()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed_dump(dir.path());
    let server = KeeperServer::start(dir.path(), &["--save", "3600 1"]);
    let mut ours = server.client();
    let fields = [
        "rdb_changes_since_last_save",
        "rdb_saves",
        "rdb_last_bgsave_status",
    ];
    let persistence = |c: &mut Client| {
        let info = info_fields(&c.cmd(&["INFO", "persistence"]));
        fields.map(|f| info[f].clone())
    };
    for c in [&mut real, &mut ours] {
        assert_eq!(c.cmd(&["CONFIG", "SET", "save", "3600 1"]), ok());
        assert_eq!(c.cmd(&["SET", "a", "1"]), ok());
        assert_eq!(c.cmd(&["SET", "b", "2"]), ok());
        assert_eq!(c.cmd(&["FLUSHALL"]), ok());
    }
    assert_eq!(persistence(&mut ours), persistence(&mut real));
    assert_eq!(persistence(&mut ours)[0], "0");
    assert!(dataset(&dir.path().join("dump.rdb")).is_empty());
    assert_eq!(ours.cmd(&["SET", "c", "3"]), ok());
    drop(server);
    let server = KeeperServer::start(dir.path(), &[]);
    assert_eq!(server.client().cmd(&["DBSIZE"]), Resp::Int(0));

    // Without save points, FLUSHALL writes nothing.
    let empty = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(empty.path(), &["--save", ""]);
    let mut c = server.client();
    assert_eq!(c.cmd(&["SET", "a", "1"]), ok());
    assert_eq!(c.cmd(&["FLUSHALL"]), ok());
    assert_eq!(
        info_fields(&c.cmd(&["INFO", "persistence"]))["rdb_changes_since_last_save"],
        "2"
    );
    assert!(!empty.path().join("dump.rdb").exists());
}

/// INFO persistence lists Redis 7.0.15's fields in its order (as a live redis-server shows
/// them), with keeper's `keeper_snapshot_peak_extra_bytes` after the RDB fields.
#[test]
fn info_persistence_has_redis_fields_in_order() {
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &[]);
    let names = |c: &mut Client| -> Vec<String> {
        c.cmd(&["INFO", "persistence"])
            .text()
            .lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect()
    };
    let real = names(&mut Client::connect(redis.port()).unwrap());
    let mut ours = names(&mut server.client());
    let at = ours
        .iter()
        .position(|n| n == "keeper_snapshot_peak_extra_bytes")
        .expect("keeper_snapshot_peak_extra_bytes");
    assert_eq!(ours[at - 1], "rdb_last_load_keys_loaded");
    ours.remove(at);
    assert_eq!(ours, real);
}

/// `name`'s value in the environment of process `pid`.
fn environ_var(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|&b| b == 0)
        .filter_map(|pair| std::str::from_utf8(pair).ok()?.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// `AnonHugePages` of process `pid`, in kB.
fn anon_huge_pages_kb(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn malloc_heap_goes_on_huge_pages_where_the_system_leaves_it_to_programs() {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let theirs = std::env::var("GLIBC_TUNABLES").ok();
    let tmp = tempfile::tempdir().unwrap();

    let on = KeeperServer::start(tmp.path(), &["--save", ""]);
    let mut c = on.client();
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "malloc-huge-pages"]),
        Resp::Array(vec![
            Resp::Bulk(b"malloc-huge-pages".to_vec()),
            Resp::Bulk(b"yes".to_vec())
        ])
    );
    if !thp.contains("[madvise]") || theirs.as_deref().is_some_and(|t| t.contains("hugetlb")) {
        eprintln!("transparent huge pages {thp:?}, GLIBC_TUNABLES {theirs:?}: nothing to check");
        return;
    }
    // The restart kept the pid (the harness checked INFO's process_id against the child's).
    let tunables = environ_var(on.pid(), "GLIBC_TUNABLES").expect("GLIBC_TUNABLES set");
    assert!(tunables.ends_with("glibc.malloc.hugetlb=1"), "{tunables}");
    assert!(
        on.log().contains("malloc's heap on transparent huge pages"),
        "{}",
        on.log()
    );
    // 64 MB of values: the heap grows in huge pages.
    let value = "v".repeat(1024);
    for batch in 0..64 {
        let mut out = Vec::new();
        for i in 0..1024 {
            let key = format!("key:{batch}:{i}");
            support::client::encode(&mut out, &["SET", &key, &value]);
        }
        c.send_raw(&out);
        for _ in 0..1024 {
            assert_eq!(c.read(), ok());
        }
    }
    assert!(
        anon_huge_pages_kb(on.pid()) >= 2048,
        "no huge page in the heap"
    );

    let off_dir = tmp.path().join("off");
    std::fs::create_dir_all(&off_dir).unwrap();
    let off = KeeperServer::start(&off_dir, &["--save", "", "--malloc-huge-pages", "no"]);
    assert_eq!(environ_var(off.pid(), "GLIBC_TUNABLES"), theirs);
    assert!(!off.log().contains("huge pages"), "{}", off.log());
}
