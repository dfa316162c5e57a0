//! What an image carries besides its pixels: the EXIF orientation,
//! metadata a person may not want published (EXIF with GPS, XMP, IPTC,
//! comments, PNG text), a colour profile, animation, a multi-picture JPEG's
//! other images, transparency. Read from a whole, checked image; never fails
//! (anything unreadable is simply not reported).

use super::{exif, jpeg, png, webp};
use crate::media::Format;

/// What [`scan`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMeta {
    /// EXIF orientation, 1 (upright) when absent.
    pub orientation: u8,
    /// EXIF, XMP, IPTC, comments or text chunks: stripped before storing.
    pub personal: bool,
    pub icc: bool,
    pub animated: bool,
    /// A multi-picture JPEG (MPO): more images follow the first.
    pub multi_picture: bool,
    pub alpha: bool,
}

impl ImageMeta {
    /// Whether width and height swap when displayed.
    pub fn turns(&self) -> bool {
        self.orientation >= 5
    }
}

/// Scans an image of `format`, whole or a prefix of it (what the prefix
/// holds is reported).
pub fn scan(format: Format, buf: &[u8]) -> ImageMeta {
    let mut m = ImageMeta {
        orientation: 1,
        ..ImageMeta::default()
    };
    match format {
        Format::Jpeg => scan_jpeg(buf, &mut m),
        Format::Png => scan_png(buf, &mut m),
        Format::Webp => scan_webp(buf, &mut m),
        _ => {}
    }
    m
}

/// An APP segment's payload and whether it starts with `id`.
pub(crate) fn app_is(buf: &[u8], start: usize, id: &[u8]) -> bool {
    buf.get(start + 4..).is_some_and(|p| p.starts_with(id))
}

fn scan_jpeg(buf: &[u8], m: &mut ImageMeta) {
    for (marker, start, end) in jpeg::header_segments(buf) {
        match marker {
            0xE1 if app_is(buf, start, b"Exif\0\0") => {
                m.personal = true;
                if let Some(o) = buf.get(start + 10..end).and_then(exif::orientation) {
                    m.orientation = o;
                }
            }
            0xE2 if app_is(buf, start, b"ICC_PROFILE\0") => m.icc = true,
            0xE2 if app_is(buf, start, b"MPF\0") => m.multi_picture = true,
            0xE1 | 0xE3..=0xED | 0xEF | 0xFE => m.personal = true,
            _ => {}
        }
    }
}

fn scan_png(buf: &[u8], m: &mut ImageMeta) {
    for (kind, start, end) in png::chunks_prefix(buf) {
        let data = buf
            .get(start + 8..end.saturating_sub(4))
            .unwrap_or_default();
        match &kind {
            b"IHDR" => m.alpha |= matches!(data.get(9), Some(4 | 6)),
            b"tRNS" => m.alpha = true,
            b"iCCP" => m.icc = true,
            b"acTL" => m.animated = true,
            b"eXIf" => {
                m.personal = true;
                if let Some(o) = exif::orientation(data) {
                    m.orientation = o;
                }
            }
            b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" => m.personal = true,
            _ => {}
        }
    }
}

fn scan_webp(buf: &[u8], m: &mut ImageMeta) {
    let Ok(chunks) = webp::chunks(buf) else {
        return;
    };
    for (fourcc, start, end) in chunks {
        let data = buf.get(start + 8..end).unwrap_or_default();
        match &fourcc {
            b"VP8X" => {
                let flags = data.first().copied().unwrap_or(0);
                m.animated |= flags & 0x02 != 0;
                m.alpha |= flags & 0x10 != 0;
            }
            b"ALPH" => m.alpha = true,
            b"VP8L" => m.alpha |= data.get(4).is_some_and(|b| b & 0x10 != 0),
            b"ANIM" | b"ANMF" => m.animated = true,
            b"ICCP" => m.icc = true,
            b"EXIF" => {
                m.personal = true;
                let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                if let Some(o) = exif::orientation(tiff) {
                    m.orientation = o;
                }
            }
            b"XMP " => m.personal = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::fixture;

    #[test]
    fn what_real_encoders_wrote() {
        let phone = scan(Format::Jpeg, &fixture("phone-exif6.jpg"));
        assert_eq!(
            (phone.orientation, phone.personal, phone.icc),
            (6, true, true)
        );
        assert!(phone.turns());
        let png = scan(Format::Png, &fixture("phone-exif6.png"));
        assert_eq!((png.orientation, png.personal, png.alpha), (6, true, true));
        let webp = scan(Format::Webp, &fixture("meta.webp"));
        assert!(webp.personal && webp.icc && !webp.animated);
        assert!(scan(Format::Webp, &fixture("animated.webp")).animated);
        assert!(scan(Format::Jpeg, &fixture("mpo.jpg")).multi_picture);
        let plain = scan(Format::Jpeg, &fixture("portrait-9x16.jpg"));
        assert_eq!(
            (plain.orientation, plain.personal, plain.multi_picture),
            (1, false, false)
        );
        assert!(scan(Format::Png, &fixture("alpha-large.png")).alpha);
    }

    #[test]
    fn a_prefix_tells_what_its_header_holds() {
        let phone = fixture("phone-exif6.jpg");
        let m = scan(Format::Jpeg, &phone[..phone.len() / 2]);
        assert_eq!((m.orientation, m.personal, m.icc), (6, true, true));
        let mpo = fixture("mpo.jpg");
        assert!(scan(Format::Jpeg, &mpo[..4096]).multi_picture);
        let png = fixture("phone-exif6.png");
        assert_eq!(scan(Format::Png, &png[..8192]).orientation, 6);
        assert_eq!(
            scan(Format::Jpeg, b"\xFF\xD8\xFF"),
            ImageMeta {
                orientation: 1,
                ..ImageMeta::default()
            }
        );
    }
}
