//! What the hosted and re-hosting paths share: reading a prefix, the format
//! rules, and the image header probe with its pixel limit.

use crate::config::Limits;
use crate::error::{self, JobError};
use crate::fetch::Body;
use crate::job::JobKind;
use crate::media::image::{self, Dimensions};
use crate::media::{Format, ProbeError, Sniffed, sniff};

/// Bytes read before sniffing: enough for every signature and for most
/// image headers and WebM track headers.
pub(super) const PREFIX_BYTES: usize = 64 * 1024;
/// How far into a file an image header may lie (JPEG APPn segments before
/// the frame header; each is at most 64 KiB, but there can be many).
pub(super) const IMAGE_HEADER_CAP: u64 = 4 * 1024 * 1024;
/// How far into a WebM file `Info` and `Tracks` are looked for.
pub(super) const WEBM_HEADER_CAP: u64 = 1024 * 1024;

/// The byte limit for the job's kind.
pub(super) fn max_bytes(limits: &Limits, kind: JobKind) -> u64 {
    match kind {
        JobKind::Video => limits.max_video_bytes,
        JobKind::Slideshow => limits.max_image_bytes,
    }
}

/// Reads from `body` into `buf` until it holds `want` bytes or the body ends.
/// Returns whether the body ended.
pub(super) async fn fill(
    body: &mut Body,
    buf: &mut Vec<u8>,
    want: usize,
) -> Result<bool, JobError> {
    while buf.len() < want {
        match body.chunk().await? {
            Some(c) => append(buf, &c, body.max_bytes()),
            None => return Ok(true),
        }
    }
    Ok(false)
}

/// Appends a chunk, growing the buffer by doubling but never past the body's
/// byte limit (plain doubling could reserve nearly twice the limit).
pub(super) fn append(buf: &mut Vec<u8>, chunk: &[u8], limit: u64) {
    let need = buf.len() + chunk.len();
    if need > buf.capacity() {
        let cap = usize::try_from(limit).unwrap_or(usize::MAX).max(need);
        let target = buf.capacity().saturating_mul(2).max(need).min(cap);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(chunk);
}

/// The sniffed format, checked against the job's kind: images in a
/// slideshow, a video for a video job.
pub(super) fn format_for(head: &[u8], kind: JobKind) -> Result<Format, JobError> {
    let format = match sniff(head) {
        Sniffed::Supported(f) => f,
        Sniffed::Unsupported(name) => {
            return Err(error::unsupported_format(format!(
                "{name} is not allowed (images: JPEG, PNG, WebP; video: MP4, MOV, WebM)"
            )));
        }
        Sniffed::Unknown if head.is_empty() => return Err(error::unsupported_format("empty body")),
        Sniffed::Unknown => {
            return Err(error::unsupported_format(
                "unrecognised format (images: JPEG, PNG, WebP; video: MP4, MOV, WebM)",
            ));
        }
    };
    match (kind, format.is_image()) {
        (JobKind::Slideshow, false) => Err(error::media_type_mismatch(format!(
            "a slideshow takes images, this is a {} video",
            format.name()
        ))),
        (JobKind::Video, true) => Err(error::media_type_mismatch(format!(
            "a video job takes a video, this is a {} image",
            format.name()
        ))),
        _ => Ok(format),
    }
}

/// The image's dimensions, checked against the pixel limit before anything
/// could decode it. `NeedMore` is passed through for the caller to read on.
pub(super) fn image_dims(
    format: Format,
    head: &[u8],
    limits: &Limits,
) -> Result<Result<Dimensions, u64>, JobError> {
    match image::probe(format, head) {
        Ok(d) if d.pixels() > limits.max_image_pixels => Err(error::dimensions_exceeded(format!(
            "{}x{} is {} pixels; the limit is {}",
            d.width,
            d.height,
            d.pixels(),
            limits.max_image_pixels
        ))),
        Ok(d) => Ok(Ok(d)),
        Err(ProbeError::NeedMore(n)) if n > IMAGE_HEADER_CAP => Err(error::corrupt_media(format!(
            "{} header does not end within the first {IMAGE_HEADER_CAP} bytes",
            format.name()
        ))),
        Err(ProbeError::NeedMore(n)) => Ok(Err(n)),
        Err(ProbeError::Corrupt(m)) => Err(error::corrupt_media(m)),
    }
}

/// A header that needed more bytes than the complete body has.
pub(super) fn truncated_header(format: Format) -> JobError {
    error::corrupt_media(format!("{} file ends inside its header", format.name()))
}
