//! Values as the store keeps them. A write under a snapshot copies only what it touches:
//! large collections are persistent (imbl), so a clone is O(1) and a write copies one path;
//! small ones (up to 128 elements, Redis's listpack limits) are flat vectors, copied whole on
//! the first write under a snapshot, which costs no more than copying a tree path and saves
//! 1.5–3 KB of tree nodes per collection (see [`SMALL_HASH_MAX`]).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use imbl::{OrdSet, Vector};

use crate::model::{self, HashField};

/// The hasher of sets and hashes: seeded per process, so crafted members cannot collide.
pub type Hasher = foldhash::fast::RandomState;
/// A persistent hash map with the store's hasher.
pub type HashMap<K, V> = imbl::GenericHashMap<K, V, Hasher, imbl::shared_ptr::DefaultSharedPtr>;
/// A persistent hash set with the store's hasher.
pub type HashSet<K> = imbl::GenericHashSet<K, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// One value of the keyspace.
#[derive(Clone, Debug)]
pub enum Value {
    String(Bytes),
    List(Elements),
    Set(Members),
    Hash(Fields),
    SortedSet(SortedSet),
    /// Streams are copied whole when written under a snapshot (they are rarely large and
    /// rarely written while a snapshot runs); `Arc::make_mut` does the copy.
    Stream(Arc<model::Stream>),
    Module(Arc<model::ModuleValue>),
}

/// A hash field's value and its TTL (Redis 7.4 field expiry, kept as loaded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashValue {
    pub value: Bytes,
    pub expire_at_ms: Option<i64>,
}

/// Hashes with at most this many fields are kept as a flat vector (Redis's
/// `hash-max-listpack-entries` default): a persistent map's smallest node holds 16 slots of
/// 88 bytes, so a 7-field hash took 4.6 KB in a map against 1.6 KB in a vector (fields and
/// values included), and most hashes of a cache are small. Lookups scan at most this many
/// fields, as Redis scans its listpack.
pub const SMALL_HASH_MAX: usize = 128;

/// A hash's fields: a vector in insertion order while small, a persistent map once it grows
/// past `SMALL_HASH_MAX` (it never shrinks back, as in Redis).
#[derive(Clone, Debug)]
pub enum Fields {
    Small(Vec<(Bytes, HashValue)>),
    Table(HashMap<Bytes, HashValue>),
}

impl Default for Fields {
    fn default() -> Self {
        Fields::Small(Vec::new())
    }
}

impl Fields {
    pub fn len(&self) -> usize {
        match self {
            Fields::Small(pairs) => pairs.len(),
            Fields::Table(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&HashValue> {
        match self {
            Fields::Small(pairs) => pairs.iter().find(|(f, _)| f == field).map(|(_, v)| v),
            Fields::Table(map) => map.get(field),
        }
    }

    pub fn get_mut(&mut self, field: &[u8]) -> Option<&mut HashValue> {
        match self {
            Fields::Small(pairs) => pairs.iter_mut().find(|(f, _)| f == field).map(|(_, v)| v),
            Fields::Table(map) => map.get_mut(field),
        }
    }

    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field`; returns its previous value. A new field goes last (insertion order).
    pub fn insert(&mut self, field: Bytes, value: HashValue) -> Option<HashValue> {
        match self {
            Fields::Small(pairs) => {
                if let Some((_, old)) = pairs.iter_mut().find(|(f, _)| *f == field) {
                    return Some(std::mem::replace(old, value));
                }
                if pairs.len() < SMALL_HASH_MAX {
                    pairs.push((field, value));
                    return None;
                }
                let mut map: HashMap<Bytes, HashValue> = pairs.drain(..).collect();
                map.insert(field, value);
                *self = Fields::Table(map);
                None
            }
            Fields::Table(map) => map.insert(field, value),
        }
    }

    /// Removes `field`; returns its value. The others keep their order.
    pub fn remove(&mut self, field: &[u8]) -> Option<HashValue> {
        match self {
            Fields::Small(pairs) => {
                let at = pairs.iter().position(|(f, _)| f == field)?;
                Some(pairs.remove(at).1)
            }
            Fields::Table(map) => map.remove(field),
        }
    }

    pub fn iter(&self) -> FieldsIter<'_> {
        match self {
            Fields::Small(pairs) => FieldsIter::Small(pairs.iter()),
            Fields::Table(map) => FieldsIter::Table(map.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.iter().map(|(field, _)| field)
    }

    pub fn values(&self) -> impl Iterator<Item = &HashValue> {
        self.iter().map(|(_, value)| value)
    }
}

/// An iterator over a hash's `(field, value)` pairs.
pub enum FieldsIter<'a> {
    Small(std::slice::Iter<'a, (Bytes, HashValue)>),
    Table(imbl::hashmap::Iter<'a, Bytes, HashValue, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a Bytes, &'a HashValue);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FieldsIter::Small(pairs) => pairs.next().map(|(f, v)| (f, v)),
            FieldsIter::Table(map) => map.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            FieldsIter::Small(pairs) => pairs.size_hint(),
            FieldsIter::Table(map) => map.size_hint(),
        }
    }
}

impl FromIterator<(Bytes, HashValue)> for Fields {
    /// Later duplicates replace earlier ones, as with repeated `insert`s.
    fn from_iter<I: IntoIterator<Item = (Bytes, HashValue)>>(iter: I) -> Self {
        let mut fields = Fields::default();
        for (field, value) in iter {
            fields.insert(field, value);
        }
        fields
    }
}

/// Lists with at most this many elements are kept as a flat ring buffer, for the reason
/// given at [`SMALL_HASH_MAX`] (a persistent vector's first chunk holds 64 slots: 2.5 KB for
/// a 10-element list).
pub const SMALL_LIST_MAX: usize = 128;

/// A list's elements: a ring buffer while small, a persistent vector once it grows past
/// `SMALL_LIST_MAX` (it never shrinks back).
#[derive(Clone, Debug)]
pub enum Elements {
    Small(VecDeque<Bytes>),
    Large(Vector<Bytes>),
}

impl Default for Elements {
    fn default() -> Self {
        Elements::Small(VecDeque::new())
    }
}

impl Elements {
    pub fn new() -> Self {
        Self::default()
    }

    /// A list of one element.
    pub fn unit(element: Bytes) -> Self {
        Elements::Small(VecDeque::from([element]))
    }

    pub fn len(&self) -> usize {
        match self {
            Elements::Small(items) => items.len(),
            Elements::Large(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, index: usize) -> Option<&Bytes> {
        match self {
            Elements::Small(items) => items.get(index),
            Elements::Large(items) => items.get(index),
        }
    }

    /// Replaces the element at `index` (which must exist); returns the old one.
    pub fn set(&mut self, index: usize, element: Bytes) -> Bytes {
        match self {
            Elements::Small(items) => std::mem::replace(&mut items[index], element),
            Elements::Large(items) => items.set(index, element),
        }
    }

    /// Makes room for one more element: a small list at its limit becomes large.
    fn grow(&mut self) {
        if let Elements::Small(items) = self
            && items.len() >= SMALL_LIST_MAX
        {
            *self = Elements::Large(items.drain(..).collect());
        }
    }

    pub fn push_front(&mut self, element: Bytes) {
        self.grow();
        match self {
            Elements::Small(items) => items.push_front(element),
            Elements::Large(items) => items.push_front(element),
        }
    }

    pub fn push_back(&mut self, element: Bytes) {
        self.grow();
        match self {
            Elements::Small(items) => items.push_back(element),
            Elements::Large(items) => items.push_back(element),
        }
    }

    /// Inserts before `index` (`index == len` appends).
    pub fn insert(&mut self, index: usize, element: Bytes) {
        self.grow();
        match self {
            Elements::Small(items) => items.insert(index, element),
            Elements::Large(items) => items.insert(index, element),
        }
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        match self {
            Elements::Small(items) => items.pop_front(),
            Elements::Large(items) => items.pop_front(),
        }
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        match self {
            Elements::Small(items) => items.pop_back(),
            Elements::Large(items) => items.pop_back(),
        }
    }

    /// Removes the element at `index` (which must exist) and returns it.
    pub fn remove(&mut self, index: usize) -> Bytes {
        match self {
            Elements::Small(items) => items.remove(index).expect("index within the list"),
            Elements::Large(items) => items.remove(index),
        }
    }

    /// Keeps only the elements at `range` (within the list).
    pub fn keep(&mut self, range: std::ops::Range<usize>) {
        match self {
            Elements::Small(items) => {
                items.truncate(range.end);
                items.drain(..range.start);
            }
            Elements::Large(items) => {
                items.truncate(range.end);
                *items = items.split_off(range.start);
            }
        }
    }

    pub fn iter(&self) -> ElementsIter<'_> {
        self.range(0..self.len())
    }

    /// The elements at `range` (within the list), in order (either way).
    pub fn range(&self, range: std::ops::Range<usize>) -> ElementsIter<'_> {
        match self {
            Elements::Small(items) => ElementsIter::Small(items.range(range)),
            Elements::Large(items) => ElementsIter::Large(items.focus().narrow(range).into_iter()),
        }
    }
}

/// An iterator over some of a list's elements.
pub enum ElementsIter<'a> {
    Small(std::collections::vec_deque::Iter<'a, Bytes>),
    Large(imbl::vector::Iter<'a, Bytes, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for ElementsIter<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ElementsIter::Small(items) => items.next(),
            ElementsIter::Large(items) => items.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ElementsIter::Small(items) => items.size_hint(),
            ElementsIter::Large(items) => items.size_hint(),
        }
    }
}

impl DoubleEndedIterator for ElementsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            ElementsIter::Small(items) => items.next_back(),
            ElementsIter::Large(items) => items.next_back(),
        }
    }
}

impl ExactSizeIterator for ElementsIter<'_> {}

impl FromIterator<Bytes> for Elements {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut elements = Elements::new();
        for element in iter {
            elements.push_back(element);
        }
        elements
    }
}

/// Sets with at most this many members are kept as a flat vector, for the reason given at
/// [`SMALL_HASH_MAX`] (a 7-member set: 2.0 KB in a persistent set).
pub const SMALL_SET_MAX: usize = 128;

/// A set's members: a vector while small, a persistent set once it grows past
/// `SMALL_SET_MAX` (it never shrinks back).
#[derive(Clone, Debug)]
pub enum Members {
    Small(Vec<Bytes>),
    Table(HashSet<Bytes>),
}

impl Default for Members {
    fn default() -> Self {
        Members::Small(Vec::new())
    }
}

impl Members {
    pub fn len(&self) -> usize {
        match self {
            Members::Small(members) => members.len(),
            Members::Table(set) => set.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Members::Small(members) => members.iter().any(|m| m == member),
            Members::Table(set) => set.contains(member),
        }
    }

    /// Adds `member`; returns the member it replaced, if it was there already (as imbl's
    /// `HashSet::insert`).
    pub fn insert(&mut self, member: Bytes) -> Option<Bytes> {
        match self {
            Members::Small(members) => {
                if let Some(old) = members.iter_mut().find(|m| **m == member) {
                    return Some(std::mem::replace(old, member));
                }
                if members.len() < SMALL_SET_MAX {
                    members.push(member);
                    return None;
                }
                let mut set: HashSet<Bytes> = members.drain(..).collect();
                set.insert(member);
                *self = Members::Table(set);
                None
            }
            Members::Table(set) => set.insert(member),
        }
    }

    /// Removes `member`; returns it.
    pub fn remove(&mut self, member: &[u8]) -> Option<Bytes> {
        match self {
            Members::Small(members) => {
                let at = members.iter().position(|m| m == member)?;
                Some(members.swap_remove(at))
            }
            Members::Table(set) => set.remove(member),
        }
    }

    /// Keeps only the members for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Bytes) -> bool) {
        match self {
            Members::Small(members) => members.retain(|m| keep(m)),
            Members::Table(set) => set.retain(|m| keep(m)),
        }
    }

    pub fn iter(&self) -> MembersIter<'_> {
        match self {
            Members::Small(members) => MembersIter::Small(members.iter()),
            Members::Table(set) => MembersIter::Table(set.iter()),
        }
    }
}

/// An iterator over a set's members.
pub enum MembersIter<'a> {
    Small(std::slice::Iter<'a, Bytes>),
    Table(imbl::hashset::Iter<'a, Bytes, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for MembersIter<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            MembersIter::Small(members) => members.next(),
            MembersIter::Table(set) => set.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            MembersIter::Small(members) => members.size_hint(),
            MembersIter::Table(set) => set.size_hint(),
        }
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a Bytes;
    type IntoIter = MembersIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<Bytes> for Members {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut members = Members::default();
        for member in iter {
            members.insert(member);
        }
        members
    }
}

/// A score with a total order (sorted sets never hold NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sorted sets with at most this many members are kept as one vector in `(score, member)`
/// order (Redis's `zset-max-listpack-entries` default), for the reason given at
/// [`SMALL_HASH_MAX`]: a 10-member sorted set took 3.9 KB in a map and an ordered set.
pub const SMALL_ZSET_MAX: usize = 128;

/// A sorted set: member → score, and `(score, member)` in Redis's order.
#[derive(Clone, Debug)]
pub struct SortedSet {
    repr: ZsetRepr,
}

#[derive(Clone, Debug)]
enum ZsetRepr {
    /// Sorted by `(score, member)`; members unique.
    Small(Vec<(Score, Bytes)>),
    /// Past [`SMALL_ZSET_MAX`] members (never back).
    Large {
        scores: HashMap<Bytes, f64>,
        order: OrdSet<(Score, Bytes)>,
    },
}

impl Default for SortedSet {
    fn default() -> Self {
        SortedSet {
            repr: ZsetRepr::Small(Vec::new()),
        }
    }
}

impl SortedSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            ZsetRepr::Small(pairs) => pairs.len(),
            ZsetRepr::Large { scores, .. } => scores.len(),
        }
    }

    /// True when the set has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            ZsetRepr::Small(pairs) => pairs.iter().find(|(_, m)| m == member).map(|(s, _)| s.0),
            ZsetRepr::Large { scores, .. } => scores.get(member).copied(),
        }
    }

    /// Adds `member` or changes its score; returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let score = canonical_score(score);
        match &mut self.repr {
            ZsetRepr::Small(pairs) => {
                let old = pairs.iter().position(|(_, m)| *m == member).map(|at| {
                    let (old, _) = pairs.remove(at);
                    old.0
                });
                if old.is_none() && pairs.len() >= SMALL_ZSET_MAX {
                    let mut large = ZsetRepr::Large {
                        scores: HashMap::default(),
                        order: OrdSet::new(),
                    };
                    if let ZsetRepr::Large { scores, order } = &mut large {
                        for (s, m) in pairs.drain(..) {
                            scores.insert(m.clone(), s.0);
                            order.insert((s, m));
                        }
                    }
                    self.repr = large;
                    return self.insert(member, score);
                }
                let entry = (Score(score), member);
                let at = pairs.partition_point(|pair| *pair < entry);
                pairs.insert(at, entry);
                old
            }
            ZsetRepr::Large { scores, order } => {
                let old = scores.insert(member.clone(), score);
                if let Some(old) = old {
                    if old.total_cmp(&score) == Ordering::Equal {
                        return Some(old);
                    }
                    order.remove(&(Score(old), member.clone()));
                }
                order.insert((Score(score), member));
                old
            }
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            ZsetRepr::Small(pairs) => {
                let at = pairs.iter().position(|(_, m)| m == member)?;
                Some(pairs.remove(at).0.0)
            }
            ZsetRepr::Large { scores, order } => {
                let (member, score) = scores.remove_with_key(member)?;
                order.remove(&(Score(score), member));
                Some(score)
            }
        }
    }

    /// Members in ascending `(score, member)` order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.range(..).map(|(score, member)| (member, score.0))
    }

    /// Members with `(score, member)` at or after `(score, member)`, ascending.
    pub fn range_from(&self, score: f64, member: Bytes) -> impl Iterator<Item = (&Bytes, f64)> {
        self.range((Score(score), member)..)
            .map(|(score, member)| (member, score.0))
    }

    /// The `(score, member)` pairs within `bounds`, in order (either way).
    pub fn range<R: RangeBounds<(Score, Bytes)>>(&self, bounds: R) -> ZsetRange<'_> {
        match &self.repr {
            ZsetRepr::Small(pairs) => {
                let lo = match bounds.start_bound() {
                    Bound::Included(k) => pairs.partition_point(|p| p < k),
                    Bound::Excluded(k) => pairs.partition_point(|p| p <= k),
                    Bound::Unbounded => 0,
                };
                let hi = match bounds.end_bound() {
                    Bound::Included(k) => pairs.partition_point(|p| p <= k),
                    Bound::Excluded(k) => pairs.partition_point(|p| p < k),
                    Bound::Unbounded => pairs.len(),
                };
                ZsetRange::Small(pairs[lo..hi.max(lo)].iter())
            }
            ZsetRepr::Large { order, .. } => ZsetRange::Large(order.range(bounds)),
        }
    }

    /// The lowest `(score, member)`.
    pub fn first(&self) -> Option<&(Score, Bytes)> {
        match &self.repr {
            ZsetRepr::Small(pairs) => pairs.first(),
            ZsetRepr::Large { order, .. } => order.get_min(),
        }
    }

    /// The highest `(score, member)`.
    pub fn last(&self) -> Option<&(Score, Bytes)> {
        match &self.repr {
            ZsetRepr::Small(pairs) => pairs.last(),
            ZsetRepr::Large { order, .. } => order.get_max(),
        }
    }
}

/// -0.0 and 0.0 are one score to Redis: stored as 0.0.
fn canonical_score(score: f64) -> f64 {
    if score == 0.0 { 0.0 } else { score }
}

/// The `(score, member)` pairs of a [`SortedSet::range`].
pub enum ZsetRange<'a> {
    Small(std::slice::Iter<'a, (Score, Bytes)>),
    Large(imbl::ordset::RangedIter<'a, (Score, Bytes), imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for ZsetRange<'a> {
    type Item = &'a (Score, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ZsetRange::Small(pairs) => pairs.next(),
            ZsetRange::Large(range) => range.next(),
        }
    }
}

impl DoubleEndedIterator for ZsetRange<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            ZsetRange::Small(pairs) => pairs.next_back(),
            ZsetRange::Large(range) => range.next_back(),
        }
    }
}

impl Value {
    /// The `TYPE` name.
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// The kind of the value.
    pub fn value_type(&self) -> model::ValueType {
        use model::ValueType as T;
        match self {
            Value::String(_) => T::String,
            Value::List(_) => T::List,
            Value::Set(_) => T::Set,
            Value::Hash(_) => T::Hash,
            Value::SortedSet(_) => T::SortedSet,
            Value::Stream(_) => T::Stream,
            Value::Module(_) => T::Module,
        }
    }

    /// Converts a decoded value. Members, fields and scores are taken as they are (decoders
    /// guarantee uniqueness and no NaN).
    pub fn from_model(value: model::Value) -> Value {
        match value {
            model::Value::String(s) => Value::String(s),
            // Small collections take the decoded vector as it is (most of a cache's are
            // small, so this is the bulk load's common path).
            model::Value::List(items) if items.len() <= SMALL_LIST_MAX => {
                Value::List(Elements::Small(VecDeque::from(items)))
            }
            model::Value::List(items) => Value::List(Elements::Large(items.into_iter().collect())),
            model::Value::Set(members) if members.len() <= SMALL_SET_MAX => {
                Value::Set(Members::Small(members))
            }
            model::Value::Set(members) => Value::Set(Members::Table(members.into_iter().collect())),
            model::Value::SortedSet(pairs) if pairs.len() <= SMALL_ZSET_MAX => {
                let mut pairs: Vec<(Score, Bytes)> = pairs
                    .into_iter()
                    .map(|(member, score)| (Score(canonical_score(score)), member))
                    .collect();
                pairs.sort_unstable();
                Value::SortedSet(SortedSet {
                    repr: ZsetRepr::Small(pairs),
                })
            }
            model::Value::SortedSet(pairs) => {
                let mut set = SortedSet::default();
                for (member, score) in pairs {
                    set.insert(member, score);
                }
                Value::SortedSet(set)
            }
            model::Value::Hash(fields) => {
                let pairs = fields.into_iter().map(|f| {
                    (
                        f.field,
                        HashValue {
                            value: f.value,
                            expire_at_ms: f.expire_at_ms,
                        },
                    )
                });
                if pairs.len() <= SMALL_HASH_MAX {
                    Value::Hash(Fields::Small(pairs.collect()))
                } else {
                    Value::Hash(Fields::Table(pairs.collect()))
                }
            }
            model::Value::Stream(stream) => Value::Stream(Arc::new(*stream)),
            model::Value::Module(module) => Value::Module(Arc::new(*module)),
        }
    }

    /// The value in the codecs' model (byte strings are shared, not copied).
    pub fn to_model(&self) -> model::Value {
        match self {
            Value::String(s) => model::Value::String(s.clone()),
            Value::List(items) => model::Value::List(items.iter().cloned().collect()),
            Value::Set(members) => model::Value::Set(members.iter().cloned().collect()),
            Value::SortedSet(set) => model::Value::SortedSet(
                set.iter()
                    .map(|(member, score)| (member.clone(), score))
                    .collect(),
            ),
            Value::Hash(fields) => model::Value::Hash(
                fields
                    .iter()
                    .map(|(field, v)| HashField {
                        field: field.clone(),
                        value: v.value.clone(),
                        expire_at_ms: v.expire_at_ms,
                    })
                    .collect(),
            ),
            Value::Stream(stream) => model::Value::Stream(Box::new((**stream).clone())),
            Value::Module(module) => model::Value::Module(Box::new((**module).clone())),
        }
    }
}
