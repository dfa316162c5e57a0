//! The worker's decisions, as plain functions of plain facts: what a
//! delivery owes the broker, whether a try is held for the store and run
//! again, and what each turn of publishing does. The broker loop
//! ([`super::delivery`], [`super::publish`]) only carries them out, so every
//! row of the outcome table in `docs/architecture.md` is tested here
//! without a broker (and under cargo-mutants).
//!
//! When a delivery arrived, may start a try, may wait for the store and
//! must be acked by are [`crate::bounds::Budgets`]' decisions.

use std::time::Duration;

use tokio::time::Instant;

use crate::broker::Names;
use crate::error::ErrorCode;
use crate::pipeline::Processed;
use crate::result::{ResultMessage, Status};

/// One message a delivery owes, in the order owed.
#[derive(Debug, Clone, PartialEq)]
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
    /// The job, to the longest retry queue with its attempt unchanged and
    /// no event: its public URL is not fetchable yet (contract v4).
    Defer { queue: String },
}

/// What the job message asked of its result.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Asked<'a> {
    /// `reply_to`, if set and not empty.
    pub reply_to: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
}

/// What a delivery owes for what its try produced, in order: the event,
/// the `reply_to` copy, then the retry move for a `retry` result; a body
/// that is not a job is only parked. A `retry` result with no retry queue
/// (the settings always name one) parks the job rather than lose it.
pub(super) fn steps(
    processed: Processed,
    asked: Asked<'_>,
    names: &Names,
    attempt: u32,
) -> Vec<Step> {
    let (result, retry_after) = match processed {
        Processed::NotAJob { reason } => return vec![Step::Park { reason }],
        Processed::Result {
            result,
            retry_after,
        } => (result, retry_after),
    };
    let status = result.status;
    let mut steps = Vec::with_capacity(3);
    if let Some(queue) = asked.reply_to {
        steps.push(Step::Reply {
            queue: queue.to_string(),
            correlation_id: asked.correlation_id.map(str::to_string),
            result: result.clone(),
        });
    }
    steps.insert(0, Step::Event(result));
    if status == Status::Retry {
        steps.push(match names.retry_queue(attempt, retry_after) {
            Some((_, queue)) => Step::Retry {
                queue: queue.clone(),
                next_attempt: attempt + 1,
            },
            None => Step::Park {
                reason: "a retry was due but no retry queue is configured".into(),
            },
        });
    }
    steps
}

/// What a delivery of a job that would be re-hosted does while the public
/// URL probe fails (under `REHOST_PUBLIC_PROBE=enforce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PublicGate {
    Run,
    /// Deferred: a copy to the longest retry queue, then ack.
    Defer,
    /// Deferred longer than `REHOST_DEFER_MAX_SECS`: fail the try with
    /// `storage_unavailable` (retryable).
    Expired,
}

/// Only jobs that re-host wait for the public URL, and only while the last
/// probe failed; one deferred longer than `max` since its first deferral
/// fails instead.
pub(super) fn public_gate(
    unfetchable: bool,
    rehosts: bool,
    deferred_for: Option<Duration>,
    max: Duration,
) -> PublicGate {
    match deferred_for {
        _ if !unfetchable || !rehosts => PublicGate::Run,
        Some(d) if d > max => PublicGate::Expired,
        _ => PublicGate::Defer,
    }
}

/// A try that finished `ready` with re-hosted URLs while the public URL is
/// not fetchable is deferred instead of published (its objects stay; the
/// next try finds them stored).
pub(super) fn defer_finished(unfetchable: bool, processed: &Processed) -> bool {
    unfetchable
        && matches!(processed, Processed::Result { result, .. }
            if result.status == Status::Ready && result.rehosted == Some(true))
}

/// The steps of a deferral: the job to the longest retry queue; parked if
/// no retry queue is configured (the settings always name one).
pub(super) fn deferral(names: &Names) -> Vec<Step> {
    match names.retries.iter().max_by_key(|(d, _)| *d) {
        Some((_, queue)) => vec![Step::Defer {
            queue: queue.clone(),
        }],
        None => vec![Step::Park {
            reason: "a deferral was due but no retry queue is configured".into(),
        }],
    }
}

/// Whether a try failed on the store (and so may be held and re-run).
pub(super) fn store_failed(processed: &Processed) -> bool {
    matches!(processed, Processed::Result { result, .. }
        if result.error.as_ref().is_some_and(|e| e.code == ErrorCode::StorageUnavailable))
}

/// What follows a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterTry {
    /// Publish what the try produced.
    Finish,
    /// Wait for the store until `until`, then run the try again.
    HoldForStore { until: Instant },
}

/// A try that failed on the store is held and re-run on the same attempt,
/// at most [`crate::bounds::STORE_RERUNS`] times, while a rerun fits
/// (`hold_until`, from [`crate::bounds::Budgets::hold_until`]).
pub(super) fn after_try(store_failed: bool, reruns: u32, hold_until: Option<Instant>) -> AfterTry {
    match hold_until {
        Some(until) if store_failed && reruns < crate::bounds::STORE_RERUNS => {
            AfterTry::HoldForStore { until }
        }
        _ => AfterTry::Finish,
    }
}

/// The facts one turn of publishing a step decides on.
#[derive(Debug, Clone, Copy)]
pub(super) struct PublishFacts {
    /// The delivery's channel is open and its session not lost.
    pub usable: bool,
    pub now: Instant,
    /// The delivery's budget ([`crate::bounds::Budgets::deadline`]).
    pub deadline: Instant,
    /// The broker blocks the connection (a resource alarm).
    pub blocked: bool,
}

/// One turn of publishing a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// The delivery's connection is gone: stop; the broker redelivers it.
    Abandon,
    /// The budget ran out: give the job back to the queue now, before the
    /// broker's consumer timeout closes the channel.
    HandBack,
    /// The broker blocks publishing: wait without publishing (a retry would
    /// only queue a duplicate behind the block).
    WaitBlocked,
    /// Publish and wait for the confirm.
    Send,
}

/// Wait between turns while the broker blocks the connection.
pub(super) const BLOCKED_WAIT: Duration = Duration::from_millis(500);
/// First wait after a failed publish; it doubles up to
/// [`crate::bounds::PUBLISH_BACKOFF_MAX`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(200);

pub(super) fn publish_turn(f: PublishFacts) -> Turn {
    if !f.usable {
        Turn::Abandon
    } else if f.now >= f.deadline {
        Turn::HandBack
    } else if f.blocked {
        Turn::WaitBlocked
    } else {
        Turn::Send
    }
}

/// The wait after a failed publish that waited `wait`, and the next one.
pub(super) fn backoff(wait: Duration) -> (Duration, Duration) {
    (wait, (wait * 2).min(crate::bounds::PUBLISH_BACKOFF_MAX))
}

#[cfg(test)]
mod tests;
