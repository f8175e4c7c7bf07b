"""Our render time against a peer renderer's."""

from __future__ import annotations

import json

import pytest

from syncanim.bench.peer import peer_comparison, read_peer, render_ms
from syncanim.bench.pipeline import StageTiming
from syncanim.errors import DataError


def _t(ms: float) -> StageTiming:
    return StageTiming(ms, ms, ms, ms)


def test_the_most_opaque_setting_is_read(tmp_path):
    f = tmp_path / "ernerf.json"
    f.write_text(json.dumps({"peer": "ernerf", "peer_opt": {"torso": False}, "results": [
        {"density_scale": 1.0, "rays+render+readback": {"median_ms": 17.9}},
        {"density_scale": 100.0, "rays+render+readback": {"median_ms": 6.0}}]}))
    assert read_peer(f) == ("ernerf", 6.0)
    f.write_text(json.dumps({"peer": "ernerf", "peer_opt": {"torso": True}, "results": [
        {"density_scale": 100.0, "rays+render+readback": {"median_ms": 7.5}}]}))
    assert read_peer(f) == ("ernerf + torso", 7.5)


@pytest.mark.parametrize("text", ["not json", json.dumps({"results": []}), json.dumps({"x": 1})])
def test_a_file_without_figures_is_a_data_error(tmp_path, text):
    f = tmp_path / "p.json"
    f.write_text(text)
    with pytest.raises(DataError, match="peer timing"):
        read_peer(f)


def test_the_ratio_covers_torso_head_and_copy():
    stages = {"audio_features": _t(1.0), "torso": _t(2.0), "head_render": _t(5.0), "composite": _t(1.0),
              "encode": _t(3.0)}
    assert render_ms(stages) == 8.0
    c = peer_comparison(stages, 12.0, "ernerf + torso")
    assert c == {"peer": "ernerf + torso", "peer_ms": 12.0, "ours_ms": 8.0, "speedup": 1.5}
    with pytest.raises(DataError):
        peer_comparison(stages, 0.0)
