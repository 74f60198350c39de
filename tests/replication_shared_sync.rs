//! Replicas that ask for a full sync at the same time share one snapshot of a `keeper server`
//! primary (Redis 7.0's `repl-diskless-sync-delay` / `repl-diskless-sync-max-replicas`, and
//! attaching to the RDB of a disk-based sync being written): two keeper replicas and a real
//! `redis-server` 7.0.15 replica, data identical key by key, the primary's INFO and log show
//! how many snapshots served them.

mod support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use support::client::{Client, KeeperServer, Resp, encode, info};
use support::{RedisServer, canonical, compare, dump_port};

/// Longest wait for replicas to catch up (generous: this only stops a hung test).
const CATCH_UP: Duration = Duration::from_secs(90);

fn ok(c: &mut Client, args: &[&str]) {
    let reply = c.cmd(args);
    assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
}

/// Strings, lists, hashes, sets and sorted sets in two databases, pipelined.
fn populate(port: u16, keys: usize) {
    let mut commands: Vec<Vec<String>> = Vec::new();
    let v = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    for i in 0..keys {
        let (key, n) = (format!("s:{i}"), i.to_string());
        commands.push(v(&[
            "SET",
            &key,
            &format!("value {i} {}", "x".repeat(i % 50)),
        ]));
        if i % 10 == 0 {
            commands.push(v(&["RPUSH", &format!("l:{i}"), "a", "b", &n]));
            commands.push(v(&["HSET", &format!("h:{i}"), "f", &n, "g", "1"]));
            commands.push(v(&["SADD", &format!("set:{i}"), "m1", "m2"]));
            commands.push(v(&["ZADD", &format!("z:{i}"), "1.5", "a", &n, "b"]));
        }
    }
    commands.push(v(&["SELECT", "3"]));
    for i in 0..keys / 10 {
        commands.push(v(&["SET", &format!("db3:{i}"), &i.to_string()]));
    }
    let mut c = Client::connect(port).unwrap();
    for batch in commands.chunks(500) {
        let mut out = Vec::new();
        for args in batch {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            encode(&mut out, &args);
        }
        c.send_raw(&out);
        for args in batch {
            let reply = c.read();
            assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
        }
    }
}

/// Waits until every replica's link is up at the primary's offset.
fn all_caught_up(primary: &KeeperServer, replicas: &[u16]) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let wanted = info(primary.port, "replication")["master_repl_offset"].clone();
        let behind: Vec<(u16, String)> = replicas
            .iter()
            .map(|&port| (port, info(port, "replication")))
            .filter(|(_, r)| {
                r.get("master_link_status").map(String::as_str) != Some("up")
                    || r.get("slave_repl_offset") != Some(&wanted)
            })
            .map(|(port, r)| (port, format!("{:?}", r.get("slave_repl_offset"))))
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas behind offset {wanted}: {behind:?}\n--- primary log ---\n{}",
            primary.log()
        );
        sleep(Duration::from_millis(50));
    }
}

fn assert_same_data(what: &str, primary: u16, replica: u16) {
    let expected = canonical(&dump_port(primary).unwrap());
    let actual = canonical(&dump_port(replica).unwrap());
    assert!(!expected.is_empty());
    if let Err(report) = compare(what, &expected, &actual) {
        panic!("{report}");
    }
}

/// Three replicas (two keeper, one real Redis) ask while the primary waits for
/// `repl-diskless-sync-max-replicas 3` (the delay itself is long): one snapshot, one RDB
/// encoding, fanned out to the three sockets; writes made while they wait reach all of them
/// through the stream.
#[test]
fn replicas_asking_together_share_one_diskless_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let primary = KeeperServer::start(
        dir.path(),
        &[
            "--repl-diskless-sync-delay",
            "600",
            "--repl-diskless-sync-max-replicas",
            "3",
        ],
    );
    populate(primary.port, 3000);
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let d3 = tempfile::tempdir().unwrap();
    let k1 = KeeperServer::start(d1.path(), &[]);
    let k2 = KeeperServer::start(d2.path(), &[]);
    let redis = RedisServer::start_with(d3.path(), "replica.rdb", &[]);
    let port = primary.port.to_string();
    let mut writer = primary.client();
    for (n, replica) in [k1.port, k2.port, redis.port()].into_iter().enumerate() {
        ok(
            &mut Client::connect(replica).unwrap(),
            &["REPLICAOF", "127.0.0.1", &port],
        );
        // Written while the first replicas wait for the others: after the snapshot or
        // before it, every replica must end with it.
        ok(&mut writer, &["SET", &format!("during:{n}"), "x"]);
        ok(&mut writer, &["INCR", "counter"]);
    }
    all_caught_up(&primary, &[k1.port, k2.port, redis.port()]);
    ok(&mut writer, &["SET", "after", "1"]);
    all_caught_up(&primary, &[k1.port, k2.port, redis.port()]);

    let stats = info(primary.port, "stats");
    assert_eq!(stats["sync_full"], "3");
    assert_eq!(stats["keeper_sync_snapshots"], "1", "{}", primary.log());
    let log = primary.log();
    assert_eq!(
        log.matches("Starting BGSAVE for SYNC with target: replicas sockets")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains(" for 3 replicas"), "{log}");
    assert_eq!(
        log.matches("Streamed RDB transfer with replica").count(),
        3,
        "{log}"
    );
    assert!(log.contains("Delay next BGSAVE for diskless SYNC"), "{log}");
    // Replication bytes counted apart, as Redis 7.0 does: what the primary sent its replicas
    // is what they received (give or take the handshake lines), the same for each.
    let sent: u64 = stats["total_net_repl_output_bytes"].parse().unwrap();
    let received: Vec<u64> = [k1.port, k2.port, redis.port()]
        .iter()
        .map(|&p| {
            info(p, "stats")["total_net_repl_input_bytes"]
                .parse()
                .unwrap()
        })
        .collect();
    let per_replica = sent / 3;
    for r in &received {
        assert!(
            r.abs_diff(per_replica) * 20 < per_replica,
            "sent {sent} to 3 replicas, received {received:?}"
        );
    }
    for (what, port) in [
        ("keeper 1", k1.port),
        ("keeper 2", k2.port),
        ("redis", redis.port()),
    ] {
        assert_same_data(what, primary.port, port);
    }
}

/// The delay alone: replicas asking within `repl-diskless-sync-delay` share one snapshot;
/// one asking after that transfer started waits for the next one.
#[test]
fn the_delay_gathers_replicas_and_a_late_one_waits_for_the_next_transfer() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough for two REPLICAOFs on any machine; the test never measures it.
    let primary = KeeperServer::start(dir.path(), &["--repl-diskless-sync-delay", "3"]);
    populate(primary.port, 2000);
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let d3 = tempfile::tempdir().unwrap();
    let k1 = KeeperServer::start(d1.path(), &[]);
    let redis = RedisServer::start_with(d2.path(), "replica.rdb", &[]);
    let port = primary.port.to_string();
    for replica in [k1.port, redis.port()] {
        ok(
            &mut Client::connect(replica).unwrap(),
            &["REPLICAOF", "127.0.0.1", &port],
        );
    }
    all_caught_up(&primary, &[k1.port, redis.port()]);
    let stats = info(primary.port, "stats");
    assert_eq!(
        (
            stats["sync_full"].as_str(),
            stats["keeper_sync_snapshots"].as_str()
        ),
        ("2", "1")
    );

    // A late replica gets its own snapshot (after the delay again).
    let k3 = KeeperServer::start(d3.path(), &[]);
    ok(
        &mut Client::connect(k3.port).unwrap(),
        &["REPLICAOF", "127.0.0.1", &port],
    );
    all_caught_up(&primary, &[k1.port, redis.port(), k3.port]);
    let stats = info(primary.port, "stats");
    assert_eq!(
        (
            stats["sync_full"].as_str(),
            stats["keeper_sync_snapshots"].as_str()
        ),
        ("3", "2")
    );
    for (what, p) in [
        ("keeper", k1.port),
        ("redis", redis.port()),
        ("late keeper", k3.port),
    ] {
        assert_same_data(what, primary.port, p);
    }
}

/// Disk-based (`repl-diskless-sync no`): replicas asking while the RDB for a sync is written
/// attach to it ("Waiting for end of BGSAVE for SYNC") and get the same file; each stream
/// starts at that snapshot's offset. Whether a replica came in time to attach depends on the
/// machine, so the test requires identical data and at most one snapshot per replica, and
/// checks the log agrees with the count.
#[test]
fn disk_based_syncs_attach_to_the_rdb_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let primary = KeeperServer::start(dir.path(), &["--repl-diskless-sync", "no"]);
    populate(primary.port, 10_000);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let k1 = KeeperServer::start(dirs[0].path(), &[]);
    let k2 = KeeperServer::start(dirs[1].path(), &[]);
    let redis = RedisServer::start_with(dirs[2].path(), "replica.rdb", &[]);
    let port = primary.port.to_string();
    let mut writer = primary.client();
    for (n, replica) in [k1.port, k2.port, redis.port()].into_iter().enumerate() {
        ok(
            &mut Client::connect(replica).unwrap(),
            &["REPLICAOF", "127.0.0.1", &port],
        );
        ok(&mut writer, &["SET", &format!("during:{n}"), "x"]);
    }
    all_caught_up(&primary, &[k1.port, k2.port, redis.port()]);
    let stats = info(primary.port, "stats");
    assert_eq!(stats["sync_full"], "3");
    let snapshots: usize = stats["keeper_sync_snapshots"].parse().unwrap();
    let log = primary.log();
    let started = log
        .matches("Starting BGSAVE for SYNC with target: disk")
        .count();
    let attached = log.matches("Waiting for end of BGSAVE for SYNC").count();
    println!("disk-based: {snapshots} snapshot(s) for 3 replicas, {attached} attached");
    assert!((1..=3).contains(&snapshots));
    assert_eq!((started, attached), (snapshots, 3 - snapshots), "{log}");
    for (what, p) in [
        ("keeper 1", k1.port),
        ("keeper 2", k2.port),
        ("redis", redis.port()),
    ] {
        assert_same_data(what, primary.port, p);
    }
    // Every staged temp file is gone.
    let temps: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("temp-sync"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}
