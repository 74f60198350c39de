//! Redis's RDB snapshot format: a streaming [`Reader`] for every version Redis and Valkey write,
//! and a [`Writer`] that produces files real Redis loads.
//!
//! The byte-level facts (opcodes, type codes, encodings, checksum) are in
//! `shared/redis-formats.md` §1; this module cites its sections.
//!
//! ```
//! use keeper::rdb::{self, Event, WriteOptions, Writer};
//! use keeper::{Entry, Value};
//!
//! let mut writer = Writer::new(Vec::new(), WriteOptions::default())?;
//! writer.write_entry(&Entry::new(0, "greeting", Value::String("hello".into())))?;
//! let bytes = writer.finish()?;
//!
//! let mut reader = rdb::Reader::from_slice(&bytes[..])?;
//! while let Some(event) = reader.next_event()? {
//!     if let Event::Entry(entry) = event {
//!         assert_eq!(entry.key, "greeting");
//!     }
//! }
//! # Ok::<(), keeper::Error>(())
//! ```

pub mod check;
pub mod crc;
pub mod encoding;
mod reader;
mod source;
mod writer;

use std::path::Path;

pub use crc::{Crc64, crc64, crc64_combine};
pub use reader::{Checked, Checksum, Event, KeySummary, Reader};
pub use source::{SliceSource, Source, StreamSource};
pub use writer::{AuxInfo, FileSink, ReplicationInfo, WriteOptions, Writer};

use crate::error::Result;
use crate::model::Entry;
use crate::storage::{Storage, publish_atomically};

/// Highest `REDIS`-magic RDB version keeper reads (Redis 7.4 / 8.0).
pub const MAX_REDIS_VERSION: u32 = 12;
/// The RDB versions keeper can write.
pub const WRITABLE_VERSIONS: [u32; 3] = [10, 11, 12];
/// The version written unless asked otherwise: what Redis 7.0 (Debian's) writes and loads.
pub const DEFAULT_WRITE_VERSION: u32 = 10;

/// Which project's numbering a file follows. Type codes ≥ 22 and opcodes 242–244 mean
/// different things in Redis and Valkey ≥ 9, so the reader dispatches on this first (§1.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `REDIS` magic: Redis, and Valkey up to 8.x.
    Redis,
    /// `VALKEY` magic: Valkey 9 and later.
    Valkey,
}

/// Opcodes (§1.3).
pub(crate) mod opcode {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
    pub const SLOT_INFO: u8 = 244;
}

/// Value type codes (§1.7).
pub(crate) mod rdb_type {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Redis 7.4 release candidates; in Valkey ≥ 9 the same number is `HASH_2`.
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const VALKEY_HASH_2: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
}

/// Reads every entry of the RDB file at `path` (memory-mapped), with errors naming the file.
pub fn read_file(storage: &dyn Storage, path: &Path) -> Result<Vec<Entry>> {
    let view = storage.read_all(path)?;
    let mut reader = Reader::from_slice(view).map_err(|e| e.with_file(path))?;
    let mut entries = Vec::new();
    while let Some(event) = reader.next_event().map_err(|e| e.with_file(path))? {
        if let Event::Entry(entry) = event {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Writes `entries` (grouped by database) to `path` atomically: temp file, fsync, rename,
/// directory fsync.
pub fn write_file<'a>(
    storage: &dyn Storage,
    path: &Path,
    entries: impl IntoIterator<Item = &'a Entry>,
    options: WriteOptions,
) -> Result<()> {
    publish_atomically(storage, path, |file| {
        let mut writer = Writer::new(writer::FileSink::new(file), options)?;
        for entry in entries {
            writer.write_entry(entry)?;
        }
        writer.finish()?;
        Ok(())
    })
}
