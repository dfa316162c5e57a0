//! Re-hosted posts: every asset downloaded whole, hashed and stored. Images
//! are held in memory (bounded by the image limit and a shared buffer
//! budget); videos stream straight into the store's upload, so memory does
//! not grow with their size.

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::asset::{PREFIX_BYTES, append, fill, max_bytes};
use super::{AssetResult, Ingestor};
use crate::error::{self, JobError};
use crate::fetch::Body;
use crate::job::{JobKind, SourceUrl};
use crate::media::check::{self, Kind};
use crate::media::video::VideoProbe;
use crate::media::{Format, MediaInfo, Need};
use crate::metrics::METRICS;
use crate::result::AssetOut;
use crate::store::{Content, Store, Stored, Upload};

pub(super) async fn ingest(
    ing: &Ingestor,
    store: &Store,
    workspace: &str,
    src: &SourceUrl,
    kind: JobKind,
) -> AssetResult {
    let opened = ing
        .fetcher
        .open(&src.url, None, max_bytes(&ing.limits, kind))
        .await?;
    let declared = opened.content_length;
    let (stored, info) = match kind {
        JobKind::Slideshow => image(ing, store, workspace, opened.body, declared).await?,
        JobKind::Video => video(store, workspace, opened.body, declared).await?,
    };
    Ok(stored.asset(src, info))
}

/// Reads a whole image into memory, checks it, and stores it.
async fn image(
    ing: &Ingestor,
    store: &Store,
    workspace: &str,
    mut body: Body,
    declared: Option<u64>,
) -> Result<(Record, MediaInfo), JobError> {
    let reserve = declared
        .unwrap_or(ing.limits.max_image_bytes)
        .div_ceil(1024)
        .max(1);
    let _budget = ing
        .buffers
        .acquire_many(u32::try_from(reserve).unwrap_or(u32::MAX))
        .await
        .map_err(|_| error::internal("image buffer budget closed"))?;
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
    let sha = hex::encode(Sha256::digest(&buf));
    let bytes = buf.len() as u64;
    let started = Instant::now();
    let content = Content {
        workspace,
        sha256: &sha,
        format,
    };
    let stored = store.put(content, Bytes::from(buf)).await?;
    let info = MediaInfo {
        width: Some(dims.width),
        height: Some(dims.height),
        ..MediaInfo::default()
    };
    Ok((Record::new(stored, sha, bytes, format, started), info))
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
    let mut upload = store.begin(workspace, format, declared).await?;
    let streamed = stream(&mut upload, &mut body, head, eof, VideoProbe::new(format)).await;
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
struct Record {
    stored: Stored,
    sha: String,
    bytes: u64,
    format: Format,
    /// When the final store write began (for the store latency metric).
    started: Instant,
}

impl Record {
    fn new(stored: Stored, sha: String, bytes: u64, format: Format, started: Instant) -> Self {
        Record {
            stored,
            sha,
            bytes,
            format,
            started,
        }
    }

    /// Records the store metrics and logs, and builds the asset's record.
    fn asset(self, src: &SourceUrl, info: MediaInfo) -> AssetOut {
        METRICS
            .store_seconds
            .observe(self.started.elapsed().as_secs_f64());
        if self.stored.new {
            METRICS.bytes_stored.inc_by(self.bytes);
        }
        tracing::info!(key = %self.stored.key, bytes = self.bytes, stored = self.stored.new, "asset re-hosted");
        AssetOut {
            index: 0,
            source_url: src.raw.clone(),
            url: self.stored.url,
            sha256: Some(self.sha),
            bytes: Some(self.bytes),
            content_type: self.format.content_type().into(),
            width: info.width,
            height: info.height,
            duration_ms: info.duration_ms,
            codec: info.codec,
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
