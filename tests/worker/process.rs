//! The binary under signals: SIGKILL loses nothing; SIGTERM finishes in-flight work.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rehost::result::Status;

use crate::helpers::*;

fn spawn_worker(b: &Bench) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
    cmd.arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &b.settings {
        cmd.env(k, v);
    }
    cmd.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("spawn rehost worker")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "worker did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sigkill_mid_job_loses_nothing() {
    if !broker_or_skip("sigkill_mid_job_loses_nothing") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let mut first = spawn_worker(&b);
    b.publish(&job(
        "killed",
        &[origin.url("photo.jpg?delay_ms=2000")],
        true,
    ))
    .await;
    eventually("the job is in flight", || async {
        origin.stats.requests() >= 1
    })
    .await;
    signal(&first, "-KILL");
    let _ = wait_exit(&mut first);
    assert!(
        b.try_next_result(Duration::from_millis(500))
            .await
            .is_none(),
        "no result from the killed worker"
    );
    let mut second = spawn_worker(&b);
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status, r.attempts),
        ("killed", Status::Ready, 1),
        "a crash is not an attempt"
    );
    signal(&second, "-TERM");
    assert!(wait_exit(&mut second).success());
    b.cleanup().await;
}

#[tokio::test]
async fn sigterm_lets_the_job_in_flight_finish() {
    if !broker_or_skip("sigterm_lets_the_job_in_flight_finish") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let mut child = spawn_worker(&b);
    b.publish(&job(
        "graceful",
        &[origin.url("photo.jpg?delay_ms=1500")],
        true,
    ))
    .await;
    eventually("the job is in flight", || async {
        origin.stats.requests() >= 1
    })
    .await;
    signal(&child, "-TERM");
    let r = b.next_result().await;
    assert_eq!((r.job_id.as_str(), r.status), ("graceful", Status::Ready));
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "clean stop");
    b.cleanup().await;
}

#[tokio::test]
async fn worker_without_a_store_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .arg("worker")
        .env_remove("REHOST_STORE_DIR")
        .env_remove("S3_BUCKET")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("REHOST_STORE_DIR"), "{err}");
}

/// Regression: the delivery budget was a constant 25 minutes whatever the
/// job deadline, so an hour-long try's result was never published. Settings
/// that cannot fit under the consumer timeout now stop the worker at start.
#[tokio::test]
async fn a_job_deadline_over_the_consumer_timeout_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |consumer: &str| {
        Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("worker")
            .env("REHOST_STORE_DIR", dir.path())
            .env("REHOST_JOB_TIMEOUT_SECS", "3600")
            .env("REHOST_CONSUMER_TIMEOUT_SECS", consumer)
            .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
            .env("REHOST_HTTP_ADDR", "127.0.0.1:0")
            .output()
            .expect("run")
    };
    let out = run("1800");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("REHOST_CONSUMER_TIMEOUT_SECS"), "{err}");
    assert!(err.contains("REHOST_JOB_TIMEOUT_SECS"), "{err}");
    let check = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .arg("check-config")
        .env("REHOST_JOB_TIMEOUT_SECS", "3600")
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .expect("run");
    assert_eq!(check.status.code(), Some(2), "check-config agrees");
}

/// A public base outside the prefixes verified for the publishing app,
/// or an http base on a public address, stops the worker at start.
#[tokio::test]
async fn public_urls_that_platforms_would_refuse_stop_the_worker_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |base: &str, verified: &str| {
        Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("worker")
            .env("REHOST_STORE_DIR", dir.path())
            .env("PUBLIC_BASE_URL", base)
            .env("REHOST_VERIFIED_URL_PREFIXES", verified)
            .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
            .env("REHOST_HTTP_ADDR", "127.0.0.1:0")
            .output()
            .expect("run")
    };
    let out = run(
        "https://media.example.net/media2",
        "https://media.example.net/media/,example.org",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for part in [
        "REHOST_VERIFIED_URL_PREFIXES",
        "https://media.example.net/media2/",
        "https://media.example.net/media/, example.org",
    ] {
        assert!(err.contains(part), "names {part}: {err}");
    }
    let out = run("http://203.0.113.9/media", "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PUBLIC_BASE_URL") && err.contains("https"),
        "{err}"
    );
}

#[tokio::test]
async fn loadtest_reports_every_job_and_no_losses() {
    if !broker_or_skip("loadtest_reports_every_job_and_no_losses") {
        return;
    }
    let b = Bench::new(&[]).await;
    let report = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
    cmd.args([
        "loadtest",
        "--jobs",
        "6",
        "--images",
        "3",
        "--videos",
        "1",
        "--video-mib",
        "2",
        "--hosted-ratio",
        "0.5",
    ])
    .args([
        "--spawn-workers",
        "1",
        "--deadline-secs",
        "60",
        "--json",
        "--report",
    ])
    .arg(report.path())
    .current_dir(report.path())
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &b.settings {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(summary["jobs"], 7);
    assert_eq!(summary["ready"], 7, "{summary}");
    assert_eq!(summary["lost"], 0);
    for key in [
        "jobs_per_sec",
        "images_per_sec",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "failed",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing");
    }
    for file in ["summary.json", "throughput.svg", "latency.svg"] {
        let text = std::fs::read_to_string(report.path().join(file)).expect(file);
        assert!(!text.is_empty());
        if file.ends_with(".svg") {
            assert!(text.contains("<svg"), "{file}");
        }
    }
    b.cleanup().await;
}

/// Regression: SIGTERM while the worker was still starting (here: sweeping
/// a store that does not answer) killed it, because the handlers were
/// installed only once the consume loop ran.
#[tokio::test]
async fn sigterm_during_start_up_is_a_clean_stop() {
    if !broker_or_skip("sigterm_during_start_up_is_a_clean_stop") {
        return;
    }
    // An S3 endpoint that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    let mut b = Bench::new(&[]).await;
    b.settings.retain(|(k, _)| *k != "REHOST_STORE_DIR");
    for (k, v) in [
        ("S3_BUCKET", "media"),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
        ("REHOST_SHUTDOWN_GRACE_SECS", "2"),
    ] {
        b.settings.push((k, v.to_string()));
    }
    let mut child = spawn_worker(&b);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    let status = wait_exit(&mut child);
    assert_eq!(
        status.code(),
        Some(0),
        "clean stop, not death by signal: {status:?}"
    );
    drop(silent);
    b.cleanup().await;
}

/// Regression: a malformed `AMQP_URL` made the worker reconnect forever.
#[tokio::test]
async fn a_malformed_amqp_url_is_a_configuration_error() {
    for url in [
        "amqp://guest:guest@127.0.0.1:notaport/%2f",
        "amqp://[::1/%2f",
        "amqp//x",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("worker")
            .env("AMQP_URL", url)
            .env("REHOST_STORE_DIR", std::env::temp_dir())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid setting AMQP_URL"), "{url}: {err}");
        assert!(
            !err.contains("guest:guest"),
            "the password is not printed: {err}"
        );
    }
}

/// A load test that measured nothing says so and fails: every job of its
/// mix is meant to be ready.
#[tokio::test]
async fn a_loadtest_whose_jobs_fail_exits_non_zero() {
    if !broker_or_skip("a_loadtest_whose_jobs_fail_exits_non_zero") {
        return;
    }
    let b = Bench::new(&[]).await;
    let media = tempfile::tempdir().expect("tempdir");
    for name in ["photo.jpg", "portrait.jpg", "clip.mp4"] {
        std::fs::write(media.path().join(name), b"<html>not media</html>").expect("write");
    }
    for (dir, want) in [
        (media.path().to_path_buf(), "FAILED"),
        (media.path().join("missing"), "media directory"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
        cmd.args([
            "loadtest",
            "--jobs",
            "3",
            "--images",
            "2",
            "--spawn-workers",
            "1",
            "--deadline-secs",
            "60",
        ])
        .arg("--media")
        .arg(&dir)
        .current_dir(media.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &b.settings {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
    b.cleanup().await;
}

/// `rehost healthcheck` (the container's health check) asks the worker at
/// `REHOST_HTTP_ADDR` for `/healthz`.
#[tokio::test]
async fn healthcheck_asks_the_worker() {
    if !broker_or_skip("healthcheck_asks_the_worker") {
        return;
    }
    let b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let run = |addr: String| {
        Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("healthcheck")
            .env_clear()
            .env("REHOST_HTTP_ADDR", addr)
            .output()
            .expect("run")
    };
    let addr = format!("0.0.0.0:{}", w.http_addr.port());
    let out = tokio::task::spawn_blocking(move || run(addr))
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.stop().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let out = tokio::task::spawn_blocking(move || run(addr))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1));
    b.cleanup().await;
}
