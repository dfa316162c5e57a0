//! Taking deliveries: once intake is open, one `basic.consume` on the job
//! queue; a delivery is taken only with a free permit and while intake is
//! open (the store and publishing work). Paused longer than the pause limit
//! with deliveries prefetched, the session is ended so the broker gets them
//! back before its consumer timeout.
//!
//! Each delivery is stamped when it arrives from the broker (a reader task
//! drains the consumer as deliveries come), because the broker's consumer
//! timeout runs from then, not from when a permit lets the worker take it.
//! The broker sends at most `REHOST_CONCURRENCY` unacked deliveries, so
//! the reader's queue holds at most that many.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Consumer;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::session::Session;
use super::{Ctx, delivery};
use crate::bounds::BEAT;
use crate::broker::headers::short;
use crate::metrics::METRICS;

/// A delivery and when it arrived from the broker.
pub(super) struct Arrival {
    pub delivery: Delivery,
    pub at: Instant,
}

type Arrivals = mpsc::UnboundedReceiver<anyhow::Result<Arrival>>;

/// Consumes until `stop` (`Ok`) or until the session is lost or must be
/// renewed (`Err`).
pub(super) async fn consume(
    ctx: &Arc<Ctx>,
    session: &Arc<Session>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    if !wait_until_open(ctx, session, stop).await? {
        return Ok(());
    }
    let tag = format!("rehost-{}", uuid::Uuid::new_v4().simple());
    let consumer = session
        .channel
        .basic_consume(
            short(&ctx.names.queue),
            short(&tag),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    ctx.health.set_consuming(true);
    tracing::info!(queue = %ctx.names.queue, "connected; consuming");
    let (tx, mut arrivals) = mpsc::unbounded_channel();
    let _reader = AbortOnDropHandle::new(tokio::spawn(read(consumer, tx)));
    let result = take(ctx, session, &mut arrivals, stop).await;
    ctx.health.set_consuming(false);
    if result.is_ok() {
        // Stopping: no new deliveries; prefetched ones return to the queue
        // when the channel closes.
        let cancel = session
            .channel
            .basic_cancel(short(&tag), BasicCancelOptions::default());
        let _ = tokio::time::timeout(Duration::from_secs(5), cancel).await;
    }
    result
}

/// Waits (beating) until intake is open; `false` when stopping first.
async fn wait_until_open(
    ctx: &Ctx,
    session: &Session,
    stop: &CancellationToken,
) -> anyhow::Result<bool> {
    loop {
        ctx.health.beat();
        tokio::select! {
            () = stop.cancelled() => return Ok(false),
            () = session.lost.cancelled() => anyhow::bail!("the connection was lost"),
            () = ctx.health.wait_open() => return Ok(true),
            () = tokio::time::sleep(BEAT) => {}
        }
    }
}

/// Drains the consumer, stamping each delivery as it arrives; ends with
/// the consumer (or when intake no longer listens).
async fn read(mut consumer: Consumer, tx: mpsc::UnboundedSender<anyhow::Result<Arrival>>) {
    loop {
        let next = match consumer.next().await {
            Some(Ok(delivery)) => Ok(Arrival {
                delivery,
                at: Instant::now(),
            }),
            Some(Err(e)) => Err(e.into()),
            None => Err(anyhow::anyhow!("the consumer was cancelled by the broker")),
        };
        let last = next.is_err();
        if tx.send(next).is_err() || last {
            return;
        }
    }
}

/// Takes deliveries and starts a task for each.
async fn take(
    ctx: &Arc<Ctx>,
    session: &Arc<Session>,
    arrivals: &mut Arrivals,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(BEAT);
    let mut paused_since: Option<Instant> = None;
    loop {
        ctx.health.beat();
        paused_since = match (ctx.health.open(), paused_since) {
            (true, _) => None,
            (false, since) => since.or(Some(Instant::now())),
        };
        let permit = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = session.lost.cancelled() => anyhow::bail!("the connection was lost"),
            _ = tick.tick() => {
                refresh_depths(ctx, session).await;
                continue;
            }
            p = next_permit(ctx) => p?,
            () = pause_limit(paused_since, ctx.budgets.pause_limit()) => anyhow::bail!(
                "intake paused for {} s; returning prefetched jobs to the queue",
                ctx.budgets.pause_limit().as_secs()
            ),
        };
        let Some(arrival) = next_delivery(ctx, session, arrivals, stop, &mut tick).await? else {
            return Ok(());
        };
        METRICS.deliveries.inc();
        ctx.tasks.spawn(delivery::handle(
            ctx.clone(),
            session.clone(),
            arrival,
            permit,
        ));
    }
}

/// A permit, once intake is open.
async fn next_permit(ctx: &Ctx) -> anyhow::Result<OwnedSemaphorePermit> {
    ctx.health.wait_open().await;
    Ok(ctx.permits.clone().acquire_owned().await?)
}

/// Resolves when intake has been paused for `limit`.
async fn pause_limit(since: Option<Instant>, limit: Duration) {
    match since {
        Some(since) => tokio::time::sleep_until(since + limit).await,
        None => std::future::pending().await,
    }
}

/// The next delivery (beating while waiting); `None` when stopping.
async fn next_delivery(
    ctx: &Ctx,
    session: &Session,
    arrivals: &mut Arrivals,
    stop: &CancellationToken,
    tick: &mut tokio::time::Interval,
) -> anyhow::Result<Option<Arrival>> {
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = session.lost.cancelled() => anyhow::bail!("the connection was lost"),
            a = arrivals.recv() => match a {
                Some(Ok(arrival)) => return Ok(Some(arrival)),
                Some(Err(e)) => return Err(e),
                None => anyhow::bail!("the consumer ended"),
            },
            _ = tick.tick() => {
                ctx.health.beat();
                refresh_depths(ctx, session).await;
            }
        }
    }
}

/// Refreshes the parking lot's and the job queue's depth gauges (bounded).
async fn refresh_depths(ctx: &Ctx, session: &Session) {
    let limit = Duration::from_secs(5);
    let dead = tokio::time::timeout(limit, session.publisher.depth(&ctx.names.dead)).await;
    if let Ok(Ok(n)) = dead {
        METRICS.dead_depth.set(i64::from(n));
    }
    let ready = tokio::time::timeout(limit, session.publisher.depth(&ctx.names.queue)).await;
    if let Ok(Ok(n)) = ready {
        METRICS.queue_ready.set(i64::from(n));
    }
}
