//! Every named fail point of keeper, with what a crash (or an error) there must leave behind.
//!
//! Fail points exist only with the `failpoints` cargo feature (the `fail` crate); without it
//! they compile to nothing. `tests/failpoints.rs` drives each one.

/// The temp file of an atomic publish is written, not yet synced. An error here: the temp file
/// is removed, the published file is untouched. A power loss: the old file.
pub const PUBLISH_BEFORE_SYNC: &str = "storage::publish::before_sync";
/// The temp file is durable, not yet renamed. An error: temp removed, old file untouched. A
/// power loss: the old file (the temp file may remain as garbage).
pub const PUBLISH_BEFORE_RENAME: &str = "storage::publish::before_rename";
/// Renamed, directory not yet synced. An error: the new file is visible but not promised; a
/// power loss: either the old file or the complete new one, never a mix.
pub const PUBLISH_BEFORE_SYNC_DIR: &str = "storage::publish::before_sync_dir";

/// A snapshot save (`SAVE`/`BGSAVE`, `snapshot::write_rdb`) has written one database's keys to
/// the temp file. An error: the save fails, the temp file is removed, `dump.rdb` is untouched.
/// A power loss: the old `dump.rdb` (or none, if there was none), never part of the new one.
pub const SNAPSHOT_AFTER_DB: &str = "snapshot::write::after_db";
/// The new `dump.rdb` is published and durable; the save has not reported success yet. An
/// error: the save reports failure (the caller keeps its changes counted and its status err,
/// the safe side) although the file is complete. A power loss: the complete new file.
pub const SNAPSHOT_AFTER_PUBLISH: &str = "snapshot::after_publish";

/// An AOF rewrite's new base is complete and durable in `dir` under its temp name, not yet
/// renamed into the AOF directory. An error: the rewrite fails, the temp file is removed, the
/// old manifest (with the rewrite's new incr) stays authoritative. A power loss: the same.
pub const AOF_REWRITE_BEFORE_RENAME: &str = "aof::rewrite::before_rename";
/// The new base is in the AOF directory, the manifest naming it is not yet written. An error:
/// the rewrite fails and the new base is removed. A power loss: the old manifest, with the
/// unlisted new base as garbage.
pub const AOF_REWRITE_BEFORE_MANIFEST: &str = "aof::rewrite::before_manifest";
/// The manifest naming the new base and the current incr is durable; the history files are
/// not yet deleted. An error: the rewrite reports failure though the new set is in place
/// (history is deleted at the next start). A power loss: the new set.
pub const AOF_REWRITE_BEFORE_GC: &str = "aof::rewrite::before_gc";

/// Every point an AOF rewrite passes after its base is written, in order.
pub const AOF_REWRITE: &[&str] = &[
    AOF_REWRITE_BEFORE_RENAME,
    AOF_REWRITE_BEFORE_MANIFEST,
    AOF_REWRITE_BEFORE_GC,
];

/// The AOF writer thread is about to write a batch of appended bytes to the incr file. An
/// error: the batch stays queued, writes are refused with `MISCONF Errors writing to the AOF
/// file`, and a later retry writes it; nothing of it is acknowledged before. A power loss:
/// every acknowledged byte under `appendfsync always`, a prefix of the stream otherwise.
pub const AOF_WRITE: &str = "aof::writer::write";
/// The AOF writer is about to `fdatasync` the incr file (inline, or on its background sync
/// thread under `everysec`). An error poisons the AOF: nothing the sync covered is
/// acknowledged, writes are refused until a restart. A power loss: every byte acknowledged
/// under `appendfsync always`.
pub const AOF_FSYNC: &str = "aof::writer::fsync";

/// A backup's data object is uploaded under `incomplete/` and verified, not yet renamed to
/// its name. An error: the upload is deleted, the catalog is unchanged. A crash: the catalog is
/// unchanged (the incomplete object is garbage that pruning removes once old).
pub const BACKUP_BEFORE_PUBLISH: &str = "backup::create::before_publish";
/// The data object has its name, its manifest is not yet written. An error: the data object
/// is deleted, the catalog is unchanged. A crash: the catalog is unchanged (the data object
/// without a manifest is garbage that pruning removes once old).
pub const BACKUP_BEFORE_MANIFEST: &str = "backup::create::before_manifest";
/// Deleting a backup: its manifest is deleted (it is out of the catalog), its data object not
/// yet. An error or a crash: the catalog no longer lists it; the data object is garbage that
/// pruning removes.
pub const BACKUP_DELETE_BEFORE_DATA: &str = "backup::delete::before_data";
/// A restore has verified everything and staged the new data folder beside the destination,
/// nothing is renamed yet. An error or crash: the destination is untouched (the staging folder
/// is garbage, named as such).
pub const RESTORE_BEFORE_RENAME: &str = "backup::restore::before_rename";
/// A forced restore swapped the staged folder and the old one (one atomic exchange): the new
/// data is in place, the old contents are under the staging name, not yet renamed to
/// `<dir>.old-<time>`. An error: the swap is undone (the old folder is back in place) and the
/// staged folder removed. A crash: the destination holds the complete new data and the old
/// contents are complete under the staging name.
pub const RESTORE_AFTER_EXCHANGE: &str = "backup::restore::after_exchange";

/// Every point of backups and restores.
pub const BACKUP: &[&str] = &[
    BACKUP_BEFORE_PUBLISH,
    BACKUP_BEFORE_MANIFEST,
    BACKUP_DELETE_BEFORE_DATA,
    RESTORE_BEFORE_RENAME,
    RESTORE_AFTER_EXCHANGE,
];

/// The points of [`crate::aof::writer::AofWriter`].
pub const AOF_WRITER: &[&str] = &[AOF_WRITE, AOF_FSYNC];

/// The points of [`crate::storage::publish_atomically`].
pub const PUBLISH: &[&str] = &[
    PUBLISH_BEFORE_SYNC,
    PUBLISH_BEFORE_RENAME,
    PUBLISH_BEFORE_SYNC_DIR,
];

/// Every point a snapshot save passes, in order (its publish included).
pub const SNAPSHOT_SAVE: &[&str] = &[
    SNAPSHOT_AFTER_DB,
    PUBLISH_BEFORE_SYNC,
    PUBLISH_BEFORE_RENAME,
    PUBLISH_BEFORE_SYNC_DIR,
    SNAPSHOT_AFTER_PUBLISH,
];

/// Every fail point, for tests that walk them all.
pub const ALL: &[&str] = &[
    PUBLISH_BEFORE_SYNC,
    PUBLISH_BEFORE_RENAME,
    PUBLISH_BEFORE_SYNC_DIR,
    SNAPSHOT_AFTER_DB,
    SNAPSHOT_AFTER_PUBLISH,
    AOF_WRITE,
    AOF_FSYNC,
    AOF_REWRITE_BEFORE_RENAME,
    AOF_REWRITE_BEFORE_MANIFEST,
    AOF_REWRITE_BEFORE_GC,
    BACKUP_BEFORE_PUBLISH,
    BACKUP_BEFORE_MANIFEST,
    BACKUP_DELETE_BEFORE_DATA,
    RESTORE_BEFORE_RENAME,
    RESTORE_AFTER_EXCHANGE,
];

/// The error a fail point configured with `return` injects.
#[cfg(feature = "failpoints")]
pub(crate) fn injected(name: &str) -> crate::Error {
    crate::Error::Io {
        path: None,
        op: "fail point",
        source: std::io::Error::other(format!("injected failure at {name}")),
    }
}
