//! The two traits through which keeper persists a keyspace it does not own.
//!
//! A cache server with its own data structures implements [`Dataset`] (give a consistent,
//! point-in-time view to iterate) and [`Apply`] (accept loaded entries and replayed
//! commands). Snapshots, AOF rewrites, backups and full syncs need nothing else;
//! [`crate::store::Store`] implements both.

use bytes::Bytes;

use crate::error::Result;
use crate::model::{Entry, Value};

/// A keyspace that can hand out point-in-time views.
pub trait Dataset {
    type Snapshot: DatasetSnapshot + Send + 'static;

    /// A consistent view of the whole keyspace at this moment. It must be cheap (writes
    /// wait for it) and must not change when the dataset is written afterwards.
    fn snapshot(&self) -> Self::Snapshot;
}

/// A point-in-time view, iterated on a background thread while the dataset is written.
pub trait DatasetSnapshot {
    /// Number of databases.
    fn databases(&self) -> usize;

    /// `(keys, keys with a TTL)` in database `db`: size hints for the RDB `RESIZEDB` opcode.
    fn db_size(&self, db: usize) -> (u64, u64);

    /// Calls `visit` with every entry of database `db`; stops at the first error and returns
    /// it.
    fn for_each_entry(&self, db: usize, visit: &mut dyn FnMut(Entry) -> Result<()>) -> Result<()>;

    /// Like [`DatasetSnapshot::for_each_entry`], but a dataset may lend keys and string values
    /// instead of copying them into an [`Entry`]. Every RDB keeper writes (snapshots, backups,
    /// full syncs) iterates this way; for the store, the copies were about a sixth of the time
    /// an RDB of mostly strings took to write. The default hands over each entry of
    /// `for_each_entry`.
    fn for_each_entry_ref(
        &self,
        db: usize,
        visit: &mut dyn FnMut(EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        self.for_each_entry(db, &mut |entry| {
            let Entry {
                key,
                value,
                expire_at_ms,
                lru_idle_secs,
                lfu_freq,
                ..
            } = entry;
            visit(EntryRef {
                key: &key,
                value: ValueRef::Owned(value),
                expire_at_ms,
                lru_idle_secs,
                lfu_freq,
            })
        })
    }
}

/// One entry of a [`DatasetSnapshot`], its key (and a string value) borrowed from the dataset.
#[derive(Debug)]
pub struct EntryRef<'a> {
    pub key: &'a [u8],
    pub value: ValueRef<'a>,
    /// Absolute expiry in unix milliseconds.
    pub expire_at_ms: Option<i64>,
    pub lru_idle_secs: Option<u64>,
    pub lfu_freq: Option<u8>,
}

/// The value of an [`EntryRef`]: a string borrowed, or any value as the model has it.
#[derive(Debug)]
pub enum ValueRef<'a> {
    String(&'a [u8]),
    Owned(Value),
}

impl ValueRef<'_> {
    /// True for a collection without elements (RDB files never hold one).
    pub fn is_empty(&self) -> bool {
        match self {
            ValueRef::String(_) => false,
            ValueRef::Owned(value) => value.is_empty(),
        }
    }
}

/// A keyspace that accepts loaded data: entries of an RDB file or full sync, and commands of
/// an AOF or replication stream.
pub trait Apply {
    /// Removes every key (before a full load).
    fn clear(&mut self);

    /// Stores one loaded entry, replacing the key if present.
    fn load_entry(&mut self, entry: Entry) -> Result<()>;

    /// Applies one write command in database `db` at `now_ms` (unix milliseconds). A
    /// command the dataset cannot apply is an error naming it.
    fn apply_command(&mut self, db: usize, argv: &[Bytes], now_ms: i64) -> Result<()>;

    /// A hint from a replay that reads ahead: a command on `key` in database `db` comes
    /// `distance` commands from now (1 = the next one). A dataset may start fetching what
    /// that command will touch, so that its cache misses overlap the commands before it; it
    /// must change nothing. The default ignores it.
    fn coming(&self, db: usize, key: &[u8], distance: usize) {
        let _ = (db, key, distance);
    }
}
