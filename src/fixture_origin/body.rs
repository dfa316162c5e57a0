//! What the origin sends: file bytes or a generated MP4, with ranges, pacing
//! and the fault modes that cut, stall or never end a body.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::{Body, OriginStats};

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against a length; `Err` when not
/// satisfiable, `None` when not understood (served whole).
pub(super) fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.saturating_sub(1)),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(len.saturating_sub(1)),
        ),
    };
    if start >= len || start > end {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

/// What a response sends.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Bytes(Bytes),
    /// Head bytes, then a repeating block, then `tail`: `len` in all.
    Generated {
        head: Bytes,
        block: Bytes,
        tail: Bytes,
        len: u64,
    },
}

impl Source {
    pub(super) fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::Generated { len, .. } => *len,
        }
    }

    /// Up to `max` bytes at `offset`.
    fn slice(&self, offset: u64, max: usize) -> Bytes {
        match self {
            Source::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                b.slice(start..(start + max).min(b.len()))
            }
            Source::Generated {
                head,
                block,
                tail,
                len,
            } => {
                if offset < head.len() as u64 {
                    let s = offset as usize;
                    return head.slice(s..(s + max).min(head.len()));
                }
                let tail_at = len.saturating_sub(tail.len() as u64);
                if offset >= tail_at {
                    let s = usize::try_from(offset - tail_at)
                        .unwrap_or(usize::MAX)
                        .min(tail.len());
                    return tail.slice(s..(s + max).min(tail.len()));
                }
                let left = tail_at - offset;
                let in_block = ((offset - head.len() as u64) % block.len() as u64) as usize;
                let n = max
                    .min(block.len() - in_block)
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                block.slice(in_block..in_block + n)
            }
        }
    }
}

pub(super) struct SendPlan {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) truncate_at: Option<u64>,
    pub(super) stall_at: Option<u64>,
    pub(super) rate: Option<u64>,
}

const FRAME: usize = 64 * 1024;

pub(super) fn send(data: Source, plan: SendPlan, stats: Arc<OriginStats>) -> Body {
    let endless = plan.end == u64::MAX;
    let started = tokio::time::Instant::now();
    let stream = futures_util::stream::unfold((plan.start, data), move |(pos, data)| {
        let stats = stats.clone();
        let plan_end = plan.end;
        let (truncate_at, stall_at, rate, first) =
            (plan.truncate_at, plan.stall_at, plan.rate, plan.start);
        async move {
            if truncate_at.is_some_and(|t| pos >= t) {
                let err = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "truncated on purpose",
                );
                return Some((Err(err), (plan_end, data)));
            }
            if stall_at.is_some_and(|s| pos >= s) {
                std::future::pending::<()>().await;
            }
            if pos >= plan_end {
                return None;
            }
            let mut max = FRAME.min(usize::try_from(plan_end - pos).unwrap_or(FRAME));
            for limit in [truncate_at, stall_at].into_iter().flatten() {
                if limit > pos {
                    max = max.min(usize::try_from(limit - pos).unwrap_or(FRAME));
                }
            }
            if let Some(rate) = rate {
                max = max
                    .min(usize::try_from(rate.max(1)).unwrap_or(FRAME))
                    .max(1);
                let due = Duration::from_secs_f64((pos - first) as f64 / rate.max(1) as f64);
                tokio::time::sleep_until(started + due).await;
            }
            // An endless body is the file, then padding forever.
            let chunk = match data.slice(pos, max) {
                c if c.is_empty() && endless => Bytes::from(vec![0x55u8; max]),
                c => c,
            };
            if chunk.is_empty() {
                return None;
            }
            stats
                .bytes_sent
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let next = pos + chunk.len() as u64;
            Some((Ok(Frame::data(chunk)), (next, data)))
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(stream.boxed()))
}

/// `/gen/NAME.mp4?mib=N&seed=S&moov=end|front`: `clip.mp4`'s `ftyp` and
/// `moov` around an `mdat` of N MiB of a seeded pattern.
/// The `ftyp` and `moov` boxes of an MP4 file (empty when absent).
fn ftyp_and_moov(clip: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut ftyp, mut moov) = (Vec::new(), Vec::new());
    let mut pos = 0usize;
    while pos + 8 <= clip.len() {
        let size =
            u32::from_be_bytes([clip[pos], clip[pos + 1], clip[pos + 2], clip[pos + 3]]) as usize;
        if size < 8 || pos + size > clip.len() {
            break;
        }
        match &clip[pos + 4..pos + 8] {
            b"ftyp" => ftyp = clip[pos..pos + size].to_vec(),
            b"moov" => moov = clip[pos..pos + size].to_vec(),
            _ => {}
        }
        pos += size;
    }
    (ftyp, moov)
}

/// The payload pattern: xorshift bytes from the seed, in a 1 MiB block.
fn pattern(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub(super) async fn generated(
    media: &super::MediaSource,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Source, String> {
    if !name.ends_with(".mp4") {
        return Err("only .mp4 can be generated".into());
    }
    let mib: u64 = q.get("mib").and_then(|v| v.parse().ok()).unwrap_or(1);
    let seed: u64 = q.get("seed").and_then(|v| v.parse().ok()).unwrap_or(1);
    let clip = media
        .read("clip.mp4")
        .await
        .ok_or("clip.mp4 is not among the media")?;
    let (ftyp, moov) = ftyp_and_moov(&clip);
    let payload = mib * 1024 * 1024;
    let mut mdat_header = Vec::with_capacity(16);
    mdat_header.extend_from_slice(&1u32.to_be_bytes());
    mdat_header.extend_from_slice(b"mdat");
    mdat_header.extend_from_slice(&(payload + 16).to_be_bytes());
    let block = pattern(seed);
    let moov_end = q.get("moov").is_some_and(|v| v == "end");
    let mut head = ftyp;
    if !moov_end {
        head.extend_from_slice(&moov);
    }
    head.extend_from_slice(&mdat_header);
    // With `moov=end` the moov follows the pattern (and its chunk offsets,
    // which point into the first few hundred KiB of the mdat, stay valid).
    let tail = if moov_end { moov } else { Vec::new() };
    let len = head.len() as u64 + payload + tail.len() as u64;
    Ok(Source::Generated {
        head: Bytes::from(head),
        block: Bytes::from(block),
        tail: Bytes::from(tail),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=0-65535", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=0-0", 0), Some(Err(())));
        assert_eq!(parse_range("bytes=200-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,4-5", 100), None);
    }
}
