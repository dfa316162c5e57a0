//! The one EXIF field rehost reads and writes: the orientation (tag 0x0112
//! of IFD0), from a TIFF structure (`II*\0` or `MM\0*`).

/// The orientation (1 to 8) in a TIFF structure, if it has one.
pub fn orientation(tiff: &[u8]) -> Option<u8> {
    let little = match tiff.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = usize::from(u16_at(ifd)?).min(1024);
    (0..entries).find_map(|i| {
        let at = ifd + 2 + i * 12;
        (u16_at(at)? == 0x0112 && u16_at(at + 2)? == 3)
            .then(|| u16_at(at + 8))
            .flatten()
            .and_then(|o| u8::try_from(o).ok())
            .filter(|o| (1..=8).contains(o))
    })
}

/// A TIFF structure holding only an orientation (big-endian, one IFD entry):
/// what stays of a photo's EXIF so it still displays upright.
pub fn minimal(orientation: u8) -> Vec<u8> {
    let mut t = b"MM\0*\0\0\0\x08".to_vec();
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&u16::from(orientation).to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_exif_reads_back() {
        for o in 1..=8 {
            assert_eq!(orientation(&minimal(o)), Some(o));
        }
        assert_eq!(orientation(b"nonsense"), None);
        assert_eq!(orientation(b""), None);
    }
}
