//! Values as the store keeps them: persistent collections, so cloning a value for a snapshot
//! is O(1) and a write under a snapshot copies only what it touches.

use std::cmp::Ordering;
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
    List(Vector<Bytes>),
    Set(HashSet<Bytes>),
    Hash(HashMap<Bytes, HashValue>),
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

/// A sorted set: member → score, and `(score, member)` in Redis's order.
#[derive(Clone, Debug, Default)]
pub struct SortedSet {
    scores: HashMap<Bytes, f64>,
    order: OrdSet<(Score, Bytes)>,
}

impl SortedSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when the set has no member.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Adds `member` or changes its score; returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        // -0.0 and 0.0 are one score to Redis.
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            if old.total_cmp(&score) == Ordering::Equal {
                return Some(old);
            }
            self.order.remove(&(Score(old), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (member, score) = self.scores.remove_with_key(member)?;
        self.order.remove(&(Score(score), member));
        Some(score)
    }

    /// Members in ascending `(score, member)` order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(score, member)| (member, score.0))
    }

    /// Members with `(score, member)` at or after `(score, member)`, ascending.
    pub fn range_from(&self, score: f64, member: Bytes) -> impl Iterator<Item = (&Bytes, f64)> {
        self.order
            .range((Score(score), member)..)
            .map(|(score, member)| (member, score.0))
    }

    /// The ordered index, for range queries (`(Score, member)` tuples).
    pub fn ordered(&self) -> &OrdSet<(Score, Bytes)> {
        &self.order
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
            model::Value::List(items) => Value::List(items.into_iter().collect()),
            model::Value::Set(members) => Value::Set(members.into_iter().collect()),
            model::Value::SortedSet(pairs) => {
                let mut set = SortedSet::default();
                for (member, score) in pairs {
                    set.insert(member, score);
                }
                Value::SortedSet(set)
            }
            model::Value::Hash(fields) => Value::Hash(
                fields
                    .into_iter()
                    .map(|f| {
                        (
                            f.field,
                            HashValue {
                                value: f.value,
                                expire_at_ms: f.expire_at_ms,
                            },
                        )
                    })
                    .collect(),
            ),
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
