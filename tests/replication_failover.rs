//! keeper replicating from keeper, and promotion: a primary with two keeper replicas and a
//! real Redis replica; the primary is killed, the replica with the highest offset is
//! promoted (`REPLICAOF NO ONE`), the others are pointed at it and continue with a partial
//! resync (`+CONTINUE`, no second full sync), and every node ends with the same data.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::RedisServer;
use support::client::{Client, KeeperServer, info_fields};

fn info(port: u16, section: &str) -> HashMap<String, String> {
    let mut c = Client::connect(port).expect("connect");
    info_fields(&c.cmd(&["INFO", section]))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The replica on `port` is linked and has applied everything up to `offset`.
fn wait_applied(what: &str, port: u16, offset: u64) {
    wait_until(what, || {
        let fields = info(port, "replication");
        fields.get("master_link_status").map(String::as_str) == Some("up")
            && fields
                .get("slave_repl_offset")
                .and_then(|o| o.parse::<u64>().ok())
                == Some(offset)
    });
}

fn offset(port: u16) -> u64 {
    info(port, "replication")["master_repl_offset"]
        .parse()
        .unwrap()
}

fn sync_counters(port: u16) -> (u64, u64, u64) {
    let stats = info(port, "stats");
    let n = |k: &str| stats[k].parse::<u64>().unwrap();
    (n("sync_full"), n("sync_partial_ok"), n("sync_partial_err"))
}
fn dump(port: u16) -> Vec<String> {
    support::dump_port(port).unwrap_or_else(|e| panic!("{e}"))
}

fn writes(c: &mut Client, round: usize) {
    for i in 0..200 {
        c.cmd(&["SET", &format!("k{round}:{i}"), &format!("v{i}")]);
    }
    c.cmd(&["RPUSH", &format!("l{round}"), "a", "b", "c"]);
    c.cmd(&["HSET", &format!("h{round}"), "f", "v"]);
    c.cmd(&["INCRBYFLOAT", "float", "1.5"]);
    c.cmd(&["SADD", "set", &format!("m{round}")]);
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["MULTI"]);
    c.cmd(&["INCR", "counter"]);
    c.cmd(&["EXPIRE", "counter", "100000"]);
    c.cmd(&["EXEC"]);
    c.cmd(&["SELECT", "0"]);
}

fn keeper_replica_of(dir: &Path, primary: u16) -> KeeperServer {
    std::fs::create_dir_all(dir).unwrap();
    KeeperServer::start(
        dir,
        &[
            "--save",
            "",
            "--replicaof",
            "127.0.0.1",
            &primary.to_string(),
        ],
    )
}

#[test]
fn a_promoted_keeper_replica_serves_the_others_with_partial_resyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let primary_dir = tmp.path().join("primary");
    std::fs::create_dir_all(&primary_dir).unwrap();
    let mut primary = KeeperServer::start(&primary_dir, &["--save", ""]);
    let mut c = primary.client();
    writes(&mut c, 0);

    let a = keeper_replica_of(&tmp.path().join("a"), primary.port);
    let b = keeper_replica_of(&tmp.path().join("b"), primary.port);
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let redis = RedisServer::start_with(
        &redis_dir,
        "dump.rdb",
        &[
            "--save",
            "",
            "--replicaof",
            "127.0.0.1",
            &primary.port.to_string(),
        ],
    );
    writes(&mut c, 1);
    let end = offset(primary.port);
    for (what, port) in [("a", a.port), ("b", b.port), ("redis", redis.port())] {
        wait_applied(what, port, end);
    }
    let data = dump(primary.port);
    for (what, port) in [("a", a.port), ("b", b.port), ("redis", redis.port())] {
        assert_eq!(dump(port), data, "{what} before the failover");
    }
    assert_eq!(sync_counters(primary.port).0, 3, "three full syncs");

    // The primary dies; `a` has everything (all replicas do here) and is promoted.
    primary.kill();
    let old_id = info(a.port, "replication")["master_replid"].clone();
    Client::connect(a.port)
        .unwrap()
        .cmd(&["REPLICAOF", "NO", "ONE"]);
    let promoted = info(a.port, "replication");
    assert_eq!(promoted["role"], "master");
    assert_eq!(promoted["master_replid2"], old_id);
    assert_eq!(promoted["second_repl_offset"], (end + 1).to_string());

    // The others follow it and continue where they were.
    for port in [b.port, redis.port()] {
        Client::connect(port)
            .unwrap()
            .cmd(&["REPLICAOF", "127.0.0.1", &a.port.to_string()]);
    }
    let mut c = a.client();
    writes(&mut c, 2);
    let end = offset(a.port);
    wait_applied("b after the failover", b.port, end);
    wait_applied("redis after the failover", redis.port(), end);
    assert_eq!(
        sync_counters(a.port),
        (0, 2, 0),
        "both replicas continued with a partial resync; nothing was sent in full"
    );
    let data = dump(a.port);
    assert_eq!(dump(b.port), data, "b after the failover");
    assert_eq!(dump(redis.port()), data, "redis after the failover");
}

/// A primary stopped and started again (from its AOF, then from its RDB) on the same port:
/// its replica reconnects and continues with a partial resync, as with Redis 7.
#[test]
fn a_restarted_primary_serves_its_replicas_with_a_partial_resync() {
    let tmp = tempfile::tempdir().unwrap();
    for (what, persistence) in [
        (
            "aof",
            vec!["--appendonly", "yes", "--appendfsync", "always"],
        ),
        ("rdb", vec!["--appendonly", "no"]),
    ] {
        let dir = tmp.path().join(format!("primary-{what}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec!["--save", ""];
        args.extend(persistence.iter().copied());
        let mut primary = KeeperServer::start(&dir, &args);
        let port = primary.port;
        let mut c = primary.client();
        writes(&mut c, 0);
        let replica = keeper_replica_of(&tmp.path().join(format!("replica-{what}")), port);
        writes(&mut c, 1);
        let end = offset(port);
        wait_applied(what, replica.port, end);
        // SHUTDOWN SAVE writes dump.rdb (with its replication position) and closes the AOF.
        c.send(&["SHUTDOWN", "SAVE"]);
        primary.wait_exit();
        let primary = KeeperServer::start_on(&dir, port, &args);
        let restarted = info(port, "replication");
        assert_eq!(restarted["master_repl_offset"], end.to_string(), "{what}");
        assert_eq!(
            restarted["second_repl_offset"],
            (end + 1).to_string(),
            "{what}"
        );
        let mut c = primary.client();
        writes(&mut c, 2);
        let end = offset(port);
        wait_applied(&format!("{what} after the restart"), replica.port, end);
        assert_eq!(
            sync_counters(port),
            (0, 1, 0),
            "{what}: a partial resync\n{:?}\n{}",
            info(port, "replication"),
            primary.log()
        );
        assert_eq!(dump(replica.port), dump(port), "{what}");
    }
}
