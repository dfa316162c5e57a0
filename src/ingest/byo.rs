//! Re-hosting: the whole asset read once, checked, hashed and stored under
//! its content-addressed key. Images are held in memory (bounded by the image
//! limit and the shared buffer budget); videos stream straight into the
//! store's upload, so memory does not grow with their size.

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::asset::{
    PREFIX_BYTES, append, fill, format_for, image_dims, max_bytes, truncated_header,
};
use super::{AssetResult, Ingestor};
use crate::error::{self, JobError};
use crate::fetch::Body;
use crate::job::{JobKind, SourceUrl};
use crate::media::image;
use crate::media::video::{VideoError, VideoProbe};
use crate::media::{Format, MediaInfo};
use crate::metrics::METRICS;
use crate::result::AssetOut;
use crate::store::{Store, Upload};

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
    match kind {
        JobKind::Slideshow => image(ing, store, workspace, src, opened.body, declared).await,
        JobKind::Video => video(store, workspace, src, opened.body, declared).await,
    }
}

async fn image(
    ing: &Ingestor,
    store: &Store,
    workspace: &str,
    src: &SourceUrl,
    mut body: Body,
    declared: Option<u64>,
) -> AssetResult {
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
    let format = format_for(&buf, JobKind::Slideshow)?;
    let dims = loop {
        match image_dims(format, &buf, &ing.limits)? {
            Ok(d) => break d,
            Err(_) if eof => return Err(truncated_header(format)),
            Err(need) => {
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
    image::check_complete(format, &buf).map_err(error::corrupt_media)?;
    let sha = hex::encode(Sha256::digest(&buf));
    let key = store.keys().object(workspace, &sha, format.ext());
    let bytes = buf.len() as u64;
    let started = Instant::now();
    let stored = store
        .put_bytes(&key, Bytes::from(buf), format.content_type())
        .await?;
    let info = MediaInfo {
        width: Some(dims.width),
        height: Some(dims.height),
        ..MediaInfo::default()
    };
    let stored = Stored {
        key,
        sha,
        bytes,
        format,
        started,
        new: stored,
    };
    Ok(stored.asset(store, src, info))
}

async fn video(
    store: &Store,
    workspace: &str,
    src: &SourceUrl,
    mut body: Body,
    declared: Option<u64>,
) -> AssetResult {
    let mut head = Vec::with_capacity(PREFIX_BYTES);
    let eof = fill(&mut body, &mut head, PREFIX_BYTES).await?;
    let format = format_for(&head, JobKind::Video)?;
    let mut upload = store.begin(format.content_type(), declared).await?;
    let streamed = stream(&mut upload, &mut body, head, eof, VideoProbe::new(format)).await;
    let (sha, bytes, info) = match streamed {
        Ok(v) => v,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let key = store.keys().object(workspace, &sha, format.ext());
    let started = Instant::now();
    let stored = upload.finish(&key).await?;
    let stored = Stored {
        key,
        sha,
        bytes,
        format,
        started,
        new: stored,
    };
    Ok(stored.asset(store, src, info))
}

/// An asset written (or found already there) under its key.
struct Stored {
    key: String,
    sha: String,
    bytes: u64,
    format: Format,
    /// When the final store write began (for the store latency metric).
    started: Instant,
    /// Whether anything new was written (false: identical bytes were there).
    new: bool,
}

impl Stored {
    /// Records the store metrics and logs, and builds the asset's record.
    fn asset(self, store: &Store, src: &SourceUrl, info: MediaInfo) -> AssetOut {
        METRICS
            .store_seconds
            .observe(self.started.elapsed().as_secs_f64());
        if self.new {
            METRICS.bytes_stored.inc_by(self.bytes);
        }
        tracing::info!(key = %self.key, bytes = self.bytes, stored = self.new, "asset re-hosted");
        AssetOut {
            index: 0,
            source_url: src.raw.clone(),
            url: store.public_url(&self.key),
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
    probe.feed(&head).map_err(video_error)?;
    hasher.update(&head);
    upload.write(Bytes::from(head)).await?;
    if !eof {
        while let Some(chunk) = body.chunk().await? {
            probe.feed(&chunk).map_err(video_error)?;
            hasher.update(&chunk);
            total += chunk.len() as u64;
            upload.write(chunk).await?;
        }
    }
    let info = probe.finish().map_err(video_error)?;
    Ok((hex::encode(hasher.finalize()), total, info))
}

fn video_error(e: VideoError) -> JobError {
    match e {
        VideoError::Corrupt(m) => error::corrupt_media(m),
        VideoError::NoVideoTrack => {
            error::unsupported_format("the file has no video track (audio only?)")
        }
    }
}
