//! Settings: every one is an environment variable and a command-line flag of
//! the same meaning (the flag wins). [`SETTINGS`] is the single table of them;
//! the CLI flags, `check-config` and the README's table all come from it.
//!
//! A missing or invalid setting is a [`ConfigError`] naming the setting; the
//! binary prints it as one line and exits with status 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::fetch::guard::AllowList;

/// One setting: its variable, its flag, its default as documented, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub env: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    pub secret: bool,
}

const fn s(
    env: &'static str,
    flag: &'static str,
    default: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        env,
        flag,
        default,
        help,
        secret: false,
    }
}

const fn secret(
    env: &'static str,
    flag: &'static str,
    default: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        env,
        flag,
        default,
        help,
        secret: true,
    }
}

/// Every setting, in the contract's order.
pub const SETTINGS: &[Setting] = &[
    secret(
        "AMQP_URL",
        "amqp-url",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "broker URL (its password is never printed)",
    ),
    s(
        "REHOST_QUEUE",
        "queue",
        "media.ingest",
        "job queue; also names {Q}.retry.{delay} and {Q}.dead",
    ),
    s(
        "REHOST_EXCHANGE",
        "exchange",
        "media",
        "job exchange (topic)",
    ),
    s(
        "REHOST_ROUTING_KEY",
        "routing-key",
        "media.ingest",
        "binding of the job queue to the job exchange",
    ),
    s(
        "REHOST_RESULTS_EXCHANGE",
        "results-exchange",
        "media.events",
        "results exchange (topic)",
    ),
    s(
        "REHOST_RESULTS_QUEUE",
        "results-queue",
        "media.results",
        "durable queue bound to all results; empty to turn off",
    ),
    s(
        "REHOST_DECLARE",
        "declare",
        "true",
        "declare the topology at start (false: check that it exists)",
    ),
    s(
        "REHOST_CONCURRENCY",
        "concurrency",
        "8",
        "jobs in flight (prefetch)",
    ),
    s("REHOST_MAX_ATTEMPTS", "max-attempts", "5", "tries per job"),
    s(
        "REHOST_RETRY_DELAYS",
        "retry-delays",
        "5s,30s,2m,10m",
        "delay before each retry (ms, s, m, h); the last repeats",
    ),
    s(
        "REHOST_JOB_TIMEOUT_SECS",
        "job-timeout-secs",
        "1200",
        "deadline of one try of one job",
    ),
    s(
        "REHOST_SHUTDOWN_GRACE_SECS",
        "shutdown-grace-secs",
        "30",
        "how long in-flight jobs may finish after SIGTERM",
    ),
    s(
        "S3_ENDPOINT",
        "s3-endpoint",
        "",
        "S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com (empty: AWS)",
    ),
    s("S3_REGION", "s3-region", "auto", "S3 region (R2: auto)"),
    s("S3_BUCKET", "s3-bucket", "", "selects the S3 store"),
    secret(
        "S3_ACCESS_KEY_ID",
        "s3-access-key-id",
        "",
        "falls back to AWS_ACCESS_KEY_ID; never printed",
    ),
    secret(
        "S3_SECRET_ACCESS_KEY",
        "s3-secret-access-key",
        "",
        "falls back to AWS_SECRET_ACCESS_KEY; never printed",
    ),
    s(
        "S3_FORCE_PATH_STYLE",
        "s3-force-path-style",
        "true when S3_ENDPOINT is set",
        "path-style bucket addressing (MinIO needs it)",
    ),
    s(
        "REHOST_STORE_DIR",
        "store-dir",
        "",
        "selects the local-directory store (wins over S3_BUCKET)",
    ),
    s(
        "PUBLIC_BASE_URL",
        "public-base-url",
        "file://{REHOST_STORE_DIR} (required with S3)",
        "base of rewritten URLs",
    ),
    s(
        "REHOST_KEY_PREFIX",
        "key-prefix",
        "",
        "prefix of every object key, e.g. media/",
    ),
    s(
        "REHOST_SPOOL_DIR",
        "spool-dir",
        "the system temp dir",
        "where assets may be spooled (the current design streams and does not spool)",
    ),
    s(
        "REHOST_MAX_IMAGE_BYTES",
        "max-image-bytes",
        "20971520",
        "largest image (slideshow asset) in bytes",
    ),
    s(
        "REHOST_MAX_VIDEO_BYTES",
        "max-video-bytes",
        "4294967296",
        "largest video in bytes",
    ),
    s(
        "REHOST_MAX_IMAGE_PIXELS",
        "max-image-pixels",
        "100000000",
        "largest width x height of an image",
    ),
    s(
        "REHOST_FETCH_TIMEOUT_SECS",
        "fetch-timeout-secs",
        "60",
        "base of the whole-asset deadline",
    ),
    s(
        "REHOST_MIN_RATE_KBPS",
        "min-rate-kbps",
        "4096",
        "slowest transfer an asset's deadline allows for its size (KiB/s)",
    ),
    s(
        "REHOST_PER_HOST_CONNECTIONS",
        "per-host-connections",
        "8",
        "most connections to one origin host at once",
    ),
    s(
        "REHOST_ALLOW_PRIVATE_NETWORKS",
        "allow-private-networks",
        "false",
        "true (loopback, private, CGNAT, unique-local) or a comma list of CIDRs origins may resolve to",
    ),
    s(
        "REHOST_HTTP_ADDR",
        "http-addr",
        "0.0.0.0:9090",
        "/healthz, /readyz, /metrics; port 0 picks a free port",
    ),
    s("RUST_LOG", "log", "info", "log filter"),
    s("REHOST_LOG_FORMAT", "log-format", "json", "json or pretty"),
];

/// A setting that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = SETTINGS
            .iter()
            .find(|s| s.env == self.setting)
            .map(|s| format!(" (--{})", s.flag))
            .unwrap_or_default();
        write!(
            f,
            "invalid setting {}{flag}: {}",
            self.setting, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Raw values by variable name: flags first, then the environment.
#[derive(Debug, Clone, Default)]
pub struct Raw(BTreeMap<&'static str, String>);

impl Raw {
    /// Reads every setting from the process environment, then applies
    /// `flags` (variable name → value given on the command line).
    pub fn from_env(flags: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        let mut raw = Raw::default();
        for s in SETTINGS {
            if let Ok(v) = std::env::var(s.env) {
                raw.0.insert(s.env, v);
            }
        }
        for fallback in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            if let Ok(v) = std::env::var(fallback) {
                raw.0.insert(fallback, v);
            }
        }
        for (k, v) in flags {
            raw.0.insert(k, v);
        }
        raw
    }

    /// A set of values, for tests and embedding.
    pub fn from_pairs(pairs: &[(&'static str, &str)]) -> Self {
        Raw(pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect())
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.0.insert(key, value.into());
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value, or `None` when absent or empty.
    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Where assets are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Dir { root: PathBuf, public_base: String },
    S3(S3Config),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub force_path_style: bool,
    pub public_base: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .field("public_base", &self.public_base)
            .finish()
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Dir { root, public_base } => f
                .debug_struct("Dir")
                .field("root", root)
                .field("public_base", public_base)
                .finish(),
            StoreConfig::S3(s3) => s3.fmt(f),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Byte and pixel limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_image_bytes: u64,
    pub max_video_bytes: u64,
    pub max_image_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_image_bytes: 20 * 1024 * 1024,
            max_video_bytes: 4 * 1024 * 1024 * 1024,
            max_image_pixels: 100_000_000,
        }
    }
}

/// Names on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub amqp_url: String,
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    pub results_exchange: String,
    pub results_queue: Option<String>,
    pub declare: bool,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub broker: BrokerConfig,
    pub concurrency: u16,
    pub max_attempts: u32,
    /// `(label, delay)`: the label names the retry queue, e.g. `5s`.
    pub retry_delays: Vec<(String, Duration)>,
    pub job_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `None` when neither `REHOST_STORE_DIR` nor `S3_BUCKET` is set.
    pub store: Option<StoreConfig>,
    pub key_prefix: String,
    pub spool_dir: PathBuf,
    pub limits: Limits,
    pub fetch_timeout: Duration,
    pub min_rate_kbps: u64,
    pub per_host_connections: usize,
    pub allow: AllowList,
    pub http_addr: SocketAddr,
    pub log_filter: String,
    pub log_format: LogFormat,
}

fn err(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        message: message.into(),
    }
}

fn default_of(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.env == key)
        .map_or("", |s| s.default)
}

impl Config {
    /// Builds and validates the configuration.
    ///
    /// # Errors
    /// The first setting that is missing or invalid.
    pub fn load(raw: &Raw) -> Result<Config, ConfigError> {
        let text = |key: &'static str| raw.get(key).unwrap_or(default_of(key)).trim().to_string();
        let parse_u64 = |key: &'static str, min: u64, max: u64| -> Result<u64, ConfigError> {
            let v = text(key);
            v.parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    err(
                        key,
                        format!("expected a whole number from {min} to {max}, got {v:?}"),
                    )
                })
        };
        let name = |key: &'static str| -> Result<String, ConfigError> {
            let v = text(key);
            amqp_name(&v).map_err(|m| err(key, m))?;
            Ok(v)
        };

        let amqp_url = text("AMQP_URL");
        if !(amqp_url.starts_with("amqp://") || amqp_url.starts_with("amqps://")) {
            return Err(err("AMQP_URL", "expected an amqp:// or amqps:// URL"));
        }
        let queue = name("REHOST_QUEUE")?;
        if queue.is_empty() {
            return Err(err("REHOST_QUEUE", "must not be empty"));
        }
        let results_queue = match raw.get("REHOST_RESULTS_QUEUE") {
            Some(v) if v.trim().is_empty() => None,
            _ => Some(name("REHOST_RESULTS_QUEUE")?),
        };
        let broker = BrokerConfig {
            amqp_url,
            exchange: name("REHOST_EXCHANGE")?,
            routing_key: name("REHOST_ROUTING_KEY")?,
            results_exchange: name("REHOST_RESULTS_EXCHANGE")?,
            results_queue,
            declare: boolean("REHOST_DECLARE", &text("REHOST_DECLARE"))?,
            queue,
        };
        if broker.results_exchange.is_empty() {
            return Err(err("REHOST_RESULTS_EXCHANGE", "must not be empty"));
        }
        let retry_delays = retry_delays(&text("REHOST_RETRY_DELAYS"))?;
        for (label, _) in &retry_delays {
            amqp_name(&format!("{}.retry.{label}", broker.queue))
                .map_err(|m| err("REHOST_QUEUE", format!("{m} (with its retry suffix)")))?;
        }

        let http_addr_text = text("REHOST_HTTP_ADDR");
        let http_addr = http_addr_text.parse().map_err(|_| {
            err(
                "REHOST_HTTP_ADDR",
                format!("expected host:port, got {http_addr_text:?}"),
            )
        })?;
        let log_format = match text("REHOST_LOG_FORMAT").as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                return Err(err(
                    "REHOST_LOG_FORMAT",
                    format!("expected json or pretty, got {other:?}"),
                ));
            }
        };
        let log_filter = text("RUST_LOG");
        tracing_subscriber::EnvFilter::try_new(&log_filter)
            .map_err(|e| err("RUST_LOG", e.to_string()))?;

        let key_prefix = text("REHOST_KEY_PREFIX");
        if !key_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
            || key_prefix.starts_with('/')
            || key_prefix.split('/').any(|seg| seg == "." || seg == "..")
            || key_prefix.len() > 256
        {
            return Err(err(
                "REHOST_KEY_PREFIX",
                "use letters, digits, . _ - and /, without a leading / or . and .. segments",
            ));
        }

        let allow_text = text("REHOST_ALLOW_PRIVATE_NETWORKS");
        let allow =
            AllowList::parse(&allow_text).map_err(|m| err("REHOST_ALLOW_PRIVATE_NETWORKS", m))?;

        let spool_dir = raw
            .non_empty("REHOST_SPOOL_DIR")
            .map_or_else(std::env::temp_dir, PathBuf::from);

        Ok(Config {
            concurrency: parse_u64("REHOST_CONCURRENCY", 1, 1000)? as u16,
            max_attempts: parse_u64("REHOST_MAX_ATTEMPTS", 1, 1000)? as u32,
            retry_delays,
            job_timeout: Duration::from_secs(parse_u64("REHOST_JOB_TIMEOUT_SECS", 1, 86_400)?),
            shutdown_grace: Duration::from_secs(parse_u64(
                "REHOST_SHUTDOWN_GRACE_SECS",
                0,
                86_400,
            )?),
            store: store(raw)?,
            key_prefix,
            spool_dir,
            limits: Limits {
                max_image_bytes: parse_u64("REHOST_MAX_IMAGE_BYTES", 1, 1 << 32)?,
                max_video_bytes: parse_u64(
                    "REHOST_MAX_VIDEO_BYTES",
                    1,
                    5 * 1024 * 1024 * 1024 * 1024,
                )?,
                max_image_pixels: parse_u64("REHOST_MAX_IMAGE_PIXELS", 1, 1 << 40)?,
            },
            fetch_timeout: Duration::from_secs(parse_u64("REHOST_FETCH_TIMEOUT_SECS", 1, 86_400)?),
            min_rate_kbps: parse_u64("REHOST_MIN_RATE_KBPS", 1, 100_000_000)?,
            per_host_connections: parse_u64("REHOST_PER_HOST_CONNECTIONS", 1, 1024)? as usize,
            allow,
            http_addr,
            log_filter,
            log_format,
            broker,
        })
    }

    /// The effective settings, one `NAME=value` per line, secrets redacted.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let b = &self.broker;
        let (dir, s3) = match &self.store {
            Some(StoreConfig::Dir { root, public_base }) => (Some((root, public_base)), None),
            Some(StoreConfig::S3(s3)) => (None, Some(s3)),
            None => (None, None),
        };
        let opt = |v: Option<String>| v.unwrap_or_default();
        let delays: Vec<&str> = self.retry_delays.iter().map(|(l, _)| l.as_str()).collect();
        vec![
            ("AMQP_URL", redact_url(&b.amqp_url)),
            ("REHOST_QUEUE", b.queue.clone()),
            ("REHOST_EXCHANGE", b.exchange.clone()),
            ("REHOST_ROUTING_KEY", b.routing_key.clone()),
            ("REHOST_RESULTS_EXCHANGE", b.results_exchange.clone()),
            ("REHOST_RESULTS_QUEUE", opt(b.results_queue.clone())),
            ("REHOST_DECLARE", b.declare.to_string()),
            ("REHOST_CONCURRENCY", self.concurrency.to_string()),
            ("REHOST_MAX_ATTEMPTS", self.max_attempts.to_string()),
            ("REHOST_RETRY_DELAYS", delays.join(",")),
            (
                "REHOST_JOB_TIMEOUT_SECS",
                self.job_timeout.as_secs().to_string(),
            ),
            (
                "REHOST_SHUTDOWN_GRACE_SECS",
                self.shutdown_grace.as_secs().to_string(),
            ),
            ("S3_ENDPOINT", opt(s3.and_then(|s| s.endpoint.clone()))),
            ("S3_REGION", opt(s3.map(|s| s.region.clone()))),
            ("S3_BUCKET", opt(s3.map(|s| s.bucket.clone()))),
            (
                "S3_ACCESS_KEY_ID",
                if s3.is_some() {
                    "<redacted>".into()
                } else {
                    String::new()
                },
            ),
            (
                "S3_SECRET_ACCESS_KEY",
                if s3.is_some() {
                    "<redacted>".into()
                } else {
                    String::new()
                },
            ),
            (
                "S3_FORCE_PATH_STYLE",
                opt(s3.map(|s| s.force_path_style.to_string())),
            ),
            (
                "REHOST_STORE_DIR",
                opt(dir.map(|(r, _)| r.display().to_string())),
            ),
            (
                "PUBLIC_BASE_URL",
                opt(dir
                    .map(|(_, p)| p.clone())
                    .or(s3.map(|s| s.public_base.clone()))),
            ),
            ("REHOST_KEY_PREFIX", self.key_prefix.clone()),
            ("REHOST_SPOOL_DIR", self.spool_dir.display().to_string()),
            (
                "REHOST_MAX_IMAGE_BYTES",
                self.limits.max_image_bytes.to_string(),
            ),
            (
                "REHOST_MAX_VIDEO_BYTES",
                self.limits.max_video_bytes.to_string(),
            ),
            (
                "REHOST_MAX_IMAGE_PIXELS",
                self.limits.max_image_pixels.to_string(),
            ),
            (
                "REHOST_FETCH_TIMEOUT_SECS",
                self.fetch_timeout.as_secs().to_string(),
            ),
            ("REHOST_MIN_RATE_KBPS", self.min_rate_kbps.to_string()),
            (
                "REHOST_PER_HOST_CONNECTIONS",
                self.per_host_connections.to_string(),
            ),
            ("REHOST_ALLOW_PRIVATE_NETWORKS", self.allow.to_string()),
            ("REHOST_HTTP_ADDR", self.http_addr.to_string()),
            ("RUST_LOG", self.log_filter.clone()),
            (
                "REHOST_LOG_FORMAT",
                match self.log_format {
                    LogFormat::Json => "json".into(),
                    LogFormat::Pretty => "pretty".into(),
                },
            ),
        ]
    }
}

fn boolean(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(err(key, format!("expected true or false, got {v:?}"))),
    }
}

/// AMQP names are short strings: at most 255 bytes.
fn amqp_name(v: &str) -> Result<(), String> {
    if v.len() > 255 {
        return Err("longer than 255 bytes".into());
    }
    if v.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(())
}

/// Parses `5s,30s,2m,10m`: each a whole number with `ms`, `s`, `m` or `h`.
pub fn retry_delays(text: &str) -> Result<Vec<(String, Duration)>, ConfigError> {
    const KEY: &str = "REHOST_RETRY_DELAYS";
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &part[digits.len()..];
        let n: u64 = digits.parse().map_err(|_| {
            err(
                KEY,
                format!("{part:?} is not a duration like 5s, 2m or 500ms"),
            )
        })?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(err(KEY, format!("{part:?} needs a unit: ms, s, m or h"))),
        };
        if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
            return Err(err(
                KEY,
                format!("{part:?} must be above zero and at most a week"),
            ));
        }
        out.push((format!("{n}{unit}"), d));
    }
    Ok(out)
}

fn store(raw: &Raw) -> Result<Option<StoreConfig>, ConfigError> {
    let public_base = raw
        .non_empty("PUBLIC_BASE_URL")
        .map(|v| v.trim_end_matches('/').to_string());
    if let Some(base) = &public_base
        && url::Url::parse(base).map_or(true, |u| !matches!(u.scheme(), "http" | "https" | "file"))
    {
        return Err(err(
            "PUBLIC_BASE_URL",
            "expected an http(s):// or file:// URL",
        ));
    }
    if let Some(dir) = raw.non_empty("REHOST_STORE_DIR") {
        let root = PathBuf::from(dir);
        let public_base = match public_base {
            Some(p) => p,
            None => dir_url(&root).map_err(|m| err("REHOST_STORE_DIR", m))?,
        };
        return Ok(Some(StoreConfig::Dir { root, public_base }));
    }
    let Some(bucket) = raw.non_empty("S3_BUCKET") else {
        return Ok(None);
    };
    let endpoint = raw.non_empty("S3_ENDPOINT").map(str::to_string);
    if let Some(e) = &endpoint
        && url::Url::parse(e).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
    {
        return Err(err("S3_ENDPOINT", "expected an http:// or https:// URL"));
    }
    let key = |primary: &'static str, fallback: &'static str| {
        raw.non_empty(primary)
            .or_else(|| raw.non_empty(fallback))
            .map(str::to_string)
            .ok_or_else(|| {
                err(
                    primary,
                    format!("required with S3_BUCKET (or set {fallback})"),
                )
            })
    };
    let force_path_style = match raw.non_empty("S3_FORCE_PATH_STYLE") {
        Some(v) => boolean("S3_FORCE_PATH_STYLE", v)?,
        None => endpoint.is_some(),
    };
    Ok(Some(StoreConfig::S3(S3Config {
        region: raw.non_empty("S3_REGION").unwrap_or("auto").to_string(),
        bucket: bucket.to_string(),
        access_key_id: key("S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")?,
        secret_access_key: key("S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")?,
        force_path_style,
        public_base: public_base
            .ok_or_else(|| err("PUBLIC_BASE_URL", "required with S3_BUCKET"))?,
        endpoint,
    })))
}

/// `file://` URL of a directory (made absolute).
pub fn dir_url(root: &std::path::Path) -> Result<String, String> {
    let abs =
        std::path::absolute(root).map_err(|e| format!("cannot make the path absolute: {e}"))?;
    url::Url::from_directory_path(&abs)
        .map(|u| u.to_string().trim_end_matches('/').to_string())
        .map_err(|()| "not a usable directory path".to_string())
}

/// An AMQP URL with its password replaced.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable>".into(),
    }
}

#[cfg(test)]
mod tests;
