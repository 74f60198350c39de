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
