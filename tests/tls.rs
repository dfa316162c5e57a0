//! HTTPS and HTTP/2 end to end: the fetcher against TLS fixture origins
//! whose certificates a test CA signs, trusted through `SSL_CERT_FILE` (the
//! platform verifier reads it), never through the system store.
//!
//! `harness = false`: `SSL_CERT_FILE` must be set before any thread of the
//! process starts, so this binary runs its tests itself, one at a time,
//! each under a timeout. Arguments filter tests by name, like libtest's.

#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use rehost::error::ErrorCode;
use rehost::fetch::FetchConfig;
use rehost::fixture_origin::Alpn;
use rehost::result::Status;

use helpers::*;

type Test = fn() -> Pin<Box<dyn Future<Output = ()>>>;

const TESTS: &[(&str, Test)] = &[
    ("a_slideshow_of_35_images_comes_over_http2", || {
        Box::pin(a_slideshow_of_35_images_comes_over_http2())
    }),
    ("http2_requests_queue_for_places_like_any_other", || {
        Box::pin(http2_requests_queue_for_places_like_any_other())
    }),
    ("videos_with_moov_at_the_end_over_tls", || {
        Box::pin(videos_with_moov_at_the_end_over_tls())
    }),
    ("an_http1_only_tls_origin_works", || {
        Box::pin(an_http1_only_tls_origin_works())
    }),
    (
        "a_redirect_to_a_host_with_a_bad_certificate_is_unreachable",
        || Box::pin(a_redirect_to_a_host_with_a_bad_certificate_is_unreachable()),
    ),
    ("a_certificate_for_another_name_is_unreachable", || {
        Box::pin(a_certificate_for_another_name_is_unreachable())
    }),
];

fn main() -> ExitCode {
    let bundle = trust_bundle();
    // SAFETY: no other thread exists yet; the runtime starts below.
    unsafe { std::env::set_var("SSL_CERT_FILE", bundle.path()) };
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut failed = Vec::new();
    let chosen = TESTS.iter().filter(|(name, _)| {
        filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
    });
    for (name, test) in chosen {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(120), test())
                    .await
                    .expect("the test ends within 120 s");
            })
        }));
        let verdict = if run.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict}");
        if run.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The system's roots (when it has a bundle) and the test CA, in one file.
fn trust_bundle() -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("bundle file");
    if let Ok(system) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
        f.write_all(&system).expect("write");
    }
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls/ca.pem");
    f.write_all(&std::fs::read(ca).expect("test CA"))
        .expect("write");
    f
}

fn with_budget(per_host: usize) -> Options {
    Options {
        fetch: FetchConfig {
            per_host_connections: per_host,
            ..Options::default().fetch
        },
        ..Options::default()
    }
}

fn images(origin: &rehost::fixture_origin::Origin, tag: &str, n: usize) -> Vec<String> {
    let files = [
        "photo.jpg",
        "small.jpg",
        "graphic.png",
        "photo.webp",
        "portrait.jpg",
    ];
    (0..n)
        .map(|i| origin.url(&format!("{}?{tag}={i}", files[i % files.len()])))
        .collect()
}

async fn a_slideshow_of_35_images_comes_over_http2() {
    let origin = tls_origin("localhost", Alpn::H2AndHttp1).await;
    let h = verbatim_harness().await;
    let r = h.run(&slideshow(&images(&origin, "n", 35), true)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(r.assets.expect("assets").len(), 35);
    assert!(
        origin.stats.http2_requests() >= 35,
        "over HTTP/2: {}",
        origin.stats.http2_requests()
    );
    let hosted = h.run(&slideshow(&images(&origin, "h", 35), false)).await;
    assert_eq!(hosted.status, Status::Ready, "{:?}", hosted.error);
}

/// Regression: once a host answered over HTTP/2 its requests skipped the
/// per-host queue, so eight 35-image jobs put up to 280 requests in flight
/// at once (each with its clock running). The origin counts streams.
async fn http2_requests_queue_for_places_like_any_other() {
    let origin = tls_origin("localhost", Alpn::H2AndHttp1).await;
    let h = harness(with_budget(4)).await;
    // Warm up: the host has answered over HTTP/2 before the burst.
    let first = h.run(&slideshow(&images(&origin, "w", 1), true)).await;
    assert_eq!(first.status, Status::Ready, "{:?}", first.error);
    let jobs: Vec<_> = (0..8)
        .map(|j| slideshow(&images(&origin, &format!("j{j}"), 35), true))
        .collect();
    let results = futures_util::future::join_all(jobs.iter().map(|j| h.run(j))).await;
    for r in &results {
        assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    }
    assert!(origin.stats.http2_requests() >= 8 * 35);
    let peak = origin.stats.in_flight_peak();
    assert!(peak <= 4, "requests in flight at once: {peak}, budget 4");
    assert!(origin.stats.connections_peak() <= 4);
}

async fn videos_with_moov_at_the_end_over_tls() {
    let origin = tls_origin("localhost", Alpn::H2AndHttp1).await;
    let h = default_harness().await;
    for byo in [true, false] {
        let r = h
            .run(&video(&origin.url("gen/v.mp4?mib=3&moov=end&seed=7"), byo))
            .await;
        assert_eq!(r.status, Status::Ready, "byo {byo}: {:?}", r.error);
        let a = &r.assets.expect("assets")[0];
        assert!(a.duration_ms.is_some(), "the trailing moov was read: {a:?}");
    }
    let r = h.run(&video(&origin.url("clip-moov-end.mp4"), true)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
}

async fn an_http1_only_tls_origin_works() {
    let origin = tls_origin("localhost", Alpn::Http1).await;
    let h = harness(with_budget(2)).await;
    let r = h.run(&slideshow(&images(&origin, "n", 10), true)).await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    assert_eq!(origin.stats.http2_requests(), 0);
    assert!(origin.stats.connections_peak() <= 2);
}

fn assert_unreachable(r: &rehost::result::ResultMessage, what: &str) {
    let e = r.error.as_ref().expect("an error");
    assert_eq!(
        (e.code, e.retryable),
        (ErrorCode::Unreachable, true),
        "{}",
        e.message
    );
    assert!(
        e.message.to_lowercase().contains(what),
        "the message says why: {}",
        e.message
    );
}

async fn a_redirect_to_a_host_with_a_bad_certificate_is_unreachable() {
    let good = tls_origin("localhost", Alpn::H2AndHttp1).await;
    let bad = tls_origin("selfsigned", Alpn::H2AndHttp1).await;
    let h = default_harness().await;
    let to = bad.url("photo.jpg");
    let r = h
        .run(&slideshow(&[good.url(&format!("photo.jpg?to={to}"))], true))
        .await;
    assert_unreachable(&r, "certificate");
    assert_eq!(
        bad.stats.requests(),
        0,
        "no request crossed the bad handshake"
    );
}

async fn a_certificate_for_another_name_is_unreachable() {
    let origin = tls_origin("other", Alpn::H2AndHttp1).await;
    let h = default_harness().await;
    let r = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    assert_unreachable(&r, "certificate");
    assert_eq!(origin.stats.requests(), 0);
}
