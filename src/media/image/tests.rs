use super::*;
use crate::media::{Sniffed, sniff};

use crate::testing::fixture;

fn format_of(bytes: &[u8]) -> Format {
    match sniff(bytes) {
        Sniffed::Supported(f) => f,
        other => panic!("not supported: {other:?}"),
    }
}

#[test]
fn valid_images_probe_and_check() {
    for (name, format, w, h) in [
        ("photo.jpg", Format::Jpeg, 1080, 1350),
        ("portrait.jpg", Format::Jpeg, 1080, 1920),
        ("progressive.jpg", Format::Jpeg, 640, 480),
        ("exif.jpg", Format::Jpeg, 640, 480),
        ("trailer.jpg", Format::Jpeg, 320, 240),
        ("polyglot.jpg", Format::Jpeg, 320, 240),
        ("graphic.png", Format::Png, 800, 600),
        ("alpha.png", Format::Png, 256, 256),
        ("png-named.jpg", Format::Png, 256, 256),
        ("photo.webp", Format::Webp, 1080, 1350),
        ("lossless.webp", Format::Webp, 256, 256),
        ("alpha.webp", Format::Webp, 256, 256),
    ] {
        let bytes = fixture(name);
        assert_eq!(format_of(&bytes), format, "{name}");
        let dims = probe(format, &bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!((dims.width, dims.height), (w, h), "{name}");
        check_complete(format, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn header_probe_asks_for_more_bytes() {
    let bytes = fixture("exif.jpg");
    match probe(Format::Jpeg, &bytes[..4096]) {
        Err(ProbeError::NeedMore(n)) => assert!(n > 60_000 && n <= bytes.len() as u64, "{n}"),
        other => panic!("expected NeedMore, got {other:?}"),
    }
    for name in ["graphic.png", "photo.webp", "lossless.webp"] {
        let b = fixture(name);
        assert!(
            matches!(probe(format_of(&b), &b[..12]), Err(ProbeError::NeedMore(_))),
            "{name}"
        );
    }
}

#[test]
fn bombs_report_their_claimed_dimensions() {
    for (name, pixels) in [
        ("bomb-60000.png", 3_600_000_000u64),
        ("bomb.jpg", 65_000 * 65_000),
        ("bomb.webp", 16_383 * 16_383),
    ] {
        let b = fixture(name);
        let dims = probe(format_of(&b), &b).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(dims.pixels(), pixels, "{name}");
    }
}

#[test]
fn truncated_and_damaged_files_are_corrupt() {
    for name in [
        "truncated.jpg",
        "truncated.png",
        "truncated.webp",
        "corrupt-header.png",
    ] {
        let b = fixture(name);
        let format = format_of(&b);
        let probed = probe(format, &b);
        let complete = check_complete(format, &b);
        assert!(complete.is_err(), "{name} passed the structure check");
        if name == "corrupt-header.png" {
            assert!(
                matches!(probed, Err(ProbeError::Corrupt(_))),
                "{name}: {probed:?}"
            );
        }
    }
}

#[test]
fn every_prefix_of_a_valid_image_is_rejected_or_asks_for_more() {
    for name in [
        "small.jpg",
        "alpha.png",
        "lossless.webp",
        "alpha.webp",
        "progressive.jpg",
    ] {
        let b = fixture(name);
        let format = format_of(&b);
        for cut in (0..b.len()).step_by(97) {
            assert!(
                check_complete(format, &b[..cut]).is_err(),
                "{name} cut at {cut}"
            );
            let _ = probe(format, &b[..cut]);
        }
    }
}

/// Regression (fuzzing, `tests/fuzz.regressions`): a JPEG whose frame header
/// says height 0 walked cleanly to its end marker.
#[test]
fn a_zero_dimension_fails_the_structure_check_too() {
    let mut bytes = fixture("small.jpg");
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline frame header");
    bytes[sof + 5] = 0;
    bytes[sof + 6] = 0;
    assert!(matches!(
        probe(Format::Jpeg, &bytes),
        Err(ProbeError::Corrupt(_))
    ));
    assert!(check_complete(Format::Jpeg, &bytes).is_err());
}
