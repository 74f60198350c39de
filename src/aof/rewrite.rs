//! Commands that recreate an entry, as Redis's `rewriteAppendOnlyFileRio` emits them
//! (redis-formats.md §2.2): `SET`, `RPUSH`/`SADD`/`ZADD`/`HMSET` in batches of 64 items, streams
//! with `XADD`, `XSETID`, `XGROUP CREATE`, `XCLAIM … JUSTID FORCE` and `XGROUP CREATECONSUMER`,
//! then `PEXPIREAT` when the key has a TTL.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use crate::dataset::DatasetSnapshot;
use crate::error::{Error, Result};
use crate::model::{Entry, Value};
use crate::resp;
use crate::snapshot::{SaveControl, SaveStats};
use crate::storage::{Storage, publish_atomically};

/// Items per command for collections (`AOF_REWRITE_ITEMS_PER_CMD`).
pub const ITEMS_PER_COMMAND: usize = 64;

/// One command's arguments.
pub type Command = Vec<Bytes>;

fn arg(s: impl Into<Bytes>) -> Bytes {
    s.into()
}

fn num(v: impl ToString) -> Bytes {
    Bytes::from(v.to_string())
}

/// Calls `emit` with each command that recreates `entry` in its database (the caller selects
/// the database). Module values have no command form: `Err` names the module type.
pub fn entry_commands(entry: &Entry, emit: &mut dyn FnMut(Command)) -> Result<(), String> {
    let key = &entry.key;
    match &entry.value {
        Value::String(v) => emit(vec![arg("SET"), key.clone(), v.clone()]),
        Value::List(items) => {
            for chunk in items.chunks(ITEMS_PER_COMMAND) {
                let mut cmd = vec![arg("RPUSH"), key.clone()];
                cmd.extend(chunk.iter().cloned());
                emit(cmd);
            }
        }
        Value::Set(members) => {
            for chunk in members.chunks(ITEMS_PER_COMMAND) {
                let mut cmd = vec![arg("SADD"), key.clone()];
                cmd.extend(chunk.iter().cloned());
                emit(cmd);
            }
        }
        Value::SortedSet(items) => {
            for chunk in items.chunks(ITEMS_PER_COMMAND) {
                let mut cmd = vec![arg("ZADD"), key.clone()];
                for (member, score) in chunk {
                    cmd.push(format_score(*score));
                    cmd.push(member.clone());
                }
                emit(cmd);
            }
        }
        Value::Hash(fields) => {
            for chunk in fields.chunks(ITEMS_PER_COMMAND) {
                let mut cmd = vec![arg("HMSET"), key.clone()];
                for f in chunk {
                    cmd.push(f.field.clone());
                    cmd.push(f.value.clone());
                }
                emit(cmd);
            }
            for f in fields {
                if let Some(at) = f.expire_at_ms {
                    emit(vec![
                        arg("HPEXPIREAT"),
                        key.clone(),
                        num(at),
                        arg("FIELDS"),
                        arg("1"),
                        f.field.clone(),
                    ]);
                }
            }
        }
        Value::Stream(stream) => {
            if stream.entries.is_empty() {
                // An empty stream can only be created by adding and trimming an entry.
                emit(vec![
                    arg("XADD"),
                    key.clone(),
                    arg("MAXLEN"),
                    arg("0"),
                    arg("0-1"),
                    arg("x"),
                    arg("y"),
                ]);
            }
            for e in &stream.entries {
                let mut cmd = vec![arg("XADD"), key.clone(), num(e.id)];
                for (f, v) in &e.fields {
                    cmd.push(f.clone());
                    cmd.push(v.clone());
                }
                emit(cmd);
            }
            emit(vec![
                arg("XSETID"),
                key.clone(),
                num(stream.last_id),
                arg("ENTRIESADDED"),
                num(stream.entries_added),
                arg("MAXDELETEDID"),
                num(stream.max_deleted_id),
            ]);
            for g in &stream.groups {
                let mut create = vec![
                    arg("XGROUP"),
                    arg("CREATE"),
                    key.clone(),
                    g.name.clone(),
                    num(g.last_id),
                ];
                if let Some(read) = g.entries_read {
                    create.push(arg("ENTRIESREAD"));
                    create.push(num(read));
                }
                emit(create);
                for c in &g.consumers {
                    if c.pending.is_empty() {
                        emit(vec![
                            arg("XGROUP"),
                            arg("CREATECONSUMER"),
                            key.clone(),
                            g.name.clone(),
                            c.name.clone(),
                        ]);
                    }
                    for id in &c.pending {
                        let Some(p) = g.pending.iter().find(|p| p.id == *id) else {
                            continue;
                        };
                        emit(vec![
                            arg("XCLAIM"),
                            key.clone(),
                            g.name.clone(),
                            c.name.clone(),
                            arg("0"),
                            num(id),
                            arg("TIME"),
                            num(p.delivery_time_ms),
                            arg("RETRYCOUNT"),
                            num(p.delivery_count),
                            arg("JUSTID"),
                            arg("FORCE"),
                        ]);
                    }
                }
            }
        }
        Value::Module(m) => {
            return Err(format!(
                "module type '{}' has no command form without its module",
                m.type_name()
            ));
        }
    }
    if let Some(at) = entry.expire_at_ms {
        emit(vec![arg("PEXPIREAT"), key.clone(), num(at)]);
    }
    Ok(())
}

/// A score as Redis's AOF rewrite prints it: `inf`/`-inf`, integers without a fraction, others
/// in shortest round-trip form (what `fpconv_dtoa` gives since Redis 7.2).
pub fn format_score(score: f64) -> Bytes {
    if score.is_infinite() {
        return arg(if score > 0.0 { "inf" } else { "-inf" });
    }
    if score.fract() == 0.0 && score.abs() < 1e17 {
        return num(score as i64);
    }
    num(format!("{score:?}"))
}

/// Writes `snapshot` as a RESP base file (`aof-use-rdb-preamble no`) at `path`, published
/// atomically (temp file, sync, rename, sync dir): a `#TS:` annotation when `timestamp` is
/// given (as Redis's rewrite starts), then for each database that holds a key `SELECT n` and
/// the commands of [`entry_commands`]. Empty collections are left out, as Redis never stores
/// them; a module value fails the rewrite (its commands belong to its module).
pub(crate) fn write_resp_base(
    storage: &dyn Storage,
    path: &Path,
    snapshot: &dyn DatasetSnapshot,
    timestamp: Option<i64>,
    control: &SaveControl,
) -> Result<SaveStats> {
    /// Bytes gathered before each write to the file.
    const CHUNK: usize = 64 * 1024;
    let started = Instant::now();
    let mut stats = SaveStats::default();
    publish_atomically(storage, path, |file| {
        let mut out = Vec::with_capacity(CHUNK * 2);
        if let Some(ts) = timestamp {
            out.extend_from_slice(format!("#TS:{ts}\r\n").as_bytes());
        }
        for db in 0..snapshot.databases() {
            let mut selected = false;
            snapshot.for_each_entry(db, &mut |entry| {
                if control.cancel.load(Ordering::Relaxed) {
                    return Err(crate::snapshot::cancelled());
                }
                if entry.value.is_empty() {
                    stats.empty_values_skipped += 1;
                    return Ok(());
                }
                if !selected {
                    resp::write_command(&mut out, &[&b"SELECT"[..], db.to_string().as_bytes()]);
                    selected = true;
                }
                entry_commands(&entry, &mut |command| {
                    resp::write_command(&mut out, &command)
                })
                .map_err(|what| Error::Unsupported {
                    file: Some(path.to_path_buf()),
                    offset: None,
                    what,
                })?;
                stats.keys += 1;
                control.keys_done.fetch_add(1, Ordering::Relaxed);
                if out.len() >= CHUNK {
                    file.write_all(&out)?;
                    out.clear();
                }
                Ok(())
            })?;
        }
        file.write_all(&out)?;
        stats.bytes = file.len();
        Ok(())
    })?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}
