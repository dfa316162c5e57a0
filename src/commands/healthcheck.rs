//! `rehost healthcheck`: asks this host's worker for `/healthz` (at
//! `REHOST_HTTP_ADDR`, an unspecified address meaning loopback) and exits 0
//! on 200, 1 otherwise: a container health check without curl. Needs no
//! broker and no store; answers within 5 s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;

pub async fn run(config: &Config) -> u8 {
    let addr = local(config.http_addr);
    match tokio::time::timeout(Duration::from_secs(5), healthz(addr)).await {
        Ok(Ok(200)) => 0,
        Ok(Ok(status)) => {
            eprintln!("rehost: http://{addr}/healthz answered {status}");
            1
        }
        Ok(Err(e)) => {
            eprintln!("rehost: http://{addr}/healthz: {e}");
            1
        }
        Err(_) => {
            eprintln!("rehost: http://{addr}/healthz did not answer within 5 s");
            1
        }
    }
}

/// Where this host's worker listens: `0.0.0.0` and `::` mean loopback.
fn local(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// The status code of `GET /healthz` (HTTP/1.0, no dependencies).
async fn healthz(addr: SocketAddr) -> std::io::Result<u16> {
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    sock.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut head = vec![0u8; 64];
    let n = sock.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_mean_loopback() {
        assert_eq!(
            local("0.0.0.0:9090".parse().expect("addr")).to_string(),
            "127.0.0.1:9090"
        );
        assert_eq!(
            local("[::]:9090".parse().expect("addr")).to_string(),
            "[::1]:9090"
        );
        assert_eq!(
            local("10.1.2.3:80".parse().expect("addr")).to_string(),
            "10.1.2.3:80"
        );
    }
}
