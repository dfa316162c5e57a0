//! What the fixture origin serves: a directory, or the few media files
//! built into the binary (so `rehost demo`, `rehost loadtest` and
//! `rehost origin` work from any directory and in the container image).

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// The media built into the binary: what the demo jobs and the load test
/// need (the hostile fixtures stay in the repository, for tests).
const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "photo.jpg",
        include_bytes!("../../fixtures/media/photo.jpg"),
    ),
    (
        "portrait.jpg",
        include_bytes!("../../fixtures/media/portrait.jpg"),
    ),
    (
        "small.jpg",
        include_bytes!("../../fixtures/media/small.jpg"),
    ),
    (
        "graphic.png",
        include_bytes!("../../fixtures/media/graphic.png"),
    ),
    (
        "photo.webp",
        include_bytes!("../../fixtures/media/photo.webp"),
    ),
    (
        "phone-exif6.png",
        include_bytes!("../../fixtures/media/phone-exif6.png"),
    ),
    (
        "phone-exif6.jpg",
        include_bytes!("../../fixtures/media/phone-exif6.jpg"),
    ),
    (
        "tall-1x3.jpg",
        include_bytes!("../../fixtures/media/tall-1x3.jpg"),
    ),
    ("clip.mp4", include_bytes!("../../fixtures/media/clip.mp4")),
    (
        "clip-moov-end.mp4",
        include_bytes!("../../fixtures/media/clip-moov-end.mp4"),
    ),
    (
        "fs-h264-aac.mp4",
        include_bytes!("../../fixtures/media/fs-h264-aac.mp4"),
    ),
    (
        "clip.webm",
        include_bytes!("../../fixtures/media/clip.webm"),
    ),
];

/// Where media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// The files built into the binary.
    Embedded,
    /// A directory of files.
    Dir(PathBuf),
}

impl MediaSource {
    /// `dir`, checked: it must exist and hold at least one file.
    ///
    /// # Errors
    /// One line saying what is wrong.
    pub fn dir(dir: &Path) -> Result<MediaSource, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("media directory {} cannot be read: {e}", dir.display()))?;
        let has_media = entries.flatten().any(|e| e.path().is_file());
        if !has_media {
            return Err(format!("media directory {} holds no files", dir.display()));
        }
        Ok(MediaSource::Dir(dir.to_path_buf()))
    }

    /// `Some(dir)` checked, or the embedded media.
    ///
    /// # Errors
    /// See [`MediaSource::dir`].
    pub fn dir_or_embedded(dir: Option<&Path>) -> Result<MediaSource, String> {
        dir.map_or(Ok(MediaSource::Embedded), MediaSource::dir)
    }

    /// The bytes of file `name` (a relative path without `..`).
    pub async fn read(&self, name: &str) -> Option<Bytes> {
        match self {
            MediaSource::Embedded => EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| Bytes::from_static(b)),
            MediaSource::Dir(dir) => tokio::fs::read(dir.join(name)).await.ok().map(Bytes::from),
        }
    }

    /// Names of the embedded files.
    pub fn embedded_names() -> impl Iterator<Item = &'static str> {
        EMBEDDED.iter().map(|(n, _)| *n)
    }
}

impl std::fmt::Display for MediaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaSource::Embedded => f.write_str("the media built into rehost"),
            MediaSource::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}
