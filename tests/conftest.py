"""Shared fixtures: the built-in sample clip and its prepared dataset (made once per session)."""

from __future__ import annotations

import shutil
import signal

import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords or "triton" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory):
    """The built-in sample (default settings: 10 s, 25 fps, 512x512) and its ground truth."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from syncanim.config import SampleConfig
    from syncanim.sample.generate import generate_sample

    path = tmp_path_factory.mktemp("sample") / "sample.mp4"
    truth = generate_sample(path, SampleConfig())
    return path, truth


@pytest.fixture(scope="session")
def prepared_sample(sample_clip, tmp_path_factory):
    """``syncanim prep`` run on the sample with the default configuration."""
    from syncanim.config import Config
    from syncanim.prep.pipeline import run_prep

    path, _ = sample_clip
    out = tmp_path_factory.mktemp("prepared") / "sample-prep"
    cfg = Config()
    return run_prep(path, out, cfg.prep, cfg.runtime)


@pytest.fixture(scope="session")
def tiny_dataset(sample_clip, tmp_path_factory):
    """The sample prepared small (128 px around the face): fast enough to train on in tests."""
    from syncanim.config import Config
    from syncanim.prep.pipeline import run_prep

    path, _ = sample_clip
    cfg = Config()
    prep = cfg.prep.model_copy(update={"size": 128, "crop": "subject"})
    return run_prep(path, tmp_path_factory.mktemp("tiny") / "ds", prep, cfg.runtime)


TINY_MODEL = {"kind": "nerf-head", "levels": 6, "log2_table": 12, "max_res": 128, "samples": 8, "hidden": 32,
              "audio_dim": 16, "geo_dim": 7}
TINY_TRAIN = {"head_steps": 40, "lips_steps": 10, "rays": 1024, "frames_per_step": 2, "eval_every": 20,
              "lr_net": 5e-3, "lr_grid": 3e-2,
              "eval_frames": 2, "checkpoint_every": 10, "patch": 96, "lips_frames_per_step": 2,
              "motion": {"steps": 60, "batch": 128}, "torso": {"steps": 30, "pixels": 1024, "frames_per_step": 2}}


@pytest.fixture(scope="session")
def tiny_settings():
    """(model section, train settings) of the tiny test model, as dicts."""
    return dict(TINY_MODEL), dict(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset, tmp_path_factory):
    """A tiny head model trained for a few steps on ``tiny_dataset``."""
    from syncanim.config import PluginSection, RuntimeConfig, TrainConfig
    from syncanim.train.trainer import run_train

    out = tmp_path_factory.mktemp("model") / "m"
    result = run_train(tiny_dataset.layout.root, out, PluginSection(**TINY_MODEL), TrainConfig(**TINY_TRAIN),
                       RuntimeConfig(device="cpu"))
    return result


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler for the test, as an interactive run has it: a shell without job control starts
    background jobs (a CI runner among them) with SIGINT ignored, and Python then leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
