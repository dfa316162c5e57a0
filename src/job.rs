//! The job message: parsing and validation exactly as the contract says.
//!
//! Parsing has three outcomes:
//! - [`Parsed::Job`]: a valid job, ready for the pipeline;
//! - [`Parsed::Invalid`]: identifiers could be read, so the job gets a
//!   `failed` result with the contract's code;
//! - [`Parsed::NotAJob`]: no result can be addressed; the body goes to the
//!   parking lot with the reason.

use serde_json::{Map, Value};
use url::Url;

use crate::error::{ErrorCode, JobError, invalid_payload, invalid_url};

/// Largest body that can be a job.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most URLs in a slideshow.
pub const MAX_SLIDESHOW_URLS: usize = 35;
/// Most targeted accounts.
pub const MAX_ACCOUNTS: usize = 100;
/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest `external_id` accepted.
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;
/// Longest identifier (`job_id`, `post_id`, `workspace_id`).
pub const MAX_ID_CHARS: usize = 128;

/// Whether `s` is a contract identifier: `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
///
/// A `workspace_id` that passes this check is a single safe path segment.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_CHARS
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Who the post targets: any `byo` account means the media must be re-hosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountType {
    Byo,
    Hosted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub platform: String,
    pub kind: AccountType,
}

/// One media URL: the text exactly as sent (echoed back) and its parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    pub raw: String,
    pub url: Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    Video(SourceUrl),
    Slideshow(Vec<SourceUrl>),
}

/// What kind of asset a job expects, which also picks the byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Video,
    Slideshow,
}

impl Media {
    pub fn kind(&self) -> JobKind {
        match self {
            Media::Video(_) => JobKind::Video,
            Media::Slideshow(_) => JobKind::Slideshow,
        }
    }

    /// The assets in order.
    pub fn sources(&self) -> &[SourceUrl] {
        match self {
            Media::Video(u) => std::slice::from_ref(u),
            Media::Slideshow(us) => us,
        }
    }
}

/// The identifiers every result carries, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIds {
    pub job_id: String,
    pub post_id: String,
    pub workspace_id: String,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub ids: JobIds,
    pub accounts: Vec<Account>,
    pub media: Media,
}

impl Job {
    /// True when any targeted account is user-connected: assets are copied.
    pub fn rehosts(&self) -> bool {
        self.accounts.iter().any(|a| a.kind == AccountType::Byo)
    }
}

#[derive(Debug)]
pub enum Parsed {
    Job(Job),
    /// `accounts` are those of the message when its `accounts` field is
    /// valid (results report them `unchecked`), else empty.
    Invalid {
        ids: JobIds,
        accounts: Vec<Account>,
        error: JobError,
    },
    NotAJob {
        reason: String,
    },
}

/// Parses and validates one message body. `message_id` is the AMQP property,
/// used for `job_id` when the body has none.
pub fn parse(body: &[u8], message_id: Option<&str>) -> Parsed {
    let not_a_job = |reason: &str| Parsed::NotAJob {
        reason: reason.to_string(),
    };
    if body.len() > MAX_BODY_BYTES {
        return not_a_job("body is larger than 256 KiB");
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return not_a_job("body is not UTF-8");
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Parsed::NotAJob {
                reason: format!("body is not JSON: {e}"),
            };
        }
    };
    let Some(obj) = value.as_object() else {
        return not_a_job("body is not a JSON object");
    };
    let (Some(post_id), Some(workspace_id)) = (
        obj.get("post_id").and_then(Value::as_str),
        obj.get("workspace_id").and_then(Value::as_str),
    ) else {
        return not_a_job("post_id and workspace_id cannot be read as strings");
    };

    let job_id = match obj.get("job_id") {
        Some(Value::String(s)) => s.clone(),
        _ => message_id
            .filter(|m| is_valid_id(m))
            .unwrap_or(post_id)
            .to_string(),
    };
    let external_id = match obj.get("external_id") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let ids = JobIds {
        job_id,
        post_id: post_id.to_string(),
        workspace_id: workspace_id.to_string(),
        external_id,
    };
    match validate(obj, &ids) {
        Ok((accounts, media)) => Parsed::Job(Job {
            ids,
            accounts,
            media,
        }),
        Err(error) => Parsed::Invalid {
            accounts: accounts(obj.get("accounts")).unwrap_or_default(),
            ids,
            error,
        },
    }
}

fn validate(obj: &Map<String, Value>, ids: &JobIds) -> Result<(Vec<Account>, Media), JobError> {
    match obj.get("job_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if is_valid_id(s) => {}
        Some(_) => return Err(invalid_payload("job_id must match [A-Za-z0-9._-]{1,128}")),
    }
    for (name, value) in [
        ("post_id", &ids.post_id),
        ("workspace_id", &ids.workspace_id),
    ] {
        if !is_valid_id(value) {
            return Err(invalid_payload(format!(
                "{name} must match [A-Za-z0-9._-]{{1,128}} and not be . or .."
            )));
        }
    }
    match obj.get("external_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.chars().count() <= MAX_EXTERNAL_ID_CHARS => {}
        Some(Value::String(_)) => {
            return Err(invalid_payload("external_id is longer than 256 characters"));
        }
        Some(_) => return Err(invalid_payload("external_id must be a string")),
    }
    let accounts = accounts(obj.get("accounts"))?;
    let media = media(obj.get("media"))?;
    Ok((accounts, media))
}

fn accounts(value: Option<&Value>) -> Result<Vec<Account>, JobError> {
    let Some(list) = value.and_then(Value::as_array) else {
        return Err(invalid_payload("accounts must be an array"));
    };
    if list.is_empty() || list.len() > MAX_ACCOUNTS {
        return Err(invalid_payload("accounts must have 1 to 100 entries"));
    }
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let field = |name: &str| {
                a.get(name).and_then(Value::as_str).ok_or_else(|| {
                    invalid_payload(format!("accounts[{i}].{name} must be a string"))
                })
            };
            let kind = match field("type")? {
                "byo" => AccountType::Byo,
                "hosted" => AccountType::Hosted,
                _ => {
                    return Err(invalid_payload(format!(
                        "accounts[{i}].type must be \"byo\" or \"hosted\""
                    )));
                }
            };
            Ok(Account {
                id: field("id")?.to_string(),
                platform: field("platform")?.to_string(),
                kind,
            })
        })
        .collect()
}

fn media(value: Option<&Value>) -> Result<Media, JobError> {
    let Some(media) = value.and_then(Value::as_object) else {
        return Err(invalid_payload("media must be an object"));
    };
    let url = media.get("url").filter(|v| !v.is_null());
    let urls = media.get("urls").filter(|v| !v.is_null());
    match media.get("type").and_then(Value::as_str) {
        Some("video") => {
            if urls.is_some() {
                return Err(invalid_payload("media of type video takes url, not urls"));
            }
            let Some(Value::String(raw)) = url else {
                return Err(invalid_payload("media.url must be a string"));
            };
            Ok(Media::Video(source_url(raw).map_err(|e| e.at(0))?))
        }
        Some("slideshow") => {
            if url.is_some() {
                return Err(invalid_payload(
                    "media of type slideshow takes urls, not url",
                ));
            }
            let Some(Value::Array(list)) = urls else {
                return Err(invalid_payload("media.urls must be an array"));
            };
            if list.is_empty() {
                return Err(JobError::new(ErrorCode::NoImages, "slideshow has no URLs"));
            }
            if list.len() > MAX_SLIDESHOW_URLS {
                return Err(JobError::new(
                    ErrorCode::TooManyImages,
                    format!("slideshow has {} URLs; at most 35 are allowed", list.len()),
                ));
            }
            if let Some(i) = list.iter().position(|v| !v.is_string()) {
                return Err(invalid_payload(format!("media.urls[{i}] must be a string")));
            }
            let urls = list
                .iter()
                .enumerate()
                .map(|(i, v)| source_url(v.as_str().unwrap_or_default()).map_err(|e| e.at(i)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Media::Slideshow(urls))
        }
        _ => Err(invalid_payload(
            "media.type must be \"video\" or \"slideshow\"",
        )),
    }
}

/// The contract's URL rules: http or https, at most 2048 characters, a host,
/// and no user:password part.
pub fn source_url(raw: &str) -> Result<SourceUrl, JobError> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(invalid_url("URL is longer than 2048 characters"));
    }
    let url = Url::parse(raw).map_err(|e| invalid_url(format!("URL does not parse: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid_url(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid_url("URL carries credentials (user:password@)"));
    }
    if url.host().is_none() {
        return Err(invalid_url("URL has no host"));
    }
    Ok(SourceUrl {
        raw: raw.to_string(),
        url,
    })
}

#[cfg(test)]
mod tests;
