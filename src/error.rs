//! keeper's one error type.
//!
//! Every error says *what* went wrong and *where*: corruption carries the file (when known) and
//! the byte offset, a checksum mismatch carries both values, and an I/O error names the path and
//! the operation. Decoders that work on anonymous byte streams leave `file` empty; the caller that
//! knows the path attaches it with [`Error::with_file`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout keeper.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in keeper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error while doing `op` on `path`.
    #[error("{}{op}: {source}", Where(path.as_deref(), None))]
    Io {
        path: Option<PathBuf>,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// The input is damaged: it cannot be what a correct writer produced.
    ///
    /// `offset` is the byte offset in the file (or stream) where the damage was detected.
    #[error("{}{reason}", Where(file.as_deref(), Some(*offset)))]
    Corrupt {
        file: Option<PathBuf>,
        offset: u64,
        reason: String,
    },

    /// The stored checksum does not match the checksum of the bytes read.
    #[error(
        "{}checksum mismatch: file says {expected:#018x}, content hashes to {actual:#018x}",
        Where(file.as_deref(), Some(*offset))
    )]
    ChecksumMismatch {
        file: Option<PathBuf>,
        /// Offset of the stored checksum.
        offset: u64,
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum computed over the bytes read.
        actual: u64,
    },

    /// The input is well formed but uses something keeper cannot handle (an RDB version from
    /// the future, a module type without a skippable format, a value the target RDB version
    /// cannot represent).
    #[error("{}unsupported: {what}", Where(file.as_deref(), *offset))]
    Unsupported {
        file: Option<PathBuf>,
        offset: Option<u64>,
        what: String,
    },

    /// A caller asked for something invalid (bad argument, bad option value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A write would pass the AOF's disk budget (`aof-max-disk-size`, or the free space
    /// `aof-disk-reserve` keeps): nothing of it was written.
    #[error("the AOF disk budget leaves {left} bytes for this write of {needed}")]
    DiskBudget { left: u64, needed: u64 },

    /// An `fdatasync` of the AOF failed: what it covered may be lost although a later sync
    /// would report success, so the AOF acknowledges nothing more until a restart.
    #[error("the AOF is poisoned by a failed fdatasync: {source}")]
    Poisoned {
        #[source]
        source: Box<Error>,
    },

    /// A backup target (object storage or a local backup folder) failed `op` on `object`.
    #[error("backup target {target}: {op} {object}: {source}")]
    Target {
        /// The target's URL.
        target: String,
        op: &'static str,
        /// The object's key in the target (empty for the target itself).
        object: String,
        #[source]
        source: Box<object_store::Error>,
    },

    /// A backup is not what its manifest promises (size, checksum, key counts), or a manifest
    /// or backup that was asked for is missing or unreadable. Names the backup and the object.
    #[error("backup {id}: {reason}")]
    Backup { id: String, reason: String },

    /// A replication peer broke the protocol or refused (`reason` quotes its reply).
    #[error("replication with {peer}: {reason}")]
    Replication { peer: String, reason: String },
}

impl Error {
    /// A corruption error at `offset` in an anonymous stream.
    #[cold]
    pub fn corrupt(offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            file: None,
            offset,
            reason: reason.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            op,
            source,
        }
    }

    /// Attaches `file` to an error that does not name one yet.
    pub fn with_file(mut self, path: &Path) -> Self {
        match &mut self {
            Error::Io { path: p, .. }
            | Error::Corrupt { file: p, .. }
            | Error::ChecksumMismatch { file: p, .. }
            | Error::Unsupported { file: p, .. } => {
                if p.is_none() {
                    *p = Some(path.to_path_buf());
                }
            }
            Error::InvalidArgument(_)
            | Error::DiskBudget { .. }
            | Error::Poisoned { .. }
            | Error::Target { .. }
            | Error::Backup { .. }
            | Error::Replication { .. } => {}
        }
        self
    }

    /// The byte offset the error points at, when it points at one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Corrupt { offset, .. } | Error::ChecksumMismatch { offset, .. } => Some(*offset),
            Error::Unsupported { offset, .. } => *offset,
            _ => None,
        }
    }
}

/// Renders the `FILE: offset N: ` prefix of an error message (each part only when known).
struct Where<'a>(Option<&'a Path>, Option<u64>);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.0 {
            write!(f, "{}: ", path.display())?;
        }
        if let Some(offset) = self.1 {
            write!(f, "offset {offset}: ")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_names_file_and_offset() {
        let err = Error::corrupt(42, "unknown type 99").with_file(Path::new("dump.rdb"));
        assert_eq!(err.to_string(), "dump.rdb: offset 42: unknown type 99");
        assert_eq!(err.offset(), Some(42));
    }

    #[test]
    fn with_file_keeps_the_first_file() {
        let err = Error::corrupt(1, "x")
            .with_file(Path::new("a"))
            .with_file(Path::new("b"));
        assert_eq!(err.to_string(), "a: offset 1: x");
    }

    #[test]
    fn checksum_mismatch_shows_both_values() {
        let err = Error::ChecksumMismatch {
            file: None,
            offset: 100,
            expected: 1,
            actual: 2,
        };
        let text = err.to_string();
        assert!(text.contains("0x0000000000000001") && text.contains("0x0000000000000002"));
    }
}
