//! DNS resolution that drops forbidden addresses before the client connects.
//!
//! The connector connects only to the addresses this resolver returns, so a
//! name that resolves (or re-resolves, as in DNS rebinding) to a private
//! address never reaches it. IP-literal hosts skip resolvers; `Fetcher`
//! checks those.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use super::guard::Guard;

/// Looks a host name up. The system resolver by default; tests inject their own.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String)
    -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver (getaddrinfo, on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table of names, for tests (e.g. a name whose answers change
/// between lookups, to imitate DNS rebinding).
pub struct StaticLookup<F>(pub F);

impl<F> Lookup for StaticLookup<F>
where
    F: Fn(&str) -> io::Result<Vec<IpAddr>> + Send + Sync + 'static,
{
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let result = (self.0)(&host);
        Box::pin(async move { result })
    }
}

#[derive(Clone)]
pub(super) struct GuardedResolver {
    pub guard: Arc<Guard>,
    pub lookup: Arc<dyn Lookup>,
}

type Addrs = std::vec::IntoIter<SocketAddr>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Addrs;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = lookup.lookup(host.clone()).await?;
            if ips.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} has no addresses"),
                )
                .into());
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| match guard.check(*ip) {
                    Ok(()) => true,
                    Err(f) => {
                        refused.get_or_insert(f);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            // Any forbidden answer taints the name: a host that mixes public and
            // private answers is refused rather than half-trusted.
            if let Some(f) = refused {
                return Err(Box::new(f) as BoxError);
            }
            Ok(allowed.into_iter())
        })
    }
}
