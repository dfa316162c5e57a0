//! At most `REHOST_PER_HOST_CONNECTIONS` requests to one origin host at once.
//!
//! A request holds its host's permit until its body is read or dropped. With
//! HTTP/1.1 (what origins speak to us most) one request is one connection, so
//! this caps connections; with HTTP/2 it caps streams, which is stricter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(super) struct HostLimiter {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A held place for one request to a host; dropping it frees the place and,
/// when the host has no other requests, forgets the host (the map stays as
/// small as the set of hosts in use).
#[derive(Debug)]
pub(super) struct HostPermit {
    host: String,
    limiter: Arc<HostLimiter>,
    permit: Option<OwnedSemaphorePermit>,
}

impl HostLimiter {
    pub(super) fn new(per_host: usize) -> Arc<Self> {
        Arc::new(HostLimiter {
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    pub(super) async fn acquire(self: &Arc<Self>, host: &str) -> HostPermit {
        let sem = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .entry(host.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = sem.acquire_owned().await.ok();
        HostPermit {
            host: host.to_string(),
            limiter: self.clone(),
            permit,
        }
    }

    /// Hosts currently tracked (for tests).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.hosts.lock().map(|h| h.len()).unwrap_or(0)
    }
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut hosts = self.limiter.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sem) = hosts.get(&self.host)
            && Arc::strong_count(sem) == 1
            && sem.available_permits() == self.limiter.per_host
        {
            hosts.remove(&self.host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_per_host_and_forgets_idle_hosts() {
        let limiter = HostLimiter::new(2);
        let a1 = limiter.acquire("a").await;
        let _a2 = limiter.acquire("a").await;
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(50), limiter.acquire("a")).await;
        assert!(third.is_err(), "a third request to the same host must wait");
        let _b = limiter.acquire("b").await;
        drop(a1);
        let _a3 = tokio::time::timeout(std::time::Duration::from_secs(5), limiter.acquire("a"))
            .await
            .expect("a place was freed");
        drop(_b);
        assert_eq!(limiter.tracked(), 1);
    }
}
