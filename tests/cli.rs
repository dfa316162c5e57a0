//! The binary's commands and exit statuses, as an operator meets them.

use std::process::{Command, Output};

use rehost::fixture_origin::{Origin, OriginConfig};

fn rehost(args: &[&str], env: &[(&str, &str)]) -> Output {
    rehost_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args, env)
}

/// Runs the binary in `dir`, as an installed binary runs outside a checkout.
fn rehost_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
    cmd.args(args)
        .current_dir(dir)
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
        5,
        "{text}"
    );
    assert_eq!(
        text.matches(": ready (rehosted: false)").count(),
        2,
        "{text}"
    );
    assert!(text.contains("too_many_images"), "{text}");
    // Platform verdicts and normalisation, as the demo prints them.
    assert!(
        text.contains("== byo-platform-rejected.json: failed"),
        "{text}"
    );
    assert!(text.contains("\"code\": \"platform_rejected\""), "{text}");
    assert!(text.contains("byo tiktok: ok"), "{text}");
    assert!(
        text.contains("byo instagram: rejected: images_per_post"),
        "{text}"
    );
    assert!(
        text.contains("normalised from image/png 450x600 202916 bytes: orient, flatten, to_jpeg, strip_metadata"),
        "{text}"
    );
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

#[test]
fn the_demo_runs_from_any_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = rehost_in(tmp.path(), &["demo"], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for job in [
        "byo-slideshow",
        "byo-two-platforms",
        "byo-platform-rejected",
        "byo-video",
        "byo-video-moov-end",
        "byo-video-faststart",
        "hosted-slideshow",
        "hosted-video",
        "invalid-too-many-images",
    ] {
        assert!(text.contains(&format!("== {job}.json: ")), "{job}: {text}");
    }
    assert!(text.contains("the media built into rehost"), "{text}");
    let faststart = text
        .split("== byo-video-faststart.json: ")
        .nth(1)
        .and_then(|t| t.split("\n== ").next())
        .unwrap_or("");
    assert!(faststart.starts_with("ready"), "{faststart}");
    assert!(
        faststart.contains("faststart"),
        "the step is shown: {faststart}"
    );
    assert!(
        tmp.path().join("rehost-data").is_dir(),
        "copies land in ./rehost-data"
    );
    let out = rehost_in(tmp.path(), &["demo", "--media", "no-such-dir"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
}

#[test]
fn origin_refuses_a_directory_without_media() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for dir in ["no-such-dir", "."] {
        let out = rehost_in(
            tmp.path(),
            &["origin", "--dir", dir, "--listen", "127.0.0.1:0"],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{dir}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("media directory"), "{err}");
    }
}

#[test]
fn origin_serves_the_built_in_media_from_any_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(["origin", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(tmp.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut body = None;
    for _ in 0..100 {
        if let Some(b) = get(port, "/photo.jpg") {
            body = Some(b);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let want = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media/photo.jpg"),
    )
    .expect("fixture");
    assert_eq!(body.expect("the origin answered"), want);
}

/// A plain HTTP/1.0 GET on loopback: the body of a 200, else `None`.
fn get(port: u16, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut all = Vec::new();
    sock.read_to_end(&mut all).ok()?;
    let split = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let ok = all.starts_with(b"HTTP/1.1 200") || all.starts_with(b"HTTP/1.0 200");
    ok.then(|| all[split + 4..].to_vec())
}

/// `rehost check --json`: one object per URL; without `--video` the kind is
/// sniffed and its own limit applies (a 50 MiB MP4 is no `too_large` image).
#[tokio::test]
async fn check_json_and_the_sniffed_kinds_limit() {
    let origin = origin().await;
    let urls = [
        origin.url("gen/big.mp4?mib=50"),
        origin.url("photo.jpg"),
        origin.url("missing.jpg"),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec!["check", "--json"];
        args.extend(urls.iter().map(String::as_str));
        rehost(&args, &[("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")])
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1));
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0]["ok"], true, "{}", objects[0]);
    assert_eq!(objects[0]["asset"]["content_type"], "video/mp4");
    assert!(
        objects[0]["asset"]["bytes"]
            .as_u64()
            .is_some_and(|b| b > 50 * 1024 * 1024)
    );
    assert_eq!(objects[1]["asset"]["width"], 1080);
    assert_eq!(objects[2]["ok"], false);
    assert_eq!(objects[2]["error"]["code"], "not_found");
    // An image still gets the image limit.
    let big_image = origin.url("photo.jpg");
    let out = tokio::task::spawn_blocking(move || {
        rehost(
            &["check", &big_image],
            &[
                ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32"),
                ("REHOST_MAX_IMAGE_BYTES", "1000"),
            ],
        )
    })
    .await
    .expect("join");
    assert!(String::from_utf8_lossy(&out.stdout).contains("too_large"));
}

#[tokio::test]
async fn check_names_each_platforms_verdict() {
    let origin = origin().await;
    let urls = [origin.url("phone-exif6.png"), origin.url("tall-1x3.jpg")];
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            rehost(&args, &[("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")])
        })
    };
    let args = |extra: &[&str], urls: &[String]| {
        let mut a: Vec<String> = ["check", "--platform"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(urls.iter().cloned());
        a
    };
    let out = run(args(&["tiktok,instagram"], &urls)).await.expect("join");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("tiktok: fixable (orient, flatten, to_jpeg, strip_metadata)"),
        "{text}"
    );
    assert!(
        lines[1].contains("tiktok: ok") && lines[1].contains("instagram: rejected (image_aspect)"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "a platform rejects");
    // Only TikTok, only the PNG: nothing rejects.
    let out = run(args(&["tiktok"], &urls[..1])).await.expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // An unknown platform is a usage error.
    let out = run(args(&["myspace"], &urls[..1])).await.expect("join");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown platform \"myspace\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn profiles_lists_sources_and_dates() {
    let out = rehost(&["profiles", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()));
    let names: Vec<&str> = v["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "tiktok",
            "instagram",
            "facebook",
            "threads",
            "youtube",
            "linkedin",
            "x",
            "pinterest",
            "bluesky"
        ]
    );
    let out = rehost(&["profiles"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(checked "));
}

/// Regression: on a moov-at-end MP4 from an origin that ignores `Range`,
/// `check --platform instagram` said `ok`: the trailing moov was never read,
/// so every rule was skipped, though the box order was known. It is judged
/// from the box order now, and `fixable (faststart)` where re-hosting
/// would move the box.
#[tokio::test]
async fn check_judges_moov_first_from_the_box_order() {
    let origin = origin().await;
    let check = |url: String| {
        tokio::task::spawn_blocking(move || {
            rehost(
                &["check", "--video", "--platform", "instagram", &url],
                &[("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")],
            )
        })
    };
    // 4 MiB: the moov lies past what a check reads, and is never read.
    for url in [
        origin.url("gen/v.mp4?mib=4&moov=end&ignore_range=1"),
        origin.url("fs-h264-aac.mp4?ignore_range=1"),
    ] {
        let out = check(url).await.expect("join");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("instagram: rejected (moov_first)"), "{text}");
        assert_eq!(out.status.code(), Some(1), "{text}");
    }
    let out = check(origin.url("fs-h264-aac.mp4")).await.expect("join");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("instagram: fixable (faststart)"), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
}
