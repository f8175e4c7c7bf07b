#!/usr/bin/env bash
# Everything that needs the GPU, in one run on the GPU machine (from the repository root):
#   bash benchmarks/gpu/run_suite.sh [TRAIN_MINUTES]
# Needs in the working tree: .gpu-wheels/ (pydantic, pytest: see benchmarks/gpu/README.md),
# .gpu-data/cnn2/ (benchmarks/gpu/pack_dataset.py) and .peer-bench/ (the peer renderer).
# Results go to $OUT: env.txt, gpu_tests.log, kernels_gpu.json, ernerf*.json, head_gpu.json, ...
set -u
OUT=${OUT:-/tmp/syncanim-gpu-out}; mkdir -p "$OUT"
MINUTES=${1:-4}
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/.triton-cache}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu-wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
t0=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
} > "$OUT/env.txt" 2>&1; cat "$OUT/env.txt"

stamp "peer renderer (ER-NeRF): build + timing"
if [ -d .peer-bench ]; then
  ( cd .peer-bench && OUT="$OUT" SKIP_UPSTREAM=1 bash run_on_gpu.sh > "$OUT/peer.log" 2>&1 )
  tail -n 5 "$OUT/peer.log"
fi

stamp "dataset"
python3 benchmarks/gpu/unpack_dataset.py .gpu-data/cnn2 || exit 1

stamp "GPU tests (fast kernels against their torch references)"
python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels 2>&1 | tail -n 30 | tee "$OUT/gpu_tests.log"
BACKEND=auto
grep -q " failed\| error" "$OUT/gpu_tests.log" && BACKEND=torch && echo "kernel parity failed: using the torch backend"

stamp "kernel micro-benchmarks"
timeout 120 python3 benchmarks/kernels_gpu.py --json "$OUT/kernels_gpu.json" 2>&1 | tail -n 15

stamp "train ($MINUTES min), validation, render speed"
python3 benchmarks/head_gpu.py .gpu-data/cnn2/dataset --out /tmp/head --minutes "$MINUTES" \
    --set model.backend=$BACKEND 2>&1 | grep -v "^train \|^load \|^assets " | tail -n 20
cp /tmp/head/head_gpu.json /tmp/head/val_renders.npz /tmp/head/val_stills.png "$OUT/" 2>/dev/null
cp /tmp/head/model/metrics.jsonl "$OUT/metrics.jsonl" 2>/dev/null
stamp "done"
