#!/usr/bin/env python3
"""Load-test benchmarks for rehost: throughput, latency, hosted-only reads, memory.

    python3 bench/loadtest.py latency      # the 35-image slideshow against one image

Runs against the local RabbitMQ (127.0.0.1:5672) with queue names unique to
each run, an S3 server in its own process (examples/s3_server.rs), and
`rehost loadtest --spawn-workers W` (release build). Prints a Markdown table
per benchmark with medians over ROUNDS interleaved rounds.

    python3 bench/loadtest.py            # all four benchmarks, 3 rounds
    ROUNDS=5 python3 bench/loadtest.py throughput
"""
import json, os, shutil, statistics as st, subprocess, sys, tempfile, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/rehost")
S3BIN = os.path.join(ROOT, "target/release/examples/s3_server")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
S3_PORT = int(os.environ.get("S3_PORT", "19100"))


def cpu_seconds(pid):
    try:
        rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class S3:
    def __init__(self, base):
        self.root = tempfile.mkdtemp(prefix="rehost-s3-", dir=base)
        self.proc = subprocess.Popen(
            [S3BIN, "--root", self.root, "--addr", f"127.0.0.1:{S3_PORT}", "--bucket", "media",
             "--access-key", "bench", "--secret-key", "bench-secret"], stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def clear(self):
        shutil.rmtree(os.path.join(self.root, "media"), ignore_errors=True)
        os.makedirs(os.path.join(self.root, "media"), exist_ok=True)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def env(extra=None):
    run = uuid.uuid4().hex[:8]
    e = dict(os.environ)
    e.pop("AWS_CA_BUNDLE", None)
    e.update({
        "S3_ENDPOINT": f"http://127.0.0.1:{S3_PORT}", "S3_BUCKET": "media",
        "S3_ACCESS_KEY_ID": "bench", "S3_SECRET_ACCESS_KEY": "bench-secret",
        "PUBLIC_BASE_URL": "https://media.example.net", "RUST_LOG": "warn",
        "REHOST_PUBLIC_PROBE": "off",  # a fake base: nothing serves it
        "REHOST_QUEUE": f"bench-{run}.ingest", "REHOST_EXCHANGE": f"bench-{run}.media",
        "REHOST_RESULTS_EXCHANGE": f"bench-{run}.events", "REHOST_RESULTS_QUEUE": "",
        "REHOST_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
    })
    e.update(extra or {})
    return e, run


def loadtest(args, s3, extra=None):
    e, run = env(extra)
    s3.clear()
    s3_cpu = s3.cpu()
    t = time.monotonic()
    out = subprocess.run([BIN, "loadtest", "--json", "--media", os.path.join(ROOT, "fixtures/media")] + args,
                         env=e, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"loadtest failed: {out.stderr}")
    r = json.loads(out.stdout)
    r["s3_cpu_seconds"] = s3.cpu() - s3_cpu
    r["run_wall_s"] = wall
    for q in [f"bench-{run}.ingest", f"bench-{run}.ingest.dead"] + [f"bench-{run}.ingest.{kind}.{d}" for kind in ("retry-q", "retry") for d in ["5s", "30s", "2m", "10m"]]:
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", q], capture_output=True)
    return r


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return st.median(vals) if vals else float("nan")


def rclone_images(n, origin_port):
    """`rclone copyurl` once per image, as a script would do it."""
    e, _ = env()
    e.update({"RCLONE_CONFIG_B_TYPE": "s3", "RCLONE_CONFIG_B_PROVIDER": "Other",
              "RCLONE_CONFIG_B_ENDPOINT": f"http://127.0.0.1:{S3_PORT}",
              "RCLONE_CONFIG_B_ACCESS_KEY_ID": "bench", "RCLONE_CONFIG_B_SECRET_ACCESS_KEY": "bench-secret",
              "RCLONE_CONFIG_B_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG_B_REGION": "auto"})
    t = time.monotonic()
    cpu0 = os.times()
    for i in range(n):
        subprocess.run(["rclone", "copyurl", f"http://127.0.0.1:{origin_port}/photo.jpg?r={i}", f"b:media/rclone/{i}.jpg"],
                       env=e, check=True, capture_output=True)
    cpu1 = os.times()
    wall = time.monotonic() - t
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return n / wall, cpu * 1000 / n


def throughput(s3):
    print("\n## 1. Slideshow throughput: 500 jobs x 10 images (about 200 KB each)\n")
    rows = {1: [], 2: []}
    for _ in range(ROUNDS):
        for w in (1, 2):
            rows[w].append(loadtest(["--jobs", "500", "--images", "10", "--spawn-workers", str(w)], s3))
    origin = subprocess.Popen([BIN, "origin", "--dir", os.path.join(ROOT, "fixtures/media"), "--listen", "127.0.0.1:18181"],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    s3.clear()
    peer = [rclone_images(100, 18181) for _ in range(ROUNDS)]
    origin.terminate()
    print("| workers | jobs/s | images/s | MB/s | p50 ms | p99 ms | worker CPU ms/image | S3 server CPU s | worker peak RSS MiB | lost |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in (1, 2):
        r = rows[w]
        print(f"| {w} | {med(r,'jobs_per_sec'):.1f} | {med(r,'images_per_sec'):.0f} | {med(r,'mb_per_sec'):.1f} | "
              f"{med(r,'p50_ms'):.0f} | {med(r,'p99_ms'):.0f} | {med(r,'cpu_ms_per_image'):.2f} | "
              f"{med(r,'s3_cpu_seconds'):.1f} | {max(x['workers']['peak_rss_mib'] or 0 for x in r):.0f} | {sum(x['lost'] for x in r)} |")
    ips = st.median(p[0] for p in peer)
    cpu = st.median(p[1] for p in peer)
    print(f"| rclone copyurl per image | - | {ips:.1f} | - | - | - | {cpu:.1f} | - | - | - |")
    one = med(rows[1], "images_per_sec")
    print(f"\nrehost (1 worker) / rclone images/s: {one / ips:.0f}x; 2 workers / 1 worker: {med(rows[2],'images_per_sec') / one:.2f}x")
    walls = [(r["run_wall_s"], (r["workers"]["cpu_seconds"] or 0) + r["s3_cpu_seconds"]) for r in rows[2]]
    print(f"2 workers: workers + S3 server used {st.median(c / w for w, c in walls):.2f} CPU cores of 2 over the run "
          "(the broker, the origin and the load tester share the rest)")


def latency(s3):
    print("\n## 2. A 35-image slideshow against one image, 100 ms origin latency per request\n")
    print("Defaults (per-host budget 32 shared by the worker's jobs), HTTP/1.1 origin, one worker; "
          "the one-image and 35-image jobs alternate round by round.\n")
    job = ["--jobs", "1", "--origin-latency-ms", "100", "--spawn-workers", "1"]
    one, many = [], []
    for _ in range(ROUNDS):
        one.append(loadtest(job + ["--images", "1"], s3))
        many.append(loadtest(job + ["--images", "35"], s3))
    burst = [loadtest(["--jobs", "8", "--images", "35", "--origin-latency-ms", "100", "--spawn-workers", "1"], s3)
             for _ in range(ROUNDS)]
    print("| job | latency ms (median of rounds) | x one-image job | origin connections at once (max) |")
    print("| --- | --- | --- | --- |")
    base = med(one, "p50_ms")
    for name, r in (("1 image", one), ("35 images", many), ("8 jobs x 35 images at once (p50, max)", burst)):
        p50 = med(r, "p50_ms")
        extra = f", max {med(r, 'max_ms'):.0f}" if r is burst else ""
        peak = max(x["origin_connections_peak"] for x in r)
        print(f"| {name} | {p50:.0f}{extra} | {p50 / base:.2f} | {peak} |")
    print(f"\n35 images / 1 image: {med(many, 'p50_ms') / base:.2f}x; connections to the one origin host "
          f"under 8 concurrent 35-image jobs: at most {max(x['origin_connections_peak'] for x in burst)} "
          "(budget 32)")


def hosted(s3):
    print("\n## 3. Hosted-only jobs (reachability only): 500 jobs x 10 images\n")
    r = [loadtest(["--jobs", "500", "--images", "10", "--hosted-ratio", "1", "--spawn-workers", "1"], s3) for _ in range(ROUNDS)]
    per_asset = st.median(x["origin_bytes_sent"] / (x["jobs"] * 10) for x in r)
    print("| jobs/s | images/s | p50 ms | origin bytes per asset | fixture size |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {med(r,'jobs_per_sec'):.1f} | {med(r,'images_per_sec'):.0f} | {med(r,'p50_ms'):.0f} | {per_asset/1024:.0f} KiB | about 190 KiB |")


def memory(s3_disk):
    print("\n## 4. Worker memory: four concurrent 1 GiB videos (S3 server on disk)\n")
    r = [loadtest(["--jobs", "0", "--videos", "4", "--video-mib", "1024", "--spawn-workers", "1", "--deadline-secs", "1800"], s3_disk)
         for _ in range(max(1, ROUNDS - 1))]
    print("| videos | worker peak RSS MiB (max of rounds) | MB/s | lost |")
    print("| --- | --- | --- | --- |")
    print(f"| 4 x 1 GiB | {max(x['workers']['peak_rss_mib'] or 0 for x in r):.0f} | {med(r,'mb_per_sec'):.0f} | {sum(x['lost'] for x in r)} |")


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "rehost", "--example", "s3_server"], cwd=ROOT, check=True)
    which = sys.argv[1:] or ["throughput", "latency", "hosted", "memory"]
    print(f"rehost load benchmarks, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, medians of {ROUNDS} rounds")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    s3 = S3(shm)
    try:
        for name in which:
            if name == "memory":
                continue
            {"throughput": throughput, "latency": latency, "hosted": hosted}[name](s3)
    finally:
        s3.stop()
    if "memory" in which:
        disk = S3(None)
        try:
            memory(disk)
        finally:
            disk.stop()


if __name__ == "__main__":
    main()
