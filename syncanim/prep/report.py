"""The prep report a person looks at: a contact sheet, plots over time, and the warnings in words."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..data.dataset import read_rgb
from ..data.files import write_atomic, write_text_atomic
from ..data.labels import COLOURS, NAMES
from ..data.manifest import STAGE_LABELS, DatasetLayout, Manifest, crop_words
from ..face.landmarks import FACE_OVAL

THUMB = 256


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def landmark_overlay(rgb: np.ndarray, points: np.ndarray, found: bool) -> np.ndarray:
    """rgb: [H, W, 3] uint8, points: [478, 3] pixels -> a copy with landmarks and the face outline drawn."""
    out = rgb.copy()
    colour = (60, 255, 60) if found else (255, 160, 0)
    for x, y in points[:, :2].round().astype(int):
        cv2.circle(out, (int(x), int(y)), 1, colour, -1, cv2.LINE_AA)
    cv2.polylines(out, [points[list(FACE_OVAL), :2].round().astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def label_overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """rgb: [H, W, 3] uint8, labels: [H, W] uint8 -> the label colours blended over the frame."""
    colours = COLOURS[np.clip(labels, 0, len(COLOURS) - 1)]
    mix = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.where(labels[..., None] > 0, mix, rgb * 0.6).astype(np.uint8)


def pose_overlay(rgb: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float, cx: float, cy: float,
                 length: float = 0.06) -> np.ndarray:
    """Draw the head's axes (x red, y green, z blue; ``length`` canonical units) projected into the frame."""
    out = rgb.copy()
    pts = np.array([[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, length]], np.float64)
    cam = pts @ rotation.T + translation
    uv = np.stack([focal * cam[:, 0] / cam[:, 2] + cx, focal * cam[:, 1] / cam[:, 2] + cy], 1).round().astype(int)
    for i, c in ((1, (255, 60, 60)), (2, (60, 255, 60)), (3, (80, 120, 255))):
        cv2.line(out, tuple(int(v) for v in uv[0]), tuple(int(v) for v in uv[i]), c, 2, cv2.LINE_AA)
    return out


def contact_sheet(layout: DatasetLayout, manifest: Manifest, landmarks: np.ndarray, found: np.ndarray,
                  track: Any, rows: int = 4) -> np.ndarray:
    """A grid: per sampled frame, landmarks | masks | head axes; last row: plate | never-seen | legend."""
    n = manifest.num_frames
    picks = np.unique(np.linspace(0, n - 1, rows).round().astype(int))
    grid = []
    for k in picks:
        rgb = read_rgb(layout.frame(int(k)))
        labels = cv2.imread(str(layout.parsing(int(k))), cv2.IMREAD_UNCHANGED)
        t = f"frame {k} ({k / manifest.fps:.1f} s)"
        cells = [
            (landmark_overlay(rgb, landmarks[k], bool(found[k])), t + ("" if found[k] else " no face")),
            (label_overlay(rgb, labels), "masks"),
            (pose_overlay(rgb, track.rotation[k], track.translation[k], track.focal, track.cx, track.cy),
             "pose x:red y:green z:blue"),
        ]
        grid.append([_label(cv2.resize(c, (THUMB, THUMB), interpolation=cv2.INTER_AREA), text) for c, text in cells])
    plate = read_rgb(layout.background)
    unseen = cv2.imread(str(layout.background_unseen), cv2.IMREAD_GRAYSCALE) > 0
    marked = plate.copy()
    marked[unseen] = (0.5 * marked[unseen] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
    legend = np.full((THUMB, THUMB, 3), 30, np.uint8)
    for i, (lab, name) in enumerate(NAMES.items()):
        y = 40 + 36 * i
        cv2.rectangle(legend, (16, y - 14), (40, y + 6), tuple(int(c) for c in COLOURS[lab]), -1)
        cv2.putText(legend, name, (52, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    grid.append([
        _label(cv2.resize(plate, (THUMB, THUMB), interpolation=cv2.INTER_AREA), "background plate"),
        _label(cv2.resize(marked, (THUMB, THUMB), interpolation=cv2.INTER_AREA),
               f"never seen: {100 * manifest.background_unseen_fraction:.0f} %"),
        legend,
    ])
    return np.concatenate([np.concatenate(r, axis=1) for r in grid], axis=0)


def head_box(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A square ``(x0, y0, x1, y1)`` around the head, hair and neck of face landmarks ``[478, 3]`` (pixels),
    inside an image of ``shape`` (H, W)."""
    p = points[list(FACE_OVAL), :2]
    (x0, y0), (x1, y1) = p.min(0), p.max(0)
    side = 2.2 * max(x1 - x0, y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) + 0.2 * (y1 - y0)
    side = min(side, shape[0], shape[1])
    bx0 = int(np.clip(cx - side / 2, 0, shape[1] - side))
    by0 = int(np.clip(cy - side / 2, 0, shape[0] - side))
    return bx0, by0, bx0 + int(side), by0 + int(side)


def mask_closeups(layout: DatasetLayout, manifest: Manifest, landmarks: np.ndarray, found: np.ndarray,
                  count: int = 4) -> np.ndarray:
    """Head, hair and neck of ``count`` frames spread over the clip, close up: the frame above, its labels
    blended over it below (the boundaries between labels drawn white)."""
    n = manifest.num_frames
    cols = []
    for k in np.unique(np.linspace(0, n - 1, count).round().astype(int)):
        rgb = read_rgb(layout.frame(int(k)))
        labels = cv2.imread(str(layout.parsing(int(k))), cv2.IMREAD_UNCHANGED)
        x0, y0, x1, y1 = head_box(landmarks[k], labels.shape) if found[k] else (0, 0, *labels.shape[::-1])
        ov = label_overlay(rgb, labels, alpha=0.4)
        edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        ov[edges] = 255
        crop = [cv2.resize(im[y0:y1, x0:x1], (THUMB, THUMB), interpolation=cv2.INTER_AREA) for im in (rgb, ov)]
        cols.append(np.concatenate([_label(crop[0], f"frame {k} ({k / manifest.fps:.1f} s)"), crop[1]], 0))
    return np.concatenate(cols, 1)


def _save_png(path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    write_atomic(path, lambda t: t.write_bytes(buf.tobytes()))


def _plots(layout: DatasetLayout, manifest: Manifest, euler_deg: np.ndarray, track: Any,
           expressions: np.ndarray, found: np.ndarray, cuts: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(manifest.num_frames) / manifest.fps
    fig, ax = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    for i, name in enumerate(("pitch", "yaw", "roll")):
        ax[0].plot(t, euler_deg[:, i], lw=1, label=name)
    ax[0].set_ylabel("rotation (deg)")
    for i, name in enumerate("xyz"):
        ax[1].plot(t, track.translation[:, i] - track.translation[:, i].mean(), lw=1, label=name)
    ax[1].set_ylabel("translation - mean")
    ax[2].plot(t, track.per_frame_error_px, lw=1, color="k")
    ax[2].set_ylabel("reprojection (px)")
    ax[2].set_xlabel("time (s)")
    for a in ax[:2]:
        a.legend(loc="upper right", fontsize=8)
    for a in ax:
        for c in cuts:
            a.axvline(c / manifest.fps, color="r", lw=0.8, ls="--")
        missing = np.flatnonzero(~found)
        if len(missing):
            a.plot(missing / manifest.fps, np.full(len(missing), a.get_ylim()[0]), "|", color="orange", ms=8)
    fig.suptitle(f"head pose (focal {manifest.focal:.0f} px, mean reprojection error {manifest.reprojection_error_px:.2f} px)")
    fig.tight_layout()
    write_atomic(layout.report_dir / "head_pose.png", lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)

    names = manifest.expressions
    fig, ax = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    for name in ("blink_left", "blink_right"):
        ax[0].plot(t, expressions[:, names.index(name)], lw=1, label=name)
    ax[0].set_ylabel("blink")
    ax[0].set_ylim(-0.05, 1.05)
    ax[1].plot(t, expressions[:, names.index("brow_raise")], lw=1, label="brow_raise")
    ax[1].set_ylabel("brow raise")
    for name in ("mouth_open", "mouth_width"):
        ax[2].plot(t, expressions[:, names.index(name)], lw=1, label=name)
    ax[2].set_ylabel("mouth")
    ax[2].set_xlabel("time (s)")
    for a in ax:
        a.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"expression coefficients ({manifest.expression_backend})")
    fig.tight_layout()
    write_atomic(layout.report_dir / "expressions.png", lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)


def report_markdown(manifest: Manifest, motion: dict[str, float]) -> str:
    m = manifest
    rows = [
        ("source", f"{m.source.width}x{m.source.height}, {m.source.fps:.2f} fps, {m.source.duration_s:.1f} s, {m.source.codec}"),
        ("dataset", f"{m.num_frames} frames at {m.fps:g} fps ({m.duration_s:.1f} s), {m.image_size}x{m.image_size}"),
        ("split", f"{m.num_train} train / {m.num_val} val (the last frames)"),
        ("framing", crop_words(m.crop)),
        ("face", f"{m.face_height_px:.0f} px tall; no face in {m.frames_without_face} frames "
                 f"({m.frames_interpolated} interpolated); at most {m.max_faces_seen} face(s) per frame"),
        ("camera", f"focal {m.focal:.1f} px, centre ({m.cx:.1f}, {m.cy:.1f})"),
        ("head tracking", f"mean reprojection error {m.reprojection_error_px:.2f} px (rigid points), "
                          f"{m.reprojection_error_all_px:.2f} px (all 478)"),
        ("head motion", f"rotation range {motion['rotation_range_deg']:.1f} deg, "
                        f"movement {motion['translation_range_faces']:.2f} face widths"),
        ("background", f"{100 * m.background_unseen_fraction:.1f} % never seen (filled in from around)"),
        ("expressions", f"{m.expression_backend}: {', '.join(m.expressions[:8])}"),
        ("audio features", f"{m.audio_backend}: {m.audio_per_frame} x {m.audio_dim} per frame"),
    ]
    out = ["# prep report", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    out += ["", "## Warnings", ""]
    out += [f"- {w}" for w in m.warnings] or ["- none"]
    out += ["", "## Timings (s)", "", "| stage | seconds |", "|---|---|"]
    out += [f"| {STAGE_LABELS.get(k, k)} | {v:.2f} |" for k, v in m.timings.items()]
    out += ["", "## Pictures", "", "![contact sheet](contact_sheet.png)", "",
            "Head, hair and neck close up (labels: face red, head and hair purple, neck yellow, torso blue):", "",
            "![masks](masks.png)", "", "![head pose](head_pose.png)", "",
            "![expressions](expressions.png)", ""]
    return "\n".join(out)


def write_pictures(layout: DatasetLayout, manifest: Manifest, *, landmarks: np.ndarray, found: np.ndarray,
                   euler_deg: np.ndarray, track: Any, expressions: np.ndarray, cuts: list[int]) -> None:
    """The contact sheet and the plots, under ``report/``."""
    layout.report_dir.mkdir(exist_ok=True)
    _save_png(layout.report_dir / "contact_sheet.png", contact_sheet(layout, manifest, landmarks, found, track))
    _save_png(layout.report_dir / "masks.png", mask_closeups(layout, manifest, landmarks, found))
    _plots(layout, manifest, euler_deg, track, expressions, found, cuts)


def write_markdown(layout: DatasetLayout, manifest: Manifest, motion: dict[str, float]) -> None:
    """``report/report.md``: the facts, the warnings in words, the timings and the pictures."""
    layout.report_dir.mkdir(exist_ok=True)
    write_text_atomic(layout.report_dir / "report.md", report_markdown(manifest, motion))
