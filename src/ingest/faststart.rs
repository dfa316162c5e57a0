//! Re-hosted MP4/MOV videos whose `moov` may have to move before the media
//! data (contract v4, "Video normalisation"). Written once, streaming, with
//! the contract's requests in order, each finished before the next (so no
//! request of the asset waits for a host place its own request holds), on
//! one clock and so one deadline ([`Clock`]):
//!
//! 1. `Range: bytes=0-`: its 206 proves Range support and gives the box
//!    layout. A `moov`-first file, a WebM, an origin that ignores `Range`
//!    or sends no validator, and anything else that cannot be moved is
//!    stored from this very response, as always (one request).
//! 2. Everything after the first `mdat` (the tail: `moov` and whatever
//!    else follows the media data), held in memory within
//!    [`MOOV_LIMIT`], reserved from the image buffer budget first.
//! 3. The media data (from the end of `ftyp` to the end of the `mdat`),
//!    streamed into the upload after `ftyp` and the new `moov`; the tail's
//!    other boxes follow.
//!
//! Requests 2 and 3 carry `If-Range` with the first answer's validator and
//! must answer 206 with the same total size (and `ETag`, when sent):
//! otherwise the file changed between the reads and the try fails with
//! `unreachable` (retryable). Whether to move `moov` is decided between 2
//! and 3, from the `moov` just read: under `REHOST_FASTSTART=needed` only
//! when that turns a BYO account from `rejected` to `ok`. Not moving it
//! stores the same three pieces in their original order.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::byo::{self, Record};
use super::{Asset, Ingestor};
use crate::bounds::MOOV_LIMIT;
use crate::error::{self, JobError};
use crate::fetch::{Ask, Body, Clock, Opened, Range};
use crate::job::JobKind;
use crate::media::check::{self, Kind};
use crate::media::faststart::{self, Head, Skip};
use crate::media::video::VideoProbe;
use crate::media::{Format, MediaInfo};
use crate::metrics::{METRICS, labels};
use crate::normalize::Faststart;
use crate::profiles::facts::{Facts, VideoFacts};
use crate::profiles::{Profile, RuleId, check as rules};
use crate::result::NormalizedOut;
use crate::store::{Store, Upload};

use super::asset::{PREFIX_BYTES, fill, video_facts};

/// A video as stored, and what the result and the verdicts need of it.
pub(super) struct Stored {
    pub record: Record,
    /// As stored (`moov_first` true when moved).
    pub info: MediaInfo,
    /// Present when the stored bytes differ from the source's.
    pub normalized: Option<NormalizedOut>,
    /// Why a moov-at-end file was stored as it is.
    pub skipped: Option<Skip>,
}

/// Whether this asset's video may be moved, and when: never with
/// normalisation off or `REHOST_FASTSTART=never`; under `needed`, only
/// when a BYO account's platform requires `moov` first.
pub(super) fn wanted(ing: &Ingestor, a: &Asset<'_>) -> Option<Faststart> {
    let s = ing.platform.normalize;
    match s.faststart {
        _ if !s.normalize || a.kind != JobKind::Video => None,
        Faststart::Never => None,
        Faststart::Always => Some(Faststart::Always),
        Faststart::Needed => a
            .shapers
            .iter()
            .any(|(_, p)| p.rules.iter().any(|r| r.id == RuleId::MoovFirst))
            .then_some(Faststart::Needed),
    }
}

/// Whether moving `moov` turns `profile`'s verdict on this video from
/// `rejected` to `ok`: its only violations are `moov_first`.
pub(super) fn needed_by(profile: &Profile, facts: &VideoFacts) -> bool {
    let v = rules::judge(profile, &[Facts::Video(facts.clone())]).violations;
    !v.is_empty() && v.iter().all(|v| v.rule == RuleId::MoovFirst)
}

/// The entity the three requests must all read.
struct Entity {
    /// `ETag` (strong) or `Last-Modified`, for `If-Range`.
    validator: String,
    etag: Option<String>,
    total: u64,
}

impl Entity {
    /// The first answer's entity; `Err` when it cannot be moved safely.
    fn of(first: &Opened) -> Result<Entity, Skip> {
        if !first.partial {
            return Err(Skip::NoRanges);
        }
        let total = first.total_size.ok_or(Skip::NoRanges)?;
        if total == 0 || first.span != Some((0, total - 1)) {
            return Err(Skip::NoRanges);
        }
        let strong = first.etag.clone().filter(|e| !e.starts_with("W/"));
        let validator = strong
            .clone()
            .or_else(|| first.last_modified.clone())
            .ok_or(Skip::NoValidator)?;
        Ok(Entity {
            validator,
            etag: first.etag.clone(),
            total,
        })
    }

    /// Checks a later answer names the same file and carries exactly the
    /// bytes `span` (inclusive).
    fn same(&self, later: &Opened, span: (u64, u64)) -> Result<(), JobError> {
        let want = span.1 + 1 - span.0;
        let changed = |what: &str| {
            Err(error::unreachable(format!(
                "the file changed between rehost's reads ({what}); trying again reads it afresh"
            )))
        };
        if !later.partial {
            return changed("the origin answered a ranged read with the whole file");
        }
        if later.total_size != Some(self.total) {
            return changed("its size differs");
        }
        if let (Some(a), Some(b)) = (&self.etag, &later.etag)
            && a != b
        {
            return changed("its ETag differs");
        }
        if later.content_length.is_some_and(|n| n != want) || later.span != Some(span) {
            return changed("the range answered is not the one asked for");
        }
        Ok(())
    }

    fn ask(&self, start: u64, end: u64) -> Ask {
        Ask {
            range: Some(Range {
                start,
                end: Some(end - 1),
            }),
            if_range: Some(self.validator.clone()),
        }
    }
}

/// Stores the video of `a`, moving its `moov` when `want` says so.
pub(super) async fn ingest(
    ing: &Ingestor,
    store: &Store,
    a: &Asset<'_>,
    want: Faststart,
) -> Result<Stored, JobError> {
    let max = ing.limits.max_video_bytes;
    let mut clock = Clock::default();
    let ask = Ask {
        range: Some(Range {
            start: 0,
            end: None,
        }),
        if_range: None,
    };
    let first = ing
        .fetcher
        .open_on(&a.src.url, &ask, max, &mut clock)
        .await?;
    // A 206 that is not the whole file cannot be stored from (the one
    // request the single pass has): the origin cut the range short.
    if first.partial
        && first
            .total_size
            .is_some_and(|t| t > 0 && first.span != Some((0, t - 1)))
    {
        return Err(error::unreachable(
            "the origin answered a part of the file to a request for all of it (Range: bytes=0-)",
        ));
    }
    let declared = first.total_size.or(first.content_length);
    let entity = Entity::of(&first);
    let mut body = first.body;
    let mut head = Vec::with_capacity(PREFIX_BYTES);
    let mut eof = fill(&mut body, &mut head, PREFIX_BYTES).await?;
    let format = check::expect_format(&head, Kind::Video)?;
    let layout = match format {
        Format::Webm => Head::MoovFirst,
        _ => loop {
            match faststart::head(&head) {
                Head::NeedMore(n) if !eof => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    eof = fill(&mut body, &mut head, n).await?;
                }
                other => break other,
            }
        },
    };
    let plan = plan(layout, entity);
    match plan {
        Ok((prefix_end, mdat_end, entity)) => {
            drop(body);
            head.truncate(usize::try_from(prefix_end).unwrap_or(usize::MAX));
            let moov = MoovAtEnd {
                format,
                prefix: Bytes::from(head),
                mdat_end,
                entity,
            };
            moov.store(ing, store, a, want, clock).await
        }
        Err(skipped) => {
            count_skip(skipped);
            let from = byo::Streamed {
                body,
                head,
                eof,
                declared,
            };
            let (record, info) = byo::store_stream(store, a.workspace, format, from).await?;
            Ok(Stored {
                record,
                info,
                normalized: None,
                skipped,
            })
        }
    }
}

/// What the first answer allows: the three requests (the prefix's and the
/// first `mdat`'s ends, the entity), or the single pass, with the reason
/// when a moov-at-end file is stored as it is.
fn plan(layout: Head, entity: Result<Entity, Skip>) -> Result<(u64, u64, Entity), Option<Skip>> {
    match (layout, entity) {
        (
            Head::MdatFirst {
                prefix_end,
                mdat_end,
            },
            Ok(e),
        ) => match e.total.checked_sub(mdat_end) {
            // Nothing after the media data: no moov, which the single pass
            // reports as such.
            Some(0) => Err(None),
            Some(tail) if tail <= MOOV_LIMIT => Ok((prefix_end, mdat_end, e)),
            Some(_) => Err(Some(Skip::TailTooLarge)),
            // The mdat runs past the end: a truncated file, which the
            // single pass reports as such.
            None => Err(None),
        },
        (Head::MdatFirst { .. }, Err(skip)) | (Head::Unmovable(skip), _) => Err(Some(skip)),
        _ => Err(None),
    }
}

fn count_skip(skip: Option<Skip>) {
    if let Some(s) = skip {
        tracing::info!(
            reason = s.as_str(),
            "moov at the end is not moved: {}",
            s.why()
        );
        METRICS
            .faststart_skipped
            .get_or_create(&labels(&[("reason", s.as_str())]))
            .inc();
    }
}

/// A moov-at-end file whose first answer proved ranges and a validator.
struct MoovAtEnd {
    format: Format,
    /// The leading `ftyp` (empty without one).
    prefix: Bytes,
    /// Where the first `mdat` ends: the tail starts there.
    mdat_end: u64,
    entity: Entity,
}

/// The tail and what is decided from it.
struct Moved {
    /// Everything after the first `mdat`.
    tail: Bytes,
    /// The new `moov`, and where the old one lies in the tail, when moved.
    moov: Option<(Bytes, std::ops::Range<usize>)>,
    skipped: Option<Skip>,
}

impl MoovAtEnd {
    async fn store(
        self,
        ing: &Ingestor,
        store: &Store,
        a: &Asset<'_>,
        want: Faststart,
        mut clock: Clock,
    ) -> Result<Stored, JobError> {
        clock.size = Some(self.entity.total);
        let tail_len = self.entity.total - self.mdat_end;
        // The tail, the new moov and the whole-file probe's copy of the old
        // one: three times the tail at most.
        let _budget = byo::reserve(ing, tail_len.saturating_mul(3)).await?;
        let ask = self.entity.ask(self.mdat_end, self.entity.total);
        let tail = self.read_tail(ing, a, &ask, &mut clock).await?;
        let moved = self.decide(a, want, tail)?;
        count_skip(moved.skipped);
        let media_end = self.mdat_end;
        let start = self.prefix.len() as u64;
        let ask = self.entity.ask(start, media_end);
        let max = ing.limits.max_video_bytes;
        let third = ing
            .fetcher
            .open_on(&a.src.url, &ask, max, &mut clock)
            .await?;
        self.entity.same(&third, (start, media_end - 1))?;
        let out_len = match &moved.moov {
            Some((new, old)) => self.entity.total - old.len() as u64 + new.len() as u64,
            None => self.entity.total,
        };
        let mut upload = store.begin(a.workspace, self.format, Some(out_len)).await?;
        match self.stream(&mut upload, third.body, &moved).await {
            Ok(done) => self.finish(upload, done, moved).await,
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// Request 2: the tail, whole.
    async fn read_tail(
        &self,
        ing: &Ingestor,
        a: &Asset<'_>,
        ask: &Ask,
        clock: &mut Clock,
    ) -> Result<Bytes, JobError> {
        let want = self.entity.total - self.mdat_end;
        let opened = ing
            .fetcher
            .open_on(&a.src.url, ask, ing.limits.max_video_bytes, clock)
            .await?;
        self.entity
            .same(&opened, (self.mdat_end, self.entity.total - 1))?;
        let mut body = opened.body;
        let mut tail = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        while let Some(chunk) = body.chunk().await? {
            if (tail.len() + chunk.len()) as u64 > want {
                return Err(error::unreachable(
                    "the origin sent more than the range asked for",
                ));
            }
            tail.extend_from_slice(&chunk);
        }
        if tail.len() as u64 != want {
            return Err(error::unreachable("the origin's range ended short"));
        }
        Ok(Bytes::from(tail))
    }

    /// Between requests 2 and 3: is the tail what a move needs, and is the
    /// move wanted? A broken `moov` here is the file's own fault
    /// (`corrupt_media`, as the single pass would find); one that merely
    /// cannot be moved is a skip.
    fn decide(&self, a: &Asset<'_>, want: Faststart, tail: Bytes) -> Result<Moved, JobError> {
        let mut probe = VideoProbe::at(self.format, self.mdat_end);
        probe.feed(&tail)?;
        let info = probe.finish()?;
        let facts = video_facts(self.format, &info, Some(self.entity.total));
        let wanted = match want {
            Faststart::Always => true,
            _ => a.shapers.iter().any(|(_, p)| needed_by(p, &facts)),
        };
        if !wanted {
            return Ok(Moved {
                tail,
                moov: None,
                skipped: None,
            });
        }
        let media = |t: &faststart::Tail| self.prefix.len() as u64..t.moov_start;
        let moved = faststart::tail(&tail, self.mdat_end, self.entity.total).and_then(|t| {
            let new = faststart::remux(&tail[t.moov.clone()], media(&t))?;
            Ok((Bytes::from(new), t.moov))
        });
        Ok(match moved {
            Ok(m) => Moved {
                tail,
                moov: Some(m),
                skipped: None,
            },
            Err(skip) => Moved {
                tail,
                moov: None,
                skipped: Some(skip),
            },
        })
    }

    /// Request 3, streamed: the stored copy written and hashed, the source
    /// hashed and checked in its original order.
    async fn stream(
        &self,
        upload: &mut Upload,
        mut media: Body,
        moved: &Moved,
    ) -> Result<Done, JobError> {
        let mut d = Done::new(self.format);
        d.source(&self.prefix)?;
        d.write(upload, self.prefix.clone()).await?;
        if let Some((new, _)) = &moved.moov {
            d.write(upload, new.clone()).await?;
        }
        let want = self.mdat_end - self.prefix.len() as u64;
        let mut got = 0u64;
        while let Some(chunk) = media.chunk().await? {
            got += chunk.len() as u64;
            if got > want {
                return Err(error::unreachable(
                    "the origin sent more than the range asked for",
                ));
            }
            d.source(&chunk)?;
            d.write(upload, chunk).await?;
        }
        if got != want {
            return Err(error::unreachable(format!(
                "the origin's range ended short: {got} of {want} bytes"
            )));
        }
        d.source(&moved.tail)?;
        match &moved.moov {
            Some((_, old)) => {
                d.write(upload, moved.tail.slice(..old.start)).await?;
                d.write(upload, moved.tail.slice(old.end..)).await?;
            }
            None => d.write(upload, moved.tail.clone()).await?,
        }
        Ok(d)
    }

    async fn finish(&self, upload: Upload, d: Done, moved: Moved) -> Result<Stored, JobError> {
        let mut info = d.probe.finish()?;
        let source_sha = hex::encode(d.source_hash.finalize());
        let sha = d.out_hash.finish().await?;
        let started = std::time::Instant::now();
        let stored = upload.finish(&sha).await?;
        let record = Record::new(stored, sha, d.out_len, self.format, started);
        let normalized = moved.moov.as_ref().map(|_| {
            METRICS
                .normalized
                .get_or_create(&labels(&[("step", "faststart")]))
                .inc();
            NormalizedOut {
                steps: vec!["faststart".into()],
                source_sha256: source_sha,
                source_bytes: self.entity.total,
                source_content_type: self.format.content_type().into(),
                source_width: info.width.unwrap_or(0),
                source_height: info.height.unwrap_or(0),
            }
        });
        if moved.moov.is_some() {
            info.moov_first = Some(true);
        }
        Ok(Stored {
            record,
            info,
            normalized,
            skipped: moved.skipped,
        })
    }
}

/// What streaming the stored copy accumulates.
struct Done {
    probe: VideoProbe,
    source_hash: Sha256,
    out_hash: HashElsewhere,
    out_len: u64,
}

impl Done {
    fn new(format: Format) -> Done {
        Done {
            probe: VideoProbe::new(format),
            source_hash: Sha256::new(),
            out_hash: HashElsewhere::start(),
            out_len: 0,
        }
    }

    /// Source bytes, in the file's order: checked and hashed.
    fn source(&mut self, bytes: &[u8]) -> Result<(), JobError> {
        self.probe.feed(bytes)?;
        self.source_hash.update(bytes);
        Ok(())
    }

    /// Stored bytes, in the copy's order: hashed and written.
    async fn write(&mut self, upload: &mut Upload, bytes: Bytes) -> Result<(), JobError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.out_hash.update(bytes.clone()).await;
        self.out_len += bytes.len() as u64;
        upload.write(bytes).await?;
        Ok(())
    }
}

/// The SHA-256 of the stored copy, computed on a blocking thread beside the
/// task (which hashes the source): faststart hashes every byte twice, and
/// with a spare core the second hash costs no wall time. At most
/// [`HASH_QUEUE`] chunks wait for it (they are the upload's own `Bytes`).
struct HashElsewhere {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    done: tokio::task::JoinHandle<String>,
}

/// Chunks (64 KiB each from the origin) queued for the stored copy's hash.
const HASH_QUEUE: usize = 32;

impl HashElsewhere {
    fn start() -> HashElsewhere {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            while let Some(b) = rx.blocking_recv() {
                h.update(&b);
            }
            hex::encode(h.finalize())
        });
        HashElsewhere { tx: Some(tx), done }
    }

    async fn update(&mut self, bytes: Bytes) {
        if let Some(tx) = &self.tx {
            // The thread ends only when the sender is dropped.
            let _ = tx.send(bytes).await;
        }
    }

    /// The hash of everything sent.
    async fn finish(mut self) -> Result<String, JobError> {
        drop(self.tx.take());
        (&mut self.done)
            .await
            .map_err(|e| error::internal(format!("hashing task lost: {e}")))
    }
}
