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

pub mod create;
pub mod target;
pub mod manifest;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Why a backup was made; retention treats the kinds differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Made by the scheduler; expires after `backup-retention-days`.
    Automatic,
    /// Made on request; deleted only on request.
    Manual,
    /// Made when the node shut down; deleted only on request.
    Final,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Automatic => "automatic",
            BackupKind::Manual => "manual",
            BackupKind::Final => "final",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "automatic" => Ok(BackupKind::Automatic),
            "manual" => Ok(BackupKind::Manual),
            "final" => Ok(BackupKind::Final),
            _ => Err(Error::InvalidArgument(format!(
                "backup kind {s:?}: automatic, manual or final"
            ))),
        }
    }
}
