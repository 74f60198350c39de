//! Fetching a point-in-time RDB over the replication protocol (`keeper::replication::sync`):
//! from real `redis-server` 7.0 (diskless and disk-backed, with a password), from `keeper
//! server` (both payload forms), with the real `redis-cli --rdb` against keeper, and from
//! fake peers that break the protocol.
//!
//! A fetched RDB is checked with `keeper::rdb::check::check`, then loaded by a real
//! `redis-server` whose dataset must equal the source's key by key.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use keeper::rdb::check::check;
use keeper::replication::sync::{
    Auth, CHUNK, FetchOptions, FetchedRdb, RdbFetch, fetch_rdb, fetch_rdb_with,
};
use keeper::storage::FileView;
use keeper::{Error, Result};
use support::client::{Client, KeeperServer, Resp, info_fields};
use support::dump::dump_port;
use support::{RedisServer, canonical, compare, redis_check_rdb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Fills a server with every value type across two databases, a TTL, and strings large
/// enough that the RDB spans many chunks of the transfer.
fn populate(port: u16) {
    let mut c = Client::connect(port).unwrap();
    let mut ok = |args: &[&str]| {
        let reply = c.cmd(args);
        assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
    };
    ok(&["SET", "plain", "hello"]);
    ok(&["SET", "number", "12345"]);
    ok(&["SET", "ttl", "soon", "EX", "100000"]);
    ok(&["RPUSH", "list", "a", "b", "c"]);
    ok(&["SADD", "set", "x", "y", "1"]);
    ok(&["ZADD", "zset", "1.5", "m1", "-2", "m2"]);
    ok(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
    ok(&["XADD", "stream", "1-1", "field", "value"]);
    for i in 0..40 {
        ok(&["SET", &format!("big:{i}"), &pseudo_random_text(i, 20_000)]);
    }
    ok(&["SELECT", "5"]);
    for i in 0..300 {
        ok(&["SET", &format!("k{i}"), &format!("v{i}")]);
    }
}

/// `len` hex digits that LZF cannot shrink much, different for each `seed`.
fn pseudo_random_text(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x & 15) as usize])
        })
        .collect()
}

/// Fetches with `options`, collecting the bytes and checking the chunks and progress calls.
async fn fetch(port: u16, options: &FetchOptions) -> Result<(FetchedRdb, Vec<u8>)> {
    let mut rdb = Vec::new();
    let mut largest_chunk = 0;
    let mut reported = Vec::new();
    let fetched = fetch_rdb_with(
        &format!("127.0.0.1:{port}"),
        options,
        &mut |chunk| {
            largest_chunk = largest_chunk.max(chunk.len());
            rdb.extend_from_slice(chunk);
            Ok(())
        },
        &mut |done, total| reported.push((done, total)),
    )
    .await?;
    assert!(
        largest_chunk <= 2 * CHUNK,
        "a chunk of {largest_chunk} bytes"
    );
    assert_eq!(fetched.bytes, rdb.len() as u64);
    let last = reported.last().copied().unwrap();
    assert_eq!(last.0, rdb.len() as u64, "the last progress call: {last:?}");
    if fetched.diskless {
        assert_eq!(last.1, None);
    } else {
        assert_eq!(last.1, Some(rdb.len() as u64));
    }
    Ok((fetched, rdb))
}

/// Checks `rdb` as a restore would, and returns its AUX field `name`.
fn check_rdb(rdb: &[u8]) -> keeper::rdb::check::CheckReport {
    let report = check(FileView::from_vec(rdb.to_vec()), &mut |_| {})
        .unwrap_or_else(|e| panic!("the fetched RDB does not check: {e}"));
    assert_eq!(report.rdb_len, rdb.len() as u64, "bytes after the RDB");
    report
}

fn aux(report: &keeper::rdb::check::CheckReport, name: &str) -> Option<String> {
    report
        .aux
        .iter()
        .find(|(k, _)| &k[..] == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// Starts a real redis-server on `rdb` and returns its dataset in canonical form.
fn loaded_by_redis(rdb: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), rdb).unwrap();
    let redis = RedisServer::start(dir.path(), "dump.rdb");
    canonical(&dump_port(redis.port()))
}

fn assert_same_data(what: &str, source: &[String], rdb: &[u8]) {
    if let Err(report) = compare(what, source, &loaded_by_redis(rdb)) {
        panic!("{report}");
    }
}

fn replication_error(err: Error) -> String {
    match err {
        Error::Replication { ref reason, .. } => {
            let text = err.to_string();
            assert!(text.contains(reason.as_str()));
            text
        }
        other => panic!("not a replication error: {other}"),
    }
}

// ---- against real Redis -------------------------------------------------------------------

fn redis_info(port: u16) -> std::collections::HashMap<String, String> {
    info_fields(&Client::connect(port).unwrap().cmd(&["INFO", "replication"]))
}

async fn fetch_from_redis(diskless_sync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_with(
        dir.path(),
        "dump.rdb",
        &[
            "--repl-diskless-sync",
            diskless_sync,
            // Redis sends `\n` keep-alives while it waits, before `+FULLRESYNC`.
            "--repl-diskless-sync-delay",
            "2",
        ],
    );
    populate(redis.port());
    let source = canonical(&dump_port(redis.port()));

    let (fetched, rdb) = fetch(redis.port(), &FetchOptions::default()).await.unwrap();
    assert_eq!(fetched.diskless, diskless_sync == "yes");
    let report = check_rdb(&rdb);
    let info = redis_info(redis.port());
    assert_eq!(fetched.replid.as_deref(), Some(&info["master_replid"][..]));
    assert_eq!(aux(&report, "repl-id"), fetched.replid);
    assert_eq!(
        aux(&report, "repl-offset"),
        fetched.offset.map(|o| o.to_string())
    );
    assert_same_data("redis → fetch → redis", &source, &rdb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_redis_diskless() {
    fetch_from_redis("yes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_redis_through_its_dump_file() {
    fetch_from_redis("no").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_redis_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let redis =
        RedisServer::start_with(dir.path(), "dump.rdb", &["--repl-diskless-sync-delay", "0"]);
    populate(redis.port());
    let source = canonical(&dump_port(redis.port()));
    // Set after the start: the harness's readiness PING has no password.
    let mut c = Client::connect(redis.port()).unwrap();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "requirepass", "s3cret"]),
        Resp::Simple("OK".into())
    );

    let addr = format!("127.0.0.1:{}", redis.port());
    let mut rdb = Vec::new();
    let auth = Auth {
        user: None,
        password: "s3cret".into(),
    };
    let fetched = fetch_rdb(
        &addr,
        Some(&auth),
        &mut |chunk| {
            rdb.extend_from_slice(chunk);
            Ok(())
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(fetched.bytes, rdb.len() as u64);
    check_rdb(&rdb);
    assert_same_data("redis (requirepass) → fetch → redis", &source, &rdb);

    // The ACL form, with the default user.
    let options = FetchOptions {
        auth: Some(Auth {
            user: Some("default".into()),
            password: "s3cret".into(),
        }),
        ..FetchOptions::default()
    };
    check_rdb(&fetch(redis.port(), &options).await.unwrap().1);

    let wrong = FetchOptions {
        auth: Some(Auth {
            user: None,
            password: "wrong".into(),
        }),
        ..FetchOptions::default()
    };
    let err = replication_error(fetch(redis.port(), &wrong).await.unwrap_err());
    assert!(
        err.contains(&addr) && err.contains("AUTH refused") && err.contains("WRONGPASS"),
        "{err}"
    );
    let err = replication_error(
        fetch(redis.port(), &FetchOptions::default())
            .await
            .unwrap_err(),
    );
    assert!(
        err.contains("requires a password") && err.contains("NOAUTH"),
        "{err}"
    );
}

// ---- against keeper server ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_keeper_in_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(dir.path(), &[]);
    populate(keeper.port);
    let source = canonical(&dump_port(keeper.port));
    let files_before = data_files(dir.path());

    for capa_eof in [true, false] {
        let options = FetchOptions {
            capa_eof,
            ..FetchOptions::default()
        };
        let (fetched, rdb) = fetch(keeper.port, &options).await.unwrap();
        assert_eq!(fetched.diskless, capa_eof);
        let report = check_rdb(&rdb);
        let info = info_fields(&keeper.client().cmd(&["INFO", "replication"]));
        assert_eq!(fetched.replid.as_deref(), Some(&info["master_replid"][..]));
        assert_eq!(
            fetched.offset.map(|o| o.to_string()).as_deref(),
            Some(&info["master_repl_offset"][..])
        );
        assert_eq!(aux(&report, "repl-id"), fetched.replid);
        assert_eq!(
            aux(&report, "repl-offset"),
            fetched.offset.map(|o| o.to_string())
        );
        // The last command propagated ran in database 5; after a full sync the stream's
        // next command starts with a SELECT, so the second RDB says 0 (as Redis's
        // `slaveseldb == -1`).
        let stream_db = if capa_eof { "5" } else { "0" };
        assert_eq!(aux(&report, "repl-stream-db").as_deref(), Some(stream_db));
        let (ok, out) = {
            let file = dir.path().join("fetched.rdb");
            std::fs::write(&file, &rdb).unwrap();
            let checked = redis_check_rdb(&file);
            std::fs::remove_file(&file).unwrap();
            checked
        };
        assert!(ok, "redis-check-rdb refused the RDB:\n{out}");
        assert_same_data(
            &format!("keeper (capa eof {capa_eof}) → fetch → redis"),
            &source,
            &rdb,
        );
    }
    // The staged form's temp file is gone.
    assert_eq!(data_files(dir.path()), files_before);
}

/// `keeper backup create --from` asks for an RDB without LZF (`REPLCONF
/// keeper-rdb-compression 0`): a keeper node sends its strings plain in both forms, the RDB
/// holds the same data; real Redis refuses the option and sends its usual RDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_client_gets_an_rdb_without_lzf() {
    let add_compressible = |port: u16| {
        let mut c = Client::connect(port).unwrap();
        for i in 0..20 {
            let value = "a".repeat(5_000);
            assert_eq!(
                c.cmd(&["SET", &format!("rep:{i}"), &value]),
                Resp::Simple("OK".into())
            );
        }
    };
    let plain = FetchOptions {
        uncompressed: true,
        ..FetchOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(dir.path(), &[]);
    populate(keeper.port);
    add_compressible(keeper.port);
    let source = canonical(&dump_port(keeper.port));
    for capa_eof in [true, false] {
        let (_, lzf) = fetch(
            keeper.port,
            &FetchOptions {
                capa_eof,
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
        let (_, uncompressed) = fetch(
            keeper.port,
            &FetchOptions {
                capa_eof,
                ..plain.clone()
            },
        )
        .await
        .unwrap();
        assert!(
            uncompressed.len() > lzf.len() + 20 * 4_900,
            "capa eof {capa_eof}: {} bytes with LZF, {} without",
            lzf.len(),
            uncompressed.len()
        );
        check_rdb(&uncompressed);
        assert_same_data(
            &format!("keeper (capa eof {capa_eof}, no LZF) → fetch → redis"),
            &source,
            &uncompressed,
        );
    }

    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_with(redis_dir.path(), "dump.rdb", &[]);
    populate(redis.port());
    add_compressible(redis.port());
    let source = canonical(&dump_port(redis.port()));
    let (_, from_redis) = fetch(redis.port(), &plain).await.unwrap();
    let (_, usual) = fetch(redis.port(), &FetchOptions::default()).await.unwrap();
    assert!(
        from_redis.len() < usual.len() + 1_000,
        "Redis compresses as configured"
    );
    assert_same_data(
        "redis (asked for no LZF) → fetch → redis",
        &source,
        &from_redis,
    );
}

/// The data folder's entries (logs aside).
fn data_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// The RDB is the dataset at the `+FULLRESYNC` offset, and the node keeps serving (and
/// writing) while a slow client holds the transfer half way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_sends_a_point_in_time_rdb_without_stalling() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(dir.path(), &[]);
    let mut other = keeper.client();
    for (done, capa_eof) in [true, false].into_iter().enumerate() {
        // About 24 MB: more than the socket buffers and the channel hold.
        for i in 0..120 {
            other.cmd(&["SET", &format!("big:{i}"), &pseudo_random_text(i, 200_000)]);
        }
        let source = canonical(&dump_port(keeper.port));
        let options = FetchOptions {
            capa_eof,
            ..FetchOptions::default()
        };
        let mut fetch = RdbFetch::start(&format!("127.0.0.1:{}", keeper.port), &options)
            .await
            .unwrap();
        let mut rdb = fetch.next_chunk().await.unwrap().unwrap().to_vec();
        // The transfer waits for us; the node answers others at once, and what they write
        // (the diskless form is still encoding the snapshot) is not in the RDB.
        let started = Instant::now();
        assert_eq!(other.cmd(&["FLUSHALL"]), Resp::Simple("OK".into()));
        assert_eq!(other.cmd(&["SET", "after", "1"]), Resp::Simple("OK".into()));
        assert!(started.elapsed() < Duration::from_secs(2));
        let finished = keeper.log().matches("Synchronization with replica").count();
        assert_eq!(
            finished,
            done,
            "the transfer is not over yet:\n{}",
            keeper.log()
        );
        while let Some(chunk) = fetch.next_chunk().await.unwrap() {
            rdb.extend_from_slice(chunk);
        }
        assert_eq!(fetch.fetched().bytes, rdb.len() as u64);
        check_rdb(&rdb);
        assert_same_data("point in time", &source, &rdb);
    }
}

#[test]
fn redis_cli_rdb_against_keeper() {
    let dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(dir.path(), &[]);
    populate(keeper.port);
    let source = canonical(&dump_port(keeper.port));
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("backup.rdb");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &keeper.port.to_string(), "--rdb"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-cli --rdb failed: {stderr}");
    assert!(
        stderr.contains("Transfer finished with success"),
        "{stderr}"
    );
    let (ok, report) = redis_check_rdb(&file);
    assert!(ok, "redis-check-rdb refused it:\n{report}");
    assert_same_data(
        "keeper → redis-cli --rdb → redis",
        &source,
        &std::fs::read(&file).unwrap(),
    );
}

/// REPLCONF, SYNC and PSYNC answer as Redis 7.0 does (one script against both servers).
#[test]
fn replication_commands_answer_as_redis() {
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path(), "dump.rdb");
    let keeper_dir = tempfile::tempdir().unwrap();
    let keeper = KeeperServer::start(keeper_dir.path(), &[]);
    let script: &[&[&str]] = &[
        &["REPLCONF"],
        &["REPLCONF", "capa"],
        &["REPLCONF", "listening-port", "abc"],
        &[
            "REPLCONF",
            "listening-port",
            "6380",
            "ip-address",
            "10.0.0.1",
        ],
        &["REPLCONF", "ip-address", &"1".repeat(255)],
        &["REPLCONF", "ip-address", &"1".repeat(256)],
        &[
            "REPLCONF", "capa", "eof", "capa", "psync2", "capa", "unknown",
        ],
        &["REPLCONF", "rdb-only", "2"],
        &["REPLCONF", "rdb-only", "x"],
        &["REPLCONF", "rdb-only", "0"],
        &["REPLCONF", "bogus", "1"],
        &["REPLCONF", "Version", "8.0.0"],
        &["REPLCONF", "rdb-filter-only", "bogus"],
        &["REPLCONF", "rdb-filter-only", "\"unbalanced"],
        &["REPLCONF", "rdb-filter-only", "functions FUNCTIONS"],
        &["REPLCONF", "rdb-filter-only", ""],
        // No reply to ACK or GETACK: the PING after each answers instead.
        &["REPLCONF", "ack", "5"],
        &["PING"],
        &["REPLCONF", "getack", "*"],
        &["PING"],
        &["PSYNC", "?"],
        &["PSYNC", "?", "x"],
        &["SYNC", "extra"],
        &["MULTI"],
        &["SYNC"],
        &["PSYNC", "?", "-1"],
        &["EXEC"],
    ];
    let run = |port: u16| {
        let mut c = Client::connect(port).unwrap();
        script
            .iter()
            .filter_map(|args| {
                c.send(args);
                (!matches!(args, ["REPLCONF", "ack" | "getack", ..])).then(|| c.read())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(keeper.port), run(redis.port()));

    // A pipelined SYNC after a reply still pending is refused, as Redis does.
    let pending = |port: u16| {
        let mut c = Client::connect(port).unwrap();
        c.cmd(&["REPLCONF", "rdb-only", "1"]);
        let mut out = Vec::new();
        for args in [&["PING"][..], &["SYNC"], &["PING"]] {
            support::client::encode(&mut out, args);
        }
        c.send_raw(&out);
        (c.read(), c.read(), c.read())
    };
    assert_eq!(pending(keeper.port), pending(redis.port()));
}

// ---- fake peers ---------------------------------------------------------------------------

/// What a fake primary answers to PSYNC (and, if PSYNC is refused, to SYNC), then does.
#[derive(Clone)]
struct Script {
    psync: Vec<Vec<u8>>,
    sync: Vec<Vec<u8>>,
    /// Pause between the pieces sent.
    pause: Duration,
    /// Keep the connection open this long after the last piece.
    linger: Duration,
}

impl Script {
    fn new(psync: &[&[u8]]) -> Script {
        Script {
            psync: psync.iter().map(|p| p.to_vec()).collect(),
            sync: Vec::new(),
            pause: Duration::ZERO,
            linger: Duration::ZERO,
        }
    }
}

/// A fake primary on a free port: answers the handshake, then plays `script`.
async fn fake_primary(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        loop {
            let Some(command) = read_command(&mut socket, &mut buf).await else {
                return;
            };
            let name = command[0].to_ascii_uppercase();
            let pieces = match &name[..] {
                b"PING" => vec![b"+PONG\r\n".to_vec()],
                b"REPLCONF" | b"AUTH" => vec![b"+OK\r\n".to_vec()],
                b"PSYNC" => script.psync.clone(),
                b"SYNC" => script.sync.clone(),
                _ => vec![b"-ERR unknown command\r\n".to_vec()],
            };
            let last = matches!(&name[..], b"PSYNC" | b"SYNC") && !pieces[0].starts_with(b"-ERR");
            for piece in pieces {
                if socket.write_all(&piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(script.pause).await;
            }
            if last {
                tokio::time::sleep(script.linger).await;
                return;
            }
        }
    });
    addr
}

/// Reads one RESP multibulk command (enough of RESP for the handshake).
async fn read_command(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<Vec<u8>>> {
    loop {
        if let Some((command, used)) = parse_command(buf) {
            buf.drain(..used);
            return Some(command);
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let line = |at: usize| -> Option<(usize, usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    };
    let (argc, mut at) = line(0)?;
    let mut args = Vec::new();
    for _ in 0..argc {
        let (len, start) = line(at)?;
        if buf.len() < start + len + 2 {
            return None;
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Some((args, at))
}

const REPLID: &str = "0123456789abcdef0123456789abcdef01234567";

fn fullresync() -> Vec<u8> {
    format!("+FULLRESYNC {REPLID} 77\r\n").into_bytes()
}

async fn fetch_fake(script: Script, options: &FetchOptions) -> (Result<FetchedRdb>, Vec<u8>) {
    let addr = fake_primary(script).await;
    let mut rdb = Vec::new();
    let result = fetch_rdb_with(
        &addr,
        options,
        &mut |chunk| {
            assert!(chunk.len() <= 2 * CHUNK, "a chunk of {} bytes", chunk.len());
            rdb.extend_from_slice(chunk);
            Ok(())
        },
        &mut |_, _| {},
    )
    .await;
    (result, rdb)
}

#[tokio::test]
async fn a_huge_length_then_close_is_an_error_without_a_huge_allocation() {
    let script = Script::new(&[&fullresync(), b"$99999999999999999\r\nREDIS"]);
    let (result, rdb) = fetch_fake(script, &FetchOptions::default()).await;
    let err = replication_error(result.unwrap_err());
    assert!(
        err.contains("connection closed after 5 of 99999999999999999 RDB bytes"),
        "{err}"
    );
    assert_eq!(rdb, b"REDIS");
}

#[tokio::test]
async fn garbage_is_quoted() {
    let (result, _) = fetch_fake(
        Script::new(&[&fullresync(), b"hello\x01world\r\n"]),
        &FetchOptions::default(),
    )
    .await;
    let err = replication_error(result.unwrap_err());
    assert!(err.contains("expected $<length> or $EOF:"), "{err}");
    assert!(err.contains(r#""hello\x01world""#), "{err}");

    // An endless line without a line end.
    let endless = vec![b'x'; 100_000];
    let (result, _) = fetch_fake(Script::new(&[&endless]), &FetchOptions::default()).await;
    let err = replication_error(result.unwrap_err());
    assert!(err.contains("a line longer than 4096 bytes"), "{err}");

    // A malformed +FULLRESYNC, and a partial resync nobody asked for.
    let (result, _) = fetch_fake(
        Script::new(&[b"+FULLRESYNC nonsense\r\n"]),
        &FetchOptions::default(),
    )
    .await;
    assert!(replication_error(result.unwrap_err()).contains("malformed reply to PSYNC"));
    let (result, _) = fetch_fake(Script::new(&[b"+CONTINUE\r\n"]), &FetchOptions::default()).await;
    assert!(replication_error(result.unwrap_err()).contains("partial resync"));
}

#[tokio::test]
async fn peer_errors_are_quoted() {
    let loading = b"-LOADING Redis is loading the dataset in memory\r\n";
    let (result, _) = fetch_fake(Script::new(&[loading]), &FetchOptions::default()).await;
    let err = replication_error(result.unwrap_err());
    assert!(
        err.contains("PSYNC refused") && err.contains("-LOADING Redis is loading"),
        "{err}"
    );
}

#[tokio::test]
async fn a_node_without_psync_gets_sync() {
    let mut script = Script::new(&[b"-ERR unknown command 'PSYNC'\r\n"]);
    script.sync = vec![b"\n\n$7\r\nPAYLOAD".to_vec()];
    let (result, rdb) = fetch_fake(script, &FetchOptions::default()).await;
    let fetched = result.unwrap();
    assert_eq!(
        fetched,
        FetchedRdb {
            replid: None,
            offset: None,
            bytes: 7,
            diskless: false
        }
    );
    assert_eq!(rdb, b"PAYLOAD");

    // SYNC refused too: both refusals are quoted.
    let mut script = Script::new(&[b"-ERR unknown command 'PSYNC'\r\n"]);
    script.sync = vec![b"-ERR unknown command 'SYNC'\r\n".to_vec()];
    let (result, _) = fetch_fake(script, &FetchOptions::default()).await;
    let err = replication_error(result.unwrap_err());
    assert!(err.contains("'SYNC'") && err.contains("'PSYNC'"), "{err}");
}

/// The diskless form with the end mark cut across writes, and keep-alives first: the mark is
/// found across reads and not handed out.
#[tokio::test]
async fn the_end_mark_split_across_reads_is_stripped() {
    let mark = "9".repeat(40);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut pieces: Vec<Vec<u8>> = vec![b"\n".to_vec(), fullresync(), b"\n\n".to_vec()];
    pieces.push(format!("$EOF:{mark}\r\n").into_bytes());
    pieces.push(payload[..150_000].to_vec());
    pieces.push([&payload[150_000..], &mark.as_bytes()[..17]].concat());
    pieces.push(mark.as_bytes()[17..].to_vec());
    let mut script = Script::new(&pieces.iter().map(Vec::as_slice).collect::<Vec<_>>());
    script.pause = Duration::from_millis(50);
    script.linger = Duration::from_secs(5);
    let (result, rdb) = fetch_fake(script, &FetchOptions::default()).await;
    let fetched = result.unwrap();
    assert_eq!(rdb, payload);
    assert_eq!(
        fetched,
        FetchedRdb {
            replid: Some(REPLID.into()),
            offset: Some(77),
            bytes: payload.len() as u64,
            diskless: true
        }
    );

    // Cut before the mark is complete.
    let pieces = [
        fullresync(),
        format!("$EOF:{mark}\r\n").into_bytes(),
        [&payload[..1000], &mark.as_bytes()[..39]].concat(),
    ];
    let (result, _) = fetch_fake(
        Script::new(&pieces.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        &FetchOptions::default(),
    )
    .await;
    let err = replication_error(result.unwrap_err());
    assert!(
        err.contains("connection closed after 1039 RDB bytes, before the end mark"),
        "{err}"
    );
}

#[tokio::test]
async fn silence_is_a_timeout_but_keepalives_are_not() {
    let options = FetchOptions {
        idle_timeout: Duration::from_millis(600),
        ..FetchOptions::default()
    };
    // Keep-alives every 200 ms for 1.2 s, then the payload: no timeout.
    let mut pieces = vec![fullresync()];
    pieces.extend((0..6).map(|_| b"\n".to_vec()));
    pieces.push(b"$3\r\nabc".to_vec());
    let mut script = Script::new(&pieces.iter().map(Vec::as_slice).collect::<Vec<_>>());
    script.pause = Duration::from_millis(200);
    script.linger = Duration::from_secs(5);
    let (result, rdb) = fetch_fake(script, &options).await;
    assert_eq!(result.unwrap().bytes, 3);
    assert_eq!(rdb, b"abc");

    // Nothing after the header for longer than the idle timeout.
    let mut script = Script::new(&[&fullresync(), b"$10\r\nabc"]);
    script.linger = Duration::from_secs(5);
    let started = Instant::now();
    let (result, _) = fetch_fake(script, &options).await;
    let err = replication_error(result.unwrap_err());
    assert!(
        err.contains("nothing received for 0.6 s while waiting for the RDB payload"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_refused_connection_names_the_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = fetch_rdb(&addr, None, &mut |_| Ok(()), &mut |_, _| {})
        .await
        .unwrap_err();
    let text = replication_error(err);
    assert!(
        text.contains(&addr) && text.contains("cannot connect"),
        "{text}"
    );
}

#[tokio::test]
async fn a_sink_error_stops_the_fetch() {
    let script = Script::new(&[&fullresync(), b"$3\r\nabc"]);
    let addr = fake_primary(script).await;
    let err = fetch_rdb(
        &addr,
        None,
        &mut |_| Err(Error::InvalidArgument("disk full".into())),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m == "disk full"),
        "{err}"
    );
}
