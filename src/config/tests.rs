use super::*;

fn load(pairs: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
    Config::load(&Raw::from_pairs(pairs))
}

fn error_setting(pairs: &[(&'static str, &str)]) -> &'static str {
    load(pairs).expect_err("must be invalid").setting
}

#[test]
fn defaults_are_the_contracts() {
    let c = load(&[]).expect("defaults load");
    assert_eq!(c.broker.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_eq!(c.broker.queue, "media.ingest");
    assert_eq!(c.broker.exchange, "media");
    assert_eq!(c.broker.routing_key, "media.ingest");
    assert_eq!(c.broker.results_exchange, "media.events");
    assert_eq!(c.broker.results_queue.as_deref(), Some("media.results"));
    assert!(c.broker.declare);
    assert_eq!(c.concurrency, 8);
    assert_eq!(c.max_attempts, 5);
    let delays: Vec<u64> = c.retry_delays.iter().map(|(_, d)| d.as_secs()).collect();
    assert_eq!(delays, [5, 30, 120, 600]);
    let labels: Vec<&str> = c.retry_delays.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["5s", "30s", "2m", "10m"]);
    assert_eq!(c.job_timeout.as_secs(), 1200);
    assert_eq!(c.shutdown_grace.as_secs(), 30);
    assert!(c.store.is_none());
    assert_eq!(c.key_prefix, "");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.max_image_bytes, 20_971_520);
    assert_eq!(c.limits.max_video_bytes, 4_294_967_296);
    assert_eq!(c.limits.max_image_pixels, 100_000_000);
    assert_eq!(c.fetch.base_timeout.as_secs(), 60);
    assert_eq!(c.fetch.min_rate_bytes_per_sec, 4096 * 1024);
    assert_eq!(c.fetch.per_host_connections, 32);
    assert_eq!(c.fetch.allow, AllowList::default());
    assert_eq!(c.http_addr.to_string(), "0.0.0.0:9090");
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn bad_settings_name_themselves() {
    assert_eq!(
        error_setting(&[("REHOST_CONCURRENCY", "many")]),
        "REHOST_CONCURRENCY"
    );
    assert_eq!(
        error_setting(&[("REHOST_CONCURRENCY", "0")]),
        "REHOST_CONCURRENCY"
    );
    assert_eq!(
        error_setting(&[("REHOST_RETRY_DELAYS", "5s,,2m")]),
        "REHOST_RETRY_DELAYS"
    );
    assert_eq!(
        error_setting(&[("REHOST_RETRY_DELAYS", "5")]),
        "REHOST_RETRY_DELAYS"
    );
    assert_eq!(
        error_setting(&[("REHOST_DECLARE", "maybe")]),
        "REHOST_DECLARE"
    );
    assert_eq!(error_setting(&[("AMQP_URL", "http://x")]), "AMQP_URL");
    assert_eq!(
        error_setting(&[("REHOST_HTTP_ADDR", "nowhere")]),
        "REHOST_HTTP_ADDR"
    );
    assert_eq!(
        error_setting(&[("REHOST_LOG_FORMAT", "xml")]),
        "REHOST_LOG_FORMAT"
    );
    assert_eq!(
        error_setting(&[("REHOST_ALLOW_PRIVATE_NETWORKS", "10.0.0.0/99")]),
        "REHOST_ALLOW_PRIVATE_NETWORKS"
    );
    assert_eq!(
        error_setting(&[("REHOST_KEY_PREFIX", "../up/")]),
        "REHOST_KEY_PREFIX"
    );
    assert_eq!(
        error_setting(&[("REHOST_QUEUE", &"q".repeat(256))]),
        "REHOST_QUEUE"
    );
    assert_eq!(error_setting(&[("S3_BUCKET", "b")]), "S3_ACCESS_KEY_ID");
    assert_eq!(
        error_setting(&[
            ("S3_BUCKET", "b"),
            ("S3_ACCESS_KEY_ID", "a"),
            ("S3_SECRET_ACCESS_KEY", "s")
        ]),
        "PUBLIC_BASE_URL"
    );
    let line = load(&[("REHOST_MAX_ATTEMPTS", "x")])
        .expect_err("invalid")
        .to_string();
    assert!(
        line.starts_with("invalid setting REHOST_MAX_ATTEMPTS (--max-attempts):"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn empty_results_queue_turns_it_off() {
    let c = load(&[("REHOST_RESULTS_QUEUE", "")]).expect("valid");
    assert_eq!(c.broker.results_queue, None);
}

#[test]
fn store_selection() {
    let c = load(&[("REHOST_STORE_DIR", "/tmp/x"), ("S3_BUCKET", "b")]).expect("valid");
    assert!(
        matches!(c.store, Some(StoreConfig::Dir { ref public_base, .. }) if public_base == "file:///tmp/x")
    );
    let c = load(&[
        ("S3_BUCKET", "media"),
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ("PUBLIC_BASE_URL", "https://media.example.net/"),
    ])
    .expect("valid");
    let Some(StoreConfig::S3(s3)) = &c.store else {
        panic!("expected S3");
    };
    assert!(
        s3.force_path_style,
        "defaults to path style with an endpoint"
    );
    assert_eq!(s3.region, "auto");
    assert_eq!(s3.public_base, "https://media.example.net");
    assert_eq!(s3.secret_access_key, "very-secret");
    let shown = format!("{:?} {:?}", c, c.describe());
    assert!(
        !shown.contains("very-secret") && !shown.contains("AKID"),
        "{shown}"
    );
}

#[test]
fn amqp_password_is_redacted() {
    let c = load(&[("AMQP_URL", "amqp://user:hunter2@broker:5672/vh")]).expect("valid");
    let described = c.describe();
    let amqp = &described
        .iter()
        .find(|(k, _)| *k == "AMQP_URL")
        .expect("present")
        .1;
    assert!(!amqp.contains("hunter2"), "{amqp}");
}

#[test]
fn describe_covers_every_setting() {
    let c = load(&[]).expect("defaults");
    let names: Vec<&str> = c.describe().iter().map(|(k, _)| *k).collect();
    let all: Vec<&str> = SETTINGS.iter().map(|s| s.env).collect();
    assert_eq!(names, all);
}
