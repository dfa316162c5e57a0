//! `rehost origin`: serve a media directory on loopback until interrupted.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::app::{EXIT_FATAL, EXIT_USAGE};
use crate::fixture_origin::{MediaSource, Origin, OriginConfig};

pub async fn run(
    dir: Option<&Path>,
    listen: SocketAddr,
    unique: bool,
    latency_ms: u64,
    mbps: Option<f64>,
    shutdown: impl Future<Output = ()>,
) -> u8 {
    let media = match MediaSource::dir_or_embedded(dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("rehost: {e}");
            return EXIT_USAGE;
        }
    };
    let shown = media.to_string();
    let cfg = OriginConfig {
        unique,
        latency: Duration::from_millis(latency_ms),
        bytes_per_sec: mbps.map(|m| (m * 1_000_000.0 / 8.0) as u64),
        ..OriginConfig::of(media)
    };
    let origin = match Origin::start(cfg, listen).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rehost: cannot listen on {listen}: {e}");
            return EXIT_FATAL;
        }
    };
    eprintln!(
        "rehost origin: serving {shown} at http://{}/",
        origin.addr()
    );
    shutdown.await;
    0
}
