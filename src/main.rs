//! The `rehost` binary: command line → signals → settings → logging →
//! command → exit status.

use std::process::ExitCode;

use rehost::app::{EXIT_FATAL, EXIT_USAGE};
use rehost::cli::{self, Command};
use rehost::commands;
use rehost::config::{Config, Raw};
use rehost::shutdown::Signals;

fn main() -> ExitCode {
    let (cli, flags) = cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rehost: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    // First of all: a SIGTERM from now on is a clean stop, never a kill.
    let signals = match runtime.block_on(async { Signals::install() }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rehost: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let raw = raw_settings(&cli.command, flags);
    let config = match Config::load(&raw) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rehost: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    rehost::telemetry::init(&config.log_filter, config.log_format);
    for name in raw.secret_flags() {
        tracing::warn!(
            setting = name,
            "a secret given as a flag shows in process lists; prefer the environment or {name}_FILE"
        );
    }
    let status = runtime.block_on(run(cli.command, &config, signals));
    ExitCode::from(status)
}

/// The settings from the environment and flags; the demo and check print
/// for people, so their logs are quiet and readable unless asked otherwise.
fn raw_settings(command: &Command, flags: Vec<(&'static str, String)>) -> Raw {
    let mut raw = Raw::from_env(flags);
    if matches!(command, Command::Demo { .. } | Command::Check { .. }) {
        if !raw.has("RUST_LOG") {
            raw.set("RUST_LOG", "warn");
        }
        if !raw.has("REHOST_LOG_FORMAT") {
            raw.set("REHOST_LOG_FORMAT", "pretty");
        }
    }
    raw
}

async fn run(command: Command, config: &Config, signals: Signals) -> u8 {
    match command {
        Command::Ingest { file, attempt } => commands::ingest::run(config, &file, attempt).await,
        Command::Check {
            urls,
            video,
            json,
            platform,
        } => {
            let opts = commands::check::CheckOptions {
                video,
                json,
                platforms: platform,
            };
            commands::check::run(config, &urls, opts).await
        }
        Command::Profiles { json } => commands::profiles::run(config, json),
        Command::Healthcheck => commands::healthcheck::run(config).await,
        Command::Demo { media, jobs } => {
            commands::demo::run(config, media.as_deref(), jobs.as_deref()).await
        }
        Command::Origin {
            dir,
            listen,
            unique,
            latency_ms,
            mbps,
        } => {
            let shutdown = signals.recv();
            commands::origin::run(dir.as_deref(), listen, unique, latency_ms, mbps, shutdown).await
        }
        Command::Worker => commands::worker::run(config, signals.recv()).await,
        Command::Loadtest(opts) => match rehost::loadtest::run(config, &opts).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("rehost: loadtest failed: {e:#}");
                EXIT_FATAL
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
