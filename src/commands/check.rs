//! `rehost check URL...`: is each URL reachable, and what is it? One line
//! each (or one JSON object each with `--json`), under a deadline like a
//! job's. With `--platform`, each named platform's verdict too: `ok`,
//! `fixable (steps)` (what normalisation would do when re-hosting) or
//! `rejected (rules)`.

use futures_util::StreamExt;
use serde_json::json;

use crate::app::EXIT_USAGE;
use crate::config::Config;
use crate::error::{self, JobError};
use crate::ingest::{Checked, Ingestor};
use crate::job::{self, JobKind};
use crate::normalize::plan::{self, Step};
use crate::profiles::check::{self as rules, Violation};
use crate::profiles::facts::Facts;
use crate::profiles::{Profile, Profiles};
use crate::result::AssetOut;

/// How `rehost check` runs.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Check every URL as a video (else the kind is sniffed).
    pub video: bool,
    /// One JSON object per URL instead of a line.
    pub json: bool,
    /// Platforms to judge each URL for (`--platform tiktok,instagram`).
    pub platforms: Vec<String>,
}

/// One platform's verdict on one URL.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformVerdict {
    Ok,
    /// Re-hosting would normalise it with these steps.
    Fixable(Vec<Step>),
    Rejected(Vec<Violation>),
}

pub async fn run(config: &Config, urls: &[String], opts: CheckOptions) -> u8 {
    let profiles = &config.platform.profiles;
    let platforms = match named_profiles(profiles, &opts.platforms) {
        Ok(p) => p,
        Err(unknown) => {
            eprintln!(
                "rehost: unknown platform {unknown:?}; known: {}",
                profiles
                    .platforms
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return EXIT_USAGE;
        }
    };
    // A configured store is only probed (its public URLs, on stderr).
    if let Some(cfg) = &config.store
        && let Ok(store) = crate::store::Store::open(cfg, config).await
    {
        crate::public::report(&store, config.public.probe).await;
    }
    // A check stores nothing: no store is opened.
    let mut config = config.clone();
    config.store = None;
    let app = match super::build(&config).await {
        Ok(app) => app,
        Err(status) => return status,
    };
    let checks = check_all(&app.pipeline.ingestor, urls, &opts, config.job_timeout).await;
    let mut failed = false;
    for (url, result) in checks {
        let verdicts: Vec<_> = match &result {
            Ok(c) => platforms
                .iter()
                .map(|p| (p.name.clone(), judge(p, c, &config)))
                .collect(),
            Err(_) => Vec::new(),
        };
        failed |= result.is_err()
            || verdicts
                .iter()
                .any(|(_, v)| matches!(v, PlatformVerdict::Rejected(_)));
        println!("{}", line(&url, &result, &verdicts, opts.json));
    }
    u8::from(failed)
}

/// The profiles named (comma lists allowed), or the first unknown name.
fn named_profiles<'a>(
    profiles: &'a Profiles,
    names: &[String],
) -> Result<Vec<&'a Profile>, String> {
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| profiles.find(n).ok_or_else(|| n.to_string()))
        .collect()
}

async fn check_all(
    ingestor: &Ingestor,
    urls: &[String],
    opts: &CheckOptions,
    deadline: std::time::Duration,
) -> Vec<(String, Result<Checked, JobError>)> {
    let kind = opts.video.then_some(JobKind::Video);
    futures_util::stream::iter(urls.iter().map(|u| async move {
        let checked = tokio::time::timeout(deadline, check_one(ingestor, u, kind)).await;
        let checked = checked.unwrap_or_else(|_| {
            Err(error::unreachable(format!(
                "check deadline of {} s passed",
                deadline.as_secs()
            )))
        });
        (u.clone(), checked)
    }))
    .buffered(8)
    .collect()
    .await
}

async fn check_one(
    ingestor: &Ingestor,
    raw: &str,
    kind: Option<JobKind>,
) -> Result<Checked, JobError> {
    let src = job::source_url(raw)?;
    ingestor.check_hosted(&src, kind).await
}

/// What `profile` says of the asset as a one-asset post re-hosted for a BYO
/// account: what normalisation would fix, and what it cannot.
pub fn judge(profile: &Profile, c: &Checked, config: &Config) -> PlatformVerdict {
    let Some(facts) = &c.facts else {
        return PlatformVerdict::Ok;
    };
    let violations = rules::judge(profile, std::slice::from_ref(facts)).violations;
    if let Facts::Video(_) = facts {
        return video_verdict(violations, c, config);
    }
    let (Facts::Image(image), Some(meta)) = (facts, &c.meta) else {
        return verdict_of(violations, Vec::new());
    };
    let settings = config.platform.normalize;
    let fixable = settings.normalize
        && violations
            .iter()
            .all(|v| v.asset_index.is_some() && plan::fixable(v, profile, image));
    if !fixable {
        return verdict_of(violations, Vec::new());
    }
    let planned = plan::plan(image, meta, &[(0, profile)], true, settings.strip);
    verdict_of(Vec::new(), planned.expected_steps(image, meta))
}

/// A video: `fixable (faststart)` when its only violation is `moov_first`
/// and re-hosting would move the box (settings allow it, and nothing read
/// says it cannot be moved: the origin serves ranges, the tail is within
/// the limit).
fn video_verdict(violations: Vec<Violation>, c: &Checked, config: &Config) -> PlatformVerdict {
    let s = config.platform.normalize;
    let movable = s.normalize
        && s.faststart != crate::normalize::Faststart::Never
        && c.faststart_skipped.is_none();
    let only_moov = !violations.is_empty()
        && violations
            .iter()
            .all(|v| v.rule == crate::profiles::RuleId::MoovFirst);
    if movable && only_moov {
        return PlatformVerdict::Fixable(vec![Step::Faststart]);
    }
    verdict_of(violations, Vec::new())
}

fn verdict_of(violations: Vec<Violation>, steps: Vec<Step>) -> PlatformVerdict {
    if !violations.is_empty() {
        PlatformVerdict::Rejected(violations)
    } else if steps.is_empty() {
        PlatformVerdict::Ok
    } else {
        PlatformVerdict::Fixable(steps)
    }
}

fn line(
    url: &str,
    result: &Result<Checked, JobError>,
    verdicts: &[(String, PlatformVerdict)],
    as_json: bool,
) -> String {
    match (result, as_json) {
        (Ok(c), false) => {
            let mut l = format!("ok    {url}  {}", describe(&c.out));
            for (name, v) in verdicts {
                l.push_str(&format!("  {name}: {}", shown(v)));
            }
            l
        }
        (Err(e), false) => format!("FAIL  {url}  {}: {}", e.code, e.message),
        (Ok(c), true) => {
            let platforms: Vec<_> = verdicts.iter().map(|(n, v)| verdict_json(n, v)).collect();
            json!({"url": url, "ok": true, "asset": c.out, "platforms": platforms}).to_string()
        }
        (Err(e), true) => json!({"url": url, "ok": false,
            "error": {"code": e.code, "message": e.message, "retryable": e.retryable()}})
        .to_string(),
    }
}

fn shown(v: &PlatformVerdict) -> String {
    match v {
        PlatformVerdict::Ok => "ok".into(),
        PlatformVerdict::Fixable(steps) => format!("fixable ({})", step_names(steps).join(", ")),
        PlatformVerdict::Rejected(vs) => {
            let mut rules: Vec<&str> = vs.iter().map(|v| v.rule.as_str()).collect();
            rules.dedup();
            format!("rejected ({})", rules.join(", "))
        }
    }
}

fn step_names(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(|s| s.as_str()).collect()
}

fn verdict_json(name: &str, v: &PlatformVerdict) -> serde_json::Value {
    match v {
        PlatformVerdict::Ok => json!({"platform": name, "verdict": "ok"}),
        PlatformVerdict::Fixable(steps) => {
            json!({"platform": name, "verdict": "fixable", "steps": step_names(steps)})
        }
        PlatformVerdict::Rejected(vs) => json!({"platform": name, "verdict": "rejected",
            "violations": vs.iter().map(crate::profiles::verdict::ViolationOut::from).collect::<Vec<_>>()}),
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
