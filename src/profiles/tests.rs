use super::check::judge;
use super::facts::{Facts, ImageFacts, VideoFacts};
use super::*;

fn image(format: &'static str, bytes: u64, w: u32, h: u32) -> Facts {
    Facts::Image(ImageFacts {
        format,
        bytes: Some(bytes),
        width: w,
        height: h,
        animated: false,
    })
}

fn video() -> VideoFacts {
    VideoFacts {
        container: "mp4",
        codec: Some("h264".into()),
        audio: Some("aac".into()),
        bytes: Some(10_000_000),
        duration_ms: Some(30_000),
        fps_milli: Some(30_000),
        width: Some(1080),
        height: Some(1920),
        moov_first: Some(true),
        edit_list: Some(false),
    }
}

fn rules(j: &check::Judgement) -> Vec<&'static str> {
    j.violations.iter().map(|v| v.rule.as_str()).collect()
}

#[test]
fn the_built_in_profiles_cover_the_contracts_platforms() {
    let p = Profiles::built_in();
    assert!(!p.version.is_empty());
    let names: Vec<&str> = p.platforms.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tiktok",
            "instagram",
            "facebook",
            "threads",
            "youtube",
            "linkedin",
            "x",
            "pinterest",
            "bluesky"
        ]
    );
    for profile in &p.platforms {
        assert!(!profile.image_surface.is_empty() && !profile.video_surface.is_empty());
        for r in &profile.rules {
            assert!(
                !r.source.is_empty() && !r.checked.is_empty(),
                "{} {}",
                profile.name,
                r.id
            );
        }
    }
    assert_eq!(p.find("Twitter").map(|p| p.name.as_str()), Some("x"));
    assert_eq!(p.find(" TikTok ").map(|p| p.name.as_str()), Some("tiktok"));
    assert!(p.find("myspace").is_none());
}

#[test]
fn a_profiles_file_replaces_and_adds_platforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        r#"version = "ops-1"
[[platform]]
name = "instagram"
[[platform.rule]]
rule = "images_per_post"
max = 3
source = "ops"
checked = "2026-11-28"
[[platform]]
name = "mastodon"
[[platform.rule]]
rule = "image_bytes"
max = 16000000
source = "ops"
checked = "2026-11-28"
"#,
    )
    .expect("write");
    let p = Profiles::load(Some(&path)).expect("loads");
    assert!(p.version.ends_with("+ops-1"), "{}", p.version);
    assert_eq!(
        p.find("instagram").map(|i| i.rules.len()),
        Some(1),
        "replaced"
    );
    assert!(p.find("mastodon").is_some(), "added");
}

/// Regression: a file platform named like a built-in alias (`twitter` is
/// `x`'s) was shadowed by the built-in, which `find` met first.
#[test]
fn a_file_platform_named_like_a_built_in_alias_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "version = \"ops-2\"\n[[platform]]\nname = \"twitter\"\n[[platform]]\nname = \"gram\"\naliases = [\"instagram\"]\n",
    )
    .expect("write");
    let p = Profiles::load(Some(&path)).expect("loads");
    assert_eq!(p.find("twitter").map(|t| t.name.as_str()), Some("twitter"));
    assert_eq!(p.find("x").map(|t| t.name.as_str()), Some("x"), "x stays");
    assert_eq!(
        p.find("instagram").map(|t| t.name.as_str()),
        Some("gram"),
        "a built-in the file names by an alias is replaced"
    );
    assert!(p.find("tiktok").is_some(), "the rest stays");
    std::fs::write(&path, "version = \"x\"\n[[platform]]\nname = \"a\"\n[[platform.rule]]\nrule = \"no_such_rule\"\nsource = \"s\"\nchecked = \"c\"\n").expect("write");
    assert!(Profiles::load(Some(&path)).is_err_and(|e| e.contains("no_such_rule")));
    std::fs::write(&path, "version = \"x\"\n[[platform]]\nname = \"a\"\n[[platform.rule]]\nrule = \"image_bytes\"\nmax = 5\n").expect("write");
    assert!(Profiles::load(Some(&path)).is_err_and(|e| e.contains("source")));
}

#[test]
fn every_rule_kind_judges() {
    let p = Profiles::built_in();
    let ig = p.find("instagram").expect("instagram");
    // list (format), range (bytes), aspect, post count
    let twelve: Vec<Facts> = (0..12)
        .map(|_| image("png", 9_000_000, 1080, 1920))
        .collect();
    let j = judge(ig, &twelve);
    let r = rules(&j);
    assert!(r.contains(&"images_per_post") && r.contains(&"image_format"));
    assert!(
        r.contains(&"image_bytes") && r.contains(&"image_aspect"),
        "{r:?}"
    );
    let count = &j.violations[0];
    assert_eq!(
        (
            count.asset_index,
            count.actual.as_str(),
            count.allowed.as_str()
        ),
        (None, "12", "1..10")
    );
    assert!(count.message.contains("12"), "{}", count.message);
    let fine = judge(ig, &[image("jpeg", 500_000, 1080, 1350)]);
    assert!(fine.violations.is_empty(), "{:?}", fine.violations);
    // refused and required flags, and a video range
    let mut v = video();
    v.moov_first = Some(false);
    v.edit_list = Some(true);
    v.fps_milli = Some(61_000);
    let r = rules(&judge(ig, &[Facts::Video(v)]));
    assert!(
        r.contains(&"moov_first") && r.contains(&"edit_list") && r.contains(&"frame_rate"),
        "{r:?}"
    );
    // unmeasured inputs are skipped, never rejected
    let mut v = video();
    v.fps_milli = None;
    v.audio = None;
    let j = judge(ig, &[Facts::Video(v)]);
    assert!(j.violations.is_empty());
    assert!(j.skipped.contains(&RuleId::FrameRate) && j.skipped.contains(&RuleId::AudioCodec));
}

#[test]
fn tiktoks_1080p_and_animation_rules() {
    let p = Profiles::built_in();
    let tt = p.find("tiktok").expect("tiktok");
    let r = rules(&judge(tt, &[image("jpeg", 3_000_000, 8000, 6000)]));
    assert_eq!(r, ["image_short_side", "image_long_side"]);
    assert!(
        judge(tt, &[image("jpeg", 3_000_000, 1080, 1920)])
            .violations
            .is_empty()
    );
    let mut custom = tt.clone();
    custom.rules = vec![
        Rule::from_table(
            &toml::from_str(
                "rule = \"animated_image\"\nallowed = false\nsource = \"s\"\nchecked = \"c\"",
            )
            .expect("toml"),
        )
        .expect("rule"),
    ];
    let animated = Facts::Image(ImageFacts {
        format: "webp",
        bytes: Some(1),
        width: 10,
        height: 10,
        animated: true,
    });
    assert_eq!(rules(&judge(&custom, &[animated])), ["animated_image"]);
}

#[test]
fn youtube_takes_no_images() {
    let p = Profiles::built_in();
    let yt = p.find("youtube").expect("youtube");
    let j = judge(yt, &[image("jpeg", 1, 10, 10)]);
    assert_eq!(rules(&j), ["image_format"]);
    assert!(
        j.violations[0].message.contains("takes no images"),
        "{}",
        j.violations[0].message
    );
}

#[test]
fn limits_are_shown_as_people_read_them() {
    assert_eq!(
        Limit::Range {
            min: Some(1.0),
            max: Some(10.0)
        }
        .shown(),
        "1..10"
    );
    let ig = Profiles::built_in();
    let aspect = ig
        .find("instagram")
        .and_then(|p| p.rules.iter().find(|r| r.id == RuleId::ImageAspect))
        .expect("aspect rule");
    assert_eq!(aspect.limit.shown(), "4:5..1.91:1");
    assert_eq!(
        Limit::OneOf(vec!["jpeg".into(), "webp".into()]).shown(),
        "jpeg, webp"
    );
}
