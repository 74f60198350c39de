//! Backups: point-in-time RDB files, compressed with zstd, stored with a JSON manifest in a
//! target (a local folder, S3-compatible storage, or memory for tests), and restored into a
//! fresh data folder only after everything was verified.
//!
//! # Objects in a target
//! ```text
//! <prefix>/<id>.rdb.zst              the backup: one zstd frame of the RDB
//! <prefix>/<id>.json                 its manifest, written last: the catalog entry
//! <prefix>/incomplete/<id>.rdb.zst   an upload in progress (or left by a crash)
//! ```
//! The catalog is the set of manifests: a data object without one is not a backup (an
//! upload that did not finish, or a deletion that did not), and pruning removes it once it is
//! old enough not to be in progress.
//!
//! # Creating (DESIGN.md "Backup")
//! RDB → CRC-64 of the raw bytes → zstd → CRC-64 of the compressed bytes → upload under
//! `incomplete/` → read back and check size and checksum → rename to `<id>.rdb.zst` → manifest.
//! A crash or error at any step leaves the catalog as it was.
//!
//! # Restoring (DESIGN.md "Restore")
//! Download → check size and both checksums → decompress → parse the whole RDB → stage the
//! data folder beside the destination → rename it into place. Nothing touches the destination
//! before every check passed.

pub mod catalog;
pub mod create;
pub mod manifest;
pub mod restore;
pub mod schedule;
pub mod target;

pub use schedule::BackupKind;
