//! `rehost check URL...`: is each URL reachable, and what is it? One line each.

use futures_util::StreamExt;

use crate::config::Config;
use crate::error::{self, ErrorCode};
use crate::ingest::Ingestor;
use crate::job::{self, JobKind};
use crate::result::AssetOut;

pub async fn run(config: &Config, urls: &[String], video: bool) -> u8 {
    // A check stores nothing: no store is opened.
    let mut config = config.clone();
    config.store = None;
    let app = match super::build(&config).await {
        Ok(app) => app,
        Err(status) => return status,
    };
    let ingestor = app.pipeline.ingestor.clone();
    let deadline = config.job_timeout;
    let kind = if video {
        JobKind::Video
    } else {
        JobKind::Slideshow
    };
    let lines = futures_util::stream::iter(urls.iter().map(|u| {
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
    let mut all_ok = true;
    for (url, result) in lines {
        match result {
            Ok(a) => println!("ok    {url}  {}", describe(&a)),
            Err(e) => {
                all_ok = false;
                println!("FAIL  {url}  {}: {}", e.code, e.message);
            }
        }
    }
    u8::from(!all_ok)
}

/// Checks as `kind`; an image check that finds a video (or the reverse) is
/// repeated as the other kind, so one command diagnoses both.
async fn check_one(
    ingestor: &Ingestor,
    raw: &str,
    kind: JobKind,
) -> Result<AssetOut, crate::error::JobError> {
    let src = job::source_url(raw)?;
    match ingestor.check_hosted(&src, kind).await {
        Err(e) if e.code == ErrorCode::MediaTypeMismatch => {
            let other = match kind {
                JobKind::Slideshow => JobKind::Video,
                JobKind::Video => JobKind::Slideshow,
            };
            ingestor.check_hosted(&src, other).await
        }
        other => other,
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
