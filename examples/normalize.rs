//! Normalises image files the way a re-hosting job does, for benchmarks:
//! each file is checked (format, header, structure), planned for one
//! platform's profile and normalised through the worker's `Normalizer`
//! (same decode budget, one re-encode per core), then written out.
//!
//!   normalize OUT_DIR FILE...                 # for TikTok, one after another
//!   normalize --platform instagram OUT_DIR FILE...
//!   normalize --parallel 8 OUT_DIR FILE...    # all at once, as 8 jobs would
//!   normalize --strip-only --repeat 50 FILE   # median time of the lossless strip
//!
//! Prints one line per file: steps, sizes, milliseconds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rehost::media::check::{self, Kind, Need};
use rehost::media::image::meta;
use rehost::normalize::{Normalizer, Settings, Source, strip};
use rehost::profiles::Profiles;

struct Args {
    platform: String,
    parallel: bool,
    strip_only: bool,
    repeat: usize,
    out: PathBuf,
    files: Vec<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        platform: "tiktok".into(),
        parallel: false,
        strip_only: false,
        repeat: 1,
        out: PathBuf::new(),
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let mut rest = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--platform" => a.platform = it.next().ok_or("--platform NAME")?,
            "--parallel" => {
                it.next();
                a.parallel = true;
            }
            "--strip-only" => a.strip_only = true,
            "--repeat" => a.repeat = it.next().and_then(|n| n.parse().ok()).ok_or("--repeat N")?,
            _ => rest.push(PathBuf::from(arg)),
        }
    }
    if !a.strip_only {
        if rest.is_empty() {
            return Err("usage: normalize [--platform NAME] [--parallel N] OUT_DIR FILE...".into());
        }
        a.out = rest.remove(0);
    }
    a.files = rest;
    Ok(a)
}

/// A file read and checked as a job checks a fetched image.
fn source(path: &Path) -> Result<Source, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let format = check::expect_format(&bytes, Kind::Image).map_err(|e| format!("{e:?}"))?;
    let dims =
        match check::image_header(format, &bytes, 100_000_000).map_err(|e| format!("{e:?}"))? {
            Need::Done(d) => d,
            Need::More(_) => return Err("truncated header".into()),
        };
    check::image_complete(format, &bytes).map_err(|e| format!("{e:?}"))?;
    Ok(Source {
        format,
        dims,
        meta: meta::scan(format, &bytes),
        bytes,
    })
}

fn strip_bench(files: &[PathBuf], repeat: usize) -> Result<(), String> {
    for path in files {
        let src = source(path)?;
        let mut ms: Vec<f64> = (0..repeat.max(1))
            .map(|_| {
                let t = Instant::now();
                let out = strip::strip(src.format, &src.bytes, src.meta.orientation);
                std::hint::black_box(out);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{}: {} bytes, strip median {:.3} ms (min {:.3}, max {:.3}, {} runs)",
            path.display(),
            src.bytes.len(),
            ms[ms.len() / 2],
            ms[0],
            ms[ms.len() - 1],
            ms.len()
        );
    }
    Ok(())
}

async fn one(
    n: &Normalizer,
    profiles: &Profiles,
    platform: &str,
    path: &Path,
    out: &Path,
) -> Result<String, String> {
    let started = Instant::now();
    let src = source(path)?;
    let before = src.bytes.len();
    let profile = profiles.find(platform).ok_or("unknown platform")?;
    let done = n.apply(src, &[(0, profile)]).await.map_err(|e| e.message)?;
    let name = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let target = out.join(format!("{name}.{}", done.format.ext()));
    std::fs::write(&target, &done.bytes).map_err(|e| e.to_string())?;
    let steps: Vec<&str> = done.steps.iter().map(|s| s.as_str()).collect();
    Ok(format!(
        "{}: {before} -> {} bytes, {}x{}, [{}], {:.1} ms",
        path.display(),
        done.bytes.len(),
        done.dims.width,
        done.dims.height,
        steps.join(", "),
        started.elapsed().as_secs_f64() * 1000.0
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if a.strip_only {
        return match strip_bench(&a.files, a.repeat) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let profiles = Profiles::built_in();
    let n = Normalizer::new(Settings::default());
    if let Err(e) = std::fs::create_dir_all(&a.out) {
        eprintln!("{}: {e}", a.out.display());
        return std::process::ExitCode::FAILURE;
    }
    let results: Vec<Result<String, String>> = if a.parallel {
        let jobs = a
            .files
            .iter()
            .map(|f| one(&n, &profiles, &a.platform, f, &a.out));
        futures_util::future::join_all(jobs).await
    } else {
        let mut r = Vec::new();
        for f in &a.files {
            r.push(one(&n, &profiles, &a.platform, f, &a.out).await);
        }
        r
    };
    let mut failed = false;
    for r in results {
        match r {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
