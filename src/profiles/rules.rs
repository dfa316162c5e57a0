//! The contract's rule identifiers and the shape of each rule's limit.

use std::fmt;

/// Every rule identifier of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    ImageFormat,
    ImageBytes,
    ImageWidth,
    ImageHeight,
    ImageShortSide,
    ImageLongSide,
    ImagePixels,
    ImageAspect,
    AnimatedImage,
    ImagesPerPost,
    VideoContainer,
    VideoCodec,
    AudioCodec,
    VideoBytes,
    Duration,
    FrameRate,
    VideoWidth,
    VideoHeight,
    VideoAspect,
    Bitrate,
    MoovFirst,
    EditList,
}

impl RuleId {
    pub const ALL: [RuleId; 22] = [
        RuleId::ImageFormat,
        RuleId::ImageBytes,
        RuleId::ImageWidth,
        RuleId::ImageHeight,
        RuleId::ImageShortSide,
        RuleId::ImageLongSide,
        RuleId::ImagePixels,
        RuleId::ImageAspect,
        RuleId::AnimatedImage,
        RuleId::ImagesPerPost,
        RuleId::VideoContainer,
        RuleId::VideoCodec,
        RuleId::AudioCodec,
        RuleId::VideoBytes,
        RuleId::Duration,
        RuleId::FrameRate,
        RuleId::VideoWidth,
        RuleId::VideoHeight,
        RuleId::VideoAspect,
        RuleId::Bitrate,
        RuleId::MoovFirst,
        RuleId::EditList,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::ImageFormat => "image_format",
            RuleId::ImageBytes => "image_bytes",
            RuleId::ImageWidth => "image_width",
            RuleId::ImageHeight => "image_height",
            RuleId::ImageShortSide => "image_short_side",
            RuleId::ImageLongSide => "image_long_side",
            RuleId::ImagePixels => "image_pixels",
            RuleId::ImageAspect => "image_aspect",
            RuleId::AnimatedImage => "animated_image",
            RuleId::ImagesPerPost => "images_per_post",
            RuleId::VideoContainer => "video_container",
            RuleId::VideoCodec => "video_codec",
            RuleId::AudioCodec => "audio_codec",
            RuleId::VideoBytes => "video_bytes",
            RuleId::Duration => "duration",
            RuleId::FrameRate => "frame_rate",
            RuleId::VideoWidth => "video_width",
            RuleId::VideoHeight => "video_height",
            RuleId::VideoAspect => "video_aspect",
            RuleId::Bitrate => "bitrate",
            RuleId::MoovFirst => "moov_first",
            RuleId::EditList => "edit_list",
        }
    }

    fn parse(name: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The shape of this rule's limit.
    fn shape(self) -> Shape {
        use RuleId::*;
        match self {
            ImageFormat | VideoContainer | VideoCodec | AudioCodec => Shape::List,
            ImageAspect | VideoAspect => Shape::Aspect,
            AnimatedImage | EditList => Shape::Refused,
            MoovFirst => Shape::Required,
            _ => Shape::Range,
        }
    }

    /// Whether the rule judges images (else videos, or the post).
    pub fn is_image(self) -> bool {
        self.as_str().starts_with("image_") && self != RuleId::ImagesPerPost
            || self == RuleId::AnimatedImage
    }
}

impl serde::Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        RuleId::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown rule {name}")))
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

enum Shape {
    List,
    Range,
    Aspect,
    Refused,
    Required,
}

/// What a rule allows.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// One of these values (formats, codecs).
    OneOf(Vec<String>),
    /// Within these bounds (inclusive).
    Range { min: Option<f64>, max: Option<f64> },
    /// Width over height within these bounds (inclusive); `text` is how
    /// the profile wrote them ("4:5..1.91:1").
    Aspect {
        min: Option<f64>,
        max: Option<f64>,
        text: String,
    },
    /// The property must be absent (animation, edit lists).
    Refused,
    /// The property must hold (`moov` first).
    Required,
}

/// One rule of a profile, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: RuleId,
    pub limit: Limit,
    pub source: String,
    pub checked: String,
    pub note: Option<String>,
}

fn number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// `"W:H"` as a ratio.
fn ratio(v: &toml::Value) -> Option<f64> {
    let (w, h) = v.as_str()?.split_once(':')?;
    let (w, h): (f64, f64) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0.0 && h > 0.0).then_some(w / h)
}

impl Rule {
    /// Reads one `[[platform.rule]]` table.
    ///
    /// # Errors
    /// A message naming the rule and what is wrong.
    pub fn from_table(t: &toml::Table) -> Result<Rule, String> {
        let name = t.get("rule").and_then(|v| v.as_str()).unwrap_or("");
        let id = RuleId::parse(name).ok_or_else(|| format!("unknown rule {name:?}"))?;
        let text = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let limit =
            limit(id, t).ok_or_else(|| format!("rule {name}: a value of the wrong shape"))?;
        let source = text("source").filter(|s| !s.is_empty());
        let checked = text("checked").filter(|s| !s.is_empty());
        let (Some(source), Some(checked)) = (source, checked) else {
            return Err(format!(
                "rule {name}: every rule needs a source and a checked date"
            ));
        };
        Ok(Rule {
            id,
            limit,
            source,
            checked,
            note: text("note"),
        })
    }
}

fn limit(id: RuleId, t: &toml::Table) -> Option<Limit> {
    match id.shape() {
        Shape::List => {
            let list = t.get("allowed")?.as_array()?;
            let values: Option<Vec<String>> = list
                .iter()
                .map(|v| v.as_str().map(str::to_ascii_lowercase))
                .collect();
            Some(Limit::OneOf(values?))
        }
        Shape::Range => {
            let (min, max) = (t.get("min").map(number), t.get("max").map(number));
            let (min, max) = (min.map(|m| m.ok_or(())), max.map(|m| m.ok_or(())));
            let (min, max) = (min.transpose().ok()?, max.transpose().ok()?);
            (min.is_some() || max.is_some()).then_some(Limit::Range { min, max })
        }
        Shape::Aspect => {
            let (min, max) = (t.get("min").map(ratio), t.get("max").map(ratio));
            let (min, max) = (min.map(|m| m.ok_or(())), max.map(|m| m.ok_or(())));
            let (min, max) = (min.transpose().ok()?, max.transpose().ok()?);
            let side = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let text = format!("{}..{}", side("min"), side("max"));
            (min.is_some() || max.is_some()).then_some(Limit::Aspect { min, max, text })
        }
        Shape::Refused => (!t.get("allowed")?.as_bool()?).then_some(Limit::Refused),
        Shape::Required => t.get("required")?.as_bool()?.then_some(Limit::Required),
    }
}

impl Limit {
    /// The limit as results show it ("jpeg, webp", "1..10", "4:5..1.91:1").
    pub fn shown(&self) -> String {
        let num = |v: f64| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        };
        let bound = |v: Option<f64>| v.map(num).unwrap_or_default();
        match self {
            Limit::OneOf(v) if v.is_empty() => "none".into(),
            Limit::OneOf(v) => v.join(", "),
            Limit::Range { min, max } => format!("{}..{}", bound(*min), bound(*max)),
            Limit::Aspect { text, .. } => text.clone(),
            Limit::Refused => "no".into(),
            Limit::Required => "yes".into(),
        }
    }
}
