//! The two traits through which keeper persists a keyspace it does not own.
//!
//! A cache server with its own data structures implements [`Dataset`] (give a consistent,
//! point-in-time view to iterate) and [`Apply`] (accept loaded entries and replayed
//! commands). Snapshots, AOF rewrites, backups and full syncs need nothing else;
//! [`crate::store::Store`] implements both.

use bytes::Bytes;

use crate::error::Result;
use crate::model::Entry;

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
}
