"""Shared fixtures: the built-in sample clip and its prepared dataset (made once per session)."""

from __future__ import annotations

import shutil

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
