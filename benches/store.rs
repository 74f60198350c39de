//! Point operations on a large keyspace: what one GET or SET costs the store itself, apart from
//! the network and the command path. `cargo bench --bench store`; figures go to BENCHMARKS.md.
//!
//! The database holds 1,000,000 string keys (10,000 under `cargo test`), and every operation
//! picks its key at random, so nearly every step of a lookup misses the CPU caches as a
//! server's does. The same keys in a `std::collections::HashMap` (SipHash, as Redis hashes)
//! are the reference: the cost of a hash-table lookup on the same machine, which is what
//! Redis's `dictFind` pays. `first_set_after_snapshot` is a SET right after a snapshot of the
//! whole store: it copies the written shard's directory and leaf, which the snapshot shares.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use keeper::store::{Store, Value, own};

mod common;
use common::Rng;

/// The keys, and the order the operations visit them in.
struct Keys {
    keys: Vec<Bytes>,
    order: Vec<u32>,
    at: usize,
}

impl Keys {
    fn new(count: usize) -> Self {
        let keys = (0..count)
            .map(|i| Bytes::from(format!("key:{i:012}")))
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let order = (0..count)
            .map(|_| (rng.next() % count as u64) as u32)
            .collect();
        Keys { keys, order, at: 0 }
    }

    fn next(&mut self) -> &Bytes {
        self.at = (self.at + 1) % self.order.len();
        &self.keys[self.order[self.at] as usize]
    }
}

fn bench(c: &mut Criterion) {
    let full = std::env::args().any(|arg| arg == "--bench");
    let count = if full { 1_000_000 } else { 10_000 };
    let value = Bytes::from(vec![b'x'; 100]);
    let mut keys = Keys::new(count);
    let mut store = Store::new(16);
    let mut reference = std::collections::HashMap::with_capacity(count);
    for key in &keys.keys {
        // Each value its own allocation, as SET stores it (`store::own`).
        store.insert_copied(0, key, Value::String(own(&value)), None);
        reference.insert(key.clone(), value.clone());
    }

    let mut group = c.benchmark_group(format!("store_{count}_keys"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("get", |b| {
        b.iter(|| {
            let key = keys.next();
            black_box(store.get(0, key, 0).is_some())
        })
    });
    group.bench_function("set_overwrite", |b| {
        b.iter(|| {
            let key = keys.next().clone();
            store.insert_copied(0, &key, Value::String(own(&value)), None);
        })
    });
    let mut fresh = 0u64;
    group.bench_function("set_new_then_del", |b| {
        b.iter(|| {
            fresh += 1;
            let key = format!("new:{fresh:012}");
            store.insert_copied(0, key.as_bytes(), Value::String(own(&value)), None);
            black_box(store.remove(0, key.as_bytes()))
        })
    });
    // The first write to a shard after a snapshot copies what the snapshot shares of it (the
    // shard's directory and one leaf): the write stall a BGSAVE's start adds, per shard.
    group.bench_function("first_set_after_snapshot", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let snapshot = store.snapshot();
                let key = keys.next().clone();
                let started = std::time::Instant::now();
                store.insert_copied(0, &key, Value::String(own(&value)), None);
                spent += started.elapsed();
                // Dropped untimed: a one-pass snapshot drops what it holds on its own thread.
                drop(snapshot);
            }
            spent
        })
    });
    group.bench_function("reference_hash_map_get", |b| {
        b.iter(|| {
            let key = keys.next();
            black_box(reference.get(key).map(Bytes::len))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
