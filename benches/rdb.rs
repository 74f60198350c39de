//! RDB decode and encode throughput (MB/s and keys/s) on a mixed dataset and on a string-heavy
//! one. `cargo bench --bench rdb`; figures go to BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keeper::rdb::{Event, Reader, WriteOptions, Writer};
use keeper::{Bytes, Entry, HashField, Value};

mod common;
use common::Rng;

fn mixed(keys: usize) -> Vec<Entry> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..keys)
        .map(|i| {
            let key = Bytes::from(format!("key:{i}"));
            let value = match i % 10 {
                0..=5 => {
                    let len = 16 + (rng.next() % 100) as usize;
                    Value::String(rng.text(len))
                }
                6 => Value::List((0..20).map(|_| rng.text(12)).collect()),
                7 => Value::Hash(
                    (0..10)
                        .map(|f| HashField::new(format!("field{f}"), rng.text(10)))
                        .collect(),
                ),
                8 => Value::Set((0..20).map(|m| Bytes::from(format!("member{m}"))).collect()),
                _ => Value::SortedSet(
                    (0..20)
                        .map(|m| (Bytes::from(format!("m{m}")), m as f64 * 1.5))
                        .collect(),
                ),
            };
            Entry::new(0, key, value)
        })
        .collect()
}

fn string_heavy(keys: usize) -> Vec<Entry> {
    let mut rng = Rng(42);
    (0..keys)
        .map(|i| Entry::new(0, format!("key:{i}"), Value::String(rng.text(1024))))
        .collect()
}

fn encode(entries: &[Entry], compression: bool) -> Vec<u8> {
    let options = WriteOptions {
        compression,
        ..WriteOptions::default()
    };
    let mut writer = Writer::new(Vec::new(), options).expect("writer");
    for e in entries {
        writer.write_entry(e).expect("write");
    }
    writer.finish().expect("finish")
}

fn decode(file: &[u8]) -> usize {
    let mut reader = Reader::from_slice(file).expect("header");
    let mut n = 0;
    while let Some(event) = reader.next_event().expect("event") {
        if let Event::Entry(e) = event {
            black_box(&e);
            n += 1;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("mixed", mixed(100_000), true),
        ("strings-1k-uncompressed", string_heavy(50_000), false),
        // The same strings with rdbcompression on: Redis's LZF pass over every string longer
        // than 20 bytes (these compress a little: 26 letters repeat 3-byte sequences).
        ("strings-1k-lzf", string_heavy(50_000), true),
    ];
    for (name, entries, compression) in cases {
        let file = encode(&entries, compression);
        let mut group = c.benchmark_group(format!("rdb/{name}"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(file.len() as u64));
        group.bench_function("decode (bytes)", |b| b.iter(|| decode(black_box(&file))));
        group.bench_function("encode (bytes)", |b| {
            b.iter(|| encode(black_box(&entries), compression))
        });
        group.throughput(Throughput::Elements(entries.len() as u64));
        group.bench_function("decode (keys)", |b| b.iter(|| decode(black_box(&file))));
        group.finish();
    }
}

/// LZF alone, ours against the `lzf` crate (a port of liblzf, the compressor Redis uses) on
/// the same strings: both measured in one run, so the ratio holds even on a busy machine.
fn bench_lzf(c: &mut Criterion) {
    let mut rng = Rng(7);
    let letters: Vec<Bytes> = (0..2_000).map(|_| rng.text(1024)).collect();
    let prose: Vec<Bytes> = (0..2_000)
        .map(|i| {
            Bytes::from(format!("user:{i} logged in from 10.0.{}.{} ", i % 256, i % 7).repeat(24))
        })
        .collect();
    for (name, inputs) in [("letters-1k", letters), ("repetitive-1k", prose)] {
        let total: usize = inputs.iter().map(|s| s.len()).sum();
        let mut group = c.benchmark_group(format!("lzf/{name}"));
        group.sample_size(20);
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function("keeper", |b| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                for s in &inputs {
                    out.clear();
                    black_box(keeper::rdb::encoding::lzf::compress_into(s, &mut out));
                }
            })
        });
        group.bench_function("lzf crate (liblzf)", |b| {
            b.iter(|| {
                for s in &inputs {
                    black_box(lzf::compress(s).ok());
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench, bench_lzf);
criterion_main!(benches);
