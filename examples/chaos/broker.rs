//! The broker a run uses: the machine's own RabbitMQ at 127.0.0.1:5672, or
//! (`--cluster`) three local nodes with quorum queues on all three, behind
//! HAProxy in TCP mode as a Kubernetes Service would be (`cluster.sh`).
//! Faults that act on "the broker" act on one node, drawn from the seed;
//! every broker-wide change is undone on every node when the fault ends,
//! and again when the run ends (on drop), whatever happens. A cluster is
//! stopped and its data removed at the end.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use rand::Rng;
use rand::rngs::StdRng;

/// The cluster's HAProxy port (its nodes take the next three).
const CLUSTER_PORT: u16 = 5680;

pub struct Broker {
    /// `cluster.sh`, when the run has a cluster.
    cluster: Option<PathBuf>,
    /// The memory watermark found at the start, to restore exactly.
    watermark: Vec<String>,
}

/// A node to act on: `None` is the machine's own broker.
pub type Node = Option<String>;

impl Broker {
    /// The machine's own broker.
    pub fn single() -> Broker {
        let mut b = Broker {
            cluster: None,
            watermark: Vec::new(),
        };
        b.watermark = b.read_watermark(&None);
        b
    }

    /// Starts a three-node cluster behind HAProxy (about 30 s).
    pub fn cluster() -> Result<Broker, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/chaos/cluster.sh");
        let mut b = Broker {
            cluster: Some(script),
            watermark: Vec::new(),
        };
        if !b.script(&["start"]) {
            return Err("the cluster did not start (see cluster.sh's message above)".into());
        }
        b.watermark = b.read_watermark(&Some("c1@localhost".into()));
        Ok(b)
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Where AMQP clients connect (`host:port`).
    pub fn address(&self) -> String {
        match self.cluster {
            Some(_) => format!("127.0.0.1:{CLUSTER_PORT}"),
            None => "127.0.0.1:5672".into(),
        }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address())
    }

    fn nodes(&self) -> Vec<Node> {
        match self.cluster {
            Some(_) => (1..=3).map(|n| Some(format!("c{n}@localhost"))).collect(),
            None => vec![None],
        }
    }

    /// One node, drawn from `rng`.
    pub fn pick(&self, rng: &mut StdRng) -> Node {
        let nodes = self.nodes();
        nodes[rng.random_range(0..nodes.len())].clone()
    }

    /// `rabbitmqctl` on `node`; whether it succeeded.
    pub fn ctl(&self, node: &Node, args: &[&str]) -> bool {
        let mut cmd = Command::new("rabbitmqctl");
        if let Some(n) = node {
            cmd.args(["-n", n]);
        }
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn script(&self, args: &[&str]) -> bool {
        let Some(script) = &self.cluster else {
            return false;
        };
        Command::new("bash")
            .arg(script)
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn read_watermark(&self, node: &Node) -> Vec<String> {
        let mut cmd = Command::new("rabbitmqctl");
        if let Some(n) = node {
            cmd.args(["-n", n]);
        }
        let out = cmd
            .args([
                "eval",
                "application:get_env(rabbit, vm_memory_high_watermark).",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let value = out.strip_prefix("{ok,").and_then(|v| v.strip_suffix('}'));
        match value {
            Some(v) if v.starts_with("{absolute,") => vec![
                "absolute".to_string(),
                v.trim_start_matches("{absolute,")
                    .trim_end_matches('}')
                    .to_string(),
            ],
            Some(v) => vec![v.to_string()],
            None => vec!["0.4".to_string()],
        }
    }

    /// A memory alarm on `node` (it blocks publishers on every node).
    pub fn raise_alarm(&self, node: &Node) {
        self.ctl(node, &["set_vm_memory_high_watermark", "absolute", "1000"]);
    }

    /// Restores everything broker-wide, on every node.
    pub fn restore(&self) {
        for node in self.nodes() {
            self.ctl(&node, &["start_app"]);
            let mut args = vec!["set_vm_memory_high_watermark"];
            args.extend(self.watermark.iter().map(String::as_str));
            self.ctl(&node, &args);
        }
    }

    /// SIGKILLs cluster node `n` (1 to 3).
    pub fn kill_node(&self, n: u8) -> bool {
        self.script(&["kill", &n.to_string()])
    }

    /// Starts cluster node `n` again and waits until it runs.
    pub fn restart_node(&self, n: u8) -> bool {
        self.script(&["restart", &n.to_string()])
    }

    /// The cluster node (1 to 3) holding `queue`'s leader.
    pub fn leader(&self, queue: &str) -> Option<u8> {
        let script = self.cluster.as_ref()?;
        let out = Command::new("bash")
            .arg(script)
            .args(["leader", queue])
            .output()
            .ok()?;
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        name.strip_prefix('c')?.parse().ok()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.restore();
        if self.cluster.is_some() {
            self.script(&["stop"]);
        }
    }
}
