//! The safe fetcher: HTTP(S) GETs of untrusted URLs.
//!
//! - [`guard`]: which addresses origins may have; checked on DNS answers
//!   ([`resolver`]), on IP-literal hosts, on every redirect hop and on the
//!   address actually connected.
//! - Requests send `User-Agent: rehost/{version}` and
//!   `Accept-Encoding: identity`, use no proxy, follow at most 5 redirects
//!   (http/https only), and never decompress.
//! - Deadlines: connect 10 s, no byte for 30 s, and a whole-asset deadline of
//!   `REHOST_FETCH_TIMEOUT_SECS` plus the declared size at
//!   `REHOST_MIN_RATE_KBPS` (for a body of unknown size, the bytes received
//!   so far buy the time instead, so a trickle still runs out).
//! - [`Body`] counts bytes against the job kind's limit and against the
//!   declared length.

pub mod guard;
mod hosts;
pub mod resolver;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::error::{self, ErrorCode, JobError};
use guard::{AllowList, Forbidden, Guard, literal_ip};
use hosts::{HostLimiter, HostPermit};
use resolver::{GuardedResolver, Lookup, SystemLookup};

/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 5;

/// How the fetcher behaves. The defaults are the contract's.
#[derive(Clone)]
pub struct FetchConfig {
    pub connect_timeout: Duration,
    /// No byte for this long aborts a transfer.
    pub stall_timeout: Duration,
    /// Base of the whole-asset deadline.
    pub base_timeout: Duration,
    /// Slowest rate an asset's deadline allows, in bytes per second.
    pub min_rate_bytes_per_sec: u64,
    pub per_host_connections: usize,
    pub allow: AllowList,
    /// Name lookups; the system resolver unless a test injects one.
    pub lookup: Arc<dyn Lookup>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            base_timeout: Duration::from_secs(60),
            min_rate_bytes_per_sec: 4096 * 1024,
            per_host_connections: 8,
            allow: AllowList::default(),
            lookup: Arc::new(SystemLookup),
        }
    }
}

impl FetchConfig {
    /// The contract's fetch settings from the configuration.
    pub fn from_config(c: &crate::config::Config) -> Self {
        FetchConfig {
            base_timeout: c.fetch_timeout,
            min_rate_bytes_per_sec: c.min_rate_kbps.saturating_mul(1024),
            per_host_connections: c.per_host_connections,
            allow: c.allow.clone(),
            ..FetchConfig::default()
        }
    }
}

/// Why a redirect was not followed.
#[derive(Debug)]
enum RedirectRefused {
    TooMany,
    Scheme(String),
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectRefused::TooMany => write!(f, "more than {MAX_REDIRECTS} redirects"),
            RedirectRefused::Scheme(s) => write!(f, "redirect to a {s:?} URL"),
        }
    }
}

impl std::error::Error for RedirectRefused {}

/// A byte range of the body to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    /// Inclusive; `None` for "to the end".
    pub end: Option<u64>,
}

/// The fetcher. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<Guard>,
    hosts: Arc<HostLimiter>,
    cfg: FetchConfig,
}

/// An answered request whose body has not been read yet.
pub struct Opened {
    pub status: u16,
    /// `Content-Length` of this response.
    pub content_length: Option<u64>,
    /// The whole asset's size: from `Content-Range` on a 206, or the
    /// `Content-Length` of a 200.
    pub total_size: Option<u64>,
    /// Whether the origin honoured the range (206).
    pub partial: bool,
    pub body: Body,
}

/// A response body read chunk by chunk under the deadlines and limits.
pub struct Body {
    response: reqwest::Response,
    started: Instant,
    base: Duration,
    rate: u64,
    stall: Duration,
    expected: Option<u64>,
    received: u64,
    max_bytes: u64,
    _permit: HostPermit,
}

impl Fetcher {
    /// # Errors
    /// When the HTTP client cannot be built (TLS roots unavailable).
    pub fn new(cfg: FetchConfig) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(cfg.allow.clone()));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let redirect_guard = guard.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(RedirectRefused::TooMany);
            }
            let scheme = attempt.url().scheme().to_string();
            if scheme != "http" && scheme != "https" {
                return attempt.error(RedirectRefused::Scheme(scheme));
            }
            if let Some(ip) = attempt.url().host().as_ref().and_then(literal_ip)
                && let Err(f) = redirect_guard.check(ip)
            {
                return attempt.error(f);
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("rehost/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .no_proxy()
            .redirect(policy)
            .referer(false)
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.stall_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(cfg.per_host_connections)
            .dns_resolver(GuardedResolver {
                guard: guard.clone(),
                lookup: cfg.lookup.clone(),
            })
            .build()?;
        Ok(Fetcher {
            client,
            guard,
            hosts: HostLimiter::new(cfg.per_host_connections),
            cfg,
        })
    }

    /// Sends a GET for `url` (optionally a byte range) and checks the answer:
    /// the address guard, the status, and the declared size against
    /// `max_bytes`. The body is read from [`Opened::body`].
    ///
    /// # Errors
    /// A [`JobError`] with the contract's code (no asset index yet).
    pub async fn open(
        &self,
        url: &Url,
        range: Option<Range>,
        max_bytes: u64,
    ) -> Result<Opened, JobError> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if let Some(ip) = url.host().as_ref().and_then(literal_ip) {
            self.guard.check(ip).map_err(forbidden)?;
        }
        let mut permit = self.hosts.acquire(&host).await;
        let started = Instant::now();
        let mut req = self.client.get(url.clone());
        if let Some(r) = range {
            let value = match r.end {
                Some(end) => format!("bytes={}-{end}", r.start),
                None => format!("bytes={}-", r.start),
            };
            req = req.header(header::RANGE, value);
        }
        let send = req.send();
        let response = match tokio::time::timeout(self.cfg.base_timeout, send).await {
            Err(_) => {
                return Err(error::unreachable(
                    "origin did not answer before the deadline",
                ));
            }
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(r)) => r,
        };
        if let Some(addr) = response.remote_addr() {
            self.guard.check(addr.ip()).map_err(forbidden)?;
        }
        if response.version() == reqwest::Version::HTTP_2 {
            permit.multiplexed();
        }
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(unfollowed_redirect(url, status, response.headers()));
        }
        status_error(status, response.headers())?;
        let content_length = response.content_length();
        let partial = status == 206;
        let total_size = if partial {
            response
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_total)
        } else if status == 200 {
            content_length
        } else {
            None
        };
        if let Some(total) = total_size.or(content_length)
            && total > max_bytes
        {
            return Err(error::too_large(format!(
                "origin declares {total} bytes; the limit is {max_bytes}"
            )));
        }
        Ok(Opened {
            status,
            content_length,
            total_size,
            partial,
            body: Body {
                response,
                started,
                base: self.cfg.base_timeout,
                rate: self.cfg.min_rate_bytes_per_sec.max(1),
                stall: self.cfg.stall_timeout,
                expected: content_length,
                received: 0,
                max_bytes,
                _permit: permit,
            },
        })
    }
}

impl Body {
    /// The most bytes this body may have.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// When the whole body must have arrived.
    fn deadline(&self) -> Instant {
        let size = self.expected.unwrap_or(0).max(self.received);
        let allowance = Duration::from_secs_f64(size as f64 / self.rate as f64);
        self.started + self.base + allowance
    }

    /// The next chunk, `None` at the end of the body.
    ///
    /// # Errors
    /// `too_large` past the limit; `unreachable` on a stall, the deadline, a
    /// dropped connection or a body cut short of its declared length.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, JobError> {
        let deadline = self.deadline();
        let stall_at = Instant::now() + self.stall;
        let next = tokio::time::timeout_at(deadline.min(stall_at), self.response.chunk()).await;
        match next {
            Err(_) if stall_at <= deadline => Err(error::unreachable(format!(
                "no data from origin for {} s after {} bytes",
                self.stall.as_secs(),
                self.received
            ))),
            Err(_) => Err(error::unreachable(format!(
                "origin too slow: {} bytes did not arrive within the asset's deadline",
                self.expected.unwrap_or(self.received)
            ))),
            Ok(Err(e)) => Err(match classify(&e).code {
                ErrorCode::Unreachable => error::unreachable(format!(
                    "connection lost after {} bytes{}",
                    self.received,
                    self.expected
                        .map(|e| format!(" of {e}"))
                        .unwrap_or_default()
                )),
                _ => classify(&e),
            }),
            Ok(Ok(None)) => match self.expected {
                Some(e) if self.received < e => Err(error::unreachable(format!(
                    "body cut short: {} of {e} declared bytes",
                    self.received
                ))),
                _ => Ok(None),
            },
            Ok(Ok(Some(chunk))) => {
                self.received += chunk.len() as u64;
                crate::metrics::METRICS
                    .bytes_fetched
                    .inc_by(chunk.len() as u64);
                if self.received > self.max_bytes {
                    return Err(error::too_large(format!(
                        "body exceeds the limit of {} bytes",
                        self.max_bytes
                    )));
                }
                Ok(Some(chunk))
            }
        }
    }
}

fn forbidden(f: Forbidden) -> JobError {
    error::forbidden_address(f.to_string())
}

/// Maps a non-success status to the contract's code.
fn status_error(status: u16, headers: &HeaderMap) -> Result<(), JobError> {
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

/// A 3xx that reached us was not followed: its `Location` is missing,
/// unusable, or of another scheme (which reqwest never follows).
fn unfollowed_redirect(url: &Url, status: u16, headers: &HeaderMap) -> JobError {
    let target = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|loc| url.join(loc).ok());
    match target {
        Some(t) if !matches!(t.scheme(), "http" | "https") => {
            error::invalid_url(RedirectRefused::Scheme(t.scheme().to_string()).to_string())
        }
        _ => error::unreachable(format!(
            "origin answered {status} without a usable Location"
        )),
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
fn content_range_total(v: &str) -> Option<u64> {
    v.rsplit_once('/')?.1.trim().parse().ok()
}

/// Maps a transport error to the contract's code, looking through its causes
/// for the guard's and the redirect policy's own errors.
fn classify(e: &reqwest::Error) -> JobError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<Forbidden>() {
            return forbidden(f.clone());
        }
        if let Some(r) = s.downcast_ref::<RedirectRefused>() {
            return match r {
                RedirectRefused::TooMany => error::unreachable(r.to_string()),
                RedirectRefused::Scheme(_) => error::invalid_url(r.to_string()),
            };
        }
        source = s.source();
    }
    // reqwest refuses a redirect to another scheme before asking the policy.
    if let Some(u) = e.url()
        && !matches!(u.scheme(), "http" | "https")
    {
        return error::invalid_url(RedirectRefused::Scheme(u.scheme().to_string()).to_string());
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect (DNS, refused or TLS)"
    } else if e.is_redirect() {
        "redirect failed"
    } else {
        "request failed"
    };
    error::unreachable(format!("{what}: {}", error_chain(e)))
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
    fn content_range_totals() {
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
