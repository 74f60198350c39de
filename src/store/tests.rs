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
fn shards_together_keep_every_key_in_slot_order() {
    let mut store = Store::new(1);
    for i in 0..2000 {
        store.insert(0, own(format!("key:{i}").as_bytes()), s("v"), None);
    }
    let db = store.db(0);
    assert!(
        db.shards.iter().filter(|shard| !shard.is_empty()).count() > SHARDS / 2,
        "keys spread over the shards"
    );
    let slots: Vec<&Slot> = db.iter_slots().map(|(slot, _)| slot).collect();
    assert_eq!(slots.len(), 2000);
    assert!(slots.windows(2).all(|pair| pair[0] < pair[1]));
    // A range from any slot is the tail of that order.
    let middle = slots[1234].clone();
    let tail: Vec<&Slot> = db.range_from(middle).map(|(slot, _)| slot).collect();
    assert_eq!(tail, slots[1234..]);
}

#[test]
fn prefetching_a_batch_of_keys_changes_nothing() {
    let mut store = Store::new(2);
    for i in 0..2000 {
        store.insert(0, own(format!("key:{i}").as_bytes()), s("v"), None);
    }
    let keys: Vec<String> = (1990..2010).map(|i| format!("key:{i}")).collect();
    let before = contents(&store, 0);
    // Present and missing keys, an empty database, a database that does not exist, and
    // more keys than one prefetch takes.
    for db in [0, 1, 7] {
        store.prefetch_keys(db, keys.iter().map(|key| key.as_bytes()));
    }
    let many: Vec<String> = (0..PREFETCH_KEYS * 3).map(|i| format!("key:{i}")).collect();
    store.prefetch_keys(0, many.iter().map(|key| key.as_bytes()));
    // A staged database (a startup load) is skipped.
    store.set_staging(true);
    store.insert(1, own(b"staged"), s("v"), None);
    store.prefetch_keys(1, [&b"staged"[..]]);
    store.set_staging(false);
    assert_eq!(contents(&store, 0), before);
    assert_eq!(store.db(1).len(), 1);
}

#[test]
fn a_loads_prefetch_of_staged_keys_changes_nothing() {
    let mut store = Store::new(3);
    store.set_staging(true);
    for i in 0..5000 {
        store.insert(0, own(format!("key:{i}").as_bytes()), s("v"), None);
    }
    // An empty staged table, keys present and missing, every distance, a database that is
    // not staged and one that does not exist.
    store.insert(1, own(b"gone"), s("v"), None);
    store.remove(1, b"gone");
    for db in [0, 1, 2, 7] {
        for key in ["key:0", "key:4999", "key:5000", "other"] {
            for distance in 0..5 {
                store.prefetch_staged(db, key.as_bytes(), distance);
            }
        }
    }
    store.set_staging(false);
    assert_eq!(store.db(0).len(), 5000);
    assert_eq!(store.db(1).len(), 0);
    assert!(matches!(
        store.get(0, b"key:4999", 0).map(|item| &item.value),
        Some(Value::String(v)) if v.as_ref() == b"v"
    ));
}

/// The contents of database `db` of a snapshot, as `(key, string value)`, in walk order.
fn walked(snapshot: &dyn crate::dataset::DatasetSnapshot, db: usize) -> Vec<(Bytes, Bytes)> {
    let mut seen = Vec::new();
    snapshot
        .for_each_entry_ref(db, &mut |entry| {
            let ValueRef::String(value) = entry.value else {
                panic!("only strings here");
            };
            seen.push((own(entry.key), own(value)));
            Ok(())
        })
        .unwrap();
    seen
}

#[test]
fn a_one_pass_snapshot_holds_the_moment_it_was_taken_while_writes_go_on() {
    let mut store = Store::new(2);
    for i in 0..3000 {
        store.insert(1, own(format!("key:{i}").as_bytes()), s("old"), None);
    }
    let expected = walked(&store.snapshot(), 1);
    let snapshot = store.one_pass_snapshot();
    assert_eq!(
        crate::dataset::DatasetSnapshot::db_size(&snapshot, 1),
        (3000, 0)
    );
    // Every key is overwritten (and one removed, one added) after the walk has begun, so
    // some land in shards already released and some in shards still held.
    let mut seen = Vec::new();
    let mut wrote = false;
    crate::dataset::DatasetSnapshot::for_each_entry_ref(&snapshot, 1, &mut |entry| {
        if !wrote {
            for i in 0..3000 {
                store.insert(1, own(format!("key:{i}").as_bytes()), s("new"), None);
            }
            store.remove(1, b"key:7");
            store.insert(1, own(b"added"), s("new"), None);
            wrote = true;
        }
        let ValueRef::String(value) = entry.value else {
            panic!("only strings here");
        };
        seen.push((own(entry.key), own(value)));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, expected);
    assert!(walked(&store.snapshot(), 1).iter().all(|(_, v)| v == "new"));
    // Its shards are gone: walking again is an error, not an empty database.
    let again = crate::dataset::DatasetSnapshot::for_each_entry_ref(&snapshot, 1, &mut |_| Ok(()));
    assert!(again.is_err());
}

#[test]
fn a_walked_shard_is_released_and_writes_to_it_copy_nothing() {
    let mut store = Store::new(1);
    for i in 0..500 {
        store.insert(0, own(format!("key:{i}").as_bytes()), s("v"), None);
    }
    let item_of = |store: &Store, key: &[u8]| -> *const Item {
        let hash = store.slot_hash(key);
        Arc::as_ptr(store.db(0).shard(hash).get(hash, key).unwrap())
    };
    // A whole-store snapshot held: the first write copies the shared item.
    let held = store.snapshot();
    let before = item_of(&store, b"key:1");
    store.get_mut(0, b"key:1", 0).unwrap().value = s("changed");
    assert_ne!(item_of(&store, b"key:1"), before, "copied for the snapshot");
    drop(held);
    // A one-pass snapshot that has walked the database shares nothing any more.
    let snapshot = store.one_pass_snapshot();
    let before = item_of(&store, b"key:2");
    assert_eq!(walked(&snapshot, 0).len(), 500);
    store.get_mut(0, b"key:2", 0).unwrap().value = s("changed");
    assert_eq!(item_of(&store, b"key:2"), before, "written in place");
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
    assert_eq!(z.range(..).count(), 2);
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
    // Enough keys for leaves that split many times, duplicates (the later entry wins, TTL
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

/// The small/large collection types against std collections, through random operations on a
/// key space wide enough to cross the small limits (128) both ways.
mod small_collections {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap as StdMap, VecDeque};

    fn b(i: u16) -> Bytes {
        Bytes::from(format!("m{i}"))
    }

    fn hv(v: u16) -> HashValue {
        HashValue {
            value: Bytes::from(v.to_string()),
            expire_at_ms: None,
        }
    }

    proptest! {
        #[test]
        fn fields_behave_as_a_map(ops in prop::collection::vec((0u8..3, 0u16..300, any::<u16>()), 1..700)) {
            let mut fields = Fields::default();
            let mut model: StdMap<Bytes, HashValue> = StdMap::new();
            for (op, k, v) in ops {
                match op {
                    0 => prop_assert_eq!(fields.insert(b(k), hv(v)), model.insert(b(k), hv(v))),
                    1 => prop_assert_eq!(fields.remove(&b(k)), model.remove(&b(k))),
                    _ => prop_assert_eq!(fields.get(&b(k)), model.get(&b(k))),
                }
                prop_assert_eq!(fields.len(), model.len());
            }
            let mut seen: Vec<_> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            seen.sort_by(|a, b| a.0.cmp(&b.0));
            let mut expected: Vec<_> = model.into_iter().collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(seen, expected);
        }

        #[test]
        fn members_behave_as_a_set(ops in prop::collection::vec((0u8..3, 0u16..300), 1..700)) {
            let mut members = Members::default();
            let mut model = BTreeSet::new();
            for (op, k) in ops {
                match op {
                    0 => prop_assert_eq!(members.insert(b(k)).is_none(), model.insert(b(k))),
                    1 => prop_assert_eq!(members.remove(&b(k)).is_some(), model.remove(&b(k))),
                    _ => prop_assert_eq!(members.contains(&b(k)), model.contains(&b(k))),
                }
                prop_assert_eq!(members.len(), model.len());
            }
            members.retain(|m| m.len() % 2 == 0);
            model.retain(|m| m.len() % 2 == 0);
            let seen: BTreeSet<Bytes> = members.iter().cloned().collect();
            prop_assert_eq!(seen, model);
        }

        #[test]
        fn sorted_sets_keep_redis_order(ops in prop::collection::vec((0u8..3, 0u16..300, -5i8..5), 1..700)) {
            let mut zset = SortedSet::default();
            let mut model: BTreeMap<Bytes, f64> = BTreeMap::new();
            for (op, k, score) in ops {
                let score = f64::from(score) / 2.0;
                match op {
                    0 => prop_assert_eq!(zset.insert(b(k), score), model.insert(b(k), score)),
                    1 => prop_assert_eq!(zset.remove(&b(k)), model.remove(&b(k))),
                    _ => prop_assert_eq!(zset.score(&b(k)), model.get(&b(k)).copied()),
                }
                prop_assert_eq!(zset.len(), model.len());
            }
            let mut expected: Vec<(Score, Bytes)> =
                model.into_iter().map(|(m, s)| (Score(s), m)).collect();
            expected.sort();
            let seen: Vec<(Score, Bytes)> = zset.range(..).cloned().collect();
            prop_assert_eq!(&seen, &expected);
            let back: Vec<(Score, Bytes)> = zset.range(..).rev().cloned().collect();
            prop_assert_eq!(back.into_iter().rev().collect::<Vec<_>>(), expected.clone());
            prop_assert_eq!(zset.first(), expected.first());
            prop_assert_eq!(zset.last(), expected.last());
            // Ranges with every kind of bound, from a pivot inside and outside the set.
            let pivot = (Score(0.0), b(150));
            let inside = |r: &dyn Fn(&(Score, Bytes)) -> bool| {
                expected.iter().filter(|p| r(p)).cloned().collect::<Vec<_>>()
            };
            prop_assert_eq!(zset.range(pivot.clone()..).cloned().collect::<Vec<_>>(), inside(&|p| *p >= pivot));
            prop_assert_eq!(zset.range(..pivot.clone()).cloned().collect::<Vec<_>>(), inside(&|p| *p < pivot));
            prop_assert_eq!(zset.range(..=pivot.clone()).cloned().collect::<Vec<_>>(), inside(&|p| *p <= pivot));
            prop_assert_eq!(
                zset.range((std::ops::Bound::Excluded(pivot.clone()), std::ops::Bound::Unbounded))
                    .cloned()
                    .collect::<Vec<_>>(),
                inside(&|p| *p > pivot)
            );
        }

        #[test]
        fn elements_behave_as_a_deque(ops in prop::collection::vec((0u8..8, any::<u16>()), 1..900)) {
            let mut list = Elements::new();
            let mut model: VecDeque<Bytes> = VecDeque::new();
            for (op, v) in ops {
                let at = if model.is_empty() { 0 } else { usize::from(v) % model.len() };
                match op {
                    0 | 1 => { list.push_back(b(v)); model.push_back(b(v)); }
                    2 => { list.push_front(b(v)); model.push_front(b(v)); }
                    3 => prop_assert_eq!(list.pop_front(), model.pop_front()),
                    4 => prop_assert_eq!(list.pop_back(), model.pop_back()),
                    5 => { list.insert(at, b(v)); model.insert(at, b(v)); }
                    6 if !model.is_empty() => {
                        prop_assert_eq!(list.set(at, b(v)), std::mem::replace(&mut model[at], b(v)));
                        prop_assert_eq!(list.remove(at), model.remove(at).unwrap());
                    }
                    _ => {
                        let end = model.len() - at / 7;
                        let start = at.min(end) / 3;
                        prop_assert!(list.range(start..end).eq(model.range(start..end)));
                        if v % 5 == 0 {
                            list.keep(start..end);
                            model = model.range(start..end).cloned().collect();
                        }
                    }
                }
                prop_assert_eq!(list.len(), model.len());
                prop_assert_eq!(list.get(at), model.get(at));
            }
            prop_assert!(list.iter().eq(model.iter()));
            prop_assert!(list.iter().rev().eq(model.iter().rev()));
        }
    }
}

#[test]
fn a_staged_load_ends_with_the_shards_the_same_writes_build() {
    // The same writes, staged and not: every read along the way and the end state agree.
    let (mut staged, mut plain) = (Store::new(3), Store::new(3));
    plain.hasher = staged.hasher.clone();
    // Database 2 holds a key before the load (an RDB preamble): it is not staged.
    for store in [&mut staged, &mut plain] {
        store.insert(2, own(b"before"), s("x"), None);
        store.set_loading(true);
    }
    staged.set_staging(true);
    for i in 0..3000u32 {
        let key = format!("key:{}", i % 1700);
        let expiry = (i % 7 == 0).then_some(1_000 + i64::from(i));
        for store in [&mut staged, &mut plain] {
            // Both ways in: an owned key, and a borrowed one copied only when new.
            if i % 2 == 0 {
                store.insert(
                    i as usize % 3,
                    own(key.as_bytes()),
                    s(&i.to_string()),
                    expiry,
                );
            } else {
                store.insert_copied(i as usize % 3, key.as_bytes(), s(&i.to_string()), expiry);
            }
            match i % 5 {
                0 => {
                    store.remove(0, format!("key:{}", i / 2).as_bytes());
                }
                1 => {
                    store.set_expire(1, key.as_bytes(), Some(5_000), 0);
                }
                2 => {
                    store.set_expire(0, key.as_bytes(), None, 0);
                }
                _ => {}
            }
        }
        let (a, b) = (
            staged.get(0, key.as_bytes(), 0),
            plain.get(0, key.as_bytes(), 0),
        );
        assert_eq!(
            a.map(|item| item.expire_at_ms),
            b.map(|item| item.expire_at_ms)
        );
    }
    assert!(staged.db(0).staged.is_some() && staged.db(1).staged.is_some());
    assert!(
        staged.db(2).staged.is_none(),
        "a database with keys is not staged"
    );
    for db in 0..3 {
        assert_eq!(staged.db(db).len(), plain.db(db).len());
        // Counted from the items while staged, from the index after.
        assert_eq!(staged.db(db).expires_len(), plain.db(db).expires_len());
    }
    staged.set_staging(false);
    for store in [&mut staged, &mut plain] {
        store.set_loading(false);
    }
    for db in 0..3 {
        assert!(staged.db(db).staged.is_none());
        assert_eq!(contents(&staged, db), contents(&plain, db), "database {db}");
        assert_eq!(staged.db(db).expires_len(), plain.db(db).expires_len());
    }
    // The expiry index came through: the active cycle removes the same keys.
    assert_eq!(
        staged.expire_cycle(3_000, usize::MAX),
        plain.expire_cycle(3_000, usize::MAX)
    );
    assert_eq!(staged.take_expired(), plain.take_expired());
    assert_eq!(
        staged.scan(0, 0, 10_000, 0).keys,
        plain.scan(0, 0, 10_000, 0).keys
    );
}

#[test]
fn a_large_staged_database_fills_its_shards_on_two_threads_alike() {
    // Enough keys for the two-thread build (`PARALLEL_SORT_ENTRIES`): both halves of the
    // slot range end up in their shards, in order, with their TTLs indexed.
    let (mut staged, mut plain) = (Store::new(1), Store::new(1));
    plain.hasher = staged.hasher.clone();
    staged.set_loading(true);
    staged.set_staging(true);
    for i in 0..PARALLEL_SORT_ENTRIES + 1000 {
        let key = format!("k{i}");
        let expiry = (i % 10 == 0).then_some(i as i64);
        for store in [&mut staged, &mut plain] {
            store.insert_copied(0, key.as_bytes(), s("v"), expiry);
        }
    }
    staged.set_staging(false);
    staged.set_loading(false);
    assert!(staged.db(0).staged.is_none());
    assert_eq!(contents(&staged, 0), contents(&plain, 0));
    let in_shards =
        |store: &Store| -> Vec<usize> { store.db(0).shards.iter().map(Shard::len).collect() };
    assert_eq!(in_shards(&staged), in_shards(&plain));
    assert_eq!(staged.db(0).expires_len(), plain.db(0).expires_len());
    assert_eq!(
        staged.expire_cycle(5_000, usize::MAX),
        plain.expire_cycle(5_000, usize::MAX)
    );
    assert_eq!(staged.take_expired(), plain.take_expired());
}

#[test]
fn a_staged_database_emptied_during_the_load_takes_a_bulk_load() {
    let mut store = Store::new(1);
    store.set_loading(true);
    store.set_staging(true);
    store.insert(0, own(b"gone"), s("1"), None);
    store.remove(0, b"gone");
    {
        let mut load = store.bulk_load();
        for i in 0..100 {
            load.load_entry(entry(0, &format!("k{i}"), "v", None));
        }
        // A command after the entries: they are stored first, then it runs.
        let store = load.store();
        store.insert(0, own(b"k1"), s("after"), None);
    }
    store.set_staging(false);
    store.set_loading(false);
    assert_eq!(store.db(0).len(), 100);
    let keys: Vec<Bytes> = store.db(0).iter().map(|(key, _)| key.clone()).collect();
    assert!(keys.contains(&own(b"k99")) && !keys.contains(&own(b"gone")));
    assert!(matches!(&store.get(0, b"k1", 0).unwrap().value, Value::String(v) if v == "after"));
}
