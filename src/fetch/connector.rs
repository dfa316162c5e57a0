//! Opens the fetcher's sockets: each one takes a socket place for its host
//! first ([`super::hosts`]) and keeps it in its stream until it closes, so
//! the sockets open to one host never exceed the budget, whatever the
//! client pool does. Names resolve through the address guard
//! ([`GuardedResolver`]); TLS is rustls with the platform's verifier, and
//! HTTP/2 is offered by ALPN.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::hosts::{HostLimiter, SocketPlace};
use super::resolver::GuardedResolver;

type Inner = HttpsConnector<HttpConnector<GuardedResolver>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector the fetcher's client pool opens sockets with.
#[derive(Clone)]
pub(super) struct Connector {
    inner: Inner,
    hosts: Arc<HostLimiter>,
    /// TCP connect and TLS handshake together.
    connect_timeout: Duration,
    /// Longest wait for a socket place.
    place_timeout: Duration,
}

/// Why a socket was not opened (beyond the transport's own errors).
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectRefused {
    #[error("no connection place for {0} within {1:?}")]
    NoPlace(String, Duration),
    #[error("connecting to {0} took longer than {1:?}")]
    TimedOut(String, Duration),
}

impl Connector {
    /// # Errors
    /// When the platform's certificate verifier cannot be set up.
    pub(super) fn new(
        resolver: GuardedResolver,
        hosts: Arc<HostLimiter>,
        connect_timeout: Duration,
        place_timeout: Duration,
    ) -> io::Result<Self> {
        let mut http = HttpConnector::new_with_resolver(resolver);
        // https URLs pass through to the TLS layer.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        // A peer that vanished without closing is found by TCP keepalive
        // (after about a minute), not only by the stall timeout of a read.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let inner = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Connector {
            inner,
            hosts,
            connect_timeout,
            place_timeout,
        })
    }
}

/// What the budget counts, from a request URI: scheme, host and port. This
/// is the client pool's key too, because no URL with credentials reaches
/// the client (jobs and redirects refuse them).
pub(super) fn host_key(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    format!("{scheme}://{host}:{port}")
}

impl tower_service::Service<Uri> for Connector {
    type Response = Counted;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

    /// Always ready: each call readies its own copy of the inner connector.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let key = host_key(&uri);
            let place = tokio::time::timeout(this.place_timeout, this.hosts.socket(&key))
                .await
                .ok()
                .flatten()
                .ok_or_else(|| ConnectRefused::NoPlace(key.clone(), this.place_timeout))?;
            let mut inner = this.inner;
            let connect = async {
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                inner.call(uri).await
            };
            let stream = tokio::time::timeout(this.connect_timeout, connect)
                .await
                .map_err(|_| ConnectRefused::TimedOut(key, this.connect_timeout))??;
            Ok(Counted {
                stream,
                _place: place,
            })
        })
    }
}

/// A socket that holds its host's place until it is dropped (closed).
pub(super) struct Counted {
    stream: MaybeHttpsStream<TokioIo<TcpStream>>,
    _place: SocketPlace,
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

impl Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scheme_host_and_port_with_default_ports() {
        let key = |u: &str| host_key(&u.parse::<Uri>().expect("uri"));
        assert_eq!(
            key("https://CDN.Example.net/a.jpg"),
            "https://cdn.example.net:443"
        );
        assert_eq!(
            key("http://cdn.example.net/a.jpg"),
            "http://cdn.example.net:80"
        );
        assert_eq!(key("http://127.0.0.1:8080/a"), "http://127.0.0.1:8080");
        assert_eq!(key("https://[::1]:8443/a"), "https://[::1]:8443");
    }
}
