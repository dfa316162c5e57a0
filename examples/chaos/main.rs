//! Fault injection against real workers: a paced stream of mixed jobs runs
//! through two or more `rehost worker` processes while faults drawn from a
//! seed hit the broker (cuts through a proxy, `close_all_connections`,
//! memory alarms, `stop_app`/`start_app`), the workers (SIGKILL), the S3
//! server (killed and restarted) and the origin (stalls, bursts on one
//! host). Then every invariant is checked: no job lost, every job ended as
//! it should, stored bytes right, nothing left after the sweep, every worker
//! ready again within 60 s, peak RSS within 256 MiB.
//!
//! ```sh
//! cargo build --bin rehost --example s3_server --example chaos
//! target/debug/examples/chaos --seed 7 --duration-secs 120          # CI's short run
//! target/release/examples/chaos --duration-secs 600 --jobs-per-sec 9 --report bench/chaos
//! ```
//!
//! It changes broker-wide settings (memory watermark, a stopped app) and
//! closes every connection on the broker: run it alone. Whatever happens,
//! the broker's settings are restored when it ends.
//!
//! `--cluster` runs it against three local RabbitMQ nodes (`cluster.sh`:
//! Debian's packages, quorum queues on all three, HAProxy in front as a
//! Kubernetes Service would be) and adds node kills (SIGKILL, then a
//! restart), the queue leader's node among them; the machine's own broker
//! is left alone.

mod broker;
mod faults;
mod plan;
mod procs;
mod proxy;
mod run;
mod traffic;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

/// The run's settings.
#[derive(Debug, Clone, clap::Parser)]
pub struct Args {
    /// Seed of the jobs and the faults (random when absent; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long jobs are published and faults injected.
    #[arg(long, default_value_t = 120)]
    pub duration_secs: u64,
    /// Jobs published per second.
    #[arg(long, default_value_t = 3.0)]
    pub jobs_per_sec: f64,
    /// Workers.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Seconds between faults: drawn from this to twice this.
    #[arg(long, default_value_t = 6)]
    pub fault_gap_secs: u64,
    /// How long jobs may take to end after the faults stop.
    #[arg(long, default_value_t = 300)]
    pub settle_secs: u64,
    /// Write `summary.json` here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Keep the work directory (logs, S3 data) after the run.
    #[arg(long)]
    pub keep: bool,
    /// Run against a three-node cluster behind HAProxy (cluster.sh), with
    /// node kills among the faults.
    #[arg(long)]
    pub cluster: bool,
}

/// The system's roots and the test CA of `fixtures/tls`, in one file, for
/// `SSL_CERT_FILE`: the run's HTTPS origin is signed by that CA.
fn trust_bundle() -> Result<tempfile::TempPath, String> {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    if let Ok(system) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
        f.write_all(&system).map_err(|e| e.to_string())?;
    }
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls/ca.pem");
    let ca = std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    f.write_all(&ca).map_err(|e| e.to_string())?;
    Ok(f.into_temp_path())
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let bundle = match trust_bundle() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: no other thread exists yet; the runtime starts below. The
    // run's own HTTPS checks and the workers (which inherit it) trust the
    // test CA through it.
    unsafe { std::env::set_var("SSL_CERT_FILE", &bundle) };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run::run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("chaos: {e}");
            ExitCode::from(2)
        }
    }
}
