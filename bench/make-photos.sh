#!/usr/bin/env bash
# Generates N camera-like 12-megapixel JPEGs for benchmarks (NOT committed).
#
#   bench/make-photos.sh                      # 8 photos into /tmp/rehost-photos
#   bench/make-photos.sh /dev/shm/photos 20   # 20 photos into /dev/shm/photos
#   SEED=7 bench/make-photos.sh               # a different (still deterministic) set
#
# Each photo is 4032x3024 stored pixels (what a 12 MP phone sensor writes), baseline
# JPEG 4:2:0 at quality 92, 3-5 MB: a gradient sky over an ImageMagick fractal-plasma
# "ground" with a seeded horizon, Gaussian sensor noise and a slight blur. Like a phone
# held upright, the pixels are stored landscape and EXIF Orientation is 6 (rotate 90 CW
# to display 3024x4032). exiftool adds Make/Model, capture settings, DateTimeOriginal,
# GPS latitude/longitude/altitude and a 160x120 EXIF thumbnail.
# Same SEED + same ImageMagick/exiftool versions => byte-identical files.
#
# Needs ImageMagick 6 (`convert`; set IM_CONVERT to override) and exiftool.
set -euo pipefail

OUT=${1:-/tmp/rehost-photos}
N=${2:-8}
SEED=${SEED:-1}
IM=${IM_CONVERT:-/usr/bin/convert}
[ -x "$IM" ] || IM=$(command -v convert)
command -v exiftool >/dev/null || { echo "exiftool is required" >&2; exit 1; }

mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

for ((i = 1; i <= N; i++)); do
  s=$((SEED * 1000 + i))
  f=$(printf '%s/IMG_%04d.jpg' "$OUT" "$i")
  hz=$((700 + (s * 37) % 500))           # horizon 700..1199 px from the (display) top
  # Built in display orientation (3024x4032), then rotated 90 CCW for storage.
  # The plasma is rendered at 1/4 size and upscaled (fast, and smooth like optics).
  nice -n 10 "$IM" -seed "$s" \
    \( -size 756x1008 gradient:'#3f78c9'-'#e6edf5' \) \
    \( -size 756x$((1008 - hz / 4)) plasma:fractal -modulate 100,60 \) -geometry +0+$((hz / 4)) -composite \
    -resize 3024x4032\! -rotate -90 \
    -attenuate 1.2 +noise Gaussian -blur 0x0.6 \
    -sampling-factor 2x2 -quality 92 "$f"
  nice -n 10 "$IM" "$f" -resize 160x120 -strip -quality 75 "$TMP/thumb.jpg"
  lat=$(printf '%d.%06d' $((40 + s % 20)) $(((s * 7919) % 1000000)))
  lon=$(printf '%d.%06d' $((s % 30)) $(((s * 104729) % 1000000)))
  t=$(printf '2024:06:%02d %02d:%02d:%02d' $((1 + i % 28)) $((8 + i % 12)) $((s % 60)) $(((s * 7) % 60)))
  exiftool -q -overwrite_original -JFIF:all= \
    -EXIF:Make=Apple "-EXIF:Model=iPhone 15 Pro" -EXIF:Software=17.5.1 -EXIF:Orientation#=6 \
    -EXIF:XResolution=72 -EXIF:YResolution=72 -EXIF:ResolutionUnit=inches \
    "-EXIF:ModifyDate=$t" "-EXIF:DateTimeOriginal=$t" "-EXIF:CreateDate=$t" -EXIF:OffsetTimeOriginal=+02:00 \
    -EXIF:ExposureTime=1/125 -EXIF:FNumber=1.78 -EXIF:ISO=64 -EXIF:FocalLength=6.86 -EXIF:FocalLengthIn35mmFormat=24 \
    -EXIF:LensMake=Apple "-EXIF:LensModel=iPhone 15 Pro back triple camera 6.86mm f/1.78" \
    -EXIF:ExifImageWidth=4032 -EXIF:ExifImageHeight=3024 -EXIF:ColorSpace=sRGB \
    -EXIF:GPSLatitudeRef=N "-EXIF:GPSLatitude=$lat" -EXIF:GPSLongitudeRef=E "-EXIF:GPSLongitude=$lon" \
    -EXIF:GPSAltitudeRef#=0 "-EXIF:GPSAltitude=$((s % 900)).5" \
    "-ThumbnailImage<=$TMP/thumb.jpg" "$f"
  printf '%s %d bytes\n' "$f" "$(stat -c %s "$f")"
done
