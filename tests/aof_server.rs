//! `keeper server` with the AOF on, over TCP: the files it writes (Redis 7's names and
//! manifest), `BGREWRITEAOF` under heavy writes, restarts (data and replication position), the
//! disk budget as a client sees it, and `INFO persistence`.

mod support;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::client::{Client, KeeperServer, Resp, info_fields};

fn aof_args(policy: &'static str) -> Vec<&'static str> {
    vec!["--save", "", "--appendonly", "yes", "--appendfsync", policy]
}

fn persistence(client: &mut Client) -> std::collections::HashMap<String, String> {
    info_fields(&client.cmd(&["INFO", "persistence"]))
}

fn wait_for_rewrite(client: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fields = persistence(client);
        if fields["aof_rewrite_in_progress"] == "0" && fields["aof_rewrite_scheduled"] == "0" {
            return;
        }
        assert!(Instant::now() < deadline, "the rewrite never finished");
        thread::sleep(Duration::from_millis(10));
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_fresh_node_writes_redis_7_files_and_a_rewrite_swaps_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    let mut client = server.client();
    let aof_dir = dir.path().join("appendonlydir");
    assert_eq!(
        file_names(&aof_dir),
        [
            "appendonly.aof.1.base.rdb",
            "appendonly.aof.1.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    if support::plain_files() {
        assert_eq!(
            std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).unwrap(),
            "file appendonly.aof.1.base.rdb seq 1 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type i\n"
        );
    }
    assert_eq!(client.cmd(&["SET", "k", "v"]), Resp::Simple("OK".into()));
    assert_eq!(
        client.cmd(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    wait_for_rewrite(&mut client);
    let fields = persistence(&mut client);
    assert_eq!(fields["aof_last_bgrewrite_status"], "ok");
    assert_eq!(fields["aof_rewrites"], "1");
    assert_eq!(
        file_names(&aof_dir),
        [
            "appendonly.aof.2.base.rdb",
            "appendonly.aof.2.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    if support::plain_files() {
        assert_eq!(
            std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).unwrap(),
            "file appendonly.aof.2.base.rdb seq 2 type b\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n"
        );
    }
}

#[test]
fn twenty_thousand_incrs_during_a_rewrite_reload_to_exactly_twenty_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &aof_args("everysec"));
    let mut client = server.client();
    // Enough data that the rewrite is still running while the INCRs arrive.
    let mut pipeline = Vec::new();
    for i in 0..50_000 {
        support::client::encode(&mut pipeline, &["SET", &format!("key:{i}"), "value"]);
    }
    client.send_raw(&pipeline);
    for _ in 0..50_000 {
        assert_eq!(client.read(), Resp::Simple("OK".into()));
    }
    let port = server.port;
    let incrs = thread::spawn(move || {
        let mut client = Client::connect(port).unwrap();
        let mut batch = Vec::new();
        for _ in 0..100 {
            support::client::encode(&mut batch, &["INCR", "counter"]);
        }
        for _ in 0..200 {
            client.send_raw(&batch);
            for _ in 0..100 {
                assert!(matches!(client.read(), Resp::Int(_)));
            }
        }
    });
    assert_eq!(
        client.cmd(&["BGREWRITEAOF"]),
        Resp::Simple("Background append only file rewriting started".into())
    );
    incrs.join().unwrap();
    wait_for_rewrite(&mut client);
    assert_eq!(persistence(&mut client)["aof_last_bgrewrite_status"], "ok");
    assert_eq!(client.cmd(&["GET", "counter"]), Resp::bulk("20000"));
    drop(client);
    server.signal("KILL");
    drop(server);
    let server = KeeperServer::start(dir.path(), &aof_args("everysec"));
    let mut client = server.client();
    assert_eq!(client.cmd(&["GET", "counter"]), Resp::bulk("20000"));
    assert_eq!(client.cmd(&["DBSIZE"]), Resp::Int(50_001));
}

#[test]
fn a_restart_from_the_aof_keeps_the_data_and_the_replication_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    let mut client = server.client();
    client.cmd(&["SET", "a", "1"]);
    client.cmd(&["RPUSH", "l", "x", "y"]);
    client.cmd(&["SELECT", "3"]);
    client.cmd(&["HSET", "h", "f", "v"]);
    client.cmd(&["SET", "ttl", "v", "EX", "1000"]);
    let replication = info_fields(&client.cmd(&["INFO", "replication"]));
    let (replid, offset) = (
        replication["master_replid"].clone(),
        replication["master_repl_offset"].clone(),
    );
    assert_ne!(offset, "0");
    drop(client);
    server.signal("KILL");
    drop(server);

    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    // A load this small gets no prefault (the process keeps glibc's malloc defaults).
    assert!(
        !server.log().contains("populated on another core"),
        "{}",
        server.log()
    );
    let mut client = server.client();
    assert_eq!(client.cmd(&["GET", "a"]), Resp::bulk("1"));
    assert_eq!(client.cmd(&["LRANGE", "l", "0", "-1"]).items().len(), 2);
    client.cmd(&["SELECT", "3"]);
    assert_eq!(client.cmd(&["HGET", "h", "f"]), Resp::bulk("v"));
    assert!(matches!(client.cmd(&["TTL", "ttl"]), Resp::Int(t) if t > 990));
    // As Redis 7 restarting from a file with its replication position: the loaded history
    // is the previous one (replicas of it continue), under a new id, at the same offset.
    let replication = info_fields(&client.cmd(&["INFO", "replication"]));
    assert_eq!(replication["master_replid2"], replid);
    assert_ne!(replication["master_replid"], replid);
    assert_eq!(replication["master_repl_offset"], offset);
    let next: u64 = offset.parse::<u64>().unwrap() + 1;
    assert_eq!(replication["second_repl_offset"], next.to_string());
}

#[test]
fn the_disk_budget_refuses_writes_over_tcp_keeps_reads_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = aof_args("everysec");
    args.extend([
        "--aof-max-disk-size",
        "256kb",
        "--auto-aof-rewrite-percentage",
        "0",
    ]);
    let server = KeeperServer::start(dir.path(), &args);
    let mut client = server.client();
    let value = "v".repeat(1000);
    // Overwrites of a few keys: a rewrite folds them away, so the budget recovers.
    let mut refused = None;
    for i in 0..5_000 {
        match client.cmd(&["SET", &format!("k{}", i % 10), &value]) {
            Resp::Simple(ok) if ok == "OK" => {}
            Resp::Error(e) => {
                refused = Some(e);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // Either the early rewrite kept up with every write, or a write was refused with the
    // budget named; both keep the directory within the budget.
    if let Some(e) = &refused {
        assert!(e.contains("aof-max-disk-size 262144"), "{e}");
        assert_eq!(client.cmd(&["GET", "k0"]), Resp::bulk(&value));
        assert_eq!(client.cmd(&["PING"]), Resp::Simple("PONG".into()));
    }
    // Writes of the same size resume by themselves once the rewrite the cron starts frees
    // space; the directory never goes over the budget meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resumed = 0;
    while resumed < 200 {
        if client.cmd(&["SET", &format!("k{}", resumed % 10), &value]) == Resp::Simple("OK".into())
        {
            resumed += 1;
        } else {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(Instant::now() < deadline, "writes never resumed");
    }
    let fields = persistence(&mut client);
    assert_eq!(fields["aof_disk_budget"], "262144");
    assert!(
        fields["aof_rewrites"].parse::<u64>().unwrap() >= 1,
        "{fields:?}"
    );
    let usage: u64 = fields["aof_disk_usage"].parse().unwrap();
    assert!(usage <= 262_144, "{usage}");
    let on_disk: u64 = std::fs::read_dir(dir.path().join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 262_144, "{on_disk} bytes on disk");
}

#[test]
fn config_set_appendonly_turns_the_aof_on_and_off_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &["--save", "", "--appendfsync", "always"]);
    let mut client = server.client();
    for i in 0..1000 {
        client.cmd(&["SET", &format!("before:{i}"), "v"]);
    }
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "appendonly", "yes"]),
        Resp::Simple("OK".into())
    );
    // Writes while the first base is written go to the new incr file.
    for i in 0..100 {
        client.cmd(&["SET", &format!("during:{i}"), "v"]);
    }
    wait_for_rewrite(&mut client);
    let fields = persistence(&mut client);
    assert_eq!(fields["aof_enabled"], "1");
    assert_eq!(fields["aof_last_bgrewrite_status"], "ok");
    client.cmd(&["SET", "after", "v"]);
    let aof_dir = dir.path().join("appendonlydir");
    let names = file_names(&aof_dir);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".base.rdb")), "{names:?}");
    drop(client);
    server.signal("KILL");
    drop(server);

    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    let mut client = server.client();
    assert_eq!(client.cmd(&["DBSIZE"]), Resp::Int(1101));
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "appendonly", "no"]),
        Resp::Simple("OK".into())
    );
    assert_eq!(persistence(&mut client)["aof_enabled"], "0");
    // Off: nothing more reaches the AOF.
    client.cmd(&["SET", "not-in-the-aof", "v"]);
    drop(client);
    server.signal("KILL");
    drop(server);
    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    let mut client = server.client();
    assert_eq!(client.cmd(&["DBSIZE"]), Resp::Int(1101));
    assert_eq!(client.cmd(&["EXISTS", "not-in-the-aof"]), Resp::Int(0));
}

#[test]
fn everysec_syncs_a_write_within_about_a_second_when_nothing_else_happens() {
    // One SET on an idle node: the connection writes it itself (the writer thread lends its
    // file), and the thread must still sync it, as Redis's `everysec` does within a second.
    // (It once never did: the first sync waited for a deadline that always lay ahead.)
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &aof_args("everysec"));
    let mut client = server.client();
    assert_eq!(client.cmd(&["SET", "k", "v"]), Resp::Simple("OK".into()));
    let written: u64 = persistence(&mut client)["aof_written_offset"]
        .parse()
        .unwrap();
    // A bound far above a second, only to fail instead of hang.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fields = persistence(&mut client);
        let durable: u64 = fields["aof_durable_offset"].parse().unwrap();
        if durable >= written && fields["aof_fsyncs"] != "0" {
            break;
        }
        assert!(Instant::now() < deadline, "never synced: {fields:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Linux's version as (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_startup_load_faults_its_heap_in_on_another_core() {
    let dir = tempfile::tempdir().unwrap();
    let aof_dir = dir.path().join("appendonlydir");
    std::fs::create_dir_all(&aof_dir).unwrap();
    // Through the node's storage: the suite's second run (`KEEPER_STORAGE=scrambled`) reads
    // every file through a byte-transforming backend.
    let storage = keeper::storage::from_env().expect("KEEPER_STORAGE");
    let write = |name: &str, bytes: &[u8]| {
        let mut file = storage.create(&aof_dir.join(name)).unwrap();
        file.write_all(bytes).unwrap();
        file.sync_data().unwrap();
    };
    write(
        "appendonly.aof.manifest",
        b"file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    );
    write("appendonly.aof.1.base.aof", b"");
    // 100,000 SETs of 200-byte values: the heap grows by tens of MB while they load.
    let keys = 100_000;
    let value = "v".repeat(200);
    let mut incr = Vec::new();
    for i in 0..keys {
        support::client::encode(&mut incr, &["SET", &format!("key:{i}"), &value]);
    }
    write("appendonly.aof.1.incr.aof", &incr);

    let server = KeeperServer::start(dir.path(), &aof_args("everysec"));
    let mut client = server.client();
    assert_eq!(client.cmd(&["DBSIZE"]), Resp::Int(keys));
    assert_eq!(client.cmd(&["GET", "key:99999"]), Resp::bulk(&value));

    let log = server.log();
    let cores = thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 || kernel_version() < (5, 14) {
        eprintln!(
            "{cores} CPU(s), Linux {:?}: no prefault expected",
            kernel_version()
        );
        return;
    }
    let line = log
        .lines()
        .find(|l| l.contains("populated on another core during the load"))
        .unwrap_or_else(|| panic!("no prefault in the log:\n{log}"));
    let heap_mb: u64 = line
        .split("the load: ")
        .nth(1)
        .and_then(|rest| rest.split(" MB of heap").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        heap_mb >= 2,
        "the heap grew, the prefault covered none of it: {line}"
    );
}

#[test]
fn a_lone_clients_writes_under_always_are_committed_by_the_idle_io_thread_and_survive_kill() {
    let dir = tempfile::tempdir().unwrap();
    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    let mut client = server.client();
    // The first writes start the lone-writer watch; after 100 ms alone, the I/O thread
    // commits this client's writes itself.
    let mut i = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) || i < 200 {
        assert_eq!(
            client.cmd(&["SET", &format!("k{i}"), &i.to_string()]),
            Resp::Simple("OK".into())
        );
        i += 1;
    }
    let fields = persistence(&mut client);
    let idle: u64 = fields["aof_idle_commits"].parse().unwrap();
    let fsyncs: u64 = fields["aof_fsyncs"].parse().unwrap();
    assert!(idle > 0 && idle <= fsyncs, "idle {idle}, fsyncs {fsyncs}");
    assert_eq!(fields["aof_durable_offset"], fields["aof_written_offset"]);
    drop(client);
    server.signal("KILL");
    drop(server);

    let server = KeeperServer::start(dir.path(), &aof_args("always"));
    let mut client = server.client();
    assert_eq!(client.cmd(&["DBSIZE"]), Resp::Int(i));
    assert_eq!(
        client.cmd(&["GET", &format!("k{}", i - 1)]),
        Resp::bulk(&(i - 1).to_string())
    );
}
