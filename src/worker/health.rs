//! What `/readyz` reports, and the gate that stops taking jobs while a
//! dependency is failing (so an outage does not burn every job's attempts).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

#[derive(Debug)]
pub struct Health {
    broker: AtomicBool,
    shutting_down: AtomicBool,
    topology_error: Mutex<Option<String>>,
    store_ok: watch::Sender<bool>,
    publish_ok: watch::Sender<bool>,
    /// Last sign of life of the intake loop.
    beat: Mutex<Instant>,
}

/// The intake loop beats at least every 15 s (and every reconnect attempt,
/// at most 30 s apart); silence longer than this means it is stuck.
pub const LIVENESS_LIMIT: Duration = Duration::from_secs(120);

impl Default for Health {
    fn default() -> Self {
        Health {
            broker: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            topology_error: Mutex::new(None),
            store_ok: watch::Sender::new(true),
            publish_ok: watch::Sender::new(true),
            beat: Mutex::new(Instant::now()),
        }
    }
}

impl Health {
    /// The intake loop is alive.
    pub fn beat(&self) {
        *self.beat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Alive, or for how long the intake loop has been silent (for `/healthz`).
    ///
    /// # Errors
    /// The reason, for `/healthz`'s body.
    pub fn alive(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let silent = self
            .beat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if silent > LIVENESS_LIMIT {
            return Err(format!("intake loop silent for {} s", silent.as_secs()));
        }
        Ok(())
    }

    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::SeqCst);
    }

    pub fn set_topology_error(&self, e: Option<String>) {
        *self
            .topology_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = e;
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn set_store(&self, ok: bool) {
        self.store_ok
            .send_if_modified(|v| std::mem::replace(v, ok) != ok);
    }

    pub fn set_publish(&self, ok: bool) {
        self.publish_ok
            .send_if_modified(|v| std::mem::replace(v, ok) != ok);
    }

    pub fn store_ok(&self) -> bool {
        *self.store_ok.borrow()
    }

    /// Whether intake is open (store and publishing work).
    pub fn open(&self) -> bool {
        *self.store_ok.borrow() && *self.publish_ok.borrow()
    }

    /// Ready to take jobs, or why not.
    ///
    /// # Errors
    /// The reason, for `/readyz`'s body.
    pub fn ready(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        if !self.broker.load(Ordering::SeqCst) {
            return Err("broker not connected".into());
        }
        if let Some(e) = self
            .topology_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(format!("broker topology: {e}"));
        }
        if !*self.store_ok.borrow() {
            return Err("object storage is failing".into());
        }
        if !*self.publish_ok.borrow() {
            return Err("results cannot be published".into());
        }
        Ok(())
    }

    /// Waits until the store and publishing both work.
    pub async fn wait_open(&self) {
        let mut store = self.store_ok.subscribe();
        let mut publish = self.publish_ok.subscribe();
        let _ = store.wait_for(|ok| *ok).await;
        let _ = publish.wait_for(|ok| *ok).await;
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
mod tests {
    use super::*;

    #[test]
    fn a_silent_intake_loop_is_not_alive() {
        let h = Health::default();
        assert!(h.alive().is_ok());
        *h.beat.lock().expect("lock") = Instant::now() - LIVENESS_LIMIT - Duration::from_secs(1);
        assert!(h.alive().is_err_and(|e| e.contains("silent")));
        h.beat();
        assert!(h.alive().is_ok());
        *h.beat.lock().expect("lock") = Instant::now() - LIVENESS_LIMIT * 2;
        h.set_shutting_down();
        assert!(h.alive().is_ok(), "a draining worker is alive");
    }

    #[test]
    fn readiness_names_what_is_wrong() {
        let h = Health::default();
        assert_eq!(h.ready(), Err("broker not connected".into()));
        h.set_broker(true);
        assert_eq!(h.ready(), Ok(()));
        h.set_store(false);
        assert!(h.ready().is_err_and(|e| e.contains("storage")));
        h.set_store(true);
        h.set_publish(false);
        assert!(h.ready().is_err_and(|e| e.contains("published")));
    }
}
