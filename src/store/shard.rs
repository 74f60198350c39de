//! One shard of a database: a persistent map of slots, in slot order, that finds a slot by its
//! hash bits as a hash table does.
//!
//! Why not a B-tree (the shards were `imbl::OrdMap`s): a lookup in a tree of a million keys
//! walks four or five nodes and binary-searches each, a cache miss per step, where a hash table
//! goes straight to the key. Measured (`cargo bench --bench store`, 1M keys): a `get` cost
//! three `std::collections::HashMap` lookups, and the tree was most of the user time keeper's
//! `SET` spent beyond Redis's. This map keeps what the tree gave the store — a clone that costs
//! O(1) and shares everything with the original until one of them writes (snapshots), and one
//! order over the slots for `SCAN`'s cursor — at the cost of a lookup that touches only the
//! directory, one leaf and the key.
//!
//! # Shape
//!
//! Extendible hashing ordered by hash. The slots are cut by their hash bits (below the bits
//! that chose the shard) into *leaves* of at most [`LEAF_CAP`] slots, each a sorted run of
//! consecutive slots that share a prefix of `depth` bits. The *directory* has `2^d` entries
//! indexed by the next `d` hash bits; a leaf of depth `l <= d` owns `2^(d - l)` consecutive
//! entries. Invariants:
//! - the first entry of a leaf's range holds the leaf, the others `None`, and every entry of
//!   the range records the leaf's depth, so a lookup reads the directory at its index, then
//!   at the start of that range;
//! - so walking the directory in order and skipping `None` visits the leaves in slot order;
//! - leaves and the directory are shared (`Arc`) between clones and copied on write, each the
//!   first time a clone writes to it. A leaf's reference count is the number of directories
//!   holding it, so `Arc::make_mut` copies exactly when a snapshot shares it.
//!
//! A full leaf splits in two by its next hash bit (doubling the directory when the leaf is as
//! deep as it is); a leaf that, after a removal, fits with its buddy in half a leaf merges
//! with it. The directory never shrinks (Redis's dict shrinks; a shard whose last key goes
//! drops its directory).
//!
//! The cost of the first write to a shard after a snapshot: a copy of the directory, which
//! touches every leaf's reference count (about one per 20 keys), besides the leaf written.
//! That is why a database has many small shards (`SHARDS`).
//!
//! Measured on the same host and keys: a `get` 1.0 µs against the B-tree's 1.5–1.9 µs and a
//! hash table's 0.5–0.6 µs (BENCHMARKS.md, "The keyspace as a hash of leaves").

use std::cmp::Ordering;
use std::sync::Arc;

use super::{Item, SHARD_BITS, Slot, Value};
use crate::os::prefetch;

/// A slot and its item.
type Entry = (Slot, Arc<Item>);

/// A leaf: consecutive slots, sorted.
///
/// A `Vec` rather than slots inline in the leaf's allocation (`SmallVec`): a lookup reads the
/// leaf's header and one line of its slots either way, and measured, inline was no faster.
type Leaf = Vec<Entry>;

/// Slots per leaf before it splits. Small enough that an insert's shift within the leaf and a
/// leaf's copy after a snapshot stay cheap, large enough that the directory stays small (a
/// leaf is on average about two thirds full).
const LEAF_CAP: usize = 32;

/// How many slots on each side of the predicted one a batch's prefetch asks for
/// ([`Shard::prefetch`]).
const PREFETCH_AROUND: usize = 2;
/// The cache line size the prefetch steps over.
const CACHE_LINE: usize = 64;
/// The allocator's header before a heap block (glibc's size word), which `free` reads.
const BLOCK_HEADER: usize = 8;
/// What precedes an `Arc`'s value in its block: the two reference counts.
const ARC_COUNTS: usize = 16;
/// The steps of a batch's prefetch ([`Shard::prefetch`]).
pub(super) const PREFETCH_STEPS: u8 = 5;

/// The deepest a leaf splits: 2^16 directory entries (1 MiB) per shard at most, room for
/// about a billion keys per database in full leaves. Beyond, a leaf grows past [`LEAF_CAP`]
/// (as it does when more than 32 keys agree on all the hash bits the shard and the maximum
/// depth use, which a seeded hash makes vanishingly rare).
const MAX_DEPTH: u32 = 16;

/// A directory entry: the leaf, at the first entry of its range, and the leaf's depth.
#[derive(Clone)]
struct DirEntry {
    leaf: Option<Arc<Leaf>>,
    depth: u32,
}

/// Where a slot is or goes ([`Shard::spot`]): the first directory entry of its leaf's range
/// and its index in the leaf.
enum Spot {
    /// The slot is there.
    Taken { first: usize, at: usize },
    /// The slot is not there; its leaf has room for it at `at`.
    Free { first: usize, at: usize },
}

/// A shard's map (see the module docs). `Clone` is O(1).
#[derive(Clone, Default)]
pub(super) struct Shard {
    /// `None` while empty: an empty shard allocates nothing. Its length is a power of two.
    dir: Option<Arc<[DirEntry]>>,
    len: usize,
}

/// The invariant every read of a leaf at the start of its range relies on (module docs).
const LEAF_AT_FIRST: &str = "the first directory entry of a leaf's range holds the leaf";

/// How many leading hash bits below the shard's two slot hashes share: every slot between
/// them shares those too, so no split at that depth or above separates them.
fn shared_bits(low: u64, high: u64) -> u32 {
    (bits(low) ^ bits(high)).leading_zeros()
}

/// The hash bits below those that chose the shard, at the top of the word.
fn bits(hash: u64) -> u64 {
    hash << SHARD_BITS
}

/// The depth of a directory of `entries` entries.
fn dir_depth(entries: usize) -> u32 {
    entries.trailing_zeros()
}

/// The directory entry a slot's hash bits index.
fn dir_index(dir: &[DirEntry], bits: u64) -> usize {
    let d = dir_depth(dir.len());
    if d == 0 {
        0
    } else {
        (bits >> (64 - d)) as usize
    }
}

/// Where a slot's leaf is: the first directory entry of its range, and its depth.
fn locate(dir: &[DirEntry], bits: u64) -> (usize, u32) {
    let d = dir_depth(dir.len());
    let index = dir_index(dir, bits);
    let depth = dir[index].depth;
    let first = index & !((1usize << (d - depth)) - 1);
    (first, depth)
}

/// Where in `leaf` (of depth `depth`) the slot of `hash` should be: the hash bits below the
/// leaf's prefix, scaled to the leaf's length (at most `leaf.len()`).
fn predicted_index(leaf: &Leaf, depth: u32, hash: u64) -> usize {
    let within = bits(hash) << depth;
    (((within >> 32) * leaf.len() as u64) >> 32) as usize
}

/// Asks for the start of the heap block at `start` and the allocator's header before it (in
/// the line before when the block starts a line).
fn prefetch_block(start: *const u8) {
    prefetch(start.wrapping_sub(BLOCK_HEADER));
    prefetch(start);
}

/// The leaf held at directory entry `first` (the first of its range).
fn leaf_at(dir: &[DirEntry], first: usize) -> &Leaf {
    dir[first].leaf.as_deref().expect(LEAF_AT_FIRST)
}

/// Where `(hash, key)` is in `leaf` (of depth `depth`): `Ok` at its index, or `Err` at the
/// index it would be inserted at.
///
/// The hashes of a leaf are spread evenly over its range, so the search starts at the index
/// the hash's place in the range predicts and steps from there: about one cache line of the
/// leaf read, where a binary search reads four or five.
fn position(leaf: &Leaf, depth: u32, hash: u64, key: &[u8]) -> Result<usize, usize> {
    let target = (hash, key);
    let order = |(slot, _): &Entry| (slot.hash, &slot.key[..]).cmp(&target);
    if leaf.len() > LEAF_CAP {
        // A leaf past the cap holds slots that agree on more bits than the prediction uses
        // (see `MAX_DEPTH`): stepping could walk all of it.
        return leaf.binary_search_by(order);
    }
    let mut at = predicted_index(leaf, depth, hash);
    while at > 0 && order(&leaf[at - 1]) != Ordering::Less {
        at -= 1;
    }
    while at < leaf.len() && order(&leaf[at]) == Ordering::Less {
        at += 1;
    }
    match leaf.get(at).map(order) {
        Some(Ordering::Equal) => Ok(at),
        _ => Err(at),
    }
}

impl Shard {
    /// An empty shard.
    pub(super) fn new() -> Self {
        Shard::default()
    }

    /// Number of slots.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// True when the shard holds no slot.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The leaf that holds or would hold `(hash, key)`: where it starts in the directory, its
    /// depth, the leaf, and the slot's position in it.
    fn find(&self, hash: u64, key: &[u8]) -> Option<(usize, u32, &Leaf, Result<usize, usize>)> {
        let dir = self.dir.as_deref()?;
        let (first, depth) = locate(dir, bits(hash));
        let leaf = leaf_at(dir, first);
        Some((first, depth, leaf, position(leaf, depth, hash, key)))
    }

    /// One of the [`PREFETCH_STEPS`] steps of a batch's prefetch for the slot of `hash`
    /// (`Store::prefetch_keys`): step 0 asks for the directory entry, 1 for the leaf, 2 for
    /// the slots around the one the hash predicts, 3 for the key and item of the slot holding
    /// `hash` among them, 4 for the heap block of that item's string value. Each step reads
    /// what the step before asked for (by then, likely in the cache); a hint only, it changes
    /// nothing.
    ///
    /// Why the item's allocation and its value's: an overwrite frees both (the old item is
    /// dropped), and `free` reads each block's header just before it, a miss of its own
    /// (measured: `free` was 8–10% of the I/O thread under pipelined SETs).
    ///
    /// Why a neighbourhood and a search by hash: the prediction is often a slot or two off
    /// (a leaf's hashes are spread evenly only on average), and the key of the predicted slot
    /// is then not the one the lookup compares; measured, the key compare stayed the largest
    /// miss when step 3 took the predicted slot.
    pub(super) fn prefetch(&self, hash: u64, step: u8) {
        let Some(dir) = self.dir.as_deref() else {
            return;
        };
        if step == 0 {
            prefetch(&dir[dir_index(dir, bits(hash))]);
            return;
        }
        let (first, depth) = locate(dir, bits(hash));
        let leaf = leaf_at(dir, first);
        if step == 1 {
            prefetch(leaf);
            return;
        }
        if leaf.is_empty() {
            return;
        }
        let predicted = predicted_index(leaf, depth, hash).min(leaf.len() - 1);
        let around = predicted.saturating_sub(PREFETCH_AROUND)
            ..(predicted + PREFETCH_AROUND + 1).min(leaf.len());
        if step == 2 {
            let span = &leaf[around];
            let start = span.as_ptr().cast::<u8>();
            for line in (0..size_of_val(span)).step_by(CACHE_LINE) {
                prefetch(start.wrapping_add(line));
            }
            prefetch(start.wrapping_add(size_of_val(span) - 1));
            return;
        }
        // Only hashes are read here: the key is what step 3 asks for.
        let Some((slot, item)) = leaf[around].iter().find(|(slot, _)| slot.hash == hash) else {
            return;
        };
        if step == 3 {
            prefetch(slot.key.as_ptr());
            prefetch_block(Arc::as_ptr(item).cast::<u8>().wrapping_sub(ARC_COUNTS));
            prefetch(Arc::as_ptr(item));
            return;
        }
        if let Value::String(bytes) = &item.value {
            prefetch_block(bytes.as_ptr());
        }
    }

    /// The stored slot and item of `(hash, key)`.
    pub(super) fn get_key_value(&self, hash: u64, key: &[u8]) -> Option<(&Slot, &Arc<Item>)> {
        let (_, _, leaf, Ok(at)) = self.find(hash, key)? else {
            return None;
        };
        let (slot, item) = &leaf[at];
        Some((slot, item))
    }

    /// The item of `(hash, key)`.
    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&Arc<Item>> {
        self.get_key_value(hash, key).map(|(_, item)| item)
    }

    /// The item of `(hash, key)` for modification; its leaf (and the directory) are copied
    /// first if a clone shares them. Nothing is copied for a key that is not there.
    pub(super) fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Arc<Item>> {
        let (first, _, _, Ok(at)) = self.find(hash, key)? else {
            return None;
        };
        Some(&mut self.leaf_mut(first)[at].1)
    }

    /// Stores `item` at `slot`, returning the item it replaced.
    pub(super) fn insert(&mut self, slot: Slot, item: Arc<Item>) -> Option<Arc<Item>> {
        let spot = self.spot(slot.hash, &slot.key);
        self.store_at(spot, || slot, item)
    }

    /// [`Shard::insert`] of a key the caller only borrows: an overwrite keeps the stored slot
    /// (no copy of the key); a new key is copied by `slot` into the slot to store.
    pub(super) fn insert_borrowed(
        &mut self,
        hash: u64,
        key: &[u8],
        slot: impl FnOnce() -> Slot,
        item: Arc<Item>,
    ) -> Option<Arc<Item>> {
        let spot = self.spot(hash, key);
        self.store_at(spot, slot, item)
    }

    /// Where `(hash, key)` is, or where it goes with room made for it (the first directory,
    /// or a split of its full leaf).
    fn spot(&mut self, hash: u64, key: &[u8]) -> Spot {
        loop {
            let Some((first, depth, _, found)) = self.find(hash, key) else {
                self.dir = Some(Arc::new([DirEntry {
                    leaf: Some(Arc::new(Leaf::new())),
                    depth: 0,
                }]));
                continue;
            };
            match found {
                Ok(at) => return Spot::Taken { first, at },
                Err(at) => {
                    if self.should_split(first, depth, hash) {
                        self.split(first, depth);
                        continue;
                    }
                    return Spot::Free { first, at };
                }
            }
        }
    }

    /// Stores `item` at `spot`: replacing the item there (returned), or inserting a new slot
    /// built by `slot`.
    fn store_at(
        &mut self,
        spot: Spot,
        slot: impl FnOnce() -> Slot,
        item: Arc<Item>,
    ) -> Option<Arc<Item>> {
        match spot {
            Spot::Taken { first, at } => {
                Some(std::mem::replace(&mut self.leaf_mut(first)[at].1, item))
            }
            Spot::Free { first, at } => {
                self.leaf_mut(first).insert(at, (slot(), item));
                self.len += 1;
                None
            }
        }
    }

    /// Removes `(hash, key)`, returning its slot and item.
    pub(super) fn remove(&mut self, hash: u64, key: &[u8]) -> Option<(Slot, Arc<Item>)> {
        let (first, depth, _, Ok(at)) = self.find(hash, key)? else {
            return None;
        };
        let leaf = self.leaf_mut(first);
        let removed = leaf.remove(at);
        if leaf.is_empty() {
            // Give the allocation back: an empty leaf may stay a while (its buddy split).
            *leaf = Leaf::new();
        }
        self.len -= 1;
        if self.len == 0 {
            self.dir = None;
        } else {
            self.merge(first, depth);
        }
        Some(removed)
    }

    /// Every slot and item, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Slot, &Arc<Item>)> {
        self.dir
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| entry.leaf.as_deref())
            .flatten()
            .map(|(slot, item)| (slot, item))
    }

    /// Every slot and item from `start` on, in slot order.
    pub(super) fn range_from<'a>(
        &'a self,
        start: &Slot,
    ) -> impl Iterator<Item = (&'a Slot, &'a Arc<Item>)> + use<'a> {
        let dir = self.dir.as_deref().unwrap_or_default();
        let (head, rest): (&[Entry], &[DirEntry]) = if dir.is_empty() {
            (&[], &[])
        } else {
            let (first, depth) = locate(dir, bits(start.hash));
            let leaf = leaf_at(dir, first);
            let at = position(leaf, depth, start.hash, &start.key).unwrap_or_else(|at| at);
            let end = first + (1 << (dir_depth(dir.len()) - depth));
            (&leaf[at..], &dir[end..])
        };
        head.iter()
            .chain(
                rest.iter()
                    .filter_map(|entry| entry.leaf.as_deref())
                    .flatten(),
            )
            .map(|(slot, item)| (slot, item))
    }

    /// The directory, copied first if a clone shares it. (Prefetching the leaves' reference
    /// counts during the copy was tried: no faster, `first_set_after_snapshot` in
    /// `benches/store.rs`.)
    fn dir_mut(&mut self) -> &mut [DirEntry] {
        Arc::make_mut(
            self.dir
                .as_mut()
                .expect("a shard with slots has a directory"),
        )
    }

    /// The leaf at directory entry `first`, copied first (with the directory) if a clone
    /// shares it.
    fn leaf_mut(&mut self, first: usize) -> &mut Leaf {
        Arc::make_mut(self.dir_mut()[first].leaf.as_mut().expect(LEAF_AT_FIRST))
    }

    /// True when the leaf at `first` (of depth `depth`) is full and a split would separate
    /// its slots and one of hash `hash` within [`MAX_DEPTH`].
    fn should_split(&self, first: usize, depth: u32, hash: u64) -> bool {
        let Some(dir) = self.dir.as_deref() else {
            return false;
        };
        let leaf = leaf_at(dir, first);
        if leaf.len() < LEAF_CAP || depth >= MAX_DEPTH {
            return false;
        }
        // Sorted: the extremes bound what every slot of the leaf shares.
        let (low, high) = (leaf[0].0.hash, leaf[leaf.len() - 1].0.hash);
        shared_bits(low.min(hash), high.max(hash)) < MAX_DEPTH
    }

    /// Splits the leaf at `first` (of depth `depth`) in two by its next hash bit, doubling
    /// the directory first when the leaf is as deep as it.
    fn split(&mut self, mut first: usize, depth: u32) {
        let dir = self.dir.as_mut().expect("a leaf to split has a directory");
        if dir_depth(dir.len()) == depth {
            // Each entry becomes two, the leaf moving to the first of them: no leaf's
            // reference count is touched (unless a clone shares the directory).
            let old = Arc::make_mut(dir);
            *dir = old
                .iter_mut()
                .flat_map(|entry| {
                    let depth = entry.depth;
                    [
                        DirEntry {
                            leaf: entry.leaf.take(),
                            depth,
                        },
                        DirEntry { leaf: None, depth },
                    ]
                })
                .collect();
            first *= 2;
        }
        let dir = self.dir_mut();
        let span = 1usize << (dir_depth(dir.len()) - depth);
        let leaf = dir[first].leaf.take().expect(LEAF_AT_FIRST);
        let mut entries = Arc::unwrap_or_clone(leaf);
        // The bit below the leaf's prefix: 0 for the first half of the range.
        let cut = entries.partition_point(|(slot, _)| (bits(slot.hash) << depth) >> 63 == 0);
        // Both halves room for a full leaf: they fill up to it before they split again.
        let mut high = Leaf::with_capacity(LEAF_CAP);
        high.extend(entries.drain(cut..));
        if entries.is_empty() {
            entries = Leaf::new();
        }
        for entry in &mut dir[first..first + span] {
            entry.depth = depth + 1;
        }
        dir[first].leaf = Some(Arc::new(entries));
        dir[first + span / 2].leaf = Some(Arc::new(high));
    }

    /// After a removal from the leaf at `first` (of depth `depth`): merges it with its buddy
    /// while both are as deep and fit in half a leaf together (half, so that a key added and
    /// removed at the boundary does not split and merge every time).
    fn merge(&mut self, mut first: usize, mut depth: u32) {
        let dir = self.dir_mut();
        let d = dir_depth(dir.len());
        while depth > 0 {
            let span = 1usize << (d - depth);
            let buddy = first ^ span;
            if dir[buddy].depth != depth {
                break;
            }
            let (low, high) = (first.min(buddy), first.max(buddy));
            if leaf_at(dir, low).len() + leaf_at(dir, high).len() > LEAF_CAP / 2 {
                break;
            }
            let taken = dir[high].leaf.take().expect(LEAF_AT_FIRST);
            let tail = Arc::unwrap_or_clone(taken);
            let head = Arc::make_mut(dir[low].leaf.as_mut().expect(LEAF_AT_FIRST));
            head.extend(tail);
            for entry in &mut dir[low..low + 2 * span] {
                entry.depth = depth - 1;
            }
            first = low;
            depth -= 1;
        }
    }

    /// Checks the invariants of the module docs (tests).
    #[cfg(test)]
    fn check(&self) {
        let Some(dir) = self.dir.as_deref() else {
            assert_eq!(self.len, 0);
            return;
        };
        assert!(dir.len().is_power_of_two());
        let d = dir_depth(dir.len());
        let mut index = 0;
        let mut count = 0;
        let mut previous: Option<&Slot> = None;
        while index < dir.len() {
            let depth = dir[index].depth;
            assert!(depth <= d);
            let span = 1usize << (d - depth);
            assert_eq!(index % span, 0, "a leaf's range is aligned");
            let leaf = dir[index].leaf.as_deref().expect("leaf at its first entry");
            for entry in &dir[index + 1..index + span] {
                assert!(entry.leaf.is_none());
                assert_eq!(entry.depth, depth);
            }
            assert!(
                leaf.len() <= LEAF_CAP
                    || depth >= MAX_DEPTH
                    || shared_bits(leaf[0].0.hash, leaf[leaf.len() - 1].0.hash) >= MAX_DEPTH
            );
            for (slot, _) in leaf {
                let prefix = if depth == 0 {
                    0
                } else {
                    (bits(slot.hash) >> (64 - depth)) as usize
                };
                assert_eq!(prefix, index >> (d - depth), "a slot is in its leaf");
                if let Some(previous) = previous {
                    assert!(previous < slot, "slot order");
                }
                previous = Some(slot);
            }
            count += leaf.len();
            index += span;
        }
        assert_eq!(count, self.len);
    }
}

#[cfg(test)]
mod tests;
