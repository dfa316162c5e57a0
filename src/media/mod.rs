//! What an asset really is, from its bytes alone.
//!
//! - [`sniff`] names the format from the first bytes (never the file name or
//!   `Content-Type`);
//! - [`image`] reads an image's dimensions from its header without decoding
//!   pixels, and checks a complete body's structure (chunks, end marker);
//! - [`mp4`] walks ISO BMFF boxes as they stream past and parses `moov`;
//! - [`webm`] reads the EBML header, `Info` and `Tracks` of a WebM file;
//! - [`video`] feeds a video's bytes to the right container probe;
//! - [`check`] asks every question the ingest paths ask, and maps the
//!   answers to the contract's error codes in one place.
//!
//! Every parser here works on untrusted bytes: bounded reads, no recursion
//! without a depth limit, no allocation sized by a header field.

pub mod check;
pub mod faststart;
pub mod image;
pub mod mp4;
mod read;
pub mod sniff;
pub mod video;
pub mod webm;

pub use check::{Kind, MediaError, Need};
pub use sniff::{Sniffed, sniff};

/// The formats the contract allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Mp4,
    Mov,
    Webm,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Mp4 => "video/mp4",
            Format::Mov => "video/quicktime",
            Format::Webm => "video/webm",
        }
    }

    /// The object key's extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Mp4 => "mp4",
            Format::Mov => "mov",
            Format::Webm => "webm",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Webp => "WebP",
            Format::Mp4 => "MP4",
            Format::Mov => "MOV",
            Format::Webm => "WebM",
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, Format::Jpeg | Format::Png | Format::Webp)
    }
}

/// Metadata read from an asset's header or container. Videos' width and
/// height are as displayed (after the container's rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub codec: Option<String>,
    /// Video frames per second × 1000 (from `stts`/`mdhd`, or WebM's
    /// `DefaultDuration`).
    pub fps_milli: Option<u32>,
    /// The first audio track's codec (`aac`, `he_aac`, `opus`, ...), or
    /// `none` without an audio track; absent when unknown.
    pub audio: Option<String>,
    /// MP4/MOV: whether `moov` comes before `mdat`.
    pub moov_first: Option<bool>,
    /// MP4/MOV: whether a track's edit list cuts or delays (more than one
    /// entry, or an empty edit).
    pub edit_list: Option<bool>,
}

/// Why a header could not be read from the bytes at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The header continues past the bytes given: read at least this many
    /// bytes from the start of the file and try again.
    NeedMore(u64),
    /// The bytes break the format.
    Corrupt(String),
}

impl ProbeError {
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        ProbeError::Corrupt(msg.into())
    }
}
