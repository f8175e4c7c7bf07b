import numpy as np
import pytest
import torch

from syncanim.metrics.frames import psnr_8bit, score_frames, ssim_8bit
from syncanim.metrics.image import psnr, ssim


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    b[1] = a[1]
    return a, b


def test_fast_psnr_and_ssim_match_the_library():
    a, b = _pair()
    got = psnr_8bit(a, b)
    want = psnr(torch.from_numpy(a), torch.from_numpy(b))
    assert got[1] == np.inf and want[1] == np.inf
    assert np.allclose(got[[0, 2]], np.array(want)[[0, 2]], rtol=0, atol=1e-9)
    # float32 against float64 SSIM: the sums over an 11x11 window differ in the 7th digit
    assert np.allclose(ssim_8bit(a, b), ssim(torch.from_numpy(a), torch.from_numpy(b)), atol=1e-5)


def test_face_psnr_is_the_psnr_of_the_box_and_nan_without_one():
    a, b = _pair(1)
    box = (5, 7, 30, 33)
    s = score_frames(a, b, [box, None, box])
    x0, y0, x1, y1 = box
    np.testing.assert_array_equal(s.psnr, psnr_8bit(a, b))
    np.testing.assert_array_equal(s.ssim, ssim_8bit(a, b))
    assert s.psnr_face[0] == psnr_8bit(a[:1, y0:y1, x0:x1], b[:1, y0:y1, x0:x1])[0] and np.isnan(s.psnr_face[1])
    mask = torch.zeros(3, 40, 48, dtype=torch.bool)
    mask[:, y0:y1, x0:x1] = True
    want = psnr(torch.from_numpy(a), torch.from_numpy(b), mask=mask)
    assert s.psnr_face[2] == pytest.approx(want[2], abs=1e-9)
    means = s.means()
    assert means["psnr_face"] == pytest.approx(np.mean(s.psnr_face[[0, 2]]))
    with pytest.raises(ValueError, match="face boxes"):
        score_frames(a, b, [box])
