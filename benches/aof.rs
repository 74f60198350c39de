//! AOF writer throughput (appends/s and MB/s) under each `appendfsync` policy, with 1, 8 and 64
//! concurrent writers. Each writer does what a connection does: it appends a SET-sized record
//! under a mutex shared by all (the engine's lock), releases it, then waits for its ack
//! (`always`: written and synced; `everysec`/`no`: written). Real files in a temp folder under
//! the target directory (a real disk, not tmpfs). `cargo bench --bench aof`; figures go to
//! BENCHMARKS.md.

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use keeper::aof::writer::{AckWaiter, AofWriter};
use keeper::config::AppendFsync;
use keeper::{OsStorage, Storage};

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
fn drive(
    engine: &Mutex<AofWriter>,
    acks: &AckWaiter,
    writers: usize,
    appends_each: u64,
    record: &[u8],
) -> Duration {
    let start = Barrier::new(writers + 1);
    let started = thread::scope(|scope| {
        for _ in 0..writers {
            scope.spawn(|| {
                start.wait();
                for _ in 0..appends_each {
                    let offset = {
                        let mut writer = engine.lock().expect("engine lock");
                        writer.append(record);
                        writer.offset()
                    };
                    acks.wait(offset).expect("ack");
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
            let acks = writer.acks();
            let engine = Mutex::new(writer);
            group.bench_function(format!("{writers}_writers"), |b| {
                b.iter_custom(|iters| drive(&engine, &acks, writers, iters * appends_each, &record))
            });
            let writer = engine.into_inner().expect("engine lock");
            writer.close().expect("close");
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
