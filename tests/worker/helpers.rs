//! Broker test plumbing: a real RabbitMQ at 127.0.0.1:5672 with names unique
//! to each test, an in-process worker, a loopback origin, and a timeout on
//! every wait.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rehost::app::App;
use rehost::config::{Config, Raw};
use rehost::fixture_origin::{Origin, OriginConfig};
use rehost::result::ResultMessage;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether the broker answers. Under `CI=true` a missing broker fails the
/// test; otherwise the test says loudly that it is skipped.
pub fn broker_or_skip(test: &str) -> bool {
    let up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().expect("addr"),
        Duration::from_secs(2),
    )
    .is_ok();
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no RabbitMQ at 127.0.0.1:5672: broker tests must not be skipped"
        );
        eprintln!(
            "\n*** SKIPPED {test}: no RabbitMQ at 127.0.0.1:5672 (start it with `rabbitmq-server -detached`) ***\n"
        );
    }
    up
}

pub fn fixtures() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media")
}

pub async fn origin() -> Origin {
    Origin::start(
        OriginConfig::new(fixtures()),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("origin")
}

/// Names unique to one test, its store directory, and a broker connection.
pub struct Bench {
    pub id: String,
    pub store_dir: tempfile::TempDir,
    pub conn: Connection,
    pub channel: Channel,
    pub settings: Vec<(&'static str, String)>,
    results: Option<lapin::Consumer>,
    cleaned: bool,
}

impl Bench {
    pub async fn new(extra: &[(&'static str, &str)]) -> Bench {
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let store_dir = tempfile::tempdir().expect("tempdir");
        let mut settings: Vec<(&'static str, String)> = vec![
            ("AMQP_URL", AMQP.into()),
            ("REHOST_QUEUE", format!("{id}.ingest")),
            ("REHOST_EXCHANGE", format!("{id}.media")),
            ("REHOST_ROUTING_KEY", "media.ingest".into()),
            ("REHOST_RESULTS_EXCHANGE", format!("{id}.events")),
            ("REHOST_RESULTS_QUEUE", format!("{id}.results")),
            ("REHOST_RETRY_DELAYS", "200ms".into()),
            ("REHOST_HTTP_ADDR", "127.0.0.1:0".into()),
            ("REHOST_STORE_DIR", store_dir.path().display().to_string()),
            ("PUBLIC_BASE_URL", "https://media.example.net".into()),
            // A fake base: nothing serves it (tests/worker/public.rs serves one).
            ("REHOST_PUBLIC_PROBE", "off".into()),
            ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32".into()),
            ("REHOST_SHUTDOWN_GRACE_SECS", "20".into()),
        ];
        for (k, v) in extra {
            settings.retain(|(key, _)| key != k);
            settings.push((k, (*v).to_string()));
        }
        let conn = Connection::connect(AMQP, ConnectionProperties::default())
            .await
            .expect("test connection");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let bench = Bench {
            id,
            store_dir,
            conn,
            channel,
            settings,
            results: None,
            cleaned: false,
        };
        // The API side declares the topology too (idempotently), so jobs
        // published before a worker starts are kept.
        let mut names = rehost::broker::Names::from_config(&bench.config());
        names.declare = true;
        rehost::broker::topology::ensure(&bench.conn, &names)
            .await
            .expect("topology");
        bench
    }

    pub fn get(&self, key: &str) -> String {
        self.settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub fn config(&self) -> Config {
        let pairs: Vec<(&'static str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        Config::load(&Raw::from_pairs(&pairs)).expect("valid test settings")
    }

    pub fn queue(&self) -> String {
        self.get("REHOST_QUEUE")
    }

    /// Starts a worker in this process and waits until it is ready; stop it
    /// with [`WorkerHandle::stop`].
    pub async fn start_worker(&self) -> WorkerHandle {
        let w = self.start_worker_unready().await;
        eventually("worker ready", || async { w.health.ready().is_ok() }).await;
        w
    }

    pub async fn start_worker_unready(&self) -> WorkerHandle {
        start_worker_with(self.config()).await
    }

    /// Publishes a job to the job exchange.
    pub async fn publish(&self, job: &Value) {
        self.publish_raw(
            &serde_json::to_vec(job).expect("json"),
            BasicProperties::default(),
        )
        .await;
    }

    pub async fn publish_raw(&self, body: &[u8], props: BasicProperties) {
        self.channel
            .basic_publish(
                self.get("REHOST_EXCHANGE").as_str().into(),
                "media.ingest".into(),
                BasicPublishOptions::default(),
                body,
                props.with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    /// The next result from the results queue (declared by the worker).
    pub async fn next_result(&mut self) -> ResultMessage {
        self.try_next_result(WAIT)
            .await
            .expect("a result arrives in time")
    }

    pub async fn try_next_result(&mut self, wait: Duration) -> Option<ResultMessage> {
        self.try_next_result_with_properties(wait)
            .await
            .map(|(r, _)| r)
    }

    /// The next result and its AMQP properties.
    pub async fn next_result_with_properties(&mut self) -> (ResultMessage, BasicProperties) {
        self.try_next_result_with_properties(WAIT)
            .await
            .expect("a result arrives in time")
    }

    pub async fn try_next_result_with_properties(
        &mut self,
        wait: Duration,
    ) -> Option<(ResultMessage, BasicProperties)> {
        if self.results.is_none() {
            let c = self
                .channel
                .basic_consume(
                    self.get("REHOST_RESULTS_QUEUE").as_str().into(),
                    "test-results".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("consume results");
            self.results = Some(c);
        }
        let consumer = self.results.as_mut()?;
        let d = tokio::time::timeout(wait, consumer.next())
            .await
            .ok()??
            .expect("delivery");
        let r = serde_json::from_slice(&d.data).expect("result JSON");
        Some((r, d.properties))
    }

    /// Messages in a queue right now.
    pub async fn depth(&self, queue: &str) -> u32 {
        let ch = self.conn.create_channel().await.expect("channel");
        let q = ch
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists");
        q.message_count()
    }

    /// Deletes every queue and exchange of this test.
    pub async fn cleanup(mut self) {
        delete_topology(&self.config(), &self.conn).await;
        self.cleaned = true;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// A test that panicked still removes its queues and exchanges.
impl Drop for Bench {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let config = self.config();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let connect = Connection::connect(AMQP, ConnectionProperties::default());
                if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        delete_topology(&config, &conn),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

async fn delete_topology(config: &Config, conn: &Connection) {
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    let names = rehost::broker::Names::from_config(config);
    let mut queues = vec![names.queue.clone(), names.dead.clone()];
    queues.extend(names.retries.iter().map(|(_, q)| q.clone()));
    queues.extend(names.results_queue.clone());
    for name in queues {
        let _ = ch
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for name in [&names.exchange, &names.results_exchange] {
        let _ = ch
            .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
}

pub struct WorkerHandle {
    pub http_addr: std::net::SocketAddr,
    pub health: Arc<rehost::worker::health::Health>,
    stop: Option<oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl WorkerHandle {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(WAIT, &mut self.join)
            .await
            .expect("worker stops in time")
            .expect("join")
            .expect("clean stop");
    }
}

pub async fn start_worker_with(config: Config) -> WorkerHandle {
    let app = App::build(&config).await.expect("app builds");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel();
    let join = tokio::spawn(async move {
        rehost::worker::run(
            app,
            async {
                let _ = stop_rx.await;
            },
            move |r| {
                let _ = started_tx.send(r);
            },
        )
        .await
    });
    let running = tokio::time::timeout(WAIT, started_rx)
        .await
        .expect("worker starts")
        .expect("started");
    WorkerHandle {
        http_addr: running.http_addr,
        health: running.health,
        stop: Some(stop_tx),
        join,
    }
}

/// Polls `check` until it holds (or fails the test after `WAIT`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// GET a path of the worker's HTTP server: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("http");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

pub fn job(id: &str, urls: &[String], byo: bool) -> Value {
    let kind = if byo { "byo" } else { "hosted" };
    json!({
        "job_id": id,
        "post_id": format!("post-{id}"),
        "workspace_id": "ws_worker",
        "accounts": [{"id": "a1", "platform": "tiktok", "type": kind}],
        "media": {"type": "slideshow", "urls": urls},
    })
}

/// A TCP proxy to the broker whose connections the test can sever.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    pub cut: Arc<AtomicBool>,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicU64>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = accepted.clone();
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let g = g.clone();
                let my_gen = g.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5672").await else {
                        return;
                    };
                    let watch = async {
                        while g.load(Ordering::SeqCst) == my_gen {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = watch => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            accepted,
            generation,
        }
    }

    /// `amqp://` URL of the broker through this proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Severs every open connection.
    pub fn sever(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `rabbitmqctl` with `args` and checks it succeeded.
pub fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a closure when dropped (restores what a test changed, even when it fails).
pub struct Defer<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
