//! The address guard end to end: literals, names, redirects, the allow list.

use std::net::IpAddr;
use std::sync::Arc;

use rehost::error::ErrorCode::{ForbiddenAddress, InvalidUrl};
use rehost::fetch::FetchConfig;
use rehost::fetch::guard::AllowList;
use rehost::fetch::resolver::StaticLookup;

use crate::helpers::*;

fn with_names(allow: &str) -> Options {
    Options {
        fetch: FetchConfig {
            allow: AllowList::parse(allow).expect("allow"),
            ..FetchConfig::default()
        },
        lookup: Arc::new(StaticLookup(|host: &str| {
            let ips: Vec<IpAddr> = match host {
                "origin.test" => vec!["127.0.0.1".parse().expect("ip")],
                "private.test" => vec!["10.0.0.7".parse().expect("ip")],
                "metadata.test" => vec!["169.254.169.254".parse().expect("ip")],
                "mixed.test" => vec![
                    "127.0.0.1".parse().expect("ip"),
                    "10.0.0.7".parse().expect("ip"),
                ],
                "mapped.test" => vec!["::ffff:127.0.0.1".parse().expect("ip")],
                _ => return Err(std::io::Error::other("unknown")),
            };
            Ok(ips)
        })),
        ..Options::default()
    }
}

#[tokio::test]
async fn loopback_is_forbidden_by_default() {
    let origin = origin().await;
    let h = harness(with_names("false")).await;
    let r = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    assert_eq!(r.error.map(|e| e.code), Some(ForbiddenAddress));
    assert_eq!(origin.stats.requests(), 0, "no request reached the origin");
}

#[tokio::test]
async fn literal_and_numeric_hosts_are_refused_before_connecting() {
    let h = harness(with_names("false")).await;
    for url in [
        "http://2130706433/a.jpg",
        "http://0x7f000001/a.jpg",
        "http://0177.0.0.1/a.jpg",
        "http://127.1/a.jpg",
        "http://2852039166/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::1]/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://10.0.0.1/a.jpg",
        "http://[fd00::1]/a.jpg",
        "http://[64:ff9b::a9fe:a9fe]/",
    ] {
        assert_eq!(
            h.code(&slideshow(&[url.into()], true)).await,
            Some(ForbiddenAddress),
            "{url}"
        );
    }
}

#[tokio::test]
async fn names_resolving_to_private_addresses_are_refused() {
    let origin = origin().await;
    let port = origin.addr().port();
    let h = harness(with_names("127.0.0.1/32")).await;
    let url = |host: &str| format!("http://{host}:{port}/photo.jpg");
    // The allow list applies to names too.
    assert_eq!(h.code(&slideshow(&[url("origin.test")], true)).await, None);
    for host in ["private.test", "metadata.test", "mixed.test", "mapped.test"] {
        assert_eq!(
            h.code(&slideshow(&[url(host)], true)).await,
            Some(ForbiddenAddress),
            "{host}"
        );
    }
}

#[tokio::test]
async fn metadata_stays_closed_under_true() {
    let h = harness(with_names("true")).await;
    assert_eq!(
        h.code(&slideshow(
            &["http://169.254.169.254/latest/meta-data/".into()],
            true
        ))
        .await,
        Some(ForbiddenAddress)
    );
    assert_eq!(
        h.code(&slideshow(
            &["http://metadata.test/latest/meta-data/".into()],
            true
        ))
        .await,
        Some(ForbiddenAddress)
    );
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    let origin = origin().await;
    let port = origin.addr().port();
    let h = harness(with_names("127.0.0.1/32")).await;
    for target in [
        format!("http://127.0.0.2:{port}/photo.jpg"),
        format!("http://private.test:{port}/photo.jpg"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/".to_string(),
    ] {
        let url = format!("{}?to={}", origin.url("photo.jpg"), urlencode(&target));
        assert_eq!(
            h.code(&slideshow(&[url], true)).await,
            Some(ForbiddenAddress),
            "{target}"
        );
    }
    // A redirect to another scheme.
    let url = format!(
        "{}?to={}",
        origin.url("photo.jpg"),
        urlencode("file:///etc/passwd")
    );
    assert_eq!(h.code(&slideshow(&[url], true)).await, Some(InvalidUrl));
    // An allowed hop is followed.
    let url = format!(
        "{}?to={}",
        origin.url("x.jpg"),
        urlencode(&format!("http://origin.test:{port}/photo.jpg"))
    );
    assert_eq!(h.code(&slideshow(&[url], true)).await, None);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The per-host budget counts the host a request actually connects to:
/// redirects from many hosts to one host share that host's places.
#[tokio::test]
async fn the_host_budget_follows_redirects() {
    let from = origin().await;
    let to = origin().await;
    let h = harness(Options {
        fetch: FetchConfig {
            allow: AllowList::parse("127.0.0.1/32").expect("allow"),
            per_host_connections: 1,
            ..FetchConfig::default()
        },
        lookup: Arc::new(StaticLookup(|_: &str| {
            Ok(vec!["127.0.0.1".parse().expect("ip")])
        })),
        ..Options::default()
    })
    .await;
    let target = format!("http://target.test:{}/photo.jpg", to.addr().port());
    let urls: Vec<String> = (0..6)
        .map(|i| {
            let t = format!("{target}?delay_ms=300&n={i}");
            let t: String = url::form_urlencoded::byte_serialize(t.as_bytes()).collect();
            format!(
                "http://from{i}.test:{}/photo.jpg?to={t}",
                from.addr().port()
            )
        })
        .collect();
    let r = h.run(&slideshow(&urls, true)).await;
    assert_eq!(r.status, rehost::result::Status::Ready, "{:?}", r.error);
    let peak = to.stats.connections_peak();
    assert!(
        peak <= 2,
        "one place for the target host (plus a closing one): {peak}"
    );
}
