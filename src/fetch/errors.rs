//! From HTTP answers and transport errors to the contract's codes.

use std::time::Duration;

#[cfg(test)]
use http::header::HeaderValue;
use http::header::{self, HeaderMap};
use url::Url;

use super::MAX_REDIRECTS;
use super::guard::Forbidden;
use crate::error::{self, ErrorCode, JobError, error_chain};

/// Why a redirect was not followed.
#[derive(Debug)]
pub(super) enum RedirectRefused {
    TooMany,
    Scheme(String),
    Credentials,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectRefused::TooMany => write!(f, "more than {MAX_REDIRECTS} redirects"),
            RedirectRefused::Scheme(s) => write!(f, "redirect to a {s:?} URL"),
            RedirectRefused::Credentials => {
                write!(f, "redirect to a URL carrying credentials (user:password@)")
            }
        }
    }
}

impl std::error::Error for RedirectRefused {}

pub(super) fn forbidden(f: Forbidden) -> JobError {
    error::forbidden_address(f.to_string())
}

/// Maps a non-success status to the contract's code.
pub(super) fn status_error(status: u16, headers: &HeaderMap) -> Result<(), JobError> {
    let code = match status {
        200..=299 => return Ok(()),
        404 | 410 => ErrorCode::NotFound,
        401 | 403 => ErrorCode::AccessDenied,
        416 => return Ok(()),
        429 | 500..=599 => {
            return Err(error::unreachable(format!("origin answered {status}"))
                .with_retry_after(retry_after(headers)));
        }
        300..=399 => ErrorCode::Unreachable,
        // Any other 4xx: the origin refuses the request as made.
        _ => ErrorCode::AccessDenied,
    };
    Err(JobError::new(code, format!("origin answered {status}")))
}

/// Where a 3xx answer sends us next: an http(s) `Location`, resolved
/// against the URL asked for. Like a job's URL, it may not carry
/// credentials: besides, the client pool would key its sockets by them,
/// apart from the host's budget.
///
/// # Errors
/// `invalid_url` for another scheme or for credentials; `unreachable`
/// without a usable `Location`.
pub(super) fn next_hop(url: &Url, status: u16, headers: &HeaderMap) -> Result<Url, JobError> {
    let target = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|loc| url.join(loc).ok());
    match target {
        Some(t) if !t.username().is_empty() || t.password().is_some() => {
            Err(error::invalid_url(RedirectRefused::Credentials.to_string()))
        }
        Some(t) if matches!(t.scheme(), "http" | "https") => Ok(t),
        Some(t) => Err(error::invalid_url(
            RedirectRefused::Scheme(t.scheme().to_string()).to_string(),
        )),
        None => Err(error::unreachable(format!(
            "origin answered {status} without a usable Location"
        ))),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// The total from `Content-Range: bytes a-b/total`.
pub(super) fn content_range_total(v: &str) -> Option<u64> {
    v.rsplit_once('/')?.1.trim().parse().ok()
}

/// The range `(a, b)` (inclusive) from `Content-Range: bytes a-b/total`,
/// when it is one and `a <= b`.
pub(super) fn content_range_span(v: &str) -> Option<(u64, u64)> {
    let span = v.trim().strip_prefix("bytes")?.trim().split('/').next()?;
    let (a, b) = span.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// Maps a transport error (the client's or a body's) to the contract's
/// code, looking through its causes for the address guard's own error
/// (from the resolver).
pub(super) fn classify(e: &(dyn std::error::Error + 'static)) -> JobError {
    let mut connect = false;
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<Forbidden>() {
            return forbidden(f.clone());
        }
        connect |= s
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect);
        source = s.source();
    }
    let what = if connect {
        "could not connect (DNS, refused, TLS or no connection place)"
    } else {
        "request failed"
    };
    error::unreachable(format!("{what}: {}", error_chain(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_go_to_http_urls_without_credentials() {
        let from = Url::parse("https://a.test/x/y.jpg").expect("url");
        let hop = |loc: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::LOCATION, HeaderValue::from_static(loc));
            next_hop(&from, 302, &h)
        };
        let to = hop("../z.jpg?q=1").expect("relative");
        assert_eq!(to.as_str(), "https://a.test/z.jpg?q=1");
        assert_eq!(
            hop("http://b.test:8080/p").expect("absolute").as_str(),
            "http://b.test:8080/p"
        );
        for bad in [
            "https://u@b.test/p",
            "https://u:pw@b.test/p",
            "https://:pw@b.test/p",
        ] {
            let e = hop(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidUrl, "{bad}");
            assert!(e.message.contains("credentials"), "{}", e.message);
        }
        assert_eq!(
            hop("ftp://b.test/p").expect_err("scheme").code,
            ErrorCode::InvalidUrl
        );
        let none = next_hop(&from, 302, &HeaderMap::new()).expect_err("no Location");
        assert_eq!(none.code, ErrorCode::Unreachable);
    }

    #[test]
    fn content_range_totals() {
        assert_eq!(
            content_range_span("bytes 0-65535/183554"),
            Some((0, 65_535))
        );
        assert_eq!(content_range_span("bytes 10-9/20"), None);
        assert_eq!(content_range_span("bytes */20"), None);
        assert_eq!(content_range_total("bytes 0-65535/183554"), Some(183_554));
        assert_eq!(content_range_total("bytes 0-9/*"), None);
        assert_eq!(content_range_total("garbage"), None);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&future).expect("header"),
        );
        let d = retry_after(&h).expect("date");
        assert!((85..=91).contains(&d.as_secs()), "{d:?}");
    }

    #[test]
    fn statuses() {
        let h = HeaderMap::new();
        let code = |s| status_error(s, &h).err().map(|e| e.code);
        assert_eq!(code(200), None);
        assert_eq!(code(206), None);
        assert_eq!(code(404), Some(ErrorCode::NotFound));
        assert_eq!(code(410), Some(ErrorCode::NotFound));
        assert_eq!(code(401), Some(ErrorCode::AccessDenied));
        assert_eq!(code(403), Some(ErrorCode::AccessDenied));
        assert_eq!(code(429), Some(ErrorCode::Unreachable));
        assert_eq!(code(503), Some(ErrorCode::Unreachable));
    }
}
