//! The result message published for every try of a job.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, JobError};
use crate::job::{JobIds, is_valid_id};
use crate::profiles::verdict::{AccountVerdict, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ready,
    Failed,
    Retry,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Failed => "failed",
            Status::Retry => "retry",
        }
    }

    /// The routing key on the results exchange.
    pub fn routing_key(self) -> &'static str {
        match self {
            Status::Ready => "media.ingested",
            Status::Failed => "media.failed",
            Status::Retry => "media.retrying",
        }
    }
}

/// `media` in a result mirrors the input's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MediaOut {
    Video { url: String },
    Slideshow { urls: Vec<String> },
}

/// What was learned about one asset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetOut {
    pub index: usize,
    pub source_url: String,
    /// The URL the media object now uses: the stored copy when re-hosted,
    /// the source otherwise.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    pub content_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub codec: Option<String>,
    /// Present when the stored bytes differ from the source's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub normalized: Option<NormalizedOut>,
}

/// What normalisation did to an asset, and what the source was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizedOut {
    /// From `orient`, `first_frame`, `flatten`, `resize`, `to_jpeg`,
    /// `recompress`, `strip_metadata`, in that order.
    pub steps: Vec<String>,
    pub source_sha256: String,
    pub source_bytes: u64,
    pub source_content_type: String,
    pub source_width: u32,
    pub source_height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorOut {
    pub code: ErrorCode,
    pub message: String,
    pub asset_index: Option<usize>,
    pub retryable: bool,
}

impl From<&JobError> for ErrorOut {
    fn from(e: &JobError) -> Self {
        ErrorOut {
            code: e.code,
            message: e.message.clone(),
            asset_index: e.asset_index,
            retryable: e.retryable(),
        }
    }
}

/// The result message, field for field as in the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultMessage {
    pub job_id: String,
    pub post_id: String,
    pub workspace_id: String,
    pub external_id: Option<String>,
    pub status: Status,
    /// Present on `ready` only: whether the URLs point at re-hosted copies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rehosted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media: Option<MediaOut>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assets: Option<Vec<AssetOut>>,
    /// One verdict per targeted account, in the job's order.
    #[serde(default)]
    pub accounts: Vec<AccountVerdict>,
    /// The version of the platform profiles the verdicts come from.
    #[serde(default)]
    pub profiles_version: String,
    pub attempts: u32,
    pub error: Option<ErrorOut>,
    pub finished_at: String,
}

/// What one try of a job produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ready {
        rehosted: bool,
        media: MediaOut,
        assets: Vec<AssetOut>,
        accounts: Vec<AccountVerdict>,
    },
    Failed {
        error: JobError,
        accounts: Vec<AccountVerdict>,
    },
}

impl Outcome {
    /// The failure, if this is one.
    pub fn error(&self) -> Option<&JobError> {
        match self {
            Outcome::Failed { error, .. } => Some(error),
            Outcome::Ready { .. } => None,
        }
    }
}

impl ResultMessage {
    /// Builds the result of try number `attempts` out of `max_attempts`: a
    /// retryable failure with tries left is `retry` (every account
    /// `unchecked`), otherwise `failed`.
    pub fn build(
        ids: &JobIds,
        outcome: &Outcome,
        attempts: u32,
        max_attempts: u32,
        profiles_version: &str,
    ) -> Self {
        let finished_at = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut msg = ResultMessage {
            job_id: ids.job_id.clone(),
            post_id: ids.post_id.clone(),
            workspace_id: ids.workspace_id.clone(),
            external_id: ids.external_id.clone(),
            status: Status::Ready,
            rehosted: None,
            media: None,
            assets: None,
            accounts: Vec::new(),
            profiles_version: profiles_version.to_string(),
            attempts,
            error: None,
            finished_at,
        };
        match outcome {
            Outcome::Ready {
                rehosted,
                media,
                assets,
                accounts,
            } => {
                msg.rehosted = Some(*rehosted);
                msg.media = Some(media.clone());
                msg.assets = Some(assets.clone());
                msg.accounts.clone_from(accounts);
            }
            Outcome::Failed { error, accounts } => {
                msg.status = if error.retryable() && attempts < max_attempts {
                    Status::Retry
                } else {
                    Status::Failed
                };
                msg.error = Some(ErrorOut::from(error));
                msg.accounts.clone_from(accounts);
                if msg.status == Status::Retry {
                    msg.accounts.iter_mut().for_each(unchecked);
                }
            }
        }
        msg
    }

    /// The AMQP `message_id`: `{job_id}:{attempts}:{status}`. A `job_id` that
    /// breaks the identifier pattern (it is echoed in the body as received)
    /// is replaced by a digest here, so the id always fits AMQP's 255 bytes.
    pub fn message_id(&self) -> String {
        let job = if is_valid_id(&self.job_id) {
            self.job_id.clone()
        } else {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.job_id.as_bytes());
            format!("invalid-{}", &hex::encode(digest)[..32])
        };
        format!("{job}:{}:{}", self.attempts, self.status.as_str())
    }
}

/// An account's verdict made `unchecked` (a retry reports no verdicts).
fn unchecked(v: &mut AccountVerdict) {
    v.verdict = Verdict::Unchecked;
    v.violations.clear();
    v.skipped.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::unreachable;

    fn failed(error: JobError) -> Outcome {
        Outcome::Failed {
            error,
            accounts: Vec::new(),
        }
    }

    fn ids(job_id: &str) -> JobIds {
        JobIds {
            job_id: job_id.into(),
            post_id: "p".into(),
            workspace_id: "w".into(),
            external_id: None,
        }
    }

    #[test]
    fn retry_until_attempts_run_out() {
        let out = failed(unreachable("503").at(0));
        let r = ResultMessage::build(&ids("j"), &out, 1, 3, "v");
        assert_eq!(
            (r.status, r.message_id().as_str()),
            (Status::Retry, "j:1:retry")
        );
        let r = ResultMessage::build(&ids("j"), &out, 3, 3, "v");
        assert_eq!(r.status, Status::Failed);
        let err = r.error.expect("error");
        assert!(err.retryable, "gave up: failed with retryable true");
        let json =
            serde_json::to_value(ResultMessage::build(&ids("j"), &out, 1, 3, "v")).expect("json");
        assert!(json.get("media").is_none() && json.get("assets").is_none());
        assert_eq!(json["error"]["code"], "unreachable");
        assert_eq!(json["external_id"], serde_json::Value::Null);
    }

    #[test]
    fn message_id_fits_amqp_for_any_job_id() {
        let r = ResultMessage::build(&ids(&"ü".repeat(300)), &failed(unreachable("x")), 1, 1, "v");
        let id = r.message_id();
        assert!(id.len() < 255 && id.starts_with("invalid-"), "{id}");
    }
}
