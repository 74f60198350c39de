//! The node's backups: the scheduler (automatic backups in the daily window or on the cron
//! schedule, then pruning), the final backup at shutdown, and what `INFO backup` shows.
//!
//! A backup takes an O(1) snapshot under the engine lock and does everything else (RDB
//! writing, compression, upload, verification) outside it, so clients are served meanwhile.
//! At most one backup runs at a time.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Shared;
use crate::backup::BackupKind;
use crate::backup::catalog;
use crate::backup::create::{self, CreateRequest, RdbSource};
use crate::backup::manifest::{BackupManifest, Source, SourceKind};
use crate::backup::target::Target;
use crate::error::{Error, Result};
use crate::rdb::ReplicationInfo;
use crate::snapshot::SaveOptions;

/// How often the scheduler looks at the configuration and the clock at least.
const TICK: Duration = Duration::from_secs(10);

/// What `INFO backup` reports.
#[derive(Debug, Default)]
pub(crate) struct BackupStatus {
    /// The backup running now: id and start.
    pub in_progress: Option<(String, Instant)>,
    pub last: Option<LastBackup>,
    /// When the scheduler will make the next automatic backup.
    pub next_due: Option<DateTime<Utc>>,
    /// Creation time of the newest automatic backup in the target (read from its catalog at
    /// start, then kept).
    pub last_automatic: Option<DateTime<Utc>>,
    /// The target the catalog was read from (re-read when `backup-target` changes).
    pub catalog_of: Option<String>,
    pub succeeded: u64,
    pub failed: u64,
    pub pruned: u64,
}

/// The outcome of the last backup.
#[derive(Debug, Clone)]
pub(crate) struct LastBackup {
    pub id: String,
    pub kind: BackupKind,
    pub finished: DateTime<Utc>,
    pub elapsed: Duration,
    pub result: std::result::Result<BackupManifest, String>,
}

/// Shared by the scheduler, SHUTDOWN and INFO.
#[derive(Debug, Default)]
pub(crate) struct Backups {
    status: Mutex<BackupStatus>,
    /// Held while a backup runs: one at a time.
    running: tokio::sync::Mutex<()>,
}

impl Backups {
    pub fn status(&self) -> std::sync::MutexGuard<'_, BackupStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Makes a backup of the node now into `backup-target`.
pub(crate) async fn backup_now(
    shared: &Arc<Shared>,
    kind: BackupKind,
    id: Option<String>,
) -> Result<BackupManifest> {
    let backups = &shared.backups;
    let _one_at_a_time = backups.running.lock().await;
    let (target_url, snapshot, replid, offset) = {
        let state = shared.lock();
        let engine = &state.engine;
        (
            engine.config().backup_target.clone(),
            engine.store().one_pass_snapshot(),
            engine.replid().to_string(),
            engine.repl_offset(),
        )
    };
    if target_url.is_empty() {
        return Err(Error::InvalidArgument(
            "no backup-target is configured".into(),
        ));
    }
    let created = Utc::now();
    let id = id.unwrap_or_else(|| crate::backup::manifest::default_id(kind, created));
    backups.status().in_progress = Some((id.clone(), Instant::now()));
    let started = Instant::now();
    let result = async {
        let target = Target::parse(&target_url)?;
        let request = CreateRequest {
            id: Some(id.clone()),
            kind,
            created,
            source: Source {
                kind: SourceKind::Node,
                name: format!("keeper server port {}", shared.port),
                replid: Some(replid.clone()),
                offset: Some(offset),
            },
            level: create::DEFAULT_LEVEL,
        };
        let options = SaveOptions {
            // zstd compresses plain strings better than LZF'd ones, and faster.
            compression: false,
            replication: Some(ReplicationInfo {
                id: replid,
                offset,
                stream_db: 0,
            }),
            ..SaveOptions::default()
        };
        let source = RdbSource::Snapshot {
            snapshot: Box::new(snapshot),
            options,
        };
        create::create(&target, request, source, None).await
    }
    .await;
    let mut status = backups.status();
    status.in_progress = None;
    match &result {
        Ok(manifest) => {
            status.succeeded += 1;
            if kind == BackupKind::Automatic {
                status.last_automatic = Some(manifest.created);
            }
        }
        Err(e) => {
            status.failed += 1;
            tracing::warn!("Backup {id} ({kind}) failed: {e}");
        }
    }
    status.last = Some(LastBackup {
        id,
        kind,
        finished: Utc::now(),
        elapsed: started.elapsed(),
        result: result
            .as_ref()
            .map(Clone::clone)
            .map_err(ToString::to_string),
    });
    result
}

/// The scheduler: runs until the server stops.
pub(crate) async fn scheduler(shared: Arc<Shared>) {
    let since = Utc::now();
    loop {
        if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let sleep = match tick(&shared, since).await {
            Ok(sleep) => sleep,
            Err(e) => {
                tracing::warn!("Backup scheduler: {e}");
                TICK
            }
        };
        tokio::time::sleep(sleep.min(TICK)).await;
    }
}

/// One look at the clock: backs up and prunes when due. Returns how long to sleep.
async fn tick(shared: &Arc<Shared>, since: DateTime<Utc>) -> Result<Duration> {
    let (target_url, schedule, retention) = {
        let state = shared.lock();
        let config = state.engine.config();
        (
            config.backup_target.clone(),
            config.backup_schedule().clone(),
            config.backup_retention_days,
        )
    };
    if target_url.is_empty() || !retention.automatic_backups_enabled() {
        shared.backups.status().next_due = None;
        return Ok(TICK);
    }
    let needs_catalog = shared.backups.status().catalog_of.as_deref() != Some(&target_url);
    if needs_catalog {
        let target = Target::parse(&target_url)?;
        let catalog = catalog::list(&target).await?;
        let newest = catalog
            .backups
            .iter()
            .filter(|b| b.kind == BackupKind::Automatic)
            .map(|b| b.created)
            .max();
        let mut status = shared.backups.status();
        status.last_automatic = newest;
        status.catalog_of = Some(target_url.clone());
    }
    let now = Utc::now();
    let last_automatic = shared.backups.status().last_automatic;
    if schedule.due(now, last_automatic, since) {
        let made = backup_now(shared, BackupKind::Automatic, None).await;
        let target = Target::parse(&target_url)?;
        // Prune after a backup (even a failed one: expired backups still expire, and the
        // newest valid one is never deleted).
        let pruned = catalog::prune(&target, retention, Utc::now(), &[]).await?;
        shared.backups.status().pruned += pruned.deleted.len() as u64;
        if made.is_err() {
            // Do not retry at once: the window is still open, try again a tick later.
            return Ok(TICK * 6);
        }
    }
    let last_automatic = shared.backups.status().last_automatic;
    let next = schedule.next_due(Utc::now(), last_automatic, since);
    shared.backups.status().next_due = Some(next);
    Ok((next - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// The `# Backup` section of INFO.
pub(crate) fn info_fields(
    shared: &Shared,
    target: &str,
    schedule: &str,
    retention: u32,
) -> Vec<(&'static str, String)> {
    let status = shared.backups.status();
    let unix = |t: &DateTime<Utc>| t.timestamp().to_string();
    let mut fields = vec![
        ("backup_target", target.to_string()),
        ("backup_schedule", schedule.to_string()),
        ("backup_retention_days", retention.to_string()),
        (
            "backup_in_progress",
            u8::from(status.in_progress.is_some()).to_string(),
        ),
        (
            "backup_current_id",
            status
                .in_progress
                .as_ref()
                .map(|(id, _)| id.clone())
                .unwrap_or_default(),
        ),
        (
            "backup_next_time",
            status
                .next_due
                .as_ref()
                .map(unix)
                .unwrap_or_else(|| "-1".into()),
        ),
        ("backup_succeeded", status.succeeded.to_string()),
        ("backup_failed", status.failed.to_string()),
        ("backup_pruned", status.pruned.to_string()),
    ];
    match &status.last {
        None => fields.push(("backup_last_status", "none".into())),
        Some(last) => {
            fields.push((
                "backup_last_status",
                if last.result.is_ok() { "ok" } else { "err" }.into(),
            ));
            fields.push(("backup_last_id", last.id.clone()));
            fields.push(("backup_last_kind", last.kind.to_string()));
            fields.push(("backup_last_time", unix(&last.finished)));
            fields.push((
                "backup_last_duration_ms",
                last.elapsed.as_millis().to_string(),
            ));
            match &last.result {
                Ok(manifest) => {
                    fields.push(("backup_last_keys", manifest.keys.to_string()));
                    fields.push(("backup_last_bytes", manifest.compressed_bytes.to_string()));
                    fields.push(("backup_last_rdb_bytes", manifest.raw_bytes.to_string()));
                }
                Err(e) => fields.push(("backup_last_error", e.replace(['\r', '\n'], " "))),
            }
        }
    }
    fields
}
