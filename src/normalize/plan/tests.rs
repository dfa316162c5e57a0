use super::*;
use crate::profiles::Profiles;

fn photo(format: &'static str, width: u32, height: u32) -> ImageFacts {
    ImageFacts {
        format,
        bytes: Some(1_000_000),
        width,
        height,
        animated: false,
    }
}

fn meta() -> ImageMeta {
    ImageMeta {
        orientation: 1,
        ..ImageMeta::default()
    }
}

fn run(profiles: &Profiles, names: &[&str], facts: &ImageFacts, m: &ImageMeta) -> Plan {
    let shapers: Vec<Shaper<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i, profiles.find(n).expect("built-in profile")))
        .collect();
    plan(facts, m, &shapers, true, true)
}

#[test]
fn too_large_for_tiktok_is_scaled_into_its_box() {
    let p = Profiles::built_in();
    let plan = run(&p, &["tiktok"], &photo("jpeg", 4000, 3000), &meta());
    let target = plan.reencode.expect("re-encoded");
    assert_eq!(target.fit(4000, 3000), (1440, 1080));
    assert_eq!(target.max_bytes, Some(20_000_000.0));
    assert_eq!(plan.needed_by, vec![0]);
}

#[test]
fn a_format_the_platform_lacks_becomes_jpeg() {
    let p = Profiles::built_in();
    let plan = run(&p, &["instagram"], &photo("png", 1080, 1350), &meta());
    let target = plan.reencode.expect("re-encoded");
    assert_eq!(target.fit(1080, 1350), (1080, 1350), "no resize needed");
    assert_eq!(target.max_bytes, Some(8_000_000.0));
}

#[test]
fn an_unfixable_account_does_not_shape_the_variant() {
    let p = Profiles::built_in();
    // 2:3 is outside Instagram's 4:5..1.91:1: cropping would be needed.
    let facts = photo("jpeg", 4000, 6000);
    let plan = run(&p, &["instagram", "tiktok"], &facts, &meta());
    let target = plan.reencode.expect("TikTok still needs a resize");
    assert_eq!(
        target.max_bytes,
        Some(20_000_000.0),
        "Instagram's 8 MB is not applied"
    );
    assert_eq!(plan.needed_by, vec![1]);
    // Only Instagram: nothing is done for it.
    let alone = run(&p, &["instagram"], &facts, &meta());
    assert_eq!(alone.reencode, None);
    assert!(alone.needed_by.is_empty());
}

#[test]
fn accounts_that_take_the_source_still_limit_the_variant() {
    let p = Profiles::built_in();
    // X takes 4000x3000 WebP but limits bytes to 5 MB; Instagram needs JPEG.
    let plan = run(&p, &["x", "instagram"], &photo("webp", 1600, 1200), &meta());
    let target = plan.reencode.expect("re-encoded for Instagram");
    assert_eq!(target.max_bytes, Some(5_000_000.0));
    assert_eq!(plan.needed_by, vec![1]);
}

#[test]
fn animated_images_are_never_reencoded() {
    let p = Profiles::built_in();
    let mut facts = photo("webp", 4000, 3000);
    facts.animated = true;
    let plan = run(&p, &["tiktok"], &facts, &meta());
    assert_eq!(plan.reencode, None);
}

#[test]
fn a_multi_picture_jpeg_loses_its_other_pictures_losslessly() {
    let p = Profiles::built_in();
    let m = ImageMeta {
        multi_picture: true,
        ..meta()
    };
    let plan = run(&p, &["instagram"], &photo("mpo", 1080, 1080), &m);
    assert_eq!((plan.reencode, plan.first_frame), (None, true));
    assert_eq!(
        plan.expected_steps(&photo("mpo", 1080, 1080), &m),
        vec![Step::FirstFrame]
    );
}

#[test]
fn minimums_and_platforms_without_images_are_unfixable() {
    let p = Profiles::built_in();
    let youtube = p.find("youtube").expect("youtube");
    let facts = photo("jpeg", 100, 100);
    let v = image_violations(youtube, &facts);
    assert!(!v.is_empty() && v.iter().all(|v| !fixable(v, youtube, &facts)));
    let custom = Profiles::load(Some(&write_profile(
        "version = \"t\"\n[[platform]]\nname = \"tiny\"\n[[platform.rule]]\nrule = \"image_width\"\nmin = 600\nmax = 2000\nsource = \"test\"\nchecked = \"2026-11-28\"\n",
    )))
    .expect("loads");
    let tiny = custom.find("tiny").expect("tiny");
    let small = image_violations(tiny, &facts);
    assert_eq!(small.len(), 1);
    assert!(!fixable(&small[0], tiny, &facts), "never scaled up");
    let wide = photo("jpeg", 3000, 100);
    let big = image_violations(tiny, &wide);
    assert!(fixable(&big[0], tiny, &wide));
}

fn write_profile(text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rehost-plan-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("p.toml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_pixel_limit_is_met_after_rounding() {
    let t = Target {
        max_pixels: Some(36_152_319.0),
        ..Target::default()
    };
    let (w, h) = t.fit(8000, 6000);
    assert!(u64::from(w) * u64::from(h) <= 36_152_319, "{w}x{h}");
    assert!(w > 6900 && h > 5150, "{w}x{h}");
    assert_eq!(Target::default().fit(10, 10), (10, 10));
    let narrow = Target {
        max_long: Some(1000.0),
        ..Target::default()
    };
    assert_eq!(narrow.fit(100_000, 1), (1000, 1), "never below one pixel");
}

#[test]
fn normalisation_off_only_strips() {
    let p = Profiles::built_in();
    let shapers = [(0, p.find("tiktok").expect("tiktok"))];
    let m = ImageMeta {
        personal: true,
        ..meta()
    };
    let facts = photo("png", 4000, 3000);
    let off = plan(&facts, &m, &shapers, false, true);
    assert_eq!((off.reencode, off.strip), (None, true));
    let neither = plan(&facts, &m, &shapers, false, false);
    assert!(!neither.changes());
}

#[test]
fn expected_steps_follow_the_contract_order() {
    let p = Profiles::built_in();
    let m = ImageMeta {
        orientation: 6,
        personal: true,
        alpha: true,
        ..meta()
    };
    let facts = photo("png", 3000, 4000);
    let plan = run(&p, &["tiktok"], &facts, &m);
    assert_eq!(
        plan.expected_steps(&facts, &m),
        vec![
            Step::Orient,
            Step::Flatten,
            Step::Resize,
            Step::ToJpeg,
            Step::StripMetadata
        ]
    );
}
