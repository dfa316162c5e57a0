//! MP4 and MOV (ISO base media): top-level boxes walked as bytes stream past,
//! the `moov` box captured (bounded) and parsed for the video track.
//!
//! The `moov` box may come before `mdat` ("faststart") or after it; the
//! scanner finds it either way without holding anything but `moov` itself.

use super::read::{be32, be64, bytes, u8_at};

mod track;
use super::{MediaInfo, ProbeError};

/// Largest `moov` the scanner keeps in memory for metadata. A bigger one is
/// walked past (the file can still be valid) and its metadata omitted.
pub use crate::bounds::MOOV_LIMIT as MOOV_CAP;

/// Walks top-level boxes of a stream that starts at byte `offset` of a file.
#[derive(Debug)]
pub struct Scanner {
    offset: u64,
    header: Vec<u8>,
    current: Option<Current>,
    moov: Option<Vec<u8>>,
    moov_too_big: bool,
    boxes: u32,
    /// Whether `moov` came before `mdat` (set by whichever comes first).
    moov_first: Option<bool>,
}

#[derive(Debug)]
struct Current {
    kind: [u8; 4],
    /// `None`: the box runs to the end of the file (size 0).
    end: Option<u64>,
    capture: Option<Vec<u8>>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::at(0)
    }
}

impl Scanner {
    /// A scanner for bytes that start at `offset` of the file, which must be
    /// the start of a top-level box.
    pub fn at(offset: u64) -> Self {
        Scanner {
            offset,
            header: Vec::with_capacity(16),
            current: None,
            moov: None,
            moov_too_big: false,
            boxes: 0,
            // A scanner started past the file's start reads a tail that
            // follows `mdat`.
            moov_first: (offset > 0).then_some(false),
        }
    }

    /// Bytes seen so far, counted from the start of the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds the next bytes of the file.
    ///
    /// # Errors
    /// A message when a box header is impossible.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            if let Some(cur) = &mut self.current {
                let take = match cur.end {
                    None => data.len(),
                    Some(end) => data
                        .len()
                        .min(usize::try_from(end - self.offset).unwrap_or(usize::MAX)),
                };
                if let Some(buf) = &mut cur.capture {
                    buf.extend_from_slice(&data[..take]);
                }
                self.offset += take as u64;
                data = &data[take..];
                if cur.end == Some(self.offset) {
                    self.close_box();
                }
            } else {
                data = self.read_header(data)?;
            }
        }
        Ok(())
    }

    fn close_box(&mut self) {
        if let Some(cur) = self.current.take()
            && &cur.kind == b"moov"
            && let Some(buf) = cur.capture
        {
            self.moov = Some(buf);
        }
    }

    fn read_header<'a>(&mut self, data: &'a [u8]) -> Result<&'a [u8], String> {
        let want = if self.header.len() >= 8 && self.header[..4] == [0, 0, 0, 1] {
            16
        } else {
            8
        };
        let take = (want - self.header.len()).min(data.len());
        self.header.extend_from_slice(&data[..take]);
        self.offset += take as u64;
        let rest = &data[take..];
        if self.header.len() < want || (want == 8 && self.header[..4] == [0, 0, 0, 1]) {
            return Ok(rest);
        }
        let start = self.offset - self.header.len() as u64;
        let size32 = u32::from_be_bytes([
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ]);
        let kind = [
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ];
        if !kind.iter().all(|&b| (0x20..0x7F).contains(&b) || b == 0xA9) {
            return Err(format!("not an ISO BMFF box at byte {start}"));
        }
        let end = match size32 {
            0 => None,
            1 => {
                let mut large = [0u8; 8];
                large.copy_from_slice(&self.header[8..16]);
                let size = u64::from_be_bytes(large);
                if size < 16 {
                    return Err(format!("box {} has an impossible size", show(&kind)));
                }
                Some(start.checked_add(size).ok_or("box size overflows")?)
            }
            s if s < 8 => return Err(format!("box {} has an impossible size", show(&kind))),
            s => Some(start + u64::from(s)),
        };
        if self.moov_first.is_none() && (&kind == b"moov" || &kind == b"mdat") {
            self.moov_first = Some(&kind == b"moov");
        }
        let payload = end.map(|e| e - self.offset);
        let capture = if &kind == b"moov" {
            match payload {
                Some(p) if p <= MOOV_CAP => Some(Vec::with_capacity(p.min(1 << 20) as usize)),
                _ => {
                    self.moov_too_big = true;
                    None
                }
            }
        } else {
            None
        };
        self.header.clear();
        self.boxes += 1;
        self.current = Some(Current { kind, end, capture });
        if end == Some(self.offset) {
            self.close_box();
        }
        Ok(rest)
    }

    /// Where the box being read ends, when the scanner is inside one whose
    /// end is known: the offset of the next top-level box.
    pub fn current_box_end(&self) -> Option<u64> {
        self.current.as_ref().and_then(|c| c.end)
    }

    /// Whether `moov` came before `mdat`, once either was seen.
    pub fn moov_first(&self) -> Option<bool> {
        self.moov_first
    }

    /// Whether the `moov` box has been read whole.
    pub fn has_moov(&self) -> bool {
        self.moov.is_some()
    }

    /// Checks the stream ended exactly at a box boundary, `total` bytes in.
    ///
    /// # Errors
    /// A message when the file ends inside a box or its header.
    pub fn check_end(&self) -> Result<(), String> {
        if !self.header.is_empty() {
            return Err("file ends inside a box header (truncated)".into());
        }
        if let Some(cur) = &self.current
            && let Some(end) = cur.end
            && end > self.offset
        {
            return Err(format!(
                "file ends inside box {} ({} of {} bytes; truncated)",
                show(&cur.kind),
                self.offset,
                end
            ));
        }
        if self.boxes == 0 {
            return Err("no boxes".into());
        }
        Ok(())
    }

    /// Whether a `moov` box was seen but too big to keep.
    pub fn moov_too_big(&self) -> bool {
        self.moov_too_big
    }

    /// Metadata from the captured `moov`: `Ok(None)` when there is no video
    /// track, `Err` when `moov` is malformed, and defaults when no `moov`
    /// was kept (none seen yet, or too big to keep).
    pub fn info(&self) -> Result<Option<MediaInfo>, ProbeError> {
        let info = match &self.moov {
            Some(moov) => parse_moov(moov)?,
            None => Some(MediaInfo::default()),
        };
        Ok(info.map(|i| MediaInfo {
            moov_first: self.moov_first,
            ..i
        }))
    }
}

fn show(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// Child boxes of a box payload: `(type, payload)`.
fn children(buf: &[u8]) -> impl Iterator<Item = Result<([u8; 4], &[u8]), ProbeError>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let item = (|| {
            let size32 = be32(buf, pos)?;
            let kind: [u8; 4] = bytes(buf, pos + 4)?;
            let (size, header) = match size32 {
                0 => ((buf.len() - pos) as u64, 8),
                1 => (be64(buf, pos + 8)?, 16),
                s => (u64::from(s), 8),
            };
            let end = usize::try_from(size)
                .ok()
                .and_then(|s| pos.checked_add(s))
                .filter(|&e| size >= header && e <= buf.len())
                .ok_or_else(|| {
                    ProbeError::corrupt(format!("MP4: box {} has a bad size", show(&kind)))
                })?;
            let payload = &buf[pos + header as usize..end];
            pos = end;
            Ok((kind, payload))
        })();
        if item.is_err() {
            pos = buf.len();
        }
        Some(item)
    })
}

fn child<'a>(buf: &'a [u8], want: &[u8; 4]) -> Result<Option<&'a [u8]>, ProbeError> {
    for c in children(buf) {
        let (kind, payload) = c?;
        if &kind == want {
            return Ok(Some(payload));
        }
    }
    Ok(None)
}

fn path<'a>(buf: &'a [u8], names: &[&[u8; 4]]) -> Result<Option<&'a [u8]>, ProbeError> {
    let mut cur = buf;
    for name in names {
        match child(cur, name)? {
            Some(p) => cur = p,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// Timescale and duration from an `mvhd` or `mdhd` payload (full boxes of
/// the same layout for these fields).
fn time(payload: &[u8]) -> Result<Option<u64>, ProbeError> {
    let (timescale, duration) = match u8_at(payload, 0)? {
        1 => (be32(payload, 20)?, be64(payload, 24)?),
        _ => (be32(payload, 12)?, u64::from(be32(payload, 16)?)),
    };
    if timescale == 0 || duration == 0 || duration == u64::MAX || duration == u64::from(u32::MAX) {
        return Ok(None);
    }
    Ok(Some(
        (u128::from(duration) * 1000 / u128::from(timescale)) as u64,
    ))
}

fn codec_name(fourcc: &[u8; 4]) -> String {
    match fourcc {
        b"avc1" | b"avc3" => "h264".into(),
        b"hvc1" | b"hev1" => "hevc".into(),
        b"av01" => "av1".into(),
        b"vp09" => "vp9".into(),
        b"vp08" => "vp8".into(),
        b"mp4v" => "mpeg4".into(),
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores".into(),
        other => show(other).trim().to_string(),
    }
}

/// Parses a `moov` payload; `Ok(None)` when it has no video track.
pub fn parse_moov(moov: &[u8]) -> Result<Option<MediaInfo>, ProbeError> {
    let movie_ms = match child(moov, b"mvhd")? {
        Some(mvhd) => time(mvhd)?,
        None => return Err(ProbeError::corrupt("MP4: moov has no mvhd")),
    };
    let (mut video, mut audio, mut edit_list) = (None::<(track::Track, &[u8])>, None, false);
    for c in children(moov) {
        let (kind, trak) = c?;
        if &kind != b"trak" {
            continue;
        }
        let Some(t) = track::parse(trak)? else {
            continue;
        };
        edit_list |= t.edit_list;
        match &t.handler {
            b"vide" if video.is_none() => video = Some((t, trak)),
            b"soun" if audio.is_none() => audio = Some(t.codec.unwrap_or_else(|| "other".into())),
            _ => {}
        }
    }
    let Some((v, trak)) = video else {
        return Ok(None);
    };
    let mut duration_ms = movie_ms;
    if duration_ms.is_none()
        && let Some(mdhd) = path(trak, &[b"mdia", b"mdhd"])?
    {
        duration_ms = time(mdhd)?;
    }
    Ok(Some(MediaInfo {
        width: v.width,
        height: v.height,
        duration_ms,
        codec: v.codec,
        fps_milli: v.fps_milli,
        audio: Some(audio.unwrap_or_else(|| "none".into())),
        moov_first: None,
        edit_list: Some(edit_list),
    }))
}

#[cfg(test)]
mod tests;
