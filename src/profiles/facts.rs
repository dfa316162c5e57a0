//! What the probes measured of one asset, as the rules need it.

/// An image as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    /// `jpeg`, `png` or `webp`; a multi-picture JPEG (MPO) is `mpo`, which
    /// platforms taking only plain JPEG refuse.
    pub format: &'static str,
    /// Absent when the origin did not say (a hosted prefix read).
    pub bytes: Option<u64>,
    /// As displayed (the EXIF orientation applied).
    pub width: u32,
    pub height: u32,
    pub animated: bool,
}

/// A video as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoFacts {
    /// `mp4`, `mov` or `webm`.
    pub container: &'static str,
    pub codec: Option<String>,
    /// `none` without an audio track; absent when unknown.
    pub audio: Option<String>,
    pub bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    pub fps_milli: Option<u32>,
    /// As displayed (after the container's rotation).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub moov_first: Option<bool>,
    pub edit_list: Option<bool>,
}

impl VideoFacts {
    /// Average bits per second over the whole file.
    pub fn bitrate(&self) -> Option<f64> {
        let ms = self.duration_ms.filter(|d| *d > 0)?;
        Some(self.bytes? as f64 * 8.0 * 1000.0 / ms as f64)
    }
}

/// One asset of a post.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    Image(ImageFacts),
    Video(VideoFacts),
}
