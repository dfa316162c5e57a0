//! Judges a post against one platform's profile: every rule against every
//! asset it applies to, and the post-level rules against the post.

use super::Profile;
use super::facts::{Facts, ImageFacts, VideoFacts};
use super::rules::{Limit, Rule, RuleId};

/// A rule the post breaks, said so a person can act on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    /// The asset, or `None` for a rule about the whole post.
    pub asset_index: Option<usize>,
    pub rule: RuleId,
    pub actual: String,
    pub allowed: String,
    pub message: String,
}

/// What one profile says of a post.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judgement {
    pub violations: Vec<Violation>,
    /// Rules whose input could not be measured from the bytes read.
    pub skipped: Vec<RuleId>,
}

/// A measured value a rule compares.
enum Measure {
    Text(String),
    Num(f64),
    Ratio(u32, u32),
    Flag(bool),
}

/// Judges the post `assets` (in order) against `profile`.
pub fn judge(profile: &Profile, assets: &[Facts]) -> Judgement {
    let mut j = Judgement::default();
    let images = assets
        .iter()
        .filter(|a| matches!(a, Facts::Image(_)))
        .count();
    for rule in &profile.rules {
        if rule.id == RuleId::ImagesPerPost {
            if images > 0 {
                post_rule(profile, rule, images, &mut j);
            }
            continue;
        }
        for (i, asset) in assets.iter().enumerate() {
            let measured = match asset {
                Facts::Image(f) if rule.id.is_image() => image_measure(rule.id, f),
                Facts::Video(f) if !rule.id.is_image() => video_measure(rule.id, f),
                _ => continue,
            };
            match measured {
                Some(m) => {
                    if let Some(v) = violation(profile, rule, Some(i), &m) {
                        j.violations.push(v);
                    }
                }
                None if !j.skipped.contains(&rule.id) => j.skipped.push(rule.id),
                None => {}
            }
        }
    }
    j
}

/// The post-level violations (the image count) of a post of `images`.
pub fn post_violations(profile: &Profile, images: usize) -> Vec<Violation> {
    let mut j = Judgement::default();
    for rule in profile
        .rules
        .iter()
        .filter(|r| r.id == RuleId::ImagesPerPost)
    {
        post_rule(profile, rule, images, &mut j);
    }
    j.violations
}

fn post_rule(profile: &Profile, rule: &Rule, images: usize, j: &mut Judgement) {
    if let Some(v) = violation(profile, rule, None, &Measure::Num(images as f64)) {
        j.violations.push(v);
    }
}

fn image_measure(id: RuleId, f: &ImageFacts) -> Option<Measure> {
    let (w, h) = (f.width, f.height);
    Some(match id {
        RuleId::ImageFormat => Measure::Text(f.format.into()),
        RuleId::ImageBytes => Measure::Num(f.bytes? as f64),
        RuleId::ImageWidth => Measure::Num(f64::from(w)),
        RuleId::ImageHeight => Measure::Num(f64::from(h)),
        RuleId::ImageShortSide => Measure::Num(f64::from(w.min(h))),
        RuleId::ImageLongSide => Measure::Num(f64::from(w.max(h))),
        RuleId::ImagePixels => Measure::Num(f64::from(w) * f64::from(h)),
        RuleId::ImageAspect => Measure::Ratio(w, h),
        RuleId::AnimatedImage => Measure::Flag(f.animated),
        _ => return None,
    })
}

fn video_measure(id: RuleId, f: &VideoFacts) -> Option<Measure> {
    Some(match id {
        RuleId::VideoContainer => Measure::Text(f.container.into()),
        RuleId::VideoCodec => Measure::Text(f.codec.clone()?),
        RuleId::AudioCodec => Measure::Text(f.audio.clone()?),
        RuleId::VideoBytes => Measure::Num(f.bytes? as f64),
        RuleId::Duration => Measure::Num(f.duration_ms? as f64 / 1000.0),
        RuleId::FrameRate => Measure::Num(f64::from(f.fps_milli?) / 1000.0),
        RuleId::VideoWidth => Measure::Num(f64::from(f.width?)),
        RuleId::VideoHeight => Measure::Num(f64::from(f.height?)),
        RuleId::VideoAspect => Measure::Ratio(f.width?, f.height?),
        RuleId::Bitrate => Measure::Num(f.bitrate()?),
        RuleId::MoovFirst => Measure::Flag(f.moov_first?),
        RuleId::EditList => Measure::Flag(f.edit_list?),
        _ => return None,
    })
}

/// The violation, if `m` breaks `rule`.
fn violation(
    profile: &Profile,
    rule: &Rule,
    asset: Option<usize>,
    m: &Measure,
) -> Option<Violation> {
    let ok = match (&rule.limit, m) {
        (Limit::OneOf(allowed), Measure::Text(t)) => allowed.iter().any(|a| a == t),
        (Limit::Range { min, max }, Measure::Num(n)) => {
            min.is_none_or(|lo| *n >= lo) && max.is_none_or(|hi| *n <= hi)
        }
        (Limit::Aspect { min, max, .. }, Measure::Ratio(w, h)) => {
            let r = f64::from(*w) / f64::from(*h);
            // Ratios are compared to two decimals, as platforms state them.
            let r = (r * 100.0).round() / 100.0;
            min.is_none_or(|lo| r >= (lo * 100.0).round() / 100.0)
                && max.is_none_or(|hi| r <= (hi * 100.0).round() / 100.0)
        }
        (Limit::Refused, Measure::Flag(present)) => !present,
        (Limit::Required, Measure::Flag(present)) => *present,
        _ => true,
    };
    if ok {
        return None;
    }
    let actual = shown(rule.id, m);
    let allowed = rule.limit.shown();
    Some(Violation {
        asset_index: asset,
        rule: rule.id,
        message: sentence(profile, rule, asset, &actual, &allowed),
        actual,
        allowed,
    })
}

fn shown(id: RuleId, m: &Measure) -> String {
    match m {
        Measure::Text(t) => t.clone(),
        Measure::Num(n) if matches!(id, RuleId::Duration | RuleId::FrameRate) => {
            format!("{}", (n * 1000.0).round() / 1000.0)
        }
        Measure::Num(n) => format!("{}", n.round() as i64),
        Measure::Ratio(w, h) => format!("{w}:{h}"),
        Measure::Flag(true) => "yes".into(),
        Measure::Flag(false) => "no".into(),
    }
}

/// A sentence a person can act on.
fn sentence(p: &Profile, rule: &Rule, asset: Option<usize>, actual: &str, allowed: &str) -> String {
    let what = match asset {
        Some(i) => format!("asset {i}"),
        None => "this post".into(),
    };
    let (name, surface) = (
        &p.name,
        if rule.id.is_image() || rule.id == RuleId::ImagesPerPost {
            &p.image_surface
        } else {
            &p.video_surface
        },
    );
    let takes = match rule.id {
        RuleId::ImagesPerPost => {
            return format!(
                "{name} takes {allowed} images per post ({surface}); {what} has {actual}"
            );
        }
        RuleId::ImageFormat if allowed == "none" => {
            return format!("{name} takes no images ({surface})");
        }
        RuleId::ImageFormat => "images in formats",
        RuleId::ImageBytes => "images of (bytes)",
        RuleId::ImageWidth => "image widths (px)",
        RuleId::ImageHeight => "image heights (px)",
        RuleId::ImageShortSide => "an image's shorter side (px) of",
        RuleId::ImageLongSide => "an image's longer side (px) of",
        RuleId::ImagePixels => "images of (pixels)",
        RuleId::ImageAspect => "image aspect ratios (width:height)",
        RuleId::AnimatedImage => {
            return format!("{name} takes no animated images ({surface}); {what} is animated");
        }
        RuleId::VideoContainer => "video containers",
        RuleId::VideoCodec => "video codecs",
        RuleId::AudioCodec => "audio",
        RuleId::VideoBytes => "videos of (bytes)",
        RuleId::Duration => "videos lasting (s)",
        RuleId::FrameRate => "frame rates (fps)",
        RuleId::VideoWidth => "video widths (px)",
        RuleId::VideoHeight => "video heights (px)",
        RuleId::VideoAspect => "video aspect ratios (width:height)",
        RuleId::Bitrate => "average bitrates (bit/s)",
        RuleId::MoovFirst => {
            return format!(
                "{name} needs the moov box before the media data ({surface}); {what} has it at the end: re-mux with faststart"
            );
        }
        RuleId::EditList => {
            return format!(
                "{name} takes no edit lists ({surface}); {what} has one that cuts or delays"
            );
        }
    };
    format!("{name} takes {takes} {allowed} ({surface}); {what} is {actual}")
}
