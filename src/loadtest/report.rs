//! The load test's numbers: per-job records, the summary (text and JSON),
//! a progress bar, and SVG charts of throughput and latency.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plotters::prelude::*;
use serde::Serialize;

use super::procs::Usage;
use crate::result::{ResultMessage, Status};

/// What happened to one job.
#[derive(Debug, Default, Clone)]
pub struct JobRecord {
    images: usize,
    sent_at: Option<Instant>,
    finished_at: Option<Instant>,
    outcome: Option<String>,
    bytes: u64,
}

impl JobRecord {
    pub fn sent(&mut self, images: usize, at: Instant) {
        self.images = images;
        self.sent_at = Some(at);
    }

    /// Records the first final result; returns whether this was it.
    pub fn finish(&mut self, r: &ResultMessage, at: Instant) -> bool {
        if self.finished_at.is_some() {
            return false;
        }
        self.finished_at = Some(at);
        self.outcome = Some(match (&r.status, &r.error) {
            (Status::Ready, _) => "ready".into(),
            (s, Some(e)) => format!("{}:{}", s.as_str(), e.code),
            (s, None) => s.as_str().into(),
        });
        self.bytes = r.assets.iter().flatten().filter_map(|a| a.bytes).sum();
        true
    }
}

/// The run, summarised. `jobs`, `ready`, `failed`, `lost`, `jobs_per_sec`,
/// `images_per_sec` and the percentiles are the stable JSON fields.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub jobs: usize,
    pub ready: usize,
    pub failed: usize,
    /// Jobs meant to be ready that failed (every job of the mix is).
    pub failed_unexpectedly: usize,
    pub lost: usize,
    pub elapsed_s: f64,
    pub jobs_per_sec: f64,
    pub images: usize,
    pub images_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub outcomes: BTreeMap<String, usize>,
    pub origin_bytes_sent: u64,
    /// Most connections the load tester's origin had open at once.
    pub origin_connections_peak: u64,
    pub workers: Usage,
    /// Worker CPU milliseconds per image (spawned workers only).
    pub cpu_ms_per_image: Option<f64>,
    #[serde(skip)]
    latencies_ms: Vec<f64>,
    /// Seconds since start at which each job finished.
    #[serde(skip)]
    finish_times_s: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl Summary {
    pub fn build(
        records: &HashMap<String, JobRecord>,
        total: usize,
        elapsed: Duration,
        started: Instant,
        workers: Usage,
        origin: (u64, u64),
    ) -> Summary {
        let (origin_bytes_sent, origin_connections_peak) = origin;
        let finished: Vec<&JobRecord> = records
            .values()
            .filter(|r| r.finished_at.is_some())
            .collect();
        let mut latencies_ms: Vec<f64> = finished
            .iter()
            .filter_map(|r| Some(r.finished_at?.duration_since(r.sent_at?).as_secs_f64() * 1000.0))
            .collect();
        latencies_ms.sort_by(f64::total_cmp);
        let mut finish_times_s: Vec<f64> = finished
            .iter()
            .filter_map(|r| Some(r.finished_at?.duration_since(started).as_secs_f64()))
            .collect();
        finish_times_s.sort_by(f64::total_cmp);
        let mut outcomes = BTreeMap::new();
        for r in &finished {
            *outcomes
                .entry(r.outcome.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
        let ready = outcomes.get("ready").copied().unwrap_or(0);
        let secs = elapsed.as_secs_f64().max(1e-9);
        let images: usize = finished
            .iter()
            .filter(|r| r.outcome.as_deref() == Some("ready"))
            .map(|r| r.images)
            .sum();
        let bytes: u64 = finished.iter().map(|r| r.bytes).sum();
        let cpu_ms_per_image = workers
            .cpu_seconds
            .filter(|_| images > 0)
            .map(|c| c * 1000.0 / images as f64);
        Summary {
            jobs: total,
            ready,
            failed: finished.len() - ready,
            failed_unexpectedly: finished.len() - ready,
            lost: total - finished.len(),
            elapsed_s: secs,
            jobs_per_sec: finished.len() as f64 / secs,
            images,
            images_per_sec: images as f64 / secs,
            mb_per_sec: bytes as f64 / 1e6 / secs,
            p50_ms: percentile(&latencies_ms, 50.0),
            p95_ms: percentile(&latencies_ms, 95.0),
            p99_ms: percentile(&latencies_ms, 99.0),
            max_ms: latencies_ms.last().copied().unwrap_or(0.0),
            outcomes,
            origin_bytes_sent,
            origin_connections_peak,
            workers,
            cpu_ms_per_image,
            latencies_ms,
            finish_times_s,
        }
    }

    /// The human-readable report.
    /// Whether the run measured what it meant to: every job ready.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.failed_unexpectedly == 0 && self.ready > 0
    }

    /// Why the run did not pass, if it did not.
    pub fn verdict(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let failures: Vec<String> = self
            .outcomes
            .iter()
            .filter(|(o, _)| o.as_str() != "ready")
            .map(|(o, n)| format!("{o} x{n}"))
            .collect();
        Some(format!(
            "FAILED: {} of {} jobs ready, {} failed ({}), {} lost",
            self.ready,
            self.jobs,
            self.failed_unexpectedly,
            if failures.is_empty() {
                "-".into()
            } else {
                failures.join(", ")
            },
            self.lost
        ))
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "jobs {}  ready {}  failed {}  LOST {}\n\
             elapsed {:.1} s  {:.1} jobs/s  {:.1} images/s  {:.1} MB/s\n\
             publish-to-result latency  p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  max {:.0} ms\n",
            self.jobs,
            self.ready,
            self.failed,
            self.lost,
            self.elapsed_s,
            self.jobs_per_sec,
            self.images_per_sec,
            self.mb_per_sec,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
        );
        for (outcome, n) in &self.outcomes {
            s.push_str(&format!("  {outcome}: {n}\n"));
        }
        if self.workers.workers > 0 {
            s.push_str(&format!(
                "spawned workers {}  peak RSS {} MiB  CPU {} s  ({} ms per image)\n",
                self.workers.workers,
                self.workers
                    .peak_rss_mib
                    .map_or("?".into(), |m| format!("{m:.1}")),
                self.workers
                    .cpu_seconds
                    .map_or("?".into(), |c| format!("{c:.2}")),
                self.cpu_ms_per_image
                    .map_or("?".into(), |c| format!("{c:.2}")),
            ));
        }
        s.push_str(&format!(
            "origin sent {} bytes, at most {} connections at once",
            self.origin_bytes_sent, self.origin_connections_peak
        ));
        s
    }
}

/// A progress bar on stderr; hidden when stderr is not a terminal.
pub fn progress(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} jobs  {per_sec}  ETA {eta}")
    {
        bar.set_style(style);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// Writes `summary.json`, `throughput.svg` and `latency.svg` into `dir`.
///
/// # Errors
/// File system or drawing failures.
pub fn write(dir: &Path, s: &Summary) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(s)?)?;
    throughput_chart(&dir.join("throughput.svg"), s)?;
    latency_chart(&dir.join("latency.svg"), s)?;
    Ok(())
}

fn throughput_chart(path: &Path, s: &Summary) -> anyhow::Result<()> {
    // Up to 60 buckets over the run, none shorter than 100 ms.
    let end = s.finish_times_s.last().copied().unwrap_or(1.0).max(0.1);
    let width = (end / 60.0).max(0.1);
    let buckets = (end / width).ceil() as usize + 1;
    let mut counts = vec![0u32; buckets];
    for t in &s.finish_times_s {
        counts[((t / width) as usize).min(buckets - 1)] += 1;
    }
    let rates: Vec<f64> = counts.iter().map(|n| f64::from(*n) / width).collect();
    let peak = rates.iter().copied().fold(1.0, f64::max);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Jobs finished per second ({} jobs, {:.1} jobs/s overall)",
                s.jobs, s.jobs_per_sec
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..buckets as f64 * width, 0f64..peak * 1.2)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("jobs / s")
        .draw()?;
    chart.draw_series(rates.iter().enumerate().map(|(i, r)| {
        let x = i as f64 * width;
        Rectangle::new([(x, 0.0), (x + width, *r)], BLUE.mix(0.6).filled())
    }))?;
    root.present()?;
    Ok(())
}

fn latency_chart(path: &Path, s: &Summary) -> anyhow::Result<()> {
    let n = s.latencies_ms.len().max(1);
    let max = s.max_ms.max(1.0);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Publish-to-result latency (p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms)",
                s.p50_ms, s.p95_ms, s.p99_ms
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..max * 1.05, 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("% of jobs at or below")
        .draw()?;
    chart.draw_series(LineSeries::new(
        s.latencies_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| (*ms, (i + 1) as f64 * 100.0 / n as f64)),
        RED.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}
