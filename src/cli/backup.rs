//! `keeper backup …` and `keeper restore`: backups in a target (a local folder by default,
//! S3-compatible storage with `s3://bucket/prefix`), restores into a fresh data folder.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use keeper::backup::BackupKind;
use keeper::backup::catalog::{self, Selector};
use keeper::backup::create::{self, CreateRequest, RdbSource};
use keeper::backup::manifest::{BackupManifest, Source, SourceKind};
use keeper::backup::restore::{self, AofLayout, InstallOptions, Phase};
use keeper::backup::schedule::Retention;
use keeper::backup::target::Target;
use keeper::{Error, OsStorage, Result, Storage};

/// The target when none is given.
pub const DEFAULT_TARGET: &str = "./backups";

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Back up a live node (over the replication protocol, as `redis-cli --rdb` does; works
    /// with real Redis) or a data folder (its dump.rdb or AOF directory), offline.
    Create {
        /// A live node, HOST:PORT.
        #[arg(
            long,
            value_name = "HOST:PORT",
            conflicts_with = "dir",
            required_unless_present = "dir"
        )]
        from: Option<String>,
        /// Password of the live node (also REDISCLI_AUTH).
        #[arg(long, env = "REDISCLI_AUTH", hide_env_values = true)]
        password: Option<String>,
        /// ACL user of the live node.
        #[arg(long)]
        user: Option<String>,
        /// A data folder (its dump.rdb, or its AOF when it has an AOF directory).
        #[arg(long, value_name = "DATA_DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// The backup's id (default: manual-<UTC time>).
        #[arg(long)]
        name: Option<String>,
        /// zstd level.
        #[arg(long, default_value_t = create::DEFAULT_LEVEL)]
        level: i32,
        #[arg(long)]
        json: bool,
    },
    /// List the backups of a target, oldest first.
    List {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print a backup's manifest.
    Show {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Download a backup and check all of it, as a restore would (exit 1 if it is damaged).
    Verify {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Delete a backup (any kind).
    Delete {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Delete expired automatic backups and old leftovers (never manual or final backups,
    /// never the newest valid backup).
    Prune {
        #[command(flatten)]
        target: TargetArgs,
        /// Automatic backups older than this many days expire (1–35; 0 expires nothing).
        #[arg(long, default_value_t = 1)]
        retention_days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Copy a backup to another target (e.g. local → S3), verified on both sides.
    Export {
        id: String,
        /// The target to copy to.
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct TargetArgs {
    /// Where backups are: a local folder, s3://bucket/prefix (endpoint, region and
    /// credentials from the AWS_* environment variables).
    #[arg(long, value_name = "URL", default_value = DEFAULT_TARGET)]
    target: String,
}

impl TargetArgs {
    fn open(&self) -> Result<Target> {
        Target::parse(&self.target)
    }
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A backup id in the target, or the URL or path of a plain .rdb file (written by Redis,
    /// ElastiCache or keeper).
    #[arg(required_unless_present_any = ["latest", "before"])]
    backup: Option<String>,
    /// The newest backup in the target.
    #[arg(long, conflicts_with_all = ["backup", "before"])]
    latest: bool,
    /// The newest backup created at or before this time (RFC 3339, e.g. 2026-11-22T05:00:00Z).
    #[arg(long, value_name = "TIME", conflicts_with = "backup")]
    before: Option<String>,
    /// The new data folder.
    #[arg(long, value_name = "NEW_DATA_DIR")]
    dir: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// Replace a non-empty folder: its contents are moved aside to DIR.old-<time>, never
    /// deleted.
    #[arg(long)]
    force: bool,
    /// Also write an AOF directory whose base is the backup, for a node started with
    /// `--appendonly yes` (which loads the AOF, not dump.rdb).
    #[arg(long)]
    appendonly: bool,
    #[arg(long)]
    json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: None,
            op: "start the async runtime",
            source: e,
        })
}

/// Runs a backup subcommand.
pub fn run(command: BackupCommand) -> Result<()> {
    runtime()?.block_on(run_async(command))
}

async fn run_async(command: BackupCommand) -> Result<()> {
    match command {
        BackupCommand::Create {
            from,
            password,
            user,
            dir,
            target,
            name,
            level,
            json,
        } => {
            let target = target.open()?;
            let (request_source, source, created) = match (&from, &dir) {
                (Some(addr), _) => from_node(addr, user, password).await?,
                (None, Some(dir)) => from_data_dir(dir)?,
                (None, None) => {
                    return Err(Error::InvalidArgument("--from or --dir is needed".into()));
                }
            };
            let request = CreateRequest {
                id: name,
                kind: BackupKind::Manual,
                created,
                source: request_source,
                level,
            };
            let bar = Bar::bytes("compress");
            let progress = bar.callback_raw();
            let manifest = create::create(&target, request, source, progress).await?;
            bar.finish();
            print_manifest_line(&manifest, json, "created");
            Ok(())
        }
        BackupCommand::List { target, json } => {
            let target = target.open()?;
            let catalog = catalog::list(&target).await?;
            if json {
                let out = json!({
                    "target": target.url(),
                    "backups": catalog.backups,
                    "unreadable": catalog.unreadable.iter().map(|(o, e)| json!({"object": o, "error": e})).collect::<Vec<_>>(),
                    "orphans": catalog.orphans.iter().map(|o| json!({"object": o.name, "bytes": o.size, "modified": o.last_modified.to_rfc3339()})).collect::<Vec<_>>(),
                });
                println!("{out}");
            } else {
                println!(
                    "{:<40} {:<9} {:<24} {:>10} {:>14} {:>14}",
                    "ID", "KIND", "CREATED (UTC)", "KEYS", "RDB BYTES", "STORED BYTES"
                );
                for b in &catalog.backups {
                    println!(
                        "{:<40} {:<9} {:<24} {:>10} {:>14} {:>14}",
                        b.id,
                        b.kind,
                        b.created.format("%Y-%m-%d %H:%M:%S"),
                        b.keys,
                        b.raw_bytes,
                        b.compressed_bytes
                    );
                }
                for (object, error) in &catalog.unreadable {
                    eprintln!("unreadable manifest {object}: {error}");
                }
                if !catalog.orphans.is_empty() {
                    eprintln!(
                        "{} leftover object(s) not part of any backup (`keeper backup prune` removes them after a day)",
                        catalog.orphans.len()
                    );
                }
            }
            Ok(())
        }
        BackupCommand::Show { id, target, json } => {
            let target = target.open()?;
            let manifest = catalog::resolve(&target, &Selector::Id(id)).await?;
            if json {
                println!("{}", serde_json::to_string(&manifest).unwrap_or_default());
            } else {
                print!("{}", String::from_utf8_lossy(&manifest.to_json()));
            }
            Ok(())
        }
        BackupCommand::Verify { id, target, json } => {
            let target = target.open()?;
            let bar = Bar::bytes("verify");
            let (manifest, verified) = catalog::verify(&target, &id, bar.callback()).await?;
            bar.finish();
            if json {
                println!(
                    "{}",
                    json!({"id": manifest.id, "ok": true, "keys": manifest.keys,
                           "rdb_version": verified.report.version, "raw_bytes": manifest.raw_bytes})
                );
            } else {
                println!(
                    "backup {} is valid: {} keys, RDB version {}, {} bytes",
                    manifest.id, manifest.keys, verified.report.version, manifest.raw_bytes
                );
            }
            Ok(())
        }
        BackupCommand::Delete { id, target, json } => {
            let target = target.open()?;
            let manifest = catalog::delete(&target, &id).await?;
            print_manifest_line(&manifest, json, "deleted");
            Ok(())
        }
        BackupCommand::Prune {
            target,
            retention_days,
            json,
        } => {
            let target = target.open()?;
            let retention = Retention::new(retention_days)?;
            let pruned = catalog::prune(&target, retention, Utc::now(), &[]).await?;
            if json {
                println!(
                    "{}",
                    json!({"deleted": pruned.deleted.iter().map(|b| &b.id).collect::<Vec<_>>(),
                           "orphans_removed": pruned.orphans_removed})
                );
            } else {
                for b in &pruned.deleted {
                    println!("deleted {} ({} backup of {})", b.id, b.kind, b.created);
                }
                for o in &pruned.orphans_removed {
                    println!("removed leftover {o}");
                }
            }
            Ok(())
        }
        BackupCommand::Export {
            id,
            to,
            target,
            json,
        } => {
            let from = target.open()?;
            let to = Target::parse(&to)?;
            let bar = Bar::bytes("verify");
            let manifest = catalog::export(&from, &id, &to, bar.callback()).await?;
            bar.finish();
            print_manifest_line(&manifest, json, &format!("exported to {}", to.url()));
            Ok(())
        }
    }
}

fn print_manifest_line(manifest: &BackupManifest, json: bool, what: &str) {
    if json {
        println!("{}", serde_json::to_string(manifest).unwrap_or_default());
    } else {
        println!(
            "{what} {}: {} keys, {} bytes of RDB stored in {} bytes",
            manifest.id, manifest.keys, manifest.raw_bytes, manifest.compressed_bytes
        );
    }
}

/// A live node's RDB over the replication protocol: compressed and uploaded while it
/// arrives, checked whole before the backup is published.
async fn from_node(
    addr: &str,
    user: Option<String>,
    password: Option<String>,
) -> Result<(Source, RdbSource, DateTime<Utc>)> {
    use keeper::replication::sync::{Auth, FetchOptions, RdbFetch};
    let options = FetchOptions {
        auth: password.map(|password| Auth { user, password }),
        // The backup is zstd-compressed whole: a keeper node skips LZF for it.
        uncompressed: true,
        ..FetchOptions::default()
    };
    let created = Utc::now();
    let mut fetch = RdbFetch::start(addr, &options).await?;
    let position = fetch.fetched();
    // Bounded: when compressing falls behind, the transfer waits (TCP pushes back on the
    // node) instead of piling the RDB up in memory.
    let (tx, chunks) = tokio::sync::mpsc::channel(16);
    let bar = Bar::bytes("receive");
    // The transfer runs on its own task; an error there ends the stream early, and the
    // truncated RDB then fails its check, so nothing is published.
    tokio::spawn(async move {
        loop {
            match fetch.next_chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(bytes::Bytes::copy_from_slice(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("{e}");
                    return;
                }
            }
            bar.set(fetch.received(), fetch.total().unwrap_or(0));
        }
        bar.finish();
    });
    let source = Source {
        kind: SourceKind::Replication,
        name: addr.to_string(),
        replid: position.replid,
        offset: position.offset,
    };
    let name = format!("the RDB from {addr}");
    Ok((source, RdbSource::Streamed { chunks, name }, created))
}

/// A data folder's data: its AOF when it has an AOF directory or file, else its dump.rdb.
fn from_data_dir(dir: &Path) -> Result<(Source, RdbSource, DateTime<Utc>)> {
    let created = Utc::now();
    let aof_dir = dir.join("appendonlydir");
    let old_aof = dir.join("appendonly.aof");
    if aof_dir.is_dir() || old_aof.is_file() {
        let path = if aof_dir.is_dir() { aof_dir } else { old_aof };
        let (store, report) = super::load_aof(&path)?;
        let snapshot = keeper::dataset::Dataset::snapshot(&store);
        let source = Source {
            kind: SourceKind::DataDir,
            name: dir.display().to_string(),
            replid: report.repl.as_ref().map(|r| r.replid.clone()),
            offset: report.repl.as_ref().map(|r| r.offset),
        };
        let options = keeper::snapshot::SaveOptions {
            // zstd compresses plain strings better than LZF'd ones, and faster.
            compression: false,
            ..keeper::snapshot::SaveOptions::default()
        };
        return Ok((
            source,
            RdbSource::Snapshot {
                snapshot: Box::new(snapshot),
                options,
            },
            created,
        ));
    }
    let path = dir.join("dump.rdb");
    let data = OsStorage.read_all(&path)?;
    let report =
        keeper::rdb::check::check(data.clone(), &mut |_| {}).map_err(|e| e.with_file(&path))?;
    let aux = |name: &[u8]| {
        report
            .aux
            .iter()
            .find(|(k, _)| &k[..] == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let source = Source {
        kind: SourceKind::DataDir,
        name: dir.display().to_string(),
        replid: aux(b"repl-id"),
        offset: aux(b"repl-offset").and_then(|v| v.parse().ok()),
    };
    Ok((source, RdbSource::Checked { rdb: data, report }, created))
}

/// Runs `keeper restore`.
pub fn restore(args: RestoreArgs) -> Result<()> {
    runtime()?.block_on(restore_async(args))
}

async fn restore_async(args: RestoreArgs) -> Result<()> {
    let options = InstallOptions {
        force: args.force,
        appendonly: args.appendonly.then(|| AofLayout {
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
        }),
        ..InstallOptions::new(&args.dir)
    };
    // Refuse a non-empty folder before downloading anything.
    restore::check_destination(&OsStorage, &options)?;
    let bar = Bar::bytes("verify");
    let is_plain_rdb = args
        .backup
        .as_deref()
        .is_some_and(|b| b.ends_with(".rdb") || b.contains('/') || b.starts_with("s3://"));
    let (verified, manifest) = if is_plain_rdb {
        let url = args.backup.clone().unwrap_or_default();
        let (rdb, name) = restore::fetch_rdb_object(&url).await?;
        let progress = bar.callback();
        let verified = tokio::task::spawn_blocking(move || {
            restore::check_rdb(rdb, &name, progress.as_deref())
        })
        .await
        .map_err(|e| Error::InvalidArgument(format!("checking thread: {e}")))??;
        (verified, None)
    } else {
        let target = args.target.open()?;
        let selector = match (&args.backup, args.latest, &args.before) {
            (Some(id), _, _) => Selector::Id(id.clone()),
            (None, true, _) => Selector::Latest,
            (None, false, Some(time)) => Selector::Before(parse_time(time)?),
            (None, false, None) => Selector::Latest,
        };
        let manifest = catalog::resolve(&target, &selector).await?;
        let verified = restore::download_verified(&target, &manifest, bar.callback()).await?;
        (verified, Some(manifest))
    };
    bar.finish();
    let rdb = verified.rdb.clone();
    let installed =
        tokio::task::spawn_blocking(move || restore::install(&OsStorage, &rdb, &options))
            .await
            .map_err(|e| Error::InvalidArgument(format!("restore thread: {e}")))??;
    let keys: u64 = verified.report.databases.values().map(|d| d.keys).sum();
    if args.json {
        println!(
            "{}",
            json!({
                "dir": installed.dir,
                "backup": manifest.as_ref().map(|m| &m.id),
                "keys": keys,
                "files": installed.files,
                "moved_aside": installed.moved_aside,
            })
        );
    } else {
        println!(
            "restored {} keys{} into {}",
            keys,
            manifest
                .as_ref()
                .map(|m| format!(" from backup {}", m.id))
                .unwrap_or_default(),
            installed.dir.display()
        );
        if let Some(aside) = &installed.moved_aside {
            println!("the old contents are in {}", aside.display());
        }
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "time {text:?}: {e} (use RFC 3339, e.g. 2026-11-22T05:00:00Z)"
            ))
        })
}

/// A progress bar on stderr when it is a terminal.
struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn bytes(what: &str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec})",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_string());
        Bar { bar: Some(bar) }
    }

    fn set(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if total > 0 {
                bar.set_length(total);
            }
            bar.set_position(done);
        }
    }

    /// A callback for downloads and checks.
    fn callback(&self) -> Option<Arc<restore::Progress>> {
        let bar = self.bar.clone()?;
        Some(Arc::new(move |phase: Phase, done: u64, total: u64| {
            bar.set_prefix(phase.as_str());
            if total > 0 {
                bar.set_length(total);
            }
            bar.set_position(done);
        }))
    }

    /// A callback for raw bytes compressed.
    fn callback_raw(&self) -> Option<Arc<create::Progress>> {
        let bar = self.bar.clone()?;
        Some(Arc::new(move |done: u64| bar.set_position(done)))
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
