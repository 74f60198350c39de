//! decode(encode(x)) == x for arbitrary datasets, for every RDB version keeper writes, through
//! both reader sources (in-memory slice and byte stream).

use keeper::rdb::{Checksum, Event, Reader, WriteOptions, Writer};
use keeper::{
    Bytes, Consumer, ConsumerGroup, Entry, HashField, ModuleValue, PendingEntry, Stream,
    StreamEntry, StreamId, Value,
};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn bytes_strategy() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        // Integers, canonical and not, exercise the integer encodings.
        any::<i64>().prop_map(|v| Bytes::from(v.to_string())),
        (0u32..1000).prop_map(|v| Bytes::from(format!("{v:04}"))),
        "[a-z]{0,12}".prop_map(Bytes::from),
        // Compressible and incompressible long strings exercise LZF.
        (1usize..300, any::<u8>()).prop_map(|(n, b)| Bytes::from(vec![b; n])),
        proptest::collection::vec(any::<u8>(), 0..100).prop_map(Bytes::from),
    ]
}

fn large_or_small() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        20 => bytes_strategy(),
        1 => (8000usize..20000).prop_map(|n| Bytes::from((0..n).map(|i| (i % 7) as u8).collect::<Vec<_>>())),
    ]
}

fn unique(items: Vec<Bytes>) -> Vec<Bytes> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<i32>().prop_map(f64::from),
        any::<f64>().prop_filter("no NaN", |s| !s.is_nan()),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn stream_strategy(version: u32) -> impl Strategy<Value = Stream> {
    let entries = proptest::collection::vec(
        (
            1u64..3,
            0u64..3,
            proptest::collection::vec((bytes_strategy(), bytes_strategy()), 1..4),
            any::<bool>(),
        ),
        0..250,
    );
    (entries, 0usize..3, any::<u64>(), any::<bool>()).prop_map(
        move |(raw, groups, seed, entries_read_known)| {
            let mut entries = Vec::new();
            let mut id = StreamId::new(1_700_000_000_000, 0);
            let mut prev_fields: Option<Vec<(Bytes, Bytes)>> = None;
            for (dms, seq, fields, same_as_prev) in raw {
                id = StreamId::new(id.ms + dms - 1, if dms == 1 { id.seq + 1 } else { seq });
                // Reuse the previous field names sometimes, to exercise SAMEFIELDS.
                let fields = match (&prev_fields, same_as_prev) {
                    (Some(prev), true) => prev
                        .iter()
                        .zip(fields.iter().cycle())
                        .map(|((f, _), (_, v))| (f.clone(), v.clone()))
                        .collect(),
                    _ => fields,
                };
                prev_fields = Some(fields.clone());
                entries.push(StreamEntry { id, fields });
            }
            let last_id = StreamId::new(id.ms + seed % 3, id.seq);
            let mut groups_vec = Vec::new();
            for g in 0..groups {
                let pending_ids: Vec<StreamId> = entries
                    .iter()
                    .map(|e| e.id)
                    .filter(|i| (i.ms ^ seed ^ g as u64).is_multiple_of(3))
                    .collect();
                let pending = pending_ids
                    .iter()
                    .map(|&id| PendingEntry {
                        id,
                        delivery_time_ms: 1_700_000_000_123,
                        delivery_count: id.seq % 5 + 1,
                    })
                    .collect();
                let (a, b): (Vec<StreamId>, Vec<StreamId>) =
                    pending_ids.iter().partition(|i| i.seq % 2 == 0);
                let seen = 1_700_000_000_500;
                let active = if version >= 11 { seen + 7 } else { seen };
                groups_vec.push(ConsumerGroup {
                    name: Bytes::from(format!("group{g}")),
                    last_id,
                    entries_read: entries_read_known.then_some(entries.len() as u64),
                    pending,
                    consumers: vec![
                        Consumer {
                            name: "alice".into(),
                            seen_time_ms: seen,
                            active_time_ms: active,
                            pending: a,
                        },
                        Consumer {
                            name: "bob".into(),
                            seen_time_ms: seen,
                            active_time_ms: active,
                            pending: b,
                        },
                        Consumer {
                            name: "idle".into(),
                            seen_time_ms: seen,
                            active_time_ms: active,
                            pending: vec![],
                        },
                    ],
                });
            }
            Stream {
                first_id: entries.first().map(|e| e.id).unwrap_or_default(),
                max_deleted_id: StreamId::new(3, 4),
                entries_added: entries.len() as u64 + seed % 10,
                last_id,
                entries,
                groups: groups_vec,
            }
        },
    )
}

/// RDB length encoding in its shortest form (the reader re-encodes module data canonically).
fn len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn module_strategy() -> impl Strategy<Value = ModuleValue> {
    proptest::collection::vec((1u8..6, any::<u64>(), bytes_strategy()), 0..5).prop_map(|items| {
        let mut body = Vec::new();
        for (op, n, s) in items {
            body.push(op);
            match op {
                1 | 2 => len(&mut body, n),
                3 => body.extend_from_slice(&(n as u32).to_le_bytes()),
                4 => body.extend_from_slice(&n.to_le_bytes()),
                _ => {
                    len(&mut body, s.len() as u64);
                    body.extend_from_slice(&s);
                }
            }
        }
        body.push(0);
        ModuleValue {
            id: 0x1234_5678_9abc_d003,
            body: Bytes::from(body),
        }
    })
}

fn value_strategy(version: u32) -> impl Strategy<Value = Value> {
    let ttl = if version >= 12 {
        proptest::option::weighted(0.3, 1i64..1 << 47).boxed()
    } else {
        Just(None).boxed()
    };
    prop_oneof![
        bytes_strategy().prop_map(Value::String),
        large_or_small().prop_map(Value::String),
        proptest::collection::vec(large_or_small(), 1..300).prop_map(Value::List),
        proptest::collection::vec(
            any::<i64>().prop_map(|v| Bytes::from(v.to_string())),
            1..600
        )
        .prop_map(|v| Value::Set(unique(v))),
        proptest::collection::vec(bytes_strategy(), 1..200).prop_map(|v| Value::Set(unique(v))),
        proptest::collection::vec((bytes_strategy(), score()), 1..200).prop_map(|v| {
            let mut seen = BTreeSet::new();
            Value::SortedSet(
                v.into_iter()
                    .filter(|(m, _)| seen.insert(m.clone()))
                    .collect(),
            )
        }),
        proptest::collection::vec((bytes_strategy(), large_or_small(), ttl), 1..700).prop_map(
            |v| {
                let mut seen = BTreeSet::new();
                Value::Hash(
                    v.into_iter()
                        .filter(|(f, _, _)| seen.insert(f.clone()))
                        .map(|(field, value, expire_at_ms)| HashField {
                            field,
                            value,
                            expire_at_ms,
                        })
                        .collect(),
                )
            }
        ),
        stream_strategy(version).prop_map(|s| Value::Stream(Box::new(s))),
        module_strategy().prop_map(|m| Value::Module(Box::new(m))),
    ]
}

fn dataset(version: u32) -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec(
        (
            0u32..3,
            bytes_strategy(),
            value_strategy(version),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u8>()),
        ),
        0..12,
    )
    .prop_map(|raw| {
        let mut seen = BTreeSet::new();
        let mut entries: Vec<Entry> = raw
            .into_iter()
            .filter(|(db, key, ..)| seen.insert((*db, key.clone())))
            .map(|(db, key, value, expire_at_ms, idle, freq)| Entry {
                db,
                key,
                value,
                expire_at_ms,
                lru_idle_secs: idle.map(u64::from),
                lfu_freq: freq,
            })
            .collect();
        entries.sort_by_key(|e| e.db);
        entries
    })
}

/// The order-insensitive parts of a value, sorted, so a writer may reorder them freely.
fn normalize(mut entry: Entry) -> Entry {
    match &mut entry.value {
        Value::Set(members) => members.sort(),
        Value::SortedSet(items) => items.sort_by(|a, b| a.0.cmp(&b.0)),
        Value::Hash(fields) => fields.sort_by(|a, b| a.field.cmp(&b.field)),
        _ => {}
    }
    entry
}

fn encode(entries: &[Entry], version: u32, compression: bool) -> Vec<u8> {
    let options = WriteOptions {
        version,
        compression,
        ..WriteOptions::default()
    };
    let mut writer = Writer::new(Vec::new(), options).unwrap();
    writer
        .write_function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)")
        .unwrap();
    for e in entries {
        writer.write_entry(e).unwrap();
    }
    writer.finish().unwrap()
}

fn decode<S: keeper::rdb::Source>(mut reader: Reader<S>) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut functions = 0;
    while let Some(event) = reader.next_event().unwrap() {
        match event {
            Event::Entry(e) => entries.push(normalize(e)),
            Event::Function(_) => functions += 1,
            _ => {}
        }
    }
    assert!(matches!(reader.checksum(), Some(Checksum::Verified(_))));
    (entries, functions)
}

fn check_roundtrip(entries: Vec<Entry>, version: u32, compression: bool) {
    let file = encode(&entries, version, compression);
    let want: Vec<Entry> = entries.into_iter().map(normalize).collect();
    let (from_slice, functions) = decode(Reader::from_slice(&file[..]).unwrap());
    assert_eq!(from_slice, want);
    assert_eq!(functions, 1);
    let (from_stream, _) = decode(Reader::from_reader(&file[..]).unwrap());
    assert_eq!(from_stream, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip_v10(entries in dataset(10), compression in any::<bool>()) {
        check_roundtrip(entries, 10, compression);
    }

    #[test]
    fn roundtrip_v11(entries in dataset(11), compression in any::<bool>()) {
        check_roundtrip(entries, 11, compression);
    }

    #[test]
    fn roundtrip_v12(entries in dataset(12), compression in any::<bool>()) {
        check_roundtrip(entries, 12, compression);
    }
}

#[test]
fn field_ttls_are_refused_below_version_12() {
    let entry = Entry::new(
        0,
        "h",
        Value::Hash(vec![HashField {
            field: "f".into(),
            value: "v".into(),
            expire_at_ms: Some(5),
        }]),
    );
    let mut writer = Writer::new(Vec::new(), WriteOptions::default()).unwrap();
    let err = writer.write_entry(&entry).unwrap_err();
    assert!(err.to_string().contains("RDB version 12"), "{err}");
}
