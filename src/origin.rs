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
//! | `ctype=T` | `Content-Type: T` (default: from the extension, which may lie) |
//! | `gzip=1` | add `Content-Encoding: gzip` (the body is not compressed) |
//! | `header_kib=N` | add a response header of N KiB |
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
use futures_util::StreamExt;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// How the origin serves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub root: PathBuf,
    /// Append the request path after an image's end marker, so every path
    /// has distinct bytes (defeats dedup in load tests).
    pub unique: bool,
    /// Added before every answer.
    pub latency: Duration,
    /// Cap on each response's rate, bytes per second.
    pub bytes_per_sec: Option<u64>,
}

impl OriginConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OriginConfig {
            root: root.into(),
            unique: false,
            latency: Duration::ZERO,
            bytes_per_sec: None,
        }
    }
}

/// Counters, for tests and load reports.
#[derive(Debug, Default)]
pub struct OriginStats {
    pub requests: AtomicU64,
    /// Body bytes handed to connections.
    pub bytes_sent: AtomicU64,
    /// Connections open now, and the most open at once.
    pub connections: AtomicU64,
    pub connections_peak: AtomicU64,
    /// Requests per URL (path and query).
    per_url: Mutex<HashMap<String, u64>>,
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
        let state = Arc::new(State {
            cfg,
            stats: stats.clone(),
            addr,
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
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                    stats.connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Origin { addr, stats, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

struct State {
    cfg: OriginConfig,
    stats: Arc<OriginStats>,
    addr: SocketAddr,
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

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let q = query(&req);
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
        let full_url = req.uri().to_string();
        let seen = self.stats.count(&full_url);
        let delay = self.cfg.latency + Duration::from_millis(num("delay_ms").unwrap_or(0));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(code) = num("status").and_then(|c| StatusCode::from_u16(c as u16).ok()) {
            let mut r = text(code, "fault");
            if let Some(s) = q.get("retry_after").and_then(|v| v.parse().ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, s);
            }
            return r;
        }
        if num("fail").is_some_and(|n| seen <= n) {
            return text(StatusCode::SERVICE_UNAVAILABLE, "try later");
        }
        if let Some(to) = q.get("to") {
            return redirect(to);
        }
        if let Some(n) = num("redirect").filter(|n| *n > 0) {
            let mut pairs: Vec<(String, String)> =
                q.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            pairs.retain(|(k, _)| k != "redirect");
            pairs.push(("redirect".into(), (n - 1).to_string()));
            let qs = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            return redirect(&format!("http://{}{}?{qs}", self.addr, req.uri().path()));
        }
        let path = req.uri().path().trim_start_matches('/').to_string();
        let data = if let Some(name) = path.strip_prefix("gen/") {
            match generated(&self.cfg.root, name, &q) {
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

    async fn file(&self, path: &str, full_url: &str) -> Option<Source> {
        if path
            .split('/')
            .any(|seg| seg == ".." || seg.starts_with('.'))
        {
            return None;
        }
        let file = self.cfg.root.join(path);
        let mut bytes = tokio::fs::read(&file).await.ok()?;
        let is_image = matches!(
            content_type(&file),
            "image/jpeg" | "image/png" | "image/webp"
        );
        if self.cfg.unique && is_image {
            bytes.extend_from_slice(format!("\nrehost-unique:{full_url}\n").as_bytes());
        }
        Some(Source::Bytes(Bytes::from(bytes)))
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
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| !flag("ignore_range"))
            .and_then(|v| parse_range(v, len));
        let mut builder = Response::builder()
            .header(header::CONTENT_TYPE, ctype)
            .header(header::ACCEPT_RANGES, "bytes");
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

fn redirect(to: &str) -> Response<Body> {
    let mut r = text(StatusCode::FOUND, "moved");
    if let Ok(v) = to.parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against a length; `Err` when not
/// satisfiable, `None` when not understood (served whole).
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.saturating_sub(1)),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(len.saturating_sub(1)),
        ),
    };
    if start >= len || start > end {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

/// What a response sends.
#[derive(Debug, Clone)]
enum Source {
    Bytes(Bytes),
    /// Head bytes, then `len - head.len()` bytes of a repeating block.
    Generated {
        head: Bytes,
        block: Bytes,
        len: u64,
    },
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::Generated { len, .. } => *len,
        }
    }

    /// Up to `max` bytes at `offset`.
    fn slice(&self, offset: u64, max: usize) -> Bytes {
        match self {
            Source::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                b.slice(start..(start + max).min(b.len()))
            }
            Source::Generated { head, block, len } => {
                if offset < head.len() as u64 {
                    let s = offset as usize;
                    return head.slice(s..(s + max).min(head.len()));
                }
                let left = len.saturating_sub(offset);
                let in_block = ((offset - head.len() as u64) % block.len() as u64) as usize;
                let n = max
                    .min(block.len() - in_block)
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                block.slice(in_block..in_block + n)
            }
        }
    }
}

struct SendPlan {
    start: u64,
    end: u64,
    truncate_at: Option<u64>,
    stall_at: Option<u64>,
    rate: Option<u64>,
}

const FRAME: usize = 64 * 1024;

fn send(data: Source, plan: SendPlan, stats: Arc<OriginStats>) -> Body {
    let endless = plan.end == u64::MAX;
    let started = tokio::time::Instant::now();
    let stream = futures_util::stream::unfold((plan.start, data), move |(pos, data)| {
        let stats = stats.clone();
        let plan_end = plan.end;
        let (truncate_at, stall_at, rate, first) =
            (plan.truncate_at, plan.stall_at, plan.rate, plan.start);
        async move {
            if truncate_at.is_some_and(|t| pos >= t) {
                let err = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "truncated on purpose",
                );
                return Some((Err(err), (plan_end, data)));
            }
            if stall_at.is_some_and(|s| pos >= s) {
                std::future::pending::<()>().await;
            }
            if pos >= plan_end {
                return None;
            }
            let mut max = FRAME.min(usize::try_from(plan_end - pos).unwrap_or(FRAME));
            for limit in [truncate_at, stall_at].into_iter().flatten() {
                if limit > pos {
                    max = max.min(usize::try_from(limit - pos).unwrap_or(FRAME));
                }
            }
            if let Some(rate) = rate {
                max = max
                    .min(usize::try_from(rate.max(1)).unwrap_or(FRAME))
                    .max(1);
                let due = Duration::from_secs_f64((pos - first) as f64 / rate.max(1) as f64);
                tokio::time::sleep_until(started + due).await;
            }
            // An endless body is the file, then padding forever.
            let chunk = match data.slice(pos, max) {
                c if c.is_empty() && endless => Bytes::from(vec![0x55u8; max]),
                c => c,
            };
            if chunk.is_empty() {
                return None;
            }
            stats
                .bytes_sent
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let next = pos + chunk.len() as u64;
            Some((Ok(Frame::data(chunk)), (next, data)))
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(stream.boxed()))
}

/// `/gen/NAME.mp4?mib=N&seed=S&moov=end|front`: `clip.mp4`'s `ftyp` and
/// `moov` around an `mdat` of N MiB of a seeded pattern.
fn generated(root: &Path, name: &str, q: &HashMap<String, String>) -> Result<Source, String> {
    if !name.ends_with(".mp4") {
        return Err("only .mp4 can be generated".into());
    }
    let mib: u64 = q.get("mib").and_then(|v| v.parse().ok()).unwrap_or(1);
    let seed: u64 = q.get("seed").and_then(|v| v.parse().ok()).unwrap_or(1);
    let clip = std::fs::read(root.join("clip.mp4")).map_err(|e| format!("clip.mp4: {e}"))?;
    let (mut ftyp, mut moov) = (Vec::new(), Vec::new());
    let mut pos = 0usize;
    while pos + 8 <= clip.len() {
        let size =
            u32::from_be_bytes([clip[pos], clip[pos + 1], clip[pos + 2], clip[pos + 3]]) as usize;
        if size < 8 || pos + size > clip.len() {
            break;
        }
        match &clip[pos + 4..pos + 8] {
            b"ftyp" => ftyp = clip[pos..pos + size].to_vec(),
            b"moov" => moov = clip[pos..pos + size].to_vec(),
            _ => {}
        }
        pos += size;
    }
    let payload = mib * 1024 * 1024;
    let mut mdat_header = Vec::with_capacity(16);
    mdat_header.extend_from_slice(&1u32.to_be_bytes());
    mdat_header.extend_from_slice(b"mdat");
    mdat_header.extend_from_slice(&(payload + 16).to_be_bytes());
    // The pattern: xorshift bytes from the seed, in a 1 MiB block.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let block: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let moov_end = q.get("moov").is_some_and(|v| v == "end");
    let mut head = ftyp;
    if !moov_end {
        head.extend_from_slice(&moov);
    }
    head.extend_from_slice(&mdat_header);
    if moov_end {
        // The moov goes after the pattern: serve it from a block that ends in it.
        let total = head.len() as u64 + payload + moov.len() as u64;
        let mut bytes = head;
        let full_blocks = payload / block.len() as u64;
        let rest = (payload % block.len() as u64) as usize;
        if full_blocks > 64 {
            return Err("moov=end supports at most 64 MiB".into());
        }
        for _ in 0..full_blocks {
            bytes.extend_from_slice(&block);
        }
        bytes.extend_from_slice(&block[..rest]);
        bytes.extend_from_slice(&moov);
        debug_assert_eq!(bytes.len() as u64, total);
        return Ok(Source::Bytes(Bytes::from(bytes)));
    }
    let len = head.len() as u64 + payload;
    Ok(Source::Generated {
        head: Bytes::from(head),
        block: Bytes::from(block),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=0-65535", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=0-0", 0), Some(Err(())));
        assert_eq!(parse_range("bytes=200-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,4-5", 100), None);
    }
}
