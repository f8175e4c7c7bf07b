#!/usr/bin/env bash
# Everything that needs the GPU, on the GPU machine (from the repository root), in two phases that
# each fit a 10-minute call:
#   bash benchmarks/gpu/run_suite.sh checks        GPU tests, kernel and render-path benchmarks, peer renderer
#   bash benchmarks/gpu/run_suite.sh train [MIN]   train on cnn2 for MIN minutes [8], score, time the model
#   bash benchmarks/gpu/run_suite.sh all [MIN]     both
#   bash benchmarks/gpu/run_suite.sh mouth         cpu-quick models of .gpu-data/cnn20 (a CPU preset trained on
#       the GPU, fp32: many settings in one call), one per MOUTH_VARIANTS entry "NAME[:key=value,key=value]";
#       each comes back as mouth_NAME.tar (held-out renders with predicted and measured codes, new speech)
#   bash benchmarks/gpu/run_suite.sh support [MIN]  train on cnn2 for MIN minutes, render the new speech in
#       .gpu-data/speech once per mouth support in SUPPORTS [0 0.1] (render.mouth_support's share; 0: off), to
#       compare where the head draws rare mouth shapes
#   bash benchmarks/gpu/run_suite.sh predictor     the mouth predictor alone on cnn2, PREDICTOR_VARIANTS side by side
#       (benchmarks/mouth_predictor.py; PREDICTOR_ARGS: more of its options, e.g. "--ensemble --blocks 3")
#   bash benchmarks/gpu/run_suite.sh torso         the torso field alone on cnn2, TORSO_VARIANTS side by side
#       (benchmarks/torso_fit.py)
#   bash benchmarks/gpu/run_suite.sh tests [PATH..]  only the GPU tests (of PATHs, else tests/kernels tests/bench)
#   bash benchmarks/gpu/run_suite.sh detach PHASE [ARG]  start another phase detached (its results in
#       .gpu-detached/out), so that one longer than a call (10 minutes of training) spans two calls; the call then
#       waits up to WAIT_S [0] s for it
#   bash benchmarks/gpu/run_suite.sh collect       (a later call, same machine) wait up to WAIT_S [540] s for the
#       detached phase, then return its results and log
# Needs in the working tree: wheels the machine lacks (.device-wheels/ or .device-wheels-noav/, and .gpu-wheels/
# for pytest: see benchmarks/gpu/README.md), .gpu-data/cnn2/ (benchmarks/gpu/pack_dataset.py), optionally
# .gpu-data/speech/ (NAME.npy from `syncanim features`: new speech to render) and .peer-bench/ (the peer renderer).
# Results go to $OUT: env.txt, gpu_tests.log, kernels_gpu.json, bench_pipeline_gpu.json, ernerf*.json,
# head_gpu.json, head_extra.tgz, renders.tar.part-* (val_renders*.npz, speech_*.npz), bench_model_gpu.json, model.tar.part-* (with KEEP_MODEL=1).
set -u
OUT=${OUT:-/tmp/syncanim-gpu-out}; mkdir -p "$OUT"
PHASE=${1:-all}
wait_detached() {  # up to $1 seconds for the detached phase to end
  for _ in $(seq "$1"); do [ -e .gpu-detached/done ] && return 0; sleep 1; done; [ -e .gpu-detached/done ]
}
if [ "$PHASE" = detach ]; then
  shift
  if [ -e .gpu-detached/log ] && [ ! -e .gpu-detached/done ]; then echo "a detached phase is still running"; exit 1; fi
  rm -rf .gpu-detached && mkdir -p .gpu-detached/out
  OUT="$PWD/.gpu-detached/out" setsid nohup bash -c 'bash "$0" "$@"; touch .gpu-detached/done' "$0" "$@" \
      > .gpu-detached/log 2>&1 < /dev/null &
  wait_detached "${WAIT_S:-0}"; tail -n 25 .gpu-detached/log; exit 0
fi
if [ "$PHASE" = collect ]; then
  wait_detached "${WAIT_S:-540}" || echo "the detached phase is still running"
  cp .gpu-detached/out/* "$OUT/" 2>/dev/null
  # at most 8 files come back from a call: the log only where there is room
  [ "$(ls "$OUT" | wc -l)" -lt 8 ] && cp .gpu-detached/log "$OUT/detached.log"
  grep -v "^train \|^load \|^assets " .gpu-detached/log | tail -n 40; exit 0
fi
MINUTES=${2:-8}
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/.triton-cache}
# PyAV (the encode stage, the model's asset videos) is large: .device-wheels-noav/ leaves it out
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    $(ls .device-wheels/*.whl .device-wheels-noav/*.whl .gpu-wheels/*.whl 2>/dev/null) || exit 1
export PYTHONPATH=/tmp/site:$PWD
# register syncanim's entry points (its components) without building it: a dist-info from pyproject.toml
python3 benchmarks/gpu/entry_points.py /tmp/site || exit 1
python3 -c "from syncanim.registry import default_registry as r; print([e.name for e in r().entries() if not e.broken])"
t0=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }
# the phases read a copy of .gpu-data outside the working tree: a later call that carries .gpu-data replaces the
# folder there, and would pull the frames and speech from under a detached phase still running (GD: the copy)
unpack() {  # unpack "$GD"/$1 (the copy's dataset $1)
  GD=$(mktemp -d /tmp/gpu-data.XXXXXX) && cp -r .gpu-data/. "$GD"/ && python3 benchmarks/gpu/unpack_dataset.py "$GD/$1"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
} > /tmp/env.txt 2>&1; cat /tmp/env.txt
# at most 8 files come back from a call: the train phase alone fills them
[ "$PHASE" = train ] || cp /tmp/env.txt "$OUT/"

if [ "$PHASE" = tests ]; then
  shift; [ $# -gt 0 ] || set -- tests/kernels tests/bench
  stamp "GPU tests"
  python3 -m pytest -q -m gpu -p no:cacheprovider --durations=8 "$@" 2>&1 | tee "$OUT/gpu_tests.log" | tail -n 30
fi
if [ "$PHASE" = checks ] || [ "$PHASE" = all ]; then
  stamp "GPU tests (fast kernels against their torch references, render-path benchmark on CUDA)"
  python3 -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors tests/kernels tests/bench \
      2>&1 | tee "$OUT/gpu_tests.log" | tail -n 30
  stamp "kernel micro-benchmarks"
  timeout 120 python3 benchmarks/kernels_gpu.py --json "$OUT/kernels_gpu.json" 2>&1 | tail -n 15
  stamp "render path per stage (syncanim bench scenarios, random-init model)"
  timeout 240 python3 benchmarks/bench_pipeline.py --device cuda --json "$OUT/bench_pipeline_gpu.json" 2>&1 \
      | grep "scenario .*FPS\|failed" | tail -n 20
  stamp "peer renderer (ER-NeRF): build + timing"
  if [ -d .peer-bench ] && [ "${SKIP_PEER:-0}" != 1 ]; then
    ( cd .peer-bench && OUT="$OUT" SKIP_UPSTREAM=1 bash run_on_gpu.sh > "$OUT/peer.log" 2>&1 )
    tail -n 5 "$OUT/peer.log"
  fi
fi

if [ "$PHASE" = train ] || [ "$PHASE" = all ]; then
  stamp "dataset"
  unpack cnn2 || exit 1
  stamp "train ($MINUTES min), validation, render speed"
  # TRAIN_SET="key=value ..." passes settings to training (e.g. TRAIN_SET="train.expr_gate_weight=1e-4"); HEAD_ARGS
  # more options of head_gpu.py (e.g. HEAD_ARGS="--lean --mouth-variant base= --mouth-variant ow3=opening_weight:3.0")
  python3 benchmarks/head_gpu.py "$GD"/cnn2/dataset --out /tmp/head --minutes "$MINUTES" \
      $(for kv in ${TRAIN_SET:-}; do printf -- "--set %s " "$kv"; done) \
      $( [ -d "$GD"/speech ] && echo --speech "$GD"/speech ) ${HEAD_ARGS:-} \
      2>&1 | tee /tmp/head_gpu.log | grep -v "^train \|^load \|^assets " | tail -n 20  # the whole log: even if cut short
  cp /tmp/head/head_gpu.json "$OUT/" 2>/dev/null
  # the renders, in parts of at most 15 MiB: join them with `cat renders.tar.part-* | tar xf -`
  ( cd /tmp/head && tar cf - val_renders*.npz speech_*.npz 2>/dev/null ) | split -b 15m - "$OUT/renders.tar.part-"
  stamp "render path per stage with the trained model"
  [ "${SKIP_BENCH:-0}" != 1 ] && timeout 120 python3 benchmarks/bench_pipeline.py --device cuda --model /tmp/head/model \
      --only model-b1-bf16 model-b4-bf16 model-b1-bf16-dense-graphs --json "$OUT/bench_model_gpu.json" 2>&1 \
      | grep "scenario .*FPS\|failed" | tail -n 10
  # few files come back from a run, each at most 16 MiB: archives, the weights in parts
  tar czf "$OUT/head_extra.tgz" -C /tmp/head val_stills.png val_person_stills.png val_neck_stills.png \
      render_profile.txt model/metrics.jsonl model/model.json 2>/dev/null
  [ "${KEEP_MODEL:-0}" = 1 ] && tar cf - -C /tmp/head model/model.json model/model.safetensors model/config.resolved.toml model/assets/replay.npz \
      | split -b 15m - "$OUT/model.tar.part-"
fi
if [ "$PHASE" = support ]; then
  stamp "dataset"
  unpack cnn2 || exit 1
  stamp "train ($MINUTES min), held-out frames, new speech once per mouth support (${SUPPORTS:-0 0.1})"
  python3 benchmarks/head_gpu.py "$GD"/cnn2/dataset --out /tmp/support --minutes "$MINUTES" --lean \
      --speech "$GD"/speech --support ${SUPPORTS:-0 0.1} 2>&1 | grep -v "^train \|^load \|^assets " | tail -n 12
  cp /tmp/support/head_gpu.json "$OUT/" 2>/dev/null
  ( cd /tmp/support && tar cf - val_renders.npz speech_*_s*.npz ) | split -b 15m - "$OUT/renders.tar.part-"
fi
if [ "$PHASE" = mouth ]; then
  stamp "dataset"
  unpack cnn20 || exit 1
  for spec in ${MOUTH_VARIANTS:-base}; do
    name=${spec%%:*}; sets=""
    [ "$spec" != "$name" ] && sets=$(echo "${spec#*:}" | tr ',' ' ')
    stamp "cpu-quick variant $name ($sets)"
    python3 benchmarks/head_gpu.py "$GD"/cnn20/dataset --out "/tmp/mouth/$name" --preset cpu-quick --lean \
        --set runtime.device=cuda --set train.precision=fp32 $(for kv in $sets; do printf -- "--set %s " "$kv"; done) \
        $( [ -d "$GD"/speech ] && echo --speech "$GD"/speech ) 2>&1 | grep "^{" | tail -n 3
    cp "/tmp/mouth/$name/model/model.json" "/tmp/mouth/$name/" 2>/dev/null
    ( cd "/tmp/mouth/$name" && tar cf "$OUT/mouth_$name.tar" head_gpu.json model.json val_renders*.npz speech_*.npz )
  done
fi
if [ "$PHASE" = predictor ]; then
  stamp "dataset"
  unpack cnn2 || exit 1
  stamp "mouth predictor variants"
  python3 benchmarks/mouth_predictor.py "$GD"/cnn2/dataset ${PREDICTOR_VARIANTS:-base=} --seeds ${SEEDS:-0 1 2} \
      --folds "${FOLDS:-1}" ${PREDICTOR_ARGS:-} --json "$OUT/mouth_predictor.json" 2>&1 | grep -v Warn
fi
if [ "$PHASE" = torso ]; then
  stamp "dataset"
  unpack cnn2 || exit 1
  stamp "torso field variants"
  python3 benchmarks/torso_fit.py "$GD"/cnn2/dataset ${TORSO_VARIANTS:-base=} --seeds ${SEEDS:-0} \
      --json "$OUT/torso_fit.json" 2>&1 | grep -v Warn
fi
[ -f "$OUT/peer.log" ] && tar czf "$OUT/logs.tgz" -C "$OUT" peer.log
stamp "done"
