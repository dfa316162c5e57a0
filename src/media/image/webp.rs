//! WebP: the RIFF container and the first image chunk's header.

use super::Dimensions;
use crate::media::ProbeError;
use crate::media::read::{bytes, le16, le24, le32, u8_at};

/// The RIFF payload size and the first chunk's fourcc.
fn riff(buf: &[u8]) -> Result<u32, ProbeError> {
    if &bytes::<4>(buf, 0)? != b"RIFF" || &bytes::<4>(buf, 8)? != b"WEBP" {
        return Err(ProbeError::corrupt("WebP: not a RIFF/WEBP container"));
    }
    let size = le32(buf, 4)?;
    if size < 4 + 8 {
        return Err(ProbeError::corrupt("WebP: RIFF size too small"));
    }
    Ok(size)
}

pub(super) fn probe(buf: &[u8]) -> Result<Dimensions, ProbeError> {
    riff(buf)?;
    let fourcc = bytes::<4>(buf, 12)?;
    let (width, height) = match &fourcc {
        b"VP8 " => {
            // frame tag (3 bytes), start code, then 14-bit width and height.
            if bytes::<3>(buf, 23)? != [0x9D, 0x01, 0x2A] {
                return Err(ProbeError::corrupt("WebP: VP8 start code missing"));
            }
            if u8_at(buf, 20)? & 1 != 0 {
                return Err(ProbeError::corrupt(
                    "WebP: first VP8 frame is not a key frame",
                ));
            }
            (
                u32::from(le16(buf, 26)? & 0x3FFF),
                u32::from(le16(buf, 28)? & 0x3FFF),
            )
        }
        b"VP8L" => {
            if u8_at(buf, 20)? != 0x2F {
                return Err(ProbeError::corrupt("WebP: VP8L signature missing"));
            }
            let bits = le32(buf, 21)?;
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => (le24(buf, 24)? + 1, le24(buf, 27)? + 1),
        _ => return Err(ProbeError::corrupt("WebP: unknown first chunk")),
    };
    Ok(Dimensions { width, height })
}

/// The top-level chunks of a whole WebP after its 12-byte header:
/// `(fourcc, start, end)`, each from its fourcc to its (padded) end.
pub(crate) fn chunks(buf: &[u8]) -> Result<Vec<([u8; 4], usize, usize)>, ProbeError> {
    let end = (8 + riff(buf)? as usize).min(buf.len());
    let mut out = Vec::new();
    let mut pos = 12;
    while pos + 8 <= end {
        let fourcc = bytes::<4>(buf, pos)?;
        let size = le32(buf, pos + 4)? as usize;
        let next = (pos + 8 + size + (size & 1)).min(end);
        out.push((fourcc, pos, next));
        pos = next;
    }
    Ok(out)
}

pub(super) fn check_complete(buf: &[u8]) -> Result<(), ProbeError> {
    probe(buf)?;
    let end = 8 + riff(buf)? as usize;
    if buf.len() < end {
        return Err(ProbeError::corrupt(
            "WebP: file is shorter than its RIFF size (truncated)",
        ));
    }
    let mut pos = 12;
    let mut seen_image = false;
    while pos < end {
        let fourcc = bytes::<4>(buf, pos)?;
        let size = le32(buf, pos + 4)? as usize;
        seen_image |= matches!(&fourcc, b"VP8 " | b"VP8L" | b"ANMF");
        // Chunks are padded to an even size.
        pos = pos + 8 + size + (size & 1);
        if pos > end {
            return Err(ProbeError::corrupt("WebP: chunk runs past the RIFF end"));
        }
    }
    if !seen_image {
        return Err(ProbeError::corrupt("WebP: no image data chunk"));
    }
    Ok(())
}
