//! The command line: subcommands from clap's derive, plus one global flag per
//! setting, generated from [`crate::config::SETTINGS`].

use std::path::PathBuf;

use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::SETTINGS;

#[derive(Debug, Parser)]
#[command(
    name = "rehost",
    version,
    about = "Media ingestion and re-hosting worker",
    after_help = "Every setting is also an environment variable; see `rehost check-config` and the README."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the queue consumer until SIGTERM/SIGINT.
    Worker,
    /// Process one job (one try) from a file or stdin and print the result JSON.
    Ingest {
        /// Job file, or - for stdin.
        file: String,
        /// Which try this is (a retryable failure on the last try is `failed`).
        #[arg(long, default_value_t = 1)]
        attempt: u32,
    },
    /// Check that URLs are reachable and are media we accept; one line each.
    Check {
        #[arg(required = true)]
        urls: Vec<String>,
        /// Check them as videos (by default the kind is sniffed and its limit applied).
        #[arg(long)]
        video: bool,
        /// Print one JSON object per URL (for scripts).
        #[arg(long)]
        json: bool,
        /// Add each named platform's verdict: ok, fixable (steps) or rejected (rules); exit 1 if one rejects.
        #[arg(long, value_name = "NAME[,NAME...]")]
        platform: Vec<String>,
    },
    /// Print every platform profile with its rules, sources and dates.
    Profiles {
        /// Print the profiles as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when this container's worker answers /healthz with 200 (for HEALTHCHECK).
    Healthcheck,
    /// Print the effective configuration and whether the broker and store answer.
    CheckConfig,
    /// Move parked messages from the dead-letter queue back to the job queue (attempts reset).
    ReplayDead {
        /// Replay at most this many messages.
        #[arg(long)]
        limit: Option<usize>,
        /// Only messages whose parking reason contains this text.
        #[arg(long)]
        reason: Option<String>,
        /// List what would be replayed; move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the pipeline on the fixture media: a loopback origin, the directory store.
    Demo {
        /// Directory of media to serve (default: the media built into rehost).
        #[arg(long)]
        media: Option<PathBuf>,
        /// Directory of the demo's jobs (default: built in; their URLs name 127.0.0.1:8080).
        #[arg(long)]
        jobs: Option<PathBuf>,
    },
    /// Load test: publish fixture jobs to workers and report throughput, latency and losses.
    Loadtest(crate::loadtest::Options),
    /// Serve a directory of media over HTTP on loopback, with fault modes.
    Origin {
        /// Directory of media to serve (default: the media built into rehost).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Give every request path distinct image bytes (defeats dedup).
        #[arg(long)]
        unique: bool,
        /// Latency added to every answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Cap each response at this many megabits per second.
        #[arg(long)]
        mbps: Option<f64>,
    },
}

/// Parses the command line: the subcommand, and the settings given as flags
/// (by variable name).
pub fn parse() -> (Cli, Vec<(&'static str, String)>) {
    let cmd = SETTINGS.iter().fold(Cli::command(), |cmd, s| {
        cmd.arg(
            Arg::new(s.env)
                .long(s.flag)
                .global(true)
                .value_name("VALUE")
                .help(format!(
                    "{} [env: {}] [default: {}]",
                    s.help, s.env, s.default
                ))
                .hide_short_help(true),
        )
    });
    let matches = cmd.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (cli, flags(&matches))
}

fn flags(matches: &ArgMatches) -> Vec<(&'static str, String)> {
    let mut m = matches;
    let mut out = Vec::new();
    loop {
        for s in SETTINGS {
            if let Ok(Some(v)) = m.try_get_one::<String>(s.env)
                && !out.iter().any(|(k, _): &(&str, String)| *k == s.env)
            {
                out.push((s.env, v.clone()));
            }
        }
        match m.subcommand() {
            Some((_, sub)) => m = sub,
            None => return out,
        }
    }
}
