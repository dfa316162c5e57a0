//! Faststart (contract v4): an MP4/MOV whose `moov` follows its media data,
//! rewritten losslessly with `moov` first. Only the layout is read and only
//! `moov` is rewritten; the media data is streamed through untouched by the
//! caller (`ingest::byo`), so this module never sees it.
//!
//! The stored copy is: the leading `ftyp` (the *prefix*; nothing when the
//! file does not start with one), the new `moov`, then every other
//! top-level box in its original order. Every byte between the prefix and
//! the old `moov` moves forward by the new `moov`'s size, so each chunk
//! offset in `stco`/`co64` grows by that much; an `stco` whose largest
//! offset would pass 2^32 becomes a `co64`, which grows `moov`, which
//! shifts again: [`remux`] repeats until the size stops changing. Sample
//! bytes, sample tables, timestamps and every other box stay as they are.
//!
//! What cannot be moved this way is left alone, with the reason
//! ([`Skip`]): fragmented files, media data after `moov`, offsets outside
//! the chunk tables (`saio`, `iloc`), data in other files (`dref`), chunk
//! offsets outside the media data, a `moov` that cannot be rewritten.
//!
//! Every size, count and offset is checked against the bytes that hold it;
//! the rebuilt `moov` (the old one's size plus its `co64` growth, built
//! once per pass) and one chunk table's offsets are all that is allocated,
//! and nothing panics on any input (fuzzed in `tests/fuzz.rs`).

use std::ops::Range;

/// Why a moov-at-end file is stored as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The origin answered a ranged request with the whole file.
    NoRanges,
    /// The origin sent neither `ETag` nor `Last-Modified`.
    NoValidator,
    /// Fragmented (`moof`, `mvex`, `sidx`, `mfra`): already streamable.
    Fragmented,
    /// An `mdat` after `moov`, or one that runs to the end of the file.
    MdatAfterMoov,
    /// `saio` or `iloc`: offsets that are not in the chunk tables.
    AbsoluteOffsets,
    /// A track's data lives in another file (`dref`).
    ExternalData,
    /// A chunk offset outside the media data.
    OffsetsOutside,
    /// `moov` and what follows the media data exceed the `moov` limit.
    TailTooLarge,
    /// The layout or `moov` could not be walked (no `moov`, two of them,
    /// sizes that do not add up, a table larger than its box).
    Unparsable,
}

impl Skip {
    /// The metric label (`rehost_faststart_skipped_total{reason}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NoRanges => "no_ranges",
            Skip::NoValidator => "no_validator",
            Skip::Fragmented => "fragmented",
            Skip::MdatAfterMoov => "mdat_after_moov",
            Skip::AbsoluteOffsets => "absolute_offsets",
            Skip::ExternalData => "external_data",
            Skip::OffsetsOutside => "offsets_outside",
            Skip::TailTooLarge => "tail_too_large",
            Skip::Unparsable => "unparsable",
        }
    }

    /// Why, for the `moov_first` violation's message.
    pub fn why(self) -> &'static str {
        match self {
            Skip::NoRanges => {
                "the origin does not serve byte ranges, so rehost cannot move the moov box"
            }
            Skip::NoValidator => {
                "the origin sends neither ETag nor Last-Modified, so rehost cannot be sure its reads are of one file"
            }
            Skip::Fragmented => "the file is fragmented",
            Skip::MdatAfterMoov => "media data follows the moov box",
            Skip::AbsoluteOffsets => {
                "the file locates data outside its chunk tables (saio or iloc)"
            }
            Skip::ExternalData => "a track's media data lives in another file",
            Skip::OffsetsOutside => "a chunk offset points outside the media data",
            Skip::TailTooLarge => {
                "what follows its media data (the moov box and anything after it) is larger than rehost's 32 MiB limit"
            }
            Skip::Unparsable => "rehost could not rewrite its moov box",
        }
    }

    /// Every reason, for the metric's zero series.
    pub const ALL: [Skip; 9] = [
        Skip::NoRanges,
        Skip::NoValidator,
        Skip::Fragmented,
        Skip::MdatAfterMoov,
        Skip::AbsoluteOffsets,
        Skip::ExternalData,
        Skip::OffsetsOutside,
        Skip::TailTooLarge,
        Skip::Unparsable,
    ];
}

/// What the first bytes of a file say about where its `moov` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// Read on: at least this many bytes from the start are needed.
    NeedMore(u64),
    /// `moov` comes before any media data: nothing to move.
    MoovFirst,
    /// The media data comes first. `prefix_end`: where the leading `ftyp`
    /// ends (0 without one); `mdat_end`: where the first `mdat` ends.
    MdatFirst { prefix_end: u64, mdat_end: u64 },
    /// A moov-at-end file that cannot be moved.
    Unmovable(Skip),
}

/// How far into a file the first `mdat` is looked for.
pub const HEAD_LIMIT: u64 = 1024 * 1024;

/// One top-level box header: its type, start, header length and end
/// (`None`: it runs to the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    kind: [u8; 4],
    start: u64,
    header: u64,
    end: Option<u64>,
}

/// Reads the box header at `at` of `buf` (whose first byte is file offset
/// `base`): `Ok(None)` when `buf` ends first.
fn header(buf: &[u8], at: usize, base: u64) -> Result<Option<Header>, Skip> {
    let Some(h) = buf.get(at..at.saturating_add(8)) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let kind = [h[4], h[5], h[6], h[7]];
    let start = base + at as u64;
    let (size, header) = match size32 {
        0 => (None, 8),
        1 => {
            let Some(l) = buf.get(at + 8..at + 16) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(l);
            (Some(u64::from_be_bytes(b)), 16)
        }
        s => (Some(u64::from(s)), 8),
    };
    let end = match size {
        None => None,
        Some(s) if s < header => return Err(Skip::Unparsable),
        Some(s) => Some(start.checked_add(s).ok_or(Skip::Unparsable)?),
    };
    Ok(Some(Header {
        kind,
        start,
        header,
        end,
    }))
}

fn fragmented(kind: &[u8; 4]) -> bool {
    matches!(kind, b"moof" | b"sidx" | b"mfra" | b"styp")
}

/// Where the `moov` of a file is, from its first bytes (`buf` starts at
/// byte 0).
pub fn head(buf: &[u8]) -> Head {
    let mut at = 0usize;
    let mut prefix_end = 0;
    loop {
        let h = match header(buf, at, 0) {
            Ok(Some(h)) => h,
            Ok(None) if (at as u64) + 16 > HEAD_LIMIT => return Head::Unmovable(Skip::Unparsable),
            Ok(None) => return Head::NeedMore(at as u64 + 16),
            Err(s) => return Head::Unmovable(s),
        };
        match &h.kind {
            b"moov" => return Head::MoovFirst,
            k if fragmented(k) => return Head::Unmovable(Skip::Fragmented),
            b"mdat" => {
                return match h.end {
                    Some(mdat_end) => Head::MdatFirst {
                        prefix_end,
                        mdat_end,
                    },
                    None => Head::Unmovable(Skip::MdatAfterMoov),
                };
            }
            _ => {}
        }
        let Some(end) = h.end else {
            return Head::Unmovable(Skip::Unparsable);
        };
        if h.start == 0 && &h.kind == b"ftyp" {
            prefix_end = end;
        }
        if end > HEAD_LIMIT {
            return Head::Unmovable(Skip::Unparsable);
        }
        // A top-level `meta` may locate items by absolute offset (`iloc`),
        // which moving `moov` would break: read it whole and look.
        if &h.kind == b"meta" {
            let whole = usize::try_from(end).ok().and_then(|e| buf.get(at..e));
            match whole {
                None => return Head::NeedMore(end),
                Some(b) if holds(b, b"iloc") => return Head::Unmovable(Skip::AbsoluteOffsets),
                Some(_) => {}
            }
        }
        at = usize::try_from(end).unwrap_or(usize::MAX);
    }
}

/// The boxes after the first `mdat`: where the `moov` is among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The whole `moov` box, within the tail's bytes.
    pub moov: Range<usize>,
    /// The `moov` box's start in the file.
    pub moov_start: u64,
}

/// Walks the tail (`buf` holds the file from byte `from` to its end,
/// `total`): every box whole, exactly one `moov`, no media data after it,
/// nothing fragmented, no top-level `meta` locating items by offset.
///
/// # Errors
/// Why the file cannot be moved.
pub fn tail(buf: &[u8], from: u64, total: u64) -> Result<Tail, Skip> {
    if from.checked_add(buf.len() as u64) != Some(total) {
        return Err(Skip::Unparsable);
    }
    let mut at = 0usize;
    let mut moov: Option<Tail> = None;
    while at < buf.len() {
        let h = header(buf, at, from)?.ok_or(Skip::Unparsable)?;
        let end = h.end.unwrap_or(total);
        let len = usize::try_from(end - h.start).map_err(|_| Skip::Unparsable)?;
        let next = at.checked_add(len).filter(|&n| n <= buf.len());
        let next = next.ok_or(Skip::Unparsable)?;
        match &h.kind {
            b"moov" if moov.is_some() => return Err(Skip::Unparsable),
            b"moov" => {
                moov = Some(Tail {
                    moov: at..next,
                    moov_start: h.start,
                });
            }
            b"mdat" if moov.is_some() => return Err(Skip::MdatAfterMoov),
            b"meta" if holds(&buf[at + h.header as usize..next], b"iloc") => {
                return Err(Skip::AbsoluteOffsets);
            }
            k if fragmented(k) => return Err(Skip::Fragmented),
            _ => {}
        }
        at = next;
    }
    moov.ok_or(Skip::Unparsable)
}

/// A child box: its type, header length and whole bytes.
type Child<'a> = ([u8; 4], usize, &'a [u8]);

/// The children of a box payload, one at a time (nothing is collected:
/// a hostile `moov` of many tiny boxes costs no memory here); a box that
/// does not fit ends the walk with an error.
fn children(payload: &[u8]) -> impl Iterator<Item = Result<Child<'_>, Skip>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= payload.len() {
            return None;
        }
        let child = (|| {
            let h = header(payload, at, 0)?.ok_or(Skip::Unparsable)?;
            let end = h.end.unwrap_or(payload.len() as u64);
            let end = usize::try_from(end)
                .ok()
                .filter(|&e| e <= payload.len())
                .ok_or(Skip::Unparsable)?;
            Ok((h.kind, h.header as usize, &payload[at..end], end))
        })();
        Some(match child {
            Ok((kind, header, whole, end)) => {
                at = end;
                Ok((kind, header, whole))
            }
            Err(e) => {
                at = payload.len();
                Err(e)
            }
        })
    })
}

/// Boxes whose payload is a list of boxes, on the way to what faststart
/// looks for; `meta` may also be a full box (four bytes of version and
/// flags first), as ISO writes it.
const CONTAINERS: &[&[u8; 4]] = &[
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf", b"meta", b"mvex",
];

/// Whether a box of type `want` lies anywhere under `payload`, walking the
/// known containers (a `meta` both as a plain and as a full box).
fn holds(payload: &[u8], want: &[u8; 4]) -> bool {
    holds_at(payload, want, 0)
}

fn holds_at(payload: &[u8], want: &[u8; 4], depth: u32) -> bool {
    depth < 12
        && children(payload)
            .map_while(Result::ok)
            .any(|(kind, header, whole)| {
                let inner = &whole[header..];
                &kind == want
                    || (CONTAINERS.contains(&&kind)
                        && (holds_at(inner, want, depth + 1)
                            || (&kind == b"meta"
                                && inner.len() >= 4
                                && holds_at(&inner[4..], want, depth + 1))))
            })
}

/// The new `moov` for a file whose media data (and every chunk) lies in
/// `media` (from the prefix's end to the old `moov`'s start): each chunk
/// offset moved forward by the new `moov`'s own size. `moov` is the whole
/// old box.
///
/// # Errors
/// Why the file cannot be moved.
pub fn remux(moov: &[u8], media: Range<u64>) -> Result<Vec<u8>, Skip> {
    let h = header(moov, 0, 0)?.ok_or(Skip::Unparsable)?;
    if &h.kind != b"moov" || h.end != Some(moov.len() as u64) {
        return Err(Skip::Unparsable);
    }
    let payload = &moov[h.header as usize..];
    check_movable(payload)?;
    let mut shift = moov.len() as u64;
    // Each pass can only grow moov (an stco becoming co64), and each stco
    // upgrades at most once: a few passes reach the fixed point.
    for _ in 0..64 {
        let built = rebuild(b"moov", payload, shift, &media)?;
        if built.len() as u64 == shift {
            return Ok(built);
        }
        shift = built.len() as u64;
    }
    Err(Skip::Unparsable)
}

/// Refuses what cannot be moved by shifting chunk offsets.
fn check_movable(moov_payload: &[u8]) -> Result<(), Skip> {
    if holds(moov_payload, b"mvex") {
        return Err(Skip::Fragmented);
    }
    if holds(moov_payload, b"saio") || holds(moov_payload, b"iloc") {
        return Err(Skip::AbsoluteOffsets);
    }
    for child in children(moov_payload) {
        let (kind, header, whole) = child?;
        if &kind == b"trak" && external_data(&whole[header..])? {
            return Err(Skip::ExternalData);
        }
    }
    Ok(())
}

/// Whether a track's data reference points outside the file: a `dref`
/// entry without the self-contained flag.
fn external_data(trak: &[u8]) -> Result<bool, Skip> {
    let Some(dref) = find(trak, &[b"mdia", b"minf", b"dinf", b"dref"])? else {
        return Ok(false);
    };
    // Full box, entry count, then entries (each a full box).
    let entries = dref.get(8..).ok_or(Skip::Unparsable)?;
    for child in children(entries) {
        let (_, header, whole) = child?;
        let flags = whole.get(header + 1..header + 4).ok_or(Skip::Unparsable)?;
        if flags[2] & 1 == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The payload at `path` under `payload`.
fn find<'a>(payload: &'a [u8], path: &[&[u8; 4]]) -> Result<Option<&'a [u8]>, Skip> {
    let mut cur = payload;
    for want in path {
        let mut found = None;
        for child in children(cur) {
            let (kind, header, whole) = child?;
            if &kind == *want {
                found = Some(&whole[header..]);
                break;
            }
        }
        match found {
            Some(inner) => cur = inner,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// Containers on the way to the chunk offset tables.
const ON_THE_WAY: &[&[u8; 4]] = &[b"trak", b"mdia", b"minf", b"stbl"];

/// A box of type `kind` with `payload` rebuilt: chunk offset tables
/// shifted, the containers on the way to them resized, the rest copied.
fn rebuild(
    kind: &[u8; 4],
    payload: &[u8],
    shift: u64,
    media: &Range<u64>,
) -> Result<Vec<u8>, Skip> {
    let mut body = Vec::with_capacity(payload.len() + 64);
    for c in children(payload) {
        let (child, header, whole) = c?;
        let inner = &whole[header..];
        match &child {
            k if ON_THE_WAY.contains(&k) => body.extend(rebuild(k, inner, shift, media)?),
            b"stco" => body.extend(chunk_offsets(inner, 4, shift, media)?),
            b"co64" => body.extend(chunk_offsets(inner, 8, shift, media)?),
            _ => body.extend_from_slice(whole),
        }
    }
    boxed(kind, &body)
}

/// A box: 32-bit size (64-bit when it needs it), type, payload.
fn boxed(kind: &[u8; 4], payload: &[u8]) -> Result<Vec<u8>, Skip> {
    let len = payload.len() as u64 + 8;
    let mut out = Vec::with_capacity(payload.len() + 16);
    match u32::try_from(len) {
        Ok(l) => {
            out.extend_from_slice(&l.to_be_bytes());
            out.extend_from_slice(kind);
        }
        Err(_) => {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(&(len + 8).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// An `stco` (`width` 4) or `co64` (8) payload with every offset moved by
/// `shift`: an `stco` becomes a `co64` when an offset would not fit in 32
/// bits. Every offset must lie in `media`.
fn chunk_offsets(
    payload: &[u8],
    width: usize,
    shift: u64,
    media: &Range<u64>,
) -> Result<Vec<u8>, Skip> {
    let head = payload.get(..8).ok_or(Skip::Unparsable)?;
    let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let table = &payload[8..];
    if count.checked_mul(width) != Some(table.len()) {
        return Err(Skip::Unparsable);
    }
    let mut offsets = Vec::with_capacity(count);
    for entry in table.chunks_exact(width) {
        let old = match width {
            4 => u64::from(u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]])),
            _ => u64::from_be_bytes([
                entry[0], entry[1], entry[2], entry[3], entry[4], entry[5], entry[6], entry[7],
            ]),
        };
        if !media.contains(&old) {
            return Err(Skip::OffsetsOutside);
        }
        offsets.push(old.checked_add(shift).ok_or(Skip::Unparsable)?);
    }
    let wide = width == 8 || offsets.iter().any(|&o| o > u64::from(u32::MAX));
    let mut out = Vec::with_capacity(8 + count * if wide { 8 } else { 4 });
    out.extend_from_slice(&head[..4]);
    out.extend_from_slice(&head[4..8]);
    for o in offsets {
        match (wide, u32::try_from(o)) {
            (false, Ok(o32)) => out.extend_from_slice(&o32.to_be_bytes()),
            _ => out.extend_from_slice(&o.to_be_bytes()),
        }
    }
    boxed(if wide { b"co64" } else { b"stco" }, &out)
}

#[cfg(test)]
mod tests;
