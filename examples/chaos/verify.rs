//! What must hold when the faults stop: every job ended as it should, every
//! stored object has the right bytes, nothing is left behind, every worker
//! recovered, memory stayed bounded.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
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
/// exists and its bytes hash to the result's SHA-256 and to the source's.
pub async fn stored_objects(
    s3: &Client,
    bucket: &str,
    public_base: &str,
    plan: &[Planned],
    results: &Results,
) -> (usize, Vec<String>) {
    let http = reqwest::Client::new();
    let mut checked = 0;
    let mut bad = Vec::new();
    for job in plan.iter().filter(|j| j.byo) {
        let Some(r) = results
            .final_of(&job.id)
            .filter(|r| r.status == Status::Ready)
        else {
            continue;
        };
        for a in r.assets.iter().flatten() {
            checked += 1;
            let key = a
                .url
                .trim_start_matches(public_base)
                .trim_start_matches('/');
            let stored = match s3.get_object().bucket(bucket).key(key).send().await {
                Ok(o) => o.body.collect().await.map(|b| b.into_bytes()).ok(),
                Err(_) => None,
            };
            let source = match http.get(&a.source_url).send().await {
                Ok(resp) => resp.bytes().await.ok(),
                Err(_) => None,
            };
            let hash = |b: &[u8]| hex::encode(Sha256::digest(b));
            let ok = match (&stored, &source) {
                (Some(s), Some(src)) => Some(hash(s)) == a.sha256 && hash(s) == hash(src),
                _ => false,
            };
            if !ok {
                bad.push(format!("{} asset {}: {key}", job.id, a.index));
            }
        }
    }
    (checked, bad)
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
