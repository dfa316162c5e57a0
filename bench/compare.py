#!/usr/bin/env python3
"""Two rehost binaries side by side on the 500 x 10 slideshow load test.

    python3 bench/compare.py OLD_BIN NEW_BIN          # 5 interleaved rounds
    ROUNDS=7 python3 bench/compare.py /tmp/a/rehost target/release/rehost

Each round runs `rehost loadtest --jobs 500 --images 10 --spawn-workers 1`
with one binary, then the other (the order alternates every round), against
the same S3 server process (bench/loadtest.py's, on tmpfs) and the local
RabbitMQ. Prints medians of images/s, p50 latency and worker CPU per image,
and the ratio new / old of each. Used for refactors that must not change
speed (a binary built from the commit before, and one from after).
"""
import os
import statistics as st
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest  # noqa: E402  (the S3 server and the loadtest runner)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bins = {"old": os.path.abspath(sys.argv[1]), "new": os.path.abspath(sys.argv[2])}
    rounds = int(os.environ.get("ROUNDS", "5"))
    s3 = loadtest.S3("/dev/shm" if os.path.isdir("/dev/shm") else None)
    rows = {k: [] for k in bins}
    try:
        for r in range(rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for k in order:
                loadtest.BIN = bins[k]
                rows[k].append(loadtest.loadtest(["--jobs", "500", "--images", "10", "--spawn-workers", "1"], s3))
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    finally:
        s3.stop()
    print(f"500 jobs x 10 images, one worker, medians of {rounds} interleaved rounds\n")
    print("| binary | images/s | p50 ms | worker CPU ms/image | lost |")
    print("| --- | --- | --- | --- | --- |")
    for k in bins:
        r = rows[k]
        print(f"| {k} | {loadtest.med(r, 'images_per_sec'):.0f} | {loadtest.med(r, 'p50_ms'):.0f} | "
              f"{loadtest.med(r, 'cpu_ms_per_image'):.2f} | {sum(x['lost'] for x in r)} |")
    ratio = lambda key: st.median(n[key] / o[key] for n, o in zip(rows["new"], rows["old"]))  # noqa: E731
    print(f"\nnew / old, median of per-round ratios: images/s {ratio('images_per_sec'):.3f}, "
          f"p50 {ratio('p50_ms'):.3f}, CPU per image {ratio('cpu_ms_per_image'):.3f}")


if __name__ == "__main__":
    main()
