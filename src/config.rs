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

mod describe;
mod settings;
mod store;
pub use describe::redact_url;
pub use settings::{SETTINGS, Setting};
pub use store::{S3Config, StoreConfig, dir_url};

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
            store: store::parse(raw)?,
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

#[cfg(test)]
mod tests;
