//! Every error code of the contract, produced end to end.

use std::time::Duration;

use rehost::error::ErrorCode::{self, *};
use rehost::fetch::FetchConfig;
use rehost::fetch::guard::AllowList;
use rehost::result::Status;
use serde_json::json;

use crate::helpers::*;

async fn image_code(path: &str) -> Option<ErrorCode> {
    let origin = origin().await;
    let h = default_harness().await;
    h.code(&slideshow(&[origin.url(path)], true)).await
}

async fn video_code(path: &str) -> Option<ErrorCode> {
    let origin = origin().await;
    let h = default_harness().await;
    h.code(&video(&origin.url(path), true)).await
}

#[tokio::test]
async fn payload_codes() {
    let h = default_harness().await;
    let mut j = slideshow(&["http://127.0.0.1:1/a.jpg".into()], true);
    j["workspace_id"] = json!("../escape");
    assert_eq!(h.code(&j).await, Some(InvalidPayload));
    assert_eq!(h.code(&slideshow(&[], true)).await, Some(NoImages));
    let many: Vec<String> = (0..36)
        .map(|i| format!("http://127.0.0.1:1/{i}.jpg"))
        .collect();
    assert_eq!(h.code(&slideshow(&many, true)).await, Some(TooManyImages));
    assert_eq!(
        h.code(&slideshow(&["ftp://x.example/a.jpg".into()], true))
            .await,
        Some(InvalidUrl)
    );
    assert_eq!(
        h.code(&slideshow(&["http://u:p@x.example/a.jpg".into()], true))
            .await,
        Some(InvalidUrl)
    );
    assert!(
        h.stored_files().is_empty(),
        "nothing is written for an invalid job"
    );
}

#[tokio::test]
async fn origin_status_codes() {
    assert_eq!(image_code("photo.jpg?status=404").await, Some(NotFound));
    assert_eq!(image_code("photo.jpg?status=410").await, Some(NotFound));
    assert_eq!(image_code("missing.jpg").await, Some(NotFound));
    assert_eq!(image_code("photo.jpg?status=401").await, Some(AccessDenied));
    assert_eq!(image_code("photo.jpg?status=403").await, Some(AccessDenied));
    assert_eq!(image_code("photo.jpg?status=503").await, Some(Unreachable));
    assert_eq!(image_code("photo.jpg?status=500").await, Some(Unreachable));
    assert_eq!(image_code("photo.jpg?status=429").await, Some(Unreachable));
}

#[tokio::test]
async fn retry_after_is_reported() {
    let origin = origin().await;
    let h = default_harness().await;
    let body = serde_json::to_vec(&slideshow(
        &[origin.url("photo.jpg?status=503&retry_after=42")],
        true,
    ))
    .expect("json");
    match h.pipeline.process(&body, None, 1).await {
        rehost::pipeline::Processed::Result {
            result,
            retry_after,
        } => {
            assert_eq!(result.status, Status::Retry);
            assert_eq!(retry_after, Some(Duration::from_secs(42)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unreachable_transport_failures() {
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let h = default_harness().await;
    assert_eq!(
        h.code(&slideshow(
            &[format!("http://127.0.0.1:{port}/a.jpg")],
            true
        ))
        .await,
        Some(Unreachable)
    );
    // A body cut short of its declared length.
    assert_eq!(
        image_code("photo.jpg?truncate=1000").await,
        Some(Unreachable)
    );
    assert_eq!(
        video_code("clip.mp4?truncate=70000").await,
        Some(Unreachable)
    );
    // More than 5 redirects.
    assert_eq!(image_code("photo.jpg?redirect=6").await, Some(Unreachable));
    assert_eq!(image_code("photo.jpg?redirect=5").await, None);
}

#[tokio::test]
async fn dns_failure_is_unreachable() {
    let h = harness(Options {
        lookup: std::sync::Arc::new(rehost::fetch::resolver::StaticLookup(|_: &str| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "NXDOMAIN",
            ))
        })),
        ..Options::default()
    })
    .await;
    assert_eq!(
        h.code(&slideshow(&["http://no-such-host.test/a.jpg".into()], true))
            .await,
        Some(Unreachable)
    );
}

#[tokio::test]
async fn stalls_and_trickles_hit_their_deadlines() {
    let origin = origin().await;
    let h = harness(Options {
        fetch: FetchConfig {
            stall_timeout: Duration::from_millis(300),
            base_timeout: Duration::from_secs(1),
            min_rate_bytes_per_sec: 1024 * 1024,
            allow: AllowList::parse("127.0.0.1/32").expect("allow"),
            ..FetchConfig::default()
        },
        ..Options::default()
    })
    .await;
    let started = std::time::Instant::now();
    // Sends 1 KiB, then nothing.
    let r = h
        .run(&slideshow(
            &[origin.url("photo.jpg?stall_after=1024")],
            true,
        ))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some(Unreachable));
    // Trickles 2 KB/s: 188 KB would take 90 s; the deadline is 1 s + 188 KB at 1 MiB/s.
    let r = h
        .run(&slideshow(&[origin.url("photo.jpg?rate=2000")], true))
        .await;
    let e = r.error.expect("error");
    assert_eq!(e.code, Unreachable, "{}", e.message);
    // A body that never ends, without a length, and under the byte limit per second.
    let r = h
        .run(&slideshow(
            &[origin.url("photo.jpg?endless=1&rate=100000")],
            true,
        ))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some(Unreachable));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "deadlines fired: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn job_deadline_fails_the_try_as_unreachable() {
    let origin = origin().await;
    let h = harness(Options {
        settings: vec![("REHOST_JOB_TIMEOUT_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    let r = h
        .run(&slideshow(&[origin.url("photo.jpg?delay_ms=5000")], true))
        .await;
    let e = r.error.expect("error");
    assert_eq!(
        (e.code, r.status),
        (Unreachable, Status::Retry),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn size_limits() {
    let origin = origin().await;
    let h = harness(Options {
        settings: vec![
            ("REHOST_MAX_IMAGE_BYTES", "100000".into()),
            ("REHOST_MAX_VIDEO_BYTES", "50000".into()),
        ],
        ..Options::default()
    })
    .await;
    // Declared above the limit.
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg")], true)).await,
        Some(TooLarge)
    );
    // Undeclared, counted while streaming.
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg?chunked=1")], true))
            .await,
        Some(TooLarge)
    );
    assert_eq!(
        h.code(&video(&origin.url("clip.mp4?chunked=1"), true))
            .await,
        Some(TooLarge)
    );
    // Hosted-only: the size the origin reports for the whole file.
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg")], false)).await,
        Some(TooLarge)
    );
    // Under the limit passes.
    assert_eq!(
        h.code(&slideshow(&[origin.url("graphic.png")], true)).await,
        None
    );
    // An endless body stops at the limit.
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg?endless=1")], true))
            .await,
        Some(TooLarge)
    );
}

#[tokio::test]
async fn format_codes() {
    for (path, code) in [
        ("html.jpg", UnsupportedFormat),
        ("anim.gif", UnsupportedFormat),
        ("image.bmp", UnsupportedFormat),
        ("empty.jpg", UnsupportedFormat),
        ("clip.mp4", MediaTypeMismatch),
        ("truncated.jpg", CorruptMedia),
        ("truncated.png", CorruptMedia),
        ("truncated.webp", CorruptMedia),
        ("corrupt-header.png", CorruptMedia),
        ("bomb-60000.png", DimensionsExceeded),
        ("bomb.jpg", DimensionsExceeded),
        ("bomb.webp", DimensionsExceeded),
    ] {
        assert_eq!(image_code(path).await, Some(code), "{path} in a slideshow");
    }
    for (path, code) in [
        ("clip.mkv", UnsupportedFormat),
        ("audio-only.m4a", UnsupportedFormat),
        ("photo.jpg", MediaTypeMismatch),
        ("truncated.mp4", CorruptMedia),
        ("moov-absurd.mp4", CorruptMedia),
        ("bogus-ebml.webm", CorruptMedia),
    ] {
        assert_eq!(video_code(path).await, Some(code), "{path} as a video");
    }
}

#[tokio::test]
async fn storage_failure_is_storage_unavailable() {
    let origin = origin().await;
    let h = default_harness().await;
    // Replace the store's temp directory by a file: every write fails.
    let tmp = h.store_dir.path().join(".rehost/tmp");
    std::fs::remove_dir_all(&tmp).expect("remove");
    std::fs::write(&tmp, b"not a directory").expect("write");
    let r = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    let e = r.error.expect("error");
    assert_eq!(
        (e.code, e.retryable, r.status),
        (StorageUnavailable, true, Status::Retry)
    );
    let r = h.run(&video(&origin.url("clip.mp4"), true)).await;
    assert_eq!(r.error.map(|e| e.code), Some(StorageUnavailable));
}

#[tokio::test]
async fn internal_when_a_rehosting_job_has_no_store() {
    let origin = origin().await;
    let h = harness(Options {
        store: TestStore::None,
        ..Options::default()
    })
    .await;
    let r = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    let e = r.error.expect("error");
    assert_eq!((e.code, e.retryable), (Internal, true));
    // Hosted-only needs no store.
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg")], false)).await,
        None
    );
}

#[tokio::test]
async fn permanent_beats_retryable_then_lowest_index() {
    let origin = origin().await;
    let h = default_harness().await;
    let urls = [
        origin.url("photo.jpg?status=503"),
        origin.url("photo.jpg?status=404&delay_ms=300"),
        origin.url("photo.jpg?status=404"),
        origin.url("graphic.png"),
    ];
    for _ in 0..3 {
        let e = h.run(&slideshow(&urls, true)).await.error.expect("error");
        assert_eq!(
            (e.code, e.asset_index),
            (NotFound, Some(1)),
            "{}",
            e.message
        );
    }
    let e = h
        .run(&slideshow(
            &[
                origin.url("photo.jpg"),
                origin.url("a.jpg?status=503"),
                origin.url("b.jpg?status=500"),
            ],
            true,
        ))
        .await
        .error
        .expect("error");
    assert_eq!((e.code, e.asset_index), (Unreachable, Some(1)));
}

#[tokio::test]
async fn a_decided_job_stops_its_other_fetches() {
    let origin = origin().await;
    let h = default_harness().await;
    let started = std::time::Instant::now();
    let r = h
        .run(&slideshow(
            &[
                origin.url("photo.jpg?status=404"),
                origin.url("photo.jpg?delay_ms=30000"),
            ],
            true,
        ))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some(NotFound));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait for the slow fetch"
    );
}
