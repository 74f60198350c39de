//! The streaming RDB reader.
//!
//! [`Reader::next_event`] yields one [`Event`] at a time (AUX fields, database switches, function
//! libraries, module AUX data, entries), holding only the entry being decoded in memory. It reads
//! every `REDIS`-magic version 1–12 and Valkey's `VALKEY080`/`VALKEY081`, every opcode and every
//! value encoding of `shared/redis-formats.md` §1.
//!
//! Hostile input: every length is checked against the bytes that remain (when known) before
//! anything is allocated for it, element counts only bound capacity hints, blobs are validated
//! before use (see [`super::encoding`]), and every error names the byte offset where the damage
//! was found.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};

use bytes::Bytes;

use super::encoding::{BlobError, Elem, intset, listpack, lzf, ziplist, zipmap};
use super::source::{SliceSource, Source, StreamSource};
use super::writer::{write_len, write_raw_string};
use super::{Family, MAX_REDIS_VERSION, opcode, rdb_type};
use crate::error::{Error, Result};
use crate::model::{
    Consumer, ConsumerGroup, Entry, HashField, ModuleValue, PendingEntry, Stream, StreamEntry,
    StreamId, Value, ValueType, module_type_name,
};

/// One thing read from an RDB file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An AUX field (`redis-ver`, `ctime`, `repl-id`, …). Unknown keys are passed on, not errors.
    Aux { key: Bytes, value: Bytes },
    /// The following entries belong to database `0`.
    SelectDb(u32),
    /// Size hints of the current database.
    ResizeDb { db_size: u64, expires_size: u64 },
    /// Redis 7.4+ cluster slot size hints.
    SlotInfo {
        slot: u64,
        size: u64,
        expires_size: u64,
    },
    /// A function library's source code (`#!lua name=…`).
    Function(Bytes),
    /// Module AUX data, kept opaque. `when` is 1 (before keys) or 2 (after keys).
    ModuleAux {
        module_id: u64,
        when: u64,
        body: Bytes,
    },
    /// A key with its value.
    Entry(Entry),
}

/// What [`Reader::check_next`] yields: every event but entries as is, keys as a summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Boxed: events other than keys are rare, and a small `Checked` keeps the per-key path cheap.
    Event(Box<Event>),
    Key(KeySummary),
}

/// A key that was fully validated but not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySummary {
    pub db: u32,
    pub value_type: ValueType,
    /// Elements (1 for strings and modules, live entries for streams).
    pub len: u64,
    pub expire_at_ms: Option<i64>,
}

enum Step<K> {
    Event(Event),
    Key(K),
}

/// What the trailer said about the file's integrity, known once the EOF opcode was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The stored CRC-64 matched the content.
    Verified(u64),
    /// The writer stored 0: saved with `rdbchecksum no`, nothing to verify.
    NotStored,
    /// RDB versions before 5 have no checksum.
    NotInVersion,
}

/// Streaming RDB reader over a [`Source`].
pub struct Reader<S> {
    src: S,
    version: u32,
    family: Family,
    db: u32,
    /// Decompressed blobs live here while they are decoded.
    scratch: Vec<u8>,
    /// Prefixes of the next key (expiry, LRU, LFU) seen before its type byte.
    expire_at_ms: Option<i64>,
    lru_idle_secs: Option<u64>,
    lfu_freq: Option<u8>,
    checksum: Option<Checksum>,
    empty_keys_skipped: u64,
    /// Members of a plain collection being checked for duplicates without owning them.
    arena: Vec<u8>,
    spans: Vec<(usize, usize)>,
    unique: UniqueKeys,
    /// In deferred mode ([`Reader::defer_blobs`]) blobs and LZF strings met by `check_next` are
    /// located and queued here instead of being validated, and the checksum is not computed.
    deferring: bool,
    deferred: Vec<DeferredBlob>,
    /// `(offset, stored value)` of the checksum trailer, once read.
    trailer: Option<(u64, u64)>,
}

/// A blob (or LZF string) whose validation was deferred: where its bytes are in the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeferredBlob {
    /// The value type code, or [`LZF_STRING`] for a compressed string.
    pub code: u8,
    /// Database of the key, and whether it has an expiry (to correct counts for empty blobs).
    pub db: u32,
    pub has_expire: bool,
    /// Offset of the string (its length prefix), for errors.
    pub at: u64,
    /// Offset and length of the bytes as stored (compressed for LZF).
    pub data_at: u64,
    pub len: usize,
    /// Decompressed length when the bytes are LZF-compressed.
    pub lzf_len: Option<usize>,
}

/// Pseudo type code of a deferred LZF-compressed string.
pub(crate) const LZF_STRING: u8 = 0xff;

impl<B: std::ops::Deref<Target = [u8]>> Reader<SliceSource<B>> {
    /// A reader over bytes in memory (a memory-mapped file, a `Vec`, a slice).
    pub fn from_slice(data: B) -> Result<Self> {
        Reader::new(SliceSource::new(data))
    }
}

impl<R: std::io::Read> Reader<StreamSource<R>> {
    /// A reader over a byte stream (a socket, a decompressor, a pipe).
    pub fn from_reader(stream: R) -> Result<Self> {
        Reader::new(StreamSource::new(stream))
    }
}

impl<S: Source> Reader<S> {
    /// Reads and checks the magic and version.
    pub fn new(mut src: S) -> Result<Self> {
        let header = src
            .take(9)
            .map_err(|_| Error::corrupt(0, "not an RDB file: shorter than the 9-byte header"))?;
        let (family, digits) = if &header[..5] == b"REDIS" {
            (Family::Redis, &header[5..9])
        } else if &header[..6] == b"VALKEY" {
            (Family::Valkey, &header[6..9])
        } else {
            return Err(Error::corrupt(
                0,
                format!(
                    "wrong signature: not an RDB file (starts with {:?})",
                    String::from_utf8_lossy(&header[..5])
                ),
            ));
        };
        let version = std::str::from_utf8(digits)
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| Error::corrupt(5, "RDB version is not a number"))?;
        let supported = match family {
            Family::Redis => (1..=MAX_REDIS_VERSION).contains(&version),
            Family::Valkey => (80..=81).contains(&version),
        };
        if !supported {
            return Err(Error::Unsupported {
                file: None,
                offset: Some(5),
                what: format!(
                    "RDB version {version} ({}); keeper reads REDIS versions 1-{MAX_REDIS_VERSION} and VALKEY 80-81",
                    match family {
                        Family::Redis => "REDIS magic",
                        Family::Valkey => "VALKEY magic",
                    }
                ),
            });
        }
        Ok(Reader {
            src,
            version,
            family,
            db: 0,
            scratch: Vec::new(),
            expire_at_ms: None,
            lru_idle_secs: None,
            lfu_freq: None,
            checksum: None,
            empty_keys_skipped: 0,
            arena: Vec::new(),
            spans: Vec::new(),
            unique: UniqueKeys::default(),
            deferring: false,
            deferred: Vec::new(),
            trailer: None,
        })
    }

    /// The RDB version number from the header.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the file follows Redis's or Valkey's numbering.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.src.position()
    }

    /// The trailer's verdict, once the end was reached.
    pub fn checksum(&self) -> Option<Checksum> {
        self.checksum
    }

    /// Keys skipped because their collection was empty (Redis skips them on load too).
    pub fn empty_keys_skipped(&self) -> u64 {
        self.empty_keys_skipped
    }

    /// The source, e.g. to read what follows the RDB in an AOF preamble file.
    pub fn into_source(self) -> S {
        self.src
    }

    /// The next event, or `None` after the EOF opcode and a valid checksum.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        Ok(match self.advance(Self::decode_entry)? {
            None => None,
            Some(Step::Event(event)) => Some(event),
            Some(Step::Key(entry)) => Some(Event::Entry(entry)),
        })
    }

    /// Like [`Reader::next_event`], but keys are validated exactly as strictly without being
    /// decoded into owned values: what `keeper check-rdb` needs, at a fraction of the cost.
    pub fn check_next(&mut self) -> Result<Option<Checked>> {
        if let Some(key) = self.check_common_key() {
            return Ok(Some(Checked::Key(key)));
        }
        Ok(match self.advance(Self::check_entry)? {
            None => None,
            Some(Step::Event(event)) => Some(Checked::Event(Box::new(event))),
            Some(Step::Key(key)) => Some(Checked::Key(key)),
        })
    }

    /// The shape of most records in real files, recognised straight from the bytes at hand:
    /// `[EXPIRETIME_MS t] type key value` with a raw key under 16 KiB, and as value a raw or
    /// integer-encoded string, or (in deferred mode) an LZF string or a raw or LZF blob of a
    /// blob-encoded type, queued.
    /// `None` (nothing consumed) for anything else, which takes the general path and gets its
    /// full checks and errors there; what this accepts, the general path accepts identically.
    fn check_common_key(&mut self) -> Option<KeySummary> {
        if self.expire_at_ms.is_some() || self.lru_idle_secs.is_some() || self.lfu_freq.is_some() {
            return None;
        }
        let buf = self.src.peek();
        let mut i = 0;
        let mut expire_at_ms = None;
        if *buf.first()? == opcode::EXPIRETIME_MS {
            expire_at_ms = Some(i64::from_le_bytes(buf.get(1..9)?.try_into().ok()?));
            i = 9;
        }
        let code = *buf.get(i)?;
        let value_type = match code {
            rdb_type::STRING => ValueType::String,
            rdb_type::HASH_ZIPMAP
            | rdb_type::LIST_ZIPLIST
            | rdb_type::SET_INTSET
            | rdb_type::ZSET_ZIPLIST
            | rdb_type::HASH_ZIPLIST
            | rdb_type::ZSET_LISTPACK
            | rdb_type::HASH_LISTPACK
            | rdb_type::SET_LISTPACK
                if self.deferring =>
            {
                blob_value_type(code)
            }
            _ => return None,
        };
        i += 1;
        // A raw length in its 1- or 2-byte form: (length, bytes it took).
        let short_len = |at: usize| -> Option<(usize, usize)> {
            let first = *buf.get(at)?;
            match first >> 6 {
                0 => Some((usize::from(first), 1)),
                1 => Some((
                    (usize::from(first & 0x3f) << 8) | usize::from(*buf.get(at + 1)?),
                    2,
                )),
                _ => None,
            }
        };
        let (key_len, n) = short_len(i)?;
        i += n + key_len;
        let value_at = i;
        // `lzf_len`: the decompressed length when the value is LZF-compressed (`0xC3 clen
        // ulen data`, both lengths in their short forms), which only deferred mode queues.
        let (value_len, n, lzf_len) = match (code, *buf.get(i)?) {
            (rdb_type::STRING, 0xC0) => (1, 1, None),
            (rdb_type::STRING, 0xC1) => (2, 1, None),
            (rdb_type::STRING, 0xC2) => (4, 1, None),
            (_, 0xC3) if self.deferring => {
                let (clen, n1) = short_len(i + 1)?;
                let (ulen, n2) = short_len(i + 1 + n1)?;
                (clen, 1 + n1 + n2, Some(ulen))
            }
            _ => {
                let (len, n) = short_len(i)?;
                (len, n, None)
            }
        };
        i += n + value_len;
        if i > buf.len() {
            return None;
        }
        let start = self.src.position();
        self.src.advance(i);
        if code != rdb_type::STRING || lzf_len.is_some() {
            self.deferred.push(DeferredBlob {
                code: if code == rdb_type::STRING {
                    LZF_STRING
                } else {
                    code
                },
                db: self.db,
                has_expire: expire_at_ms.is_some(),
                at: start + value_at as u64,
                data_at: start + (value_at + n) as u64,
                len: value_len,
                lzf_len,
            });
        }
        Some(KeySummary {
            db: self.db,
            value_type,
            len: 1,
            expire_at_ms,
        })
    }

    fn decode_entry(&mut self, code: u8, at: u64) -> Result<Option<Entry>> {
        let key = self.string()?;
        let value = self.value(code, at)?;
        let (expire_at_ms, lru_idle_secs, lfu_freq) = self.take_prefixes();
        Ok(value.map(|value| Entry {
            db: self.db,
            key,
            value,
            expire_at_ms,
            lru_idle_secs,
            lfu_freq,
        }))
    }

    fn check_entry(&mut self, code: u8, at: u64) -> Result<Option<KeySummary>> {
        self.skip_string()?;
        let summary = self.skip_value(code, at)?;
        let (expire_at_ms, _, _) = self.take_prefixes();
        Ok(summary.map(|(value_type, len)| KeySummary {
            db: self.db,
            value_type,
            len,
            expire_at_ms,
        }))
    }

    fn take_prefixes(&mut self) -> (Option<i64>, Option<u64>, Option<u8>) {
        (
            self.expire_at_ms.take(),
            self.lru_idle_secs.take(),
            self.lfu_freq.take(),
        )
    }

    /// Reads up to the next event; a key is produced by `key` (`None`: an empty collection,
    /// skipped as Redis skips it).
    fn advance<K>(
        &mut self,
        key: impl Fn(&mut Self, u8, u64) -> Result<Option<K>>,
    ) -> Result<Option<Step<K>>> {
        if self.checksum.is_some() {
            return Ok(None);
        }
        loop {
            let at = self.src.position();
            let code = self.u8()?;
            match code {
                opcode::EXPIRETIME_MS => {
                    let raw = self.u64_le()?;
                    self.expire_at_ms = Some(raw as i64);
                }
                opcode::EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.array::<4>()?);
                    self.expire_at_ms = Some(i64::from(secs) * 1000);
                }
                opcode::IDLE => self.lru_idle_secs = Some(self.len()?),
                opcode::FREQ => self.lfu_freq = Some(self.u8()?),
                opcode::SELECTDB => {
                    let db = self.len()?;
                    self.db = u32::try_from(db).map_err(|_| {
                        Error::corrupt(at, format!("database index {db} out of range"))
                    })?;
                    return Ok(Some(Step::Event(Event::SelectDb(self.db))));
                }
                opcode::RESIZEDB => {
                    let db_size = self.len()?;
                    let expires_size = self.len()?;
                    return Ok(Some(Step::Event(Event::ResizeDb {
                        db_size,
                        expires_size,
                    })));
                }
                opcode::AUX => {
                    let key = self.string()?;
                    let value = self.string()?;
                    return Ok(Some(Step::Event(Event::Aux { key, value })));
                }
                opcode::MODULE_AUX => {
                    let module_id = self.len()?;
                    let when_opcode = self.len()?;
                    if when_opcode != 2 {
                        return Err(Error::corrupt(
                            at,
                            format!(
                                "module AUX of '{}': 'when' has opcode {when_opcode}, expected 2",
                                module_type_name(module_id)
                            ),
                        ));
                    }
                    let when = self.len()?;
                    let body = self.module_body()?;
                    return Ok(Some(Step::Event(Event::ModuleAux {
                        module_id,
                        when,
                        body,
                    })));
                }
                opcode::FUNCTION2 => return Ok(Some(Step::Event(Event::Function(self.string()?)))),
                opcode::FUNCTION_PRE_GA => {
                    return Err(Error::Unsupported {
                        file: None,
                        offset: Some(at),
                        what: "pre-release function format (Redis 7.0 release candidates)".into(),
                    });
                }
                opcode::SLOT_INFO if self.family == Family::Redis && self.version >= 12 => {
                    let slot = self.len()?;
                    let size = self.len()?;
                    let expires_size = self.len()?;
                    return Ok(Some(Step::Event(Event::SlotInfo {
                        slot,
                        size,
                        expires_size,
                    })));
                }
                opcode::EOF => {
                    self.finish()?;
                    return Ok(None);
                }
                code => match key(self, code, at)? {
                    Some(k) => return Ok(Some(Step::Key(k))),
                    None => self.empty_keys_skipped += 1,
                },
            }
        }
    }

    /// Reads the checksum trailer after the EOF opcode.
    fn finish(&mut self) -> Result<()> {
        if self.version < 5 && self.family == Family::Redis {
            self.checksum = Some(Checksum::NotInVersion);
            return Ok(());
        }
        let at = self.src.position();
        let actual = if self.deferring {
            None
        } else {
            Some(self.src.crc_so_far())
        };
        let expected = self.u64_le()?;
        self.trailer = Some((at, expected));
        self.checksum = Some(match actual {
            _ if expected == 0 => Checksum::NotStored,
            Some(actual) => checksum_verdict(at, expected, actual)?,
            // Deferred: the caller verifies with `trailer()`; report what the file claims.
            None => Checksum::Verified(expected),
        });
        Ok(())
    }

    /// Deferred mode, for a parallel check over an in-memory file: `check_next` locates blobs
    /// and LZF strings without validating them (see [`Reader::drain_deferred`]) and does not
    /// compute the checksum (see [`Reader::trailer`]); the caller validates both elsewhere.
    pub(crate) fn defer_blobs(&mut self) {
        self.deferring = true;
    }

    /// The blobs queued since the last call.
    pub(crate) fn drain_deferred(&mut self) -> Vec<DeferredBlob> {
        // The next batch is likely as large as this one: reserve as much up front rather than
        // growing (and copying) the queue again.
        let capacity = self.deferred.capacity();
        std::mem::replace(&mut self.deferred, Vec::with_capacity(capacity))
    }

    pub(crate) fn deferred_len(&self) -> usize {
        self.deferred.len()
    }

    /// `(offset, stored checksum)` of the trailer once the end was read; the checksum covers
    /// every byte before `offset`.
    pub(crate) fn trailer(&self) -> Option<(u64, u64)> {
        self.trailer
    }

    // ---- primitives -------------------------------------------------------------------------

    #[inline]
    fn u8(&mut self) -> Result<u8> {
        if let Some(&b) = self.src.peek().first() {
            self.src.advance(1);
            return Ok(b);
        }
        Ok(self.src.take(1)?[0])
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.src.take(N)?);
        Ok(out)
    }

    fn u64_le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }

    /// A length, or the special-encoding marker of a string (§1.4): `(value, is_encoding)`.
    #[inline]
    fn len_or_encoding(&mut self) -> Result<(u64, bool)> {
        let first = self.u8()?;
        // Most lengths and most string markers are one byte.
        if first < 0x40 {
            return Ok((u64::from(first), false));
        }
        if first >= 0xC0 {
            return Ok((u64::from(first & 0x3f), true));
        }
        self.long_len(first)
    }

    /// The 2-, 5- and 9-byte length forms, after their first byte.
    fn long_len(&mut self, first: u8) -> Result<(u64, bool)> {
        let at = self.src.position() - 1;
        Ok(match first >> 6 {
            0 => (u64::from(first & 0x3f), false),
            1 => {
                let second = self.u8()?;
                ((u64::from(first & 0x3f) << 8) | u64::from(second), false)
            }
            3 => (u64::from(first & 0x3f), true),
            _ => match first {
                0x80 => (u64::from(u32::from_be_bytes(self.array::<4>()?)), false),
                0x81 => (u64::from_be_bytes(self.array::<8>()?), false),
                _ => {
                    return Err(Error::corrupt(
                        at,
                        format!("unknown length encoding {first:#04x}"),
                    ));
                }
            },
        })
    }

    /// A plain length (§1.4).
    #[inline]
    fn len(&mut self) -> Result<u64> {
        let at = self.src.position();
        match self.len_or_encoding()? {
            (len, false) => Ok(len),
            (enc, true) => Err(Error::corrupt(
                at,
                format!("expected a length, found string encoding {enc}"),
            )),
        }
    }

    /// A count of items that each take at least `min_bytes` bytes: rejected at once when the
    /// bytes left cannot hold them. Returns a safe capacity hint.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<(u64, usize)> {
        let at = self.src.position();
        let n = self.len()?;
        self.check_fits(at, n, min_bytes, what)?;
        Ok((n, capacity_hint(n)))
    }

    fn check_fits(&self, at: u64, n: u64, min_bytes: u64, what: &str) -> Result<()> {
        if let Some(left) = self.src.remaining()
            && n.saturating_mul(min_bytes) > left
        {
            return Err(Error::corrupt(
                at,
                format!("{what} count {n} cannot fit in the {left} bytes left"),
            ));
        }
        Ok(())
    }

    /// A string (§1.5) as owned bytes.
    fn string(&mut self) -> Result<Bytes> {
        let at = self.src.position();
        let (len, encoded) = self.len_or_encoding()?;
        if !encoded {
            let len = self.byte_len(at, len)?;
            return Ok(Bytes::copy_from_slice(self.src.take(len)?));
        }
        match len {
            0 => Ok(Bytes::from((self.u8()? as i8).to_string())),
            1 => Ok(Bytes::from(
                i16::from_le_bytes(self.array::<2>()?).to_string(),
            )),
            2 => Ok(Bytes::from(
                i32::from_le_bytes(self.array::<4>()?).to_string(),
            )),
            3 => {
                let mut out = Vec::new();
                self.lzf_into(at, &mut out)?;
                Ok(Bytes::from(out))
            }
            enc => Err(Error::corrupt(at, format!("unknown string encoding {enc}"))),
        }
    }

    fn byte_len(&self, at: u64, len: u64) -> Result<usize> {
        self.check_fits(at, len, 1, "string byte")?;
        usize::try_from(len)
            .map_err(|_| Error::corrupt(at, format!("string length {len} too large")))
    }

    /// Decompresses an LZF string (after its 0xC3 marker) and appends it to `out`.
    fn lzf_into(&mut self, at: u64, out: &mut Vec<u8>) -> Result<()> {
        let (clen, ulen) = self.lzf_header(at)?;
        let data_at = self.src.position();
        let compressed = self.src.take(clen)?;
        lzf::decompress_into(compressed, ulen, out).map_err(|e| blob_error(data_at, "LZF data", e))
    }

    /// A deferred job for the key being read, whose stored bytes are `len` bytes at `data_at`.
    fn deferred_blob(
        &self,
        code: u8,
        at: u64,
        data_at: u64,
        len: usize,
        lzf_len: Option<usize>,
    ) -> DeferredBlob {
        DeferredBlob {
            code,
            db: self.db,
            has_expire: self.expire_at_ms.is_some(),
            at,
            data_at,
            len,
            lzf_len,
        }
    }

    /// The compressed and decompressed lengths of an LZF string (after its 0xC3 marker).
    fn lzf_header(&mut self, at: u64) -> Result<(usize, usize)> {
        let clen = self.len()?;
        let ulen = self.len()?;
        let clen = self.byte_len(at, clen)?;
        let ulen = usize::try_from(ulen)
            .map_err(|_| Error::corrupt(at, format!("LZF length {ulen} too large")))?;
        Ok((clen, ulen))
    }

    /// Locates the compressed bytes of an LZF string (after its 0xC3 marker) and skips them.
    fn lzf_location(&mut self, at: u64, code: u8) -> Result<DeferredBlob> {
        let (len, lzf_len) = self.lzf_header(at)?;
        let data_at = self.src.position();
        self.src.take(len)?;
        Ok(self.deferred_blob(code, at, data_at, len, Some(lzf_len)))
    }

    /// Locates a blob string and skips it, for deferred validation of a value of type `code`.
    fn blob_location(&mut self, code: u8) -> Result<DeferredBlob> {
        let at = self.src.position();
        match self.len_or_encoding()? {
            (len, false) => {
                let len = self.byte_len(at, len)?;
                let data_at = self.src.position();
                self.src.take(len)?;
                Ok(self.deferred_blob(code, at, data_at, len, None))
            }
            (3, true) => self.lzf_location(at, code),
            _ => Err(Error::corrupt(
                at,
                "expected an encoded blob, found an integer-encoded string",
            )),
        }
    }

    /// A string holding an encoded blob (listpack, ziplist, intset, zipmap), borrowed from the
    /// source or decompressed into the scratch buffer. Returns the blob and its file offset.
    fn blob(&mut self) -> Result<(&[u8], u64)> {
        let at = self.src.position();
        let (len, encoded) = self.len_or_encoding()?;
        if !encoded {
            let len = self.byte_len(at, len)?;
            let data_at = self.src.position();
            return Ok((self.src.take(len)?, data_at));
        }
        if len != 3 {
            return Err(Error::corrupt(
                at,
                "expected an encoded blob, found an integer-encoded string",
            ));
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let result = self.lzf_into(at, &mut scratch);
        self.scratch = scratch;
        result?;
        Ok((&self.scratch, at))
    }

    /// Appends a string's bytes to `out` (integers as decimal text, LZF decompressed).
    fn string_into(&mut self, out: &mut Vec<u8>) -> Result<()> {
        // Fast path: a raw string under 64 bytes that is all there.
        let rest = self.src.peek();
        if let Some(&first) = rest.first()
            && first < 0x40
            && let Some(bytes) = rest.get(1..1 + usize::from(first))
        {
            out.extend_from_slice(bytes);
            self.src.advance(1 + usize::from(first));
            return Ok(());
        }
        let at = self.src.position();
        let (len, encoded) = self.len_or_encoding()?;
        if !encoded {
            let len = self.byte_len(at, len)?;
            out.extend_from_slice(self.src.take(len)?);
            return Ok(());
        }
        let value = match len {
            0 => i64::from(self.u8()? as i8),
            1 => i64::from(i16::from_le_bytes(self.array::<2>()?)),
            2 => i64::from(i32::from_le_bytes(self.array::<4>()?)),
            3 => return self.lzf_into(at, out),
            enc => return Err(Error::corrupt(at, format!("unknown string encoding {enc}"))),
        };
        out.extend_from_slice(value.to_string().as_bytes());
        Ok(())
    }

    /// Validates a string without keeping it (LZF data is still decompressed, to check it).
    fn skip_string(&mut self) -> Result<()> {
        // Fast path: a raw string under 64 bytes that is all there.
        if let Some(&first) = self.src.peek().first()
            && first < 0x40
            && usize::from(first) < self.src.peek().len()
        {
            self.src.advance(1 + usize::from(first));
            return Ok(());
        }
        let at = self.src.position();
        let (len, encoded) = self.len_or_encoding()?;
        match (len, encoded) {
            (len, false) => {
                let len = self.byte_len(at, len)?;
                self.src.take(len)?;
            }
            (0, true) => drop(self.u8()?),
            (1, true) => drop(self.array::<2>()?),
            (2, true) => drop(self.array::<4>()?),
            (3, true) if self.deferring => {
                let job = self.lzf_location(at, LZF_STRING)?;
                self.deferred.push(job);
            }
            (3, true) => {
                // The content is not needed: proving it decodes is enough.
                let (clen, ulen) = self.lzf_header(at)?;
                let data_at = self.src.position();
                lzf::validate(self.src.take(clen)?, ulen)
                    .map_err(|e| blob_error(data_at, "LZF data", e))?;
            }
            (enc, true) => {
                return Err(Error::corrupt(at, format!("unknown string encoding {enc}")));
            }
        }
        Ok(())
    }

    /// `n` strings of a plain collection, checked for duplicates; after each, `rest` reads what
    /// follows the member (a score, a hash value). Members are gathered in a reused arena.
    fn skip_unique_strings(
        &mut self,
        n: u64,
        at: u64,
        what: &str,
        rest: impl Fn(&mut Self) -> Result<()>,
    ) -> Result<()> {
        let mut arena = std::mem::take(&mut self.arena);
        let mut spans = std::mem::take(&mut self.spans);
        arena.clear();
        spans.clear();
        for _ in 0..n {
            let start = arena.len();
            self.string_into(&mut arena)?;
            spans.push((start, arena.len()));
            rest(self)?;
        }
        let result = ensure_unique(&spans, |&(s, e)| &arena[s..e], at, what);
        self.arena = arena;
        self.spans = spans;
        result
    }

    /// Validates a value as strictly as [`Reader::value`] does, without building it. Returns
    /// its type name and length, `None` for an empty collection.
    fn skip_value(&mut self, code: u8, at: u64) -> Result<Option<(ValueType, u64)>> {
        use rdb_type::*;
        let (name, len) = match code {
            STRING => {
                self.skip_string()?;
                (ValueType::String, 1)
            }
            LIST => {
                let (n, _) = self.count("list element", 1)?;
                for _ in 0..n {
                    self.skip_string()?;
                }
                (ValueType::List, n)
            }
            SET => {
                let (n, _) = self.count("set member", 1)?;
                self.skip_unique_strings(n, at, "set member", |_| Ok(()))?;
                (ValueType::Set, n)
            }
            ZSET | ZSET_2 => {
                let (n, _) = self.count("sorted set member", 2)?;
                self.skip_unique_strings(n, at, "sorted set member", |r| {
                    r.zset_score(code).map(drop)
                })?;
                (ValueType::SortedSet, n)
            }
            HASH => {
                let (n, _) = self.count("hash field", 2)?;
                self.skip_unique_strings(n, at, "hash field", Self::skip_string)?;
                (ValueType::Hash, n)
            }
            HASH_ZIPMAP | LIST_ZIPLIST | SET_INTSET | ZSET_ZIPLIST | ZSET_LISTPACK
            | HASH_ZIPLIST | HASH_LISTPACK | SET_LISTPACK => {
                let len = if self.deferring {
                    let job = self.blob_location(code)?;
                    self.deferred.push(job);
                    1 // not known yet; the validator reports empty blobs
                } else {
                    let mut unique = std::mem::take(&mut self.unique);
                    let result = self.blob().and_then(|(blob, blob_at)| {
                        validate_blob(code, blob, blob_at, &mut unique)
                    });
                    self.unique = unique;
                    result?
                };
                (blob_value_type(code), len)
            }
            LIST_QUICKLIST | LIST_QUICKLIST_2 => (ValueType::List, self.skip_quicklist(code)?),
            // Streams, modules and hashes with field TTLs are rare: decode them in full.
            // (An empty stream is a real value: it keeps its groups and last ID.)
            _ => {
                return Ok(self
                    .value(code, at)?
                    .map(|value| (value.value_type(), value.len() as u64)));
            }
        };
        Ok((len > 0).then_some((name, len)))
    }

    fn skip_quicklist(&mut self, code: u8) -> Result<u64> {
        let mut n = 0;
        self.for_each_quicklist_elem(code, |_| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Calls `f` with every element of a quicklist (§1.9), node by node: type 14 nodes are
    /// ziplists; type 18 tags each node PLAIN (one raw element) or PACKED (a listpack).
    fn for_each_quicklist_elem(
        &mut self,
        code: u8,
        mut f: impl FnMut(Elem<'_>) -> Result<()>,
    ) -> Result<()> {
        let (nodes, _) = self.count("quicklist node", 2)?;
        for _ in 0..nodes {
            let container = self.quicklist_container(code)?;
            let (blob, blob_at) = self.blob()?;
            if blob.is_empty() {
                return Err(Error::corrupt(blob_at, "empty quicklist node"));
            }
            match container {
                Container::Plain => f(Elem::Str(blob))?,
                Container::Packed => {
                    for elem in
                        listpack::iter(blob).map_err(|e| blob_error(blob_at, "listpack", e))?
                    {
                        f(elem.map_err(|e| blob_error(blob_at, "listpack", e))?)?;
                    }
                }
                Container::Ziplist => for_each_ziplist(blob, blob_at, &mut f)?,
            }
        }
        Ok(())
    }

    /// A quicklist node's container: tagged in type 18, always a ziplist in type 14.
    fn quicklist_container(&mut self, code: u8) -> Result<Container> {
        if code != rdb_type::LIST_QUICKLIST_2 {
            return Ok(Container::Ziplist);
        }
        let at = self.src.position();
        match self.len()? {
            1 => Ok(Container::Plain),
            2 => Ok(Container::Packed),
            other => Err(Error::corrupt(
                at,
                format!("quicklist node container {other} is neither 1 (plain) nor 2 (packed)"),
            )),
        }
    }

    // ---- values -----------------------------------------------------------------------------

    /// Decodes a value of type `code`. `None` for an empty collection, which Redis skips.
    fn value(&mut self, code: u8, at: u64) -> Result<Option<Value>> {
        use rdb_type::*;
        let valkey = self.family == Family::Valkey;
        let value = match code {
            STRING => Value::String(self.string()?),
            LIST => {
                let (n, cap) = self.count("list element", 1)?;
                let mut items = Vec::with_capacity(cap);
                for _ in 0..n {
                    items.push(self.string()?);
                }
                Value::List(items)
            }
            SET => {
                let (n, cap) = self.count("set member", 1)?;
                let mut items = Vec::with_capacity(cap);
                for _ in 0..n {
                    items.push(self.string()?);
                }
                ensure_unique(&items, |m| &m[..], at, "set member")?;
                Value::Set(items)
            }
            ZSET | ZSET_2 => {
                let (n, cap) = self.count("sorted set member", 2)?;
                let mut items = Vec::with_capacity(cap);
                for _ in 0..n {
                    let member = self.string()?;
                    let score = self.zset_score(code)?;
                    items.push((member, score));
                }
                ensure_unique(&items, |m| &m.0[..], at, "sorted set member")?;
                Value::SortedSet(items)
            }
            HASH => {
                let (n, cap) = self.count("hash field", 2)?;
                let mut fields = Vec::with_capacity(cap);
                for _ in 0..n {
                    let field = self.string()?;
                    let value = self.string()?;
                    fields.push(HashField::new(field, value));
                }
                Value::Hash(fields)
            }
            MODULE_PRE_GA => {
                let id = self.len()?;
                return Err(Error::Unsupported {
                    file: None,
                    offset: Some(at),
                    what: format!(
                        "module type '{}' in the pre-release module format (RDB type 6)",
                        module_type_name(id)
                    ),
                });
            }
            MODULE_2 => {
                let id = self.len()?;
                let body = self.module_body()?;
                return Ok(Some(Value::Module(Box::new(ModuleValue { id, body }))));
            }
            HASH_ZIPMAP => {
                let (blob, blob_at) = self.blob()?;
                let mut fields = Vec::new();
                for pair in zipmap::iter(blob).map_err(|e| blob_error(blob_at, "zipmap", e))? {
                    let (field, value) = pair.map_err(|e| blob_error(blob_at, "zipmap", e))?;
                    fields.push(HashField::new(
                        Bytes::copy_from_slice(field),
                        Bytes::copy_from_slice(value),
                    ));
                }
                Value::Hash(fields)
            }
            LIST_ZIPLIST => {
                let mut items = Vec::new();
                let (blob, blob_at) = self.blob()?;
                for_each_ziplist(blob, blob_at, |e| {
                    items.push(e.to_bytes());
                    Ok(())
                })?;
                Value::List(items)
            }
            SET_INTSET => {
                let (blob, blob_at) = self.blob()?;
                let members = intset::iter(blob).map_err(|e| blob_error(blob_at, "intset", e))?;
                Value::Set(members.map(|v| Bytes::from(v.to_string())).collect())
            }
            ZSET_ZIPLIST | ZSET_LISTPACK => {
                let (blob, blob_at) = self.blob()?;
                let elems = collect_elems(blob, blob_at, code == ZSET_LISTPACK)?;
                Value::SortedSet(zset_pairs(&elems, blob_at)?)
            }
            HASH_ZIPLIST | HASH_LISTPACK => {
                let (blob, blob_at) = self.blob()?;
                let elems = collect_elems(blob, blob_at, code == HASH_LISTPACK)?;
                Value::Hash(hash_pairs(&elems, blob_at)?)
            }
            LIST_QUICKLIST | LIST_QUICKLIST_2 => Value::List(self.quicklist(code)?),
            SET_LISTPACK => {
                let (blob, blob_at) = self.blob()?;
                let members: Vec<Bytes> = collect_elems(blob, blob_at, true)?
                    .into_iter()
                    .map(Elem::to_bytes)
                    .collect();
                ensure_unique(&members, |m| &m[..], blob_at, "set member")?;
                Value::Set(members)
            }
            STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => {
                Value::Stream(Box::new(self.stream(code)?))
            }
            VALKEY_HASH_2 if valkey => {
                let (n, cap) = self.count("hash field", 10)?;
                let mut fields = Vec::with_capacity(cap);
                for _ in 0..n {
                    let field = self.string()?;
                    let value = self.string()?;
                    let raw = self.u64_le()? as i64;
                    fields.push(HashField {
                        field,
                        value,
                        expire_at_ms: (raw != -1).then_some(raw),
                    });
                }
                Value::Hash(fields)
            }
            HASH_METADATA_PRE_GA | HASH_METADATA if !valkey => {
                let min_expire = if code == HASH_METADATA {
                    self.u64_le()? as i64
                } else {
                    0
                };
                let (n, cap) = self.count("hash field", 3)?;
                let mut fields = Vec::with_capacity(cap);
                for _ in 0..n {
                    let ttl = self.len()?;
                    let field = self.string()?;
                    let value = self.string()?;
                    let expire_at_ms = match (ttl, code) {
                        (0, _) => None,
                        (t, HASH_METADATA) => Some(min_expire.wrapping_add(t as i64 - 1)),
                        (t, _) => Some(t as i64),
                    };
                    fields.push(HashField {
                        field,
                        value,
                        expire_at_ms,
                    });
                }
                Value::Hash(fields)
            }
            HASH_LISTPACK_EX_PRE_GA | HASH_LISTPACK_EX if !valkey => {
                if code == HASH_LISTPACK_EX {
                    self.u64_le()?; // minExpire: derived from the triples, not needed to load
                }
                let (blob, blob_at) = self.blob()?;
                let elems = collect_elems(blob, blob_at, true)?;
                if elems.len() % 3 != 0 {
                    return Err(Error::corrupt(
                        blob_at,
                        format!(
                            "hash listpack with TTLs has {} elements, not triples",
                            elems.len()
                        ),
                    ));
                }
                let mut fields = Vec::with_capacity(elems.len() / 3);
                for triple in elems.chunks_exact(3) {
                    let expire = triple[2].as_int().ok_or_else(|| {
                        Error::corrupt(blob_at, "hash field TTL is not an integer")
                    })?;
                    fields.push(HashField {
                        field: triple[0].to_bytes(),
                        value: triple[1].to_bytes(),
                        expire_at_ms: (expire != 0).then_some(expire),
                    });
                }
                Value::Hash(fields)
            }
            other => {
                return Err(Error::corrupt(
                    at,
                    format!(
                        "unknown value type or opcode {other} in RDB version {} ({:?} numbering)",
                        self.version, self.family
                    ),
                ));
            }
        };
        if let Value::Hash(fields) = &value {
            ensure_unique(fields, |f| &f.field[..], at, "hash field")?;
        }
        Ok((!value.is_empty()).then_some(value))
    }

    /// A score of a plain sorted set: binary (ZSET_2) or legacy text (ZSET), never NaN.
    fn zset_score(&mut self, code: u8) -> Result<f64> {
        let at = self.src.position();
        let score = if code == rdb_type::ZSET_2 {
            f64::from_le_bytes(self.array::<8>()?)
        } else {
            self.legacy_double()?
        };
        if score.is_nan() {
            return Err(Error::corrupt(at, "sorted set score is NaN"));
        }
        Ok(score)
    }

    /// A legacy text double (§1.6): a length byte, with 253/254/255 for NaN/+inf/−inf.
    fn legacy_double(&mut self) -> Result<f64> {
        let at = self.src.position();
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            len => {
                let text = self.src.take(usize::from(len))?;
                parse_double(text).ok_or_else(|| {
                    Error::corrupt(
                        at,
                        format!("invalid double {:?}", String::from_utf8_lossy(text)),
                    )
                })
            }
        }
    }

    /// A quicklist's elements, as owned bytes.
    fn quicklist(&mut self, code: u8) -> Result<Vec<Bytes>> {
        let mut items = Vec::new();
        self.for_each_quicklist_elem(code, |e| {
            items.push(e.to_bytes());
            Ok(())
        })?;
        Ok(items)
    }

    /// A module value's opcode-tagged items (§1.12), re-encoded canonically so the value can
    /// be written back without the module.
    fn module_body(&mut self) -> Result<Bytes> {
        let mut body = Vec::new();
        loop {
            let at = self.src.position();
            let op = self.len()?;
            write_len(&mut body, op);
            match op {
                0 => return Ok(Bytes::from(body)),
                1 | 2 => {
                    let v = self.len()?;
                    write_len(&mut body, v);
                }
                3 => body.extend_from_slice(self.src.take(4)?),
                4 => body.extend_from_slice(self.src.take(8)?),
                5 => {
                    let s = self.string()?;
                    write_raw_string(&mut body, &s);
                }
                other => {
                    return Err(Error::corrupt(
                        at,
                        format!("unknown module data opcode {other}"),
                    ));
                }
            }
        }
    }

    fn stream_id(&mut self) -> Result<StreamId> {
        Ok(StreamId::new(self.len()?, self.len()?))
    }

    /// A stream (§1.11), versions 1 (type 15), 2 (19) and 3 (21).
    fn stream(&mut self, code: u8) -> Result<Stream> {
        let (nodes, _) = self.count("stream node", 18)?;
        let mut entries: Vec<StreamEntry> = Vec::new();
        for _ in 0..nodes {
            let (key, key_at) = self.blob()?;
            let master: [u8; 16] = key.try_into().map_err(|_| {
                Error::corrupt(
                    key_at,
                    format!("stream node key has {} bytes, not 16", key.len()),
                )
            })?;
            let master = StreamId::from_be_bytes(master);
            let (lp, lp_at) = self.blob()?;
            parse_stream_node(lp, master, &mut entries)
                .map_err(|e| blob_error(lp_at, "stream node", e))?;
        }
        let at = self.src.position();
        let length = self.len()?;
        let last_id = self.stream_id()?;
        if length != entries.len() as u64 {
            return Err(Error::corrupt(
                at,
                format!(
                    "stream length is {length} but its nodes hold {} live entries",
                    entries.len()
                ),
            ));
        }
        let mut stream = Stream {
            last_id,
            ..Stream::default()
        };
        if code >= rdb_type::STREAM_LISTPACKS_2 {
            stream.first_id = self.stream_id()?;
            stream.max_deleted_id = self.stream_id()?;
            stream.entries_added = self.len()?;
        } else {
            stream.first_id = entries.first().map(|e| e.id).unwrap_or_default();
            stream.entries_added = length;
        }
        stream.entries = entries;

        let (groups, cap) = self.count("consumer group", 4)?;
        stream.groups.reserve(cap);
        for _ in 0..groups {
            let name = self.string()?;
            let last_id = self.stream_id()?;
            let entries_read = if code >= rdb_type::STREAM_LISTPACKS_2 {
                // −1 ("unknown") is stored as the 64-bit length 0xFFFF_FFFF_FFFF_FFFF.
                Some(self.len()?).filter(|&v| v != u64::MAX)
            } else {
                estimate_entries_read(&stream, last_id)
            };
            let (pel_size, cap) = self.count("pending entry", 25)?;
            let mut pending = Vec::with_capacity(cap);
            for _ in 0..pel_size {
                let id = StreamId::from_be_bytes(self.array::<16>()?);
                let delivery_time_ms = self.u64_le()? as i64;
                let delivery_count = self.len()?;
                pending.push(PendingEntry {
                    id,
                    delivery_time_ms,
                    delivery_count,
                });
            }
            let pel_ids: HashSet<StreamId> = pending.iter().map(|p| p.id).collect();
            let (consumer_count, cap) = self.count("consumer", 10)?;
            let mut consumers = Vec::with_capacity(cap);
            let mut owned: HashSet<StreamId> = HashSet::new();
            for _ in 0..consumer_count {
                let name = self.string()?;
                let seen_time_ms = self.u64_le()? as i64;
                let active_time_ms = if code >= rdb_type::STREAM_LISTPACKS_3 {
                    self.u64_le()? as i64
                } else {
                    seen_time_ms
                };
                let (n, cap) = self.count("consumer pending entry", 16)?;
                let mut ids = Vec::with_capacity(cap);
                for _ in 0..n {
                    let at = self.src.position();
                    let id = StreamId::from_be_bytes(self.array::<16>()?);
                    if !pel_ids.contains(&id) {
                        return Err(Error::corrupt(
                            at,
                            format!("consumer pending entry {id} is not in the group's PEL"),
                        ));
                    }
                    if !owned.insert(id) {
                        return Err(Error::corrupt(
                            at,
                            format!("pending entry {id} owned by two consumers"),
                        ));
                    }
                    ids.push(id);
                }
                consumers.push(Consumer {
                    name,
                    seen_time_ms,
                    active_time_ms,
                    pending: ids,
                });
            }
            stream.groups.push(ConsumerGroup {
                name,
                last_id,
                entries_read,
                pending,
                consumers,
            });
        }
        Ok(stream)
    }
}

enum Container {
    Plain,
    Packed,
    Ziplist,
}

/// Capacity to reserve for `n` items: the count itself is untrusted, so reserve at most a
/// modest amount and let the vector grow with the items actually decoded.
fn capacity_hint(n: u64) -> usize {
    n.min(4096) as usize
}

fn blob_error(blob_at: u64, what: &str, e: BlobError) -> Error {
    Error::corrupt(blob_at + e.offset as u64, format!("{what}: {}", e.reason))
}

fn for_each_ziplist(
    blob: &[u8],
    blob_at: u64,
    mut f: impl FnMut(Elem<'_>) -> Result<()>,
) -> Result<()> {
    for elem in ziplist::iter(blob).map_err(|e| blob_error(blob_at, "ziplist", e))? {
        f(elem.map_err(|e| blob_error(blob_at, "ziplist", e))?)?;
    }
    Ok(())
}

/// All elements of a listpack (`is_listpack`) or ziplist blob.
fn collect_elems(blob: &[u8], blob_at: u64, is_listpack: bool) -> Result<Vec<Elem<'_>>> {
    if is_listpack {
        listpack::iter(blob)
            .map_err(|e| blob_error(blob_at, "listpack", e))?
            .map(|r| r.map_err(|e| blob_error(blob_at, "listpack", e)))
            .collect()
    } else {
        ziplist::iter(blob)
            .map_err(|e| blob_error(blob_at, "ziplist", e))?
            .map(|r| r.map_err(|e| blob_error(blob_at, "ziplist", e)))
            .collect()
    }
}

fn zset_pairs(elems: &[Elem<'_>], blob_at: u64) -> Result<Vec<(Bytes, f64)>> {
    if !elems.len().is_multiple_of(2) {
        return Err(Error::corrupt(
            blob_at,
            "sorted set blob has an odd number of elements",
        ));
    }
    let mut items = Vec::with_capacity(elems.len() / 2);
    for pair in elems.chunks_exact(2) {
        items.push((pair[0].to_bytes(), blob_score(pair[1], blob_at)?));
    }
    ensure_unique(&items, |m| &m.0[..], blob_at, "sorted set member")?;
    Ok(items)
}

/// The type a blob-encoded value of type `code` decodes to.
pub(crate) fn blob_value_type(code: u8) -> ValueType {
    use rdb_type::*;
    match code {
        LIST_ZIPLIST => ValueType::List,
        SET_INTSET | SET_LISTPACK => ValueType::Set,
        ZSET_ZIPLIST | ZSET_LISTPACK => ValueType::SortedSet,
        _ => ValueType::Hash,
    }
}

/// Validates a blob-encoded value of type `code` as strictly as decoding it would, without
/// building it; returns its element count (0: an empty collection, which Redis skips).
fn validate_blob(code: u8, blob: &[u8], blob_at: u64, scratch: &mut UniqueKeys) -> Result<u64> {
    use rdb_type::*;
    Ok(match code {
        HASH_ZIPMAP => {
            scratch.keys.clear();
            for pair in zipmap::iter(blob).map_err(|e| blob_error(blob_at, "zipmap", e))? {
                let field = Elem::Str(pair.map_err(|e| blob_error(blob_at, "zipmap", e))?.0);
                let hash = scratch.hasher.hash_one(field);
                scratch.keys.push((hash, KeyRef::of(blob, field)));
            }
            if scratch.has_duplicate(blob) {
                return Err(Error::corrupt(blob_at, "duplicate hash field"));
            }
            scratch.keys.len() as u64
        }
        LIST_ZIPLIST => {
            let mut n = 0;
            for_each_ziplist(blob, blob_at, |_| {
                n += 1;
                Ok(())
            })?;
            n
        }
        SET_INTSET => {
            let members = intset::iter(blob).map_err(|e| blob_error(blob_at, "intset", e))?;
            members.len() as u64
        }
        ZSET_ZIPLIST | HASH_ZIPLIST => {
            let elems = ziplist::iter(blob).map_err(|e| blob_error(blob_at, "ziplist", e))?;
            validate_elems(elems, blob, Shape::of(code), blob_at, "ziplist", scratch)?
        }
        ZSET_LISTPACK | HASH_LISTPACK | SET_LISTPACK => {
            let elems = listpack::iter(blob).map_err(|e| blob_error(blob_at, "listpack", e))?;
            validate_elems(elems, blob, Shape::of(code), blob_at, "listpack", scratch)?
        }
        _ => unreachable_blob_code(code, blob_at)?,
    })
}

/// How the elements of a listpack or ziplist collection are laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Members.
    Set,
    /// Field, value pairs.
    Hash,
    /// Member, score pairs.
    SortedSet,
}

impl Shape {
    fn of(code: u8) -> Shape {
        match blob_value_type(code) {
            ValueType::Set => Shape::Set,
            ValueType::SortedSet => Shape::SortedSet,
            _ => Shape::Hash,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Shape::Set => "set member",
            Shape::Hash => "hash field",
            Shape::SortedSet => "sorted set member",
        }
    }
}

/// The element as decoding sees it for equality: decoding turns every element into bytes, so
/// the integer entry 5 and the string entry "5" are the same member. A string that is a
/// canonical integer is compared as that integer (strings that are not cannot equal one).
#[inline]
fn same_as_decoded(elem: Elem<'_>) -> Elem<'_> {
    match elem {
        Elem::Str(text) if text.len() <= 20 && matches!(text.first(), Some(b'-' | b'0'..=b'9')) => {
            super::encoding::parse_canonical_i64(text).map_or(elem, Elem::Int)
        }
        _ => elem,
    }
}

/// Validates a collection's elements in one pass: pairs complete, scores valid, members or
/// fields unique. Returns the number of members or fields.
fn validate_elems<'a>(
    mut elems: impl Iterator<Item = std::result::Result<Elem<'a>, BlobError>>,
    blob: &'a [u8],
    shape: Shape,
    blob_at: u64,
    encoding: &str,
    scratch: &mut UniqueKeys,
) -> Result<u64> {
    scratch.keys.clear();
    // Inlined: this is the per-element path of every listpack and ziplist collection.
    #[inline(always)]
    fn next<'a>(
        elems: &mut impl Iterator<Item = std::result::Result<Elem<'a>, BlobError>>,
        blob_at: u64,
        encoding: &str,
    ) -> Option<Result<Elem<'a>>> {
        Some(elems.next()?.map_err(|e| blob_error(blob_at, encoding, e)))
    }
    // One member or field, then (but for sets) its value or score, in file order.
    while let Some(key) = next(&mut elems, blob_at, encoding) {
        let key = same_as_decoded(key?);
        let hash = scratch.hasher.hash_one(key);
        scratch.keys.push((hash, KeyRef::of(blob, key)));
        if shape == Shape::Set {
            continue;
        }
        let Some(value) = next(&mut elems, blob_at, encoding) else {
            return Err(Error::corrupt(
                blob_at,
                format!(
                    "{encoding} of {} pairs has an odd number of elements ({})",
                    shape.what(),
                    2 * scratch.keys.len() - 1
                ),
            ));
        };
        if let (Shape::SortedSet, Elem::Str(text)) = (shape, value?)
            && !score_text_ok(text)
        {
            return Err(Error::corrupt(
                blob_at,
                "sorted set score is not a number (or is NaN)",
            ));
        }
    }
    if scratch.has_duplicate(blob) {
        return Err(Error::corrupt(
            blob_at,
            format!("duplicate {}", shape.what()),
        ));
    }
    Ok(scratch.keys.len() as u64)
}

#[cfg(test)]
mod unique_tests {
    use super::*;
    use crate::rdb::encoding::listpack::ListpackWriter;
    use proptest::prelude::*;

    /// The check path's verdict on a listpack set, hash or sorted set of `members`.
    fn check_verdict(code: u8, members: &[Vec<u8>], unique: &mut UniqueKeys) -> Result<u64> {
        let mut w = ListpackWriter::new();
        for m in members {
            w.push(m);
            if code != rdb_type::SET_LISTPACK {
                w.push(b"1.5");
            }
        }
        validate_blob(code, &w.finish(), 0, unique)
    }

    proptest! {
        /// Duplicates are found exactly when there are some, whatever the collection's size,
        /// with one `UniqueKeys` reused across checks as the validating threads do.
        #[test]
        fn duplicates_found_exactly(
            members in prop::collection::vec(
                prop_oneof![
                    (0u32..40).prop_map(|v| v.to_string().into_bytes()),
                    (0u32..40).prop_map(|v| format!("m{v}").into_bytes()),
                ],
                0..120,
            ),
        ) {
            let mut unique = UniqueKeys::default();
            let distinct = members.iter().collect::<HashSet<_>>().len();
            for code in [rdb_type::SET_LISTPACK, rdb_type::HASH_LISTPACK, rdb_type::ZSET_LISTPACK] {
                let verdict = check_verdict(code, &members, &mut unique);
                if distinct == members.len() {
                    prop_assert_eq!(verdict.ok(), Some(members.len() as u64));
                } else {
                    prop_assert!(verdict.is_err());
                }
            }
        }
    }

    /// The integer entry 5 and the string entry "5" are one member once decoded: the check
    /// path must refuse the pair exactly as decoding does ("05" stays a different member).
    #[test]
    fn integer_and_string_spellings_of_a_member_are_duplicates() {
        for (second, duplicate) in [(&b"5"[..], true), (b"05", false), (b"-5", false)] {
            let mut w = ListpackWriter::new();
            w.push_int(5);
            w.push_str(second);
            let blob = w.finish();
            let checked =
                validate_blob(rdb_type::SET_LISTPACK, &blob, 0, &mut UniqueKeys::default());
            let mut file = b"REDIS0011\xfe\x00\x14\x01s".to_vec();
            super::super::writer::write_raw_string(&mut file, &blob);
            file.push(0xff);
            file.extend_from_slice(&0u64.to_le_bytes());
            let mut reader = Reader::from_slice(&file[..]).unwrap();
            let decoded =
                std::iter::from_fn(|| reader.next_event().transpose()).collect::<Result<Vec<_>>>();
            assert_eq!(
                checked.is_err(),
                duplicate,
                "check path, second member {second:?}"
            );
            assert_eq!(
                decoded.is_err(),
                duplicate,
                "decoding, second member {second:?}"
            );
        }
    }

    #[test]
    fn equal_hashes_of_different_keys_are_not_duplicates() {
        // The exact comparison behind equal hashes: forced here with hashes that collide.
        let mut unique = UniqueKeys::default();
        let blob = b"abcd";
        unique.keys = vec![
            (7, KeyRef::Span(0, 2)),
            (7, KeyRef::Span(2, 2)),
            (7, KeyRef::Int(1)),
        ];
        assert!(!unique.has_duplicate(blob));
        unique.keys.push((7, KeyRef::Span(0, 2)));
        assert!(unique.has_duplicate(blob));
    }
}

#[cfg(test)]
mod score_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The validate-only score check accepts exactly the scores decoding accepts.
        #[test]
        fn score_text_ok_matches_parse_double(text in "[-+0-9.eEinfatyINFATY ]{0,12}") {
            let parsed = parse_double(text.as_bytes()).is_some_and(|v| !v.is_nan());
            prop_assert_eq!(score_text_ok(text.as_bytes()), parsed, "{:?}", text);
        }
    }

    #[test]
    fn score_examples() {
        for ok in [
            "1",
            "-1.5",
            "0.10000000000000001",
            "1e300",
            "1E+5",
            ".5",
            "5.",
            "inf",
            "-Infinity",
            "+inf",
        ] {
            assert!(score_text_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", ".", "e5", "1e", "nan", "-nan", "1.2.3", " 1", "0x10", "in", "infinit",
        ] {
            assert!(!score_text_ok(bad.as_bytes()), "{bad}");
        }
    }
}

/// True when `text` is a score [`parse_double`] accepts and is not NaN, without computing the
/// value: `[+-]` then `inf`/`infinity` (any case), or digits with an optional fraction and
/// exponent (Rust's float grammar, which `parse_double` applies).
fn score_text_ok(text: &[u8]) -> bool {
    let body = match text.first() {
        Some(b'+' | b'-') => &text[1..],
        _ => text,
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return true;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < body.len() && body[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut i = 0;
    let mut mantissa = digits(&mut i);
    if i < body.len() && body[i] == b'.' {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if i < body.len() && (body[i] | 0x20) == b'e' {
        i += 1;
        if i < body.len() && matches!(body[i], b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == body.len()
}

/// Reusable buffers for validating blobs without allocating per blob.
#[derive(Default)]
pub(crate) struct BlobScratch {
    /// Decompressed bytes of an LZF-compressed blob.
    bytes: Vec<u8>,
    keys: UniqueKeys,
}

/// The `(hash, key)` list of a duplicate check and its hash table, reused from blob to blob.
#[derive(Default)]
pub(crate) struct UniqueKeys {
    keys: Vec<(u64, KeyRef)>,
    /// Open addressing with linear probing: the hashes of `keys`, tagged.
    slots: Vec<u64>,
    /// Seeded per process: crafted collisions cannot force the slow path.
    hasher: foldhash::fast::RandomState,
}

const FREE_SLOT: u64 = 0;

/// A member or field of a blob, by value (integers) or by position in the blob (strings), so
/// the list of keys outlives each blob and its buffer is reused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyRef {
    Int(i64),
    Span(usize, usize),
}

impl KeyRef {
    fn of(blob: &[u8], elem: Elem<'_>) -> KeyRef {
        match elem {
            Elem::Int(v) => KeyRef::Int(v),
            // `s` lies inside `blob`: its start is its distance from the blob's start.
            Elem::Str(s) => KeyRef::Span(s.as_ptr() as usize - blob.as_ptr() as usize, s.len()),
        }
    }

    fn elem(self, blob: &[u8]) -> Elem<'_> {
        match self {
            KeyRef::Int(v) => Elem::Int(v),
            KeyRef::Span(start, len) => Elem::Str(&blob[start..start + len]),
        }
    }
}

impl UniqueKeys {
    /// True when some key appears twice. The hashes go into a table at least twice as large
    /// as the key count, indexed by their top bits; only when two hashes are equal (a
    /// duplicate, or with a per-process seed a rare collision) are keys compared for real.
    fn has_duplicate(&mut self, blob: &[u8]) -> bool {
        if self.keys.len() < 2 {
            return false;
        }
        let bits = (2 * self.keys.len()).next_power_of_two().trailing_zeros();
        let mask = (1usize << bits) - 1;
        let slots = &mut self.slots;
        slots.clear();
        slots.resize(mask + 1, FREE_SLOT);
        for &(hash, _) in &self.keys {
            // Bit 0 set: never FREE_SLOT. The slot comes from the top bits, unaffected.
            let tagged = hash | 1;
            let mut slot = (hash >> (64 - bits)) as usize;
            loop {
                match slots[slot] {
                    FREE_SLOT => {
                        slots[slot] = tagged;
                        break;
                    }
                    other if other == tagged => return self.has_duplicate_exact(blob),
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        false
    }

    /// The exact answer when two hashes may be equal: keys sorted by hash, keys with equal
    /// hashes compared.
    #[cold]
    fn has_duplicate_exact(&mut self, blob: &[u8]) -> bool {
        let keys = &mut self.keys;
        keys.sort_unstable_by_key(|k| k.0);
        let mut i = 0;
        while i < keys.len() {
            let mut j = i + 1;
            while j < keys.len() && keys[j].0 == keys[i].0 {
                j += 1;
            }
            // keys[i..j] share a hash; compare them for real (a group is almost always 1).
            for a in i..j {
                for b in a + 1..j {
                    if keys[a].1.elem(blob) == keys[b].1.elem(blob) {
                        return true;
                    }
                }
            }
            i = j;
        }
        false
    }
}

const PAIRWISE_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x6b65_6570);

fn unreachable_blob_code(code: u8, at: u64) -> Result<u64> {
    Err(Error::corrupt(
        at,
        format!("type {code} is not a blob encoding"),
    ))
}

/// Validates a deferred blob or LZF string of `data` (the whole source); returns its element
/// count. `scratch` holds decompressed bytes between calls.
pub(crate) fn validate_deferred(
    data: &[u8],
    job: &DeferredBlob,
    scratch: &mut BlobScratch,
) -> Result<u64> {
    let BlobScratch { bytes, keys } = scratch;
    let start = usize::try_from(job.data_at).unwrap_or(usize::MAX);
    let stored = start
        .checked_add(job.len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| Error::corrupt(job.at, "deferred blob outside the data"))?;
    let (blob, blob_at) = match job.lzf_len {
        // A compressed string's content is not needed: proving it decodes is enough.
        Some(ulen) if job.code == LZF_STRING => {
            lzf::validate(stored, ulen).map_err(|e| blob_error(job.data_at, "LZF data", e))?;
            return Ok(1);
        }
        Some(ulen) => {
            bytes.clear();
            lzf::decompress_into(stored, ulen, bytes)
                .map_err(|e| blob_error(job.data_at, "LZF data", e))?;
            (&bytes[..], job.at)
        }
        None => (stored, job.data_at),
    };
    if job.code == LZF_STRING {
        return Ok(1);
    }
    validate_blob(job.code, blob, blob_at, keys)
}

/// The verdict on a stored checksum `expected` against the content's `actual` checksum.
pub(crate) fn checksum_verdict(at: u64, expected: u64, actual: u64) -> Result<Checksum> {
    if expected == actual {
        Ok(Checksum::Verified(actual))
    } else {
        Err(Error::ChecksumMismatch {
            file: None,
            offset: at,
            expected,
            actual,
        })
    }
}

/// A score stored in a listpack or ziplist: an integer element or `strtod` text, never NaN.
fn blob_score(elem: Elem<'_>, blob_at: u64) -> Result<f64> {
    let score = match elem {
        Elem::Int(v) => v as f64,
        Elem::Str(text) => parse_double(text).ok_or_else(|| {
            Error::corrupt(
                blob_at,
                format!("invalid score {:?}", String::from_utf8_lossy(text)),
            )
        })?,
    };
    if score.is_nan() {
        return Err(Error::corrupt(blob_at, "sorted set score is NaN"));
    }
    Ok(score)
}

fn hash_pairs(elems: &[Elem<'_>], blob_at: u64) -> Result<Vec<HashField>> {
    if !elems.len().is_multiple_of(2) {
        return Err(Error::corrupt(
            blob_at,
            "hash blob has an odd number of elements",
        ));
    }
    Ok(elems
        .chunks_exact(2)
        .map(|pair| HashField::new(pair[0].to_bytes(), pair[1].to_bytes()))
        .collect())
}

/// Parses a score as `strtod` would for the texts Redis writes (`1.5`, `-inf`, `1e+20`).
fn parse_double(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    match text {
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok(),
    }
}

/// Collections up to this size are checked for duplicates pairwise on 64-bit hashes kept on the
/// stack (bytes are compared only when two hashes match): no allocation, and cheaper than a hash
/// set for the small listpack-encoded collections that dominate real files.
const PAIRWISE_UNIQUE_MAX: usize = 32;

/// Fails if two items have the same key (Redis refuses duplicate members and fields).
fn ensure_unique<'a, T, K: Hash + Eq>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
    at: u64,
    what: &str,
) -> Result<()> {
    let duplicate = |i: usize| {
        Err(Error::corrupt(
            at,
            format!("duplicate {what} (element {i} repeats an earlier one)"),
        ))
    };
    if items.len() <= PAIRWISE_UNIQUE_MAX {
        let hasher = PAIRWISE_HASHER;
        let mut hashes = [0u64; PAIRWISE_UNIQUE_MAX];
        for (i, item) in items.iter().enumerate() {
            let h = hasher.hash_one(key(item));
            for j in 0..i {
                if hashes[j] == h && key(&items[j]) == key(item) {
                    return duplicate(i);
                }
            }
            hashes[i] = h;
        }
        return Ok(());
    }
    let mut seen =
        HashSet::with_capacity_and_hasher(items.len(), foldhash::fast::RandomState::default());
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(key(item)) {
            return duplicate(i);
        }
    }
    Ok(())
}

/// Entry flags in a stream node listpack.
const STREAM_ITEM_FLAG_DELETED: i64 = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;

/// Decodes one stream node listpack (§1.11) and appends its live entries to `out`, checking
/// the master entry, every entry's element count and that IDs strictly increase.
fn parse_stream_node(
    lp: &[u8],
    master: StreamId,
    out: &mut Vec<StreamEntry>,
) -> std::result::Result<(), BlobError> {
    let mut node = NodeElems {
        it: listpack::iter(lp)?,
        end: lp.len().saturating_sub(1),
    };
    let mut next = |what: &str| node.next(what);
    fn int(e: Elem<'_>, what: &str) -> std::result::Result<i64, BlobError> {
        e.as_int()
            .ok_or_else(|| BlobError::new(0, format!("stream node {what} is not an integer")))
    }
    let count = int(next("the entry count")?, "entry count")?;
    let deleted = int(next("the deleted count")?, "deleted count")?;
    let num_fields = int(next("the field count")?, "master field count")?;
    if count < 0 || deleted < 0 || num_fields < 0 || count.saturating_add(deleted) == 0 {
        return Err(BlobError::new(
            0,
            format!(
                "bad stream node header: count {count}, deleted {deleted}, fields {num_fields}"
            ),
        ));
    }
    let num_fields = num_fields as usize;
    if num_fields > lp.len() {
        return Err(BlobError::new(
            0,
            format!("stream master entry claims {num_fields} fields"),
        ));
    }
    let mut master_fields = Vec::with_capacity(num_fields);
    for _ in 0..num_fields {
        master_fields.push(next("a master field")?.to_bytes());
    }
    if int(next("the master terminator")?, "master terminator")? != 0 {
        return Err(BlobError::new(0, "stream master entry terminator is not 0"));
    }
    let mut live = 0i64;
    for _ in 0..(count + deleted) {
        let flags = int(next("entry flags")?, "entry flags")?;
        let ms_diff = int(next("an entry ID")?, "entry ID")?;
        let seq_diff = int(next("an entry ID")?, "entry ID")?;
        let id = StreamId::new(
            master.ms.wrapping_add(ms_diff as u64),
            master.seq.wrapping_add(seq_diff as u64),
        );
        let (fields_in_entry, fields) = if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            let mut fields = Vec::with_capacity(num_fields);
            for name in &master_fields {
                fields.push((name.clone(), next("a field value")?.to_bytes()));
            }
            (num_fields, fields)
        } else {
            let n = int(next("an entry field count")?, "entry field count")?;
            if n < 0 || n as usize > lp.len() {
                return Err(BlobError::new(
                    0,
                    format!("stream entry {id} claims {n} fields"),
                ));
            }
            let mut fields = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let field = next("a field")?.to_bytes();
                let value = next("a field value")?.to_bytes();
                fields.push((field, value));
            }
            (n as usize, fields)
        };
        let lp_count = int(next("an entry's element count")?, "entry element count")?;
        let expected = if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            fields_in_entry + 3
        } else {
            fields_in_entry * 2 + 4
        };
        if lp_count != expected as i64 {
            return Err(BlobError::new(
                0,
                format!("stream entry {id}: element count {lp_count}, expected {expected}"),
            ));
        }
        if let Some(prev) = out.last()
            && id <= prev.id
            && flags & STREAM_ITEM_FLAG_DELETED == 0
        {
            return Err(BlobError::new(
                0,
                format!("stream entry {id} does not follow {}", prev.id),
            ));
        }
        if flags & STREAM_ITEM_FLAG_DELETED == 0 {
            live += 1;
            out.push(StreamEntry { id, fields });
        }
    }
    if node.it.next().is_some() {
        return Err(BlobError::new(
            0,
            "stream node has data after its last entry",
        ));
    }
    if live != count {
        return Err(BlobError::new(
            0,
            format!("stream node says {count} live entries, holds {live}"),
        ));
    }
    Ok(())
}

/// The elements of a stream node listpack, with "ended early" as an error.
struct NodeElems<'a> {
    it: listpack::ListpackIter<'a>,
    end: usize,
}

impl<'a> NodeElems<'a> {
    fn next(&mut self, what: &str) -> std::result::Result<Elem<'a>, BlobError> {
        match self.it.next() {
            Some(result) => result,
            None => Err(BlobError::new(
                self.end,
                format!("stream node ends before {what}"),
            )),
        }
    }
}

/// Redis's estimate of a group's `entries_read` for streams saved before RDB 10 (which did
/// not store it): `streamEstimateDistanceFromFirstEverEntry` in t_stream.c.
fn estimate_entries_read(stream: &Stream, id: StreamId) -> Option<u64> {
    if stream.entries_added == 0 {
        return Some(0);
    }
    let length = stream.entries.len() as u64;
    if length == 0 && id <= stream.last_id {
        return Some(stream.entries_added);
    }
    if id == stream.last_id {
        return Some(stream.entries_added);
    }
    if id > stream.last_id {
        return None;
    }
    let no_fragmentation =
        stream.max_deleted_id == StreamId::default() || stream.max_deleted_id < stream.first_id;
    if no_fragmentation {
        if id < stream.first_id {
            return Some(stream.entries_added - length);
        }
        if id == stream.first_id {
            return Some(stream.entries_added - length + 1);
        }
    }
    None
}
