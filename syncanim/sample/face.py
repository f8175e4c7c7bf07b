"""Animate one still face photo: jaw drop with a mouth cavity, eyelid blinks, and head motion.

Every function here is pure: an image and a few numbers in, a new image out. Each effect is a
backward warp (``cv2.remap``) through a smooth displacement field, so skin, lips and hair keep their
texture instead of being covered by drawn shapes. The only drawn pixels are the mouth cavity, which
fills the gap that opens between the upper teeth and the lowered lower lip.

Coordinates are pixels of the image given, x to the right and y down. ``ASTRONAUT`` holds the
geometry of ``skimage.data.astronaut()`` at 512x512; ``FaceGeometry.scaled`` adapts it to a resized copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class MouthGeometry:
    """Where the mouth opens and how far the jaw motion reaches.

    The mouth opens along the *split curve*: the line between the upper teeth and the lower lip. It
    runs from corner to corner and sags ``depth`` pixels below the corner-to-corner chord at the
    middle. Everything below it moves down with the jaw; the amount falls off towards the corners
    (where it is 0), widens to ``jaw_half_width`` at the chin, and fades out ``neck_fade`` pixels below it.
    """

    left: Point  # mouth corner on the image's left
    right: Point  # mouth corner on the image's right
    depth: float  # split curve below the chord at the middle
    jaw_half_width: float  # half width of the moving region at chin height
    chin_y: float
    chin_follow: float  # share of the lower lip's drop that the chin follows
    neck_fade: float  # below the chin, the drop fades to 0 over this many pixels

    @property
    def center_x(self) -> float:
        return 0.5 * (self.left[0] + self.right[0])

    @property
    def half_width(self) -> float:
        return 0.5 * abs(self.right[0] - self.left[0])


@dataclass(frozen=True)
class EyeGeometry:
    """An eye opening: two corners, the upper lid ``lid_height`` above the corner chord at the middle,
    the lower lid ``lower_depth`` below it. ``skin_height`` pixels of lid skin above the upper lid are
    stretched down over the eye when it closes."""

    outer: Point
    inner: Point
    lid_height: float
    lower_depth: float
    skin_height: float


@dataclass(frozen=True)
class FaceGeometry:
    """Everything the animation needs to know about one photo."""

    mouth: MouthGeometry
    left_eye: EyeGeometry  # the eye on the image's left
    right_eye: EyeGeometry
    max_opening_px: float  # lower-lip drop at mouth opening 1
    head_center: Point  # centre of the region that moves with the head (face and hair)
    head_axes: Point  # half axes of that region (an ellipse); motion fades out to 1.5x of it
    head_pivot: Point  # head rotation is about this point (the neck)

    def scaled(self, s: float) -> FaceGeometry:
        """The same geometry for the photo resized by factor ``s``."""

        def p(q: Point) -> Point:
            return (q[0] * s, q[1] * s)

        m = self.mouth
        mouth = replace(m, left=p(m.left), right=p(m.right), depth=m.depth * s, jaw_half_width=m.jaw_half_width * s,
                        chin_y=m.chin_y * s, neck_fade=m.neck_fade * s)

        def eye(e: EyeGeometry) -> EyeGeometry:
            return EyeGeometry(p(e.outer), p(e.inner), e.lid_height * s, e.lower_depth * s, e.skin_height * s)

        return FaceGeometry(mouth=mouth, left_eye=eye(self.left_eye), right_eye=eye(self.right_eye),
                            max_opening_px=self.max_opening_px * s, head_center=p(self.head_center),
                            head_axes=p(self.head_axes), head_pivot=p(self.head_pivot))


#: ``skimage.data.astronaut()`` at 512x512 (measured on the photo; MediaPipe FaceMesh agrees within ~1 px).
#: The subject smiles with the upper teeth showing; the split curve runs along the lower edge of those teeth.
ASTRONAUT = FaceGeometry(
    mouth=MouthGeometry(left=(205.0, 141.0), right=(241.5, 141.5), depth=7.0, jaw_half_width=32.0,
                        chin_y=177.0, chin_follow=0.55, neck_fade=26.0),
    left_eye=EyeGeometry(outer=(193.0, 101.0), inner=(214.0, 103.5), lid_height=5.0, lower_depth=3.0,
                         skin_height=7.0),
    right_eye=EyeGeometry(outer=(259.0, 104.5), inner=(235.5, 104.5), lid_height=5.5, lower_depth=3.0,
                          skin_height=7.0),
    max_opening_px=14.0,
    head_center=(225.0, 100.0),
    head_axes=(82.0, 95.0),
    head_pivot=(222.0, 190.0),
)


@dataclass(frozen=True)
class FacePose:
    """The animation state of one frame."""

    mouth_open: float = 0.0  # 0 as in the photo, 1 = max_opening_px of jaw drop
    blink: float = 0.0  # 0 open, 1 closed
    angle_deg: float = 0.0  # in-plane head rotation, counter-clockwise on screen
    shift: Point = (0.0, 0.0)  # head translation in pixels (x right, y down)


# Cavity colours (RGB): deep shadow just under the upper teeth, a dark red further down (tongue, floor).
_CAVITY_TOP = np.array([26.0, 9.0, 11.0], np.float32)
_CAVITY_LOW = np.array([92.0, 34.0, 38.0], np.float32)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    """Integer bounds of a region, clipped to the image."""
    h, w = img.shape[:2]
    return (max(0, int(math.floor(x0))), max(0, int(math.floor(y0))),
            min(w, int(math.ceil(x1)) + 1), min(h, int(math.ceil(y1)) + 1))


def _check_image(img: np.ndarray) -> None:
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an [H, W, 3] uint8 image, got {img.shape} {img.dtype}")


def _remap(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(img, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def mouth_field(xs: np.ndarray, ys: np.ndarray, mouth: MouthGeometry, drop_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The jaw-drop field at points ``xs, ys: [H, W] float32``.

    Returns ``(drop, split)``, both ``[H, W] float32``: the downward displacement (a pixel at y shows the
    photo at ``y - drop``) and the y of the split curve in that column. ``drop`` is 0 above the split curve.
    """
    (lx, ly), (rx, ry) = mouth.left, mouth.right
    cx, hw0 = mouth.center_x, mouth.half_width
    chord = ly + (xs - lx) * ((ry - ly) / (rx - lx))  # [H, W]
    u0 = np.clip(np.abs(xs - cx) / hw0, 0.0, 1.0)
    split = chord + mouth.depth * (1.0 - u0**4)  # flat bottom like a row of teeth
    lip_y = 0.5 * (ly + ry) + mouth.depth  # the split curve's lowest point
    t = (ys - lip_y) / (mouth.chin_y - lip_y)  # 0 at the lower lip, 1 at the chin
    s = _smoothstep(t)
    hw = hw0 + (mouth.jaw_half_width - hw0) * s  # the moving region widens towards the chin
    u = (xs - cx) / hw
    profile = np.clip(1.0 - u * u, 0.0, None)
    below = np.clip((ys - mouth.chin_y) / mouth.neck_fade, 0.0, 1.0)
    vertical = np.where(t <= 1.0, 1.0 - (1.0 - mouth.chin_follow) * s, mouth.chin_follow * (1.0 - _smoothstep(below)))
    gate = np.clip(ys - split + 0.5, 0.0, 1.0)  # 0 above the split, 1 below, one pixel of ramp
    drop = (drop_px * profile * vertical * gate).astype(np.float32)
    return drop, split.astype(np.float32)


def open_mouth(img: np.ndarray, mouth: MouthGeometry, drop_px: float) -> np.ndarray:
    """Lower the lower lip and jaw by ``drop_px`` at the mouth's middle and fill the gap with a dark cavity.

    ``img: [H, W, 3] uint8`` -> ``[H, W, 3] uint8``. ``drop_px <= 0`` returns an unchanged copy.
    """
    _check_image(img)
    out = img.copy()
    if drop_px <= 0:
        return out
    m = mouth
    top = min(m.left[1], m.right[1]) - 2
    x0, y0, x1, y1 = _box(img, m.center_x - m.jaw_half_width - 2, top, m.center_x + m.jaw_half_width + 2,
                          m.chin_y + m.neck_fade + 2)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)  # [h, w]
    drop, split = mouth_field(xs, ys, m, drop_px)
    region = _remap(img, xs, ys - drop).astype(np.float32)  # [h, w, 3]
    # the cavity covers rows split .. split + drop; alpha is each pixel's overlap with that span
    alpha = np.clip(np.minimum(ys + 0.5, split + drop) - np.maximum(ys - 0.5, split), 0.0, 1.0)  # [h, w]
    gap = drop_px * np.clip(1.0 - ((xs - m.center_x) / m.half_width) ** 2, 0.0, None)  # opening of this column
    depth = np.clip((ys - split) / np.maximum(gap, 1.0), 0.0, 1.0)  # 0 under the teeth, 1 at the lower lip
    shade = (depth**1.5 * min(1.0, drop_px / 10.0))[..., None]
    colour = _CAVITY_TOP + (_CAVITY_LOW - _CAVITY_TOP) * shade  # [h, w, 3]
    region = region + (colour - region) * alpha[..., None]
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


def eye_lid_map(xs: np.ndarray, ys: np.ndarray, eye: EyeGeometry, closed: float) -> np.ndarray:
    """Source rows for a blink: ``xs, ys: [H, W] float32`` -> ``src_y: [H, W] float32``.

    The upper lid line moves from its place (``closed`` 0) to the lower lid (1). The band of lid skin
    above the eye is stretched down to the moving lid line; the eye below the line stays where it is.
    """
    (ox, oy), (ix, iy) = eye.outer, eye.inner
    chord = oy + (xs - ox) * ((iy - oy) / (ix - ox))
    mx, half = 0.5 * (ox + ix), 0.5 * abs(ix - ox)
    w = np.clip(1.0 - ((xs - mx) / half) ** 2, 0.0, None)  # 1 mid-eye, 0 at and beyond the corners
    upper = chord - eye.lid_height * w
    lower = chord + eye.lower_depth * w
    lid = upper + closed * (lower - upper)
    start = upper - eye.skin_height
    inside = (ys >= start) & (ys < lid)
    src = start + (ys - start) * (eye.skin_height / (lid - start))
    return np.where(inside, src, ys).astype(np.float32)


def blink_eye(img: np.ndarray, eye: EyeGeometry, closed: float) -> np.ndarray:
    """Close one eye by ``closed`` in [0, 1]. ``img: [H, W, 3] uint8`` -> ``[H, W, 3] uint8``.

    ``closed <= 0`` returns an unchanged copy.
    """
    _check_image(img)
    out = img.copy()
    if closed <= 0:
        return out
    closed = min(float(closed), 1.0)
    (ox, oy), (ix, iy) = eye.outer, eye.inner
    x0, y0, x1, y1 = _box(img, min(ox, ix) - 1, min(oy, iy) - eye.lid_height - eye.skin_height - 1,
                          max(ox, ix) + 1, max(oy, iy) + eye.lower_depth + 1)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = _remap(img, xs, eye_lid_map(xs, ys, eye, closed))
    return out


def similarity_matrix(angle_deg: float, shift: Point, center: Point, scale: float = 1.0) -> np.ndarray:
    """``[2, 3] float64``: rotate by ``angle_deg`` (counter-clockwise on screen) and scale about ``center``,
    then translate by ``shift``. Maps photo coordinates to frame coordinates."""
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle_deg), float(scale))
    m[:, 2] += np.asarray(shift, np.float64)
    return m


def similarity_warp(img: np.ndarray, angle_deg: float, shift: Point, center: Point, scale: float = 1.0) -> np.ndarray:
    """The whole image under ``similarity_matrix(...)`` (borders reflected).

    ``img: [H, W, 3] uint8`` -> ``[H, W, 3] uint8``; identity parameters return an exact copy.
    """
    _check_image(img)
    if angle_deg == 0 and scale == 1 and shift[0] == 0 and shift[1] == 0:
        return img.copy()
    h, w = img.shape[:2]
    return cv2.warpAffine(img, similarity_matrix(angle_deg, shift, center, scale), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def head_box(shape: tuple[int, int], geom: FaceGeometry) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of an ``[H, W]`` frame that head motion can change (1.5x the head ellipse)."""
    (cx, cy), (ax, ay) = geom.head_center, geom.head_axes
    h, w = shape
    return (max(0, int(math.floor(cx - 1.5 * ax))), max(0, int(math.floor(cy - 1.5 * ay))),
            min(w, int(math.ceil(cx + 1.5 * ax)) + 1), min(h, int(math.ceil(cy + 1.5 * ay)) + 1))


def head_maps(xs: np.ndarray, ys: np.ndarray, geom: FaceGeometry, angle_deg: float,
              shift: Point) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps that move the head region rigidly: frame points ``xs, ys: [H, W] float32`` ->
    photo points ``map_x, map_y: [H, W] float32``.

    Inside the head ellipse a frame pixel shows the photo under the inverse similarity; the motion
    fades out between 1x and 1.5x the ellipse, so the background and shoulders stay still.
    """
    inv = cv2.invertAffineTransform(similarity_matrix(angle_deg, shift, geom.head_pivot))
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    (cx, cy), (ax, ay) = geom.head_center, geom.head_axes
    r = np.sqrt(((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2)
    weight = 1.0 - _smoothstep((r - 1.0) / 0.5)  # [H, W]
    map_x = (xs + weight * (sx - xs)).astype(np.float32)
    map_y = (ys + weight * (sy - ys)).astype(np.float32)
    return map_x, map_y


def move_head(img: np.ndarray, geom: FaceGeometry, angle_deg: float, shift: Point) -> np.ndarray:
    """Rotate and shift the head region (see ``head_maps``). ``img: [H, W, 3] uint8`` -> same shape.

    Zero angle and shift return an exact copy; pixels outside ``head_box`` are never changed.
    """
    _check_image(img)
    out = img.copy()
    if angle_deg == 0 and shift[0] == 0 and shift[1] == 0:
        return out
    x0, y0, x1, y1 = head_box(img.shape[:2], geom)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    map_x, map_y = head_maps(xs, ys, geom, angle_deg, shift)
    out[y0:y1, x0:x1] = _remap(img, map_x, map_y)
    return out


def animate_face(img: np.ndarray, geom: FaceGeometry, pose: FacePose) -> np.ndarray:
    """One frame: mouth, then both eyes, then head motion. ``img: [H, W, 3] uint8`` -> same shape."""
    frame = open_mouth(img, geom.mouth, pose.mouth_open * geom.max_opening_px)
    frame = blink_eye(frame, geom.left_eye, pose.blink)
    frame = blink_eye(frame, geom.right_eye, pose.blink)
    return move_head(frame, geom, pose.angle_deg, pose.shift)
