//! What must hold when the faults stop: every job ended as it should, every
//! stored object has the right bytes, nothing is left behind, every worker
//! recovered, memory stayed bounded.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::plan::{Expect, Planned};
use crate::traffic::Results;
use rehost::result::Status;

/// How the jobs ended.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcomes {
    pub jobs: usize,
    pub ready: usize,
    pub failed_as_expected: usize,
    /// Expected ready, failed after every attempt met an origin fault.
    pub gave_up_after_retries: usize,
    pub lost: Vec<String>,
    pub wrong: Vec<String>,
}

pub fn outcomes(plan: &[Planned], results: &Results, max_attempts: u32) -> Outcomes {
    let mut o = Outcomes {
        jobs: plan.len(),
        ..Outcomes::default()
    };
    for job in plan {
        let Some(r) = results.final_of(&job.id) else {
            o.lost.push(job.id.clone());
            continue;
        };
        let code = r.error.as_ref().map(|e| e.code.as_str());
        let gave_up = r.error.as_ref().is_some_and(|e| e.retryable) && r.attempts >= max_attempts;
        match (&job.expect, r.status) {
            (Expect::Ready, Status::Ready) => o.ready += 1,
            (Expect::Ready, Status::Failed) if gave_up => o.gave_up_after_retries += 1,
            (Expect::Failed(want), Status::Failed) if code == Some(*want) => {
                o.failed_as_expected += 1
            }
            _ => o.wrong.push(format!(
                "{} ({}): {:?} {:?}",
                job.id, job.kind, r.status, code
            )),
        }
    }
    o
}

/// Checks every stored asset of every ready re-hosted job: the object
/// exists and its bytes hash to the result's SHA-256, and to the source's
/// (for a normalised image, the result's `source_sha256` is the source's).
pub async fn stored_objects(
    s3: &Client,
    bucket: &str,
    public_base: &str,
    plan: &[Planned],
    results: &Results,
) -> (usize, Vec<String>) {
    let assets: Vec<(String, rehost::result::AssetOut)> = plan
        .iter()
        .filter(|j| j.byo)
        .filter_map(|j| {
            Some((
                j,
                results
                    .final_of(&j.id)
                    .filter(|r| r.status == Status::Ready)?,
            ))
        })
        .flat_map(|(j, r)| r.assets.iter().flatten().map(|a| (j.id.clone(), a.clone())))
        .collect();
    let sources = source_hashes(&assets).await;
    let checks = futures_util::stream::iter(assets.iter().map(|(job, a)| {
        let key = a
            .url
            .trim_start_matches(public_base)
            .trim_start_matches('/')
            .to_string();
        let want = sources.get(&source_key(&a.source_url)).cloned().flatten();
        async move {
            let stored = match s3.get_object().bucket(bucket).key(&key).send().await {
                Ok(o) => o.body.collect().await.map(|b| b.into_bytes()).ok(),
                Err(_) => None,
            };
            let got = stored.map(|b| hex::encode(Sha256::digest(&b)));
            // A normalised image is not the source's bytes: its result names
            // the source's hash, which must be the origin's.
            let from = match &a.normalized {
                Some(n) => Some(n.source_sha256.clone()),
                None => got.clone(),
            };
            let ok = got.is_some() && got == a.sha256 && from.is_some() && from == want;
            (!ok).then(|| format!("{job} asset {}: {key}", a.index))
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    (assets.len(), checks.into_iter().flatten().collect())
}

/// A source URL without its fault parameters: the same bytes come back.
fn source_key(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| matches!(k.as_ref(), "mib" | "seed" | "moov"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.set_query(None);
    if !kept.is_empty() {
        u.query_pairs_mut().extend_pairs(kept);
    }
    u.to_string()
}

/// The SHA-256 of each distinct source (fetched once each).
async fn source_hashes(
    assets: &[(String, rehost::result::AssetOut)],
) -> std::collections::HashMap<String, Option<String>> {
    let http = reqwest::Client::new();
    let mut keys: Vec<String> = assets
        .iter()
        .map(|(_, a)| source_key(&a.source_url))
        .collect();
    keys.sort();
    keys.dedup();
    futures_util::stream::iter(keys.into_iter().map(|k| {
        let http = http.clone();
        async move {
            let body = match http.get(&k).send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                _ => None,
            };
            let hash = body.map(|b| hex::encode(Sha256::digest(&b)));
            (k, hash)
        }
    }))
    .buffer_unordered(8)
    .collect()
    .await
}

/// rehost's own objects and uploads left in the bucket (after the sweep).
pub async fn leftovers(s3: &Client, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in [".rehost/pending/", ".rehost/staging/"] {
        if let Ok(page) = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
        {
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
    }
    if let Ok(page) = s3.list_multipart_uploads().bucket(bucket).send().await {
        out.extend(
            page.uploads()
                .iter()
                .filter_map(|u| u.key().map(|k| format!("upload {k}"))),
        );
    }
    out
}

/// Jobs by kind, for the report.
pub fn kinds(plan: &[Planned]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for j in plan {
        *m.entry(j.kind).or_insert(0) += 1;
    }
    m
}
