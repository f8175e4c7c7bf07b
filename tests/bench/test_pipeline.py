"""``run_bench``: per-stage figures of the render path, for a synthetic model and a model folder, with
the settings this device cannot do refused by the right error type."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from syncanim.bench import synthetic as syn
from syncanim.bench.pipeline import STAGES, BenchConfig, BenchResult, bench_config, run_bench
from syncanim.config import PluginSection, RuntimeConfig
from syncanim.errors import CheckpointError, ConfigError, KernelUnavailable, ResourceError
from syncanim.model.camera import Camera
from syncanim.model.conditioning import Conditioning
from syncanim.model.frames import DenseRects
from syncanim.model.head import NerfHeadConfig
from syncanim.stream.graphs import GraphedStep

CPU = RuntimeConfig(device="cpu")
# one thread: on a shared 2-core machine two OpenMP threads slow down many times over when the other core is busy
FAST = {"resolution": 64, "runs": 3, "warmup": 1, "threads": 1}
# a small nerf-head: the same code path, a fraction of the arithmetic
SMALL_HEAD = PluginSection(kind="nerf-head", levels=4, log2_table=12, max_res=64, samples=8, hidden=16, audio_dim=8,
                           geo_dim=4, occupancy_res=16, prior_res=32)


@pytest.fixture(scope="module")
def synthetic_result():
    return run_bench(BenchConfig(**FAST), CPU, model=SMALL_HEAD)


def test_result_has_every_stage_and_consistent_figures(synthetic_result):
    r = synthetic_result
    assert r.model == "synthetic" and r.device == "cpu" and r.resolution == 64 and r.batch == 1
    assert r.precision == "fp32" and r.renderer == "compact" and r.audio_backend == "logmel"
    assert tuple(r.stages) == tuple(n for n in STAGES if n != "torso")  # a synthetic subject has no torso
    for name, t in r.stages.items():
        assert 0 < t.min_ms <= t.median_ms <= t.p95_ms, name
        assert t.gpu_median_ms is None  # CUDA events only on CUDA
    e2e, head = r.stages["end_to_end"], r.stages["head_render"]
    # (no comparison of the two timings: they are timed separately, and a busy machine reorders them)
    assert r.fps == pytest.approx(1000 / e2e.median_ms) and r.fps_p95 <= r.fps
    assert r.render_fps == pytest.approx(1000 / head.median_ms)
    assert r.rays_per_frame > 100 and r.samples_per_ray == 8
    assert {"torch", "cuda", "triton", "cpu_cores", "cpu"} <= set(r.environment)
    assert r.environment["torch_threads"] == 1
    rows = r.table_rows()
    assert len(rows) == len(STAGES) and all(len(row) == len(BenchResult.table_columns) for row in rows)
    assert rows[-1][0] == "frames per second"


def test_json_round_trip(synthetic_result):
    text = json.dumps(synthetic_result.to_json())
    assert BenchResult.from_json(json.loads(text)) == synthetic_result


def test_batch_figures_are_per_frame(monkeypatch):
    """Every stage is timed per call of B frames and reported per frame (call time / B)."""
    from syncanim.bench import timing

    calls = []

    def fake_time_calls(fn, device, warmup=5, runs=30, events=False):
        fn()  # the stage must run
        calls.append(fn)
        return {"median_ms": 12.0, "p90_ms": 14.0, "p95_ms": 16.0, "min_ms": 10.0, "mean_ms": 13.0, "runs": runs}

    monkeypatch.setattr(timing, "time_calls", fake_time_calls)
    r = run_bench(BenchConfig(**FAST, batch=4), CPU, model=SMALL_HEAD)
    assert len(calls) == len(STAGES) - 1 and r.batch == 4
    for t in r.stages.values():
        assert (t.median_ms, t.p95_ms, t.min_ms, t.mean_ms) == (3.0, 4.0, 2.5, 3.25)
    assert r.fps == pytest.approx(1000 / 3.0)


def test_batch_of_frames_runs_for_real():
    r1 = run_bench(BenchConfig(**FAST), CPU, model=SMALL_HEAD)
    r2 = run_bench(BenchConfig(**FAST, batch=3), CPU, model=SMALL_HEAD)
    assert r2.batch == 3 and r2.rays_per_frame == pytest.approx(r1.rays_per_frame)
    assert all(t.median_ms > 0 for t in r2.stages.values())


def test_model_folder(tiny_model):
    r = run_bench(BenchConfig(runs=2, warmup=1), CPU, tiny_model.layout.root)
    assert r.model == tiny_model.layout.root.name and r.resolution == tiny_model.info.image_size
    assert r.audio_backend == tiny_model.info.audio["kind"] and r.notes == []
    assert r.stages["end_to_end"].median_ms > 0 and r.rays_per_frame > 0
    assert r.stages["torso"].median_ms > 0  # the model has a torso: the head is rendered over it
    p = run_bench(BenchConfig(runs=2, warmup=1, resolution=96, portrait=True, batch=2), CPU, tiny_model.layout.root)
    assert p.resolution == 96 and p.portrait and p.stages["composite"].median_ms > 0
    assert "torso" not in p.stages  # the face is pasted into the original frames, their bodies included
    t = run_bench(BenchConfig(runs=2, warmup=1, resolution=96), CPU, tiny_model.layout.root)
    assert t.stages["torso"].median_ms > 0  # the torso at another size than it was trained at


def test_model_folder_problems(tmp_path):
    with pytest.raises(CheckpointError, match="not a model folder"):
        run_bench(BenchConfig(**FAST), CPU, tmp_path)


def test_dense_renderer_runs():
    r = run_bench(BenchConfig(**FAST, renderer="dense", batch=2), CPU, model=SMALL_HEAD)
    assert r.renderer == "dense" and r.rays_per_frame >= 100


def test_static_renderer_runs_on_cpu_without_graphs():
    """The static draw (render and live's on CUDA) runs eagerly on CPU; its head row draws the whole call."""
    r = run_bench(BenchConfig(**FAST, renderer="static", batch=2), CPU, model=SMALL_HEAD)
    assert r.renderer == "static" and "torso" not in r.stages and r.stages["head_render"].median_ms > 0


def test_bf16_and_portrait_on_cpu():
    r = run_bench(BenchConfig(**FAST, precision="bf16", portrait=True), CPU, model=SMALL_HEAD)
    assert r.precision == "bf16" and r.portrait


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_device_is_a_resource_error():
    with pytest.raises(ResourceError):
        run_bench(BenchConfig(**FAST), RuntimeConfig(device="cuda"), model=SMALL_HEAD)


@pytest.mark.parametrize("options,match", [
    ({"precision": "fp16"}, "fp16 is not supported on CPU"),
    ({"cuda_graphs": True, "renderer": "dense"}, "needs a CUDA device"),
])
def test_options_this_device_cannot_do_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        run_bench(BenchConfig(**FAST, **options), CPU, model=SMALL_HEAD)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="bench.resolution"):
        bench_config(resolution=65)
    with pytest.raises(ConfigError, match="bench.batch"):
        bench_config(batch=0)
    with pytest.raises(ConfigError, match="unknown setting"):
        bench_config(frames=3)
    with pytest.raises(ValidationError):
        BenchConfig(precision="fp8")
    with pytest.raises(ConfigError, match="nerf-head"):
        run_bench(BenchConfig(**FAST), CPU, model=PluginSection(kind="other"))
    with pytest.raises(ConfigError, match="model.samples"):
        run_bench(BenchConfig(**FAST), CPU, model=PluginSection(kind="nerf-head", samples=1))


def test_compile_failure_is_kernel_unavailable(monkeypatch):
    def broken(module, **kwargs):
        raise RuntimeError("inductor: no working C++ compiler\nmore lines")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(KernelUnavailable, match="no working C\\+\\+ compiler$"):
        run_bench(BenchConfig(**FAST, compile=True), CPU, model=SMALL_HEAD)


def test_compile_turns_the_fused_kernels_off(monkeypatch):
    """The fused field kernels do not run the nets torch.compile replaces: compiling renders with the per-op field,
    so the compiled nets are what bench times."""
    from syncanim.bench.pipeline import compile_field

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: module)
    config = NerfHeadConfig(levels=4, log2_table=10, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                            occupancy_res=16, prior_res=32)
    model, _ = syn.synthetic_model(config, 4, 80)
    assert model.config.fused_field == "mlp"
    compile_field(model, dynamic=True)
    assert model.config.fused_field == "off"


@pytest.mark.slow
def test_compile_on_cpu():
    r = run_bench(BenchConfig(**FAST, compile=True), CPU, model=SMALL_HEAD)
    assert r.compile and r.stages["head_render"].median_ms > 0


# --- CUDA only -----------------------------------------------------------------------------------

GPU = RuntimeConfig(device="cuda")


@pytest.mark.gpu
def test_cuda_graphs_need_the_dense_renderer():
    with pytest.raises(ConfigError, match="captures the dense renderer"):
        run_bench(BenchConfig(**FAST, cuda_graphs=True), GPU, model=SMALL_HEAD)


@pytest.mark.gpu
def test_gpu_bench_draws_static_by_default():
    r = run_bench(BenchConfig(**FAST, batch=2), GPU, model=SMALL_HEAD)
    assert r.renderer == "static" and r.stages["end_to_end"].median_ms > 0


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_run_reports_event_times(precision):
    r = run_bench(BenchConfig(**FAST, precision=precision, batch=2), GPU, model=SMALL_HEAD)
    assert r.device == "cuda" and r.precision == precision and r.environment.get("gpu")
    head = r.stages["head_render"]
    assert head.gpu_median_ms is not None and 0 < head.gpu_median_ms <= head.median_ms * 1.05


@pytest.mark.gpu
def test_graph_replay_matches_eager_dense_render():
    dev = torch.device("cuda")
    model, canonical = syn.synthetic_model(NerfHeadConfig(**SMALL_HEAD.options()), 4, 80)
    model = model.to(dev)
    cam, dist = syn.synthetic_camera(96, canonical)
    rot, trans = syn.synthetic_poses(250, dist)
    layout = DenseRects.covering(model.head_rects(Camera.from_numpy(rot, trans, cam.focal, cam.cx, cam.cy, 96, dev)),
                                 96, dev)
    g = torch.Generator(device=dev).manual_seed(0)

    def inputs(frames):
        return {"rotation": torch.from_numpy(rot[frames]).to(dev), "translation": torch.from_numpy(trans[frames]).to(dev),
                "offsets": layout.offsets[frames], "mouth": torch.randn(2, 8, generator=g, device=dev),
                "expressions": torch.rand(2, 3, generator=g, device=dev), "latent": model.latent_for(None, 2),
                "backgrounds": torch.rand(2, 96, 96, 3, generator=g, device=dev)}

    def step(**x):
        camera = Camera(x["rotation"], x["translation"], cam.focal, cam.cx, cam.cy, 96)
        cond = Conditioning(x["mouth"], x["expressions"], x["latent"])
        dense = DenseRects(layout.width, layout.height, x["offsets"])
        return model.render_frames(camera, cond, x["backgrounds"], dense=dense, chunk=4096).images

    graphed = GraphedStep(step, inputs([0, 1]))
    for frames in ([10, 11], [200, 201]):  # replays read new inputs
        x = inputs(frames)
        got = graphed(**x).clone()
        torch.testing.assert_close(got, step(**x), atol=1e-5, rtol=0)  # same kernels; float rounding only


@pytest.mark.gpu
@pytest.mark.parametrize("compile_", [False, True])
def test_cuda_graphs_bench(compile_):
    r = run_bench(BenchConfig(**FAST, renderer="dense", cuda_graphs=True, compile=compile_, batch=2), GPU,
                  model=SMALL_HEAD)
    assert r.cuda_graphs and r.stages["head_render"].median_ms > 0


@pytest.mark.gpu
def test_compile_on_gpu():
    r = run_bench(BenchConfig(**FAST, compile=True), GPU, model=SMALL_HEAD)
    assert r.compile and r.stages["head_render"].median_ms > 0


def test_end_to_end_is_the_stream_that_render_and_live_run(tiny_model, monkeypatch):
    from syncanim.stream.avatar import AvatarStream
    from syncanim.stream.speech import SpeechStream

    seen = {"push": 0, "draw": 0}
    push, draw = SpeechStream.push, AvatarStream.draw

    def counted_push(self, samples):
        seen["push"] += 1
        return push(self, samples)

    def counted_draw(self, call, keep=None):
        seen["draw"] += 1
        return draw(self, call, keep)

    monkeypatch.setattr(SpeechStream, "push", counted_push)
    monkeypatch.setattr(AvatarStream, "draw", counted_draw)
    r = run_bench(BenchConfig(runs=3, warmup=1, batch=2), CPU, tiny_model.layout.root)
    assert r.stages["end_to_end"].median_ms > 0
    # every end-to-end call pushed speech and drew its frames through the stream
    assert seen["draw"] >= 3 + 1 and seen["push"] >= 2 * (3 + 1)
