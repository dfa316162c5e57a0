//! PNG: signature, IHDR, then every chunk and its CRC up to IEND.

use super::Dimensions;
use crate::media::ProbeError;
use crate::media::read::{be32, bytes};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// The format's own bound on a chunk length and a dimension.
const MAX_U31: u32 = 0x7FFF_FFFF;

struct Chunk {
    kind: [u8; 4],
    /// Position after the chunk (after its CRC).
    end: usize,
}

fn chunk(buf: &[u8], pos: usize) -> Result<Chunk, ProbeError> {
    let len = be32(buf, pos)?;
    if len > MAX_U31 {
        return Err(ProbeError::corrupt("PNG: chunk length above 2^31-1"));
    }
    let kind: [u8; 4] = bytes(buf, pos + 4)?;
    if !kind.iter().all(u8::is_ascii_alphabetic) {
        return Err(ProbeError::corrupt("PNG: chunk type is not four letters"));
    }
    let data_end = pos + 8 + len as usize;
    let crc = be32(buf, data_end)?;
    if crc32fast::hash(&buf[pos + 4..data_end]) != crc {
        return Err(ProbeError::corrupt(format!(
            "PNG: CRC mismatch in chunk {}",
            String::from_utf8_lossy(&kind)
        )));
    }
    Ok(Chunk {
        kind,
        end: data_end + 4,
    })
}

fn signature(buf: &[u8]) -> Result<(), ProbeError> {
    if bytes::<8>(buf, 0)? != *SIGNATURE {
        return Err(ProbeError::corrupt("PNG: bad signature"));
    }
    Ok(())
}

pub(super) fn probe(buf: &[u8]) -> Result<Dimensions, ProbeError> {
    signature(buf)?;
    let ihdr = chunk(buf, 8)?;
    if &ihdr.kind != b"IHDR" || be32(buf, 8)? != 13 {
        return Err(ProbeError::corrupt(
            "PNG: first chunk is not a 13-byte IHDR",
        ));
    }
    let (width, height) = (be32(buf, 16)?, be32(buf, 20)?);
    if width > MAX_U31 || height > MAX_U31 {
        return Err(ProbeError::corrupt("PNG: dimension above 2^31-1"));
    }
    Ok(Dimensions { width, height })
}

/// The chunks of a whole PNG after its signature: `(type, start, end)`,
/// each from its length field to the end of its CRC, through IEND.
pub(crate) fn chunks(buf: &[u8]) -> Result<Vec<([u8; 4], usize, usize)>, ProbeError> {
    signature(buf)?;
    let mut out = Vec::new();
    let mut pos = 8;
    loop {
        let c = chunk(buf, pos)?;
        out.push((c.kind, pos, c.end));
        if &c.kind == b"IEND" {
            return Ok(out);
        }
        pos = c.end;
    }
}

/// The chunks of `buf` as far as they are whole (a prefix of the file will
/// do).
pub(crate) fn chunks_prefix(buf: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    if signature(buf).is_err() {
        return out;
    }
    let mut pos = 8;
    while let Ok(c) = chunk(buf, pos) {
        out.push((c.kind, pos, c.end));
        if &c.kind == b"IEND" {
            break;
        }
        pos = c.end;
    }
    out
}

pub(super) fn check_complete(buf: &[u8]) -> Result<(), ProbeError> {
    probe(buf)?;
    let mut pos = 8;
    let mut seen_idat = false;
    loop {
        let c = chunk(buf, pos)?;
        match &c.kind {
            b"IEND" if seen_idat => return Ok(()),
            b"IEND" => return Err(ProbeError::corrupt("PNG: IEND before any IDAT")),
            b"IDAT" => seen_idat = true,
            _ => {}
        }
        pos = c.end;
    }
}
