//! Metadata removed without touching pixels: the file's structure is
//! rewritten, its image data copied byte for byte.
//!
//! Kept: what decoding and display need (tables, frame and scan headers,
//! JFIF, Adobe colour transform, colour profiles, PNG gamma and
//! chromaticity). Dropped: EXIF (GPS, camera, timestamps), XMP, IPTC and
//! Photoshop blocks, comments, PNG text and time chunks, and a multi-picture
//! JPEG's other images. An orientation other than upright is written back
//! as a minimal EXIF holding only it, so the image displays as before.

use crate::media::Format;
use crate::media::image::meta::app_is;
use crate::media::image::{exif, jpeg, png, webp};

/// `buf` without personal metadata, keeping `orientation` (1 to 8); `None`
/// when the structure cannot be walked (the caller stores nothing then).
pub fn strip(format: Format, buf: &[u8], orientation: u8) -> Option<Vec<u8>> {
    match format {
        Format::Jpeg => strip_jpeg(buf, orientation),
        Format::Png => strip_png(buf, orientation),
        Format::Webp => strip_webp(buf, orientation),
        _ => None,
    }
}

/// A multi-picture JPEG's first picture with all its metadata (for
/// `REHOST_STRIP_METADATA=false`): only the multi-picture index (APP2 `MPF`)
/// and the pictures after the first one's end go. `None` when the structure
/// cannot be walked or `format` is not JPEG.
pub fn first_frame(format: Format, buf: &[u8]) -> Option<Vec<u8>> {
    if format != Format::Jpeg {
        return None;
    }
    let segments = jpeg::segments(buf).ok()?;
    let mut out = Vec::with_capacity(buf.len());
    for (marker, start, end) in segments {
        if !(marker == 0xE2 && app_is(buf, start, b"MPF\0")) {
            out.extend_from_slice(buf.get(start..end)?);
        }
    }
    Some(out)
}

/// JPEG segments a decoder or display needs; everything else goes.
fn keep_jpeg_segment(buf: &[u8], marker: u8, start: usize) -> bool {
    match marker {
        0xE0 => app_is(buf, start, b"JFIF\0") || app_is(buf, start, b"JFXX\0"),
        0xE2 => app_is(buf, start, b"ICC_PROFILE\0"),
        0xEE => app_is(buf, start, b"Adobe"),
        0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
        _ => true,
    }
}

fn strip_jpeg(buf: &[u8], orientation: u8) -> Option<Vec<u8>> {
    let segments = jpeg::segments(buf).ok()?;
    // The orientation goes right after SOI, or after JFIF when it leads.
    let jfif_leads = segments
        .get(1)
        .is_some_and(|&(m, start, _)| m == 0xE0 && app_is(buf, start, b"JFIF\0"));
    let orientation_after = usize::from(jfif_leads);
    let mut out = Vec::with_capacity(buf.len());
    for (n, (marker, start, end)) in segments.into_iter().enumerate() {
        if keep_jpeg_segment(buf, marker, start) {
            out.extend_from_slice(buf.get(start..end)?);
        }
        if n == orientation_after && orientation != 1 {
            out.extend_from_slice(&jpeg_exif(orientation)?);
        }
    }
    Some(out)
}

/// An APP1 Exif segment holding only the orientation.
fn jpeg_exif(orientation: u8) -> Option<Vec<u8>> {
    let tiff = exif::minimal(orientation);
    let len = u16::try_from(2 + 6 + tiff.len()).ok()?;
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&tiff);
    Some(seg)
}

fn strip_png(buf: &[u8], orientation: u8) -> Option<Vec<u8>> {
    let chunks = png::chunks(buf).ok()?;
    let mut out = Vec::with_capacity(buf.len());
    out.extend_from_slice(buf.get(..8)?);
    let mut wrote_orientation = orientation == 1;
    for (kind, start, end) in chunks {
        if matches!(&kind, b"tEXt" | b"zTXt" | b"iTXt" | b"eXIf" | b"tIME") {
            continue;
        }
        if !wrote_orientation && matches!(&kind, b"IDAT" | b"acTL" | b"fcTL") {
            out.extend_from_slice(&png_chunk(b"eXIf", &exif::minimal(orientation)));
            wrote_orientation = true;
        }
        out.extend_from_slice(buf.get(start..end)?);
    }
    Some(out)
}

/// A PNG chunk: length, type, data, CRC of type and data.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(data.len() + 12);
    c.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    c.extend_from_slice(&crc.finalize().to_be_bytes());
    c
}

/// VP8X flag bits for EXIF and XMP.
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

fn strip_webp(buf: &[u8], orientation: u8) -> Option<Vec<u8>> {
    let chunks = webp::chunks(buf).ok()?;
    let mut out = Vec::with_capacity(buf.len());
    out.extend_from_slice(buf.get(..12)?);
    let mut vp8x_at = None;
    for (fourcc, start, end) in chunks {
        match &fourcc {
            b"EXIF" | b"XMP " => continue,
            b"VP8X" => vp8x_at = Some(out.len()),
            _ => {}
        }
        out.extend_from_slice(buf.get(start..end)?);
    }
    if let Some(at) = vp8x_at {
        let flags = out.get_mut(at + 8)?;
        *flags &= !(VP8X_EXIF | VP8X_XMP);
        if orientation != 1 {
            *flags |= VP8X_EXIF;
            // EXIF chunks come last in the extended format.
            let tiff = exif::minimal(orientation);
            out.extend_from_slice(b"EXIF");
            out.extend_from_slice(&u32::try_from(tiff.len()).ok()?.to_le_bytes());
            out.extend_from_slice(&tiff);
            if tiff.len() % 2 == 1 {
                out.push(0);
            }
        }
    }
    let riff = u32::try_from(out.len() - 8).ok()?;
    out.get_mut(4..8)?.copy_from_slice(&riff.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::image::{self, meta};

    use crate::testing::fixture;

    /// Strips `name` and checks the result is whole, private, and displays
    /// as the source did (same size, orientation, profile).
    fn stripped(format: Format, name: &str) -> (Vec<u8>, Vec<u8>) {
        let src = fixture(name);
        let before = meta::scan(format, &src);
        let out = strip(format, &src, before.orientation).expect("strips");
        image::check_complete(format, &out).expect("still a whole image");
        let after = meta::scan(format, &out);
        assert!(
            !after.personal || after.orientation != 1,
            "{name}: {after:?}"
        );
        assert_eq!(after.orientation, before.orientation, "{name}");
        assert_eq!(after.icc, before.icc, "{name}: the colour profile stays");
        assert!(!after.multi_picture, "{name}");
        assert_eq!(
            image::probe(format, &out).ok(),
            image::probe(format, &src).ok()
        );
        (src, out)
    }

    #[test]
    fn jpeg_loses_gps_and_camera_keeps_orientation_and_profile() {
        let (src, out) = stripped(Format::Jpeg, "phone-exif6.jpg");
        assert!(out.len() < src.len());
        // Only the minimal orientation EXIF is left: no maker, no GPS IFD.
        assert!(memchr::memmem::find(&src, b"Apple").is_some());
        assert!(memchr::memmem::find(&out, b"Apple").is_none());
        assert!(memchr::memmem::find(&out, b"GPS").is_none());
        // The pixels are the same bytes: the entropy data is copied.
        let scan = memchr::memmem::find(&out, &[0xFF, 0xDA]).expect("scan");
        let at = memchr::memmem::find(&src, &out[scan..scan + 64]).expect("same scan in source");
        assert_eq!(&src[at..at + out.len() - scan], &out[scan..]);
        assert!(memchr::memmem::find(&src, b"GPSLatitude").is_some());
        assert!(memchr::memmem::find(&out, b"GPSLatitude").is_none());
    }

    /// `out` is the first picture of the multi-picture `src` alone.
    fn assert_first_picture(src: &[u8], out: &[u8]) {
        assert!(
            out.len() < src.len() / 2 + 1000,
            "{} of {}",
            out.len(),
            src.len()
        );
        assert!(out.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn a_multi_picture_jpeg_keeps_only_its_first_image() {
        let (src, out) = stripped(Format::Jpeg, "mpo.jpg");
        assert_first_picture(&src, &out);
    }

    /// Regression: with `REHOST_STRIP_METADATA=false` the first picture of
    /// a multi-picture JPEG still lost its EXIF (the only rewrite was the
    /// full strip).
    #[test]
    fn a_first_frame_alone_keeps_the_metadata() {
        let src = fixture("mpo.jpg");
        let out = first_frame(Format::Jpeg, &src).expect("walkable");
        assert_first_picture(&src, &out);
        let before = meta::scan(Format::Jpeg, &src);
        let after = meta::scan(Format::Jpeg, &out);
        assert!(before.multi_picture && !after.multi_picture);
        assert!(before.personal && after.personal, "EXIF kept");
        assert_eq!(after.orientation, before.orientation);
        assert!(memchr::memmem::find(&out, b"MPF\0").is_none());
        assert_eq!(first_frame(Format::Png, &fixture("graphic.png")), None);
    }

    #[test]
    fn png_text_goes_and_orientation_stays() {
        let (_, out) = stripped(Format::Png, "phone-exif6.png");
        assert!(memchr::memmem::find(&out, b"tEXt").is_none());
        let (_, plain) = stripped(Format::Png, "graphic.png");
        assert!(memchr::memmem::find(&plain, b"eXIf").is_none());
    }

    #[test]
    fn webp_flags_and_size_match_the_chunks_left() {
        let (src, out) = stripped(Format::Webp, "meta.webp");
        assert!(out.len() < src.len());
        assert!(memchr::memmem::find(&out, b"XMP ").is_none());
        let m = meta::scan(Format::Webp, &out);
        assert!(!m.personal && m.icc);
        // The decoder the pixels go through reads it too.
        image::check_complete(Format::Webp, &out).expect("whole");
        ::image::load_from_memory_with_format(&out, ::image::ImageFormat::WebP).expect("decodes");
    }

    #[test]
    fn a_plain_image_is_unchanged() {
        let src = fixture("portrait-9x16.jpg");
        assert_eq!(strip(Format::Jpeg, &src, 1).as_deref(), Some(&src[..]));
    }

    #[test]
    fn unreadable_structure_is_none() {
        assert_eq!(strip(Format::Jpeg, b"\xFF\xD8\xFF", 1), None);
        assert_eq!(strip(Format::Png, b"nope", 1), None);
        assert_eq!(strip(Format::Webp, b"RIFF", 1), None);
        assert_eq!(strip(Format::Mp4, b"", 1), None);
    }
}
