//! One try of one job: every asset checked (and copied when re-hosting),
//! concurrently, and the job's outcome decided by the contract's precedence.
//!
//! - [`asset`]: what both paths share: the kind's limit, bounded reads (the
//!   questions asked of the bytes live in [`crate::media::check`]);
//! - [`hosted`]: hosted-only posts, a ranged read of a prefix per asset;
//! - [`byo`]: re-hosted posts, the whole asset streamed, hashed and stored.

mod asset;
mod byo;
mod faststart;
mod hosted;

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::{Limits, PlatformConfig};
use crate::error::{self, JobError};
use crate::fetch::Fetcher;
use crate::job::{Account, Job, JobKind, Media, SourceUrl};
use crate::media::image::meta::ImageMeta;
use crate::metrics::{METRICS, labels};
use crate::normalize::Normalizer;
use crate::profiles::facts::Facts;
use crate::profiles::verdict::{self, AccountVerdict};
use crate::result::{AssetOut, MediaOut, Outcome};
use crate::store::Store;

pub use judge::unfit_violation;

mod judge;

/// Assets of one job fetched at once: all of a slideshow's, so their
/// latencies overlap. The per-host connection cap and the image buffer
/// budget bound what this means for origins and memory.
pub const ASSET_CONCURRENCY: usize = crate::job::MAX_SLIDESHOW_URLS;

/// Bytes of image bodies held in memory at once, across all jobs. A fetch
/// reserves its declared size (or the image limit when undeclared) before it
/// reads, so many large slideshows at once queue instead of exhausting memory.
pub use crate::bounds::IMAGE_BUFFER_BUDGET;

/// Checks and copies assets. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    fetcher: Fetcher,
    store: Option<Store>,
    limits: Limits,
    /// Permits are KiB of image buffer; see [`IMAGE_BUFFER_BUDGET`].
    buffers: Arc<Semaphore>,
    /// The budget's size in KiB: no single reservation asks for more.
    buffer_kib: usize,
    platform: PlatformConfig,
    normalizer: Normalizer,
}

/// One asset done: what the result reports, and what the profiles judge.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub out: AssetOut,
    /// The asset as stored (or, hosted, as read).
    pub facts: Option<Facts>,
    /// An image's metadata as stored (or as its prefix showed).
    pub meta: Option<ImageMeta>,
    /// Accounts (job indices) whose needed re-encode could not be done
    /// within the decode budget.
    pub unfit: Vec<usize>,
    /// Why a moov-at-end video was stored as it is (its `moov_first`
    /// violation then says so).
    pub faststart_skipped: Option<crate::media::faststart::Skip>,
}

/// What one asset contributes to the job.
pub type AssetResult = Result<Checked, JobError>;

impl Ingestor {
    /// `store` is needed only for jobs that re-host.
    pub fn new(
        fetcher: Fetcher,
        store: Option<Store>,
        limits: Limits,
        platform: PlatformConfig,
    ) -> Self {
        let budget = IMAGE_BUFFER_BUDGET.max(limits.max_image_bytes * 2) / 1024;
        let buffer_kib = usize::try_from(budget)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Ingestor {
            fetcher,
            store,
            limits,
            buffers: Arc::new(Semaphore::new(buffer_kib)),
            buffer_kib,
            normalizer: Normalizer::new(platform.normalize),
            platform,
        }
    }

    /// The platform settings jobs are judged by.
    pub fn platform(&self) -> &PlatformConfig {
        &self.platform
    }

    /// Every account `unchecked`: the verdicts of a job that failed its
    /// base checks, retried or was not run.
    pub fn unchecked(&self, accounts: &[Account]) -> Vec<AccountVerdict> {
        verdict::unchecked(accounts, &self.platform.profiles)
    }

    /// Runs one try of `job` (no deadline here: the caller sets it).
    pub async fn run(&self, job: &Job) -> Outcome {
        match self.assets(job).await {
            Ok(checked) => judge::outcome(self, job, checked),
            Err(error) => Outcome::Failed {
                error,
                accounts: self.unchecked(&job.accounts),
            },
        }
    }

    /// Every asset checked (and stored, when re-hosting), or the failure
    /// the job reports.
    async fn assets(&self, job: &Job) -> Result<Vec<Checked>, JobError> {
        let rehost = job.rehosts();
        let store = match (&self.store, rehost) {
            (Some(s), true) => Some(s),
            (None, true) => {
                return Err(error::internal(
                    "this job re-hosts but no store is configured",
                ));
            }
            (_, false) => None,
        };
        let kind = job.media.kind();
        let sources = job.media.sources();
        let shapers = judge::shapers(self, job);
        // Bounded concurrency without a closure-built stream (whose borrowed
        // futures defeat rustc's `Send` inference in spawned tasks).
        let mut pending = sources.iter().enumerate();
        let mut running = FuturesUnordered::new();
        let mut results: Vec<Option<AssetResult>> = vec![None; sources.len()];
        loop {
            while running.len() < ASSET_CONCURRENCY {
                let Some((index, src)) = pending.next() else {
                    break;
                };
                let asset = Asset {
                    workspace: &job.ids.workspace_id,
                    src,
                    kind,
                    store,
                    shapers: &shapers,
                };
                running.push(self.indexed(index, asset));
            }
            let Some((index, result)) = running.next().await else {
                break;
            };
            if let Err(e) = &result {
                tracing::info!(index, code = %e.code, message = %e.message, "asset failed");
            }
            results[index] = Some(result.map_err(|e| e.at(index)).map(|mut c| {
                c.out.index = index;
                c
            }));
            if let Some(err) = decided_failure(&results) {
                // Dropping the futures cancels the other fetches and aborts
                // their uploads.
                return Err(err);
            }
        }
        match results.into_iter().collect::<Option<Result<Vec<_>, _>>>() {
            Some(r) => r,
            None => Err(error::internal("an asset produced no result")),
        }
    }

    /// Confirms one URL the way a hosted-only job does (a prefix read), as
    /// an asset of a job of `kind`, or (`None`) of the kind its bytes say.
    ///
    /// # Errors
    /// The contract's error for the asset.
    pub async fn check_hosted(&self, src: &SourceUrl, kind: Option<JobKind>) -> AssetResult {
        hosted::check(self, src, kind).await
    }

    async fn indexed(&self, index: usize, asset: Asset<'_>) -> (usize, AssetResult) {
        let span = tracing::info_span!("asset", index, url = %asset.src.url);
        (index, self.asset(asset).instrument(span).await)
    }

    async fn asset(&self, a: Asset<'_>) -> AssetResult {
        let started = std::time::Instant::now();
        let (path, result) = match a.store {
            Some(store) => ("byo", byo::ingest(self, store, &a).await),
            None => ("hosted", hosted::check(self, a.src, Some(a.kind)).await),
        };
        METRICS
            .fetch_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
        METRICS
            .assets
            .get_or_create(&labels(&[("path", path), ("outcome", outcome)]))
            .inc();
        result
    }
}

/// One asset of a job, with what its path needs.
pub(crate) struct Asset<'a> {
    pub workspace: &'a str,
    pub src: &'a SourceUrl,
    pub kind: JobKind,
    pub store: Option<&'a Store>,
    /// The accounts re-hosted images are normalised for.
    pub shapers: &'a [(usize, crate::profiles::Profile)],
}

/// The media object of a ready job: the input's shape, the assets' URLs.
fn media_out(media: &Media, assets: &[AssetOut]) -> MediaOut {
    match media {
        Media::Video(_) => MediaOut::Video {
            url: assets.first().map(|a| a.url.clone()).unwrap_or_default(),
        },
        Media::Slideshow(_) => MediaOut::Slideshow {
            urls: assets.iter().map(|a| a.url.clone()).collect(),
        },
    }
}

/// The failure the job reports, once it is certain: a permanent failure at
/// index `p` decides the job when every asset before `p` has finished (none
/// of them can beat it any more); otherwise every asset must finish, and the
/// lowest retryable failure is reported.
fn decided_failure(results: &[Option<AssetResult>]) -> Option<JobError> {
    for r in results {
        match r {
            None => return None,
            Some(Err(e)) if !e.retryable() => return Some(e.clone()),
            Some(_) => {}
        }
    }
    // Everything finished and nothing failed permanently.
    results
        .iter()
        .filter_map(|r| r.as_ref().and_then(|r| r.as_ref().err()))
        .min_by_key(|e| e.precedence())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn fail(code: ErrorCode, i: usize) -> Option<AssetResult> {
        Some(Err(JobError::new(code, "x").at(i)))
    }

    fn ok() -> Option<AssetResult> {
        Some(Ok(Checked::default()))
    }

    #[test]
    fn decision_waits_for_lower_indices() {
        use ErrorCode::{NotFound, Unreachable};
        // A permanent failure at 2 is not final while 1 is running.
        assert_eq!(decided_failure(&[ok(), None, fail(NotFound, 2)]), None);
        // ... and is once everything before it finished.
        let e = decided_failure(&[ok(), fail(Unreachable, 1), fail(NotFound, 2), None])
            .expect("decided");
        assert_eq!((e.code, e.asset_index), (NotFound, Some(2)));
        // Retryable failures wait for everything.
        assert_eq!(decided_failure(&[fail(Unreachable, 0), None]), None);
        let e =
            decided_failure(&[ok(), fail(Unreachable, 1), fail(Unreachable, 2)]).expect("decided");
        assert_eq!(e.asset_index, Some(1));
        assert_eq!(decided_failure(&[ok(), ok()]), None);
    }
}
