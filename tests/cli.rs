//! The binary's commands and exit statuses, as an operator meets them.

use std::process::{Command, Output};

use rehost::fixture_origin::{Origin, OriginConfig};

fn rehost(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rehost")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn origin() -> Origin {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
    Origin::start(OriginConfig::new(dir), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("origin")
}

fn job_file(dir: &std::path::Path, name: &str, body: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(body).expect("json")).expect("write");
    path.display().to_string()
}

#[tokio::test]
async fn ingest_exit_statuses() {
    let origin = origin().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let store: &'static str = Box::leak(store.display().to_string().into_boxed_str());
    let env = [
        ("REHOST_STORE_DIR", store),
        ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32"),
    ];
    let job = |url: String| {
        serde_json::json!({"post_id": "p", "workspace_id": "w",
            "accounts": [{"id": "a", "platform": "x", "type": "byo"}],
            "media": {"type": "slideshow", "urls": [url]}})
    };
    let ready = job_file(tmp.path(), "ready.json", &job(origin.url("small.jpg")));
    let failed = job_file(tmp.path(), "failed.json", &job(origin.url("missing.jpg")));
    let retry = job_file(
        tmp.path(),
        "retry.json",
        &job(origin.url("small.jpg?status=503")),
    );
    let not_a_job = job_file(tmp.path(), "not.json", &serde_json::json!([1, 2, 3]));
    let (ready, failed, retry, not_a_job) = tokio::task::spawn_blocking(move || {
        (
            rehost(&["ingest", &ready], &env),
            rehost(&["ingest", &failed], &env),
            rehost(&["ingest", &retry], &env),
            rehost(&["ingest", &not_a_job], &env),
        )
    })
    .await
    .expect("join");
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));
    let r: serde_json::Value =
        serde_json::from_slice(&ready.stdout).expect("result JSON on stdout");
    assert_eq!(r["status"], "ready");
    assert!(
        r["media"]["urls"][0]
            .as_str()
            .is_some_and(|u| u.starts_with("file://"))
    );
    assert_eq!(failed.status.code(), Some(1));
    let f: serde_json::Value = serde_json::from_slice(&failed.stdout).expect("JSON");
    assert_eq!(f["error"]["code"], "not_found");
    assert_eq!(retry.status.code(), Some(75));
    assert_eq!(not_a_job.status.code(), Some(2));
    assert!(not_a_job.stdout.is_empty());
}

#[test]
fn a_bad_setting_is_one_line_and_status_2() {
    for (var, value) in [
        ("REHOST_CONCURRENCY", "lots"),
        ("REHOST_RETRY_DELAYS", "5 minutes"),
        ("REHOST_ALLOW_PRIVATE_NETWORKS", "10.0.0.0/40"),
        ("S3_BUCKET", "media"),
    ] {
        for cmd in [
            &["ingest", "fixtures/jobs/byo-slideshow.json"][..],
            &["check", "http://x.example/a.jpg"],
            &["check-config"],
            &["worker"],
        ] {
            let out = rehost(cmd, &[(var, value)]);
            assert_eq!(out.status.code(), Some(2), "{cmd:?} with {var}={value}");
            let err = stderr(&out);
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.contains("invalid setting"), "{err}");
            assert!(
                !err.contains("panicked") && !err.contains("backtrace"),
                "{err}"
            );
        }
    }
    let out = rehost(&["--concurrency", "0", "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("REHOST_CONCURRENCY (--concurrency)"));
}

#[tokio::test]
async fn check_prints_one_line_per_url() {
    let origin = origin().await;
    let urls = [
        origin.url("photo.jpg"),
        origin.url("clip.mp4"),
        origin.url("html.jpg"),
        "ftp://x/y".to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec!["check"];
        args.extend(urls.iter().map(String::as_str));
        rehost(&args, &[("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")])
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1), "one URL is not usable");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("ok") && lines[0].contains("image/jpeg 1080x1350 187881 bytes"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("ok") && lines[1].contains("video/mp4 640x360 2.0s h264"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("FAIL") && lines[2].contains("unsupported_format"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("FAIL") && lines[3].contains("invalid_url"),
        "{}",
        lines[3]
    );
    let ok = rehost(
        &["check", "http://127.0.0.1:1/a.jpg"],
        &[("REHOST_ALLOW_PRIVATE_NETWORKS", "false")],
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("forbidden_address"));
}

#[test]
fn check_config_redacts_secrets_and_reports_dependencies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().display().to_string();
    let out = rehost(
        &["check-config"],
        &[
            ("AMQP_URL", "amqp://user:hunter2@127.0.0.1:1/%2f"),
            ("REHOST_STORE_DIR", &dir),
            ("S3_SECRET_ACCESS_KEY", "topsecret"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the broker does not answer: {text}"
    );
    assert!(text.contains("REHOST_QUEUE=media.ingest"), "{text}");
    assert!(text.contains("broker: FAIL"), "{text}");
    assert!(text.contains("store: ok"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("topsecret"),
        "{text}"
    );
}

#[test]
fn the_demo_runs_on_the_fixtures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().display().to_string();
    let out = rehost(&["demo"], &[("REHOST_STORE_DIR", &dir)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(
        text.matches(": ready (rehosted: true)").count(),
        3,
        "{text}"
    );
    assert_eq!(
        text.matches(": ready (rehosted: false)").count(),
        2,
        "{text}"
    );
    assert!(text.contains("too_many_images"), "{text}");
}

#[tokio::test]
async fn proxies_in_the_environment_are_ignored() {
    let origin = origin().await;
    let url = origin.url("small.jpg");
    let out = tokio::task::spawn_blocking(move || {
        rehost(
            &["check", &url],
            &[
                ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32"),
                ("HTTP_PROXY", "http://127.0.0.1:1"),
                ("http_proxy", "http://127.0.0.1:1"),
                ("ALL_PROXY", "http://127.0.0.1:1"),
            ],
        )
    })
    .await
    .expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        origin.stats.requests(),
        1,
        "fetched directly, not through the proxy"
    );
}
