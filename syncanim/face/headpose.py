"""Head pose and camera focal length from MediaPipe FaceMesh landmarks, by bundle adjustment.

The reference workflow fits a 3D morphable face model per frame. Here a rigid, subject-specific canonical
face shape is fitted instead: the 2D positions of the 478 FaceMesh landmarks in every frame are the
observations, and the unknowns are one canonical shape ``S: [478, 3]``, one pose ``(R_i, t_i)`` per frame
and one focal length ``f`` shared by all frames, with the principal point at the image centre.

Steps of :meth:`LandmarkBATracker.fit`:

1. **Rigid landmarks.** Pose and focal are fitted only on landmarks that do not move with expressions
   (:func:`rigid_landmarks`): forehead, temples, cheekbones, nose; not lips, jaw, eyes, brows or irises.
2. **Prior shape.** For a focal ``f`` and a depth scale ``kappa``, each frame's MediaPipe landmarks are
   lifted to 3D with the pinhole model (depth from the face's image scale plus ``kappa`` times MediaPipe's
   relative z), the lifted frames are averaged by generalized Procrustes and moved into the canonical
   frame (:class:`_Lifter`). This prior ``P(f, kappa)`` is where the fitted shape starts and what it is
   pulled towards.
3. **Focal search.** For focal values log-spaced over ``focal_range``, poses, shape and ``kappa`` are
   fitted by bundle adjustment with the focal held fixed, on an evenly spread subset of valid frames and
   rigid landmarks. A parabola through the lowest cost and its neighbours (in log focal) gives the start
   of the next step.
4. **Joint refinement.** Levenberg-Marquardt over the poses, the rigid part of the shape, ``kappa`` and
   log focal on a larger subset of valid frames, with ``P`` linearised in log focal and ``kappa``. Per-frame
   pose blocks are eliminated by the Schur complement, so each step solves one dense system of size
   ``3 K + 2`` (K rigid landmarks). Translations are parametrised as ``exp(rho) (a, b, 1)``, which keeps
   the valley along which focal and depths change together straight.
5. **All frames.** With shape and focal fixed, every frame's pose is fitted on its own (a batched
   6-parameter Levenberg-Marquardt). Frames with non-finite landmarks get poses interpolated from
   their neighbours.
6. **Non-rigid landmarks.** Their canonical positions (mean mouth, eyes, jaw) are triangulated from the
   same frames given the poses, with the same prior.
7. **Over time.** Given the frames (as prep does), every pose is refitted to its landmarks and to the optical
   flow of the rigid landmarks from the frame before, all frames at once (:mod:`syncanim.face.pose_flow`):
   the flow, far more precise than the landmarks, removes their jitter without lagging real motion. Without
   the frames (or with ``flow_weight`` 0), rotations (quaternions) and translations are smoothed with a
   weighted Gaussian whose weights are 1 for valid frames and ``invalid_weight`` for interpolated ones.

Costs, in squared pixels: the Huber reprojection loss (``huber_px``); the shape prior
``n * |S_k - P_k|^2 / shape_tol^2`` per landmark (``n`` frames in the fit), so moving a landmark by
``shape_tolerance_mm`` costs as much as a 1 px error in every frame; and the depth-scale prior
``n * mean_k |P_k(kappa) - P_k(1)|^2 / depth_tol^2``. Without the priors the problem is degenerate: from 2D
points alone, a flatter face turning more, or a farther camera with a longer focal, explain the images
almost as well (the bas-relief and focal/depth ambiguities of weak perspective). The priors resolve
these towards MediaPipe's 3D shape, while the perspective effects of head rotation fix the focal.

The canonical frame (see :func:`canonical_transform`): origin at the centroid of the rigid landmarks;
x from the subject's right eye to the left eye (image right at a frontal pose), y down, perpendicular
to x, in the plane of x and the glabella (9) -> subnasale (2) line; z = x cross y, away from the camera;
scale such that the outer eye corners (33, 263) are 0.09 apart (units close to metres).
Camera conventions are those of :mod:`syncanim.geometry` (OpenCV, ``X_cam = R @ X + t``).
With little head rotation or a distant camera the focal is poorly constrained: a best focal at the edge
of ``focal_range`` is logged as a warning, and a known focal can be given as ``focal``.

:class:`LandmarkBATracker` is prep's ``landmark-ba`` head tracker (registered in :mod:`syncanim.prep.headpose`)
and what eval measures head motion with.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from ..config import Frozen
from ..console import ProgressFn, no_progress
from ..data.track import HeadTrack
from ..errors import DataError
from ..geometry import (
    axis_angle_to_matrix,
    matrix_to_quaternion,
    procrustes,
    project,
    quaternion_to_matrix,
    smooth_rotations,
    smooth_series,
    transform_points,
)
from .landmarks import NUM_LANDMARKS  # 468 mesh vertices + 10 iris points (refine_landmarks)

log = logging.getLogger(__name__)

#: Face mesh vertices (the rest are iris points).
NUM_MESH = 468
#: Outer eye corners: subject's right (image left at a frontal pose), subject's left.
EYE_OUTER = (33, 263)
#: Inner eye corners, same order.
EYE_INNER = (133, 362)
#: Glabella (between the brows) and subnasale (base of the nose), both on the midline.
GLABELLA = 9
SUBNASALE = 2
#: Distance between the outer eye corners in the canonical frame (an adult average, in metres).
EYE_CORNER_DISTANCE = 0.09



# --- config -----------------------------------------------------------------------------------------


class LandmarkBAConfig(Frozen):
    """Settings of the ``landmark-ba`` head tracker."""

    # Known focal length in pixels: skips the search (and keeps the focal fixed). None = estimate it.
    focal: float | None = Field(None, gt=0)
    # Focal search range, in multiples of max(W, H): 0.5 is a 90 degree field of view, 16 about 3.6 degrees.
    # The joint refinement starts from the best grid point and may leave the range.
    focal_range: tuple[float, float] = (0.5, 16.0)
    # Grid points (log-spaced) of the focal search; more = slower, less likely to miss a narrow minimum.
    focal_steps: int = Field(5, ge=3, le=64)
    # The focal counts as undetermined (a warning) when a neighbouring grid point's cost is within this share of
    # the best one: the clip cannot tell those focal lengths apart (measured: 1 s of a news clip, 0.00006; a
    # synthetic 6 s clip turning 20 degrees, whose focal is recovered within 10 %, 0.004).
    focal_flatness: float = Field(0.001, ge=0.0)
    # Valid frames (evenly spread) used by the focal search.
    search_frames: int = Field(60, ge=10)
    # Rigid landmarks (evenly picked) used by the focal search.
    search_landmarks: int = Field(90, ge=10)
    # Levenberg-Marquardt iterations per focal grid point.
    search_iterations: int = Field(6, ge=1)
    # Valid frames (evenly spread) used by the joint refinement of shape, poses and focal.
    ba_frames: int = Field(150, ge=10)
    # Levenberg-Marquardt iterations of the joint refinement (stops earlier once converged).
    iterations: int = Field(10, ge=1)
    # Levenberg-Marquardt iterations of the final per-frame pose fit.
    pose_iterations: int = Field(10, ge=1)
    # Shape prior: moving a landmark this far (mm) from its initial position costs as much as
    # 1 px of reprojection error in every frame. Smaller = shape stays closer to MediaPipe's.
    shape_tolerance_mm: float = Field(5.0, gt=0)
    # Prior on the depth scale of MediaPipe's z: rescaling it so that the rigid landmarks move by this much
    # (RMS, mm) costs as much as a 1 px error in one landmark of every frame. Larger = depth (and so the
    # size of head rotations) follows the 2D data more; smaller = trusts MediaPipe's depth more.
    depth_tolerance_mm: float = Field(3.0, gt=0)
    # Reprojection errors above this (px) count linearly, not quadratically (Huber loss).
    huber_px: float = Field(3.0, gt=0)
    # Gaussian smoothing of the rotations / translations over time, std in frames (0 = off).
    rotation_smoothing: float = Field(1.0, ge=0)
    translation_smoothing: float = Field(1.0, ge=0)
    # Weight of interpolated (invalid) frames in the smoothing; valid frames weigh 1.
    invalid_weight: float = Field(0.1, ge=0, le=1)
    # When the tracker is given the frames (prep does), the optical flow of the rigid landmarks from each frame to
    # the next ties the poses of neighbouring frames, in place of the smoothing (syncanim.face.pose_flow): a flow
    # residual weighs this many times a landmark's reprojection error (both in px^2). 0 = off (smoothing instead).
    # On 71 s of a news clip at 512 px, poses fitted with one half of the rigid landmarks' flow followed the other
    # half's flow to 0.22 px (median) against 0.36 px smoothed, at the same landmark error; a 10-minute gpu-default
    # model of the clip scored its held-out frames at 32.17 dB against 31.46 smoothed (weight 3: 31.66 dB).
    flow_weight: float = Field(10.0, ge=0)
    # Flow residuals above this (px) count linearly (Huber loss).
    flow_huber_px: float = Field(1.0, gt=0)
    # Lucas-Kanade window and the largest forward-backward disagreement of a flow point, in px at 512 px
    # (scaled with the frame).
    flow_window_px: float = Field(21.0, ge=5)
    flow_check_px: float = Field(0.3, gt=0)
    # Gauss-Newton iterations of the fit to landmarks and flow.
    flow_iterations: int = Field(4, ge=1)
    # Fewer valid frames than this is an error.
    min_valid_frames: int = Field(10, ge=3)

    @model_validator(mode="after")
    def _check_range(self) -> LandmarkBAConfig:
        lo, hi = self.focal_range
        if not 0 < lo < hi:
            raise ValueError(f"focal_range must be (low, high) with 0 < low < high, got {self.focal_range}")
        return self


# --- result -----------------------------------------------------------------------------------------


# --- landmark sets and the canonical frame ----------------------------------------------------------


@lru_cache(maxsize=1)
def _mesh_topology() -> tuple[dict[str, frozenset[int]], tuple[tuple[int, int], ...]]:
    """Vertex sets of MediaPipe's FaceMesh regions and the edges of its triangulation (imported lazily)."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def verts(edges: Any) -> frozenset[int]:
        return frozenset(int(i) for e in edges for i in e)

    regions = {
        "lips": verts(fmc.FACEMESH_LIPS),
        "eyes": verts(fmc.FACEMESH_LEFT_EYE) | verts(fmc.FACEMESH_RIGHT_EYE),
        "brows": verts(fmc.FACEMESH_LEFT_EYEBROW) | verts(fmc.FACEMESH_RIGHT_EYEBROW),
        "oval": verts(fmc.FACEMESH_FACE_OVAL),
        "irises": frozenset(range(NUM_MESH, NUM_LANDMARKS)),
    }
    edges = tuple((int(a), int(b)) for a, b in fmc.FACEMESH_TESSELATION)
    return regions, edges


def topology_missing() -> str | None:
    """None when MediaPipe's face mesh topology (which the tracker needs) can be imported, else what to install."""
    try:
        _mesh_topology()
    except ImportError as e:
        return f"mediapipe's face mesh topology cannot be imported ({e}); install mediapipe==0.10.21"
    return None


@lru_cache(maxsize=1)
def rigid_candidates() -> np.ndarray:
    """Mesh vertices that may be rigid, from FaceMesh topology alone: ``[K0] int64``, sorted.

    Excludes the lips, eyes, eyebrows, face oval (it includes the jaw and the poorly placed silhouette)
    and irises, plus the vertices adjacent (one triangle edge) to the eyes and eyebrows, which move
    with blinks and brow raises. :func:`rigid_landmarks` further drops everything below the nose.
    """
    regions, edges = _mesh_topology()
    moving = regions["eyes"] | regions["brows"]
    ring = {b for a, b in edges if a in moving} | {a for a, b in edges if b in moving}
    excluded = set().union(*regions.values()) | ring
    return np.array(sorted(set(range(NUM_MESH)) - excluded), dtype=np.int64)


def rigid_landmarks(canonical: np.ndarray) -> np.ndarray:
    """The rigid subset used for pose and focal: ``[K] int64`` indices into the 478 landmarks.

    :func:`rigid_candidates` restricted to vertices at or above the subnasale in a canonical shape
    (``canonical: [478, 3]`` in the canonical frame, y down), so that cheeks and chin, which move with
    the mouth and jaw, are left out.
    """
    cand = rigid_candidates()
    y = np.asarray(canonical, dtype=np.float64)[:, 1]
    return cand[y[cand] <= y[SUBNASALE] + 1e-9]


def canonical_transform(shape: np.ndarray, rigid: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity taking a face shape into the canonical frame: ``S_canon = a * (S - c) @ Q.T``.

    ``shape: [478, 3]`` in any right-handed frame whose x roughly points from the subject's right eye to
    the left eye; ``rigid: [K]`` the landmarks whose centroid is the origin. Returns ``(a, Q: [3, 3], c: [3])``:
    ``Q``'s rows are the canonical x, y, z axes in the input frame (see the module docstring).
    """
    s = np.asarray(shape, dtype=np.float64)
    right = (s[EYE_OUTER[0]] + s[EYE_INNER[0]]) / 2
    left = (s[EYE_OUTER[1]] + s[EYE_INNER[1]]) / 2
    x = left - right
    x /= np.linalg.norm(x)
    y = s[SUBNASALE] - s[GLABELLA]
    y = y - (y @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    q = np.stack([x, y, z])
    c = s[rigid].mean(0)
    a = EYE_CORNER_DISTANCE / np.linalg.norm(s[EYE_OUTER[1]] - s[EYE_OUTER[0]])
    return float(a), q, c


def _apply_similarity(scale: np.ndarray, rot: np.ndarray, trans: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``s_m R_m X + t_m`` with elementwise products (fast for many small rotations).

    ``scale: [M]``, ``rot: [M, 3, 3]``, ``trans: [M, 3]``, ``points: [M, P, 3]`` -> ``[M, P, 3]``.
    """
    sr = scale[:, None, None] * rot  # [M, 3, 3]
    out = trans[:, None, :] + points[..., 0:1] * sr[:, None, :, 0]
    out += points[..., 1:2] * sr[:, None, :, 1]
    out += points[..., 2:3] * sr[:, None, :, 2]
    return out


def _generalized_procrustes(
    points: np.ndarray, subset: np.ndarray, iterations: int = 4, ref: np.ndarray | None = None
) -> np.ndarray:
    """Mean shape of ``points: [M, P, 3]`` after similarity alignment on ``subset``; returns ``[P, 3]``.

    The reference starts as ``ref: [K, 3]`` (default: the median frame over ``subset``) and is rescaled
    to its initial size each round so that it does not shrink; the final alignment is applied to all points.
    """
    sub = points[:, subset]  # [M, K, 3]
    ref = np.median(sub, axis=0) if ref is None else ref  # [K, 3]
    size = np.linalg.norm(ref - ref.mean(0))
    for _ in range(iterations):
        s, r, t = procrustes(sub, ref)  # frame -> reference
        ref = _apply_similarity(s, r, t, sub).mean(0)
        ref = ref * (size / np.linalg.norm(ref - ref.mean(0)))
    s, r, t = procrustes(sub, ref)
    return _apply_similarity(s, r, t, points).mean(0)


class _Lifter:
    """Initial canonical shapes from MediaPipe's 3D landmarks, for a given focal length and depth scale.

    ``lm: [M, 478, 3]``. Each frame's landmarks are lifted to 3D with the pinhole model: the similarity fit
    of the mean shape (in pixels) to the frame gives a scale ``s`` (pixels per unit at the face), so the
    rigid landmarks' centroid lies at depth ``focal / s``; each landmark's depth adds
    ``depth_scale * (z - z_rigid) / s`` (MediaPipe's z, measured from the mean over the rigid landmarks, is
    only known up to scale), and ``X = (u - cx) Z / focal``, ``Y = (v - cy) Z / focal``. The lifted frames
    are averaged by generalized Procrustes and moved into the canonical frame.
    """

    def __init__(self, lm: np.ndarray, rigid: np.ndarray, cx: float, cy: float) -> None:
        self.lm, self.rigid, self.cx, self.cy = lm, rigid, cx, cy
        mean = _generalized_procrustes(lm, rigid)
        self.scale, _, _ = procrustes(mean[rigid], lm[:, rigid])  # [M]
        self.ref = mean[rigid] / np.median(self.scale)
        # MediaPipe's z is relative to a point of its own choosing: measure it from the rigid centroid
        self.z0 = lm[:, rigid, 2].mean(1)  # [M]
        # landmarks that the canonical frame is defined by, besides the rigid ones
        self.frame_ids = np.union1d(rigid, [*EYE_OUTER, *EYE_INNER, GLABELLA, SUBNASALE])

    def lift(self, focal: float, depth_scale: float, ids: np.ndarray | None = None) -> np.ndarray:
        """The canonical shape ``[478, 3]``; only rows ``ids`` (and those defining the frame) are filled
        when ``ids`` is given, the others are zero."""
        cols = np.arange(NUM_LANDMARKS) if ids is None else np.union1d(ids, self.frame_ids)
        lm = self.lm[:, cols]
        depth = (focal + depth_scale * (lm[..., 2] - self.z0[:, None])) / self.scale[:, None]  # [M, P]
        pts = np.stack([(lm[..., 0] - self.cx) * depth / focal, (lm[..., 1] - self.cy) * depth / focal, depth], -1)
        full = np.zeros((NUM_LANDMARKS, 3))
        full[cols] = _generalized_procrustes(pts, np.searchsorted(cols, self.rigid), iterations=2, ref=self.ref)
        a, q, c = canonical_transform(full, self.rigid)
        out = np.zeros((NUM_LANDMARKS, 3))
        out[cols] = a * (full[cols] - c) @ q.T
        return out

    def prior(self, focal: float, depth_scale: float, with_focal: bool = True, step: float = 0.05):
        """``(shape, d_logf, d_kappa)``: the full shape ``[478, 3]`` and its derivatives in log focal (None
        unless ``with_focal``) and in depth scale, by forward differences, on the rigid rows only
        (``[478, 3]``, zero elsewhere)."""
        shape = self.lift(focal, depth_scale)
        d_kappa = (self.lift(focal, depth_scale + step, self.rigid) - shape) / step
        d_logf = None
        if with_focal:
            d_logf = (self.lift(focal * math.exp(step), depth_scale, self.rigid) - shape) / step
        keep = np.zeros(NUM_LANDMARKS, bool)
        keep[self.rigid] = True
        d_kappa[~keep] = 0.0
        if d_logf is not None:
            d_logf[~keep] = 0.0
        return shape, d_logf, d_kappa


# --- bundle adjustment ------------------------------------------------------------------------------


def _robust(err: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber cost and IRLS weight of each 2D error. ``err: [..., 2]`` -> ``(cost [...], weight [...])``."""
    n = np.sqrt(np.sum(err * err, -1))
    inside = n <= delta
    cost = np.where(inside, n * n, 2 * delta * n - delta * delta)
    weight = np.where(inside, 1.0, delta / np.maximum(n, 1e-12))
    return cost, weight


def _rotate_shape(rot: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """``R_m @ S_k`` for every frame and point as one matrix product. ``[M, 3, 3]``, ``[K, 3]`` -> ``[M, K, 3]``."""
    m = len(rot)
    flat = shape @ rot.transpose(2, 0, 1).reshape(3, 3 * m)  # [K, 3M]
    return flat.reshape(len(shape), m, 3).transpose(1, 0, 2)


def _residuals(obs, rot, trans, shape, focal, cx, cy):
    """``obs: [M, K, 2]``, ``rot: [M, 3, 3]``, ``trans: [M, 3]``, ``shape: [K, 3]`` -> errors ``[M, K, 2]``."""
    p = _rotate_shape(rot, shape) + trans[:, None, :]  # [M, K, 3]
    z = np.maximum(p[..., 2], 1e-9)
    return np.stack([focal * p[..., 0] / z + cx, focal * p[..., 1] / z + cy], -1) - obs


def _linearize(obs, rot, trans, shape, focal, cx, cy, delta, want_shape=True):
    """Errors, IRLS weights and Jacobians of the reprojection residuals.

    Returns ``err [M, K, 2]``, ``w [M, K]``, ``cost`` (robust, scalar), ``j_pose [M, K, 2, 6]`` (left
    rotation increment, then translation), ``j_shape [M, K, 2, 3]`` (None unless ``want_shape``) and
    ``j_logf [M, K, 2]``. The translation columns of ``j_pose`` are for the steps of :func:`_apply_pose_step`.
    """
    q = _rotate_shape(rot, shape)  # [M, K, 3]
    q0, q1, q2 = q[..., 0], q[..., 1], q[..., 2]
    z = np.maximum(q2 + trans[:, None, 2], 1e-9)
    xz = (q0 + trans[:, None, 0]) / z
    yz = (q1 + trans[:, None, 1]) / z
    j_logf = np.stack([focal * xz, focal * yz], -1)  # [M, K, 2]  d(uv)/d(log f) = uv - (cx, cy)
    err = j_logf - (obs - np.array([cx, cy]))
    c, w = _robust(err, delta)
    fz = focal / z
    # rows of d(uv)/d(X_cam) are a0 = fz (1, 0, -x/z), a1 = fz (0, 1, -y/z); a left rotation increment
    # dw moves X_cam by dw x (R S), so d(uv_i)/dw = (R S) x a_i.
    j_pose = np.zeros(q.shape[:2] + (2, 6))  # [M, K, 2, 6]
    j_pose[..., 0, 0] = -q1 * xz * fz
    j_pose[..., 0, 1] = (q2 + q0 * xz) * fz
    j_pose[..., 0, 2] = -q1 * fz
    j_pose[..., 0, 3] = fz
    j_pose[..., 0, 5] = -xz * fz
    j_pose[..., 1, 0] = (-q1 * yz - q2) * fz
    j_pose[..., 1, 1] = q0 * yz * fz
    j_pose[..., 1, 2] = q0 * fz
    j_pose[..., 1, 4] = fz
    j_pose[..., 1, 5] = -yz * fz
    j_shape = None
    if want_shape:
        jp = j_pose[..., 3:]  # [M, K, 2, 3]  d(uv)/d(X_cam)
        j_shape = np.sum(jp[..., :, None] * rot[:, None, None], -2)  # [M, K, 2, 3]  jp @ R
    # translation as t = exp(rho) * (a, b, 1): columns d t / d(a, b, rho) = [[tz, 0, tx], [0, tz, ty], [0, 0, tz]]
    tx, ty, tz = (trans[:, None, None, i] for i in range(3))  # [M, 1, 1]
    jt0, jt1, jt2 = j_pose[..., 3].copy(), j_pose[..., 4].copy(), j_pose[..., 5].copy()
    j_pose[..., 3] = jt0 * tz
    j_pose[..., 4] = jt1 * tz
    j_pose[..., 5] = jt0 * tx + jt1 * ty + jt2 * tz
    return err, w, float(c.sum()), j_pose, j_shape, j_logf


def _apply_pose_step(rot, trans, step):
    """Left-multiplied rotation increment; translation ``t = exp(rho) (a, b, 1)`` with additive steps in
    ``(a, b, rho)``, so that a change of depth is a straight line in these parameters. ``step: [M, 6]``."""
    tz = trans[:, 2:3]
    ab = trans[:, :2] / tz + step[:, 3:5]
    tz2 = tz * np.exp(step[:, 5:6])
    return axis_angle_to_matrix(step[:, :3]) @ rot, np.concatenate([ab * tz2, tz2], -1)


def _fit_poses(obs, rot, trans, shape, focal, cx, cy, delta, iterations):
    """Per-frame Levenberg-Marquardt of poses with shape and focal fixed (frames are independent).

    ``obs: [M, K, 2]``, ``rot: [M, 3, 3]``, ``trans: [M, 3]``, ``shape: [K, 3]``. Returns ``rot, trans``.
    Frames leave the loop once their cost stops decreasing.
    """
    rot, trans = rot.copy(), trans.copy()
    lam = np.full(len(obs), 1e-3)
    active = np.arange(len(obs))
    eye = np.eye(6)
    for _ in range(iterations):
        if len(active) == 0:
            break
        o, r, t, la = obs[active], rot[active], trans[active], lam[active]
        m = len(active)
        err, w, _, j_pose, _, _ = _linearize(o, r, t, shape, focal, cx, cy, delta, want_shape=False)
        cost = _robust(err, delta)[0].sum(1)  # [m]
        jw = (j_pose * w[..., None, None]).reshape(m, -1, 6)  # [m, 2K, 6]
        h = np.swapaxes(jw, 1, 2) @ j_pose.reshape(m, -1, 6)  # [m, 6, 6]
        g = (np.swapaxes(jw, 1, 2) @ err.reshape(m, -1, 1))[..., 0]  # [m, 6]
        diag = np.diagonal(h, axis1=1, axis2=2)
        step = -np.linalg.solve(h + (la[:, None] * (diag + 1e-9))[..., None] * eye, g[..., None])[..., 0]
        r2, t2 = _apply_pose_step(r, t, step)
        c2 = _robust(_residuals(o, r2, t2, shape, focal, cx, cy), delta)[0].sum(1)
        ok = c2 < cost
        rot[active[ok]], trans[active[ok]] = r2[ok], t2[ok]
        lam[active] = np.where(ok, np.maximum(la / 3, 1e-9), la * 8)
        done = (ok & (cost - c2 < 1e-9 * cost + 1e-12)) | (~ok & (la > 1e4))
        active = active[~done]
    return rot, trans


def _ba(obs, rot, trans, shape, prior, prior_w, focal, cx, cy, delta, iterations, *, d_logf=None, d_kappa=None,
        kappa_w=0.0, kappa_offset=0.0):
    """Levenberg-Marquardt over poses, shape, and the global parameters ``log f`` and ``kappa``.

    Minimises the robust reprojection cost plus ``prior_w * sum_k |S_k - P_k|^2`` with the prior shape
    ``P = prior + log(f / f0) * d_logf + kappa * d_kappa``, linearised around the starting focal ``f0`` and
    ``kappa = 0``: the lifted shape of :class:`_Lifter` depends on focal and depth scale. The focal is fitted only
    when ``d_logf`` is given, ``kappa`` only when ``d_kappa`` is given; ``kappa_w * (kappa + kappa_offset)^2``
    is added to the cost. Per-frame pose blocks are eliminated with the Schur complement, so each step
    solves one dense system over shape and the global parameters.

    ``obs: [M, K, 2]``, ``rot: [M, 3, 3]``, ``trans: [M, 3]``, ``shape, prior, d_logf, d_kappa: [K, 3]``.
    Returns ``(rot, trans, shape, focal, kappa, cost)``.
    """
    m, k = obs.shape[:2]
    fit_focal = d_logf is not None

    dirs = [d for d in (d_logf, d_kappa) if d is not None]  # prior directions of the global parameters
    ng = len(dirs)
    i_f = 3 * k  # index of log focal in the reduced system, when fitted
    i_k = 3 * k + int(fit_focal)  # index of kappa, when fitted
    ny = 3 * k + ng
    dmat = np.stack(dirs, -1) if ng else np.zeros((k, 3, 0))  # [K, 3, G]
    focal0 = focal
    kappa = 0.0

    def theta_of(f, kap):
        return np.array(([math.log(f / focal0)] if fit_focal else []) + ([kap] if d_kappa is not None else []))

    def total_cost(r, t, s, f, kap):
        data = _robust(_residuals(obs, r, t, s, f, cx, cy), delta)[0].sum()
        return float(data + prior_w * np.sum((s - prior - dmat @ theta_of(f, kap)) ** 2)
                     + kappa_w * (kap + kappa_offset) ** 2)

    blk = 3 * np.arange(k)[:, None, None]
    blk_r = (blk + np.arange(3)[None, :, None] + np.zeros((1, 1, 3), np.int64)).reshape(-1)  # [9K]
    blk_c = (blk + np.arange(3)[None, None, :] + np.zeros((1, 3, 1), np.int64)).reshape(-1)
    glob = np.arange(3 * k, ny)
    lam = 1e-4
    cost = total_cost(rot, trans, shape, focal, kappa)
    for _ in range(iterations):
        err, w, _, j_pose, j_shape, j_logf = _linearize(obs, rot, trans, shape, focal, cx, cy, delta)
        wp = j_pose * w[..., None, None]  # [M, K, 2, 6]
        ws = j_shape * w[..., None, None]  # [M, K, 2, 3]
        wpt = np.swapaxes(wp.reshape(m, -1, 6), 1, 2)  # [M, 6, 2K]
        d = wpt @ j_pose.reshape(m, -1, 6)  # [M, 6, 6]
        gx = (wpt @ err.reshape(m, -1, 1))[..., 0]  # [M, 6]
        wst = np.swapaxes(ws.transpose(1, 0, 2, 3).reshape(k, -1, 3), 1, 2)  # [K, 3, 2M]
        a = wst @ j_shape.transpose(1, 0, 2, 3).reshape(k, -1, 3) + prior_w * np.eye(3)  # [K, 3, 3]
        pres = shape - prior - dmat @ theta_of(focal, kappa)  # [K, 3]
        gy = np.zeros(ny)
        gy[:3 * k] = ((wst @ err.transpose(1, 0, 2).reshape(k, -1, 1))[..., 0] + prior_w * pres).reshape(-1)
        gy[3 * k:] = -prior_w * np.einsum("ki,kig->g", pres, dmat)
        hyy0 = np.zeros((ny, ny))
        hyy0[:3 * k, 3 * k:] = -prior_w * dmat.reshape(3 * k, ng)
        hyy0[3 * k:, :3 * k] = hyy0[:3 * k, 3 * k:].T
        hyy0[3 * k:, 3 * k:] = prior_w * np.einsum("kig,kih->gh", dmat, dmat)
        if d_kappa is not None:
            hyy0[i_k, i_k] += kappa_w
            gy[i_k] += kappa_w * (kappa + kappa_offset)
        bt = np.zeros((m, 6, ny))  # pose rows x reduced columns of the Hessian
        bt[:, :, :3 * k] = (np.swapaxes(wp, -1, -2) @ j_shape).transpose(0, 2, 1, 3).reshape(m, 6, 3 * k)
        if fit_focal:  # the data term of log focal
            bt[:, :, i_f] = (wpt @ j_logf.reshape(m, -1, 1))[..., 0]
            hyy0[:3 * k, i_f] += (wst @ j_logf.transpose(1, 0, 2).reshape(k, -1, 1)).reshape(-1)
            hyy0[i_f, :3 * k] = hyy0[:3 * k, i_f]
            hyy0[i_f, i_f] += float(np.sum(w[..., None] * j_logf * j_logf))
            gy[i_f] += float(np.sum(w[..., None] * j_logf * err))
        d_diag = np.diagonal(d, axis1=1, axis2=2)
        a_diag = np.diagonal(a, axis1=1, axis2=2)
        g_diag = np.diagonal(hyy0)[3 * k:].copy()
        accepted = False
        while lam < 1e8:
            dl = d + (lam * (d_diag + 1e-9))[..., None] * np.eye(6)
            try:
                linv = np.linalg.inv(np.linalg.cholesky(dl))  # [M, 6, 6]
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            gt = linv @ bt  # [M, 6, Y]
            hx = (linv @ gx[..., None])[..., 0]  # [M, 6]
            gt2 = gt.reshape(m * 6, ny)
            hyy = hyy0.copy()
            hyy[blk_r, blk_c] = (a + (lam * (a_diag + 1e-9))[..., None] * np.eye(3)).reshape(-1)
            hyy[glob, glob] = g_diag * (1 + lam) + 1e-9
            hred = hyy - gt2.T @ gt2
            rhs = -gy + gt2.T @ hx.reshape(-1)
            try:
                dy = np.linalg.solve(hred, rhs)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            dx = (np.swapaxes(linv, 1, 2) @ (-hx - gt @ dy)[..., None])[..., 0]  # [M, 6]
            r2, t2 = _apply_pose_step(rot, trans, dx)
            s2 = shape + dy[:3 * k].reshape(k, 3)
            f2 = focal * math.exp(float(dy[i_f])) if fit_focal else focal
            k2 = kappa + float(dy[i_k]) if d_kappa is not None else kappa
            c2 = total_cost(r2, t2, s2, f2, k2)
            if c2 < cost:
                accepted = True
                rel = (cost - c2) / max(cost, 1e-12)
                # along a flat valley the damped steps are short: repeat the step while that still helps
                for _ in range(4):
                    r3, t3 = _apply_pose_step(r2, t2, dx)
                    s3 = s2 + dy[:3 * k].reshape(k, 3)
                    f3 = f2 * math.exp(float(dy[i_f])) if fit_focal else f2
                    k3 = k2 + float(dy[i_k]) if d_kappa is not None else k2
                    c3 = total_cost(r3, t3, s3, f3, k3)
                    if c3 >= c2:
                        break
                    r2, t2, s2, f2, k2, c2 = r3, t3, s3, f3, k3, c3
                rot, trans, shape, focal, kappa, cost = r2, t2, s2, f2, k2, c2
                lam = max(lam / 4, 1e-9)
                break
            lam *= 6
        if not accepted or rel < 1e-7:
            break
    return rot, trans, shape, focal, kappa, cost


def _fit_points(obs, rot, trans, prior, prior_w, focal, cx, cy, delta, iterations=3):
    """Triangulate landmarks with poses and focal fixed (Gauss-Newton, each point on its own), with the
    prior ``prior_w * |S_k - prior_k|^2``.

    ``obs: [M, P, 2]``, ``rot: [M, 3, 3]``, ``trans: [M, 3]``, ``prior: [P, 3]`` (also the start).
    Returns ``[P, 3]``.
    """
    shape = prior.copy()
    p = len(shape)
    for _ in range(iterations):
        q = _rotate_shape(rot, shape) + trans[:, None, :]  # [M, P, 3]
        z = np.maximum(q[..., 2], 1e-9)
        xz, yz, fz = q[..., 0] / z, q[..., 1] / z, focal / z
        err = np.stack([focal * xz + cx, focal * yz + cy], -1) - obs  # [M, P, 2]
        w = _robust(err, delta)[1]
        # rows of d(uv)/dS = d(uv)/d(X_cam) @ R
        j0 = fz[..., None] * (rot[:, None, 0, :] - xz[..., None] * rot[:, None, 2, :])  # [M, P, 3]
        j1 = fz[..., None] * (rot[:, None, 1, :] - yz[..., None] * rot[:, None, 2, :])
        j = np.stack([j0, j1], 2).transpose(1, 0, 2, 3).reshape(p, -1, 3)  # [P, 2M, 3]
        wj = j * np.repeat(w.T, 2, axis=1)[..., None]
        a = np.swapaxes(wj, 1, 2) @ j + prior_w * np.eye(3)  # [P, 3, 3]
        g = (np.swapaxes(wj, 1, 2) @ err.transpose(1, 0, 2).reshape(p, -1, 1))[..., 0]
        g += prior_w * (shape - prior)
        shape = shape - np.linalg.solve(a, g[..., None])[..., 0]
    return shape


# --- helpers ----------------------------------------------------------------------------------------


def _spread(indices: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` entries of ``indices``, evenly spread."""
    if len(indices) <= count:
        return indices
    return indices[np.unique(np.linspace(0, len(indices) - 1, count).round().astype(np.int64))]


def _weak_perspective_poses(lm, shape, rigid, focal, cx, cy):
    """Initial poses from a similarity fit of ``shape: [478, 3]`` to each frame's 3D landmarks ``lm: [M, 478, 3]``.

    The scale ``s`` of the fit is ``focal / depth``. Returns ``rot [M, 3, 3]``, ``trans [M, 3]``.
    """
    s, r, c = procrustes(shape[rigid], lm[:, rigid])
    s = np.maximum(s, 1e-9)
    t = np.stack([(c[:, 0] - cx) / s, (c[:, 1] - cy) / s, focal / s], -1)
    return r, t


def _interpolate_poses(rot, trans, have):
    """Fill frames where ``have: [N] bool`` is false by interpolating quaternions and translations."""
    if have.all():
        return rot, trans
    idx = np.flatnonzero(have)
    q = matrix_to_quaternion(rot[idx])
    sign = np.concatenate([[1.0], np.cumprod(np.where(np.sum(q[1:] * q[:-1], -1) < 0, -1.0, 1.0))])
    q = q * sign[:, None]
    frames = np.arange(len(have))
    qi = np.stack([np.interp(frames, idx, q[:, j]) for j in range(4)], -1)
    ti = np.stack([np.interp(frames, idx, trans[idx, j]) for j in range(3)], -1)
    out_r = np.where(have[:, None, None], rot, quaternion_to_matrix(qi))
    out_t = np.where(have[:, None], trans, ti)
    return out_r, out_t


def _check_inputs(landmarks, valid, image_size) -> tuple[np.ndarray, np.ndarray, int, int]:
    lm = np.asarray(landmarks)
    if lm.ndim != 3 or lm.shape[1:] != (NUM_LANDMARKS, 3):
        raise DataError(f"head tracker needs landmarks [N, {NUM_LANDMARKS}, 3], got shape {lm.shape}")
    if len(lm) == 0:
        raise DataError("head tracker got no frames (landmarks [0, 478, 3])")
    v = np.asarray(valid)
    if v.shape != (len(lm),):
        raise DataError(f"head tracker needs valid [{len(lm)}] (one flag per frame), got shape {v.shape}")
    try:
        w, h = (int(x) for x in image_size)
    except (TypeError, ValueError) as e:
        raise DataError(f"image_size must be (W, H), got {image_size!r}") from e
    if w <= 0 or h <= 0:
        raise DataError(f"image_size must be positive (W, H), got {image_size!r}")
    return lm.astype(np.float64), v.astype(bool), w, h


# --- the tracker ------------------------------------------------------------------------------------


class LandmarkBATracker:
    """Fits a :class:`HeadTrack` to FaceMesh landmarks (see the module docstring for the method)."""

    def __init__(self, config: LandmarkBAConfig) -> None:
        self.config = config

    def fit(
        self,
        landmarks: np.ndarray,
        valid: np.ndarray,
        image_size: tuple[int, int],
        progress: ProgressFn = no_progress,
        frames: Callable[[], Iterable[np.ndarray]] | None = None,
    ) -> HeadTrack:
        """Track the head.

        ``landmarks: [N, 478, 3] float`` (x, y pixels; z = MediaPipe z times the image width),
        ``valid: [N] bool`` (frames where a face was detected; the others may be interpolated and are
        left out of the shape and focal fit), ``image_size = (W, H)``. ``frames``, when given, returns the
        ``N`` frames (``[H, W, 3]`` uint8 RGB or ``[H, W]`` gray, in order) for the optical flow that ties neighbouring poses
        (``flow_weight``); without them the poses are smoothed. Raises :class:`DataError` for bad shapes,
        non-finite landmarks in valid frames, or fewer than ``min_valid_frames`` valid frames.
        """
        cfg = self.config
        lm, valid, width, height = _check_inputs(landmarks, valid, image_size)
        n = len(lm)
        finite = np.isfinite(lm).all((1, 2))
        if (valid & ~finite).any():
            bad = int(np.flatnonzero(valid & ~finite)[0])
            raise DataError(f"landmarks of valid frame {bad} are not finite (NaN or inf)")
        vidx = np.flatnonzero(valid)
        if len(vidx) < cfg.min_valid_frames:
            raise DataError(f"head tracking needs at least {cfg.min_valid_frames} frames with a detected face, "
                            f"got {len(vidx)} of {n}")
        cx, cy = width / 2.0, height / 2.0
        notes: list[str] = []
        delta = cfg.huber_px
        stage = "head pose"
        use_flow = frames is not None and cfg.flow_weight > 0
        total = (cfg.focal_steps if cfg.focal is None else 0) + 4 + cfg.flow_iterations * use_flow
        done = 0
        progress(stage, done, total)

        # 1. the rigid subset, from a first mean shape
        cand = rigid_candidates()
        mean = _generalized_procrustes(lm[_spread(vidx, cfg.ba_frames)], cand)
        a, q, c = canonical_transform(mean, cand)
        rigid = rigid_landmarks(a * (mean - c) @ q.T)
        tol = cfg.shape_tolerance_mm / 1000.0
        log.debug("head pose: %d valid of %d frames, %d rigid landmarks", len(vidx), n, len(rigid))

        def prior_weight(frames: int) -> float:
            return frames / tol**2

        def kappa_weight(frames: int, d_kappa: np.ndarray) -> float:
            # (kappa - 1)^2 * frames * (per-landmark depth change per unit kappa, mean square) / tol^2
            return frames * float(np.mean(np.sum(d_kappa**2, -1))) / (cfg.depth_tolerance_mm / 1000.0) ** 2

        # 3. focal search on a subset of frames and rigid landmarks
        kappa = 1.0  # depth scale applied to MediaPipe's z
        if cfg.focal is not None:
            focal = float(cfg.focal)
        else:
            sub = _spread(vidx, cfg.search_frames)
            ks = rigid[_spread(np.arange(len(rigid)), cfg.search_landmarks)]
            obs = lm[sub][:, ks, :2]
            side = max(width, height)
            grid = np.geomspace(cfg.focal_range[0] * side, cfg.focal_range[1] * side, cfg.focal_steps)
            costs, kappas = [], []
            lifter = _Lifter(lm[sub], rigid, cx, cy)
            for f in grid:
                s0, _, d_kappa = lifter.prior(f, 1.0, with_focal=False)
                r, t = _weak_perspective_poses(lm[sub], s0, rigid, f, cx, cy)
                r, t = _fit_poses(obs, r, t, s0[ks], f, cx, cy, delta, 4)
                *_, dk, cost = _ba(obs, r, t, s0[ks], s0[ks], prior_weight(len(sub)), f, cx, cy, delta,
                                   cfg.search_iterations, d_kappa=d_kappa[ks],
                                   kappa_w=kappa_weight(len(sub), d_kappa[ks]))
                costs.append(cost)
                kappas.append(1.0 + dk)
                done += 1
                progress(stage, done, total)
            costs_a = np.array(costs)
            ib = int(np.argmin(costs_a))
            log.debug("head pose: focal profile %s",
                      ", ".join(f"{f:.0f}:{c:.6g}" for f, c in zip(grid, costs_a, strict=True)))
            focal, kappa = float(grid[ib]), kappas[ib]
            interior = 0 < ib < len(grid) - 1
            flat = interior and min(costs_a[ib - 1], costs_a[ib + 1]) - costs_a[ib] < cfg.focal_flatness * costs_a[ib]
            if interior and not flat:
                c3 = costs_a[ib - 1:ib + 2]
                den = c3[0] - 2 * c3[1] + c3[2]
                if den > 0:  # vertex of the parabola through the three costs, in log focal
                    step = math.log(grid[1] / grid[0])
                    focal = float(grid[ib] * math.exp(0.5 * step * (c3[0] - c3[2]) / den))
            else:
                log.info("head pose: the best focal (%.0f px) is %s", focal,
                         "in a flat valley of the fit's cost" if flat else
                         f"at the edge of the search range ({cfg.focal_range[0]:g} to {cfg.focal_range[1]:g} x {side} px)")
                notes.append("the camera's focal length is poorly determined by this clip (a distant camera or "
                             "little head rotation); set prep.head_pose.focal if you know it")

        # 4. joint refinement of poses, rigid shape, depth scale and focal on a larger subset; the prior
        # shape is linearised in log focal and depth scale, and once more after a large change
        sub = _spread(vidx, cfg.ba_frames)
        obs = lm[sub][:, rigid, :2]
        fit_focal = cfg.focal is None
        lifter = _Lifter(lm[sub], rigid, cx, cy)
        s0, d_logf, d_kappa = lifter.prior(focal, kappa, with_focal=fit_focal)
        r, t = _weak_perspective_poses(lm[sub], s0, rigid, focal, cx, cy)
        shape_r = s0[rigid]
        r, t = _fit_poses(obs, r, t, shape_r, focal, cx, cy, delta, 5)
        for _ in range(2):
            f_prev = focal
            r, t, shape_r, focal, dk, cost = _ba(
                obs, r, t, shape_r, s0[rigid], prior_weight(len(sub)), focal, cx, cy, delta, cfg.iterations,
                d_logf=d_logf[rigid] if fit_focal else None, d_kappa=d_kappa[rigid],
                kappa_w=kappa_weight(len(sub), d_kappa[rigid]), kappa_offset=kappa - 1.0)
            kappa += dk
            log.debug("head pose: joint fit cost %.6g, focal %.1f -> %.1f px, depth scale %.3f",
                      cost, f_prev, focal, kappa)
            s0, d_logf, d_kappa = lifter.prior(focal, kappa, with_focal=fit_focal)
            if abs(math.log(focal / f_prev)) < 0.3 and abs(dk) < 0.1:
                break
        done += 1
        progress(stage, done, total)

        # 5. every frame's pose, shape and focal fixed
        rot = np.tile(np.eye(3), (n, 1, 1))
        trans = np.zeros((n, 3))
        fidx = np.flatnonzero(finite)
        r, t = _weak_perspective_poses(lm[fidx], s0, rigid, focal, cx, cy)
        rot[fidx], trans[fidx] = _fit_poses(lm[fidx][:, rigid, :2], r, t, shape_r, focal, cx, cy, delta,
                                            cfg.pose_iterations)
        rot, trans = _interpolate_poses(rot, trans, finite)
        done += 1
        progress(stage, done, total)

        # 6. canonical positions of the other landmarks
        others = np.setdiff1d(np.arange(NUM_LANDMARKS), rigid)
        prior = s0
        shape = prior.copy()
        shape[rigid] = shape_r
        shape[others] = _fit_points(lm[sub][:, others, :2], rot[sub], trans[sub], prior[others],
                                    prior_weight(len(sub)), focal, cx, cy, delta)
        done += 1
        progress(stage, done, total)

        # re-express in the canonical frame (the fit may have drifted within the gauge freedom)
        a, q, c = canonical_transform(shape, rigid)
        shape = a * (shape - c) @ q.T
        trans = a * ((rot @ c) + trans)
        rot = rot @ q.T

        # 7. over time: landmarks and optical flow together, or smoothing
        raw_err = _frame_errors(lm, rot, trans, shape, focal, cx, cy, rigid)
        if use_flow:
            from .pose_flow import landmark_flow, refine_poses

            points = lm[:, rigid, :2]
            flow = landmark_flow(frames(), points, cfg.flow_window_px, cfg.flow_check_px, size=(width, height))
            log.debug("head pose: flow found for %.1f %% of the rigid landmarks",
                      100 * float(np.isfinite(flow[1:, :, 0]).mean()) if n > 1 else 0.0)
            done += 1
            progress(stage, done, total)
            base = done

            def step_done(i: int) -> None:
                progress(stage, base + i, total)

            rot, trans = refine_poses(rot, trans, shape[rigid], np.where(valid[:, None, None], points, np.nan),
                                      flow, focal, cx, cy, flow_weight=cfg.flow_weight, huber_px=delta,
                                      flow_huber_px=cfg.flow_huber_px, iterations=cfg.flow_iterations,
                                      progress=step_done)
            done += cfg.flow_iterations
        else:
            weights = np.where(valid, 1.0, np.where(finite, cfg.invalid_weight, 0.0))
            rot = smooth_rotations(rot, cfg.rotation_smoothing, weights)
            trans = smooth_series(trans, cfg.translation_smoothing, weights)
            done += 1
            progress(stage, done, total)

        per_frame = _frame_errors(lm, rot, trans, shape, focal, cx, cy, rigid)
        all_err = _frame_errors(lm, rot, trans, shape, focal, cx, cy, np.arange(NUM_LANDMARKS))
        track = HeadTrack(
            rotation=rot,
            translation=trans,
            focal=float(focal),
            cx=cx,
            cy=cy,
            canonical=shape.astype(np.float32),
            reprojection_error_px=float(per_frame[vidx].mean()),
            reprojection_error_all_px=float(all_err[vidx].mean()),
            per_frame_error_px=per_frame.astype(np.float32),
            notes=tuple(notes),
        )
        log.info("head pose: focal %.0f px, %.1f deg horizontal field of view; MediaPipe depth scale %.2f; "
                 "reprojection error %.2f px on rigid landmarks (%.2f px fitted frame by frame), %.2f px on all",
                 track.focal, math.degrees(2 * math.atan(width / (2 * track.focal))), kappa,
                 track.reprojection_error_px, float(raw_err[vidx].mean()), track.reprojection_error_all_px)
        return track


def _frame_errors(lm, rot, trans, shape, focal, cx, cy, idx) -> np.ndarray:
    """Mean pixel distance per frame over landmarks ``idx``: ``[N]`` (NaN where landmarks are not finite)."""
    uv = project(transform_points(rot, trans, shape[idx]), focal, cx, cy)  # [N, K, 2]
    return np.linalg.norm(uv - lm[:, idx, :2], axis=-1).mean(1)
