use super::*;
use crate::fetch::resolver::StaticLookup;

fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

fn v(s: &str) -> Verified {
    Verified::parse(s).expect("entry")
}

#[test]
fn prefixes_cover_at_path_segment_boundaries() {
    let p = v("https://media.example.net/media/");
    assert!(p.covers(&url("https://media.example.net/media/ws/ab/x.jpg")));
    assert!(p.covers(&url("https://media.example.net/media")));
    assert!(
        !p.covers(&url("https://media.example.net/media2/x.jpg")),
        "/media is not /media2"
    );
    assert!(!p.covers(&url("https://media.example.net/")));
    assert!(
        !p.covers(&url("http://media.example.net/media/x")),
        "another scheme"
    );
    assert!(
        !p.covers(&url("https://media.example.net:8443/media/x")),
        "another port"
    );
    assert!(
        !p.covers(&url("https://cdn.media.example.net/media/x")),
        "a prefix names one host"
    );
    assert!(
        p.covers(&url("https://MEDIA.example.net/media/x")),
        "hosts are case-insensitive"
    );
    let no_slash = v("https://media.example.net/media");
    assert!(no_slash.covers(&url("https://media.example.net/media/x")));
    assert!(!no_slash.covers(&url("https://media.example.net/mediax")));
    assert!(v("https://media.example.net").covers(&url("https://media.example.net/any/x")));
}

#[test]
fn bare_domains_cover_their_subdomains() {
    let d = v("Example.com");
    assert!(d.covers(&url("https://example.com/a")));
    assert!(d.covers(&url("https://cdn.example.com/a")));
    assert!(d.covers(&url("http://a.b.example.com:8080/a")));
    assert!(
        !d.covers(&url("https://badexample.com/a")),
        "a label boundary"
    );
    assert!(!d.covers(&url("https://example.com.evil.net/a")));
}

#[test]
fn entries_that_are_neither_are_refused() {
    for bad in [
        "",
        "localhost",
        "ftp://x.com/",
        "https://x.com/?q=1",
        "https://u@x.com/",
        "ex ample.com",
        "a..b",
    ] {
        assert!(Verified::parse(bad).is_err(), "{bad:?}");
    }
}

fn lookup(
    ips: &'static [&'static str],
) -> StaticLookup<impl Fn(&str) -> std::io::Result<Vec<IpAddr>>> {
    StaticLookup(move |_: &str| Ok(ips.iter().map(|s| s.parse().expect("ip")).collect()))
}

async fn base(
    b: &str,
    dir: bool,
    allow: &str,
    verified: &[&str],
    ips: &'static [&'static str],
) -> Result<(), (&'static str, String)> {
    let allow = AllowList::parse(allow).expect("allow");
    let verified: Vec<Verified> = verified.iter().map(|s| v(s)).collect();
    check_base(b, "rehost/", dir, &allow, &verified, &lookup(ips)).await
}

#[tokio::test]
async fn https_with_a_domain_passes_without_a_lookup() {
    assert!(
        base("https://media.example.net", false, "false", &[], &[])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn http_ip_and_loopback_bases_are_only_for_private_allowed_addresses() {
    let local = &["127.0.0.1"];
    assert!(
        base("http://localhost:9000/media", false, "true", &[], local)
            .await
            .is_ok()
    );
    assert!(
        base(
            "http://127.0.0.1:9000/media",
            false,
            "127.0.0.1/32",
            &[],
            &[]
        )
        .await
        .is_ok()
    );
    let e = base("http://localhost:9000/media", false, "false", &[], local)
        .await
        .expect_err("not allowed");
    assert_eq!(e.0, "PUBLIC_BASE_URL");
    assert!(
        e.1.contains("127.0.0.1") && e.1.contains("http://localhost:9000/media"),
        "{}",
        e.1
    );
    let e = base(
        "http://media.example.net",
        false,
        "true",
        &[],
        &["203.0.113.7"],
    )
    .await
    .expect_err("public over http");
    assert!(e.1.contains("use https"), "{}", e.1);
    assert!(
        base("https://10.1.2.3/m", false, "10.0.0.0/8", &[], &[])
            .await
            .is_ok()
    );
    assert!(
        base("https://10.1.2.3/m", false, "false", &[], &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn file_bases_need_the_directory_store() {
    assert!(
        base("file:///srv/rehost", true, "false", &[], &[])
            .await
            .is_ok()
    );
    let e = base("file:///srv/rehost", false, "false", &[], &[])
        .await
        .expect_err("S3 with a file base");
    assert!(e.1.contains("directory store"), "{}", e.1);
}

#[tokio::test]
async fn the_base_must_lie_under_a_verified_prefix_when_they_are_set() {
    let ok = base(
        "https://media.example.net/media",
        false,
        "false",
        &["https://media.example.net/media/"],
        &[],
    );
    assert!(ok.await.is_ok());
    assert!(
        base(
            "https://cdn.example.net",
            false,
            "false",
            &["example.net"],
            &[]
        )
        .await
        .is_ok()
    );
    let e = base(
        "https://media.example.net/media2",
        false,
        "false",
        &["https://media.example.net/media/", "other.org"],
        &[],
    )
    .await
    .expect_err("outside");
    assert_eq!(e.0, "REHOST_VERIFIED_URL_PREFIXES");
    assert!(
        e.1.contains("https://media.example.net/media2/rehost/")
            && e.1.contains("https://media.example.net/media/, other.org"),
        "names the base and the list: {}",
        e.1
    );
}

#[test]
fn robots_rules_follow_the_most_specific_group_and_the_longest_match() {
    let r = "User-agent: *\nDisallow: /\n\nUser-agent: facebookexternalhit\nAllow: /media/\nDisallow: /media/private/\n";
    assert!(probe::allowed(r, "facebookexternalhit", "/media/ws/a.png"));
    assert!(!probe::allowed(
        r,
        "facebookexternalhit",
        "/media/private/a.png"
    ));
    assert!(
        probe::allowed(r, "facebookexternalhit", "/other"),
        "no rule of its own group matches: allowed (the * group does not apply)"
    );
    assert!(
        !probe::allowed(r, "otherbot", "/media/a.png"),
        "* disallows everything"
    );
    assert!(probe::allowed("", "facebookexternalhit", "/x"));
    assert!(
        probe::allowed("User-agent: *\nDisallow:\n", "facebookexternalhit", "/x"),
        "an empty Disallow allows"
    );
    let shared = "User-agent: googlebot\nUser-agent: facebookexternalhit\nDisallow: /.rehost/\n";
    assert!(!probe::allowed(
        shared,
        "facebookexternalhit",
        "/.rehost/probe/a.png"
    ));
}

#[test]
fn the_probe_image_is_a_png() {
    let img = ::image::load_from_memory_with_format(probe::PNG, ::image::ImageFormat::Png)
        .expect("decodes");
    assert_eq!((img.width(), img.height()), (1, 1));
}
