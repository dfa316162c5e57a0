//! `rehost check URL...`: is each URL reachable, and what is it? One line
//! each (or one JSON object each with `--json`), under a deadline like a
//! job's.

use futures_util::StreamExt;
use serde_json::json;

use crate::config::Config;
use crate::error::{self, JobError};
use crate::ingest::Ingestor;
use crate::job::{self, JobKind};
use crate::result::AssetOut;

/// How `rehost check` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Check every URL as a video (else the kind is sniffed).
    pub video: bool,
    /// One JSON object per URL instead of a line.
    pub json: bool,
}

pub async fn run(config: &Config, urls: &[String], opts: CheckOptions) -> u8 {
    // A check stores nothing: no store is opened.
    let mut config = config.clone();
    config.store = None;
    let app = match super::build(&config).await {
        Ok(app) => app,
        Err(status) => return status,
    };
    let ingestor = app.pipeline.ingestor.clone();
    let kind = opts.video.then_some(JobKind::Video);
    let deadline = config.job_timeout;
    let checks = futures_util::stream::iter(urls.iter().map(|u| {
        let ingestor = ingestor.clone();
        async move {
            let checked = tokio::time::timeout(deadline, check_one(&ingestor, u, kind)).await;
            let checked = checked.unwrap_or_else(|_| {
                Err(error::unreachable(format!(
                    "check deadline of {} s passed",
                    deadline.as_secs()
                )))
            });
            (u.clone(), checked)
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let all_ok = checks.iter().all(|(_, r)| r.is_ok());
    for (url, result) in checks {
        println!("{}", line(&url, &result, opts.json));
    }
    u8::from(!all_ok)
}

async fn check_one(
    ingestor: &Ingestor,
    raw: &str,
    kind: Option<JobKind>,
) -> Result<AssetOut, JobError> {
    let src = job::source_url(raw)?;
    ingestor.check_hosted(&src, kind).await
}

fn line(url: &str, result: &Result<AssetOut, JobError>, as_json: bool) -> String {
    match (result, as_json) {
        (Ok(a), false) => format!("ok    {url}  {}", describe(a)),
        (Err(e), false) => format!("FAIL  {url}  {}: {}", e.code, e.message),
        (Ok(a), true) => json!({"url": url, "ok": true, "asset": a}).to_string(),
        (Err(e), true) => json!({"url": url, "ok": false,
            "error": {"code": e.code, "message": e.message, "retryable": e.retryable()}})
        .to_string(),
    }
}

fn describe(a: &AssetOut) -> String {
    let mut parts = vec![a.content_type.clone()];
    if let (Some(w), Some(h)) = (a.width, a.height) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(ms) = a.duration_ms {
        parts.push(format!("{:.1}s", ms as f64 / 1000.0));
    }
    if let Some(c) = &a.codec {
        parts.push(c.clone());
    }
    parts.push(match a.bytes {
        Some(b) => format!("{b} bytes"),
        None => "size unknown".into(),
    });
    parts.join(" ")
}
