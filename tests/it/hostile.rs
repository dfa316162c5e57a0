//! Hostile origins, addresses and media: each attack ends in the contract's
//! code, and ordinary work beside the attacks still completes.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rehost::error::ErrorCode::*;
use rehost::fetch::FetchConfig;
use rehost::fetch::guard::AllowList;
use rehost::fetch::resolver::StaticLookup;
use rehost::result::Status;

use crate::helpers::*;

#[tokio::test]
async fn tunnelled_and_embedded_ipv4_literals_are_refused() {
    let h = harness(Options {
        fetch: FetchConfig {
            allow: AllowList::parse("true").expect("allow"),
            ..FetchConfig::default()
        },
        ..Options::default()
    })
    .await;
    for url in [
        "http://[2002:7f00:1::1]/a.jpg", // 6to4 of 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.jpg", // Teredo
        "http://[64:ff9b::7f00:1]/a.jpg", // NAT64 of 127.0.0.1
        "http://[::127.0.0.1]/a.jpg",    // IPv4-compatible
        "http://[::ffff:7f00:1]/a.jpg",  // IPv4-mapped loopback
        "http://[fe80::1]/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/a.jpg",
    ] {
        assert_eq!(
            h.code(&slideshow(&[url.into()], true)).await,
            Some(ForbiddenAddress),
            "{url}"
        );
    }
}

#[tokio::test]
async fn dns_rebinding_is_judged_on_every_resolution() {
    let origin = origin().await;
    let port = origin.addr().port();
    // First answer: the allowed (stand-in public) address; then a private one.
    let lookups = Arc::new(AtomicUsize::new(0));
    let counter = lookups.clone();
    let lookup = Arc::new(StaticLookup(move |_: &str| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let ip: IpAddr = if n == 0 { "127.0.0.1" } else { "10.0.0.1" }
            .parse()
            .expect("ip");
        Ok(vec![ip])
    }));
    let opts = || Options {
        fetch: FetchConfig {
            allow: AllowList::parse("127.0.0.1/32").expect("allow"),
            ..FetchConfig::default()
        },
        lookup: lookup.clone(),
        ..Options::default()
    };
    let url = format!("http://rebind.test:{port}/photo.jpg");
    // Separate fetchers: each connection resolves anew.
    assert_eq!(
        harness(opts())
            .await
            .code(&slideshow(std::slice::from_ref(&url), true))
            .await,
        None
    );
    assert_eq!(
        harness(opts()).await.code(&slideshow(&[url], true)).await,
        Some(ForbiddenAddress)
    );
    assert_eq!(
        origin.stats.requests(),
        1,
        "the rebound request never reached an address"
    );
}

#[tokio::test]
async fn hostile_origins() {
    let origin = origin().await;
    let h = default_harness().await;
    // A response header of 1 MiB.
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg?header_kib=1024")], true))
            .await,
        Some(Unreachable)
    );
    // 100 redirects: the chain is cut after 5.
    let before = origin.stats.requests();
    assert_eq!(
        h.code(&slideshow(&[origin.url("photo.jpg?redirect=100")], true))
            .await,
        Some(Unreachable)
    );
    assert!(
        origin.stats.requests() - before <= 6,
        "followed at most 5 redirects"
    );
    // A gzip bomb declared as gzip content: never decompressed, rejected as gzip.
    let before = origin.stats.bytes_sent();
    let r = h
        .run(&slideshow(
            &[origin.url("gzip-bomb.jpg?gzip=1&ctype=image/jpeg")],
            true,
        ))
        .await;
    let e = r.error.expect("error");
    assert_eq!(e.code, UnsupportedFormat, "{}", e.message);
    assert!(e.message.contains("gzip"), "{}", e.message);
    assert!(
        origin.stats.bytes_sent() - before <= 110 * 1024,
        "read as sent, not inflated"
    );
    // A lying Content-Type does not matter: the bytes do (re-hosted for
    // Instagram, the PNG is converted, and says what it was).
    let r = h
        .run(&slideshow(
            &[origin.url("graphic.png?ctype=image/jpeg")],
            true,
        ))
        .await;
    let a = &r.assets.expect("assets")[0];
    let source = a.normalized.as_ref().expect("converted for Instagram");
    assert_eq!(source.source_content_type, "image/png");
    assert_eq!(a.content_type, "image/jpeg");
    // Zero bytes as a video.
    assert_eq!(
        h.code(&video(&origin.url("empty.jpg"), true)).await,
        Some(UnsupportedFormat)
    );
}

#[tokio::test]
async fn an_origin_with_a_bad_certificate_is_unreachable() {
    let origin = tls_origin("selfsigned", rehost::fixture_origin::Alpn::H2AndHttp1).await;
    let h = default_harness().await;
    let r = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    let e = r.error.expect("error");
    assert_eq!((e.code, e.retryable), (Unreachable, true), "{}", e.message);
}

#[tokio::test]
async fn polyglots_are_stored_as_the_sniffed_image() {
    let origin = origin().await;
    let h = verbatim_harness().await;
    let r = h
        .run(&slideshow(
            &[origin.url("polyglot.jpg"), origin.url("png-named.jpg")],
            true,
        ))
        .await;
    assert_eq!(r.status, Status::Ready, "{:?}", r.error);
    let assets = r.assets.expect("assets");
    assert_eq!(assets[0].content_type, "image/jpeg");
    assert!(assets[0].url.ends_with(".jpg"));
    assert_eq!(assets[1].content_type, "image/png");
    assert!(
        assets[1].url.ends_with(".png"),
        "stored under its real type: {}",
        assets[1].url
    );
}

#[tokio::test]
async fn ordinary_jobs_complete_beside_attacks_with_bounded_connections() {
    let origin = origin().await;
    let h = harness(Options {
        fetch: FetchConfig {
            allow: AllowList::parse("127.0.0.1/32").expect("allow"),
            base_timeout: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(2),
            min_rate_bytes_per_sec: 1024 * 1024,
            per_host_connections: 4,
            ..FetchConfig::default()
        },
        settings: vec![("REHOST_MAX_IMAGE_BYTES", "5242880".into())],
        ..Options::default()
    })
    .await;
    let attacks = [
        "photo.jpg?rate=200",         // slowloris
        "photo.jpg?endless=1",        // a body that never ends
        "photo.jpg?stall_after=4096", // goes quiet
        "bomb-60000.png",             // decompression bomb
        "photo.jpg?redirect=100",     // redirect loop
        "gzip-bomb.jpg?gzip=1",       // compression bomb
    ];
    let attack_jobs: Vec<_> = attacks
        .iter()
        .map(|a| {
            let urls: Vec<String> = (0..6)
                .map(|i| {
                    origin.url(&format!("{a}&n={i}").replacen(
                        '&',
                        "?",
                        usize::from(!a.contains('?')),
                    ))
                })
                .collect();
            slideshow(&urls, true)
        })
        .collect();
    let normal = slideshow(
        &[origin.url("small.jpg?ok=1"), origin.url("alpha.png?ok=1")],
        true,
    );
    let attacks_run = futures_util::future::join_all(attack_jobs.iter().map(|j| h.run(j)));
    let (results, normal_result) = tokio::join!(attacks_run, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.run(&normal).await
    });
    assert_eq!(
        normal_result.status,
        Status::Ready,
        "{:?}",
        normal_result.error
    );
    for (r, a) in results.iter().zip(attacks) {
        assert_ne!(r.status, Status::Ready, "{a} must not pass");
    }
    // Four in flight at most; idle pooled and closing connections can add to
    // that briefly, but 36 hostile fetches never open 36 connections.
    let peak = origin.stats.connections_peak();
    assert!(peak <= 8, "connections to one host stayed bounded: {peak}");
}
