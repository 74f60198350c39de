//! Making a backup: an RDB (written from a snapshot, or bytes already checked) is hashed,
//! compressed and hashed again on a blocking thread while the upload runs, then read back,
//! published and catalogued (the module docs list the steps).

use std::io::{self, Write};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::BackupKind;
use super::manifest::{
    self, BackupManifest, COMPRESSION, Checksum, Checksums, DatabaseKeys, FORMAT, Source,
};
use super::target::Target;
use crate::dataset::DatasetSnapshot;
use crate::error::{Error, Result};
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use crate::failpoints;
use crate::rdb::check::CheckReport;
use crate::snapshot::{self, SaveOptions};
use crate::storage::FileView;

/// Bytes handed from the compressing thread to the upload at a time.
const CHUNK: usize = 4 << 20;

/// Chunks in flight between the compressor and the upload (bounds memory to a few chunks).
const CHUNKS_IN_FLIGHT: usize = 4;

/// zstd window of backups, log2 (128 MiB): the largest every decoder takes by default.
pub const WINDOW_LOG: u32 = 27;

/// The object prefix of uploads in progress.
pub const INCOMPLETE: &str = "incomplete/";

/// zstd level of backups: with long-distance matching, level 1 already compresses a typical
/// RDB to well under Redis's LZF size; higher levels cost more time than they save bytes
/// (level 3: 9% smaller, 75% slower on the mixed benchmark dataset).
pub const DEFAULT_LEVEL: i32 = 1;

/// What to back up.
pub enum RdbSource {
    /// A point-in-time view, written as RDB while it is compressed (never as a file).
    Snapshot {
        snapshot: Box<dyn DatasetSnapshot + Send>,
        options: SaveOptions,
    },
    /// An RDB whose every byte was already checked ([`crate::rdb::check::check`]); the
    /// report gives its version and key counts.
    Checked { rdb: FileView, report: CheckReport },
    /// An RDB arriving in chunks (a transfer from a live node): compressed, uploaded and
    /// checked ([`crate::rdb::check::check_stream`], on a thread of its own) as it comes,
    /// never held whole; nothing is published unless the check passes at the end. `name`
    /// says where it comes from, for errors. The channel is bounded, so a transfer faster
    /// than the compressor waits instead of filling memory.
    Streamed {
        chunks: mpsc::Receiver<Bytes>,
        name: String,
    },
}

/// A backup to make.
pub struct CreateRequest {
    /// The backup's id; default [`manifest::default_id`].
    pub id: Option<String>,
    pub kind: BackupKind,
    /// The data's point in time.
    pub created: DateTime<Utc>,
    pub source: Source,
    /// zstd level (default [`DEFAULT_LEVEL`]).
    pub level: i32,
}

/// Progress of a backup, for progress bars: raw bytes compressed so far.
pub type Progress = dyn Fn(u64) + Send + Sync;

/// Makes a backup in `target` and returns its manifest. On any error, nothing is added to the
/// catalog and the upload's object is removed (a crash may leave it under `incomplete/`).
pub async fn create(
    target: &Target,
    request: CreateRequest,
    source: RdbSource,
    progress: Option<std::sync::Arc<Progress>>,
) -> Result<BackupManifest> {
    let started = Instant::now();
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| manifest::default_id(request.kind, request.created));
    manifest::validate_id(&id)?;
    let manifest_name = BackupManifest::manifest_name(&id);
    let data_name = BackupManifest::data_name(&id);
    let temp_name = format!("{INCOMPLETE}{data_name}");
    if target.head(&manifest_name).await?.is_some() {
        return Err(Error::Backup {
            id,
            reason: format!("already exists in {}", target.url()),
        });
    }
    let mut upload = target.upload(&temp_name).await?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let level = request.level;
    let producer = tokio::task::spawn_blocking(move || produce(source, level, tx, progress));
    // Upload chunks as they come; on an upload error, stop receiving so the producer stops.
    let mut upload_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = upload.write(&chunk).await {
            upload_error = Some(e);
            break;
        }
    }
    drop(rx);
    let produced = producer.await.map_err(|e| Error::Backup {
        id: id.clone(),
        reason: format!("the compressing thread failed: {e}"),
    })?;
    let packed = match (produced, upload_error) {
        (_, Some(e)) | (Err(e), None) => {
            let _ = upload.abort().await;
            return Err(e);
        }
        (Ok(packed), None) => packed,
    };
    let uploaded = upload.finish().await?;
    let outcome = async {
        verify_object(
            target,
            &id,
            &temp_name,
            packed.compressed_bytes,
            packed.compressed_crc,
        )
        .await?;
        debug_assert_eq!(uploaded, packed.compressed_bytes);
        fail::fail_point!(failpoints::BACKUP_BEFORE_PUBLISH, |_| Err(
            failpoints::injected(failpoints::BACKUP_BEFORE_PUBLISH)
        ));
        target.rename(&temp_name, &data_name).await
    }
    .await;
    if let Err(e) = outcome {
        let _ = target.delete(&temp_name).await;
        return Err(e);
    }
    let keys = packed.databases.iter().map(|d| d.keys).sum();
    let manifest = BackupManifest {
        format: FORMAT,
        id: id.clone(),
        kind: request.kind,
        created: request.created,
        source: request.source,
        rdb_version: packed.rdb_version,
        databases: packed.databases,
        keys,
        raw_bytes: packed.raw_bytes,
        compressed_bytes: packed.compressed_bytes,
        compression: COMPRESSION.into(),
        checksums: Checksums::new(packed.raw_crc, packed.compressed_crc),
        keeper_version: env!("CARGO_PKG_VERSION").into(),
        object: data_name.clone(),
    };
    let published = async {
        fail::fail_point!(failpoints::BACKUP_BEFORE_MANIFEST, |_| Err(
            failpoints::injected(failpoints::BACKUP_BEFORE_MANIFEST)
        ));
        target
            .put(&manifest_name, Bytes::from(manifest.to_json()))
            .await
    }
    .await;
    if let Err(e) = published {
        // Without its manifest the data object is not a backup: remove it (pruning would).
        let _ = target.delete(&data_name).await;
        return Err(e);
    }
    tracing::info!(
        "Backup {id} ({}) stored in {}: {keys} keys, {} bytes of RDB in {} ({:.1}%), {:.2?}",
        manifest.kind,
        target.url(),
        manifest.raw_bytes,
        manifest.compressed_bytes,
        100.0 * manifest.compressed_bytes as f64 / manifest.raw_bytes.max(1) as f64,
        started.elapsed()
    );
    Ok(manifest)
}

/// Reads the object `name` back and checks its size and CRC-64 against what was sent.
pub(crate) async fn verify_object(
    target: &Target,
    id: &str,
    name: &str,
    bytes: u64,
    crc: u64,
) -> Result<()> {
    let (size, mut stream) = target.get_stream(name).await?;
    let mut hash = Checksum::new();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        read += chunk.len() as u64;
        hash.update(&chunk);
    }
    let mismatch = |reason: String| {
        Err(Error::Backup {
            id: id.to_string(),
            reason: format!("object {name} in {}: {reason}", target.url()),
        })
    };
    if size != bytes || read != bytes {
        return mismatch(format!(
            "holds {read} bytes (listed as {size}), {bytes} were written"
        ));
    }
    if hash.value() != crc {
        return mismatch(format!(
            "checksum {} differs from {} of the bytes written",
            manifest::hex64(hash.value()),
            manifest::hex64(crc)
        ));
    }
    Ok(())
}

/// What the compressing thread made.
struct Packed {
    rdb_version: u32,
    databases: Vec<DatabaseKeys>,
    raw_bytes: u64,
    raw_crc: u64,
    compressed_bytes: u64,
    compressed_crc: u64,
}

/// Writes the RDB of `source` through the hashing compressor into `tx` (runs on a blocking
/// thread).
fn produce(
    source: RdbSource,
    level: i32,
    tx: mpsc::Sender<Bytes>,
    progress: Option<std::sync::Arc<Progress>>,
) -> Result<Packed> {
    let sink = ChunkSender {
        tx,
        buf: Vec::with_capacity(CHUNK),
        hash: Checksum::new(),
        bytes: 0,
    };
    let mut packer = Packer::new(sink, level, progress)?;
    let (rdb_version, databases) = match source {
        RdbSource::Snapshot { snapshot, options } => {
            let version = options.rdb_version;
            let (packer_back, written) = snapshot::write_rdb_stream(packer, &*snapshot, &options)?;
            packer = packer_back;
            let databases = written
                .databases
                .into_iter()
                .map(|(db, keys, expires)| DatabaseKeys { db, keys, expires })
                .collect();
            (version, databases)
        }
        RdbSource::Checked { rdb, report } => {
            for piece in rdb[..report.rdb_len as usize].chunks(CHUNK) {
                packer.write_all(piece).map_err(io_error)?;
            }
            (report.version, counts(&report))
        }
        RdbSource::Streamed { mut chunks, name } => {
            let report = std::thread::scope(|scope| -> Result<CheckReport> {
                let (to_check, checked) = std::sync::mpsc::sync_channel::<Bytes>(CHUNKS_IN_FLIGHT);
                let checker = std::thread::Builder::new()
                    .name("keeper-backup-check".into())
                    .spawn_scoped(scope, move || {
                        crate::rdb::check::check_stream(ChunkReader::new(checked), &mut |_| {})
                    })
                    .map_err(|e| Error::io("backup check thread", "spawn", e))?;
                let mut sent = 0u64;
                while let Some(chunk) = chunks.blocking_recv() {
                    packer.write_all(&chunk).map_err(io_error)?;
                    sent += chunk.len() as u64;
                    if to_check.send(chunk).is_err() {
                        // The check ended: at an error, or at the RDB's end with bytes left
                        // (then it read fewer than `sent`, caught below).
                        break;
                    }
                }
                drop(to_check);
                let bad = |reason: String| Error::Backup {
                    id: name.clone(),
                    reason,
                };
                let report = checker
                    .join()
                    .map_err(|_| bad("the checking thread panicked".into()))?
                    .map_err(|e| bad(format!("the RDB does not load: {e}")))?;
                if report.rdb_len != sent {
                    return Err(bad(format!(
                        "bytes follow the end of the RDB at offset {}",
                        report.rdb_len
                    )));
                }
                Ok(report)
            })?;
            (report.version, counts(&report))
        }
    };
    let (raw_bytes, raw_crc, mut sink) = packer.finish()?;
    sink.send_buffered()?;
    Ok(Packed {
        rdb_version,
        databases,
        raw_bytes,
        raw_crc,
        compressed_bytes: sink.bytes,
        compressed_crc: sink.hash.value(),
    })
}

/// The bytes of a channel of chunks, as one stream (what the streaming check reads).
struct ChunkReader {
    chunks: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    fn new(chunks: std::sync::mpsc::Receiver<Bytes>) -> Self {
        ChunkReader {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.recv() {
                Ok(chunk) => self.current = chunk,
                // The sender is gone: the transfer ended (or failed); the check sees the end.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// Keys per database of a checked RDB, as the manifest records them.
fn counts(report: &CheckReport) -> Vec<DatabaseKeys> {
    report
        .databases
        .iter()
        .map(|(&db, counts)| DatabaseKeys {
            db,
            keys: counts.keys,
            expires: counts.expires,
        })
        .collect()
}

fn io_error(e: io::Error) -> Error {
    // Errors of our own sinks travel through io::Error as `other`: unwrap them.
    match e.downcast::<Error>() {
        Ok(inner) => inner,
        Err(e) => Error::Io {
            path: None,
            op: "compress the backup",
            source: e,
        },
    }
}

/// The raw side: hashes and counts the RDB bytes, feeds the zstd encoder.
struct Packer {
    encoder: zstd::stream::write::Encoder<'static, ChunkSender>,
    hash: Checksum,
    bytes: u64,
    progress: Option<std::sync::Arc<Progress>>,
    reported: u64,
}

impl Packer {
    fn new(
        sink: ChunkSender,
        level: i32,
        progress: Option<std::sync::Arc<Progress>>,
    ) -> Result<Packer> {
        let mut encoder = zstd::stream::write::Encoder::new(sink, level).map_err(io_error)?;
        // The frame records its checksum too, so `zstd -t` can check a downloaded backup.
        encoder.include_checksum(true).map_err(io_error)?;
        // Caches repeat themselves across far more than level 1's 512 KiB window (the same
        // templates, ids and payloads in millions of keys): long-distance matching over a
        // 128 MiB window finds them at little cost (on the mixed benchmark dataset: 45% of
        // Redis's dump.rdb instead of 70%). 2^27 is what every zstd decoder accepts by
        // default (`zstd -d` without --long).
        encoder.long_distance_matching(true).map_err(io_error)?;
        encoder.window_log(WINDOW_LOG).map_err(io_error)?;
        // One compression worker: the RDB is written on this thread while the worker
        // compresses, so the two overlap instead of taking turns.
        encoder.multithread(1).map_err(io_error)?;
        Ok(Packer {
            encoder,
            hash: Checksum::new(),
            bytes: 0,
            progress,
            reported: 0,
        })
    }

    fn finish(self) -> Result<(u64, u64, ChunkSender)> {
        let sink = self.encoder.finish().map_err(io_error)?;
        if let Some(progress) = &self.progress {
            progress(self.bytes);
        }
        Ok((self.bytes, self.hash.value(), sink))
    }
}

impl Write for Packer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if let Some(progress) = &self.progress
            && self.bytes - self.reported >= CHUNK as u64
        {
            self.reported = self.bytes;
            progress(self.bytes);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// The compressed side: hashes and counts, and sends [`CHUNK`]-sized pieces to the upload.
struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    hash: Checksum,
    bytes: u64,
}

impl ChunkSender {
    fn send_buffered(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| Error::Io {
                path: None,
                op: "upload the backup",
                source: io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"),
            })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send_buffered().map_err(io::Error::other)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
