//! `rehost loadtest`: publish a mix of fixture jobs to running workers (or
//! workers it spawns), collect every result by `job_id`, and report
//! throughput, latency and losses.
//!
//! - [`origin`](crate::fixture_origin) serves `fixtures/media` on loopback with
//!   distinct bytes per request path (dedup cannot short-circuit the run),
//!   optional latency and bandwidth shaping;
//! - [`procs`]: spawned workers, and their peak memory and CPU from `/proc`;
//! - [`report`]: the summary, its JSON and the SVG charts.

mod procs;
pub mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde_json::json;

use crate::broker::{self, Names, headers::short, topology};
use crate::config::Config;
use crate::fixture_origin::{MediaSource, Origin, OriginConfig};
use crate::result::{ResultMessage, Status};
use report::{JobRecord, Summary};

/// What to run: the `rehost loadtest` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Slideshow jobs to publish.
    #[arg(long, default_value_t = 100)]
    pub jobs: usize,
    /// Images per slideshow (fixture JPEGs of about 200 KB, distinct bytes each).
    #[arg(long, default_value_t = 10)]
    pub images: usize,
    /// Video jobs to publish besides the slideshows.
    #[arg(long, default_value_t = 0)]
    pub videos: usize,
    /// Size of each generated video, MiB.
    #[arg(long, default_value_t = 8)]
    pub video_mib: u64,
    /// Share of slideshow jobs that target hosted accounts only (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub hosted_ratio: f64,
    /// Jobs published per second; 0 for as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Latency the loopback origin adds to every answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub origin_latency_ms: u64,
    /// Bandwidth cap per origin response, megabits per second.
    #[arg(long)]
    pub origin_mbps: Option<f64>,
    /// Start this many `rehost worker` processes (0: use running workers).
    #[arg(long, default_value_t = 0)]
    pub spawn_workers: usize,
    /// Give up waiting for results after this many seconds (missing ones are lost).
    #[arg(long, default_value_t = 600)]
    pub deadline_secs: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write summary.json, throughput.svg and latency.svg into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Directory of media the origin serves (default: the media built into rehost).
    #[arg(long)]
    pub media: Option<PathBuf>,
}

/// One job of the mix.
struct Planned {
    id: String,
    body: Vec<u8>,
    images: usize,
}

fn plan(opts: &Options, origin: &Origin, run: &str) -> Vec<Planned> {
    let pictures = ["photo.jpg", "portrait.jpg"];
    let hosted_every = if opts.hosted_ratio > 0.0 {
        (1.0 / opts.hosted_ratio).round().max(1.0) as usize
    } else {
        0
    };
    let mut out = Vec::new();
    for j in 0..opts.jobs {
        let hosted = hosted_every > 0 && j % hosted_every == 0;
        let urls: Vec<String> = (0..opts.images)
            .map(|i| {
                origin.url(&format!(
                    "{}?lt={run}-{j}-{i}",
                    pictures[(j + i) % pictures.len()]
                ))
            })
            .collect();
        let id = format!("lt-{run}-{j}");
        out.push(Planned {
            body: job_body(&id, hosted, json!({"type": "slideshow", "urls": urls})),
            id,
            images: opts.images,
        });
    }
    for v in 0..opts.videos {
        let id = format!("lt-{run}-v{v}");
        let url = origin.url(&format!(
            "gen/{id}.mp4?mib={}&seed={}",
            opts.video_mib,
            v + 1
        ));
        out.push(Planned {
            body: job_body(&id, false, json!({"type": "video", "url": url})),
            id,
            images: 0,
        });
    }
    out
}

fn job_body(id: &str, hosted: bool, media: serde_json::Value) -> Vec<u8> {
    let kind = if hosted { "hosted" } else { "byo" };
    serde_json::to_vec(&json!({
        "job_id": id,
        "post_id": format!("post-{id}"),
        "workspace_id": "ws_loadtest",
        "accounts": [{"id": "lt", "platform": "tiktok", "type": kind}],
        "media": media,
    }))
    .unwrap_or_default()
}

/// Runs the load test; returns whether every job was ready (none lost,
/// none failed: every job of the mix is meant to be ready).
///
/// # Errors
/// Start-up failures (origin, broker, spawned workers).
pub async fn run(config: &Config, opts: &Options) -> anyhow::Result<bool> {
    let origin = start_origin(opts).await?;
    if let Some(cfg) = &config.store {
        let store = crate::store::Store::open(cfg, config).await?;
        crate::public::report(&store, config.public.probe).await;
    }
    let names = Names::from_config(config);
    let conn = broker::connect(&config.broker.amqp_url).await?;
    topology::ensure(&conn, &names).await?;
    let mut workers = procs::Workers::spawn(opts.spawn_workers).await?;
    if opts.spawn_workers == 0 {
        eprintln!(
            "loadtest: publishing to {:?}; running workers must allow the loopback origin (REHOST_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32)",
            names.queue
        );
    }
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let results = results_consumer(&channel, &names).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let planned = plan(opts, &origin, &run_id);
    let started = Instant::now();
    let (publisher, sent) = spawn_publisher(Arc::new(channel), &names, planned, opts.rate, started);
    let total = opts.jobs + opts.videos;
    let deadline = started + Duration::from_secs(opts.deadline_secs);
    let records = collect(results, sent, total, deadline).await;
    let elapsed = started.elapsed();
    publisher.abort();
    let usage = workers.stop().await;
    let origin_totals = (origin.stats.bytes_sent(), origin.stats.connections_peak());
    let summary = Summary::build(&records, total, elapsed, started, usage, origin_totals);
    show(opts, &summary)?;
    let _ = conn.close(200, short("done")).await;
    Ok(summary.passed())
}

/// The loopback origin: the built-in media, or `--media`, with distinct
/// bytes per path.
async fn start_origin(opts: &Options) -> anyhow::Result<Origin> {
    let media = MediaSource::dir_or_embedded(opts.media.as_deref()).map_err(anyhow::Error::msg)?;
    let cfg = OriginConfig {
        unique: true,
        latency: Duration::from_millis(opts.origin_latency_ms),
        bytes_per_sec: opts.origin_mbps.map(|m| (m * 1_000_000.0 / 8.0) as u64),
        ..OriginConfig::of(media)
    };
    Ok(Origin::start(cfg, ([127, 0, 0, 1], 0).into()).await?)
}

/// A private queue bound to every result.
async fn results_consumer(
    channel: &lapin::Channel,
    names: &Names,
) -> anyhow::Result<lapin::Consumer> {
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let q = channel
        .queue_declare(short(""), exclusive, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            q.name().clone(),
            short(&names.results_exchange),
            short("#"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    Ok(channel
        .basic_consume(
            q.name().clone(),
            short("loadtest"),
            no_ack,
            FieldTable::default(),
        )
        .await?)
}

type Sent = tokio::sync::mpsc::UnboundedReceiver<(String, usize, Instant)>;

/// Publishes the plan on a task of its own, paced; says when each was sent.
fn spawn_publisher(
    ch: Arc<lapin::Channel>,
    names: &Names,
    planned: Vec<Planned>,
    rate: f64,
    started: Instant,
) -> (tokio::task::JoinHandle<anyhow::Result<()>>, Sent) {
    let (sent_tx, sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let (exchange, routing_key) = (names.exchange.clone(), names.routing_key.clone());
    let task = tokio::spawn(async move {
        for (n, p) in planned.into_iter().enumerate() {
            if rate > 0.0 {
                let due = started + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(short(&p.id))
                .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
            let options = BasicPublishOptions::default();
            let route = (short(&exchange), short(&routing_key));
            ch.basic_publish(route.0, route.1, options, &p.body, props)
                .await?
                .await?;
            let _ = sent_tx.send((p.id, p.images, Instant::now()));
        }
        anyhow::Ok(())
    });
    (task, sent_rx)
}

/// Reads results until every job has a final one or the deadline passes.
async fn collect(
    mut results: lapin::Consumer,
    mut sent: Sent,
    total: usize,
    deadline: Instant,
) -> HashMap<String, JobRecord> {
    let progress = report::progress(total);
    let mut records: HashMap<String, JobRecord> = HashMap::new();
    let mut done = 0usize;
    while done < total && Instant::now() < deadline {
        tokio::select! {
            Some((id, images, at)) = sent.recv() => {
                records.entry(id).or_default().sent(images, at);
            }
            next = tokio::time::timeout_at(deadline.into(), results.next()) => {
                let Ok(Some(Ok(d))) = next else { break };
                let Ok(r) = serde_json::from_slice::<ResultMessage>(&d.data) else { continue };
                let rec = records.entry(r.job_id.clone()).or_default();
                if r.status != Status::Retry && rec.finish(&r, Instant::now()) {
                    done += 1;
                    progress.inc(1);
                }
            }
        }
    }
    progress.finish_and_clear();
    while let Ok((id, images, at)) = sent.try_recv() {
        records.entry(id).or_default().sent(images, at);
    }
    records
}

/// Prints the summary (text or JSON) and writes the report.
fn show(opts: &Options, summary: &Summary) -> anyhow::Result<()> {
    if opts.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        println!("{}", summary.text());
    }
    if let Some(why) = summary.verdict() {
        eprintln!("loadtest: {why}");
    }
    if let Some(dir) = &opts.report {
        report::write(dir, summary)?;
        eprintln!("loadtest: report written to {}", dir.display());
    }
    Ok(())
}
