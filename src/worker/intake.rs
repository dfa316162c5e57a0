//! Taking deliveries: once intake is open, one `basic.consume` on the job
//! queue; a delivery is taken only with a free permit and while intake is
//! open (the store and publishing work). Paused longer than the pause limit
//! with deliveries prefetched, the session is ended so the broker gets them
//! back before its consumer timeout.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Consumer;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::session::Session;
use super::{Ctx, delivery};
use crate::broker::headers::short;
use crate::metrics::METRICS;

/// How often the intake loop shows it is alive (and refreshes queue depths).
pub(super) const BEAT: Duration = Duration::from_secs(15);

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
    let mut consumer = session
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
    let result = take(ctx, session, &mut consumer, stop).await;
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

/// Takes deliveries and starts a task for each.
async fn take(
    ctx: &Arc<Ctx>,
    session: &Arc<Session>,
    consumer: &mut Consumer,
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
            () = pause_limit(paused_since, ctx.config.pause_limit) => anyhow::bail!(
                "intake paused for {} s; returning prefetched jobs to the queue",
                ctx.config.pause_limit.as_secs()
            ),
        };
        let Some(delivery) = next_delivery(ctx, session, consumer, stop, &mut tick).await? else {
            return Ok(());
        };
        METRICS.deliveries.inc();
        ctx.tasks.spawn(delivery::handle(
            ctx.clone(),
            session.clone(),
            delivery,
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
    consumer: &mut Consumer,
    stop: &CancellationToken,
    tick: &mut tokio::time::Interval,
) -> anyhow::Result<Option<lapin::message::Delivery>> {
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = session.lost.cancelled() => anyhow::bail!("the connection was lost"),
            d = consumer.next() => match d {
                Some(Ok(delivery)) => return Ok(Some(delivery)),
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the consumer was cancelled by the broker"),
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
