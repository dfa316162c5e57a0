//! Workers the load test spawns: `rehost worker` processes of this binary,
//! each on its own free port, and what they used.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::process::{Child, Command};

pub struct Workers {
    children: Vec<(Child, u16)>,
    _store: Option<tempfile_dir::TempDir>,
}

/// Peak memory and CPU time of the spawned workers (Linux `/proc`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub workers: usize,
    /// Largest peak resident set of any worker.
    pub peak_rss_mib: Option<f64>,
    /// User plus system CPU seconds, summed over workers.
    pub cpu_seconds: Option<f64>,
}

/// A directory removed on drop, without a dependency for it.
mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Workers {
    /// Spawns `n` workers with this process's settings, the loopback origin
    /// allowed, and (when no store is configured) a temporary directory store.
    ///
    /// # Errors
    /// When a worker cannot be started or does not become ready in 60 s.
    pub async fn spawn(n: usize) -> anyhow::Result<Workers> {
        let exe = std::env::current_exe()?;
        let store = if n > 0
            && std::env::var_os("REHOST_STORE_DIR").is_none()
            && std::env::var_os("S3_BUCKET").is_none()
        {
            let dir = std::env::temp_dir()
                .join(format!("rehost-loadtest-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            Some(tempfile_dir::TempDir(dir))
        } else {
            None
        };
        let mut children = Vec::new();
        for _ in 0..n {
            let port = free_port()?;
            let mut cmd = Command::new(&exe);
            cmd.arg("worker")
                .env("REHOST_HTTP_ADDR", format!("127.0.0.1:{port}"))
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if std::env::var_os("REHOST_ALLOW_PRIVATE_NETWORKS").is_none() {
                cmd.env("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32");
            }
            if let Some(dir) = &store {
                cmd.env("REHOST_STORE_DIR", &dir.0);
            }
            children.push((cmd.spawn()?, port));
        }
        let client = reqwest::Client::new();
        for (_, port) in &children {
            let url = format!("http://127.0.0.1:{port}/readyz");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                if client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    break;
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "worker on port {port} did not become ready"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(Workers {
            children,
            _store: store,
        })
    }

    /// Reads their usage, then stops them with SIGTERM (SIGKILL after 30 s).
    pub async fn stop(&mut self) -> Usage {
        let mut usage = Usage {
            workers: self.children.len(),
            ..Usage::default()
        };
        for (child, _) in &self.children {
            let Some(pid) = child.id() else { continue };
            if let Some(kib) = vm_hwm_kib(pid) {
                let mib = kib as f64 / 1024.0;
                usage.peak_rss_mib = Some(usage.peak_rss_mib.map_or(mib, |m: f64| m.max(mib)));
            }
            if let Some(cpu) = cpu_seconds(pid) {
                usage.cpu_seconds = Some(usage.cpu_seconds.unwrap_or(0.0) + cpu);
            }
        }
        for (child, _) in &mut self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        usage
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks: 100 per second on Linux.
    Some((utime + stime) / 100.0)
}
