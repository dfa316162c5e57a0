//! What the hosted and re-hosting paths share: the byte limit of a job's
//! kind and reading a body into a bounded buffer.

use crate::config::Limits;
use crate::error::JobError;
use crate::fetch::Body;
use crate::job::JobKind;
use crate::media::{Format, Kind, MediaInfo};
use crate::profiles::facts::VideoFacts;

/// Bytes read before sniffing: enough for every signature and for most
/// image headers and WebM track headers.
pub(super) use crate::bounds::PREFIX_BYTES;

/// The byte limit for the job's kind.
pub(super) fn max_bytes(limits: &Limits, kind: JobKind) -> u64 {
    match kind {
        JobKind::Video => limits.max_video_bytes,
        JobKind::Slideshow => limits.max_image_bytes,
    }
}

/// What a job of `kind` expects each asset to be.
pub(super) fn media_kind(kind: JobKind) -> Kind {
    match kind {
        JobKind::Video => Kind::Video,
        JobKind::Slideshow => Kind::Image,
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

/// What the profiles judge of a video.
pub(super) fn video_facts(format: Format, info: &MediaInfo, bytes: Option<u64>) -> VideoFacts {
    VideoFacts {
        container: crate::normalize::profile_format(
            format,
            &crate::media::image::meta::ImageMeta::default(),
        ),
        codec: info.codec.clone(),
        audio: info.audio.clone(),
        bytes,
        duration_ms: info.duration_ms,
        fps_milli: info.fps_milli,
        width: info.width,
        height: info.height,
        moov_first: info.moov_first,
        edit_list: info.edit_list,
    }
}
