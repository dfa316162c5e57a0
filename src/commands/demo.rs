//! `rehost demo`: the real pipeline on the fixture media, no services needed.
//!
//! Starts a loopback origin serving the fixture media, points the fixture
//! jobs at it (their URLs name `http://127.0.0.1:8080/`), runs each job once
//! with the configured store (default: the directory `./rehost-data`) and
//! prints each result's media object. Only loopback is opened in the
//! address guard, and only for this command.

use std::path::Path;

use crate::app::{App, EXIT_FATAL, EXIT_USAGE};
use crate::config::Config;
use crate::fetch::guard::AllowList;
use crate::fixture_origin::{Origin, OriginConfig};
use crate::pipeline::Processed;
use crate::result::{ResultMessage, Status};

/// The origin the fixture jobs name.
pub const FIXTURE_ORIGIN: &str = "http://127.0.0.1:8080/";

/// Jobs the demo runs, in order.
const DEMO_JOBS: &[&str] = &[
    "byo-slideshow.json",
    "byo-video.json",
    "byo-video-moov-end.json",
    "hosted-slideshow.json",
    "hosted-video.json",
    "invalid-too-many-images.json",
];

pub async fn run(config: &Config, media: &Path, jobs: &Path) -> u8 {
    let origin = match Origin::start(OriginConfig::new(media), ([127, 0, 0, 1], 0).into()).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rehost: cannot start the loopback origin: {e}");
            return EXIT_FATAL;
        }
    };
    let mut config = config.clone();
    config.fetch.allow = AllowList::parse("127.0.0.1/32").unwrap_or_default();
    let app = match super::app_with_default_store(&config).await {
        Ok(app) => app,
        Err(status) => return status,
    };
    println!(
        "origin {} serving {}; store {:?}\n",
        origin.url(""),
        media.display(),
        app.config.store
    );
    let mut unexpected = 0;
    for name in DEMO_JOBS {
        let result = match run_job(&app, &jobs.join(name), &origin.url("")).await {
            Ok(r) => r,
            Err(status) => return status,
        };
        let expect_failure = name.starts_with("invalid");
        if (result.status == Status::Ready) == expect_failure {
            unexpected += 1;
        }
        print_result(name, &result);
    }
    println!(
        "origin served {} requests, {} bytes",
        origin.stats.requests(),
        origin.stats.bytes_sent()
    );
    u8::from(unexpected > 0)
}

/// Runs one fixture job against the origin at `base`.
async fn run_job(app: &App, path: &Path, base: &str) -> Result<ResultMessage, u8> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("rehost: cannot read {}: {e}", path.display());
        EXIT_USAGE
    })?;
    let body = text.replace(FIXTURE_ORIGIN, base);
    match app.pipeline.process(body.as_bytes(), None, 1).await {
        Processed::Result { result, .. } => Ok(*result),
        Processed::NotAJob { .. } => {
            eprintln!("rehost: {} is not a job", path.display());
            Err(EXIT_USAGE)
        }
    }
}

fn print_result(name: &str, result: &ResultMessage) {
    println!(
        "== {name}: {} (rehosted: {})",
        result.status.as_str(),
        result.rehosted.unwrap_or(false)
    );
    let shown = match (&result.media, &result.error) {
        (Some(media), _) => serde_json::to_string_pretty(media),
        (None, Some(error)) => serde_json::to_string_pretty(error),
        (None, None) => Ok(String::new()),
    };
    println!("{}", shown.unwrap_or_default());
    for a in result.assets.iter().flatten() {
        println!(
            "   [{}] {} {}x{} {} bytes{}",
            a.index,
            a.content_type,
            a.width.unwrap_or(0),
            a.height.unwrap_or(0),
            a.bytes.map_or("?".into(), |b| b.to_string()),
            a.duration_ms
                .map(|d| format!(" {d} ms {}", a.codec.as_deref().unwrap_or("")))
                .unwrap_or_default(),
        );
    }
    println!();
}
