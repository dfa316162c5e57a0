//! Public URLs (contract v4): a rewritten URL is worth publishing only if
//! the platforms can fetch it. Two checks, both about the deployment:
//!
//! - at start ([`check_base`]): `PUBLIC_BASE_URL` is `https` with a domain
//!   host (for local runs, `http` and IP or loopback hosts when they
//!   resolve to addresses `REHOST_ALLOW_PRIVATE_NETWORKS` allows; `file://`
//!   only with the directory store), and the public URLs lie under one of
//!   `REHOST_VERIFIED_URL_PREFIXES` when it is set ([`Verified`]);
//! - the [`probe`]: a fresh object stored and fetched anonymously through
//!   the base, then deleted. A passing probe shows that the worker's
//!   network reaches the URL, not that every platform's does.

pub mod probe;

use std::net::IpAddr;

use url::Url;

use crate::fetch::Lookup;
use crate::fetch::guard::AllowList;

/// One entry of `REHOST_VERIFIED_URL_PREFIXES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// `https://host[:port]/path/`: URLs of that scheme, host and port whose
    /// path lies under the prefix's, at a segment boundary.
    Prefix(Url),
    /// `example.com`: that host and its subdomains, any path.
    Domain(String),
}

impl Verified {
    /// Parses one entry.
    ///
    /// # Errors
    /// A message naming the entry.
    pub fn parse(entry: &str) -> Result<Verified, String> {
        if entry.contains("://") {
            let url = Url::parse(entry).map_err(|e| format!("{entry:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!("{entry:?} is not an http(s) URL with a host"));
            }
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(format!(
                    "{entry:?} must be a plain prefix (no query, fragment or user)"
                ));
            }
            return Ok(Verified::Prefix(url));
        }
        let domain = entry.trim_end_matches('.').to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain.contains('.')
            && domain.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "{entry:?} is neither a URL prefix (https://host/path/) nor a domain (example.com)"
            ));
        }
        Ok(Verified::Domain(domain))
    }

    /// Whether `url` lies under this entry.
    pub fn covers(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        match self {
            Verified::Domain(d) => host == d || host.ends_with(&format!(".{d}")),
            Verified::Prefix(p) => {
                p.scheme() == url.scheme()
                    && p.host_str().is_some_and(|h| h.eq_ignore_ascii_case(host))
                    && p.port_or_known_default() == url.port_or_known_default()
                    && path_under(url.path(), p.path())
            }
        }
    }
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verified::Prefix(u) => write!(f, "{u}"),
            Verified::Domain(d) => f.write_str(d),
        }
    }
}

/// Whether `path` lies under `prefix` at a segment boundary: `/media`
/// covers `/media` and `/media/...`, never `/media2/`.
fn path_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// The start-up checks of the public URLs: `{base}/{key_prefix}` is where
/// every rewritten URL starts.
///
/// # Errors
/// One sentence naming the setting, the base and (for prefixes) the list.
pub async fn check_base(
    base: &str,
    key_prefix: &str,
    dir_store: bool,
    allow: &AllowList,
    verified: &[Verified],
    lookup: &dyn Lookup,
) -> Result<(), (&'static str, String)> {
    const BASE: &str = "PUBLIC_BASE_URL";
    let url = Url::parse(base).map_err(|e| (BASE, format!("{base:?} is not a URL: {e}")))?;
    match url.scheme() {
        "file" if dir_store => return Ok(()),
        "file" => {
            return Err((
                BASE,
                format!(
                    "{base} is a file:// URL, which only the directory store (REHOST_STORE_DIR) can use"
                ),
            ));
        }
        "http" | "https" => {}
        other => {
            return Err((
                BASE,
                format!("{base}: the scheme {other} cannot be fetched by platforms"),
            ));
        }
    }
    if needs_private_host(&url) {
        private_host(&url, allow, lookup)
            .await
            .map_err(|why| (BASE, format!("{base}: {why}")))?;
    }
    let first = format!("{}/{key_prefix}", base.trim_end_matches('/'));
    let target = Url::parse(&first).map_err(|e| (BASE, format!("{first:?}: {e}")))?;
    if !verified.is_empty() && !verified.iter().any(|v| v.covers(&target)) {
        let list: Vec<String> = verified.iter().map(ToString::to_string).collect();
        return Err((
            "REHOST_VERIFIED_URL_PREFIXES",
            format!(
                "the public URLs ({first}...) lie under none of the verified prefixes {}; the platforms (TikTok) refuse URLs outside them: fix PUBLIC_BASE_URL or the list",
                list.join(", ")
            ),
        ));
    }
    Ok(())
}

/// An `http` base, or one whose host is an IP or a loopback name: only for
/// local runs.
fn needs_private_host(url: &Url) -> bool {
    let localhost = |d: &str| {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        d == "localhost" || d.ends_with(".localhost")
    };
    url.scheme() == "http"
        || match url.host() {
            Some(url::Host::Domain(d)) => localhost(d),
            _ => true,
        }
}

/// Every address the host resolves to must be allowed by
/// `REHOST_ALLOW_PRIVATE_NETWORKS`.
async fn private_host(url: &Url, allow: &AllowList, lookup: &dyn Lookup) -> Result<(), String> {
    let addrs: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(d)) => lookup
            .lookup(d.to_string())
            .await
            .map_err(|e| format!("its host cannot be resolved ({e})"))?,
        None => return Err("it has no host".into()),
    };
    if addrs.is_empty() {
        return Err("its host resolves to no address".into());
    }
    match addrs.iter().find(|ip| !allow.contains(**ip)) {
        Some(ip) => Err(format!(
            "an http, IP or loopback base is only for local runs, and {ip} is not allowed by REHOST_ALLOW_PRIVATE_NETWORKS ({allow}): use https with a domain"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;

/// The start-up checks for the configured store (worker and
/// `check-config`), resolving names with the system resolver.
///
/// # Errors
/// The setting at fault, with one sentence naming the base (and prefixes).
pub async fn startup_check(
    config: &crate::config::Config,
) -> Result<(), crate::config::ConfigError> {
    let Some(store) = &config.store else {
        return Ok(());
    };
    check_base(
        store.public_base(),
        &config.key_prefix,
        store.is_dir(),
        &config.fetch.allow,
        &config.public.verified,
        &crate::fetch::SystemLookup,
    )
    .await
    .map_err(|(setting, message)| crate::config::ConfigError { setting, message })
}

/// One probe, reported on stderr for commands that never defer (`ingest`,
/// `check`, `demo`, `loadtest`); `None` when probing is off.
pub async fn report(
    store: &crate::store::Store,
    mode: crate::config::ProbeMode,
) -> Option<probe::Probed> {
    if mode == crate::config::ProbeMode::Off {
        return None;
    }
    let http = match probe::client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("public URL probe: cannot run ({e})");
            return None;
        }
    };
    let p = probe::probe(store, &http).await;
    match &p.result {
        Ok(()) => eprintln!("public URL probe: ok ({})", store.public_base()),
        Err(why) => eprintln!(
            "public URL probe: FAILED for {}: {why} (a worker would defer re-hosted jobs)",
            store.public_base()
        ),
    }
    for w in &p.warnings {
        eprintln!("public URL probe: warning: {w}");
    }
    Some(p)
}
