//! `REPLCONF`, `SYNC` and `PSYNC`: the primary's side of a full sync, for rdb-only clients
//! (`redis-cli --rdb`, `keeper backup create --from`) only.
//!
//! `SYNC`/`PSYNC` take an O(1) snapshot of the store under the engine lock, together with the
//! replication id and offset it reflects, answer `+FULLRESYNC <replid> <offset>` to PSYNC
//! (nothing to SYNC, as Redis) and leave a [`FullSync`] on the client; the connection sends it
//! once the replies before it are written, outside the lock
//! ([`crate::replication::sync::send_rdb`]), then closes. Real replicas (no `REPLCONF rdb-only
//! 1`) are refused until the replication issue (7) brings the backlog and the command stream.

use super::commands::Call;
use crate::command::{self, parse_i64};
use crate::rdb::ReplicationInfo;
use crate::replication::sync::{FullSync, SyncForm};
use crate::resp::Reply;
use crate::snapshot::SaveOptions;

/// Redis 7.0's `NET_HOST_STR_LEN`: the longest `REPLCONF ip-address` (an IP or a hostname)
/// accepted, plus one.
const NET_HOST_STR_LEN: usize = 256;

/// The refusal a replica gets: keeper serves rdb-only transfers only, so far.
pub(crate) const REPLICAS_NOT_SUPPORTED: &str = "ERR keeper serves SYNC and PSYNC only to \
     rdb-only clients (REPLCONF rdb-only 1, as redis-cli --rdb sends): replicas are not \
     supported yet (issue 7)";

/// `REPLCONF <option> <value> …`, as Redis 7.0's `replconfCommand`: options apply in order,
/// the first bad one answers an error; `ack` and `getack` answer nothing at all (a primary
/// that is no replica has nothing to acknowledge).
pub(super) fn replconf(call: &mut Call<'_>) {
    if call.argv.len().is_multiple_of(2) {
        return call.client.reply(&Reply::error(command::errors::SYNTAX));
    }
    for pair in call.argv[1..].chunks_exact(2) {
        let (option, value) = (&pair[0], &pair[1]);
        match option.to_ascii_lowercase().as_slice() {
            b"listening-port" => {
                if parse_i64(value).is_none() {
                    return call
                        .client
                        .reply(&Reply::error(command::errors::NOT_INTEGER));
                }
            }
            b"ip-address" => {
                if value.len() >= NET_HOST_STR_LEN {
                    return call.client.reply(&Reply::error(format!(
                        "ERR REPLCONF ip-address provided by replica instance is too long: {} \
                         bytes",
                        value.len()
                    )));
                }
            }
            b"capa" => {
                // Capabilities this primary does not know are ignored, as Redis does.
                if value.eq_ignore_ascii_case(b"eof") {
                    call.client.repl_capa_eof = true;
                }
            }
            b"ack" | b"getack" => return,
            b"rdb-only" => match parse_i64(value) {
                Some(flag @ (0 | 1)) => call.client.repl_rdb_only = flag == 1,
                Some(_) => {
                    return call.client.reply(&Reply::error(
                        "ERR value is out of range, value must between 0 and 1",
                    ));
                }
                None => {
                    return call
                        .client
                        .reply(&Reply::error(command::errors::NOT_INTEGER));
                }
            },
            _ => {
                return call.client.reply(&Reply::error(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(option)
                )));
            }
        }
    }
    call.client.reply(&Reply::Ok);
}

/// `SYNC`: a full sync without the `+FULLRESYNC` line.
pub(super) fn sync(call: &mut Call<'_>) {
    full_sync(call, false);
}

/// `PSYNC <replid> <offset>`: keeper has no backlog yet, so every PSYNC is a full resync
/// (Redis answers `PSYNC ? -1` so too).
pub(super) fn psync(call: &mut Call<'_>) {
    if parse_i64(&call.argv[2]).is_none() {
        return call
            .client
            .reply(&Reply::error(command::errors::NOT_INTEGER));
    }
    full_sync(call, true);
}

fn full_sync(call: &mut Call<'_>, psync: bool) {
    // As Redis: the RDB must not be interleaved with replies still waiting to be written.
    if !call.client.out.is_empty() {
        return call.client.reply(&Reply::error(
            "ERR SYNC and PSYNC are invalid with pending output",
        ));
    }
    if !call.client.repl_rdb_only {
        return call.client.reply(&Reply::error(REPLICAS_NOT_SUPPORTED));
    }
    let engine = &call.state.engine;
    let replid = engine.replid().to_owned();
    let offset = engine.repl_offset();
    let config = engine.config();
    let addr = call
        .state
        .clients
        .get(&call.client.id)
        .map_or_else(|| "?".to_owned(), |info| info.addr.to_string());
    tracing::info!("Replica {addr} asks for synchronization");
    tracing::info!("Full resync requested by replica {addr} (rdb-only)");
    let form = if call.client.repl_capa_eof {
        SyncForm::Diskless
    } else {
        SyncForm::Staged {
            storage: std::sync::Arc::clone(engine.persistence().storage()),
            path: config.dir.join(format!(
                "temp-sync-{}-{}.rdb",
                std::process::id(),
                call.client.id
            )),
        }
    };
    tracing::info!(
        "Starting BGSAVE for SYNC with target: {}",
        if call.client.repl_capa_eof {
            "replicas sockets"
        } else {
            "disk"
        }
    );
    let options = SaveOptions {
        compression: config.rdbcompression,
        checksum: config.rdbchecksum,
        incremental_fsync: false,
        used_mem: crate::snapshot::rss::resident_bytes().unwrap_or(0),
        replication: Some(ReplicationInfo {
            id: replid.clone(),
            offset,
            stream_db: engine
                .propagated_db()
                .and_then(|db| u32::try_from(db).ok())
                .unwrap_or(0),
        }),
        ..SaveOptions::default()
    };
    let sync = FullSync {
        snapshot: Box::new(engine.store().snapshot()),
        options,
        form,
    };
    if psync {
        call.client.reply(&Reply::Simple(
            format!("FULLRESYNC {replid} {offset}").into(),
        ));
    }
    call.client.full_sync = Some(sync);
}
