//! RabbitMQ: names, connection, topology, publishing with confirms, headers.
//!
//! - [`topology`]: the exchanges and queues of the contract, declared
//!   idempotently (or checked, with `REHOST_DECLARE=false`);
//! - [`publisher`]: a confirm channel; a publish succeeds only on the
//!   broker's ack;
//! - [`headers`]: the attempt counter and the parking-lot headers;
//! - [`replay`]: moving parked messages back to the job queue.

pub mod headers;
pub mod publisher;
pub mod replay;
pub mod topology;

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::config::{BrokerConfig, Config};

/// Every name on the broker, derived from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    pub results_exchange: String,
    pub results_queue: Option<String>,
    /// `{queue}.dead`.
    pub dead: String,
    /// `(delay, {queue}.retry-q.{label})`, in the configured order.
    pub retries: Vec<(Duration, String)>,
    /// `{queue}.retry.{label}`: the classic retry queues of earlier
    /// versions, deleted once they have drained.
    pub legacy_retries: Vec<String>,
    pub declare: bool,
}

/// The delivery limit of the job queue: a message delivered this many times
/// (crashes, lost connections) is dead-lettered to the parking lot.
pub const DELIVERY_LIMIT: i64 = 5;

impl Names {
    pub fn new(b: &BrokerConfig, delays: &[(String, Duration)]) -> Self {
        Names {
            dead: format!("{}.dead", b.queue),
            retries: delays
                .iter()
                .map(|(label, d)| (*d, format!("{}.retry-q.{label}", b.queue)))
                .collect(),
            legacy_retries: delays
                .iter()
                .map(|(label, _)| format!("{}.retry.{label}", b.queue))
                .collect(),
            queue: b.queue.clone(),
            exchange: b.exchange.clone(),
            routing_key: b.routing_key.clone(),
            results_exchange: b.results_exchange.clone(),
            results_queue: b.results_queue.clone(),
            declare: b.declare,
        }
    }

    pub fn from_config(c: &Config) -> Self {
        Names::new(&c.broker, &c.retry_delays)
    }

    /// The retry queue for try number `attempt` (1-based) that just failed,
    /// honouring the origin's `Retry-After` up to the largest delay: the
    /// smallest configured delay at least as long as what is wanted.
    pub fn retry_queue(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Option<&(Duration, String)> {
        let last = self.retries.len().checked_sub(1)?;
        let idx = usize::try_from(attempt.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(last);
        let scheduled = self.retries[idx].0;
        let largest = self
            .retries
            .iter()
            .map(|(d, _)| *d)
            .max()
            .unwrap_or(scheduled);
        let want = scheduled.max(retry_after.unwrap_or_default().min(largest));
        self.retries
            .iter()
            .filter(|(d, _)| *d >= want)
            .min_by_key(|(d, _)| *d)
            .or(self.retries.get(idx))
    }
}

/// Connects to the broker.
///
/// # Errors
/// When the broker cannot be reached or refuses the login.
pub async fn connect(url: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(
        format!("rehost-{}@{}", env!("CARGO_PKG_VERSION"), hostname()).into(),
    );
    Connection::connect(url, props).await
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().chars().take(64).collect())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Raw};

    #[test]
    fn names_follow_the_queue() {
        let c = Config::load(&Raw::default()).expect("defaults");
        let n = Names::from_config(&c);
        assert_eq!(n.dead, "media.ingest.dead");
        let retries: Vec<&str> = n.retries.iter().map(|(_, q)| q.as_str()).collect();
        assert_eq!(
            retries,
            [
                "media.ingest.retry-q.5s",
                "media.ingest.retry-q.30s",
                "media.ingest.retry-q.2m",
                "media.ingest.retry-q.10m"
            ]
        );
    }

    #[test]
    fn retry_delay_choice() {
        let c = Config::load(&Raw::default()).expect("defaults");
        let n = Names::from_config(&c);
        let q = |attempt, after: Option<u64>| {
            n.retry_queue(attempt, after.map(Duration::from_secs))
                .map(|(_, q)| q.as_str())
        };
        assert_eq!(q(1, None), Some("media.ingest.retry-q.5s"));
        assert_eq!(q(2, None), Some("media.ingest.retry-q.30s"));
        assert_eq!(q(4, None), Some("media.ingest.retry-q.10m"));
        assert_eq!(
            q(9, None),
            Some("media.ingest.retry-q.10m"),
            "the last repeats"
        );
        assert_eq!(
            q(1, Some(20)),
            Some("media.ingest.retry-q.30s"),
            "Retry-After raises the delay"
        );
        assert_eq!(
            q(1, Some(3600)),
            Some("media.ingest.retry-q.10m"),
            "bounded by the largest"
        );
        assert_eq!(
            q(3, Some(1)),
            Some("media.ingest.retry-q.2m"),
            "never shortens the schedule"
        );
    }
}
