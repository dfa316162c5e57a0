//! A video container probe fed the bytes of a file as they stream past:
//! MP4/MOV boxes through [`mp4::Scanner`], WebM headers through
//! [`webm::probe`] on a bounded head. It answers for a whole file
//! ([`VideoProbe::finish`]) and, for a prefix read, what can be known so far
//! ([`VideoProbe::partial`]).

use super::check::MediaError;
use super::{Format, MediaInfo, ProbeError, mp4, webm};

/// How far into a WebM file `Info` and `Tracks` are looked for.
pub use crate::bounds::WEBM_HEAD_CAP;

#[derive(Debug)]
pub struct VideoProbe {
    state: State,
    /// Where in the file the fed bytes start (0, or a tail's offset).
    from: u64,
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

/// What a prefix of a file tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partial {
    /// The metadata, as far as the container gives it.
    Known(MediaInfo),
    /// The header continues: read at least this many bytes from the start.
    NeedMore(u64),
    /// An MP4 whose `moov` was not seen yet; the next top-level box starts
    /// at this offset (a ranged read of the tail from there finds it).
    MoovAfter(u64),
    /// Nothing more can be had cheaply.
    Unknown,
}

impl VideoProbe {
    pub fn new(format: Format) -> Self {
        VideoProbe::at(format, 0)
    }

    /// A probe for bytes that start at `offset` of the file (for MP4, the
    /// start of a top-level box).
    pub fn at(format: Format, offset: u64) -> Self {
        let state = match format {
            Format::Webm => State::Webm {
                head: Vec::new(),
                probed: None,
                gave_up: false,
            },
            _ => State::Mp4(mp4::Scanner::at(offset)),
        };
        VideoProbe {
            state,
            from: offset,
            seen: offset,
        }
    }

    /// Feeds the next bytes of the file.
    ///
    /// # Errors
    /// As soon as the container is known to be broken.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), MediaError> {
        self.seen += data.len() as u64;
        match &mut self.state {
            State::Mp4(scanner) => scanner.feed(data).map_err(MediaError::Corrupt),
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
                    Err(ProbeError::Corrupt(m)) => Err(MediaError::Corrupt(m)),
                    Err(ProbeError::NeedMore(_)) => {
                        *gave_up = head.len() >= WEBM_HEAD_CAP;
                        Ok(())
                    }
                }
            }
        }
    }

    /// Whether an MP4's `moov` comes before its `mdat`, once the box order
    /// shows it (even when `moov` itself was not read).
    pub fn moov_first(&self) -> Option<bool> {
        match &self.state {
            State::Mp4(scanner) => scanner.moov_first(),
            State::Webm { .. } => None,
        }
    }

    /// What the bytes fed so far tell, when they are only a prefix.
    ///
    /// # Errors
    /// [`MediaError::NoVideoTrack`], or a broken `moov`.
    pub fn partial(&self) -> Result<Partial, MediaError> {
        match &self.state {
            State::Mp4(scanner) if scanner.has_moov() => mp4_info(scanner).map(Partial::Known),
            State::Mp4(scanner) => Ok(scanner
                .current_box_end()
                .map_or(Partial::Unknown, Partial::MoovAfter)),
            State::Webm {
                probed: Some(p), ..
            } => p
                .info
                .clone()
                .map(Partial::Known)
                .ok_or(MediaError::NoVideoTrack),
            State::Webm { gave_up: true, .. } => Ok(Partial::Unknown),
            State::Webm { head, .. } => match webm::probe(head) {
                Err(ProbeError::NeedMore(n)) if n <= WEBM_HEAD_CAP as u64 => {
                    Ok(Partial::NeedMore(n))
                }
                _ => Ok(Partial::Unknown),
            },
        }
    }

    /// Checks the complete file (or the complete tail the probe was made
    /// for: a tail without `moov` gives no metadata) and returns what it is.
    ///
    /// # Errors
    /// [`MediaError::Corrupt`] for a truncated or broken container,
    /// [`MediaError::NoVideoTrack`] for audio-only files.
    pub fn finish(self) -> Result<MediaInfo, MediaError> {
        match self.state {
            State::Mp4(scanner) => {
                scanner.check_end().map_err(MediaError::Corrupt)?;
                // A whole file needs a moov; a tail read may come up empty.
                if !scanner.has_moov() && !scanner.moov_too_big() && self.from == 0 {
                    return Err(MediaError::Corrupt("MP4: no moov box".into()));
                }
                mp4_info(&scanner)
            }
            State::Webm {
                probed, gave_up, ..
            } => match probed {
                Some(p) => {
                    if p.segment_end.is_some_and(|end| end > self.seen) {
                        return Err(MediaError::Corrupt(
                            "WebM: file ends inside its Segment (truncated)".into(),
                        ));
                    }
                    p.info.ok_or(MediaError::NoVideoTrack)
                }
                None if gave_up => Ok(MediaInfo::default()),
                None => Err(MediaError::Corrupt(
                    "WebM: file ends inside its header (truncated)".into(),
                )),
            },
        }
    }
}

/// The metadata of a scanned MP4 (defaults when its `moov` was too big to keep).
fn mp4_info(scanner: &mp4::Scanner) -> Result<MediaInfo, MediaError> {
    match scanner.info() {
        Ok(Some(info)) => Ok(info),
        Ok(None) => Err(MediaError::NoVideoTrack),
        Err(ProbeError::Corrupt(m)) => Err(MediaError::Corrupt(m)),
        Err(ProbeError::NeedMore(_)) => Err(MediaError::Corrupt("MP4: moov is truncated".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::fixture;

    fn run(name: &str, format: Format) -> Result<MediaInfo, MediaError> {
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
            Err(MediaError::NoVideoTrack)
        );
        assert!(matches!(
            run("truncated.mp4", Format::Mp4),
            Err(MediaError::Corrupt(_))
        ));
        assert!(matches!(
            run("bogus-ebml.webm", Format::Webm),
            Err(MediaError::Corrupt(_))
        ));
        let b = fixture("clip.webm");
        let mut p = VideoProbe::new(Format::Webm);
        p.feed(&b[..b.len() / 2]).expect("feed");
        assert!(matches!(p.finish(), Err(MediaError::Corrupt(_))));
    }
}
