//! Whole-file verification on two cores: what `keeper check-rdb` runs, and what a restore runs
//! before it trusts a file.
//!
//! The calling thread walks the file's framing (opcodes, lengths, keys, plain collections)
//! with [`Reader::check_next`] in deferred mode; a worker thread validates every blob-encoded
//! value and LZF string it is handed (listpack, ziplist, intset, zipmap: structure, counts,
//! duplicates, scores) and computes the CRC-64 as the walk advances. Both sides are exactly as
//! strict as decoding, and the error reported is the first one in file order.
//!
//! [`check_stream`] does the same checks on one thread over a byte stream, for an RDB that
//! arrives (a live node's, for a backup) and is never held whole.

use std::collections::BTreeMap;
use std::sync::mpsc;

use bytes::Bytes;

use super::crc::{crc64, crc64_combine};
use super::reader::{
    BlobScratch, DeferredBlob, blob_value_type, checksum_verdict, validate_deferred,
};
use super::{Checked, Checksum, Event, Family, Reader};
use crate::error::{Error, Result};
use crate::model::ValueType;
use crate::storage::FileView;

/// What a complete check found in a valid file.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub version: u32,
    pub family: Family,
    /// AUX fields in file order.
    pub aux: Vec<(Bytes, Bytes)>,
    /// Key counts of each non-empty database.
    pub databases: BTreeMap<u32, DbCounts>,
    /// Function libraries.
    pub functions: u64,
    /// Module AUX sections.
    pub module_aux: u64,
    /// Keys whose collection was stored empty (skipped, as Redis skips them).
    pub empty_keys_skipped: u64,
    pub checksum: Checksum,
    /// Length of the RDB proper; bytes after it (an AOF tail, a sync EOF mark) are not RDB.
    pub rdb_len: u64,
}

impl CheckReport {
    fn empty<S: super::Source>(reader: &Reader<S>) -> Self {
        CheckReport {
            version: reader.version(),
            family: reader.family(),
            aux: Vec::new(),
            databases: BTreeMap::new(),
            functions: 0,
            module_aux: 0,
            empty_keys_skipped: 0,
            checksum: Checksum::NotInVersion,
            rdb_len: 0,
        }
    }
}

/// Key counts of one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbCounts {
    pub keys: u64,
    pub expires: u64,
    /// Keys per type, indexed by `ValueType as usize`.
    pub by_type: [u64; ValueType::ALL.len()],
}

impl DbCounts {
    /// Keys of type `t`.
    pub fn of(&self, t: ValueType) -> u64 {
        self.by_type[t as usize]
    }

    fn add(&mut self, other: &DbCounts) {
        self.keys += other.keys;
        self.expires += other.expires;
        for (sum, n) in self.by_type.iter_mut().zip(other.by_type) {
            *sum += n;
        }
    }
}

/// Deferred blobs handed to the worker at a time.
const BATCH: usize = 2048;

/// Bytes of file per checksum range; a batch is cut at this distance even without deferred
/// blobs, so the checksum of a file of plain strings is shared between the threads too.
const BATCH_BYTES: usize = 32 << 20;

/// A unit of work for either thread: blobs to validate and a byte range to checksum.
struct Batch {
    jobs: Vec<DeferredBlob>,
    crc_from: usize,
    crc_to: usize,
}

/// What a validating thread found: the first error of the batches it took, the blob-encoded
/// values that turned out empty (to take out of the counts), and the checksums of the ranges
/// it hashed as `(start, crc, length)`, combined in file order at the end.
#[derive(Default)]
struct Validated {
    error: Option<Error>,
    empty: Vec<DeferredBlob>,
    crcs: Vec<(usize, u64, usize)>,
}

impl Validated {
    /// Does a batch, stopping at the first error. False once an error was found.
    fn run(&mut self, data: &[u8], batch: &Batch, scratch: &mut BlobScratch) -> bool {
        let range = &data[batch.crc_from..batch.crc_to];
        if !range.is_empty() {
            self.crcs.push((batch.crc_from, crc64(range), range.len()));
        }
        for job in &batch.jobs {
            match validate_deferred(data, job, scratch) {
                Ok(0) => self.empty.push(*job),
                Ok(_) => {}
                Err(e) => {
                    self.error = Some(e);
                    return false;
                }
            }
        }
        true
    }
}

/// Verifies the whole RDB in `data`: every value decoded as strictly as [`Reader`] does, and
/// the checksum. `progress` is called now and then with the offset reached.
pub fn check(data: FileView, progress: &mut dyn FnMut(u64)) -> Result<CheckReport> {
    let mut reader = Reader::from_slice(data.clone())?;
    reader.defer_blobs();
    let (tx, rx) = mpsc::sync_channel::<Batch>(4);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut validated = Validated::default();
            let mut scratch = BlobScratch::default();
            for batch in rx {
                if !validated.run(&data, &batch, &mut scratch) {
                    break; // dropping `rx` tells the walk to stop
                }
            }
            validated
        });
        let mut local = Validated::default();
        let mut crc_at = 0;
        let walked = walk(&mut reader, &data, &tx, &mut local, progress, &mut crc_at);
        // The rest: blobs still queued, and the checksum up to the trailer.
        let rest = Batch {
            jobs: reader.drain_deferred(),
            crc_from: crc_at,
            crc_to: reader.trailer().map_or(crc_at, |(at, _)| at as usize),
        };
        if local.error.is_none() {
            local.run(&data, &rest, &mut BlobScratch::default());
        }
        drop(tx);
        let worker = worker.join().unwrap_or_else(|_| Validated {
            error: Some(Error::corrupt(0, "the validation thread panicked")),
            ..Validated::default()
        });
        finish(&reader, walked, [local, worker])
    })
}

/// Walks the framing, counting keys and handing deferred blobs to the worker; `crc_at` ends
/// where the batches' checksum ranges reached.
///
/// Load balancing: a batch goes to the worker when its queue has room; when it is full, this
/// thread does the batch itself.
fn walk<B: std::ops::Deref<Target = [u8]>>(
    reader: &mut Reader<super::SliceSource<B>>,
    data: &[u8],
    tx: &mpsc::SyncSender<Batch>,
    local: &mut Validated,
    progress: &mut dyn FnMut(u64),
    crc_at: &mut usize,
) -> Result<CheckReport> {
    let mut scratch = BlobScratch::default();
    let mut tally = Tally::new(reader);
    while let Some(checked) = reader.check_next()? {
        if tally.add(checked) {
            progress(reader.position());
        }
        let position = reader.position() as usize;
        // Checksum ranges are cut only every `BATCH_BYTES`: combining two checksums costs
        // about half a millisecond (crc-fast's GF(2) matrix method).
        let crc_due = position - *crc_at >= BATCH_BYTES;
        if reader.deferred_len() >= BATCH || crc_due {
            let crc_to = if crc_due { position } else { *crc_at };
            let batch = Batch {
                jobs: reader.drain_deferred(),
                crc_from: *crc_at,
                crc_to,
            };
            *crc_at = crc_to;
            match tx.try_send(batch) {
                Ok(()) => {}
                Err(mpsc::TrySendError::Full(batch)) => {
                    if !local.run(data, &batch, &mut scratch) {
                        break;
                    }
                }
                // The worker stopped at an error, earlier in the file than anything here.
                Err(mpsc::TrySendError::Disconnected(_)) => break,
            }
        }
    }

    progress(reader.position());
    Ok(tally.finish())
}

/// The counts of a check, as it goes: keys per database (and per type), AUX fields,
/// functions and module sections.
struct Tally {
    report: CheckReport,
    /// Keys of one database come together: counted here and merged on a switch.
    current: Option<(u32, DbCounts)>,
    keys: u64,
}

impl Tally {
    fn new<S: super::Source>(reader: &Reader<S>) -> Self {
        Tally {
            report: CheckReport::empty(reader),
            current: None,
            keys: 0,
        }
    }

    /// Counts what the reader checked. True every 4096 keys: time to report progress.
    fn add(&mut self, checked: Checked) -> bool {
        match checked {
            Checked::Key(key) => {
                let counts = match &mut self.current {
                    Some((db, counts)) if *db == key.db => counts,
                    current => {
                        if let Some((db, counts)) = current.take() {
                            self.report.databases.entry(db).or_default().add(&counts);
                        }
                        &mut current.insert((key.db, DbCounts::default())).1
                    }
                };
                counts.keys += 1;
                counts.expires += u64::from(key.expire_at_ms.is_some());
                counts.by_type[key.value_type as usize] += 1;
                self.keys += 1;
                return self.keys.is_multiple_of(4096);
            }
            Checked::Event(event) => match *event {
                Event::Aux { key, value } => self.report.aux.push((key, value)),
                Event::Function(_) => self.report.functions += 1,
                Event::ModuleAux { .. } => self.report.module_aux += 1,
                _ => {}
            },
        }
        false
    }

    fn finish(mut self) -> CheckReport {
        if let Some((db, counts)) = self.current.take() {
            self.report.databases.entry(db).or_default().add(&counts);
        }
        self.report
    }
}

/// Verifies a whole RDB read from `stream`, as strictly as [`check`], on the calling thread
/// and without holding the file: for an RDB that arrives (a transfer, a decompressor), checked
/// while it comes instead of gathered first. The checksum is computed as the bytes are read.
/// Bytes after the RDB's end are not read.
pub fn check_stream<R: std::io::Read>(
    stream: R,
    progress: &mut dyn FnMut(u64),
) -> Result<CheckReport> {
    let mut reader = Reader::from_reader(stream)?;
    let mut tally = Tally::new(&reader);
    while let Some(checked) = reader.check_next()? {
        if tally.add(checked) {
            progress(reader.position());
        }
    }
    progress(reader.position());
    // Without deferred blobs an empty collection is never counted (the reader skips it), so
    // no database count needs correcting as in `finish`.
    let mut report = tally.finish();
    report.empty_keys_skipped = reader.empty_keys_skipped();
    report.checksum = reader.checksum().unwrap_or(Checksum::NotInVersion);
    report.rdb_len = reader.position();
    Ok(report)
}

fn finish<S: super::Source>(
    reader: &Reader<S>,
    walked: Result<CheckReport>,
    validated: [Validated; 2],
) -> Result<CheckReport> {
    // The first error in file order wins.
    let mut errors: Vec<Error> = Vec::new();
    let mut empty = Vec::new();
    let mut crcs = Vec::new();
    for v in validated {
        errors.extend(v.error);
        empty.extend(v.empty);
        crcs.extend(v.crcs);
    }
    let mut report = match walked {
        Ok(report) => report,
        Err(e) => {
            errors.push(e);
            CheckReport::empty(reader)
        }
    };
    if let Some(first) = errors
        .into_iter()
        .min_by_key(|e| e.offset().unwrap_or(u64::MAX))
    {
        return Err(first);
    }
    for job in &empty {
        let counts = report.databases.entry(job.db).or_default();
        counts.keys -= 1;
        counts.expires -= u64::from(job.has_expire);
        counts.by_type[blob_value_type(job.code) as usize] -= 1;
        report.empty_keys_skipped += 1;
    }
    report.databases.retain(|_, counts| counts.keys > 0);
    report.empty_keys_skipped += reader.empty_keys_skipped();
    report.checksum = match reader.trailer() {
        None => Checksum::NotInVersion,
        Some((_, 0)) => Checksum::NotStored,
        Some((at, stored)) => {
            // The ranges tile [0, at): combine their checksums in file order.
            crcs.sort_unstable_by_key(|&(start, ..)| start);
            let mut covered = 0;
            let mut actual = 0;
            for (start, crc, len) in crcs {
                if start != covered {
                    return Err(Error::corrupt(at, "checksum ranges do not cover the file"));
                }
                actual = crc64_combine(actual, crc, len as u64);
                covered += len;
            }
            if covered as u64 != at {
                return Err(Error::corrupt(at, "checksum ranges do not cover the file"));
            }
            checksum_verdict(at, stored, actual)?
        }
    };
    report.rdb_len = reader.position();
    Ok(report)
}
