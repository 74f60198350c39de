use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::store::Value;

fn item(value: u32) -> Arc<Item> {
    Arc::new(Item {
        value: Value::String(Bytes::from(value.to_string())),
        expire_at_ms: None,
    })
}

fn value_of(item: &Item) -> u32 {
    match &item.value {
        Value::String(s) => std::str::from_utf8(s).unwrap().parse().unwrap(),
        _ => unreachable!("only strings here"),
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// How the test's hashes fall, below the shard bits.
#[derive(Clone, Copy, Debug)]
enum Spread {
    /// As a good hash spreads them.
    Uniform,
    /// Five hashes for all keys: slots of equal hash, ordered by key.
    Colliding,
    /// A third of the keys agree on 30 bits (a leaf that cannot split), the rest uniform.
    Clustered,
}

/// The slot hash of key `id` in shard 37 (every slot of a shard shares its top bits).
fn hash_of(spread: Spread, id: u32) -> u64 {
    let rest = match spread {
        Spread::Uniform => mix(id.into()),
        Spread::Colliding => mix((id % 5).into()),
        Spread::Clustered if id.is_multiple_of(3) => {
            (0x2bad_beef_u64 << 34) | (mix(id.into()) >> 30)
        }
        Spread::Clustered => mix(id.into()),
    };
    (37 << (64 - SHARD_BITS)) | (rest >> SHARD_BITS) | 1
}

fn slot_of(spread: Spread, id: u32) -> Slot {
    Slot {
        hash: hash_of(spread, id),
        key: Bytes::from(format!("k{id}")),
    }
}

type Model = BTreeMap<(u64, Bytes), u32>;

/// Asserts that `shard` holds exactly `model`, in order, and finds each of its keys.
fn assert_holds(shard: &Shard, model: &Model) {
    shard.check();
    assert_eq!(shard.len(), model.len());
    assert_eq!(shard.is_empty(), model.is_empty());
    let walked: Vec<(u64, Bytes, u32)> = shard
        .iter()
        .map(|(slot, item)| (slot.hash, slot.key.clone(), value_of(item)))
        .collect();
    let expected: Vec<(u64, Bytes, u32)> = model
        .iter()
        .map(|((hash, key), value)| (*hash, key.clone(), *value))
        .collect();
    assert_eq!(walked, expected);
    for ((hash, key), value) in model {
        let (slot, item) = shard.get_key_value(*hash, key).expect("every key is found");
        assert_eq!((slot.hash, &slot.key), (*hash, key));
        assert_eq!(value_of(item), *value);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u32, u32),
    Remove(u32),
    /// Changes a key's item through `get_mut`.
    Bump(u32),
    /// Keeps a clone, which must not change any more.
    Snapshot,
    /// Checks a range from the slot of key `id` (present or not).
    Range(u32),
}

fn ops(keys: u32) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0..keys, any::<u32>()).prop_map(|(id, value)| Op::Insert(id, value)),
        4 => (0..keys).prop_map(Op::Remove),
        1 => (0..keys).prop_map(Op::Bump),
        1 => Just(Op::Snapshot),
        1 => (0..keys).prop_map(Op::Range),
    ];
    prop::collection::vec(op, 1..1500)
}

fn spread() -> impl Strategy<Value = Spread> {
    prop_oneof![
        Just(Spread::Uniform),
        Just(Spread::Colliding),
        Just(Spread::Clustered)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The shard behaves as an ordered map of slots, and every clone keeps the contents it
    /// was taken with whatever the original does after.
    #[test]
    fn a_shard_is_an_ordered_map_whose_clones_never_change(
        spread in spread(),
        keys in prop_oneof![Just(40u32), Just(400u32), Just(3000u32)],
        ops in ops(3000),
    ) {
        let mut shard = Shard::new();
        let mut model = Model::new();
        let mut snapshots: Vec<(Shard, Model)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(id, value) if value % 2 == 0 => {
                    let slot = slot_of(spread, id % keys);
                    // A batch's prefetch reads the map as a lookup does: it must hold up
                    // whatever the shape (an empty shard, a leaf past the cap, a new key).
                    for step in 0..PREFETCH_STEPS {
                        shard.prefetch(slot.hash, step);
                    }
                    let previous = shard.insert(slot.clone(), item(value));
                    let expected = model.insert((slot.hash, slot.key), value);
                    prop_assert_eq!(previous.map(|item| value_of(&item)), expected);
                }
                Op::Insert(id, value) => {
                    // The borrowed-key insert: the slot is built only for a new key.
                    let slot = slot_of(spread, id % keys);
                    let built = std::cell::Cell::new(false);
                    let make = || {
                        built.set(true);
                        slot.clone()
                    };
                    let previous = shard.insert_borrowed(slot.hash, &slot.key, make, item(value));
                    let expected = model.insert((slot.hash, slot.key.clone()), value);
                    prop_assert_eq!(built.get(), expected.is_none());
                    prop_assert_eq!(previous.map(|item| value_of(&item)), expected);
                }
                Op::Remove(id) => {
                    let slot = slot_of(spread, id % keys);
                    let removed = shard.remove(slot.hash, &slot.key);
                    let expected = model.remove(&(slot.hash, slot.key.clone()));
                    prop_assert_eq!(
                        removed.map(|(slot, item)| (slot.hash, slot.key, value_of(&item))),
                        expected.map(|value| (slot.hash, slot.key, value))
                    );
                }
                Op::Bump(id) => {
                    let slot = slot_of(spread, id % keys);
                    let found = shard.get_mut(slot.hash, &slot.key);
                    let expected = model.get_mut(&(slot.hash, slot.key.clone()));
                    prop_assert_eq!(found.is_some(), expected.is_some());
                    if let (Some(found), Some(expected)) = (found, expected) {
                        *expected = expected.wrapping_add(1);
                        *found = item(*expected);
                    }
                }
                Op::Snapshot => snapshots.push((shard.clone(), model.clone())),
                Op::Range(id) => {
                    let start = slot_of(spread, id % keys);
                    let ranged: Vec<(u64, Bytes)> = shard
                        .range_from(&start)
                        .map(|(slot, _)| (slot.hash, slot.key.clone()))
                        .collect();
                    let expected: Vec<(u64, Bytes)> = model
                        .range((start.hash, start.key)..)
                        .map(|(slot, _)| slot.clone())
                        .collect();
                    prop_assert_eq!(ranged, expected);
                }
            }
        }
        assert_holds(&shard, &model);
        for (snapshot, model) in &snapshots {
            assert_holds(snapshot, model);
        }
    }
}

#[test]
fn a_large_shard_splits_into_full_leaves_and_merges_back_when_emptied() {
    let mut shard = Shard::new();
    let mut model = Model::new();
    for id in 0..20_000 {
        let slot = slot_of(Spread::Uniform, id);
        model.insert((slot.hash, slot.key.clone()), id);
        shard.insert(slot, item(id));
    }
    assert_holds(&shard, &model);
    let dir = shard.dir.as_deref().unwrap();
    let leaves = dir.iter().filter(|entry| entry.leaf.is_some()).count();
    // Splits at a full leaf: leaves are on average well over a third full.
    assert!(
        leaves * LEAF_CAP < 20_000 * 3,
        "{leaves} leaves for 20,000 slots"
    );
    let snapshot = shard.clone();
    for id in 0..19_990 {
        let slot = slot_of(Spread::Uniform, id);
        model.remove(&(slot.hash, slot.key.clone()));
        shard.remove(slot.hash, &slot.key).expect("present");
    }
    assert_holds(&shard, &model);
    let dir = shard.dir.as_deref().unwrap();
    let leaves = dir.iter().filter(|entry| entry.leaf.is_some()).count();
    assert!(leaves <= 10, "ten slots left in {leaves} leaves");
    assert_eq!(snapshot.len(), 20_000);
    snapshot.check();
    for id in 19_990..20_000 {
        let slot = slot_of(Spread::Uniform, id);
        shard.remove(slot.hash, &slot.key).expect("present");
    }
    assert!(shard.dir.is_none(), "an emptied shard drops its directory");
}

#[test]
fn leaves_stop_splitting_at_the_maximum_depth() {
    // 100 keys agreeing on exactly MAX_DEPTH - 1 bits below the shard bits, differing below:
    // the leaf splits down to MAX_DEPTH, where it takes every key that follows.
    let mut shard = Shard::new();
    let mut model = Model::new();
    for id in 0..100u32 {
        let below = 64 - SHARD_BITS - (MAX_DEPTH - 1);
        let rest = (0x5u64 << below) | (mix(id.into()) >> (64 - below));
        let slot = Slot {
            hash: (3 << (64 - SHARD_BITS)) | rest | 1,
            key: Bytes::from(format!("k{id}")),
        };
        model.insert((slot.hash, slot.key.clone()), id);
        shard.insert(slot, item(id));
    }
    assert_holds(&shard, &model);
    let dir = shard.dir.as_deref().unwrap();
    assert_eq!(dir_depth(dir.len()), MAX_DEPTH);
    assert!(
        dir.iter()
            .filter_map(|entry| entry.leaf.as_deref())
            .any(|leaf| leaf.len() > LEAF_CAP),
        "a leaf at the maximum depth grows past the cap"
    );
}

#[test]
fn a_write_after_a_clone_copies_only_what_it_changes() {
    let mut shard = Shard::new();
    for id in 0..5_000 {
        shard.insert(slot_of(Spread::Uniform, id), item(id));
    }
    let snapshot = shard.clone();
    let slot = slot_of(Spread::Uniform, 7);
    *shard.get_mut(slot.hash, &slot.key).unwrap() = item(99);
    let (old, new) = (
        snapshot.dir.as_deref().unwrap(),
        shard.dir.as_deref().unwrap(),
    );
    let leaves = |dir: &[DirEntry]| -> Vec<*const Leaf> {
        dir.iter()
            .filter_map(|entry| entry.leaf.as_ref().map(Arc::as_ptr))
            .collect()
    };
    let (old, new) = (leaves(old), leaves(new));
    assert_eq!(old.len(), new.len());
    let copied = old.iter().zip(&new).filter(|(a, b)| a != b).count();
    assert_eq!(copied, 1, "one leaf copied");
    assert_eq!(value_of(snapshot.get(slot.hash, &slot.key).unwrap()), 7);
    assert_eq!(value_of(shard.get(slot.hash, &slot.key).unwrap()), 99);
    // A lookup of a missing key for writing copies nothing.
    let mut other = snapshot.clone();
    assert!(other.get_mut(1, b"missing").is_none());
    assert!(Arc::ptr_eq(
        other.dir.as_ref().unwrap(),
        snapshot.dir.as_ref().unwrap()
    ));
}
