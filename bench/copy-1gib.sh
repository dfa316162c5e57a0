#!/usr/bin/env bash
# Benchmark: copy one large video from a loopback origin into an S3 server
# running as its own process, four ways, interleaved round by round:
#   rehost     `rehost ingest` of a BYO video job (download, sniff, probe,
#              hash, multipart upload under its final key, content index:
#              every byte written once)
#   rclone     `rclone copyurl` of the same URL (what a script would use)
#   download   `curl -o /dev/null` of the URL (the download limit)
#   upload     `curl -T` (one signed PUT) of the same bytes from a tmpfs file (the upload limit)
# Prints the median wall time, CPU seconds and peak RSS of each, and ratios.
#
#   bench/copy-1gib.sh                 # 5 rounds of 1 GiB, S3 server storing on disk
#   S3_ON=tmpfs bench/copy-1gib.sh      # the S3 server storing in /dev/shm
#   ORIGIN_MBPS=160 MIB=256 bench/copy-1gib.sh   # origin throttled to 20 MB/s
#   ROUNDS=3 MIB=256 bench/copy-1gib.sh
#   BEFORE=/tmp/rehost-old bench/copy-1gib.sh    # also another rehost binary, side by side
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
MIB=${MIB:-1024}
S3_PORT=${S3_PORT:-19000}
ORIGIN_PORT=${ORIGIN_PORT:-18080}
S3_ON=${S3_ON:-disk}          # disk (ext4 under /var/tmp) or tmpfs (/dev/shm)
ORIGIN_MBPS=${ORIGIN_MBPS:-}  # megabits per second per response; empty: unthrottled
BEFORE=${BEFORE:-}            # a second rehost binary ("before"), measured each round too

cargo build --release --quiet --bin rehost --example s3_server
BIN=$PWD/target/release/rehost
S3BIN=$PWD/target/release/examples/s3_server
BASE=/tmp; [ -d /dev/shm ] && BASE=/dev/shm
WORK=$(mktemp -d "$BASE/rehost-bench.XXXXXX")
case $S3_ON in
  disk) S3ROOT=$(mktemp -d /var/tmp/rehost-bench-s3.XXXXXX) ;;
  tmpfs) S3ROOT=$WORK/s3 ;;
  *) echo "S3_ON must be disk or tmpfs" >&2; exit 2 ;;
esac
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK" "$S3ROOT"; }
PIDS=()
trap cleanup EXIT

"$S3BIN" --root "$S3ROOT" --addr "127.0.0.1:$S3_PORT" --bucket media \
  --access-key bench --secret-key bench-secret 2>"$WORK/s3.log" & PIDS+=($!)
"$BIN" origin --dir fixtures/media --listen "127.0.0.1:$ORIGIN_PORT" ${ORIGIN_MBPS:+--mbps "$ORIGIN_MBPS"} 2>"$WORK/origin.log" & PIDS+=($!)
for _ in $(seq 1 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/small.jpg" && break; sleep 0.1
done

export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
  RCLONE_CONFIG_BENCH_ENDPOINT="http://127.0.0.1:$S3_PORT" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=bench \
  RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true \
  RCLONE_CONFIG_BENCH_REGION=auto
export S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_BUCKET=media S3_ACCESS_KEY_ID=bench \
  S3_SECRET_ACCESS_KEY=bench-secret PUBLIC_BASE_URL=http://media.example.net REHOST_PUBLIC_PROBE=off \
  REHOST_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32 RUST_LOG=warn

unset AWS_CA_BUNDLE  # rclone 1.60 cannot combine it with its own transport
url() { echo "http://127.0.0.1:$ORIGIN_PORT/gen/bench.mp4?mib=$MIB&seed=$1"; }
# The upload limit's input: the same kind of bytes, on tmpfs.
curl -sf -o "$WORK/upload.mp4" "$(url 999999)"

measure() { # name, command...: appends "name wall cpu rss_kib" to results
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/last.err" || {
    echo "$name failed:"; cat "$WORK/last.err"; exit 1; }
  read -r wall user sys rss <"$WORK/time"
  echo "$name $wall $(echo "$user + $sys" | bc) $rss" >>"$WORK/results"
  sync
  rm -rf "$S3ROOT/media/"* "$S3ROOT/".upload* 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  seed=$((round * 1000 + RANDOM % 1000))
  printf '{"post_id":"bench","workspace_id":"ws_bench","accounts":[{"id":"a","platform":"tiktok","type":"byo"}],"media":{"type":"video","url":"%s"}}' \
    "$(url "$seed")" >"$WORK/job.json"
  measure rehost "$BIN" ingest "$WORK/job.json"
  if [ -n "$BEFORE" ]; then
    sed "s/seed=$seed/seed=$((seed + 3))/" "$WORK/job.json" >"$WORK/job-before.json"
    measure before "$BEFORE" ingest "$WORK/job-before.json"
  fi
  measure rclone rclone copyurl "$(url $((seed + 1)))" "bench:media/rclone/$seed.mp4"
  measure download curl -sf -o /dev/null "$(url $((seed + 2)))"
  measure upload curl -sf -T "$WORK/upload.mp4" --aws-sigv4 "aws:amz:auto:s3" --user bench:bench-secret \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$S3_PORT/media/upload/$seed.mp4"
  echo "round $round done" >&2
done

python3 - "$WORK/results" "$MIB" "$ROUNDS" "$S3_ON" "${ORIGIN_MBPS:-unthrottled}" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
mib, rounds = int(sys.argv[2]), sys.argv[3]
print(f"S3 server storing on {sys.argv[4]}; origin {sys.argv[5]} Mbit/s")
by = {}
for name, wall, cpu, rss in rows:
    by.setdefault(name, []).append((float(wall), float(cpu), int(rss) / 1024))
med = {n: tuple(st.median(v[i] for v in vals) for i in range(3)) for n, vals in by.items()}
print(f"{mib} MiB, median of {rounds} interleaved rounds")
print("| command | wall s | CPU s | peak RSS MiB | MB/s |")
print("| --- | --- | --- | --- | --- |")
for n in ["rehost", "before", "rclone", "download", "upload"]:
    if n not in med:
        continue
    w, c, r = med[n]
    print(f"| {n} | {w:.2f} | {c:.2f} | {r:.0f} | {mib * 1.048576 / w:.0f} |")
limit = max(med["download"][0], med["upload"][0])
print(f"\nrehost / rclone wall: {med['rehost'][0] / med['rclone'][0]:.2f}x; "
      f"CPU: {med['rehost'][1] / med['rclone'][1]:.2f}x "
      f"({med['rehost'][1] * 1024 / mib:.2f} vs {med['rclone'][1] * 1024 / mib:.2f} CPU s per GiB); "
      f"rehost / slower raw limit: {med['rehost'][0] / limit:.2f}x")
if "before" in med:
    print(f"rehost / before: {med['rehost'][0] / med['before'][0]:.2f}x wall, "
          f"{med['rehost'][1] / med['before'][1]:.2f}x CPU")
PY
