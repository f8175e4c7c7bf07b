"""What ``syncanim eval`` returns and writes: the result types, their JSON and table, and the report folder.

Report folder (every file written atomically):

```
OUT/
  eval.json          the EvalResult (non-finite numbers, e.g. the PSNR of identical frames, as null)
  per_frame.csv      per subject and frame: PSNR, face-box PSNR, SSIM, LPIPS, LMD, LMD centred
  report.md          the table, notes and the pictures below
  per_frame.png      PSNR and LMD over time, one line per subject
  sync.png           per subject: mouth opening vs speech envelope over time; mean correlation vs lag
  sync_windows.png   per-window peak correlation and offset over time
  strip.png          frames side by side: one row per subject (reference first), columns spread over the clip
```
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.files import finite_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from .video_stats import ClipSignals, ClipStats

#: Name of each row of the table, in order, with the unit shown.
FIGURES: tuple[tuple[str, str], ...] = (
    ("psnr", "PSNR (dB)"),
    ("psnr_face", "PSNR face box (dB)"),
    ("ssim", "SSIM"),
    ("lpips", "LPIPS (Alex)"),
    ("lmd", "LMD (px @512)"),
    ("lmd_centered", "LMD centred (px @512)"),
    ("mouth_correlation", "mouth opening corr. (best lag)"),
    ("mouth_lag", "mouth opening lag (frames)"),
    ("mouth_amplitude", "mouth amplitude ratio"),
    ("mouth_spread", "mouth spread while speaking"),
    ("mouth_spread_ratio", "mouth spread / subject's"),
    ("sync_offset", "sync offset (frames, + = video late)"),
    ("sync_confidence", "sync confidence (corr.)"),
    ("sync_contrast", "sync contrast (peak - median)"),
    ("blink_rate", "blinks / min"),
    ("head_amplitude", "head motion amplitude (deg)"),
    ("head_jitter", "head jitter (deg/frame^2)"),
)


@dataclass
class Fidelity:
    """Full-reference figures of one frame sequence against the ground truth (means over frames).

    ``psnr`` is ``inf`` when any frame is identical to its reference (counted in ``identical_frames``);
    ``psnr_face`` covers the ``psnr_face_frames`` frames whose reference has a face box; ``lpips`` is
    None when not measured; LMD over ``lmd_frames`` frames with a face in both (``lmd_skipped`` without).
    """

    frames: int
    psnr: float
    psnr_face: float
    psnr_face_frames: int
    identical_frames: int
    ssim: float
    lpips: float | None
    lmd: float
    lmd_centered: float
    lmd_frames: int
    lmd_skipped: int
    # the tracked mouth opening against the reference's (syncanim.metrics.mouth): best correlation
    # within +-3 frames, its lag (> 0: this mouth moves later), and the ratio of their spreads
    mouth_correlation: float | None = None
    mouth_lag: int | None = None
    mouth_amplitude: float | None = None


@dataclass
class SubjectResult:
    """One evaluated frame sequence: ``role`` is "evaluated", "baseline", "reference" or "subject" (a model's own
    training clip, for the no-reference figures)."""

    name: str
    role: str
    fidelity: Fidelity | None = None
    clip: ClipStats | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # plugin name -> its figures
    notes: list[str] = field(default_factory=list)

    def figure(self, key: str) -> float | None:
        """The value of table row ``key`` (see :data:`FIGURES`), None when not measured."""
        f, c = self.fidelity, self.clip
        if key in ("psnr", "psnr_face", "ssim", "lpips", "lmd", "lmd_centered", "mouth_correlation", "mouth_lag",
                   "mouth_amplitude"):
            value = None if f is None else getattr(f, key)
            return None if value is None else float(value)
        if c is None:
            return None
        s = c.sync
        if key == "sync_offset":
            return None if s is None or s.offset_frames is None else float(s.offset_frames)
        if key == "sync_confidence":
            return None if s is None else s.confidence
        if key == "sync_contrast":
            return None if s is None else s.contrast
        if key == "mouth_spread":
            return c.mouth_spread
        if key == "mouth_spread_ratio":
            return c.mouth_spread_ratio
        if key == "blink_rate":
            return None if c.blinks is None else c.blinks.rate_per_min
        if key == "head_amplitude":
            return None if c.head is None else c.head.amplitude_deg
        if key == "head_jitter":
            return None if c.head is None else c.head.jitter_deg
        raise KeyError(key)


@dataclass
class EvalResult:
    """The result of :func:`syncanim.eval.pipeline.run_eval`.

    ``mode``: "model" (a model's renders of a dataset split, ground truth as reference), "pair" (a
    video against a reference video) or "video" (one video, no reference). ``subjects``: the
    evaluated sequence first, then baselines, then the reference. ``lpips``: "measured" or why not.
    """

    mode: str
    fps: float
    frames: int
    width: int
    height: int
    inputs: dict[str, str]
    subjects: list[SubjectResult]
    lpips: str
    out_dir: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    render_fps: float | None = None

    def subject(self, name: str) -> SubjectResult:
        for s in self.subjects:
            if s.name == name:
                return s
        raise KeyError(f"no subject {name!r} (have {[s.name for s in self.subjects]})")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite floats become None (JSON has no inf or NaN)."""
        return finite_json(asdict(self))

    def table_header(self) -> tuple[str, ...]:
        """Column titles for :meth:`table_rows`: the figure, then one column per subject."""
        return ("figure", *(s.name for s in self.subjects))

    def table_rows(self) -> list[tuple[str, ...]]:
        """Rows of strings for a rich table (``Table(*r.table_header())``, then ``add_row(*row)``):
        every figure that at least one subject has, then the metric plugins' figures."""
        rows: list[tuple[str, ...]] = []
        for key, title in FIGURES:
            values = [s.figure(key) for s in self.subjects]
            if all(v is None for v in values):
                continue
            rows.append((title, *(_fmt(key, v) for v in values)))
        plugin_keys: list[tuple[str, str]] = []
        for s in self.subjects:
            for name, figs in s.metrics.items():
                for k, v in figs.items():
                    if isinstance(v, int | float) and (name, k) not in plugin_keys:
                        plugin_keys.append((name, k))
        for name, k in plugin_keys:
            rows.append((f"{name} {k}", *(_fmt(k, s.metrics.get(name, {}).get(k)) for s in self.subjects)))
        return rows


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if key in ("sync_offset", "mouth_lag") or isinstance(v, int):
        return f"{int(v):+d}" if key in ("sync_offset", "mouth_lag") else str(v)
    if key in ("ssim", "lpips", "sync_confidence", "sync_contrast", "mouth_spread"):
        return f"{v:.4f}"
    return f"{v:.2f}"


# --- per-frame data ---------------------------------------------------------------------------------


@dataclass
class PerFrame:
    """Per-frame series of one subject against the reference, each ``[N] float64`` (NaN: not measured)."""

    psnr: np.ndarray
    psnr_face: np.ndarray
    ssim: np.ndarray
    lpips: np.ndarray
    lmd: np.ndarray
    lmd_centered: np.ndarray


def per_frame_csv(series: dict[str, PerFrame], fps: float) -> str:
    """CSV text: ``subject,frame,time_s,psnr,psnr_face,ssim,lpips,lmd,lmd_centered`` (empty cell: not measured)."""
    cols = ("psnr", "psnr_face", "ssim", "lpips", "lmd", "lmd_centered")
    lines = ["subject,frame,time_s," + ",".join(cols)]

    def cell(v: float) -> str:
        if math.isnan(v):
            return ""
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else f"{v:.6g}"

    for name, pf in series.items():
        for k in range(len(pf.psnr)):
            vals = ",".join(cell(float(getattr(pf, c)[k])) for c in cols)
            lines.append(f"{name},{k},{k / fps:.4f},{vals}")
    return "\n".join(lines) + "\n"


# --- pictures ---------------------------------------------------------------------------------------


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    scale = max(0.35, img.shape[0] / 400)
    thick = max(1, int(round(scale * 2)))
    cv2.putText(out, text, (4, int(18 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(out, text, (4, int(18 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def strip_image(rows: list[tuple[str, list[np.ndarray]]], picks: list[int], fps: float, tile: int = 192) -> np.ndarray:
    """Frames side by side: ``rows`` of ``(name, [C] frames [H, W, 3] uint8)``, one column per pick.

    Each tile is scaled to ``tile`` pixels high; the first tile of a row carries its name and every
    tile of the first row its time. Returns ``[R * tile, C * w, 3] uint8``.
    """
    lines = []
    for r, (name, frames) in enumerate(rows):
        tiles = []
        for c, img in enumerate(frames):
            h, w = img.shape[:2]
            t = cv2.resize(img, (max(1, round(w * tile / h)), tile), interpolation=cv2.INTER_AREA)
            text = name if c == 0 else ""
            if r == 0:
                text = f"{text} {picks[c] / fps:.2f}s".strip()
            tiles.append(_label(t, text) if text else t)
        lines.append(np.concatenate(tiles, 1))
    return np.concatenate(lines, 0)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _figure_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, dpi=90, format="png")
    plt.close(fig)
    return buf.getvalue()


def _finish(fig: Any, axes: Any) -> bytes:
    """Grid and legend on every axis, tight layout, PNG bytes."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _figure_bytes(fig)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def per_frame_plot(series: dict[str, PerFrame], fps: float) -> bytes:
    """PNG: per-frame PSNR (top) and LMD (bottom) over time, one line per subject."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name, pf in series.items():
        t = np.arange(len(pf.psnr)) / fps
        axes[0].plot(t, np.where(np.isinf(pf.psnr), np.nan, pf.psnr), label=name, lw=1)
        axes[1].plot(t, pf.lmd, label=name, lw=1)
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].set_ylabel("LMD (px @512)")
    axes[1].set_xlabel("time (s)")
    return _finish(fig, axes)


def sync_plot(signals: dict[str, ClipSignals], stats: dict[str, ClipStats], fps: float) -> bytes | None:
    """PNG: per subject, the detrended mouth opening vs speech envelope (z-scored) over time, with the
    speech frames shaded, and the mean correlation over lags. None when no subject has sync signals."""
    names = [n for n, s in signals.items() if s.sync is not None]
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 2.6 * len(names)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]})
    for row, name in enumerate(names):
        sig = signals[name].sync
        assert sig is not None
        lag = sig.max_lag
        n = len(sig.mouth)
        t = np.arange(n) / fps
        env = sig.envelope[lag:lag + n]
        speech = sig.speech[lag:lag + n]

        def z(x: np.ndarray) -> np.ndarray:
            sd = x.std()
            return (x - x.mean()) / sd if sd > 0 else x * 0

        ax = axes[row, 0]
        ax.fill_between(t, -3, 3, where=speech, color="0.9", step="mid", label="speech")
        ax.plot(t, z(sig.mouth), lw=1, label="mouth opening")
        ax.plot(t, z(env), lw=1, alpha=0.8, label="speech envelope")
        ax.set_ylim(-3, 3)
        ax.set_title(name, fontsize=9, loc="left")
        ax.legend(loc="upper right", fontsize=7, ncol=3)
        ax2 = axes[row, 1]
        res = stats[name].sync
        if res is not None and res.mean_correlation:
            ax2.plot(res.lags, res.mean_correlation, marker=".")
            ax2.axvline(res.offset_frames or 0, color="r", lw=0.8)
            ax2.set_title(f"offset {res.offset_frames:+d}, conf {res.confidence:.2f}", fontsize=9)
        ax2.set_xlabel("lag (frames, + = video late)")
        ax2.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return _figure_bytes(fig)


def sync_windows_plot(stats: dict[str, ClipStats]) -> bytes | None:
    """PNG: each used window's peak correlation (top) and its own offset (bottom) over time."""
    names = [n for n, s in stats.items() if s.sync is not None and s.sync.window_times_s]
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for name in names:
        res = stats[name].sync
        assert res is not None
        axes[0].plot(res.window_times_s, res.window_peaks, marker=".", lw=1, label=name)
        axes[1].plot(res.window_times_s, res.window_offsets, marker=".", lw=1, label=name)
    axes[0].set_ylabel("peak correlation")
    axes[1].set_ylabel("offset (frames)")
    axes[1].set_xlabel("window centre (s)")
    return _finish(fig, axes)


# --- the folder -------------------------------------------------------------------------------------


def report_markdown(result: EvalResult) -> str:
    """``report.md``: inputs, the figures table, notes and links to the pictures."""
    lines = [f"# syncanim eval ({result.mode})", ""]
    for k, v in result.inputs.items():
        lines.append(f"- {k}: `{v}`")
    lines.append(f"- {result.frames} frames at {result.fps:g} fps, {result.width}x{result.height}")
    if result.render_fps is not None:
        lines.append(f"- rendering: {result.render_fps:.2f} frames/s")
    lines += ["", "| " + " | ".join(result.table_header()) + " |",
              "|" + "---|" * len(result.table_header())]
    lines += ["| " + " | ".join(row) + " |" for row in result.table_rows()]
    lines += ["", f"LPIPS: {result.lpips}.", ""]
    notes = list(result.notes) + [f"{s.name}: {n}" for s in result.subjects for n in s.notes]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    blinks = [(s.name, s.clip.blinks) for s in result.subjects if s.clip is not None and s.clip.blinks is not None]
    if blinks:
        lines += ["## Blinks", ""]
        lines += [f"- {name}: {b.count} at frames {b.frames}" for name, b in blinks]
        lines.append("")
    pics = [("strip.png", "Frames side by side"), ("per_frame.png", "Per-frame PSNR and LMD"),
            ("sync.png", "Mouth opening vs speech envelope"), ("sync_windows.png", "Sync over time")]
    lines += ["## Pictures", ""]
    lines += [f"![{title}]({name})" for name, title in pics if name in result.files]
    lines += ["", "Definitions of every figure: docs/eval.md in the syncanim repository.", ""]
    return "\n".join(lines)


def write_report(out: Path, result: EvalResult, series: dict[str, PerFrame], signals: dict[str, ClipSignals],
                 strip: np.ndarray | None) -> dict[str, str]:
    """Write the report folder (module doc) into ``out``; returns ``{file name: path}`` of what was
    written and records it in ``result.files``."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    def put(name: str, data: bytes | None) -> None:
        if data is not None:
            write_bytes_atomic(out / name, data)
            files[name] = str(out / name)

    stats = {s.name: s.clip for s in result.subjects if s.clip is not None}
    if strip is not None:
        put("strip.png", png_bytes(strip))
    if series:
        put("per_frame.png", per_frame_plot(series, result.fps))
        put("per_frame.csv", per_frame_csv(series, result.fps).encode())
    put("sync.png", sync_plot({k: v for k, v in signals.items() if k in stats}, stats, result.fps))
    put("sync_windows.png", sync_windows_plot(stats))
    files["eval.json"] = str(out / "eval.json")
    files["report.md"] = str(out / "report.md")
    result.files = files
    write_text_atomic(out / "report.md", report_markdown(result))
    write_json_atomic(out / "eval.json", result.to_dict())
    return files
