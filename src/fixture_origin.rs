//! A loopback origin serving a directory of media, with fault modes.
//!
//! Used by the README's demo, by `rehost origin` (compose and load tests) and
//! by the test suite. Files are served with `Range` support; query
//! parameters turn on faults for a request:
//!
//! | parameter | effect |
//! | --- | --- |
//! | `status=N` (`retry_after=S`) | answer status N (with `Retry-After: S`) |
//! | `fail=N` | the first N requests for this URL answer 503 |
//! | `redirect=N` | N redirects (302) to the same URL before the file |
//! | `to=URL` | one redirect to URL |
//! | `delay_ms=N` | wait before answering |
//! | `rate=B` | send at B bytes per second |
//! | `truncate=N` | declare the full length, send N bytes, drop the connection |
//! | `stall_after=N` | send N bytes, then nothing, forever |
//! | `chunked=1` | no `Content-Length` |
//! | `endless=1` | the file, then padding that never ends (no `Content-Length`) |
//! | `ignore_range=1` | answer 200 with the whole file to a ranged request |
//! | `validators=0` | send neither `ETag` nor `Last-Modified` |
//! | `etag=changes` | a new `ETag` on every request (the file "changed"; `If-Range` then fails) |
//! | `ctype=T` | `Content-Type: T` (default: from the extension, which may lie) |
//! | `gzip=1` | add `Content-Encoding: gzip` (the body is not compressed) |
//! | `header_kib=N` | add a response header of N KiB |
//!
//! [`OriginStats::stalled`] holds every new request while it is set.
//!
//! With [`OriginConfig::tls`] the origin speaks HTTPS (its URLs are
//! `https://127.0.0.1:{port}/`), offering HTTP/2 and HTTP/1.1 by ALPN or
//! HTTP/1.1 only ([`tls`]).
//!
//! `/gen/NAME.mp4?mib=N&seed=S&moov=end` serves a generated MP4 of about N
//! MiB (the `ftyp` and `moov` of `clip.mp4` around a large `mdat`) without
//! touching the disk: for large-video tests and benchmarks.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

mod body;
mod media;
pub mod tls;
use body::{SendPlan, Source, generated, parse_range, send};
pub use media::MediaSource;
pub use tls::{Alpn, Tls};

/// How the origin serves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub media: MediaSource,
    /// Append the request path after an image's end marker, so every path
    /// has distinct bytes (defeats dedup in load tests).
    pub unique: bool,
    /// Added before every answer.
    pub latency: Duration,
    /// Cap on each response's rate, bytes per second.
    pub bytes_per_sec: Option<u64>,
    /// Serve HTTPS with this certificate (and HTTP/2 where ALPN allows).
    pub tls: Option<Tls>,
}

impl OriginConfig {
    /// Serving the directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OriginConfig::of(MediaSource::Dir(root.into()))
    }

    pub fn of(media: MediaSource) -> Self {
        OriginConfig {
            media,
            unique: false,
            latency: Duration::ZERO,
            bytes_per_sec: None,
            tls: None,
        }
    }
}

/// Counters, for tests and load reports.
#[derive(Debug, Default)]
pub struct OriginStats {
    pub requests: AtomicU64,
    /// While set, every new request waits before it is answered (a stalled
    /// origin, for fault runs).
    pub stalled: std::sync::atomic::AtomicBool,
    /// Body bytes handed to connections.
    pub bytes_sent: AtomicU64,
    /// Connections open now, and the most open at once.
    pub connections: AtomicU64,
    pub connections_peak: AtomicU64,
    /// Requests being answered now (headers and body), and the most at once.
    pub in_flight: AtomicU64,
    pub in_flight_peak: AtomicU64,
    /// Requests that came over HTTP/2.
    pub http2_requests: AtomicU64,
    /// Requests per URL (path and query).
    per_url: Mutex<HashMap<String, u64>>,
    /// The headers of the last request.
    last_headers: Mutex<Vec<(String, String)>>,
}

impl OriginStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// The most connections that were open at once.
    pub fn connections_peak(&self) -> u64 {
        self.connections_peak.load(Ordering::Relaxed)
    }

    /// The most requests answered at once (over HTTP/2: streams).
    pub fn in_flight_peak(&self) -> u64 {
        self.in_flight_peak.load(Ordering::Relaxed)
    }

    /// Requests that came over HTTP/2.
    pub fn http2_requests(&self) -> u64 {
        self.http2_requests.load(Ordering::Relaxed)
    }

    /// A header of the last request, if it had it.
    pub fn last_header(&self, name: &str) -> Option<String> {
        let h = self.last_headers.lock().unwrap_or_else(|p| p.into_inner());
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// Requests per URL so far (path and query).
    pub fn per_url(&self) -> Vec<(String, u64)> {
        let m = self.per_url.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    }

    fn count(&self, url: &str) -> u64 {
        let mut m = self.per_url.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(url.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

/// A running origin; stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    scheme: &'static str,
    pub stats: Arc<OriginStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Binds `bind` (port 0 picks one) and serves until dropped.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(cfg: OriginConfig, bind: SocketAddr) -> std::io::Result<Origin> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(OriginStats::default());
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let acceptor = cfg
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
        let state = Arc::new(State {
            cfg,
            stats: stats.clone(),
            base: format!("{scheme}://{addr}"),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let stats = state.stats.clone();
                let open = stats.connections.fetch_add(1, Ordering::SeqCst) + 1;
                stats.connections_peak.fetch_max(open, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => serve_tls(a, sock, state).await,
                        None => serve(TokioIo::new(sock), state, false).await,
                    }
                    stats.connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Origin {
            addr,
            scheme,
            stats,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/{path}` (`https` when serving TLS).
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://{}/{}",
            self.scheme,
            self.addr,
            path.trim_start_matches('/')
        )
    }
}

/// One connection over TLS: HTTP/2 when ALPN chose it, else HTTP/1.1. A
/// handshake gets 10 s.
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    sock: tokio::net::TcpStream,
    state: Arc<State>,
) {
    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await;
    let Ok(Ok(tls)) = handshake else {
        return;
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    serve(TokioIo::new(tls), state, h2).await;
}

/// Serves one connection's requests.
async fn serve<IO>(io: TokioIo<IO>, state: Arc<State>, h2: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(state.handle_counted(req).await) }
    });
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(io, svc)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    }
}

struct State {
    cfg: OriginConfig,
    stats: Arc<OriginStats>,
    /// `{scheme}://{addr}`, for redirects to itself.
    base: String,
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" | "m4a" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// Counts a request in flight until its body is sent (or dropped).
struct InFlight(Arc<OriginStats>);

impl InFlight {
    fn new(stats: &Arc<OriginStats>) -> InFlight {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.in_flight_peak.fetch_max(now, Ordering::SeqCst);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl State {
    /// Answers `req`, counting it in flight until its body is done.
    async fn handle_counted(&self, req: Request<Incoming>) -> Response<Body> {
        if req.version() == http::Version::HTTP_2 {
            self.stats.http2_requests.fetch_add(1, Ordering::Relaxed);
        }
        let held = InFlight::new(&self.stats);
        let resp = self.handle(req).await;
        resp.map(|body| {
            body.map_frame(move |f| {
                let _ = &held;
                f
            })
            .boxed_unsync()
        })
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        while self.stats.stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.record_headers(&req);
        let q = query(&req);
        let full_url = req.uri().to_string();
        let seen = self.stats.count(&full_url);
        let delay_ms = q.get("delay_ms").and_then(|v| v.parse::<u64>().ok());
        let delay = self.cfg.latency + Duration::from_millis(delay_ms.unwrap_or(0));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(r) = self.fault(&req, &q, seen) {
            return r;
        }
        let path = req.uri().path().trim_start_matches('/').to_string();
        let data = if let Some(name) = path.strip_prefix("gen/") {
            match generated(&self.cfg.media, name, &q).await {
                Ok(d) => d,
                Err(e) => return text(StatusCode::NOT_FOUND, &e),
            }
        } else {
            match self.file(&path, &full_url).await {
                Some(d) => d,
                None => return text(StatusCode::NOT_FOUND, "no such file"),
            }
        };
        let ctype = q
            .get("ctype")
            .cloned()
            .unwrap_or_else(|| content_type(Path::new(&path)).to_string());
        self.serve(&req, &q, data, &ctype)
    }

    /// The request's headers, kept for tests that check what was sent.
    fn record_headers(&self, req: &Request<Incoming>) {
        *self
            .stats
            .last_headers
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
    }

    /// The fault the query asks for (`status`, `fail`, `to`, `redirect`), if any.
    fn fault(
        &self,
        req: &Request<Incoming>,
        q: &HashMap<String, String>,
        seen: u64,
    ) -> Option<Response<Body>> {
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
        if let Some(code) = num("status").and_then(|c| StatusCode::from_u16(c as u16).ok()) {
            let mut r = text(code, "fault");
            if let Some(s) = q.get("retry_after").and_then(|v| v.parse().ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, s);
            }
            return Some(r);
        }
        if num("fail").is_some_and(|n| seen <= n) {
            return Some(text(StatusCode::SERVICE_UNAVAILABLE, "try later"));
        }
        if let Some(to) = q.get("to") {
            return Some(redirect(to));
        }
        if let Some(n) = num("redirect").filter(|n| *n > 0) {
            let mut pairs: Vec<(String, String)> =
                q.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            pairs.retain(|(k, _)| k != "redirect");
            pairs.push(("redirect".into(), (n - 1).to_string()));
            let qs = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            return Some(redirect(&format!("{}{}?{qs}", self.base, req.uri().path())));
        }
        None
    }

    async fn file(&self, path: &str, full_url: &str) -> Option<Source> {
        if path
            .split('/')
            .any(|seg| seg == ".." || seg.starts_with('.'))
        {
            return None;
        }
        let bytes = self.cfg.media.read(path).await?;
        let is_image = matches!(
            content_type(Path::new(path)),
            "image/jpeg" | "image/png" | "image/webp"
        );
        if self.cfg.unique && is_image {
            let mut unique = bytes.to_vec();
            unique.extend_from_slice(format!("\nrehost-unique:{full_url}\n").as_bytes());
            return Some(Source::Bytes(Bytes::from(unique)));
        }
        Some(Source::Bytes(bytes))
    }

    fn serve(
        &self,
        req: &Request<Incoming>,
        q: &HashMap<String, String>,
        data: Source,
        ctype: &str,
    ) -> Response<Body> {
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
        let flag = |k: &str| q.get(k).is_some_and(|v| v == "1");
        let len = data.len();
        let validators = self.validators(req, q, len);
        // If-Range with a validator that is not the current one: the whole
        // file (as nginx does), never a range of other bytes.
        let if_range_holds = req
            .headers()
            .get(header::IF_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| validators.as_ref().is_some_and(|(e, m)| v == e || v == *m));
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| !flag("ignore_range") && if_range_holds)
            .and_then(|v| parse_range(v, len));
        let mut builder = Response::builder()
            .header(header::CONTENT_TYPE, ctype)
            .header(header::ACCEPT_RANGES, "bytes");
        if let Some((etag, modified)) = &validators {
            builder = builder
                .header(header::ETAG, etag.as_str())
                .header(header::LAST_MODIFIED, *modified);
        }
        if flag("gzip") {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
        }
        if let Some(kib) = num("header_kib") {
            builder = builder.header("x-padding", "a".repeat((kib * 1024) as usize));
        }
        let (status, start, end) = match range {
            Some(Err(())) => {
                return Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .body(
                        Full::new(Bytes::new())
                            .map_err(|never| match never {})
                            .boxed_unsync(),
                    )
                    .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response"));
            }
            Some(Ok((s, e))) => {
                builder = builder.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
                (StatusCode::PARTIAL_CONTENT, s, e + 1)
            }
            None => (StatusCode::OK, 0, len),
        };
        let endless = flag("endless");
        if !flag("chunked") && !endless {
            builder = builder.header(header::CONTENT_LENGTH, end - start);
        }
        let plan = SendPlan {
            start,
            end: if endless { u64::MAX } else { end },
            truncate_at: num("truncate").map(|n| start + n),
            stall_at: num("stall_after").map(|n| start + n),
            rate: num("rate").or(self.cfg.bytes_per_sec),
        };
        let body = send(data, plan, self.stats.clone());
        builder
            .status(status)
            .body(body)
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response"))
    }
}

impl State {
    /// `ETag` and `Last-Modified` of what `req` names: the same for the
    /// same path, size and generator parameters, unless the query says
    /// otherwise.
    fn validators(
        &self,
        req: &Request<Incoming>,
        q: &HashMap<String, String>,
        len: u64,
    ) -> Option<(String, &'static str)> {
        if q.get("validators").is_some_and(|v| v == "0") {
            return None;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(req.uri().path().as_bytes());
        for k in ["mib", "seed", "moov"] {
            h.update(q.get(k).map_or("", String::as_str).as_bytes());
        }
        let mut etag = format!("\"{:08x}-{len}", h.finalize());
        if q.get("etag").is_some_and(|v| v == "changes") {
            etag.push_str(&format!("-{}", self.stats.requests()));
        }
        etag.push('"');
        Some((etag, "Wed, 01 Jan 2025 00:00:00 GMT"))
    }
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = text(StatusCode::FOUND, "moved");
    if let Ok(v) = to.parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
