"""Scoring the person apart from the plate: own backdrops and the plate's bound on whole-frame PSNR."""

import numpy as np

from syncanim.data.labels import BACKGROUND, TORSO
from syncanim.render.validation import own_backdrops, plate_bound


def test_own_backdrops_and_plate_bound():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    labels = np.full((3, 16, 16), BACKGROUND, np.uint8)
    labels[:, 8:, 4:12] = TORSO
    plate = np.full((16, 16, 3), 7, np.uint8)
    back = own_backdrops(frames, labels, plate)
    assert np.array_equal(back[:, :8], frames[:, :8]) and (back[:, 8:, 4:12] == 7).all()
    # the plate equals the frames' backgrounds: nothing bounds the figure; the person's pixels never count
    clean = np.where((labels == BACKGROUND)[..., None], plate[None], frames)
    assert plate_bound(clean, labels, plate) == float("inf")
    noisy = clean.astype(np.int16)
    noisy[labels == BACKGROUND] += 10  # every background pixel 10 levels off
    noisy = noisy.clip(0, 255).astype(np.uint8)
    share = (labels == BACKGROUND).mean()
    err = (noisy.astype(float) - clean.astype(float))[labels == BACKGROUND]
    expect = 10 * np.log10(255 ** 2 / ((err ** 2).sum() / labels.size / 3))
    assert abs(plate_bound(noisy, labels, plate) - expect) < 1e-9 and share < 1
