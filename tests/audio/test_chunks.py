"""Chunking and blending of long sequences."""

import numpy as np
import pytest

from syncanim.audio.chunks import blend_weights, chunk_starts, stitch


@pytest.mark.parametrize(("total", "chunk", "overlap"), [(10, 20, 5), (21, 20, 5), (100, 20, 5), (1000, 150, 50), (151, 150, 50)])
def test_chunk_starts_cover_with_enough_overlap(total, chunk, overlap):
    starts = chunk_starts(total, chunk, overlap)
    assert starts[0] == 0
    ends = [min(total, s + chunk) for s in starts]
    assert ends[-1] == total
    for i in range(1, len(starts)):
        assert ends[i - 1] - starts[i] >= overlap  # neighbours overlap by at least `overlap`
        if i >= 2:
            assert starts[i] >= ends[i - 2]  # never three chunks on one frame


def test_stitch_blends_without_steps():
    total, chunk, overlap = 230, 60, 20
    truth = np.random.default_rng(0).standard_normal((total, 3))
    starts = chunk_starts(total, chunk, overlap)
    # identical chunks stitch back exactly
    exact = stitch([truth[s:s + chunk] for s in starts], starts, total, overlap)
    np.testing.assert_allclose(exact, truth, atol=1e-6)
    # chunks with an offset error at their edges: the blend gives the edge frames ~zero weight
    bumped = []
    for s in starts:
        c = truth[s:s + chunk].copy()
        c[0] += 5.0 if s > 0 else 0.0
        c[-1] += 5.0 if s + chunk < total else 0.0
        bumped.append(c)
    out = stitch(bumped, starts, total, overlap)
    assert np.abs(out - truth).max() < 5.0 / overlap
    w = blend_weights(40, 100, 230, 20)
    assert w[0] < 0.05 and w[-1] < 0.05 and np.all(w[20:40] == 1)


# --- the backend with tiny random models ----------------------------------------------------
