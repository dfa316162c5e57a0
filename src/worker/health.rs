//! What `/healthz` and `/readyz` report, and the gate that stops taking jobs
//! while a dependency is failing (so an outage does not burn every job's
//! attempts).
//!
//! Intake is closed while the store is failing (a prober reopens it once the
//! store answers), while any delivery cannot publish what it owes (each
//! holds a [`PublishHold`] until it succeeds or gives up), and while the
//! broker blocks the connection (`connection.blocked`, e.g. a memory alarm;
//! a new connection starts unblocked).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::METRICS;

pub use crate::bounds::LIVENESS_LIMIT;

#[derive(Debug)]
pub struct Health {
    concurrency: usize,
    /// No active `basic.consume` for this long, while nothing excuses it, is
    /// a stall.
    stall: Duration,
    /// A connection to the broker is open.
    broker: AtomicBool,
    /// The broker answered the last connection attempt (even if a later
    /// step failed): not consuming is then not the broker's fault.
    broker_answers: AtomicBool,
    /// Why the broker blocks the connection, while it does.
    blocked: Mutex<Option<String>>,
    shutting_down: AtomicBool,
    topology_error: Mutex<Option<String>>,
    store_ok: watch::Sender<bool>,
    /// A store check has answered at least once (before it, not ready).
    store_checked: AtomicBool,
    /// Deliveries whose publish is failing right now.
    publish_holds: watch::Sender<usize>,
    in_flight: AtomicUsize,
    /// When the consumer last stopped (or the worker started), while it is not active.
    not_consuming_since: Mutex<Option<Instant>>,
    /// Last sign of life of the intake loop.
    beat: Mutex<Instant>,
    /// The public URLs, as the last probe found them.
    public: Mutex<Public>,
}

/// What the last public-URL probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Public {
    /// Not probed yet (under `enforce`: not ready, nothing deferred yet).
    Unprobed,
    /// Fetchable, or probing is off.
    Fetchable,
    /// The last probe failed: why. Under `enforce`, re-hosted jobs are
    /// deferred and `/readyz` is 503.
    Unfetchable(String),
    /// The last probe failed, reported only (`warn`).
    Warned(String),
}

/// Held by a delivery while its publish is failing; intake stays closed
/// while any is held.
#[derive(Debug)]
pub struct PublishHold<'a>(&'a Health);

impl Drop for PublishHold<'_> {
    fn drop(&mut self) {
        self.0
            .publish_holds
            .send_modify(|n| *n = n.saturating_sub(1));
        METRICS.held.dec();
    }
}

/// Held by a delivery while it is processed (counts toward the permits in use).
#[derive(Debug)]
pub struct InFlight<'a>(&'a Health);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        METRICS.in_flight.dec();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Health {
    pub fn new(concurrency: usize, stall: Duration) -> Self {
        Health {
            concurrency,
            stall,
            broker: AtomicBool::new(false),
            broker_answers: AtomicBool::new(false),
            blocked: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            topology_error: Mutex::new(None),
            // Not ready until the first store check passes.
            store_ok: watch::Sender::new(false),
            store_checked: AtomicBool::new(false),
            publish_holds: watch::Sender::new(0),
            in_flight: AtomicUsize::new(0),
            not_consuming_since: Mutex::new(Some(Instant::now())),
            beat: Mutex::new(Instant::now()),
            public: Mutex::new(Public::Unprobed),
        }
    }

    /// Records the last probe's finding.
    pub fn set_public(&self, p: Public) {
        crate::metrics::METRICS
            .public_url_ok
            .set(i64::from(matches!(p, Public::Fetchable)));
        *lock(&self.public) = p;
    }

    /// Whether re-hosted jobs must wait: the last probe failed under
    /// `enforce`.
    pub fn public_unfetchable(&self) -> bool {
        matches!(*lock(&self.public), Public::Unfetchable(_))
    }

    /// The intake loop is alive.
    pub fn beat(&self) {
        *lock(&self.beat) = Instant::now();
    }

    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::SeqCst);
        if up {
            self.broker_answers.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the broker answered the last connection attempt; a failed
    /// attempt also forgets an earlier topology error (unknown again).
    pub fn set_broker_answers(&self, answers: bool) {
        self.broker_answers.store(answers, Ordering::SeqCst);
        if !answers {
            self.set_topology_error(None);
        }
    }

    pub fn set_blocked(&self, reason: Option<String>) {
        *lock(&self.blocked) = reason;
    }

    pub fn blocked(&self) -> bool {
        lock(&self.blocked).is_some()
    }

    pub fn set_topology_error(&self, e: Option<String>) {
        *lock(&self.topology_error) = e;
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn set_store(&self, ok: bool) {
        self.store_checked.store(true, Ordering::SeqCst);
        self.store_ok
            .send_if_modified(|v| std::mem::replace(v, ok) != ok);
    }

    /// An active `basic.consume` began (`true`) or ended (`false`).
    pub fn set_consuming(&self, active: bool) {
        let mut since = lock(&self.not_consuming_since);
        match (active, *since) {
            (true, _) => *since = None,
            (false, None) => *since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
        METRICS.consuming.set(i64::from(active));
    }

    pub fn consuming(&self) -> bool {
        lock(&self.not_consuming_since).is_none()
    }

    /// Marks one delivery's publish as failing until the hold is dropped.
    pub fn hold_publish(&self) -> PublishHold<'_> {
        self.publish_holds.send_modify(|n| *n += 1);
        METRICS.held.inc();
        PublishHold(self)
    }

    /// Counts one delivery in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        METRICS.in_flight.inc();
        InFlight(self)
    }

    /// Whether intake is open: the store works, the public URLs were
    /// probed once (so no re-hosted job is published before it is known
    /// whether its URLs can be fetched), no delivery is failing to publish,
    /// and the broker does not block the connection.
    pub fn open(&self) -> bool {
        *self.store_ok.borrow()
            && *lock(&self.public) != Public::Unprobed
            && *self.publish_holds.borrow() == 0
            && !self.blocked()
    }

    /// Alive, or why not (for `/healthz`): the intake loop beats, and it has
    /// not gone `REHOST_STALL_SECS` without an active `basic.consume` while
    /// the broker and the store answer and a permit is free.
    ///
    /// # Errors
    /// The reason, for `/healthz`'s body.
    pub fn alive(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let silent = lock(&self.beat).elapsed();
        if silent > LIVENESS_LIMIT {
            return Err(format!("intake loop silent for {} s", silent.as_secs()));
        }
        let idle = lock(&self.not_consuming_since).map(|t| t.elapsed());
        let excused = !self.broker_answers.load(Ordering::SeqCst)
            || !*self.store_ok.borrow()
            || self.in_flight.load(Ordering::SeqCst) >= self.concurrency;
        match idle {
            Some(idle) if idle > self.stall && !excused => Err(format!(
                "no active basic.consume for {} s while the broker and the store answer and a permit is free",
                idle.as_secs()
            )),
            _ => Ok(()),
        }
    }

    /// Ready to take jobs, or why not (for `/readyz`).
    ///
    /// # Errors
    /// The reason, for `/readyz`'s body.
    pub fn ready(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        // Set after a connection succeeded and the topology did not: the
        // worker closes that connection and tries again later.
        if let Some(e) = lock(&self.topology_error).clone() {
            return Err(format!("broker topology: {e}"));
        }
        if !self.broker.load(Ordering::SeqCst) {
            return Err("broker not connected".into());
        }
        if let Some(reason) = lock(&self.blocked).clone() {
            return Err(format!("the broker blocks publishing ({reason})"));
        }
        if !self.store_checked.load(Ordering::SeqCst) {
            return Err("object storage not checked yet".into());
        }
        if !*self.store_ok.borrow() {
            return Err("object storage is failing".into());
        }
        let holds = *self.publish_holds.borrow();
        if holds > 0 {
            return Err(format!("results cannot be published ({holds} jobs held)"));
        }
        match &*lock(&self.public) {
            Public::Unprobed => return Err("public URLs not probed yet".into()),
            Public::Unfetchable(why) => {
                return Err(format!(
                    "public URLs are not fetchable ({why}); re-hosted jobs are deferred"
                ));
            }
            Public::Fetchable | Public::Warned(_) => {}
        }
        if !self.consuming() {
            return Err("not consuming yet".into());
        }
        Ok(())
    }

    /// Waits until intake is open (see [`Health::open`]).
    pub async fn wait_open(&self) {
        let mut store = self.store_ok.subscribe();
        let mut holds = self.publish_holds.subscribe();
        loop {
            let _ = store.wait_for(|ok| *ok).await;
            let _ = holds.wait_for(|n| *n == 0).await;
            if self.open() {
                return;
            }
            // Blocked by the broker, or the public URLs not probed yet: no
            // notification to wait on here; poll.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the store works again.
    pub async fn wait_store(&self) {
        let _ = self.store_ok.subscribe().wait_for(|ok| *ok).await;
    }

    /// Waits until the store is marked failing.
    pub async fn wait_store_failing(&self) {
        let _ = self.store_ok.subscribe().wait_for(|ok| !*ok).await;
    }
}

#[cfg(test)]
mod tests;
