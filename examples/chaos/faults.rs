//! The faults of a run, drawn from the seed, one at a time; every
//! broker-wide change is undone when the fault ends, and again by
//! [`BrokerGuard`] when the run ends, whatever happens.

use std::process::Command;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// What can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The workers' broker connections cut by the proxy.
    ProxyCut,
    /// `rabbitmqctl close_all_connections` (the run's own too).
    CloseAll,
    /// A memory alarm (publishing blocked) for a while.
    MemoryAlarm,
    /// A memory alarm, a cut during it, then the alarm cleared.
    AlarmThenCut,
    /// `rabbitmqctl stop_app`, then `start_app`.
    BrokerRestart,
    /// A worker killed with SIGKILL, then started again.
    KillWorker,
    /// The S3 server killed, then started again.
    StorageDown,
    /// The origin holds every request for a while.
    OriginStall,
    /// Many videos at once from one origin host (not a fault: load).
    Burst,
}

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::ProxyCut,
        Fault::CloseAll,
        Fault::MemoryAlarm,
        Fault::AlarmThenCut,
        Fault::BrokerRestart,
        Fault::KillWorker,
        Fault::StorageDown,
        Fault::OriginStall,
        Fault::Burst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::ProxyCut => "proxy_cut",
            Fault::CloseAll => "close_all_connections",
            Fault::MemoryAlarm => "memory_alarm",
            Fault::AlarmThenCut => "memory_alarm_and_cut",
            Fault::BrokerRestart => "broker_stop_start",
            Fault::KillWorker => "worker_sigkill",
            Fault::StorageDown => "storage_down",
            Fault::OriginStall => "origin_stall",
            Fault::Burst => "burst_one_host",
        }
    }

    pub fn draw(rng: &mut StdRng) -> Fault {
        Fault::ALL[rng.random_range(0..Fault::ALL.len())]
    }

    /// How long the fault lasts (before it is undone).
    pub fn hold(self, rng: &mut StdRng) -> Duration {
        let secs = match self {
            Fault::ProxyCut | Fault::CloseAll | Fault::Burst => 0.0,
            Fault::KillWorker => rng.random_range(1.0..3.0),
            Fault::MemoryAlarm | Fault::AlarmThenCut => rng.random_range(3.0..8.0),
            Fault::BrokerRestart => rng.random_range(2.0..5.0),
            Fault::StorageDown | Fault::OriginStall => rng.random_range(3.0..10.0),
        };
        Duration::from_secs_f64(secs)
    }
}

pub fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Undoes broker-wide faults: the memory watermark found at the start, and
/// a running broker app. Runs at every fault's end and on drop.
pub struct BrokerGuard {
    watermark: Vec<String>,
}

impl BrokerGuard {
    /// Reads the current watermark (to restore it exactly).
    pub fn new() -> BrokerGuard {
        let out = Command::new("rabbitmqctl")
            .args([
                "eval",
                "application:get_env(rabbit, vm_memory_high_watermark).",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let value = out.strip_prefix("{ok,").and_then(|v| v.strip_suffix('}'));
        let watermark = match value {
            Some(v) if v.starts_with("{absolute,") => vec![
                "absolute".to_string(),
                v.trim_start_matches("{absolute,")
                    .trim_end_matches('}')
                    .to_string(),
            ],
            Some(v) => vec![v.to_string()],
            None => vec!["0.4".to_string()],
        };
        BrokerGuard { watermark }
    }

    pub fn raise_alarm(&self) {
        rabbitmqctl(&["set_vm_memory_high_watermark", "absolute", "1000"]);
    }

    /// Restores everything broker-wide.
    pub fn restore(&self) {
        rabbitmqctl(&["start_app"]);
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(self.watermark.iter().map(String::as_str));
        rabbitmqctl(&args);
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        self.restore();
    }
}
