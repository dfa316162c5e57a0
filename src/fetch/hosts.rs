//! The per-host budget: at most `REHOST_PER_HOST_CONNECTIONS` connections
//! open to one origin, shared by all of a worker's jobs, in two places:
//!
//! - **Requests** take a [`HostPermit`] before they are sent, in arrival
//!   order, and hold it until their body is dropped. Over HTTP/1.1 one
//!   request in flight is one connection in use; over HTTP/2 it is one
//!   stream, and requests take places all the same: hyper's client does
//!   not expose the server's stream limit, so without the queue here every
//!   request of every job would start its clock at once and wait inside
//!   h2, and a host that switched back to HTTP/1.1 would see them compete
//!   for sockets outside the budget (regression test:
//!   `tests/tls.rs`, `http2_requests_queue_for_places_like_any_other`).
//! - **Sockets** take a [`SocketPlace`] in the connector, before they are
//!   opened, and hold it in their stream until the socket closes: in use,
//!   idle in the pool, or being opened in the background. This is the hard
//!   cap. The request places alone are not: when no idle connection is
//!   free, the client pool races a new connect against a connection being
//!   handed back, and the connect it loses stays open as an idle socket.
//!   With socket places that connect waits for a place instead, so it never
//!   makes a socket 33 of 32.
//!
//! A request holding a request place can always get a socket: at most
//! budget − 1 other requests hold sockets, so at least one socket is idle,
//! being handed back, opening or closing, and each of those ends soon.
//!
//! Both are keyed by scheme, host and port, the client pool's own key (no
//! URL with credentials reaches the client: jobs and redirects refuse
//! them), so a place freed is a connection the same requests can use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(super) struct HostLimiter {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
}

#[derive(Debug)]
struct HostState {
    /// Requests in flight.
    requests: Arc<Semaphore>,
    /// Sockets open.
    sockets: Arc<Semaphore>,
}

/// A host in use: while one is alive the host's state stays in the map;
/// the last one dropped forgets the host, so the map stays as small as the
/// set of hosts with requests or sockets.
#[derive(Debug)]
struct InUse {
    host: String,
    state: Option<Arc<HostState>>,
    limiter: Arc<HostLimiter>,
}

/// A held place for one request to a host.
#[derive(Debug)]
pub(super) struct HostPermit {
    // Fields drop in order: the place before the host's use.
    _place: OwnedSemaphorePermit,
    _in_use: InUse,
}

/// A held place for one socket to a host, kept by the socket's stream.
#[derive(Debug)]
pub(super) struct SocketPlace {
    _place: OwnedSemaphorePermit,
    _in_use: InUse,
}

impl HostLimiter {
    pub(super) fn new(per_host: usize) -> Arc<Self> {
        Arc::new(HostLimiter {
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    fn enter(self: &Arc<Self>, host: &str) -> (InUse, Arc<HostState>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let state = hosts
            .entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostState {
                    requests: Arc::new(Semaphore::new(self.per_host)),
                    sockets: Arc::new(Semaphore::new(self.per_host)),
                })
            })
            .clone();
        let in_use = InUse {
            host: host.to_string(),
            state: Some(state.clone()),
            limiter: self.clone(),
        };
        (in_use, state)
    }

    /// Waits for a request place.
    pub(super) async fn acquire(self: &Arc<Self>, host: &str) -> Option<HostPermit> {
        let (in_use, state) = self.enter(host);
        // Never closed: `None` cannot happen.
        let place = state.requests.clone().acquire_owned().await.ok()?;
        Some(HostPermit {
            _place: place,
            _in_use: in_use,
        })
    }

    /// Waits for a socket place.
    pub(super) async fn socket(self: &Arc<Self>, host: &str) -> Option<SocketPlace> {
        let (in_use, state) = self.enter(host);
        // Never closed: `None` cannot happen.
        let place = state.sockets.clone().acquire_owned().await.ok()?;
        Some(SocketPlace {
            _place: place,
            _in_use: in_use,
        })
    }

    /// Hosts currently tracked (for tests).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.hosts.lock().map(|h| h.len()).unwrap_or(0)
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        // The count is read and lowered under the lock, so of two last
        // users dropping at once exactly one forgets the host.
        let mut hosts = self.limiter.hosts.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.state.take());
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

    async fn place(limiter: &Arc<HostLimiter>, host: &str) -> HostPermit {
        tokio::time::timeout(Duration::from_secs(5), limiter.acquire(host))
            .await
            .expect("a place is free")
            .expect("never closed")
    }

    #[tokio::test]
    async fn caps_per_host_and_forgets_idle_hosts() {
        let limiter = HostLimiter::new(2);
        let a1 = place(&limiter, "a").await;
        let _a2 = place(&limiter, "a").await;
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("a")).await;
        assert!(third.is_err(), "a third request to the same host must wait");
        let b = place(&limiter, "b").await;
        drop(a1);
        let _a3 = place(&limiter, "a").await;
        drop(b);
        assert_eq!(limiter.tracked(), 1);
    }

    /// Regression: once a host answered over HTTP/2 its requests skipped the
    /// queue, so up to 8 x 35 requests started their clocks at once and
    /// waited inside h2. Every request takes a place, whatever the protocol.
    #[tokio::test]
    async fn requests_queue_whatever_the_protocol_they_will_speak() {
        let limiter = HostLimiter::new(1);
        let first = place(&limiter, "h2").await;
        let queued = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("h2")).await;
        assert!(queued.is_err(), "the one place is taken");
        drop(first);
        let _next = place(&limiter, "h2").await;
    }

    #[tokio::test]
    async fn caps_sockets_per_host_and_keeps_the_host_while_one_is_open() {
        let limiter = HostLimiter::new(2);
        let request = place(&limiter, "h").await;
        let s1 = limiter.socket("h").await.expect("place");
        let s2 = limiter.socket("h").await.expect("place");
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.socket("h")).await;
        assert!(third.is_err(), "a third socket to the same host must wait");
        // Sockets and requests are counted apart: a request place is free.
        let r2 = place(&limiter, "h").await;
        drop(r2);
        drop(request);
        assert_eq!(limiter.tracked(), 1, "open sockets keep the host");
        drop(s1);
        let s3 = tokio::time::timeout(Duration::from_secs(5), limiter.socket("h"))
            .await
            .expect("a socket closed")
            .expect("place");
        drop((s2, s3));
        assert_eq!(limiter.tracked(), 0);
    }
}
