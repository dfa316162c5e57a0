//! A TCP proxy in front of the broker for the workers, whose connections
//! the run can sever at once (a network cut the broker does not see).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(upstream: String) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let generation = Arc::new(AtomicU64::new(0));
        let g = generation.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let g = g.clone();
                let mine = g.load(Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let cut = async {
                        while g.load(Ordering::SeqCst) == mine {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut => {}
                    }
                });
            }
        });
        Ok(Proxy { addr, generation })
    }

    /// Severs every open connection.
    pub fn sever(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}
