//! The RDB writer: files that real Redis loads.
//!
//! Encodings are chosen as Redis chooses them (`rdbSaveObject`, redis-formats.md §1.5–1.11) at
//! its default thresholds: integer strings, LZF when it saves at least 4 bytes, intset and
//! listpack for small collections, quicklist 2 for lists, and never a type the target version
//! lacks (a value the version cannot represent is an [`Error::Unsupported`]).

use std::io::{self, Write};

use super::crc::Crc64;
use super::encoding::{intset, listpack::ListpackWriter, lzf, parse_canonical_i64};
use super::{WRITABLE_VERSIONS, opcode, rdb_type};
use crate::dataset::{EntryRef, ValueRef};
use crate::error::{Error, Result};
use crate::model::{Entry, HashField, Stream, StreamEntry, Value};
use crate::storage::WritableFile;

/// Redis's default encoding thresholds (redis.conf; §4 of redis-formats.md).
const SET_MAX_INTSET_ENTRIES: usize = 512;
const SET_MAX_LISTPACK_ENTRIES: usize = 128;
const SET_MAX_LISTPACK_VALUE: usize = 64;
const ZSET_MAX_LISTPACK_ENTRIES: usize = 128;
const ZSET_MAX_LISTPACK_VALUE: usize = 64;
const HASH_MAX_LISTPACK_ENTRIES: usize = 512;
const HASH_MAX_LISTPACK_VALUE: usize = 64;
/// `list-max-listpack-size -2`: packed quicklist nodes up to 8 KiB; larger elements get a
/// PLAIN node of their own (as Redis 7.2 does; 7.0 loads PLAIN nodes too).
const LIST_NODE_MAX_BYTES: usize = 8 * 1024;
const STREAM_NODE_MAX_BYTES: usize = 4096;
const STREAM_NODE_MAX_ENTRIES: usize = 100;
/// Buffered bytes before they are hashed and handed to the sink.
const FLUSH_AT: usize = 256 * 1024;

/// How to write an RDB file.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// RDB version: 10 (Redis 7.0), 11 (Redis 7.2, Valkey 7.2–8) or 12 (Redis 7.4+).
    /// Default: 10, loadable by every Redis since 7.0.
    pub version: u32,
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it helps. Default: yes.
    pub compression: bool,
    /// `rdbchecksum`: write the CRC-64 trailer (else 0, "not checked"). Default: yes.
    pub checksum: bool,
    /// The AUX fields to record.
    pub aux: AuxInfo,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            version: super::DEFAULT_WRITE_VERSION,
            compression: true,
            checksum: true,
            aux: AuxInfo::default(),
        }
    }
}

/// AUX fields written after the header.
#[derive(Debug, Clone, Default)]
pub struct AuxInfo {
    /// `ctime`, unix seconds. Default: now.
    pub ctime: Option<i64>,
    /// `used-mem`, bytes. Default: 0.
    pub used_mem: u64,
    /// `repl-id` / `repl-offset` / `repl-stream-db`, so a node restarted or a replica fed from
    /// this file can ask for a partial resync.
    pub replication: Option<ReplicationInfo>,
    /// `aof-base 1`: the file is the base of a multi-part AOF.
    pub aof_base: bool,
}

/// The replication position a file corresponds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationInfo {
    /// 40-hex-character replication id.
    pub id: String,
    /// Replication offset the file's content reflects.
    pub offset: u64,
    /// Database the replication stream had selected.
    pub stream_db: u32,
}

/// Streaming RDB writer over any `io::Write`.
pub struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
    crc: Crc64,
    options: WriteOptions,
    db: Option<u32>,
}

impl<W: Write> Writer<W> {
    /// Writes the header and AUX fields.
    pub fn new(out: W, options: WriteOptions) -> Result<Self> {
        if !WRITABLE_VERSIONS.contains(&options.version) {
            return Err(Error::InvalidArgument(format!(
                "RDB version {} cannot be written; choose one of {WRITABLE_VERSIONS:?}",
                options.version
            )));
        }
        let mut writer = Writer {
            out,
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            crc: Crc64::new(),
            options,
            db: None,
        };
        writer
            .buf
            .extend_from_slice(format!("REDIS{:04}", writer.options.version).as_bytes());
        let redis_ver = match writer.options.version {
            10 => "7.0.15",
            11 => "7.2.0",
            _ => "7.4.0",
        };
        let aux = writer.options.aux.clone();
        let ctime = aux.ctime.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        writer.write_aux(b"redis-ver", redis_ver.as_bytes())?;
        writer.write_aux(b"redis-bits", b"64")?;
        writer.write_aux(b"ctime", ctime.to_string().as_bytes())?;
        writer.write_aux(b"used-mem", aux.used_mem.to_string().as_bytes())?;
        if let Some(repl) = &aux.replication {
            writer.write_aux(b"repl-stream-db", repl.stream_db.to_string().as_bytes())?;
            writer.write_aux(b"repl-id", repl.id.as_bytes())?;
            writer.write_aux(b"repl-offset", repl.offset.to_string().as_bytes())?;
        }
        writer.write_aux(b"aof-base", if aux.aof_base { b"1" } else { b"0" })?;
        writer.write_aux(b"keeper-ver", env!("CARGO_PKG_VERSION").as_bytes())?;
        Ok(writer)
    }

    /// The RDB version being written.
    pub fn version(&self) -> u32 {
        self.options.version
    }

    /// Writes an AUX field.
    pub fn write_aux(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.buf.push(opcode::AUX);
        self.string(key);
        self.string(value);
        self.maybe_flush()
    }

    /// Writes a function library (`FUNCTION2`), before the databases as Redis does.
    pub fn write_function(&mut self, code: &[u8]) -> Result<()> {
        self.buf.push(opcode::FUNCTION2);
        self.string(code);
        self.maybe_flush()
    }

    /// Writes module AUX data kept from a file that was read.
    pub fn write_module_aux(&mut self, module_id: u64, when: u64, body: &[u8]) -> Result<()> {
        self.buf.push(opcode::MODULE_AUX);
        write_len(&mut self.buf, module_id);
        write_len(&mut self.buf, 2);
        write_len(&mut self.buf, when);
        self.buf.extend_from_slice(body);
        self.maybe_flush()
    }

    /// Starts database `db` with its size hints (`SELECTDB` + `RESIZEDB`). Optional:
    /// [`Writer::write_entry`] selects the entry's database by itself when it changes.
    pub fn select_db(&mut self, db: u32, db_size: u64, expires_size: u64) -> Result<()> {
        self.buf.push(opcode::SELECTDB);
        write_len(&mut self.buf, u64::from(db));
        self.buf.push(opcode::RESIZEDB);
        write_len(&mut self.buf, db_size);
        write_len(&mut self.buf, expires_size);
        self.db = Some(db);
        self.maybe_flush()
    }

    /// Writes one key. Entries of one database must come together.
    pub fn write_entry(&mut self, entry: &Entry) -> Result<()> {
        self.entry_header(
            entry.db,
            entry.expire_at_ms,
            entry.lru_idle_secs,
            entry.lfu_freq,
        );
        let type_at = self.buf.len();
        self.buf.push(0); // type byte, decided by the value encoder
        self.string(&entry.key);
        let code = self.value(&entry.value)?;
        self.buf[type_at] = code;
        self.maybe_flush()
    }

    /// [`Writer::write_entry`] for an entry lent by a dataset (no copy of its key or string).
    pub fn write_entry_ref(&mut self, db: u32, entry: &EntryRef<'_>) -> Result<()> {
        self.entry_header(db, entry.expire_at_ms, entry.lru_idle_secs, entry.lfu_freq);
        let type_at = self.buf.len();
        self.buf.push(0); // type byte, decided by the value encoder
        self.string(entry.key);
        let code = match &entry.value {
            ValueRef::String(s) => {
                self.string(s);
                rdb_type::STRING
            }
            ValueRef::Owned(value) => self.value(value)?,
        };
        self.buf[type_at] = code;
        self.maybe_flush()
    }

    /// SELECTDB when `db` changes, then the expiry and eviction opcodes of one entry.
    fn entry_header(
        &mut self,
        db: u32,
        expire_at_ms: Option<i64>,
        lru_idle_secs: Option<u64>,
        lfu_freq: Option<u8>,
    ) {
        if self.db != Some(db) {
            self.buf.push(opcode::SELECTDB);
            write_len(&mut self.buf, u64::from(db));
            self.db = Some(db);
        }
        if let Some(at) = expire_at_ms {
            self.buf.push(opcode::EXPIRETIME_MS);
            self.buf.extend_from_slice(&at.to_le_bytes());
        }
        if let Some(idle) = lru_idle_secs {
            self.buf.push(opcode::IDLE);
            write_len(&mut self.buf, idle);
        }
        if let Some(freq) = lfu_freq {
            self.buf.extend_from_slice(&[opcode::FREQ, freq]);
        }
    }

    /// Writes the EOF opcode and the checksum, flushes, and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.buf.push(opcode::EOF);
        self.crc.update(&self.buf);
        let crc = if self.options.checksum {
            self.crc.value()
        } else {
            0
        };
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.buf).map_err(io_error)?;
        self.buf.clear();
        self.out.flush().map_err(io_error)?;
        Ok(self.out)
    }

    fn maybe_flush(&mut self) -> Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.crc.update(&self.buf);
            self.out.write_all(&self.buf).map_err(io_error)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// A string with Redis's encoding choice (`rdbSaveRawString`): integer forms for short
    /// canonical integers, LZF when compression is on and saves space, else raw.
    fn string(&mut self, s: &[u8]) {
        write_string(&mut self.buf, s, self.options.compression);
    }

    /// Encodes `value` and returns its type code.
    fn value(&mut self, value: &Value) -> Result<u8> {
        Ok(match value {
            Value::String(s) => {
                self.string(s);
                rdb_type::STRING
            }
            Value::List(items) => {
                self.list(items);
                rdb_type::LIST_QUICKLIST_2
            }
            Value::Set(members) => self.set(members),
            Value::SortedSet(items) => self.zset(items),
            Value::Hash(fields) => self.hash(fields)?,
            Value::Stream(stream) => {
                self.stream(stream);
                if self.options.version >= 11 {
                    rdb_type::STREAM_LISTPACKS_3
                } else {
                    rdb_type::STREAM_LISTPACKS_2
                }
            }
            Value::Module(module) => {
                write_len(&mut self.buf, module.id);
                self.buf.extend_from_slice(&module.body);
                rdb_type::MODULE_2
            }
        })
    }

    fn list(&mut self, items: &[bytes::Bytes]) {
        enum Node {
            Plain(usize),
            Packed(Vec<u8>),
        }
        let mut nodes = Vec::new();
        let mut packed = ListpackWriter::new();
        for (i, item) in items.iter().enumerate() {
            if item.len() > LIST_NODE_MAX_BYTES {
                if !packed.is_empty() {
                    nodes.push(Node::Packed(std::mem::take(&mut packed).finish()));
                }
                nodes.push(Node::Plain(i));
                continue;
            }
            if !packed.is_empty() && packed.byte_len() + item.len() + 11 > LIST_NODE_MAX_BYTES {
                nodes.push(Node::Packed(std::mem::take(&mut packed).finish()));
            }
            packed.push(item);
        }
        if !packed.is_empty() {
            nodes.push(Node::Packed(packed.finish()));
        }
        write_len(&mut self.buf, nodes.len() as u64);
        for node in nodes {
            match node {
                Node::Plain(i) => {
                    write_len(&mut self.buf, 1);
                    self.string(&items[i]);
                }
                Node::Packed(lp) => {
                    write_len(&mut self.buf, 2);
                    self.string(&lp);
                }
            }
        }
    }

    fn set(&mut self, members: &[bytes::Bytes]) -> u8 {
        if members.len() <= SET_MAX_INTSET_ENTRIES {
            let ints: Option<Vec<i64>> = members.iter().map(|m| parse_canonical_i64(m)).collect();
            if let Some(mut ints) = ints {
                ints.sort_unstable();
                self.string(&intset::encode(&ints));
                return rdb_type::SET_INTSET;
            }
        }
        if self.options.version >= 11
            && members.len() <= SET_MAX_LISTPACK_ENTRIES
            && members.iter().all(|m| m.len() <= SET_MAX_LISTPACK_VALUE)
        {
            let mut lp = ListpackWriter::new();
            for m in members {
                lp.push(m);
            }
            self.string(&lp.finish());
            return rdb_type::SET_LISTPACK;
        }
        write_len(&mut self.buf, members.len() as u64);
        for m in members {
            self.string(m);
        }
        rdb_type::SET
    }

    fn zset(&mut self, items: &[(bytes::Bytes, f64)]) -> u8 {
        let mut sorted: Vec<&(bytes::Bytes, f64)> = items.iter().collect();
        sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        if items.len() <= ZSET_MAX_LISTPACK_ENTRIES
            && items
                .iter()
                .all(|(m, _)| m.len() <= ZSET_MAX_LISTPACK_VALUE)
        {
            let mut lp = ListpackWriter::new();
            for (member, score) in sorted {
                lp.push(member);
                push_score(&mut lp, *score);
            }
            self.string(&lp.finish());
            return rdb_type::ZSET_LISTPACK;
        }
        write_len(&mut self.buf, items.len() as u64);
        // Highest score first, as Redis walks its skiplist from the tail.
        for (member, score) in sorted.into_iter().rev() {
            self.string(member);
            self.buf.extend_from_slice(&score.to_le_bytes());
        }
        rdb_type::ZSET_2
    }

    fn hash(&mut self, fields: &[HashField]) -> Result<u8> {
        let small = fields.len() <= HASH_MAX_LISTPACK_ENTRIES
            && fields.iter().all(|f| {
                f.field.len() <= HASH_MAX_LISTPACK_VALUE && f.value.len() <= HASH_MAX_LISTPACK_VALUE
            });
        let min_expire = fields.iter().filter_map(|f| f.expire_at_ms).min();
        let Some(min_expire) = min_expire else {
            if small {
                let mut lp = ListpackWriter::new();
                for f in fields {
                    lp.push(&f.field);
                    lp.push(&f.value);
                }
                self.string(&lp.finish());
                return Ok(rdb_type::HASH_LISTPACK);
            }
            write_len(&mut self.buf, fields.len() as u64);
            for f in fields {
                self.string(&f.field);
                self.string(&f.value);
            }
            return Ok(rdb_type::HASH);
        };
        if self.options.version < 12 {
            return Err(Error::Unsupported {
                file: None,
                offset: None,
                what: format!(
                    "hash field TTLs need RDB version 12 (Redis 7.4); writing version {}",
                    self.options.version
                ),
            });
        }
        self.buf.extend_from_slice(&min_expire.to_le_bytes());
        if small {
            // Fields with a TTL first, ascending by expiry, then the others (§1.10).
            let mut ordered: Vec<&HashField> = fields.iter().collect();
            ordered.sort_by_key(|f| (f.expire_at_ms.is_none(), f.expire_at_ms));
            let mut lp = ListpackWriter::new();
            for f in ordered {
                lp.push(&f.field);
                lp.push(&f.value);
                lp.push_int(f.expire_at_ms.unwrap_or(0));
            }
            self.string(&lp.finish());
            return Ok(rdb_type::HASH_LISTPACK_EX);
        }
        write_len(&mut self.buf, fields.len() as u64);
        for f in fields {
            let ttl = f.expire_at_ms.map_or(0, |at| (at - min_expire) as u64 + 1);
            write_len(&mut self.buf, ttl);
            self.string(&f.field);
            self.string(&f.value);
        }
        Ok(rdb_type::HASH_METADATA)
    }

    fn stream(&mut self, stream: &Stream) {
        let nodes = stream_nodes(&stream.entries);
        write_len(&mut self.buf, nodes.len() as u64);
        for (master, lp) in nodes {
            self.string(&master.to_be_bytes());
            self.string(&lp);
        }
        write_len(&mut self.buf, stream.entries.len() as u64);
        write_len(&mut self.buf, stream.last_id.ms);
        write_len(&mut self.buf, stream.last_id.seq);
        write_len(&mut self.buf, stream.first_id.ms);
        write_len(&mut self.buf, stream.first_id.seq);
        write_len(&mut self.buf, stream.max_deleted_id.ms);
        write_len(&mut self.buf, stream.max_deleted_id.seq);
        write_len(&mut self.buf, stream.entries_added);
        write_len(&mut self.buf, stream.groups.len() as u64);
        for group in &stream.groups {
            self.string(&group.name);
            write_len(&mut self.buf, group.last_id.ms);
            write_len(&mut self.buf, group.last_id.seq);
            write_len(&mut self.buf, group.entries_read.unwrap_or(u64::MAX));
            write_len(&mut self.buf, group.pending.len() as u64);
            for p in &group.pending {
                self.buf.extend_from_slice(&p.id.to_be_bytes());
                self.buf
                    .extend_from_slice(&p.delivery_time_ms.to_le_bytes());
                write_len(&mut self.buf, p.delivery_count);
            }
            write_len(&mut self.buf, group.consumers.len() as u64);
            for c in &group.consumers {
                self.string(&c.name);
                self.buf.extend_from_slice(&c.seen_time_ms.to_le_bytes());
                if self.options.version >= 11 {
                    self.buf.extend_from_slice(&c.active_time_ms.to_le_bytes());
                }
                write_len(&mut self.buf, c.pending.len() as u64);
                for id in &c.pending {
                    self.buf.extend_from_slice(&id.to_be_bytes());
                }
            }
        }
    }
}

/// Splits stream entries into node listpacks the way Redis fills them (at most 100 entries or
/// about 4 KiB per node) and encodes each: master entry, then entries relative to it.
fn stream_nodes(entries: &[StreamEntry]) -> Vec<(crate::model::StreamId, Vec<u8>)> {
    let mut nodes = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 16usize;
        while end < entries.len() && end - start < STREAM_NODE_MAX_ENTRIES {
            let size: usize = entries[end]
                .fields
                .iter()
                .map(|(f, v)| f.len() + v.len() + 4)
                .sum::<usize>()
                + 8;
            if end > start && bytes + size >= STREAM_NODE_MAX_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let chunk = &entries[start..end];
        let master = &chunk[0];
        let mut lp = ListpackWriter::new();
        lp.push_int(chunk.len() as i64);
        lp.push_int(0);
        lp.push_int(master.fields.len() as i64);
        for (field, _) in &master.fields {
            lp.push(field);
        }
        lp.push_int(0);
        for entry in chunk {
            let same = entry.fields.len() == master.fields.len()
                && entry
                    .fields
                    .iter()
                    .zip(&master.fields)
                    .all(|(a, b)| a.0 == b.0);
            lp.push_int(if same { 2 } else { 0 });
            lp.push_int(entry.id.ms.wrapping_sub(master.id.ms) as i64);
            lp.push_int(entry.id.seq.wrapping_sub(master.id.seq) as i64);
            if same {
                for (_, value) in &entry.fields {
                    lp.push(value);
                }
                lp.push_int(entry.fields.len() as i64 + 3);
            } else {
                lp.push_int(entry.fields.len() as i64);
                for (field, value) in &entry.fields {
                    lp.push(field);
                    lp.push(value);
                }
                lp.push_int(entry.fields.len() as i64 * 2 + 4);
            }
        }
        nodes.push((master.id, lp.finish()));
        start = end;
    }
    nodes
}

/// A score in a listpack: exact integers as integers, others in shortest round-trip text.
fn push_score(lp: &mut ListpackWriter, score: f64) {
    if score.fract() == 0.0 && score.abs() < 9.007_199_254_740_992e15 {
        lp.push_int(score as i64);
    } else if score.is_infinite() {
        lp.push_str(if score > 0.0 { b"inf" } else { b"-inf" });
    } else {
        lp.push_str(format!("{score:?}").as_bytes());
    }
}

/// Writes a length (§1.4) in the shortest form, as `rdbSaveLen` does.
pub(crate) fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&[0x40 | (len >> 8) as u8, len as u8]);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Writes a string as its length and bytes, without trying other encodings.
pub(crate) fn write_raw_string(out: &mut Vec<u8>, s: &[u8]) {
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Writes a string with Redis's encoding choice (§1.5).
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8], compression: bool) {
    if s.len() <= 11
        && let Some(v) = parse_canonical_i64(s)
    {
        if let Ok(v) = i8::try_from(v) {
            out.extend_from_slice(&[0xC0, v as u8]);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            out.push(0xC1);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            out.push(0xC2);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    if compression && s.len() > 20 {
        // Compressed straight into `out`; the header, whose size depends on the compressed
        // length, is appended after and rotated in front (a move of the bytes just written,
        // far cheaper than a buffer per string).
        let start = out.len();
        if lzf::compress_into(s, out) {
            let compressed_len = out.len() - start;
            out.push(0xC3);
            write_len(out, compressed_len as u64);
            write_len(out, s.len() as u64);
            let header_len = out.len() - start - compressed_len;
            out[start..].rotate_right(header_len);
            return;
        }
    }
    write_raw_string(out, s);
}

fn io_error(e: io::Error) -> Error {
    match e.downcast::<Error>() {
        Ok(inner) => inner,
        Err(e) => Error::Io {
            path: None,
            op: "write",
            source: e,
        },
    }
}

/// Adapts a [`WritableFile`] to `io::Write`, carrying keeper's error (with its path) through.
pub struct FileSink<'a> {
    file: &'a mut dyn WritableFile,
}

impl<'a> FileSink<'a> {
    pub fn new(file: &'a mut dyn WritableFile) -> Self {
        FileSink { file }
    }
}

impl Write for FileSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
