"""``syncanim prep``: a talking-person video in, a checked training set out.

Stages, each resumable (see :mod:`syncanim.prep.cache`): probe, scan (framing and face count on
sampled frames), stream (decode -> landmarks -> masks -> background samples, in parallel chunks),
landmarks (gap filling), background (plate), head_pose, expressions, audio, report; the manifest
is written last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import __version__
from ..audio.waveform import write_wav
from ..config import PrepConfig, RuntimeConfig, dump_toml
from ..console import ProgressFn, no_progress
from ..data.files import save_npy_atomic, writable_folder, write_atomic, write_json_atomic, write_text_atomic
from ..data.labels import NAMES as LABEL_NAMES
from ..data.manifest import DatasetLayout, Manifest, SourceInfo, write_manifest
from ..errors import DataError, PluginError
from ..face.landmarks import fill_gaps
from ..registry import Registry, default_registry
from . import checks
from .cache import StageRecords, fingerprint, stage_key
from .crop import CropBox, center_box, full_frame_box, subject_box
from .stream import ChunkRunner, StreamJob, chunk_done, chunk_path, plan_chunks, scan_faces

log = logging.getLogger(__name__)

MIN_SIDE = 128  # smaller videos cannot give a usable face

#: (entry-point group, PrepConfig field) of every component prep uses
PREP_COMPONENTS = (
    ("syncanim.decoders", "decoder"), ("syncanim.trackers", "landmarks"), ("syncanim.segmenters", "masks"),
    ("syncanim.backgrounds", "background"), ("syncanim.head_trackers", "head_pose"),
    ("syncanim.expressions", "expressions"), ("syncanim.asr", "audio"),
)


@dataclass
class PrepResult:
    layout: DatasetLayout
    manifest: Manifest
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def resolve_workers(runtime: RuntimeConfig) -> int:
    return runtime.workers or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _section(cfg: Any) -> dict[str, Any]:
    return cfg.model_dump()


class _Run:
    """Book-keeping of one prep run: which stages ran, their timings, the warnings."""

    def __init__(self, layout: DatasetLayout, progress: ProgressFn) -> None:
        self.layout = layout
        self.records = StageRecords(layout.state_dir)
        self.progress = progress
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}

    def cached(self, name: str, key: str) -> dict[str, Any] | None:
        if self.records.done(name, key, self.layout.root):
            rec = self.records.read(name) or {}
            info = rec.get("info", {})
            self.timings[name] = float(info.get("seconds", 0.0))
            self.skipped.append(name)
            self.progress(name, 1, 1)
            log.info("%s: up to date, skipped", name)
            return info
        return None

    def finish(self, name: str, key: str, outputs: list[str], t0: float, info: dict[str, Any] | None = None) -> dict[str, Any]:
        info = dict(info or {})
        info["seconds"] = round(time.perf_counter() - t0, 3)
        self.timings[name] = info["seconds"]
        self.records.mark(name, key, outputs, info)
        self.ran.append(name)
        return info


def run_prep(
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    prep: PrepConfig,
    runtime: RuntimeConfig,
    *,
    registry: Registry | None = None,
    progress: ProgressFn = no_progress,
) -> PrepResult:
    """Prepare the dataset for ``video`` in ``out_dir`` (resuming whatever is already complete)."""
    reg = registry or default_registry()
    video = Path(video)
    layout = DatasetLayout(out_dir)
    t_start = time.perf_counter()
    # components first: a bad plugin name or option fails before any work
    for group, name in PREP_COMPONENTS:
        sec = getattr(prep, name)
        spec, cfg = reg.resolve(group, sec, where=f"prep.{name}")
        missing = spec.check(cfg)
        if missing:
            raise PluginError(f"prep.{name}: component {sec.kind!r} cannot run here: needs {missing}")
    decoder = reg.build("syncanim.decoders", prep.decoder)
    info = decoder.probe(video)
    if min(info.width, info.height) < MIN_SIDE:
        raise DataError(f"{video.name} is {info.width}x{info.height}; at least {MIN_SIDE} px on the short side is needed")
    if not info.has_audio:
        raise DataError(f"{video.name} has no audio track", hint="prep needs the speech that goes with the video")
    seconds = info.frames_at(prep.fps) / prep.fps
    if seconds + 1e-6 < prep.min_train_s:
        raise DataError(f"{video.name} is {seconds:.1f} s long; training needs at least {prep.min_train_s:g} s "
                        f"(ideally 3-5 minutes) of the person speaking",
                        hint="use a longer clip (prep.min_train_s sets this minimum)")
    _prepare_out(layout)
    write_text_atomic(layout.config, dump_toml({"runtime": runtime.model_dump(mode="json"),
                                                "prep": prep.model_dump(mode="json")}))
    run = _Run(layout, progress)
    fp = fingerprint(video)
    num_frames = info.frames_at(prep.fps)
    warnings: list[str] = []
    if abs(info.fps - prep.fps) > 2e-3 * prep.fps:
        warnings.append(f"the video is {info.fps:.2f} fps; frames were resampled to {prep.fps:g} fps")
    workers = resolve_workers(runtime)
    with contextlib.ExitStack() as stack:
        # worker processes start now (when there are frames to process), so their start-up
        # overlaps the audio stage
        fresh = run.records.read("stream") is None or run.records.read("scan") is None
        runner = stack.enter_context(ChunkRunner(workers, layout.state_dir / "workers.log", start=fresh))
        pending_audio = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="audio"))

        # -- scan: framing and face count on sampled frames -----------------------------
        scan_key = stage_key("scan", fp, prep.crop, prep.crop_scale, prep.scan_frames, _section(prep.landmarks))
        scan = run.cached("scan", scan_key)
        if scan is None:
            t0 = time.perf_counter()
            progress("scan", 0, 1)
            boxes, counts = runner.call(scan_faces, str(video), _section(prep.landmarks), prep.scan_frames)
            scan = run.finish("scan", scan_key, [], t0, _framing(boxes, counts, info, prep))
            progress("scan", 1, 1)
        box = CropBox(*scan["crop"])
        if box.side < prep.size:
            warnings.append(f"frames were upscaled from {box.side} to {prep.size} px, so fine detail is soft; "
                            f"--size {box.side} keeps the source resolution")
        if scan["max_faces"] > 1:
            warnings.append(f"up to {scan['max_faces']} faces were seen in one frame; the largest face is used")

        # -- audio (in a thread: it overlaps the streamed stages) -----------------------
        au_key = stage_key("audio", fp, prep.sample_rate, prep.fps, num_frames, _section(prep.audio))
        audio_job = pending_audio.submit(_audio_stage, run, au_key, video, decoder, reg, prep, num_frames, progress)

        # -- stream: decode -> landmarks -> masks -> background samples -------------------
        sections = {"decoder": _section(prep.decoder), "landmarks": _section(prep.landmarks),
                    "masks": _section(prep.masks), "background": _section(prep.background)}
        stream_key = stage_key("stream", fp, prep.fps, prep.size, box.as_list(), prep.jpeg_quality,
                               scan["max_faces"] > 1, sections)
        chunks = plan_chunks(num_frames, prep.chunk_frames, workers, lambda s, e: stage_key(stream_key, s, e))
        stream_info = run.cached("stream", stage_key(stream_key, len(chunks)))
        if stream_info is None:
            t0 = time.perf_counter()
            todo = [c for c in chunks if not chunk_done(layout, c)]
            done_frames = num_frames - sum(c.size for c in todo)
            state = {"n": done_frames}
            progress("frames", done_frames, num_frames)

            def tick(n: int) -> None:
                state["n"] += n
                progress("frames", state["n"], num_frames)

            job = StreamJob(str(video), str(layout.root), prep.fps, prep.size, tuple(box.as_list()),
                            prep.jpeg_quality, scan["max_faces"] > 1, sections)
            if todo:
                log.info("streaming %d frames in %d chunks with %d workers", num_frames - done_frames, len(todo), workers)
            results = runner.run(job, todo, tick)
            cpu: dict[str, float] = {}
            for r in results:
                for k, v in r.seconds.items():
                    cpu[k] = cpu.get(k, 0.0) + v
            outputs = ["frames", "parsing"] + [str(chunk_path(layout, c.index).relative_to(layout.root)) for c in chunks]
            stream_info = run.finish("stream", stage_key(stream_key, len(chunks)), outputs, t0,
                                     {"cpu": {k: round(v, 3) for k, v in cpu.items()}, "workers": workers})
        au_info = audio_job.result()
    summary = _load_chunks(layout, chunks)

    # -- landmarks: fill short gaps -----------------------------------------------------
    found = ~np.isnan(summary["landmarks"]).any(axis=(1, 2))
    n_missing = int((~found).sum())
    if found.mean() < 0.5:
        raise DataError(f"no face in {n_missing} of {num_frames} frames", hint="prep needs one person's face in most frames")
    lm_key = stage_key("landmarks", stream_key, prep.max_gap_frames)
    if run.cached("landmarks", lm_key) is None:
        t0 = time.perf_counter()
        filled, interp = fill_gaps(summary["landmarks"], prep.max_gap_frames)
        save_npy_atomic(layout.landmarks, filled)
        save_npy_atomic(layout.landmarks_found, found)
        run.finish("landmarks", lm_key, ["landmarks.npy", "landmarks_found.npy"], t0,
                   {"interpolated": int(interp.sum()), "missing": n_missing})
    landmarks = np.load(layout.landmarks)
    lm_info = (run.records.read("landmarks") or {}).get("info", {})
    if n_missing:
        warnings.append(f"no face in {n_missing} frames ({100 * n_missing / num_frames:.1f} %); "
                        f"{lm_info.get('interpolated', 0)} were interpolated, the rest hold the nearest face")

    # -- background plate ---------------------------------------------------------------
    bg_key = stage_key("background", stream_key, _section(prep.background))
    bg_info = run.cached("background", bg_key)
    if bg_info is None:
        t0 = time.perf_counter()
        plate_maker = reg.build("syncanim.backgrounds", prep.background)
        plate, unseen = plate_maker.merge(summary["bg_means"])
        _write_png(layout.background, cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
        _write_png(layout.background_unseen, unseen.astype(np.uint8) * 255)
        bg_info = run.finish("background", bg_key, ["background.png", "background_unseen.png"], t0,
                             {"unseen_fraction": float(unseen.mean())})
    unseen_frac = float(bg_info["unseen_fraction"])
    if unseen_frac > 0.25:
        warnings.append(f"{100 * unseen_frac:.0f} % of the background was never visible and was filled in from around it")

    # -- head pose ----------------------------------------------------------------------
    from ..data.track import load_track, save_track
    from .headpose import nerf_transforms

    # keyed by the tracker's resolved settings, defaults included: a tracker whose defaults change runs again
    _, hp_cfg = reg.resolve("syncanim.head_trackers", prep.head_pose)
    hp_key = stage_key("head_pose", lm_key, prep.size, prep.val_fraction, prep.head_pose.kind, hp_cfg.model_dump())
    if run.cached("head_pose", hp_key) is None:
        t0 = time.perf_counter()
        tracker = reg.build("syncanim.head_trackers", prep.head_pose)
        track = tracker.fit(landmarks, found, (prep.size, prep.size), progress=progress,
                            frames=lambda: (img for _, img in _dataset_frames(layout, num_frames, gray=True)))
        save_track(layout.track, track)
        train, val = nerf_transforms(track, (prep.size, prep.size), prep.val_fraction)
        write_json_atomic(layout.transforms_train, train)
        write_json_atomic(layout.transforms_val, val)
        run.finish("head_pose", hp_key, ["track.npz", "transforms_train.json", "transforms_val.json"], t0)
    track = load_track(layout.track)
    num_val = len(_read_json(layout.transforms_val)["frames"])

    # -- expressions --------------------------------------------------------------------
    ex_key = stage_key("expressions", lm_key, _section(prep.expressions))
    ex_info = run.cached("expressions", ex_key)
    if ex_info is None:
        t0 = time.perf_counter()
        extractor = reg.build("syncanim.expressions", prep.expressions)
        expr = extractor.extract(landmarks, found, frames=lambda: _dataset_frames(layout, num_frames),
                                 fps=prep.fps, progress=progress)
        save_npy_atomic(layout.expressions, expr.values)
        ex_info = run.finish("expressions", ex_key, ["expressions.npy"], t0, {"names": list(expr.names)})
    expressions = np.load(layout.expressions)

    if au_info["rms"] < 1e-3:
        warnings.append("the audio track is silent: lips cannot learn to follow speech")

    # -- checks -> warnings -------------------------------------------------------------
    duration = num_frames / prep.fps
    if duration + 0.5 < prep.min_duration_s:
        warnings.append(f"the clip is {duration:.1f} s long: the lips learn to follow speech from it, and do so "
                        f"better with more ({prep.min_duration_s:g} s or more, ideally 3-5 minutes)")
    heights = checks.face_heights(landmarks[found])
    face_h = float(np.median(heights))
    if face_h < prep.min_face_px:
        warnings.append(f"the face is only {face_h:.0f} px tall at {prep.size}x{prep.size} "
                        f"(at least {prep.min_face_px} px is better): try --crop subject or a closer shot")
    cuts = checks.scene_cuts(summary["thumbs"])
    if cuts:
        at = ", ".join(f"{c / prep.fps:.1f} s" for c in cuts[:5])
        warnings.append(f"{len(cuts)} scene cut(s) at {at}: the model assumes one continuous shot")
    from ..geometry import matrix_to_euler

    euler = np.degrees(matrix_to_euler(track.rotation))
    fw = float(np.linalg.norm(track.canonical[234] - track.canonical[454]))
    motion = checks.motion_stats(euler, track.translation, fw)
    if motion["rotation_range_deg"] > 40 or motion["translation_range_faces"] > 1.0:
        warnings.append(f"large head motion (rotation range {motion['rotation_range_deg']:.0f} deg, "
                        f"movement {motion['translation_range_faces']:.1f} face widths): expect blur in extreme poses")
    light = checks.lighting_change(summary["face_luma"])
    if light > 0.15:
        warnings.append(f"the face brightness changes by {100 * light:.0f} % over the clip (lighting changes)")
    warnings.extend(track.notes)
    if track.reprojection_error_px > 3.0:
        warnings.append(f"head tracking is uncertain (mean reprojection error {track.reprojection_error_px:.1f} px)")
    for w in warnings:
        log.debug("warning: %s", w)

    # -- report + manifest --------------------------------------------------------------
    from .report import write_markdown, write_pictures

    t0 = time.perf_counter()
    progress("report", 0, 1)
    manifest = Manifest(
        syncanim_version=__version__,
        source=SourceInfo(path=str(video.resolve()), fingerprint=fp, width=info.width, height=info.height, fps=info.fps,
                          num_frames=info.num_frames, duration_s=info.duration_s, codec=info.codec,
                          audio_rate=info.audio_rate),
        num_frames=num_frames, fps=prep.fps, duration_s=duration, image_size=prep.size,
        crop=box.as_list() if box != full_frame_box(info.width, info.height) else None,
        focal=track.focal, cx=track.cx, cy=track.cy,
        reprojection_error_px=track.reprojection_error_px, reprojection_error_all_px=track.reprojection_error_all_px,
        num_train=num_frames - num_val, num_val=num_val,
        frames_without_face=n_missing, frames_interpolated=int(lm_info.get("interpolated", 0)),
        max_faces_seen=int(scan["max_faces"]), face_height_px=face_h,
        background_unseen_fraction=unseen_frac,
        expressions=list(ex_info["names"]), expression_backend=prep.expressions.kind,
        audio_backend=prep.audio.kind, audio_per_frame=int(au_info["per_frame"]), audio_dim=int(au_info["dim"]),
        sample_rate=prep.sample_rate, labels={str(k): v for k, v in LABEL_NAMES.items()},
        timings={}, stream_cpu_s=dict(stream_info.get("cpu", {})), warnings=warnings,
    )
    write_pictures(layout, manifest, landmarks=landmarks, found=found, euler_deg=euler, track=track,
                   expressions=expressions, cuts=cuts)
    run.timings["report"] = round(time.perf_counter() - t0, 3)
    progress("report", 1, 1)
    timings = dict(run.timings)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    manifest = manifest.model_copy(update={"timings": timings})
    write_markdown(layout, manifest, motion)
    write_manifest(layout, manifest)
    return PrepResult(layout, manifest, run.ran, run.skipped)


# --- helpers -------------------------------------------------------------------------------


def _prepare_out(layout: DatasetLayout) -> None:
    writable_folder(layout.root)
    writable_folder(layout.state_dir)
    # a finished manifest no longer describes the folder once anything is recomputed
    layout.manifest.unlink(missing_ok=True)


def _audio_stage(run: _Run, key: str, video: Path, decoder: Any, reg: Registry, prep: PrepConfig,
                 num_frames: int, progress: ProgressFn) -> dict[str, Any]:
    """16 kHz mono audio and its per-frame features -> ``audio.wav``, ``audio_features.npy``."""
    info = run.cached("audio", key)
    if info is not None:
        return info
    t0 = time.perf_counter()
    progress("audio", 0, 2)
    wave = decoder.audio(video, prep.sample_rate)
    write_wav(run.layout.audio, wave)
    progress("audio", 1, 2)
    backend = reg.build("syncanim.asr", prep.audio)
    feats = backend.extract(wave, prep.fps, num_frames=num_frames, progress=progress)
    if feats.shape[0] != num_frames:
        raise PluginError(f"audio backend {prep.audio.kind} returned {feats.shape[0]} frames, expected {num_frames}")
    save_npy_atomic(run.layout.audio_features, feats.astype(np.float32))
    progress("audio", 2, 2)
    return run.finish("audio", key, ["audio.wav", "audio_features.npy"], t0,
                      {"per_frame": int(feats.shape[1]), "dim": int(feats.shape[2]), "rms": wave.rms(),
                       "duration_s": wave.duration_s})


def _framing(boxes: list[list[float]], counts: list[int], info: Any, prep: PrepConfig) -> dict[str, Any]:
    """The crop square and face statistics from the scan; DataError when most frames have no face."""
    with_face = sum(c > 0 for c in counts)
    if with_face < 0.5 * len(counts):
        raise DataError(f"no face found in {len(counts) - with_face} of {len(counts)} sampled frames",
                        hint="prep needs one person's face, visible in most frames")
    w, h = info.width, info.height
    mode = prep.crop
    if mode == "auto":
        mode = "none" if w == h else "subject"
    if mode == "subject":
        box = subject_box(np.array(boxes, np.float64), w, h, prep.crop_scale)
    elif mode == "center":
        box = center_box(w, h)
    else:
        box = full_frame_box(w, h)
    return {"crop": box.as_list(), "max_faces": int(max(counts)), "sampled": len(counts), "with_face": int(with_face)}


def _load_chunks(layout: DatasetLayout, chunks: list) -> dict[str, Any]:
    parts: dict[str, list] = {"landmarks": [], "thumbs": [], "face_luma": [], "bg_means": []}
    for c in chunks:
        with np.load(chunk_path(layout, c.index)) as z:
            parts["landmarks"].append(z["landmarks"])
            parts["thumbs"].append(z["thumbs"])
            parts["face_luma"].append(z["face_luma"])
            parts["bg_means"].append(z["bg_mean"].astype(np.float32))
    return {"landmarks": np.concatenate(parts["landmarks"]), "thumbs": np.concatenate(parts["thumbs"]),
            "face_luma": np.concatenate(parts["face_luma"]), "bg_means": parts["bg_means"]}


def _dataset_frames(layout: DatasetLayout, n: int, gray: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, frame)`` for the dataset's frames in order: ``[H, W, 3]`` uint8 RGB, or ``[H, W]`` with ``gray``."""
    for k in range(n):
        img = cv2.imread(str(layout.frame(k)), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"frame {layout.frame(k)} is missing or unreadable; rerun prep")
        yield k, img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    write_atomic(path, lambda t: t.write_bytes(buf.tobytes()))


def _read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text())

