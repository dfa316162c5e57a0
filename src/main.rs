//! The `rehost` binary: command line → settings → logging → command → exit status.

use std::process::ExitCode;

use rehost::cli::{self, Command};
use rehost::commands::{self, EXIT_USAGE};
use rehost::config::{Config, Raw};

fn main() -> ExitCode {
    let (cli, flags) = cli::parse();
    let mut raw = Raw::from_env(flags);
    // The demo and check print for people: quiet, readable logs unless asked.
    if matches!(cli.command, Command::Demo { .. } | Command::Check { .. }) {
        if std::env::var_os("RUST_LOG").is_none() {
            raw.set("RUST_LOG", "warn");
        }
        if std::env::var_os("REHOST_LOG_FORMAT").is_none() {
            raw.set("REHOST_LOG_FORMAT", "pretty");
        }
    }
    let config = match Config::load(&raw) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rehost: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    rehost::telemetry::init(&config.log_filter, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rehost: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let status = runtime.block_on(run(cli.command, &config));
    ExitCode::from(status)
}

async fn run(command: Command, config: &Config) -> u8 {
    match command {
        Command::Ingest { file, attempt } => commands::ingest::run(config, &file, attempt).await,
        Command::Check { urls, video } => commands::check::run(config, &urls, video).await,
        Command::Demo { media, jobs } => commands::demo::run(config, &media, &jobs).await,
        Command::Origin {
            dir,
            listen,
            unique,
            latency_ms,
            mbps,
        } => commands::origin::run(&dir, listen, unique, latency_ms, mbps).await,
        Command::Worker => commands::worker::run(config).await,
        Command::Loadtest(opts) => match rehost::loadtest::run(config, &opts).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("rehost: loadtest failed: {e:#}");
                1
            }
        },
        Command::CheckConfig => commands::check_config::run(config).await,
        Command::ReplayDead {
            limit,
            reason,
            dry_run,
        } => {
            let opts = rehost::broker::replay::ReplayOptions {
                limit,
                reason,
                dry_run,
            };
            commands::replay_dead::run(config, &opts).await
        }
    }
}
