use super::*;
use crate::media::mp4::{Scanner, parse_moov};
use crate::testing::fixture;

/// The file remuxed as the worker stores it: prefix, new moov, the bytes
/// between the prefix and the old moov, whatever followed the old moov.
fn faststart(file: &[u8]) -> Result<Vec<u8>, Skip> {
    let Head::MdatFirst {
        prefix_end,
        mdat_end,
    } = head(file)
    else {
        panic!("a moov-at-end file: {:?}", head(file));
    };
    let from = usize::try_from(mdat_end).expect("small");
    let t = tail(&file[from..], mdat_end, file.len() as u64)?;
    let moov = &file[from + t.moov.start..from + t.moov.end];
    let new = remux(moov, prefix_end..t.moov_start)?;
    let p = usize::try_from(prefix_end).expect("small");
    let mut out = file[..p].to_vec();
    out.extend_from_slice(&new);
    out.extend_from_slice(&file[p..from + t.moov.start]);
    out.extend_from_slice(&file[from + t.moov.end..]);
    Ok(out)
}

fn top_level(file: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(Some(h)) = header(file, at, 0) {
        out.push(String::from_utf8_lossy(&h.kind).into_owned());
        at = usize::try_from(h.end.unwrap_or(file.len() as u64)).expect("small");
    }
    out
}

fn moov_of(file: &[u8]) -> &[u8] {
    let mut at = 0;
    while let Ok(Some(h)) = header(file, at, 0) {
        let end = usize::try_from(h.end.expect("sized")).expect("small");
        if &h.kind == b"moov" {
            return &file[at + h.header as usize..end];
        }
        at = end;
    }
    panic!("no moov")
}

fn be(b: &[u8], at: usize, width: usize) -> u64 {
    b[at..at + width]
        .iter()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Every sample of every track as `(offset, size)`, from stsz, stsc and
/// stco/co64: what a demuxer reads.
fn samples(moov: &[u8]) -> Vec<Vec<(u64, u64)>> {
    let mut tracks = Vec::new();
    for (kind, header, whole) in children(moov).map(|c| c.expect("child")) {
        if &kind != b"trak" {
            continue;
        }
        let stbl = find(&whole[header..], &[b"mdia", b"minf", b"stbl"])
            .expect("walk")
            .expect("stbl");
        let table = |name: &[u8; 4]| find(stbl, &[name]).expect("walk");
        let stsz = table(b"stsz").expect("stsz");
        let (fixed, count) = (be(stsz, 4, 4), be(stsz, 8, 4) as usize);
        let sizes: Vec<u64> = (0..count)
            .map(|i| {
                if fixed != 0 {
                    fixed
                } else {
                    be(stsz, 12 + 4 * i, 4)
                }
            })
            .collect();
        let (chunks, width) = match table(b"stco") {
            Some(c) => (c, 4),
            None => (table(b"co64").expect("co64"), 8),
        };
        let offsets: Vec<u64> = (0..be(chunks, 4, 4) as usize)
            .map(|i| be(chunks, 8 + width * i, width))
            .collect();
        let stsc = table(b"stsc").expect("stsc");
        let runs: Vec<(usize, u64)> = (0..be(stsc, 4, 4) as usize)
            .map(|i| (be(stsc, 8 + 12 * i, 4) as usize, be(stsc, 12 + 12 * i, 4)))
            .collect();
        let mut out = Vec::new();
        let mut sample = 0;
        for (c, &offset) in offsets.iter().enumerate() {
            let per = runs
                .iter()
                .rev()
                .find(|(first, _)| *first <= c + 1)
                .map_or(0, |r| r.1);
            let mut at = offset;
            for _ in 0..per {
                let size = sizes[sample];
                out.push((at, size));
                at += size;
                sample += 1;
            }
        }
        assert_eq!(sample, count, "every sample in a chunk");
        tracks.push(out);
    }
    tracks
}

fn sample_bytes(file: &[u8]) -> Vec<Vec<Vec<u8>>> {
    samples(moov_of(file))
        .into_iter()
        .map(|t| {
            t.into_iter()
                .map(|(o, s)| file[o as usize..(o + s) as usize].to_vec())
                .collect()
        })
        .collect()
}

fn info(file: &[u8]) -> crate::media::MediaInfo {
    let mut s = Scanner::default();
    s.feed(file).expect("scan");
    s.check_end().expect("whole");
    s.info().expect("parses").expect("video")
}

#[test]
fn real_encoders_files_come_out_moov_first_with_identical_samples() {
    for name in [
        "fs-h264-aac.mp4",
        "fs-hevc-aac-subs.mp4",
        "fs-phone.mov",
        "clip-moov-end.mp4",
        "noaudio-moov-end.mp4",
    ] {
        let src = fixture(name);
        let out = faststart(&src).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let (before, after) = (top_level(&src), top_level(&out));
        assert_eq!(after[1], "moov", "{name}: {after:?}");
        let mut kept = before.clone();
        kept.retain(|k| k != "moov");
        let mut rest = after.clone();
        rest.remove(1);
        assert_eq!(rest, kept, "{name}: other boxes in order");
        assert_eq!(out.len(), src.len(), "{name}: same size (no co64)");
        assert_eq!(
            sample_bytes(&out),
            sample_bytes(&src),
            "{name}: every sample"
        );
        let (a, b) = (info(&src), info(&out));
        assert_eq!((a.moov_first, b.moov_first), (Some(false), Some(true)));
        assert_eq!(
            crate::media::MediaInfo {
                moov_first: None,
                ..a
            },
            crate::media::MediaInfo {
                moov_first: None,
                ..b
            },
            "{name}"
        );
        assert_eq!(head(&out), Head::MoovFirst);
        assert_eq!(faststart(&src), Ok(out), "{name}: deterministic");
    }
}

#[test]
fn the_track_count_and_metadata_boxes_survive() {
    let out = faststart(&fixture("fs-hevc-aac-subs.mp4")).expect("remux");
    let traks = children(moov_of(&out))
        .map(|c| c.expect("child"))
        .filter(|(k, _, _)| k == b"trak")
        .count();
    assert_eq!(traks, 3, "video, audio, subtitles");
    let phone = faststart(&fixture("fs-phone.mov")).expect("remux");
    assert!(holds(moov_of(&phone), b"udta"));
    assert!(memchr::memmem::find(&phone, b"phone clip").is_some());
}

#[test]
fn layouts_that_need_no_move_or_cannot_move() {
    assert_eq!(head(&fixture("clip.mp4")), Head::MoovFirst);
    assert_eq!(head(&[]), Head::NeedMore(16));
    let src = fixture("fs-h264-aac.mp4");
    assert_eq!(
        head(&src[..20]),
        Head::NeedMore(48),
        "past the 32-byte ftyp"
    );
    assert!(matches!(
        head(&src[..48]),
        Head::MdatFirst { prefix_end: 32, .. }
    ));
    // An mdat that runs to the end of the file: nothing can follow it.
    let mut open_ended = src[..40].to_vec();
    open_ended.extend_from_slice(&[0, 0, 0, 0]);
    open_ended.extend_from_slice(b"mdat");
    assert_eq!(head(&open_ended), Head::Unmovable(Skip::MdatAfterMoov));
    let mut frag = src[..32].to_vec();
    frag.extend_from_slice(&[0, 0, 0, 8]);
    frag.extend_from_slice(b"moof");
    assert_eq!(head(&frag), Head::Unmovable(Skip::Fragmented));
    let mut bad = src[..32].to_vec();
    bad.extend_from_slice(&[0, 0, 0, 3]);
    bad.extend_from_slice(b"free");
    assert_eq!(head(&bad), Head::Unmovable(Skip::Unparsable));
    // A top-level meta before the media data, locating items by offset.
    let iloc = boxed(b"iloc", &[0; 8]).expect("box");
    let mut meta_payload = vec![0, 0, 0, 0];
    meta_payload.extend_from_slice(&iloc);
    let meta = boxed(b"meta", &meta_payload).expect("box");
    let mut with_meta = src[..32].to_vec();
    with_meta.extend_from_slice(&meta);
    assert_eq!(
        head(&with_meta[..40]),
        Head::NeedMore(32 + meta.len() as u64),
        "read it whole"
    );
    with_meta.extend_from_slice(&src[32..]);
    assert_eq!(head(&with_meta), Head::Unmovable(Skip::AbsoluteOffsets));
}

/// A synthetic moov: one track whose chunk offsets are `offsets` (as stco
/// or co64), plus the boxes `extra` inside stbl.
fn synthetic(offsets: &[u64], co64: bool, extra: &[u8]) -> Vec<u8> {
    let mut table = vec![0, 0, 0, 0];
    table.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
    for &o in offsets {
        if co64 {
            table.extend_from_slice(&o.to_be_bytes());
        } else {
            table.extend_from_slice(&(o as u32).to_be_bytes());
        }
    }
    let chunk = boxed(if co64 { b"co64" } else { b"stco" }, &table).expect("box");
    let mut stbl_payload = chunk;
    stbl_payload.extend_from_slice(extra);
    let stbl = boxed(b"stbl", &stbl_payload).expect("box");
    let minf = boxed(b"minf", &stbl).expect("box");
    let mdia = boxed(b"mdia", &minf).expect("box");
    let trak = boxed(b"trak", &mdia).expect("box");
    let mut moov = boxed(b"mvhd", &[0u8; 100]).expect("box");
    moov.extend_from_slice(&trak);
    boxed(b"moov", &moov).expect("box")
}

fn offsets_of(moov: &[u8]) -> (bool, Vec<u64>) {
    let payload = &moov[8..];
    let stbl = find(payload, &[b"trak", b"mdia", b"minf", b"stbl"])
        .expect("walk")
        .expect("stbl");
    let (t, width) = match find(stbl, &[b"stco"]).expect("walk") {
        Some(t) => (t, 4),
        None => (find(stbl, &[b"co64"]).expect("walk").expect("co64"), 8),
    };
    let n = be(t, 4, 4) as usize;
    (
        width == 8,
        (0..n).map(|i| be(t, 8 + width * i, width)).collect(),
    )
}

#[test]
fn offsets_near_4_gib_upgrade_stco_to_co64_and_converge() {
    let near = u64::from(u32::MAX) - 100;
    let offsets = [1000, near - 5000, near];
    let moov = synthetic(&offsets, false, &[]);
    let media = 40..near + 1000;
    let new = remux(&moov, media).expect("remux");
    let (wide, got) = offsets_of(&new);
    assert!(wide, "an offset passed 2^32: co64");
    let shift = new.len() as u64;
    assert_eq!(
        shift,
        moov.len() as u64 + 4 * 3,
        "the table grew by 4 bytes an entry"
    );
    let want: Vec<u64> = offsets.iter().map(|o| o + shift).collect();
    assert_eq!(got, want, "shifted by the final moov's own size");
    // Far from 2^32: stays stco, same size.
    let small = synthetic(&[1000, 2000], false, &[]);
    let new = remux(&small, 40..5000).expect("remux");
    assert_eq!(
        offsets_of(&new),
        (
            false,
            vec![1000 + new.len() as u64, 2000 + new.len() as u64]
        )
    );
    // co64 stays co64.
    let big = synthetic(&[5 << 32], true, &[]);
    let new = remux(&big, 40..(6 << 32)).expect("remux");
    assert_eq!(offsets_of(&new), (true, vec![(5 << 32) + new.len() as u64]));
}

#[test]
fn hostile_tables_are_refused_never_trusted() {
    // An offset outside the media data.
    let moov = synthetic(&[10], false, &[]);
    assert_eq!(remux(&moov, 40..5000), Err(Skip::OffsetsOutside));
    // A count larger than the table.
    let mut lying = synthetic(&[1000], false, &[]);
    let at = memchr::memmem::find(&lying, b"stco").expect("stco") + 8;
    lying[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(remux(&lying, 40..5000), Err(Skip::Unparsable));
    // A child box larger than its parent.
    let mut oversized = synthetic(&[1000], false, &[]);
    let at = memchr::memmem::find(&oversized, b"trak").expect("trak") - 4;
    oversized[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    assert_eq!(remux(&oversized, 40..5000), Err(Skip::Unparsable));
    // Offsets outside the chunk tables, and fragments.
    let saio = boxed(b"saio", &[0; 12]).expect("box");
    assert_eq!(
        remux(&synthetic(&[1000], false, &saio), 40..5000),
        Err(Skip::AbsoluteOffsets)
    );
    let mvex = boxed(b"mvex", &[]).expect("box");
    let mut with_mvex = synthetic(&[1000], false, &[])[8..].to_vec();
    with_mvex.extend_from_slice(&mvex);
    let with_mvex = boxed(b"moov", &with_mvex).expect("box");
    assert_eq!(remux(&with_mvex, 40..5000), Err(Skip::Fragmented));
    // Not a moov at all, or a cut one.
    assert_eq!(remux(b"\0\0\0\x08free", 0..10), Err(Skip::Unparsable));
    let moov = synthetic(&[1000], false, &[]);
    assert_eq!(
        remux(&moov[..moov.len() - 1], 40..5000),
        Err(Skip::Unparsable)
    );
}

#[test]
fn data_in_another_file_is_not_moved() {
    // dref with one `url ` entry whose flags lack "self-contained".
    let entry = boxed(b"url ", &[0, 0, 0, 0]).expect("box");
    let mut dref = vec![0, 0, 0, 0, 0, 0, 0, 1];
    dref.extend_from_slice(&entry);
    let dinf = boxed(b"dinf", &boxed(b"dref", &dref).expect("box")).expect("box");
    let minf = boxed(b"minf", &dinf).expect("box");
    let trak = boxed(b"trak", &boxed(b"mdia", &minf).expect("box")).expect("box");
    let moov = boxed(b"moov", &trak).expect("box");
    assert_eq!(remux(&moov, 0..10), Err(Skip::ExternalData));
}

#[test]
fn tails_with_two_moovs_media_after_moov_or_fragments_are_refused() {
    let src = fixture("fs-h264-aac.mp4");
    let Head::MdatFirst { mdat_end, .. } = head(&src) else {
        panic!("moov at end")
    };
    let from = mdat_end as usize;
    let t = &src[from..];
    let total = src.len() as u64;
    assert!(tail(t, mdat_end, total).is_ok());
    assert_eq!(
        tail(&t[..t.len() - 1], mdat_end, total),
        Err(Skip::Unparsable)
    );
    let mut two = t.to_vec();
    two.extend_from_slice(t);
    assert_eq!(
        tail(&two, mdat_end, total + t.len() as u64),
        Err(Skip::Unparsable)
    );
    let mut media_after = t.to_vec();
    media_after.extend_from_slice(&[0, 0, 0, 8]);
    media_after.extend_from_slice(b"mdat");
    assert_eq!(
        tail(&media_after, mdat_end, total + 8),
        Err(Skip::MdatAfterMoov)
    );
    let mut frag = t.to_vec();
    frag.extend_from_slice(&[0, 0, 0, 8]);
    frag.extend_from_slice(b"mfra");
    assert_eq!(tail(&frag, mdat_end, total + 8), Err(Skip::Fragmented));
    let _ = parse_moov;
}
