//! Shared test plumbing: a loopback origin over the fixture media, pipelines
//! with a directory store in a temp dir, and job builders.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use rehost::app::App;
use rehost::config::{Config, Raw, StoreConfig};
use rehost::error::ErrorCode;
use rehost::fetch::guard::AllowList;
use rehost::fetch::{FetchConfig, Lookup, SystemLookup};
use rehost::fixture_origin::{Origin, OriginConfig};
use rehost::pipeline::{Pipeline, Processed};
use rehost::result::{ResultMessage, Status};
use serde_json::{Value, json};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media")
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub async fn origin() -> Origin {
    Origin::start(
        OriginConfig::new(fixtures()),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("origin starts")
}

/// An HTTPS origin over the fixture media with the certificate
/// `fixtures/tls/{cert}.pem` (`localhost`: signed by the test CA for
/// 127.0.0.1; `other`: the CA's, for another name; `selfsigned`).
pub async fn tls_origin(cert: &str, alpn: rehost::fixture_origin::Alpn) -> Origin {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls");
    let tls = rehost::fixture_origin::Tls::from_files(
        &dir.join(format!("{cert}.pem")),
        &dir.join(format!("{cert}.key")),
        alpn,
    )
    .expect("test certificate");
    let cfg = OriginConfig {
        tls: Some(tls),
        ..OriginConfig::new(fixtures())
    };
    Origin::start(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("origin starts")
}

/// A pipeline under test, with its store directory.
pub struct Harness {
    pub pipeline: Pipeline,
    pub store_dir: tempfile::TempDir,
}

/// Which store a harness uses.
pub enum TestStore {
    None,
    /// A directory store in the harness's temp dir.
    Dir,
    Config(StoreConfig),
}

pub struct Options {
    pub settings: Vec<(&'static str, String)>,
    /// Replaces the configuration's fetch settings.
    pub fetch: FetchConfig,
    /// Resolves host names (the system resolver unless a test injects one).
    pub lookup: Arc<dyn Lookup>,
    pub store: TestStore,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settings: Vec::new(),
            fetch: FetchConfig {
                allow: AllowList::parse("127.0.0.1/32").expect("allow"),
                ..FetchConfig::default()
            },
            lookup: Arc::new(SystemLookup),
            store: TestStore::Dir,
        }
    }
}

pub fn config(settings: &[(&'static str, String)]) -> Config {
    let pairs: Vec<(&'static str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Config::load(&Raw::from_pairs(&pairs)).expect("test settings are valid")
}

pub async fn harness(opts: Options) -> Harness {
    let store_dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&opts.settings);
    config.fetch = opts.fetch;
    config.store = match opts.store {
        TestStore::None => None,
        TestStore::Dir => Some(StoreConfig::Dir {
            root: store_dir.path().to_path_buf(),
            public_base: "https://media.example.net".into(),
        }),
        TestStore::Config(c) => Some(c),
    };
    let app = App::build_with(&config, opts.lookup)
        .await
        .expect("app builds");
    Harness {
        pipeline: app.pipeline,
        store_dir,
    }
}

pub async fn default_harness() -> Harness {
    harness(Options::default()).await
}

/// Settings that store re-hosted images exactly as fetched: no
/// normalisation, no metadata stripping.
pub fn verbatim() -> Vec<(&'static str, String)> {
    vec![
        ("REHOST_NORMALIZE", "false".into()),
        ("REHOST_STRIP_METADATA", "false".into()),
    ]
}

/// A harness that stores images exactly as fetched.
pub async fn verbatim_harness() -> Harness {
    harness(Options {
        settings: verbatim(),
        ..Options::default()
    })
    .await
}

pub fn accounts(byo: bool) -> Value {
    let mut a = vec![json!({"id": "h1", "platform": "tiktok", "type": "hosted"})];
    if byo {
        a.push(json!({"id": "b1", "platform": "instagram", "type": "byo"}));
    }
    Value::Array(a)
}

pub fn slideshow(urls: &[String], byo: bool) -> Value {
    json!({
        "job_id": "job_test",
        "post_id": "post_1",
        "workspace_id": "ws_test",
        "accounts": accounts(byo),
        "media": {"type": "slideshow", "urls": urls},
    })
}

pub fn video(url: &str, byo: bool) -> Value {
    json!({
        "job_id": "job_test",
        "post_id": "post_1",
        "workspace_id": "ws_test",
        "accounts": accounts(byo),
        "media": {"type": "video", "url": url},
    })
}

impl Harness {
    pub async fn run(&self, job: &Value) -> ResultMessage {
        let body = serde_json::to_vec(job).expect("json");
        let processed = tokio::time::timeout(
            Duration::from_secs(120),
            self.pipeline.process(&body, None, 1),
        )
        .await
        .expect("job finishes in time");
        match processed {
            Processed::Result { result, .. } => *result,
            Processed::NotAJob { reason } => panic!("not a job: {reason}"),
        }
    }

    /// Runs the job and returns its error code (`None` when ready).
    pub async fn code(&self, job: &Value) -> Option<ErrorCode> {
        let r = self.run(job).await;
        match r.status {
            Status::Ready => None,
            _ => Some(r.error.expect("failed results carry an error").code),
        }
    }

    /// Every file stored (excluding temp files), relative to the store root.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(self.store_dir.path(), self.store_dir.path(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
}
