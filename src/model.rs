//! The data model every codec speaks: values, entries, stream structures.
//!
//! These are plain owned values. Byte strings are [`Bytes`], so a value can be shared between a
//! keyspace, a snapshot being written and a replica stream without copying. Collections keep
//! the order they were read in (or given in); sets and hashes carry no duplicate members or
//! fields, which decoders check and writers assume.

use std::fmt;

pub use bytes::Bytes;

/// One value of the keyspace.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (Redis stores integers as strings too).
    String(Bytes),
    /// A list, head first.
    List(Vec<Bytes>),
    /// A set; members are unique.
    Set(Vec<Bytes>),
    /// A sorted set as `(member, score)`; members are unique, scores are never NaN.
    SortedSet(Vec<(Bytes, f64)>),
    /// A hash; fields are unique. Field TTLs are Redis 7.4+ (RDB 12) and Valkey 9.
    Hash(Vec<HashField>),
    /// A stream with its consumer groups.
    Stream(Box<Stream>),
    /// A module value kept as an opaque, re-writable blob.
    Module(Box<ModuleValue>),
}

/// The kind of a value, as Redis's `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueType {
    String,
    List,
    Set,
    SortedSet,
    Hash,
    Stream,
    Module,
}

impl ValueType {
    /// Every type, in declaration order (`ALL[t as usize] == t`).
    pub const ALL: [ValueType; 7] = [
        ValueType::String,
        ValueType::List,
        ValueType::Set,
        ValueType::SortedSet,
        ValueType::Hash,
        ValueType::Stream,
        ValueType::Module,
    ];

    /// The Redis `TYPE` name.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::SortedSet => "zset",
            ValueType::Hash => "hash",
            ValueType::Stream => "stream",
            ValueType::Module => "module",
        }
    }
}

impl Value {
    /// The kind of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::String(_) => ValueType::String,
            Value::List(_) => ValueType::List,
            Value::Set(_) => ValueType::Set,
            Value::SortedSet(_) => ValueType::SortedSet,
            Value::Hash(_) => ValueType::Hash,
            Value::Stream(_) => ValueType::Stream,
            Value::Module(_) => ValueType::Module,
        }
    }

    /// The Redis `TYPE` name of the value.
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// Number of elements (1 for strings and modules, live entries for streams).
    pub fn len(&self) -> usize {
        match self {
            Value::String(_) | Value::Module(_) => 1,
            Value::List(v) | Value::Set(v) => v.len(),
            Value::SortedSet(v) => v.len(),
            Value::Hash(v) => v.len(),
            Value::Stream(s) => s.entries.len(),
        }
    }

    /// True for a collection with no elements (Redis never stores those).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::String(_) | Value::Module(_) | Value::Stream(_) => false,
            _ => self.len() == 0,
        }
    }
}

/// One field of a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashField {
    pub field: Bytes,
    pub value: Bytes,
    /// Absolute expiry of this field in unix milliseconds (Redis 7.4 `HPEXPIREAT`).
    pub expire_at_ms: Option<i64>,
}

impl HashField {
    /// A field without TTL.
    pub fn new(field: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        HashField {
            field: field.into(),
            value: value.into(),
            expire_at_ms: None,
        }
    }
}

/// One key with its value and metadata, as stored in a database.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Database index (0–15 by default).
    pub db: u32,
    pub key: Bytes,
    pub value: Value,
    /// Absolute expiry in unix milliseconds.
    pub expire_at_ms: Option<i64>,
    /// LRU idle time in seconds, when the writer recorded it (`maxmemory-policy` LRU).
    pub lru_idle_secs: Option<u64>,
    /// LFU frequency counter, when the writer recorded it (`maxmemory-policy` LFU).
    pub lfu_freq: Option<u8>,
}

impl Entry {
    /// An entry with no expiry and no eviction metadata.
    pub fn new(db: u32, key: impl Into<Bytes>, value: Value) -> Self {
        Entry {
            db,
            key: key.into(),
            value,
            expire_at_ms: None,
            lru_idle_secs: None,
            lfu_freq: None,
        }
    }
}

/// A stream entry ID `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The 16-byte big-endian form used for node keys and PEL entries in RDB.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Parses the 16-byte big-endian form.
    pub fn from_be_bytes(raw: [u8; 16]) -> Self {
        let (ms, seq) = raw.split_at(8);
        StreamId {
            ms: u64::from_be_bytes(ms.try_into().unwrap_or_default()),
            seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One live stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: StreamId,
    /// Field/value pairs in insertion order (a field may repeat, as XADD allows).
    pub fields: Vec<(Bytes, Bytes)>,
}

/// A stream: live entries in ID order, its counters and its consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    pub entries: Vec<StreamEntry>,
    /// Last ID ever generated (may exceed the last live entry).
    pub last_id: StreamId,
    /// First live entry ID as recorded (RDB ≥ 10); 0-0 for an empty stream.
    pub first_id: StreamId,
    /// Greatest ID ever deleted (RDB ≥ 10).
    pub max_deleted_id: StreamId,
    /// Count of entries ever added (RDB ≥ 10).
    pub entries_added: u64,
    pub groups: Vec<ConsumerGroup>,
}

/// A consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub name: Bytes,
    pub last_id: StreamId,
    /// Logical read counter (RDB ≥ 10); `None` is Redis's −1 ("unknown").
    pub entries_read: Option<u64>,
    /// Pending entries list, in ID order.
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer>,
}

/// An entry delivered to a consumer and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: StreamId,
    /// Last delivery time, unix ms.
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: Bytes,
    /// Last time the consumer was seen, unix ms.
    pub seen_time_ms: i64,
    /// Last successful read (RDB ≥ 11); older files carry the seen time here.
    pub active_time_ms: i64,
    /// IDs of the group's pending entries owned by this consumer, in ID order.
    pub pending: Vec<StreamId>,
}

/// A value of a module type, kept as the module serialised it.
///
/// `body` is the opcode-tagged item sequence that follows the module id in RDB, up to and
/// including the final EOF opcode, so writing `id` then `body` reproduces the value exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleValue {
    /// 64-bit module type id: 9 name characters × 6 bits, then a 10-bit encoding version.
    pub id: u64,
    pub body: Bytes,
}

const MODULE_CHARSET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl ModuleValue {
    /// The module type name encoded in the id (e.g. `ReJSON-RL`).
    pub fn type_name(&self) -> String {
        module_type_name(self.id)
    }

    /// The module's encoding version (low 10 bits of the id).
    pub fn encoding_version(&self) -> u32 {
        (self.id & 1023) as u32
    }
}

/// Decodes the 9-character type name of a 64-bit module id.
pub fn module_type_name(id: u64) -> String {
    (0..9)
        .map(|i| {
            let shift = 64 - 6 * (i + 1);
            MODULE_CHARSET[((id >> shift) & 63) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_name_decodes() {
        // "ReJSON-RL" encver 3, as in RedisJSON.
        let name = b"ReJSON-RL";
        let mut id: u64 = 0;
        for &c in name {
            let idx = MODULE_CHARSET.iter().position(|&x| x == c).unwrap() as u64;
            id = (id << 6) | idx;
        }
        id = (id << 10) | 3;
        let value = ModuleValue {
            id,
            body: Bytes::new(),
        };
        assert_eq!(value.type_name(), "ReJSON-RL");
        assert_eq!(value.encoding_version(), 3);
    }

    #[test]
    fn stream_id_be_roundtrip() {
        let id = StreamId::new(1_700_000_000_000, 7);
        assert_eq!(StreamId::from_be_bytes(id.to_be_bytes()), id);
        assert_eq!(id.to_string(), "1700000000000-7");
    }
}
