//! Damaged RDB input gives a clear error with a byte offset, never a panic, a hang or a huge
//! allocation: truncation at every offset, bit flips, a wrong checksum, hostile lengths —
//! through both reader sources.

use std::path::{Path, PathBuf};

use keeper::rdb::{Event, Reader, WriteOptions, Writer};
use keeper::{Entry, Error, HashField, Stream, StreamEntry, StreamId, Value};

/// Reads everything; `Ok(keys)` or the first error. Both sources, the decoding and the
/// validate-only paths, the two-thread checker and the streaming one must agree on the verdict (the slice source knows how many bytes remain
/// and may reject a length before the stream source runs out of data, so offsets may differ).
fn read_all(data: &[u8]) -> Result<usize, Error> {
    let slice = read_with(Reader::from_slice(data));
    let stream = read_with(Reader::from_reader(data));
    let checked = check_with(Reader::from_slice(data));
    let parallel =
        keeper::rdb::check::check(keeper::FileView::from_vec(data.to_vec()), &mut |_| {})
            .map(|report| report.databases.values().map(|db| db.keys as usize).sum());
    let streamed = keeper::rdb::check::check_stream(data, &mut |_| {})
        .map(|report| report.databases.values().map(|db| db.keys as usize).sum());
    for other in [&stream, &checked, &parallel, &streamed] {
        match (&slice, other) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => panic!("readers disagree: {slice:?} vs {other:?}"),
        }
    }
    slice
}

fn check_with<S: keeper::rdb::Source>(reader: keeper::Result<Reader<S>>) -> Result<usize, Error> {
    let mut reader = reader?;
    let mut keys = 0;
    while let Some(event) = reader.check_next()? {
        if let keeper::rdb::Checked::Key(_) = event {
            keys += 1;
        }
    }
    Ok(keys)
}

fn read_with<S: keeper::rdb::Source>(reader: keeper::Result<Reader<S>>) -> Result<usize, Error> {
    let mut reader = reader?;
    let mut keys = 0;
    while let Some(event) = reader.next_event()? {
        if let Event::Entry(_) = event {
            keys += 1;
        }
    }
    Ok(keys)
}

/// A file with every value type keeper writes, each in its small and large encoding.
fn every_type_file() -> Vec<u8> {
    let big: Vec<_> = (0..600)
        .map(|i| keeper::Bytes::from(format!("member-{i}")))
        .collect();
    let stream = Stream {
        entries: (1..150)
            .map(|i| StreamEntry {
                id: StreamId::new(1000 + i / 3, i % 3),
                fields: vec![("f".into(), format!("v{i}").into())],
            })
            .collect(),
        last_id: StreamId::new(2000, 0),
        first_id: StreamId::new(1000, 1),
        entries_added: 149,
        ..Stream::default()
    };
    let values = vec![
        Value::String("12345".into()),
        Value::String("x".repeat(300).into()),
        Value::List(vec!["a".into(), "b".into(), "1".into()]),
        Value::List(big.clone()),
        Value::Set(vec!["1".into(), "2".into(), "70000".into()]),
        Value::Set(big.clone()),
        Value::SortedSet(vec![("a".into(), 1.5), ("b".into(), 2.0)]),
        Value::SortedSet(big.iter().map(|m| (m.clone(), m.len() as f64)).collect()),
        Value::Hash(vec![HashField::new("f", "v")]),
        Value::Hash(big.iter().map(|m| HashField::new(m.clone(), "v")).collect()),
        Value::Stream(Box::new(stream)),
    ];
    let mut writer = Writer::new(Vec::new(), WriteOptions::default()).unwrap();
    for (i, value) in values.into_iter().enumerate() {
        let mut entry = Entry::new(0, format!("key{i}"), value);
        entry.expire_at_ms = (i % 2 == 0).then_some(4_102_444_800_000);
        writer.write_entry(&entry).unwrap();
    }
    writer.finish().unwrap()
}

fn legacy_fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files = Vec::new();
    for dir in [
        "legacy/rdb-tools-dumps",
        "legacy/redis-test-assets",
        "redis-7.0",
    ] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            for e in entries.flatten() {
                let path = e.path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".rdb") && !name.starts_with("corrupt_") {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
}

/// The streaming check (what a backup from a live node runs on the RDB as it arrives)
/// reports what the two-thread check of the whole file reports, on every fixture and on a
/// file of every type.
#[test]
fn the_streaming_check_reports_what_the_whole_file_check_reports() {
    let mut files: Vec<(String, Vec<u8>)> = legacy_fixtures()
        .into_iter()
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect();
    files.push(("every type".into(), every_type_file()));
    for (name, data) in files {
        let whole =
            keeper::rdb::check::check(keeper::FileView::from_vec(data.clone()), &mut |_| {});
        let streamed = keeper::rdb::check::check_stream(&data[..], &mut |_| {});
        let (whole, streamed) = match (whole, streamed) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(_), Err(_)) => continue,
            (a, b) => panic!("{name}: {a:?} vs {b:?}"),
        };
        assert_eq!(streamed.version, whole.version, "{name}");
        assert_eq!(streamed.aux, whole.aux, "{name}");
        assert_eq!(streamed.databases, whole.databases, "{name}");
        assert_eq!(streamed.functions, whole.functions, "{name}");
        assert_eq!(streamed.module_aux, whole.module_aux, "{name}");
        assert_eq!(
            streamed.empty_keys_skipped, whole.empty_keys_skipped,
            "{name}"
        );
        assert_eq!(streamed.checksum, whole.checksum, "{name}");
        assert_eq!(streamed.rdb_len, whole.rdb_len, "{name}");
    }
}

/// Length of the RDB proper: some fixtures carry bytes after it (e.g. a diskless-sync EOF mark).
fn rdb_len(data: &[u8]) -> usize {
    let mut reader = Reader::from_slice(data).unwrap();
    while reader.next_event().unwrap().is_some() {}
    reader.position() as usize
}

#[test]
fn truncation_at_every_offset_is_an_error_with_that_offset_or_before() {
    let file = every_type_file();
    assert!(read_all(&file).is_ok());
    // Every prefix: all of them for the first 4 KiB, then a stride through the rest.
    let offsets = (0..file.len().min(4096)).chain((4096..file.len()).step_by(97));
    for cut in offsets {
        match read_all(&file[..cut]) {
            Ok(keys) => panic!("prefix of {cut} bytes read as a whole file ({keys} keys)"),
            Err(err) => {
                let offset = err.offset().expect("a truncation error names an offset");
                assert!(offset <= cut as u64, "cut {cut}: error at {offset}: {err}");
            }
        }
    }
}

#[test]
fn truncated_fixtures_are_errors() {
    let files = legacy_fixtures();
    assert!(!files.is_empty(), "fixtures missing");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        read_all(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let len = rdb_len(&data);
        for cut in (0..len).step_by(len / 50 + 1) {
            assert!(
                read_all(&data[..cut]).is_err(),
                "{} cut at {cut} read fine",
                path.display()
            );
        }
    }
}

/// A small deterministic generator; the seed is printed so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn bit_flips_never_panic_and_checksummed_files_reject_them() {
    let seed = std::env::var("KEEPER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    println!("bit flip seed: {seed} (set KEEPER_SEED to replay)");
    let mut rng = Rng(seed);
    let mut inputs = vec![("every-type".to_string(), every_type_file())];
    for path in legacy_fixtures() {
        inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for (name, mut data) in inputs {
        data.truncate(rdb_len(&data));
        let crc = u64::from_le_bytes(data[data.len() - 8..].try_into().unwrap());
        let version: u32 = std::str::from_utf8(&data[5..9]).unwrap().parse().unwrap();
        let checksummed = version >= 5 && crc != 0;
        for _ in 0..200 {
            let mut damaged = data.clone();
            let at = rng.next() as usize % damaged.len();
            damaged[at] ^= 1 << (rng.next() % 8);
            let result = read_all(&damaged);
            // A flip in the version digits can make a valid pre-checksum version (REDIS0001).
            if checksummed && at >= 9 {
                assert!(result.is_err(), "{name}: flip at {at} went unnoticed");
            }
        }
    }
}

#[test]
fn wrong_checksum_reports_both_values() {
    let mut file = every_type_file();
    let last = file.len() - 1;
    file[last] ^= 0xff;
    match read_all(&file) {
        Err(Error::ChecksumMismatch {
            expected,
            actual,
            offset,
            ..
        }) => {
            assert_ne!(expected, actual);
            assert_eq!(offset, file.len() as u64 - 8);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
}

/// `REDIS0010`, then the given bytes after a SELECTDB 0.
fn crafted(body: &[u8]) -> Vec<u8> {
    let mut data = b"REDIS0010\xfe\x00".to_vec();
    data.extend_from_slice(body);
    data
}

#[test]
fn hostile_lengths_are_rejected_without_allocating() {
    let huge64 = [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "string length 2^64",
            crafted(&[&[0x00, 0x01, b'k'][..], &huge64].concat()),
        ),
        ("key length 2^64", crafted(&[&[0x00][..], &huge64].concat())),
        (
            "list count 2^64",
            crafted(&[&[0x01, 0x01, b'k'][..], &huge64].concat()),
        ),
        (
            "set count 2^64",
            crafted(&[&[0x02, 0x01, b'k'][..], &huge64].concat()),
        ),
        (
            "hash count 2^64",
            crafted(&[&[0x04, 0x01, b'k'][..], &huge64].concat()),
        ),
        (
            "zset count 2^64",
            crafted(&[&[0x05, 0x01, b'k'][..], &huge64].concat()),
        ),
        (
            "quicklist nodes 2^64",
            crafted(&[&[0x12, 0x01, b'k'][..], &huge64].concat()),
        ),
        (
            "stream nodes 2^64",
            crafted(&[&[0x13, 0x01, b'k'][..], &huge64].concat()),
        ),
        // LZF string claiming 4 GiB of output from 3 bytes of input.
        (
            "LZF output 4 GiB",
            crafted(&[
                0x00, 0x01, b'k', 0xC3, 0x03, 0x80, 0xff, 0xff, 0xff, 0xff, 0x00, b'a', b'b',
            ]),
        ),
        ("unknown type 99", crafted(&[99, 0x01, b'k'])),
        ("bad length prefix", crafted(&[0x00, 0x82])),
        (
            "unknown string encoding",
            crafted(&[0x00, 0x01, b'k', 0xC7]),
        ),
        (
            "quicklist container 7",
            crafted(&[0x12, 0x01, b'k', 0x01, 0x07, 0x00]),
        ),
    ];
    for (name, data) in cases {
        let err = read_all(&data).expect_err(name);
        assert!(err.offset().is_some(), "{name}: {err}");
        let text = err.to_string();
        assert!(text.starts_with("offset "), "{name}: {text}");
    }
}

#[test]
fn bad_headers_are_named() {
    for (data, want) in [
        (&b"RREDIS0010"[..], "wrong signature"),
        (b"REDIS", "shorter than"),
        (b"REDIS0013\xff", "unsupported"),
        (b"REDIS00x1\xff", "not a number"),
        (b"VALKEY079\xff", "unsupported"),
    ] {
        let err = read_all(data).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn valkey_magic_with_hash_field_ttls_reads() {
    // VALKEY080, SELECTDB 0, type 22 (Valkey HASH_2): 2 fields, one with a TTL, one without.
    let mut data = b"VALKEY080\xfe\x00\x16\x01h\x02".to_vec();
    data.extend_from_slice(b"\x02f1\x02v1");
    data.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
    data.extend_from_slice(b"\x02f2\x02v2");
    data.extend_from_slice(&(-1i64).to_le_bytes());
    data.push(0xff);
    let crc = keeper::rdb::crc64(&data);
    data.extend_from_slice(&crc.to_le_bytes());
    let mut reader = Reader::from_slice(&data[..]).unwrap();
    let mut entry = None;
    while let Some(event) = reader.next_event().unwrap() {
        if let Event::Entry(e) = event {
            entry = Some(e);
        }
    }
    let Value::Hash(fields) = entry.unwrap().value else {
        panic!("not a hash")
    };
    assert_eq!(fields[0].expire_at_ms, Some(1_700_000_000_000));
    assert_eq!(fields[1].expire_at_ms, None);
}

#[test]
fn pre_release_module_values_are_unsupported_and_name_the_module() {
    // Type 6 (Redis 4.0 release candidates) cannot be skipped without the module: the id
    // encodes the module type name, which the error must show.
    let charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id: u64 = 0;
    for c in b"ReJSON-RL" {
        id = (id << 6) | charset.iter().position(|x| x == c).unwrap() as u64;
    }
    id = (id << 10) | 3;
    let mut body = vec![0x06, 0x01, b'k', 0x81];
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&[0x00, 0xff]);
    let err = read_all(&crafted(&body)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("ReJSON-RL"), "{err}");
}
