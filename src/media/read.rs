//! Bounds-checked big- and little-endian reads for the parsers.

use super::ProbeError;

/// Reads `N` bytes at `at`, or asks for more input.
pub(crate) fn bytes<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], ProbeError> {
    let end = at
        .checked_add(N)
        .ok_or_else(|| ProbeError::corrupt("offset overflow"))?;
    match buf.get(at..end) {
        Some(s) => {
            let mut out = [0u8; N];
            out.copy_from_slice(s);
            Ok(out)
        }
        None => Err(ProbeError::NeedMore(end as u64)),
    }
}

pub(crate) fn u8_at(buf: &[u8], at: usize) -> Result<u8, ProbeError> {
    Ok(bytes::<1>(buf, at)?[0])
}

pub(crate) fn be16(buf: &[u8], at: usize) -> Result<u16, ProbeError> {
    Ok(u16::from_be_bytes(bytes(buf, at)?))
}

pub(crate) fn be32(buf: &[u8], at: usize) -> Result<u32, ProbeError> {
    Ok(u32::from_be_bytes(bytes(buf, at)?))
}

pub(crate) fn be64(buf: &[u8], at: usize) -> Result<u64, ProbeError> {
    Ok(u64::from_be_bytes(bytes(buf, at)?))
}

pub(crate) fn le16(buf: &[u8], at: usize) -> Result<u16, ProbeError> {
    Ok(u16::from_le_bytes(bytes(buf, at)?))
}

pub(crate) fn le24(buf: &[u8], at: usize) -> Result<u32, ProbeError> {
    let [a, b, c] = bytes::<3>(buf, at)?;
    Ok(u32::from_le_bytes([a, b, c, 0]))
}

pub(crate) fn le32(buf: &[u8], at: usize) -> Result<u32, ProbeError> {
    Ok(u32::from_le_bytes(bytes(buf, at)?))
}
