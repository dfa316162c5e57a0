#!/usr/bin/env python3
"""Image normalisation against libvips and ImageMagick, side by side.

    python3 bench/normalize.py               # 8 photos, 5 rounds
    ROUNDS=7 PHOTOS=/dev/shm/p python3 bench/normalize.py

Each photo is a camera-like 12 MP JPEG (bench/make-photos.sh: 4032x3024
stored, EXIF orientation 6, GPS) that TikTok would reject (its photos are at
most 1080 x 1920); each tool makes what TikTok takes: orientation applied,
scaled to fit 1080 x 1920, baseline JPEG quality 90, metadata removed.

  rehost   target/release/examples/normalize --platform tiktok (the worker's
           Normalizer: check, plan, scaled decode, resize, encode)
  vips     vipsthumbnail -s 1080x1920 ...[Q=90,strip,subsample-mode=on]
           (shrink-on-load; 4:2:0 like the others: libvips turns chroma
           subsampling off at quality 90 unless told)
  magick   ImageMagick 6 convert -define jpeg:size=1920x1080 -auto-orient
           -resize 1080x1920 -strip -quality 90 (the size hint, in stored
           orientation, makes libjpeg decode at 1/2 scale as the others do)

One process per photo for every tool, single-threaded (VIPS_CONCURRENCY=1,
MAGICK_THREAD_LIMIT=1): rehost re-encodes one image per core, so per-image
cost on one core is the comparison that matters. Rounds are interleaved
(the order of tools rotates every round); the table gives medians over rounds
of wall and CPU milliseconds per photo and the largest peak RSS.

Then: peak RSS of rehost normalising all photos at once (as 8 jobs would),
and the median time of the lossless metadata strip of one photo (no
re-encode), beside exiftool removing all metadata.

Needs: cargo, ImageMagick 6, libvips-tools (vipsthumbnail), exiftool.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
PHOTOS = os.environ.get("PHOTOS", "/tmp/rehost-photos")
COUNT = int(os.environ.get("COUNT", "8"))
CONVERT = os.environ.get("IM_CONVERT") or shutil.which("convert-im6.q16") or "convert"
NORMALIZE = os.path.join(ROOT, "target/release/examples/normalize")
ENV = dict(os.environ, VIPS_CONCURRENCY="1", MAGICK_THREAD_LIMIT="1", OMP_NUM_THREADS="1")


def run(cmd):
    """Runs one command; returns (wall s, CPU s, peak RSS KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def commands(photo, out):
    name = os.path.splitext(os.path.basename(photo))[0]
    return {
        "rehost": [NORMALIZE, "--platform", "tiktok", os.path.join(out, "rehost"), photo],
        "vips": ["vipsthumbnail", photo, "-s", "1080x1920",
                 "-o", os.path.join(out, "vips", name + ".jpg[Q=90,strip,subsample-mode=on]")],
        "magick": [CONVERT, "-define", "jpeg:size=1920x1080", photo, "-auto-orient",
                   "-resize", "1080x1920", "-strip", "-quality", "90",
                   os.path.join(out, "magick", name + ".jpg")],
    }


def prepare():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "normalize"],
                   cwd=ROOT, check=True)
    have = sorted(f for f in os.listdir(PHOTOS) if f.endswith(".jpg")) if os.path.isdir(PHOTOS) else []
    if len(have) < COUNT:
        subprocess.run(["bash", os.path.join(ROOT, "bench/make-photos.sh"), PHOTOS, str(COUNT)],
                       check=True, stdout=subprocess.DEVNULL)
        have = sorted(f for f in os.listdir(PHOTOS) if f.endswith(".jpg"))
    return [os.path.join(PHOTOS, f) for f in have[:COUNT]]


def identify(path):
    out = subprocess.run(["vipsheader", "-f", "width", path], capture_output=True, text=True, check=True)
    w = out.stdout.strip()
    out = subprocess.run(["vipsheader", "-f", "height", path], capture_output=True, text=True, check=True)
    return f"{w}x{out.stdout.strip()}"


def compare(photos, out):
    tools = ["rehost", "vips", "magick"]
    for t in tools:
        os.makedirs(os.path.join(out, t), exist_ok=True)
    per_round = {t: [] for t in tools}
    peak = {t: 0 for t in tools}
    for r in range(ROUNDS):
        order = tools[r % 3:] + tools[:r % 3]
        for t in order:
            wall = cpu = 0.0
            for p in photos:
                w, c, rss = run(commands(p, out)[t])
                wall += w
                cpu += c
                peak[t] = max(peak[t], rss)
            per_round[t].append((wall / len(photos), cpu / len(photos)))
        print(f"round {r + 1}/{ROUNDS} done", file=sys.stderr)
    rows = {}
    for t in tools:
        wall = statistics.median(w for w, _ in per_round[t]) * 1000
        cpu = statistics.median(c for _, c in per_round[t]) * 1000
        first = sorted(os.listdir(os.path.join(out, t)))[0]
        outfile = os.path.join(out, t, first)
        rows[t] = (wall, cpu, peak[t] / 1024, identify(outfile), os.path.getsize(outfile))
    return rows


def parallel_rss(photos, out):
    _, cpu, rss = run([NORMALIZE, "--platform", "tiktok", "--parallel", str(len(photos)),
                       os.path.join(out, "parallel")] + photos)
    return rss / 1024, cpu


def strip_times(photo):
    line = subprocess.run([NORMALIZE, "--strip-only", "--repeat", "51", photo],
                          capture_output=True, text=True, check=True).stdout
    ours = float(line.split("strip median ")[1].split(" ms")[0])
    tmp = tempfile.mkdtemp()
    try:
        walls = []
        for i in range(5):
            copy = os.path.join(tmp, f"{i}.jpg")
            shutil.copy(photo, copy)
            walls.append(run(["exiftool", "-q", "-all=", "-overwrite_original", copy])[0] * 1000)
        return ours, statistics.median(walls), os.path.getsize(photo)
    finally:
        shutil.rmtree(tmp)


def main():
    photos = prepare()
    out = tempfile.mkdtemp(prefix="rehost-normalize-")
    try:
        rows = compare(photos, out)
        rss, cpu = parallel_rss(photos, out)
        ours, exif, size = strip_times(photos[0])
    finally:
        shutil.rmtree(out)
    print(f"{len(photos)} photos of 12 MP, {ROUNDS} interleaved rounds, medians per photo\n")
    print("| tool | wall ms/photo | CPU ms/photo | peak RSS MiB | output | bytes (first photo) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t, (wall, c, peak, dims, size_out) in rows.items():
        print(f"| {t} | {wall:.0f} | {c:.0f} | {peak:.0f} | {dims} | {size_out} |")
    base = rows["rehost"]
    for t in ("vips", "magick"):
        print(f"\nrehost / {t}: {base[0] / rows[t][0]:.2f}x wall, {base[1] / rows[t][1]:.2f}x CPU", end="")
    print("\n")
    print(f"rehost, {len(photos)} photos at once (as {len(photos)} jobs): peak RSS {rss:.0f} MiB, CPU {cpu:.2f} s")
    print(f"lossless strip of one {size / 1e6:.1f} MB photo: rehost {ours:.2f} ms (median of 51, in process); "
          f"exiftool -all= {exif:.0f} ms (whole process, median of 5)")


if __name__ == "__main__":
    main()
