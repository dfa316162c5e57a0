//! Re-hosted posts: exact bytes under content-addressed keys, stored once.

use rehost::result::{MediaOut, Status};
use sha2::{Digest, Sha256};

use crate::helpers::*;

#[tokio::test]
async fn slideshow_is_stored_under_sha256_keys_in_order() {
    let origin = origin().await;
    let h = verbatim_harness().await;
    let files = [
        "photo.jpg",
        "graphic.png",
        "photo.webp",
        "trailer.jpg",
        "png-named.jpg",
    ];
    let urls: Vec<String> = files.iter().map(|f| origin.url(f)).collect();
    let r = h.run(&slideshow(&urls, true)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.rehosted, Some(true));
    let assets = r.assets.expect("assets");
    let Some(MediaOut::Slideshow { urls: out }) = r.media else {
        panic!("slideshow shape");
    };
    for ((a, f), u) in assets.iter().zip(files).zip(&out) {
        let bytes = fixture(f);
        let sha = hex::encode(Sha256::digest(&bytes));
        let ext = match a.content_type.as_str() {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            _ => "webp",
        };
        let key = format!("ws_test/{}/{sha}.{ext}", &sha[..2]);
        assert_eq!(u, &format!("https://media.example.net/{key}"), "{f}");
        assert_eq!(&a.url, u);
        assert_eq!(a.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(a.bytes, Some(bytes.len() as u64));
        assert_eq!(a.source_url, origin.url(f));
        let stored = std::fs::read(h.store_dir.path().join(&key)).expect("stored file");
        assert_eq!(stored, bytes, "{f}: exact bytes");
    }
    assert_eq!(assets[4].content_type, "image/png", "sniffed, not named");
}

#[tokio::test]
async fn a_second_run_stores_nothing_new() {
    let origin = origin().await;
    let h = default_harness().await;
    let job = slideshow(
        &[
            origin.url("photo.jpg"),
            origin.url("photo.jpg?copy=2"),
            origin.url("alpha.png"),
        ],
        true,
    );
    let first = h.run(&job).await;
    let files = h.stored_files();
    let times = mtimes(&h, &files);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = h.run(&job).await;
    assert_eq!(first.media, second.media, "same URLs");
    assert_eq!(h.stored_files(), files, "no new files");
    let again = mtimes(&h, &files);
    assert_eq!(times, again, "nothing rewritten");
    assert_eq!(files.len(), 2, "identical bytes stored once: {files:?}");
}

#[tokio::test]
async fn videos_of_every_container() {
    let origin = origin().await;
    let h = default_harness().await;
    for (f, ct, codec) in [
        ("clip.mp4", "video/mp4", "h264"),
        ("clip-moov-end.mp4", "video/mp4", "h264"),
        ("clip.mov", "video/quicktime", "h264"),
        ("clip.webm", "video/webm", "vp9"),
        ("clip-hevc.mp4", "video/mp4", "hevc"),
    ] {
        let r = h.run(&video(&origin.url(f), true)).await;
        assert_eq!(r.status, Status::Ready, "{f}: {:?}", r.error);
        let a = &r.assets.expect("assets")[0];
        assert_eq!(a.content_type, ct);
        assert_eq!((a.width, a.height), (Some(640), Some(360)), "{f}");
        assert_eq!(a.codec.as_deref(), Some(codec), "{f}");
        assert!(
            a.duration_ms.is_some_and(|d| (900..=2100).contains(&d)),
            "{f}: {:?}",
            a.duration_ms
        );
        let sha = a.sha256.clone().expect("sha");
        let stored = std::fs::read(h.store_dir.path().join(format!(
            "ws_test/{}/{sha}.{}",
            &sha[..2],
            &f[f.rfind('.').map_or(0, |i| i + 1)..]
        )))
        .expect("stored");
        assert_eq!(stored, fixture(f));
    }
    let tmp = std::fs::read_dir(h.store_dir.path().join(".rehost/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0, "no temp files left");
}

#[tokio::test]
async fn failed_video_leaves_no_temp_file() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h
        .run(&video(&origin.url("clip.mp4?truncate=80000"), true))
        .await;
    assert_eq!(r.status, Status::Retry);
    let r = h.run(&video(&origin.url("truncated.mp4"), true)).await;
    assert_eq!(r.status, Status::Failed);
    assert!(h.stored_files().is_empty(), "{:?}", h.stored_files());
}

fn mtimes(h: &Harness, files: &[std::path::PathBuf]) -> Vec<std::time::SystemTime> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(h.store_dir.path().join(f))
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .collect()
}

/// Regression: a BYO image opened its response, then waited for the image
/// memory budget with its clock running, so a healthy image behind large
/// ones failed `unreachable`. Here two images of the image limit hold the
/// whole budget (their origin stalls them until their deadline, about
/// 3.3 s) while a third, whose base deadline is 2 s, waits for memory.
#[tokio::test]
async fn an_images_wait_for_memory_is_not_charged_to_it() {
    let origin = origin().await;
    let max = 128 * 1024 * 1024 + 64 * 1024;
    let mut settings = verbatim();
    settings.push(("REHOST_MAX_IMAGE_BYTES", max.to_string()));
    let h = harness(Options {
        settings,
        fetch: rehost::fetch::FetchConfig {
            base_timeout: std::time::Duration::from_secs(2),
            stall_timeout: std::time::Duration::from_secs(4),
            min_rate_bytes_per_sec: 100_000_000,
            ..Options::default().fetch
        },
        ..Options::default()
    })
    .await;
    // 128 MiB and a few KiB each, declared: together the whole budget but
    // for less than the photo.
    let big = |seed: u32| origin.url(&format!("gen/big.mp4?mib=128&seed={seed}&stall_after=1000"));
    let hogs = slideshow(&[big(1), big(2)], true);
    let photo = slideshow(&[origin.url("photo.jpg")], true);
    let (hogged, waited) = tokio::join!(h.run(&hogs), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        h.run(&photo).await
    });
    assert_eq!(
        hogged.status,
        Status::Retry,
        "the hogs time out: {:?}",
        hogged.error
    );
    assert_eq!(waited.status, Status::Ready, "{:?}", waited.error);
}
