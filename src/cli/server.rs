//! `keeper server`: runs the durable cache node.

use std::process::ExitCode;

use keeper::config::{Config, LogLevel};

/// Parses Redis-style options (`--port 6380 --save "900 1" --config FILE …`), sets up
/// logging and runs the server. Exit codes: 0 after a clean shutdown, 1 when `dump.rdb` is
/// damaged or unsupported, 2 for bad options and I/O errors (port in use, unreadable dir).
pub fn run(args: &[String]) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keeper server: {e}");
            return ExitCode::from(2);
        }
    };
    // Before anything else runs: this may replace the process by a restarted one.
    let huge_pages = super::huge_pages::restart_if_needed(config.malloc_huge_pages);
    init_logging(config.loglevel);
    huge_pages.log();
    let config_file = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        // As Redis, the absolute path: INFO shows it, CONFIG REWRITE writes there.
        .map(|file| {
            std::path::absolute(file)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| file.clone())
        });
    tracing::info!(
        "keeper {} starting: port {}, dir {}, save {:?}",
        env!("CARGO_PKG_VERSION"),
        config.port,
        config.dir.display(),
        config
            .get("save")
            .first()
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    );
    match keeper::server::run(config, config_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("keeper server: {e}");
            ExitCode::from(super::exit_code(&e))
        }
    }
}

fn init_logging(level: LogLevel) {
    let max = match level {
        LogLevel::Debug | LogLevel::Verbose => tracing::Level::DEBUG,
        LogLevel::Notice => tracing::Level::INFO,
        LogLevel::Warning => tracing::Level::WARN,
    };
    // Fails only if a subscriber is already installed, which is then used instead.
    let _ = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
