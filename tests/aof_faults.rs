//! The AOF under faults, on the simulated disk: ENOSPC while appending, while a rewrite writes
//! its base and while the manifest is swapped; EIO from fsync; the disk budget. Each test
//! checks the promise that matters — every acknowledged write is there after a power loss —
//! and that the node recovers (or, after a failed fsync, refuses writes until restarted).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeper::Bytes;
use keeper::command;
use keeper::config::{AppendFsync, Config};
use keeper::engine::Engine;
use keeper::snapshot::SavePoints;
use keeper::storage::{CrashMode, FaultError, FaultPlan, OpKind, SimStorage};
use keeper::store::Value;

fn config(policy: AppendFsync) -> Config {
    Config {
        dir: PathBuf::from("data"),
        save: SavePoints::disabled(),
        appendonly: true,
        appendfsync: policy,
        aof_disk_reserve: 0,
        ..Config::default()
    }
}

fn node(storage: &Arc<SimStorage>, config: Config) -> Engine {
    let storage: Arc<dyn keeper::Storage> = storage.clone();
    let mut engine = Engine::new(config, storage);
    engine.open_aof().expect("the AOF loads");
    engine
}

/// Runs a write command the way a connection does: refused when the engine says so.
fn write(engine: &mut Engine, words: &[&str]) -> Result<(), String> {
    let argv: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let incoming = argv.iter().map(|a| a.len() as u64 + 16).sum();
    if let Some(refusal) = engine.write_refusal(incoming) {
        return Err(refusal);
    }
    let spec = command::lookup(&argv[0]).expect("a data command");
    let reply = engine.execute(spec, 0, &argv, keeper::engine::unix_now_ms());
    assert!(!reply.is_error(), "{words:?}: {reply:?}");
    Ok(())
}

/// Waits for the AOF's acknowledgement of everything propagated so far.
fn ack(engine: &Engine) -> Result<(), String> {
    match engine.aof_ack_wait() {
        Some(wait) => wait.wait_blocking(),
        None => Ok(()),
    }
}

fn set_and_ack(engine: &mut Engine, i: usize) {
    write(engine, &["SET", &format!("k{i}"), &i.to_string()]).expect("write accepted");
    ack(engine).expect("acknowledged");
}

fn keys(engine: &Engine) -> usize {
    engine.store().snapshot().dbs()[0].len()
}

fn value(engine: &Engine, key: &str) -> Option<String> {
    let snapshot = engine.store().snapshot();
    snapshot.dbs()[0]
        .iter()
        .find(|(k, _)| &k[..] == key.as_bytes())
        .map(|(_, item)| match &item.value {
            Value::String(s) => String::from_utf8_lossy(s).into_owned(),
            other => panic!("{key}: {other:?}"),
        })
}

/// Polls `condition` for up to 10 s (the writer thread works on its own time).
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Cuts the power under `engine` and starts a fresh node on what the disk kept.
fn power_loss(storage: &Arc<SimStorage>, mut engine: Engine, mode: CrashMode) -> Engine {
    let config = engine.config().clone();
    engine.abandon_aof();
    drop(engine);
    storage.crash(mode);
    node(storage, config)
}

#[test]
fn enospc_while_appending_removes_the_partial_bytes_refuses_writes_and_recovers() {
    let storage = Arc::new(SimStorage::new(7));
    let mut engine = node(&storage, config(AppendFsync::Always));
    for i in 0..50 {
        set_and_ack(&mut engine, i);
    }
    // The disk fills up: the next append cannot be written whole.
    storage.set_faults(FaultPlan {
        byte_budget: Some(used_bytes(&storage) + 10),
        ..FaultPlan::default()
    });
    write(&mut engine, &["SET", "big", &"x".repeat(200)]).expect("accepted before the error");
    eventually("the write error", || {
        engine
            .write_refusal(10)
            .is_some_and(|e| e.contains("MISCONF"))
    });
    let refusal = write(&mut engine, &["SET", "refused", "1"]).unwrap_err();
    assert!(
        refusal.starts_with("MISCONF Errors writing to the AOF file"),
        "{refusal}"
    );
    let info = engine.aof().unwrap().info_fields();
    assert!(info.contains("aof_last_write_status:err"), "{info}");
    // The partial bytes were removed: the incr file ends at a command boundary.
    assert_no_torn_tail(&storage, engine.config());

    // Space returns: the pending write goes out, is acknowledged, writes resume.
    storage.set_faults(FaultPlan::default());
    ack(&engine).expect("acknowledged once space returns");
    eventually("the status to clear", || engine.write_refusal(10).is_none());
    set_and_ack(&mut engine, 50);
    let engine = power_loss(&storage, engine, CrashMode::DropUnsynced);
    assert_eq!(value(&engine, "big").map(|v| v.len()), Some(200));
    assert_eq!(value(&engine, "refused"), None);
    assert_eq!(keys(&engine), 52);
}

/// Bytes in every live file of the simulated disk.
fn used_bytes(storage: &SimStorage) -> u64 {
    use keeper::Storage;
    let mut total = 0;
    for dir in ["data", "data/appendonlydir"] {
        for name in storage.list(std::path::Path::new(dir)).unwrap_or_default() {
            let path = std::path::Path::new(dir).join(name);
            total += storage.len(&path).ok().flatten().unwrap_or(0);
        }
    }
    total
}

/// Loads the AOF as the disk holds it now and checks that no torn tail had to be cut.
fn assert_no_torn_tail(storage: &Arc<SimStorage>, config: &Config) {
    let names = keeper::aof::manifest::AofNames::new(&config.appendfilename);
    let dir = config.aof_dir();
    let manifest = keeper::aof::manifest::read(&**storage, &dir, &names)
        .unwrap()
        .expect("a manifest");
    let mut store = keeper::store::Store::new(16);
    let options = keeper::aof::loader::LoadOptions {
        load_truncated: false,
        now_ms: keeper::engine::unix_now_ms(),
    };
    let report =
        keeper::aof::loader::load(&**storage, &dir, &names, &manifest, &mut store, &options)
            .expect("the AOF loads without cutting a torn tail");
    assert!(report.truncation.is_none());
}

#[test]
fn a_failed_fsync_poisons_the_aof_until_a_restart() {
    let storage = Arc::new(SimStorage::new(11));
    let mut engine = node(&storage, config(AppendFsync::Always));
    for i in 0..20 {
        set_and_ack(&mut engine, i);
    }
    storage.set_faults(FaultPlan {
        fail_nth: Some((1, Some(OpKind::SyncData), FaultError::Io)),
        ..FaultPlan::default()
    });
    write(&mut engine, &["SET", "unlucky", "1"]).expect("accepted before the error");
    let err = ack(&engine).expect_err("no acknowledgement for what the failed fsync covered");
    assert!(
        err.contains("poisoned") && err.contains("fdatasync"),
        "{err}"
    );
    storage.set_faults(FaultPlan::default());
    // Never retried and trusted: writes stay refused although the disk works again.
    std::thread::sleep(Duration::from_millis(50));
    let refusal = write(&mut engine, &["SET", "after", "1"]).unwrap_err();
    assert!(refusal.starts_with("MISCONF"), "{refusal}");
    assert!(refusal.contains("restart"), "{refusal}");
    let info = engine.aof().unwrap().info_fields();
    assert!(info.contains("aof_poisoned:1"), "{info}");

    // A restart: every acknowledged write is there, and the node writes again.
    let mut engine = power_loss(&storage, engine, CrashMode::DropUnsynced);
    for i in 0..20 {
        assert_eq!(value(&engine, &format!("k{i}")), Some(i.to_string()));
    }
    assert_eq!(value(&engine, "after"), None);
    set_and_ack(&mut engine, 20);
}

/// Drives a rewrite whose storage fails as `plan` says, with writes before, during and after;
/// the rewrite must fail, and every acknowledged write survive a power loss.
fn rewrite_with_fault(seed: u64, plan: impl Fn(&SimStorage) -> FaultPlan) {
    for mode in [CrashMode::DropUnsynced, CrashMode::TearLastWrite] {
        let storage = Arc::new(SimStorage::new(seed));
        let mut engine = node(&storage, config(AppendFsync::Always));
        for i in 0..100 {
            set_and_ack(&mut engine, i);
        }
        storage.set_faults(plan(&storage));
        let started = engine.bgrewriteaof();
        for i in 100..150 {
            // Writes refused while the disk is full are simply not acknowledged.
            if write(&mut engine, &["SET", &format!("k{i}"), &i.to_string()]).is_ok() {
                let _ = engine
                    .aof_ack_wait()
                    .map(|w| w.wait_timeout(Duration::from_millis(200)));
            }
        }
        if started.is_ok() {
            engine.finish_aof_rewrite();
        }
        let info = engine.aof().unwrap().info_fields();
        assert!(
            info.contains("aof_last_bgrewrite_status:err") || started.is_err(),
            "{info}"
        );
        storage.set_faults(FaultPlan::default());
        eventually("writes to resume", || engine.write_refusal(10).is_none());
        for i in 150..200 {
            set_and_ack(&mut engine, i);
        }
        let mut engine = power_loss(&storage, engine, mode);
        for i in (0..100).chain(150..200) {
            assert_eq!(
                value(&engine, &format!("k{i}")),
                Some(i.to_string()),
                "seed {seed} {mode:?}: k{i}"
            );
        }
        // The next rewrite succeeds and changes nothing.
        let before = keys(&engine);
        engine.bgrewriteaof().expect("a rewrite starts");
        assert!(engine.finish_aof_rewrite());
        let info = engine.aof().unwrap().info_fields();
        assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
        let engine = power_loss(&storage, engine, CrashMode::DropUnsynced);
        assert_eq!(keys(&engine), before);
    }
}

#[test]
fn enospc_while_a_rewrite_writes_its_base_keeps_the_old_files() {
    rewrite_with_fault(21, |storage| FaultPlan {
        byte_budget: Some(used_bytes(storage) + 600),
        ..FaultPlan::default()
    });
}

#[test]
fn a_failure_creating_the_new_incr_file_keeps_the_old_files() {
    rewrite_with_fault(22, |_| FaultPlan {
        fail_nth: Some((1, Some(OpKind::Create), FaultError::NoSpace)),
        ..FaultPlan::default()
    });
}

#[test]
fn enospc_while_the_manifest_is_swapped_keeps_the_old_files() {
    // Renames after the fault is set: the new incr's manifest (1), the base into the AOF
    // directory (2), the manifest naming the new base (3).
    rewrite_with_fault(23, |_| FaultPlan {
        fail_nth: Some((3, Some(OpKind::Rename), FaultError::NoSpace)),
        ..FaultPlan::default()
    });
}

#[test]
fn heavy_writes_during_a_rewrite_lose_and_duplicate_nothing() {
    let storage = Arc::new(SimStorage::new(31));
    let mut engine = node(&storage, config(AppendFsync::EverySec));
    for i in 0..1000 {
        write(&mut engine, &["SET", &format!("k{i}"), "v"]).unwrap();
    }
    engine.bgrewriteaof().expect("a rewrite starts");
    for _ in 0..20_000 {
        write(&mut engine, &["INCR", "counter"]).unwrap();
    }
    assert!(engine.finish_aof_rewrite());
    for _ in 0..100 {
        write(&mut engine, &["INCR", "counter"]).unwrap();
    }
    let mut engine = engine;
    engine.close_aof().expect("a clean close");
    drop(engine);
    let engine = node(&storage, config(AppendFsync::EverySec));
    assert_eq!(value(&engine, "counter").as_deref(), Some("20100"));
    assert_eq!(keys(&engine), 1001);
}

#[test]
fn the_disk_budget_refuses_writes_keeps_reads_and_a_rewrite_brings_writes_back() {
    let storage = Arc::new(SimStorage::new(41));
    let mut config = config(AppendFsync::EverySec);
    config.aof_max_disk_size = 64 * 1024;
    // No automatic rewrites: this test starts the one that frees space itself.
    config.auto_aof_rewrite_percentage = 0;
    let mut engine = node(&storage, config);
    let value_100 = "v".repeat(100);
    let mut accepted = 0;
    let refusal = loop {
        match write(&mut engine, &["SET", "same-key", &value_100]) {
            Ok(()) => accepted += 1,
            Err(refusal) => break refusal,
        }
        assert!(accepted < 10_000, "the budget never refused a write");
    };
    assert!(refusal.contains("aof-max-disk-size 65536"), "{refusal}");
    let aof = engine.aof().unwrap();
    assert!(aof.disk_usage() <= 64 * 1024, "{}", aof.disk_usage());
    assert!(aof.info_fields().contains("aof_budget_refusals:1"));
    // Reads keep working.
    assert_eq!(value(&engine, "same-key"), Some(value_100.clone()));
    // A rewrite folds the overwrites into one key: space comes back, writes resume.
    engine.bgrewriteaof().expect("the rewrite fits");
    assert!(engine.finish_aof_rewrite());
    write(&mut engine, &["SET", "after", "1"]).expect("writes resume after the rewrite");
    let engine = power_loss(&storage, engine, CrashMode::DropUnsynced);
    assert_eq!(value(&engine, "same-key"), Some(value_100));
}

#[test]
fn approaching_the_budget_starts_a_rewrite_by_itself() {
    let storage = Arc::new(SimStorage::new(42));
    let mut config = config(AppendFsync::EverySec);
    config.aof_max_disk_size = 64 * 1024;
    config.auto_aof_rewrite_percentage = 0;
    let mut engine = node(&storage, config);
    let value_100 = "v".repeat(100);
    // Far more than the budget holds, with the cron running as the server's does.
    for i in 0..2_000 {
        loop {
            match write(&mut engine, &["SET", "same-key", &value_100]) {
                Ok(()) => break,
                Err(refusal) => {
                    assert!(refusal.contains("aof-max-disk-size"), "{refusal}");
                    engine.cron();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        if i % 50 == 0 {
            engine.cron();
        }
    }
    let aof = engine.aof().unwrap();
    assert!(aof.rewrite_stats.rewrites >= 1, "no rewrite ran");
    assert!(aof.disk_usage() <= 64 * 1024, "{}", aof.disk_usage());
}

#[test]
fn a_crash_before_the_first_base_of_an_aof_turned_on_at_run_time_leaves_the_old_directory() {
    for crash_mode in [CrashMode::DropUnsynced, CrashMode::KeepRandomPrefix] {
        let storage = Arc::new(SimStorage::new(51));
        let mut engine = aof_turned_on_over_an_old_directory(&storage);
        write(&mut engine, &["SET", "during", "1"]).unwrap();
        // The power fails before the first base is installed: the old directory stands.
        let engine = power_loss(&storage, engine, crash_mode);
        assert_eq!(keys(&engine), 1, "{crash_mode:?}");
        assert_eq!(value(&engine, "k0").as_deref(), Some("0"));
    }
    // Installed: the new files replace the old ones.
    let storage = Arc::new(SimStorage::new(52));
    let mut engine = aof_turned_on_over_an_old_directory(&storage);
    set_and_ack(&mut engine, 300);
    assert!(engine.finish_aof_rewrite());
    set_and_ack(&mut engine, 301);
    let engine = power_loss(&storage, engine, CrashMode::DropUnsynced);
    assert_eq!(keys(&engine), 301);
    assert_eq!(value(&engine, "k0"), None, "the old AOF's data is gone");
}

/// An AOF directory from an earlier life of the node (holding `k0`), then a node started with
/// the AOF off that writes `k1`..`k299` and turns it on with `CONFIG SET appendonly yes`.
fn aof_turned_on_over_an_old_directory(storage: &Arc<SimStorage>) -> Engine {
    let mut old = node(storage, config(AppendFsync::Always));
    set_and_ack(&mut old, 0);
    old.close_aof().unwrap();
    drop(old);
    let mut off = config(AppendFsync::Always);
    off.appendonly = false;
    let storage: Arc<dyn keeper::Storage> = storage.clone();
    let mut engine = Engine::new(off, storage);
    for i in 1..300 {
        write(&mut engine, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    let pairs = [("appendonly".to_string(), "yes".to_string())];
    engine.config_set(&pairs).expect("the AOF turns on");
    engine
}
