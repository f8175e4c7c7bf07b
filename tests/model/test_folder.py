"""Model folders build their model through the ``syncanim.renderers`` entry point named in model.json."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import replace
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from syncanim.errors import CheckpointError, PluginError
from syncanim.model.folder import build_model, load_model, read_info
from syncanim.model.head import NerfHead
from syncanim.registry import Registry

PROBE = '''
from syncanim.model.head import NerfHead, NerfHeadConfig
from syncanim.registry import Spec

BUILT = []


def build(config):
    def make(setup):
        BUILT.append((config, setup))
        return NerfHead.for_setup(config, setup)
    return make


SPEC = Spec("probe-head", NerfHeadConfig, build, "a nerf-head that records what it was built for")
'''


@pytest.fixture
def probe(tmp_path, monkeypatch):
    (tmp_path / "syncanim_probe_renderer.py").write_text(textwrap.dedent(PROBE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Registry(entry_points=[EntryPoint("probe-head", "syncanim_probe_renderer:SPEC", "syncanim.renderers")])
    sys.modules.pop("syncanim_probe_renderer", None)


def test_the_renderer_named_in_model_json_builds_the_model(tiny_model, probe):
    info = read_info(tiny_model.layout.root)
    model = build_model(replace(info, model={**info.model, "kind": "probe-head"}), probe)
    built = sys.modules["syncanim_probe_renderer"].BUILT
    assert isinstance(model, NerfHead) and len(built) == 1
    config, setup = built[0]
    assert config.samples == info.model["samples"] and setup.canonical is None
    assert (setup.audio_per_frame, setup.audio_dim, setup.num_latents) == (info.audio_per_frame, info.audio_dim,
                                                                           info.num_latents)
    assert setup.mouth == (info.mouth["components"], info.mouth["points"])


def test_the_installed_renderer_loads_the_weights(tiny_model):
    model, info = load_model(tiny_model.layout.root, registry=Registry(entry_points=[
        EntryPoint("nerf-head", "syncanim.model.head_config:SPEC", "syncanim.renderers")]))
    assert isinstance(model, NerfHead) and not model.training
    assert float(model.box_hi.sub(model.box_lo).min()) > 0  # the geometry came with the weights


def test_render_settings_change_only_how_a_trained_model_renders(tiny_model):
    from syncanim.errors import ConfigError

    own, info = load_model(tiny_model.layout.root)
    model, _ = load_model(tiny_model.layout.root, render_settings={"render_samples": 3, "march_parts": 3})
    assert (model.config.render_samples, model.config.march_parts) == (3, 3)
    assert own.config.render_samples == info.model.get("render_samples", 0)
    assert model.config.model_copy(update={"render_samples": own.config.render_samples,
                                           "march_parts": own.config.march_parts}) == own.config
    with pytest.raises(ConfigError, match="levels changes what the 'nerf-head' model learned"):
        load_model(tiny_model.layout.root, render_settings={"levels": 3})
    with pytest.raises(ConfigError, match="render_samples"):
        load_model(tiny_model.layout.root, render_settings={"render_samples": -1})


def test_unknown_renderers_and_foreign_settings_are_refused(tiny_model, probe):
    info = read_info(tiny_model.layout.root)
    with pytest.raises(PluginError, match="no head / torso model families component named 'nerf-head'"):
        build_model(info, probe)
    with pytest.raises(CheckpointError, match="settings the 'probe-head' renderer does not take"):
        build_model(replace(info, model={**info.model, "kind": "probe-head", "samples": 1}), probe)
    with pytest.raises(CheckpointError, match="no usable model or mouth section"):
        build_model(replace(info, mouth={}), probe)


def test_the_dataset_is_recorded_relative_and_found_after_a_move(tiny_model, tmp_path):
    import json
    import shutil

    from syncanim.model.folder import dataset_path, read_info

    root = tiny_model.layout.root
    recorded = json.loads((root / "model.json").read_text())["dataset"]
    assert not Path(recorded).is_absolute()
    original = dataset_path(root, read_info(root))
    assert (original / "manifest.json").is_file()
    # the model and its dataset moved together (another machine, another folder) still find each other
    base = Path(os.path.commonpath([root.resolve(), original.resolve()]))
    moved = tmp_path / "elsewhere"
    for folder in (root.resolve(), original.resolve()):
        shutil.copytree(folder, moved / folder.relative_to(base))
    new_root = moved / root.resolve().relative_to(base)
    found = dataset_path(new_root, read_info(new_root))
    assert found == moved / original.resolve().relative_to(base) and (found / "manifest.json").is_file()
    # models of earlier versions recorded an absolute path: still read as it is
    assert dataset_path(tmp_path, replace(read_info(root), dataset=str(original))) == original


def test_a_dataset_given_as_a_model_is_named_as_such(tiny_dataset, tmp_path):
    from syncanim.errors import CheckpointError
    from syncanim.model.folder import read_info

    with pytest.raises(CheckpointError, match="is a prepared dataset, not a model folder") as info:
        read_info(tiny_dataset.layout.root)
    assert "syncanim train" in info.value.hint
    with pytest.raises(CheckpointError, match="model folder not found"):
        read_info(tmp_path / "nothing-here")
