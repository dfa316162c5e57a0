//! `rehost demo`: the real pipeline on the fixture media, no services needed.
//!
//! Starts a loopback origin serving the fixture media, points the fixture
//! jobs at it (their URLs name `http://127.0.0.1:8080/`), runs each job once
//! with the configured store (default: the directory `./rehost-data`) and
//! prints each result's media object. Only loopback is opened in the
//! address guard, and only for this command.

use std::path::Path;

use super::{EXIT_USAGE, open_store_or_dir, pipeline};
use crate::config::Config;
use crate::fetch::FetchConfig;
use crate::fetch::guard::AllowList;
use crate::origin::{Origin, OriginConfig};
use crate::pipeline::Processed;
use crate::result::Status;

/// The origin the fixture jobs name.
pub const FIXTURE_ORIGIN: &str = "http://127.0.0.1:8080/";

/// Jobs the demo runs, in order.
const DEMO_JOBS: &[&str] = &[
    "byo-slideshow.json",
    "byo-video.json",
    "byo-video-moov-end.json",
    "hosted-slideshow.json",
    "hosted-video.json",
    "invalid-too-many-images.json",
];

pub async fn run(config: &Config, media: &Path, jobs: &Path) -> u8 {
    let origin = match Origin::start(
        OriginConfig::new(media),
        "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rehost: cannot start the loopback origin: {e}");
            return 1;
        }
    };
    let (store_cfg, store) = match open_store_or_dir(config).await {
        Ok(s) => s,
        Err(status) => return status,
    };
    let fetch = FetchConfig {
        allow: AllowList::parse("127.0.0.1/32").unwrap_or_default(),
        ..FetchConfig::from_config(config)
    };
    let pipeline = match pipeline(config, fetch, Some(store)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rehost: {e:#}");
            return 1;
        }
    };
    println!(
        "origin {} serving {}; store {store_cfg:?}\n",
        origin.url(""),
        media.display()
    );
    let mut unexpected = 0;
    for name in DEMO_JOBS {
        let path = jobs.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t.replace(FIXTURE_ORIGIN, &origin.url("")),
            Err(e) => {
                eprintln!("rehost: cannot read {}: {e}", path.display());
                return EXIT_USAGE;
            }
        };
        let Processed::Result { result, .. } = pipeline.process(text.as_bytes(), None, 1).await
        else {
            eprintln!("rehost: {} is not a job", path.display());
            return EXIT_USAGE;
        };
        let expect_failure = name.starts_with("invalid");
        if (result.status == Status::Ready) == expect_failure {
            unexpected += 1;
        }
        println!(
            "== {name}: {} (rehosted: {})",
            result.status.as_str(),
            result.rehosted.unwrap_or(false)
        );
        let shown = match (&result.media, &result.error) {
            (Some(media), _) => serde_json::to_string_pretty(media),
            (None, Some(error)) => serde_json::to_string_pretty(error),
            (None, None) => Ok(String::new()),
        };
        println!("{}", shown.unwrap_or_default());
        for a in result.assets.iter().flatten() {
            println!(
                "   [{}] {} {}x{} {} bytes{}",
                a.index,
                a.content_type,
                a.width.unwrap_or(0),
                a.height.unwrap_or(0),
                a.bytes.map_or("?".into(), |b| b.to_string()),
                a.duration_ms
                    .map(|d| format!(" {d} ms {}", a.codec.as_deref().unwrap_or("")))
                    .unwrap_or_default(),
            );
        }
        println!();
    }
    println!(
        "origin served {} requests, {} bytes",
        origin.stats.requests(),
        origin.stats.bytes_sent()
    );
    u8::from(unexpected > 0)
}
