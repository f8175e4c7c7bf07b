"""Mouth shape from MediaPipe FaceMesh landmarks: the opening the lip-sync figures measure, and a compact
code of the whole mouth that the head is conditioned on.

- **Opening** (:func:`mouth_opening`): the 3-D distance between the inner-lip points 13 and 14 over the
  distance between the outer eye corners 33 and 263. It does not change with head rotation (x, y and
  MediaPipe's weak-perspective z share one scale) nor with the distance to the camera.
- **Aligned mouth** (:func:`aligned_mouth`): the lip and jaw points of every frame, moved by the
  similarity transform (Umeyama) that best maps the frame's rigid anchor points (eye corners, nose,
  forehead, temples) onto their mean configuration over the clip, in units of the eye-corner
  distance. What remains is the mouth's own motion, without head pose.
- **Mouth code** (:class:`MouthBasis`): the leading principal components of the aligned points over
  a subject's training frames, each divided by its standard deviation (unit spread per component).

All functions are pure (numpy in, numpy out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_LANDMARKS = 478
INNER_LIPS = (13, 14)
EYE_CORNERS = (33, 263)  # outer corners (subject's right eye, left eye)
#: FaceMesh lip points (outer and inner contours)
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)
#: the lower face outline from ear to ear under the chin: the jaw opens with the mouth
JAW = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)
MOUTH_POINTS = LIPS + JAW
#: points that move with the skull, not with the mouth, eyes or brows
ANCHORS = (33, 133, 263, 362, 1, 4, 5, 6, 168, 197, 195, 10, 151, 9, 8, 234, 454, 127, 356, 93, 323)


def _check(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[1] != NUM_LANDMARKS or p.shape[2] != 3:
        raise ValueError(f"landmarks must be [N, {NUM_LANDMARKS}, 3], got {p.shape}")
    return p


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over eye-corner distance (3-D). ``points: [N, 478, 3] float`` -> ``[N] float64``
    (NaN where the frame's landmarks are NaN)."""
    p = _check(points)
    gap = np.linalg.norm(p[:, INNER_LIPS[0]] - p[:, INNER_LIPS[1]], axis=-1)  # [N]
    scale = np.linalg.norm(p[:, EYE_CORNERS[0]] - p[:, EYE_CORNERS[1]], axis=-1)  # [N]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, gap / scale, np.nan)


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity transforms (Umeyama) mapping each ``src[n]`` onto ``dst``.

    src: ``[N, K, 3]``, dst: ``[K, 3]`` -> scale ``[N]``, rotation ``[N, 3, 3]`` (det +1), translation
    ``[N, 3]`` such that ``scale * R @ src[n, k] + t ~ dst[k]``.
    """
    mu_s = src.mean(1, keepdims=True)  # [N, 1, 3]
    mu_d = dst.mean(0)  # [3]
    a, b = src - mu_s, dst - mu_d  # [N, K, 3], [K, 3]
    cov = np.einsum("kj,nki->nji", b, a) / src.shape[1]  # [N, 3, 3]: dst x src^T
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))  # [N]
    fix = np.ones((len(src), 3))
    fix[:, 2] = d
    rot = u @ (fix[:, :, None] * vt)  # [N, 3, 3]
    var = (a ** 2).sum((1, 2)) / src.shape[1]  # [N]
    scale = (s * fix).sum(1) / np.maximum(var, 1e-12)
    trans = mu_d - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s[:, 0])
    return scale, rot, trans


def _normalised(shape: np.ndarray) -> np.ndarray:
    """A configuration of ANCHORS ``[A, 3]`` centred, at unit eye-corner distance."""
    eye = np.linalg.norm(shape[ANCHORS.index(EYE_CORNERS[0])] - shape[ANCHORS.index(EYE_CORNERS[1])])
    return (shape - shape.mean(0)) / max(float(eye), 1e-12)


def mean_shape(anchors: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Generalised Procrustes mean of anchor configurations ``[N, A, 3]`` -> ``[A, 3]``: centred, unit
    eye-corner distance. Starts from the first frame; each round aligns every frame to the current
    mean and averages."""
    ref = _normalised(anchors[0])
    for _ in range(iterations):
        s, r, t = similarity_transforms(anchors, ref)
        moved = s[:, None, None] * np.einsum("nij,nkj->nki", r, anchors) + t[:, None, :]  # [N, A, 3]
        ref = _normalised(moved.mean(0))
    return ref


def aligned_mouth(points: np.ndarray, reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lip and jaw points with head pose and distance removed (module doc).

    points: ``[N, 478, 3]`` (frames with NaN landmarks give NaN rows); reference: ``[len(ANCHORS), 3]``
    anchor configuration to align to (default: the Procrustes mean over the frames with a face,
    :func:`mean_shape`). Returns ``(mouth [N, len(MOUTH_POINTS), 3] float64``
    in eye-corner units, ``reference)``.
    """
    p = _check(points)
    ok = np.isfinite(p).all((1, 2))
    anchors = p[:, list(ANCHORS)]  # [N, A, 3]
    if reference is None:
        if not ok.any():
            raise ValueError("aligned_mouth: no frame has landmarks")
        reference = mean_shape(anchors[ok])
    out = np.full((len(p), len(MOUTH_POINTS), 3), np.nan)
    if ok.any():
        s, r, t = similarity_transforms(anchors[ok], reference)
        pts = p[ok][:, list(MOUTH_POINTS)]  # [M, K, 3]
        out[ok] = s[:, None, None] * np.einsum("nij,nkj->nki", r, pts) + t[:, None, :]
    return out, np.asarray(reference, dtype=np.float64)


@dataclass(frozen=True)
class MouthBasis:
    """A subject's mouth code: ``code = (components @ (flat - mean)) / scale``.

    mean: ``[K*3]``; components: ``[C, K*3]`` (orthonormal rows); scale: ``[C]`` standard deviation of
    each component over the frames it was fitted on; weight: ``[C]`` each component's share of the
    variance the code explains (sums to 1); reference: ``[len(ANCHORS), 3]`` the anchor configuration
    the points were aligned to.
    """

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    reference: np.ndarray

    @property
    def size(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, points: np.ndarray, max_components: int = 8, variance: float = 0.97) -> MouthBasis:
        """PCA of the aligned mouth of ``points: [N, 478, 3]`` (frames with a face): the fewest
        components (at most ``max_components``, at least 1) that explain ``variance`` of it."""
        mouth, ref = aligned_mouth(points)
        flat = mouth.reshape(len(mouth), -1)
        flat = flat[np.isfinite(flat).all(1)]
        if len(flat) < 2:
            raise ValueError("MouthBasis.fit: needs at least two frames with a face")
        mean = flat.mean(0)
        _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
        var = s ** 2
        share = np.cumsum(var) / max(var.sum(), 1e-12)
        c = int(min(max_components, max(1, np.searchsorted(share, variance) + 1), len(var)))
        scale = s[:c] / np.sqrt(len(flat))
        return cls(mean, vt[:c], np.maximum(scale, 1e-9), var[:c] / var[:c].sum(), ref)

    def encode(self, points: np.ndarray) -> np.ndarray:
        """``points: [N, 478, 3]`` -> codes ``[N, C] float32`` (NaN rows where a frame has no face)."""
        mouth, _ = aligned_mouth(points, self.reference)
        flat = mouth.reshape(len(mouth), -1)
        return (((flat - self.mean) @ self.components.T) / self.scale).astype(np.float32)

    def decode(self, code: np.ndarray) -> np.ndarray:
        """codes ``[N, C]`` -> aligned mouth points ``[N, len(MOUTH_POINTS), 3] float64`` (eye-corner units)."""
        flat = (np.asarray(code, np.float64) * self.scale) @ self.components + self.mean
        return flat.reshape(len(flat), len(MOUTH_POINTS), 3)

    def opening(self, code: np.ndarray, shown: bool = False) -> np.ndarray:
        """The mouth opening (:func:`mouth_opening`) of the shape each code describes: ``[N, C]`` -> ``[N]``.

        A code can move the inner lips past each other (a predicted code beyond the subject's closed mouth): their
        distance then reads as an opening. With ``shown``, such a mouth counts as closed (0), as a picture of it
        would show: the inner-lip gap pointing against the subject's average mouth's."""
        pts = self.decode(code)
        a, b = MOUTH_POINTS.index(INNER_LIPS[0]), MOUTH_POINTS.index(INNER_LIPS[1])
        ref = self.reference
        eye = np.linalg.norm(ref[ANCHORS.index(EYE_CORNERS[0])] - ref[ANCHORS.index(EYE_CORNERS[1])])
        gap = pts[:, a] - pts[:, b]  # [N, 3]
        out = np.linalg.norm(gap, axis=-1) / eye
        if shown:
            mean = self.mean.reshape(len(MOUTH_POINTS), 3)
            out = np.where(gap @ (mean[a] - mean[b]) < 0, 0.0, out)
        return out

    def opening_direction(self) -> np.ndarray:
        """How the mouth opening (:meth:`opening`) changes with each component of the code at the subject's average
        mouth, in eye-corner units per unit of the component -> ``[C]`` (the opening is nearly linear in the code
        while the lips do not cross)."""
        a, b = MOUTH_POINTS.index(INNER_LIPS[0]), MOUTH_POINTS.index(INNER_LIPS[1])
        ref = self.reference
        eye = np.linalg.norm(ref[ANCHORS.index(EYE_CORNERS[0])] - ref[ANCHORS.index(EYE_CORNERS[1])])
        mean = self.mean.reshape(len(MOUTH_POINTS), 3)
        gap = mean[a] - mean[b]
        u = gap / max(float(np.linalg.norm(gap)), 1e-12)  # [3]
        comp = self.components.reshape(self.size, len(MOUTH_POINTS), 3)
        return self.scale * ((comp[:, a] - comp[:, b]) @ u) / eye

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "components": self.components, "scale": self.scale, "weight": self.weight,
                "reference": self.reference}
