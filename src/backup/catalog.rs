//! The catalog of a target: its manifests. Listing, choosing, verifying, deleting, pruning
//! and exporting backups.
//!
//! Deleting removes the manifest first (the backup leaves the catalog at once, atomically),
//! then the data object; a crash in between leaves a data object without a manifest, which is
//! not a backup and which pruning removes once it is old enough not to be an upload in
//! progress ([`ORPHAN_AGE`]). So the catalog is consistent after a crash at any step.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;

use super::BackupKind;
use super::create::{INCOMPLETE, verify_object};
use super::manifest::{BackupManifest, DATA_SUFFIX, MANIFEST_SUFFIX};
use super::restore::{self, Progress, Verified};
use super::schedule::{PruneCandidate, Retention, prune_plan};
use super::target::{ObjectInfo, Target};
use crate::error::{Error, Result};
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use crate::failpoints;

/// A data object without a manifest, or an upload under `incomplete/`, younger than this may
/// be a backup in progress: pruning leaves it alone.
pub const ORPHAN_AGE: Duration = Duration::hours(24);

/// What a target holds.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Backups whose manifest reads, oldest first (by creation time, then id).
    pub backups: Vec<BackupManifest>,
    /// Manifests that do not read: `(object, error)`.
    pub unreadable: Vec<(String, String)>,
    /// Objects that are not part of any backup: data objects without a manifest, uploads
    /// left under `incomplete/`.
    pub orphans: Vec<ObjectInfo>,
}

impl Catalog {
    /// The backup `id`.
    pub fn get(&self, id: &str) -> Option<&BackupManifest> {
        self.backups.iter().find(|b| b.id == id)
    }

    /// The newest backup.
    pub fn latest(&self) -> Option<&BackupManifest> {
        self.backups.last()
    }

    /// The newest backup created at or before `time`.
    pub fn latest_before(&self, time: DateTime<Utc>) -> Option<&BackupManifest> {
        self.backups.iter().rev().find(|b| b.created <= time)
    }
}

/// Reads the catalog of `target`: every manifest, and what is left over.
pub async fn list(target: &Target) -> Result<Catalog> {
    let objects = target.list("").await?;
    let mut catalog = Catalog::default();
    let mut data_objects = Vec::new();
    for object in &objects {
        if object.name.starts_with(INCOMPLETE) {
            catalog.orphans.push(object.clone());
        } else if object.name.ends_with(MANIFEST_SUFFIX) && !object.name.contains('/') {
            let read = target
                .get(&object.name)
                .await
                .and_then(|bytes| BackupManifest::from_json(&bytes, &object.name));
            match read {
                Ok(manifest) => catalog.backups.push(manifest),
                Err(e) => catalog
                    .unreadable
                    .push((object.name.clone(), e.to_string())),
            }
        } else if object.name.ends_with(DATA_SUFFIX) && !object.name.contains('/') {
            data_objects.push(object.clone());
        }
    }
    for object in data_objects {
        let id = object.name.trim_end_matches(DATA_SUFFIX);
        let listed = catalog.backups.iter().any(|b| b.id == id)
            || catalog
                .unreadable
                .iter()
                .any(|(m, _)| m.trim_end_matches(MANIFEST_SUFFIX) == id);
        if !listed {
            catalog.orphans.push(object);
        }
    }
    catalog
        .backups
        .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(catalog)
}

/// Which backup a command means.
#[derive(Debug, Clone)]
pub enum Selector {
    Id(String),
    Latest,
    /// The newest created at or before this time.
    Before(DateTime<Utc>),
}

/// The manifest of the backup `selector` means, or an error saying there is none.
pub async fn resolve(target: &Target, selector: &Selector) -> Result<BackupManifest> {
    let catalog = list(target).await?;
    let found = match selector {
        Selector::Id(id) => catalog.get(id),
        Selector::Latest => catalog.latest(),
        Selector::Before(time) => catalog.latest_before(*time),
    };
    found.cloned().ok_or_else(|| Error::Backup {
        id: match selector {
            Selector::Id(id) => id.clone(),
            Selector::Latest => "latest".into(),
            Selector::Before(time) => format!("before {}", time.to_rfc3339()),
        },
        reason: format!(
            "no such backup in {} ({} backups there)",
            target.url(),
            catalog.backups.len()
        ),
    })
}

/// Downloads backup `id` and checks all of it, as a restore would (writes nothing).
pub async fn verify(
    target: &Target,
    id: &str,
    progress: Option<Arc<Progress>>,
) -> Result<(BackupManifest, Verified)> {
    let manifest = resolve(target, &Selector::Id(id.to_string())).await?;
    let verified = restore::download_verified(target, &manifest, progress).await?;
    Ok((manifest, verified))
}

/// Deletes backup `id`: its manifest first, then its data object.
pub async fn delete(target: &Target, id: &str) -> Result<BackupManifest> {
    let manifest = resolve(target, &Selector::Id(id.to_string())).await?;
    delete_manifest_then_data(target, &manifest.id).await?;
    Ok(manifest)
}

async fn delete_manifest_then_data(target: &Target, id: &str) -> Result<()> {
    target.delete(&BackupManifest::manifest_name(id)).await?;
    fail::fail_point!(failpoints::BACKUP_DELETE_BEFORE_DATA, |_| Err(
        failpoints::injected(failpoints::BACKUP_DELETE_BEFORE_DATA)
    ));
    target.delete(&BackupManifest::data_name(id)).await
}

/// What pruning did.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Backups deleted (expired automatic backups), oldest first.
    pub deleted: Vec<BackupManifest>,
    /// Leftover objects removed (older than [`ORPHAN_AGE`]).
    pub orphans_removed: Vec<String>,
}

/// Deletes the automatic backups `retention` lets expire (never manual or final ones, never the
/// newest valid backup, never one in `in_progress`), then leftovers older than [`ORPHAN_AGE`].
/// A backup whose data object is missing or of the wrong size counts as not valid.
pub async fn prune(
    target: &Target,
    retention: Retention,
    now: DateTime<Utc>,
    in_progress: &[String],
) -> Result<Pruned> {
    let catalog = list(target).await?;
    let objects = target.list("").await?;
    let size_of = |name: &str| objects.iter().find(|o| o.name == name).map(|o| o.size);
    let candidates: Vec<PruneCandidate> = catalog
        .backups
        .iter()
        .map(|b| PruneCandidate {
            id: b.id.clone(),
            kind: b.kind,
            created: b.created,
            valid: size_of(&b.object) == Some(b.compressed_bytes),
        })
        .collect();
    let mut pruned = Pruned::default();
    for id in prune_plan(&candidates, now, retention, in_progress) {
        if let Some(manifest) = catalog.get(&id) {
            debug_assert_eq!(manifest.kind, BackupKind::Automatic);
            delete_manifest_then_data(target, &id).await?;
            tracing::info!("Backup {id} expired (created {})", manifest.created);
            pruned.deleted.push(manifest.clone());
        }
    }
    for orphan in &catalog.orphans {
        let in_progress_upload = in_progress
            .iter()
            .any(|id| orphan.name.ends_with(&BackupManifest::data_name(id)));
        if !in_progress_upload && now - orphan.last_modified >= ORPHAN_AGE {
            target.delete(&orphan.name).await?;
            pruned.orphans_removed.push(orphan.name.clone());
        }
    }
    Ok(pruned)
}

/// Copies backup `id` from `from` to `to` (e.g. local → S3) with the same protocol as
/// creating one: data under `incomplete/`, read back and checked, renamed, manifest last.
/// The source is verified whole first, so a damaged backup is not copied.
pub async fn export(
    from: &Target,
    id: &str,
    to: &Target,
    progress: Option<Arc<Progress>>,
) -> Result<BackupManifest> {
    let (manifest, _) = verify(from, id, progress).await?;
    if to.head(&BackupManifest::manifest_name(id)).await?.is_some() {
        return Err(Error::Backup {
            id: id.to_string(),
            reason: format!("already exists in {}", to.url()),
        });
    }
    let temp = format!("{INCOMPLETE}{}", manifest.object);
    let (_, mut stream) = from.get_stream(&manifest.object).await?;
    let mut upload = to.upload(&temp).await?;
    let copied: Result<()> = async {
        while let Some(chunk) = stream.next().await {
            upload.write(&chunk?).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = upload.abort().await;
        return Err(e);
    }
    upload.finish().await?;
    let published = async {
        verify_object(
            to,
            id,
            &temp,
            manifest.compressed_bytes,
            manifest.compressed_crc64(),
        )
        .await?;
        to.rename(&temp, &manifest.object).await?;
        to.put(
            &BackupManifest::manifest_name(id),
            Bytes::from(manifest.to_json()),
        )
        .await
    }
    .await;
    if let Err(e) = published {
        let _ = to.delete(&temp).await;
        let _ = to.delete(&manifest.object).await;
        return Err(e);
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::create::{self, CreateRequest, RdbSource};
    use crate::backup::manifest::{Source, SourceKind};
    use crate::snapshot::SaveOptions;
    use crate::store::{Store, Value, own};
    use chrono::TimeZone;

    fn store(keys: usize) -> Store {
        let mut store = Store::new(16);
        for i in 0..keys {
            let value = Value::String(own(format!("value-{i}").as_bytes()));
            store.insert(i % 3, own(format!("k{i}").as_bytes()), value, None);
        }
        store
    }

    async fn make(target: &Target, id: &str, kind: BackupKind, created: DateTime<Utc>) {
        let request = CreateRequest {
            id: Some(id.into()),
            kind,
            created,
            source: Source {
                kind: SourceKind::Node,
                name: "unit".into(),
                replid: None,
                offset: None,
            },
            level: create::DEFAULT_LEVEL,
        };
        let source = RdbSource::Snapshot {
            snapshot: Box::new(store(30).snapshot()),
            options: SaveOptions::default(),
        };
        create::create(target, request, source, None).await.unwrap();
    }

    async fn ids(target: &Target) -> Vec<String> {
        let catalog = list(target).await.unwrap();
        catalog.backups.into_iter().map(|b| b.id).collect()
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 5, 0, 0).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_lists_verifies_and_holds_its_counts() {
        let target = Target::parse("memory://").unwrap();
        make(&target, "one", BackupKind::Manual, day(1)).await;
        let catalog = list(&target).await.unwrap();
        assert_eq!(catalog.backups.len(), 1);
        let manifest = &catalog.backups[0];
        assert_eq!(manifest.keys, 30);
        assert_eq!(
            manifest
                .databases
                .iter()
                .map(|d| (d.db, d.keys))
                .collect::<Vec<_>>(),
            vec![(0, 10), (1, 10), (2, 10)]
        );
        let (_, verified) = verify(&target, "one", None).await.unwrap();
        assert_eq!(verified.rdb.len() as u64, manifest.raw_bytes);
        // The raw checksum tells RDBs apart: Redis's CRC-64 over an RDB that ends with its own
        // CRC is 0 for every one, so backups use another polynomial.
        assert_eq!(crate::rdb::crc::crc64(&verified.rdb), 0);
        let mut raw = crate::backup::manifest::Checksum::new();
        raw.update(&verified.rdb);
        assert_eq!(manifest.raw_crc64(), raw.value());
        assert_ne!(manifest.raw_crc64(), 0);
        // The same id twice is refused, the first stays.
        let again = create::create(
            &target,
            CreateRequest {
                id: Some("one".into()),
                kind: BackupKind::Manual,
                created: day(2),
                source: manifest.source.clone(),
                level: 1,
            },
            RdbSource::Snapshot {
                snapshot: Box::new(store(1).snapshot()),
                options: SaveOptions::default(),
            },
            None,
        )
        .await;
        assert!(again.unwrap_err().to_string().contains("already exists"));
        assert_eq!(list(&target).await.unwrap().backups.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn selectors_pick_by_id_latest_and_time() {
        let target = Target::parse("memory://").unwrap();
        make(&target, "b-2", BackupKind::Automatic, day(2)).await;
        make(&target, "b-1", BackupKind::Automatic, day(1)).await;
        make(&target, "b-3", BackupKind::Manual, day(3)).await;
        let pick = |s: Selector| {
            let target = target.clone();
            async move { resolve(&target, &s).await.map(|m| m.id) }
        };
        assert_eq!(pick(Selector::Latest).await.unwrap(), "b-3");
        assert_eq!(pick(Selector::Before(day(2))).await.unwrap(), "b-2");
        assert_eq!(
            pick(Selector::Before(day(2) + Duration::hours(1)))
                .await
                .unwrap(),
            "b-2"
        );
        assert!(
            pick(Selector::Before(day(1) - Duration::seconds(1)))
                .await
                .is_err()
        );
        assert_eq!(pick(Selector::Id("b-1".into())).await.unwrap(), "b-1");
        let err = pick(Selector::Id("nope".into())).await.unwrap_err();
        assert!(err.to_string().contains("no such backup"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prune_expires_old_automatic_backups_only_and_keeps_the_newest_valid() {
        let target = Target::parse("memory://").unwrap();
        for d in 1..=4 {
            make(&target, &format!("auto-{d}"), BackupKind::Automatic, day(d)).await;
        }
        make(&target, "manual-1", BackupKind::Manual, day(1)).await;
        make(&target, "final-1", BackupKind::Final, day(1)).await;
        // Day 5 with 2 days of retention: automatic backups of days 1 and 2 expire.
        let pruned = prune(&target, Retention::new(2).unwrap(), day(5), &[])
            .await
            .unwrap();
        let deleted: Vec<&str> = pruned.deleted.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(deleted, ["auto-1", "auto-2"]);
        let left = ids(&target).await;
        assert_eq!(left, ["final-1", "manual-1", "auto-3", "auto-4"]);
        // Much later: every automatic backup expired but the newest valid backup stays (the
        // newest is auto-4; the manual and final ones never expire anyway).
        prune(&target, Retention::new(1).unwrap(), day(28), &[])
            .await
            .unwrap();
        let left = ids(&target).await;
        assert_eq!(left, ["final-1", "manual-1", "auto-4"]);
        // A backup whose data object is gone is not valid: it no longer protects itself.
        target.delete("auto-4.rdb.zst").await.unwrap();
        make(&target, "auto-27", BackupKind::Automatic, day(27)).await;
        target.delete("auto-27.rdb.zst").await.unwrap();
        let pruned = prune(&target, Retention::new(1).unwrap(), day(28), &[])
            .await
            .unwrap();
        let deleted: Vec<&str> = pruned.deleted.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            deleted,
            ["auto-4"],
            "the newest valid one is manual-1 or final-1"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leftovers_are_removed_only_once_old() {
        let target = Target::parse("memory://").unwrap();
        make(&target, "kept", BackupKind::Manual, day(1)).await;
        target
            .put("incomplete/new.rdb.zst", Bytes::from_static(b"partial"))
            .await
            .unwrap();
        target
            .put("orphan.rdb.zst", Bytes::from_static(b"no manifest"))
            .await
            .unwrap();
        let catalog = list(&target).await.unwrap();
        assert_eq!(catalog.orphans.len(), 2);
        let now = Utc::now();
        let pruned = prune(&target, Retention::new(1).unwrap(), now, &[])
            .await
            .unwrap();
        assert!(
            pruned.orphans_removed.is_empty(),
            "young leftovers may be in progress"
        );
        let later = now + ORPHAN_AGE + Duration::minutes(1);
        let in_progress = ["new".to_string()];
        let pruned = prune(&target, Retention::new(1).unwrap(), later, &in_progress)
            .await
            .unwrap();
        assert_eq!(pruned.orphans_removed, ["orphan.rdb.zst"]);
        let pruned = prune(&target, Retention::new(1).unwrap(), later, &[])
            .await
            .unwrap();
        assert_eq!(pruned.orphans_removed, ["incomplete/new.rdb.zst"]);
        assert_eq!(list(&target).await.unwrap().backups.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_manifest_that_lies_about_sizes_is_caught_without_a_huge_allocation() {
        let target = Target::parse("memory://").unwrap();
        make(&target, "b", BackupKind::Manual, day(1)).await;
        let mut manifest = resolve(&target, &Selector::Id("b".into())).await.unwrap();
        manifest.raw_bytes = u64::MAX / 2;
        target
            .put("b.json", Bytes::from(manifest.to_json()))
            .await
            .unwrap();
        let err = verify(&target, "b", None).await.unwrap_err().to_string();
        assert!(err.contains("decompresses to"), "{err}");
        manifest.compressed_bytes = 1 << 40;
        target
            .put("b.json", Bytes::from(manifest.to_json()))
            .await
            .unwrap();
        let err = verify(&target, "b", None).await.unwrap_err().to_string();
        assert!(err.contains("manifest says"), "{err}");
    }
}
