//! Verdicts per targeted account, as every result reports them, and the
//! status rule: a post is `ready` when at least one targeted account's
//! verdict is `ok` or `unchecked`.

use serde::{Deserialize, Serialize};

use super::Profiles;
use super::check::{self, Violation};
use super::facts::Facts;
use crate::error::{self, JobError};
use crate::job::{Account, AccountType};

/// Most violations reported per account.
pub const MAX_VIOLATIONS: usize = 20;

/// `REHOST_PLATFORM_CHECKS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Verdicts are reported and a post no account can take fails.
    Enforce,
    /// Verdicts are reported; the job never fails for them.
    Report,
    /// No verdicts (every account `unchecked`) and no normalisation.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Rejected,
    Unchecked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Rejected => "rejected",
            Verdict::Unchecked => "unchecked",
        }
    }
}

/// A violation as results show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationOut {
    pub asset_index: Option<usize>,
    pub rule: String,
    pub actual: String,
    pub allowed: String,
    pub message: String,
}

impl From<&Violation> for ViolationOut {
    fn from(v: &Violation) -> Self {
        ViolationOut {
            asset_index: v.asset_index,
            rule: v.rule.as_str().into(),
            actual: v.actual.clone(),
            allowed: v.allowed.clone(),
            message: v.message.clone(),
        }
    }
}

/// One targeted account's verdict, in the job's account order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountVerdict {
    pub id: String,
    /// The canonical lowercase name (`twitter` is `x`).
    pub platform: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub verdict: Verdict,
    pub violations: Vec<ViolationOut>,
    /// Rules whose input could not be measured from the bytes read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

fn base(a: &Account, profiles: &Profiles) -> AccountVerdict {
    let platform = profiles.find(&a.platform).map_or_else(
        || a.platform.trim().to_ascii_lowercase(),
        |p| p.name.clone(),
    );
    AccountVerdict {
        id: a.id.clone(),
        platform,
        kind: match a.kind {
            AccountType::Byo => "byo".into(),
            AccountType::Hosted => "hosted".into(),
        },
        verdict: Verdict::Unchecked,
        violations: Vec::new(),
        skipped: Vec::new(),
    }
}

/// Every account `unchecked` (a failed or retried job, checks off).
pub fn unchecked(accounts: &[Account], profiles: &Profiles) -> Vec<AccountVerdict> {
    accounts.iter().map(|a| base(a, profiles)).collect()
}

/// Judges the post for every BYO account of a known platform; hosted
/// accounts and unknown platforms are `unchecked`.
pub fn judge(accounts: &[Account], profiles: &Profiles, assets: &[Facts]) -> Vec<AccountVerdict> {
    accounts
        .iter()
        .map(|a| {
            let mut v = base(a, profiles);
            let profile = profiles
                .find(&a.platform)
                .filter(|_| a.kind == AccountType::Byo);
            if let Some(p) = profile {
                let j = check::judge(p, assets);
                v.verdict = if j.violations.is_empty() {
                    Verdict::Ok
                } else {
                    Verdict::Rejected
                };
                v.violations = j
                    .violations
                    .iter()
                    .take(MAX_VIOLATIONS)
                    .map(ViolationOut::from)
                    .collect();
                v.skipped = j.skipped.iter().map(|r| r.as_str().to_string()).collect();
            }
            v
        })
        .collect()
}

/// The status rule: `None` (ready) when at least one account's verdict is
/// `ok` or `unchecked`; otherwise `platform_rejected` with the first
/// violation: a post-level one first, then by asset index, then by account
/// order.
pub fn rejection(verdicts: &[AccountVerdict]) -> Option<JobError> {
    if verdicts.is_empty() || verdicts.iter().any(|v| v.verdict != Verdict::Rejected) {
        return None;
    }
    let first = verdicts
        .iter()
        .enumerate()
        .flat_map(|(n, v)| v.violations.iter().map(move |x| (n, x)))
        .min_by_key(|(n, x)| (x.asset_index.map_or(0, |i| i + 1), *n))?
        .1;
    let e = error::platform_rejected(format!(
        "no targeted account's platform can take this media: {}",
        first.message
    ));
    Some(match first.asset_index {
        Some(i) => e.at(i),
        None => e,
    })
}
