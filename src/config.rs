//! Settings: every one is an environment variable and a command-line flag of
//! the same meaning (the flag wins); secrets may also come from a file named
//! by `{NAME}_FILE`. [`SETTINGS`] is the single table of them; the CLI
//! flags, `check-config` and the README's table all come from it.
//!
//! A missing or invalid setting is a [`ConfigError`] naming the setting; the
//! binary prints it as one line and exits with status 2.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::fetch::FetchConfig;
use crate::fetch::guard::AllowList;

mod describe;
mod platform;
mod public;
mod raw;
mod reader;
mod settings;
mod store;
pub use describe::redact_url;
pub use platform::PlatformConfig;
pub use public::{ProbeMode, PublicConfig};
pub use raw::{Raw, SECRETS, Source};
pub use reader::ConfigError;
use reader::{Reader, err};
pub use settings::{SETTINGS, Setting};
pub use store::{S3Config, StoreConfig, dir_url};

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
    /// The broker's consumer timeout, which the delivery budgets are
    /// derived from ([`Config::budgets`]).
    pub consumer_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `None` when neither `REHOST_STORE_DIR` nor `S3_BUCKET` is set.
    pub store: Option<StoreConfig>,
    pub key_prefix: String,
    pub spool_dir: PathBuf,
    pub limits: Limits,
    /// The fetcher's deadlines, rates, per-host budget and allowed networks.
    pub fetch: FetchConfig,
    /// Platform profiles, verdicts and normalisation.
    pub platform: PlatformConfig,
    /// The public-URL probe, deferral and verified prefixes.
    pub public: PublicConfig,
    /// `/healthz` fails after this long without an active `basic.consume`
    /// while the broker and store answer and a permit is free.
    pub stall: Duration,
    pub http_addr: SocketAddr,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Each setting's effective value (secrets redacted) and where it came
    /// from, for `check-config`.
    described: Vec<(&'static str, String)>,
}

impl Config {
    /// Builds and validates the configuration.
    ///
    /// # Errors
    /// The first setting that is missing or invalid.
    pub fn load(raw: &Raw) -> Result<Config, ConfigError> {
        let r = Reader::new(raw);
        let broker = broker(&r)?;
        let retry_delays = retry_delays(&r.text("REHOST_RETRY_DELAYS"))?;
        for (label, _) in &retry_delays {
            amqp_name(&format!("{}.retry-q.{label}", broker.queue))
                .map_err(|m| err("REHOST_QUEUE", format!("{m} (with its retry suffix)")))?;
        }
        let (log_filter, log_format) = logging(&r)?;
        let mut config = Config {
            concurrency: r.number("REHOST_CONCURRENCY", 1, 1000)? as u16,
            max_attempts: r.number("REHOST_MAX_ATTEMPTS", 1, 1000)? as u32,
            retry_delays,
            job_timeout: r.secs("REHOST_JOB_TIMEOUT_SECS", 1, 86_400)?,
            consumer_timeout: r.secs("REHOST_CONSUMER_TIMEOUT_SECS", 60, 7 * 86_400)?,
            shutdown_grace: r.secs("REHOST_SHUTDOWN_GRACE_SECS", 0, 86_400)?,
            store: store::parse(&r)?,
            key_prefix: key_prefix(&r)?,
            spool_dir: r
                .non_empty("REHOST_SPOOL_DIR")
                .map_or_else(std::env::temp_dir, PathBuf::from),
            limits: limits(&r)?,
            fetch: fetch(&r)?,
            platform: platform::parse(&r)?,
            public: public::parse(&r)?,
            stall: r.secs("REHOST_STALL_SECS", 10, 86_400)?,
            http_addr: http_addr(&r)?,
            log_filter,
            log_format,
            broker,
            described: Vec::new(),
        };
        config.described = r.described();
        Ok(config)
    }

    /// The delivery budgets (see [`crate::bounds`]): what `rehost worker`
    /// and `check-config` refuse to run without.
    ///
    /// # Errors
    /// `REHOST_CONSUMER_TIMEOUT_SECS`, when the job deadline, a store hold
    /// and publishing do not fit under it.
    pub fn budgets(&self) -> Result<crate::bounds::Budgets, ConfigError> {
        crate::bounds::Budgets::derive(self.consumer_timeout, self.job_timeout)
            .map_err(|m| err("REHOST_CONSUMER_TIMEOUT_SECS", m))
    }
}

fn broker(r: &Reader<'_>) -> Result<BrokerConfig, ConfigError> {
    let (amqp_url, source) = r
        .secret_source("AMQP_URL")?
        .unwrap_or_else(|| (r.text("AMQP_URL"), "default".into()));
    r.computed(
        "AMQP_URL",
        format!("{} (from the {source})", redact_url(&amqp_url)),
    );
    if !(amqp_url.starts_with("amqp://") || amqp_url.starts_with("amqps://"))
        || amqp_url.parse::<lapin::uri::AMQPUri>().is_err()
    {
        return Err(err(
            "AMQP_URL",
            "expected an amqp:// or amqps:// URL such as amqp://user:password@host:5672/%2f",
        ));
    }
    let queue = r.name("REHOST_QUEUE")?;
    if queue.is_empty() {
        return Err(err("REHOST_QUEUE", "must not be empty"));
    }
    let results_queue = match r.raw_text("REHOST_RESULTS_QUEUE") {
        Some(v) if v.trim().is_empty() => None,
        _ => Some(r.name("REHOST_RESULTS_QUEUE")?),
    };
    let results_exchange = r.name("REHOST_RESULTS_EXCHANGE")?;
    if results_exchange.is_empty() {
        return Err(err("REHOST_RESULTS_EXCHANGE", "must not be empty"));
    }
    Ok(BrokerConfig {
        amqp_url,
        exchange: r.name("REHOST_EXCHANGE")?,
        routing_key: r.name("REHOST_ROUTING_KEY")?,
        results_exchange,
        results_queue,
        declare: r.flag("REHOST_DECLARE")?,
        queue,
    })
}

fn limits(r: &Reader<'_>) -> Result<Limits, ConfigError> {
    Ok(Limits {
        max_image_bytes: r.number("REHOST_MAX_IMAGE_BYTES", 1, 1 << 32)?,
        max_video_bytes: r.number("REHOST_MAX_VIDEO_BYTES", 1, 5 << 40)?,
        max_image_pixels: r.number("REHOST_MAX_IMAGE_PIXELS", 1, 1 << 40)?,
    })
}

fn fetch(r: &Reader<'_>) -> Result<FetchConfig, ConfigError> {
    let allow = AllowList::parse(&r.text("REHOST_ALLOW_PRIVATE_NETWORKS"))
        .map_err(|m| err("REHOST_ALLOW_PRIVATE_NETWORKS", m))?;
    Ok(FetchConfig {
        base_timeout: r.secs("REHOST_FETCH_TIMEOUT_SECS", 1, 86_400)?,
        min_rate_bytes_per_sec: r
            .number("REHOST_MIN_RATE_KBPS", 1, 100_000_000)?
            .saturating_mul(1024),
        per_host_connections: r.number("REHOST_PER_HOST_CONNECTIONS", 1, 1024)? as usize,
        allow,
        ..FetchConfig::default()
    })
}

fn http_addr(r: &Reader<'_>) -> Result<SocketAddr, ConfigError> {
    let text = r.text("REHOST_HTTP_ADDR");
    text.parse().map_err(|_| {
        err(
            "REHOST_HTTP_ADDR",
            format!("expected host:port, got {text:?}"),
        )
    })
}

fn logging(r: &Reader<'_>) -> Result<(String, LogFormat), ConfigError> {
    let format = match r.text("REHOST_LOG_FORMAT").as_str() {
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        other => {
            return Err(err(
                "REHOST_LOG_FORMAT",
                format!("expected json or pretty, got {other:?}"),
            ));
        }
    };
    let filter = r.text("RUST_LOG");
    tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| err("RUST_LOG", e.to_string()))?;
    Ok((filter, format))
}

fn key_prefix(r: &Reader<'_>) -> Result<String, ConfigError> {
    let prefix = r.text("REHOST_KEY_PREFIX");
    let ok = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && !prefix.starts_with('/')
        && !prefix.split('/').any(|seg| seg == "." || seg == "..")
        && prefix.len() <= 256;
    if !ok {
        return Err(err(
            "REHOST_KEY_PREFIX",
            "use letters, digits, . _ - and /, without a leading / or . and .. segments",
        ));
    }
    Ok(prefix)
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
///
/// # Errors
/// A [`ConfigError`] for `REHOST_RETRY_DELAYS` naming the bad entry.
pub fn retry_delays(text: &str) -> Result<Vec<(String, Duration)>, ConfigError> {
    text.split(',').map(str::trim).map(retry_delay).collect()
}

fn retry_delay(part: &str) -> Result<(String, Duration), ConfigError> {
    const KEY: &str = "REHOST_RETRY_DELAYS";
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
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(err(KEY, format!("{part:?} needs a unit: ms, s, m or h"))),
    };
    if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
        return Err(err(
            KEY,
            format!("{part:?} must be above zero and at most a week"),
        ));
    }
    Ok((format!("{n}{unit}"), d))
}

#[cfg(test)]
mod tests;
