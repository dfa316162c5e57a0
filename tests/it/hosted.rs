//! Hosted-only posts: a prefix is read, never the whole file; URLs kept.

use rehost::result::Status;

use crate::helpers::*;

#[tokio::test]
async fn hosted_slideshow_reads_only_a_prefix() {
    let origin = origin().await;
    let h = default_harness().await;
    let files = [
        "photo.jpg",
        "portrait.jpg",
        "graphic.png",
        "photo.webp",
        "exif.jpg",
        "progressive.jpg",
    ];
    let urls: Vec<String> = files.iter().map(|f| origin.url(f)).collect();
    let r = h.run(&slideshow(&urls, false)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.rehosted, Some(false));
    let assets = r.assets.expect("assets");
    for (a, f) in assets.iter().zip(files) {
        assert_eq!(a.url, origin.url(f), "original URL kept");
        assert_eq!(a.sha256, None);
        assert_eq!(
            a.bytes,
            Some(fixture(f).len() as u64),
            "{f}: total size from Content-Range"
        );
        assert!(a.width.is_some() && a.height.is_some());
    }
    let total: u64 = files.iter().map(|f| fixture(f).len() as u64).sum();
    let served = origin.stats.bytes_sent();
    assert!(
        served <= files.len() as u64 * 64 * 1024,
        "served {served} bytes of {total}"
    );
    assert!(h.stored_files().is_empty(), "hosted-only stores nothing");
}

#[tokio::test]
async fn origin_ignoring_range_is_read_only_to_the_prefix() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h
        .run(&video(
            &origin.url("gen/big.mp4?mib=64&ignore_range=1"),
            false,
        ))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let a = &r.assets.expect("assets")[0];
    assert_eq!(
        a.width,
        Some(640),
        "moov at the front is read from the prefix"
    );
    assert!(a.bytes.is_some_and(|b| b > 64 * 1024 * 1024));
    let served = origin.stats.bytes_sent();
    assert!(
        served < 8 * 1024 * 1024,
        "the connection was dropped early: {served} bytes sent"
    );
}

#[tokio::test]
async fn trailing_moov_costs_one_ranged_read_of_the_tail() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h
        .run(&video(&origin.url("gen/tail.mp4?mib=8&moov=end"), false))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let a = &r.assets.expect("assets")[0];
    assert_eq!(
        (a.width, a.height, a.duration_ms),
        (Some(640), Some(360), Some(2000))
    );
    assert_eq!(a.codec.as_deref(), Some("h264"));
    assert_eq!(origin.stats.requests(), 2);
    assert!(
        origin.stats.bytes_sent() < 256 * 1024,
        "{}",
        origin.stats.bytes_sent()
    );
}

#[tokio::test]
async fn hosted_video_formats() {
    let origin = origin().await;
    let h = default_harness().await;
    for (f, codec) in [
        ("clip.webm", "vp9"),
        ("clip.mov", "h264"),
        ("clip-hevc.mp4", "hevc"),
        ("clip-moov-end.mp4", "h264"),
    ] {
        let r = h.run(&video(&origin.url(f), false)).await;
        assert_eq!(r.status, Status::Ready, "{f}: {:?}", r.error);
        let a = &r.assets.expect("assets")[0];
        assert_eq!(a.codec.as_deref(), Some(codec), "{f}");
        assert_eq!(a.url, origin.url(f));
    }
}

#[tokio::test]
async fn thirty_five_images_pass_and_thirty_six_fail() {
    let origin = origin().await;
    let h = default_harness().await;
    let urls: Vec<String> = (0..36)
        .map(|i| origin.url(&format!("small.jpg?n={i}")))
        .collect();
    let r = h.run(&slideshow(&urls[..35], false)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.assets.expect("assets").len(), 35);
    let r = h.run(&slideshow(&urls, false)).await;
    assert_eq!(
        r.error.map(|e| e.code),
        Some(rehost::error::ErrorCode::TooManyImages)
    );
}

#[tokio::test]
async fn requests_say_who_they_are_and_ask_for_identity() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h.run(&slideshow(&[origin.url("small.jpg")], false)).await;
    assert_eq!(r.status, Status::Ready);
    assert_eq!(
        origin.stats.last_header("user-agent").as_deref(),
        Some(concat!("rehost/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        origin.stats.last_header("accept-encoding").as_deref(),
        Some("identity")
    );
    assert_eq!(
        origin.stats.last_header("range").as_deref(),
        Some("bytes=0-65535")
    );
    assert_eq!(origin.stats.last_header("referer"), None);
}

/// Regression: a JPEG whose frame header lies behind a 150 KB ICC profile
/// (written by a real encoder) was `corrupt_media` on the hosted path: the
/// 64 KiB prefix was never extended after its response ended.
#[tokio::test]
async fn headers_past_the_prefix_are_read_with_more_ranged_reads() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h.run(&slideshow(&[origin.url("big-icc.jpg")], false)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let a = &r.assets.expect("assets")[0];
    assert_eq!((a.width, a.height), (Some(800), Some(600)));
    assert_eq!(a.bytes, Some(fixture("big-icc.jpg").len() as u64));
    let r = h
        .run(&video(&origin.url("webm-late-tracks.webm"), false))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let a = &r.assets.expect("assets")[0];
    assert_eq!(
        a.codec.as_deref(),
        Some("vp9"),
        "Tracks found past the prefix"
    );
}

/// Regression: a hosted MP4 with `moov` at the end read its tail while its
/// first response still held the host's only connection place: it waited
/// for itself until the job deadline.
#[tokio::test]
async fn a_trailing_moov_never_waits_for_its_own_connection() {
    let origin = origin().await;
    let h = harness(Options {
        fetch: rehost::fetch::FetchConfig {
            per_host_connections: 1,
            ..Options::default().fetch
        },
        ..Options::default()
    })
    .await;
    let url = origin.url("gen/tail.mp4?mib=4&moov=end");
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        h.run(&video(&url, false)),
    )
    .await
    .expect("no self-deadlock with one place per host");
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(
        r.assets.expect("assets")[0].width,
        Some(640),
        "moov read from the tail"
    );
    // Many such jobs at once from one host, more than its places.
    let h = harness(Options {
        fetch: rehost::fetch::FetchConfig {
            per_host_connections: 2,
            ..Options::default().fetch
        },
        ..Options::default()
    })
    .await;
    let jobs: Vec<_> = (0..8)
        .map(|i| {
            video(
                &origin.url(&format!("gen/t{i}.mp4?mib=2&moov=end&seed={i}")),
                false,
            )
        })
        .collect();
    let all = futures_util::future::join_all(jobs.iter().map(|j| h.run(j)));
    let results = tokio::time::timeout(std::time::Duration::from_secs(30), all)
        .await
        .expect("every job finishes");
    assert!(results.iter().all(|r| r.status == Status::Ready));
}

/// WebM puts Tracks before the first Cluster; a file whose Tracks follow
/// the Clusters (as `mkvpropedit` leaves one) is refused on both paths.
#[tokio::test]
async fn webm_tracks_after_the_clusters_are_corrupt() {
    let origin = origin().await;
    let h = default_harness().await;
    for byo in [false, true] {
        let r = h
            .run(&video(&origin.url("webm-tracks-at-end.webm"), byo))
            .await;
        assert_eq!(
            r.error.map(|e| e.code),
            Some(rehost::error::ErrorCode::CorruptMedia),
            "byo {byo}"
        );
    }
}
