"""Ray batches and lip patches: where their rays fall (mouth patch, eye box, head rectangle) and which frames they
draw."""

import numpy as np
import torch

from syncanim.data.batches import DeviceData, blink_weight, mouth_weight, patch_batch, ray_batch
from syncanim.data.dataset import EYE_POINTS, eye_boxes


def _data(n: int = 10, size: int = 64, weight: np.ndarray | None = None,
          lip_weight: np.ndarray | None = None) -> DeviceData:
    z = torch.zeros
    return DeviceData(frames=z(n, size, size, 3, dtype=torch.uint8), backgrounds=z(n, size, size, 3, dtype=torch.uint8),
                      rotation=torch.eye(3).repeat(n, 1, 1), translation=z(n, 3), audio=z(n, 2, 4), expressions=z(n, 3),
                      codes=z(n, 2), rects=torch.tensor([[10, 10, 50, 54]] * n), mouths=torch.tensor([[24, 40]] * n),
                      eyes=torch.tensor([[16, 20, 48, 28]] * n), focal=50.0, cx=32.0, cy=32.0, num_train=n - 2, patch=8,
                      weight=None if weight is None else torch.as_tensor(weight, dtype=torch.float32),
                      lip_weight=None if lip_weight is None else torch.as_tensor(lip_weight, dtype=torch.float32))


def test_eye_boxes_bound_both_eyes_with_a_margin_inside_the_image():
    lm = np.zeros((2, 478, 3), np.float32)
    lm[:, :, :2] = 50
    for k, p in enumerate(EYE_POINTS):
        lm[0, p, :2] = (40 + 40 * (k >= 4) + 10 * (k % 2), 60 + 4 * (k % 4 >= 2))  # eyes at x 40..90, y 60..64
    lm[1, list(EYE_POINTS), 0] = [0, 5, 2, 3, 120, 127, 125, 126]  # eyes at the image's edges
    boxes = eye_boxes(lm, 128, margin=0.25)
    assert boxes[0].tolist() == [28, 48, 102, 76]  # a quarter of the 50 px span on every side
    assert boxes[1, 0] == 0 and boxes[1, 2] == 128


def test_ray_shares_fall_in_their_regions():
    gen = torch.Generator().manual_seed(0)
    b = ray_batch(_data(), 4, 400, head_share=0.5, gen=gen, mouth_share=0.25, eye_share=0.25)
    px = b.pixels  # [4, 100, 2]
    mouth, eyes, head = px[:, :25], px[:, 25:50], px[:, 50:]
    assert ((mouth >= torch.tensor([24, 40])) & (mouth < torch.tensor([32, 48]))).all()
    assert ((eyes >= torch.tensor([16, 20])) & (eyes < torch.tensor([48, 28]))).all()
    assert ((head >= 10) & (head < torch.tensor([50, 54]))).all()
    assert (b.frames < 8).all()  # training frames only


def test_blink_weight_draws_shut_eyes_more_often():
    expr = np.zeros((10, 3))
    expr[3, 0] = 1.0  # the left eye shut
    expr[5, 1] = 0.5  # the right half shut
    expr[6, 2] = 1.0  # brows: not a blink
    w = blink_weight(expr, [0, 1], boost=9.0)
    np.testing.assert_allclose(w, [1, 1, 1, 10, 1, 5.5, 1, 1, 1, 1])
    assert blink_weight(expr, [0, 1], boost=0.0) is None
    gen = torch.Generator().manual_seed(1)
    drawn = torch.cat([ray_batch(_data(weight=w), 4, 8, 1.0, gen).frames for _ in range(500)])
    counts = torch.bincount(drawn, minlength=10).float()
    assert counts[8:].sum() == 0  # held-out frames never drawn, whatever their weight
    share = counts / counts.sum()  # expected: 10 / 21.5 for frame 3, 5.5 / 21.5 for frame 5, 1 / 21.5 for the plain ones
    assert 0.38 < share[3] < 0.51 and 0.02 < share[0] < 0.07 and 0.18 < share[5] < 0.31


def test_mouth_weight_draws_open_mouths_more_often_in_rays_and_lip_patches():
    opening = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, np.nan, 0.5])
    w = mouth_weight(opening, 8, boost=3.0)
    mid, top = np.median(opening[:8]), np.percentile(opening[:8], 95)
    assert w[:4].tolist() == [1.0] * 4  # at or below the median: as before
    assert w[7] == 4.0 and w[9] == 4.0  # at the 95th percentile and past it: 1 + boost
    np.testing.assert_allclose(w[5], 1.0 + 3.0 * (0.06 - mid) / (top - mid))
    assert w[8] == 1.0  # no opening: the median
    assert mouth_weight(opening, 8, boost=0.0) is None
    assert mouth_weight(np.full(10, np.nan), 8, boost=3.0) is None
    lips = np.array([1, 1, 1, 1, 1, 1, 1, 9.0, 1, 1])  # frame 7: 9 / 16 of the draws
    gen = torch.Generator().manual_seed(2)
    d = _data(lip_weight=lips)
    patched = torch.cat([patch_batch(d, 4, gen).frames for _ in range(300)])
    share = torch.bincount(patched, minlength=10).float() / len(patched)
    assert 0.5 < share[7] < 0.63 and share[8:].sum() == 0
    plain = torch.cat([patch_batch(_data(), 4, gen).frames for _ in range(300)])
    assert torch.bincount(plain, minlength=10)[7] / len(plain) < 0.2  # no weight: all alike
    rays = torch.cat([ray_batch(d, 4, 8, 1.0, gen).frames for _ in range(300)])
    assert torch.bincount(rays, minlength=10)[7] / len(rays) < 0.2  # ray batches read their own weight
