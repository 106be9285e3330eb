#!/usr/bin/env bash
# Video figures for BENCHMARKS.md (issue 19): per-frame against flow
# translation of a panning clip, and memory over a long video.
#
#   scripts/video-bench.sh MODEL [SIZE] [FRAMES] [OUT_DIR]
#
# Makes a clip of FRAMES frames (default 48) at SIZE x SIZE (default 256):
# a pan of 1.7 and 0.6 px a frame over a mosaic of emoji64's trainA images,
# a box moving 3 px a frame, sensor noise of 4 levels. Translates it with
# --temporal none and --temporal flow (to PNG frame folders, so that no
# encoder time is counted), and prints for each: seconds, frames/s, peak
# resident memory (GNU time), and `eval --video`'s warping error and tOF.
# NO_EVAL=1 leaves the measurement out (long videos).
# Needs ffmpeg, GNU time and a release build (target/release/cyclegan, or
# CYCLEGAN_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/video-bench.sh MODEL [SIZE] [FRAMES] [OUT_DIR]}
size=${2:-256}
frames=${3:-48}
out=${4:-target/video-bench}
bin=${CYCLEGAN_BIN:-target/release/cyclegan}
data=../shared/data/emoji64/trainA
mkdir -p "$out"
mosaic="$out/mosaic.png"
clip="$out/clip${size}x${frames}.mkv"
ffmpeg -nostdin -v error -y -pattern_type glob -i "$data/*.png" -vf "scale=128:128,tile=8x6" -frames:v 1 "$mosaic"
ffmpeg -nostdin -v error -y -loop 1 -r 24 -i "$mosaic" -filter_complex \
    "[0]crop=$size:$size:x='20+mod(1.7*n,1024-$size-40)':y='10+mod(0.6*n,768-$size-20)'[bg];color=c=orange:s=40x30:r=24[box];[bg][box]overlay=x='10+mod(3*n,$size-50)':y=$((size / 3)),noise=alls=4:allf=t,format=rgb24" \
    -frames:v "$frames" -c:v ffv1 "$clip"
lscpu | grep -E 'Model name|^CPU\(s\)' | sed 's/  */ /g'
for temporal in none flow; do
    dest="$out/${temporal}_${size}x${frames}"
    rm -rf "$dest"
    /usr/bin/time -f "%e s wall, peak RSS %M KiB" -o "$out/time_$temporal" \
        "$bin" translate --model "$model" "$clip" -o "$dest" --temporal "$temporal" >"$out/log_$temporal"
    echo "$temporal: $(cat "$out/log_$temporal") | $(cat "$out/time_$temporal")"
    # eval --video takes about 0.8 s a frame pair at 512 px: NO_EVAL=1 skips it.
    [ -n "${NO_EVAL:-}" ] || echo "  $("$bin" eval --video "$clip" --translated "$dest")"
done
