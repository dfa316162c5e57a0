//! `rehost worker`: the at-least-once job processor.
//!
//! One job's path: a delivery from the job queue → [`delivery::handle`] runs
//! the [`Pipeline`] → the result is published with confirms (and the job
//! moved to a retry queue, or parked) → the delivery is acked. The loop here
//! owns the connection: it reconnects with backoff, declares the topology,
//! pauses intake while the store or publishing fails, and on SIGTERM stops
//! taking jobs, lets those in flight finish within the grace period, and
//! abandons the rest unacked for redelivery.

mod delivery;
mod endpoints;
pub mod health;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::broker::headers::short;
use crate::broker::publisher::Publisher;
use crate::broker::{self, Names, topology};
use crate::config::Config;
use crate::metrics::METRICS;
use crate::pipeline::Pipeline;
use crate::store::Store;
use health::Health;

/// How often the intake loop shows it is alive (and refreshes the
/// parking-lot depth).
const BEAT: Duration = Duration::from_secs(15);
/// How long one connection attempt to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long intake may stay paused with deliveries prefetched before they
/// are handed back (below the broker's 30-minute consumer timeout).
const PAUSE_LIMIT: Duration = Duration::from_secs(20 * 60);

/// What every delivery task shares.
struct Ctx {
    pipeline: Pipeline,
    names: Names,
    health: Arc<Health>,
    /// The publisher of the current connection (`None` while disconnected).
    publisher: watch::Receiver<Option<Arc<Publisher>>>,
    /// Fired when the shutdown grace runs out: in-flight jobs are abandoned.
    cancel: CancellationToken,
}

/// A running worker's handles, for tests and the binary.
pub struct Running {
    pub http_addr: SocketAddr,
    pub health: Arc<Health>,
}

/// Runs the worker until `shutdown` resolves, then stops gracefully.
/// `on_start` receives the bound HTTP address once serving.
///
/// # Errors
/// Fatal start-up failures (the HTTP address cannot be bound).
pub async fn run(
    app: App,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(Running),
) -> anyhow::Result<()> {
    let App {
        config,
        pipeline,
        store,
    } = app;
    let store = store.ok_or_else(|| anyhow::anyhow!("rehost worker needs a store"))?;
    if config.job_timeout >= delivery::DELIVERY_BUDGET {
        tracing::warn!(
            job_timeout_s = config.job_timeout.as_secs(),
            "REHOST_JOB_TIMEOUT_SECS is at or above 25 minutes: a job may outlive the broker's consumer timeout (30 minutes by default); raise the broker's consumer_timeout to match"
        );
    }
    let health = Arc::new(Health::default());
    let (http_addr, http_task) = endpoints::serve(config.http_addr, health.clone()).await?;
    tracing::info!(%http_addr, "serving /healthz, /readyz and /metrics");
    on_start(Running {
        http_addr,
        health: health.clone(),
    });

    // Leftovers of killed workers; young ones may belong to live workers.
    match store.sweep(config.job_timeout * 2).await {
        Ok(s) => tracing::info!(
            temp_objects = s.temp_objects,
            uploads = s.uploads,
            "swept leftovers"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "sweep failed; the bucket's lifecycle rule will clean up")
        }
    }
    let prober = tokio::spawn(probe_store(store.clone(), health.clone()));
    if let Err(e) = store.check().await {
        tracing::error!(error = %e, "object storage does not answer; not taking jobs until it does");
        health.set_store(false);
    }

    let names = Names::from_config(&config);
    let (publisher_tx, publisher_rx) = watch::channel(None);
    let ctx = Arc::new(Ctx {
        pipeline,
        names,
        health: health.clone(),
        publisher: publisher_rx,
        cancel: CancellationToken::new(),
    });
    let tasks = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(usize::from(config.concurrency)));
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    let shutdown_task = async move {
        shutdown.await;
        stopper.cancel();
    };
    let consume = consume_loop(&config, &ctx, &publisher_tx, &tasks, &permits, &stop);
    tokio::pin!(shutdown_task);
    tokio::pin!(consume);
    // The consuming channel stays open until jobs in flight are acked.
    let _consuming: Option<lapin::Channel> = tokio::select! {
        ch = &mut consume => ch,
        () = &mut shutdown_task => {
            stop.cancel();
            consume.await
        }
    };
    stop.cancel();
    health.set_shutting_down();
    tracing::info!(
        in_flight = tasks.len(),
        grace_s = config.shutdown_grace.as_secs(),
        "stopping: no new jobs; letting those in flight finish"
    );
    tasks.close();
    if tokio::time::timeout(config.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            abandoned = tasks.len(),
            "shutdown grace ran out; abandoning jobs (uploads aborted, left unacked)"
        );
        ctx.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    }
    store.wait_cleanups(Duration::from_secs(5)).await;
    let last = publisher_tx.borrow().clone();
    if let Some(p) = last {
        let _ = tokio::time::timeout(Duration::from_secs(2), p.close()).await;
    }
    prober.abort();
    http_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Connects, sets up, consumes; reconnects with backoff until `stop`.
async fn consume_loop(
    config: &Config,
    ctx: &Arc<Ctx>,
    publisher_tx: &watch::Sender<Option<Arc<Publisher>>>,
    tasks: &TaskTracker,
    permits: &Arc<Semaphore>,
    stop: &CancellationToken,
) -> Option<lapin::Channel> {
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    while !stop.is_cancelled() {
        ctx.health.beat();
        if !first {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        first = false;
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, broker::connect(&config.broker.amqp_url)).await;
        let conn = match connected.unwrap_or_else(|_| {
            Err(lapin::Error::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        }) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot connect to the broker");
                continue;
            }
        };
        if let Err(e) = topology::ensure(&conn, &ctx.names).await {
            tracing::error!(error = %e, "broker topology is not usable; not taking jobs");
            ctx.health.set_topology_error(Some(e.0));
            ctx.health.set_broker(true);
            let _ = conn.close(200, short("topology")).await;
            backoff = Duration::from_secs(30);
            continue;
        }
        ctx.health.set_topology_error(None);
        let publisher = Arc::new(Publisher::new(conn.clone()));
        publisher_tx.send_replace(Some(publisher.clone()));
        ctx.health.set_broker(true);
        tracing::info!(queue = %ctx.names.queue, "connected; consuming");
        backoff = Duration::from_millis(500);
        let result = consume(config, ctx, &conn, &publisher, tasks, permits, stop).await;
        let channel = match result {
            Ok(channel) => channel,
            Err(e) => {
                ctx.health.set_broker(false);
                publisher_tx.send_replace(None);
                METRICS.broker_reconnects.inc();
                tracing::warn!(error = %e, "lost the broker; reconnecting");
                continue;
            }
        };
        // Stopping: the connection stays up so jobs in flight can still
        // publish their results and ack; `run` closes it once they are done.
        return Some(channel);
    }
    None
}

/// Takes deliveries until the connection fails (`Err`) or `stop` (`Ok`).
async fn consume(
    config: &Config,
    ctx: &Arc<Ctx>,
    conn: &lapin::Connection,
    publisher: &Arc<Publisher>,
    tasks: &TaskTracker,
    permits: &Arc<Semaphore>,
    stop: &CancellationToken,
) -> anyhow::Result<lapin::Channel> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(config.concurrency, BasicQosOptions { global: false })
        .await?;
    // While a dependency is failing, take no deliveries at all (they would
    // sit unacked, ageing towards the broker's consumer timeout).
    loop {
        ctx.health.beat();
        tokio::select! {
            () = stop.cancelled() => return Ok(channel),
            () = ctx.health.wait_open() => break,
            () = tokio::time::sleep(BEAT) => {}
        }
    }
    let tag = format!("rehost-{}", uuid::Uuid::new_v4().simple());
    let mut consumer = channel
        .basic_consume(
            short(&ctx.names.queue),
            short(&tag),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut depth_tick = tokio::time::interval(BEAT);
    let mut paused_since: Option<tokio::time::Instant> = None;
    loop {
        ctx.health.beat();
        paused_since = match (ctx.health.open(), paused_since) {
            (true, _) => None,
            (false, None) => Some(tokio::time::Instant::now()),
            (false, since) => since,
        };
        // Paused too long: hand the prefetched deliveries back to the queue
        // (the reconnect waits for the dependency before consuming again).
        let give_back = async {
            match paused_since {
                Some(since) => tokio::time::sleep_until(since + PAUSE_LIMIT).await,
                None => std::future::pending().await,
            }
        };
        // Intake pauses while the store or publishing is failing.
        let ready = async {
            ctx.health.wait_open().await;
            permits.clone().acquire_owned().await
        };
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            _ = depth_tick.tick() => {
                let depth = tokio::time::timeout(Duration::from_secs(5), publisher.depth(&ctx.names.dead)).await;
                if let Ok(Ok(n)) = depth {
                    METRICS.dead_depth.set(i64::from(n));
                }
                continue;
            }
            p = ready => p?,
            () = give_back => anyhow::bail!("intake paused for {} minutes; returning prefetched jobs to the queue", PAUSE_LIMIT.as_secs() / 60),
        };
        let next = loop {
            tokio::select! {
                () = stop.cancelled() => break None,
                d = consumer.next() => break Some(d),
                _ = depth_tick.tick() => ctx.health.beat(),
            }
        };
        let Some(next) = next else { break };
        match next {
            Some(Ok(delivery)) => {
                tasks.spawn(delivery::handle(ctx.clone(), delivery, permit));
            }
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the consumer was cancelled by the broker"),
        }
    }
    // Stop: no new deliveries. Unprocessed prefetched ones return to the
    // queue when the channel closes.
    let _ = channel
        .basic_cancel(short(&tag), BasicCancelOptions::default())
        .await;
    Ok(channel)
}

/// Checks the store while it is marked failing, and marks it healthy again.
async fn probe_store(store: Store, health: Arc<Health>) {
    loop {
        health.wait_store_failing().await;
        let mut backoff = Duration::from_millis(250);
        loop {
            tokio::time::sleep(backoff).await;
            match store.check().await {
                Ok(()) => {
                    tracing::info!("object storage answers again; resuming intake");
                    health.set_store(true);
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "object storage still failing"),
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}
