//! Backups: point-in-time copies of a dataset kept outside the node.
//!
//! A backup is an RDB file (from a live snapshot, a data folder, or a replication transfer from
//! any node, real Redis included), compressed with zstd and stored in a [`target::Target`] (a
//! local folder, S3-compatible object storage, or memory for tests) beside a JSON manifest that
//! describes it. The list of backups is read from the manifests themselves.
//!
//! Object layout in a target (the target's prefix may be empty):
//!
//! ```text
//! <prefix>/<id>.rdb.zst             the backup (one zstd frame of the RDB)
//! <prefix>/<id>.json                its manifest, the catalog entry, written last
//! <prefix>/incomplete/<id>.rdb.zst  an upload in progress (or one left by a crash)
//! ```
//!
//! A backup exists once its manifest exists: the data is uploaded under `incomplete/`, read back
//! and verified, renamed into place, and only then is the manifest written. A crash at any step
//! leaves either no catalog entry or a complete, verified backup.

pub mod target;
