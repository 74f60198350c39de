//! `keeper` subcommands. Exit codes: 0 success, 1 invalid input file, 2 usage or I/O error.

mod backup;
mod check;
mod check_aof;
mod convert;
mod huge_pages;
mod inspect;
mod json;
mod progress;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "keeper",
    version,
    about = "Redis-grade durability for in-memory caches: a durable node, RDB and AOF tools, backups"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a durable cache node: a RESP server (Redis 7.0 protocol) persisting to dump.rdb.
    ///
    /// Options are redis-server's: `--port 6380 --dir ./data --save "900 1" --requirepass pw
    /// --config redis.conf …`; an option's values run up to the next `--`.
    Server {
        /// Redis-style options, `--name value…`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        options: Vec<String>,
    },
    /// Verify an RDB file completely and print a summary (exit 1 if it is damaged).
    CheckRdb {
        /// The RDB file.
        file: PathBuf,
    },
    /// Verify an AOF: a single file, a manifest, or an AOF directory (exit 1 if it is not
    /// valid). Reports each file with ok_up_to (the offset after the last valid command) and
    /// whether it is a torn tail (crash mid-write) or corruption with data after it.
    CheckAof {
        /// Cut a torn tail of the last file (never mid-file corruption), keeping a copy of the
        /// original as FILE.bak-UNIXTIME.
        #[arg(long, conflicts_with = "truncate_to_timestamp")]
        fix: bool,
        /// Cut the last file at its first `#TS:` annotation later than this (keeping a copy).
        #[arg(long, value_name = "UNIX_SECONDS")]
        truncate_to_timestamp: Option<i64>,
        /// The AOF file, manifest or directory.
        path: PathBuf,
    },
    /// Print the content of an RDB file or an AOF (file, manifest or directory).
    Inspect {
        /// json: one object per key per line; resp: commands that rebuild the dataset
        /// (pipe into `redis-cli --pipe`); summary: one line per key.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// The RDB file, or an AOF file, manifest or directory.
        file: PathBuf,
    },
    /// Backups: create (from a live node or a data folder), list, show, verify, delete,
    /// prune, export. Targets: a local folder (default ./backups) or s3://bucket/prefix.
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Restore a backup (or a plain .rdb file or object) into a new data folder, after
    /// verifying all of it.
    Restore(backup::RestoreArgs),
    /// Read an RDB file (or an AOF) and write it as an RDB with keeper's writer.
    Convert {
        /// RDB version to write: 10 (Redis 7.0+), 11 (Redis 7.2+, Valkey 7.2+), 12 (Redis 7.4+).
        #[arg(long, default_value_t = keeper::rdb::DEFAULT_WRITE_VERSION)]
        rdb_version: u32,
        /// Input RDB file, or an AOF file, manifest or directory.
        input: PathBuf,
        /// Output RDB file (written atomically).
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Resp,
    Summary,
}

/// Runs the CLI and maps failures to exit codes and messages on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server { options } => return server::run(&options),
        Command::CheckRdb { file } => check::run(&file),
        Command::CheckAof {
            fix,
            truncate_to_timestamp,
            path,
        } => match check_aof::run(&path, fix, truncate_to_timestamp) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::Inspect { format, file } => inspect::run(&file, format),
        Command::Backup { command } => backup::run(command),
        Command::Restore(args) => backup::restore(args),
        Command::Convert {
            rdb_version,
            input,
            output,
        } => convert::run(&input, &output, rdb_version),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// True when `path` is an AOF rather than an RDB file: a directory, or a file that does not
/// start with an RDB signature (a pre-7.0 AOF with an RDB preamble reads as its RDB).
fn is_aof(path: &std::path::Path) -> keeper::Result<bool> {
    use keeper::Storage;
    if path.is_dir() {
        return Ok(true);
    }
    let data = keeper::OsStorage.read_all(path)?;
    Ok(!(data.starts_with(b"REDIS") || data.starts_with(b"VALKEY")))
}

/// Replays the AOF at `path` (file, manifest or directory) into a fresh store, modifying
/// nothing: a torn tail is an error (`keeper check-aof --fix` repairs it).
fn load_aof(
    path: &std::path::Path,
) -> keeper::Result<(keeper::store::Store, keeper::aof::loader::LoadReport)> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut store = keeper::store::Store::new(16);
    let report = keeper::aof::check::load_path(&keeper::OsStorage, path, &mut store, now_ms)?;
    Ok((store, report))
}

/// 1 when the input is bad (damaged or unsupported), 2 for everything else.
fn exit_code(err: &keeper::Error) -> u8 {
    match err {
        keeper::Error::Corrupt { .. }
        | keeper::Error::ChecksumMismatch { .. }
        | keeper::Error::Unsupported { .. }
        | keeper::Error::Backup { .. } => 1,
        _ => 2,
    }
}
