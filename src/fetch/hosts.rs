//! The per-host budget: at most `REHOST_PER_HOST_CONNECTIONS` connections
//! open to one origin, shared by all of a worker's jobs, in two places:
//!
//! - **Requests** take a [`HostPermit`] before they are sent, in arrival
//!   order, and hold it until their body is dropped. Over HTTP/1.1
//!   one request in flight is one connection in use. Once a host is seen to
//!   answer over HTTP/2, its requests share one multiplexed connection and
//!   no longer queue here.
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
//!
//! Whether a host multiplexes follows its latest answer: a host whose new
//! connection speaks HTTP/1.1 again queues its requests again.

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
    /// Requests in flight.
    requests: Arc<Semaphore>,
    /// Sockets open.
    sockets: Arc<Semaphore>,
    /// The host answered over HTTP/2: one connection carries every request.
    multiplexed: AtomicBool,
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
    // Fields drop in order: the place and the state before the host's use.
    place: Option<OwnedSemaphorePermit>,
    state: Arc<HostState>,
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
                    multiplexed: AtomicBool::new(false),
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

    /// Waits for a request place (none for an HTTP/2 host).
    pub(super) async fn acquire(self: &Arc<Self>, host: &str) -> HostPermit {
        let (in_use, state) = self.enter(host);
        let place = if state.multiplexed.load(Ordering::Relaxed) {
            None
        } else {
            // The semaphore is never closed, so acquiring cannot fail.
            state.requests.clone().acquire_owned().await.ok()
        };
        HostPermit {
            place,
            state,
            _in_use: in_use,
        }
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

impl HostPermit {
    /// The host answered, over HTTP/2 or not. Over HTTP/2: release this
    /// request's place, and let later requests to the host skip the queue.
    /// Otherwise they queue again (a host whose new connection no longer
    /// speaks HTTP/2, say behind another edge).
    pub(super) fn answered(&mut self, http2: bool) {
        self.state.multiplexed.store(http2, Ordering::Relaxed);
        if http2 {
            self.place = None;
        }
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
    async fn http2_hosts_are_not_queued_until_they_answer_http1_again() {
        let limiter = HostLimiter::new(1);
        let mut first = limiter.acquire("h2").await;
        first.answered(true);
        let more = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::future::join_all((0..10).map(|_| limiter.acquire("h2"))),
        )
        .await
        .expect("an HTTP/2 host's requests do not queue");
        assert_eq!(more.len(), 10);
        drop(more);
        // A later answer over HTTP/1.1: requests take places again.
        let soon = |f| tokio::time::timeout(Duration::from_secs(5), f);
        let mut h1 = soon(limiter.acquire("h2")).await.expect("no queue yet");
        h1.answered(false);
        let next = soon(limiter.acquire("h2"))
            .await
            .expect("the one place is free: `h1` came without one");
        let queued = tokio::time::timeout(Duration::from_millis(50), limiter.acquire("h2")).await;
        assert!(queued.is_err(), "one place again, held by `next`");
        drop((h1, next, first));
        assert_eq!(limiter.tracked(), 0);
    }

    #[tokio::test]
    async fn caps_sockets_per_host_and_keeps_the_host_while_one_is_open() {
        let limiter = HostLimiter::new(2);
        let request = limiter.acquire("h").await;
        let s1 = limiter.socket("h").await.expect("place");
        let s2 = limiter.socket("h").await.expect("place");
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.socket("h")).await;
        assert!(third.is_err(), "a third socket to the same host must wait");
        // Sockets and requests are counted apart: a request place is free.
        let r2 = tokio::time::timeout(Duration::from_secs(5), limiter.acquire("h"))
            .await
            .expect("request place");
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
