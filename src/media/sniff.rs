//! Names a format from the first bytes of a body.

use super::Format;
use super::webm;

/// Bytes [`sniff`] wants to see when the body is longer.
pub const SNIFF_BYTES: usize = 64;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// One of the contract's formats.
    Supported(Format),
    /// A format we recognise but do not accept, by name (for the message).
    Unsupported(&'static str),
    /// Nothing we know, or an empty body.
    Unknown,
}

/// Sniffs the format from `head`, the first bytes of the body (all of them
/// when the body is shorter than [`SNIFF_BYTES`]).
pub fn sniff(head: &[u8]) -> Sniffed {
    use Sniffed::{Supported, Unsupported};
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Supported(Format::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Supported(Format::Png);
    }
    if starts(b"RIFF") && head.len() >= 12 {
        return match &head[8..12] {
            b"WEBP" => Supported(Format::Webp),
            b"AVI " => Unsupported("AVI"),
            b"WAVE" => Unsupported("WAV audio"),
            _ => Unsupported("RIFF"),
        };
    }
    if let Some(s) = iso_bmff(head) {
        return s;
    }
    if starts(&webm::EBML_MAGIC) {
        return match webm::doc_type(head) {
            Some(b"webm") => Supported(Format::Webm),
            Some(b"matroska") => Unsupported("Matroska (only its WebM profile is accepted)"),
            // A broken EBML header still claims the format: the container
            // probe reports it as corrupt.
            _ => Supported(Format::Webm),
        };
    }
    let named: &[(&[u8], &'static str)] = &[
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"\0\0\x01\0", "ICO"),
        (b"\xFF\x0A", "JPEG XL"),
        (b"\0\0\0\x0CJXL \r\n\x87\n", "JPEG XL"),
        (b"%PDF", "PDF"),
        (b"PK\x03\x04", "ZIP"),
        (b"\x1F\x8B", "gzip"),
        (b"ID3", "MP3 audio"),
        (b"OggS", "Ogg"),
        (b"fLaC", "FLAC audio"),
    ];
    if let Some((_, name)) = named.iter().find(|(sig, _)| starts(sig)) {
        return Unsupported(name);
    }
    if head.len() >= 189 && head[0] == 0x47 && head[188] == 0x47 {
        return Unsupported("MPEG transport stream");
    }
    let text = trim_text(head);
    let lower: Vec<u8> = text.iter().take(16).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return Unsupported("HTML");
    }
    if lower.starts_with(b"<?xml") || lower.starts_with(b"<svg") {
        return Unsupported("XML or SVG");
    }
    if lower.starts_with(b"{") || lower.starts_with(b"[") {
        return Unsupported("JSON or text");
    }
    Sniffed::Unknown
}

/// Skips a UTF-8 BOM and leading whitespace.
fn trim_text(head: &[u8]) -> &[u8] {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    &head[start..]
}

/// ISO base media (MP4, MOV, HEIF, ...): judged by the first box.
fn iso_bmff(head: &[u8]) -> Option<Sniffed> {
    use Sniffed::{Supported, Unsupported};
    let box_type = head.get(4..8)?;
    let size = u32::from_be_bytes(head.get(0..4)?.try_into().ok()?);
    // size 1 means a 64-bit size follows; 0 means "to the end of the file".
    let sane = size == 0 || size == 1 || size >= 8;
    if !sane {
        return None;
    }
    match box_type {
        b"ftyp" => {
            let brand = head.get(8..12)?;
            Some(match brand {
                b"qt  " => Supported(Format::Mov),
                b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                    Unsupported("HEIF/HEIC image")
                }
                b"avif" | b"avis" => Unsupported("AVIF image"),
                b"M4A " | b"M4B " | b"M4P " | b"F4A " => Unsupported("MPEG-4 audio"),
                b"crx " => Unsupported("Canon raw image"),
                _ => Supported(Format::Mp4),
            })
        }
        // Classic QuickTime files may start without `ftyp`.
        b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot" => Some(Supported(Format::Mov)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(
            sniff(b"\xFF\xD8\xFF\xE0rest"),
            Sniffed::Supported(Format::Jpeg)
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nrest"),
            Sniffed::Supported(Format::Png)
        );
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Sniffed::Supported(Format::Webp)
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypisom\0\0\0\0"),
            Sniffed::Supported(Format::Mp4)
        );
        assert_eq!(
            sniff(b"\0\0\0\x14ftypqt  \0\0\0\0"),
            Sniffed::Supported(Format::Mov)
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Sniffed::Unsupported("HEIF/HEIC image")
        );
        assert_eq!(sniff(b"GIF89a...."), Sniffed::Unsupported("GIF"));
        assert_eq!(
            sniff(b"  <!DOCTYPE html><html>"),
            Sniffed::Unsupported("HTML")
        );
        assert_eq!(sniff(b""), Sniffed::Unknown);
        assert_eq!(sniff(b"\0\0\0\x02ftypisom"), Sniffed::Unknown);
    }
}
