//! The questions both ingest paths (hosted prefix reads and re-hosting
//! copies) ask of an asset's bytes, and the one place their answers become
//! the contract's error codes.

use super::image::{self, Dimensions};
use super::{Format, ProbeError, Sniffed, sniff};
use crate::error::{self, JobError};

/// What the job expects an asset to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
}

/// How far into a file an image header may lie (JPEG APPn segments before
/// the frame header; each is at most 64 KiB, but there can be many).
pub use crate::bounds::IMAGE_HEADER_CAP;

/// Why an asset's bytes are not acceptable media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// Not a format the contract allows (or an empty body).
    Unsupported(String),
    /// An image where a video was expected, or the reverse.
    Mismatch(String),
    /// A body that claims a format but breaks it (or is truncated).
    Corrupt(String),
    /// More pixels than the limit, read from the header.
    TooManyPixels { dims: Dimensions, limit: u64 },
    /// A well-formed container without a video track (audio only).
    NoVideoTrack,
}

impl From<MediaError> for JobError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Unsupported(m) => error::unsupported_format(m),
            MediaError::Mismatch(m) => error::media_type_mismatch(m),
            MediaError::Corrupt(m) => error::corrupt_media(m),
            MediaError::TooManyPixels { dims, limit } => error::dimensions_exceeded(format!(
                "{}x{} is {} pixels; the limit is {limit}",
                dims.width,
                dims.height,
                dims.pixels()
            )),
            MediaError::NoVideoTrack => {
                error::unsupported_format("the file has no video track (audio only?)")
            }
        }
    }
}

/// An answer that may need more of the file first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<T> {
    Done(T),
    /// Read at least this many bytes from the start of the file, then ask again.
    More(u64),
}

/// The sniffed format of `head`, of either kind.
///
/// # Errors
/// [`MediaError::Unsupported`].
pub fn any_format(head: &[u8]) -> Result<Format, MediaError> {
    expect_format(head, Kind::Image).or_else(|e| match e {
        MediaError::Mismatch(_) => expect_format(head, Kind::Video),
        other => Err(other),
    })
}

/// The sniffed format of `head` (the body's first bytes), checked against
/// what the job expects.
///
/// # Errors
/// [`MediaError::Unsupported`] or [`MediaError::Mismatch`].
pub fn expect_format(head: &[u8], kind: Kind) -> Result<Format, MediaError> {
    let allowed = "(images: JPEG, PNG, WebP; video: MP4, MOV, WebM)";
    let format = match sniff(head) {
        Sniffed::Supported(f) => f,
        Sniffed::Unsupported(name) => {
            return Err(MediaError::Unsupported(format!(
                "{name} is not allowed {allowed}"
            )));
        }
        Sniffed::Unknown if head.is_empty() => {
            return Err(MediaError::Unsupported("empty body".into()));
        }
        Sniffed::Unknown => {
            return Err(MediaError::Unsupported(format!(
                "unrecognised format {allowed}"
            )));
        }
    };
    match (kind, format.is_image()) {
        (Kind::Image, false) => Err(MediaError::Mismatch(format!(
            "a slideshow takes images, this is a {} video",
            format.name()
        ))),
        (Kind::Video, true) => Err(MediaError::Mismatch(format!(
            "a video job takes a video, this is a {} image",
            format.name()
        ))),
        _ => Ok(format),
    }
}

/// The image's dimensions from the start of its body, checked against the
/// pixel limit before anything could decode it.
///
/// # Errors
/// [`MediaError::TooManyPixels`], or [`MediaError::Corrupt`] for a broken
/// header or one that does not end within [`IMAGE_HEADER_CAP`].
pub fn image_header(
    format: Format,
    head: &[u8],
    max_pixels: u64,
) -> Result<Need<Dimensions>, MediaError> {
    match image::probe(format, head) {
        Ok(dims) if dims.pixels() > max_pixels => Err(MediaError::TooManyPixels {
            dims,
            limit: max_pixels,
        }),
        Ok(dims) => Ok(Need::Done(dims)),
        Err(ProbeError::NeedMore(n)) if n > IMAGE_HEADER_CAP => Err(MediaError::Corrupt(format!(
            "{} header does not end within the first {IMAGE_HEADER_CAP} bytes",
            format.name()
        ))),
        Err(ProbeError::NeedMore(n)) => Ok(Need::More(n)),
        Err(ProbeError::Corrupt(m)) => Err(MediaError::Corrupt(m)),
    }
}

/// A whole image body's structure (markers, chunks, CRCs, end marker).
///
/// # Errors
/// [`MediaError::Corrupt`] saying what is wrong.
pub fn image_complete(format: Format, body: &[u8]) -> Result<(), MediaError> {
    image::check_complete(format, body).map_err(MediaError::Corrupt)
}

/// A complete file that ended before its header did.
pub fn truncated_header(format: Format) -> MediaError {
    MediaError::Corrupt(format!("{} file ends inside its header", format.name()))
}
