//! The table of every setting: variable, flag, documented default, meaning.

/// One setting: its variable, its flag, its default as documented, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub env: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
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
    }
}

/// Every setting, in the contract's order.
pub const SETTINGS: &[Setting] = &[
    s(
        "AMQP_URL",
        "amqp-url",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "broker URL (its password is never printed)",
    ),
    s(
        "REHOST_QUEUE",
        "queue",
        "media.ingest",
        "job queue; also names {Q}.retry-q.{delay} and {Q}.dead",
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
        "REHOST_CONSUMER_TIMEOUT_SECS",
        "consumer-timeout-secs",
        "1800",
        "the broker's consumer timeout (its consumer_timeout or the queue's x-consumer-timeout); the worker refuses to start unless the job deadline, a store hold and publishing fit under it",
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
    s(
        "S3_ACCESS_KEY_ID",
        "s3-access-key-id",
        "",
        "falls back to AWS_ACCESS_KEY_ID; never printed",
    ),
    s(
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
        "32",
        "most connections open to one origin host at once (its scheme, host and port, as connected to after redirects), shared by all of a worker's jobs: requests (HTTP/2 streams too) wait for a place, and sockets (in use, idle or opening) never exceed it",
    ),
    s(
        "REHOST_ALLOW_PRIVATE_NETWORKS",
        "allow-private-networks",
        "false",
        "true (loopback, private, CGNAT, unique-local) or a comma list of CIDRs origins may resolve to",
    ),
    s(
        "REHOST_PROFILES",
        "profiles",
        "built in",
        "TOML file of platform profiles replacing or adding to the built-in ones",
    ),
    s(
        "REHOST_PLATFORM_CHECKS",
        "platform-checks",
        "enforce",
        "enforce (a post no account can take fails), report (verdicts only) or off (no verdicts, no normalisation)",
    ),
    s(
        "REHOST_NORMALIZE",
        "normalize",
        "true",
        "make re-hosted images acceptable to the accounts' platforms (orient, scale, JPEG) where no cropping is needed",
    ),
    s(
        "REHOST_STRIP_METADATA",
        "strip-metadata",
        "true",
        "store re-hosted images without EXIF/GPS, XMP, IPTC, comments and PNG text (colour profiles and orientation kept)",
    ),
    s(
        "REHOST_JPEG_QUALITY",
        "jpeg-quality",
        "90",
        "quality of re-encoded JPEGs (50 to 100), lowered in steps to 50 to meet a byte limit",
    ),
    s(
        "REHOST_FASTSTART",
        "faststart",
        "needed",
        "move the moov box of re-hosted moov-at-end MP4/MOV before the media data, losslessly: needed (when that makes a BYO account ok), always or never (REHOST_NORMALIZE=false: never)",
    ),
    s(
        "REHOST_PUBLIC_PROBE",
        "public-probe",
        "enforce",
        "the public-URL probe: enforce (defer re-hosted jobs while it fails), warn (report only) or off",
    ),
    s(
        "REHOST_PUBLIC_PROBE_SECS",
        "public-probe-secs",
        "300",
        "interval of the probe while it passes (while it fails: 5 s doubling to 60 s)",
    ),
    s(
        "REHOST_DEFER_MAX_SECS",
        "defer-max-secs",
        "86400",
        "how long a job may be deferred for an unfetchable public URL before it fails (storage_unavailable)",
    ),
    s(
        "REHOST_VERIFIED_URL_PREFIXES",
        "verified-url-prefixes",
        "",
        "comma list of https://host/path/ prefixes or bare domains verified for the publishing app; the public URLs must lie under one",
    ),
    s(
        "REHOST_STALL_SECS",
        "stall-secs",
        "300",
        "/healthz fails after this long without an active basic.consume while the broker and the store answer and a permit is free",
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
