//! What an image needs before it is stored: decided from its measured facts
//! and the profiles of the accounts it must satisfy, before any pixel is
//! decoded.
//!
//! An account *shapes* the variant when none of its violations on this image
//! is unfixable; the variant's limits are the minimum of each quantity over
//! the shaping accounts. Fixable, without cropping: a format the platform
//! does not take (the image becomes JPEG; a multi-picture JPEG loses its
//! other pictures, losslessly), and too many bytes, pixels or too long a
//! side (scaled down, aspect kept). Unfixable: an aspect ratio, an
//! animation the platform refuses, anything of an animated image (never
//! re-encoded), a minimum (never scaled up), a platform that takes no JPEG.

use crate::media::image::meta::ImageMeta;
use crate::profiles::check::{self, Violation};
use crate::profiles::facts::{Facts, ImageFacts};
use crate::profiles::{Limit, Profile, RuleId};

/// A normalisation step, as results name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Orient,
    FirstFrame,
    Flatten,
    Resize,
    ToJpeg,
    Recompress,
    StripMetadata,
    /// A video's `moov` moved before its media data (contract v4).
    Faststart,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Orient,
        Step::FirstFrame,
        Step::Flatten,
        Step::Resize,
        Step::ToJpeg,
        Step::Recompress,
        Step::StripMetadata,
        Step::Faststart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Orient => "orient",
            Step::FirstFrame => "first_frame",
            Step::Flatten => "flatten",
            Step::Resize => "resize",
            Step::ToJpeg => "to_jpeg",
            Step::Recompress => "recompress",
            Step::StripMetadata => "strip_metadata",
            Step::Faststart => "faststart",
        }
    }
}

/// The limits a re-encoded variant must meet (each the minimum over the
/// shaping accounts; `None` when no account limits it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Target {
    pub max_width: Option<f64>,
    pub max_height: Option<f64>,
    pub max_short: Option<f64>,
    pub max_long: Option<f64>,
    pub max_pixels: Option<f64>,
    pub max_bytes: Option<f64>,
}

impl Target {
    fn tighten(&mut self, profile: &Profile) {
        for rule in &profile.rules {
            let Limit::Range { max: Some(hi), .. } = rule.limit else {
                continue;
            };
            let slot = match rule.id {
                RuleId::ImageWidth => &mut self.max_width,
                RuleId::ImageHeight => &mut self.max_height,
                RuleId::ImageShortSide => &mut self.max_short,
                RuleId::ImageLongSide => &mut self.max_long,
                RuleId::ImagePixels => &mut self.max_pixels,
                RuleId::ImageBytes => &mut self.max_bytes,
                _ => continue,
            };
            *slot = Some(slot.map_or(hi, |v| v.min(hi)));
        }
    }

    /// The displayed size within every dimension limit, aspect kept (never
    /// larger than `w` x `h`).
    pub fn fit(&self, w: u32, h: u32) -> (u32, u32) {
        let (wf, hf) = (f64::from(w), f64::from(h));
        let mut s: f64 = 1.0;
        let mut limit = |max: Option<f64>, have: f64| {
            if let Some(m) = max {
                s = s.min(m / have);
            }
        };
        limit(self.max_width, wf);
        limit(self.max_height, hf);
        limit(self.max_short, wf.min(hf));
        limit(self.max_long, wf.max(hf));
        if let Some(p) = self.max_pixels {
            s = s.min((p / (wf * hf)).sqrt());
        }
        if s >= 1.0 {
            return (w, h);
        }
        let scale = |v: f64| ((v * s).floor() as u32).clamp(1, u32::MAX);
        (scale(wf).min(w), scale(hf).min(h))
    }
}

/// What to do with one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Decode and re-encode as JPEG within these limits.
    pub reencode: Option<Target>,
    /// Rewrite the file without its personal metadata (lossless).
    pub strip: bool,
    /// A multi-picture JPEG keeps only its first picture (lossless when not
    /// re-encoded).
    pub first_frame: bool,
    /// The accounts (indices in the job) whose verdict depends on the
    /// re-encode: they are rejected if it cannot be done.
    pub needed_by: Vec<usize>,
}

impl Plan {
    /// Whether the stored bytes differ from the source.
    pub fn changes(&self) -> bool {
        self.reencode.is_some() || self.strip || self.first_frame
    }

    /// The steps this plan takes, as far as they are known before encoding
    /// (`recompress` is only known once a byte limit has been tried).
    pub fn expected_steps(&self, facts: &ImageFacts, meta: &ImageMeta) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(t) = &self.reencode {
            if meta.orientation != 1 {
                steps.push(Step::Orient);
            }
            if meta.multi_picture {
                steps.push(Step::FirstFrame);
            }
            if meta.alpha {
                steps.push(Step::Flatten);
            }
            if t.fit(facts.width, facts.height) != (facts.width, facts.height) {
                steps.push(Step::Resize);
            }
            steps.push(Step::ToJpeg);
            if meta.personal {
                steps.push(Step::StripMetadata);
            }
            return steps;
        }
        if self.first_frame {
            steps.push(Step::FirstFrame);
        }
        if self.strip && meta.personal {
            steps.push(Step::StripMetadata);
        }
        steps
    }
}

/// An account the image must satisfy: its index in the job and profile.
pub type Shaper<'a> = (usize, &'a Profile);

/// Plans one image for the `shapers` (BYO accounts of known platforms that
/// no post-level rule rejects). `normalize` off leaves only stripping.
pub fn plan(
    facts: &ImageFacts,
    meta: &ImageMeta,
    shapers: &[Shaper<'_>],
    normalize: bool,
    strip: bool,
) -> Plan {
    let mut plan = Plan {
        strip: strip && (meta.personal || meta.multi_picture),
        first_frame: strip && meta.multi_picture,
        ..Plan::default()
    };
    if !normalize {
        return plan;
    }
    let mut target = Target::default();
    let mut pixels = false;
    for &(index, profile) in shapers {
        let violations = image_violations(profile, facts);
        if !violations.iter().all(|v| fixable(v, profile, facts)) {
            continue;
        }
        target.tighten(profile);
        for v in &violations {
            if v.rule == RuleId::ImageFormat && facts.format == "mpo" {
                plan.first_frame = true;
            } else {
                pixels = true;
            }
        }
        if !violations.is_empty() {
            plan.needed_by.push(index);
        }
    }
    if pixels {
        plan.reencode = Some(target);
        plan.first_frame = meta.multi_picture;
    }
    plan
}

/// `profile`'s violations on this one image (post-level rules left out).
pub fn image_violations(profile: &Profile, facts: &ImageFacts) -> Vec<Violation> {
    check::judge(profile, &[Facts::Image(facts.clone())])
        .violations
        .into_iter()
        .filter(|v| v.asset_index.is_some())
        .collect()
}

/// Whether normalisation can cure `v` for `profile` without cropping.
pub fn fixable(v: &Violation, profile: &Profile, facts: &ImageFacts) -> bool {
    if facts.animated || !takes(profile, "jpeg") {
        return false;
    }
    match v.rule {
        RuleId::ImageFormat => true,
        RuleId::ImageBytes
        | RuleId::ImageWidth
        | RuleId::ImageHeight
        | RuleId::ImageShortSide
        | RuleId::ImageLongSide
        | RuleId::ImagePixels => above_max(profile, v.rule, facts),
        _ => false,
    }
}

/// Whether `profile` takes images in `format` (no format rule: any).
pub fn takes(profile: &Profile, format: &str) -> bool {
    profile
        .rules
        .iter()
        .filter(|r| r.id == RuleId::ImageFormat)
        .all(|r| match &r.limit {
            Limit::OneOf(list) => list.iter().any(|f| f == format),
            _ => true,
        })
}

/// Whether the image breaks `rule`'s maximum (not its minimum).
fn above_max(profile: &Profile, rule: RuleId, f: &ImageFacts) -> bool {
    let (w, h) = (f64::from(f.width), f64::from(f.height));
    let measured = match rule {
        RuleId::ImageBytes => f.bytes.unwrap_or(0) as f64,
        RuleId::ImageWidth => w,
        RuleId::ImageHeight => h,
        RuleId::ImageShortSide => w.min(h),
        RuleId::ImageLongSide => w.max(h),
        _ => w * h,
    };
    profile.rules.iter().any(|r| {
        r.id == rule && matches!(r.limit, Limit::Range { max: Some(hi), .. } if measured > hi)
    }) && !profile.rules.iter().any(|r| {
        r.id == rule && matches!(r.limit, Limit::Range { min: Some(lo), .. } if measured < lo)
    })
}

#[cfg(test)]
mod tests;
