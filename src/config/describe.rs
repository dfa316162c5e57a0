//! The effective configuration as `check-config` prints it, secrets redacted.

use super::{Config, LogFormat, StoreConfig};

impl Config {
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
