//! The contract's closed set of error codes, and the error a job reports.
//!
//! The code is chosen where the failure is understood (the fetcher for HTTP
//! answers and transport errors, `media::check` for what the bytes are, the
//! store for storage, the profiles for platforms); context travels in the
//! message, and every failure reaches the result as exactly one
//! [`ErrorCode`] plus a human-readable message. The codes, their spelling and whether they are
//! retryable are fixed by the contract.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every error code of the contract, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidPayload,
    NoImages,
    TooManyImages,
    InvalidUrl,
    ForbiddenAddress,
    NotFound,
    AccessDenied,
    Unreachable,
    TooLarge,
    UnsupportedFormat,
    MediaTypeMismatch,
    CorruptMedia,
    DimensionsExceeded,
    PlatformRejected,
    StorageUnavailable,
    Internal,
}

impl ErrorCode {
    /// All codes, in the contract's order (used by metrics and docs tests).
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidPayload,
        ErrorCode::NoImages,
        ErrorCode::TooManyImages,
        ErrorCode::InvalidUrl,
        ErrorCode::ForbiddenAddress,
        ErrorCode::NotFound,
        ErrorCode::AccessDenied,
        ErrorCode::Unreachable,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedFormat,
        ErrorCode::MediaTypeMismatch,
        ErrorCode::CorruptMedia,
        ErrorCode::DimensionsExceeded,
        ErrorCode::PlatformRejected,
        ErrorCode::StorageUnavailable,
        ErrorCode::Internal,
    ];

    /// The wire spelling, as in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::NoImages => "no_images",
            ErrorCode::TooManyImages => "too_many_images",
            ErrorCode::InvalidUrl => "invalid_url",
            ErrorCode::ForbiddenAddress => "forbidden_address",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::MediaTypeMismatch => "media_type_mismatch",
            ErrorCode::CorruptMedia => "corrupt_media",
            ErrorCode::DimensionsExceeded => "dimensions_exceeded",
            ErrorCode::PlatformRejected => "platform_rejected",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether another try of the same job may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Unreachable | ErrorCode::StorageUnavailable | ErrorCode::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failure of one job (or of one of its assets), as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub code: ErrorCode,
    /// Human readable; never contains secrets. For `internal` it stays generic
    /// and the details go to the log only.
    pub message: String,
    /// Which asset failed, when the failure belongs to one.
    pub asset_index: Option<usize>,
    /// The origin's `Retry-After`, when it sent one with a 429 or 503.
    pub retry_after: Option<Duration>,
}

impl JobError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        JobError {
            code,
            message: message.into(),
            asset_index: None,
            retry_after: None,
        }
    }

    pub fn at(mut self, index: usize) -> Self {
        self.asset_index = Some(index);
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }

    /// The contract's precedence: a permanent failure beats a retryable one,
    /// then the lowest asset index wins (job-level errors, without an index,
    /// come first). Smaller is more important.
    pub fn precedence(&self) -> (bool, usize) {
        (self.retryable(), self.asset_index.map_or(0, |i| i + 1))
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.asset_index {
            Some(i) => write!(f, "{} (asset {}): {}", self.code, i, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for JobError {}

/// Shorthand constructors, so stage code reads `Err(corrupt_media("no IEND chunk"))`.
macro_rules! ctor {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("A [`JobError`] with code `", stringify!($name), "`.")]
            pub fn $name(message: impl Into<String>) -> JobError {
                JobError::new(ErrorCode::$code, message)
            }
        )*
    };
}

ctor! {
    invalid_payload => InvalidPayload,
    invalid_url => InvalidUrl,
    forbidden_address => ForbiddenAddress,
    unreachable => Unreachable,
    too_large => TooLarge,
    unsupported_format => UnsupportedFormat,
    media_type_mismatch => MediaTypeMismatch,
    corrupt_media => CorruptMedia,
    dimensions_exceeded => DimensionsExceeded,
    platform_rejected => PlatformRejected,
    storage_unavailable => StorageUnavailable,
    internal => Internal,
}

/// The error and its causes on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn only_transient_codes_are_retryable() {
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.retryable())
            .map(ErrorCode::as_str)
            .collect();
        assert_eq!(
            retryable,
            ["unreachable", "storage_unavailable", "internal"]
        );
    }

    #[test]
    fn permanent_beats_retryable_then_lowest_index() {
        let mut errs = [
            unreachable("a").at(0),
            not_found_at(3),
            not_found_at(1),
            storage_unavailable("s").at(0),
        ];
        errs.sort_by_key(JobError::precedence);
        assert_eq!(errs[0].code, ErrorCode::NotFound);
        assert_eq!(errs[0].asset_index, Some(1));
        assert_eq!(errs[2].code, ErrorCode::Unreachable);
    }

    /// cargo-mutants: `i + 1` as `i * 1` made a job-level error tie with
    /// asset 0's; job-level errors (no index) come first.
    #[test]
    fn a_job_level_failure_comes_before_asset_zero() {
        let job = JobError::new(ErrorCode::NotFound, "job");
        assert!(job.precedence() < not_found_at(0).precedence());
        assert!(not_found_at(0).precedence() < not_found_at(1).precedence());
        let retry_job = unreachable("job");
        assert!(
            not_found_at(7).precedence() < retry_job.precedence(),
            "permanent first"
        );
    }

    fn not_found_at(i: usize) -> JobError {
        JobError::new(ErrorCode::NotFound, "404").at(i)
    }
}
