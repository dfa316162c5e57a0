//! WebM (the Matroska profile): EBML header, then `Info` and `Tracks` of the
//! `Segment` for duration, size and codec.

use super::read::u8_at;
use super::{MediaInfo, ProbeError};

pub const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
const ID_DOCTYPE: u64 = 0x4282;
const ID_SEGMENT: u64 = 0x1853_8067;
const ID_INFO: u64 = 0x1549_A966;
const ID_TRACKS: u64 = 0x1654_AE6B;
const ID_CLUSTER: u64 = 0x1F43_B675;
const ID_TIMESCALE: u64 = 0x2A_D7B1;
const ID_DURATION: u64 = 0x4489;
const ID_TRACK_ENTRY: u64 = 0xAE;
const ID_TRACK_TYPE: u64 = 0x83;
const ID_CODEC_ID: u64 = 0x86;
const ID_VIDEO: u64 = 0xE0;
const ID_PIXEL_WIDTH: u64 = 0xB0;
const ID_PIXEL_HEIGHT: u64 = 0xBA;
const ID_DEFAULT_DURATION: u64 = 0x23_E383;
/// The EBML header is a few dozen bytes; anything bigger is hostile.
const MAX_EBML_HEADER: u64 = 4096;
/// `Info` and `Tracks` are small; bigger ones are not parsed.
const MAX_META_ELEMENT: u64 = 1024 * 1024;

/// One element header: id, payload start and payload size (`None`: unknown).
struct Element {
    id: u64,
    start: usize,
    size: Option<u64>,
}

impl Element {
    fn end(&self) -> Option<u64> {
        self.size.map(|s| self.start as u64 + s)
    }
}

/// A variable-length integer; `keep_marker` for element ids.
fn vint(buf: &[u8], pos: usize, keep_marker: bool) -> Result<(u64, usize), ProbeError> {
    let first = u8_at(buf, pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Err(ProbeError::corrupt("WebM: invalid variable-length integer"));
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for i in 1..len {
        value = (value << 8) | u64::from(u8_at(buf, pos + i)?);
    }
    Ok((value, pos + len))
}

fn element(buf: &[u8], pos: usize) -> Result<Element, ProbeError> {
    let (id, after_id) = vint(buf, pos, true)?;
    if after_id - pos > 4 {
        return Err(ProbeError::corrupt("WebM: element id longer than 4 bytes"));
    }
    let size_len = u8_at(buf, after_id)?.leading_zeros() as usize + 1;
    let (size, start) = vint(buf, after_id, false)?;
    let unknown = size_len <= 8 && size == (1u64 << (7 * size_len)) - 1;
    Ok(Element {
        id,
        start,
        size: (!unknown).then_some(size),
    })
}

/// The elements directly inside `[from, to)`.
fn walk(
    buf: &[u8],
    from: usize,
    to: u64,
    mut visit: impl FnMut(&Element) -> Result<bool, ProbeError>,
) -> Result<(), ProbeError> {
    let mut pos = from;
    while (pos as u64) < to {
        let el = element(buf, pos)?;
        let end = el.end();
        if end.is_some_and(|e| e > to) {
            return Err(ProbeError::corrupt("WebM: element runs past its parent"));
        }
        if !visit(&el)? {
            return Ok(());
        }
        // An element of unknown size (a live stream's Cluster) cannot be skipped.
        let Some(end) = end else { return Ok(()) };
        pos = usize::try_from(end).map_err(|_| ProbeError::corrupt("WebM: offset overflow"))?;
    }
    Ok(())
}

fn payload<'a>(buf: &'a [u8], el: &Element) -> Result<&'a [u8], ProbeError> {
    let end = el
        .end()
        .ok_or_else(|| ProbeError::corrupt("WebM: unknown size"))?;
    let end = usize::try_from(end).map_err(|_| ProbeError::corrupt("WebM: offset overflow"))?;
    buf.get(el.start..end)
        .ok_or(ProbeError::NeedMore(end as u64))
}

fn uint(data: &[u8]) -> u64 {
    data.iter().take(8).fold(0, |v, &b| (v << 8) | u64::from(b))
}

/// The EBML header: its `DocType` and where the header ends.
fn header(buf: &[u8]) -> Result<(Vec<u8>, usize), ProbeError> {
    let el = element(buf, 0)?;
    let Some(size) = el
        .size
        .filter(|&s| el.id == 0x1A45_DFA3 && s <= MAX_EBML_HEADER)
    else {
        return Err(ProbeError::corrupt("WebM: bad EBML header"));
    };
    let end = el.start as u64 + size;
    let mut doc_type = Vec::new();
    walk(buf, el.start, end, |child| {
        if child.id == ID_DOCTYPE {
            doc_type = payload(buf, child)?.to_vec();
        }
        Ok(true)
    })?;
    Ok((doc_type, end as usize))
}

/// The `DocType` of an EBML header, if it can be read from `head`.
pub fn doc_type(head: &[u8]) -> Option<&'static [u8]> {
    match header(head).ok()?.0.as_slice() {
        b"webm" => Some(b"webm"),
        b"matroska" => Some(b"matroska"),
        _ => None,
    }
}

/// What [`probe`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `None`: the file has no video track.
    pub info: Option<MediaInfo>,
    /// Where the segment ends, when its size is known.
    pub segment_end: Option<u64>,
}

/// Reads the EBML header, then `Info` and `Tracks` of the segment.
///
/// # Errors
/// [`ProbeError::NeedMore`] until `Info` and `Tracks` are in `buf` (callers
/// cap how far they read), [`ProbeError::Corrupt`] for a broken structure.
pub fn probe(buf: &[u8]) -> Result<Probe, ProbeError> {
    let (doc, header_end) = header(buf)?;
    if doc != b"webm" {
        return Err(ProbeError::corrupt("WebM: DocType is not webm"));
    }
    let seg = element(buf, header_end)?;
    if seg.id != ID_SEGMENT {
        return Err(ProbeError::corrupt(
            "WebM: no Segment after the EBML header",
        ));
    }
    let segment_end = seg.end();
    let mut info = MediaInfo::default();
    let (mut timescale, mut duration) = (1_000_000u64, None::<f64>);
    let (mut seen_info, mut seen_tracks, mut video) = (false, false, false);
    let mut audio = None;
    walk(buf, seg.start, segment_end.unwrap_or(u64::MAX), |el| {
        match el.id {
            ID_CLUSTER => return Ok(false),
            ID_INFO | ID_TRACKS if el.size.is_some_and(|s| s > MAX_META_ELEMENT) => {
                return Err(ProbeError::corrupt("WebM: oversized Info or Tracks"));
            }
            ID_INFO => {
                (timescale, duration) = segment_info(payload(buf, el)?, timescale)?;
                seen_info = true;
            }
            ID_TRACKS => {
                tracks(payload(buf, el)?, &mut info, &mut video, &mut audio)?;
                seen_tracks = true;
            }
            _ => {}
        }
        Ok(!(seen_info && seen_tracks))
    })?;
    if !seen_tracks {
        return Err(ProbeError::corrupt(
            "WebM: no Tracks before the first Cluster",
        ));
    }
    if let Some(d) = duration.filter(|d| d.is_finite() && *d > 0.0) {
        info.duration_ms = Some((d * timescale as f64 / 1e6) as u64);
    }
    info.audio = Some(audio.unwrap_or_else(|| "none".into()));
    Ok(Probe {
        info: video.then_some(info),
        segment_end,
    })
}

/// `TimestampScale` (default `timescale`) and `Duration` of the segment
/// `Info`.
fn segment_info(data: &[u8], mut timescale: u64) -> Result<(u64, Option<f64>), ProbeError> {
    let mut duration = None;
    walk(data, 0, data.len() as u64, |f| {
        let v = payload(data, f)?;
        match f.id {
            ID_TIMESCALE => timescale = uint(v),
            ID_DURATION => duration = float(v),
            _ => {}
        }
        Ok(true)
    })?;
    Ok((timescale, duration))
}

/// The first video track (into `info`) and the first audio track's codec.
fn tracks(
    data: &[u8],
    info: &mut MediaInfo,
    video: &mut bool,
    audio: &mut Option<String>,
) -> Result<(), ProbeError> {
    walk(data, 0, data.len() as u64, |entry| {
        if entry.id == ID_TRACK_ENTRY {
            let t = track(payload(data, entry)?)?;
            match t.kind {
                1 if !*video => {
                    *video = true;
                    t.fill(info);
                }
                2 if audio.is_none() => *audio = Some(audio_name(t.codec.as_deref())),
                _ => {}
            }
        }
        Ok(true)
    })
}

fn float(v: &[u8]) -> Option<f64> {
    match v.len() {
        4 => Some(f64::from(f32::from_be_bytes(v.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(v.try_into().ok()?)),
        _ => None,
    }
}

/// What a `TrackEntry` says.
#[derive(Debug, Default)]
struct Track {
    kind: u64,
    codec: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// Nanoseconds per frame.
    default_duration: Option<u64>,
}

impl Track {
    /// Fills `info` from a video track.
    fn fill(self, info: &mut MediaInfo) {
        info.width = self.width;
        info.height = self.height;
        info.fps_milli = self
            .default_duration
            .filter(|d| *d > 0)
            .and_then(|d| u32::try_from(1_000_000_000_000 / d).ok());
        info.codec = self.codec.map(|c| match c.as_str() {
            "V_VP8" => "vp8".into(),
            "V_VP9" => "vp9".into(),
            "V_AV1" => "av1".into(),
            other => other.trim_start_matches("V_").to_ascii_lowercase(),
        });
    }
}

fn track(data: &[u8]) -> Result<Track, ProbeError> {
    let mut t = Track::default();
    walk(data, 0, data.len() as u64, |f| {
        let v = payload(data, f)?;
        match f.id {
            ID_TRACK_TYPE => t.kind = uint(v),
            ID_CODEC_ID => t.codec = Some(String::from_utf8_lossy(v).into_owned()),
            ID_DEFAULT_DURATION => t.default_duration = Some(uint(v)),
            ID_VIDEO => walk(v, 0, v.len() as u64, |p| {
                let n = u32::try_from(uint(payload(v, p)?)).ok();
                match p.id {
                    ID_PIXEL_WIDTH => t.width = n,
                    ID_PIXEL_HEIGHT => t.height = n,
                    _ => {}
                }
                Ok(true)
            })?,
            _ => {}
        }
        Ok(true)
    })?;
    Ok(t)
}

/// The short name of a Matroska audio codec id.
fn audio_name(codec: Option<&str>) -> String {
    match codec.unwrap_or("") {
        "A_OPUS" => "opus".into(),
        "A_VORBIS" => "vorbis".into(),
        c if c.starts_with("A_AAC") => "aac".into(),
        "A_MPEG/L3" => "mp3".into(),
        "A_AC3" => "ac3".into(),
        "A_EAC3" => "eac3".into(),
        other => other.trim_start_matches("A_").to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::fixture;

    #[test]
    fn webm_metadata() {
        let b = fixture("clip.webm");
        let p = probe(&b).expect("probe");
        let info = p.info.expect("video");
        assert_eq!((info.width, info.height), (Some(640), Some(360)));
        assert_eq!(info.codec.as_deref(), Some("vp9"));
        assert!(
            info.duration_ms.is_some_and(|d| (2000..=2010).contains(&d)),
            "{info:?}"
        );
        assert!(p.segment_end.is_some_and(|e| e <= b.len() as u64));
        assert!(matches!(probe(&b[..40]), Err(ProbeError::NeedMore(_))));
        assert_eq!(info.audio.as_deref(), Some("opus"));
        let fps = probe(&fixture("vfr-webm-fps.webm"))
            .expect("probe")
            .info
            .expect("video");
        assert_eq!(
            (fps.fps_milli, fps.audio.as_deref()),
            (Some(25_000), Some("none"))
        );
    }

    #[test]
    fn matroska_and_bogus_headers() {
        assert_eq!(doc_type(&fixture("clip.mkv")), Some(&b"matroska"[..]));
        assert!(matches!(
            probe(&fixture("clip.mkv")),
            Err(ProbeError::Corrupt(_))
        ));
        assert!(matches!(
            probe(&fixture("bogus-ebml.webm")),
            Err(ProbeError::Corrupt(_))
        ));
    }
}
