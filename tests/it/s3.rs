//! The S3 store against a real S3 server (s3s-fs) over HTTP, signatures and all.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use rehost::config::{Config, Raw, StoreConfig};
use rehost::error::ErrorCode;
use rehost::result::Status;
use rehost::store::Store;
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::s3_server::{BUCKET, S3Server};

fn client(server: &S3Server) -> aws_sdk_s3::Client {
    let c = server.config();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(c.endpoint.clone().expect("endpoint"))
        .region(Region::new("auto"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The stored object behind an asset: checks the contract's headers and
/// returns its bytes.
async fn stored_object(server: &S3Server, a: &rehost::result::AssetOut) -> bytes::Bytes {
    stored_in(&client(server), a).await
}

/// The object behind an asset in bucket `media` of any S3 server: its
/// headers are the contract's and its bytes hash to the result's SHA-256.
pub(crate) async fn stored_in(
    s3: &aws_sdk_s3::Client,
    a: &rehost::result::AssetOut,
) -> bytes::Bytes {
    let key = a.url.trim_start_matches("https://media.example.net/");
    let obj = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("object exists");
    assert_eq!(obj.content_type(), Some(a.content_type.as_str()));
    assert_eq!(
        obj.cache_control(),
        Some("public, max-age=31536000, immutable")
    );
    let body = obj.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.len() as u64, a.bytes.expect("bytes"));
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        a.sha256.clone().expect("sha")
    );
    body
}

/// An S3 harness storing images exactly as fetched (these tests are about
/// the store, not normalisation).
async fn s3_harness(server: &S3Server) -> Harness {
    harness(Options {
        store: TestStore::Config(StoreConfig::S3(server.config())),
        settings: verbatim(),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn images_are_put_with_the_contracts_headers_and_exact_bytes() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let h = s3_harness(&server).await;
    let r = h
        .run(&slideshow(
            &[origin.url("photo.jpg"), origin.url("alpha.png")],
            true,
        ))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    for (a, f) in r
        .assets
        .expect("assets")
        .iter()
        .zip(["photo.jpg", "alpha.png"])
    {
        let sha = hex::encode(Sha256::digest(fixture(f)));
        let key = format!(
            "ws_test/{}/{sha}.{}",
            &sha[..2],
            if f.ends_with("png") { "png" } else { "jpg" }
        );
        assert_eq!(a.url, format!("https://media.example.net/{key}"));
        let body = stored_object(&server, a).await;
        assert_eq!(body.as_ref(), fixture(f).as_slice(), "{f}");
    }
}

/// Objects that hold media (not rehost's own bookkeeping under `.rehost/`).
fn media_objects(server: &S3Server) -> Vec<String> {
    server
        .objects()
        .into_iter()
        .filter(|k| !k.starts_with(".rehost/"))
        .collect()
}

/// PUTs of whole objects (not parts) outside `.rehost/`: writes of media.
fn media_puts(server: &S3Server) -> Vec<String> {
    server
        .requests("PUT")
        .into_iter()
        .filter(|l| !l.contains("partNumber=") && !l.contains("/.rehost/"))
        .collect()
}

#[tokio::test]
async fn a_repeat_uploads_nothing() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let h = s3_harness(&server).await;
    let job = slideshow(&[origin.url("photo.jpg"), origin.url("graphic.png")], true);
    let video_job = video(&origin.url("gen/v.mp4?mib=20&seed=3"), true);
    let first = h.run(&job).await;
    let first_video = h.run(&video_job).await;
    assert_eq!(first_video.status, Status::Ready, "{:?}", first_video.error);
    assert!(!server.requests("PUT").is_empty());
    let objects = server.objects();
    server.clear_log();
    let second = h.run(&job).await;
    assert_eq!(first.media, second.media);
    assert!(
        server.requests("PUT").is_empty(),
        "image repeat uploads nothing: {:?}",
        server.requests("PUT")
    );
    // A repeated video streams again (its hash is known only at the end),
    // finds its bytes in the index, and deletes its own copy.
    let second_video = h.run(&video_job).await;
    assert_eq!(
        first_video.media, second_video.media,
        "one URL for the bytes"
    );
    assert_eq!(server.objects(), objects, "no second copy, no leftovers");
    assert!(server.leftover_uploads().is_empty());
    assert!(media_puts(&server).is_empty(), "{:?}", media_puts(&server));
}

#[tokio::test]
async fn videos_are_written_once_in_equal_parts() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let h = s3_harness(&server).await;
    let r = h
        .run(&video(&origin.url("gen/v.mp4?mib=40&seed=9"), true))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let a = &r.assets.expect("assets")[0];
    let parts = server
        .requests("PUT")
        .into_iter()
        .filter(|l| l.contains("partNumber="))
        .count();
    assert_eq!(parts, 6, "40 MiB + header in 8 MiB parts");
    assert!(
        media_puts(&server).is_empty(),
        "no whole-object write or server-side copy of the video: {:?}",
        media_puts(&server)
    );
    assert_eq!(a.content_type, "video/mp4");
    stored_object(&server, a).await;
    let key = a.url.trim_start_matches("https://media.example.net/");
    assert!(
        key.starts_with("ws_test/v/") && key.ends_with(".mp4"),
        "{key}"
    );
    let sha = a.sha256.clone().expect("sha");
    let index = format!(".rehost/index/ws_test/{sha}.mp4");
    assert_eq!(
        server.objects(),
        vec![index, key.to_string()],
        "no marker left"
    );
    assert!(server.leftover_uploads().is_empty());
}

#[tokio::test]
async fn a_small_video_is_one_put_and_its_repeat_writes_nothing() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let h = s3_harness(&server).await;
    let first = h.run(&video(&origin.url("clip.mp4"), true)).await;
    assert_eq!(first.status, Status::Ready, "{:?}", first.error);
    let a = &first.assets.clone().expect("assets")[0];
    stored_object(&server, a).await;
    assert_eq!(media_puts(&server).len(), 1, "one PUT of the video");
    server.clear_log();
    let again = h.run(&video(&origin.url("clip.mp4?again=1"), true)).await;
    assert_eq!(first.media, again.media);
    assert!(
        server.requests("PUT").is_empty(),
        "{:?}",
        server.requests("PUT")
    );
}

#[tokio::test]
async fn a_failure_mid_upload_leaves_nothing_behind() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let h = s3_harness(&server).await;
    // 30 MiB video cut after 20 MiB: several parts uploaded, then the origin drops.
    let r = h
        .run(&video(
            &origin.url("gen/v.mp4?mib=30&truncate=20971520"),
            true,
        ))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::Unreachable));
    assert!(
        server
            .requests("PUT")
            .iter()
            .any(|l| l.contains("partNumber")),
        "parts were in flight"
    );
    assert!(
        server.objects().is_empty(),
        "no object: {:?}",
        server.objects()
    );
    assert!(
        server.leftover_uploads().is_empty(),
        "upload aborted: {:?}",
        server.leftover_uploads()
    );
}

#[tokio::test]
async fn wrong_credentials_and_dead_endpoints_are_storage_unavailable() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let mut bad = server.config();
    bad.secret_access_key = "wrong".into();
    let h = harness(Options {
        store: TestStore::Config(StoreConfig::S3(bad.clone())),
        ..Options::default()
    })
    .await;
    let r = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    let e = r.error.expect("error");
    assert_eq!(
        (e.code, e.retryable),
        (ErrorCode::StorageUnavailable, true),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains("wrong"),
        "no secret in messages: {}",
        e.message
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut dead = server.config();
    dead.endpoint = Some(format!("http://{}", closed.local_addr().expect("addr")));
    drop(closed);
    let h = harness(Options {
        store: TestStore::Config(StoreConfig::S3(dead)),
        ..Options::default()
    })
    .await;
    let r = h.run(&video(&origin.url("clip.mp4"), true)).await;
    assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::StorageUnavailable));
}

#[tokio::test]
async fn check_says_plainly_what_is_wrong() {
    let server = S3Server::start().await;
    let config = Config::load(&Raw::default()).expect("defaults");
    let open = |c| async {
        Store::open(&StoreConfig::S3(c), &config)
            .await
            .expect("store")
    };
    open(server.config())
        .await
        .check()
        .await
        .expect("healthy store");
    let mut missing = server.config();
    missing.bucket = "no-such-bucket".into();
    let e = open(missing)
        .await
        .check()
        .await
        .expect_err("missing bucket")
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    let mut denied = server.config();
    denied.secret_access_key = "nope".into();
    let e = open(denied)
        .await
        .check()
        .await
        .expect_err("bad credentials")
        .to_string();
    assert!(e.contains("denied") || e.contains("403"), "{e}");
}

#[tokio::test]
async fn sweep_removes_old_staging_objects() {
    let server = S3Server::start().await;
    let config = Config::load(&Raw::default()).expect("defaults");
    let store = Store::open(&StoreConfig::S3(server.config()), &config)
        .await
        .expect("store");
    let s3 = client(&server);
    s3.put_object()
        .bucket(BUCKET)
        .key(".rehost/staging/leftover")
        .body(bytes::Bytes::from_static(b"x").into())
        .send()
        .await
        .expect("put");
    s3.put_object()
        .bucket(BUCKET)
        .key("ws/ab/keep.jpg")
        .body(bytes::Bytes::from_static(b"y").into())
        .send()
        .await
        .expect("put");
    let young = store
        .sweep(std::time::Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(
        young.temp_objects, 0,
        "young staging objects belong to live workers"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let swept = store
        .sweep(std::time::Duration::from_secs(1))
        .await
        .expect("sweep");
    assert_eq!(swept.temp_objects, 1);
    assert_eq!(server.objects(), vec!["ws/ab/keep.jpg".to_string()]);
}

#[tokio::test]
async fn a_cancelled_upload_is_aborted_in_the_background() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let config = Config::load(&Raw::default()).expect("defaults");
    let store = Store::open(&StoreConfig::S3(server.config()), &config)
        .await
        .expect("store");
    let pipeline = test_app(&config, store.clone()).pipeline;
    // 40 MiB arriving at 8 MB/s: a few parts are up when the job is dropped,
    // as at the end of a shutdown grace.
    let body = serde_json::to_vec(&video(&origin.url("gen/v.mp4?mib=40&rate=8000000"), true))
        .expect("json");
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_millis(2500),
        pipeline.process(&body, None, 1),
    )
    .await;
    assert!(cancelled.is_err(), "the job was still running");
    assert!(
        server
            .requests("PUT")
            .iter()
            .any(|l| l.contains("partNumber")),
        "parts were uploaded"
    );
    store
        .wait_cleanups(std::time::Duration::from_secs(10))
        .await;
    assert!(
        server.leftover_uploads().is_empty(),
        "{:?}",
        server.leftover_uploads()
    );
    assert!(server.objects().is_empty());
}

/// The application over an opened store, fetching as the harness does.
fn test_app(config: &Config, store: Store) -> rehost::app::App {
    let mut config = config.clone();
    config.fetch = Options::default().fetch;
    rehost::app::App::assemble(&config, Options::default().lookup, Some(store)).expect("app")
}

#[tokio::test]
async fn sweep_aborts_old_unfinished_uploads() {
    let server = S3Server::start().await;
    let config = Config::load(&Raw::default()).expect("defaults");
    let store = Store::open(&StoreConfig::S3(server.config()), &config)
        .await
        .expect("store");
    let s3 = client(&server);
    for key in [
        ".rehost/staging/of-an-earlier-version",
        "ws/v/killed-mid-upload.mp4",
        "ws/ab/someone-elses",
    ] {
        s3.create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("create");
    }
    let young = store
        .sweep(std::time::Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(young.uploads, 0, "young uploads belong to live workers");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let swept = store
        .sweep(std::time::Duration::from_secs(1))
        .await
        .expect("sweep");
    assert_eq!(swept.uploads, 2, "only rehost's own uploads are swept");
    let listed = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["ws/ab/someone-elses"]);
}

/// A marker left by a worker killed between completing a video and
/// indexing it: the sweep deletes the unindexed video; an indexed one stays.
#[tokio::test]
async fn sweep_settles_what_killed_uploads_left() {
    let server = S3Server::start().await;
    let config = Config::load(&Raw::default()).expect("defaults");
    let store = Store::open(&StoreConfig::S3(server.config()), &config)
        .await
        .expect("store");
    let s3 = client(&server);
    let put = |key: &str, body: &str| {
        let (s3, key, body) = (s3.clone(), key.to_string(), body.to_string());
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(bytes::Bytes::from(body).into())
                .send()
                .await
                .expect("put");
        }
    };
    put("ws/v/orphan.mp4", "video bytes").await;
    put(".rehost/pending/orphan", "ws/v/orphan.mp4\n").await;
    put("ws/v/kept.mp4", "video bytes").await;
    put(".rehost/index/ws/abc.mp4", "ws/v/kept.mp4").await;
    put(
        ".rehost/pending/kept",
        "ws/v/kept.mp4\n.rehost/index/ws/abc.mp4\n",
    )
    .await;
    put("ws/v/lost-race.mp4", "video bytes").await;
    put(
        ".rehost/pending/lost-race",
        "ws/v/lost-race.mp4\n.rehost/index/ws/abc.mp4\n",
    )
    .await;
    let young = store
        .sweep(std::time::Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(
        young.temp_objects, 0,
        "markers of live uploads are left alone"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let swept = store
        .sweep(std::time::Duration::from_secs(1))
        .await
        .expect("sweep");
    assert_eq!(swept.temp_objects, 3);
    assert_eq!(
        server.objects(),
        vec![
            ".rehost/index/ws/abc.mp4".to_string(),
            "ws/v/kept.mp4".to_string()
        ]
    );
}

/// A worker killed (SIGKILL) in the middle of a video upload leaves nothing
/// visible: no video object, no index entry; and the sweep leaves nothing
/// behind: no marker, no unfinished upload.
#[tokio::test]
async fn a_kill_mid_upload_leaves_nothing_visible_and_nothing_unswept() {
    let server = S3Server::start().await;
    let origin = origin().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let job = tmp.path().join("job.json");
    let url = origin.url("gen/v.mp4?mib=60&rate=8000000");
    std::fs::write(&job, serde_json::to_vec(&video(&url, true)).expect("json")).expect("write");
    let c = server.config();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(["ingest", &job.display().to_string()])
        .env_clear()
        .envs([
            ("S3_BUCKET", BUCKET),
            ("S3_ENDPOINT", c.endpoint.as_deref().expect("endpoint")),
            ("S3_ACCESS_KEY_ID", c.access_key_id.as_str()),
            ("S3_SECRET_ACCESS_KEY", c.secret_access_key.as_str()),
            ("PUBLIC_BASE_URL", "https://media.example.net"),
            ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn rehost ingest");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server
        .requests("PUT")
        .iter()
        .filter(|l| l.contains("partNumber="))
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "parts were uploading");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(
        media_objects(&server).is_empty(),
        "{:?}",
        media_objects(&server)
    );
    assert!(
        !server
            .objects()
            .iter()
            .any(|k| k.starts_with(".rehost/index/"))
    );
    let config = Config::load(&Raw::default()).expect("defaults");
    let store = Store::open(&StoreConfig::S3(server.config()), &config)
        .await
        .expect("store");
    let swept = store.sweep(std::time::Duration::ZERO).await.expect("sweep");
    assert_eq!(
        (swept.temp_objects, swept.uploads),
        (1, 1),
        "the marker and the upload"
    );
    assert!(server.objects().is_empty(), "{:?}", server.objects());
    assert!(
        server.leftover_uploads().is_empty(),
        "{:?}",
        server.leftover_uploads()
    );
}

/// A store that ignores `If-None-Match` (Garage 1.x overwrites with 200):
/// the probe finds out, and identical videos still end as one object and
/// one URL (the index is read back instead of refused).
#[tokio::test]
async fn a_store_ignoring_conditional_puts_still_stores_videos_once() {
    let server = S3Server::start_ignoring_conditions().await;
    let origin = origin().await;
    let h = s3_harness(&server).await;
    let job = video(&origin.url("gen/v.mp4?mib=12&seed=5"), true);
    let first = h.run(&job).await;
    assert_eq!(first.status, Status::Ready, "{:?}", first.error);
    let second = h.run(&job).await;
    assert_eq!(first.media, second.media, "one URL for the bytes");
    assert_eq!(media_objects(&server).len(), 1, "{:?}", server.objects());
    assert!(server.leftover_uploads().is_empty());
    let probes = server
        .requests("PUT")
        .into_iter()
        .filter(|l| l.contains("/.rehost/pending/probe-"))
        .count();
    assert_eq!(probes, 2, "probed once: a conditional PUT, then its repeat");
}
