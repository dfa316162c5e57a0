//! One delivery, from the queue to its ack: process, hold through a store
//! outage, publish the result (and move the job to a retry queue, or park
//! it), and ack only after the broker confirmed every publish.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::OwnedSemaphorePermit;

use super::Ctx;
use crate::broker::publisher::{PublishError, Publisher};
use crate::broker::{Names, headers};
use crate::error::ErrorCode;
use crate::metrics::{METRICS, labels};
use crate::pipeline::Processed;
use crate::result::{ResultMessage, Status};

/// How often a job is re-run after the store recovers before the failure
/// counts as a try (a store that answers checks but fails this job's writes).
const STORE_RERUNS: u32 = 3;
/// Longest a job waits for the store to recover before its try fails.
const STORE_HOLD: Duration = Duration::from_secs(600);
/// How long one delivery may stay unacked: below RabbitMQ's default
/// `consumer_timeout` of 30 minutes, after which the broker closes the
/// channel (and with it every job in flight on it).
pub(super) const DELIVERY_BUDGET: Duration = Duration::from_secs(25 * 60);

pub(super) async fn handle(ctx: Arc<Ctx>, delivery: Delivery, _permit: OwnedSemaphorePermit) {
    METRICS.in_flight.inc();
    let cancel = ctx.cancel.clone();
    tokio::select! {
        () = process(&ctx, &delivery) => {}
        () = cancel.cancelled() => {
            tracing::warn!(delivery_tag = delivery.delivery_tag, "job abandoned at shutdown; left unacked for redelivery");
        }
    }
    METRICS.in_flight.dec();
}

async fn process(ctx: &Ctx, delivery: &Delivery) {
    let received = tokio::time::Instant::now();
    let props = &delivery.properties;
    let attempt = headers::attempt(props.headers().as_ref());
    let message_id = props.message_id().as_ref().map(|m| m.as_str().to_string());
    let mut reruns = 0;
    let processed = loop {
        let p = ctx
            .pipeline
            .process(&delivery.data, message_id.as_deref(), attempt)
            .await;
        let store_failed = matches!(&p, Processed::Result { result, .. }
            if result.error.as_ref().is_some_and(|e| e.code == ErrorCode::StorageUnavailable));
        // Hold only while a rerun still fits in the delivery's budget.
        let hold_until = (received + DELIVERY_BUDGET).checked_sub(ctx.pipeline.job_timeout);
        if store_failed && reruns < STORE_RERUNS && hold_for_store(ctx, hold_until).await {
            reruns += 1;
            tracing::info!(
                reruns,
                "store answers again; running the job again on the same try"
            );
            continue;
        }
        break p;
    };
    let reply_to = props.reply_to().as_ref().map(|s| s.as_str().to_string());
    let correlation_id = props
        .correlation_id()
        .as_ref()
        .map(|s| s.as_str().to_string());
    let published = match processed {
        Processed::NotAJob { reason } => {
            tracing::warn!(%reason, "not a job; parking it");
            let ok = reliably(ctx, delivery, &Publish::Park { reason }).await;
            if ok {
                METRICS
                    .parked
                    .get_or_create(&labels(&[("reason", "not_a_job")]))
                    .inc();
            }
            ok
        }
        Processed::Result {
            result,
            retry_after,
        } => {
            let status = result.status;
            let code = result.error.as_ref().map_or("none", |e| e.code.as_str());
            let job_labels = labels(&[("status", status.as_str()), ("code", code)]);
            let reported = reliably(
                ctx,
                delivery,
                &Publish::Result {
                    result,
                    reply_to,
                    correlation_id,
                },
            )
            .await;
            if reported {
                METRICS.jobs.get_or_create(&job_labels).inc();
            }
            if reported && status == Status::Retry {
                move_to_retry(ctx, delivery, attempt, retry_after).await
            } else {
                reported
            }
        }
    };
    if !published {
        return;
    }
    match delivery.acker.ack(BasicAckOptions::default()).await {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            tracing::warn!(
                "could not ack (channel gone); the broker will redeliver and the result repeat"
            );
        }
    }
}

async fn move_to_retry(
    ctx: &Ctx,
    delivery: &Delivery,
    attempt: u32,
    retry_after: Option<Duration>,
) -> bool {
    let Some((delay, queue)) = ctx.names.retry_queue(attempt, retry_after).cloned() else {
        tracing::error!("no retry queue configured");
        return false;
    };
    tracing::info!(%queue, delay_ms = delay.as_millis() as u64, next_attempt = attempt + 1, "moving the job to its retry queue");
    let ok = reliably(
        ctx,
        delivery,
        &Publish::Retry {
            queue,
            next_attempt: attempt + 1,
        },
    )
    .await;
    if ok {
        METRICS.retries.inc();
    }
    ok
}

/// Waits for the store to answer again; `false` when it did not within the
/// hold limit and `until` (or the worker is stopping).
async fn hold_for_store(ctx: &Ctx, until: Option<tokio::time::Instant>) -> bool {
    let now = tokio::time::Instant::now();
    let Some(until) = until.filter(|u| *u > now).map(|u| u.min(now + STORE_HOLD)) else {
        return false;
    };
    ctx.health.set_store(false);
    METRICS.held.inc();
    tracing::warn!(
        "object storage is failing; holding the job and pausing intake until it answers"
    );
    let recovered = tokio::select! {
        () = ctx.health.wait_store() => true,
        () = tokio::time::sleep_until(until) => false,
        () = ctx.cancel.cancelled() => false,
    };
    METRICS.held.dec();
    recovered
}

/// What a delivery needs published before it may be acked.
enum Publish {
    Result {
        result: Box<ResultMessage>,
        reply_to: Option<String>,
        correlation_id: Option<String>,
    },
    Retry {
        queue: String,
        next_attempt: u32,
    },
    Park {
        reason: String,
    },
}

impl Publish {
    async fn send(
        &self,
        p: &Publisher,
        names: &Names,
        delivery: &Delivery,
    ) -> Result<(), PublishError> {
        match self {
            Publish::Result {
                result,
                reply_to,
                correlation_id,
            } => {
                p.result(
                    names,
                    result,
                    reply_to.as_deref(),
                    correlation_id.as_deref(),
                )
                .await
            }
            Publish::Retry {
                queue,
                next_attempt,
            } => {
                p.retry(queue, &delivery.data, &delivery.properties, *next_attempt)
                    .await
            }
            Publish::Park { reason } => {
                p.park(names, &delivery.data, &delivery.properties, reason)
                    .await
            }
        }
    }
}

/// Runs a publish until the broker confirms it. Gives up (leaving the job
/// unacked, so the broker redelivers it) when the delivery's channel is gone
/// or the worker is stopping.
async fn reliably(ctx: &Ctx, delivery: &Delivery, publish: &Publish) -> bool {
    let mut backoff = Duration::from_millis(200);
    let mut held = false;
    let done = loop {
        if !delivery.acker.usable() {
            tracing::warn!("the delivery's channel closed; the job is left for redelivery");
            break false;
        }
        if ctx.cancel.is_cancelled() {
            break false;
        }
        let current = ctx.publisher.borrow().clone();
        let Some(publisher) = current.filter(|p| p.connected()) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match publish.send(&publisher, &ctx.names, delivery).await {
            Ok(()) => {
                ctx.health.set_publish(true);
                break true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "publish failed; retrying");
                ctx.health.set_publish(false);
                if !held {
                    held = true;
                    METRICS.held.inc();
                }
                if ctx.names.declare {
                    // A deleted exchange or queue comes back with the topology.
                    let _ = publisher.ensure_topology(&ctx.names).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = ctx.cancel.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    };
    if held {
        METRICS.held.dec();
    }
    done
}
