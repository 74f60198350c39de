//! # keeper
//!
//! Redis-grade durability for in-memory cache servers: Redis's own RDB snapshot format (and,
//! as the project grows, the multi-part AOF, backups and the PSYNC2 replication stream) as a
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
//! All file I/O of the engine goes through [`storage::Storage`], so crash and fault tests can
//! run the same code on a simulated disk.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod aof;
pub mod command;
pub mod config;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod failpoints;
pub mod glob;
pub mod model;
pub mod rdb;
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
