//! A real `redis-server` 7.0 replicating from `keeper server`: full sync in both payload forms
//! (diskless `$EOF:` and `$<len>`), the live stream under a write load of every value type
//! (transactions, expiries, non-deterministic commands rewritten for propagation), a restarted
//! replica continuing with a partial resync, a replica behind the backlog taking a full sync,
//! replicas dropped for their output buffer or for silence, and `WAIT`, `ROLE` and `INFO` as
//! Redis answers them.
//!
//! Every scenario ends with both nodes at the same `master_repl_offset` and the same dataset
//! key by key (read from each over RESP by `support::dump`).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, sleep};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::client::{Client, KeeperServer, Resp, info};
use support::dump::dump_port;
use support::{RedisServer, canonical, compare};

/// Longest wait for a replica to get in step.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `done` every 50 ms until it holds; panics with `what` and `context()` after
/// `timeout`.
fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        sleep(Duration::from_millis(50));
    }
}

/// A real redis-server in `dir` replicating from `keeper`, with `extra` options.
fn replica_of(keeper: &KeeperServer, dir: &Path, extra: &[&str]) -> RedisServer {
    let port = keeper.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    RedisServer::start_with(dir, "dump.rdb", &args)
}

fn logs(keeper: &KeeperServer, redis: &RedisServer) -> String {
    format!(
        "--- keeper log ---\n{}\n--- redis log ---\n{}",
        keeper.log(),
        redis.log()
    )
}

/// Waits until the replica's link is up and both report the same `master_repl_offset`.
fn wait_in_step(keeper: &KeeperServer, redis: &RedisServer) {
    wait_until(
        "the replica to reach the primary's offset",
        SYNC_TIMEOUT,
        || {
            let replica = info(redis.port(), "replication");
            let primary = info(keeper.port, "replication");
            replica.get("master_link_status").map(String::as_str) == Some("up")
                && replica.get("master_repl_offset") == primary.get("master_repl_offset")
        },
        || logs(keeper, redis),
    );
}

/// The dataset in canonical form, with what legitimately differs between a primary and its
/// replica taken out: when a stream consumer was last seen (a replica creates consumers when
/// it applies the stream, so their clocks differ).
fn dataset(port: u16) -> Vec<String> {
    canonical(&dump_port(port))
        .into_iter()
        .map(|line| {
            let mut v: Value = serde_json::from_str(&line).unwrap();
            if let Some(groups) = v
                .get_mut("value")
                .and_then(|s| s.get_mut("groups"))
                .and_then(Value::as_array_mut)
            {
                for group in groups {
                    for consumer in group["consumers"].as_array_mut().into_iter().flatten() {
                        let consumer = consumer.as_object_mut().unwrap();
                        consumer.remove("seen_time_ms");
                        consumer.remove("active_time_ms");
                    }
                }
            }
            v.to_string()
        })
        .collect()
}

fn assert_same_dataset(what: &str, keeper: &KeeperServer, redis: &RedisServer) {
    let primary = dataset(keeper.port);
    assert!(primary.len() > 50, "{what}: the load wrote too little");
    if let Err(report) = compare(what, &primary, &dataset(redis.port())) {
        panic!("{report}\n{}", logs(keeper, redis));
    }
}

fn stat(port: u16, name: &str) -> u64 {
    info(port, "stats")[name].parse().unwrap()
}

/// `(sync_full, sync_partial_ok, sync_partial_err)` of a node.
fn sync_counters(port: u16) -> (u64, u64, u64) {
    (
        stat(port, "sync_full"),
        stat(port, "sync_partial_ok"),
        stat(port, "sync_partial_err"),
    )
}

// ---- the write load -----------------------------------------------------------------------

/// xorshift64: the load is the same on every run for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One random write of the load: every value type, transactions, TTLs long and short (short
/// ones expire during the test and are propagated as DELs), and the commands Redis rewrites
/// for propagation (SPOP, INCRBYFLOAT, XADD *, EXPIRE, SET EX, GETEX, XREADGROUP…). Keys are
/// named by type, so the mix never hits WRONGTYPE; a few commands fail on missing keys, as
/// they would anywhere.
fn write_step(c: &mut Client, rng: &mut Rng) {
    let n = rng.below(40);
    let m = rng.below(40);
    let (s, s2) = (format!("s:{n}"), format!("s:{m}"));
    let (l, l2) = (format!("l:{n}"), format!("l:{m}"));
    let (set, set2) = (format!("set:{n}"), format!("set:{m}"));
    let h = format!("h:{n}");
    let z = format!("z:{n}");
    let x = format!("x:{}", n % 8);
    let value = if rng.below(50) == 0 {
        // Now and then a large value (shared between replicas, not copied per replica).
        "v".repeat(100_000 + n as usize)
    } else {
        format!("v{}", rng.next() % 100_000)
    };
    let member = format!("m{}", rng.below(12));
    let score = format!("{}", rng.below(1000) as f64 / 8.0);
    let command: Vec<&str> = match rng.below(40) {
        0 => vec!["SET", &s, &value],
        1 => vec!["SET", &s, &value, "EX", "100000"],
        2 => vec!["SET", &s, &value, "PX", "30"],
        3 => vec!["INCRBYFLOAT", "float", "1.1"],
        4 => vec!["INCR", "counter"],
        5 => vec!["APPEND", &s, "tail"],
        6 => vec!["LPUSH", &l, &value, &member],
        7 => vec!["RPUSH", &l, &member],
        8 => vec!["LPOP", &l],
        9 => vec!["RPOP", &l, "2"],
        10 => vec!["LMOVE", &l, &l2, "LEFT", "RIGHT"],
        11 => vec!["SADD", &set, &member, "a", "b", "c"],
        12 => vec!["SPOP", &set],
        13 => vec!["SPOP", &set, "2"],
        14 => vec!["SREM", &set, &member],
        15 => vec!["HSET", &h, &member, &value, "num", "1"],
        16 => vec!["HINCRBYFLOAT", &h, "num", "0.25"],
        17 => vec!["HDEL", &h, &member],
        18 => vec!["ZADD", &z, &score, &member],
        19 => vec!["ZINCRBY", &z, "2.5", &member],
        20 => vec!["ZPOPMIN", &z],
        21 => vec!["XADD", &x, "*", "f", &member],
        22 => vec!["XADD", &x, "MAXLEN", "~", "20", "*", "f", &value],
        23 => vec!["XTRIM", &x, "MAXLEN", "10"],
        24 => vec!["EXPIRE", &s, "100000"],
        25 => vec!["PEXPIRE", &l, "20"],
        26 => vec!["PERSIST", &s],
        27 => vec!["DEL", &s2, &set2],
        28 => vec!["GETEX", &s, "PX", "25"],
        29 => vec!["SETEX", &s, "100000", &member],
        30 => vec!["RENAME", &s, &s2],
        31 => vec!["COPY", &h, "hcopy", "REPLACE"],
        32 => vec!["SMOVE", &set, &set2, "a"],
        33 => vec!["SINTERSTORE", "inter", &set, &set2],
        34 => vec!["SETRANGE", &s, "3", "xyz"],
        35 => vec!["HSETNX", &h, "once", &member],
        36 => vec!["LTRIM", &l, "0", "5"],
        37 => vec!["SELECT", ["0", "1", "2", "9"][rng.below(4) as usize]],
        38 => {
            c.cmd(&["XGROUP", "CREATE", &x, "g", "0", "MKSTREAM"]);
            vec![
                "XREADGROUP",
                "GROUP",
                "g",
                "c1",
                "COUNT",
                "2",
                "STREAMS",
                &x,
                ">",
            ]
        }
        _ => {
            // A transaction mixing types and non-deterministic commands.
            assert_eq!(c.cmd(&["MULTI"]), Resp::Simple("OK".into()));
            for args in [
                &["INCR", "counter"][..],
                &["SADD", &set, &member, "t"],
                &["SPOP", &set],
                &["HINCRBYFLOAT", &h, "num", "1.5"],
                &["SET", &s, &value, "EX", "100000"],
                &["ZINCRBY", &z, "1", &member],
            ] {
                assert_eq!(c.cmd(args), Resp::Simple("QUEUED".into()));
            }
            vec!["EXEC"]
        }
    };
    c.cmd(&command);
}

/// Writes `steps` random commands now; returns once their short TTLs are over.
fn write_steps(port: u16, seed: u64, steps: usize) {
    let mut c = Client::connect(port).unwrap();
    let mut rng = Rng(seed);
    for _ in 0..steps {
        write_step(&mut c, &mut rng);
    }
    sleep(Duration::from_millis(100));
}

/// A writer running [`write_step`] in a loop on its own connection until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Load {
    fn start(port: u16, seed: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                let mut rng = Rng(seed);
                let mut steps = 0;
                while !stop.load(Ordering::Relaxed) {
                    write_step(&mut c, &mut rng);
                    steps += 1;
                }
                steps
            })
        };
        Load { stop, thread }
    }

    /// Stops the writer; returns how many commands it ran. Returns once the short TTLs the
    /// load set (30 ms at most) are over, so no key expires while datasets are compared.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let steps = self.thread.join().expect("the load thread panicked");
        sleep(Duration::from_millis(100));
        steps
    }
}

// ---- scenarios ----------------------------------------------------------------------------

/// Full sync while writes go on, then the live stream; `diskless` picks the payload form
/// through `repl-diskless-sync` (a Redis replica always announces `capa eof`).
fn full_sync_then_stream(diskless: bool) {
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(
        keeper_dir.path(),
        &[
            "--repl-diskless-sync",
            if diskless { "yes" } else { "no" },
            "--save",
            "",
        ],
    );
    write_steps(keeper.port, 1, 3000);
    let load = Load::start(keeper.port, 2);
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = replica_of(&keeper, redis_dir.path(), &[]);
    wait_until(
        "the replica's link to come up",
        SYNC_TIMEOUT,
        || info(redis.port(), "replication")["master_link_status"] == "up",
        || logs(&keeper, &redis),
    );
    // The stream under load for a while.
    sleep(Duration::from_millis(1500));
    let steps = load.stop();
    assert!(steps > 100, "the load ran only {steps} commands");
    wait_in_step(&keeper, &redis);
    assert_same_dataset(
        &format!("keeper → redis (diskless {diskless})"),
        &keeper,
        &redis,
    );

    assert_eq!(sync_counters(keeper.port), (1, 0, 0));
    // The replica is not a client (this INFO's connection is; the ones before it close
    // asynchronously).
    wait_until(
        "connected_clients to count this connection only",
        Duration::from_secs(5),
        || info(keeper.port, "clients")["connected_clients"] == "1",
        || format!("{:?}", info(keeper.port, "clients")),
    );
    let primary = info(keeper.port, "replication");
    assert_eq!(primary["connected_slaves"], "1");
    assert_eq!(primary["repl_backlog_active"], "1");
    let expected = format!(
        "ip=127.0.0.1,port={},state=online,offset={}",
        redis.port(),
        primary["master_repl_offset"]
    );
    assert!(
        primary["slave0"].starts_with(&expected),
        "{} vs {expected}",
        primary["slave0"]
    );
    let (keeper_form, redis_form) = if diskless {
        (
            "target: replicas sockets",
            "receiving streamed RDB from master with EOF",
        )
    } else {
        ("target: disk", "bytes from master to disk")
    };
    assert!(keeper.log().contains(keeper_form), "{}", keeper.log());
    assert!(redis.log().contains(redis_form), "{}", redis.log());
    // The staged form's temp file is gone.
    let leftovers: Vec<_> = std::fs::read_dir(keeper_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn redis_replica_full_sync_diskless_then_stream_under_load() {
    full_sync_then_stream(true);
}

#[test]
fn redis_replica_full_sync_with_length_then_stream_under_load() {
    full_sync_then_stream(false);
}

/// A replica stopped with SIGTERM saves its RDB with the replication id and offset; started
/// again it asks `PSYNC <id> <offset+1>` and keeper continues from its backlog while writes
/// go on: one full sync in all, one partial.
#[test]
fn a_restarted_replica_continues_with_a_partial_resync() {
    let keeper_dir = tempfile::tempdir().unwrap();
    // The load writes large values now and then: room for what it writes meanwhile.
    let keeper = KeeperServer::start(
        keeper_dir.path(),
        &["--save", "", "--repl-backlog-size", "100mb"],
    );
    write_steps(keeper.port, 3, 1000);
    let redis_dir = tempfile::tempdir().unwrap();
    let save = ["--save", "3600 1"];
    let redis = replica_of(&keeper, redis_dir.path(), &save);
    wait_in_step(&keeper, &redis);
    drop(redis); // SIGTERM: the replica saves its dataset and replication position
    let load = Load::start(keeper.port, 4);
    sleep(Duration::from_millis(300));
    let redis = replica_of(&keeper, redis_dir.path(), &save);
    sleep(Duration::from_millis(700));
    load.stop();
    wait_in_step(&keeper, &redis);
    assert_same_dataset("after the partial resync", &keeper, &redis);
    assert_eq!(
        sync_counters(keeper.port),
        (1, 1, 0),
        "{}",
        logs(&keeper, &redis)
    );
    assert!(
        redis
            .log()
            .contains("Successful partial resynchronization with master"),
        "{}",
        redis.log()
    );
    assert!(
        keeper
            .log()
            .contains("Partial resynchronization request from")
    );
}

/// More writes than `repl-backlog-size` while the replica is away: its PSYNC cannot continue,
/// so it gets a full sync (counted as a failed partial one), and the data still match.
#[test]
fn a_replica_behind_the_backlog_gets_a_full_sync() {
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(
        keeper_dir.path(),
        &["--save", "", "--repl-backlog-size", "16kb"],
    );
    write_steps(keeper.port, 5, 500);
    let redis_dir = tempfile::tempdir().unwrap();
    let save = ["--save", "3600 1"];
    let redis = replica_of(&keeper, redis_dir.path(), &save);
    wait_in_step(&keeper, &redis);
    drop(redis);
    let mut c = keeper.client();
    for i in 0..20 {
        c.cmd(&["SET", &format!("filler:{i}"), &"f".repeat(4000)]);
    }
    let backlog = info(keeper.port, "replication");
    assert_eq!(backlog["repl_backlog_size"], "16384");
    assert_eq!(backlog["repl_backlog_histlen"], "16384");
    let redis = replica_of(&keeper, redis_dir.path(), &save);
    wait_in_step(&keeper, &redis);
    assert_same_dataset("after the full resync", &keeper, &redis);
    assert_eq!(
        sync_counters(keeper.port),
        (2, 0, 1),
        "{}",
        logs(&keeper, &redis)
    );
    assert!(
        keeper
            .log()
            .contains("Unable to partial resync with replica for lack of backlog"),
        "{}",
        keeper.log()
    );
}

/// The pid of a redis-server, from its INFO.
fn redis_pid(redis: &RedisServer) -> String {
    info(redis.port(), "server")["process_id"].clone()
}

fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A replica that stops reading is dropped once its queue passes the output buffer limit;
/// one that stops acknowledging is dropped after `repl-timeout`. Both come back and end in
/// step.
#[test]
fn stalled_replicas_are_dropped_and_come_back() {
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(
        keeper_dir.path(),
        &[
            "--save",
            "",
            "--client-output-buffer-limit",
            "replica",
            "4mb",
            "0",
            "0",
        ],
    );
    write_steps(keeper.port, 6, 200);
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = replica_of(&keeper, redis_dir.path(), &[]);
    wait_in_step(&keeper, &redis);
    let pid = redis_pid(&redis);

    // Stopped: the socket buffers fill, then the queue grows past 4 MB.
    signal(&pid, "STOP");
    let mut c = keeper.client();
    let big = "b".repeat(1 << 20);
    for i in 0..40 {
        c.cmd(&["SET", &format!("big:{}", i % 3), &big]);
    }
    wait_until(
        "keeper to drop the stalled replica",
        Duration::from_secs(20),
        || info(keeper.port, "replication")["connected_slaves"] == "0",
        || logs(&keeper, &redis),
    );
    assert!(
        keeper
            .log()
            .contains("for overcoming of output buffer limits"),
        "{}",
        keeper.log()
    );
    signal(&pid, "CONT");
    wait_in_step(&keeper, &redis);
    assert_same_dataset("after the output buffer drop", &keeper, &redis);

    // Silent (no ACKs) for longer than repl-timeout.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "repl-timeout", "2"]),
        Resp::Simple("OK".into())
    );
    signal(&pid, "STOP");
    wait_until(
        "keeper to drop the silent replica",
        Duration::from_secs(20),
        || info(keeper.port, "replication")["connected_slaves"] == "0",
        || logs(&keeper, &redis),
    );
    assert!(
        keeper
            .log()
            .contains("Disconnecting timedout replica (streaming sync)"),
        "{}",
        keeper.log()
    );
    c.cmd(&["SET", "while", "away"]);
    signal(&pid, "CONT");
    wait_in_step(&keeper, &redis);
    assert_same_dataset("after the timeout", &keeper, &redis);
}

/// Field names of an INFO section, in order.
fn info_names(port: u16, section: &str) -> Vec<String> {
    Client::connect(port)
        .unwrap()
        .cmd(&["INFO", section])
        .text()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
        .collect()
}

/// `WAIT` counts acknowledging replicas (blocking only the caller), `ROLE` and `INFO
/// replication` have Redis's shape (compared with a real Redis primary and replica).
#[test]
fn wait_role_and_info_as_redis() {
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(keeper_dir.path(), &["--save", ""]);
    let mut c = keeper.client();
    // No replica: WAIT 0 answers at once, WAIT 1 after its timeout.
    assert_eq!(c.cmd(&["WAIT", "0", "0"]), Resp::Int(0));
    let started = Instant::now();
    assert_eq!(c.cmd(&["WAIT", "1", "100"]), Resp::Int(0));
    assert!(started.elapsed() >= Duration::from_millis(100));
    for (args, error) in [
        (
            ["WAIT", "x", "0"],
            "ERR value is not an integer or out of range",
        ),
        (
            ["WAIT", "1", "x"],
            "ERR timeout is not an integer or out of range",
        ),
        (["WAIT", "1", "-1"], "ERR timeout is negative"),
    ] {
        assert_eq!(c.cmd(&args), Resp::Error(error.into()));
    }

    let redis_dir = tempfile::tempdir().unwrap();
    let redis = replica_of(&keeper, redis_dir.path(), &[]);
    wait_in_step(&keeper, &redis);
    c.cmd(&["SET", "k", "v"]);
    let started = Instant::now();
    assert_eq!(c.cmd(&["WAIT", "1", "10000"]), Resp::Int(1));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the GETACK should bring the ACK at once"
    );
    // Two are asked, one exists: the count at the timeout; others are served meanwhile.
    let started = Instant::now();
    c.send(&["WAIT", "2", "400"]);
    assert_eq!(
        keeper.client().cmd(&["GET", "k"]),
        Resp::Bulk(b"v".to_vec())
    );
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(c.read(), Resp::Int(1));
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Pipelined after a WAIT: answered in order, after it.
    let mut out = Vec::new();
    for args in [
        &["SET", "p", "1"][..],
        &["WAIT", "1", "5000"],
        &["GET", "p"],
    ] {
        support::client::encode(&mut out, args);
    }
    c.send_raw(&out);
    assert_eq!(c.read(), Resp::Simple("OK".into()));
    assert_eq!(c.read(), Resp::Int(1));
    assert_eq!(c.read(), Resp::Bulk(b"1".to_vec()));

    // ROLE: the offset and every online replica with its acknowledged offset (the replica
    // ACKs once a second, so it catches up with the GETACKs too).
    wait_in_step(&keeper, &redis);
    wait_until(
        "the replica's ACK of the last offset",
        Duration::from_secs(5),
        || {
            let Resp::Array(role) = keeper.client().cmd(&["ROLE"]) else {
                return false;
            };
            let Resp::Int(offset) = role[1] else {
                return false;
            };
            role == [
                Resp::bulk("master"),
                Resp::Int(offset),
                Resp::Array(vec![Resp::Array(vec![
                    Resp::bulk("127.0.0.1"),
                    Resp::bulk(&redis.port().to_string()),
                    Resp::bulk(&offset.to_string()),
                ])]),
            ]
        },
        || format!("{:?}", keeper.client().cmd(&["ROLE"])),
    );
    // Inside MULTI, WAIT does not block: it answers the count at once.
    c.cmd(&["MULTI"]);
    c.cmd(&["WAIT", "5", "0"]);
    assert_eq!(c.cmd(&["EXEC"]), Resp::Array(vec![Resp::Int(1)]));

    // INFO replication and the sync counters: the names and order of a Redis primary with
    // one online replica.
    let redis_primary_dir = tempfile::tempdir().unwrap();
    let redis_primary = RedisServer::start(redis_primary_dir.path(), "dump.rdb");
    let other_dir = tempfile::tempdir().unwrap();
    let port = redis_primary.port().to_string();
    let other = RedisServer::start_with(
        other_dir.path(),
        "dump.rdb",
        &["--replicaof", "127.0.0.1", &port],
    );
    wait_until(
        "the Redis replica of Redis",
        SYNC_TIMEOUT,
        || info(redis_primary.port(), "replication")["slave0"].contains("state=online"),
        || other.log(),
    );
    assert_eq!(
        info_names(keeper.port, "replication"),
        info_names(redis_primary.port(), "replication")
    );
    let sync_names = |port: u16| -> Vec<String> {
        info_names(port, "stats")
            .into_iter()
            .filter(|n| n.starts_with("sync_"))
            .collect()
    };
    assert_eq!(sync_names(keeper.port), sync_names(redis_primary.port()));
    assert_eq!(
        sync_counters(keeper.port),
        sync_counters(redis_primary.port())
    );
    // CONFIG RESETSTAT clears them.
    c.cmd(&["CONFIG", "RESETSTAT"]);
    assert_eq!(sync_counters(keeper.port), (0, 0, 0));
}

/// `redis-cli --replica` against `port`, once it logs the stream; its output (progress on
/// stderr, commands on stdout) goes to one file in `dir`. `context` adds to a failure report.
fn redis_cli_replica(
    port: u16,
    dir: &Path,
    context: &dyn Fn() -> String,
) -> (std::process::Child, std::path::PathBuf) {
    let out_path = dir.join("cli.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let cli = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--replica"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let output = || std::fs::read_to_string(&out_path).unwrap_or_default();
    wait_until(
        "redis-cli to start logging",
        Duration::from_secs(10),
        || output().contains("Logging commands from master"),
        || format!("{}\n{}", output(), context()),
    );
    (cli, out_path)
}

/// `redis-cli --replica` (which asks for an RDB without data, `REPLCONF rdb-filter-only ""`)
/// prints the stream; a filtered sync needs `capa eof`, as in Redis.
#[test]
fn redis_cli_replica_shows_the_stream() {
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(keeper_dir.path(), &["--save", ""]);
    write_steps(keeper.port, 7, 300);
    let (mut cli, out_path) = redis_cli_replica(keeper.port, keeper_dir.path(), &|| keeper.log());
    let output = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let mut c = keeper.client();
    c.cmd(&["SET", "seen", "1"]);
    c.cmd(&["SPOP", "set:1"]);
    wait_until(
        "the SET in redis-cli's output",
        Duration::from_secs(10),
        || output().contains("\"SET\",\"seen\",\"1\""),
        || format!("{}\n{}", output(), keeper.log()),
    );
    let _ = cli.kill();
    let _ = cli.wait();
    // The RDB had no keys (a few hundred bytes of header and AUX fields).
    let done = output()
        .lines()
        .find_map(|l| {
            l.strip_prefix("SYNC done after ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap();
    assert!(done < 400, "an RDB of {done} bytes");

    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let refused = |port: u16| {
        let mut c = Client::connect(port).unwrap();
        (
            c.cmd(&["REPLCONF", "rdb-filter-only", ""]),
            c.cmd(&["SYNC"]),
        )
    };
    assert_eq!(refused(keeper.port), refused(redis.port()));
}

/// `min-replicas-to-write`: writes are refused (`NOREPLICAS`, as Redis words it) until a
/// replica is online and acknowledging; reads and the transaction flag follow Redis.
#[test]
fn min_replicas_to_write_refuses_writes_without_good_replicas() {
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(keeper_dir.path(), &["--save", ""]);
    let script = |port: u16| {
        let mut c = Client::connect(port).unwrap();
        let replies = [
            c.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
            c.cmd(&["SET", "k", "v"]),
            c.cmd(&["GET", "k"]),
            c.cmd(&["MULTI"]),
            c.cmd(&["SET", "k", "v"]),
            c.cmd(&["EXEC"]),
            c.cmd(&["CONFIG", "SET", "min-slaves-max-lag", "0"]),
            c.cmd(&["SET", "k", "v"]),
            c.cmd(&["CONFIG", "SET", "min-replicas-max-lag", "10"]),
        ];
        let names = info_names(port, "replication");
        (replies, names)
    };
    assert_eq!(script(keeper.port), script(redis.port()));
    assert_eq!(
        info(keeper.port, "replication")["min_slaves_good_slaves"],
        "0"
    );
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = replica_of(&keeper, replica_dir.path(), &[]);
    wait_in_step(&keeper, &replica);
    assert_eq!(
        keeper.client().cmd(&["SET", "k", "2"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        info(keeper.port, "replication")["min_slaves_good_slaves"],
        "1"
    );
}

/// A PUBLISH inside MULTI reaches the replicas inside the transaction's MULTI … EXEC block,
/// between the writes around it, as Redis 7.0 sends it: the stream `redis-cli --replica`
/// shows is the same from keeper and from real Redis.
#[test]
fn a_publish_inside_multi_is_streamed_inside_the_block_as_redis_does() {
    fn streamed_block(port: u16, dir: &Path) -> Vec<String> {
        let (mut cli, out_path) = redis_cli_replica(port, dir, &String::new);
        let output = || std::fs::read_to_string(&out_path).unwrap_or_default();
        let mut c = Client::connect(port).unwrap();
        c.cmd(&["MULTI"]);
        c.cmd(&["SET", "a", "1"]);
        c.cmd(&["PUBLISH", "ch", "m"]);
        c.cmd(&["SET", "b", "2"]);
        c.cmd(&["EXEC"]);
        wait_until(
            "the EXEC in redis-cli's output",
            Duration::from_secs(10),
            || output().contains("\"EXEC\""),
            output,
        );
        let _ = cli.kill();
        let _ = cli.wait();
        output()
            .lines()
            .map(|l| l.split_once("} ").map_or(l, |(_, cmd)| cmd).to_owned())
            .skip_while(|l| l != "\"MULTI\"")
            .take_while(|l| l != "\"EXEC\"")
            .filter(|l| l != "\"PING\"")
            .collect()
    }
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(keeper_dir.path(), &["--save", ""]);
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let from_keeper = streamed_block(keeper.port, keeper_dir.path());
    let from_redis = streamed_block(redis.port(), redis_dir.path());
    assert_eq!(
        from_redis,
        [
            "\"MULTI\"",
            "\"SET\",\"a\",\"1\"",
            "\"PUBLISH\",\"ch\",\"m\"",
            "\"SET\",\"b\",\"2\""
        ],
        "Redis's stream"
    );
    assert_eq!(from_keeper, from_redis);
}
