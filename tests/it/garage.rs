//! The S3 store against a second, independent S3 implementation: Garage
//! (a distributed object store written in Rust), started as a process
//! with a one-node layout, a key and a bucket.
//!
//! Garage ignores `If-None-Match` on `PUT` (2.5 as 1.x: a second
//! conditional `PUT` is 200), so these tests run the store's fallback on a
//! real server: first-writer-wins by writing the index, then reading it
//! back. They also run the multipart upload, the content index and the
//! sweep's `ListMultipartUploads` against a server that is not s3s-fs.
//!
//! The `garage` binary is `$REHOST_GARAGE`, else `garage` on `PATH`, else
//! `~/.cache/rehost-tools/bin/garage` (where `.ci/run` installs it). Without
//! it these tests say SKIPPED; under `CI=true` they fail.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use rehost::config::{Config, Raw, S3Config, StoreConfig};
use rehost::result::Status;
use rehost::store::Store;

use crate::helpers::*;

const BUCKET: &str = "media";

struct Garage {
    child: Child,
    config: PathBuf,
    bin: PathBuf,
    s3: String,
    key_id: String,
    secret: String,
    _dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn garage_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("REHOST_GARAGE") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("garage"))
            .find(|p| p.is_file())
    });
    let cached = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cache/rehost-tools/bin/garage"))
        .filter(|p| p.is_file());
    on_path.or(cached)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Garage {
    /// A running one-node Garage with bucket `media`, or `None` (SKIPPED)
    /// when the binary is missing outside CI.
    fn start() -> Option<Garage> {
        let Some(bin) = garage_bin() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("garage is not installed (CI=true): .ci/run installs it");
            }
            eprintln!("SKIPPED (no garage binary; see tests/it/garage.rs)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (rpc, s3) = (free_port(), free_port());
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        let config = dir.path().join("garage.toml");
        let text = format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
             [s3_api]\ns3_region = \"auto\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n",
            d = dir.path().display()
        );
        std::fs::write(&config, text).expect("garage config");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).expect("log"))
            .spawn()
            .expect("garage server starts");
        let mut g = Garage {
            child,
            config,
            bin,
            s3: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
            _dir: dir,
        };
        g.set_up();
        Some(g)
    }

    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Layout, key and bucket, waiting (at most 30 s) for the node to answer.
    fn set_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let node = loop {
            let status = self.cli(&["status"]).unwrap_or_default();
            if let Some(line) = status.lines().find(|l| l.contains("NO ROLE ASSIGNED")) {
                break line.split_whitespace().next().expect("node id").to_string();
            }
            assert!(Instant::now() < deadline, "garage did not start: {status}");
            std::thread::sleep(Duration::from_millis(200));
        };
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .expect("layout assign");
        self.cli(&["layout", "apply", "--version", "1"])
            .expect("layout apply");
        let key = self.cli(&["key", "create", "rehost-test"]).expect("key");
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in: {key}"))
        };
        self.key_id = field("Key ID:");
        self.secret = field("Secret key:");
        self.cli(&["bucket", "create", BUCKET]).expect("bucket");
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            BUCKET,
            "--key",
            "rehost-test",
        ])
        .expect("bucket allow");
    }

    fn config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.s3.clone()),
            region: "auto".into(),
            bucket: BUCKET.into(),
            access_key_id: self.key_id.clone(),
            secret_access_key: self.secret.clone(),
            force_path_style: true,
            public_base: "https://media.example.net".into(),
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.s3)
            .region(Region::new("auto"))
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &self.key_id,
                &self.secret,
                None,
                None,
                "garage",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Every object key in the bucket, sorted.
    async fn objects(&self) -> Vec<String> {
        let listed = self
            .client()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list objects");
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    async fn unfinished_uploads(&self) -> Vec<String> {
        let listed = self
            .client()
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list uploads");
        listed
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_string))
            .collect()
    }
}

async fn garage_harness(g: &Garage) -> Harness {
    harness(Options {
        store: TestStore::Config(StoreConfig::S3(g.config())),
        settings: verbatim(),
        ..Options::default()
    })
    .await
}

/// What Garage does with a second `If-None-Match: *` PUT: the reason the
/// store probes, and what the other tests rely on.
#[tokio::test]
async fn garage_ignores_conditional_puts_as_the_store_expects() {
    let Some(g) = Garage::start() else { return };
    let put = || {
        g.client()
            .put_object()
            .bucket(BUCKET)
            .key("probe")
            .if_none_match("*")
            .body(bytes::Bytes::from_static(b"x").into())
            .send()
    };
    put().await.expect("first conditional PUT");
    let second = put().await;
    assert!(
        second.is_ok(),
        "Garage now honours If-None-Match (412): the fallback is no longer exercised here"
    );
}

#[tokio::test]
async fn garage_images_exact_bytes_and_a_repeat_writes_one_object() {
    let Some(g) = Garage::start() else { return };
    let origin = origin().await;
    let h = garage_harness(&g).await;
    let urls = [origin.url("photo.jpg"), origin.url("alpha.png")];
    let first = h.run(&slideshow(&urls, true)).await;
    assert_eq!(first.status, Status::Ready, "{:?}", first.error);
    for (a, f) in first
        .assets
        .clone()
        .expect("assets")
        .iter()
        .zip(["photo.jpg", "alpha.png"])
    {
        assert_eq!(
            crate::s3::stored_in(&g.client(), a).await.as_ref(),
            fixture(f).as_slice()
        );
    }
    let again = h
        .run(&slideshow(&[origin.url("photo.jpg?again=1")], true))
        .await;
    assert_eq!(again.status, Status::Ready, "{:?}", again.error);
    let first_url = &first.assets.expect("assets")[0].url;
    assert_eq!(&again.assets.expect("assets")[0].url, first_url);
    let images: Vec<String> = g
        .objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with("ws_test/"))
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
}

/// Multipart upload under the final key, then the content index; a
/// duplicate job's copy is deleted, so the bytes are stored once, even on a
/// store that ignores conditional PUTs.
#[tokio::test]
async fn garage_videos_are_stored_once_and_leave_no_upload_behind() {
    let Some(g) = Garage::start() else { return };
    let origin = origin().await;
    let h = garage_harness(&g).await;
    let first = h
        .run(&video(&origin.url("gen/v.mp4?mib=20&seed=4"), true))
        .await;
    assert_eq!(first.status, Status::Ready, "{:?}", first.error);
    let a = first.assets.clone().expect("assets")[0].clone();
    assert_eq!(
        crate::s3::stored_in(&g.client(), &a).await.len() as u64,
        a.bytes.expect("bytes")
    );
    let again = h
        .run(&video(&origin.url("gen/v.mp4?mib=20&seed=4&again=1"), true))
        .await;
    assert_eq!(again.status, Status::Ready, "{:?}", again.error);
    assert_eq!(again.assets.expect("assets")[0].url, a.url);
    let key = a.url.trim_start_matches("https://media.example.net/");
    let sha = a.sha256.clone().expect("sha");
    assert_eq!(
        g.objects().await,
        vec![format!(".rehost/index/ws_test/{sha}.mp4"), key.to_string()],
        "one video, its index entry, no marker, no duplicate"
    );
    assert!(g.unfinished_uploads().await.is_empty());
}

/// The start-up sweep against Garage's `ListMultipartUploads`: rehost's own
/// old unfinished uploads are aborted, others left alone.
#[tokio::test]
async fn garage_sweep_aborts_old_unfinished_uploads() {
    let Some(g) = Garage::start() else { return };
    let config = Config::load(&Raw::default()).expect("defaults");
    let store = Store::open(&StoreConfig::S3(g.config()), &config)
        .await
        .expect("store");
    for key in ["ws/v/killed-mid-upload.mp4", "ws/ab/someone-elses"] {
        g.client()
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("create");
    }
    let young = store.sweep(Duration::from_secs(3600)).await.expect("sweep");
    assert_eq!(young.uploads, 0, "young uploads belong to live workers");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let swept = store.sweep(Duration::from_secs(1)).await.expect("sweep");
    assert_eq!(swept.uploads, 1);
    assert_eq!(g.unfinished_uploads().await, ["ws/ab/someone-elses"]);
}
