//! One fault run: set up the world, drive work and faults, let it settle,
//! check the invariants, report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rehost::broker::{Names, topology};
use rehost::config::{Config, Raw};
use rehost::fixture_origin::{Alpn, Origin, OriginConfig, Tls};
use tokio::sync::mpsc;

use crate::Args;
use crate::broker::Broker;
use crate::faults::Fault;
use crate::plan::{self, Planned};
use crate::procs::{Restartable, free_port, sibling};
use crate::proxy::Proxy;
use crate::traffic::{self, Publisher, Results};
use crate::verify;

const BUCKET: &str = "media";
const KEY: &str = "chaos";
const SECRET: &str = "chaos-secret";
const PUBLIC: &str = "https://media.example.net";
const MAX_ATTEMPTS: u32 = 6;

/// Everything a run owns.
struct World {
    work: std::path::PathBuf,
    /// Removes the work directory at the end (absent with `--keep`).
    _cleanup: Option<tempfile::TempDir>,
    run: String,
    origin: Origin,
    /// The same media over HTTPS, HTTP/2 by ALPN: half the jobs use it.
    tls_origin: Origin,
    proxy: Proxy,
    s3: Mutex<Restartable>,
    s3_addr: SocketAddr,
    workers: Mutex<Vec<(Restartable, SocketAddr)>>,
    broker: Broker,
    config: Config,
}

pub async fn run(args: Args) -> Result<bool, String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "chaos: seed {seed} ({} s of faults, {} workers{})",
        args.duration_secs,
        args.workers,
        if args.cluster {
            ", a three-node cluster"
        } else {
            ""
        }
    );
    let world = Arc::new(World::start(&args, seed).await?);
    let results = traffic::collect(world.names().results_queue.unwrap_or_default());
    world.wait_ready(Duration::from_secs(60)).await?;
    let (published, faults, last_fault) = drive(&world, &args, seed).await;
    let recovered = world.wait_ready(Duration::from_secs(120)).await;
    let recovery = last_fault.elapsed();
    settle(&published, &results, Duration::from_secs(args.settle_secs)).await;
    let report = check(
        &world,
        &published,
        &results,
        &faults,
        recovered.is_ok(),
        recovery,
    )
    .await;
    println!("{}", report.table());
    if let Some(dir) = &args.report {
        report.write(dir)?;
    }
    if args.keep {
        println!("chaos: work directory kept at {}", world.work.display());
    } else {
        for (worker, _) in lock(&world.workers).iter_mut() {
            worker.kill();
        }
        if !world.broker.is_cluster() {
            remove_topology(&world.names()).await;
        }
    }
    Ok(report.passed())
}

/// Deletes the run's queues and exchanges from the shared broker (the
/// workers are stopped by then). Best effort: a failure is reported, not
/// fatal, since every name is unique to the run.
async fn remove_topology(names: &Names) {
    let removed = async {
        let conn = lapin::Connection::connect(traffic::amqp(), Default::default()).await?;
        let ch = conn.create_channel().await?;
        let queues = [&names.queue, &names.dead]
            .into_iter()
            .chain(names.retries.iter().map(|(_, q)| q))
            .chain(names.results_queue.as_ref());
        for q in queues {
            ch.queue_delete(q.as_str().into(), Default::default())
                .await?;
        }
        for x in [&names.exchange, &names.results_exchange] {
            ch.exchange_delete(x.as_str().into(), Default::default())
                .await?;
        }
        conn.close(200, "ok".into()).await
    };
    match tokio::time::timeout(Duration::from_secs(30), removed).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("chaos: could not remove the run's queues: {e}"),
        Err(_) => eprintln!("chaos: removing the run's queues timed out"),
    }
}

impl World {
    async fn start(args: &Args, seed: u64) -> Result<World, String> {
        let tmp = tempfile::Builder::new()
            .prefix("rehost-chaos-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let (work, cleanup) = if args.keep {
            (tmp.keep(), None)
        } else {
            (tmp.path().to_path_buf(), Some(tmp))
        };
        let run = format!(
            "chaos{seed}x{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let broker = match args.cluster {
            true => Broker::cluster()?,
            false => Broker::single(),
        };
        traffic::use_broker(broker.amqp_url());
        let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
        let origin = Origin::start(OriginConfig::new(&media), ([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| format!("origin: {e}"))?;
        let tls_origin = https_origin(&media).await?;
        let proxy = Proxy::start(broker.address())
            .await
            .map_err(|e| format!("proxy: {e}"))?;
        let s3_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut s3 = s3_server(&work, s3_addr)?;
        s3.start()?;
        let settings = pairs(&run, s3_addr, &proxy);
        let config = load(&settings)?;
        let conn = lapin::Connection::connect(traffic::amqp(), Default::default())
            .await
            .map_err(|e| format!("broker: {e}"))?;
        topology::ensure(&conn, &Names::from_config(&config))
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close(200, "ok".into()).await;
        let mut workers = Vec::new();
        for i in 0..args.workers {
            let mut w = worker(&work, &settings, i)?;
            w.0.start()?;
            workers.push(w);
        }
        Ok(World {
            work,
            _cleanup: cleanup,
            run,
            origin,
            tls_origin,
            proxy,
            s3: Mutex::new(s3),
            s3_addr,
            workers: Mutex::new(workers),
            broker,
            config,
        })
    }

    fn names(&self) -> Names {
        Names::from_config(&self.config)
    }

    /// Waits until every worker's `/readyz` says 200.
    async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let addrs: Vec<SocketAddr> = lock(&self.workers).iter().map(|(_, a)| *a).collect();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        for addr in addrs {
            loop {
                let ok = http
                    .get(format!("http://{addr}/readyz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "worker {addr} not ready within {} s",
                        limit.as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    fn sample_memory(&self) {
        for (w, _) in lock(&self.workers).iter_mut() {
            w.sample();
        }
    }
}

/// The fixture media over HTTPS (the test CA's certificate for 127.0.0.1),
/// offering HTTP/2 by ALPN.
async fn https_origin(media: &Path) -> Result<Origin, String> {
    let tls_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls");
    let tls = Tls::from_files(
        &tls_dir.join("localhost.pem"),
        &tls_dir.join("localhost.key"),
        Alpn::H2AndHttp1,
    )?;
    let cfg = OriginConfig {
        tls: Some(tls),
        ..OriginConfig::new(media)
    };
    Origin::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("https origin: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn s3_server(work: &Path, addr: SocketAddr) -> Result<Restartable, String> {
    let program = sibling("s3_server")?;
    let args: Vec<String> = [
        "--root",
        &work.join("s3").display().to_string(),
        "--addr",
        &addr.to_string(),
        "--bucket",
        BUCKET,
        "--access-key",
        KEY,
        "--secret-key",
        SECRET,
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    Ok(Restartable::new(
        "s3",
        &program,
        &args,
        &[],
        work.join("s3.log"),
    ))
}

/// The workers' settings: short retry delays so transient faults end in
/// time, the broker through the proxy, the S3 server, loopback origins.
fn pairs(run: &str, s3: SocketAddr, proxy: &Proxy) -> Vec<(&'static str, String)> {
    vec![
        ("AMQP_URL", format!("amqp://guest:guest@{}/%2f", proxy.addr)),
        ("REHOST_QUEUE", format!("{run}.ingest")),
        ("REHOST_EXCHANGE", format!("{run}.media")),
        ("REHOST_RESULTS_EXCHANGE", format!("{run}.events")),
        ("REHOST_RESULTS_QUEUE", format!("{run}.results")),
        ("REHOST_RETRY_DELAYS", "1s,2s,4s".into()),
        ("REHOST_MAX_ATTEMPTS", MAX_ATTEMPTS.to_string()),
        ("REHOST_JOB_TIMEOUT_SECS", "120".into()),
        ("REHOST_SHUTDOWN_GRACE_SECS", "10".into()),
        ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32".into()),
        ("S3_BUCKET", BUCKET.into()),
        ("S3_ENDPOINT", format!("http://{s3}")),
        ("S3_ACCESS_KEY_ID", KEY.into()),
        ("S3_SECRET_ACCESS_KEY", SECRET.into()),
        ("PUBLIC_BASE_URL", PUBLIC.into()),
        // A fake base: nothing serves it.
        ("REHOST_PUBLIC_PROBE", "off".into()),
        // Every moov-at-end video takes faststart's three requests.
        ("REHOST_FASTSTART", "always".into()),
        ("RUST_LOG", "warn".into()),
        (
            "SSL_CERT_FILE",
            std::env::var("SSL_CERT_FILE").unwrap_or_default(),
        ),
    ]
}

fn load(settings: &[(&'static str, String)]) -> Result<Config, String> {
    let borrowed: Vec<(&'static str, &str)> =
        settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Config::load(&Raw::from_pairs(&borrowed)).map_err(|e| e.to_string())
}

fn worker(
    work: &Path,
    settings: &[(&'static str, String)],
    i: usize,
) -> Result<(Restartable, SocketAddr), String> {
    let program = sibling("rehost")?;
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut env: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    env.push(("REHOST_HTTP_ADDR".into(), addr.to_string()));
    let log = work.join(format!("worker{i}.log"));
    Ok((
        Restartable::new(
            &format!("worker{i}"),
            &program,
            &["worker".into()],
            &env,
            log,
        ),
        addr,
    ))
}

/// Publishes the planned jobs at the run's rate while faults are injected;
/// returns the jobs the broker confirmed, the faults by kind, and when the
/// last fault was undone.
async fn drive(
    world: &Arc<World>,
    args: &Args,
    seed: u64,
) -> (Vec<Planned>, BTreeMap<&'static str, usize>, Instant) {
    let (bursts_tx, bursts_rx) = mpsc::unbounded_channel();
    let until = Instant::now() + Duration::from_secs(args.duration_secs);
    let publishing = tokio::spawn(publish(world.clone(), args.clone(), seed, until, bursts_rx));
    let (faults, last) = inject(world, args, seed, until, bursts_tx).await;
    let published = publishing.await.unwrap_or_default();
    (published, faults, last)
}

async fn publish(
    world: Arc<World>,
    args: Args,
    seed: u64,
    until: Instant,
    mut bursts: mpsc::UnboundedReceiver<Vec<Planned>>,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let origins = [world.origin.url(""), world.tls_origin.url("")];
    let mut publisher = Publisher::new(&world.names().exchange);
    let gap = Duration::from_secs_f64(1.0 / args.jobs_per_sec.max(0.01));
    let mut published = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let origin = &origins[rng.random_range(0..origins.len())];
        let mut batch = vec![plan::job(&mut rng, &world.run, n, origin)];
        n += 1;
        while let Ok(b) = bursts.try_recv() {
            n += b.len();
            batch.extend(b);
        }
        for job in batch {
            if publisher.publish(&job.body, Duration::from_secs(120)).await {
                published.push(job);
            } else {
                eprintln!("chaos: could not publish {} within 120 s", job.id);
            }
        }
        world.sample_memory();
        tokio::time::sleep(gap).await;
    }
    published
}

/// Injects faults one at a time until `until`; each is undone before the next.
async fn inject(
    world: &Arc<World>,
    args: &Args,
    seed: u64,
    until: Instant,
    bursts: mpsc::UnboundedSender<Vec<Planned>>,
) -> (BTreeMap<&'static str, usize>, Instant) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
    let started = Instant::now();
    let mut last = started;
    let mut counts = BTreeMap::new();
    let mut burst_ids = 1_000_000;
    let gap = args.fault_gap_secs.max(1) as f64;
    loop {
        let wait = Duration::from_secs_f64(rng.random_range(gap..gap * 2.0));
        if Instant::now() + wait >= until {
            break;
        }
        tokio::time::sleep(wait).await;
        let fault = Fault::draw(&mut rng, world.broker.is_cluster());
        let hold = fault.hold(&mut rng);
        println!(
            "chaos: {:>6.1} s  {} ({:.1} s)",
            started.elapsed().as_secs_f64(),
            fault.name(),
            hold.as_secs_f64()
        );
        if fault == Fault::Burst {
            let origin = world.origin.url("");
            let _ = bursts.send(plan::burst(&mut rng, &world.run, burst_ids, 20, &origin));
            burst_ids += 20;
        } else {
            apply(world, fault, hold, &mut rng).await;
            last = Instant::now();
        }
        *counts.entry(fault.name()).or_insert(0) += 1;
    }
    (counts, last)
}

/// Applies one fault, holds it, undoes it.
async fn apply(world: &World, fault: Fault, hold: Duration, rng: &mut StdRng) {
    let w = world;
    let node = w.broker.pick(rng);
    match fault {
        Fault::ProxyCut => w.proxy.sever(),
        Fault::CloseAll => {
            blocking(|| w.broker.ctl(&node, &["close_all_connections", "chaos"]));
        }
        Fault::MemoryAlarm | Fault::AlarmThenCut => {
            blocking(|| w.broker.raise_alarm(&node));
            tokio::time::sleep(hold / 2).await;
            if fault == Fault::AlarmThenCut {
                w.proxy.sever();
            }
            tokio::time::sleep(hold / 2).await;
            blocking(|| w.broker.restore());
        }
        Fault::BrokerRestart => {
            blocking(|| w.broker.ctl(&node, &["stop_app"]));
            tokio::time::sleep(hold).await;
            blocking(|| w.broker.restore());
        }
        Fault::NodeKill | Fault::LeaderKill => {
            let n = match fault {
                Fault::LeaderKill => blocking(|| w.broker.leader(&w.names().queue)),
                _ => None,
            }
            .unwrap_or_else(|| rng.random_range(1..=3));
            println!("chaos:           node c{n} killed");
            blocking(|| w.broker.kill_node(n));
            tokio::time::sleep(hold).await;
            if !blocking(|| w.broker.restart_node(n)) {
                eprintln!("chaos: node c{n} did not restart");
            }
        }
        Fault::KillWorker => {
            let i = rng.random_range(0..lock(&w.workers).len());
            lock(&w.workers)[i].0.kill();
            tokio::time::sleep(hold).await;
            let _ = lock(&w.workers)[i].0.start();
        }
        Fault::StorageDown => {
            lock(&w.s3).kill();
            tokio::time::sleep(hold).await;
            let _ = lock(&w.s3).start();
        }
        Fault::OriginStall => {
            let stall = |on: bool| {
                for o in [&w.origin, &w.tls_origin] {
                    o.stats
                        .stalled
                        .store(on, std::sync::atomic::Ordering::SeqCst);
                }
            };
            stall(true);
            tokio::time::sleep(hold).await;
            stall(false);
        }
        Fault::Burst => {}
    }
}

/// Runs a broker command (seconds, for node restarts) without stalling the
/// runtime's other tasks (the run's publisher, proxy and origin).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Waits until every published job has a final result, or `limit`.
async fn settle(published: &[Planned], results: &Arc<Mutex<Results>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let open = {
            let r = lock(results);
            published
                .iter()
                .filter(|j| r.final_of(&j.id).is_none())
                .count()
        };
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The run's findings.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub outcomes: verify::Outcomes,
    pub kinds: BTreeMap<&'static str, usize>,
    pub faults: BTreeMap<&'static str, usize>,
    pub duplicate_results: usize,
    pub objects_checked: usize,
    pub bad_objects: Vec<String>,
    pub leftovers: Vec<String>,
    pub wedged_workers: usize,
    pub recovery_secs: f64,
    pub worker_peak_rss_mib: u64,
    pub worker_exit_codes: Vec<Option<i32>>,
}

async fn check(
    world: &World,
    published: &[Planned],
    results: &Arc<Mutex<Results>>,
    faults: &BTreeMap<&'static str, usize>,
    recovered: bool,
    recovery: Duration,
) -> Report {
    world.sample_memory();
    let exit_codes: Vec<Option<i32>> = lock(&world.workers)
        .iter_mut()
        .map(|(w, _)| w.stop(Duration::from_secs(20)))
        .collect();
    let peak = lock(&world.workers)
        .iter()
        .map(|(w, _)| w.peak_rss_kib)
        .max()
        .unwrap_or(0);
    let s3_client = s3_client(world.s3_addr);
    sweep(world).await;
    let leftovers = verify::leftovers(&s3_client, BUCKET).await;
    let results = std::mem::take(&mut *lock(results));
    let (checked, bad) =
        verify::stored_objects(&s3_client, BUCKET, PUBLIC, published, &results).await;
    Report {
        outcomes: verify::outcomes(published, &results, MAX_ATTEMPTS),
        kinds: verify::kinds(published),
        faults: faults.clone(),
        duplicate_results: results.repeats,
        objects_checked: checked,
        bad_objects: bad,
        leftovers,
        wedged_workers: usize::from(!recovered),
        recovery_secs: recovery.as_secs_f64(),
        worker_peak_rss_mib: peak / 1024,
        worker_exit_codes: exit_codes,
    }
}

/// The store's sweep with no age limit (every worker has stopped).
async fn sweep(world: &World) {
    let Some(store) = &world.config.store else {
        return;
    };
    match rehost::store::Store::open(store, &world.config).await {
        Ok(store) => match store.sweep(Duration::ZERO).await {
            Ok(s) => println!(
                "chaos: sweep removed {} markers or temp objects and {} uploads",
                s.temp_objects, s.uploads
            ),
            Err(e) => eprintln!("chaos: sweep failed: {e}"),
        },
        Err(e) => eprintln!("chaos: cannot open the store: {e}"),
    }
}

fn s3_client(addr: SocketAddr) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new("auto"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(KEY, SECRET, None, None, "chaos"))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

impl Report {
    pub fn passed(&self) -> bool {
        self.outcomes.lost.is_empty()
            && self.outcomes.wrong.is_empty()
            && self.bad_objects.is_empty()
            && self.leftovers.is_empty()
            && self.wedged_workers == 0
            && self.recovery_secs <= 60.0
            && self.worker_peak_rss_mib <= 256
    }

    pub fn table(&self) -> String {
        let o = &self.outcomes;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let mut t = String::new();
        t.push_str("| jobs | ready | failed as expected | gave up after retries | lost | wrong | duplicate results | objects checked | bad objects | leftovers | wedged workers | recovery s | worker peak RSS MiB |\n");
        t.push_str(
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            o.jobs,
            o.ready,
            o.failed_as_expected,
            o.gave_up_after_retries,
            o.lost.len(),
            o.wrong.len(),
            self.duplicate_results,
            self.objects_checked,
            self.bad_objects.len(),
            self.leftovers.len(),
            self.wedged_workers,
            self.recovery_secs,
            self.worker_peak_rss_mib
        ));
        t.push_str(&format!("\nfaults: {}\n", faults.join(", ")));
        for (what, list) in [
            ("lost", &o.lost),
            ("wrong", &o.wrong),
            ("bad object", &self.bad_objects),
            ("leftover", &self.leftovers),
        ] {
            for item in list.iter().take(20) {
                t.push_str(&format!("{what}: {item}\n"));
            }
        }
        t.push_str(if self.passed() {
            "\nchaos: PASS\n"
        } else {
            "\nchaos: FAIL\n"
        });
        t
    }

    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("summary.json"), json).map_err(|e| e.to_string())
    }
}
