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

mod body;
mod connector;
mod errors;
pub mod guard;
mod hosts;
pub mod resolver;

pub use body::Body;
use errors::{
    RedirectRefused, classify, content_range_span, content_range_total, forbidden, next_hop,
    status_error,
};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpInfo;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use url::Url;

use crate::error::{self, JobError};
use connector::{Connector, host_key};
use guard::{AllowList, Guard, literal_ip};
use hosts::{HostLimiter, HostPermit};
use resolver::GuardedResolver;
pub use resolver::{Lookup, SystemLookup};

/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 5;

/// How the fetcher behaves. The defaults are the contract's; the settings
/// fill in the rest (see [`crate::config::Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            base_timeout: Duration::from_secs(60),
            min_rate_bytes_per_sec: 4096 * 1024,
            per_host_connections: 32,
            allow: AllowList::default(),
        }
    }
}

/// A byte range of the body to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    /// Inclusive; `None` for "to the end".
    pub end: Option<u64>,
}

/// One asset's clock, shared by its requests: it starts when the first
/// request has its place and moves on by every later wait for a place, so
/// the asset is never charged for waiting; `size` (when set) is the whole
/// asset's size, which every request's deadline then allows for. Several
/// requests on one clock share one deadline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    started: Option<Instant>,
    /// The whole asset's size, when known.
    pub size: Option<u64>,
}

/// What a request asks besides its URL.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub range: Option<Range>,
    /// `If-Range`: the entity's `ETag` or `Last-Modified`, so a changed
    /// file answers 200 instead of a range of the wrong bytes.
    pub if_range: Option<String>,
}

/// The fetcher. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<Connector, Empty<Bytes>>,
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
    /// The bytes a 206 carries (inclusive), from `Content-Range`.
    pub span: Option<(u64, u64)>,
    /// The entity's validators, as sent.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub body: Body,
}

impl Fetcher {
    /// `lookup` resolves host names: [`SystemLookup`] in production.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS roots unavailable).
    pub fn new(cfg: FetchConfig, lookup: Arc<dyn Lookup>) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(cfg.allow.clone()));
        let hosts = HostLimiter::new(cfg.per_host_connections);
        let resolver = GuardedResolver {
            guard: guard.clone(),
            lookup,
        };
        // A request's wait for a socket place ends with its wait for an
        // answer (below); a background connect's, after the base deadline.
        let connector = Connector::new(
            resolver,
            hosts.clone(),
            cfg.connect_timeout,
            cfg.base_timeout,
        )?;
        // No redirects, proxies or decompression here: redirects are
        // followed in `open`, hop by hop, so each hop's host is judged and
        // counted against its own budget.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(cfg.per_host_connections)
            .build(connector);
        Ok(Fetcher {
            client,
            guard,
            hosts,
            cfg,
        })
    }

    /// Sends a GET for `url` (optionally a byte range), following up to
    /// [`MAX_REDIRECTS`] redirects, and checks the answer: the address guard
    /// on every hop, the status, and the declared size against `max_bytes`.
    /// The body is read from [`Opened::body`]; it holds a connection place
    /// for the host that answered until it is dropped.
    ///
    /// # Errors
    /// A [`JobError`] with the contract's code (no asset index yet).
    pub async fn open(
        &self,
        url: &Url,
        range: Option<Range>,
        max_bytes: u64,
    ) -> Result<Opened, JobError> {
        let ask = Ask {
            range,
            if_range: None,
        };
        self.open_on(url, &ask, max_bytes, &mut Clock::default())
            .await
    }

    /// As [`Fetcher::open`], for one of an asset's several requests: they
    /// share `clock`, and so one deadline.
    ///
    /// # Errors
    /// A [`JobError`] with the contract's code (no asset index yet).
    pub async fn open_on(
        &self,
        url: &Url,
        ask: &Ask,
        max_bytes: u64,
        clock: &mut Clock,
    ) -> Result<Opened, JobError> {
        // The asset's deadlines count from its first request, not from
        // the waits for connection places before it or before a redirect's
        // next hop (regression test: `tests/it/hosts.rs`,
        // `a_redirects_wait_for_a_place_is_not_charged_to_the_asset`).
        let mut url = without_trailing_dot(url);
        for _ in 0..=MAX_REDIRECTS {
            let (response, permit, since) = self.hop(&url, ask, clock).await?;
            let status = response.status().as_u16();
            if !(300..400).contains(&status) {
                return self.answer(response, permit, since, max_bytes, clock.size);
            }
            url = without_trailing_dot(&next_hop(&url, status, response.headers())?);
            reuse(response, since + self.cfg.base_timeout).await;
        }
        Err(error::unreachable(RedirectRefused::TooMany.to_string()))
    }

    /// One request to `url`, holding a place for its host; the response has
    /// arrived within the base deadline, counted from the first hop's start
    /// (set in `started` once its place is had, and moved on by every later
    /// hop's wait for a place).
    async fn hop(
        &self,
        url: &Url,
        ask: &Ask,
        clock: &mut Clock,
    ) -> Result<(http::Response<Incoming>, HostPermit, Instant), JobError> {
        if let Some(ip) = url.host().as_ref().and_then(literal_ip) {
            self.guard.check(ip).map_err(forbidden)?;
        }
        let req = request(url, ask)?;
        let asked = Instant::now();
        let permit = self
            .hosts
            .acquire(&host_key(req.uri()))
            .await
            .ok_or_else(|| error::internal("the per-host budget is closed"))?;
        let started = match &mut clock.started {
            Some(s) => {
                *s += asked.elapsed();
                *s
            }
            None => *clock.started.insert(Instant::now()),
        };
        // The answer must start within the stall timeout (after connecting),
        // and within the asset's deadline (base, plus the whole asset's size
        // at the minimum rate when several requests share the clock).
        let allowance = Duration::from_secs_f64(
            clock.size.unwrap_or(0) as f64 / self.cfg.min_rate_bytes_per_sec.max(1) as f64,
        );
        let answer_by = (started + self.cfg.base_timeout + allowance)
            .min(Instant::now() + self.cfg.connect_timeout + self.cfg.stall_timeout);
        let response = match tokio::time::timeout_at(answer_by, self.client.request(req)).await {
            Err(_) => {
                return Err(error::unreachable(
                    "origin did not answer before the deadline",
                ));
            }
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(r)) => r,
        };
        if let Some(info) = response.extensions().get::<HttpInfo>() {
            self.guard
                .check(info.remote_addr().ip())
                .map_err(forbidden)?;
        }
        Ok((response, permit, started))
    }

    /// The final answer: its status and declared sizes checked.
    fn answer(
        &self,
        response: http::Response<Incoming>,
        permit: HostPermit,
        started: Instant,
        max_bytes: u64,
        asset_size: Option<u64>,
    ) -> Result<Opened, JobError> {
        let status = response.status().as_u16();
        status_error(status, response.headers())?;
        let content_length = hyper::body::Body::size_hint(response.body()).exact();
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
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header(header::ETAG), header(header::LAST_MODIFIED));
        let span = header(header::CONTENT_RANGE)
            .filter(|_| partial)
            .and_then(|v| content_range_span(&v));
        Ok(Opened {
            status,
            content_length,
            total_size,
            partial,
            span,
            etag,
            last_modified,
            body: Body {
                body: response.into_body(),
                started,
                base: self.cfg.base_timeout,
                rate: self.cfg.min_rate_bytes_per_sec.max(1),
                stall: self.cfg.stall_timeout,
                expected: content_length,
                asset_size,
                received: 0,
                max_bytes,
                _permit: permit,
            },
        })
    }
}

/// `url` with a trailing dot removed from its host name (`cdn.example.` is
/// `cdn.example`), so the budget and the connection pool, which key by the
/// URL's host, see one host (regression test:
/// `fetch::tests::a_trailing_dot_names_the_same_host`).
fn without_trailing_dot(url: &Url) -> Url {
    let mut url = url.clone();
    if let Some(url::Host::Domain(d)) = url.host()
        && let Some(bare) = d.strip_suffix('.').filter(|b| !b.is_empty())
    {
        let bare = bare.to_string();
        // A domain minus its final dot is still a valid host.
        let _ = url.set_host(Some(&bare));
    }
    url
}

/// The GET for `url`, with the fetcher's headers.
fn request(url: &Url, ask: &Ask) -> Result<http::Request<Empty<Bytes>>, JobError> {
    let mut req = http::Request::get(url.as_str())
        .header(
            header::USER_AGENT,
            concat!("rehost/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT, "*/*")
        .header(header::ACCEPT_ENCODING, "identity");
    if let Some(r) = ask.range {
        let value = match r.end {
            Some(end) => format!("bytes={}-{end}", r.start),
            None => format!("bytes={}-", r.start),
        };
        req = req.header(header::RANGE, value);
    }
    if let Some(v) = &ask.if_range {
        req = req.header(header::IF_RANGE, v.as_str());
    }
    req.body(Empty::new())
        .map_err(|e| error::invalid_url(format!("not a URL a request can be made for: {e}")))
}

/// Reads a redirect's (small) body so its connection can carry the next
/// hop instead of closing; a large or slow one is just dropped.
async fn reuse(response: http::Response<Incoming>, deadline: Instant) {
    let mut body = response.into_body();
    let mut left: usize = 64 * 1024;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            let len = frame.data_ref().map_or(0, Bytes::len);
            left = left.saturating_sub(len);
            if left == 0 {
                return;
            }
        }
    };
    let deadline = deadline.min(Instant::now() + Duration::from_secs(2));
    let _ = tokio::time::timeout_at(deadline, read).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        let url = without_trailing_dot(&Url::parse(url).expect("url"));
        let req = request(&url, &Ask::default()).expect("request");
        host_key(req.uri())
    }

    /// Regression: `host.` and `host` had two budgets (and two pools).
    #[test]
    fn a_trailing_dot_names_the_same_host() {
        assert_eq!(key("https://cdn.example./a.jpg"), "https://cdn.example:443");
        assert_eq!(key("https://CDN.example/a.jpg"), "https://cdn.example:443");
        assert_eq!(key("http://cdn.example.:8080/a"), "http://cdn.example:8080");
        assert_eq!(key("http://127.0.0.1/a"), "http://127.0.0.1:80");
        assert_eq!(key("http://[::1]:81/a"), "http://[::1]:81");
    }
}
