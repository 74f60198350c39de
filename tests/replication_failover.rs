//! keeper replicating from keeper, and promotion: a primary with two keeper replicas and a
//! real Redis replica; the primary is killed, the replica with the highest offset is
//! promoted (`REPLICAOF NO ONE`), the others are pointed at it and continue with a partial
//! resync (`+CONTINUE`, no second full sync), and every node ends with the same data.

mod support;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::RedisServer;
use support::client::{Client, KeeperServer, info};
use support::wait_until;

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

// ---------------------------------------------------------------------------------------
// Planned failover: `FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]`.
// ---------------------------------------------------------------------------------------

fn failover_state(port: u16) -> String {
    info(port, "replication")["master_failover_state"].clone()
}

/// The node on `port` is a replica of `primary` with its link up.
fn wait_replica_of(what: &str, port: u16, primary: u16) {
    wait_until(what, || {
        let fields = info(port, "replication");
        fields["role"] == "slave"
            && fields["master_port"] == primary.to_string()
            && fields["master_link_status"] == "up"
    });
}

/// Runs `FAILOVER args…` on `port` and returns the reply.
fn failover(port: u16, args: &[&str]) -> support::client::Resp {
    let mut command = vec!["FAILOVER"];
    command.extend_from_slice(args);
    Client::connect(port).unwrap().cmd(&command)
}

/// A client writing `SET w:<n> <n>` in a loop, first to `first`, then (once a write is
/// refused with READONLY: the node was turned into a replica) to `then`, until stopped.
/// Returns every write acknowledged with `+OK`, by key.
fn write_load(
    first: u16,
    then: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> thread::JoinHandle<Vec<(String, String)>> {
    thread::spawn(move || {
        use std::sync::atomic::Ordering;
        let mut acked = Vec::new();
        let mut c = Client::connect(first).unwrap();
        let mut switched = false;
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let (key, value) = (format!("w:{n}"), n.to_string());
            match c.cmd(&["SET", &key, &value]) {
                support::client::Resp::Simple(ok) if ok == "OK" => acked.push((key, value)),
                support::client::Resp::Error(e) if e.starts_with("READONLY") && !switched => {
                    switched = true;
                    c = Client::connect(then).unwrap();
                }
                // The old primary turns replica before the target has promoted itself (it
                // does on the old primary's `PSYNC … FAILOVER`, as in Redis): for that
                // instant both refuse writes, and a client retries.
                support::client::Resp::Error(e) if e.starts_with("READONLY") => {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                other => panic!("write {n}: {other:?}"),
            }
            n += 1;
        }
        assert!(switched, "the old primary never refused a write");
        acked
    })
}

/// Every acknowledged write is on the node on `port`, with its value.
fn assert_has_all(port: u16, acked: &[(String, String)]) {
    let mut c = Client::connect(port).unwrap();
    for chunk in acked.chunks(500) {
        let mut command = vec!["MGET"];
        command.extend(chunk.iter().map(|(k, _)| k.as_str()));
        let values = c.cmd(&command);
        for ((key, value), got) in chunk.iter().zip(values.items()) {
            assert_eq!(
                got,
                &support::client::Resp::bulk(value),
                "acknowledged write {key} lost"
            );
        }
    }
}

/// A keeper primary with two keeper replicas under a steady write load: `FAILOVER TO a`
/// pauses the writes, waits for `a`, hands over with PSYNC FAILOVER; the old primary
/// continues from `a` with a partial resync, `b` repointed too, and no acknowledged write
/// is lost. Prints the time from FAILOVER to `a` accepting a write.
#[test]
fn failover_to_a_keeper_replica_under_load_loses_no_acknowledged_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let primary_dir = tmp.path().join("primary");
    std::fs::create_dir_all(&primary_dir).unwrap();
    let primary = KeeperServer::start(&primary_dir, &["--save", ""]);
    let mut c = primary.client();
    writes(&mut c, 0);
    let a = keeper_replica_of(&tmp.path().join("a"), primary.port);
    let b = keeper_replica_of(&tmp.path().join("b"), primary.port);
    let end = offset(primary.port);
    wait_applied("a", a.port, end);
    wait_applied("b", b.port, end);
    assert_eq!(failover_state(primary.port), "no-failover");

    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(primary.port, a.port, Arc::clone(&stop));
    // Let the load run a little before and during the failover.
    writes(&mut c, 1);
    let started = Instant::now();
    let reply = c.cmd(&["FAILOVER", "TO", "127.0.0.1", &a.port.to_string()]);
    assert_eq!(reply, support::client::Resp::Simple("OK".into()));
    let mut probe = a.client();
    loop {
        match probe.cmd(&["SET", "probe", "1"]) {
            support::client::Resp::Simple(ok) if ok == "OK" => break,
            support::client::Resp::Error(e) if e.starts_with("READONLY") => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "a never took writes"
                );
                thread::sleep(Duration::from_millis(1));
            }
            other => panic!("probe: {other:?}"),
        }
    }
    println!(
        "FAILOVER to the new primary accepting a write: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    wait_replica_of("the old primary follows a", primary.port, a.port);
    assert_eq!(failover_state(primary.port), "no-failover");
    assert_eq!(info(a.port, "replication")["role"], "master");
    // A write on the old primary now gets READONLY.
    assert!(
        c.cmd(&["SET", "late", "1"]).error().starts_with("READONLY"),
        "the old primary still takes writes"
    );
    let (full, partial, _) = sync_counters(a.port);
    assert_eq!(full, 0, "the old primary continued without a full sync");
    assert!(partial >= 1, "the old primary's PSYNC was a partial resync");

    // b (disconnected by the old primary when its ids changed) is pointed at a.
    Client::connect(b.port)
        .unwrap()
        .cmd(&["REPLICAOF", "127.0.0.1", &a.port.to_string()]);
    wait_replica_of("b follows a", b.port, a.port);
    assert_eq!(
        sync_counters(a.port),
        (0, 2, 0),
        "the old primary and b both continued with +CONTINUE"
    );

    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let acked = load.join().expect("the write load failed");
    assert!(!acked.is_empty());
    let end = offset(a.port);
    wait_applied("the old primary after the failover", primary.port, end);
    wait_applied("b after the failover", b.port, end);
    assert_eq!(
        sync_counters(a.port).0,
        0,
        "no full sync after the failover"
    );
    assert_has_all(a.port, &acked);
    let data = dump(a.port);
    assert_eq!(dump(primary.port), data, "the old primary");
    assert_eq!(dump(b.port), data, "b");
}

/// keeper hands over to a real Redis replica: keeper sends PSYNC … FAILOVER to Redis, which
/// promotes itself and continues keeper with a partial resync.
#[test]
fn failover_from_keeper_to_a_real_redis_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let primary_dir = tmp.path().join("primary");
    std::fs::create_dir_all(&primary_dir).unwrap();
    let primary = KeeperServer::start(&primary_dir, &["--save", ""]);
    let mut c = primary.client();
    writes(&mut c, 0);
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let redis = RedisServer::start_with(
        &redis_dir,
        "dump.rdb",
        &[
            "--replicaof",
            "127.0.0.1",
            &primary.port.to_string(),
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    writes(&mut c, 1);
    wait_applied("redis", redis.port(), offset(primary.port));
    let before = dump(primary.port);

    let reply = c.cmd(&["FAILOVER", "TO", "127.0.0.1", &redis.port().to_string()]);
    assert_eq!(reply, support::client::Resp::Simple("OK".into()));
    wait_replica_of("keeper follows redis", primary.port, redis.port());
    assert_eq!(info(redis.port(), "replication")["role"], "master");
    assert_eq!(failover_state(primary.port), "no-failover");
    let (full, partial, _) = sync_counters(redis.port());
    assert_eq!((full, partial), (0, 1), "redis continued keeper");
    assert!(
        redis
            .log()
            .contains("MASTER MODE enabled (failover request from"),
        "{}",
        redis.log()
    );

    let mut r = Client::connect(redis.port()).unwrap();
    assert_eq!(
        dump(redis.port()),
        before,
        "redis has everything keeper had"
    );
    writes(&mut r, 2);
    wait_applied(
        "keeper after the failover",
        primary.port,
        offset(redis.port()),
    );
    assert_eq!(dump(primary.port), dump(redis.port()));
}

/// A real Redis primary hands over to a keeper replica: Redis sends PSYNC … FAILOVER to
/// keeper, which promotes itself and continues Redis with a partial resync.
#[test]
fn failover_from_real_redis_to_a_keeper_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let redis =
        RedisServer::start_with(&redis_dir, "dump.rdb", &["--repl-diskless-sync-delay", "0"]);
    let mut r = Client::connect(redis.port()).unwrap();
    writes(&mut r, 0);
    let keeper = keeper_replica_of(&tmp.path().join("keeper"), redis.port());
    writes(&mut r, 1);
    wait_applied("keeper", keeper.port, offset(redis.port()));
    let before = dump(redis.port());

    // Without TO: Redis picks the replica that acknowledged everything.
    assert_eq!(
        r.cmd(&["FAILOVER"]),
        support::client::Resp::Simple("OK".into())
    );
    wait_replica_of("redis follows keeper", redis.port(), keeper.port);
    let promoted = info(keeper.port, "replication");
    assert_eq!(promoted["role"], "master");
    assert_eq!(
        sync_counters(keeper.port),
        (0, 1, 0),
        "keeper continued redis"
    );
    assert!(
        keeper
            .log()
            .contains("Failover request received for replid")
    );
    assert_eq!(failover_state(redis.port()), "no-failover");

    assert_eq!(dump(keeper.port), before);
    let mut c = keeper.client();
    writes(&mut c, 2);
    wait_applied(
        "redis after the failover",
        redis.port(),
        offset(keeper.port),
    );
    assert_eq!(dump(redis.port()), dump(keeper.port));
}

/// Redis 7.0's refusals, the write pause (reads go on, writes wait until the end), ABORT,
/// TIMEOUT without FORCE (abort: still the primary), TIMEOUT with FORCE (hand over anyway:
/// the lagging target full-syncs the old primary). The target is stalled by a proxy between
/// it and the primary.
#[test]
fn failover_errors_pause_abort_and_timeouts() {
    use support::client::Resp;
    let tmp = tempfile::tempdir().unwrap();
    let primary_dir = tmp.path().join("primary");
    std::fs::create_dir_all(&primary_dir).unwrap();
    let primary = KeeperServer::start(&primary_dir, &["--save", ""]);
    let port = primary.port;
    let err = |reply: Resp| reply.error().to_owned();

    assert_eq!(
        err(failover(port, &[])),
        "ERR FAILOVER requires connected replicas."
    );
    assert_eq!(
        err(failover(port, &["ABORT"])),
        "ERR No failover in progress."
    );
    for (args, expected) in [
        (&["ABORT", "TIMEOUT", "5"][..], "ERR syntax error"),
        (&["TO", "127.0.0.1"][..], "ERR syntax error"),
        (&["TIMEOUT", "5", "TIMEOUT", "6"][..], "ERR syntax error"),
        (&["BOGUS"][..], "ERR syntax error"),
        (
            &["TO", "127.0.0.1", "x"][..],
            "ERR value is not an integer or out of range",
        ),
        (
            &["TIMEOUT", "0"][..],
            "ERR FAILOVER timeout must be greater than 0",
        ),
    ] {
        assert_eq!(err(failover(port, args)), expected, "{args:?}");
    }

    let proxy = support::proxy::Proxy::start(port);
    let replica = keeper_replica_of(&tmp.path().join("replica"), proxy.port());
    let rport = replica.port.to_string();
    let mut c = primary.client();
    writes(&mut c, 0);
    wait_applied("replica", replica.port, offset(port));

    assert_eq!(
        err(failover(replica.port, &[])),
        "ERR FAILOVER is not valid when server is a replica."
    );
    assert_eq!(
        err(failover(port, &["TO", "127.0.0.1", &rport, "FORCE"])),
        "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
    );
    assert_eq!(
        err(failover(port, &["TIMEOUT", "100", "FORCE"])),
        "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
    );
    assert_eq!(
        err(failover(port, &["TO", "127.0.0.1", "1"])),
        "ERR FAILOVER target HOST and PORT is not a replica."
    );
    // Inside MULTI the command is queued and runs at EXEC.
    c.cmd(&["MULTI"]);
    assert_eq!(c.cmd(&["FAILOVER", "ABORT"]), Resp::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd(&["EXEC"]),
        Resp::Array(vec![Resp::Error("ERR No failover in progress.".into())])
    );

    // The target stalls: the primary waits for it, writes wait, reads go on.
    proxy.pause();
    c.cmd(&["SET", "before", "1"]);
    assert_eq!(
        failover(port, &["TO", "127.0.0.1", &rport]),
        Resp::Simple("OK".into())
    );
    assert_eq!(failover_state(port), "waiting-for-sync");
    assert_eq!(
        err(failover(port, &[])),
        "ERR FAILOVER already in progress."
    );
    assert_eq!(
        c.cmd(&["REPLICAOF", "NO", "ONE"]).error(),
        "ERR REPLICAOF not allowed while failing over."
    );
    let mut writer = primary.client();
    writer.send(&["SET", "paused", "1"]);
    let mut queued = primary.client();
    queued.cmd(&["MULTI"]);
    queued.send(&["SET", "queued", "1"]);
    assert_eq!(c.cmd(&["GET", "before"]), Resp::bulk("1"), "reads go on");
    assert_eq!(c.cmd(&["GET", "paused"]), Resp::Nil, "the write waits");
    assert_eq!(failover_state(port), "waiting-for-sync");
    assert_eq!(failover(port, &["ABORT"]), Resp::Simple("OK".into()));
    assert_eq!(
        writer.read(),
        Resp::Simple("OK".into()),
        "the write ran after ABORT"
    );
    assert_eq!(queued.read(), Resp::Simple("QUEUED".into()));
    assert_eq!(
        queued.cmd(&["EXEC"]),
        Resp::Array(vec![Resp::Simple("OK".into())])
    );
    assert_eq!(failover_state(port), "no-failover");
    assert_eq!(info(port, "replication")["role"], "master");
    assert!(primary.log().contains("aborted: Failover manually aborted"));

    // TIMEOUT without FORCE: the failover gives up, the node stays the primary.
    assert_eq!(
        failover(port, &["TO", "127.0.0.1", &rport, "TIMEOUT", "100"]),
        Resp::Simple("OK".into())
    );
    wait_until("the timeout", || failover_state(port) == "no-failover");
    assert_eq!(info(port, "replication")["role"], "master");
    assert_eq!(
        c.cmd(&["SET", "after-timeout", "1"]),
        Resp::Simple("OK".into())
    );
    assert!(
        primary
            .log()
            .contains("aborted: Replica never caught up before timeout")
    );

    // TIMEOUT with FORCE: the target is still stalled; the primary hands over anyway, and
    // the target (promoted behind it) serves it a full sync.
    assert_eq!(
        failover(
            port,
            &["TO", "127.0.0.1", &rport, "TIMEOUT", "100", "FORCE"]
        ),
        Resp::Simple("OK".into())
    );
    wait_replica_of("the old primary follows the target", port, replica.port);
    assert_eq!(failover_state(port), "no-failover");
    assert_eq!(info(replica.port, "replication")["role"], "master");
    assert!(primary.log().contains("time out exceeded, failing over."));
    assert_eq!(sync_counters(replica.port).0, 1, "forced: a full sync");
    proxy.resume();
    let mut r = replica.client();
    r.cmd(&["SET", "on-the-new-primary", "1"]);
    wait_applied("the old primary", port, offset(replica.port));
    assert_eq!(dump(port), dump(replica.port));
    assert_eq!(c.cmd(&["GET", "after-timeout"]), Resp::Nil, "FORCE lost it");
}

/// A client blocked in `WAIT` on the primary while it turns replica (here by FAILOVER) gets
/// Redis's UNBLOCKED error and its connection is closed (`disconnectAllBlockedClients`);
/// INFO counts it in `blocked_clients` meanwhile. Checked on real Redis and on keeper.
#[test]
fn a_wait_blocked_across_a_failover_is_unblocked_and_closed() {
    fn check(primary: u16, replica: u16, what: &str) {
        let mut c = Client::connect(primary).unwrap();
        writes(&mut c, 0);
        wait_applied(what, replica, offset(primary));
        let mut waiting = Client::connect(primary).unwrap();
        waiting.send(&["WAIT", "5", "0"]);
        // The WAIT is blocked before the failover starts.
        wait_until("the WAIT to block", || {
            info(primary, "clients")["blocked_clients"] == "1"
        });
        assert_eq!(
            c.cmd(&["FAILOVER"]),
            support::client::Resp::Simple("OK".into()),
            "{what}"
        );
        assert_eq!(
            waiting.read().error(),
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
            "{what}"
        );
        assert!(waiting.is_closed(), "{what}: the connection is closed");
        wait_replica_of(what, primary, replica);
        assert_eq!(info(primary, "clients")["blocked_clients"], "0", "{what}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let redis =
        RedisServer::start_with(&redis_dir, "dump.rdb", &["--repl-diskless-sync-delay", "0"]);
    let keeper_of_redis = keeper_replica_of(&tmp.path().join("k1"), redis.port());
    check(redis.port(), keeper_of_redis.port, "real Redis");

    let primary_dir = tmp.path().join("primary");
    std::fs::create_dir_all(&primary_dir).unwrap();
    let primary = KeeperServer::start(&primary_dir, &["--save", ""]);
    let replica = keeper_replica_of(&tmp.path().join("k2"), primary.port);
    check(primary.port, replica.port, "keeper");
}

/// `FAILOVER ABORT` while `failover-in-progress`: the old primary already follows the target
/// but its handshake is stalled (the target's announced port is a paused proxy): ABORT makes
/// it a primary again that takes writes, the target stays its replica. Checked on real Redis
/// and on keeper; also checks `replica-announce-port` (the primary lists the proxy's port).
#[test]
fn failover_abort_while_in_progress_restores_the_primary() {
    use support::client::Resp;
    fn check(primary: u16, replica: u16, proxy: &support::proxy::Proxy, what: &str) {
        let mut c = Client::connect(primary).unwrap();
        writes(&mut c, 0);
        wait_applied(what, replica, offset(primary));
        let announced = proxy.port().to_string();
        wait_until("the replica listed at its announced port", || {
            info(primary, "replication")
                .get("slave0")
                .is_some_and(|s| s.contains(&format!("port={announced},")))
        });
        proxy.pause();
        assert_eq!(
            c.cmd(&["FAILOVER", "TO", "127.0.0.1", &announced]),
            Resp::Simple("OK".into()),
            "{what}"
        );
        wait_until("failover-in-progress", || {
            failover_state(primary) == "failover-in-progress"
        });
        assert_eq!(
            c.cmd(&["FAILOVER", "ABORT"]),
            Resp::Simple("OK".into()),
            "{what}"
        );
        wait_until("the abort", || {
            let fields = info(primary, "replication");
            fields["role"] == "master" && fields["master_failover_state"] == "no-failover"
        });
        proxy.resume();
        assert_eq!(
            c.cmd(&["SET", "after-abort", "1"]),
            Resp::Simple("OK".into()),
            "{what}"
        );
        wait_replica_of(what, replica, primary);
        wait_applied(what, replica, offset(primary));
        assert_eq!(dump(primary), dump(replica), "{what}");
    }

    /// Makes `replica` announce `proxy`'s port and follow `primary`.
    fn follow_through_announced_port(replica: u16, primary: u16, proxy: &support::proxy::Proxy) {
        let mut r = Client::connect(replica).unwrap();
        let announced = proxy.port().to_string();
        assert_eq!(
            r.cmd(&["CONFIG", "SET", "replica-announce-port", &announced]),
            Resp::Simple("OK".into())
        );
        let primary = primary.to_string();
        assert_eq!(
            r.cmd(&["REPLICAOF", "127.0.0.1", &primary]),
            Resp::Simple("OK".into())
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let primary = RedisServer::start_with(
        &dir("redis-primary"),
        "dump.rdb",
        &["--repl-diskless-sync-delay", "0"],
    );
    let replica = RedisServer::start(&dir("redis-replica"), "dump.rdb");
    let proxy = support::proxy::Proxy::start(replica.port());
    follow_through_announced_port(replica.port(), primary.port(), &proxy);
    check(primary.port(), replica.port(), &proxy, "real Redis");

    let primary = KeeperServer::start(&dir("keeper-primary"), &["--save", ""]);
    let replica = KeeperServer::start(&dir("keeper-replica"), &["--save", ""]);
    let proxy = support::proxy::Proxy::start(replica.port);
    follow_through_announced_port(replica.port, primary.port, &proxy);
    check(primary.port, replica.port, &proxy, "keeper");
}

/// `replica-announce-ip`: a keeper replica gives its address with `REPLCONF ip-address`, and
/// a real Redis primary lists it (and its announced port) instead of what it sees.
#[test]
fn a_keeper_replica_announces_its_address_to_a_real_redis_primary() {
    use support::client::Resp;
    let tmp = tempfile::tempdir().unwrap();
    let redis_dir = tmp.path().join("redis");
    let keeper_dir = tmp.path().join("keeper");
    std::fs::create_dir_all(&redis_dir).unwrap();
    std::fs::create_dir_all(&keeper_dir).unwrap();
    let redis = RedisServer::start(&redis_dir, "dump.rdb");
    let keeper = KeeperServer::start(&keeper_dir, &["--save", ""]);
    let mut k = keeper.client();
    for (option, value) in [
        ("replica-announce-ip", "replica.example"),
        ("replica-announce-port", "7777"),
    ] {
        assert_eq!(
            k.cmd(&["CONFIG", "SET", option, value]),
            Resp::Simple("OK".into())
        );
        assert_eq!(
            k.cmd(&["CONFIG", "GET", option]),
            Resp::Array(vec![Resp::bulk(option), Resp::bulk(value)])
        );
    }
    k.cmd(&["REPLICAOF", "127.0.0.1", &redis.port().to_string()]);
    wait_until("Redis to list the announced address", || {
        info(redis.port(), "replication")
            .get("slave0")
            .is_some_and(|s| s.starts_with("ip=replica.example,port=7777,"))
    });
}
