//! AOF writer throughput (appends/s and MB/s) under each `appendfsync` policy, with 1, 8 and 64
//! concurrent writers. Each writer does what a connection does: it appends a SET-sized record
//! under a mutex shared by all (the engine's lock), releases it, then waits for its ack
//! (`always`: written and synced; `everysec`/`no`: written, by the waiting thread itself while
//! the writer thread lends its file, as a connection's wait does). Real files in a temp folder
//! under the target directory (a real disk, not tmpfs).
//!
//! And AOF replay (commands/s): an engine starting on an AOF directory that an engine wrote
//! (an RDB-preamble base of an empty dataset, then an incr file of 500,000 commands, 5,000
//! under `cargo test`: SETs of 100-byte values over 100,000 keys, INCRs, HSETs and RPUSHes), as
//! `keeper server` loads it at start ([`Engine::open_aof`]).
//!
//! `cargo bench --bench aof`; figures go to BENCHMARKS.md.

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use keeper::aof::writer::AofWriter;
use keeper::config::{AppendFsync, Config};
use keeper::engine::Engine;
use keeper::{OsStorage, Storage};

mod common;
use common::Rng;

/// `SET key:<16 digits> <64-byte value>` as the propagated stream carries it.
fn set_record() -> Vec<u8> {
    let key = "key:0000000000000042";
    let value = "v".repeat(64);
    format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes()
}

/// Runs `writers` threads that each append `appends_each` records and wait for each ack;
/// returns the time from the common start to the last ack.
fn drive(engine: &Mutex<AofWriter>, writers: usize, appends_each: u64, record: &[u8]) -> Duration {
    let start = Barrier::new(writers + 1);
    let started = thread::scope(|scope| {
        for _ in 0..writers {
            scope.spawn(|| {
                start.wait();
                for _ in 0..appends_each {
                    let wait = {
                        let mut writer = engine.lock().expect("engine lock");
                        writer.append(record);
                        writer.ack_wait(writer.offset())
                    };
                    // As a connection waits: under `everysec` and `no` it writes the queue
                    // itself while the writer thread lends its file.
                    if let Some(wait) = wait {
                        wait.wait_blocking().expect("ack");
                    }
                }
            });
        }
        start.wait();
        Instant::now()
    });
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let record = set_record();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (policy, name) in [
        (AppendFsync::Always, "always"),
        (AppendFsync::EverySec, "everysec"),
        (AppendFsync::No, "no"),
    ] {
        let mut group = c.benchmark_group(format!("aof_append_{name}"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for writers in [1usize, 8, 64] {
            // About 64 appends per iteration whatever the number of writers.
            let appends_each = (64 / writers as u64).max(1);
            let appends = appends_each * writers as u64;
            group.throughput(Throughput::ElementsAndBytes {
                elements: appends,
                bytes: appends * record.len() as u64,
            });
            let dir = tempfile::tempdir_in(base).expect("temp dir");
            let path = dir.path().join("appendonly.aof.1.incr.aof");
            let storage = Arc::new(OsStorage);
            let file = storage.create(&path).expect("create");
            let writer = AofWriter::start(storage, path, file, policy, 0).expect("writer");
            let engine = Mutex::new(writer);
            group.bench_function(format!("{writers}_writers"), |b| {
                b.iter_custom(|iters| drive(&engine, writers, iters * appends_each, &record))
            });
            let writer = engine.into_inner().expect("engine lock");
            writer.close().expect("close");
        }
        group.finish();
    }
}

/// The commands of the replay benchmark, in order: 70% SET, then INCR, HSET and RPUSH.
fn replay_commands(count: u64) -> Vec<Vec<Bytes>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let value = Bytes::from("v".repeat(100));
    (0..count)
        .map(|i| {
            let state = rng.next();
            let key = Bytes::from(format!("key:{:06}", state % 100_000));
            let words: Vec<Bytes> = match i % 10 {
                0..=6 => vec!["SET".into(), key, value.clone()],
                7 => vec!["INCR".into(), format!("counter:{}", state % 1_000).into()],
                8 => vec![
                    "HSET".into(),
                    format!("hash:{}", state % 10_000).into(),
                    format!("field:{}", state % 16).into(),
                    value.slice(..16),
                ],
                _ => vec![
                    "RPUSH".into(),
                    format!("list:{}", state % 1_000).into(),
                    value.slice(..16),
                ],
            };
            words
        })
        .collect()
}

fn bench_replay(c: &mut Criterion) {
    let full = std::env::args().any(|arg| arg == "--bench");
    let count: u64 = if full { 500_000 } else { 5_000 };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let config = Config {
        dir: dir.path().to_path_buf(),
        appendonly: true,
        appendfsync: AppendFsync::No,
        save: keeper::snapshot::SavePoints::disabled(),
        ..Config::default()
    };
    let storage: Arc<dyn Storage> = Arc::new(OsStorage);
    {
        let mut writer = Engine::new(config.clone(), Arc::clone(&storage));
        writer.open_aof().expect("open the AOF to write it");
        for argv in replay_commands(count) {
            let spec = keeper::command::lookup(&argv[0]).expect("a known command");
            writer.execute(spec, 0, &argv, 0);
        }
        writer.close_aof().expect("close the written AOF");
    }
    let mut group = c.benchmark_group("aof_replay");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(if full { 10 } else { 1 }))
        .throughput(Throughput::Elements(count));
    group.bench_function(format!("{count}_commands"), |b| {
        b.iter(|| {
            let mut engine = Engine::new(config.clone(), Arc::clone(&storage));
            let report = engine
                .open_aof()
                .expect("load the AOF")
                .expect("an AOF to load");
            // The stream's first record is the SELECT of database 0.
            assert_eq!(report.commands(), count + 1, "every command replayed");
            engine.close_aof().expect("close");
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_replay);
criterion_main!(benches);
