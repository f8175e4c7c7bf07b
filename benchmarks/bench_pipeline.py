"""Render-path speed for README.md's performance section: ``run_bench`` scenarios on this machine.

    python benchmarks/bench_pipeline.py [--device cpu|cuda] [--model MODEL] [--runs 30] [--warmup 5]
        [--only NAME ...] [--json benchmarks/results/bench_pipeline.json]

Each scenario is one :func:`syncanim.bench.pipeline.run_bench` call: FPS and per-frame median / p95 of
every stage (audio features, conditioning, head render, composite, encode, end to end). Without
``--model`` the model is a randomly initialised nerf-head of the default architecture around a
synthetic face (same ray and sample counts as a trained one; see syncanim/bench/synthetic.py);
with ``--model``, the model folder's scenarios are added.

The device is the one asked for (default: cuda when present, else cpu; logged). CPU scenarios:
synthetic 256x256, batch 1 and 4, fp32. CUDA scenarios: synthetic 512x512 and 256x256, precision,
batch, torch.compile, the dense static-shape renderer with and without CUDA graphs. The JSON holds
the hardware (CPU model and cores, GPU name, torch / CUDA / Triton versions, torch threads) and,
per scenario, its settings and result, or the error that stopped it (a missing compiler or a
failed graph capture does not lose the other scenarios).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("bench_pipeline")

CPU_SCENARIOS = {
    "synthetic-256-b1-fp32": {"resolution": 256, "batch": 1, "precision": "fp32"},
    "synthetic-256-b4-fp32": {"resolution": 256, "batch": 4, "precision": "fp32"},
}
CUDA_SCENARIOS = {
    "synthetic-512-b1-bf16": {"resolution": 512, "batch": 1, "precision": "bf16"},
    "synthetic-512-b1-fp32": {"resolution": 512, "batch": 1, "precision": "fp32"},
    "synthetic-512-b1-fp16": {"resolution": 512, "batch": 1, "precision": "fp16"},
    "synthetic-512-b4-bf16": {"resolution": 512, "batch": 4, "precision": "bf16"},
    "synthetic-512-b1-bf16-compile": {"resolution": 512, "batch": 1, "precision": "bf16", "compile": True},
    "synthetic-512-b1-bf16-dense": {"resolution": 512, "batch": 1, "precision": "bf16", "renderer": "dense"},
    "synthetic-512-b1-bf16-dense-graphs": {"resolution": 512, "batch": 1, "precision": "bf16", "renderer": "dense",
                                           "cuda_graphs": True},
    "synthetic-512-b4-bf16-dense-graphs": {"resolution": 512, "batch": 4, "precision": "bf16", "renderer": "dense",
                                           "cuda_graphs": True},
    "synthetic-256-b1-bf16": {"resolution": 256, "batch": 1, "precision": "bf16"},
}
MODEL_CPU_SCENARIOS = {
    "model-b1-fp32": {"batch": 1, "precision": "fp32"},
}
MODEL_CUDA_SCENARIOS = {
    "model-b1-bf16": {"batch": 1, "precision": "bf16"},
    "model-b4-bf16": {"batch": 4, "precision": "bf16"},
    "model-b1-bf16-dense-graphs": {"batch": 1, "precision": "bf16", "renderer": "dense", "cuda_graphs": True},
    "model-b1-bf16-portrait": {"batch": 1, "precision": "bf16", "portrait": True},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--model", type=Path, default=None, help="a model folder: adds its scenarios")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these scenario names")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_pipeline.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    import torch

    from syncanim.bench.pipeline import bench_config, run_bench
    from syncanim.bench.timing import environment
    from syncanim.config import RuntimeConfig
    from syncanim.device import resolve_device
    from syncanim.errors import SyncanimError

    runtime = RuntimeConfig(device=args.device)
    device = resolve_device(runtime)
    runtime = RuntimeConfig(device=device.type)
    scenarios = {k: (None, v) for k, v in (CUDA_SCENARIOS if device.type == "cuda" else CPU_SCENARIOS).items()}
    if args.model is not None:
        extra = MODEL_CUDA_SCENARIOS if device.type == "cuda" else MODEL_CPU_SCENARIOS
        scenarios.update({k: (args.model, v) for k, v in extra.items()})
    if args.only:
        unknown = sorted(set(args.only) - set(scenarios))
        if unknown:
            ap.error(f"unknown scenarios {unknown}; known: {sorted(scenarios)}")
        scenarios = {k: scenarios[k] for k in args.only}

    out = {"benchmark": "bench_pipeline", "hardware": {**environment(), "torch_threads": torch.get_num_threads()},
           "device": device.type, "runs": args.runs, "warmup": args.warmup,
           "model": str(args.model.name) if args.model else None, "scenarios": []}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for name, (model_dir, options) in scenarios.items():
        settings = {**options, "runs": args.runs, "warmup": args.warmup, "threads": args.threads}
        log.info("scenario %s: %s", name, settings)
        entry: dict = {"name": name, "settings": settings}
        try:
            result = run_bench(bench_config(**settings), runtime, model_dir)
        except SyncanimError as e:  # recorded in the JSON with its type; the other scenarios still run
            log.warning("scenario %s failed: %s: %s", name, type(e).__name__, e)
            entry["error"] = {"type": type(e).__name__, "message": str(e), "hint": e.hint}
        else:
            entry["result"] = result.to_json()
            e2e = result.stages["end_to_end"]
            log.info("scenario %s: %.1f FPS (end to end %.1f ms/frame median, %.1f p95; head render %.1f ms)", name,
                     result.fps, e2e.median_ms, e2e.p95_ms, result.stages["head_render"].median_ms)
        out["scenarios"].append(entry)
        args.json.write_text(json.dumps(out, indent=2) + "\n")  # after every scenario: a cut-off run keeps the rest
    log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
