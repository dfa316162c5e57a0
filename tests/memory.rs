//! A 300 MB video is re-hosted while the process's heap stays small: the
//! bytes stream from the origin into the store and are never held whole.
//!
//! A counting global allocator records the peak of live heap bytes during the
//! job. This binary holds only this test, so nothing else allocates beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rehost::app::App;
use rehost::config::{Config, Raw, StoreConfig};
use rehost::fetch::FetchConfig;
use rehost::fetch::guard::AllowList;
use rehost::fixture_origin::{Origin, OriginConfig};
use rehost::pipeline::{Pipeline, Processed};
use rehost::result::Status;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

async fn fixture_origin() -> Origin {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
    Origin::start(
        OriginConfig::new(&fixtures),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("origin")
}

/// The tests here measure the process's heap: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pipeline_for(
    dir: &std::path::Path,
    settings: &[(&'static str, &str)],
    fetch: FetchConfig,
) -> impl std::future::Future<Output = Pipeline> {
    let mut config = Config::load(&Raw::from_pairs(settings)).expect("settings");
    config.fetch = fetch;
    config.store = Some(StoreConfig::Dir {
        root: dir.to_path_buf(),
        public_base: "https://media.example.net".into(),
    });
    async move { App::build(&config).await.expect("app").pipeline }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_beside_a_normal_job_stay_within_a_bounded_heap() {
    let _serial = SERIAL.lock().await;
    let origin = fixture_origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetch = FetchConfig {
        allow: AllowList::parse("127.0.0.1/32").expect("allow"),
        base_timeout: std::time::Duration::from_secs(3),
        stall_timeout: std::time::Duration::from_secs(2),
        ..FetchConfig::default()
    };
    let pipeline = pipeline_for(dir.path(), &[("REHOST_MAX_IMAGE_BYTES", "5242880")], fetch).await;
    let job = |urls: Vec<String>| {
        serde_json::to_vec(&serde_json::json!({
            "post_id": "p", "workspace_id": "w",
            "accounts": [{"id": "a", "platform": "instagram", "type": "byo"}],
            "media": {"type": "slideshow", "urls": urls},
        }))
        .expect("json")
    };
    let attacks: Vec<Vec<u8>> = [
        "photo.jpg?endless=1",
        "photo.jpg?rate=500",
        "bomb-60000.png?x=1",
        "gzip-bomb.jpg?gzip=1",
        "photo.jpg?header_kib=1024",
    ]
    .iter()
    .map(|a| job((0..8).map(|i| origin.url(&format!("{a}&n={i}"))).collect()))
    .collect();
    let normal = job(vec![
        origin.url("photo.jpg?normal=1"),
        origin.url("graphic.png?normal=1"),
    ]);
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let attack_runs =
        futures_util::future::join_all(attacks.iter().map(|b| pipeline.process(b, None, 1)));
    let (attacked, normal) = tokio::join!(attack_runs, pipeline.process(&normal, None, 1));
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let Processed::Result { result, .. } = normal else {
        panic!("not a job")
    };
    assert_eq!(result.status, Status::Ready, "{:?}", result.error);
    for p in attacked {
        let Processed::Result { result, .. } = p else {
            panic!("not a job")
        };
        assert_ne!(result.status, Status::Ready);
    }
    eprintln!("peak heap growth under attack: {} KiB", peak / 1024);
    // 8 endless bodies of at most 5 MiB each is the worst buffer here.
    assert!(
        peak < 64 * 1024 * 1024,
        "heap grew by {peak} bytes under attack"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mb_video_streams_through_a_small_heap() {
    let _serial = SERIAL.lock().await;
    let origin = fixture_origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetch = FetchConfig {
        allow: AllowList::parse("127.0.0.1/32").expect("allow"),
        ..FetchConfig::default()
    };
    let pipeline = pipeline_for(dir.path(), &[], fetch).await;
    let job = serde_json::json!({
        "post_id": "p", "workspace_id": "w",
        "accounts": [{"id": "a", "platform": "youtube", "type": "byo"}],
        "media": {"type": "video", "url": origin.url("gen/big.mp4?mib=300&seed=7")},
    });
    let body = serde_json::to_vec(&job).expect("json");
    // The origin's generated 1 MiB block and connection buffers exist before
    // the job too; measure the job's own growth from here.
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let Processed::Result { result, .. } = pipeline.process(&body, None, 1).await else {
        panic!("not a job");
    };
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    assert_eq!(result.status, Status::Ready, "{:?}", result.error);
    let asset = &result.assets.expect("assets")[0];
    let bytes = asset.bytes.expect("bytes");
    assert!(bytes > 300 * 1024 * 1024, "{bytes}");
    let sha = asset.sha256.clone().expect("sha");
    let stored = dir.path().join(format!("w/{}/{sha}.mp4", &sha[..2]));
    assert_eq!(std::fs::metadata(&stored).expect("stored").len(), bytes);
    eprintln!(
        "peak heap growth while re-hosting {bytes} bytes: {} KiB",
        peak / 1024
    );
    assert!(
        peak < 32 * 1024 * 1024,
        "peak heap grew by {peak} bytes for a {bytes}-byte video"
    );
}
