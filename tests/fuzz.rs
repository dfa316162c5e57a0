//! Property-based fuzzing of every parser that reads untrusted bytes: the job
//! parser, the format sniffer, the image header probes and structure checks,
//! the MP4/MOV scanner and the WebM probe, the faststart remuxer (layout,
//! tail and `moov` rewrite), the image metadata scan, the lossless metadata
//! strip and the re-encode.
//!
//! The seed corpus is `fixtures/media` (and `fixtures/jobs`): each property
//! takes a fixture and mutates it (byte flips, truncation, insertion,
//! splicing, random chunking), plus fully random inputs. The property is
//! always the same: no panic, no hang, and answers that stay consistent.
//! `PROPTEST_CASES` sets the number of cases (CI runs a bounded, larger run);
//! failures' seeds are saved in `tests/fuzz.regressions` and replayed first
//! by every later run.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use rehost::job::{self, Parsed};
use rehost::media::faststart::{self, Head};
use rehost::media::image::{check_complete, meta, probe};
use rehost::media::video::VideoProbe;
use rehost::media::{Format, Sniffed, mp4, sniff, webm};
use rehost::normalize::pixels::{Decode, render};
use rehost::normalize::{Target, strip};

fn corpus() -> &'static Vec<(String, Vec<u8>)> {
    static CORPUS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = Vec::new();
        for dir in ["fixtures/media", "fixtures/jobs"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .expect("fixtures")
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".md") || name.ends_with(".sh") {
                    continue;
                }
                let bytes = std::fs::read(e.path()).expect("fixture");
                // Keep cases fast: mutate the first 256 KiB of big files.
                out.push((name, bytes.into_iter().take(256 * 1024).collect()));
            }
        }
        out
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
    /// Write a big-endian u32 (box sizes, lengths) at a position.
    Size(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(7),
                Just(8),
                Just(u32::MAX),
                Just(0x7FFF_FFFF),
                any::<u32>()
            ]
        )
            .prop_map(|(i, n)| Mutation::Size(i, n)),
    ]
}

fn apply(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = data.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if let Some(x) = data.get_mut(i % len) {
                    *x ^= b | 1;
                }
            }
            Mutation::Truncate(i) => data.truncate(i % len),
            Mutation::Insert(i, v) => {
                let at = (i % len).min(data.len());
                data.splice(at..at, v.iter().copied());
            }
            Mutation::Overwrite(i, v) => {
                let at = i % len;
                for (k, b) in v.iter().enumerate() {
                    if let Some(x) = data.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
            Mutation::Size(i, n) => {
                let at = i % len;
                for (k, b) in n.to_be_bytes().iter().enumerate() {
                    if let Some(x) = data.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
        }
    }
    data
}

/// A fixture with mutations, or random bytes.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0..corpus().len(), prop::collection::vec(mutation(), 0..6))
            .prop_map(|(i, muts)| apply(corpus()[i].1.clone(), &muts)),
        1 => prop::collection::vec(any::<u8>(), 0..4096),
    ]
}

const IMAGES: [Format; 3] = [Format::Jpeg, Format::Png, Format::Webp];

fn scan_video(format: Format, data: &[u8], chunk: usize) {
    let mut p = VideoProbe::new(format);
    for c in data.chunks(chunk.max(1)) {
        if p.feed(c).is_err() {
            return;
        }
    }
    let _ = p.finish();
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn sniff_never_panics_and_is_stable(data in input()) {
        let first = sniff(&data);
        prop_assert_eq!(first, sniff(&data));
        if let Sniffed::Supported(f) = first {
            // What the sniffer claims, every parser can be asked about.
            if f.is_image() {
                let _ = probe(f, &data);
                let _ = check_complete(f, &data);
            } else {
                scan_video(f, &data, 4096);
            }
        }
    }

    #[test]
    fn image_parsers_never_panic(data in input(), format in 0..3usize) {
        let f = IMAGES[format];
        let dims = probe(f, &data);
        let whole = check_complete(f, &data);
        // A complete, well-formed file always has a readable header.
        if whole.is_ok() {
            prop_assert!(dims.is_ok(), "{:?} passed the structure check but not the probe", f);
        }
        // Probing a prefix never claims more than the whole file.
        for cut in [0usize, 8, 64, 4096] {
            let _ = probe(f, &data[..cut.min(data.len())]);
        }
    }

    #[test]
    fn metadata_strip_keeps_a_whole_image_whole(data in input(), format in 0..3usize) {
        let f = IMAGES[format];
        let before = meta::scan(f, &data);
        for cut in [16usize, 512, 8192] {
            let _ = meta::scan(f, &data[..cut.min(data.len())]);
        }
        if check_complete(f, &data).is_err() {
            let _ = strip::strip(f, &data, before.orientation);
            return Ok(());
        }
        let out = strip::strip(f, &data, before.orientation);
        prop_assert!(out.is_some(), "a whole {:?} can be stripped", f);
        let out = out.unwrap_or_default();
        prop_assert!(check_complete(f, &out).is_ok(), "stripping broke a whole {:?}", f);
        prop_assert_eq!(probe(f, &out).ok(), probe(f, &data).ok());
        let after = meta::scan(f, &out);
        prop_assert_eq!(after.orientation, before.orientation);
        prop_assert!(!after.multi_picture);
    }

    #[test]
    fn reencode_never_panics(data in input(), format in 0..3usize, side in 1u32..400) {
        let f = IMAGES[format];
        let Ok(dims) = probe(f, &data) else { return Ok(()) };
        if check_complete(f, &data).is_err() || dims.pixels() > 4_000_000 {
            return Ok(());
        }
        let m = meta::scan(f, &data);
        let target = Target { max_long: Some(f64::from(side)), max_bytes: Some(20_000.0), ..Target::default() };
        let shown = if m.turns() { (dims.height, dims.width) } else { (dims.width, dims.height) };
        let out = target.fit(shown.0, shown.1);
        if let Ok(d) = Decode::plan(f, &data, dims, out, m.turns())
            && let Ok(r) = render(f, &data, &m, &d, &target, 90)
        {
            prop_assert!(r.width.max(r.height) <= side.max(1));
            prop_assert!(check_complete(Format::Jpeg, &r.jpeg).is_ok());
        }
    }

    #[test]
    fn mp4_scanner_is_chunking_independent(data in input(), chunk in 1usize..9000) {
        let mut whole = mp4::Scanner::default();
        let a = whole.feed(&data).map(|()| (whole.check_end().is_ok(), whole.offset()));
        let mut parts = mp4::Scanner::default();
        let b = data.chunks(chunk).try_for_each(|c| parts.feed(c)).map(|()| (parts.check_end().is_ok(), parts.offset()));
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert_eq!(a, b);
            let _ = whole.info();
            prop_assert_eq!(format!("{:?}", whole.info()), format!("{:?}", parts.info()));
        }
        let _ = mp4::parse_moov(&data);
    }

    /// The remuxer on hostile files: no panic; a layout it accepts gives a
    /// new moov no larger than the old one plus its co64 growth, which
    /// itself reads as moov-first; the mdat's bytes are never its business.
    #[test]
    fn faststart_never_panics_and_stays_bounded(data in input()) {
        if let Head::MdatFirst { prefix_end, mdat_end } = faststart::head(&data) {
            prop_assert!(prefix_end < mdat_end);
            let from = usize::try_from(mdat_end).unwrap_or(usize::MAX);
            if let Some(tail) = data.get(from..)
                && let Ok(t) = faststart::tail(tail, mdat_end, data.len() as u64)
            {
                let moov = &tail[t.moov.clone()];
                if let Ok(new) = faststart::remux(moov, prefix_end..t.moov_start) {
                    prop_assert!(new.len() <= moov.len() * 2 + 16, "{} from {}", new.len(), moov.len());
                    let mut out = data[..prefix_end as usize].to_vec();
                    out.extend_from_slice(&new);
                    prop_assert_eq!(faststart::head(&out), Head::MoovFirst);
                }
            }
        }
        let _ = faststart::remux(&data, 0..data.len() as u64);
        let _ = faststart::tail(&data, 0, data.len() as u64);
    }

    #[test]
    fn webm_probe_never_panics(data in input(), chunk in 1usize..9000) {
        let _ = webm::probe(&data);
        let _ = webm::doc_type(&data);
        scan_video(Format::Webm, &data, chunk);
        scan_video(Format::Mov, &data, chunk);
    }

    #[test]
    fn job_parser_never_panics(data in input(), message_id in proptest::option::of("[ -~]{0,300}")) {
        match job::parse(&data, message_id.as_deref()) {
            Parsed::Job(j) => {
                prop_assert!(job::is_valid_id(&j.ids.workspace_id));
                prop_assert!(!j.media.sources().is_empty() && j.media.sources().len() <= 35);
            }
            Parsed::Invalid { .. } | Parsed::NotAJob { .. } => {}
        }
    }

    #[test]
    fn structured_jobs_follow_the_rules(
        ws in "[ -~]{0,140}",
        post in "[A-Za-z0-9._/-]{0,130}",
        urls in prop::collection::vec("(https?|ftp|file)://[a-z0-9.@:\\[\\]]{0,30}/[ -~]{0,40}", 0..40),
        byo in any::<bool>(),
    ) {
        let body = serde_json::to_vec(&serde_json::json!({
            "post_id": post, "workspace_id": ws,
            "accounts": [{"id": "a", "platform": "x", "type": if byo { "byo" } else { "hosted" }}],
            "media": {"type": "slideshow", "urls": urls},
        })).expect("json");
        match job::parse(&body, None) {
            Parsed::Job(j) => {
                prop_assert!(job::is_valid_id(&ws) && job::is_valid_id(&post));
                prop_assert!((1..=35).contains(&urls.len()));
                for s in j.media.sources() {
                    prop_assert!(matches!(s.url.scheme(), "http" | "https"));
                    prop_assert!(s.url.username().is_empty() && s.url.password().is_none());
                }
            }
            Parsed::Invalid { ids, .. } => prop_assert_eq!(ids.workspace_id, ws),
            Parsed::NotAJob { reason } => prop_assert!(false, "readable ids are never NotAJob: {}", reason),
        }
    }
}
