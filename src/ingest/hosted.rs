//! Hosted-only posts: each asset confirmed from a prefix, never downloaded.
//!
//! A ranged GET asks for the first 64 KiB (never HEAD: presigned URLs refuse
//! it). When the origin ignores `Range` and sends the whole file, the prefix
//! is read and the connection dropped. A header that lies further in (a JPEG
//! behind large metadata, a WebM with big track headers) costs ranged reads
//! of what follows; an MP4 whose `moov` follows `mdat` costs one ranged read
//! of the file's tail. Metadata that cannot be had cheaply is omitted.
//!
//! An asset holds at most one response at a time: the previous one is
//! dropped before the next request, so an asset never waits for a
//! connection place to its host while holding one itself.

use super::asset::{PREFIX_BYTES, append, fill, max_bytes, media_kind, video_facts};
use super::{AssetResult, Checked, Ingestor};
use crate::error::JobError;
use crate::fetch::{Body, Fetcher, Range};
use crate::job::{JobKind, SourceUrl};
use crate::media::check::{self, IMAGE_HEADER_CAP};
use crate::media::image::Dimensions;
use crate::media::image::meta::{self, ImageMeta};
use crate::media::video::{Partial, VideoProbe};
use crate::media::{Format, MediaError, MediaInfo, Need};
use crate::profiles::facts::Facts;
use crate::result::AssetOut;

use crate::bounds::MOOV_LIMIT;
use crate::media::faststart::Skip;

/// The start of a file, as read so far.
struct Prefix<'a> {
    fetcher: &'a Fetcher,
    src: &'a SourceUrl,
    max: u64,
    head: Vec<u8>,
    /// The first response, while it may still carry bytes.
    body: Option<Body>,
    /// The origin honours ranges.
    partial: bool,
    /// The origin sent `ETag` or `Last-Modified` (re-hosting could move a
    /// trailing `moov` only with one).
    validator: bool,
    /// The whole file's size, when the origin said.
    total: Option<u64>,
}

impl Prefix<'_> {
    /// Whether `head` is the whole file.
    fn whole(&self) -> bool {
        self.body.is_none() && (!self.partial || self.total == Some(self.head.len() as u64))
    }

    /// Reads on until `head` holds `want` bytes (or the file ends): from the
    /// first response while it lasts, then with a ranged read of the rest.
    async fn extend_to(&mut self, want: u64) -> Result<(), JobError> {
        let want = want.min(self.total.unwrap_or(u64::MAX));
        if let Some(body) = &mut self.body {
            let wanted = usize::try_from(want).unwrap_or(usize::MAX);
            if fill(body, &mut self.head, wanted).await? {
                self.body = None;
            }
        }
        let have = self.head.len() as u64;
        if have >= want || self.whole() || !self.partial {
            return Ok(());
        }
        // The first response gave what it had: free its connection first.
        self.body = None;
        let range = Range {
            start: have,
            end: Some(want - 1),
        };
        let more = read_range(self.fetcher, self.src, range, self.max).await?;
        let got = more.len() as u64;
        append(&mut self.head, &more, self.max);
        if got < want - have {
            // The file is shorter than we asked for: it ended.
            self.total = Some(self.head.len() as u64);
        }
        Ok(())
    }
}

/// Reads `range` of the source (with a ranged GET; an origin that answers 200
/// is read past the skipped bytes).
async fn read_range(
    fetcher: &Fetcher,
    src: &SourceUrl,
    range: Range,
    max: u64,
) -> Result<Vec<u8>, JobError> {
    let opened = fetcher.open(&src.url, Some(range), max).await?;
    let mut body = opened.body;
    let want = range.end.map_or(u64::MAX, |e| e + 1 - range.start);
    let mut skip = if opened.partial { 0 } else { range.start };
    let mut out = Vec::new();
    while (out.len() as u64) < want {
        let Some(chunk) = body.chunk().await? else {
            break;
        };
        let from = usize::try_from(skip.min(chunk.len() as u64)).unwrap_or(0);
        skip -= from as u64;
        out.extend_from_slice(&chunk[from..]);
    }
    out.truncate(usize::try_from(want).unwrap_or(usize::MAX));
    Ok(out)
}

/// Checks one asset of a job of `kind`; with `None` the kind is sniffed
/// and its byte limit applied (`rehost check` without `--video`).
pub(super) async fn check(ing: &Ingestor, src: &SourceUrl, kind: Option<JobKind>) -> AssetResult {
    let max = match kind {
        Some(k) => max_bytes(&ing.limits, k),
        None => ing.limits.max_image_bytes.max(ing.limits.max_video_bytes),
    };
    let mut p = open(&ing.fetcher, src, max).await?;
    let format = match kind {
        Some(k) => check::expect_format(&p.head, media_kind(k))?,
        None => sniffed_within_limit(&p, &ing.limits)?,
    };
    let (info, faststart_skipped) = if format.is_image() {
        (
            image_info(&mut p, format, ing.limits.max_image_pixels).await?,
            None,
        )
    } else {
        video_info(ing, &mut p, format).await?
    };
    let bytes = p.total.or(p.whole().then_some(p.head.len() as u64));
    tracing::info!(bytes = ?bytes, read = p.head.len(), "asset confirmed");
    let (facts, meta) = facts(format, &info, &p.head, bytes);
    let out = AssetOut {
        index: 0,
        source_url: src.raw.clone(),
        url: src.raw.clone(),
        sha256: None,
        bytes,
        content_type: format.content_type().into(),
        width: info.width,
        height: info.height,
        duration_ms: info.duration_ms,
        codec: info.codec,
        normalized: None,
    };
    Ok(Checked {
        out,
        facts: Some(facts),
        meta,
        unfit: Vec::new(),
        faststart_skipped,
    })
}

/// What the profiles would judge of the asset, from what was read.
fn facts(
    format: Format,
    info: &MediaInfo,
    head: &[u8],
    bytes: Option<u64>,
) -> (Facts, Option<ImageMeta>) {
    if !format.is_image() {
        return (Facts::Video(video_facts(format, info, bytes)), None);
    }
    let m = meta::scan(format, head);
    let dims = Dimensions {
        width: info.width.unwrap_or(0),
        height: info.height.unwrap_or(0),
    };
    let f = crate::normalize::image_facts(format, dims, &m, bytes);
    (Facts::Image(f), Some(m))
}

/// The sniffed format of any kind, its declared size checked against that
/// kind's limit.
fn sniffed_within_limit(
    p: &Prefix<'_>,
    limits: &crate::config::Limits,
) -> Result<Format, JobError> {
    let format = check::any_format(&p.head)?;
    let kind = if format.is_image() {
        JobKind::Slideshow
    } else {
        JobKind::Video
    };
    let limit = max_bytes(limits, kind);
    match p.total {
        Some(total) if total > limit => Err(crate::error::too_large(format!(
            "origin declares {total} bytes; the limit for a {} is {limit}",
            format.name()
        ))),
        _ => Ok(format),
    }
}

/// Asks for the first [`PREFIX_BYTES`] and reads what comes.
async fn open<'a>(
    fetcher: &'a Fetcher,
    src: &'a SourceUrl,
    max: u64,
) -> Result<Prefix<'a>, JobError> {
    let range = Range {
        start: 0,
        end: Some(PREFIX_BYTES as u64 - 1),
    };
    let opened = fetcher.open(&src.url, Some(range), max).await?;
    let empty = opened.status == 416;
    let mut p = Prefix {
        fetcher,
        src,
        max,
        head: Vec::new(),
        partial: opened.partial,
        validator: opened.etag.is_some() || opened.last_modified.is_some(),
        // Not satisfiable from byte 0: the file is empty.
        total: if empty { Some(0) } else { opened.total_size },
        body: (!empty).then_some(opened.body),
    };
    p.extend_to(PREFIX_BYTES as u64).await?;
    Ok(p)
}

async fn image_info(
    p: &mut Prefix<'_>,
    format: Format,
    max_pixels: u64,
) -> Result<MediaInfo, JobError> {
    let dims = loop {
        match check::image_header(format, &p.head, max_pixels)? {
            Need::Done(d) => break d,
            Need::More(_) if p.whole() => return Err(check::truncated_header(format).into()),
            Need::More(need) => {
                let before = p.head.len();
                let want = need.max(before as u64 + PREFIX_BYTES as u64);
                p.extend_to(want.min(IMAGE_HEADER_CAP)).await?;
                if p.head.len() == before {
                    return Err(check::truncated_header(format).into());
                }
            }
        }
    };
    if p.whole() {
        check::image_complete(format, &p.head)?;
    }
    Ok(MediaInfo {
        width: Some(dims.width),
        height: Some(dims.height),
        ..MediaInfo::default()
    })
}

/// A video's metadata, and why re-hosting could not move a trailing
/// `moov` (for `rehost check --platform`).
async fn video_info(
    ing: &Ingestor,
    p: &mut Prefix<'_>,
    format: Format,
) -> Result<(MediaInfo, Option<Skip>), JobError> {
    loop {
        let mut probe = VideoProbe::new(format);
        probe.feed(&p.head)?;
        if p.whole() {
            let info = probe.finish()?;
            let skip = unmovable(p, &info);
            return Ok((info, skip));
        }
        let order = MediaInfo {
            moov_first: probe.moov_first(),
            ..MediaInfo::default()
        };
        match probe.partial()? {
            Partial::Known(info) => {
                let skip = unmovable(p, &info);
                return Ok((info, skip));
            }
            Partial::Unknown => return Ok((order, None)),
            Partial::MoovAfter(next) => return moov_at_end(ing, p, format, next, order).await,
            Partial::NeedMore(n) => {
                let before = p.head.len();
                p.extend_to(n.max(before as u64 * 2)).await?;
                if p.head.len() == before {
                    return Err(MediaError::Corrupt(format!(
                        "{}: file ends inside its header (truncated)",
                        format.name()
                    ))
                    .into());
                }
            }
        }
    }
}

/// Why re-hosting could not move the `moov` of a moov-at-end file whose
/// metadata was read from the first response.
fn unmovable(p: &Prefix<'_>, info: &MediaInfo) -> Option<Skip> {
    match info.moov_first {
        Some(false) if !p.partial => Some(Skip::NoRanges),
        Some(false) if !p.validator => Some(Skip::NoValidator),
        _ => None,
    }
}

/// `moov` after `mdat`: one ranged read of the tail, within the `moov`
/// limit and reserved from the image buffer budget first. Where it cannot
/// be read, the box order alone says `moov` is not first (`order`), and
/// why re-hosting could not move it either.
async fn moov_at_end(
    ing: &Ingestor,
    p: &mut Prefix<'_>,
    format: Format,
    next: u64,
    order: MediaInfo,
) -> Result<(MediaInfo, Option<Skip>), JobError> {
    let total = match p.total {
        Some(total) if p.partial && next < total && total - next <= MOOV_LIMIT => total,
        Some(total) if p.partial && next >= total => return Ok((order, Some(Skip::MdatAfterMoov))),
        Some(_) if p.partial => return Ok((order, Some(Skip::TailTooLarge))),
        _ => return Ok((order, Some(Skip::NoRanges))),
    };
    // Readable, but re-hosting could still not move it without a validator.
    let skip = (!p.validator).then_some(Skip::NoValidator);
    // Free the first response's connection before asking again; the tail
    // and the probe's copy of its moov are held against the budget.
    p.body = None;
    let _budget = super::byo::reserve(ing, (total - next).saturating_mul(2)).await?;
    let range = Range {
        start: next,
        end: Some(total - 1),
    };
    let tail = read_range(p.fetcher, p.src, range, p.max).await?;
    let mut probe = VideoProbe::at(format, next);
    probe.feed(&tail)?;
    Ok((probe.finish()?, skip))
}
