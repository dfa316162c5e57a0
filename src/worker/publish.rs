//! What a delivery owes the broker before it may be acked, each step
//! published until the broker confirms it. Steps are retried one by one, so
//! a failing `reply_to` never repeats the event already published.
//!
//! A step waits (holding intake closed) while the broker blocks the
//! connection or refuses the publish; it gives up when the delivery's
//! connection is gone (the broker redelivers the job), when the worker
//! abandons its jobs, or when the delivery's budget runs out (the job is
//! handed back to the queue).

use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use tokio::time::Instant;

use super::Ctx;
use super::decide::{self, PublishFacts, Step, Turn};
use super::health::PublishHold;
use super::session::Session;
use crate::bounds::{HAND_BACK, PUBLISH_TIMEOUT, TOPOLOGY_REPAIR};
use crate::broker::publisher::PublishError;
use crate::metrics::{METRICS, labels};
use crate::trace::TraceContext;

/// A delivery and the trace its job runs in.
pub(super) struct Job<'a> {
    pub delivery: &'a Delivery,
    pub trace: &'a TraceContext,
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
            Step::Defer { queue } => p.defer(queue, body, props, t).await,
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
            Step::Retry {
                queue,
                next_attempt,
            } => {
                tracing::info!(%queue, next_attempt, "moved the job to its retry queue");
                METRICS.retries.inc();
            }
            Step::Park { .. } => {
                METRICS
                    .parked
                    .get_or_create(&labels(&[("reason", "not_a_job")]))
                    .inc();
            }
            Step::Defer { queue } => {
                tracing::info!(%queue, "public URLs not fetchable: job deferred");
                METRICS.jobs_deferred.inc();
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
    deadline: Instant,
) -> bool {
    for step in steps {
        if !reliably(ctx, session, job, step, deadline).await {
            return false;
        }
        step.count(job.delivery);
    }
    true
}

/// Publishes one step until the broker confirms it, or gives up (each turn
/// decided by [`decide::publish_turn`]).
async fn reliably(
    ctx: &Ctx,
    session: &Session,
    job: &Job<'_>,
    step: &Step,
    deadline: Instant,
) -> bool {
    let delivery = job.delivery;
    let mut backoff = decide::FIRST_BACKOFF;
    let mut hold: Option<PublishHold<'_>> = None;
    loop {
        let facts = PublishFacts {
            usable: delivery.acker.usable() && !session.lost.is_cancelled(),
            now: Instant::now(),
            deadline,
            blocked: session.publisher.blocked(),
        };
        let wait = match decide::publish_turn(facts) {
            Turn::Abandon => {
                tracing::warn!("the delivery's connection closed; the job is left for redelivery");
                return false;
            }
            Turn::HandBack => {
                tracing::warn!(
                    "the result could not be published within the delivery's budget; returning the job to the queue"
                );
                hand_back(delivery).await;
                return false;
            }
            Turn::WaitBlocked => decide::BLOCKED_WAIT,
            Turn::Send => {
                if send(ctx, session, job, step).await {
                    return true;
                }
                let (wait, next) = decide::backoff(backoff);
                backoff = next;
                wait
            }
        };
        hold.get_or_insert_with(|| ctx.health.hold_publish());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.abandon.cancelled() => return false,
            () = session.lost.cancelled() => return false,
        }
    }
}

/// One publish of `step`, its confirm awaited (bounded); after a failure
/// the topology is declared again (bounded) in case an entity was deleted.
async fn send(ctx: &Ctx, session: &Session, job: &Job<'_>, step: &Step) -> bool {
    match tokio::time::timeout(PUBLISH_TIMEOUT, step.send(ctx, session, job)).await {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => tracing::warn!(error = %e, "publish failed; retrying"),
        Err(_) => tracing::warn!(
            "no confirm within {} s; retrying",
            PUBLISH_TIMEOUT.as_secs()
        ),
    }
    if ctx.names.declare {
        let repair = session.publisher.ensure_topology(&ctx.names);
        if tokio::time::timeout(TOPOLOGY_REPAIR, repair).await.is_err() {
            tracing::warn!(
                "re-declaring the topology took over {} s",
                TOPOLOGY_REPAIR.as_secs()
            );
        }
    }
    false
}

/// Gives the delivery back to the queue now (nack, requeue) rather than
/// at the broker's consumer timeout.
pub(super) async fn hand_back(delivery: &Delivery) {
    let nack = delivery.acker.nack(BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    });
    let _ = tokio::time::timeout(HAND_BACK, nack).await;
}
