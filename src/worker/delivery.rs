//! One delivery, from the queue to its ack: process (holding through a
//! store outage), publish what the delivery owes (result, `reply_to` copy,
//! retry move or parking), and ack only after the broker confirmed it all.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::Ctx;
use super::publish::{self, Step};
use super::session::Session;
use crate::broker::headers;
use crate::error::ErrorCode;
use crate::metrics::METRICS;
use crate::pipeline::Processed;
use crate::result::Status;
use crate::trace::TraceContext;

/// How often a job is re-run after the store recovers before the failure
/// counts as a try (a store that answers checks but fails this job's writes).
const STORE_RERUNS: u32 = 3;
/// Longest a job waits for the store to recover before its try fails.
const STORE_HOLD: Duration = Duration::from_secs(600);
/// How long one delivery may stay unacked: below RabbitMQ's default
/// `consumer_timeout` of 30 minutes, after which the broker closes the
/// channel (and with it every job in flight on it).
pub(super) const DELIVERY_BUDGET: Duration = Duration::from_secs(25 * 60);

pub(super) async fn handle(
    ctx: Arc<Ctx>,
    session: Arc<Session>,
    delivery: Delivery,
    _permit: OwnedSemaphorePermit,
) {
    let _in_flight = ctx.health.in_flight();
    tokio::select! {
        () = process(&ctx, &session, &delivery) => {}
        () = ctx.abandon.cancelled() => {
            tracing::warn!(delivery_tag = delivery.delivery_tag, "job abandoned at shutdown; left unacked for redelivery");
        }
        () = session.lost.cancelled() => {
            tracing::info!(delivery_tag = delivery.delivery_tag, "connection lost: job abandoned; the broker redelivers it");
        }
    }
}

async fn process(ctx: &Ctx, session: &Session, delivery: &Delivery) {
    let received = Instant::now();
    let headers = delivery.properties.headers().as_ref();
    let attempt = headers::attempt(headers);
    let trace = headers::trace_context(headers);
    let processed = run(ctx, delivery, attempt, received, &trace).await;
    let steps = steps(ctx, delivery, processed, attempt);
    let job = publish::Job {
        delivery,
        trace: &trace,
    };
    if !publish::all(ctx, session, &job, &steps, received).await {
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

/// Runs the job; a store failure holds it until the store answers again and
/// runs it again on the same try (while a rerun still fits the budget).
async fn run(
    ctx: &Ctx,
    delivery: &Delivery,
    attempt: u32,
    received: Instant,
    trace: &TraceContext,
) -> Processed {
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_string());
    let mut reruns = 0;
    loop {
        let p = ctx
            .pipeline
            .process_traced(&delivery.data, message_id.as_deref(), attempt, trace)
            .await;
        let store_failed = matches!(&p, Processed::Result { result, .. }
            if result.error.as_ref().is_some_and(|e| e.code == ErrorCode::StorageUnavailable));
        let hold_until = (received + DELIVERY_BUDGET).checked_sub(ctx.pipeline.job_timeout);
        if !store_failed || reruns >= STORE_RERUNS || !hold_for_store(ctx, hold_until).await {
            return p;
        }
        reruns += 1;
        tracing::info!(
            reruns,
            "store answers again; running the job again on the same try"
        );
    }
}

/// What the delivery owes, in order.
fn steps(ctx: &Ctx, delivery: &Delivery, processed: Processed, attempt: u32) -> Vec<Step> {
    let props = &delivery.properties;
    let (result, retry_after) = match processed {
        Processed::NotAJob { reason } => {
            tracing::warn!(%reason, "not a job; parking it");
            return vec![Step::Park { reason }];
        }
        Processed::Result {
            result,
            retry_after,
        } => (result, retry_after),
    };
    let status = result.status;
    let mut steps = Vec::new();
    if let Some(queue) = props.reply_to().as_ref().filter(|q| !q.as_str().is_empty()) {
        steps.push(Step::Reply {
            queue: queue.as_str().to_string(),
            correlation_id: props
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str().to_string()),
            result: result.clone(),
        });
    }
    steps.insert(0, Step::Event(result));
    if status == Status::Retry {
        match ctx.names.retry_queue(attempt, retry_after) {
            Some((delay, queue)) => {
                tracing::info!(%queue, delay_ms = delay.as_millis() as u64, next_attempt = attempt + 1, "moving the job to its retry queue");
                steps.push(Step::Retry {
                    queue: queue.clone(),
                    next_attempt: attempt + 1,
                });
            }
            None => tracing::error!("no retry queue configured"),
        }
    }
    steps
}

/// Waits for the store to answer again; `false` when it did not within the
/// hold limit and `until` (or the job is abandoned).
async fn hold_for_store(ctx: &Ctx, until: Option<Instant>) -> bool {
    let now = Instant::now();
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
        () = ctx.abandon.cancelled() => false,
    };
    METRICS.held.dec();
    recovered
}
