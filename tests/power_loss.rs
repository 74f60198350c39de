//! The crash harness's power-loss variant: the node's engine runs on the simulated disk
//! (`SimStorage`), writers' operations go through it, `SAVE` and `BGSAVE` run now and then,
//! and the power fails at a random moment (each of the four crash modes, with a background
//! save running or not). A fresh engine then loads the folder, and the same checks as
//! `tests/crash.rs` hold: nothing unsent, values as written, each writer's operations a prefix
//! of what it sent, transactions all-or-nothing, and every operation acknowledged before a
//! completed save present.
//!
//! With the AOF the same rounds run once per `appendfsync` policy, with `BGREWRITEAOF`s in the
//! mix: every policy leaves a prefix of the write stream (a torn tail is cut off at load), and
//! under `always` nothing acknowledged is lost. `KEEPER_POWER_LOSS_SEED` replays a run.

use keeper::command::Rng;
use std::path::PathBuf;
use std::sync::Arc;

use keeper::Bytes;
use keeper::command;
use keeper::config::{AppendFsync, Config};
use keeper::engine::Engine;
use keeper::snapshot::{BgsaveStatus, SavePoints};
use keeper::storage::{CrashMode, SimStorage};
use keeper::store::Value;

const WRITERS: usize = 3;
const ROUNDS: u64 = 40;

/// What persists the node in a run: snapshots only, or the AOF with a policy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Snapshots,
    Aof(AppendFsync),
}

fn engine(storage: &Arc<SimStorage>, mode: Mode) -> Engine {
    let mut config = Config {
        dir: PathBuf::from("data"),
        save: SavePoints::disabled(),
        ..Config::default()
    };
    if let Mode::Aof(policy) = mode {
        config.appendonly = true;
        config.appendfsync = policy;
    }
    let storage: Arc<dyn keeper::Storage> = storage.clone();
    let mut engine = Engine::new(config, storage);
    match mode {
        Mode::Snapshots => {
            engine
                .load_rdb()
                .expect("the folder always loads after a power loss");
        }
        Mode::Aof(_) => {
            engine
                .open_aof()
                .expect("the AOF always loads after a power loss");
        }
    }
    engine
}

/// Waits until the AOF acknowledges everything propagated (what a connection waits for
/// before replying).
fn acknowledged(engine: &Engine) {
    if let Some(wait) = engine.aof_ack_wait() {
        wait.wait_blocking()
            .expect("the simulated disk has no faults here");
    }
}

fn run(engine: &mut Engine, words: &[&str]) {
    let argv: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let spec = command::lookup(&argv[0]).expect("a data command");
    let reply = engine.execute(spec, 0, &argv, keeper::engine::unix_now_ms());
    assert!(!reply.is_error(), "{words:?}: {reply:?}");
}

fn string(engine: &Engine, key: &str) -> Option<String> {
    let snapshot = engine.store().snapshot();
    snapshot.dbs()[0]
        .iter()
        .find(|(k, _)| &k[..] == key.as_bytes())
        .map(|(_, item)| match &item.value {
            Value::String(s) => String::from_utf8_lossy(s).into_owned(),
            other => panic!("{key}: {other:?}"),
        })
}

fn list_len(engine: &Engine, key: &str) -> usize {
    let snapshot = engine.store().snapshot();
    snapshot.dbs()[0]
        .iter()
        .find(|(k, _)| &k[..] == key.as_bytes())
        .map_or(0, |(_, item)| match &item.value {
            Value::List(l) => l.len(),
            other => panic!("{key}: {other:?}"),
        })
}

/// One round: returns (operations present, operations sent).
fn round(seed: u64, mode: Mode) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let storage = Arc::new(SimStorage::new(seed));
    let mut node = engine(&storage, mode);
    let mut rewriting = false;
    // kinds[w][i]: 0 = SET, 1 = INCR transaction, 2 = RPUSH+INCR transaction.
    let mut kinds: Vec<Vec<u64>> = vec![Vec::new(); WRITERS];
    let mut promised = [0usize; WRITERS];
    let mut bgsave_started_at: Option<[usize; WRITERS]> = None;
    let steps = 50 + rng.below(400);
    for _ in 0..steps {
        match rng.below(40) {
            // SAVE is refused while a BGSAVE runs, as in Redis.
            0 if bgsave_started_at.is_none() => {
                node.save().expect("SAVE on a healthy disk");
                // With the AOF on, dump.rdb is not what a restart loads.
                if mode == Mode::Snapshots {
                    promised = std::array::from_fn(|w| kinds[w].len());
                }
            }
            1 if bgsave_started_at.is_none() => {
                node.bgsave().expect("BGSAVE starts");
                bgsave_started_at = Some(std::array::from_fn(|w| kinds[w].len()));
            }
            4 if mode != Mode::Snapshots && !rewriting => {
                node.bgrewriteaof().expect("BGREWRITEAOF starts");
                rewriting = true;
            }
            5 if rewriting => {
                node.finish_aof_rewrite();
                rewriting = false;
            }
            2 | 3 => {
                if let Some(outcome) = node.finish_bgsave(rng.below(2) == 0) {
                    if matches!(outcome.status, BgsaveStatus::Saved(_)) && mode == Mode::Snapshots {
                        let at = bgsave_started_at.expect("a save was running");
                        promised = std::array::from_fn(|w| promised[w].max(at[w]));
                    }
                    bgsave_started_at = None;
                }
            }
            _ => {
                let w = rng.below(WRITERS as u64) as usize;
                let i = kinds[w].len();
                let kind = rng.below(3);
                kinds[w].push(kind);
                let (marker, value) = (format!("w{w}:op:{i}"), i.to_string());
                match kind {
                    0 => run(&mut node, &["SET", &marker, &value]),
                    _ => {
                        node.begin_unit();
                        run(&mut node, &["SET", &marker, &value]);
                        if kind == 1 {
                            run(&mut node, &["INCR", &format!("w{w}:count")]);
                        } else {
                            run(&mut node, &["RPUSH", &format!("w{w}:log"), &value]);
                            run(&mut node, &["INCR", &format!("w{w}:txcount")]);
                        }
                        node.end_unit();
                    }
                }
                if mode == Mode::Aof(AppendFsync::Always) {
                    // The reply went out: the operation is promised.
                    acknowledged(&node);
                    promised[w] = kinds[w].len();
                }
            }
        }
    }
    // The power fails. A background save still running dies with the process: stop it first
    // (what it wrote so far stays on the simulated disk as it was).
    node.cancel_bgsave();
    node.abandon_aof();
    drop(node);
    let crash = [
        CrashMode::DropUnsynced,
        CrashMode::KeepRandomPrefix,
        CrashMode::TearLastWrite,
        CrashMode::ZeroFillTail,
    ][rng.below(4) as usize];
    storage.crash(crash);

    let node = engine(&storage, mode);
    let mut present = 0;
    for (w, sent) in kinds.iter().enumerate() {
        let mut n = 0;
        while string(&node, &format!("w{w}:op:{n}")).is_some() {
            assert_eq!(
                string(&node, &format!("w{w}:op:{n}")).unwrap(),
                n.to_string(),
                "seed {seed}"
            );
            n += 1;
        }
        for later in n..sent.len() + 2 {
            assert!(
                string(&node, &format!("w{w}:op:{later}")).is_none(),
                "seed {seed} {mode:?} {crash:?}: writer {w} has operation {later} but not {n} (or it was never sent)"
            );
        }
        assert!(
            n >= promised[w],
            "seed {seed} {mode:?} {crash:?}: writer {w} lost saved operations: {n} < {}",
            promised[w]
        );
        let done = &sent[..n];
        let count = |k| done.iter().filter(|&&x| x == k).count();
        let int = |key: String| string(&node, &key).map_or(0, |v| v.parse::<usize>().unwrap());
        assert_eq!(
            int(format!("w{w}:count")),
            count(1),
            "seed {seed} {mode:?} {crash:?}: writer {w} INCR transactions"
        );
        assert_eq!(
            int(format!("w{w}:txcount")),
            count(2),
            "seed {seed} {mode:?} {crash:?}: writer {w} transactions"
        );
        assert_eq!(
            list_len(&node, &format!("w{w}:log")),
            count(2),
            "seed {seed} {mode:?} {crash:?}: writer {w} transaction log"
        );
        present += n;
    }
    (present, kinds.iter().map(Vec::len).sum())
}

#[test]
fn power_loss_at_random_moments_keeps_one_saved_point_in_time() {
    rounds(Mode::Snapshots);
}

#[test]
fn power_loss_under_appendfsync_always_loses_nothing_acknowledged() {
    rounds(Mode::Aof(AppendFsync::Always));
}

#[test]
fn power_loss_under_appendfsync_everysec_leaves_a_prefix() {
    rounds(Mode::Aof(AppendFsync::EverySec));
}

#[test]
fn power_loss_under_appendfsync_no_leaves_a_prefix() {
    rounds(Mode::Aof(AppendFsync::No));
}

fn rounds(mode: Mode) {
    let seed: u64 = std::env::var("KEEPER_POWER_LOSS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| keeper::engine::unix_now_ms() as u64);
    eprintln!("power loss: seed {seed} (replay with KEEPER_POWER_LOSS_SEED={seed})");
    let (mut present, mut sent) = (0, 0);
    for r in 0..ROUNDS {
        let (p, s) = round(seed.wrapping_add(r), mode);
        present += p;
        sent += s;
    }
    eprintln!("{mode:?}: {ROUNDS} power losses: {present} of {sent} operations survived");
}
