//! JPEG: markers up to the frame header; entropy data scanned to the EOI.

use super::Dimensions;
use crate::media::ProbeError;
use crate::media::read::{be16, u8_at};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

fn is_sof(m: u8) -> bool {
    matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC)
}

/// Markers that stand alone, without a length.
fn is_standalone(m: u8) -> bool {
    matches!(m, 0x01 | 0xD0..=0xD7)
}

/// Reads the marker at `pos` (skipping fill bytes); returns it and the
/// position after it.
fn marker(buf: &[u8], mut pos: usize) -> Result<(u8, usize), ProbeError> {
    if u8_at(buf, pos)? != 0xFF {
        return Err(ProbeError::corrupt(format!(
            "JPEG: expected a marker at byte {pos}"
        )));
    }
    while u8_at(buf, pos)? == 0xFF {
        pos += 1;
    }
    Ok((u8_at(buf, pos)?, pos + 1))
}

fn start(buf: &[u8]) -> Result<usize, ProbeError> {
    if be16(buf, 0)? != 0xFF00 | u16::from(SOI) {
        return Err(ProbeError::corrupt("JPEG: no start-of-image marker"));
    }
    Ok(2)
}

/// Position after the segment whose length field is at `pos`.
fn skip_segment(buf: &[u8], pos: usize) -> Result<usize, ProbeError> {
    let len = usize::from(be16(buf, pos)?);
    if len < 2 {
        return Err(ProbeError::corrupt("JPEG: segment length below 2"));
    }
    Ok(pos + len)
}

pub(super) fn probe(buf: &[u8]) -> Result<Dimensions, ProbeError> {
    let mut pos = start(buf)?;
    loop {
        let (m, after) = marker(buf, pos)?;
        match m {
            _ if is_sof(m) => {
                let height = be16(buf, after + 3)?;
                let width = be16(buf, after + 5)?;
                return Ok(Dimensions {
                    width: u32::from(width),
                    height: u32::from(height),
                });
            }
            SOS | EOI | SOI => {
                return Err(ProbeError::corrupt(
                    "JPEG: no frame header before the image data",
                ));
            }
            _ if is_standalone(m) => pos = after,
            _ => pos = skip_segment(buf, after)?,
        }
    }
}

pub(super) fn check_complete(buf: &[u8]) -> Result<(), ProbeError> {
    let mut pos = start(buf)?;
    let mut seen_frame = false;
    loop {
        let (m, after) = marker(buf, pos)?;
        match m {
            EOI if seen_frame => return Ok(()),
            EOI | SOI => return Err(ProbeError::corrupt("JPEG: misplaced marker")),
            SOS if seen_frame => {
                pos = skip_segment(buf, after)?;
                pos = scan_entropy(buf, pos)?;
            }
            SOS => {
                return Err(ProbeError::corrupt(
                    "JPEG: image data before the frame header",
                ));
            }
            _ if is_standalone(m) => pos = after,
            _ => {
                seen_frame |= is_sof(m);
                pos = skip_segment(buf, after)?;
            }
        }
    }
}

/// The marker segments of a whole JPEG, up to and including its first EOI:
/// `(marker, start, end)`, the bytes of each from its 0xFF to its last byte
/// (a scan's entropy-coded data belongs to its SOS). Anything after the
/// first EOI (a multi-picture file's other images, trailers) is not listed.
pub(crate) fn segments(buf: &[u8]) -> Result<Vec<(u8, usize, usize)>, ProbeError> {
    let mut out = vec![(SOI, 0, start(buf)?)];
    let mut pos = 2;
    loop {
        let (m, after) = marker(buf, pos)?;
        let end = match m {
            EOI => after,
            SOS => scan_entropy(buf, skip_segment(buf, after)?)?,
            _ if is_standalone(m) => after,
            _ => skip_segment(buf, after)?,
        };
        if end > buf.len() {
            return Err(ProbeError::corrupt("JPEG: segment past the end"));
        }
        out.push((m, pos, end));
        if m == EOI {
            return Ok(out);
        }
        pos = end;
    }
}

/// The marker segments before the first scan, as far as `buf` goes (a
/// prefix of the file will do): where a JPEG keeps its metadata.
pub(crate) fn header_segments(buf: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut out = Vec::new();
    let Ok(mut pos) = start(buf) else {
        return out;
    };
    while let Ok((m, after)) = marker(buf, pos) {
        if matches!(m, SOS | EOI) {
            break;
        }
        let end = if is_standalone(m) {
            Ok(after)
        } else {
            skip_segment(buf, after)
        };
        match end {
            Ok(end) if end <= buf.len() => {
                out.push((m, pos, end));
                pos = end;
            }
            _ => break,
        }
    }
    out
}

/// Skips entropy-coded data: returns the position of the next real marker
/// (an 0xFF not followed by 0x00, a restart marker or fill).
fn scan_entropy(buf: &[u8], mut pos: usize) -> Result<usize, ProbeError> {
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(ff) = memchr::memchr(0xFF, rest) else {
            return Err(ProbeError::corrupt(
                "JPEG: no end-of-image marker (truncated)",
            ));
        };
        let at = pos + ff;
        match buf.get(at + 1) {
            None => {
                return Err(ProbeError::corrupt(
                    "JPEG: no end-of-image marker (truncated)",
                ));
            }
            Some(0x00 | 0xD0..=0xD7) => pos = at + 2,
            Some(0xFF) => pos = at + 1,
            Some(_) => return Ok(at),
        }
    }
}
