"""The band around the head's outline that benchmarks/psnr_regions.py scores."""

import numpy as np

from syncanim.data.labels import FACE, HEAD, NECK, outline_band


def test_outline_band_straddles_the_heads_edge_only():
    labels = np.zeros((48, 48), np.uint8)
    labels[10:30, 10:30] = HEAD
    labels[16:28, 14:26] = FACE  # inside the head: the face's own edge is no outline
    labels[30:40, 15:25] = NECK  # below it: the head's edge there is still its outline
    band = outline_band(labels, 2)
    ys, xs = np.nonzero(band)
    assert band.sum() == 24 * 24 - 16 * 16  # the head square grown by 2, less it shrunk by 2
    assert xs.min() == 8 and xs.max() == 31 and ys.min() == 8 and ys.max() == 31
    assert not band[16:28, 14:26].any()  # the face, inside the head, has no band of its own
    assert not band[20, 20] and band[10, 20] and band[9, 20] and not band[6, 20]
    assert outline_band(np.zeros((8, 8), np.uint8), 3).sum() == 0  # no head, no outline
    assert outline_band(labels, 0.2).sum() == 22 * 22 - 18 * 18  # at least 1 px either side
