//! Hosted-only posts: each asset confirmed from a prefix, never downloaded.
//!
//! A ranged GET asks for the first 64 KiB (never HEAD: presigned URLs refuse
//! it). When the origin ignores `Range` and sends the whole file, the prefix
//! is read and the connection dropped. A header that lies further in (a JPEG
//! behind large metadata, a WebM with big track headers) costs one more
//! ranged read; an MP4 whose `moov` follows `mdat` costs one ranged read of
//! the file's tail. Metadata that cannot be had cheaply is omitted.

use super::asset::{
    IMAGE_HEADER_CAP, PREFIX_BYTES, WEBM_HEADER_CAP, fill, format_for, image_dims, max_bytes,
    truncated_header,
};
use super::{AssetResult, Ingestor};
use crate::error::{self, JobError};
use crate::fetch::{Body, Fetcher, Range};
use crate::job::{JobKind, SourceUrl};
use crate::media::{Format, MediaInfo, ProbeError, image, mp4, webm};
use crate::result::AssetOut;

/// Largest file tail read to find a trailing `moov`.
const MOOV_TAIL_CAP: u64 = 16 * 1024 * 1024;

/// The start of a file, as read so far.
struct Prefix<'a> {
    fetcher: &'a Fetcher,
    src: &'a SourceUrl,
    max: u64,
    head: Vec<u8>,
    body: Body,
    eof: bool,
    /// The origin honours ranges.
    partial: bool,
    /// The whole file's size, when the origin said.
    total: Option<u64>,
}

impl Prefix<'_> {
    /// Whether `head` is the whole file.
    fn whole(&self) -> bool {
        self.eof && (!self.partial || self.total == Some(self.head.len() as u64))
    }

    /// Reads on until `head` holds `want` bytes (or the file ends).
    async fn extend_to(&mut self, want: u64) -> Result<(), JobError> {
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        if !self.eof {
            self.eof = fill(&mut self.body, &mut self.head, want).await?;
            return Ok(());
        }
        if self.whole() || self.head.len() >= want {
            return Ok(());
        }
        let start = self.head.len() as u64;
        let range = Range {
            start,
            end: Some(want as u64 - 1),
        };
        let mut more = read_range(self.fetcher, self.src, range, self.max).await?;
        self.head.append(&mut more);
        if (self.head.len() as u64) < want as u64 {
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

pub(super) async fn check(ing: &Ingestor, src: &SourceUrl, kind: JobKind) -> AssetResult {
    let max = max_bytes(&ing.limits, kind);
    let range = Range {
        start: 0,
        end: Some(PREFIX_BYTES as u64 - 1),
    };
    let opened = ing.fetcher.open(&src.url, Some(range), max).await?;
    let mut p = Prefix {
        fetcher: &ing.fetcher,
        src,
        max,
        head: Vec::new(),
        eof: opened.status == 416,
        partial: opened.partial,
        total: opened.total_size,
        body: opened.body,
    };
    if opened.status == 416 {
        // Not satisfiable from byte 0: the file is empty.
        p.total = Some(0);
    } else {
        p.eof = fill(&mut p.body, &mut p.head, PREFIX_BYTES).await?;
    }
    let format = format_for(&p.head, kind)?;
    let info = if format.is_image() {
        image_info(&mut p, format, ing).await?
    } else {
        video_info(&mut p, format).await?
    };
    let bytes = p.total.or(p.whole().then_some(p.head.len() as u64));
    tracing::info!(bytes = ?bytes, read = p.head.len(), "asset confirmed");
    Ok(AssetOut {
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
    })
}

async fn image_info(
    p: &mut Prefix<'_>,
    format: Format,
    ing: &Ingestor,
) -> Result<MediaInfo, JobError> {
    let dims = loop {
        match image_dims(format, &p.head, &ing.limits)? {
            Ok(d) => break d,
            Err(_) if p.whole() => return Err(truncated_header(format)),
            Err(need) => {
                let before = p.head.len();
                p.extend_to(
                    need.max(before as u64 + PREFIX_BYTES as u64)
                        .min(IMAGE_HEADER_CAP),
                )
                .await?;
                if p.head.len() == before {
                    return Err(truncated_header(format));
                }
            }
        }
    };
    if p.whole() {
        image::check_complete(format, &p.head).map_err(error::corrupt_media)?;
    }
    Ok(MediaInfo {
        width: Some(dims.width),
        height: Some(dims.height),
        ..MediaInfo::default()
    })
}

async fn video_info(p: &mut Prefix<'_>, format: Format) -> Result<MediaInfo, JobError> {
    let info = match format {
        Format::Webm => webm_info(p).await?,
        _ => mp4_info(p).await?,
    };
    info.ok_or_else(|| error::unsupported_format("the file has no video track (audio only?)"))
}

async fn webm_info(p: &mut Prefix<'_>) -> Result<Option<MediaInfo>, JobError> {
    loop {
        match webm::probe(&p.head) {
            Ok(probe) => {
                if p.whole() && probe.segment_end.is_some_and(|e| e > p.head.len() as u64) {
                    return Err(error::corrupt_media(
                        "WebM: file ends inside its Segment (truncated)",
                    ));
                }
                return Ok(probe.info);
            }
            Err(ProbeError::Corrupt(m)) => return Err(error::corrupt_media(m)),
            Err(ProbeError::NeedMore(_)) if p.whole() => {
                return Err(error::corrupt_media(
                    "WebM: file ends inside its header (truncated)",
                ));
            }
            Err(ProbeError::NeedMore(n))
                if n > WEBM_HEADER_CAP || p.head.len() as u64 >= WEBM_HEADER_CAP =>
            {
                return Ok(Some(MediaInfo::default()));
            }
            Err(ProbeError::NeedMore(n)) => {
                let before = p.head.len();
                p.extend_to(n.max(before as u64 * 2).min(WEBM_HEADER_CAP))
                    .await?;
                if p.head.len() == before {
                    return Err(error::corrupt_media(
                        "WebM: file ends inside its header (truncated)",
                    ));
                }
            }
        }
    }
}

async fn mp4_info(p: &mut Prefix<'_>) -> Result<Option<MediaInfo>, JobError> {
    let mut scanner = mp4::Scanner::default();
    scanner.feed(&p.head).map_err(error::corrupt_media)?;
    if p.whole() {
        scanner.check_end().map_err(error::corrupt_media)?;
        return scanner.info(true).map_err(probe_error);
    }
    if scanner.has_moov() {
        return scanner.info(true).map_err(probe_error);
    }
    // moov after mdat: one ranged read of the tail, when it is small.
    let (Some(next), Some(total)) = (scanner.current_box_end(), p.total) else {
        return Ok(Some(MediaInfo::default()));
    };
    if !p.partial || next >= total || total - next > MOOV_TAIL_CAP {
        return Ok(Some(MediaInfo::default()));
    }
    let range = Range {
        start: next,
        end: Some(total - 1),
    };
    let tail = read_range(p.fetcher, p.src, range, p.max).await?;
    let mut tail_scanner = mp4::Scanner::at(next);
    tail_scanner.feed(&tail).map_err(error::corrupt_media)?;
    tail_scanner.check_end().map_err(error::corrupt_media)?;
    tail_scanner.info(false).map_err(probe_error)
}

fn probe_error(e: ProbeError) -> JobError {
    match e {
        ProbeError::Corrupt(m) => error::corrupt_media(m),
        ProbeError::NeedMore(_) => error::corrupt_media("container ends inside a box"),
    }
}
