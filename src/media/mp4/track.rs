//! What one `trak` of a `moov` says: its handler, codec, displayed size
//! (the `tkhd` matrix applied), frame rate (`stts` over `mdhd`'s timescale),
//! audio codec (the sample entry, and for AAC its `esds`), and whether its
//! edit list cuts or delays.

use super::{child, codec_name, path, show};
use crate::media::ProbeError;
use crate::media::read::{be16, be32, be64, bytes, u8_at};

/// A track's facts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Track {
    pub handler: [u8; 4],
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps_milli: Option<u32>,
    pub edit_list: bool,
}

pub(super) fn parse(trak: &[u8]) -> Result<Option<Track>, ProbeError> {
    let Some(hdlr) = path(trak, &[b"mdia", b"hdlr"])? else {
        return Ok(None);
    };
    let mut t = Track {
        handler: bytes::<4>(hdlr, 8)?,
        edit_list: edit_list(trak)?,
        ..Track::default()
    };
    let stsd = path(trak, &[b"mdia", b"minf", b"stbl", b"stsd"])?;
    match &t.handler {
        b"vide" => {
            if let Some(tkhd) = child(trak, b"tkhd")? {
                (t.width, t.height) = displayed(tkhd)?;
            }
            if let Some(stsd) = stsd.filter(|s| be32(s, 4).is_ok_and(|n| n > 0)) {
                let fourcc: [u8; 4] = bytes(stsd, 12)?;
                t.codec = Some(codec_name(&fourcc));
                if t.width.is_none() {
                    let (w, h) = (be16(stsd, 8 + 32)?, be16(stsd, 8 + 34)?);
                    if w > 0 && h > 0 {
                        (t.width, t.height) = (Some(u32::from(w)), Some(u32::from(h)));
                    }
                }
            }
            t.fps_milli = fps_milli(trak)?;
        }
        b"soun" => t.codec = stsd.map(audio_codec).transpose()?.flatten(),
        _ => {}
    }
    Ok(Some(t))
}

/// Width and height from `tkhd` (16.16 fixed point), swapped when the
/// matrix turns the picture by 90 or 270 degrees.
fn displayed(tkhd: &[u8]) -> Result<(Option<u32>, Option<u32>), ProbeError> {
    let v1 = u8_at(tkhd, 0)? == 1;
    let (matrix, size) = if v1 { (52, 88) } else { (40, 76) };
    let (w, h) = (be32(tkhd, size)? >> 16, be32(tkhd, size + 4)? >> 16);
    if w == 0 || h == 0 {
        return Ok((None, None));
    }
    let (a, b) = (be32(tkhd, matrix)?, be32(tkhd, matrix + 4)?);
    let (c, d) = (be32(tkhd, matrix + 12)?, be32(tkhd, matrix + 16)?);
    let quarter_turn = a == 0 && d == 0 && b != 0 && c != 0;
    Ok(if quarter_turn {
        (Some(h), Some(w))
    } else {
        (Some(w), Some(h))
    })
}

/// Samples per second from `stts` and the media timescale, × 1000.
fn fps_milli(trak: &[u8]) -> Result<Option<u32>, ProbeError> {
    let (Some(mdhd), Some(stts)) = (
        path(trak, &[b"mdia", b"mdhd"])?,
        path(trak, &[b"mdia", b"minf", b"stbl", b"stts"])?,
    ) else {
        return Ok(None);
    };
    let timescale = match u8_at(mdhd, 0)? {
        1 => be32(mdhd, 20)?,
        _ => be32(mdhd, 12)?,
    };
    let entries = be32(stts, 4)?.min(1 << 20) as usize;
    let (mut samples, mut ticks) = (0u64, 0u64);
    for i in 0..entries {
        let at = 8 + i * 8;
        let (count, delta) = (u64::from(be32(stts, at)?), u64::from(be32(stts, at + 4)?));
        samples = samples.saturating_add(count);
        ticks = ticks.saturating_add(count.saturating_mul(delta));
    }
    if samples == 0 || ticks == 0 || timescale == 0 {
        return Ok(None);
    }
    let milli = u128::from(samples) * u128::from(timescale) * 1000 / u128::from(ticks);
    Ok(u32::try_from(milli).ok())
}

/// Whether the track's edit list cuts or delays: more than one entry, or an
/// empty edit (media time -1). A single entry that only skips a codec's
/// priming samples is how encoders write every file, and is not counted.
fn edit_list(trak: &[u8]) -> Result<bool, ProbeError> {
    let Some(elst) = path(trak, &[b"edts", b"elst"])? else {
        return Ok(false);
    };
    let v1 = u8_at(elst, 0)? == 1;
    let entries = be32(elst, 4)?;
    if entries > 1 {
        return Ok(true);
    }
    if entries == 0 {
        return Ok(false);
    }
    let media_time = if v1 {
        be64(elst, 8 + 8)? as i64
    } else {
        i64::from(be32(elst, 8 + 4)? as i32)
    };
    Ok(media_time == -1)
}

/// The codec of an audio track's first sample entry.
fn audio_codec(stsd: &[u8]) -> Result<Option<String>, ProbeError> {
    if be32(stsd, 4)? == 0 {
        return Ok(None);
    }
    let entry_size = be32(stsd, 8)? as usize;
    let entry = stsd
        .get(8..8usize.saturating_add(entry_size))
        .ok_or_else(|| ProbeError::corrupt("MP4: audio sample entry past its box"))?;
    let fourcc: [u8; 4] = bytes(entry, 4)?;
    Ok(Some(match &fourcc {
        b"mp4a" => aac_kind(entry)?.unwrap_or_else(|| "aac".into()),
        b"Opus" => "opus".into(),
        b"ac-3" => "ac3".into(),
        b"ec-3" => "eac3".into(),
        b".mp3" => "mp3".into(),
        b"alac" => "alac".into(),
        b"lpcm" | b"sowt" | b"twos" | b"in24" | b"fl32" => "pcm".into(),
        other => show(other).trim().to_string(),
    }))
}

/// `aac`, `he_aac` or `mp3` from an `mp4a` entry's `esds` (found directly
/// or inside QuickTime's `wave`).
fn aac_kind(entry: &[u8]) -> Result<Option<String>, ProbeError> {
    // The sound description: 28 bytes after the 8-byte header; QuickTime
    // versions 1 and 2 add 16 and 36 bytes.
    let extra = match be16(entry, 16)? {
        1 => 16,
        2 => 36,
        _ => 0,
    };
    let Some(boxes) = entry.get(36 + extra..) else {
        return Ok(None);
    };
    let esds = match child(boxes, b"esds")? {
        Some(e) => Some(e),
        None => match child(boxes, b"wave")? {
            Some(wave) => child(wave, b"esds")?,
            None => None,
        },
    };
    Ok(esds.and_then(|e| object_type(e.get(4..)?)))
}

/// Reads the ES descriptor chain: the decoder config's object type, and for
/// MPEG-4 audio the AudioSpecificConfig's audio object type.
fn object_type(mut d: &[u8]) -> Option<String> {
    let mut oti = None;
    while let Some((&tag, rest)) = d.split_first() {
        let (len, rest) = descriptor_len(rest)?;
        let body = rest.get(..len)?;
        match tag {
            0x03 => {
                let flags = *body.get(2)?;
                let skip = 3 + usize::from(flags & 0x80 != 0) * 2;
                let skip = skip
                    + if flags & 0x40 != 0 {
                        1 + usize::from(*body.get(skip)?)
                    } else {
                        0
                    };
                d = body.get(skip + usize::from(flags & 0x20 != 0) * 2..)?;
                continue;
            }
            0x04 => {
                oti = Some(*body.first()?);
                d = body.get(13..)?;
                continue;
            }
            0x05 => {
                let aot = body.first()? >> 3;
                return Some(match (oti?, aot) {
                    (0x40, 5 | 29) => "he_aac".into(),
                    (0x69 | 0x6B, _) => "mp3".into(),
                    _ => "aac".into(),
                });
            }
            _ => {}
        }
        d = rest.get(len..)?;
    }
    oti.map(|o| {
        if matches!(o, 0x69 | 0x6B) {
            "mp3"
        } else {
            "aac"
        }
        .to_string()
    })
}

/// An MPEG-4 descriptor's length: up to four bytes of 7 bits each.
fn descriptor_len(d: &[u8]) -> Option<(usize, &[u8])> {
    let mut len = 0usize;
    for (i, b) in d.iter().take(4).enumerate() {
        len = (len << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Some((len, &d[i + 1..]));
        }
    }
    None
}
