//! Prometheus metrics, process-wide. `/metrics` serves the Prometheus text
//! format (0.0.4) unless the scraper asks for OpenMetrics in its `Accept`
//! header, as the official client libraries do; units are declared and
//! carried in the names (`_seconds`, `_bytes`).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

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
    /// Deliveries taken from the job queue.
    pub deliveries: Counter,
    pub in_flight: Gauge,
    /// The configured limit of jobs in flight.
    pub concurrency: Gauge,
    /// Jobs held because the store or publishing is failing.
    pub held: Gauge,
    /// Assets checked or copied, by path (`hosted` or `byo`) and outcome.
    pub assets: Family<Labels, Counter>,
    pub bytes_fetched: Counter,
    pub bytes_stored: Counter,
    /// Seconds to fetch (and check) one asset.
    pub fetch_seconds: Histogram,
    /// Seconds of one asset's final store write.
    pub store_seconds: Histogram,
    /// Seconds from the job's AMQP `timestamp` to its result.
    pub job_age_seconds: Histogram,
    pub broker_reconnects: Counter,
    /// Object-storage operations that failed.
    pub store_errors: Counter,
    /// Messages in the parking lot (refreshed periodically).
    pub dead_depth: Gauge,
    /// Messages ready in the job queue (refreshed periodically).
    pub queue_ready: Gauge,
    /// 1 when `/readyz` says ready.
    pub ready: Gauge,
    /// 1 while a `basic.consume` on the job queue is active.
    pub consuming: Gauge,
    /// Platform verdicts, by platform, verdict and violated rule.
    pub verdicts: Family<Labels, Counter>,
    /// Normalisation steps applied to stored images and videos.
    pub normalized: Family<Labels, Counter>,
    /// Moov-at-end videos stored as they are, by reason.
    pub faststart_skipped: Family<Labels, Counter>,
    /// 1 while the last public-URL probe passed (or probing is off).
    pub public_url_ok: Gauge,
    /// Jobs deferred because the public URLs were not fetchable.
    pub jobs_deferred: Counter,
}

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("rehost"),
            jobs: Family::default(),
            retries: Counter::default(),
            parked: Family::default(),
            deliveries: Counter::default(),
            in_flight: Gauge::default(),
            concurrency: Gauge::default(),
            held: Gauge::default(),
            assets: Family::default(),
            bytes_fetched: Counter::default(),
            bytes_stored: Counter::default(),
            fetch_seconds: seconds(),
            store_seconds: seconds(),
            // 0.1 s to about 1.8 h: queue waits and retry delays included.
            job_age_seconds: Histogram::new(exponential_buckets(0.1, 2.0, 17)),
            broker_reconnects: Counter::default(),
            store_errors: Counter::default(),
            dead_depth: Gauge::default(),
            queue_ready: Gauge::default(),
            ready: Gauge::default(),
            consuming: Gauge::default(),
            verdicts: Family::default(),
            normalized: Family::default(),
            faststart_skipped: Family::default(),
            public_url_ok: Gauge::default(),
            jobs_deferred: Counter::default(),
        };
        m.register_all();
        // Every reason from the start, so dashboards and alerts see zeros.
        for skip in crate::media::faststart::Skip::ALL {
            let _series = m
                .faststart_skipped
                .get_or_create(&labels(&[("reason", skip.as_str())]));
        }
        m
    }

    fn register_all(&mut self) {
        self.register_jobs();
        self.register_transfers();
        self.register_health();
    }

    /// Jobs and deliveries.
    fn register_jobs(&mut self) {
        let r = &mut self.registry;
        r.register(
            "jobs",
            "Job results published, by status and error code",
            self.jobs.clone(),
        );
        r.register(
            "retries",
            "Jobs moved to a retry queue",
            self.retries.clone(),
        );
        r.register(
            "parked",
            "Messages parked in the dead-letter queue by the worker",
            self.parked.clone(),
        );
        r.register(
            "deliveries",
            "Deliveries taken from the job queue",
            self.deliveries.clone(),
        );
        r.register(
            "jobs_in_flight",
            "Jobs being processed",
            self.in_flight.clone(),
        );
        r.register(
            "concurrency",
            "Most jobs in flight at once (REHOST_CONCURRENCY)",
            self.concurrency.clone(),
        );
        r.register(
            "jobs_held",
            "Jobs waiting for the store or the broker to recover",
            self.held.clone(),
        );
        r.register(
            "assets",
            "Assets processed, by path and outcome",
            self.assets.clone(),
        );
        r.register(
            "verdicts",
            "Platform verdicts per targeted account, by platform, verdict and violated rule",
            self.verdicts.clone(),
        );
        r.register(
            "normalized",
            "Normalisation steps applied to stored images and videos",
            self.normalized.clone(),
        );
        r.register(
            "faststart_skipped",
            "Re-hosted moov-at-end videos stored as they are, by reason",
            self.faststart_skipped.clone(),
        );
        r.register(
            "jobs_deferred",
            "Jobs deferred because the public URLs were not fetchable",
            self.jobs_deferred.clone(),
        );
    }

    /// Bytes and times of fetches and store writes, and job ages.
    fn register_transfers(&mut self) {
        let r = &mut self.registry;
        r.register_with_unit(
            "fetched",
            "Bytes read from origins",
            Unit::Bytes,
            self.bytes_fetched.clone(),
        );
        r.register_with_unit(
            "stored",
            "Bytes written to new objects",
            Unit::Bytes,
            self.bytes_stored.clone(),
        );
        r.register_with_unit(
            "fetch",
            "Time to fetch and check one asset",
            Unit::Seconds,
            self.fetch_seconds.clone(),
        );
        r.register_with_unit(
            "store",
            "Time of one asset's final store write",
            Unit::Seconds,
            self.store_seconds.clone(),
        );
        r.register_with_unit(
            "job_age",
            "Time from a job's publication (AMQP timestamp) to its result",
            Unit::Seconds,
            self.job_age_seconds.clone(),
        );
    }

    /// The worker's connection, dependencies and queues.
    fn register_health(&mut self) {
        let r = &mut self.registry;
        r.register(
            "broker_reconnects",
            "Broker connections lost and re-established",
            self.broker_reconnects.clone(),
        );
        r.register(
            "store_errors",
            "Object-storage operations that failed",
            self.store_errors.clone(),
        );
        r.register(
            "dead_letter_depth",
            "Messages in the parking-lot queue",
            self.dead_depth.clone(),
        );
        r.register(
            "queue_messages_ready",
            "Messages ready in the job queue",
            self.queue_ready.clone(),
        );
        r.register(
            "ready",
            "1 when the worker is ready to take jobs (/readyz)",
            self.ready.clone(),
        );
        r.register(
            "public_url_ok",
            "1 while the last public-URL probe passed (or probing is off)",
            self.public_url_ok.clone(),
        );
        r.register(
            "consuming",
            "1 while a basic.consume on the job queue is active",
            self.consuming.clone(),
        );
    }

    /// The OpenMetrics exposition.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text exposition.
pub const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition a scraper's `Accept` header asks for: OpenMetrics only
/// when named, the Prometheus text format otherwise.
pub fn negotiate(accept: Option<&str>) -> (&'static str, String) {
    let wants_openmetrics = accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("application/openmetrics-text")
        })
    });
    if wants_openmetrics {
        (OPENMETRICS, METRICS.render_openmetrics())
    } else {
        (TEXT_0_0_4, METRICS.render_text())
    }
}

/// Rewrites an OpenMetrics exposition in the Prometheus text format: no
/// `# UNIT` lines and no `# EOF`, and a counter's family named like its
/// samples (`_total`).
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: Vec<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(&name) && !name.ends_with("_total") {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                out.push_str(format!("{prefix}{name} {tail}").trim_end());
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Labels from pairs.
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let om = "# HELP rehost_retries Jobs moved to a retry queue.\n# TYPE rehost_retries counter\nrehost_retries_total 3\n# HELP rehost_fetch_seconds Time.\n# TYPE rehost_fetch_seconds histogram\n# UNIT rehost_fetch_seconds seconds\nrehost_fetch_seconds_sum 0.0\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP rehost_retries_total Jobs moved to a retry queue.\n# TYPE rehost_retries_total counter\nrehost_retries_total 3\n# HELP rehost_fetch_seconds Time.\n# TYPE rehost_fetch_seconds histogram\nrehost_fetch_seconds_sum 0.0\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked() {
        assert_eq!(negotiate(None).0, TEXT_0_0_4);
        assert_eq!(negotiate(Some("text/plain")).0, TEXT_0_0_4);
        assert_eq!(negotiate(Some("*/*")).0, TEXT_0_0_4);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let (ctype, body) = negotiate(Some(prometheus));
        assert_eq!(ctype, OPENMETRICS);
        assert!(body.ends_with("# EOF\n"));
    }

    #[test]
    fn units_are_in_the_names() {
        let text = METRICS.render_text();
        for name in [
            "rehost_fetch_seconds_bucket",
            "rehost_job_age_seconds_count",
            "# TYPE rehost_fetched_bytes_total counter",
            "# TYPE rehost_stored_bytes_total counter",
            "# TYPE rehost_deliveries_total counter",
            "rehost_ready ",
            "rehost_consuming ",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(
            METRICS
                .render_openmetrics()
                .contains("# UNIT rehost_fetch_seconds seconds")
        );
    }
}
