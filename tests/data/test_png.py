import cv2
import numpy as np
import pytest

from syncanim.data.png import encode_grey_png


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (512, 512), (300, 17)])
def test_png_round_trips_through_a_standard_reader(shape):
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 5, shape, dtype=np.uint8)
    img[: shape[0] // 2] = 3  # a flat region, as label maps have
    back = cv2.imdecode(np.frombuffer(encode_grey_png(img), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, img)


def test_png_rejects_other_arrays():
    with pytest.raises(ValueError):
        encode_grey_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        encode_grey_png(np.zeros((4, 4), np.float32))
