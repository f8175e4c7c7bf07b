"""Prep's head-pose stage: the ``landmark-ba`` tracker (:class:`syncanim.face.headpose.LandmarkBATracker`)
as a component, and the poses it finds written as NeRF transforms."""

from __future__ import annotations

import math

from ..data.track import HeadTrack
from ..errors import DataError
from ..face.headpose import LandmarkBAConfig, LandmarkBATracker, topology_missing
from ..geometry import camera_to_world_opengl
from ..registry import Spec


def nerf_transforms(track: HeadTrack, image_size: tuple[int, int], val_fraction: float) -> tuple[dict, dict]:
    """Train and val transforms in the NeRF format of the reference workflow.

    Each is ``{"focal_len": f, "cx": cx, "cy": cy, "frames": [{"img_id": i, "aud_id": i,
    "transform_matrix": [[4 floats] x 4]}]}``; ``transform_matrix`` is the camera-to-world matrix with OpenGL
    camera axes (x right, y up, z backward): the inverse of the head pose,
    ``[[R^T @ diag(1, -1, -1), -R^T @ t], [0, 0, 0, 1]]``. The world is the canonical head frame of
    :mod:`syncanim.geometry` (origin at the face, x to the subject's left, y down, z into the head; units
    close to metres), so a frontal camera sits on the negative z axis. The last ``ceil(N * val_fraction)``
    frames form the val split. When ``image_size`` differs from the tracked size (``2 cx, 2 cy``) with the same
    aspect ratio, focal and principal point are rescaled to it.
    """
    n = track.num_frames
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = math.ceil(n * val_fraction)
    if n - n_val < 1:
        raise DataError(f"{n} frames are too few to split off a val fraction of {val_fraction:g}")
    w, h = (float(x) for x in image_size)
    sx, sy = w / (2 * track.cx), h / (2 * track.cy)
    if abs(sx - sy) > 1e-3 * max(sx, sy):
        raise DataError(f"image size {w:.0f}x{h:.0f} does not have the tracked aspect ratio "
                        f"({2 * track.cx:.0f}x{2 * track.cy:.0f})")
    c2w = camera_to_world_opengl(track.rotation, track.translation)  # [N, 4, 4]

    def split(ids: range) -> dict:
        return {
            "focal_len": float(track.focal * sx),
            "cx": float(track.cx * sx),
            "cy": float(track.cy * sy),
            "frames": [{"img_id": i, "aud_id": i, "transform_matrix": c2w[i].tolist()} for i in ids],
        }

    return split(range(0, n - n_val)), split(range(n - n_val, n))
def _check(config: LandmarkBAConfig) -> str | None:
    return topology_missing()


SPEC = Spec(
    name="landmark-ba",
    config_model=LandmarkBAConfig,
    build=LandmarkBATracker,
    description="head pose and focal length by bundle adjustment of a rigid face shape to FaceMesh landmarks",
    check=_check,
)
