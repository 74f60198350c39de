//! # keeper
//!
//! Redis-grade durability for in-memory cache servers: Redis's own RDB snapshots and Redis 7's
//! multi-part AOF (and, as the project grows, backups and the PSYNC2 replication stream) as a
//! Rust library, plus the `keeper` command-line tool operators run to check, inspect and
//! convert those files.
//!
//! keeper is **not** a cache server: it is the persistence core one embeds. `keeper server` is
//! a small RESP server built on it.
//!
//! ```
//! use keeper::rdb::{Event, Reader, WriteOptions, Writer};
//! use keeper::{Entry, Value};
//!
//! // Write a snapshot that real Redis (7.0 and later) loads…
//! let mut writer = Writer::new(Vec::new(), WriteOptions::default())?;
//! writer.write_entry(&Entry::new(0, "list", Value::List(vec!["a".into(), "b".into()])))?;
//! let file = writer.finish()?;
//!
//! // …and stream it back, one event at a time.
//! let mut reader = Reader::from_slice(&file[..])?;
//! let mut keys = 0;
//! while let Some(event) = reader.next_event()? {
//!     if let Event::Entry(entry) = event {
//!         assert_eq!(entry.value, Value::List(vec!["a".into(), "b".into()]));
//!         keys += 1;
//!     }
//! }
//! assert_eq!(keys, 1);
//! # Ok::<(), keeper::Error>(())
//! ```
//!
//! ## Persisting a keyspace you own
//!
//! A cache server with its own data structures implements [`dataset::Dataset`] (a cheap,
//! point-in-time view) and [`dataset::Apply`] (take loaded entries and replayed commands);
//! snapshots need nothing else, and neither does the AOF: [`aof::loader::load`] replays a
//! directory through `Apply`, [`aof::Aof`] takes the server's writes as RESP bytes (with a
//! wait for the group commit's fdatasync before the reply) and rewrites from a `Dataset`
//! snapshot. `examples/own_store.rs` is a whole server built that way, with both.
//!
//! ```
//! use keeper::dataset::{Apply, Dataset, DatasetSnapshot};
//! use keeper::snapshot::{self, ExpiredKeys, LoadOutcome, SaveOptions};
//! use keeper::{Entry, OsStorage, Value};
//! use std::sync::Arc;
//!
//! #[derive(Default)]
//! struct Counters(Arc<Vec<(String, i64)>>);
//! struct View(Arc<Vec<(String, i64)>>);
//!
//! impl Dataset for Counters {
//!     type Snapshot = View;
//!     fn snapshot(&self) -> View { View(Arc::clone(&self.0)) }
//! }
//! impl DatasetSnapshot for View {
//!     fn databases(&self) -> usize { 1 }
//!     fn db_size(&self, _db: usize) -> (u64, u64) { (self.0.len() as u64, 0) }
//!     fn for_each_entry(&self, db: usize, visit: &mut dyn FnMut(Entry) -> keeper::Result<()>)
//!         -> keeper::Result<()> {
//!         for (name, n) in self.0.iter().filter(|_| db == 0) {
//!             visit(Entry::new(0, name.clone(), Value::String(n.to_string().into())))?;
//!         }
//!         Ok(())
//!     }
//! }
//! impl Apply for Counters {
//!     fn clear(&mut self) { self.0 = Arc::default(); }
//!     fn load_entry(&mut self, e: Entry) -> keeper::Result<()> {
//!         let Value::String(v) = e.value else { unreachable!("only counters are saved") };
//!         let n = std::str::from_utf8(&v).unwrap().parse().unwrap();
//!         Arc::make_mut(&mut self.0).push((String::from_utf8_lossy(&e.key).into(), n));
//!         Ok(())
//!     }
//!     fn apply_command(&mut self, _: usize, _: &[keeper::Bytes], _: i64) -> keeper::Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("dump.rdb");
//! let counters = Counters(Arc::new(vec![("visits".into(), 42)]));
//! snapshot::write_rdb(&OsStorage, &path, &counters.snapshot(), SaveOptions::default())?;
//!
//! let mut loaded = Counters::default();
//! let outcome = snapshot::load_rdb(&OsStorage, &path, &mut loaded, ExpiredKeys::Keep)?;
//! assert!(matches!(outcome, LoadOutcome::Loaded(_)));
//! assert_eq!(loaded.0[0], ("visits".to_string(), 42));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! All file I/O of the engine goes through [`storage::Storage`], so crash and fault tests can
//! run the same code on a simulated disk.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod aof;
pub mod backup;
pub mod command;
pub mod config;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod failpoints;
pub mod glob;
pub mod model;
mod os;
pub mod rdb;
pub mod replication;
pub mod resp;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod store;

pub use error::{Error, Result};
pub use model::{
    Bytes, Consumer, ConsumerGroup, Entry, HashField, ModuleValue, PendingEntry, Stream,
    StreamEntry, StreamId, Value, ValueType,
};
pub use storage::{FileView, OsStorage, Storage, WritableFile};
