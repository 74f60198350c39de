//! Backups end to end, with the real binaries: `keeper server` makes final and automatic
//! backups into a local folder, `keeper backup create --from` backs up a real `redis-server`
//! and a keeper node over the replication protocol, `--dir` backs up a data folder offline,
//! and `keeper restore` seeds fresh folders that `keeper server` and `redis-server` start from
//! with every key. Damaged backups are refused before anything is written.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::client::{Client, KeeperServer, info_fields};
use support::s3::S3Server;
use support::{RedisServer, keeper};

/// Every type, several databases, TTLs and a stream with a consumer group.
fn populate(c: &mut Client, keys: usize) {
    for i in 0..keys {
        c.cmd(&[
            "SET",
            &format!("s{i}"),
            &format!("value-{i}-{}", "x".repeat(i % 50)),
        ]);
    }
    c.cmd(&["SET", "ttl", "v", "EX", "100000"]);
    c.cmd(&["RPUSH", "l", "a", "b", "c", "d"]);
    c.cmd(&["SADD", "set", "x", "y", "z"]);
    c.cmd(&["HSET", "h", "f1", "v1", "f2", "v2"]);
    c.cmd(&["ZADD", "z", "1.5", "a", "-2", "b", "inf", "c"]);
    c.cmd(&["XADD", "x", "1-1", "f", "v"]);
    c.cmd(&["XGROUP", "CREATE", "x", "grp", "0"]);
    c.cmd(&["SELECT", "5"]);
    c.cmd(&["SET", "in-db-5", "yes"]);
    c.cmd(&["SELECT", "0"]);
}

fn dump(port: u16) -> Vec<String> {
    support::dump_port(port).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `keeper args…`; panics with its output unless it succeeds.
fn run_ok(args: &[&str]) -> String {
    run_env_ok(args, &[])
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// Runs `keeper args…` with extra environment variables (the S3 server's AWS_* settings).
fn run_env(args: &[&str], env: &[(String, String)]) -> Output {
    keeper()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("run keeper")
}

fn run_env_ok(args: &[&str], env: &[(String, String)]) -> String {
    let out = run_env(args, env);
    assert!(
        out.status.success(),
        "keeper {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `keeper restore ID --dir DEST --target TARGET`, which must fail with `expected` in its
/// message; returns the exit code and the message.
fn refused_restore(id: &str, dest: &Path, target: &Path, expected: &str) -> (Option<i32>, String) {
    let out = run(&["restore", id, "--dir", path(dest), "--target", path(target)]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && stderr.contains(expected),
        "restore of {id} into {}: {stderr}",
        dest.display()
    );
    (out.status.code(), stderr)
}

/// `keeper backup list --json` → the backups' (id, kind, keys).
fn list(target: &str) -> Vec<(String, String, u64)> {
    let out = run_ok(&["backup", "list", "--target", target, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("list --json is JSON");
    json["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                b["kind"].as_str().unwrap().to_string(),
                b["keys"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Restores `selector` args into `dir`, starts keeper server there and returns its dump.
fn restore_and_dump(target: &str, selector: &[&str], dir: &Path) -> Vec<String> {
    let mut args = vec!["restore"];
    args.extend_from_slice(selector);
    args.extend_from_slice(&["--dir", path(dir), "--target", target]);
    run_ok(&args);
    let node = KeeperServer::start(dir, &["--save", ""]);
    dump(node.port)
}

#[test]
fn a_final_backup_of_a_server_restores_into_a_fresh_node_with_every_key() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("backups");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = KeeperServer::start(
        &data,
        &[
            "--save",
            "",
            "--backup-target",
            path(&target),
            "--backup-on-shutdown",
            "yes",
            "--backup-retention-days",
            "0",
        ],
    );
    let mut c = server.client();
    populate(&mut c, 500);
    let before = dump(server.port);
    c.send(&["SHUTDOWN", "NOSAVE"]);
    server.wait_exit();
    let backups = list(path(&target));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(backups[0].1, "final");
    assert_eq!(backups[0].2, 507);

    let restored = tmp.path().join("restored");
    let after = restore_and_dump(path(&target), &["--latest"], &restored);
    assert_eq!(after, before);
    // What real Redis starts from, too.
    let redis = RedisServer::start(&restored, "dump.rdb");
    assert_eq!(redis.dump(), before);
}

#[test]
fn the_scheduler_makes_automatic_backups_and_info_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("backups");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Every second: the cron form takes seconds as its first field.
    let server = KeeperServer::start(
        &data,
        &[
            "--save",
            "",
            "--backup-target",
            path(&target),
            "--backup-cron",
            "* * * * * *",
        ],
    );
    let mut c = server.client();
    populate(&mut c, 10);
    let deadline = Instant::now() + Duration::from_secs(60);
    let fields = loop {
        let fields = info_fields(&c.cmd(&["INFO", "backup"]));
        if fields.get("backup_last_status").map(String::as_str) == Some("ok") {
            break fields;
        }
        assert!(
            Instant::now() < deadline,
            "no automatic backup: {fields:?}\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(fields["backup_last_kind"], "automatic");
    assert_eq!(fields["backup_target"], path(&target));
    let backups = list(path(&target));
    assert!(backups.iter().any(|b| b.1 == "automatic"), "{backups:?}");
}

#[test]
fn a_real_redis_server_is_backed_up_over_replication_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let (redis, _) = populated_redis(tmp.path(), 300);
    let before = redis.dump();
    let target = tmp.path().join("backups");
    let out = run_ok(&[
        "backup",
        "create",
        "--from",
        &format!("127.0.0.1:{}", redis.port()),
        "--target",
        path(&target),
        "--name",
        "from-redis",
        "--json",
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["kind"], "manual");
    assert_eq!(manifest["source"]["kind"], "replication");
    assert_eq!(manifest["keys"], 307);
    run_ok(&["backup", "verify", "from-redis", "--target", path(&target)]);

    let restored = tmp.path().join("restored");
    let after = restore_and_dump(path(&target), &["from-redis"], &restored);
    assert_eq!(after, before);
}

#[test]
fn a_data_folder_with_an_aof_is_backed_up_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = KeeperServer::start(&data, &["--save", "", "--appendonly", "yes"]);
    let mut c = server.client();
    populate(&mut c, 200);
    let before = dump(server.port);
    c.send(&["SHUTDOWN", "NOSAVE"]);
    server.wait_exit();

    let target = tmp.path().join("backups");
    run_ok(&[
        "backup",
        "create",
        "--dir",
        path(&data),
        "--target",
        path(&target),
        "--name",
        "offline",
    ]);
    let restored = tmp.path().join("restored");
    run_ok(&[
        "restore",
        "offline",
        "--dir",
        path(&restored),
        "--target",
        path(&target),
        "--appendonly",
    ]);
    // The restored folder has an AOF whose base is the backup: a node with the AOF on loads it.
    let node = KeeperServer::start(&restored, &["--save", "", "--appendonly", "yes"]);
    assert_eq!(dump(node.port), before);
    drop(node);
    let redis = RedisServer::start_with(&restored, "dump.rdb", &["--appendonly", "yes"]);
    assert_eq!(redis.dump(), before);
}

/// A real redis-server in `tmp/redis` holding [`populate`]'s data, and its folder.
fn populated_redis(tmp: &Path, keys: usize) -> (RedisServer, PathBuf) {
    let dir = tmp.join("redis");
    std::fs::create_dir_all(&dir).unwrap();
    let redis = RedisServer::start_with(&dir, "dump.rdb", &["--save", ""]);
    populate(&mut Client::connect(redis.port()).unwrap(), keys);
    (redis, dir)
}

/// A backup made from a small keeper data folder, for the corruption tests.
fn small_backup(tmp: &Path) -> (PathBuf, String) {
    let data = tmp.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = KeeperServer::start(&data, &["--save", ""]);
    let mut c = server.client();
    populate(&mut c, 100);
    c.cmd(&["SAVE"]);
    c.send(&["SHUTDOWN", "NOSAVE"]);
    server.wait_exit();
    let target = tmp.join("backups");
    run_ok(&[
        "backup",
        "create",
        "--dir",
        path(&data),
        "--target",
        path(&target),
        "--name",
        "b1",
    ]);
    (target, "b1".into())
}

#[test]
fn damaged_backups_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, id) = small_backup(tmp.path());
    let data_object = target.join(format!("{id}.rdb.zst"));
    let manifest = target.join(format!("{id}.json"));
    let good_data = std::fs::read(&data_object).unwrap();
    let good_manifest = std::fs::read_to_string(&manifest).unwrap();

    let mut flipped = good_data.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let mut cut = good_data.clone();
    cut.truncate(good_data.len() - 7);
    let raw_crc =
        serde_json::from_str::<serde_json::Value>(&good_manifest).unwrap()["checksums"]["raw"]
            .as_str()
            .unwrap()
            .to_string();
    let wrong_checksum = good_manifest.replace(&raw_crc, "0123456789abcdef");

    type Damage = (&'static str, Vec<u8>, String, &'static str);
    let cases: Vec<Damage> = vec![
        ("bit flip", flipped, good_manifest.clone(), "checksum"),
        ("cut", cut, good_manifest.clone(), "bytes"),
        (
            "wrong checksum",
            good_data.clone(),
            wrong_checksum,
            "checksum",
        ),
    ];
    for (what, data, manifest_text, expected) in cases {
        std::fs::write(&data_object, &data).unwrap();
        std::fs::write(&manifest, &manifest_text).unwrap();
        let out = run(&["backup", "verify", &id, "--target", path(&target)]);
        assert_eq!(out.status.code(), Some(1), "{what}: verify must fail");
        let dest = tmp
            .path()
            .join(format!("restore-{}", what.replace(' ', "-")));
        let (code, stderr) = refused_restore(&id, &dest, &target, expected);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&id),
            "{what}: the message names the backup: {stderr}"
        );
        assert!(!dest.exists(), "{what}: the destination was touched");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".restore-"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: staging left behind");
    }

    // A missing manifest: the backup does not exist.
    std::fs::write(&data_object, &good_data).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    let dest = tmp.path().join("restore-missing");
    refused_restore(&id, &dest, &target, "no such backup");
    assert!(!dest.exists());
    // ... and its data object is a leftover, not a backup.
    let listed = run_ok(&["backup", "list", "--target", path(&target), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(json["backups"].as_array().unwrap().len(), 0);
    assert_eq!(json["orphans"].as_array().unwrap().len(), 1);
}

#[test]
fn a_non_empty_folder_is_refused_unless_forced_and_then_kept_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, id) = small_backup(tmp.path());
    let dest = tmp.path().join("busy");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("precious.txt"), b"keep me").unwrap();
    refused_restore(&id, &dest, &target, "not empty");
    assert!(!dest.join("dump.rdb").exists());

    let out = run_ok(&[
        "restore",
        &id,
        "--dir",
        path(&dest),
        "--target",
        path(&target),
        "--force",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let aside = PathBuf::from(json["moved_aside"].as_str().expect("moved aside"));
    assert_eq!(
        std::fs::read(aside.join("precious.txt")).unwrap(),
        b"keep me"
    );
    assert!(dest.join("dump.rdb").exists());
    assert!(!dest.join("precious.txt").exists());

    // An empty folder is fine without --force.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run_ok(&[
        "restore",
        &id,
        "--dir",
        path(&empty),
        "--target",
        path(&target),
    ]);
    assert!(empty.join("dump.rdb").exists());
}

#[test]
fn a_plain_rdb_file_seeds_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (redis, source) = populated_redis(tmp.path(), 50);
    Client::connect(redis.port()).unwrap().cmd(&["SAVE"]);
    let before = redis.dump();
    let dest = tmp.path().join("seeded");
    run_ok(&[
        "restore",
        path(&source.join("dump.rdb")),
        "--dir",
        path(&dest),
    ]);
    let node = KeeperServer::start(&dest, &["--save", ""]);
    assert_eq!(dump(node.port), before);
}

#[test]
fn list_show_delete_export_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let (target, id) = small_backup(tmp.path());
    let shown = run_ok(&["backup", "show", &id, "--target", path(&target), "--json"]);
    let manifest: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(manifest["id"], id.as_str());
    assert_eq!(manifest["compression"], "zstd");

    let other = tmp.path().join("other");
    run_ok(&[
        "backup",
        "export",
        &id,
        "--to",
        path(&other),
        "--target",
        path(&target),
    ]);
    assert_eq!(list(path(&other)).len(), 1);
    let restored = tmp.path().join("from-export");
    run_ok(&[
        "restore",
        &id,
        "--dir",
        path(&restored),
        "--target",
        path(&other),
    ]);

    // Manual backups never expire; pruning leaves it, deleting removes it.
    run_ok(&[
        "backup",
        "prune",
        "--target",
        path(&target),
        "--retention-days",
        "1",
    ]);
    assert_eq!(list(path(&target)).len(), 1);
    run_ok(&["backup", "delete", &id, "--target", path(&target)]);
    assert!(list(path(&target)).is_empty());
    assert!(!target.join(format!("{id}.rdb.zst")).exists());
}

#[test]
fn backups_go_to_s3_and_restore_from_it_and_damage_there_is_refused() {
    let s3 = S3Server::start();
    let env = s3.env();
    let target = s3.url("cache-1/backups");
    let tmp = tempfile::tempdir().unwrap();

    // A keeper node backs itself up into S3 at shutdown (the server reads AWS_* too).
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = KeeperServer::start_with_env(
        &data,
        &[
            "--save",
            "",
            "--backup-on-shutdown",
            "yes",
            "--backup-target",
            &target,
        ],
        &env,
    );
    let mut c = server.client();
    populate(&mut c, 300);
    let before = dump(server.port);
    c.send(&["SHUTDOWN", "NOSAVE"]);
    let status = server.wait_exit();
    assert!(status.success(), "{}", server.log());

    let listed = run_env_ok(&["backup", "list", "--target", &target, "--json"], &env);
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let backups = json["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{json}");
    let id = backups[0]["id"].as_str().unwrap().to_string();
    assert_eq!(backups[0]["kind"], "final");
    // The objects are where the layout says.
    assert!(
        s3.object_path(&format!("cache-1/backups/{id}.rdb.zst"))
            .exists()
    );
    assert!(
        s3.object_path(&format!("cache-1/backups/{id}.json"))
            .exists()
    );

    let restored = tmp.path().join("restored");
    run_env_ok(
        &[
            "restore",
            "--latest",
            "--dir",
            path(&restored),
            "--target",
            &target,
        ],
        &env,
    );
    let node = KeeperServer::start(&restored, &["--save", ""]);
    assert_eq!(dump(node.port), before);
    drop(node);

    // Export to a local folder and back to another S3 prefix.
    let local = tmp.path().join("local");
    run_env_ok(
        &[
            "backup",
            "export",
            &id,
            "--target",
            &target,
            "--to",
            path(&local),
        ],
        &env,
    );
    let elsewhere = s3.url("elsewhere");
    run_env_ok(
        &[
            "backup",
            "export",
            &id,
            "--target",
            path(&local),
            "--to",
            &elsewhere,
        ],
        &env,
    );
    run_env_ok(&["backup", "verify", &id, "--target", &elsewhere], &env);

    // A plain RDB object (as an operator uploads Redis's dump.rdb) seeds a node too.
    let plain = s3.object_path("seeds/dump.rdb");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::copy(restored.join("dump.rdb"), &plain).unwrap();
    let seeded = tmp.path().join("seeded");
    let object_url = format!("{}/dump.rdb", s3.url("seeds"));
    run_env_ok(&["restore", &object_url, "--dir", path(&seeded)], &env);
    let node = KeeperServer::start(&seeded, &["--save", ""]);
    assert_eq!(dump(node.port), before);
    drop(node);

    // A bit flipped on the server: refused before anything is written.
    let object = s3.object_path(&format!("cache-1/backups/{id}.rdb.zst"));
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let dest = tmp.path().join("never");
    let out = run_env(
        &["restore", &id, "--dir", path(&dest), "--target", &target],
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("checksum"), "{stderr}");
    assert!(!dest.exists());
}

/// A fake primary on a port of its own: answers the handshake, then sends `+FULLRESYNC`,
/// `$<announced>` and `payload`, and closes.
fn fake_primary(announced: usize, payload: Vec<u8>) -> (u16, thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        let mut answered = 0;
        // PING, REPLCONF capa, REPLCONF rdb-only, REPLCONF keeper-rdb-compression, PSYNC:
        // each answered as it arrives.
        loop {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "the client hung up during the handshake");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            let asked = seen.matches("PING").count()
                + seen.matches("REPLCONF").count()
                + seen.matches("PSYNC").count();
            while answered < asked {
                let mut reply = match answered {
                    0 => b"+PONG\r\n".to_vec(),
                    1..=3 => b"+OK\r\n".to_vec(),
                    _ => {
                        format!("+FULLRESYNC {} 7\r\n${announced}\r\n", "a".repeat(40)).into_bytes()
                    }
                };
                if answered == 4 {
                    reply.extend_from_slice(&payload);
                }
                conn.write_all(&reply).unwrap();
                answered += 1;
            }
            if answered == 5 {
                return;
            }
        }
    });
    (port, peer)
}

/// `backup create --from` a fake primary that sends `payload` after promising `announced`
/// bytes: it must fail, with stderr matching `expect`, and leave the catalog empty.
fn a_bad_transfer_publishes_nothing(announced: usize, payload: Vec<u8>, expect: &[&str]) {
    let (port, peer) = fake_primary(announced, payload);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("backups");
    let out = run(&[
        "backup",
        "create",
        "--from",
        &format!("127.0.0.1:{port}"),
        "--target",
        path(&target),
    ]);
    peer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(expect.iter().any(|e| stderr.contains(e)), "{stderr}");
    let listed = run_ok(&["backup", "list", "--target", path(&target), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(json["backups"].as_array().unwrap().len(), 0, "{json}");
    assert_eq!(json["orphans"].as_array().unwrap().len(), 0, "{json}");
}

#[test]
fn a_transfer_cut_short_publishes_nothing() {
    // 100,000 bytes promised, 10 sent.
    a_bad_transfer_publishes_nothing(100_000, b"REDIS0010\x7f".to_vec(), &["closed", "bytes"]);
}

/// The RDB from a live node is checked as it arrives (never held whole): a damaged one, or
/// one with bytes after its end, is refused at the end of the transfer.
#[test]
fn a_damaged_transfer_publishes_nothing() {
    let rdb = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/redis-7.0/mixed.rdb"),
    )
    .unwrap();
    let mut flipped = rdb.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    a_bad_transfer_publishes_nothing(flipped.len(), flipped, &["does not load"]);
    let mut longer = rdb.clone();
    longer.extend_from_slice(b"garbage");
    a_bad_transfer_publishes_nothing(longer.len(), longer, &["follow the end of the RDB"]);
}
