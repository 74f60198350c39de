//! A backup's manifest: the JSON object written beside the data object, last. It is the
//! catalog entry (a backup without one does not exist yet, or no longer) and the promise a
//! restore checks the data against: sizes, both checksums, key counts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::BackupKind;
use crate::error::{Error, Result};

/// The manifest format this keeper writes; a manifest of a later format is refused (it may
/// promise things this version cannot check).
pub const FORMAT: u32 = 1;

/// The one checksum algorithm of backups: CRC-64/NVME (SIMD in `crc-fast`). Not Redis's
/// CRC-64/Jones: an RDB ends with its own Jones CRC, and a reflected CRC without a final XOR
/// over data followed by its own CRC is always 0, so every RDB would hash the same.
pub const CHECKSUM_ALGORITHM: &str = "crc64-nvme";

/// A streaming [`CHECKSUM_ALGORITHM`] digest.
#[derive(Clone)]
pub struct Checksum(crc_fast::Digest);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
    }
}

impl Checksum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        self.0.finalize()
    }
}

/// The one compression of backups.
pub const COMPRESSION: &str = "zstd";

/// Suffix of a backup's data object.
pub const DATA_SUFFIX: &str = ".rdb.zst";

/// Suffix of a backup's manifest object.
pub const MANIFEST_SUFFIX: &str = ".json";

/// Longest backup id.
const MAX_ID_LEN: usize = 128;

/// Where a backup's data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A snapshot of the node that made the backup (its scheduler, or a final backup).
    Node,
    /// A live node over the replication protocol (`--from HOST:PORT`).
    Replication,
    /// A data folder read offline (`--dir`): its `dump.rdb` or AOF directory.
    DataDir,
    /// An RDB file or object taken as it is.
    RdbFile,
}

/// The source of a backup: what was backed up, and at which replication position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    /// The node's address, the data folder or the file, as given.
    pub name: String,
    /// The replication id the data reflects, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replid: Option<String>,
    /// The replication offset the data reflects, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// Keys of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseKeys {
    pub db: u32,
    pub keys: u64,
    /// Keys with a TTL.
    pub expires: u64,
}

/// Checksums of the two forms of the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// Always [`CHECKSUM_ALGORITHM`].
    pub algorithm: String,
    /// Of the RDB bytes, as 16 lowercase hex digits.
    pub raw: String,
    /// Of the data object's bytes.
    pub compressed: String,
}

impl Checksums {
    pub fn new(raw: u64, compressed: u64) -> Self {
        Checksums {
            algorithm: CHECKSUM_ALGORITHM.into(),
            raw: hex64(raw),
            compressed: hex64(compressed),
        }
    }
}

/// Formats a checksum as the manifest stores it.
pub fn hex64(value: u64) -> String {
    format!("{value:016x}")
}

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`FORMAT`].
    pub format: u32,
    pub id: String,
    pub kind: BackupKind,
    /// When the data's point in time was taken (UTC).
    #[serde(with = "rfc3339_millis")]
    pub created: DateTime<Utc>,
    pub source: Source,
    /// The RDB version of the data.
    pub rdb_version: u32,
    /// Non-empty databases, in order.
    pub databases: Vec<DatabaseKeys>,
    /// Keys in all databases.
    pub keys: u64,
    /// Size of the RDB.
    pub raw_bytes: u64,
    /// Size of the data object.
    pub compressed_bytes: u64,
    /// Always [`COMPRESSION`].
    pub compression: String,
    pub checksums: Checksums,
    /// The keeper that wrote the backup.
    pub keeper_version: String,
    /// The data object's name in the target: `<id>.rdb.zst`.
    pub object: String,
}

impl BackupManifest {
    /// The manifest object's name of backup `id`.
    pub fn manifest_name(id: &str) -> String {
        format!("{id}{MANIFEST_SUFFIX}")
    }

    /// The data object's name of backup `id`.
    pub fn data_name(id: &str) -> String {
        format!("{id}{DATA_SUFFIX}")
    }

    /// Pretty JSON, as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// Parses and validates a manifest read from the object `object`: a format this keeper
    /// knows, a valid id matching the object's name, the one algorithm and compression, and
    /// key counts that add up. The error names the object.
    pub fn from_json(bytes: &[u8], object: &str) -> Result<BackupManifest> {
        let id_guess = object.strip_suffix(MANIFEST_SUFFIX).unwrap_or(object);
        let bad = |reason: String| Error::Backup {
            id: id_guess.to_string(),
            reason: format!("manifest {object}: {reason}"),
        };
        let manifest: BackupManifest = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a backup manifest: {e}")))?;
        if manifest.format > FORMAT {
            return Err(bad(format!(
                "format {} is newer than this keeper's ({FORMAT})",
                manifest.format
            )));
        }
        validate_id(&manifest.id).map_err(|e| bad(e.to_string()))?;
        if Self::manifest_name(&manifest.id) != object.rsplit('/').next().unwrap_or(object) {
            return Err(bad(format!("names backup {}", manifest.id)));
        }
        if manifest.object != Self::data_name(&manifest.id) {
            return Err(bad(format!("names data object {}", manifest.object)));
        }
        if manifest.checksums.algorithm != CHECKSUM_ALGORITHM {
            return Err(bad(format!(
                "checksum algorithm {} (this keeper knows {CHECKSUM_ALGORITHM})",
                manifest.checksums.algorithm
            )));
        }
        for (what, value) in [
            ("raw", &manifest.checksums.raw),
            ("compressed", &manifest.checksums.compressed),
        ] {
            if parse_hex64(value).is_none() {
                return Err(bad(format!(
                    "{what} checksum {value:?} is not 16 hex digits"
                )));
            }
        }
        if manifest.compression != COMPRESSION {
            return Err(bad(format!(
                "compression {} (this keeper knows {COMPRESSION})",
                manifest.compression
            )));
        }
        let sum: u64 = manifest.databases.iter().map(|d| d.keys).sum();
        if sum != manifest.keys {
            return Err(bad(format!(
                "{} keys in all, but its databases add up to {sum}",
                manifest.keys
            )));
        }
        Ok(manifest)
    }

    /// The raw checksum as a number.
    pub fn raw_crc64(&self) -> u64 {
        parse_hex64(&self.checksums.raw).unwrap_or_default()
    }

    /// The compressed checksum as a number.
    pub fn compressed_crc64(&self) -> u64 {
        parse_hex64(&self.checksums.compressed).unwrap_or_default()
    }
}

fn parse_hex64(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Checks a backup id: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128 bytes, so it is a safe object
/// name and file name everywhere.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "backup id {id:?}: use letters, digits, '.', '_' and '-' (starting with a letter or \
             digit), at most {MAX_ID_LEN} characters"
        )))
    }
}

/// The default id of a backup of `kind` taken at `created`: `automatic-20261122T050012Z`.
pub fn default_id(kind: BackupKind, created: DateTime<Utc>) -> String {
    format!("{kind}-{}", created.format("%Y%m%dT%H%M%SZ"))
}

/// Times as RFC 3339 in UTC with milliseconds (`2026-11-22T05:00:12.345Z`).
mod rfc3339_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> BackupManifest {
        let created = Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 12).unwrap();
        let id = default_id(BackupKind::Automatic, created);
        BackupManifest {
            format: FORMAT,
            object: BackupManifest::data_name(&id),
            id,
            kind: BackupKind::Automatic,
            created,
            source: Source {
                kind: SourceKind::Node,
                name: "127.0.0.1:6380".into(),
                replid: Some("a".repeat(40)),
                offset: Some(1234),
            },
            rdb_version: 10,
            databases: vec![
                DatabaseKeys {
                    db: 0,
                    keys: 10,
                    expires: 2,
                },
                DatabaseKeys {
                    db: 3,
                    keys: 5,
                    expires: 0,
                },
            ],
            keys: 15,
            raw_bytes: 1000,
            compressed_bytes: 400,
            compression: COMPRESSION.into(),
            checksums: Checksums::new(0x0123_4567_89ab_cdef, 42),
            keeper_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    #[test]
    fn round_trips_and_reads_as_documented() {
        let manifest = sample();
        assert_eq!(manifest.id, "automatic-20261122T050012Z");
        let json = manifest.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.contains(r#""created": "2026-11-22T05:00:12.000Z""#),
            "{text}"
        );
        assert!(text.contains(r#""kind": "automatic""#), "{text}");
        assert!(text.contains(r#""raw": "0123456789abcdef""#), "{text}");
        let back =
            BackupManifest::from_json(&json, "backups/automatic-20261122T050012Z.json").unwrap();
        assert_eq!(back, manifest);
        assert_eq!(back.raw_crc64(), 0x0123_4567_89ab_cdef);
        assert_eq!(back.compressed_crc64(), 42);
    }

    #[test]
    fn refuses_what_it_cannot_trust_naming_the_object() {
        let object = "automatic-20261122T050012Z.json";
        type Change = Box<dyn Fn(&mut BackupManifest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("newer than", Box::new(|m| m.format = FORMAT + 1)),
            ("names backup", Box::new(|m| m.id = "other".into())),
            ("data object", Box::new(|m| m.object = "x.rdb.zst".into())),
            (
                "algorithm",
                Box::new(|m| m.checksums.algorithm = "md5".into()),
            ),
            ("16 hex", Box::new(|m| m.checksums.raw = "xyz".into())),
            ("compression", Box::new(|m| m.compression = "lz4".into())),
            ("add up", Box::new(|m| m.keys = 16)),
        ];
        for (expected, change) in cases {
            let mut manifest = sample();
            change(&mut manifest);
            let err = BackupManifest::from_json(&manifest.to_json(), object).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected), "{expected}: {text}");
            assert!(text.contains(object), "{expected}: {text}");
        }
        let err = BackupManifest::from_json(b"{\"format\": 1", object).unwrap_err();
        assert!(err.to_string().contains("not a backup manifest"), "{err}");
    }

    #[test]
    fn ids_are_safe_names() {
        for good in ["a", "automatic-20261122T050012Z", "Before.upgrade_2"] {
            validate_id(good).unwrap();
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "../x",
            "é",
            long.as_str(),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
