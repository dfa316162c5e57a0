//! What a delivery owes the broker before it may be acked, each step
//! published until the broker confirms it. Steps are retried one by one, so
//! a failing `reply_to` never repeats the event already published.
//!
//! A step waits (holding intake closed) while the broker blocks the
//! connection or refuses the publish; it gives up when the delivery's
//! connection is gone (the broker redelivers the job), when the worker
//! abandons its jobs, or when the delivery's budget runs out (the job is
//! handed back to the queue).

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use tokio::time::Instant;

use super::Ctx;
use super::delivery::DELIVERY_BUDGET;
use super::health::PublishHold;
use super::session::Session;
use crate::broker::publisher::PublishError;
use crate::metrics::{METRICS, labels};
use crate::result::ResultMessage;
use crate::trace::TraceContext;

/// A delivery and the trace its job runs in.
pub(super) struct Job<'a> {
    pub delivery: &'a Delivery,
    pub trace: &'a TraceContext,
}

/// Longest wait for one publish's confirm before it is tried again.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// One message a delivery owes.
pub(super) enum Step {
    /// The result, to the results exchange.
    Event(Box<ResultMessage>),
    /// The same result, to the job's `reply_to` queue.
    Reply {
        queue: String,
        correlation_id: Option<String>,
        result: Box<ResultMessage>,
    },
    /// The job, to its retry queue.
    Retry { queue: String, next_attempt: u32 },
    /// The body, to the parking lot.
    Park { reason: String },
}

impl Step {
    async fn send(&self, ctx: &Ctx, session: &Session, d: &Job<'_>) -> Result<(), PublishError> {
        let (p, t) = (&session.publisher, d.trace);
        let (body, props) = (&d.delivery.data, &d.delivery.properties);
        match self {
            Step::Event(result) => p.event(&ctx.names, result, t).await,
            Step::Reply {
                queue,
                correlation_id,
                result,
            } => p.reply(queue, correlation_id.as_deref(), result, t).await,
            Step::Retry {
                queue,
                next_attempt,
            } => p.retry(queue, body, props, *next_attempt, t).await,
            Step::Park { reason } => p.park(&ctx.names, body, props, reason, t).await,
        }
    }

    /// Counts what was published.
    fn count(&self, delivery: &Delivery) {
        match self {
            Step::Event(result) => {
                let code = result.error.as_ref().map_or("none", |e| e.code.as_str());
                let status = result.status.as_str();
                METRICS
                    .jobs
                    .get_or_create(&labels(&[("status", status), ("code", code)]))
                    .inc();
                observe_age(delivery);
            }
            Step::Retry { .. } => {
                METRICS.retries.inc();
            }
            Step::Park { .. } => {
                METRICS
                    .parked
                    .get_or_create(&labels(&[("reason", "not_a_job")]))
                    .inc();
            }
            Step::Reply { .. } => {}
        }
    }
}

/// Publish-to-result latency, when the job carries the AMQP `timestamp`.
fn observe_age(delivery: &Delivery) {
    if let Some(ts) = delivery.properties.timestamp() {
        let now = chrono::Utc::now().timestamp_millis();
        let published = i64::try_from(*ts).unwrap_or(i64::MAX).saturating_mul(1000);
        if now >= published {
            METRICS
                .job_age_seconds
                .observe((now - published) as f64 / 1000.0);
        }
    }
}

/// Publishes every step in order; `false` when one had to be given up (the
/// delivery must then not be acked).
pub(super) async fn all(
    ctx: &Ctx,
    session: &Session,
    job: &Job<'_>,
    steps: &[Step],
    received: Instant,
) -> bool {
    for step in steps {
        if !reliably(ctx, session, job, step, received).await {
            return false;
        }
        step.count(job.delivery);
    }
    true
}

/// Publishes one step until the broker confirms it, or gives up.
async fn reliably(
    ctx: &Ctx,
    session: &Session,
    job: &Job<'_>,
    step: &Step,
    received: Instant,
) -> bool {
    let delivery = job.delivery;
    let mut backoff = Duration::from_millis(200);
    let mut hold: Option<PublishHold<'_>> = None;
    loop {
        if !delivery.acker.usable() || session.lost.is_cancelled() {
            tracing::warn!("the delivery's connection closed; the job is left for redelivery");
            return false;
        }
        if received.elapsed() >= DELIVERY_BUDGET {
            hand_back(delivery).await;
            return false;
        }
        let wait = if session.publisher.blocked() {
            Duration::from_millis(500)
        } else {
            match tokio::time::timeout(PUBLISH_TIMEOUT, step.send(ctx, session, job)).await {
                Ok(Ok(())) => return true,
                Ok(Err(e)) => tracing::warn!(error = %e, "publish failed; retrying"),
                Err(_) => tracing::warn!(
                    "no confirm within {} s; retrying",
                    PUBLISH_TIMEOUT.as_secs()
                ),
            }
            if ctx.names.declare {
                // A deleted exchange or queue comes back with the topology.
                let _ = session.publisher.ensure_topology(&ctx.names).await;
            }
            let wait = backoff;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            wait
        };
        hold.get_or_insert_with(|| ctx.health.hold_publish());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.abandon.cancelled() => return false,
            () = session.lost.cancelled() => return false,
        }
    }
}

/// The delivery's budget ran out before its result could be published:
/// hand it back to the queue now rather than at the broker's consumer
/// timeout.
async fn hand_back(delivery: &Delivery) {
    tracing::warn!(
        budget_s = DELIVERY_BUDGET.as_secs(),
        "the result could not be published within the delivery's budget; returning the job to the queue"
    );
    let nack = delivery.acker.nack(BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    });
    let _ = tokio::time::timeout(Duration::from_secs(5), nack).await;
}
