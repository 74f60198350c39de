//! Where backups live: a local folder, S3-compatible object storage, or memory (tests).
//!
//! A [`Target`] is parsed from a URL and speaks in object *names*: `/`-separated keys relative to
//! the target's prefix (`<id>.json`, `incomplete/<id>.rdb.zst`). Names are checked before any
//! request: an empty name, a leading or trailing `/`, an empty segment, a `.` or `..` segment, a
//! control character, `\` or `#` is refused with [`Error::InvalidArgument`], so no name can
//! reach outside the target (on a local folder, `..` would be a path outside it) and none can
//! collide with the `<name>#<n>` staging files of a local upload.
//!
//! # Durability
//!
//! When [`Target::put`], [`Upload::finish`], [`Target::rename`] or [`Target::delete`] return
//! `Ok`, the change survives a power loss:
//! - object storage promises that for every acknowledged request;
//! - a local folder gets it from fsync: `object_store`'s `LocalFileSystem` is opened with
//!   `with_fsync(true)`, which syncs a written file before publishing it by rename, then the
//!   directories whose entries changed (and every directory it creates). It does not sync the
//!   directory after a plain delete, so [`Target::delete`] does that itself with `std::fs`: the
//!   catalog deletes a manifest before its data, and a manifest that came back after a crash
//!   while its data stayed deleted would name a backup that is gone. The backup folder itself is
//!   created the same way (each new directory's parent synced) by [`Target::parse`].
//!
//! # Errors
//!
//! Failures of the store are [`Error::Target`], naming the target's URL, the operation and the
//! object. A missing object is not an error for [`Target::head`] (`None`) nor for
//! [`Target::delete`] (deleting is idempotent, so a crash during pruning can simply be resumed).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::{Error, Result};

/// Size of the parts of an [`Upload`]: S3 requires at least 5 MiB for every part but the last,
/// and bigger parts mean fewer requests.
pub const PART_SIZE: usize = 8 << 20;

/// Parts of one [`Upload`] in flight at once: bounds the memory an upload holds to about
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE` while keeping the connection busy.
const PARTS_IN_FLIGHT: usize = 2;

/// Where backups live: a parsed target URL.
///
/// Cloning is cheap and clones share the store (a cloned `memory://` target sees the same
/// objects).
#[derive(Clone, Debug)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// Key prefix of every object, without leading or trailing `/`; empty for local folders
    /// (the folder itself is the root) and for a bucket used from its top.
    prefix: String,
    /// The URL as given to [`Target::parse`], for messages.
    url: String,
    /// The folder of a local target (absolute, canonical).
    local_root: Option<PathBuf>,
}

/// One object in a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name: its key relative to the target's prefix.
    pub name: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

impl Target {
    /// Parses a target URL:
    /// - `./backups`, `/abs/dir`, `rel/dir`, `file:///abs/dir` → a local folder, created (and its
    ///   creation made durable) if missing;
    /// - `s3://bucket` or `s3://bucket/some/prefix` → S3-compatible storage configured from the
    ///   `AWS_*` variables of the process environment, see [`Target::parse_with_env`];
    /// - `memory://` or `memory://some/prefix` → a fresh, empty in-memory store (tests).
    ///
    /// Anything else is [`Error::InvalidArgument`] naming the URL.
    pub fn parse(url: &str) -> Result<Target> {
        let vars = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
        Self::parse_with_env(url, vars)
    }

    /// Like [`Target::parse`], with the `AWS_*` settings of an `s3://` target taken from `vars`
    /// (name, value) *instead of* the process environment, so that a program (or a test) can
    /// configure several targets without touching its environment. Other URLs ignore `vars`.
    ///
    /// The variables are those `object_store` reads (names are case-insensitive, unknown ones
    /// are ignored): `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`, `AWS_ENDPOINT_URL_S3`),
    /// `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`,
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, …. An `http://` endpoint implies `AWS_ALLOW_HTTP`.
    /// Requests are path-style (`endpoint/bucket/key`) unless virtual-hosted style is asked
    /// for, so an endpoint on a loopback address works as it is.
    pub fn parse_with_env<K, V>(url: &str, vars: impl IntoIterator<Item = (K, V)>) -> Result<Target>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        if let Some(rest) = url.strip_prefix("s3://") {
            return Self::s3(url, rest, vars);
        }
        if let Some(rest) = url.strip_prefix("memory://") {
            return Ok(Target {
                store: Arc::new(InMemory::new()),
                prefix: prefix_of(url, rest)?,
                url: url.to_owned(),
                local_root: None,
            });
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(invalid_url(
                    url,
                    "a file:// URL needs an absolute path (file:///dir)",
                ));
            }
            let path = percent_decode(rest).ok_or_else(|| invalid_url(url, "bad %-escape"))?;
            return Self::local(url, Path::new(&path));
        }
        if url.contains("://") {
            return Err(invalid_url(
                url,
                "expected a folder, file:///dir, s3://bucket[/prefix] or memory://",
            ));
        }
        if url.is_empty() {
            return Err(invalid_url(url, "empty"));
        }
        Self::local(url, Path::new(url))
    }

    fn s3<K, V>(url: &str, rest: &str, vars: impl IntoIterator<Item = (K, V)>) -> Result<Target>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !bucket_ok {
            return Err(invalid_url(url, "expected s3://bucket[/prefix]"));
        }
        let prefix = prefix_of(url, prefix)?;

        // What AmazonS3Builder::from_env does, over `vars` instead of the environment.
        let mut builder = AmazonS3Builder::new();
        for (name, value) in vars {
            let name = name.as_ref().to_ascii_lowercase();
            if name.starts_with("aws_")
                && let Ok(key) = name.parse::<AmazonS3ConfigKey>()
            {
                builder = builder.with_config(key, value.as_ref());
            }
        }
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let store = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| target_error(url, "configure", "", e))?;
        Ok(Target {
            store: Arc::new(store),
            prefix,
            url: url.to_owned(),
            local_root: None,
        })
    }

    fn local(url: &str, path: &Path) -> Result<Target> {
        let absolute = std::path::absolute(path).map_err(|e| Error::io(path, "resolve", e))?;
        create_dir_durably(&absolute)?;
        let root =
            std::fs::canonicalize(&absolute).map_err(|e| Error::io(&absolute, "resolve", e))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| target_error(url, "open", "", e))?
            .with_fsync(true);
        Ok(Target {
            store: Arc::new(store),
            prefix: String::new(),
            url: url.to_owned(),
            local_root: Some(root),
        })
    }

    /// The URL this target was parsed from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is a local folder.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// The folder of a local target (absolute and canonical), `None` for other targets.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Stores a whole (small) object under `name`, replacing any object there. Durable when it
    /// returns; readers see the old object or the new one, never a part.
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        let location = self.location(name)?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|e| target_error(&self.url, "put", name, e))?;
        Ok(())
    }

    /// Starts a streaming upload to `name` in parts of [`PART_SIZE`] (an S3 multipart upload; a
    /// staging file `<name>#<n>` on a local folder). Nothing is visible under `name` before
    /// [`Upload::finish`].
    pub async fn upload(&self, name: &str) -> Result<Upload> {
        let location = self.location(name)?;
        let multipart = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| target_error(&self.url, "upload", name, e))?;
        Ok(Upload {
            writer: WriteMultipart::new_with_chunk_size(multipart, PART_SIZE),
            written: 0,
            url: self.url.clone(),
            name: name.to_owned(),
        })
    }

    /// The whole object `name`.
    pub async fn get(&self, name: &str) -> Result<Bytes> {
        let location = self.location(name)?;
        let fail = |e| target_error(&self.url, "get", name, e);
        self.store
            .get(&location)
            .await
            .map_err(fail)?
            .bytes()
            .await
            .map_err(fail)
    }

    /// The object `name` as its size and a stream of its bytes, for objects too big to hold.
    pub async fn get_stream(&self, name: &str) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let location = self.location(name)?;
        let result = self
            .store
            .get(&location)
            .await
            .map_err(|e| target_error(&self.url, "get", name, e))?;
        let size = result.meta.size;
        let (url, name) = (self.url.clone(), name.to_owned());
        let stream = result
            .into_stream()
            .map_err(move |e| target_error(&url, "get", &name, e))
            .boxed();
        Ok((size, stream))
    }

    /// The size and time of `name`, or `None` when there is no such object.
    pub async fn head(&self, name: &str) -> Result<Option<ObjectInfo>> {
        let location = self.location(name)?;
        match self.store.head(&location).await {
            Ok(meta) => Ok(Some(self.info(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(target_error(&self.url, "head", name, e)),
        }
    }

    /// Every object whose name is `under` or starts with `under/` (all objects when `under` is
    /// empty), at any depth, sorted by name. Uploads not yet finished are not listed.
    pub async fn list(&self, under: &str) -> Result<Vec<ObjectInfo>> {
        let location = if under.is_empty() {
            ObjectPath::parse(&self.prefix).map_err(|e| invalid_name(&self.url, under, e))?
        } else {
            self.location(under)?
        };
        let prefix = (!location.as_ref().is_empty()).then_some(&location);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| target_error(&self.url, "list", under, e))?;
        let mut infos: Vec<ObjectInfo> = metas.into_iter().map(|m| self.info(m)).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    /// Moves `from` to `to`, replacing any object there. Durable when it returns. A local folder
    /// renames (atomic); object storage copies, then deletes `from`, so after a crash both may
    /// exist, each complete.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let from_location = self.location(from)?;
        let to_location = self.location(to)?;
        self.store
            .rename(&from_location, &to_location)
            .await
            .map_err(|e| target_error(&self.url, "rename", &format!("{from} -> {to}"), e))
    }

    /// Deletes `name`; a missing object is not an error. Durable when it returns.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let location = self.location(name)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(target_error(&self.url, "delete", name, e)),
        }
        // Synced even when the object was already gone: an earlier delete may have crashed
        // between removing the entry and syncing the directory.
        if let Some(root) = &self.local_root {
            let file = root.join(location.as_ref());
            let dir = file.parent().unwrap_or(root).to_path_buf();
            tokio::task::spawn_blocking(move || match sync_dir(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other.map_err(|e| Error::io(&dir, "fsync", e)),
            })
            .await
            .map_err(|e| Error::io(&file, "fsync", io::Error::other(e)))??;
        }
        Ok(())
    }

    /// The full key of `name`, after checking it.
    fn location(&self, name: &str) -> Result<ObjectPath> {
        check_name(name).map_err(|why| invalid_name(&self.url, name, why))?;
        let key = if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        };
        ObjectPath::parse(key).map_err(|e| invalid_name(&self.url, name, e))
    }

    fn info(&self, meta: ObjectMeta) -> ObjectInfo {
        let key = meta.location.as_ref();
        let name = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(key)
        };
        ObjectInfo {
            name: name.to_owned(),
            size: meta.size,
            last_modified: meta.last_modified,
        }
    }
}

/// A streaming upload, from [`Target::upload`]. Bytes are buffered and sent a part at a time;
/// the object appears, whole, when [`Upload::finish`] returns.
///
/// After an error, call [`Upload::abort`]. An upload dropped without `finish` or `abort` leaves
/// nothing visible, but on object storage its parts stay stored (and billed) until the bucket's
/// lifecycle rule for incomplete multipart uploads removes them.
pub struct Upload {
    writer: WriteMultipart,
    written: u64,
    url: String,
    name: String,
}

impl Upload {
    /// Appends `bytes`. Waits while too many parts are in flight.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write(bytes);
        self.written += bytes.len() as u64;
        self.writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| target_error(&self.url, "upload", &self.name, e))
    }

    /// Sends what is buffered and publishes the object; returns its size. Durable when it
    /// returns.
    pub async fn finish(self) -> Result<u64> {
        let Upload {
            writer,
            written,
            url,
            name,
        } = self;
        writer
            .finish()
            .await
            .map_err(|e| target_error(&url, "finish upload", &name, e))?;
        Ok(written)
    }

    /// Abandons the upload: nothing is published and the parts sent are discarded.
    pub async fn abort(self) -> Result<()> {
        let Upload {
            writer, url, name, ..
        } = self;
        writer
            .abort()
            .await
            .map_err(|e| target_error(&url, "abort upload", &name, e))
    }
}

/// Why `name` is not a valid object name, if it is not.
fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err("starts or ends with '/'");
    }
    for segment in name.split('/') {
        match segment {
            "" => return Err("empty segment"),
            "." | ".." => return Err("'.' or '..' segment"),
            _ => {}
        }
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '\\' || c == '#')
    {
        return Err("control character, '\\' or '#'");
    }
    Ok(())
}

/// The checked key prefix of a URL's path part (`rest`), without a trailing `/`.
fn prefix_of(url: &str, rest: &str) -> Result<String> {
    let prefix = rest.strip_suffix('/').unwrap_or(rest);
    if !prefix.is_empty() {
        check_name(prefix).map_err(|why| invalid_url(url, &format!("bad prefix: {why}")))?;
    }
    Ok(prefix.to_owned())
}

fn invalid_url(url: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("backup target {url:?}: {why}"))
}

fn invalid_name(url: &str, name: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("backup target {url}: object name {name:?}: {why}"))
}

fn target_error(url: &str, op: &'static str, object: &str, source: object_store::Error) -> Error {
    Error::Target {
        target: url.to_owned(),
        op,
        object: object.to_owned(),
        source: Box::new(source),
    }
}

/// Decodes `%XX` escapes of a `file://` URL path; `None` for a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Creates `dir` and its missing ancestors, syncing the parent of each directory created so the
/// new entries survive a power loss.
fn create_dir_durably(dir: &Path) -> Result<()> {
    let mut first_existing = dir;
    while !first_existing.exists() {
        match first_existing.parent() {
            Some(parent) => first_existing = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create backup folder", e))?;
    let mut created = dir;
    while created != first_existing {
        let Some(parent) = created.parent() else {
            break;
        };
        sync_dir(parent).map_err(|e| Error::io(parent, "fsync", e))?;
        created = parent;
    }
    Ok(())
}

/// Makes the entries of directory `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The operations themselves run on memory, local and S3 targets in tests/backup_target.rs;
    // these tests cover what is particular to each kind and the URL and name rules.

    async fn names(target: &Target) -> Vec<String> {
        let listed = target.list("").await.unwrap();
        listed.into_iter().map(|o| o.name).collect()
    }

    #[tokio::test]
    async fn a_prefix_is_not_part_of_the_names() {
        let target = Target::parse("memory://backups/node-1/").unwrap();
        assert!(!target.is_local());
        target
            .put("a.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let names = names(&target).await;
        assert_eq!(names, ["a.json"]);
    }

    #[tokio::test]
    async fn clones_share_the_store() {
        let target = Target::parse("memory://").unwrap();
        target
            .clone()
            .put("x", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert_eq!(target.get("x").await.unwrap(), &b"1"[..]);
        // A new parse is a new store.
        assert_eq!(
            Target::parse("memory://").unwrap().head("x").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_local_target_creates_its_folder_and_reads_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups/deeper");
        let target = Target::parse(root.to_str().unwrap()).unwrap();
        assert!(target.is_local() && root.is_dir());
        assert_eq!(target.local_root(), Some(&*root.canonicalize().unwrap()));
        let url = format!("file://{}", dir.path().join("big%20one").display());
        Target::parse(&url).unwrap();
        assert!(dir.path().join("big one").is_dir());
    }

    #[tokio::test]
    async fn local_target_sees_files_written_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::parse(dir.path().to_str().unwrap()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/dump.rdb"), b"REDIS").unwrap();
        let names = names(&target).await;
        assert_eq!(names, ["sub/dump.rdb"]);
        assert_eq!(target.get("sub/dump.rdb").await.unwrap(), &b"REDIS"[..]);
    }

    #[test]
    fn parse_refuses_unknown_urls() {
        for bad in [
            "",
            "http://host/x",
            "s3://",
            "s3:///prefix",
            "s3://bucket//x",
            "s3://bucket/../x",
            "s3://bu cket",
            "file://relative/dir",
            "file:///bad%zzescape",
            "memory://a//b",
        ] {
            match Target::parse_with_env(bad, [("AWS_REGION", "us-east-1")]) {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains(bad), "{msg}"),
                Err(e) => panic!("{bad:?}: {e}"),
                Ok(_) => panic!("{bad:?} accepted"),
            }
        }
    }

    #[test]
    fn parse_s3() {
        let env = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        let target = Target::parse_with_env("s3://bucket/a/b/", env).unwrap();
        assert_eq!(target.url(), "s3://bucket/a/b/");
        assert_eq!(target.prefix, "a/b");
        assert!(!target.is_local() && target.local_root().is_none());
        assert_eq!(Target::parse_with_env("s3://b", env).unwrap().prefix, "");
    }

    #[test]
    fn name_rules() {
        assert!(check_name("automatic-20261122T050012Z.rdb.zst").is_ok());
        assert!(check_name("incomplete/a.json").is_ok());
        assert!(check_name("a..b").is_ok()); // dots inside a segment are fine
        assert!(check_name("a/..").is_err());
    }
}
