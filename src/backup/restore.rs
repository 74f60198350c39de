//! Restoring: a backup (or a plain RDB) is downloaded and verified whole — size and CRC-64 of
//! the compressed bytes, size and CRC-64 of the RDB, every value of the RDB parsed, key counts
//! as the manifest says — before anything is written; then a data folder is staged beside the
//! destination and renamed into place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::manifest::{self, BackupManifest, Checksum};
use super::target::Target;
use crate::aof::manifest::{self as aof_manifest, AofNames, Manifest as AofManifest};
use crate::error::{Error, Result};
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use crate::failpoints;
use crate::rdb::check::{self, CheckReport};
use crate::storage::{FileView, Storage, publish_atomically};

/// What a progress callback is told: the phase, bytes done and bytes in all (0: unknown).
pub type Progress = dyn Fn(Phase, u64, u64) + Send + Sync;

/// Phases of a download and verification, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Download,
    Decompress,
    Check,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Decompress => "decompress",
            Phase::Check => "check",
        }
    }
}

/// An RDB that passed every check, with what the check found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub rdb: FileView,
    pub report: CheckReport,
}

/// Downloads backup `manifest` from `target` and verifies all of it (see the module docs).
/// The error names the backup and what did not match.
pub async fn download_verified(
    target: &Target,
    manifest: &BackupManifest,
    progress: Option<Arc<Progress>>,
) -> Result<Verified> {
    let id = manifest.id.clone();
    let bad = |reason: String| Error::Backup {
        id: id.clone(),
        reason,
    };
    let object = &manifest.object;
    let (size, mut stream) = target.get_stream(object).await?;
    if size != manifest.compressed_bytes {
        return Err(bad(format!(
            "object {object} holds {size} bytes, its manifest says {}",
            manifest.compressed_bytes
        )));
    }
    // The size was checked against the manifest: allocate it, never more.
    let mut compressed = Vec::with_capacity(size as usize);
    let mut hash = Checksum::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if compressed.len() + chunk.len() > size as usize {
            return Err(bad(format!(
                "object {object} grew past {size} bytes while read"
            )));
        }
        hash.update(&chunk);
        compressed.extend_from_slice(&chunk);
        if let Some(progress) = &progress {
            progress(Phase::Download, compressed.len() as u64, size);
        }
    }
    if compressed.len() as u64 != size {
        return Err(bad(format!(
            "object {object} ended after {} of {size} bytes",
            compressed.len()
        )));
    }
    if hash.value() != manifest.compressed_crc64() {
        return Err(bad(format!(
            "object {object} has checksum {}, its manifest says {}",
            manifest::hex64(hash.value()),
            manifest.checksums.compressed
        )));
    }
    let expected = manifest.clone();
    let progress_check = progress.clone();
    tokio::task::spawn_blocking(move || {
        let rdb = decompress(&compressed, &expected, progress.as_deref())?;
        let verified = check_rdb(rdb, &expected.id, progress_check.as_deref())?;
        check_against_manifest(&verified.report, &expected)?;
        Ok(verified)
    })
    .await
    .map_err(|e| bad(format!("the verifying thread failed: {e}")))?
}

/// Decompresses a backup's zstd frame, refusing to produce more than the manifest's size.
fn decompress(
    compressed: &[u8],
    manifest: &BackupManifest,
    progress: Option<&Progress>,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let bad = |reason: String| Error::Backup {
        id: manifest.id.clone(),
        reason: format!("object {}: {reason}", manifest.object),
    };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed)
        .map_err(|e| bad(format!("not a zstd frame: {e}")))?;
    // Backups use a 128 MiB window; a frame asking for more is not one of ours and could
    // make the decoder allocate whatever it asks.
    decoder
        .window_log_max(super::create::WINDOW_LOG)
        .map_err(|e| bad(format!("zstd decoder: {e}")))?;
    let limit = manifest.raw_bytes;
    // A hostile manifest may claim any size: grow with the data beyond a first guess.
    let mut raw = Vec::with_capacity(limit.min(compressed.len() as u64 * 16) as usize);
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = Checksum::new();
    loop {
        let n = decoder
            .read(&mut buf)
            .map_err(|e| bad(format!("damaged zstd data after {} bytes: {e}", raw.len())))?;
        if n == 0 {
            break;
        }
        if raw.len() as u64 + n as u64 > limit {
            return Err(bad(format!(
                "decompresses to more than the {limit} bytes its manifest says"
            )));
        }
        hash.update(&buf[..n]);
        raw.extend_from_slice(&buf[..n]);
        if let Some(progress) = progress {
            progress(Phase::Decompress, raw.len() as u64, limit);
        }
    }
    if raw.len() as u64 != limit {
        return Err(bad(format!(
            "decompresses to {} bytes, its manifest says {limit}",
            raw.len()
        )));
    }
    if hash.value() != manifest.raw_crc64() {
        return Err(bad(format!(
            "the RDB has checksum {}, the manifest says {}",
            manifest::hex64(hash.value()),
            manifest.checksums.raw
        )));
    }
    Ok(raw)
}

/// Parses the whole RDB (every value, the RDB's own checksum).
pub fn check_rdb(rdb: Vec<u8>, what: &str, progress: Option<&Progress>) -> Result<Verified> {
    let total = rdb.len() as u64;
    let view = FileView::from_vec(rdb);
    let report = check::check(view.clone(), &mut |at| {
        if let Some(progress) = progress {
            progress(Phase::Check, at, total);
        }
    })
    .map_err(|e| Error::Backup {
        id: what.to_string(),
        reason: format!("the RDB does not load: {e}"),
    })?;
    if let Some(progress) = progress {
        progress(Phase::Check, total, total);
    }
    Ok(Verified { rdb: view, report })
}

/// The parsed RDB holds what the manifest promises: version and keys per database.
fn check_against_manifest(report: &CheckReport, manifest: &BackupManifest) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::Backup {
            id: manifest.id.clone(),
            reason,
        })
    };
    if report.version != manifest.rdb_version {
        return bad(format!(
            "the RDB is version {}, the manifest says {}",
            report.version, manifest.rdb_version
        ));
    }
    let found: Vec<(u32, u64)> = report
        .databases
        .iter()
        .map(|(&db, counts)| (db, counts.keys))
        .collect();
    let promised: Vec<(u32, u64)> = manifest.databases.iter().map(|d| (d.db, d.keys)).collect();
    if found != promised {
        return bad(format!(
            "the RDB holds keys {found:?} (db, keys), the manifest says {promised:?}"
        ));
    }
    Ok(())
}

/// Where and how a restore writes.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The data folder to create (or, with `force`, replace).
    pub dir: PathBuf,
    /// Replace a non-empty folder: its contents are moved aside (`<dir>.old-<time>`), never
    /// deleted.
    pub force: bool,
    /// The RDB file name (`dbfilename`).
    pub dbfilename: String,
    /// Also write a multi-part AOF whose base is the RDB (`appendonlydir/`), for a node that
    /// starts with `appendonly yes` (it loads the AOF, not `dump.rdb`).
    pub appendonly: Option<AofLayout>,
}

/// Names of the AOF a restore writes.
#[derive(Debug, Clone)]
pub struct AofLayout {
    pub appenddirname: String,
    pub appendfilename: String,
}

impl InstallOptions {
    /// `dump.rdb` in `dir`, no AOF, no force.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        InstallOptions {
            dir: dir.into(),
            force: false,
            dbfilename: "dump.rdb".into(),
            appendonly: None,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub dir: PathBuf,
    /// Files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// Where the old contents went (`force` on a non-empty folder).
    pub moved_aside: Option<PathBuf>,
}

/// Refuses early (before any download) a destination a restore would refuse later.
pub fn check_destination(storage: &dyn Storage, options: &InstallOptions) -> Result<()> {
    match destination_state(storage, &options.dir)? {
        Destination::NonEmpty if !options.force => Err(Error::InvalidArgument(format!(
            "{} is not empty: restore into a new folder, or pass --force to move its contents \
             aside (they are kept)",
            options.dir.display()
        ))),
        _ => Ok(()),
    }
}

enum Destination {
    Absent,
    Empty,
    NonEmpty,
}

fn destination_state(storage: &dyn Storage, dir: &Path) -> Result<Destination> {
    match storage.list(dir) {
        Ok(names) if names.is_empty() => Ok(Destination::Empty),
        Ok(_) => Ok(Destination::NonEmpty),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Destination::Absent)
        }
        Err(e) => Err(e),
    }
}

/// Writes a verified RDB as a data folder at `options.dir`: staged in a hidden folder beside
/// it (every file and directory synced), then renamed into place. Until the rename the
/// destination is untouched; a failure removes the staging folder.
pub fn install(storage: &dyn Storage, rdb: &[u8], options: &InstallOptions) -> Result<Installed> {
    let dir = &options.dir;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a folder name", dir.display())))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let state = destination_state(storage, dir)?;
    if matches!(state, Destination::NonEmpty) && !options.force {
        check_destination(storage, options)?;
    }
    storage.create_dir_all(&parent)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let staging = parent.join(format!(".{name}.restore-{}-{stamp}", std::process::id()));
    let mut files = Vec::new();
    let staged = stage(storage, rdb, options, &staging, &mut files).and_then(|()| {
        storage.sync_dir(&parent)?;
        fail::fail_point!(failpoints::RESTORE_BEFORE_RENAME, |_| Err(
            failpoints::injected(failpoints::RESTORE_BEFORE_RENAME)
        ));
        Ok(())
    });
    if let Err(e) = staged {
        remove_tree(storage, &staging);
        return Err(e);
    }
    let mut moved_aside = None;
    match state {
        Destination::Absent => {}
        Destination::Empty => storage.remove_dir(dir)?,
        Destination::NonEmpty => {
            let aside = parent.join(format!("{name}.old-{stamp}"));
            match storage.exchange_dirs(&staging, dir) {
                Ok(()) => {
                    // One atomic step: the new data is in place, the old under the staging
                    // name. Then the old contents get their lasting name.
                    storage.sync_dir(&parent)?;
                    if let Err(e) = after_exchange() {
                        storage.exchange_dirs(&staging, dir)?;
                        storage.sync_dir(&parent)?;
                        remove_tree(storage, &staging);
                        return Err(e);
                    }
                    storage.rename_dir(&staging, &aside)?;
                    storage.sync_dir(&parent)?;
                    storage.sync_dir(dir)?;
                    log_moved_aside(dir, &aside);
                    return Ok(Installed {
                        dir: dir.clone(),
                        files,
                        moved_aside: Some(aside),
                    });
                }
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::Unsupported =>
                {
                    // No atomic exchange on this file system: move the old folder aside, then
                    // rename the new one in (a crash in between leaves the destination
                    // missing and the old contents complete beside it, named in the log).
                    storage.rename_dir(dir, &aside)?;
                    storage.sync_dir(&parent)?;
                    log_moved_aside(dir, &aside);
                    moved_aside = Some(aside);
                }
                Err(e) => {
                    remove_tree(storage, &staging);
                    return Err(e);
                }
            }
        }
    }
    storage.rename_dir(&staging, dir)?;
    storage.sync_dir(&parent)?;
    storage.sync_dir(dir)?;
    Ok(Installed {
        dir: dir.clone(),
        files,
        moved_aside,
    })
}

/// The fail point right after the atomic exchange of a forced restore.
fn after_exchange() -> Result<()> {
    fail::fail_point!(failpoints::RESTORE_AFTER_EXCHANGE, |_| Err(
        failpoints::injected(failpoints::RESTORE_AFTER_EXCHANGE)
    ));
    Ok(())
}

fn log_moved_aside(dir: &Path, aside: &Path) {
    tracing::warn!(
        "restore: the old contents of {} were moved to {}",
        dir.display(),
        aside.display()
    );
}

/// Writes the data folder's files into `staging`, each durable.
fn stage(
    storage: &dyn Storage,
    rdb: &[u8],
    options: &InstallOptions,
    staging: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<()> {
    storage.create_dir_all(staging)?;
    let write_rdb = |path: &Path| publish_atomically(storage, path, |file| file.write_all(rdb));
    write_rdb(&staging.join(&options.dbfilename))?;
    files.push(PathBuf::from(&options.dbfilename));
    if let Some(aof) = &options.appendonly {
        // A multi-part AOF whose base is the RDB and whose incr is empty, as Redis 7 writes it
        // after a rewrite: `redis-server --appendonly yes` and keeper load it.
        let aof_dir = staging.join(&aof.appenddirname);
        storage.create_dir_all(&aof_dir)?;
        let names = AofNames::new(&aof.appendfilename);
        let mut layout = AofManifest::default();
        let base = layout.set_new_base(&names, true).name.clone();
        let incr = layout.add_incr(&names).name.clone();
        write_rdb(&aof_dir.join(&base))?;
        let mut file = storage.create(&aof_dir.join(&incr))?;
        file.sync_data()?;
        drop(file);
        storage.sync_dir(&aof_dir)?;
        aof_manifest::persist(storage, &aof_dir, &names, &layout)?;
        for f in [base, incr, names.manifest_name()] {
            files.push(Path::new(&aof.appenddirname).join(f));
        }
    }
    storage.sync_dir(staging)
}

/// Best-effort removal of a staging folder (two levels: the data folder and the AOF folder).
fn remove_tree(storage: &dyn Storage, dir: &Path) {
    let Ok(names) = storage.list(dir) else {
        return;
    };
    for name in names {
        let path = dir.join(&name);
        if storage.remove(&path).is_err() {
            remove_tree(storage, &path);
        }
    }
    let _ = storage.remove_dir(dir);
}

/// Reads a plain RDB to restore from: a local path or `file://` path, or an object URL of a
/// target (`s3://bucket/key.rdb`). Returns its bytes and a name for messages.
pub async fn fetch_rdb_object(url: &str) -> Result<(Vec<u8>, String)> {
    if let Some((base, object)) = split_object_url(url) {
        let target = Target::parse(&base)?;
        let bytes: Bytes = target.get(&object).await?;
        return Ok((bytes.to_vec(), url.to_string()));
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| Error::io(path, "read the RDB to restore", e))?;
    Ok((bytes, path.to_string()))
}

/// `s3://bucket/dir/dump.rdb` → (`s3://bucket/dir`, `dump.rdb`); `None` for local paths.
fn split_object_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    let (dir, object) = match key.rsplit_once('/') {
        Some((dir, object)) => (format!("s3://{bucket}/{dir}"), object.to_string()),
        None => (format!("s3://{bucket}"), key.to_string()),
    };
    Some((dir, object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupKind;
    use crate::backup::create::{CreateRequest, RdbSource, create};
    use crate::backup::manifest::{Source, SourceKind};

    /// Backs `rdb` up as `id`, trusting `report` (as for bytes checked already).
    async fn back_up(target: &Target, id: &str, rdb: Vec<u8>, report: CheckReport) {
        let request = CreateRequest {
            id: Some(id.into()),
            kind: BackupKind::Manual,
            created: chrono::Utc::now(),
            source: Source {
                kind: SourceKind::Node,
                name: "unit".into(),
                replid: None,
                offset: None,
            },
            level: 1,
        };
        let source = RdbSource::Checked {
            rdb: FileView::from_vec(rdb),
            report,
        };
        create(target, request, source, None).await.unwrap();
    }

    /// Every byte of the RDB is parsed while it is decompressed: a backup whose checksums
    /// all agree with its bytes but whose RDB is damaged (here, made from a damaged RDB) is
    /// refused; the good one beside it verifies with its counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_rdb_that_does_not_load_is_refused_even_when_its_checksums_agree() {
        let mut store = crate::store::Store::new(16);
        for i in 0..2000 {
            let key = crate::store::own(format!("key:{i}").as_bytes());
            let value = crate::store::Value::String(crate::store::own(&[b'v'; 50]));
            store.insert(i % 3, key, value, None);
        }
        let options = crate::snapshot::SaveOptions::default();
        let (rdb, _) =
            crate::snapshot::write_rdb_stream(Vec::new(), &store.snapshot(), &options).unwrap();
        let report = check::check(FileView::from_vec(rdb.clone()), &mut |_| {}).unwrap();
        let mut damaged = rdb.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x20;

        let target = Target::parse("memory://").unwrap();
        back_up(&target, "good", rdb.clone(), report.clone()).await;
        back_up(&target, "bad", damaged, report).await;
        let catalog = crate::backup::catalog::list(&target).await.unwrap();
        let manifest = |id: &str| catalog.backups.iter().find(|b| b.id == id).unwrap();

        let verified = download_verified(&target, manifest("good"), None)
            .await
            .unwrap();
        assert_eq!(&verified.rdb[..], &rdb[..]);
        let keys: u64 = verified.report.databases.values().map(|d| d.keys).sum();
        assert_eq!(keys, 2000);
        let refused = download_verified(&target, manifest("bad"), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("does not load"), "{refused}");
    }

    #[test]
    fn object_urls_split_into_target_and_name() {
        assert_eq!(
            split_object_url("s3://b/x/y/dump.rdb"),
            Some(("s3://b/x/y".into(), "dump.rdb".into()))
        );
        assert_eq!(
            split_object_url("s3://b/dump.rdb"),
            Some(("s3://b".into(), "dump.rdb".into()))
        );
        assert_eq!(split_object_url("/tmp/dump.rdb"), None);
    }
}
