//! Normalisation of re-hosted images (contract v3): what each image needs
//! for the platforms of the post's BYO accounts ([`plan`]), the lossless
//! metadata rewrite ([`strip`]), and the bounded re-encode ([`pixels`]).
//!
//! [`Normalizer::apply`] takes a checked image and returns the bytes to
//! store. Re-encodes run on blocking threads, one per core at a time, each
//! after reserving its memory from [`DECODE_BUDGET`]; an image whose decode
//! could never fit is stored as it is (stripped) and the accounts that
//! needed it are rejected with `image_pixels`.

pub mod pixels;
pub mod plan;
pub mod strip;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{self, JobError};
use crate::media::Format;
use crate::media::image::{self, Dimensions, meta::ImageMeta};
use crate::metrics::METRICS;
use crate::profiles::facts::ImageFacts;
pub use plan::{Plan, Shaper, Step, Target};

/// Bytes of decoded pixels held at once, across all jobs (reserved before
/// each decode, in KiB permits). A decode needing more than this is never
/// attempted.
pub use crate::bounds::DECODE_BUDGET;

/// Normalisation settings (`REHOST_NORMALIZE`, `REHOST_STRIP_METADATA`,
/// `REHOST_JPEG_QUALITY`, `REHOST_FASTSTART`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub normalize: bool,
    pub strip: bool,
    pub jpeg_quality: u8,
    /// When re-hosted moov-at-end videos are remuxed (off with `normalize`).
    pub faststart: Faststart,
}

/// `REHOST_FASTSTART`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faststart {
    /// When that turns a BYO account's verdict from `rejected` to `ok`.
    Needed,
    /// Every re-hosted moov-at-end MP4/MOV that can be moved.
    Always,
    Never,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            normalize: true,
            strip: true,
            jpeg_quality: 90,
            faststart: Faststart::Needed,
        }
    }
}

/// An image as checked: its bytes, format and stored dimensions.
pub struct Source {
    pub format: Format,
    pub bytes: Vec<u8>,
    pub dims: Dimensions,
    pub meta: ImageMeta,
}

impl Source {
    /// The facts the profiles judge, as the image displays.
    pub fn facts(&self) -> ImageFacts {
        image_facts(
            self.format,
            self.dims,
            &self.meta,
            Some(self.bytes.len() as u64),
        )
    }
}

/// An image's facts as it displays (its EXIF orientation applied).
pub fn image_facts(
    format: Format,
    dims: Dimensions,
    meta: &ImageMeta,
    bytes: Option<u64>,
) -> ImageFacts {
    let Dimensions { width, height } = dims;
    let (width, height) = if meta.turns() {
        (height, width)
    } else {
        (width, height)
    };
    ImageFacts {
        format: profile_format(format, meta),
        bytes,
        width,
        height,
        animated: meta.animated,
    }
}

/// The name profiles use for a format (`jpeg`, ...; `mpo` for a
/// multi-picture JPEG).
pub fn profile_format(format: Format, meta: &ImageMeta) -> &'static str {
    match format {
        Format::Jpeg if meta.multi_picture => "mpo",
        Format::Jpeg => "jpeg",
        Format::Png => "png",
        Format::Webp => "webp",
        Format::Mp4 => "mp4",
        Format::Mov => "mov",
        Format::Webm => "webm",
    }
}

/// What to store.
#[derive(Debug)]
pub struct Normalized {
    pub bytes: Vec<u8>,
    pub format: Format,
    /// As stored (before any orientation a kept EXIF applies).
    pub dims: Dimensions,
    pub meta: ImageMeta,
    /// Empty when the bytes are the source's.
    pub steps: Vec<Step>,
    /// The accounts whose needed re-encode could not fit the decode budget.
    pub unfit: Vec<usize>,
}

impl Normalized {
    /// The stored image's facts.
    pub fn facts(&self) -> ImageFacts {
        image_facts(
            self.format,
            self.dims,
            &self.meta,
            Some(self.bytes.len() as u64),
        )
    }
}

/// Runs plans. Cheap to clone.
#[derive(Clone)]
pub struct Normalizer {
    pub settings: Settings,
    /// KiB permits of [`DECODE_BUDGET`].
    memory: Arc<Semaphore>,
    /// One re-encode per core at a time.
    cpu: Arc<Semaphore>,
}

impl Normalizer {
    pub fn new(settings: Settings) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Normalizer {
            settings,
            memory: Arc::new(Semaphore::new(kib(DECODE_BUDGET))),
            cpu: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Plans `src` for the `shapers` and carries the plan out.
    ///
    /// # Errors
    /// `corrupt_media` when pixel data that the structure check passed
    /// cannot be decoded; `internal` if a blocking task is lost.
    pub async fn apply(&self, src: Source, shapers: &[Shaper<'_>]) -> Result<Normalized, JobError> {
        let facts = src.facts();
        let s = self.settings;
        let plan = plan::plan(&facts, &src.meta, shapers, s.normalize, s.strip);
        let normalized = match plan.reencode {
            Some(target) => self.reencode(src, &facts, target, &plan).await?,
            None => lossless(src, &plan),
        };
        for step in &normalized.steps {
            METRICS
                .normalized
                .get_or_create(&crate::metrics::labels(&[("step", step.as_str())]))
                .inc();
        }
        Ok(normalized)
    }

    async fn reencode(
        &self,
        src: Source,
        facts: &ImageFacts,
        target: Target,
        plan: &Plan,
    ) -> Result<Normalized, JobError> {
        let shown = target.fit(facts.width, facts.height);
        let decode =
            pixels::Decode::plan(src.format, &src.bytes, src.dims, shown, src.meta.turns())
                .map_err(undecodable)?;
        let need = decode.reserve_bytes();
        if need > DECODE_BUDGET {
            tracing::info!(
                need,
                budget = DECODE_BUDGET,
                "image too large to decode; stored as is"
            );
            let mut n = lossless(src, plan);
            n.unfit.clone_from(&plan.needed_by);
            return Ok(n);
        }
        let cpu = Arc::clone(&self.cpu).acquire_owned().await;
        let memory = Arc::clone(&self.memory)
            .acquire_many_owned(u32::try_from(kib(need)).unwrap_or(u32::MAX))
            .await;
        let (Ok(cpu), Ok(memory)) = (cpu, memory) else {
            return Err(error::internal("normaliser budget closed"));
        };
        let quality = self.settings.jpeg_quality;
        let work = tokio::task::spawn_blocking(move || {
            // The permits go when the work does, even if the job gave up.
            let _held = (cpu, memory);
            let out = pixels::render(src.format, &src.bytes, &src.meta, &decode, &target, quality);
            (src, out)
        });
        let (src, rendered) = work
            .await
            .map_err(|e| error::internal(format!("re-encode task lost: {e}")))?;
        let r = rendered.map_err(undecodable)?;
        if r.over_bytes {
            tracing::info!(bytes = r.jpeg.len(), "no tried size met the byte limit");
        }
        let meta = image::meta::scan(Format::Jpeg, &r.jpeg);
        drop(src);
        Ok(Normalized {
            dims: Dimensions {
                width: r.width,
                height: r.height,
            },
            bytes: r.jpeg,
            format: Format::Jpeg,
            meta,
            steps: r.steps,
            unfit: Vec::new(),
        })
    }
}

fn kib(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(1024)).unwrap_or(usize::MAX)
}

fn undecodable(e: String) -> JobError {
    error::corrupt_media(format!("the image's pixel data cannot be decoded: {e}"))
}

/// The source as stored without its personal metadata (and a
/// multi-picture file's other pictures) when the plan says so.
fn lossless(src: Source, plan: &Plan) -> Normalized {
    let mut steps = Vec::new();
    let rewritten = if plan.strip {
        strip::strip(src.format, &src.bytes, src.meta.orientation)
    } else if plan.first_frame {
        strip::first_frame(src.format, &src.bytes)
    } else {
        None
    };
    let bytes = match rewritten {
        Some(b) if b != src.bytes => {
            if src.meta.multi_picture {
                steps.push(Step::FirstFrame);
            }
            if plan.strip && src.meta.personal {
                steps.push(Step::StripMetadata);
            }
            b
        }
        _ => src.bytes,
    };
    let meta = image::meta::scan(src.format, &bytes);
    Normalized {
        bytes,
        format: src.format,
        dims: src.dims,
        meta,
        steps,
        unfit: Vec::new(),
    }
}
