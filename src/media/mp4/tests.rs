use super::*;

use crate::testing::fixture;

fn scan(bytes: &[u8], chunk: usize) -> Scanner {
    let mut s = Scanner::default();
    for c in bytes.chunks(chunk.max(1)) {
        s.feed(c).expect("feed");
    }
    s
}

#[test]
fn moov_front_and_back_give_the_same_metadata() {
    for name in ["clip.mp4", "clip-moov-end.mp4", "clip.mov"] {
        for chunk in [1, 7, 4096, 1 << 20] {
            let s = scan(&fixture(name), chunk);
            s.check_end().expect("complete");
            let info = s.info().expect("parse").expect("video track");
            assert_eq!((info.width, info.height), (Some(640), Some(360)), "{name}");
            assert_eq!(info.duration_ms, Some(2000), "{name}");
            assert_eq!(info.codec.as_deref(), Some("h264"), "{name}");
        }
    }
    let s = scan(&fixture("clip-hevc.mp4"), 4096);
    let info = s.info().expect("parse").expect("video");
    assert_eq!(info.codec.as_deref(), Some("hevc"));
    assert_eq!(info.duration_ms, Some(1000));
}

#[test]
fn audio_only_has_no_video_track() {
    let s = scan(&fixture("audio-only.m4a"), 4096);
    assert_eq!(s.info().expect("parse"), None);
}

#[test]
fn truncated_and_absurd_files_fail_the_end_check() {
    for name in ["truncated.mp4", "moov-absurd.mp4"] {
        let s = scan(&fixture(name), 4096);
        assert!(s.check_end().is_err(), "{name}");
    }
    let b = fixture("clip.mp4");
    let s = scan(&b[..b.len() - 1], 4096);
    assert!(s.check_end().is_err());
}

#[test]
fn deep_nesting_is_not_followed() {
    let s = scan(&fixture("moov-nested.mp4"), 4096);
    s.check_end().expect("sizes are consistent");
    assert_eq!(s.info().unwrap_or(None), None);
}

#[test]
fn impossible_box_sizes_are_errors() {
    let mut s = Scanner::default();
    assert!(s.feed(b"\0\0\0\x04ftyp").is_err());
    let mut s = Scanner::default();
    assert!(s.feed(b"\0\0\0\x01ftyp\0\0\0\0\0\0\0\x02").is_err());
    let mut s = Scanner::default();
    assert!(s.feed(b"\0\0\0\x10\x01\x02\x03\x04").is_err());
}

#[test]
fn next_box_after_mdat_is_known_from_a_prefix() {
    let b = fixture("clip-moov-end.mp4");
    let s = scan(&b[..4096], 4096);
    assert!(!s.has_moov());
    let next = s.current_box_end().expect("inside mdat");
    assert_eq!(next, 102_958);
    let mut tail = Scanner::at(next);
    tail.feed(&b[next as usize..]).expect("feed");
    tail.check_end().expect("ends on a box");
    assert_eq!(tail.info().expect("parse").and_then(|i| i.width), Some(640));
}

fn facts(name: &str) -> MediaInfo {
    let s = scan(&fixture(name), 64 * 1024);
    s.check_end().expect("complete");
    s.info().expect("parse").expect("video track")
}

#[test]
fn what_real_encoders_wrote() {
    let clip = facts("clip.mp4");
    assert_eq!(clip.fps_milli, Some(30_000));
    assert_eq!(clip.audio.as_deref(), Some("aac"));
    assert_eq!((clip.moov_first, clip.edit_list), (Some(true), Some(false)));
    assert_eq!(facts("clip-moov-end.mp4").moov_first, Some(false));
    let rotated = facts("rotated.mp4");
    assert_eq!(
        (rotated.width, rotated.height),
        (Some(360), Some(640)),
        "as displayed"
    );
    assert_eq!(facts("fps61.mp4").fps_milli, Some(61_000));
    assert_eq!(facts("fps61.mp4").audio.as_deref(), Some("none"));
    let long = facts("long-3min.mp4");
    assert_eq!(
        (long.duration_ms, long.fps_milli),
        (Some(180_000), Some(1_000))
    );
    assert_eq!(facts("editlist.mp4").edit_list, Some(true));
    assert_eq!(facts("opus-audio.mp4").audio.as_deref(), Some("opus"));
    assert_eq!(facts("noaudio-moov-end.mp4").audio.as_deref(), Some("none"));
    let hevc = facts("hevc.mov");
    assert_eq!(
        (hevc.codec.as_deref(), hevc.audio.as_deref()),
        (Some("hevc"), Some("aac"))
    );
    let b = fixture("clip-moov-end.mp4");
    let mut tail = Scanner::at(102_958);
    tail.feed(&b[102_958..]).expect("feed");
    assert_eq!(
        tail.info().expect("parse").and_then(|i| i.moov_first),
        Some(false)
    );
}
