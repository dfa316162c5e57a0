//! Re-hosted posts: every asset downloaded whole, hashed and stored. Images
//! are held in memory (bounded by the image limit and a shared buffer
//! budget); videos stream straight into the store's upload, so memory does
//! not grow with their size.

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;

use super::asset::{PREFIX_BYTES, append, fill, max_bytes, video_facts};
use super::{Asset, AssetResult, Checked, Ingestor, faststart};
use crate::error::{self, JobError};
use crate::fetch::Body;
use crate::job::JobKind;
use crate::media::check::{self, Kind};
use crate::media::image::{Dimensions, meta};
use crate::media::video::VideoProbe;
use crate::media::{Format, MediaInfo, Need};
use crate::metrics::METRICS;
use crate::normalize::Source;
use crate::profiles::facts::Facts;
use crate::result::{AssetOut, NormalizedOut};
use crate::store::{Content, Store, Stored, Upload};

pub(super) async fn ingest(ing: &Ingestor, store: &Store, a: &Asset<'_>) -> AssetResult {
    let max = max_bytes(&ing.limits, a.kind);
    match a.kind {
        JobKind::Slideshow => {
            // Memory first: a wait for it must not run the asset's clock,
            // which starts with its request (regression test:
            // `it::byo::an_images_wait_for_memory_is_not_charged_to_it`).
            let mut budget = reserve(ing, max).await?;
            let opened = ing.fetcher.open(&a.src.url, None, max).await?;
            let declared = opened.content_length;
            if let Some(d) = declared {
                drop(budget.split(budget.num_permits().saturating_sub(kib(d))));
            }
            image(ing, store, a, opened.body, declared).await
        }
        JobKind::Video => {
            let stored = match faststart::wanted(ing, a) {
                Some(want) => faststart::ingest(ing, store, a, want).await?,
                None => {
                    let opened = ing.fetcher.open(&a.src.url, None, max).await?;
                    let declared = opened.content_length;
                    let (record, info) = video(store, a.workspace, opened.body, declared).await?;
                    faststart::Stored {
                        record,
                        info,
                        normalized: None,
                        skipped: None,
                    }
                }
            };
            let r = stored.record;
            let facts = video_facts(r.format, &stored.info, Some(r.bytes));
            let mut out = r.asset(&a.src.raw, stored.info);
            out.normalized = stored.normalized;
            Ok(Checked {
                out,
                facts: Some(Facts::Video(facts)),
                faststart_skipped: stored.skipped,
                ..Checked::default()
            })
        }
    }
}

/// KiB permits of the image buffer budget for `bytes`.
fn kib(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(usize::MAX)
}

/// Reserves `bytes` of the image buffer budget (at most the whole budget),
/// waiting while other images (or `moov` boxes) hold it.
pub(super) async fn reserve(ing: &Ingestor, bytes: u64) -> Result<OwnedSemaphorePermit, JobError> {
    let permits = u32::try_from(kib(bytes).min(ing.buffer_kib)).unwrap_or(u32::MAX);
    ing.buffers
        .clone()
        .acquire_many_owned(permits)
        .await
        .map_err(|_| error::internal("image buffer budget closed"))
}

/// Reads a whole image into memory, checks it, normalises it for the
/// post's accounts, and stores it (its buffer budget is held by the caller).
async fn image(
    ing: &Ingestor,
    store: &Store,
    a: &Asset<'_>,
    body: Body,
    declared: Option<u64>,
) -> AssetResult {
    let (format, dims, buf) = read_image(ing, body, declared).await?;
    let source = Source {
        format,
        dims,
        meta: meta::scan(format, &buf),
        bytes: buf,
    };
    let source_sha = hex::encode(Sha256::digest(&source.bytes));
    let from = Origin::of(&source, source_sha);
    let shapers: Vec<_> = a.shapers.iter().map(|(i, p)| (*i, p)).collect();
    let n = ing.normalizer.apply(source, &shapers).await?;
    let facts = n.facts();
    let sha = if n.steps.is_empty() {
        from.sha256.clone()
    } else {
        hex::encode(Sha256::digest(&n.bytes))
    };
    let bytes = n.bytes.len() as u64;
    let started = Instant::now();
    let content = Content {
        workspace: a.workspace,
        sha256: &sha,
        format: n.format,
    };
    let stored = store.put(content, Bytes::from(n.bytes)).await?;
    let info = MediaInfo {
        width: Some(facts.width),
        height: Some(facts.height),
        ..MediaInfo::default()
    };
    let mut out = Record::new(stored, sha, bytes, n.format, started).asset(&a.src.raw, info);
    out.normalized = (!n.steps.is_empty()).then(|| from.described(&n.steps));
    Ok(Checked {
        out,
        facts: Some(Facts::Image(facts)),
        meta: Some(n.meta),
        unfit: n.unfit,
        faststart_skipped: None,
    })
}

/// The source of a normalised image, as results describe it.
struct Origin {
    sha256: String,
    bytes: u64,
    format: Format,
    width: u32,
    height: u32,
}

impl Origin {
    fn of(src: &Source, sha256: String) -> Self {
        let f = src.facts();
        Origin {
            sha256,
            bytes: src.bytes.len() as u64,
            format: src.format,
            width: f.width,
            height: f.height,
        }
    }

    fn described(&self, steps: &[crate::normalize::Step]) -> NormalizedOut {
        NormalizedOut {
            steps: steps.iter().map(|s| s.as_str().to_string()).collect(),
            source_sha256: self.sha256.clone(),
            source_bytes: self.bytes,
            source_content_type: self.format.content_type().into(),
            source_width: self.width,
            source_height: self.height,
        }
    }
}

/// Reads a whole image body, checking its format, header (the pixel limit)
/// and structure on the way.
async fn read_image(
    ing: &Ingestor,
    mut body: Body,
    declared: Option<u64>,
) -> Result<(Format, Dimensions, Vec<u8>), JobError> {
    let mut buf = Vec::with_capacity(
        usize::try_from(declared.unwrap_or(0))
            .unwrap_or(0)
            .max(PREFIX_BYTES),
    );
    let mut eof = fill(&mut body, &mut buf, PREFIX_BYTES).await?;
    let format = check::expect_format(&buf, Kind::Image)?;
    let dims = loop {
        match check::image_header(format, &buf, ing.limits.max_image_pixels)? {
            Need::Done(d) => break d,
            Need::More(_) if eof => return Err(check::truncated_header(format).into()),
            Need::More(need) => {
                eof = fill(
                    &mut body,
                    &mut buf,
                    usize::try_from(need).unwrap_or(usize::MAX),
                )
                .await?
            }
        }
    };
    if !eof {
        while let Some(chunk) = body.chunk().await? {
            append(&mut buf, &chunk, body.max_bytes());
        }
    }
    check::image_complete(format, &buf)?;
    Ok((format, dims, buf))
}

/// Streams a video into the store while probing and hashing it.
async fn video(
    store: &Store,
    workspace: &str,
    mut body: Body,
    declared: Option<u64>,
) -> Result<(Record, MediaInfo), JobError> {
    let mut head = Vec::with_capacity(PREFIX_BYTES);
    let eof = fill(&mut body, &mut head, PREFIX_BYTES).await?;
    let format = check::expect_format(&head, Kind::Video)?;
    let from = Streamed {
        body,
        head,
        eof,
        declared,
    };
    store_stream(store, workspace, format, from).await
}

/// A video's response with its first bytes already read.
pub(super) struct Streamed {
    pub body: Body,
    pub head: Vec<u8>,
    /// The body ended within `head`.
    pub eof: bool,
    /// The whole file's declared size.
    pub declared: Option<u64>,
}

/// Streams a video whose first bytes (`head`) were read already into the
/// store while probing and hashing it.
pub(super) async fn store_stream(
    store: &Store,
    workspace: &str,
    format: Format,
    from: Streamed,
) -> Result<(Record, MediaInfo), JobError> {
    let Streamed {
        mut body,
        head,
        eof,
        declared,
    } = from;
    let mut upload = store.begin(workspace, format, declared).await?;
    let probe = VideoProbe::new(format);
    let streamed = stream(&mut upload, &mut body, head, eof, probe).await;
    let (sha, bytes, info) = match streamed {
        Ok(v) => v,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let started = Instant::now();
    let stored = upload.finish(&sha).await?;
    Ok((Record::new(stored, sha, bytes, format, started), info))
}

/// An asset written (or found already there), with what the result reports.
pub(super) struct Record {
    stored: Stored,
    sha: String,
    bytes: u64,
    format: Format,
    /// When the final store write began (for the store latency metric).
    started: Instant,
}

impl Record {
    pub(super) fn new(
        stored: Stored,
        sha: String,
        bytes: u64,
        format: Format,
        started: Instant,
    ) -> Self {
        Record {
            stored,
            sha,
            bytes,
            format,
            started,
        }
    }

    /// Records the store metrics and logs, and builds the asset's record.
    pub(super) fn asset(self, source_url: &str, info: MediaInfo) -> AssetOut {
        METRICS
            .store_seconds
            .observe(self.started.elapsed().as_secs_f64());
        if self.stored.new {
            METRICS.bytes_stored.inc_by(self.bytes);
        }
        tracing::info!(key = %self.stored.key, bytes = self.bytes, stored = self.stored.new, "asset re-hosted");
        AssetOut {
            index: 0,
            source_url: source_url.to_string(),
            url: self.stored.url,
            sha256: Some(self.sha),
            bytes: Some(self.bytes),
            content_type: self.format.content_type().into(),
            width: info.width,
            height: info.height,
            duration_ms: info.duration_ms,
            codec: info.codec,
            normalized: None,
        }
    }
}

/// Streams the body into the upload while probing and hashing it.
async fn stream(
    upload: &mut Upload,
    body: &mut Body,
    head: Vec<u8>,
    eof: bool,
    mut probe: VideoProbe,
) -> Result<(String, u64, MediaInfo), JobError> {
    let mut hasher = Sha256::new();
    let mut total = head.len() as u64;
    probe.feed(&head)?;
    hasher.update(&head);
    upload.write(Bytes::from(head)).await?;
    if !eof {
        while let Some(chunk) = body.chunk().await? {
            probe.feed(&chunk)?;
            hasher.update(&chunk);
            total += chunk.len() as u64;
            upload.write(chunk).await?;
        }
    }
    let info = probe.finish()?;
    Ok((hex::encode(hasher.finalize()), total, info))
}
