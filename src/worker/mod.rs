//! `rehost worker`: the at-least-once job processor.
//!
//! One job's path: a delivery from the job queue ([`intake`]) →
//! [`delivery::handle`] runs the [`Pipeline`] → the result is published with
//! confirms (and the job moved to a retry queue, or parked) by [`publish`] →
//! the delivery is acked. [`session`] owns one broker connection at a time:
//! it reconnects with jittered backoff, declares the topology and abandons
//! the jobs of a lost connection (the broker redelivers them). [`health`]
//! closes intake while the store or publishing fails, and tells `/healthz`
//! and `/readyz` the truth. On SIGTERM the worker stops taking jobs, lets
//! those in flight finish within the grace period, and abandons the rest
//! unacked for redelivery.

mod decide;
mod delivery;
mod endpoints;
pub mod health;
mod intake;
mod public;
mod publish;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::bounds::{self, Budgets};
use crate::broker::Names;
use crate::config::Config;
use crate::metrics::METRICS;
use crate::pipeline::Pipeline;
use crate::store::Store;
use health::Health;

/// What every delivery task shares.
struct Ctx {
    pipeline: Pipeline,
    config: Config,
    /// The delivery budgets derived from the settings.
    budgets: Budgets,
    names: Names,
    health: Arc<Health>,
    /// Fired when the shutdown grace runs out: in-flight jobs are abandoned.
    abandon: CancellationToken,
    tasks: TaskTracker,
    permits: Arc<Semaphore>,
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
/// Fatal start-up failures (no store; settings that do not fit under the
/// consumer timeout; the HTTP address cannot be bound).
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
    let budgets = config.budgets()?;
    let concurrency = usize::from(config.concurrency);
    let health = Arc::new(Health::new(concurrency, config.stall));
    let (http_addr, http_task) = endpoints::serve(config.http_addr, health.clone()).await?;
    tracing::info!(%http_addr, "serving /healthz, /readyz and /metrics");
    on_start(Running {
        http_addr,
        health: health.clone(),
    });
    METRICS
        .concurrency
        .set(i64::try_from(concurrency).unwrap_or(i64::MAX));
    let stop = CancellationToken::new();
    let prober = tokio::spawn(tend_store(
        store.clone(),
        health.clone(),
        config.job_timeout,
    ));
    let probing = tokio::spawn(public::watch(
        store.clone(),
        health.clone(),
        config.public.clone(),
    ));
    let ctx = Arc::new(Ctx {
        budgets,
        names: Names::from_config(&config),
        pipeline,
        health,
        abandon: CancellationToken::new(),
        tasks: TaskTracker::new(),
        permits: Arc::new(Semaphore::new(concurrency)),
        config,
    });
    // The connection stays up while jobs in flight finish, so they can
    // still publish their results and ack; it is closed once they are done.
    let sessions = session::run(&ctx, &stop);
    tokio::pin!(sessions);
    let last = tokio::select! {
        last = &mut sessions => last,
        () = shutdown => {
            stop.cancel();
            sessions.await
        }
    };
    stop.cancel();
    drain(&ctx).await;
    store.wait_cleanups(Duration::from_secs(5)).await;
    if let Some(session) = last {
        session.close().await;
    }
    prober.abort();
    probing.abort();
    http_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Stops taking jobs and lets those in flight finish within the grace
/// period; then abandons the rest (uploads aborted, deliveries unacked).
async fn drain(ctx: &Ctx) {
    ctx.health.set_shutting_down();
    let grace = ctx.config.shutdown_grace;
    tracing::info!(
        in_flight = ctx.tasks.len(),
        grace_s = grace.as_secs(),
        "stopping: no new jobs; letting those in flight finish"
    );
    ctx.tasks.close();
    if tokio::time::timeout(grace, ctx.tasks.wait()).await.is_err() {
        tracing::warn!(
            abandoned = ctx.tasks.len(),
            "shutdown grace ran out; abandoning jobs (uploads aborted, left unacked)"
        );
        ctx.abandon.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), ctx.tasks.wait()).await;
    }
}

/// Checks the store before anything else (intake stays closed until it
/// answers), then sweeps leftovers of killed workers and dropped tries,
/// again every [`bounds::sweep_every`]; whenever a job marks the store
/// failing, probes it until it answers again.
async fn tend_store(store: Store, health: Arc<Health>, job_timeout: Duration) {
    match check(&store).await {
        Ok(()) => health.set_store(true),
        Err(e) => {
            tracing::error!(error = %e, "object storage does not answer; not taking jobs until it does");
            health.set_store(false);
            probe_until_ok(&store, &health).await;
        }
    }
    let age = job_timeout * bounds::SWEEP_AGE_DEADLINES;
    let mut sweeps = tokio::time::interval(bounds::sweep_every(job_timeout));
    loop {
        tokio::select! {
            _ = sweeps.tick() => sweep(&store, age).await,
            () = health.wait_store_failing() => probe_until_ok(&store, &health).await,
        }
    }
}

/// One sweep of leftovers older than `age` (young ones may belong to live
/// workers), bounded by [`bounds::SWEEP_LIMIT`].
async fn sweep(store: &Store, age: Duration) {
    match tokio::time::timeout(bounds::SWEEP_LIMIT, store.sweep(age)).await {
        Ok(Ok(s)) => tracing::info!(
            temp_objects = s.temp_objects,
            uploads = s.uploads,
            "swept leftovers"
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "sweep failed; the next sweep or the bucket's lifecycle rule will clean up")
        }
        Err(_) => tracing::warn!(
            limit_s = bounds::SWEEP_LIMIT.as_secs(),
            "sweep did not finish in time; the next sweep goes on"
        ),
    }
}

/// One store check, bounded.
async fn check(store: &Store) -> Result<(), String> {
    match tokio::time::timeout(bounds::STORE_CHECK, store.check()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            bounds::STORE_CHECK.as_secs()
        )),
    }
}

async fn probe_until_ok(store: &Store, health: &Health) {
    let mut backoff = Duration::from_millis(250);
    loop {
        tokio::time::sleep(backoff).await;
        match check(store).await {
            Ok(()) => {
                tracing::info!("object storage answers again; resuming intake");
                health.set_store(true);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "object storage still failing"),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
