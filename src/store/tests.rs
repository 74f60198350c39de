use super::*;

fn s(v: &str) -> Value {
    Value::String(Bytes::copy_from_slice(v.as_bytes()))
}

#[test]
fn snapshot_is_a_point_in_time_view() {
    let mut store = Store::new(16);
    store.insert(0, own(b"a"), s("1"), None);
    let snap = store.snapshot();
    store.insert(0, own(b"a"), s("2"), None);
    store.insert(0, own(b"b"), s("3"), None);
    store.remove(0, b"a");
    assert_eq!(snap.len(), 1);
    let (_, item) = snap.dbs()[0].iter().next().unwrap();
    assert!(matches!(&item.value, Value::String(v) if v == "1"));
    assert_eq!(store.db(0).len(), 1);
}

#[test]
fn lazy_and_active_expiry_record_removals() {
    let mut store = Store::new(2);
    store.insert(0, own(b"lazy"), s("x"), Some(100));
    store.insert(1, own(b"active"), s("x"), Some(50));
    store.insert(1, own(b"later"), s("x"), Some(500));
    assert!(store.get(0, b"lazy", 99).is_some());
    assert!(store.get(0, b"lazy", 100).is_none());
    assert_eq!(store.expire_cycle(200, 10), 1);
    assert_eq!(
        store.take_expired(),
        vec![(0, own(b"lazy")), (1, own(b"active"))]
    );
    assert_eq!(store.db(1).expires_len(), 1);
}

#[test]
fn set_expire_and_overwrite_keep_the_expiry_index_exact() {
    let mut store = Store::new(1);
    store.insert(0, own(b"k"), s("x"), Some(100));
    assert!(store.set_expire(0, b"k", Some(200), 0));
    assert_eq!(store.db(0).expires_len(), 1);
    store.insert(0, own(b"k"), s("y"), None);
    assert_eq!(store.db(0).expires_len(), 0);
    assert!(!store.set_expire(0, b"missing", Some(1), 0));
    assert_eq!(store.expire_cycle(i64::MAX, 10), 0);
}

#[test]
fn scan_visits_every_key_once_across_pages() {
    let mut store = Store::new(1);
    for i in 0..1000 {
        store.insert(0, own(format!("key:{i}").as_bytes()), s("v"), None);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = 0;
    loop {
        let page = store.scan(0, cursor, 7, 0);
        for key in page.keys {
            assert!(seen.insert(key), "a key came twice");
        }
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 1000);
}

#[test]
fn random_key_finds_a_key() {
    let mut store = Store::new(1);
    assert!(store.random_key(0, 12345, 0).is_none());
    store.insert(0, own(b"only"), s("v"), None);
    for r in [0, 1, u64::MAX, 1 << 63] {
        assert_eq!(store.random_key(0, r, 0).as_deref(), Some(&b"only"[..]));
    }
}

#[test]
fn sorted_set_keeps_both_indexes() {
    let mut z = SortedSet::default();
    z.insert(own(b"b"), 2.0);
    z.insert(own(b"a"), 2.0);
    z.insert(own(b"c"), 1.0);
    assert_eq!(z.insert(own(b"c"), 3.0), Some(1.0));
    let order: Vec<_> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
    assert_eq!(
        order,
        vec![(own(b"a"), 2.0), (own(b"b"), 2.0), (own(b"c"), 3.0)]
    );
    assert_eq!(z.remove(b"a"), Some(2.0));
    assert_eq!(z.len(), 2);
    assert_eq!(z.ordered().len(), 2);
}

/// What a database holds, in slot order: (key, string value, expiry).
fn contents(store: &Store, db: usize) -> Vec<(Bytes, Bytes, Option<i64>)> {
    store
        .db(db)
        .iter()
        .map(|(key, item)| match &item.value {
            Value::String(v) => (key.clone(), v.clone(), item.expire_at_ms),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn entry(db: u32, key: &str, value: &str, expire_at_ms: Option<i64>) -> Entry {
    let mut e = Entry::new(
        db,
        own(key.as_bytes()),
        crate::model::Value::String(own(value.as_bytes())),
    );
    e.expire_at_ms = expire_at_ms;
    e
}

#[test]
fn bulk_load_stores_what_loading_one_by_one_stores() {
    bulk_load_matches_one_by_one(PARALLEL_SORT_ENTRIES);
}

#[test]
fn bulk_load_sorting_on_a_helper_thread_stores_the_same() {
    bulk_load_matches_one_by_one(0);
}

fn bulk_load_matches_one_by_one(parallel_sort_from: usize) {
    // Enough keys for a tree several levels deep, duplicates (the later entry wins, TTL
    // included), TTLs, two databases, an out-of-range database and an empty collection.
    let mut entries = Vec::new();
    for i in 0..5000 {
        let ttl = (i % 3 == 0).then_some(1_000 + i64::from(i % 7));
        entries.push(entry(i % 2, &format!("key:{i}"), &format!("v{i}"), ttl));
    }
    for i in (0..5000).step_by(11) {
        let ttl = (i % 2 == 0).then_some(5_000);
        entries.push(entry(i % 2, &format!("key:{i}"), "again", ttl));
    }
    entries.push(entry(7, "elsewhere", "x", None));
    entries.push(Entry::new(
        0,
        own(b"empty"),
        crate::model::Value::List(Vec::new()),
    ));

    let mut one_by_one = Store::new(2);
    one_by_one.hasher = foldhash::fast::FixedState::with_seed(42);
    let mut bulk = Store::new(2);
    bulk.hasher = foldhash::fast::FixedState::with_seed(42);
    for e in entries.iter().cloned() {
        one_by_one.load_entry(e);
    }
    let mut load = bulk.bulk_load();
    load.parallel_sort_from = parallel_sort_from;
    for e in entries {
        load.load_entry(e);
    }
    load.finish();

    for db in 0..2 {
        assert_eq!(contents(&bulk, db), contents(&one_by_one, db));
        assert_eq!(bulk.db(db).expires_len(), one_by_one.db(db).expires_len());
        assert_eq!(bulk.dbs[db].expires, one_by_one.dbs[db].expires);
    }
    assert_eq!(bulk.db(0).len(), 2500);
    assert!(
        bulk.get(0, b"key:0", 0)
            .is_some_and(|i| i.expire_at_ms == Some(5_000))
    );
    // Past the deadlines: both stores expire the same keys.
    assert_eq!(
        bulk.expire_cycle(10_000, usize::MAX),
        one_by_one.expire_cycle(10_000, usize::MAX)
    );
}

#[test]
fn bulk_load_into_a_store_with_keys_replaces_them_and_their_ttls() {
    let mut store = Store::new(1);
    store.insert(0, own(b"a"), s("old"), Some(100));
    store.insert(0, own(b"b"), s("kept"), Some(200));
    {
        let mut load = store.bulk_load();
        load.load_entry(entry(0, "a", "new", None));
        load.load_entry(entry(0, "c", "added", Some(300)));
        // Dropped without `finish`: an interrupted load keeps what it read.
    }
    assert!(
        store
            .get(0, b"a", 0)
            .is_some_and(|i| i.expire_at_ms.is_none())
    );
    assert_eq!(store.db(0).len(), 3);
    assert_eq!(store.db(0).expires_len(), 2);
    assert_eq!(store.expire_cycle(1_000, usize::MAX), 2);
    assert!(store.get(0, b"a", 1_000).is_some());
}
