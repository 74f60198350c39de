//! `keeper` subcommands. Exit codes: 0 success, 1 invalid input file, 2 usage or I/O error.

mod check;
mod convert;
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
    about = "Redis-grade durability for in-memory caches: check, inspect and convert Redis RDB files"
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
    /// Print the content of an RDB file.
    Inspect {
        /// json: one object per key per line; resp: commands that rebuild the dataset
        /// (pipe into `redis-cli --pipe`); summary: one line per key.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// The RDB file.
        file: PathBuf,
    },
    /// Read an RDB file and write it again with keeper's writer.
    Convert {
        /// RDB version to write: 10 (Redis 7.0+), 11 (Redis 7.2+, Valkey 7.2+), 12 (Redis 7.4+).
        #[arg(long, default_value_t = keeper::rdb::DEFAULT_WRITE_VERSION)]
        rdb_version: u32,
        /// Input RDB file.
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
        Command::Inspect { format, file } => inspect::run(&file, format),
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

/// 1 when the input is bad (damaged or unsupported), 2 for everything else.
fn exit_code(err: &keeper::Error) -> u8 {
    match err {
        keeper::Error::Corrupt { .. }
        | keeper::Error::ChecksumMismatch { .. }
        | keeper::Error::Unsupported { .. } => 1,
        _ => 2,
    }
}
