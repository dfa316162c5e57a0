use super::*;
use crate::media::image::{meta, probe};

use crate::testing::fixture;

/// Renders a fixture into `target` the way the normaliser does.
fn render_fixture(name: &str, format: Format, target: &Target) -> (Decode, Rendered) {
    let buf = fixture(name);
    let m = meta::scan(format, &buf);
    let stored = probe(format, &buf).expect("header");
    let shown = if m.turns() {
        (stored.height, stored.width)
    } else {
        (stored.width, stored.height)
    };
    let d = Decode::plan(
        format,
        &buf,
        stored,
        target.fit(shown.0, shown.1),
        m.turns(),
    )
    .expect("plans");
    let r = render(format, &buf, &m, &d, target, 90).expect("renders");
    (d, r)
}

fn decoded(jpeg: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .expect("our output decodes")
        .into_rgb8()
}

fn tiktok_box() -> Target {
    Target {
        max_short: Some(1080.0),
        max_long: Some(1920.0),
        ..Target::default()
    }
}

#[test]
fn a_48_megapixel_photo_is_decoded_at_a_quarter_of_its_pixels() {
    let (d, r) = render_fixture("photo-48mp.jpg", Format::Jpeg, &tiktok_box());
    // 8000x6000 into 1440x1080: the 1/4 DCT scale (2000x1500) still covers it.
    assert_eq!((d.width, d.height), (2000, 1500));
    assert_eq!((r.width, r.height), (1440, 1080));
    assert!(
        d.reserve_bytes() < 8000 * 6000 * 3 / 2,
        "{}",
        d.reserve_bytes()
    );
    assert_eq!(r.steps, vec![Step::Resize, Step::ToJpeg]);
    let img = decoded(&r.jpeg);
    assert_eq!(img.dimensions(), (1440, 1080));
}

#[test]
fn the_orientation_is_applied_and_no_metadata_is_left() {
    let (_, r) = render_fixture("phone-exif6.jpg", Format::Jpeg, &Target::default());
    // Stored 1200x900 with orientation 6: displayed 900x1200.
    assert_eq!((r.width, r.height), (900, 1200));
    assert!(r.steps.contains(&Step::Orient) && r.steps.contains(&Step::StripMetadata));
    let m = meta::scan(Format::Jpeg, &r.jpeg);
    assert_eq!((m.orientation, m.personal), (1, false));
    assert!(m.icc, "the colour profile is kept");
    assert_eq!(decoded(&r.jpeg).dimensions(), (900, 1200));
}

#[test]
fn the_orientation_turns_the_pixels_the_right_way() {
    // Orientation 6 means "rotate 90 degrees clockwise to display": the
    // stored image's top-left corner ends up top-right.
    let buf = fixture("phone-exif6.jpg");
    let src = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
        .expect("decodes")
        .into_rgb8();
    let (_, r) = render_fixture("phone-exif6.jpg", Format::Jpeg, &Target::default());
    let out = decoded(&r.jpeg);
    let (sw, sh) = src.dimensions();
    let near = |a: &image::Rgb<u8>, b: &image::Rgb<u8>| {
        a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) < 40)
    };
    for (sx, sy) in [(20, 20), (sw - 20, 20), (20, sh - 20)] {
        let (ox, oy) = (sh - 1 - sy, sx);
        assert!(
            near(src.get_pixel(sx, sy), out.get_pixel(ox, oy)),
            "stored ({sx},{sy}) {:?} vs shown ({ox},{oy}) {:?}",
            src.get_pixel(sx, sy),
            out.get_pixel(ox, oy)
        );
    }
}

#[test]
fn transparency_is_flattened_onto_white() {
    let (_, r) = render_fixture("alpha.png", Format::Png, &Target::default());
    assert_eq!(r.steps, vec![Step::Flatten, Step::ToJpeg]);
    let img = decoded(&r.jpeg);
    // alpha.png is fully transparent at the top-left corner.
    let corner = img.get_pixel(0, 0);
    assert!(corner.0.iter().all(|&c| c > 240), "{corner:?}");
}

#[test]
fn a_byte_limit_lowers_quality_then_size() {
    let small = Target {
        max_bytes: Some(40_000.0),
        ..Target::default()
    };
    let (_, r) = render_fixture("photo.jpg", Format::Jpeg, &small);
    assert!(r.jpeg.len() <= 40_000, "{}", r.jpeg.len());
    assert!(!r.over_bytes);
    assert!(r.steps.contains(&Step::Recompress));
    let impossible = Target {
        max_bytes: Some(100.0),
        ..Target::default()
    };
    let (_, r) = render_fixture("photo.jpg", Format::Jpeg, &impossible);
    assert!(r.over_bytes, "nothing fits 100 bytes");
    assert!(r.steps.contains(&Step::Resize));
}

#[test]
fn the_same_source_gives_the_same_bytes() {
    for (name, format) in [
        ("phone-exif6.jpg", Format::Jpeg),
        ("alpha-large.png", Format::Png),
        ("photo.webp", Format::Webp),
        ("progressive.jpg", Format::Jpeg),
    ] {
        let (_, a) = render_fixture(name, format, &tiktok_box());
        let (_, b) = render_fixture(
            name,
            format,
            &Target {
                max_long: Some(500.0),
                ..tiktok_box()
            },
        );
        let (_, c) = render_fixture(name, format, &tiktok_box());
        assert_eq!(a.jpeg, c.jpeg, "{name}");
        assert_ne!(a.jpeg, b.jpeg, "{name}: a different target differs");
    }
}

/// The resize is the one step with SIMD code paths chosen at run time: each
/// one this CPU has must give the scalar result, or stored bytes would
/// depend on the machine.
#[test]
fn every_simd_path_of_the_resize_matches_the_scalar_one() {
    use fast_image_resize::CpuExtensions;
    let src = image::load_from_memory(&fixture("photo.jpg"))
        .expect("decodes")
        .into_rgb8();
    let (w, h) = src.dimensions();
    let run = |ext: CpuExtensions| {
        let view = ImageRef::new(w, h, src.as_raw(), PixelType::U8x3).expect("view");
        let mut dst = Image::new(517, 646, PixelType::U8x3);
        let mut resizer = Resizer::new();
        // SAFETY: only extensions this CPU reports are used.
        unsafe { resizer.set_cpu_extensions(ext) };
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        resizer.resize(&view, &mut dst, &options).expect("resizes");
        dst.into_vec()
    };
    let scalar = run(CpuExtensions::None);
    let mut tried = 0;
    #[cfg(target_arch = "x86_64")]
    for ext in [CpuExtensions::Sse4_1, CpuExtensions::Avx2] {
        if ext.is_supported() {
            assert!(run(ext) == scalar, "{ext:?} differs from scalar");
            tried += 1;
        }
    }
    #[cfg(target_arch = "aarch64")]
    if CpuExtensions::Neon.is_supported() {
        assert!(
            run(CpuExtensions::Neon) == scalar,
            "NEON differs from scalar"
        );
        tried += 1;
    }
    eprintln!("compared {tried} SIMD paths with the scalar one");
}

#[test]
fn dct_scale_covers_the_target_on_both_axes() {
    assert_eq!(dct_scale((8000, 6000), (1440, 1080)), 2);
    assert_eq!(dct_scale((8000, 6000), (1000, 750)), 1);
    assert_eq!(dct_scale((8000, 6000), (1001, 750)), 2);
    assert_eq!(dct_scale((8000, 6000), (8000, 6000)), 8);
    assert_eq!(
        dct_scale((801, 601), (101, 76)),
        1,
        "rounded up as the decoder does"
    );
    assert_eq!(dct_scale((801, 601), (102, 76)), 2);
    assert_eq!(scaled(801, 1), 101);
}

#[test]
fn grey_and_cmyk_profiles_are_not_kept_on_rgb_output() {
    let mut icc = vec![0u8; 128];
    icc[16..20].copy_from_slice(b"GRAY");
    assert!(!is_rgb_profile(&icc));
    icc[16..20].copy_from_slice(b"RGB ");
    assert!(is_rgb_profile(&icc));
    assert!(!is_rgb_profile(b"short"));
}

#[test]
fn flattening_is_exact_at_the_ends() {
    assert_eq!(
        flatten(&[10, 20, 30, 255, 10, 20, 30, 0]),
        vec![10, 20, 30, 255, 255, 255]
    );
    assert_eq!(flatten(&[0, 0, 0, 128]), vec![127, 127, 127]);
}

/// `jpeg-encoder`'s optimised Huffman tables with 4:2:0 come out wrong in
/// `zune-jpeg` (libjpeg reads them): the encoder keeps its standard tables,
/// and every output must read the same in both decoders.
#[test]
fn output_reads_the_same_in_two_decoders() {
    let (_, r) = render_fixture("alpha.png", Format::Png, &Target::default());
    let zune = decoded(&r.jpeg);
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(&r.jpeg));
    let px = d.decode().expect("decodes");
    // Chroma upsampling differs between decoders; a misread differs by far more.
    let diff: u64 = zune
        .as_raw()
        .iter()
        .zip(&px)
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let mean = diff as f64 / px.len() as f64;
    assert!(mean < 1.5, "mean difference {mean}");
}
