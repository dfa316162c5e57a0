//! After every asset passed its base checks: the verdict of each targeted
//! account on the media as stored, and the status rule.

use super::{Checked, Ingestor, media_out};
use crate::job::{AccountType, Job};
use crate::metrics::{METRICS, labels};
use crate::normalize::DECODE_BUDGET;
use crate::profiles::check;
use crate::profiles::facts::Facts;
use crate::profiles::verdict::{self, AccountVerdict, Checks, Verdict, ViolationOut};
use crate::profiles::{Profile, RuleId};
use crate::result::Outcome;

/// The accounts a re-hosted post's images are normalised for: BYO accounts
/// of known platforms that no post-level rule (the image count) rejects.
pub(super) fn shapers(ing: &Ingestor, job: &Job) -> Vec<(usize, Profile)> {
    if ing.platform.checks == Checks::Off || !job.rehosts() {
        return Vec::new();
    }
    let images = job.media.sources().len();
    job.accounts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind == AccountType::Byo)
        .filter_map(|(i, a)| Some((i, ing.platform.profiles.find(&a.platform)?.clone())))
        .filter(|(_, p)| {
            job.media.kind() != crate::job::JobKind::Slideshow
                || check::post_violations(p, images).is_empty()
        })
        .collect()
}

/// The job's outcome once every asset is checked: verdicts, then the
/// status rule (under `enforce`).
pub(super) fn outcome(ing: &Ingestor, job: &Job, checked: Vec<Checked>) -> Outcome {
    let accounts = verdicts(ing, job, &checked);
    record(ing, &accounts);
    if ing.platform.checks == Checks::Enforce
        && let Some(error) = verdict::rejection(&accounts)
    {
        return Outcome::Failed { error, accounts };
    }
    let assets: Vec<_> = checked.into_iter().map(|c| c.out).collect();
    Outcome::Ready {
        rehosted: job.rehosts(),
        media: media_out(&job.media, &assets),
        assets,
        accounts,
    }
}

fn verdicts(ing: &Ingestor, job: &Job, checked: &[Checked]) -> Vec<AccountVerdict> {
    let facts: Option<Vec<Facts>> = checked.iter().map(|c| c.facts.clone()).collect();
    let (Some(facts), false) = (facts, ing.platform.checks == Checks::Off) else {
        return ing.unchecked(&job.accounts);
    };
    let mut accounts = verdict::judge(&job.accounts, &ing.platform.profiles, &facts);
    for (index, c) in checked.iter().enumerate() {
        if let Some(skip) = c.faststart_skipped {
            explain_faststart(&mut accounts, index, skip);
        }
        for &account in &c.unfit {
            if let Some(v) = accounts.get_mut(account) {
                v.verdict = Verdict::Rejected;
                let rule = RuleId::ImagePixels.as_str();
                v.violations
                    .retain(|x| !(x.asset_index == Some(index) && x.rule == rule));
                v.violations
                    .insert(0, unfit_violation(index, &c.out, &v.platform));
                v.violations.truncate(verdict::MAX_VIOLATIONS);
            }
        }
    }
    accounts
}

/// A moov-at-end video stored as it is: its `moov_first` violations say
/// why rehost did not move the box.
fn explain_faststart(
    accounts: &mut [AccountVerdict],
    index: usize,
    skip: crate::media::faststart::Skip,
) {
    let rule = RuleId::MoovFirst.as_str();
    for a in accounts {
        for v in &mut a.violations {
            if v.asset_index == Some(index) && v.rule == rule {
                v.message = format!(
                    "{} needs the moov box before the media data; asset {index} has it at the end and {}: re-export with faststart",
                    a.platform,
                    skip.why()
                );
            }
        }
    }
}

/// The violation of an image too large to decode within the budget, for
/// an account that needed it re-encoded.
pub fn unfit_violation(
    index: usize,
    out: &crate::result::AssetOut,
    platform: &str,
) -> ViolationOut {
    let (w, h) = (out.width.unwrap_or(0), out.height.unwrap_or(0));
    let pixels = u64::from(w) * u64::from(h);
    ViolationOut {
        asset_index: Some(index),
        rule: RuleId::ImagePixels.as_str().into(),
        actual: pixels.to_string(),
        allowed: format!("decodable within {} MiB", DECODE_BUDGET >> 20),
        message: format!(
            "{platform} needs asset {index} changed, but at {w}x{h} it is too large to decode within the worker's {} MiB image budget; upload a smaller image",
            DECODE_BUDGET >> 20
        ),
    }
}

/// `rehost_verdicts_total{platform,verdict,rule}`: one per account (`rule`
/// empty when none was broken), or one per rule a rejected account broke.
/// Platforms without a profile count as `unknown`, so a job cannot add
/// label values.
fn record(ing: &Ingestor, accounts: &[AccountVerdict]) {
    for a in accounts {
        let known = ing.platform.profiles.find(&a.platform).is_some();
        let platform = if known {
            a.platform.as_str()
        } else {
            "unknown"
        };
        let mut rules: Vec<&str> = a.violations.iter().map(|v| v.rule.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        if rules.is_empty() {
            rules.push("");
        }
        for rule in rules {
            METRICS
                .verdicts
                .get_or_create(&labels(&[
                    ("platform", platform),
                    ("verdict", a.verdict.as_str()),
                    ("rule", rule),
                ]))
                .inc();
        }
    }
}
