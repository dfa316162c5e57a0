//! The address guard: which IP addresses an origin may resolve to.
//!
//! Every address that is not globally routable is refused: loopback, private,
//! CGNAT, link-local (cloud metadata), multicast, broadcast, documentation,
//! reserved, unspecified, and their IPv6 forms, including the IPv6 ranges that
//! embed or tunnel IPv4 (mapped, compatible, 6to4, Teredo, local-use NAT64),
//! cloud platform endpoints (169.254.169.254, Azure's 168.63.129.16); a
//! well-known-prefix NAT64 address (64:ff9b::/96) is judged by the IPv4
//! address it embeds, so IPv6-only deployments reach public origins. The check
//! runs on the addresses a name resolves to, on IP-literal hosts and on every
//! redirect hop, so numeric spellings (`2130706433`, `0x7f.1`, `[::ffff:...]`)
//! are judged by the address they mean.
//!
//! [`AllowList`] opens exactly the networks an operator names, for local runs
//! and tests. `true` opens loopback, RFC 1918, CGNAT and unique-local; link-local
//! and metadata ranges open only when a CIDR names them.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Networks that are never public, with the reason shown in errors.
const BLOCKED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified/this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "CGNAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    (
        "168.63.129.16/32",
        "Azure platform endpoint (cloud metadata)",
    ),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b:1::/48", "local NAT64"),
    ("100::/64", "discard"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("2001:10::/28", "ORCHID"),
    ("2001:20::/28", "ORCHIDv2"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 SIDs"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

/// What `REHOST_ALLOW_PRIVATE_NETWORKS=true` opens.
const PRIVATE_WHEN_TRUE: &[&str] = &[
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// Networks an operator opened for origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    text: String,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses `false`, `true`, or a comma list of CIDRs (a bare address is a
    /// single host).
    ///
    /// # Errors
    /// A message naming the entry that is not a CIDR.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let entries: Vec<&str> = match text.to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "no" => return Ok(AllowList::default()),
            "true" | "1" | "yes" => PRIVATE_WHEN_TRUE.to_vec(),
            _ => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
        };
        let nets = entries
            .into_iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{e:?} is not true, false or a CIDR such as 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList {
            text: text.to_string(),
            nets,
        })
    }

    /// Everything private that `true` opens: for tests and local runs.
    pub fn private() -> Self {
        AllowList::parse("true").unwrap_or_default()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nets.is_empty() {
            f.write_str("false")
        } else {
            f.write_str(&self.text)
        }
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub ip: IpAddr,
    pub reason: &'static str,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} is {} and not allowed", self.ip, self.reason)
    }
}

impl std::error::Error for Forbidden {}

/// Judges addresses against the blocked ranges and the allow list.
#[derive(Debug, Clone)]
pub struct Guard {
    blocked: Vec<(IpNet, &'static str)>,
    allow: AllowList,
}

impl Guard {
    pub fn new(allow: AllowList) -> Self {
        let blocked = BLOCKED
            .iter()
            .filter_map(|(net, why)| net.parse().ok().map(|n| (n, *why)))
            .collect();
        Guard { blocked, allow }
    }

    /// # Errors
    /// [`Forbidden`] when the address is not public and not allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Forbidden> {
        if self.allow.contains(ip) {
            return Ok(());
        }
        // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds: judged by
        // that address, which no allow list opens (IPv6-only deployments
        // reach the public IPv4 internet this way; never private networks).
        if let Some(v4) = nat64(ip) {
            return match self.blocked(IpAddr::V4(v4)) {
                Some(_) => Err(Forbidden {
                    ip,
                    reason: "NAT64 of a non-public IPv4 address",
                }),
                None => Ok(()),
            };
        }
        match self.blocked(ip) {
            Some(reason) => Err(Forbidden { ip, reason }),
            None => Ok(()),
        }
    }

    fn blocked(&self, ip: IpAddr) -> Option<&'static str> {
        self.blocked
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, reason)| *reason)
    }
}

/// The IPv4 address a well-known-prefix NAT64 address (RFC 6052) embeds.
fn nat64(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let s = v6.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        std::net::Ipv4Addr::new(a, b, c, d)
    })
}

/// Parses a host as an IP literal the way URLs do (WHATWG: decimal, hex and
/// octal IPv4 parts, short forms), so `127.1` and `0x7f000001` are caught.
pub fn literal_ip(host: &url::Host<&str>) -> Option<IpAddr> {
    match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests;
