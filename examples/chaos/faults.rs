//! The faults of a run, drawn from the seed, one at a time; every
//! broker-wide change is undone when the fault ends, and again by
//! [`crate::broker::Broker`] when the run ends, whatever happens.

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
    /// A cluster node killed with SIGKILL, then started again (cluster mode).
    NodeKill,
    /// The node holding the job queue's leader killed with SIGKILL, then
    /// started again (cluster mode).
    LeaderKill,
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

    /// What a cluster run adds to [`Fault::ALL`].
    pub const NODE_KILLS: [Fault; 2] = [Fault::NodeKill, Fault::LeaderKill];

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
            Fault::NodeKill => "node_sigkill",
            Fault::LeaderKill => "queue_leader_sigkill",
        }
    }

    /// One fault; node kills only when the run has a cluster (they are
    /// drawn twice as often there, as what cluster mode is for).
    pub fn draw(rng: &mut StdRng, cluster: bool) -> Fault {
        if !cluster {
            return Fault::ALL[rng.random_range(0..Fault::ALL.len())];
        }
        let i = rng.random_range(0..Fault::ALL.len() + 2 * Fault::NODE_KILLS.len());
        match i.checked_sub(Fault::ALL.len()) {
            None => Fault::ALL[i],
            Some(k) => Fault::NODE_KILLS[k % Fault::NODE_KILLS.len()],
        }
    }

    /// How long the fault lasts (before it is undone).
    pub fn hold(self, rng: &mut StdRng) -> Duration {
        let secs = match self {
            Fault::ProxyCut | Fault::CloseAll | Fault::Burst => 0.0,
            Fault::KillWorker => rng.random_range(1.0..3.0),
            Fault::MemoryAlarm | Fault::AlarmThenCut => rng.random_range(3.0..8.0),
            Fault::BrokerRestart => rng.random_range(2.0..5.0),
            Fault::NodeKill | Fault::LeaderKill => rng.random_range(2.0..6.0),
            Fault::StorageDown | Fault::OriginStall => rng.random_range(3.0..10.0),
        };
        Duration::from_secs_f64(secs)
    }
}
