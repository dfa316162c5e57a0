//! `/healthz` (alive: the intake loop beats and has not stalled),
//! `/readyz` (taking jobs: broker connected and not blocking, topology in
//! place, store and publishing working, consuming) and `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::health::Health;
use crate::metrics::{self, METRICS};

/// Binds `addr` (port 0 picks one) and serves until the task is dropped.
///
/// # Errors
/// When the address cannot be bound.
pub(super) async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let health = health.clone();
                    async move { Ok::<_, Infallible>(route(&req, &health)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn route(req: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/healthz" => match health.alive() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not alive: {why}\n"),
            ),
        },
        "/readyz" => match health.ready() {
            Ok(()) => (StatusCode::OK, "text/plain", "ready\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            METRICS.ready.set(i64::from(health.ready().is_ok()));
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let (ctype, body) = metrics::negotiate(accept);
            (StatusCode::OK, ctype, body)
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
