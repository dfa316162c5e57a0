//! Image headers and structure, without decoding pixels.
//!
//! [`probe`] reads width and height from the header, so the pixel limit is
//! checked before anything could be decoded. [`check_complete`] walks a whole
//! body's structure (markers, chunks and their CRCs, the end marker), which is
//! how a truncated or damaged file is told apart from a good one; data after
//! the end marker is allowed, as browsers allow it.

pub mod exif;
pub(crate) mod jpeg;
pub mod meta;
pub(crate) mod png;
pub(crate) mod webp;

use super::{Format, ProbeError};

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

impl Dimensions {
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Reads the dimensions from the start of an image body.
///
/// # Errors
/// [`ProbeError::NeedMore`] when the header lies past `buf`,
/// [`ProbeError::Corrupt`] when the header breaks the format.
pub fn probe(format: Format, buf: &[u8]) -> Result<Dimensions, ProbeError> {
    let dims = match format {
        Format::Jpeg => jpeg::probe(buf)?,
        Format::Png => png::probe(buf)?,
        Format::Webp => webp::probe(buf)?,
        other => {
            return Err(ProbeError::corrupt(format!(
                "{} is not an image",
                other.name()
            )));
        }
    };
    if dims.width == 0 || dims.height == 0 {
        return Err(ProbeError::corrupt(
            "image header declares a zero dimension",
        ));
    }
    Ok(dims)
}

/// Checks that a complete body is a whole, well-formed file of `format`.
///
/// # Errors
/// A message saying what is wrong (missing end marker, bad CRC, ...).
pub fn check_complete(format: Format, buf: &[u8]) -> Result<(), String> {
    // A whole file needs a usable header too (no zero dimension): found by
    // fuzzing, a JPEG with height 0 walked cleanly to its end marker.
    let result = probe(format, buf).and_then(|_| match format {
        Format::Jpeg => jpeg::check_complete(buf),
        Format::Png => png::check_complete(buf),
        Format::Webp => webp::check_complete(buf),
        other => Err(ProbeError::corrupt(format!(
            "{} is not an image",
            other.name()
        ))),
    });
    result.map_err(|e| match e {
        ProbeError::Corrupt(m) => m,
        ProbeError::NeedMore(_) => "file ends in the middle of its structure (truncated)".into(),
    })
}

#[cfg(test)]
mod tests;
