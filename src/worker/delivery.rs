//! One delivery, from the queue to its ack: process (holding through a
//! store outage), publish what the delivery owes (result, `reply_to` copy,
//! retry move or parking), and ack only after the broker confirmed it all.
//! What to do at each point is decided in [`super::decide`] and
//! [`crate::bounds::Budgets`]; this module carries it out.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::Ctx;
use super::decide::{self, AfterTry, Asked, PublicGate};
use super::intake::Arrival;
use super::publish;
use super::session::Session;
use crate::bounds::AtTake;
use crate::broker::headers;
use crate::error;
use crate::metrics::METRICS;
use crate::pipeline::{Pipeline, Processed};
use crate::trace::TraceContext;

pub(super) async fn handle(
    ctx: Arc<Ctx>,
    session: Arc<Session>,
    arrival: Arrival,
    _permit: OwnedSemaphorePermit,
) {
    let _in_flight = ctx.health.in_flight();
    let Arrival { delivery, at } = arrival;
    tokio::select! {
        () = process(&ctx, &session, &delivery, at) => {}
        () = ctx.abandon.cancelled() => {
            tracing::warn!(delivery_tag = delivery.delivery_tag, "job abandoned at shutdown; left unacked for redelivery");
        }
        () = session.lost.cancelled() => {
            tracing::info!(delivery_tag = delivery.delivery_tag, "connection lost: job abandoned; the broker redelivers it");
        }
    }
}

async fn process(ctx: &Ctx, session: &Session, delivery: &Delivery, arrived: Instant) {
    let waited = arrived.elapsed();
    if ctx.budgets.at_take(waited) == AtTake::HandBack {
        tracing::warn!(
            waited_s = waited.as_secs(),
            "the job waited in intake too long for a whole try to fit before the broker's consumer timeout; returning it to the queue"
        );
        publish::hand_back(delivery).await;
        return;
    }
    let props = &delivery.properties;
    let headers = props.headers().as_ref();
    let attempt = headers::attempt(headers);
    let trace = headers::trace_context(headers);
    let message_id = props.message_id().as_ref().map(|m| m.as_str());
    let processed = match public_gate(ctx, delivery, message_id) {
        PublicGate::Defer => None,
        PublicGate::Expired => Some(expired(ctx, delivery, message_id, attempt)),
        PublicGate::Run => Some(run(ctx, delivery, attempt, arrived, &trace).await),
    };
    let steps = match processed {
        Some(p) if !decide::defer_finished(ctx.health.public_unfetchable(), &p) => {
            log_disposal(&p);
            let asked = Asked {
                reply_to: props
                    .reply_to()
                    .as_ref()
                    .map(|q| q.as_str())
                    .filter(|q| !q.is_empty()),
                correlation_id: props.correlation_id().as_ref().map(|c| c.as_str()),
            };
            decide::steps(p, asked, &ctx.names, attempt)
        }
        _ => decide::deferral(&ctx.names),
    };
    let job = publish::Job {
        delivery,
        trace: &trace,
    };
    let deadline = ctx.budgets.deadline(arrived);
    if !publish::all(ctx, session, &job, &steps, deadline).await {
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

/// Whether the job runs, waits for the public URL, or waited too long
/// (the job is parsed only while the public URL is failing).
fn public_gate(ctx: &Ctx, delivery: &Delivery, message_id: Option<&str>) -> PublicGate {
    let unfetchable = ctx.health.public_unfetchable();
    let rehosts = unfetchable && Pipeline::rehosts(&delivery.data, message_id);
    let headers = delivery.properties.headers().as_ref();
    let deferred_for = headers::deferred_at(headers).map(|at| {
        let now = chrono::Utc::now().timestamp_millis();
        Duration::from_millis(u64::try_from(now.saturating_sub(at)).unwrap_or(0))
    });
    decide::public_gate(
        unfetchable,
        rehosts,
        deferred_for,
        ctx.config.public.defer_max,
    )
}

/// A job deferred longer than `REHOST_DEFER_MAX_SECS`: its try fails with
/// `storage_unavailable` (retryable), naming the public URL. Not a store
/// outage, so it is not held for the store.
fn expired(ctx: &Ctx, delivery: &Delivery, message_id: Option<&str>, attempt: u32) -> Processed {
    let base = ctx.config.store.as_ref().map_or("", |s| s.public_base());
    let error = error::storage_unavailable(format!(
        "the public URLs under {base} have not been fetchable for over {} s of deferral (see /readyz and rehost_public_url_ok): fix PUBLIC_BASE_URL or the bucket's public access",
        ctx.config.public.defer_max.as_secs()
    ));
    tracing::warn!(%base, "job deferred too long for its public URL; its try fails");
    ctx.pipeline
        .refused(&delivery.data, message_id, attempt, error)
}

fn log_disposal(processed: &Processed) {
    if let Processed::NotAJob { reason } = processed {
        tracing::warn!(%reason, "not a job; parking it");
    }
}

/// Runs the job; a store failure holds it until the store answers again and
/// runs it again on the same try (while a rerun still fits the budget).
async fn run(
    ctx: &Ctx,
    delivery: &Delivery,
    attempt: u32,
    arrived: Instant,
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
        let until = ctx.budgets.hold_until(arrived, Instant::now());
        match decide::after_try(decide::store_failed(&p), reruns, until) {
            AfterTry::Finish => return p,
            AfterTry::HoldForStore { until } => {
                if !hold_for_store(ctx, until).await {
                    return p;
                }
            }
        }
        reruns += 1;
        tracing::info!(
            reruns,
            "store answers again; running the job again on the same try"
        );
    }
}

/// Waits for the store to answer again; `false` when it did not by `until`
/// (or the job is abandoned).
async fn hold_for_store(ctx: &Ctx, until: Instant) -> bool {
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
