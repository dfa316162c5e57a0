//! The work of a fault run: a seeded mix of jobs, each with the outcome it
//! must end in when every fault it meets is transient.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// What a job must end as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Ready,
    /// A permanent failure with this code.
    Failed(&'static str),
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub id: String,
    pub kind: &'static str,
    pub byo: bool,
    pub body: Vec<u8>,
    pub expect: Expect,
}

const IMAGES: &[&str] = &[
    "photo.jpg",
    "graphic.png",
    "small.jpg",
    "photo.webp",
    "portrait.jpg",
];

/// Builds the `n`th job of run `run`, its URLs on `origin` (`http://host:port/`).
pub fn job(rng: &mut StdRng, run: &str, n: usize, origin: &str) -> Planned {
    let id = format!("{run}-{n}");
    let roll = rng.random_range(0..100);
    let (kind, byo, media, expect) = match roll {
        0..35 => (
            "byo-slideshow",
            true,
            slideshow(rng, &id, origin, 1..=35, ""),
            Expect::Ready,
        ),
        35..50 => (
            "hosted-slideshow",
            false,
            slideshow(rng, &id, origin, 1..=10, ""),
            Expect::Ready,
        ),
        50..65 => ("byo-video", true, video(rng, &id, origin), Expect::Ready),
        65..73 => (
            "hosted-video",
            false,
            video(rng, &id, origin),
            Expect::Ready,
        ),
        73..85 => (
            "transient",
            true,
            slideshow(rng, &id, origin, 1..=5, "&fail=2"),
            Expect::Ready,
        ),
        85..93 => (
            "not-found",
            true,
            json!({"type": "slideshow", "urls": [format!("{origin}missing-{id}.jpg")]}),
            Expect::Failed("not_found"),
        ),
        _ => (
            "unsupported",
            rng.random_bool(0.5),
            json!({"type": "slideshow", "urls": [format!("{origin}html.jpg?id={id}")]}),
            Expect::Failed("unsupported_format"),
        ),
    };
    Planned {
        body: body(&id, byo, media),
        id,
        kind,
        byo,
        expect,
    }
}

/// A burst of `count` videos from one host, hosted and BYO, `moov` at
/// either end (the per-host budget under load).
pub fn burst(
    rng: &mut StdRng,
    run: &str,
    first: usize,
    count: usize,
    origin: &str,
) -> Vec<Planned> {
    (first..first + count)
        .map(|n| {
            let id = format!("{run}-{n}");
            let byo = n % 4 == 0;
            let media = video(rng, &id, origin);
            Planned {
                body: body(&id, byo, media),
                id,
                kind: if byo {
                    "burst-byo-video"
                } else {
                    "burst-hosted-video"
                },
                byo,
                expect: Expect::Ready,
            }
        })
        .collect()
}

fn body(id: &str, byo: bool, media: Value) -> Vec<u8> {
    let kind = if byo { "byo" } else { "hosted" };
    serde_json::to_vec(&json!({
        "job_id": id,
        "post_id": format!("post-{id}"),
        "workspace_id": "ws_chaos",
        "accounts": [{"id": "acct", "platform": "tiktok", "type": kind}],
        "media": media,
    }))
    .unwrap_or_default()
}

fn slideshow(
    rng: &mut StdRng,
    id: &str,
    origin: &str,
    count: std::ops::RangeInclusive<usize>,
    extra: &str,
) -> Value {
    let n = rng.random_range(count);
    let urls: Vec<String> = (0..n)
        .map(|i| {
            let file = IMAGES[rng.random_range(0..IMAGES.len())];
            let slow = if rng.random_bool(0.1) {
                "&delay_ms=1500"
            } else {
                ""
            };
            format!("{origin}{file}?id={id}&i={i}{slow}{extra}")
        })
        .collect();
    json!({"type": "slideshow", "urls": urls})
}

fn video(rng: &mut StdRng, id: &str, origin: &str) -> Value {
    let mib = rng.random_range(1..=12);
    let moov = if rng.random_bool(0.5) {
        "&moov=end"
    } else {
        ""
    };
    let slow = if rng.random_bool(0.2) {
        "&rate=4000000"
    } else {
        ""
    };
    json!({"type": "video", "url": format!("{origin}gen/{id}.mp4?mib={mib}&seed={}{moov}{slow}", rng.random_range(0..u32::MAX))})
}
