//! The reference keyspace: 16 databases of keys with values and expiry, and O(1) snapshots.
//!
//! Every database is a persistent map of slots `(hash, key)` in slot order, cut into
//! [`SHARDS`] shards by the top bits of the hash (so shard order is slot order); a shard finds
//! a slot by its hash bits as a hash table does, in a directory of small sorted leaves
//! (`shard::Shard`). [`Store::snapshot`] clones the shards in O(1) (of the keyspace's size);
//! later writes copy only the directory and the leaf they change that the snapshot still
//! shares, so a snapshot is an immutable view of one point of the write stream while writes go
//! on. A snapshot that is written once ([`Store::one_pass_snapshot`]) lets go of each shard as
//! soon as it is written: writes to the shards behind it copy nothing any more, and what they
//! replaced is freed.
//!
//! Ordering by a seeded hash gives what Redis users expect from a hash table — `SCAN` with a
//! numeric cursor that returns every key present for the whole iteration, and cheap
//! `RANDOMKEY` — on a map that can be shared.
//!
//! Keys and values stored here are compact copies: a command must never store a slice of a
//! request buffer (it would keep the whole buffer alive); use [`own`].
//!
//! Keys that expire are removed lazily on access and by [`Store::expire_cycle`]; each removal
//! is recorded so the engine can propagate a `DEL` exactly as Redis does ([`Store::take_expired`]).

mod shard;
mod value;

pub use value::{Elements, Fields, HashValue, Members, Score, SortedSet, Value};
/// The persistent map and set types of hash and set values (the store's hasher).
pub use value::{HashMap, HashSet};

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdSet;

use shard::Shard;

use crate::dataset::{EntryRef, ValueRef};
use crate::model::Entry;

/// A compact copy of `bytes`, safe to keep in the store (see the module docs).
pub fn own(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// Where a key lives in a database map: its seeded hash, then the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    hash: u64,
    key: Bytes,
}

/// The keys of a database while a startup load replays commands into it
/// ([`Store::set_staging`]): a hash table of slots, no shards.
///
/// Why: replaying an AOF is a long run of single-key writes in random key order; in the
/// shards each one reads the directory, a leaf and the key, and shifts the leaf's slots to
/// insert, where a hash table finds the key in one or two probes (measured when the shards
/// were B-trees, where the gap was wider). No snapshot, scan or ordered walk happens during
/// the load, so nothing needs the order until the load ends; then the keys go into the shards
/// sorted, as an RDB load puts them ([`BulkLoad`]).
///
/// A `HashTable` rather than a map: it probes with the seeded hash the slot already carries
/// (no second hash of the key), and finds or inserts in one probe with a borrowed key, so an
/// overwrite copies no key ([`Store::insert_copied`]).
type Staged = hashbrown::HashTable<(Slot, Arc<Item>), crate::os::HugePageHint>;

/// The [`Staged`] table's hash of a slot hash. Slot hashes always have their lowest bit set
/// (see `Store::slot_hash`), and the table indexes by the low bits: fold high bits in so
/// every bucket is used.
fn staged_hash(hash: u64) -> u64 {
    hash ^ (hash >> 32)
}

/// Rehashes a [`Staged`] entry when the table grows.
fn staged_hash_of(entry: &(Slot, Arc<Item>)) -> u64 {
    staged_hash(entry.0.hash)
}

/// Matches the [`Staged`] entry of `(hash, key)`.
fn staged_is(hash: u64, key: &[u8]) -> impl Fn(&(Slot, Arc<Item>)) -> bool + '_ {
    move |(slot, _)| slot.hash == hash && *slot.key == *key
}

impl Slot {
    /// The key's bytes.
    pub fn key(&self) -> &Bytes {
        &self.key
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.hash, &self.key).cmp(&(other.hash, &other.key))
    }
}

/// A key's value and metadata. Shared with snapshots through `Arc`: the leaves hold small
/// entries, and a write to a shared item copies only that item (whose collections are
/// themselves persistent, so the copy is O(1)).
#[derive(Clone, Debug)]
pub struct Item {
    pub value: Value,
    /// Absolute expiry in unix milliseconds.
    pub expire_at_ms: Option<i64>,
}

/// log2 of [`SHARDS`].
const SHARD_BITS: u32 = 10;
/// Number of shards a database is cut into, by the top bits of the slot hash. Why:
/// - The first write to a shard after a snapshot copies the shard's directory (a pointer per
///   leaf, each leaf's reference count a cache miss; see `shard::Shard`). A batch of writes
///   right after a `BGSAVE` starts touches as many shards as it has writes, so what it stalls
///   for grows with the size of a shard: measured on 5M keys under 50 writing clients
///   (`bench-vs-redis bgsave`), 64 shards stalled a write 13–20 ms, 1024 stay under Redis's
///   fork by far and within the 10 ms target.
/// - A snapshot being written releases what it has written shard by shard
///   ([`OnePassSnapshot`]), so the copies a `BGSAVE` under writes keeps alive peak, mid-save,
///   at about a quarter of what a whole-keyspace snapshot held at its end.
///
/// An empty shard allocates nothing; a database's shard table is 24 KiB and a snapshot takes
/// 1024 reference counts per database.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// The most keys [`Store::prefetch_keys`] prefetches at once: enough for a deep pipeline,
/// few enough that the first lines asked for are still in the L1 cache when used.
pub const PREFETCH_KEYS: usize = 32;

/// The shard of a slot hash: its top bits, so shard order is slot order.
fn shard_of(hash: u64) -> usize {
    (hash >> (u64::BITS - SHARD_BITS)) as usize
}

/// One database.
#[derive(Clone)]
pub struct Db {
    /// The keys, [`SHARDS`] maps of consecutive slot ranges.
    shards: Vec<Shard>,
    /// Keys with a TTL, ordered by expiry time: the active expiry cycle pops from the front.
    /// Invariant: empty while the database is staged (no expiry runs during a startup load);
    /// [`Db::unstage`] builds it from the items' TTLs.
    expires: OrdSet<(i64, Slot)>,
    /// The keys while a startup load stages them ([`Staged`]). Invariant: while `Some`, every
    /// shard is empty.
    staged: Option<Staged>,
}

impl Default for Db {
    fn default() -> Self {
        Db {
            shards: vec![Shard::new(); SHARDS],
            expires: OrdSet::new(),
            staged: None,
        }
    }
}

impl Db {
    /// Number of keys (including expired keys not yet removed).
    pub fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum::<usize>()
            + self.staged.as_ref().map_or(0, |s| s.len())
    }

    /// True when the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(Shard::is_empty) && self.staged.as_ref().is_none_or(|s| s.is_empty())
    }

    /// The item of `(hash, key)`, staged or in its shard.
    fn lookup(&self, hash: u64, key: &[u8]) -> Option<&Arc<Item>> {
        match &self.staged {
            Some(staged) => staged
                .find(staged_hash(hash), staged_is(hash, key))
                .map(|(_, item)| item),
            None => self.shard(hash).get(hash, key),
        }
    }

    /// [`Db::lookup`] for modification.
    fn lookup_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Arc<Item>> {
        match &mut self.staged {
            Some(staged) => staged
                .find_mut(staged_hash(hash), staged_is(hash, key))
                .map(|(_, item)| item),
            None => self.shards[shard_of(hash)].get_mut(hash, key),
        }
    }

    /// The stored slot and item of `(hash, key)`.
    fn lookup_key_value(&self, hash: u64, key: &[u8]) -> Option<(&Slot, &Arc<Item>)> {
        match &self.staged {
            Some(staged) => staged
                .find(staged_hash(hash), staged_is(hash, key))
                .map(|(slot, item)| (slot, item)),
            None => self.shard(hash).get_key_value(hash, key),
        }
    }

    /// Stores `item` at `slot`, returning the item it replaced.
    fn put(&mut self, slot: Slot, item: Arc<Item>) -> Option<Arc<Item>> {
        let Some(staged) = &mut self.staged else {
            return self.shards[shard_of(slot.hash)].insert(slot, item);
        };
        match staged.entry(
            staged_hash(slot.hash),
            staged_is(slot.hash, &slot.key),
            staged_hash_of,
        ) {
            hashbrown::hash_table::Entry::Occupied(mut found) => {
                Some(std::mem::replace(&mut found.get_mut().1, item))
            }
            hashbrown::hash_table::Entry::Vacant(free) => {
                free.insert((slot, item));
                None
            }
        }
    }

    /// Removes `(hash, key)`, returning its slot and item.
    fn take(&mut self, hash: u64, key: &[u8]) -> Option<(Slot, Arc<Item>)> {
        match &mut self.staged {
            Some(staged) => staged
                .find_entry(staged_hash(hash), staged_is(hash, key))
                .ok()
                .map(|found| found.remove().0),
            None => self.shards[shard_of(hash)].remove(hash, key),
        }
    }

    /// Puts the staged keys into the shards, sorted (see [`Staged`]).
    fn unstage(&mut self) {
        let Some(staged) = self.staged.take() else {
            return;
        };
        debug_assert!(self.expires.is_empty(), "a staged database indexes no TTL");
        let mut buckets: Vec<Bucket> = (0..BULK_BUCKETS).map(|_| Vec::new()).collect();
        for (slot, item) in staged {
            buckets[bucket_of(slot.hash)].push((slot, item));
        }
        // Two halves of the slot range, each a run of whole shards (a bucket's slots all fall
        // in one shard), fill their shards on two threads when the load is large: at the end
        // of a load the decoder thread is idle, and the shards are a good part of its time.
        let entries = buckets.iter().map(Vec::len).sum::<usize>();
        let parts = if entries >= PARALLEL_SORT_ENTRIES {
            2
        } else {
            1
        };
        let mut buckets = buckets.into_iter();
        let halves: Vec<ShardFill<'_>> = self
            .shards
            .chunks_mut(SHARDS / parts)
            .enumerate()
            .map(|(part, shards)| ShardFill {
                buckets: buckets.by_ref().take(BULK_BUCKETS / parts).collect(),
                shards,
                first_shard: part * (SHARDS / parts),
            })
            .collect();
        let queue = std::sync::Mutex::new(halves.into_iter());
        let expiring = std::sync::Mutex::new(Vec::new());
        let work = || {
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .next();
                let Some(half) = next else { break };
                let indexed = half.build();
                expiring
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(indexed);
            }
        };
        std::thread::scope(|scope| {
            if parts > 1 {
                // Without the thread (it could not start), this one builds both halves.
                let _ = std::thread::Builder::new()
                    .name("keeper-load-fill".into())
                    .spawn_scoped(scope, work);
            }
            work();
        });
        let mut expiring = expiring
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        expiring.sort_unstable();
        insert_interleaved(expiring, |key| {
            self.expires.insert(key);
        });
    }

    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[shard_of(hash)]
    }

    fn shard_mut(&mut self, hash: u64) -> &mut Shard {
        &mut self.shards[shard_of(hash)]
    }

    /// Every entry, in slot order (staged entries, which exist only during a startup load,
    /// come in no order).
    fn iter_slots(&self) -> impl Iterator<Item = (&Slot, &Arc<Item>)> {
        self.shards.iter().flat_map(Shard::iter).chain(
            self.staged
                .iter()
                .flatten()
                .map(|(slot, item)| (slot, item)),
        )
    }

    /// Every entry from slot `start` on, in slot order (staged entries: those from `start`
    /// on, in no order).
    fn range_from(&self, start: Slot) -> impl Iterator<Item = (&Slot, &Arc<Item>)> {
        let first = shard_of(start.hash);
        let staged_from = start.hash;
        self.shards[first]
            .range_from(&start)
            .chain(self.shards[first + 1..].iter().flat_map(Shard::iter))
            .chain(
                self.staged
                    .iter()
                    .flatten()
                    .filter(move |(slot, _)| slot.hash >= staged_from)
                    .map(|(slot, item)| (slot, item)),
            )
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        match &self.staged {
            // Not indexed while staged: count them (only INFO asks, and never during a load).
            Some(staged) => staged
                .iter()
                .filter(|(_, item)| item.expire_at_ms.is_some())
                .count(),
            None => self.expires.len(),
        }
    }

    /// Every key with its item, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Arc<Item>)> {
        self.iter_slots().map(|(slot, item)| (&slot.key, item))
    }
}

/// The keyspace.
pub struct Store {
    dbs: Vec<Db>,
    hasher: foldhash::fast::FixedState,
    /// Keys removed because they expired, not yet taken by the engine: `(db, key)`.
    expired: Vec<(usize, Bytes)>,
    /// Replaying a file at start: no lazy expiry (Redis's `expireIfNeeded` does nothing while
    /// `server.loading`); keys whose TTL passed go later, by the active cycle or on access.
    loading: bool,
    /// A replica's keyspace: keys are removed by the primary's `DEL`s only, never by lazy
    /// expiry here, and reads (outside `loading`, which is how a replica applies its
    /// primary's stream) do not see a key whose TTL passed (Redis's `expireIfNeeded` on a
    /// replica).
    keep_expired: bool,
    /// A startup load runs: writes to an empty database stage its keys ([`Staged`]).
    staging: bool,
}

/// An immutable, point-in-time view of a [`Store`], taken in O(1).
#[derive(Clone)]
pub struct StoreSnapshot {
    dbs: Vec<Db>,
}

impl StoreSnapshot {
    /// The databases, index = database number.
    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Total number of keys.
    pub fn len(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    /// True when no database holds a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`Store::scan`] returns: the keys of one page and the cursor to continue from
/// (0 when the iteration is complete).
pub struct ScanPage {
    pub keys: Vec<Bytes>,
    pub cursor: u64,
}

impl Store {
    /// An empty store with `databases` databases (Redis's default is 16).
    pub fn new(databases: usize) -> Self {
        Store {
            dbs: vec![Db::default(); databases.max(1)],
            hasher: foldhash::fast::FixedState::with_seed(seed_from_clock()),
            expired: Vec::new(),
            loading: false,
            keep_expired: false,
            staging: false,
        }
    }

    /// Number of databases.
    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// The database `db`. Panics when out of range: callers validate indexes (SELECT, MOVE).
    pub fn db(&self, db: usize) -> &Db {
        &self.dbs[db]
    }

    /// O(1) point-in-time view of every database.
    pub fn snapshot(&self) -> StoreSnapshot {
        debug_assert!(!self.staging, "a snapshot during a staged load");
        StoreSnapshot {
            dbs: self.dbs.clone(),
        }
    }

    /// O(1) point-in-time view of every database, to be written once (a `BGSAVE`, an AOF
    /// rewrite, a full sync, a backup): see [`OnePassSnapshot`].
    pub fn one_pass_snapshot(&self) -> OnePassSnapshot {
        debug_assert!(
            self.dbs.iter().all(|db| db.staged.is_none()),
            "a one-pass snapshot walks the shards only"
        );
        OnePassSnapshot {
            dbs: self
                .dbs
                .iter()
                .map(|db| OnePassDb {
                    keys: db.len() as u64,
                    expires: db.expires_len() as u64,
                    shards: db
                        .shards
                        .iter()
                        .map(|shard| std::sync::Mutex::new(Some(shard.clone())))
                        .collect(),
                })
                .collect(),
        }
    }

    fn slot_hash(&self, key: &[u8]) -> u64 {
        // Never 0: a SCAN cursor of 0 means "start" and "done".
        self.hasher.hash_one(key) | 1
    }

    /// Asks the CPU for the memory that looking up `keys` in `db` will touch, in steps across
    /// all of them (the directory entries, then the leaves, then the slots, then their keys
    /// and items, then the items' string buffers, which an overwrite frees), so that their
    /// cache misses overlap instead of following one another: for a
    /// pipelined batch of commands, before it runs. A hint only: nothing changes, and at most
    /// [`PREFETCH_KEYS`] keys are looked at.
    pub fn prefetch_keys<'a>(&self, db: usize, keys: impl IntoIterator<Item = &'a [u8]>) {
        let Some(database) = self.dbs.get(db) else {
            return;
        };
        if database.staged.is_some() {
            return;
        }
        let mut hashes = [0u64; PREFETCH_KEYS];
        let mut count = 0;
        for key in keys.into_iter().take(PREFETCH_KEYS) {
            hashes[count] = self.slot_hash(key);
            count += 1;
        }
        for step in 0..shard::PREFETCH_STEPS {
            for &hash in &hashes[..count] {
                database.shard(hash).prefetch(hash, step);
            }
        }
    }

    /// Asks the CPU for what a command on `key` in `db`, `distance` commands from now, will
    /// touch in a staged database (see [`Store::set_staging`]; a startup load's replay reads
    /// ahead and calls this through [`crate::dataset::Apply::coming`]). One step per command
    /// of distance, each using what the previous one fetched (so each finds its lines in the
    /// cache):
    /// - from 3 on: the control bytes the key's probe starts at;
    /// - at 2: the slots those control bytes say may hold the key;
    /// - at 1: the table is probed by hash alone, and the key's bytes and its item, which
    ///   comparing the key and replacing the item read, are asked for.
    ///
    /// A hint only: nothing changes, and a database that is not staged is left alone.
    pub fn prefetch_staged(&self, db: usize, key: &[u8], distance: usize) {
        let Some(staged) = self
            .dbs
            .get(db)
            .and_then(|database| database.staged.as_ref())
        else {
            return;
        };
        let hash = self.slot_hash(key);
        let size = std::mem::size_of::<(Slot, Arc<Item>)>();
        match distance {
            3.. => {
                // Where the probe starts: hashbrown's table keeps slot `i` just below its
                // control bytes, at `ctrl - (i + 1) * size`, and starts probing at
                // `hash & mask`, reading 16 control bytes from there (0.17's layout; a
                // different one would only make this prefetch miss).
                let Some(first) = staged.iter_buckets().next() else {
                    return;
                };
                let Some(entry) = staged.get_bucket(first) else {
                    return;
                };
                let ctrl = (entry as *const (Slot, Arc<Item>) as usize) + (first + 1) * size;
                let start = staged_hash(hash) as usize & (staged.num_buckets() - 1);
                crate::os::prefetch((ctrl + start) as *const u8);
                crate::os::prefetch((ctrl + start + 15) as *const u8);
            }
            2 => {
                // Reads only control bytes: the slots whose tag matches the key's.
                for bucket in staged.iter_hash_buckets(staged_hash(hash)).take(2) {
                    if let Some(entry) = staged.get_bucket(bucket) {
                        let at = entry as *const (Slot, Arc<Item>) as *const u8;
                        crate::os::prefetch(at);
                        crate::os::prefetch(at.wrapping_add(size - 1));
                    }
                }
            }
            _ => {
                if let Some((slot, item)) =
                    staged.find(staged_hash(hash), |(slot, _)| slot.hash == hash)
                {
                    crate::os::prefetch(slot.key.as_ptr());
                    crate::os::prefetch(Arc::as_ptr(item));
                }
            }
        }
    }

    /// The live item of `key`, removing it first if it has expired (lazy expiry).
    pub fn get(&mut self, db: usize, key: &[u8], now_ms: i64) -> Option<&Item> {
        self.expire_if_due(db, key, now_ms);
        let hash = self.slot_hash(key);
        let hide = self.hides_expired();
        self.dbs[db]
            .lookup(hash, key)
            .map(|item| &**item)
            .filter(|item| !(hide && item.expire_at_ms.is_some_and(|at| at <= now_ms)))
    }

    /// The live item of `key` for modification (copied first if a snapshot shares it).
    /// The caller must not change `expire_at_ms` through this; use [`Store::set_expire`].
    pub fn get_mut(&mut self, db: usize, key: &[u8], now_ms: i64) -> Option<&mut Item> {
        self.expire_if_due(db, key, now_ms);
        let hash = self.slot_hash(key);
        let hide = self.hides_expired();
        self.dbs[db]
            .lookup_mut(hash, key)
            .filter(|item| !(hide && item.expire_at_ms.is_some_and(|at| at <= now_ms)))
            .map(Arc::make_mut)
    }

    /// Makes this a replica's keyspace (see the field's docs), or a primary's again.
    pub fn set_keep_expired(&mut self, keep: bool) {
        self.keep_expired = keep;
    }

    /// True for a replica's keyspace ([`Store::set_keep_expired`]).
    pub fn keeps_expired(&self) -> bool {
        self.keep_expired
    }

    /// Reads treat keys whose TTL passed as missing without removing them.
    fn hides_expired(&self) -> bool {
        self.keep_expired && !self.loading
    }

    /// True when `key` exists and has not expired.
    pub fn contains(&mut self, db: usize, key: &[u8], now_ms: i64) -> bool {
        self.get(db, key, now_ms).is_some()
    }

    /// Sets `key` to `value` with `expire_at_ms`, replacing any previous item (and its TTL).
    /// `key` and `value` must be compact copies ([`own`]).
    pub fn insert(&mut self, db: usize, key: Bytes, value: Value, expire_at_ms: Option<i64>) {
        let slot = Slot {
            hash: self.slot_hash(&key),
            key,
        };
        self.insert_slot(
            db,
            slot,
            Arc::new(Item {
                value,
                expire_at_ms,
            }),
        );
    }

    /// [`Store::insert`] of a key the caller only borrows: the store copies it ([`own`])
    /// only for a new key (an overwrite replaces the item in place, keeping the stored key)
    /// while no TTL is indexed, and in a staged database (a startup load's SETs are mostly
    /// overwrites). `value` must be a compact copy.
    pub fn insert_copied(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expire_at_ms: Option<i64>,
    ) {
        let hash = self.slot_hash(key);
        let item = Arc::new(Item {
            value,
            expire_at_ms,
        });
        self.stage_if_empty(db);
        let database = &mut self.dbs[db];
        let Some(staged) = &mut database.staged else {
            if database.expires.is_empty() && expire_at_ms.is_none() {
                // No TTL to index (see `Store::put_indexed`): an overwrite keeps the stored
                // key, so only a new key is copied.
                let slot = || Slot {
                    hash,
                    key: own(key),
                };
                database.shards[shard_of(hash)].insert_borrowed(hash, key, slot, item);
                return;
            }
            let key = own(key);
            return self.put_indexed(db, Slot { hash, key }, item);
        };
        // Staged: no TTL index to keep (see `Db::expires`).
        match staged.entry(staged_hash(hash), staged_is(hash, key), staged_hash_of) {
            hashbrown::hash_table::Entry::Occupied(mut found) => found.get_mut().1 = item,
            hashbrown::hash_table::Entry::Vacant(free) => {
                let key = own(key);
                free.insert((Slot { hash, key }, item));
            }
        }
    }

    /// While a startup load stages ([`Store::set_staging`]), a write that reaches an empty
    /// database starts its [`Staged`] table.
    fn stage_if_empty(&mut self, db: usize) {
        let database = &mut self.dbs[db];
        if self.staging && database.staged.is_none() && database.is_empty() {
            database.staged = Some(Staged::new_in(crate::os::HugePageHint));
        }
    }

    /// [`Store::insert`] with the slot and item built. One descent of the map: the previous
    /// item comes back from the insert.
    fn insert_slot(&mut self, db: usize, slot: Slot, item: Arc<Item>) {
        self.stage_if_empty(db);
        self.put_indexed(db, slot, item);
    }

    /// Stores `item` at `slot` and keeps the TTL index (none while staged). The database's
    /// staging is already decided ([`Store::stage_if_empty`]).
    fn put_indexed(&mut self, db: usize, slot: Slot, item: Arc<Item>) {
        let database = &mut self.dbs[db];
        let expire_at_ms = item.expire_at_ms;
        if database.staged.is_some() || (database.expires.is_empty() && expire_at_ms.is_none()) {
            // Staged (TTLs are indexed when the load ends), or no key of this database has a
            // TTL, nor will this one: nothing to index. (The slot moves into the map; a clone
            // would turn the key's `Bytes` into a shared one, an allocation per key.)
            database.put(slot, item);
            return;
        }
        let indexed = slot.clone();
        let previous = database.put(slot, item);
        // The previous TTL leaves the expiry index, the new one enters it.
        if let Some(at) = previous.and_then(|old| old.expire_at_ms)
            && Some(at) != expire_at_ms
        {
            database.expires.remove(&(at, indexed.clone()));
        }
        if let Some(at) = expire_at_ms {
            database.expires.insert((at, indexed));
        }
    }

    /// Turns lazy expiry off while a file is replayed at start (see the field's docs).
    pub fn set_loading(&mut self, loading: bool) {
        self.loading = loading;
    }

    /// True while lazy expiry is off for a replay ([`Store::set_loading`]).
    pub fn loading(&self) -> bool {
        self.loading
    }

    /// Starts (`true`) or ends a startup load's staging: while on, a database that is empty
    /// when a write reaches it keeps its keys in a hash table (`Staged`); turning it off
    /// puts them into the shards. Only for a load nothing else sees: until it ends, scans and
    /// walks of a staged database see its keys in no order, and a snapshot copies them.
    pub fn set_staging(&mut self, staging: bool) {
        self.staging = staging;
        if !staging {
            self.dbs.iter_mut().for_each(Db::unstage);
        }
    }

    /// Removes `key` (expired or not) and returns its item.
    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<Item> {
        let hash = self.slot_hash(key);
        let database = &mut self.dbs[db];
        let (slot, item) = database.take(hash, key)?;
        if let Some(at) = item.expire_at_ms
            && database.staged.is_none()
        {
            database.expires.remove(&(at, slot));
        }
        Some(Arc::unwrap_or_clone(item))
    }

    /// Sets or clears the TTL of an existing live key. Returns false when the key is absent.
    pub fn set_expire(
        &mut self,
        db: usize,
        key: &[u8],
        expire_at_ms: Option<i64>,
        now_ms: i64,
    ) -> bool {
        self.expire_if_due(db, key, now_ms);
        let hash = self.slot_hash(key);
        let database = &mut self.dbs[db];
        let Some((slot, item)) = database.lookup_key_value(hash, key) else {
            return false;
        };
        let slot = slot.clone();
        let old = item.expire_at_ms;
        if old == expire_at_ms {
            return true;
        }
        if database.staged.is_none() {
            if let Some(at) = old {
                database.expires.remove(&(at, slot.clone()));
            }
            if let Some(at) = expire_at_ms {
                database.expires.insert((at, slot.clone()));
            }
        }
        if let Some(item) = database.lookup_mut(hash, &slot.key) {
            Arc::make_mut(item).expire_at_ms = expire_at_ms;
        }
        true
    }

    /// Removes `key` if its TTL has passed (lazy expiry), recording it for the engine's
    /// `DEL`. Free when no key of the database has a TTL, and while loading.
    pub fn expire_if_due(&mut self, db: usize, key: &[u8], now_ms: i64) {
        if self.loading || self.keep_expired || self.dbs[db].expires.is_empty() {
            return;
        }
        let hash = self.slot_hash(key);
        let due = self.dbs[db]
            .lookup(hash, key)
            .and_then(|item| item.expire_at_ms)
            .is_some_and(|at| at <= now_ms);
        if due && let Some(_) = self.remove(db, key) {
            self.expired.push((db, own(key)));
        }
    }

    /// Removes up to `limit` keys whose TTL is due, oldest deadline first, across all
    /// databases. Returns how many were removed.
    pub fn expire_cycle(&mut self, now_ms: i64, limit: usize) -> usize {
        let mut removed = 0;
        for db in 0..self.dbs.len() {
            while removed < limit {
                let Some((at, slot)) = self.dbs[db].expires.get_min().cloned() else {
                    break;
                };
                if at > now_ms {
                    break;
                }
                self.remove(db, &slot.key);
                self.expired.push((db, slot.key));
                removed += 1;
            }
        }
        removed
    }

    /// Takes the keys removed by expiry since the last call, for propagation as `DEL`.
    pub fn take_expired(&mut self) -> Vec<(usize, Bytes)> {
        std::mem::take(&mut self.expired)
    }

    /// One page of keys from `cursor` (0 to start): at least `count` keys unless the
    /// iteration ends, stopping only between different hashes so a resumed scan misses no
    /// key present the whole time. Expired keys are skipped, not returned.
    pub fn scan(&self, db: usize, cursor: u64, count: usize, now_ms: i64) -> ScanPage {
        let mut keys = Vec::new();
        let start = Slot {
            hash: cursor,
            key: Bytes::new(),
        };
        let mut last_hash = None;
        for (slot, item) in self.dbs[db].range_from(start) {
            if keys.len() >= count.max(1) && last_hash != Some(slot.hash) {
                return ScanPage {
                    keys,
                    cursor: slot.hash,
                };
            }
            last_hash = Some(slot.hash);
            if item.expire_at_ms.is_some_and(|at| at <= now_ms) {
                continue;
            }
            keys.push(slot.key.clone());
        }
        ScanPage { keys, cursor: 0 }
    }

    /// A random live key, or `None` when the database is empty. `random` is any uniformly
    /// random number.
    pub fn random_key(&mut self, db: usize, random: u64, now_ms: i64) -> Option<Bytes> {
        // A handful of tries, as Redis does, before settling for an expired-looking key.
        for attempt in 0..16u64 {
            let probe = Slot {
                hash: random.wrapping_add(attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                key: Bytes::new(),
            };
            let database = &self.dbs[db];
            let found = database
                .range_from(probe)
                .next()
                .or_else(|| database.iter_slots().next())
                .map(|(slot, item)| (slot.key.clone(), item.expire_at_ms));
            let (key, expire_at_ms) = found?;
            if expire_at_ms.is_none_or(|at| at > now_ms) {
                return Some(key);
            }
            self.expire_if_due(db, &key, now_ms);
        }
        None
    }

    /// Removes every key of `db`.
    pub fn flush_db(&mut self, db: usize) {
        self.dbs[db] = Db::default();
    }

    /// Removes every key of every database.
    pub fn flush_all(&mut self) {
        for db in &mut self.dbs {
            *db = Db::default();
        }
    }

    /// Exchanges two databases (SWAPDB).
    pub fn swap_dbs(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }

    /// Stores a loaded entry (from an RDB file or a full sync). Empty collections are skipped,
    /// as Redis does. To load many entries, [`Store::bulk_load`] is several times faster.
    pub fn load_entry(&mut self, entry: Entry) {
        if let Some((db, slot, item)) = self.loaded_item(entry) {
            self.insert_slot(db, slot, item);
        }
    }

    /// The database, slot and item of a loaded entry; `None` for an entry the store leaves
    /// out (a database it does not have, an empty collection).
    fn loaded_item(&self, entry: Entry) -> Option<(usize, Slot, Arc<Item>)> {
        let db = entry.db as usize;
        if db >= self.dbs.len() || entry.value.is_empty() {
            return None;
        }
        let slot = Slot {
            hash: self.slot_hash(&entry.key),
            key: entry.key,
        };
        let item = Arc::new(Item {
            value: Value::from_model(entry.value),
            expire_at_ms: entry.expire_at_ms,
        });
        Some((entry.db as usize, slot, item))
    }

    /// A loader that stores many entries at once (a whole RDB file): see [`BulkLoad`].
    pub fn bulk_load(&mut self) -> BulkLoad<'_> {
        let databases = self.dbs.len();
        BulkLoad {
            store: self,
            pending: (0..databases).map(|_| Vec::new()).collect(),
            collected: 0,
            parallel_sort_from: PARALLEL_SORT_ENTRIES,
        }
    }
}

/// Stores loaded entries in batches: [`BulkLoad::load_entry`] only collects them, and
/// [`BulkLoad::finish`] (or dropping the loader, so an interrupted load keeps what it read)
/// puts them in the store, in slot order.
///
/// Why: inserting keys one by one in file order reaches a random leaf of a shard for each key,
/// cache misses on a keyspace of millions of keys; inserting them sorted appends to the same
/// leaf again and again. Entries are collected into 512 buckets by the
/// top bits of their slot hash as they arrive (slot order is hash order first, so the buckets
/// are ordered ranges of slots): at the end each bucket is small enough to sort in cache, and
/// no sort of millions of entries (with its buffer of the same size) is needed. The expiry
/// index, a B-tree, takes its entries in two passes (every other key, then the keys in
/// between) so that its leaves come out full: ascending inserts alone split every leaf in half
/// and leave it half empty.
///
/// The result is the same as [`Store::load_entry`] for each entry in order: when a key comes
/// twice, the later entry wins.
pub struct BulkLoad<'a> {
    store: &'a mut Store,
    /// Per database: per bucket, the entries collected since the last flush, in arrival order.
    /// Empty (no buckets) for a database that received nothing.
    pending: Vec<Vec<Bucket>>,
    /// Entries in `pending`: a flush with none returns at once (an AOF load flushes before
    /// every command it replays).
    collected: usize,
    /// Loads of at least this many entries (per database) sort on a helper thread:
    /// [`PARALLEL_SORT_ENTRIES`], lowered by tests to cover that path.
    parallel_sort_from: usize,
}

/// log2 of the number of buckets a [`BulkLoad`] sorts entries into. 512 buckets keep a bucket
/// of a 5-million-key load at about 10,000 entries (470 KB), sorted and inserted within L2.
/// Measured on 5M keys: 4096 smaller buckets sorted a little faster but left the process
/// 77 MB larger (their growing buffers fragment the heap among the items); 512 leave it as
/// large as one big sorted vector did.
const BULK_BUCKET_BITS: u32 = 9;
/// Number of buckets of a [`BulkLoad`] (per database that receives entries).
const BULK_BUCKETS: usize = 1 << BULK_BUCKET_BITS;
// The first half of the buckets holds exactly the slots of the first half of the shards
// ([`ShardFill`] relies on it): both counts are powers of two, at least 2.
const _: () = assert!(BULK_BUCKETS >= 2 && SHARDS >= 2);

impl BulkLoad<'_> {
    /// Number of databases of the store.
    pub fn databases(&self) -> usize {
        self.store.dbs.len()
    }

    /// Collects an entry; [`Store::load_entry`]'s rules apply.
    pub fn load_entry(&mut self, entry: Entry) {
        if let Some((db, slot, item)) = self.store.loaded_item(entry) {
            let buckets = &mut self.pending[db];
            if buckets.is_empty() {
                buckets.resize_with(BULK_BUCKETS, Vec::new);
            }
            buckets[bucket_of(slot.hash)].push((slot, item));
            self.collected += 1;
        }
    }

    /// The store, with every entry collected so far stored.
    pub fn store(&mut self) -> &mut Store {
        self.flush();
        self.store
    }

    /// Stores every entry collected.
    pub fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if std::mem::take(&mut self.collected) == 0 {
            return;
        }
        for db in 0..self.pending.len() {
            let buckets = std::mem::take(&mut self.pending[db]);
            if buckets.iter().all(Vec::is_empty) {
                continue;
            }
            let total: usize = buckets.iter().map(Vec::len).sum();
            let parallel = total >= self.parallel_sort_from;
            let database = &mut self.store.dbs[db];
            if database.is_empty() {
                // A staged database whose keys were all deleted: back to the shards.
                database.staged = None;
                let mut expiring: Vec<(i64, Slot)> = Vec::new();
                for_each_sorted(buckets, parallel, |entries| {
                    expiring.extend(
                        entries
                            .iter()
                            .filter_map(|(slot, item)| Some((item.expire_at_ms?, slot.clone()))),
                    );
                    for (slot, item) in entries {
                        database.shard_mut(slot.hash).insert(slot, item);
                    }
                });
                expiring.sort_unstable();
                insert_interleaved(expiring, |key| {
                    database.expires.insert(key);
                });
            } else {
                // Keys may already be present, with TTLs to unindex: the general path.
                let store = &mut *self.store;
                for_each_sorted(buckets, parallel, |entries| {
                    for (slot, item) in entries {
                        store.insert_slot(db, slot, item);
                    }
                });
            }
        }
    }
}

/// A [`BulkLoad`] bucket: entries in arrival order, or (once sorted) in slot order.
type Bucket = Vec<(Slot, Arc<Item>)>;

/// A run of a staged database's buckets and the shards their slots fall in ([`Db::unstage`]).
struct ShardFill<'a> {
    buckets: Vec<Bucket>,
    /// Shards `first_shard..first_shard + shards.len()`.
    shards: &'a mut [Shard],
    first_shard: usize,
}

impl ShardFill<'_> {
    /// Sorts each bucket and inserts it into its shard; returns the TTL index entries.
    fn build(self) -> Vec<(i64, Slot)> {
        let mut expiring = Vec::new();
        for mut entries in self.buckets {
            // A hash table holds each key once: nothing to dedup, and no order to keep.
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            expiring.extend(
                entries
                    .iter()
                    .filter_map(|(slot, item)| Some((item.expire_at_ms?, slot.clone()))),
            );
            for (slot, item) in entries {
                self.shards[shard_of(slot.hash) - self.first_shard].insert(slot, item);
            }
        }
        expiring
    }
}

/// Loads of at least this many entries sort their buckets on a helper thread while the
/// caller inserts the buckets already sorted; smaller ones are not worth a thread.
const PARALLEL_SORT_ENTRIES: usize = 100_000;

/// Hands each bucket to `insert` in bucket order, sorted by slot with only the last entry of
/// each key kept (the one a one-by-one load would leave). With `parallel` the sorting runs
/// on a helper thread, a few buckets ahead of `insert` (on a large load the decoder thread is
/// idle by now, and sorting costs a good part of what inserting does).
fn for_each_sorted(buckets: Vec<Bucket>, parallel: bool, mut insert: impl FnMut(Bucket)) {
    let queue = std::sync::Mutex::new(buckets.into_iter());
    // Takes the next bucket to sort; the queue is only ever held for that.
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    if parallel {
        std::thread::scope(|scope| {
            let (sorted_tx, sorted_rx) = std::sync::mpsc::sync_channel::<Bucket>(16);
            let sorter = std::thread::Builder::new()
                .name("keeper-load-sort".into())
                .spawn_scoped(scope, || {
                    while let Some(mut bucket) = next() {
                        sort_and_dedup(&mut bucket);
                        if sorted_tx.send(bucket).is_err() {
                            break;
                        }
                    }
                    drop(sorted_tx);
                });
            if sorter.is_ok() {
                sorted_rx.into_iter().for_each(&mut insert);
            }
            // Without the thread (it could not start), the loop below does the work.
        });
    }
    while let Some(mut bucket) = next() {
        sort_and_dedup(&mut bucket);
        insert(bucket);
    }
}

fn sort_and_dedup(entries: &mut Bucket) {
    // Stable: entries for one key stay in arrival order, and the dedup keeps the last, as
    // inserting them one by one would.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

/// The [`BulkLoad`] bucket of a slot hash: its top bits, so bucket order is slot order.
fn bucket_of(hash: u64) -> usize {
    (hash >> (u64::BITS - BULK_BUCKET_BITS)) as usize
}

impl Drop for BulkLoad<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl crate::dataset::Apply for BulkLoad<'_> {
    fn clear(&mut self) {
        for pending in &mut self.pending {
            pending.clear();
        }
        self.collected = 0;
        self.store.flush_all();
    }

    fn load_entry(&mut self, entry: Entry) -> crate::Result<()> {
        BulkLoad::load_entry(self, entry);
        Ok(())
    }

    fn apply_command(&mut self, db: usize, argv: &[Bytes], now_ms: i64) -> crate::Result<()> {
        crate::dataset::Apply::apply_command(self.store(), db, argv, now_ms)
    }

    fn coming(&self, db: usize, key: &[u8], distance: usize) {
        self.store.prefetch_staged(db, key, distance);
    }
}

/// Hands the items of a sorted vector to `insert`, every other one first (indexes 0, 2, 4, …),
/// then the rest (1, 3, 5, …): the insertion order that fills the leaves of a B-tree (the
/// expiry index; see [`BulkLoad`]).
fn insert_interleaved<T>(items: Vec<T>, mut insert: impl FnMut(T)) {
    let mut odds = Vec::with_capacity(items.len() / 2);
    for (i, item) in items.into_iter().enumerate() {
        if i % 2 == 0 {
            insert(item);
        } else {
            odds.push(item);
        }
    }
    odds.into_iter().for_each(insert);
}

impl crate::dataset::Dataset for Store {
    type Snapshot = StoreSnapshot;

    fn snapshot(&self) -> StoreSnapshot {
        Store::snapshot(self)
    }
}

impl crate::dataset::DatasetSnapshot for StoreSnapshot {
    fn databases(&self) -> usize {
        self.dbs.len()
    }

    fn db_size(&self, db: usize) -> (u64, u64) {
        self.dbs
            .get(db)
            .map_or((0, 0), |d| (d.len() as u64, d.expires_len() as u64))
    }

    fn for_each_entry(
        &self,
        db: usize,
        visit: &mut dyn FnMut(Entry) -> crate::Result<()>,
    ) -> crate::Result<()> {
        self.for_each_entry_ref(db, &mut |entry| visit(owned_entry(db, entry)))
    }

    fn for_each_entry_ref(
        &self,
        db: usize,
        visit: &mut dyn FnMut(EntryRef<'_>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let Some(database) = self.dbs.get(db) else {
            return Ok(());
        };
        database
            .shards
            .iter()
            .try_for_each(|shard| walk_shard(shard, visit))
    }
}

/// Hands every entry of `shard` to `visit`, in slot order, keys and strings borrowed.
fn walk_shard(
    shard: &Shard,
    visit: &mut dyn FnMut(EntryRef<'_>) -> crate::Result<()>,
) -> crate::Result<()> {
    // The walk is bound by memory latency (each entry's key, item and string live in their own
    // allocations, a cache miss each), so entries are pulled `AHEAD` steps early: the item and
    // the key bytes are prefetched when an entry is pulled, the string's bytes (read through
    // the then-cached item) halfway to its turn.
    const AHEAD: usize = 8;
    let mut iter = shard.iter();
    let mut pending: std::collections::VecDeque<(&Slot, &Arc<Item>)> =
        std::collections::VecDeque::with_capacity(AHEAD);
    loop {
        while pending.len() < AHEAD {
            let Some((slot, item)) = iter.next() else {
                break;
            };
            crate::os::prefetch(Arc::as_ptr(item));
            crate::os::prefetch(slot.key.as_ptr());
            pending.push_back((slot, item));
        }
        if let Some((_, item)) = pending.get(AHEAD / 2)
            && let Value::String(s) = &item.value
        {
            crate::os::prefetch(s.as_ptr());
        }
        let Some((slot, item)) = pending.pop_front() else {
            break;
        };
        // Borrowed: the shard keeps every key and string alive while it is walked.
        let value = match &item.value {
            Value::String(s) => ValueRef::String(s),
            other => ValueRef::Owned(other.to_model()),
        };
        visit(EntryRef {
            key: &slot.key,
            value,
            expire_at_ms: item.expire_at_ms,
            lru_idle_secs: None,
            lfu_freq: None,
        })?;
    }
    Ok(())
}

/// An entry lent by [`walk_shard`], copied into an owned [`Entry`].
fn owned_entry(db: usize, entry: EntryRef<'_>) -> Entry {
    // Copies, not clones: cloning a `Bytes` the store built from a `Vec` turns it into a shared
    // one, allocating a header that then stays with the key for good (measured: a BGSAVE of
    // 5M string keys grew the process by ~320 MB that way). A copy of a key or a string is
    // freed as soon as it is written.
    let value = match entry.value {
        ValueRef::String(s) => crate::model::Value::String(own(s)),
        ValueRef::Owned(value) => value,
    };
    let mut owned = Entry::new(db as u32, own(entry.key), value);
    owned.expire_at_ms = entry.expire_at_ms;
    owned
}

/// A point-in-time view of a [`Store`] that is written once ([`Store::one_pass_snapshot`]):
/// each database can be walked once, and the walk lets go of each shard as soon as it has
/// handed out its entries.
///
/// Why: a snapshot keeps alive every leaf and value that writes replace after it was
/// taken, which is what a `BGSAVE` under writes costs in memory (Redis's is the pages its
/// parent copies after the fork). Held whole to the end, that grows with every write of the
/// save; released shard by shard, the writes to shards already written copy nothing and what
/// the earlier writes copied there is freed, so the cost peaks mid-save at about a quarter of
/// what it would reach (for writes spread over the keyspace).
///
/// A second walk of a database is an error (its shards are gone), never a silently empty
/// database.
pub struct OnePassSnapshot {
    dbs: Vec<OnePassDb>,
}

struct OnePassDb {
    /// Size hints, taken with the snapshot.
    keys: u64,
    expires: u64,
    /// `None` once walked. A `Mutex` only so the view can be shared (`Sync`); one thread
    /// walks a database.
    shards: Vec<std::sync::Mutex<Option<Shard>>>,
}

impl crate::dataset::DatasetSnapshot for OnePassSnapshot {
    fn databases(&self) -> usize {
        self.dbs.len()
    }

    fn db_size(&self, db: usize) -> (u64, u64) {
        self.dbs.get(db).map_or((0, 0), |d| (d.keys, d.expires))
    }

    fn for_each_entry(
        &self,
        db: usize,
        visit: &mut dyn FnMut(Entry) -> crate::Result<()>,
    ) -> crate::Result<()> {
        self.for_each_entry_ref(db, &mut |entry| visit(owned_entry(db, entry)))
    }

    fn for_each_entry_ref(
        &self,
        db: usize,
        visit: &mut dyn FnMut(EntryRef<'_>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let Some(database) = self.dbs.get(db) else {
            return Ok(());
        };
        for shard in &database.shards {
            let taken = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let Some(shard) = taken else {
                return Err(crate::Error::InvalidArgument(format!(
                    "database {db} of a one-pass snapshot was already walked"
                )));
            };
            walk_shard(&shard, visit)?;
            // `shard` drops here: the leaves and values only this snapshot still held are
            // freed, and the live keyspace owns the rest alone again.
        }
        Ok(())
    }
}

impl crate::dataset::Apply for Store {
    fn clear(&mut self) {
        self.flush_all();
    }

    fn load_entry(&mut self, entry: Entry) -> crate::Result<()> {
        Store::load_entry(self, entry);
        Ok(())
    }

    fn apply_command(&mut self, db: usize, argv: &[Bytes], now_ms: i64) -> crate::Result<()> {
        if db >= self.dbs.len() {
            return Err(crate::Error::InvalidArgument(format!(
                "database {db} out of range (the store has {})",
                self.dbs.len()
            )));
        }
        // Replayed streams carry no randomness (non-deterministic commands were rewritten
        // before propagation), so a fixed seed is right.
        let mut rng = crate::command::Rng::new(0);
        let effect = crate::command::execute_replayed(self, db, argv, now_ms, &mut rng);
        match effect.reply {
            crate::resp::Reply::Error(e) => Err(crate::Error::InvalidArgument(format!(
                "replaying {}: {e}",
                String::from_utf8_lossy(argv.first().map_or(&b""[..], |a| a))
            ))),
            _ => Ok(()),
        }
    }

    fn coming(&self, db: usize, key: &[u8], distance: usize) {
        self.prefetch_staged(db, key, distance);
    }
}

/// A seed that differs between runs (SCAN cursors are not meant to survive restarts).
fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

#[cfg(test)]
mod tests;
