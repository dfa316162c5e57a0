//! Contract v3 end to end: verdicts per account, the status rule, the
//! checks modes, normalisation of re-hosted images and its bounds.

use rehost::error::ErrorCode;
use rehost::profiles::verdict::Verdict;
use rehost::result::{ResultMessage, Status};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

fn job(accounts: Value, urls: &[String]) -> Value {
    json!({
        "job_id": "job_platforms",
        "post_id": "post_1",
        "workspace_id": "ws_test",
        "accounts": accounts,
        "media": {"type": "slideshow", "urls": urls},
    })
}

fn byo(platforms: &[&str]) -> Value {
    Value::Array(
        platforms
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"id": format!("a{i}"), "platform": p, "type": "byo"}))
            .collect(),
    )
}

fn verdicts(r: &ResultMessage) -> Vec<(String, Verdict)> {
    r.accounts
        .iter()
        .map(|a| (a.platform.clone(), a.verdict))
        .collect()
}

async fn settings_harness(settings: &[(&'static str, &str)]) -> Harness {
    harness(Options {
        settings: settings.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_png_with_gps_is_stored_as_an_upright_jpeg_without_it() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h
        .run(&job(byo(&["tiktok"]), &[origin.url("phone-exif6.png")]))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(verdicts(&r), [("tiktok".to_string(), Verdict::Ok)]);
    assert!(!r.profiles_version.is_empty());
    let a = &r.assets.expect("assets")[0];
    let n = a.normalized.as_ref().expect("normalised");
    assert_eq!(n.steps, ["orient", "flatten", "to_jpeg", "strip_metadata"]);
    let source = fixture("phone-exif6.png");
    assert_eq!(n.source_sha256, hex::encode(Sha256::digest(&source)));
    assert_eq!(
        (n.source_content_type.as_str(), n.source_bytes),
        ("image/png", source.len() as u64)
    );
    // Stored 600x450 turned by its orientation: displayed 450x600.
    assert_eq!((n.source_width, n.source_height), (450, 600));
    assert_eq!((a.width, a.height), (Some(450), Some(600)));
    assert_eq!(a.content_type, "image/jpeg");
    let stored = std::fs::read(h.store_dir.path().join(key_of(&a.url))).expect("stored");
    assert_eq!(
        a.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&stored)).as_str())
    );
    assert!(memchr::memmem::find(&source, b"GPS").is_some());
    assert!(memchr::memmem::find(&stored, b"GPS").is_none());
    assert!(
        memchr::memmem::find(&stored, b"Exif").is_none(),
        "orientation applied, not kept"
    );
}

/// The object key of a stored URL.
fn key_of(url: &str) -> String {
    url.trim_start_matches("https://media.example.net/")
        .to_string()
}

#[tokio::test]
async fn retries_and_duplicates_land_on_the_same_keys() {
    let origin = origin().await;
    let h = default_harness().await;
    let urls = [origin.url("phone-exif6.png"), origin.url("photo.webp")];
    let first = h.run(&job(byo(&["instagram"]), &urls)).await;
    let files = h.stored_files();
    let second = h.run(&job(byo(&["instagram"]), &urls)).await;
    assert_eq!(first.media, second.media);
    assert_eq!(h.stored_files(), files, "nothing new stored");
}

#[tokio::test]
async fn no_account_can_take_it_means_platform_rejected() {
    let origin = origin().await;
    let h = default_harness().await;
    let urls: Vec<String> = (0..12)
        .map(|i| origin.url(&format!("photo.jpg?n={i}")))
        .collect();
    let r = h.run(&job(byo(&["instagram", "x"]), &urls)).await;
    assert_eq!(r.status, Status::Failed);
    let e = r.error.clone().expect("error");
    assert_eq!(
        (e.code, e.asset_index, e.retryable),
        (ErrorCode::PlatformRejected, None, false)
    );
    assert!(
        e.message.contains("instagram takes 1..10 images"),
        "{}",
        e.message
    );
    assert_eq!(
        verdicts(&r),
        [
            ("instagram".to_string(), Verdict::Rejected),
            ("x".to_string(), Verdict::Rejected)
        ]
    );
    assert_eq!(r.accounts[0].violations[0].rule, "images_per_post");
    assert_eq!(r.accounts[0].violations[0].actual, "12");
    assert!(r.assets.is_none() && r.media.is_none());
    // The same post with one account that can take it is ready.
    let r = h.run(&job(byo(&["instagram", "tiktok"]), &urls)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.accounts[1].verdict, Verdict::Ok);
}

#[tokio::test]
async fn the_first_violation_is_reported_by_asset_then_account() {
    let origin = origin().await;
    let h = default_harness().await;
    // Asset 1 is 1:3: Instagram (4:5 at the least) cannot take it; Threads can.
    let urls = [origin.url("photo.jpg"), origin.url("tall-1x3.jpg")];
    let r = h.run(&job(byo(&["instagram"]), &urls)).await;
    let e = r.error.expect("error");
    assert_eq!(
        (e.code, e.asset_index),
        (ErrorCode::PlatformRejected, Some(1))
    );
    let r = h.run(&job(byo(&["instagram", "threads"]), &urls)).await;
    assert_eq!(r.status, Status::Ready);
    assert_eq!(r.accounts[0].violations[0].rule, "image_aspect");
}

#[tokio::test]
async fn report_mode_reports_and_never_fails() {
    let origin = origin().await;
    let h = settings_harness(&[("REHOST_PLATFORM_CHECKS", "report")]).await;
    let urls = [origin.url("tall-1x3.jpg")];
    let r = h.run(&job(byo(&["instagram"]), &urls)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.accounts[0].verdict, Verdict::Rejected);
}

#[tokio::test]
async fn checks_off_means_unchecked_and_no_conversion() {
    let origin = origin().await;
    let h = settings_harness(&[("REHOST_PLATFORM_CHECKS", "off")]).await;
    let r = h
        .run(&job(byo(&["instagram"]), &[origin.url("phone-exif6.png")]))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.accounts[0].verdict, Verdict::Unchecked);
    let a = &r.assets.expect("assets")[0];
    assert_eq!(a.content_type, "image/png", "not converted");
    let n = a.normalized.as_ref().expect("metadata still stripped");
    assert_eq!(n.steps, ["strip_metadata"]);
}

#[tokio::test]
async fn hosted_accounts_are_unchecked_and_never_rejected() {
    let origin = origin().await;
    let h = default_harness().await;
    let hosted = json!([{"id": "h", "platform": "instagram", "type": "hosted"},
                        {"id": "u", "platform": "myspace", "type": "byo"}]);
    let r = h.run(&job(hosted, &[origin.url("tall-1x3.jpg")])).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(
        verdicts(&r),
        [
            ("instagram".to_string(), Verdict::Unchecked),
            ("myspace".to_string(), Verdict::Unchecked)
        ]
    );
}

#[tokio::test]
async fn base_failures_and_retries_leave_every_account_unchecked() {
    let origin = origin().await;
    let h = default_harness().await;
    let r = h
        .run(&job(
            byo(&["instagram"]),
            &[origin.url("photo.jpg?status=503")],
        ))
        .await;
    assert_eq!(r.status, Status::Retry);
    assert_eq!(
        verdicts(&r),
        [("instagram".to_string(), Verdict::Unchecked)]
    );
    let r = h
        .run(&job(byo(&["instagram"]), &[origin.url("no-such-file.jpg")]))
        .await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        verdicts(&r),
        [("instagram".to_string(), Verdict::Unchecked)]
    );
    // An invalid job with valid accounts echoes them; with invalid ones, [].
    let mut bad = job(byo(&["tiktok"]), &[]);
    let r = h.run(&bad).await;
    assert_eq!(r.error.as_ref().map(|e| e.code), Some(ErrorCode::NoImages));
    assert_eq!(verdicts(&r), [("tiktok".to_string(), Verdict::Unchecked)]);
    bad["accounts"] = json!("nope");
    assert!(h.run(&bad).await.accounts.is_empty());
}

#[tokio::test]
async fn an_image_too_large_to_decode_rejects_the_accounts_that_needed_it() {
    let origin = origin().await;
    let h = default_harness().await;
    // 100 megapixels: within the pixel limit, but LinkedIn's 36 MP needs a
    // decode that cannot fit the decode budget. It is stored as it is.
    let urls = [origin.url("gray-100mp.png")];
    let r = h.run(&job(byo(&["linkedin", "facebook"]), &urls)).await;
    assert_eq!(r.status, Status::Ready, "Facebook takes it: {:?}", r.error);
    assert_eq!(r.accounts[0].verdict, Verdict::Rejected);
    assert_eq!(r.accounts[0].violations[0].rule, "image_pixels");
    assert_eq!(r.accounts[1].verdict, Verdict::Ok);
    let a = &r.assets.expect("assets")[0];
    assert_eq!(a.content_type, "image/png");
    assert_eq!(a.bytes, Some(fixture("gray-100mp.png").len() as u64));
    let r = h.run(&job(byo(&["linkedin"]), &urls)).await;
    let e = r.error.expect("error");
    assert_eq!(
        (e.code, e.asset_index),
        (ErrorCode::PlatformRejected, Some(0))
    );
}

/// Regression: with `REHOST_STRIP_METADATA=false`, a multi-picture JPEG
/// stored for a platform that takes only JPEG still lost its EXIF: the
/// first picture is now kept with its metadata.
#[tokio::test]
async fn a_multi_picture_jpeg_keeps_its_metadata_when_stripping_is_off() {
    let origin = origin().await;
    let h = settings_harness(&[("REHOST_STRIP_METADATA", "false")]).await;
    let r = h
        .run(&job(byo(&["instagram"]), &[origin.url("mpo.jpg")]))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let a = &r.assets.expect("assets")[0];
    let n = a.normalized.as_ref().expect("normalised");
    assert_eq!(n.steps, ["first_frame"]);
    let stored = std::fs::read(h.store_dir.path().join(key_of(&a.url))).expect("stored");
    let meta = rehost::media::image::meta::scan(rehost::media::Format::Jpeg, &stored);
    assert!(meta.personal && !meta.multi_picture, "{meta:?}");
}
