//! Server configuration with Redis's option names, so operators recognise them.
//!
//! Sources, applied in order as redis-server applies them: the defaults, a redis.conf-style
//! file (`--config FILE`), then command-line options (`--name value…`, an option's values run
//! up to the next `--`). At run time `CONFIG GET pattern` / `CONFIG SET name value …` read and
//! change the same table ([`Config::get`], [`Config::set`]).
//!
//! `save` follows Redis: in a file or on the command line the first `save` directive replaces
//! the defaults and later ones add points; `save ""` removes every point. `--save "900 1"` and
//! `--save 900 1 300 10` are the same.

pub mod rewrite;

use std::path::{Path, PathBuf};

use crate::backup::schedule::{Retention, Schedule};
use crate::resp::split_args;
use crate::snapshot::SavePoints;

/// `appendfsync`: when AOF data reaches the disk (the AOF itself arrives with issue 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// `fdatasync` before acknowledging: nothing acknowledged is lost on power loss.
    Always,
    /// Background `fdatasync` at most one second apart: up to about a second of
    /// acknowledged writes may be lost on power loss; nothing on a process crash.
    EverySec,
    /// Left to the OS: a process crash loses nothing written, power loss may lose more.
    No,
}

/// `loglevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
}

/// The server's options. Each field carries its Redis name, default and bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `port`: TCP port. Default: 6380 (beside a real Redis on 6379). 0 picks a free port.
    pub port: u16,
    /// `bind`: addresses to listen on. Default: 127.0.0.1.
    pub bind: Vec<String>,
    /// `dir`: the data folder (created at start). Default: ./data.
    pub dir: PathBuf,
    /// `dbfilename`: the RDB file in `dir`. Default: dump.rdb.
    pub dbfilename: String,
    /// `save`: automatic snapshot points. Default: 3600 1 300 100 60 10000.
    pub save: SavePoints,
    /// `stop-writes-on-bgsave-error`: refuse writes (MISCONF) after a failed background save
    /// while save points are set. Default: yes.
    pub stop_writes_on_bgsave_error: bool,
    /// `rdbcompression`: LZF-compress strings in RDB files. Default: yes.
    pub rdbcompression: bool,
    /// `rdbchecksum`: write (and verify) the RDB CRC-64. Default: yes.
    pub rdbchecksum: bool,
    /// `requirepass`: password of the default user; empty = none. Default: empty.
    pub requirepass: String,
    /// `databases`: number of databases. Default: 16, bounds 1..=1000000 (immutable).
    pub databases: usize,
    /// `appendonly`: the AOF on; `CONFIG SET` turns it on or off at run time. Default: no.
    pub appendonly: bool,
    /// `appendfsync`. Default: everysec.
    pub appendfsync: AppendFsync,
    /// `appenddirname`: AOF folder inside `dir`. Default: appendonlydir.
    pub appenddirname: String,
    /// `appendfilename`: AOF base name. Default: appendonly.aof.
    pub appendfilename: String,
    /// `auto-aof-rewrite-percentage`: growth that triggers a rewrite; 0 = never. Default: 100.
    pub auto_aof_rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size`: no automatic rewrite below this size. Default: 64mb.
    pub auto_aof_rewrite_min_size: u64,
    /// `aof-load-truncated`: load an AOF whose tail was cut. Default: yes.
    pub aof_load_truncated: bool,
    /// `aof-use-rdb-preamble`: AOF base files in RDB format. Default: yes.
    pub aof_use_rdb_preamble: bool,
    /// `aof-timestamp-enabled`: `#TS:` annotations in the AOF. Default: no.
    pub aof_timestamp_enabled: bool,
    /// `aof-max-disk-size` (keeper's): bytes the AOF directory may hold, a rewrite in
    /// progress included; 0 = unlimited. Default: 0.
    pub aof_max_disk_size: u64,
    /// `aof-disk-reserve` (keeper's): free space the file system must keep beyond the AOF's
    /// next write; writes that would eat into it are refused as over budget. Default: 16mb.
    pub aof_disk_reserve: u64,
    /// `maxclients`: connections accepted at once. Default: 10000, at least 1.
    pub maxclients: u32,
    /// `hz`: background cycles (expiry, save points) per second. Default: 10, bounds 1..=500.
    pub hz: u32,
    /// `io-threads`: threads that serve client connections (the runtime's workers); commands
    /// still run one at a time under the engine lock. Default: 1, as Redis's, bounds 1..=128
    /// (immutable). One thread serves a small machine best: a second one mostly adds
    /// hand-offs and lock waits (on 2 cores, SET throughput over a million keys rose 22% at
    /// `-P 1` and 30% at `-P 16` going from two threads to one); more help with many cores
    /// and many connections, where socket reads and writes dominate.
    pub io_threads: usize,
    /// `malloc-huge-pages` (keeper's): the `keeper server` binary backs glibc malloc's heap
    /// with transparent huge pages where the system leaves them to programs that ask
    /// (`enabled` = `madvise`), by restarting itself with glibc's `glibc.malloc.hugetlb=1`
    /// tunable; glibc does that for its main arena only, so every thread then allocates from
    /// it (`M_ARENA_MAX` = 1; an embedder's `server::run` does that part too). Default: yes
    /// (immutable).
    ///
    /// Why: a node's memory is millions of small allocations touched at random; on 4 KiB
    /// pages each first touch faults and most accesses miss the TLB. Loading a 1 GB AOF took
    /// 12.2–12.4 s instead of 15.6–16.1 s, its system time halved (BENCHMARKS.md, "Huge pages
    /// for malloc's heap"). Redis turns huge pages off (`disable-thp`) because a forked
    /// child's copy-on-write then copies 2 MiB per written page; keeper never forks.
    pub malloc_huge_pages: bool,
    /// `loglevel`. Default: notice.
    pub loglevel: LogLevel,
    /// `replicaof host port`: replicate from that primary from the start; `REPLICAOF`
    /// changes it at run time. Default: none.
    pub replicaof: Option<(String, u16)>,
    /// `masterauth`: the password a replica sends its primary (`AUTH`). Default: empty.
    pub masterauth: String,
    /// `masteruser`: the ACL user a replica authenticates as (with `masterauth`). Default:
    /// empty (the password alone).
    pub masteruser: String,
    /// `replica-read-only` (`slave-read-only`): a replica refuses clients' writes. Default:
    /// yes.
    pub replica_read_only: bool,
    /// `replica-priority` (`slave-priority`): Sentinel's promotion order, lower first; 0 =
    /// never. Default: 100.
    pub replica_priority: u32,
    /// `replica-announced`: Sentinel lists this replica. Default: yes.
    pub replica_announced: bool,
    /// `replica-announce-ip`: the address a replica gives its primary (`REPLCONF ip-address`)
    /// instead of the one the primary sees, for NAT and containers. Default: empty (none).
    pub replica_announce_ip: String,
    /// `replica-announce-port`: the port a replica gives its primary (`REPLCONF
    /// listening-port`) instead of its own. Default: 0 (its own).
    pub replica_announce_port: u16,
    /// `proto-max-bulk-len`: largest request argument. Default: 512mb, at least 1mb.
    pub proto_max_bulk_len: u64,
    /// `repl-backlog-size`: bytes of the propagated stream a primary keeps for partial
    /// resyncs. Default: 1mb; at least 1, and raised to 16kb as Redis does.
    pub repl_backlog_size: u64,
    /// `repl-backlog-ttl`: seconds without replicas after which a primary frees its backlog
    /// (and takes a new replication id); 0 = never. Default: 3600.
    pub repl_backlog_ttl: u64,
    /// `repl-ping-replica-period` (alias `repl-ping-slave-period`): seconds between the
    /// `PING`s a primary puts in the stream while it has replicas. Default: 10, at least 1.
    pub repl_ping_replica_period: u64,
    /// `repl-timeout`: seconds without an ACK after which a primary drops an online replica.
    /// Default: 60, at least 1.
    pub repl_timeout: u64,
    /// `repl-diskless-sync`: a full sync streams the RDB as it is written (the `$EOF:` form) to
    /// replicas that announced `capa eof`; `no` stages it in a file first (the `$<len>` form).
    /// Default: yes.
    pub repl_diskless_sync: bool,
    /// `repl-diskless-sync-delay`: seconds a diskless full sync waits for more replicas to
    /// ask, so that all of them share one snapshot and one RDB stream; 0 = start at once.
    /// Default: 5.
    pub repl_diskless_sync_delay: u64,
    /// `repl-diskless-sync-max-replicas`: a delayed diskless sync starts as soon as this many
    /// replicas wait; 0 = no limit (wait for the whole delay). Default: 0.
    pub repl_diskless_sync_max_replicas: u64,
    /// `client-output-buffer-limit`: per client class, the output a client may have queued
    /// (hard limit: dropped at once; soft limit: dropped after exceeding it for that many
    /// seconds). keeper enforces the replica class; the `normal` and `pubsub` limits are
    /// kept for `CONFIG GET`/`SET` only. Default: `normal 0 0 0 slave 256mb 64mb 60 pubsub
    /// 32mb 8mb 60`.
    pub client_output_buffer_limit: OutputBufferLimits,
    /// `min-replicas-to-write` (alias `min-slaves-to-write`): writes are refused
    /// (`NOREPLICAS`) unless this many replicas are online and acknowledged within
    /// `min-replicas-max-lag` seconds; 0 = off. Default: 0.
    pub min_replicas_to_write: u64,
    /// `min-replicas-max-lag` (alias `min-slaves-max-lag`): see `min-replicas-to-write`; 0 =
    /// off. Default: 10.
    pub min_replicas_max_lag: u64,
    /// `backup-target` (keeper's): where automatic and final backups go, a local folder or
    /// `s3://bucket/prefix`; empty = no backups. Default: empty.
    pub backup_target: String,
    /// `backup-window` (keeper's): the daily UTC window of the automatic backup,
    /// `HH:MM-HH:MM`, at least 60 minutes. Default: 05:00-06:00.
    pub backup_window: Schedule,
    /// `backup-cron` (keeper's): a cron expression that replaces the window; empty = use the
    /// window. Default: empty.
    pub backup_cron: Option<Schedule>,
    /// `backup-retention-days` (keeper's): automatic backups older than this expire; 0 turns
    /// automatic backups off. 0–35. Default: 1.
    pub backup_retention_days: Retention,
    /// `backup-on-shutdown` (keeper's): a final backup when the node shuts down. Default: no.
    pub backup_on_shutdown: bool,
}

impl Config {
    /// The schedule of automatic backups: `backup-cron` when set, else `backup-window`.
    pub fn backup_schedule(&self) -> &Schedule {
        self.backup_cron.as_ref().unwrap_or(&self.backup_window)
    }
}

/// One class's `client-output-buffer-limit`: 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimit {
    /// Bytes queued at which the client is dropped at once.
    pub hard: u64,
    /// Bytes queued that, exceeded for `soft_seconds` in a row, drop the client.
    pub soft: u64,
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit` for the three client classes Redis configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimits {
    pub normal: OutputBufferLimit,
    /// `slave` / `replica`: enforced on the replication stream of every replica.
    pub replica: OutputBufferLimit,
    pub pubsub: OutputBufferLimit,
}

impl Default for OutputBufferLimits {
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        OutputBufferLimits {
            normal: OutputBufferLimit {
                hard: 0,
                soft: 0,
                soft_seconds: 0,
            },
            replica: OutputBufferLimit {
                hard: 256 * MB,
                soft: 64 * MB,
                soft_seconds: 60,
            },
            pubsub: OutputBufferLimit {
                hard: 32 * MB,
                soft: 8 * MB,
                soft_seconds: 60,
            },
        }
    }
}

impl std::fmt::Display for OutputBufferLimits {
    /// Redis's `CONFIG GET` form: `normal 0 0 0 slave 268435456 67108864 60 pubsub …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (class, l)) in [
            ("normal", self.normal),
            ("slave", self.replica),
            ("pubsub", self.pubsub),
        ]
        .into_iter()
        .enumerate()
        {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{class} {} {} {}", l.hard, l.soft, l.soft_seconds)?;
        }
        Ok(())
    }
}

impl OutputBufferLimits {
    /// Applies `<class> <hard> <soft> <soft seconds>` groups (Redis's
    /// `setConfigClientOutputBufferLimitOption`): all are checked before any applies.
    fn apply(&mut self, args: &[String]) -> Result<(), String> {
        if !args.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut parsed = Vec::new();
        for group in args.chunks_exact(4) {
            let class = match group[0].to_ascii_lowercase().as_str() {
                "normal" => 0,
                "slave" | "replica" => 1,
                "pubsub" => 2,
                _ => {
                    return Err(
                        "Invalid client class specified in buffer limit configuration.".into(),
                    );
                }
            };
            let mut values = [0u64; 3];
            for (value, text) in values.iter_mut().zip(&group[1..]) {
                *value = memory(text).map_err(|_| {
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .to_string()
                })?;
            }
            parsed.push((class, values));
        }
        for (class, [hard, soft, soft_seconds]) in parsed {
            let limit = OutputBufferLimit {
                hard,
                soft,
                soft_seconds,
            };
            match class {
                0 => self.normal = limit,
                1 => self.replica = limit,
                _ => self.pubsub = limit,
            }
        }
        Ok(())
    }
}

/// `backup-window` when none is configured (ElastiCache picks one for you; this is ours).
pub const DEFAULT_BACKUP_WINDOW: &str = "05:00-06:00";

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6380,
            bind: vec!["127.0.0.1".into()],
            dir: PathBuf::from("./data"),
            dbfilename: "dump.rdb".into(),
            save: SavePoints::default(),
            stop_writes_on_bgsave_error: true,
            rdbcompression: true,
            rdbchecksum: true,
            requirepass: String::new(),
            databases: 16,
            appendonly: false,
            appendfsync: AppendFsync::EverySec,
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            aof_timestamp_enabled: false,
            aof_max_disk_size: 0,
            aof_disk_reserve: 16 * 1024 * 1024,
            maxclients: 10000,
            hz: 10,
            io_threads: 1,
            malloc_huge_pages: true,
            loglevel: LogLevel::Notice,
            replicaof: None,
            masterauth: String::new(),
            masteruser: String::new(),
            replica_read_only: true,
            replica_priority: 100,
            replica_announced: true,
            replica_announce_ip: String::new(),
            replica_announce_port: 0,
            proto_max_bulk_len: crate::resp::DEFAULT_MAX_BULK_LEN,
            repl_backlog_size: crate::replication::backlog::DEFAULT_BACKLOG_SIZE,
            repl_backlog_ttl: 3600,
            repl_ping_replica_period: 10,
            repl_timeout: 60,
            repl_diskless_sync: true,
            repl_diskless_sync_delay: 5,
            repl_diskless_sync_max_replicas: 0,
            client_output_buffer_limit: OutputBufferLimits::default(),
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            backup_target: String::new(),
            backup_window: Schedule::parse_window(DEFAULT_BACKUP_WINDOW)
                .expect("the default window parses"),
            backup_cron: None,
            backup_retention_days: Retention::new(1).expect("1 day is a valid retention"),
            backup_on_shutdown: false,
        }
    }
}

/// Whether `CONFIG SET` may change an option.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Mutable,
    /// Needs a restart (`can't set immutable config`).
    Immutable,
    /// Dangerous at run time (`can't set protected config`, as Redis's default
    /// `enable-protected-configs no`).
    Protected,
}

type Getter = fn(&Config) -> String;
/// Applies the option's arguments; `Err` is Redis's reason text.
type Setter = fn(&mut Config, &[String]) -> Result<(), String>;

struct OptionDef {
    name: &'static str,
    change: Change,
    /// Takes several arguments on one line (`save`, `bind`); a single `CONFIG SET` string is
    /// split at spaces.
    multi_arg: bool,
    get: Getter,
    set: Setter,
}

const fn opt(name: &'static str, change: Change, get: Getter, set: Setter) -> OptionDef {
    OptionDef {
        name,
        change,
        multi_arg: false,
        get,
        set,
    }
}

const fn multi(name: &'static str, change: Change, get: Getter, set: Setter) -> OptionDef {
    OptionDef {
        name,
        change,
        multi_arg: true,
        get,
        set,
    }
}

use Change::{Immutable, Mutable, Protected};

/// Every option, in the order `CONFIG GET *` lists them.
static OPTIONS: &[OptionDef] = &[
    opt(
        "port",
        Immutable,
        |c| c.port.to_string(),
        |c, a| {
            c.port = int(one(a)?, 0, 65535)? as u16;
            Ok(())
        },
    ),
    multi(
        "bind",
        Immutable,
        |c| c.bind.join(" "),
        |c, a| {
            if a.is_empty() || a.iter().any(String::is_empty) {
                return Err("Invalid bind address".into());
            }
            c.bind = a.to_vec();
            Ok(())
        },
    ),
    opt(
        "dir",
        Protected,
        |c| c.dir.display().to_string(),
        |c, a| {
            let dir = one(a)?;
            if dir.is_empty() {
                return Err("dir cannot be empty".into());
            }
            c.dir = PathBuf::from(dir);
            Ok(())
        },
    ),
    opt(
        "dbfilename",
        Protected,
        |c| c.dbfilename.clone(),
        |c, a| {
            let name = one(a)?;
            if name.is_empty() || name.contains('/') {
                return Err("dbfilename can't be a path, just a filename".into());
            }
            c.dbfilename = name.to_string();
            Ok(())
        },
    ),
    multi(
        "save",
        Mutable,
        |c| c.save.to_string(),
        // CONFIG SET only (files and the command line go through `apply_directive`): the
        // arguments are the value split at single spaces, so joining them gives it back.
        |c, a| {
            c.save = SavePoints::parse_config_set(&a.join(" ")).map_err(|e| e.to_string())?;
            Ok(())
        },
    ),
    opt(
        "stop-writes-on-bgsave-error",
        Mutable,
        |c| yes_no(c.stop_writes_on_bgsave_error),
        |c, a| {
            c.stop_writes_on_bgsave_error = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "rdbcompression",
        Mutable,
        |c| yes_no(c.rdbcompression),
        |c, a| {
            c.rdbcompression = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "rdbchecksum",
        Immutable,
        |c| yes_no(c.rdbchecksum),
        |c, a| {
            c.rdbchecksum = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "requirepass",
        Mutable,
        |c| c.requirepass.clone(),
        |c, a| {
            c.requirepass = one(a)?.to_string();
            Ok(())
        },
    ),
    opt(
        "databases",
        Immutable,
        |c| c.databases.to_string(),
        |c, a| {
            c.databases = int(one(a)?, 1, 1_000_000)? as usize;
            Ok(())
        },
    ),
    opt(
        "appendonly",
        Mutable,
        |c| yes_no(c.appendonly),
        |c, a| {
            c.appendonly = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "appendfsync",
        Mutable,
        |c| {
            match c.appendfsync {
                AppendFsync::Always => "always",
                AppendFsync::EverySec => "everysec",
                AppendFsync::No => "no",
            }
            .into()
        },
        |c, a| {
            c.appendfsync = match one(a)?.to_ascii_lowercase().as_str() {
                "always" => AppendFsync::Always,
                "everysec" => AppendFsync::EverySec,
                "no" => AppendFsync::No,
                _ => return Err(one_of(&["everysec", "always", "no"])),
            };
            Ok(())
        },
    ),
    opt(
        "appenddirname",
        Immutable,
        |c| c.appenddirname.clone(),
        |c, a| {
            let name = one(a)?;
            if name.is_empty() || name.contains('/') {
                return Err("appenddirname can't be a path, just a dirname".into());
            }
            c.appenddirname = name.to_string();
            Ok(())
        },
    ),
    opt(
        "appendfilename",
        Immutable,
        |c| c.appendfilename.clone(),
        |c, a| {
            let name = one(a)?;
            if name.is_empty() || name.contains('/') {
                return Err("appendfilename can't be a path, just a filename".into());
            }
            c.appendfilename = name.to_string();
            Ok(())
        },
    ),
    opt(
        "auto-aof-rewrite-percentage",
        Mutable,
        |c| c.auto_aof_rewrite_percentage.to_string(),
        |c, a| {
            c.auto_aof_rewrite_percentage = int(one(a)?, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    opt(
        "auto-aof-rewrite-min-size",
        Mutable,
        |c| c.auto_aof_rewrite_min_size.to_string(),
        |c, a| {
            c.auto_aof_rewrite_min_size = memory(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "aof-load-truncated",
        Mutable,
        |c| yes_no(c.aof_load_truncated),
        |c, a| {
            c.aof_load_truncated = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "aof-use-rdb-preamble",
        Mutable,
        |c| yes_no(c.aof_use_rdb_preamble),
        |c, a| {
            c.aof_use_rdb_preamble = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "aof-timestamp-enabled",
        Mutable,
        |c| yes_no(c.aof_timestamp_enabled),
        |c, a| {
            c.aof_timestamp_enabled = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "aof-max-disk-size",
        Mutable,
        |c| c.aof_max_disk_size.to_string(),
        |c, a| {
            c.aof_max_disk_size = memory(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "aof-disk-reserve",
        Mutable,
        |c| c.aof_disk_reserve.to_string(),
        |c, a| {
            c.aof_disk_reserve = memory(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "backup-target",
        Mutable,
        |c| c.backup_target.clone(),
        |c, a| {
            c.backup_target = one(a)?.to_string();
            Ok(())
        },
    ),
    opt(
        "backup-window",
        Mutable,
        |c| c.backup_window.to_string(),
        |c, a| {
            c.backup_window = Schedule::parse_window(one(a)?).map_err(|e| e.to_string())?;
            Ok(())
        },
    ),
    opt(
        "backup-cron",
        Mutable,
        |c| {
            c.backup_cron
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        },
        |c, a| {
            let text = one(a)?;
            c.backup_cron = if text.is_empty() {
                None
            } else {
                Some(Schedule::parse_cron(text).map_err(|e| e.to_string())?)
            };
            Ok(())
        },
    ),
    opt(
        "backup-retention-days",
        Mutable,
        |c| c.backup_retention_days.days().to_string(),
        |c, a| {
            let days = int(one(a)?, 0, 35)? as u32;
            c.backup_retention_days = Retention::new(days).map_err(|e| e.to_string())?;
            Ok(())
        },
    ),
    opt(
        "backup-on-shutdown",
        Mutable,
        |c| yes_no(c.backup_on_shutdown),
        |c, a| {
            c.backup_on_shutdown = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "maxclients",
        Mutable,
        |c| c.maxclients.to_string(),
        |c, a| {
            c.maxclients = int(one(a)?, 1, u32::MAX as i64)? as u32;
            Ok(())
        },
    ),
    opt(
        "hz",
        Mutable,
        |c| c.hz.to_string(),
        |c, a| {
            // Redis accepts any non-negative value and clamps it to 1..=500.
            c.hz = int(one(a)?, 0, i32::MAX as i64)?.clamp(1, 500) as u32;
            Ok(())
        },
    ),
    opt(
        "io-threads",
        Immutable,
        |c| c.io_threads.to_string(),
        |c, a| {
            c.io_threads = int(one(a)?, 1, 128)? as usize;
            Ok(())
        },
    ),
    opt(
        "malloc-huge-pages",
        Immutable,
        |c| yes_no(c.malloc_huge_pages),
        |c, a| {
            c.malloc_huge_pages = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "loglevel",
        Mutable,
        |c| {
            match c.loglevel {
                LogLevel::Debug => "debug",
                LogLevel::Verbose => "verbose",
                LogLevel::Notice => "notice",
                LogLevel::Warning => "warning",
            }
            .into()
        },
        |c, a| {
            c.loglevel = match one(a)?.to_ascii_lowercase().as_str() {
                "debug" => LogLevel::Debug,
                "verbose" => LogLevel::Verbose,
                "notice" => LogLevel::Notice,
                "warning" => LogLevel::Warning,
                _ => return Err(one_of(&["debug", "verbose", "notice", "warning"])),
            };
            Ok(())
        },
    ),
    multi(
        "replicaof",
        Immutable,
        |c| {
            c.replicaof
                .as_ref()
                .map(|(h, p)| format!("{h} {p}"))
                .unwrap_or_default()
        },
        |c, a| {
            c.replicaof = match a {
                [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => {
                    None
                }
                [host, port] => Some((host.clone(), int(port, 1, 65535)? as u16)),
                _ => return Err("wrong number of arguments".into()),
            };
            Ok(())
        },
    ),
    opt(
        "masterauth",
        Mutable,
        |c| c.masterauth.clone(),
        |c, a| {
            c.masterauth = one(a)?.to_string();
            Ok(())
        },
    ),
    opt(
        "masteruser",
        Mutable,
        |c| c.masteruser.clone(),
        |c, a| {
            c.masteruser = one(a)?.to_string();
            Ok(())
        },
    ),
    opt(
        "replica-read-only",
        Mutable,
        |c| yes_no(c.replica_read_only),
        |c, a| {
            c.replica_read_only = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "replica-priority",
        Mutable,
        |c| c.replica_priority.to_string(),
        |c, a| {
            c.replica_priority = int(one(a)?, 0, i32::MAX as i64)? as u32;
            Ok(())
        },
    ),
    opt(
        "replica-announced",
        Mutable,
        |c| yes_no(c.replica_announced),
        |c, a| {
            c.replica_announced = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "replica-announce-ip",
        Mutable,
        |c| c.replica_announce_ip.clone(),
        |c, a| {
            c.replica_announce_ip = one(a)?.to_string();
            Ok(())
        },
    ),
    opt(
        "replica-announce-port",
        Mutable,
        |c| c.replica_announce_port.to_string(),
        |c, a| {
            c.replica_announce_port = int(one(a)?, 0, 65535)? as u16;
            Ok(())
        },
    ),
    opt(
        "proto-max-bulk-len",
        Mutable,
        |c| c.proto_max_bulk_len.to_string(),
        |c, a| {
            let len = memory(one(a)?)?;
            if len < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.proto_max_bulk_len = len;
            Ok(())
        },
    ),
    opt(
        "repl-backlog-size",
        Mutable,
        |c| c.repl_backlog_size.to_string(),
        |c, a| {
            let size = memory(one(a)?)?;
            if size < 1 {
                return Err("argument must be between 1 and 9223372036854775807 inclusive".into());
            }
            c.repl_backlog_size = size.max(crate::replication::backlog::MIN_BACKLOG_SIZE);
            Ok(())
        },
    ),
    opt(
        "repl-backlog-ttl",
        Mutable,
        |c| c.repl_backlog_ttl.to_string(),
        |c, a| {
            c.repl_backlog_ttl = int(one(a)?, 0, i64::MAX)? as u64;
            Ok(())
        },
    ),
    opt(
        "repl-ping-replica-period",
        Mutable,
        |c| c.repl_ping_replica_period.to_string(),
        |c, a| {
            c.repl_ping_replica_period = int(one(a)?, 1, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    opt(
        "repl-timeout",
        Mutable,
        |c| c.repl_timeout.to_string(),
        |c, a| {
            c.repl_timeout = int(one(a)?, 1, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    opt(
        "repl-diskless-sync",
        Mutable,
        |c| yes_no(c.repl_diskless_sync),
        |c, a| {
            c.repl_diskless_sync = boolean(one(a)?)?;
            Ok(())
        },
    ),
    opt(
        "repl-diskless-sync-delay",
        Mutable,
        |c| c.repl_diskless_sync_delay.to_string(),
        |c, a| {
            c.repl_diskless_sync_delay = int(one(a)?, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    opt(
        "repl-diskless-sync-max-replicas",
        Mutable,
        |c| c.repl_diskless_sync_max_replicas.to_string(),
        |c, a| {
            c.repl_diskless_sync_max_replicas = int(one(a)?, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    opt(
        "min-replicas-to-write",
        Mutable,
        |c| c.min_replicas_to_write.to_string(),
        |c, a| {
            c.min_replicas_to_write = int(one(a)?, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    opt(
        "min-replicas-max-lag",
        Mutable,
        |c| c.min_replicas_max_lag.to_string(),
        |c, a| {
            c.min_replicas_max_lag = int(one(a)?, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    ),
    multi(
        "client-output-buffer-limit",
        Mutable,
        |c| c.client_output_buffer_limit.to_string(),
        |c, a| c.client_output_buffer_limit.apply(a),
    ),
];

/// Redis's old names (`slaveof`, `slave-…`).
const ALIASES: &[(&str, &str)] = &[
    ("slaveof", "replicaof"),
    ("slave-read-only", "replica-read-only"),
    ("slave-priority", "replica-priority"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
];

fn find(name: &str) -> Option<&'static OptionDef> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, real)| real);
    OPTIONS.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

fn one(args: &[String]) -> Result<&str, String> {
    match args {
        [one] => Ok(one),
        _ => Err("wrong number of arguments".into()),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn one_of(values: &[&str]) -> String {
    format!(
        "argument(s) must be one of the following: {}",
        values.join(", ")
    )
}

fn int(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let n = crate::command::parse_i64(s.as_bytes())
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
    if n < min || n > max {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(n)
}

/// A memory size as Redis's `memtoull` reads it: a number with an optional unit, `k`/`m`/`g`
/// (powers of 1000) or `kb`/`mb`/`gb` (powers of 1024), any case.
pub fn memory(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err("argument must be a memory value".into()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| "argument must be a memory value".into())
}

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A line of a config file (1-based) that is not a valid directive.
    #[error("{file}, line {line}: '{text}': {reason}")]
    File {
        file: String,
        line: usize,
        text: String,
        reason: String,
    },
    /// A command-line option that is unknown or has a bad value.
    #[error("--{option}: {reason}")]
    Option { option: String, reason: String },
    /// The config file cannot be read.
    #[error("cannot read config file {file}: {reason}")]
    Read { file: String, reason: String },
}

/// Tracks what a load has seen, for `save`'s first-replaces-then-appends rule.
#[derive(Default)]
struct LoadState {
    save_seen: bool,
}

impl Config {
    /// Applies one directive (`name` and its arguments) as a file or the command line gives it.
    fn apply_directive(
        &mut self,
        name: &str,
        args: &[String],
        state: &mut LoadState,
    ) -> Result<(), String> {
        let def =
            find(name).ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        if def.name == "save" {
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let points = SavePoints::from_config_args(&words).map_err(|e| e.to_string())?;
            // Redis's `setConfigSaveOption`: a lone `""` empties the list at once; otherwise
            // the first `save` of the whole load replaces the defaults and later ones append.
            let clears = matches!(args, [only] if only.is_empty());
            if clears || !state.save_seen {
                self.save = SavePoints::disabled();
            }
            state.save_seen = true;
            self.save.extend(points);
            return Ok(());
        }
        let split;
        let args = if def.multi_arg && args.len() == 1 && def.name != "replicaof" {
            split = args[0]
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>();
            &split[..]
        } else {
            args
        };
        (def.set)(self, args)
    }

    /// Applies the text of a redis.conf-style file: one directive per line, `#` comments,
    /// arguments split like `redis-cli` input (quotes allowed). `file` names the source in
    /// errors.
    pub fn load_str(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        self.load_str_with(text, file, &mut LoadState::default())
    }

    fn load_str_with(
        &mut self,
        text: &str,
        file: &str,
        state: &mut LoadState,
    ) -> Result<(), ConfigError> {
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason: String| ConfigError::File {
                file: file.to_string(),
                line: index + 1,
                text: line.to_string(),
                reason,
            };
            let args = split_args(line.as_bytes())
                .ok_or_else(|| error("Unbalanced quotes in configuration line".into()))?;
            let args: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let Some((name, values)) = args.split_first() else {
                continue;
            };
            self.apply_directive(name, values, state).map_err(error)?;
        }
        Ok(())
    }

    /// The configuration `keeper server` runs with, from its arguments (after `server`):
    /// `--config FILE` first, then every `--name value…` in order, as redis-server applies a
    /// config file and then its command line.
    pub fn from_args(args: &[String]) -> Result<Config, ConfigError> {
        let mut options: Vec<(String, Vec<String>)> = Vec::new();
        for arg in args {
            if let Some(name) = arg.strip_prefix("--") {
                options.push((name.to_string(), Vec::new()));
            } else if let Some((_, values)) = options.last_mut() {
                values.push(arg.clone());
            } else {
                return Err(ConfigError::Option {
                    option: arg.clone(),
                    reason: "expected an option starting with --".into(),
                });
            }
        }
        let mut config = Config::default();
        // One load, as redis-server appends its command line to the file's text: a `--save`
        // adds to the file's `save` lines instead of replacing them.
        let mut state = LoadState::default();
        for (name, values) in options.iter().filter(|(n, _)| n == "config") {
            let [file] = &values[..] else {
                return Err(ConfigError::Option {
                    option: name.clone(),
                    reason: "expects exactly one file name".into(),
                });
            };
            config.load_file_with(Path::new(file), &mut state)?;
        }
        for (name, values) in options.iter().filter(|(n, _)| n != "config") {
            config
                .apply_directive(name, values, &mut state)
                .map_err(|reason| ConfigError::Option {
                    option: name.clone(),
                    reason: if find(name).is_none() {
                        "unknown option".into()
                    } else {
                        reason
                    },
                })?;
        }
        Ok(config)
    }

    /// Applies a config file.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        self.load_file_with(path, &mut LoadState::default())
    }

    fn load_file_with(&mut self, path: &Path, state: &mut LoadState) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.load_str_with(&text, &path.display().to_string(), state)
    }

    /// `CONFIG GET pattern`: `(name, value)` of every option matching the glob `pattern`
    /// (case-insensitive). An exact name is reported as the caller spelled it, as Redis does.
    pub fn get(&self, pattern: &str) -> Vec<(String, String)> {
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            return find(pattern)
                .map(|def| vec![(pattern.to_string(), (def.get)(self))])
                .unwrap_or_default();
        }
        OPTIONS
            .iter()
            .filter(|def| crate::glob::matches(pattern.as_bytes(), def.name.as_bytes(), true))
            .map(|def| (def.name.to_string(), (def.get)(self)))
            .collect()
    }

    /// `CONFIG SET name value [name value …]`: all or nothing. `Err` is the whole error reply.
    pub fn set(&mut self, pairs: &[(String, String)]) -> Result<(), String> {
        let mut next = self.clone();
        for (i, (name, value)) in pairs.iter().enumerate() {
            let Some(def) = find(name) else {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            };
            if pairs[..i]
                .iter()
                .any(|(n, _)| find(n).is_some_and(|d| d.name == def.name))
            {
                return Err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - \
                     duplicate parameter"
                ));
            }
            let failed = |reason: &str| {
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
            };
            match def.change {
                Change::Immutable => return Err(failed("can't set immutable config")),
                Change::Protected => return Err(failed("can't set protected config")),
                Change::Mutable => {}
            }
            // Redis splits a multi-argument value at single spaces (`sdssplitlen`), so two
            // spaces in a row make an empty argument; an empty value is no argument.
            let args: Vec<String> = if def.multi_arg && value.is_empty() {
                Vec::new()
            } else if def.multi_arg {
                value.split(' ').map(str::to_string).collect()
            } else {
                vec![value.clone()]
            };
            (def.set)(&mut next, &args).map_err(|reason| failed(&reason))?;
        }
        *self = next;
        Ok(())
    }

    /// The RDB file's path (`dir/dbfilename`).
    pub fn rdb_path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }

    /// The AOF directory's path (`dir/appenddirname`).
    pub fn aof_dir(&self) -> PathBuf {
        self.dir.join(&self.appenddirname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        split_args(line.as_bytes())
            .unwrap()
            .iter()
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn defaults_are_redis_with_keeper_port_and_dir() {
        let c = Config::default();
        assert_eq!(c.port, 6380);
        assert_eq!(
            c.get("save"),
            vec![("save".into(), "3600 1 300 100 60 10000".into())]
        );
        assert_eq!(c.rdb_path(), PathBuf::from("./data/dump.rdb"));
    }

    #[test]
    fn command_line_values_run_to_the_next_option() {
        let c = Config::from_args(&args(
            "--port 7000 --replicaof 127.0.0.1 6379 --save 900 1 300 10 --appendonly yes",
        ))
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.replicaof, Some(("127.0.0.1".into(), 6379)));
        assert_eq!(c.save.to_string(), "900 1 300 10");
        assert!(c.appendonly);
        let c = Config::from_args(&args("--save \"900 1\"")).unwrap();
        assert_eq!(c.save.to_string(), "900 1");
        let c = Config::from_args(&args("--save \"\"")).unwrap();
        assert!(c.save.is_empty());
        let c = Config::from_args(&args("--save 900 1 --save 60 5")).unwrap();
        assert_eq!(c.save.to_string(), "900 1 60 5");
    }

    #[test]
    fn unknown_and_bad_options_are_clear_errors() {
        assert_eq!(
            Config::from_args(&args("--nosuch 1"))
                .unwrap_err()
                .to_string(),
            "--nosuch: unknown option"
        );
        assert_eq!(
            Config::from_args(&args("--appendfsync sometimes"))
                .unwrap_err()
                .to_string(),
            "--appendfsync: argument(s) must be one of the following: everysec, always, no"
        );
        assert!(Config::from_args(&args("6379")).is_err());
        assert!(Config::from_args(&args("--save 1 2 3")).is_err());
    }

    #[test]
    fn config_file_then_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keeper.conf");
        std::fs::write(
            &file,
            "# comment\nport 7001\nsave 900 1\nsave 300 10\ndir \"/tmp/with space\"\n\nrequirepass secret\n",
        )
        .unwrap();
        let c = Config::from_args(&[
            "--port".into(),
            "7002".into(),
            "--config".into(),
            file.display().to_string(),
        ])
        .unwrap();
        assert_eq!(c.port, 7002, "command line wins over the file");
        assert_eq!(c.save.to_string(), "900 1 300 10");
        assert_eq!(c.dir, PathBuf::from("/tmp/with space"));
        assert_eq!(c.requirepass, "secret");

        let mut c = Config::default();
        let err = c.load_str("port 1\nbogus yes\n", "x.conf").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.conf, line 2: 'bogus yes': Bad directive or wrong number of arguments"
        );
    }

    #[test]
    fn config_get_and_set_match_redis() {
        let mut c = Config::default();
        let names: Vec<String> = c.get("append*").into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "appendonly",
                "appendfsync",
                "appenddirname",
                "appendfilename"
            ]
        );
        assert_eq!(c.get("Port"), vec![("Port".into(), "6380".into())]);
        assert!(c.get("nosuch").is_empty());
        assert_eq!(c.get("slaveof"), vec![("slaveof".into(), String::new())]);

        c.set(&[("save".into(), "".into()), ("hz".into(), "20".into())])
            .unwrap();
        assert!(c.save.is_empty());
        assert_eq!(c.hz, 20);
        c.set(&[("save".into(), "10 2 20 3".into())]).unwrap();
        assert_eq!(c.save.to_string(), "10 2 20 3");

        assert_eq!(
            c.set(&[("foo".into(), "bar".into())]).unwrap_err(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
        );
        assert_eq!(
            c.set(&[("appendfsync".into(), "maybe".into())])
                .unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) \
             must be one of the following: everysec, always, no"
        );
        assert_eq!(
            c.set(&[("hz".into(), "abc".into())]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be \
             parsed into an integer"
        );
        assert_eq!(
            c.set(&[("save".into(), "1 2 3".into())]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters"
        );
        assert_eq!(
            c.set(&[("databases".into(), "3".into())]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set \
             immutable config"
        );
        assert_eq!(
            c.set(&[("dir".into(), "/x".into())]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected \
             config"
        );
        // All or nothing.
        let before = c.clone();
        assert!(
            c.set(&[
                ("hz".into(), "30".into()),
                ("maxclients".into(), "x".into())
            ])
            .is_err()
        );
        assert_eq!(c, before);
        c.set(&[("auto-aof-rewrite-min-size".into(), "1mb".into())])
            .unwrap();
        assert_eq!(c.get("auto-aof-rewrite-min-size")[0].1, "1048576");
    }

    /// Checked against redis-server 7.0.15: `redis-server r.conf --save "60 5"` with `save 900 1`
    /// in r.conf runs with `900 1 60 5`; `CONFIG SET save` splits at single spaces.
    #[test]
    fn save_follows_redis_across_file_command_line_and_config_set() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.conf");
        std::fs::write(&file, "save 900 1\n").unwrap();
        let mut c = Config::from_args(&[
            "--config".into(),
            file.display().to_string(),
            "--save".into(),
            "60 5".into(),
        ])
        .unwrap();
        assert_eq!(c.get("save")[0].1, "900 1 60 5");
        let c_file_only = Config::from_args(&["--config".into(), file.display().to_string()]);
        assert_eq!(c_file_only.unwrap().save.to_string(), "900 1");
        for bad in ["  900 1", "900 1 ", " ", "900  1", "0 1", "5 -1", "5x 1"] {
            assert_eq!(
                c.set(&[("save".into(), bad.into())]).unwrap_err(),
                "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save \
                 parameters",
                "{bad:?}"
            );
        }
        assert_eq!(
            c.save.to_string(),
            "900 1 60 5",
            "a refused value changes nothing"
        );
        c.set(&[("save".into(), "+10 007".into())]).unwrap();
        assert_eq!(c.get("save")[0].1, "10 7");
        c.set(&[("save".into(), "".into())]).unwrap();
        assert_eq!(c.get("save")[0].1, "");
        // In a file, `save ""` empties the list and a later line adds to it.
        let mut c = Config::default();
        c.load_str("save \"\"\nsave 30 2\n", "x.conf").unwrap();
        assert_eq!(c.save.to_string(), "30 2");
    }

    #[test]
    fn memory_units() {
        assert_eq!(memory("100"), Ok(100));
        assert_eq!(memory("1k"), Ok(1000));
        assert_eq!(memory("1KB"), Ok(1024));
        assert_eq!(memory("64mb"), Ok(64 << 20));
        assert!(memory("1tb").is_err());
        assert!(memory("").is_err());
    }

    /// Replies checked against redis-server 7.0.15.
    #[test]
    fn replication_options_as_redis() {
        let mut c = Config::default();
        let get = |c: &Config, name: &str| c.get(name)[0].1.clone();
        assert_eq!(get(&c, "repl-backlog-size"), "1048576");
        assert_eq!(
            get(&c, "client-output-buffer-limit"),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        c.set(&[("repl-backlog-size".into(), "1".into())]).unwrap();
        assert_eq!(
            get(&c, "repl-backlog-size"),
            "16384",
            "raised to the minimum"
        );
        let err = c
            .set(&[("repl-backlog-size".into(), "0".into())])
            .unwrap_err();
        assert!(err.ends_with("argument must be between 1 and 9223372036854775807 inclusive"));
        c.set(&[(
            "client-output-buffer-limit".into(),
            "replica 100mb 10mb 30".into(),
        )])
        .unwrap();
        assert_eq!(
            get(&c, "client-output-buffer-limit"),
            "normal 0 0 0 slave 104857600 10485760 30 pubsub 33554432 8388608 60"
        );
        for (bad, reason) in [
            (
                "slave 1 2",
                "Wrong number of arguments in buffer limit configuration.",
            ),
            (
                "bogus 1 2 3",
                "Invalid client class specified in buffer limit configuration.",
            ),
            (
                "pubsub 1 x 3",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
        ] {
            let err = c
                .set(&[("client-output-buffer-limit".into(), bad.into())])
                .unwrap_err();
            assert!(err.ends_with(reason), "{bad}: {err}");
        }
        c.set(&[("repl-ping-slave-period".into(), "3".into())])
            .unwrap();
        assert_eq!(c.repl_ping_replica_period, 3);
        let err = c.set(&[("repl-timeout".into(), "0".into())]).unwrap_err();
        assert!(err.ends_with("argument must be between 1 and 2147483647 inclusive"));
        // Redis 7.0.15's defaults and ranges (checked with CONFIG GET/SET on redis-server).
        assert_eq!(get(&c, "repl-diskless-sync-delay"), "5");
        assert_eq!(get(&c, "repl-diskless-sync-max-replicas"), "0");
        c.set(&[
            ("repl-diskless-sync-delay".into(), "0".into()),
            ("repl-diskless-sync-max-replicas".into(), "3".into()),
        ])
        .unwrap();
        assert_eq!(
            (
                c.repl_diskless_sync_delay,
                c.repl_diskless_sync_max_replicas
            ),
            (0, 3)
        );
        for (name, bad, reason) in [
            (
                "repl-diskless-sync-delay",
                "-1",
                "argument must be between 0 and 2147483647 inclusive",
            ),
            (
                "repl-diskless-sync-delay",
                "2147483648",
                "argument must be between 0 and 2147483647 inclusive",
            ),
            (
                "repl-diskless-sync-max-replicas",
                "-1",
                "argument must be between 0 and 2147483647 inclusive",
            ),
            (
                "repl-diskless-sync-delay",
                "abc",
                "argument couldn't be parsed into an integer",
            ),
        ] {
            let err = c.set(&[(name.into(), bad.into())]).unwrap_err();
            assert!(err.ends_with(reason), "{name} {bad}: {err}");
        }
        let c = Config::from_args(&args(
            "--client-output-buffer-limit replica 1mb 0 0 --repl-diskless-sync no",
        ))
        .unwrap();
        assert_eq!(c.client_output_buffer_limit.replica.hard, 1 << 20);
        assert!(!c.repl_diskless_sync);
    }
}
