use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

fn host_ip(url: &str) -> IpAddr {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    literal_ip(&u.host().unwrap_or_else(|| panic!("{url} has no host")))
        .unwrap_or_else(|| panic!("{url} is not a literal"))
}

#[test]
fn every_blocked_range_is_refused() {
    let guard = Guard::new(AllowList::default());
    for addr in [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "168.63.129.16",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:8.8.8.8",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::c0a8:101",
        "2001:20::1",
        "2001:2f:ffff::1",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:db8::1",
        "2002:7f00:1::1",
        "3fff::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
    ] {
        assert!(guard.check(ip(addr)).is_err(), "{addr} must be refused");
    }
}

#[test]
fn public_addresses_pass() {
    let guard = Guard::new(AllowList::default());
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "168.63.129.17",
        "64:ff9b::808:808",
        "64:ff9b::101:101",
        "2001:30::1",
        "2a00:1450::1",
    ] {
        assert!(guard.check(ip(addr)).is_ok(), "{addr} is public");
    }
}

#[test]
fn numeric_spellings_are_judged_by_the_address_they_mean() {
    let guard = Guard::new(AllowList::default());
    for url in [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://2852039166/",
        "http://0/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "http://[::]/",
        "http://0.0.0.0/",
    ] {
        let addr = host_ip(url);
        assert!(guard.check(addr).is_err(), "{url} ({addr}) must be refused");
    }
    assert_eq!(host_ip("http://2852039166/"), ip("169.254.169.254"));
}

#[test]
fn allow_list_opens_exactly_what_it_names() {
    let open = Guard::new(AllowList::parse("true").expect("true"));
    for addr in [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.20.0.1",
        "192.168.0.10",
        "100.64.1.1",
        "fd00::1",
    ] {
        assert!(open.check(ip(addr)).is_ok(), "true opens {addr}");
    }
    for addr in [
        "169.254.169.254",
        "fe80::1",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:127.0.0.1",
    ] {
        assert!(open.check(ip(addr)).is_err(), "true keeps {addr} closed");
    }
    let cidr = Guard::new(AllowList::parse("10.0.0.0/8, 169.254.169.254/32").expect("cidrs"));
    assert!(cidr.check(ip("10.9.9.9")).is_ok());
    assert!(
        cidr.check(ip("169.254.169.254")).is_ok(),
        "named explicitly"
    );
    assert!(cidr.check(ip("127.0.0.1")).is_err(), "not named");
    assert!(cidr.check(ip("192.168.0.1")).is_err(), "not named");
    assert!(AllowList::parse("10.0.0.0/33").is_err());
    assert!(AllowList::parse("banana").is_err());
    assert_eq!(
        AllowList::parse("false").expect("false"),
        AllowList::default()
    );
}

#[test]
fn private_is_what_true_opens() {
    assert_eq!(
        AllowList::private(),
        AllowList::parse("true").expect("true")
    );
    assert!(AllowList::private().contains(ip("10.0.0.1")));
    assert!(!AllowList::private().contains(ip("169.254.169.254")));
}

#[test]
fn allow_lists_and_refusals_say_what_they_are() {
    assert_eq!(AllowList::default().to_string(), "false");
    assert_eq!(AllowList::parse("no").expect("no").to_string(), "false");
    assert_eq!(AllowList::parse("true").expect("true").to_string(), "true");
    assert_eq!(
        AllowList::parse(" 10.0.0.0/8,127.0.0.1 ")
            .expect("cidrs")
            .to_string(),
        "10.0.0.0/8,127.0.0.1"
    );
    let refused = Guard::new(AllowList::default())
        .check(ip("169.254.169.254"))
        .expect_err("metadata address");
    let text = refused.to_string();
    assert!(text.starts_with("address 169.254.169.254 is "), "{text}");
    assert!(text.ends_with(" and not allowed"), "{text}");
    assert!(text.contains(refused.reason), "{text}");
}
