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
