//! The public-URL probe: a small PNG stored under a fresh key below
//! `.rehost/probe/` (`Cache-Control: no-store`), fetched anonymously
//! through `PUBLIC_BASE_URL` (no credentials, no cookies, no redirect
//! followed) and checked (200, `Content-Type`, `Content-Length`, the
//! bytes), then deleted. Two more things are checked as warnings: a
//! `Range: bytes=0-0` GET answered 206, and a `robots.txt` that lets
//! `facebookexternalhit` (Instagram's and Threads' fetcher) read the path.
//! A `file://` base (the directory store) is read from the file system.

use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::store::Store;

/// A 1x1 PNG: what every probe stores (under a fresh key).
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// Longest one probe's requests may take together.
pub const PROBE_LIMIT: Duration = Duration::from_secs(30);

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The URL fetched (of an object deleted since).
    pub url: String,
    /// `Err`: why the platforms could not fetch rewritten URLs.
    pub result: Result<(), String>,
    /// What may still trouble some platform.
    pub warnings: Vec<String>,
}

/// The probe's HTTP client: anonymous, no proxy, no redirects, bounded.
///
/// # Errors
/// When the TLS setup fails.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!(
            "rehost/",
            env!("CARGO_PKG_VERSION"),
            " (public URL probe)"
        ))
        .build()
        .map_err(|e| e.to_string())
}

/// Runs one probe of `store`'s public URLs (bounded by [`PROBE_LIMIT`]).
pub async fn probe(store: &Store, http: &reqwest::Client) -> Probed {
    let base = store.public_base().trim_end_matches('/').to_string();
    let key = match store.put_probe(Bytes::from_static(PNG)).await {
        Ok(k) => k,
        Err(e) => {
            return Probed {
                url: format!("{base}/.rehost/probe/"),
                result: Err(format!("cannot store the probe object: {e}")),
                warnings: Vec::new(),
            };
        }
    };
    let url = format!("{base}/{key}");
    let checked = tokio::time::timeout(PROBE_LIMIT, check(http, &url)).await;
    let (result, warnings) = checked.unwrap_or_else(|_| {
        (
            Err(format!("no answer within {} s", PROBE_LIMIT.as_secs())),
            Vec::new(),
        )
    });
    if let Err(e) = store.delete_probe(&key).await {
        tracing::warn!(%key, error = %e, "could not delete the probe object; the sweep will");
    }
    Probed {
        url,
        result,
        warnings,
    }
}

async fn check(http: &reqwest::Client, url: &str) -> (Result<(), String>, Vec<String>) {
    if url.starts_with("file://") {
        return (read_file(url).await, Vec::new());
    }
    let result = fetch(http, url).await;
    let warnings = match &result {
        Ok(()) => warnings(http, url).await,
        Err(_) => Vec::new(),
    };
    (result, warnings)
}

async fn read_file(url: &str) -> Result<(), String> {
    let path = Url::parse(url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
        .ok_or_else(|| format!("{url} is not a file path"))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    same_bytes(&bytes)
}

fn same_bytes(got: &[u8]) -> Result<(), String> {
    if got == PNG {
        Ok(())
    } else {
        Err(format!(
            "it serves other bytes than were stored ({} bytes instead of {}): PUBLIC_BASE_URL points somewhere else",
            got.len(),
            PNG.len()
        ))
    }
}

/// The GET a platform makes: 200 with the object's type, length and bytes.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<(), String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot be fetched: {}", crate::error::error_chain(&e)))?;
    let status = resp.status().as_u16();
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if status != 200 {
        return Err(status_reason(status, header(reqwest::header::LOCATION)));
    }
    let ctype = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let essence = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "image/png" {
        return Err(format!(
            "it answers with Content-Type {ctype:?}, not image/png: platforms judge media by it"
        ));
    }
    let declared = header(reqwest::header::CONTENT_LENGTH);
    if declared.as_deref() != Some(&PNG.len().to_string()) {
        return Err(format!(
            "it declares Content-Length {declared:?}, not {}: platforms need the size up front",
            PNG.len()
        ));
    }
    let body = capped(resp, PNG.len() + 1)
        .await
        .map_err(|e| format!("its body could not be read: {e}"))?;
    same_bytes(&body)
}

/// A response body, at most `limit` bytes of it (a hostile or wrong
/// server cannot make the probe hold more).
async fn capped(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn status_reason(status: u16, location: Option<String>) -> String {
    match status {
        300..=399 => format!(
            "it answers {status} (redirect to {}): platforms do not follow redirects",
            location.unwrap_or_else(|| "nowhere".into())
        ),
        401 | 403 => format!(
            "it answers {status}: the bucket or its public domain does not allow anonymous reads"
        ),
        404 => "it answers 404: PUBLIC_BASE_URL does not serve the bucket's objects".to_string(),
        s => format!("it answers {s}"),
    }
}

/// The checks that only warn.
async fn warnings(http: &reqwest::Client, url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ranged = http.get(url).header("Range", "bytes=0-0").send().await;
    match ranged {
        Ok(r) if r.status().as_u16() == 206 => {}
        Ok(r) => out.push(format!(
            "a Range request got {} instead of 206: platforms that fetch video in ranges may fail",
            r.status().as_u16()
        )),
        Err(e) => out.push(format!("a Range request failed: {e}")),
    }
    if let Some(w) = robots(http, url).await {
        out.push(w);
    }
    out
}

/// A warning when the origin's `robots.txt` keeps `facebookexternalhit`
/// from the probe's path.
async fn robots(http: &reqwest::Client, url: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    let robots = u.join("/robots.txt").ok()?;
    let resp = http.get(robots.as_str()).send().await.ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&capped(resp, 512 * 1024).await.ok()?).into_owned();
    (!allowed(&text, "facebookexternalhit", u.path())).then(|| {
        format!(
            "{robots} disallows facebookexternalhit for {}: Instagram and Threads may refuse the URLs",
            u.path()
        )
    })
}

/// A `robots.txt` group: its user agents, and its rules (`true`: Allow).
type Group = (Vec<String>, Vec<(bool, String)>);

/// Whether `robots` lets `agent` fetch `path`: the group naming the agent
/// (else `*`), its longest matching `Allow`/`Disallow` prefix (Allow wins
/// a tie), as Google and Meta read the file.
pub fn allowed(robots: &str, agent: &str, path: &str) -> bool {
    let mut groups: Vec<Group> = Vec::new();
    let mut in_rules = false;
    for line in robots.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim().to_string());
        match key.as_str() {
            "user-agent" => {
                if in_rules || groups.is_empty() {
                    groups.push((Vec::new(), Vec::new()));
                    in_rules = false;
                }
                if let Some(g) = groups.last_mut() {
                    g.0.push(value.to_ascii_lowercase());
                }
            }
            "allow" | "disallow" => {
                in_rules = true;
                if let Some(g) = groups.last_mut() {
                    g.1.push((key == "allow", value));
                }
            }
            _ => {}
        }
    }
    let agent = agent.to_ascii_lowercase();
    let group = groups
        .iter()
        .find(|g| g.0.contains(&agent))
        .or_else(|| groups.iter().find(|g| g.0.iter().any(|a| a == "*")));
    let Some((_, rules)) = group else {
        return true;
    };
    let best = rules
        .iter()
        .filter(|(_, p)| !p.is_empty() && path.starts_with(p.as_str()))
        .max_by_key(|(allow, p)| (p.len(), *allow));
    best.is_none_or(|(allow, _)| *allow)
}
