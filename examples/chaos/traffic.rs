//! The run's own broker traffic, which must outlive every fault it causes:
//! publishing jobs with confirms (a publish that fails is repeated on a new
//! connection, so a job may be published twice, never lost) and collecting
//! every result by `job_id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use rehost::result::ResultMessage;

/// The broker the run's own traffic uses (set once at the start).
static AMQP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the broker URL of the run's traffic (the first call wins).
pub fn use_broker(url: String) {
    let _ = AMQP.set(url);
}

pub fn amqp() -> &'static str {
    AMQP.get()
        .map_or("amqp://guest:guest@127.0.0.1:5672/%2f", String::as_str)
}

async fn channel() -> Option<(Connection, Channel)> {
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(amqp(), ConnectionProperties::default()),
    )
    .await
    .ok()?
    .ok()?;
    let ch = conn.create_channel().await.ok()?;
    Some((conn, ch))
}

/// Publishes jobs, reconnecting as often as it takes.
pub struct Publisher {
    exchange: String,
    link: Option<(Connection, Channel)>,
    /// Publishes that had to be repeated (possible duplicate jobs).
    pub repeats: usize,
}

impl Publisher {
    pub fn new(exchange: &str) -> Self {
        Publisher {
            exchange: exchange.to_string(),
            link: None,
            repeats: 0,
        }
    }

    /// Publishes until the broker confirms (bounded by `give_up`).
    pub async fn publish(&mut self, body: &[u8], give_up: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + give_up;
        let mut first = true;
        while tokio::time::Instant::now() < deadline {
            if !first {
                self.repeats += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            first = false;
            if self
                .link
                .as_ref()
                .is_none_or(|(c, _)| !c.status().connected())
            {
                self.link = connect_confirming().await;
            }
            let Some((_, ch)) = &self.link else { continue };
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
            let sent = ch
                .basic_publish(
                    self.exchange.as_str().into(),
                    "media.ingest".into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await;
            let confirmed = match sent {
                Ok(c) => tokio::time::timeout(Duration::from_secs(10), c).await,
                Err(_) => {
                    self.link = None;
                    continue;
                }
            };
            match confirmed {
                Ok(Ok(Confirmation::Ack(None))) => return true,
                _ => self.link = None,
            }
        }
        false
    }
}

async fn connect_confirming() -> Option<(Connection, Channel)> {
    let (conn, ch) = channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ok()?;
    Some((conn, ch))
}

/// Every result received, by `job_id`, with repeats counted.
#[derive(Default)]
pub struct Results {
    pub by_job: HashMap<String, Vec<ResultMessage>>,
    /// Results whose AMQP message id was seen before (at-least-once repeats).
    pub repeats: usize,
    seen_ids: std::collections::HashSet<String>,
}

impl Results {
    /// The job's final result: `ready` is final; else the last `failed`.
    pub fn final_of(&self, job: &str) -> Option<&ResultMessage> {
        let all = self.by_job.get(job)?;
        all.iter()
            .find(|r| r.status == rehost::result::Status::Ready)
            .or_else(|| {
                all.iter()
                    .rev()
                    .find(|r| r.status == rehost::result::Status::Failed)
            })
    }
}

/// Collects results from `queue` in the background, reconnecting as needed.
pub fn collect(queue: String) -> Arc<Mutex<Results>> {
    let results = Arc::new(Mutex::new(Results::default()));
    let sink = results.clone();
    tokio::spawn(async move {
        loop {
            if let Some((_conn, ch)) = channel().await {
                consume(&ch, &queue, &sink).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    results
}

async fn consume(ch: &Channel, queue: &str, sink: &Arc<Mutex<Results>>) {
    let opts = BasicConsumeOptions::default();
    let Ok(mut consumer) = ch
        .basic_consume(
            queue.into(),
            "chaos-results".into(),
            opts,
            FieldTable::default(),
        )
        .await
    else {
        return;
    };
    while let Some(Ok(d)) = consumer.next().await {
        if let Ok(r) = serde_json::from_slice::<ResultMessage>(&d.data) {
            let mut all = sink.lock().unwrap_or_else(|p| p.into_inner());
            let id = r.message_id();
            if !all.seen_ids.insert(id) {
                all.repeats += 1;
            }
            all.by_job.entry(r.job_id.clone()).or_default().push(r);
        }
        let _ = d.acker.ack(BasicAckOptions::default()).await;
    }
}
