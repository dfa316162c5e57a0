//! A video container probe fed the bytes of a whole file as they stream
//! past: MP4/MOV boxes through [`mp4::Scanner`], WebM headers through
//! [`webm::probe`] on a bounded head.

use super::{Format, MediaInfo, ProbeError, mp4, webm};

/// How much of a WebM file's start is kept to find `Info` and `Tracks`.
pub const WEBM_HEAD_CAP: usize = 1024 * 1024;

/// Why a video failed its container checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoError {
    /// The container is broken or truncated.
    Corrupt(String),
    /// A well-formed file without a video track (audio only).
    NoVideoTrack,
}

#[derive(Debug)]
pub struct VideoProbe {
    state: State,
    seen: u64,
}

#[derive(Debug)]
enum State {
    Mp4(mp4::Scanner),
    Webm {
        head: Vec<u8>,
        probed: Option<webm::Probe>,
        /// The header was not found within the cap: no metadata.
        gave_up: bool,
    },
}

impl VideoProbe {
    pub fn new(format: Format) -> Self {
        let state = match format {
            Format::Webm => State::Webm {
                head: Vec::new(),
                probed: None,
                gave_up: false,
            },
            _ => State::Mp4(mp4::Scanner::default()),
        };
        VideoProbe { state, seen: 0 }
    }

    /// Feeds the next bytes of the file.
    ///
    /// # Errors
    /// As soon as the container is known to be broken.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), VideoError> {
        self.seen += data.len() as u64;
        match &mut self.state {
            State::Mp4(scanner) => scanner.feed(data).map_err(VideoError::Corrupt),
            State::Webm {
                head,
                probed,
                gave_up,
            } => {
                if probed.is_some() || *gave_up {
                    return Ok(());
                }
                let room = WEBM_HEAD_CAP.saturating_sub(head.len());
                head.extend_from_slice(&data[..data.len().min(room)]);
                match webm::probe(head) {
                    Ok(p) => {
                        *probed = Some(p);
                        head.clear();
                        head.shrink_to_fit();
                        Ok(())
                    }
                    Err(ProbeError::Corrupt(m)) => Err(VideoError::Corrupt(m)),
                    Err(ProbeError::NeedMore(_)) => {
                        *gave_up = head.len() >= WEBM_HEAD_CAP;
                        Ok(())
                    }
                }
            }
        }
    }

    /// Checks the complete file and returns what it is.
    ///
    /// # Errors
    /// [`VideoError::Corrupt`] for a truncated or broken container,
    /// [`VideoError::NoVideoTrack`] for audio-only files.
    pub fn finish(self) -> Result<MediaInfo, VideoError> {
        match self.state {
            State::Mp4(scanner) => {
                scanner.check_end().map_err(VideoError::Corrupt)?;
                match scanner.info(true) {
                    Ok(Some(info)) => Ok(info),
                    Ok(None) => Err(VideoError::NoVideoTrack),
                    Err(ProbeError::Corrupt(m)) => Err(VideoError::Corrupt(m)),
                    Err(ProbeError::NeedMore(_)) => {
                        Err(VideoError::Corrupt("MP4: moov is truncated".into()))
                    }
                }
            }
            State::Webm {
                probed, gave_up, ..
            } => match probed {
                Some(p) => {
                    if p.segment_end.is_some_and(|end| end > self.seen) {
                        return Err(VideoError::Corrupt(
                            "WebM: file ends inside its Segment (truncated)".into(),
                        ));
                    }
                    p.info.ok_or(VideoError::NoVideoTrack)
                }
                None if gave_up => Ok(MediaInfo::default()),
                None => Err(VideoError::Corrupt(
                    "WebM: file ends inside its header (truncated)".into(),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn run(name: &str, format: Format) -> Result<MediaInfo, VideoError> {
        let mut p = VideoProbe::new(format);
        for c in fixture(name).chunks(1000) {
            p.feed(c)?;
        }
        p.finish()
    }

    #[test]
    fn whole_files() {
        assert_eq!(
            run("clip.webm", Format::Webm)
                .expect("webm")
                .codec
                .as_deref(),
            Some("vp9")
        );
        assert_eq!(
            run("clip-moov-end.mp4", Format::Mp4).expect("mp4").width,
            Some(640)
        );
        assert_eq!(
            run("audio-only.m4a", Format::Mp4),
            Err(VideoError::NoVideoTrack)
        );
        assert!(matches!(
            run("truncated.mp4", Format::Mp4),
            Err(VideoError::Corrupt(_))
        ));
        assert!(matches!(
            run("bogus-ebml.webm", Format::Webm),
            Err(VideoError::Corrupt(_))
        ));
        let b = fixture("clip.webm");
        let mut p = VideoProbe::new(Format::Webm);
        p.feed(&b[..b.len() / 2]).expect("feed");
        assert!(matches!(p.finish(), Err(VideoError::Corrupt(_))));
    }
}
