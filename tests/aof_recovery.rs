//! AOF directories written by the real `redis-server` 7.0 load into keeper with the data Redis
//! holds; damaged ones are truncated (torn tail of the last file) or refused with the file and
//! offset; `keeper check-aof` judges them as described in src/aof/check.rs and agrees with
//! `redis-check-aof` where both can say.
//!
//! The reference dataset: before stopping, Redis `SAVE`s a dump.rdb; `keeper inspect --format
//! json` of that RDB and of the AOF directory must be equal in canonical form.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keeper::aof::loader::{self, LoadOptions, LoadReport};
use keeper::aof::manifest::{self, AofNames};
use keeper::store::Store;
use keeper::{Error, OsStorage};
use support::client::Client;
use support::{RedisServer, canonical, keeper, lines, now_ms};

/// A `redis-server` with AOF on in its own directory (`support::RedisServer`: a port of its
/// own, readiness checked against its pid); stopped on drop.
struct AofRedis {
    server: RedisServer,
    dir: PathBuf,
}

impl AofRedis {
    fn start(dir: &Path, extra: &[&str]) -> AofRedis {
        let mut options = vec!["--appendonly", "yes", "--appendfsync", "always"];
        options.extend_from_slice(extra);
        AofRedis {
            server: RedisServer::start_with(dir, "dump.rdb", &options),
            dir: dir.to_path_buf(),
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.server.port()).unwrap()
    }

    fn info_field(&self, field: &str) -> String {
        let info = self.client().cmd(&["INFO", "persistence"]).text();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
            .unwrap_or_default()
    }

    fn bgrewriteaof(&self) {
        self.client().cmd(&["BGREWRITEAOF"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.info_field("aof_rewrite_in_progress") != "0"
            || self.info_field("aof_rewrite_scheduled") != "0"
        {
            assert!(Instant::now() < deadline, "rewrite did not finish");
            sleep(Duration::from_millis(20));
        }
        assert_eq!(self.info_field("aof_last_bgrewrite_status"), "ok");
    }

    /// SAVE a dump.rdb (the reference), then SHUTDOWN NOSAVE.
    fn save_and_stop(self) -> PathBuf {
        let mut c = self.client();
        assert_eq!(c.cmd(&["SAVE"]).text(), "OK");
        let _ = c.try_cmd(&["SHUTDOWN", "NOSAVE"]);
        let mut server = self.server;
        server.wait_exit();
        self.dir.join("dump.rdb")
    }
}

/// A mix of every type, several databases, TTLs, MULTI/EXEC and commands Redis rewrites.
fn write_mix(c: &mut Client, round: &str) {
    let k = |name: &str| format!("{name}-{round}");
    c.cmd(&["SET", &k("s"), "hello"]);
    c.cmd(&["APPEND", &k("s"), " world"]);
    c.cmd(&["SET", &k("n"), "10"]);
    c.cmd(&["INCRBY", &k("n"), "5"]);
    c.cmd(&["SET", &k("ttl"), "v", "EX", "100000"]);
    c.cmd(&["RPUSH", &k("l"), "a", "b", "c", "d"]);
    c.cmd(&["LPOP", &k("l")]);
    c.cmd(&["SADD", &k("set"), "x", "y", "z"]);
    c.cmd(&["SREM", &k("set"), "y"]);
    c.cmd(&["HSET", &k("h"), "f1", "v1", "f2", "v2"]);
    c.cmd(&["ZADD", &k("z"), "1.5", "a", "-2", "b", "inf", "c"]);
    c.cmd(&["XADD", &k("x"), "1-1", "f", "v"]);
    c.cmd(&["XADD", &k("x"), "2-1", "g", "w"]);
    c.cmd(&["XGROUP", "CREATE", &k("x"), "grp", "0"]);
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "alice",
        "COUNT",
        "1",
        "STREAMS",
        &k("x"),
        ">",
    ]);
    c.cmd(&["SET", &k("gone"), "x"]);
    c.cmd(&["DEL", &k("gone")]);
    c.cmd(&["SELECT", "5"]);
    c.cmd(&["MULTI"]);
    c.cmd(&["SET", &k("tx"), "1"]);
    c.cmd(&["INCR", &k("tx")]);
    c.cmd(&["EXPIRE", &k("tx"), "50000"]);
    c.cmd(&["EXEC"]);
    c.cmd(&["SELECT", "0"]);
}

fn inspect_json(path: &Path) -> Vec<String> {
    let out = keeper()
        .args(["inspect", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stable(canonical(&lines(&out.stdout)))
}

fn aof_dir(dir: &Path) -> PathBuf {
    dir.join("appendonlydir")
}

fn load_dir(dir: &Path, load_truncated: bool) -> keeper::Result<(Store, LoadReport)> {
    let names = AofNames::default();
    let aof = aof_dir(dir);
    let m = manifest::read(&OsStorage, &aof, &names)?.expect("a manifest");
    let mut store = Store::new(16);
    let report = loader::load(
        &OsStorage,
        &aof,
        &names,
        &m,
        &mut store,
        &LoadOptions {
            load_truncated,
            now_ms: now_ms(),
        },
    )?;
    Ok((store, report))
}

fn key_count(store: &Store) -> usize {
    (0..16).map(|db| store.db(db).len()).sum()
}

/// A Redis-written AOF directory, and the reference: the dump.rdb of a Redis restarted on that
/// directory (so holding what Redis itself loads from it: replayed `XCLAIM`s, for one, do not
/// restore a group's `entries_read` in 7.0).
fn redis_dir(extra: &[&str], rewrite: bool) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let mut redis = AofRedis::start(tmp.path(), extra);
    let mut c = redis.client();
    write_mix(&mut c, "one");
    if rewrite {
        redis.bgrewriteaof();
    }
    write_mix(&mut c, "two");
    let _ = c.try_cmd(&["SHUTDOWN", "NOSAVE"]);
    redis.server.wait_exit();
    drop(redis);
    let dump = AofRedis::start(tmp.path(), extra).save_and_stop();
    (tmp, dump)
}

/// Removes the consumers' seen/active times: a replayed `XCLAIM` sets them to the time of
/// the replay, in Redis as in keeper.
fn stable(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if let Some(groups) = v
                .pointer_mut("/value/groups")
                .and_then(serde_json::Value::as_array_mut)
            {
                for g in groups {
                    for c in g["consumers"].as_array_mut().into_iter().flatten() {
                        if let Some(obj) = c.as_object_mut() {
                            obj.remove("active_time_ms");
                            obj.remove("seen_time_ms");
                        }
                    }
                }
            }
            v.to_string()
        })
        .collect()
}

fn check_aof(args: &[&str], path: &Path) -> (i32, String) {
    let out = keeper()
        .arg("check-aof")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn redis_check_aof(path: &Path) -> bool {
    Command::new("redis-check-aof")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("redis-check-aof")
        .status
        .success()
}

fn last_incr(dir: &Path) -> PathBuf {
    let m = manifest::read(&OsStorage, &aof_dir(dir), &AofNames::default())
        .unwrap()
        .unwrap();
    aof_dir(dir).join(&m.incrs.last().unwrap().name)
}

fn append(path: &Path, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data.extend_from_slice(bytes);
    fs::write(path, data).unwrap();
}

#[test]
fn redis_written_directories_load_with_the_same_data() {
    for (extra, rewrite) in [
        (&[][..], false),
        (&["--aof-timestamp-enabled", "yes"][..], true),
        (&["--aof-use-rdb-preamble", "no"][..], true),
        (
            &[
                "--aof-use-rdb-preamble",
                "no",
                "--aof-timestamp-enabled",
                "yes",
            ][..],
            false,
        ),
    ] {
        let (tmp, dump) = redis_dir(extra, rewrite);
        let expected = inspect_json(&dump);
        assert!(expected.len() > 10, "{expected:?}");
        assert_eq!(inspect_json(&aof_dir(tmp.path())), expected, "{extra:?}");
        let (store, report) = load_dir(tmp.path(), false).unwrap();
        assert_eq!(key_count(&store), expected.len(), "{extra:?}");
        assert_eq!(report.truncation, None);
        // Redis writes `#TS:` only when the second changed since the last one it wrote.
        if !extra.contains(&"--aof-timestamp-enabled") {
            assert_eq!(report.last_timestamp, None);
        }
        let (code, text) = check_aof(&[], &aof_dir(tmp.path()));
        assert_eq!(code, 0, "{text}");
        assert!(redis_check_aof(
            &aof_dir(tmp.path()).join("appendonly.aof.manifest")
        ));
    }
}

#[test]
fn torn_tail_is_truncated_reported_and_fixed_by_check_aof() {
    let (tmp, dump) = redis_dir(&[], true);
    let expected = inspect_json(&dump);
    let incr = last_incr(tmp.path());
    let good_len = fs::metadata(&incr).unwrap().len();
    append(&incr, b"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$5\r\nval");

    // check-aof: invalid (exit 1), names the file and the offsets; redis-check-aof agrees.
    let (code, text) = check_aof(&[], tmp.path().join("appendonlydir").as_path());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("TORN TAIL") && text.contains(&format!("ok_up_to={good_len}")),
        "{text}"
    );
    assert!(!redis_check_aof(
        &aof_dir(tmp.path()).join("appendonly.aof.manifest")
    ));
    // Without aof-load-truncated: refused at the torn record.
    let err = load_dir(tmp.path(), false).err().expect("refused");
    assert_eq!(err.offset(), Some(good_len), "{err}");

    // A copy fixed by check-aof --fix: valid, with the original kept.
    let copy = tempfile::tempdir().unwrap();
    let copy_dir = copy.path().join("appendonlydir");
    fs::create_dir(&copy_dir).unwrap();
    for entry in fs::read_dir(aof_dir(tmp.path())).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy_dir.join(entry.file_name())).unwrap();
    }
    let (code, text) = check_aof(&["--fix"], &copy_dir);
    assert_eq!(code, 0, "{text}");
    let copied_incr = copy_dir.join(incr.file_name().unwrap());
    assert_eq!(fs::metadata(&copied_incr).unwrap().len(), good_len);
    let backups: Vec<_> = fs::read_dir(&copy_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "{text}");
    assert_eq!(
        fs::metadata(backups[0].path()).unwrap().len(),
        good_len + 30
    );
    assert!(redis_check_aof(&copy_dir.join("appendonly.aof.manifest")));

    // The loader with aof-load-truncated: truncated, reported, same data as Redis.
    let (_, report) = load_dir(tmp.path(), true).unwrap();
    let t = report.truncation.expect("a truncation");
    assert_eq!((t.file, t.new_len), (incr.clone(), good_len));
    assert_eq!(fs::metadata(&incr).unwrap().len(), good_len);
    assert_eq!(inspect_json(&aof_dir(tmp.path())), expected);
}

#[test]
fn torn_tail_in_a_file_that_is_not_last_is_refused() {
    let (tmp, _) = redis_dir(&[], false);
    let incr = last_incr(tmp.path());
    append(&incr, b"*2\r\n$3\r\nDEL\r\n");
    // A second incr listed after it (what a failed rewrite leaves).
    let manifest_path = aof_dir(tmp.path()).join("appendonly.aof.manifest");
    append(
        &manifest_path,
        b"file appendonly.aof.9.incr.aof seq 9 type i\n",
    );
    fs::write(aof_dir(tmp.path()).join("appendonly.aof.9.incr.aof"), b"").unwrap();
    let err = load_dir(tmp.path(), true).err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains(&incr.display().to_string()) && text.contains("not the last"),
        "{text}"
    );
    let (code, out) = check_aof(&["--fix"], &aof_dir(tmp.path()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not the last file"), "{out}");
}

#[test]
fn mid_file_garbage_is_refused_with_file_and_offset() {
    let (tmp, _) = redis_dir(&[], false);
    let incr = last_incr(tmp.path());
    let mut data = fs::read(&incr).unwrap();
    // Damage the first byte of the second record: a bad byte with data after it.
    let second = data
        .windows(3)
        .skip(1)
        .position(|w| w == b"\n*2" || w == b"\n*3")
        .map(|p| p + 2)
        .unwrap();
    data[second] = b'?';
    fs::write(&incr, &data).unwrap();
    let err = load_dir(tmp.path(), true).err().expect("refused");
    match &err {
        Error::Corrupt { file, offset, .. } => {
            assert_eq!(file.as_deref(), Some(incr.as_path()));
            assert_eq!(*offset, second as u64);
        }
        other => panic!("{other}"),
    }
    assert_eq!(fs::metadata(&incr).unwrap().len(), data.len() as u64);
    let (code, out) = check_aof(&["--fix"], &aof_dir(tmp.path()));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("CORRUPT at offset {second}")),
        "{out}"
    );
    assert_eq!(
        fs::read(&incr).unwrap(),
        data,
        "--fix must not cut mid-file damage"
    );
    assert!(!redis_check_aof(
        &aof_dir(tmp.path()).join("appendonly.aof.manifest")
    ));
}

#[test]
fn missing_file_and_bad_manifest_are_refused() {
    let (tmp, _) = redis_dir(&[], true);
    let m = manifest::read(&OsStorage, &aof_dir(tmp.path()), &AofNames::default())
        .unwrap()
        .unwrap();
    let base = aof_dir(tmp.path()).join(&m.base.as_ref().unwrap().name);
    let saved = fs::read(&base).unwrap();
    fs::remove_file(&base).unwrap();
    let err = load_dir(tmp.path(), true).err().expect("refused");
    assert!(
        err.to_string().contains(&m.base.as_ref().unwrap().name),
        "{err}"
    );
    let (code, out) = check_aof(&[], &aof_dir(tmp.path()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISSING"), "{out}");
    fs::write(&base, saved).unwrap();

    let manifest_path = aof_dir(tmp.path()).join("appendonly.aof.manifest");
    let good = fs::read(&manifest_path).unwrap();
    for bad in [
        &b"file appendonly.aof.2.base.rdb seq 2 type b\n\n"[..],
        b"file ../etc/passwd seq 1 type b\n",
        b"file a seq 2 type i\nfile b seq 1 type i\n",
        b"",
    ] {
        fs::write(&manifest_path, bad).unwrap();
        let err = load_dir(tmp.path(), true).err().expect("refused");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        let (code, out) = check_aof(&[], &manifest_path);
        assert_ne!(code, 0, "{out}");
    }
    fs::write(&manifest_path, good).unwrap();
    assert!(load_dir(tmp.path(), true).is_ok());
}

#[test]
fn old_single_file_aof_is_upgraded_and_loaded() {
    // A pre-7.0 style single file: a RESP base followed by its incr, as one file.
    let (tmp, dump) = redis_dir(&["--aof-use-rdb-preamble", "no"], true);
    let expected = inspect_json(&dump);
    let m = manifest::read(&OsStorage, &aof_dir(tmp.path()), &AofNames::default())
        .unwrap()
        .unwrap();
    let mut single = Vec::new();
    for f in m.load_order() {
        single.extend(fs::read(aof_dir(tmp.path()).join(&f.name)).unwrap());
    }
    let old = tempfile::tempdir().unwrap();
    fs::write(old.path().join("appendonly.aof"), &single).unwrap();
    assert_eq!(inspect_json(&old.path().join("appendonly.aof")), expected);
    let names = AofNames::default();
    assert!(loader::upgrade_single_file(&OsStorage, old.path(), "appendonlydir", &names).unwrap());
    assert!(!old.path().join("appendonly.aof").exists());
    assert_eq!(
        fs::read_to_string(aof_dir(old.path()).join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof seq 1 type b\n"
    );
    assert_eq!(inspect_json(&aof_dir(old.path())), expected);
    let (code, out) = check_aof(&[], &aof_dir(old.path()));
    assert_eq!(code, 0, "{out}");
    // Real Redis loads the upgraded directory to the same data.
    let redis = AofRedis::start(old.path(), &[]);
    let dump = redis.save_and_stop();
    assert_eq!(inspect_json(&dump), expected);
}

#[test]
fn truncate_to_timestamp_cuts_the_last_file() {
    let tmp = tempfile::tempdir().unwrap();
    let redis = AofRedis::start(tmp.path(), &["--aof-timestamp-enabled", "yes"]);
    let mut c = redis.client();
    c.cmd(&["SET", "before", "1"]);
    sleep(Duration::from_millis(1100));
    let limit = (now_ms() / 1000).to_string();
    sleep(Duration::from_millis(1100));
    c.cmd(&["SET", "after", "1"]);
    drop(redis);
    let (code, out) = check_aof(&["--truncate-to-timestamp", &limit], &aof_dir(tmp.path()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("truncated"), "{out}");
    let (mut store, _) = load_dir(tmp.path(), false).unwrap();
    let now = now_ms();
    assert!(store.get(0, b"before", now).is_some());
    assert!(store.get(0, b"after", now).is_none());
}
