"""Head poses that follow the image: optical flow ties each frame's pose to its neighbours'.

MediaPipe places every frame's landmarks on its own, to within about half a pixel at 512 px, and a pose fitted
frame by frame inherits that jitter: on a 71 s news clip the poses of consecutive frames disagreed with the
image's own motion by 0.36 px (median, at the rigid landmarks). A NeRF trained on jittered poses averages the
head over them and draws its outline soft. The image moves more precisely than the landmarks: pyramidal
Lucas-Kanade flow (OpenCV) follows a textured patch to about a tenth of a pixel.

- :func:`landmark_flow`: for every frame, how far the image around each landmark of the previous frame moved
  (forward and backward flow must agree, else the point is left out).
- :func:`refine_poses`: all poses fitted at once to the landmarks (where the head is, without drift) and to the
  flow (how it moved from the frame before), by Gauss-Newton with Huber weights. The flow term ties only
  neighbouring frames, so the normal equations are block-tridiagonal and solved as one banded system.

The flow of a landmark's image point is compared with the motion of the canonical point itself: the two differ
by the landmark's error times the gradient of the motion across the face, which is negligible.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np
from scipy.linalg import solveh_banded

from ..errors import DataError
from ..geometry import matrix_to_axis_angle
from .headpose import _apply_pose_step as apply_pose_step
from .headpose import _linearize as linearize
from .headpose import _robust as robust

#: flow settings are given at 512 px and scaled with the frame
REFERENCE_SIZE = 512


def _pair_flow(prev: np.ndarray, gray: np.ndarray, p: np.ndarray, window_px: float, check_px: float,
               levels: int) -> np.ndarray:
    """Flow ``[K, 2]`` of points ``p [K, 2]`` from gray image ``prev`` into ``gray`` (NaN where not followed)."""
    out = np.full(p.shape, np.nan, np.float32)
    have = np.isfinite(p).all(1)
    if not have.any():
        return out
    scale = gray.shape[1] / REFERENCE_SIZE
    win = max(5, int(round(window_px * scale)) | 1)
    p0 = np.ascontiguousarray(p[have]).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
    q, s1, _ = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, winSize=(win, win), maxLevel=levels, criteria=crit)
    b, s2, _ = cv2.calcOpticalFlowPyrLK(gray, prev, q, None, winSize=(win, win), maxLevel=levels, criteria=crit)
    back = np.linalg.norm((b - p0).reshape(-1, 2), axis=1)
    ok = (s1.ravel() == 1) & (s2.ravel() == 1) & (back < check_px * scale)
    rows = np.flatnonzero(have)
    out[rows[ok]] = (q - p0).reshape(-1, 2)[ok]
    return out


def landmark_flow(frames: Iterable[np.ndarray], points: np.ndarray, window_px: float = 21.0,
                  check_px: float = 0.3, levels: int = 3, workers: int = 2,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """Optical flow of landmark positions from each frame to the next.

    frames: ``N`` images ``[H, W, 3]`` uint8 RGB (or ``[H, W]`` gray), in order; points: ``[N, K, 2]`` pixels
    (NaN: no landmark). Returns ``[N, K, 2]`` float32: row ``k`` is the displacement of the image at
    ``points[k - 1]`` into frame ``k``; NaN in row 0, where a point was not found or has no landmark, and where the
    flow backward misses the start by more than ``check_px``. ``window_px`` and ``check_px`` are
    for a 512 px frame and scale with the frame's width. Pairs of frames are followed on ``workers`` threads.
    Raises :class:`DataError` when fewer than ``N`` frames come, or (``size`` = (W, H) given) one of another size.
    """
    points = np.asarray(points, np.float32)
    n, k = points.shape[:2]
    out = np.full((n, k, 2), np.nan, np.float32)
    pending: deque[tuple[int, Future]] = deque()
    prev = None
    count = 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i, frame in enumerate(frames):
            if i >= n:
                break
            count += 1
            gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            if size is not None and gray.shape[::-1] != tuple(size):
                raise DataError(f"frame {i} is {gray.shape[1]}x{gray.shape[0]}, the landmarks are for "
                                f"{size[0]}x{size[1]}")
            if prev is not None:
                pending.append((i, pool.submit(_pair_flow, prev, gray, points[i - 1], window_px, check_px, levels)))
            while len(pending) > 2 * max(1, workers):  # bounded: frames wait in memory only this long
                j, fut = pending.popleft()
                out[j] = fut.result()
            prev = gray
        for j, fut in pending:
            out[j] = fut.result()
    if count < n:
        raise DataError(f"the optical flow got {count} frames for {n} frames of landmarks")
    return out


def _banded(diag: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The upper band of a symmetric block-tridiagonal matrix, in :func:`scipy.linalg.solveh_banded`'s layout.

    diag: ``[N, B, B]`` blocks on the diagonal; upper: ``[N - 1, B, B]`` blocks right of them.
    Returns ``[2 B, N B]``."""
    n, b = diag.shape[:2]
    u = 2 * b - 1
    ab = np.zeros((u + 1, n * b))
    base = np.arange(n)[:, None, None] * b
    i = np.arange(b)[None, :, None]
    j = np.arange(b)[None, None, :]
    for blocks, col_off in ((diag, 0), (upper, b)):
        m = len(blocks)
        r = np.broadcast_to(base[:m] + i, (m, b, b))
        c = np.broadcast_to(base[:m] + col_off + j, (m, b, b))
        keep = r <= c
        ab[u + r[keep] - c[keep], c[keep]] = blocks[keep]
    return ab


#: frames that nothing ties to a landmark are held to their starting pose with this share of a typical frame's
#: weight (its landmark and flow terms, per pose parameter)
HOLD = 0.01
#: a frame's landmarks, or the flow from the frame before, fix its pose when they have at least this many points
MIN_POINTS = 3


def _unanchored(have_obs: np.ndarray, have_flow: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the frames of runs linked by flow (each pair by ``MIN_POINTS`` or more points) in which no frame
    has ``MIN_POINTS`` landmarks: nothing fixes where they are. have_obs, have_flow: ``[N, K]`` bool."""
    anchored = have_obs.sum(1) >= MIN_POINTS
    linked = have_flow.sum(1) >= MIN_POINTS  # [N]: frame k to k - 1
    run = np.cumsum(~linked)  # run id: a new run starts where a frame is not linked to the one before
    has_anchor = np.bincount(run, weights=anchored, minlength=run.max() + 1) > 0
    return ~has_anchor[run]


def _translation_params(trans: np.ndarray) -> np.ndarray:
    """``[M, 3]`` translations as the ``(a, b, rho)`` of :func:`syncanim.face.headpose._apply_pose_step`:
    ``t = exp(rho) (a, b, 1)``."""
    return np.concatenate([trans[:, :2] / trans[:, 2:3], np.log(trans[:, 2:3])], -1)


def refine_poses(rot: np.ndarray, trans: np.ndarray, shape: np.ndarray, obs: np.ndarray, flow: np.ndarray,
                 focal: float, cx: float, cy: float, *, flow_weight: float = 10.0, huber_px: float = 3.0,
                 flow_huber_px: float = 1.0, iterations: int = 4, chunk: int = 1024,
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Poses fitted to landmarks and flow together.

    rot: ``[N, 3, 3]``, trans: ``[N, 3]`` (the start, canonical -> camera); shape: ``[K, 3]`` canonical points;
    obs: ``[N, K, 2]`` their landmarks in pixels (NaN: none, that frame then rests on the flow alone); flow:
    ``[N, K, 2]`` from :func:`landmark_flow` (row ``k``: motion from frame ``k - 1``). Cost, in squared
    pixels: the Huber loss (``huber_px``) of every landmark's reprojection error, plus ``flow_weight`` times
    the Huber loss (``flow_huber_px``) of the difference between each point's projected motion from frame
    ``k - 1`` to ``k`` and its flow, plus a weak pull (:data:`HOLD`) back to their starting pose for frames that
    neither landmarks nor a chain of flow to landmarks fix (a cutaway without a face). Returns ``(rot, trans)``.
    """
    rot, trans = np.array(rot, np.float64), np.array(trans, np.float64)
    shape = np.asarray(shape, np.float64)
    n = len(rot)
    have_obs = np.isfinite(obs).all(-1)  # [N, K]
    obs = np.where(have_obs[..., None], obs, 0.0)
    have_flow = np.isfinite(flow).all(-1)
    have_flow[0] = False
    flow = np.where(have_flow[..., None], flow, 0.0)
    hold = _unanchored(have_obs, have_flow)  # [N]
    rot0, ab0 = rot.copy(), _translation_params(trans)
    for it in range(iterations):
        hd = np.zeros((n, 6, 6))
        ho = np.zeros((max(n - 1, 0), 6, 6))
        g = np.zeros((n, 6))
        prev_p = prev_j = None
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            err, w, _, jac, _, _ = linearize(obs[s:e], rot[s:e], trans[s:e], shape, focal, cx, cy, huber_px,
                                             want_shape=False)
            w = w * have_obs[s:e]
            hd[s:e] += np.einsum("nkai,nk,nkaj->nij", jac, w, jac)
            g[s:e] += np.einsum("nkai,nk,nka->ni", jac, w, err)
            proj = err + obs[s:e]  # [m, K, 2] projections
            if prev_p is not None:  # the pair that straddles the chunks
                proj = np.concatenate([prev_p, proj])
                jac = np.concatenate([prev_j, jac])
                first = s - 1
            else:
                first = s
            if len(proj) > 1:
                k1 = np.arange(first + 1, e)  # frames whose flow from the one before is scored
                res = proj[1:] - proj[:-1] - flow[k1]  # [m, K, 2]
                _, fw = robust(res, flow_huber_px)
                fw = fw * have_flow[k1] * flow_weight
                ja, jb = jac[:-1], jac[1:]
                hd[k1] += np.einsum("nkai,nk,nkaj->nij", jb, fw, jb)
                hd[k1 - 1] += np.einsum("nkai,nk,nkaj->nij", ja, fw, ja)
                ho[k1 - 1] -= np.einsum("nkai,nk,nkaj->nij", ja, fw, jb)
                g[k1] += np.einsum("nkai,nk,nka->ni", jb, fw, res)
                g[k1 - 1] -= np.einsum("nkai,nk,nka->ni", ja, fw, res)
            prev_p, prev_j = proj[-1:], jac[-1:]
        diag = np.diagonal(hd, axis1=1, axis2=2)  # [N, 6]
        if hold.any():
            seen = diag[~hold] if (~hold).any() else diag
            mu = HOLD * np.median(seen, axis=0) + 1e-9  # [6], per parameter
            d = np.concatenate([matrix_to_axis_angle(rot[hold] @ np.swapaxes(rot0[hold], 1, 2)),
                                _translation_params(trans[hold]) - ab0[hold]], -1)  # [H, 6] from the start
            hd[hold] += mu[:, None] * np.eye(6)
            g[hold] += mu * d
        hd += (1e-6 * float(np.mean(diag)) + 1e-9) * np.eye(6)  # a little damping
        step = -solveh_banded(_banded(hd, ho), g.ravel(), check_finite=False).reshape(n, 6)
        rot, trans = apply_pose_step(rot, trans, step)
        if progress is not None:
            progress(it + 1)
    return rot, trans
