//! One broker connection at a time: connect (bounded), declare the
//! topology, consume until the connection is lost or the worker stops, and
//! reconnect with jittered exponential backoff. Losing a connection abandons
//! its jobs at once: their deliveries died with it and the broker
//! redelivers them, so finishing them would only hold permits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::BasicQosOptions;
use lapin::{Channel, Connection, Event};
use tokio_util::sync::CancellationToken;

use super::{Ctx, intake};
use crate::broker::headers::short;
use crate::broker::publisher::Publisher;
use crate::broker::{self, topology};
use crate::metrics::METRICS;

use crate::bounds::BROKER_CONNECT as CONNECT_TIMEOUT;

/// A connection that consumed at least this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// One connection and what hangs off it.
pub(super) struct Session {
    /// The consuming channel: it must stay open while its deliveries are
    /// unacked (every delivery task holds the session).
    pub(super) channel: Channel,
    pub(super) publisher: Publisher,
    /// Cancelled when the connection is lost.
    pub(super) lost: CancellationToken,
}

impl Session {
    /// Closes the connection (at shutdown, once jobs are done).
    pub(super) async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.publisher.close()).await;
    }
}

/// Connects, consumes, reconnects, until `stop`; returns the last session
/// (still open, so jobs in flight can publish and ack).
pub(super) async fn run(ctx: &Arc<Ctx>, stop: &CancellationToken) -> Option<Arc<Session>> {
    let mut backoff = Backoff::default();
    let mut first = true;
    while !stop.is_cancelled() {
        ctx.health.beat();
        if !first {
            let wait = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return None,
            }
        }
        first = false;
        let Some(session) = open(ctx).await else {
            continue;
        };
        let started = Instant::now();
        match intake::consume(ctx, &session, stop).await {
            Ok(()) => return Some(session),
            Err(e) => {
                lose(ctx, &session);
                if started.elapsed() >= HEALTHY_SESSION {
                    backoff = Backoff::default();
                }
                tracing::warn!(error = %e, "lost the broker; reconnecting");
            }
        }
    }
    None
}

/// Connects and sets up; `None` (said in the log and on `/readyz`) when the
/// broker cannot be reached or its topology is unusable.
async fn open(ctx: &Ctx) -> Option<Arc<Session>> {
    let health = &ctx.health;
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        broker::connect(&ctx.config.broker.amqp_url),
    )
    .await;
    let conn = match connected {
        Ok(Ok(c)) => Arc::new(c),
        Ok(Err(e)) => {
            health.set_broker_answers(false);
            tracing::warn!(error = %e, "cannot connect to the broker");
            return None;
        }
        Err(_) => {
            health.set_broker_answers(false);
            tracing::warn!(
                "no answer from the broker within {} s",
                CONNECT_TIMEOUT.as_secs()
            );
            return None;
        }
    };
    health.set_broker_answers(true);
    if let Err(e) = topology::ensure(&conn, &ctx.names).await {
        tracing::error!(error = %e, "broker topology is not usable; not taking jobs");
        health.set_topology_error(Some(e.0));
        let _ = conn.close(200, short("topology")).await;
        return None;
    }
    health.set_topology_error(None);
    topology::retire_legacy(&conn, &ctx.names).await;
    match setup(ctx, conn.clone()).await {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the consuming channel");
            let _ = conn.close(200, short("setup")).await;
            None
        }
    }
}

async fn setup(ctx: &Ctx, conn: Arc<Connection>) -> lapin::Result<Arc<Session>> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(ctx.config.concurrency, BasicQosOptions { global: false })
        .await?;
    let lost = CancellationToken::new();
    tokio::spawn(watch_events(conn.clone(), ctx.health.clone(), lost.clone()));
    ctx.health.set_broker(true);
    Ok(Arc::new(Session {
        publisher: Publisher::new(conn),
        channel,
        lost,
    }))
}

/// Follows the broker's notices on one connection: blocked and unblocked
/// (memory or disk alarms), and the connection's end.
async fn watch_events(conn: Arc<Connection>, health: Arc<super::Health>, lost: CancellationToken) {
    let mut events = Box::pin(conn.events_listener());
    drop(conn);
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            () = lost.cancelled() => return,
        };
        match event {
            Some(Event::ConnectionBlocked(reason)) => {
                tracing::warn!(%reason, "the broker blocks this connection; results wait");
                health.set_blocked(Some(reason));
            }
            Some(Event::ConnectionUnblocked) => {
                tracing::info!("the broker unblocked this connection");
                health.set_blocked(None);
            }
            Some(Event::Error(e)) => {
                tracing::warn!(error = %e, "broker connection error");
                lost.cancel();
                return;
            }
            Some(_) => {}
            None => {
                lost.cancel();
                return;
            }
        }
    }
}

/// The connection is gone: its jobs are abandoned, intake is closed until
/// the next connection consumes.
fn lose(ctx: &Ctx, session: &Session) {
    session.lost.cancel();
    ctx.health.set_broker(false);
    ctx.health.set_blocked(None);
    ctx.health.set_consuming(false);
    METRICS.broker_reconnects.inc();
}

/// Exponential backoff from 0.5 s to 30 s, each delay drawn from its upper
/// half so a fleet does not reconnect in lock-step after a broker restart.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(Duration::from_secs(30));
        base.mul_f64(rand::random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        let first = delays[0].as_millis();
        assert!((250..=500).contains(&first), "{first}");
        for d in &delays[7..] {
            assert!(
                (15_000..=30_000).contains(&d.as_millis()),
                "capped at 30 s, at least half of it: {d:?}"
            );
        }
        let mut other = Backoff::default();
        let others: Vec<Duration> = (0..10).map(|_| other.next_delay()).collect();
        assert_ne!(delays, others, "two workers draw different delays");
    }
}
