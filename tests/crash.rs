//! The real-process crash harness: `keeper server` runs as a child on a loopback port while
//! writer clients record every acknowledged write; the process is killed with SIGKILL at a
//! random moment, restarted on the same data folder, and what it loaded is checked:
//!
//! - nothing appears that was never sent, and every value is the one that was written;
//! - the loaded state is one point of the write stream: for every writer, the operations
//!   present are a prefix of the ones it sent (a snapshot is point-in-time);
//! - transactions are all-or-nothing: a `MULTI` block is never half applied (its counter, log
//!   list and marker key agree);
//! - durability: without the AOF, every write acknowledged before a `SAVE` (or a `BGSAVE` seen
//!   completed) that itself completed before the kill is present. With the AOF (`appendfsync
//!   always`, and `everysec`, whose replies also wait for the write to reach the file) the bar
//!   is every acknowledged write, while `BGREWRITEAOF`s swap base files under the writers.
//!
//! `KEEPER_CRASH_ITERATIONS` (default 3) sets the number of kill/restart rounds and
//! `KEEPER_CRASH_SEED` replays a run; the seed is printed first. `tools/crash` runs many rounds.

mod support;

use keeper::command::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::client::{KeeperServer, Resp};

const WRITERS: usize = 3;

/// How the node persists in a run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// RDB only: `SAVE` and `BGSAVE` now and then.
    Snapshots,
    /// AOF with this `appendfsync`, and `BGREWRITEAOF` now and then.
    Aof(&'static str),
}

impl Mode {
    fn server_args(self) -> Vec<&'static str> {
        match self {
            Mode::Snapshots => vec!["--save", ""],
            Mode::Aof(policy) => vec!["--save", "", "--appendonly", "yes", "--appendfsync", policy],
        }
    }
}

/// What one writer's operation does. Operation `i` of writer `w` in round `r` always writes
/// the marker key `r{r}:w{w}:op:{i}`, so presence of operations can be read back.
#[derive(Clone, Copy, Debug, PartialEq)]
enum OpKind {
    /// `SET marker i`.
    Set,
    /// `MULTI; SET marker i; INCR count; EXEC`.
    Incr,
    /// `MULTI; SET marker i; RPUSH log i; INCR txcount; EXEC`.
    Transaction,
}

/// What a writer sent: its operations in order and how many were acknowledged.
#[derive(Default)]
struct WriterLog {
    ops: Vec<OpKind>,
    acked: usize,
}

/// The durability promises made before the kill: for each completed save, how many
/// operations of each writer had been acknowledged when it started.
type Promises = Vec<[usize; WRITERS]>;

/// A finished round: its number, what its writers sent, and what its final SAVE promised.
type EarlierRound = (usize, Vec<Arc<Mutex<WriterLog>>>, Promises);

fn prefix(round: usize, writer: usize) -> String {
    format!("r{round}:w{writer}")
}

fn run_writer(port: u16, round: usize, writer: usize, seed: u64, log: Arc<Mutex<WriterLog>>) {
    let Ok(mut client) = support::client::Client::connect(port) else {
        return;
    };
    let mut rng = Rng::new(seed);
    let p = prefix(round, writer);
    for i in 0.. {
        let kind = match rng.below(3) {
            0 => OpKind::Set,
            1 => OpKind::Incr,
            _ => OpKind::Transaction,
        };
        log.lock().unwrap().ops.push(kind);
        let marker = format!("{p}:op:{i}");
        let value = i.to_string();
        let done = match kind {
            OpKind::Set => client
                .try_cmd(&["SET", &marker, &value])
                .map(|r| r == Resp::Simple("OK".into())),
            OpKind::Incr | OpKind::Transaction => (|| {
                client.try_cmd(&["MULTI"])?;
                client.try_cmd(&["SET", &marker, &value])?;
                if kind == OpKind::Incr {
                    client.try_cmd(&["INCR", &format!("{p}:count")])?;
                } else {
                    client.try_cmd(&["RPUSH", &format!("{p}:log"), &value])?;
                    client.try_cmd(&["INCR", &format!("{p}:txcount")])?;
                }
                Ok::<_, std::io::Error>(matches!(client.try_cmd(&["EXEC"])?, Resp::Array(_)))
            })(),
        };
        match done {
            Ok(true) => log.lock().unwrap().acked = i + 1,
            Ok(false) => panic!("writer {writer}: operation {i} ({kind:?}) was refused"),
            Err(_) => return, // the server is gone
        }
    }
}

/// Saves now and then; records, for each save that completed, the acknowledged counts at its
/// start.
fn run_saver(
    port: u16,
    mode: Mode,
    seed: u64,
    logs: Vec<Arc<Mutex<WriterLog>>>,
    promises: Arc<Mutex<Promises>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut client) = support::client::Client::connect(port) else {
        return;
    };
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20 + rng.below(80)));
        let acked: [usize; WRITERS] = std::array::from_fn(|w| logs[w].lock().unwrap().acked);
        if mode != Mode::Snapshots {
            // Rewrites swap the AOF's base under the writers; what they promise is checked
            // through the writers' own acknowledgements.
            if matches!(client.try_cmd(&["BGREWRITEAOF"]), Ok(Resp::Simple(_))) {
                for _ in 0..500 {
                    let Ok(info) = client.try_cmd(&["INFO", "persistence"]) else {
                        return;
                    };
                    let fields = support::client::info_fields(&info);
                    if fields.get("aof_rewrite_in_progress").map(String::as_str) == Some("0") {
                        break;
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            }
            continue;
        }
        let completed = if rng.below(2) == 0 {
            matches!(client.try_cmd(&["SAVE"]), Ok(Resp::Simple(ref s)) if s == "OK")
        } else {
            let before = match client.try_cmd(&["LASTSAVE"]) {
                Ok(Resp::Int(t)) => t,
                _ => return,
            };
            if !matches!(client.try_cmd(&["BGSAVE"]), Ok(Resp::Simple(_))) {
                continue; // one already running
            }
            // Seen completed: in progress went to 0 with status ok (LASTSAVE has 1 s
            // resolution, so it is not the signal).
            let mut seen = false;
            for _ in 0..500 {
                let Ok(info) = client.try_cmd(&["INFO", "persistence"]) else {
                    return;
                };
                let fields = support::client::info_fields(&info);
                if fields.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0") {
                    seen = fields.get("rdb_last_bgsave_status").map(String::as_str) == Some("ok");
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            let _ = before;
            seen
        };
        if completed {
            promises.lock().unwrap().push(acked);
        }
    }
}

/// Reads round `round`'s keys back and checks them against what the writers sent.
fn check_round(
    client: &mut support::client::Client,
    round: usize,
    logs: &[Arc<Mutex<WriterLog>>],
    promises: &Promises,
    seed: u64,
) -> usize {
    let mut present_total = 0;
    for (writer, log) in logs.iter().enumerate() {
        let log = log.lock().unwrap();
        let p = prefix(round, writer);
        // Every key of this writer's namespace must be one it sent.
        let keys = match client.cmd(&["KEYS", &format!("{p}:*")]) {
            Resp::Array(items) => items.iter().map(Resp::text).collect::<Vec<_>>(),
            other => panic!("KEYS: {other:?}"),
        };
        let mut markers = BTreeMap::new();
        for key in &keys {
            let rest = &key[p.len() + 1..];
            if let Some(i) = rest.strip_prefix("op:") {
                let i: usize = i
                    .parse()
                    .unwrap_or_else(|_| panic!("seed {seed}: unknown key {key}"));
                assert!(i < log.ops.len(), "seed {seed}: {key} was never sent");
                let value = client.cmd(&["GET", key]).text();
                assert_eq!(
                    value,
                    i.to_string(),
                    "seed {seed}: {key} holds a value never written"
                );
                markers.insert(i, ());
            } else {
                assert!(
                    ["count", "log", "txcount"].contains(&rest),
                    "seed {seed}: {key} was never sent"
                );
            }
        }
        // A prefix of the sent operations: 0..n all present, nothing after.
        let n = markers.len();
        assert!(
            markers.keys().copied().eq(0..n),
            "seed {seed}: writer {writer} has a gap: {:?}",
            markers.keys().collect::<Vec<_>>()
        );
        // Transactions all-or-nothing: the counters agree with the markers present.
        let ops = &log.ops[..n];
        let incrs = ops.iter().filter(|k| **k == OpKind::Incr).count();
        let txs = ops.iter().filter(|k| **k == OpKind::Transaction).count();
        let int = |r: Resp| match r {
            Resp::Nil => 0,
            Resp::Bulk(b) => String::from_utf8_lossy(&b).parse::<usize>().unwrap(),
            Resp::Int(i) => i as usize,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            int(client.cmd(&["GET", &format!("{p}:count")])),
            incrs,
            "seed {seed}: INCR count of writer {writer}"
        );
        assert_eq!(
            int(client.cmd(&["GET", &format!("{p}:txcount")])),
            txs,
            "seed {seed}: transaction count of writer {writer}"
        );
        assert_eq!(
            int(client.cmd(&["LLEN", &format!("{p}:log")])),
            txs,
            "seed {seed}: transaction log of writer {writer}"
        );
        // Durability: what a completed save promised is there.
        let promised = promises
            .iter()
            .map(|acked| acked[writer])
            .max()
            .unwrap_or(0);
        assert!(
            n >= promised,
            "seed {seed}: writer {writer} lost acknowledged writes a completed save covered: {n} present, {promised} promised"
        );
        present_total += n;
    }
    present_total
}

#[test]
fn sigkill_at_random_moments_loses_nothing_a_save_promised() {
    crash_rounds(Mode::Snapshots);
}

#[test]
fn sigkill_under_appendfsync_always_loses_no_acknowledged_write() {
    crash_rounds(Mode::Aof("always"));
}

#[test]
fn sigkill_under_appendfsync_everysec_loses_no_acknowledged_write() {
    crash_rounds(Mode::Aof("everysec"));
}

fn crash_rounds(mode: Mode) {
    let iterations: usize = std::env::var("KEEPER_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("KEEPER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| support::now_ms() as u64);
    eprintln!(
        "crash harness ({mode:?}): seed {seed} (replay with KEEPER_CRASH_SEED={seed}), {iterations} rounds"
    );
    let args = mode.server_args();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    // What earlier rounds left, checked again after every restart.
    let mut earlier: Vec<EarlierRound> = Vec::new();
    for round in 0..iterations {
        let server = KeeperServer::start(dir.path(), &args);
        let port = server.port;
        let logs: Vec<_> = (0..WRITERS)
            .map(|_| Arc::new(Mutex::new(WriterLog::default())))
            .collect();
        let promises = Arc::new(Mutex::new(Promises::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (writer, log) in logs.iter().enumerate() {
            let (log, s) = (log.clone(), rng.next_u64());
            threads.push(thread::spawn(move || {
                run_writer(port, round, writer, s, log)
            }));
        }
        {
            let (logs, promises, stop, s) =
                (logs.clone(), promises.clone(), stop.clone(), rng.next_u64());
            threads.push(thread::spawn(move || {
                run_saver(port, mode, s, logs, promises, stop)
            }));
        }
        let kill_after = Duration::from_millis(150 + rng.below(1200));
        thread::sleep(kill_after);
        server.signal("KILL");
        stop.store(true, Ordering::Relaxed);
        drop(server);
        for t in threads {
            t.join().expect("a client thread panicked");
        }
        let mut promises = Arc::try_unwrap(promises)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap();
        if mode != Mode::Snapshots {
            // The AOF's promise: every acknowledged write.
            promises.push(std::array::from_fn(|w| logs[w].lock().unwrap().acked));
        }
        let sent: usize = logs.iter().map(|l| l.lock().unwrap().ops.len()).sum();

        let server = KeeperServer::start(dir.path(), &args);
        let mut client = server.client();
        let present = check_round(&mut client, round, &logs, &promises, seed);
        for (r, l, p) in &earlier {
            check_round(&mut client, *r, l, p, seed);
        }
        eprintln!(
            "round {round}: killed after {kill_after:?}, {sent} operations sent, {present} present, {} saves completed",
            promises.len()
        );
        // Make this round's state the promised one for the rounds after it.
        assert_eq!(client.cmd(&["SAVE"]), Resp::Simple("OK".into()));
        let acked_now: [usize; WRITERS] = std::array::from_fn(|w| {
            let p = prefix(round, w);
            match client.cmd(&["KEYS", &format!("{p}:op:*")]) {
                Resp::Array(items) => items.len(),
                other => panic!("{other:?}"),
            }
        });
        earlier.push((round, logs, vec![acked_now]));
    }
}
