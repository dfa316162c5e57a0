#!/usr/bin/env bash
# Benchmark: a 1 GiB moov-at-end MP4 re-hosted with REHOST_FASTSTART=always
# (the contract's three requests; the copy written once, moov first) against
# the same video already moov-first (one request, stored as it is), both
# from nginx (a Range-capable origin with ETag and Last-Modified) into the
# S3 server storing on disk, interleaved round by round; and ffmpeg's own
# faststart (`-c copy -movflags +faststart`, a second pass over a file on
# disk) as a reference row. Every stored copy is checked moov-first.
# Prints median wall time, CPU seconds and peak RSS, and the ratios.
#
#   bench/faststart-1gib.sh               # 5 rounds, 1 GiB
#   ROUNDS=3 SECONDS_OF_VIDEO=60 bench/faststart-1gib.sh   # smaller
#
# Needs ffmpeg (libx264), nginx and curl (Debian packages). The source
# videos are made once with ffmpeg and kept in $CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECONDS_OF_VIDEO=${SECONDS_OF_VIDEO:-250}   # about 1 GiB at qp 0
S3_PORT=${S3_PORT:-19100}
ORIGIN_PORT=${ORIGIN_PORT:-18180}
CACHE=${CACHE:-/var/tmp/rehost-faststart-bench}

cargo build --release --quiet --bin rehost --example s3_server
BIN=$PWD/target/release/rehost
S3BIN=$PWD/target/release/examples/s3_server
mkdir -p "$CACHE"
SRC="$CACHE/end-$SECONDS_OF_VIDEO.mp4"
if [ ! -s "$SRC" ]; then
  echo "making a ${SECONDS_OF_VIDEO} s 1080p video with moov at the end (once)" >&2
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$SECONDS_OF_VIDEO" \
    -f lavfi -i "sine=frequency=300:duration=$SECONDS_OF_VIDEO" -c:v libx264 -preset ultrafast -qp 0 \
    -pix_fmt yuv420p -c:a aac -b:a 128k "$SRC.tmp.mp4"
  mv "$SRC.tmp.mp4" "$SRC"
fi
FIRST="$CACHE/first-$SECONDS_OF_VIDEO.mp4"
[ -s "$FIRST" ] || ffmpeg -hide_banner -loglevel error -y -i "$SRC" -map 0 -c copy -movflags +faststart "$FIRST"

WORK=$(mktemp -d /var/tmp/rehost-fsbench.XXXXXX)
chmod 755 "$WORK"  # nginx's workers read www/ as another user
S3ROOT=$WORK/s3
mkdir -p "$S3ROOT" "$WORK/www"
ln -s "$SRC" "$WORK/www/end.mp4"
ln -s "$FIRST" "$WORK/www/first.mp4"
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cat >"$WORK/nginx.conf" <<CONF
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events {}
http {
  access_log off;
  sendfile on;
  types { video/mp4 mp4; }
  server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK"
"$S3BIN" --root "$S3ROOT" --addr "127.0.0.1:$S3_PORT" --bucket media \
  --access-key bench --secret-key bench-secret 2>"$WORK/s3.log" & PIDS+=($!)
sleep 0.5
export S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_BUCKET=media S3_ACCESS_KEY_ID=bench \
  S3_SECRET_ACCESS_KEY=bench-secret PUBLIC_BASE_URL=http://media.example.net \
  REHOST_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32 RUST_LOG=warn REHOST_FASTSTART=always \
  REHOST_JOB_TIMEOUT_SECS=1200 REHOST_PUBLIC_PROBE=off

measure() { # name, command...: appends "name wall cpu rss_kib" to results
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >"$WORK/last.out" 2>"$WORK/last.err" || {
    echo "$name failed:"; cat "$WORK/last.err" "$WORK/last.out"; exit 1; }
  read -r wall user sys rss <"$WORK/time"
  echo "$name $wall $(echo "$user + $sys" | bc) $rss" >>"$WORK/results"
}
# The stored copy must have its moov first: the second top-level box.
check_moov_first() {
  local obj
  obj=$(find "$S3ROOT/media" -name '*.mp4' -size +1M | head -1)
  python3 - "$obj" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    size, = struct.unpack(">I", f.read(4)); f.seek(size)
    assert f.read(8)[4:] == b"moov", "moov is not first"
PY
  rm -rf "${S3ROOT:?}/media/"* "$S3ROOT/".upload* 2>/dev/null || true
}
job() { # file, round → job path (a distinct workspace each round: nothing deduplicated)
  printf '{"post_id":"bench","workspace_id":"ws_%s_%s","accounts":[{"id":"a","platform":"mastodon","type":"byo"}],"media":{"type":"video","url":"http://127.0.0.1:%s/%s"}}' \
    "$2" "${1%.mp4}" "$ORIGIN_PORT" "$1" >"$WORK/$1.$2.json"
  echo "$WORK/$1.$2.json"
}
for round in $(seq 1 "$ROUNDS"); do
  measure moov-at-end "$BIN" ingest "$(job end.mp4 "$round")"
  grep -q '"faststart"' "$WORK/last.out" || { echo "not remuxed"; cat "$WORK/last.out"; exit 1; }
  check_moov_first
  measure moov-first "$BIN" ingest "$(job first.mp4 "$round")"
  check_moov_first
  measure ffmpeg ffmpeg -hide_banner -loglevel error -y -i "$SRC" -map 0 -c copy -movflags +faststart "$WORK/ff.mp4"
  rm -f "$WORK/ff.mp4"
  sync
  echo "round $round done" >&2
done

python3 - "$WORK/results" "$ROUNDS" "$(stat -c %s "$SRC")" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[3])
by = {}
for name, wall, cpu, rss in rows:
    by.setdefault(name, []).append((float(wall), float(cpu), int(rss) / 1024))
med = {n: tuple(st.median(v[i] for v in vals) for i in range(3)) for n, vals in by.items()}
print(f"{size / 2**20:.0f} MiB source, median of {sys.argv[2]} interleaved rounds")
print("| run | wall s | CPU s | peak RSS MiB | MB/s |")
print("| --- | --- | --- | --- | --- |")
for n in ["moov-at-end", "moov-first", "ffmpeg"]:
    w, c, r = med[n]
    print(f"| {n} | {w:.2f} | {c:.2f} | {r:.0f} | {size / 1e6 / w:.0f} |")
e, f = med["moov-at-end"], med["moov-first"]
print(f"\nmoov-at-end / moov-first: {e[0] / f[0]:.3f}x wall, {e[1] / f[1]:.3f}x CPU; "
      f"ffmpeg faststart / rehost moov-at-end: {med['ffmpeg'][0] / e[0]:.2f}x wall")
PY
