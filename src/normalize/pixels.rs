//! The re-encode: decode (JPEG at the smallest DCT scale that still covers
//! the target), flatten alpha onto white, scale down, apply the EXIF
//! orientation, and encode a baseline JPEG, lowering the quality and then
//! the size until a byte limit is met. Synchronous and CPU-bound: callers
//! run it on a blocking thread, with its memory reserved first
//! ([`Decode::reserve_bytes`]).
//!
//! Deterministic: the scalar IDCT (`jpeg-decoder`'s `platform_independent`),
//! integer flattening, `fast_image_resize`'s fixed-point convolution (the
//! same result with or without SIMD, tested) and `jpeg-encoder` without its
//! SIMD feature.

use std::io::Cursor;

use fast_image_resize::{
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
    images::{Image, ImageRef},
};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::plan::{Step, Target};
use crate::media::Format;
use crate::media::image::Dimensions;
use crate::media::image::meta::ImageMeta;

/// Lowest quality tried before the size is reduced instead.
pub const MIN_QUALITY: u8 = 50;
/// Quality lowered in steps of this much.
const QUALITY_STEP: u8 = 5;
/// Each further step keeps 90% of the width and height.
const SHRINK: f64 = 0.9;
/// Shrink steps tried before giving up on a byte limit.
const MAX_SHRINKS: u32 = 30;

/// How an image will be decoded, decided from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decode {
    /// Size as stored (before orientation) at the decode scale.
    pub width: u32,
    pub height: u32,
    /// Bytes per decoded pixel.
    pub bytes_per_pixel: u64,
    /// Extra bytes the decoder holds (a progressive JPEG's coefficients).
    pub extra: u64,
    /// The variant's size as stored (before orientation).
    pub out_width: u32,
    pub out_height: u32,
}

impl Decode {
    /// Plans the decode of an image stored as `stored` whose displayed size
    /// must become `shown` (`turns`: orientation swaps the axes).
    ///
    /// # Errors
    /// The header cannot be read by the decoder.
    pub fn plan(
        format: Format,
        buf: &[u8],
        stored: Dimensions,
        shown: (u32, u32),
        turns: bool,
    ) -> Result<Decode, String> {
        let (out_width, out_height) = if turns { (shown.1, shown.0) } else { shown };
        let mut d = Decode {
            width: stored.width,
            height: stored.height,
            bytes_per_pixel: 4,
            extra: 0,
            out_width,
            out_height,
        };
        match format {
            Format::Jpeg => d.plan_jpeg(buf)?,
            _ => {
                d.bytes_per_pixel =
                    image_decoder(format, buf)?.total_bytes() / stored.pixels().max(1)
            }
        }
        Ok(d)
    }

    fn plan_jpeg(&mut self, buf: &[u8]) -> Result<(), String> {
        let mut dec = jpeg_decoder::Decoder::new(Cursor::new(buf));
        dec.read_info().map_err(|e| e.to_string())?;
        let info = dec.info().ok_or("JPEG header unreadable")?;
        let k = dct_scale((self.width, self.height), (self.out_width, self.out_height));
        if info.coding_process == jpeg_decoder::CodingProcess::DctProgressive {
            // Coefficients of every block are kept until the last scan.
            self.extra = u64::from(self.width) * u64::from(self.height) * 2 * 3;
        }
        self.width = scaled(self.width, k);
        self.height = scaled(self.height, k);
        self.bytes_per_pixel = info.pixel_format.pixel_bytes() as u64;
        Ok(())
    }

    /// Memory the whole re-encode may hold at once: the decoded image, its
    /// RGB copy, the scaled variant and its orientation copy, the encoded
    /// output.
    pub fn reserve_bytes(&self) -> u64 {
        let decoded = u64::from(self.width) * u64::from(self.height);
        let out = u64::from(self.out_width) * u64::from(self.out_height) * 3;
        decoded * self.bytes_per_pixel + decoded * 3 + out * 3 + self.extra
    }
}

/// `len` at a DCT scale of `k`/8, rounded up as the decoder does.
fn scaled(len: u32, k: u32) -> u32 {
    (len * k).div_ceil(8)
}

/// The smallest DCT scale (1, 2, 4 or 8 eighths) at which both axes still
/// cover the target.
fn dct_scale(stored: (u32, u32), out: (u32, u32)) -> u32 {
    [1, 2, 4]
        .into_iter()
        .find(|&k| scaled(stored.0, k) >= out.0 && scaled(stored.1, k) >= out.1)
        .unwrap_or(8)
}

fn image_decoder(format: Format, buf: &[u8]) -> Result<Box<dyn ImageDecoder + '_>, String> {
    let f = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Webp => image::ImageFormat::WebP,
        other => return Err(format!("{} is not decoded here", other.name())),
    };
    let reader = ImageReader::with_format(Cursor::new(buf), f);
    reader
        .into_decoder()
        .map(|d| Box::new(d) as Box<dyn ImageDecoder>)
        .map_err(|e| e.to_string())
}

/// The re-encoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub jpeg: Vec<u8>,
    /// As displayed (orientation applied).
    pub width: u32,
    pub height: u32,
    pub steps: Vec<Step>,
    /// The byte limit could not be met at any tried size.
    pub over_bytes: bool,
}

/// Decoded pixels as RGB (alpha flattened), and the colour profile to keep.
struct Pixels {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    icc: Option<Vec<u8>>,
    flattened: bool,
}

/// Re-encodes `buf` as planned by `decode`, within `target`, starting at
/// `quality`.
///
/// # Errors
/// The pixel data cannot be decoded, or the encoder refuses the size.
pub fn render(
    format: Format,
    buf: &[u8],
    meta: &ImageMeta,
    decode: &Decode,
    target: &Target,
    quality: u8,
) -> Result<Rendered, String> {
    let px = match format {
        Format::Jpeg => decode_jpeg(buf, decode)?,
        _ => decode_other(format, buf, decode)?,
    };
    let mut steps = Vec::new();
    if meta.orientation != 1 {
        steps.push(Step::Orient);
    }
    if meta.multi_picture {
        steps.push(Step::FirstFrame);
    }
    if px.flattened {
        steps.push(Step::Flatten);
    }
    let out = ladder(&px, meta.orientation, decode, target, quality)?;
    if out.resized || (decode.out_width, decode.out_height) != (px.width, px.height) {
        steps.push(Step::Resize);
    }
    steps.push(Step::ToJpeg);
    if out.recompressed {
        steps.push(Step::Recompress);
    }
    if meta.personal {
        steps.push(Step::StripMetadata);
    }
    Ok(Rendered {
        width: out.width,
        height: out.height,
        over_bytes: out.over_bytes,
        jpeg: out.jpeg,
        steps,
    })
}

fn decode_jpeg(buf: &[u8], plan: &Decode) -> Result<Pixels, String> {
    use jpeg_decoder::PixelFormat;
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(buf));
    let max = usize::try_from(plan.reserve_bytes()).unwrap_or(usize::MAX);
    dec.set_max_decoding_buffer_size(max);
    let want = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let (w, h) = dec
        .scale(want(plan.width), want(plan.height))
        .map_err(|e| e.to_string())?;
    let raw = dec.decode().map_err(|e| e.to_string())?;
    let info = dec.info().ok_or("JPEG header unreadable")?;
    let icc = dec.icc_profile();
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => raw,
        PixelFormat::L8 => raw.iter().flat_map(|&v| [v, v, v]).collect(),
        PixelFormat::L16 => raw
            .chunks_exact(2)
            .flat_map(|v| [v[0], v[0], v[0]])
            .collect(),
        // Adobe CMYK as the decoder returns it (inverted: 255 is no ink).
        PixelFormat::CMYK32 => raw
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u16::from(p[3]);
                let ch = |c: u8| ((u16::from(c) * k + 127) / 255) as u8;
                [ch(p[0]), ch(p[1]), ch(p[2])]
            })
            .collect(),
    };
    let rgb_profile = info.pixel_format != PixelFormat::CMYK32;
    Ok(Pixels {
        rgb,
        width: u32::from(w),
        height: u32::from(h),
        icc: icc.filter(|p| rgb_profile && is_rgb_profile(p)),
        flattened: false,
    })
}

fn decode_other(format: Format, buf: &[u8], plan: &Decode) -> Result<Pixels, String> {
    let mut dec = image_decoder(format, buf)?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(plan.reserve_bytes());
    dec.set_limits(limits).map_err(|e| e.to_string())?;
    let icc = dec.icc_profile().ok().flatten();
    let img = DynamicImage::from_decoder(dec).map_err(|e| e.to_string())?;
    let (width, height) = (img.width(), img.height());
    let flattened = img.color().has_alpha();
    let rgb = if flattened {
        flatten(img.into_rgba8().as_raw())
    } else {
        img.into_rgb8().into_raw()
    };
    Ok(Pixels {
        rgb,
        width,
        height,
        icc: icc.filter(|p| is_rgb_profile(p)),
        flattened,
    })
}

/// An ICC profile whose colour space is RGB (a grey or CMYK profile would
/// be wrong on the RGB output).
fn is_rgb_profile(icc: &[u8]) -> bool {
    icc.get(16..20) == Some(b"RGB ")
}

/// RGBA onto white, in integers (the same on every machine).
fn flatten(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| {
            let a = u32::from(p[3]);
            let on_white = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
            [on_white(p[0]), on_white(p[1]), on_white(p[2])]
        })
        .collect()
}

/// One encode of the ladder.
struct Encoded {
    jpeg: Vec<u8>,
    width: u32,
    height: u32,
    resized: bool,
    recompressed: bool,
    over_bytes: bool,
}

/// Encodes at `quality`, then lower qualities, then smaller sizes, until
/// the byte limit is met; the last try is kept when nothing fits.
fn ladder(
    px: &Pixels,
    orientation: u8,
    decode: &Decode,
    target: &Target,
    quality: u8,
) -> Result<Encoded, String> {
    let limit = target.max_bytes.unwrap_or(f64::INFINITY);
    let (mut w, mut h) = (decode.out_width, decode.out_height);
    let mut q = quality;
    let mut shrinks = 0;
    loop {
        let jpeg = encode(px, orientation, (w, h), q)?;
        let fits = jpeg.len() as f64 <= limit;
        let at_floor = q <= MIN_QUALITY && (shrinks >= MAX_SHRINKS || w.min(h) < 16);
        if fits || at_floor {
            let (width, height) = if orientation >= 5 { (h, w) } else { (w, h) };
            return Ok(Encoded {
                jpeg,
                width,
                height,
                resized: shrinks > 0,
                recompressed: q < quality || shrinks > 0,
                over_bytes: !fits,
            });
        }
        if q > MIN_QUALITY {
            q = q.saturating_sub(QUALITY_STEP).max(MIN_QUALITY);
        } else {
            shrinks += 1;
            let f = SHRINK.powi(shrinks as i32);
            w = ((f64::from(decode.out_width) * f).floor() as u32).max(1);
            h = ((f64::from(decode.out_height) * f).floor() as u32).max(1);
        }
    }
}

/// Scales the pixels to `size` (as stored), orients them, encodes them.
fn encode(px: &Pixels, orientation: u8, size: (u32, u32), quality: u8) -> Result<Vec<u8>, String> {
    let rgb = if size == (px.width, px.height) {
        px.rgb.clone()
    } else {
        resize(px, size)?
    };
    let img = RgbImage::from_raw(size.0, size.1, rgb).ok_or("pixel buffer of the wrong size")?;
    let mut img = DynamicImage::ImageRgb8(img);
    if let Some(o) = image::metadata::Orientation::from_exif(orientation) {
        img.apply_orientation(o);
    }
    let (w, h) = (img.width(), img.height());
    let too_big = || format!("{w}x{h} is beyond JPEG's 65535 pixels a side");
    let (w16, h16) = (
        u16::try_from(w).map_err(|_| too_big())?,
        u16::try_from(h).map_err(|_| too_big())?,
    );
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, quality);
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    if let Some(icc) = &px.icc {
        enc.add_icc_profile(icc).map_err(|e| e.to_string())?;
    }
    enc.encode(img.as_bytes(), w16, h16, ColorType::Rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn resize(px: &Pixels, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let src =
        ImageRef::new(px.width, px.height, &px.rgb, PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests;
