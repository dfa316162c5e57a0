//! `rehost origin`: serve a media directory on loopback until interrupted.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::fixture_origin::{Origin, OriginConfig};

pub async fn run(
    dir: &Path,
    listen: SocketAddr,
    unique: bool,
    latency_ms: u64,
    mbps: Option<f64>,
    shutdown: impl Future<Output = ()>,
) -> u8 {
    let cfg = OriginConfig {
        root: dir.to_path_buf(),
        unique,
        latency: Duration::from_millis(latency_ms),
        bytes_per_sec: mbps.map(|m| (m * 1_000_000.0 / 8.0) as u64),
    };
    let origin = match Origin::start(cfg, listen).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rehost: cannot listen on {listen}: {e}");
            return 1;
        }
    };
    eprintln!(
        "rehost origin: serving {} at http://{}/",
        dir.display(),
        origin.addr()
    );
    shutdown.await;
    0
}
