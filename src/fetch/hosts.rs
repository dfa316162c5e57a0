//! At most `REHOST_PER_HOST_CONNECTIONS` requests in flight to one origin
//! host at once, shared by all of a worker's jobs.
//!
//! Over HTTP/1.1 one request in flight is one connection in use, so a
//! request holds one of its host's places until its body is read or
//! dropped. Once a host is seen to answer over HTTP/2, its requests share
//! one multiplexed connection and no longer take places (the budget is on
//! connections in use, not requests). Idle sockets are the client pool's:
//! when no idle connection is free, hyper races a new connection against
//! one being handed back, so the sockets open to a host can briefly exceed
//! the budget (33 for 32 at the benchmark's peak); reqwest exposes no
//! per-connection hook to count them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(super) struct HostLimiter {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
}

#[derive(Debug)]
struct HostState {
    places: Arc<Semaphore>,
    /// The host answered over HTTP/2: one connection carries every request.
    multiplexed: AtomicBool,
}

/// A held place for one request to a host; dropping it frees the place and,
/// when the host has no other requests, forgets the host (the map stays as
/// small as the set of hosts in use).
#[derive(Debug)]
pub(super) struct HostPermit {
    host: String,
    state: Option<Arc<HostState>>,
    limiter: Arc<HostLimiter>,
    place: Option<OwnedSemaphorePermit>,
}

impl HostLimiter {
    pub(super) fn new(per_host: usize) -> Arc<Self> {
        Arc::new(HostLimiter {
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    pub(super) async fn acquire(self: &Arc<Self>, host: &str) -> HostPermit {
        let state = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .entry(host.to_string())
                .or_insert_with(|| {
                    Arc::new(HostState {
                        places: Arc::new(Semaphore::new(self.per_host)),
                        multiplexed: AtomicBool::new(false),
                    })
                })
                .clone()
        };
        let place = if state.multiplexed.load(Ordering::Relaxed) {
            None
        } else {
            // The semaphore is never closed, so acquiring cannot fail.
            state.places.clone().acquire_owned().await.ok()
        };
        HostPermit {
            host: host.to_string(),
            state: Some(state),
            limiter: self.clone(),
            place,
        }
    }

    /// Hosts currently tracked (for tests).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.hosts.lock().map(|h| h.len()).unwrap_or(0)
    }
}

impl HostPermit {
    /// The host answered over HTTP/2: release this request's place, and let
    /// later requests to the host skip the queue.
    pub(super) fn multiplexed(&mut self) {
        if let Some(state) = &self.state {
            state.multiplexed.store(true, Ordering::Relaxed);
        }
        self.place = None;
    }
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        drop(self.place.take());
        drop(self.state.take());
        let mut hosts = self.limiter.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts
            .get(&self.host)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            hosts.remove(&self.host);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn caps_per_host_and_forgets_idle_hosts() {
        let limiter = HostLimiter::new(2);
        let a1 = limiter.acquire("a").await;
        let _a2 = limiter.acquire("a").await;
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("a")).await;
        assert!(third.is_err(), "a third request to the same host must wait");
        let b = limiter.acquire("b").await;
        drop(a1);
        let _a3 = tokio::time::timeout(Duration::from_secs(5), limiter.acquire("a"))
            .await
            .expect("a place was freed");
        drop(b);
        assert_eq!(limiter.tracked(), 1);
    }

    #[tokio::test]
    async fn http2_hosts_are_not_queued() {
        let limiter = HostLimiter::new(1);
        let mut first = limiter.acquire("h2").await;
        first.multiplexed();
        let more: Vec<_> =
            futures_util::future::join_all((0..10).map(|_| limiter.acquire("h2"))).await;
        assert_eq!(more.len(), 10);
        drop(more);
        drop(first);
        assert_eq!(limiter.tracked(), 0);
    }
}
