//! `rehost demo`: the real pipeline on the fixture media, no services needed.
//!
//! Starts a loopback origin serving the media built into rehost (or
//! `--media DIR`), points the demo jobs (built in, or `--jobs DIR`) at it (their URLs name `http://127.0.0.1:8080/`), runs each job once
//! with the configured store (default: the directory `./rehost-data`) and
//! prints each result's media object. Only loopback is opened in the
//! address guard, and only for this command.

use std::path::Path;

use crate::app::{App, EXIT_FATAL, EXIT_USAGE};
use crate::config::Config;
use crate::fetch::guard::AllowList;
use crate::fixture_origin::{MediaSource, Origin, OriginConfig};
use crate::pipeline::Processed;
use crate::result::{ResultMessage, Status};

/// The origin the fixture jobs name.
pub const FIXTURE_ORIGIN: &str = "http://127.0.0.1:8080/";

/// Jobs the demo runs, in order, as built in (`--jobs DIR` reads the same
/// names from a directory instead).
const DEMO_JOBS: &[(&str, &str)] = &[
    (
        "byo-slideshow.json",
        include_str!("../../fixtures/jobs/byo-slideshow.json"),
    ),
    (
        "byo-two-platforms.json",
        include_str!("../../fixtures/jobs/byo-two-platforms.json"),
    ),
    (
        "byo-platform-rejected.json",
        include_str!("../../fixtures/jobs/byo-platform-rejected.json"),
    ),
    (
        "byo-video.json",
        include_str!("../../fixtures/jobs/byo-video.json"),
    ),
    (
        "byo-video-moov-end.json",
        include_str!("../../fixtures/jobs/byo-video-moov-end.json"),
    ),
    (
        "byo-video-faststart.json",
        include_str!("../../fixtures/jobs/byo-video-faststart.json"),
    ),
    (
        "hosted-slideshow.json",
        include_str!("../../fixtures/jobs/hosted-slideshow.json"),
    ),
    (
        "hosted-video.json",
        include_str!("../../fixtures/jobs/hosted-video.json"),
    ),
    (
        "invalid-too-many-images.json",
        include_str!("../../fixtures/jobs/invalid-too-many-images.json"),
    ),
];

pub async fn run(config: &Config, media: Option<&Path>, jobs: Option<&Path>) -> u8 {
    let media = match MediaSource::dir_or_embedded(media) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("rehost: {e}");
            return EXIT_USAGE;
        }
    };
    let shown = media.to_string();
    let origin = match Origin::start(OriginConfig::of(media), ([127, 0, 0, 1], 0).into()).await {
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
        "origin {} serving {shown}; store {:?}\n",
        origin.url(""),
        app.config.store
    );
    if let Some(store) = &app.store {
        crate::public::report(store, config.public.probe).await;
    }
    let mut unexpected = 0;
    for (name, built_in) in DEMO_JOBS {
        let text = match job_text(jobs, name, built_in) {
            Ok(t) => t,
            Err(status) => return status,
        };
        let result = match run_job(&app, name, &text, &origin.url("")).await {
            Ok(r) => r,
            Err(status) => return status,
        };
        let expect_failure = name.starts_with("invalid") || name.contains("rejected");
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

/// A demo job's text: from `dir` when given, else built in.
fn job_text(dir: Option<&Path>, name: &str, built_in: &str) -> Result<String, u8> {
    let Some(dir) = dir else {
        return Ok(built_in.to_string());
    };
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| {
        eprintln!("rehost: cannot read {}: {e}", path.display());
        EXIT_USAGE
    })
}

/// Runs one demo job against the origin at `base`.
async fn run_job(app: &App, name: &str, text: &str, base: &str) -> Result<ResultMessage, u8> {
    let body = text.replace(FIXTURE_ORIGIN, base);
    match app.pipeline.process(body.as_bytes(), None, 1).await {
        Processed::Result { result, .. } => Ok(*result),
        Processed::NotAJob { .. } => {
            eprintln!("rehost: {name} is not a job");
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
        if let Some(n) = &a.normalized {
            println!(
                "       normalised from {} {}x{} {} bytes: {}",
                n.source_content_type,
                n.source_width,
                n.source_height,
                n.source_bytes,
                n.steps.join(", ")
            );
        }
    }
    for v in &result.accounts {
        let rules: Vec<String> = v
            .violations
            .iter()
            .map(|x| match x.asset_index {
                Some(i) => format!("{} (asset {i})", x.rule),
                None => x.rule.clone(),
            })
            .collect();
        println!(
            "   {} {}: {}{}",
            v.kind,
            v.platform,
            v.verdict.as_str(),
            if rules.is_empty() {
                String::new()
            } else {
                format!(": {}", rules.join(", "))
            }
        );
    }
    println!();
}
