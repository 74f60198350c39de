//! `INFO`: Redis 7.0's sections and field names, with keeper's values.
//!
//! Memory figures are the process's resident set size (keeper does not count its own
//! allocations), from the sampler background saves use too (`snapshot::rss`): `used_memory`
//! and `used_memory_rss` are both RSS, `used_memory_peak` is the peak RSS. `INFO
//! persistence` is [`crate::snapshot::PersistenceState::info_fields`] between Redis's
//! `loading` and `aof_*` lines, so it carries `keeper_snapshot_peak_extra_bytes`. `redis_version` is 7.0.15 (the protocol and formats keeper speaks, for tools that
//! check it); `keeper_version` is keeper's own.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::commands::REDIS_VERSION;
use super::{Shared, State};
use crate::snapshot::rss;

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "backup",
    "stats",
    "replication",
    "keyspace",
];

/// The INFO text for `sections` (lowercase; empty = the default set).
pub(crate) fn render(state: &State, shared: &Shared, sections: &[String]) -> String {
    let wanted: Vec<&str> = if sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "default" | "all" | "everything"))
    {
        DEFAULT_SECTIONS.to_vec()
    } else {
        sections.iter().map(String::as_str).collect()
    };
    let mut out = String::new();
    for section in DEFAULT_SECTIONS {
        if !wanted.contains(section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        // `write!` to a String cannot fail.
        let _ = match *section {
            "server" => server(&mut out, state, shared),
            "clients" => clients(&mut out, state, shared),
            "memory" => memory(&mut out),
            "persistence" => persistence(&mut out, state),
            "backup" => backup(&mut out, state, shared),
            "stats" => stats(&mut out, state, shared),
            "replication" => replication(&mut out, state),
            _ => keyspace(&mut out, state),
        };
    }
    out
}

fn server(out: &mut String, state: &State, shared: &Shared) -> std::fmt::Result {
    let uptime = shared.started.elapsed().as_secs();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let config = state.engine.config();
    writeln!(out, "# Server\r")?;
    writeln!(out, "redis_version:{REDIS_VERSION}\r")?;
    writeln!(out, "keeper_version:{}\r", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "redis_mode:standalone\r")?;
    writeln!(
        out,
        "os:{} {}\r",
        std::env::consts::OS,
        std::env::consts::ARCH
    )?;
    writeln!(out, "arch_bits:{}\r", usize::BITS)?;
    writeln!(out, "multiplexing_api:tokio\r")?;
    writeln!(out, "process_id:{}\r", std::process::id())?;
    writeln!(out, "run_id:{}\r", shared.run_id)?;
    writeln!(out, "tcp_port:{}\r", shared.port)?;
    writeln!(out, "server_time_usec:{now_us}\r")?;
    writeln!(out, "uptime_in_seconds:{uptime}\r")?;
    writeln!(out, "uptime_in_days:{}\r", uptime / 86400)?;
    writeln!(out, "hz:{}\r", config.hz)?;
    writeln!(out, "configured_hz:{}\r", config.hz)?;
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    writeln!(out, "executable:{executable}\r")?;
    writeln!(
        out,
        "config_file:{}\r",
        state.config_file.as_deref().unwrap_or("")
    )
}

fn clients(out: &mut String, state: &State, shared: &Shared) -> std::fmt::Result {
    let pubsub = state
        .clients
        .values()
        .filter(|c| c.subscriptions + c.patterns > 0)
        .count();
    writeln!(out, "# Clients\r")?;
    // Replicas are not counted as clients, as in Redis.
    let replicas = state.primary.lock().replicas().len();
    writeln!(
        out,
        "connected_clients:{}\r",
        state.clients.len().saturating_sub(replicas)
    )?;
    writeln!(out, "maxclients:{}\r", state.engine.config().maxclients)?;
    // Clients blocked in WAIT (keeper has no other blocking command).
    writeln!(
        out,
        "blocked_clients:{}\r",
        shared.blocked_clients.load(Ordering::Relaxed)
    )?;
    writeln!(out, "pubsub_clients:{pubsub}\r")?;
    writeln!(
        out,
        "watching_clients:{}\r",
        state
            .watched
            .values()
            .flatten()
            .collect::<std::collections::HashSet<_>>()
            .len()
    )
}

/// Redis's `bytesToHuman`.
fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    }
}

fn memory(out: &mut String) -> std::fmt::Result {
    let rss = rss::resident_bytes().unwrap_or(0);
    let peak = rss::peak_resident_bytes().unwrap_or(0).max(rss);
    writeln!(out, "# Memory\r")?;
    writeln!(out, "used_memory:{rss}\r")?;
    writeln!(out, "used_memory_human:{}\r", human(rss))?;
    writeln!(out, "used_memory_rss:{rss}\r")?;
    writeln!(out, "used_memory_rss_human:{}\r", human(rss))?;
    writeln!(out, "used_memory_peak:{peak}\r")?;
    writeln!(out, "used_memory_peak_human:{}\r", human(peak))?;
    writeln!(out, "maxmemory:0\r")?;
    writeln!(out, "maxmemory_human:0B\r")?;
    writeln!(out, "maxmemory_policy:noeviction\r")?;
    writeln!(out, "mem_allocator:libc\r")
}

fn persistence(out: &mut String, state: &State) -> std::fmt::Result {
    let engine = &state.engine;
    let now_unix = crate::engine::unix_now_ms() / 1000;
    writeln!(out, "# Persistence\r")?;
    writeln!(out, "loading:0\r")?;
    writeln!(out, "async_loading:0\r")?;
    out.push_str(&engine.persistence().info_fields(now_unix));
    writeln!(
        out,
        "aof_enabled:{}\r",
        u8::from(engine.config().appendonly)
    )?;
    match engine.aof() {
        Some(aof) => out.push_str(&aof.info_fields()),
        None => {
            writeln!(out, "aof_rewrite_in_progress:0\r")?;
            writeln!(out, "aof_rewrite_scheduled:0\r")?;
            writeln!(out, "aof_last_rewrite_time_sec:-1\r")?;
            writeln!(out, "aof_current_rewrite_time_sec:-1\r")?;
            writeln!(out, "aof_last_bgrewrite_status:ok\r")?;
            writeln!(out, "aof_rewrites:0\r")?;
            writeln!(out, "aof_rewrites_consecutive_failures:0\r")?;
            writeln!(out, "aof_last_write_status:ok\r")?;
            writeln!(out, "aof_last_cow_size:0\r")?;
            writeln!(out, "module_fork_in_progress:0\r")?;
            writeln!(out, "module_fork_last_cow_size:0\r")?;
        }
    }
    Ok(())
}

/// keeper's `# Backup` section: the backup target, schedule and the last backup's outcome.
fn backup(out: &mut String, state: &State, shared: &Shared) -> std::fmt::Result {
    let config = state.engine.config();
    writeln!(out, "# Backup\r")?;
    let fields = super::backups::info_fields(
        shared,
        &config.backup_target,
        &config.backup_schedule().to_string(),
        config.backup_retention_days.days(),
    );
    for (name, value) in fields {
        writeln!(out, "{name}:{value}\r")?;
    }
    Ok(())
}

fn stats(out: &mut String, state: &State, shared: &Shared) -> std::fmt::Result {
    let s = &state.engine.stats;
    writeln!(out, "# Stats\r")?;
    writeln!(
        out,
        "total_connections_received:{}\r",
        s.total_connections_received
    )?;
    writeln!(
        out,
        "total_commands_processed:{}\r",
        s.total_commands_processed
    )?;
    writeln!(out, "instantaneous_ops_per_sec:{}\r", state.ops_per_sec())?;
    writeln!(
        out,
        "total_net_input_bytes:{}\r",
        shared.net_input_bytes.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "total_net_output_bytes:{}\r",
        shared.net_output_bytes.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "total_net_repl_input_bytes:{}\r",
        shared.net_repl_input_bytes.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "total_net_repl_output_bytes:{}\r",
        shared.net_repl_output_bytes.load(Ordering::Relaxed)
    )?;
    writeln!(out, "rejected_connections:{}\r", s.rejected_connections)?;
    super::replication::info_stats(out, state)?;
    writeln!(out, "expired_keys:{}\r", s.expired_keys)?;
    writeln!(out, "evicted_keys:0\r")?;
    writeln!(out, "pubsub_channels:{}\r", state.pubsub.channel_count())?;
    writeln!(out, "pubsub_patterns:{}\r", state.pubsub.pattern_count())
}

fn replication(out: &mut String, state: &State) -> std::fmt::Result {
    super::replication::info_primary(out, state)
}

fn keyspace(out: &mut String, state: &State) -> std::fmt::Result {
    writeln!(out, "# Keyspace\r")?;
    let store = state.engine.store();
    for db in 0..store.databases() {
        let d = store.db(db);
        if !d.is_empty() {
            writeln!(
                out,
                "db{db}:keys={},expires={},avg_ttl=0\r",
                d.len(),
                d.expires_len()
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes_like_redis() {
        assert_eq!(super::human(512), "512B");
        assert_eq!(super::human(1536), "1.50K");
        assert_eq!(super::human(3 * 1024 * 1024), "3.00M");
    }
}
