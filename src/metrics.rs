//! Prometheus metrics, process-wide. Rendered at `/metrics` in the text
//! (OpenMetrics) format.

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric rehost exports.
pub struct Metrics {
    registry: Registry,
    /// Results published, by status and error code (`none` when ready).
    pub jobs: Family<Labels, Counter>,
    /// Jobs moved to a retry queue.
    pub retries: Counter,
    /// Bodies parked in the dead-letter queue by the worker, by reason.
    pub parked: Family<Labels, Counter>,
    pub in_flight: Gauge,
    /// Assets checked or copied, by path (`hosted` or `byo`) and outcome.
    pub assets: Family<Labels, Counter>,
    pub bytes_fetched: Counter,
    pub bytes_stored: Counter,
    /// Seconds to fetch (and check) one asset.
    pub fetch_seconds: Histogram,
    /// Seconds to store one asset.
    pub store_seconds: Histogram,
    pub broker_reconnects: Counter,
    /// Messages waiting in the parking lot (refreshed periodically).
    pub dead_depth: Gauge,
    /// Jobs held because the store or the results exchange is failing.
    pub held: Gauge,
}

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("rehost");
        let m = Metrics {
            jobs: Family::default(),
            retries: Counter::default(),
            parked: Family::default(),
            in_flight: Gauge::default(),
            assets: Family::default(),
            bytes_fetched: Counter::default(),
            bytes_stored: Counter::default(),
            fetch_seconds: seconds(),
            store_seconds: seconds(),
            broker_reconnects: Counter::default(),
            dead_depth: Gauge::default(),
            held: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "jobs",
            "Job results published, by status and error code",
            m.jobs.clone(),
        );
        registry.register("retries", "Jobs moved to a retry queue", m.retries.clone());
        registry.register(
            "parked",
            "Messages parked in the dead-letter queue by the worker",
            m.parked.clone(),
        );
        registry.register(
            "jobs_in_flight",
            "Jobs being processed",
            m.in_flight.clone(),
        );
        registry.register(
            "assets",
            "Assets processed, by path and outcome",
            m.assets.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Bytes read from origins",
            m.bytes_fetched.clone(),
        );
        registry.register(
            "stored_bytes",
            "Bytes written to new objects",
            m.bytes_stored.clone(),
        );
        registry.register(
            "fetch_seconds",
            "Time to fetch and check one asset",
            m.fetch_seconds.clone(),
        );
        registry.register(
            "store_seconds",
            "Time to store one asset",
            m.store_seconds.clone(),
        );
        registry.register(
            "broker_reconnects",
            "Broker connections re-established",
            m.broker_reconnects.clone(),
        );
        registry.register(
            "dead_letter_depth",
            "Messages in the parking-lot queue",
            m.dead_depth.clone(),
        );
        registry.register(
            "jobs_held",
            "Jobs waiting for the store or the broker to recover",
            m.held.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Labels from pairs.
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}
