"""Rotations, rigid and similarity transforms, and pinhole projection: pure numpy functions.

Conventions used throughout syncanim:

- **Camera** (OpenCV): x right, y down, z forward (into the scene). A point ``X`` in a model frame maps to
  the camera as ``X_cam = R @ X + t``; ``(R, t)`` is the model's *pose* (model -> camera).
- **Projection**: ``u = f * X / Z + cx``, ``v = f * Y / Z + cy`` in pixels, origin at the top-left corner
  of the image, usually ``cx, cy = W / 2, H / 2``.
- **NeRF cameras** (OpenGL): x right, y up, z backward. ``OPENCV_TO_OPENGL`` flips y and z; a camera-to-world
  matrix in the OpenGL convention is ``c2w_cv @ diag(1, -1, -1, 1)``.
- **Canonical head frame** (the model frame of head poses, see ``syncanim.prep.headpose``): origin at the
  centroid of the rigid face landmarks; axes aligned with the camera when the face looks straight into it
  (x towards image right, i.e. from the subject's right eye to the left eye, y down, z away from the
  camera); scale such that the outer eye corners (FaceMesh landmarks 33 and 263) are 0.09 apart, so units
  are close to metres.
- **Axis-angle** (rotation vector): direction = axis, norm = angle in radians (right-hand rule).
- **Quaternions**: ``[w, x, y, z]`` (scalar first), unit norm; functions returning quaternions pick ``w >= 0``.
- **Euler angles**: ``[a, b, c]`` in radians about x, y, z, composed as ``R = Rz(c) @ Ry(b) @ Rx(a)``
  (extrinsic x, then y, then z). With the camera convention above, for a head facing the camera
  ``a`` is pitch, ``b`` yaw and ``c`` roll.

Shapes: ``...`` is any number of leading batch dimensions; ``N`` points. Functions accept float arrays and
compute in float64.
"""

from __future__ import annotations

import math

import numpy as np

#: [3, 3] maps OpenCV camera axes (x right, y down, z forward) to OpenGL ones (x right, y up, z backward).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])

_EPS = 1e-12


def _check_last(name: str, a: np.ndarray, dims: tuple[int, ...]) -> None:
    if a.shape[a.ndim - len(dims):] != dims or a.ndim < len(dims):
        raise ValueError(f"{name} must be [..., {', '.join(map(str, dims))}], got shape {a.shape}")


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices: ``skew(v) @ w == cross(v, w)``. ``v: [..., 3]`` -> ``[..., 3, 3]``."""
    v = np.asarray(v, dtype=np.float64)
    _check_last("v", v, (3,))
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([
        np.stack([z, -w, y], -1),
        np.stack([w, z, -x], -1),
        np.stack([-y, x, z], -1),
    ], -2)


# --- axis-angle -------------------------------------------------------------------------------------


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula. ``rotvec: [..., 3]`` (radians) -> ``[..., 3, 3]`` rotation matrices."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    _check_last("rotvec", rotvec, (3,))
    theta2 = np.sum(rotvec * rotvec, -1)[..., None, None]  # [..., 1, 1]
    theta = np.sqrt(theta2)
    small = theta2 < 1e-8
    safe2 = np.where(small, 1.0, theta2)
    safe = np.where(small, 1.0, theta)
    # Taylor series below ~1e-4 rad keep both coefficients accurate to float64 precision.
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(safe)) / safe2)
    k = skew(rotvec)
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Inverse of :func:`axis_angle_to_matrix`, angle in ``[0, pi]``. ``[..., 3, 3]`` -> ``[..., 3]``.

    Goes through the quaternion, which stays accurate near 0 and near pi.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


# --- quaternions ------------------------------------------------------------------------------------


def quaternion_to_matrix(quat: np.ndarray) -> np.ndarray:
    """``quat: [..., 4]`` as ``[w, x, y, z]`` (normalised here) -> ``[..., 3, 3]``."""
    q = np.asarray(quat, dtype=np.float64)
    _check_last("quat", q, (4,))
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` ``[w, x, y, z]`` with ``w >= 0``.

    Computes all four candidate solutions and keeps, per matrix, the one with the largest pivot
    (numerically stable for every rotation).
    """
    m = np.asarray(matrix, dtype=np.float64)
    _check_last("matrix", m, (3, 3))
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * q_i^2 for i in (w, x, y, z)
    sq = np.stack([
        1.0 + m00 + m11 + m22,
        1.0 + m00 - m11 - m22,
        1.0 - m00 + m11 - m22,
        1.0 - m00 - m11 + m22,
    ], -1)  # [..., 4]
    cands = np.stack([
        np.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        np.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], -1),
        np.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], -1),
        np.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], -1),
    ], -2)  # [..., 4 candidates, 4]
    best = np.argmax(sq, -1)  # [...]
    q = np.take_along_axis(cands, best[..., None, None], -2)[..., 0, :]  # [..., 4]
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """``[..., 4]`` ``[w, x, y, z]`` -> rotation vectors ``[..., 3]`` with angle in ``[0, pi]``."""
    q = np.asarray(quat, dtype=np.float64)
    _check_last("quat", q, (4,))
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    q = np.where(q[..., :1] < 0, -q, q)
    s = np.linalg.norm(q[..., 1:], axis=-1)  # sin(theta / 2)
    angle = 2.0 * np.arctan2(s, q[..., 0])
    small = s < 1e-8
    scale = np.where(small, 2.0 / np.maximum(q[..., 0], _EPS), angle / np.where(small, 1.0, s))
    return q[..., 1:] * scale[..., None]


def axis_angle_to_quaternion(rotvec: np.ndarray) -> np.ndarray:
    """``[..., 3]`` -> ``[..., 4]`` ``[w, x, y, z]`` (``w >= 0`` for angles up to pi)."""
    r = np.asarray(rotvec, dtype=np.float64)
    _check_last("rotvec", r, (3,))
    theta = np.linalg.norm(r, axis=-1, keepdims=True)
    small = theta < 1e-8
    k = np.where(small, 0.5 - theta**2 / 48.0, np.sin(theta / 2) / np.where(small, 1.0, theta))
    return np.concatenate([np.cos(theta / 2), r * k], -1)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (rotation ``b`` first, then ``a``). ``[..., 4]`` each -> ``[..., 4]``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


# --- Euler angles -----------------------------------------------------------------------------------


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """``angles: [..., 3]`` = ``[a, b, c]`` radians -> ``R = Rz(c) @ Ry(b) @ Rx(a)``, ``[..., 3, 3]``."""
    e = np.asarray(angles, dtype=np.float64)
    _check_last("angles", e, (3,))
    ca, sa = np.cos(e[..., 0]), np.sin(e[..., 0])
    cb, sb = np.cos(e[..., 1]), np.sin(e[..., 1])
    cc, sc = np.cos(e[..., 2]), np.sin(e[..., 2])
    return np.stack([
        np.stack([cb * cc, sa * sb * cc - ca * sc, ca * sb * cc + sa * sc], -1),
        np.stack([cb * sc, sa * sb * sc + ca * cc, ca * sb * sc - sa * cc], -1),
        np.stack([-sb, sa * cb, ca * cb], -1),
    ], -2)


def matrix_to_euler(matrix: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix`: ``[..., 3, 3]`` -> ``[a, b, c]`` with ``b`` in ``[-pi/2, pi/2]``.

    At gimbal lock (``|b| = pi/2``) only ``a - c`` (or ``a + c``) is defined; ``c = 0`` is returned there.
    """
    m = np.asarray(matrix, dtype=np.float64)
    _check_last("matrix", m, (3, 3))
    sb = np.clip(-m[..., 2, 0], -1.0, 1.0)
    b = np.arcsin(sb)
    cb = np.sqrt(m[..., 0, 0] ** 2 + m[..., 1, 0] ** 2)
    lock = cb < 1e-9
    a = np.where(lock, np.arctan2(-m[..., 1, 2], m[..., 1, 1]), np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    c = np.where(lock, 0.0, np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    return np.stack([a, b, c], -1)


# --- rotation utilities -----------------------------------------------------------------------------


def rotation_angle(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Geodesic angle in radians of ``a`` (or of ``a^T @ b``, the rotation between ``a`` and ``b``).

    ``a, b: [..., 3, 3]`` -> ``[...]``.
    """
    a = np.asarray(a, dtype=np.float64)
    rel = a if b is None else np.swapaxes(a, -1, -2) @ np.asarray(b, dtype=np.float64)
    return np.linalg.norm(matrix_to_axis_angle(rel), axis=-1)


def project_to_rotation(matrix: np.ndarray) -> np.ndarray:
    """The nearest rotation (Frobenius norm) to each ``[..., 3, 3]`` matrix, via SVD."""
    m = np.asarray(matrix, dtype=np.float64)
    _check_last("matrix", m, (3, 3))
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


# --- transforms and projection ----------------------------------------------------------------------


def transform_points(rotation: np.ndarray, translation: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``R @ X + t`` for every point. ``rotation: [..., 3, 3]``, ``translation: [..., 3]``,
    ``points: [..., N, 3]`` -> ``[..., N, 3]`` (leading dimensions broadcast)."""
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    x = np.asarray(points, dtype=np.float64)
    return x @ np.swapaxes(r, -1, -2) + t[..., None, :]


def project(points: np.ndarray, focal: float | np.ndarray, cx: float, cy: float) -> np.ndarray:
    """Pinhole projection of camera-frame points. ``points: [..., N, 3]`` (``Z > 0``) -> ``[..., N, 2]`` pixels.

    ``focal`` is a scalar or broadcasts against ``[...]``.
    """
    x = np.asarray(points, dtype=np.float64)
    _check_last("points", x, (3,))
    f = np.asarray(focal, dtype=np.float64)[..., None]
    z = x[..., 2]
    return np.stack([f * x[..., 0] / z + cx, f * x[..., 1] / z + cy], -1)


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``[[R, t], [0, 1]]``. ``rotation: [..., 3, 3]``, ``translation: [..., 3]`` -> ``[..., 4, 4]``."""
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    out = np.zeros(r.shape[:-2] + (4, 4))
    out[..., :3, :3] = r
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def invert_rigid(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of ``X -> R @ X + t``: ``(R^T, -R^T @ t)``. ``[..., 3, 3]``, ``[..., 3]`` -> same shapes."""
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    rt = np.swapaxes(r, -1, -2)
    return rt, -(rt @ t[..., None])[..., 0]


def camera_to_world_opengl(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """NeRF camera-to-world matrices from model poses.

    ``(R, t)`` map model -> OpenCV camera. The result maps OpenGL camera coordinates (x right, y up,
    z backward) to the model frame: ``[[R^T @ F, -R^T @ t], [0, 1]]`` with ``F = diag(1, -1, -1)``.
    ``rotation: [..., 3, 3]``, ``translation: [..., 3]`` -> ``[..., 4, 4]``.
    """
    rt, tinv = invert_rigid(rotation, translation)
    return pose_matrix(rt @ OPENCV_TO_OPENGL, tinv)


# --- Procrustes -------------------------------------------------------------------------------------


def procrustes(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
    with_scale: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama / Kabsch with scale) taking ``source`` onto ``target``.

    Minimises ``sum_k w_k |s * R @ source_k + t - target_k|^2`` over a proper rotation ``R``
    (``det R = +1``), a scale ``s > 0`` (fixed to 1 when ``with_scale`` is false) and ``t``.

    ``source, target: [..., N, 3]`` (N >= 3, leading dimensions broadcast), ``weights: [N]`` or ``[..., N]``
    non-negative. Returns ``(s: [...], R: [..., 3, 3], t: [..., 3])``.
    """
    src = np.asarray(source, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    _check_last("source", src, (3,))
    _check_last("target", tgt, (3,))
    if src.shape[-2] != tgt.shape[-2] or src.shape[-2] < 3:
        raise ValueError(f"procrustes needs the same N >= 3 points, got {src.shape} and {tgt.shape}")
    n = src.shape[-2]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape[-1] != n:
        raise ValueError(f"weights must be [..., {n}], got shape {w.shape}")
    w = w / np.maximum(w.sum(-1, keepdims=True), _EPS)  # [..., N]
    mu_s = np.sum(w[..., None] * src, -2)  # [..., 3]
    mu_t = np.sum(w[..., None] * tgt, -2)
    sc = src - mu_s[..., None, :]
    tc = tgt - mu_t[..., None, :]
    cov = np.swapaxes(tc * w[..., None], -1, -2) @ sc  # [..., 3, 3]  sum_k w_k t_k s_k^T
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    dvec = np.ones(sig.shape)
    dvec[..., 2] = d
    rot = (u * dvec[..., None, :]) @ vt
    if with_scale:
        var_s = np.sum(w * np.sum(sc * sc, -1), -1)  # [...]
        scale = np.sum(sig * dvec, -1) / np.maximum(var_s, _EPS)
    else:
        scale = np.ones(rot.shape[:-2])
    trans = mu_t - scale[..., None] * (rot @ mu_s[..., None])[..., 0]
    return scale, rot, trans


# --- temporal smoothing -----------------------------------------------------------------------------


def smooth_series(values: np.ndarray, sigma: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Gaussian-weighted local linear regression along axis 0.

    Each output sample is the value at ``t`` of the straight line fitted by weighted least squares to the
    samples within 4 sigma, weighted by ``exp(-(j - t)^2 / (2 sigma^2)) * w_j``. Away from the ends and
    gaps this equals a Gaussian moving average; near them, a linear trend is kept without bias (a plain
    average would pull the ends towards the inside). ``values: [T, D]`` or ``[T]``, ``sigma`` in samples
    (``<= 0`` returns a copy), ``weights: [T]`` >= 0 (low-weight samples borrow from their neighbours).
    """
    x = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    n = len(x)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must be [{n}], got shape {w.shape}")
    r = max(1, int(np.ceil(4.0 * sigma)))
    shape = (-1,) + (1,) * (x.ndim - 1)
    # moments of the kernel-weighted samples around each t: S_p = sum k w (j-t)^p, T_p = sum k w (j-t)^p x
    s0, s1, s2 = np.zeros(n), np.zeros(n), np.zeros(n)
    t0, t1 = np.zeros(x.shape), np.zeros(x.shape)
    for d in range(-r, r + 1):
        lo, hi = max(0, -d), min(n, n - d)  # t in [lo, hi) has a sample at j = t + d
        if lo >= hi:
            continue
        kw = math.exp(-0.5 * (d / sigma) ** 2) * w[lo + d:hi + d]
        s0[lo:hi] += kw
        s1[lo:hi] += kw * d
        s2[lo:hi] += kw * d * d
        t0[lo:hi] += kw.reshape(shape) * x[lo + d:hi + d]
        t1[lo:hi] += (kw * d).reshape(shape) * x[lo + d:hi + d]
    det = s0 * s2 - s1 * s1
    ok_lin = det > 1e-9 * np.maximum(s0 * s2, _EPS)
    lin = (s2.reshape(shape) * t0 - s1.reshape(shape) * t1) / np.where(ok_lin, det, 1.0).reshape(shape)
    const = t0 / np.maximum(s0, _EPS).reshape(shape)
    out = np.where(ok_lin.reshape(shape), lin, const)
    return np.where((s0 > _EPS).reshape(shape), out, x)


def smooth_rotations(rotation: np.ndarray, sigma: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Gaussian smoothing of a rotation sequence in quaternion space.

    Quaternion signs are made continuous along time, each component is smoothed with
    :func:`smooth_series`, and the result is renormalised (a good approximation of the rotation mean for
    the small angular spread inside one kernel). ``rotation: [T, 3, 3]`` -> ``[T, 3, 3]``.
    """
    r = np.asarray(rotation, dtype=np.float64)
    _check_last("rotation", r, (3, 3))
    if sigma <= 0 or len(r) < 2:
        return r.copy()
    q = matrix_to_quaternion(r)  # [T, 4]
    # flip signs so neighbouring quaternions lie in the same hemisphere
    flips = np.sign(np.sum(q[1:] * q[:-1], -1))
    flips = np.where(flips == 0, 1.0, flips)
    sign = np.concatenate([[1.0], np.cumprod(flips)])
    q = q * sign[:, None]
    qs = smooth_series(q, sigma, weights)
    return quaternion_to_matrix(qs)
