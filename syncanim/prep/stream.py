"""The streamed part of prep: decode -> landmarks -> masks -> background samples, chunk by chunk.

The video is cut into chunks of frames; each chunk is a resumable unit processed by one worker
process (so the stages overlap across cores and memory stays bounded by one frame per worker).
A chunk writes its frames and label maps, then its summary (``.syncanim/chunks/NNNNN.npz``, holding
its key) last: a chunk whose summary exists with the right key is complete.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import PluginSection
from ..data.files import save_npz_atomic, write_bytes_atomic
from ..data.labels import FACE
from ..data.manifest import DatasetLayout
from ..data.png import encode_grey_png
from ..mp_runtime import native_stderr_to, redirect_native_stderr
from ..registry import default_registry
from .crop import CropBox, apply_crop

THUMB = 32  # side of the grey thumbnails kept per frame for scene-cut detection
STAGES = ("decode", "landmarks", "masks", "background", "write")


@dataclass(frozen=True)
class StreamJob:
    """Everything a worker needs, picklable."""

    video: str
    out_dir: str
    fps: float
    size: int
    crop: tuple[int, int, int]
    jpeg_quality: int
    multi_face: bool
    sections: dict[str, dict[str, Any]]  # decoder / landmarks / masks / background: kind + options


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    stop: int
    key: str

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class ChunkResult:
    index: int
    seconds: dict[str, float] = field(default_factory=dict)


def chunk_path(layout: DatasetLayout, index: int) -> Path:
    return layout.state_dir / "chunks" / f"{index:05d}.npz"


def chunk_done(layout: DatasetLayout, chunk: Chunk) -> bool:
    p = chunk_path(layout, chunk.index)
    if not p.is_file():
        return False
    try:
        with np.load(p) as z:
            if str(z["key"]) != chunk.key:
                return False
    except (OSError, ValueError, KeyError):
        return False
    return layout.frame(chunk.start).is_file() and layout.frame(chunk.stop - 1).is_file()


def plan_chunks(num_frames: int, chunk_frames: int, workers: int, key_of: Callable[[int, int], str]) -> list[Chunk]:
    """Split [0, num_frames) into chunks of at most ``chunk_frames``, at least one per worker."""
    per = max(16, min(chunk_frames, -(-num_frames // max(1, workers))))
    out, s = [], 0
    while s < num_frames:
        e = min(num_frames, s + per)
        if num_frames - e < per // 4:  # no tiny tail chunk
            e = num_frames
        out.append(Chunk(len(out), s, e, key_of(s, e)))
        s = e
    return out


class _Components:
    """The components one worker builds once and reuses for all its chunks."""

    def __init__(self, job: StreamJob) -> None:
        reg = default_registry()
        s = job.sections
        self.decoder = reg.build("syncanim.decoders", PluginSection(**s["decoder"]))
        self.tracker = reg.build("syncanim.trackers", PluginSection(**s["landmarks"]))
        self.segmenter = reg.build("syncanim.segmenters", PluginSection(**s["masks"]))
        self.plate = reg.build("syncanim.backgrounds", PluginSection(**s["background"]))


def process_chunk(job: StreamJob, chunk: Chunk, comps: _Components, tick: Callable[[int], None]) -> ChunkResult:
    """Run the streamed stages over one chunk and write its outputs. ``tick(n)``: n more frames done."""
    layout = DatasetLayout(job.out_dir)
    box = CropBox(*job.crop)
    n, size = chunk.size, job.size
    lms = np.full((n, 478, 3), np.nan, np.float32)
    faces = np.zeros(n, np.int8)
    thumbs = np.zeros((n, THUMB, THUMB), np.uint8)
    face_luma = np.full(n, np.nan, np.float32)
    acc = comps.plate.new_chunk(size, size)
    sec = dict.fromkeys(STAGES, 0.0)
    comps.tracker.start(multi_face=job.multi_face)
    comps.segmenter.start()
    done = 0
    t = time.perf_counter()
    for k, src in comps.decoder.frames(job.video, job.fps, chunk.start, chunk.stop):
        rgb = apply_crop(src, box, size)
        t1 = time.perf_counter()
        sec["decode"] += t1 - t
        pts, nf = comps.tracker.track(rgb)
        t2 = time.perf_counter()
        sec["landmarks"] += t2 - t1
        labels = comps.segmenter.segment(rgb, pts)
        t3 = time.perf_counter()
        sec["masks"] += t3 - t2
        comps.plate.add(acc, k, rgb, labels)
        t4 = time.perf_counter()
        sec["background"] += t4 - t3
        i = k - chunk.start
        faces[i] = nf
        if pts is not None:
            lms[i] = pts
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        thumbs[i] = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        face = labels == FACE
        if face.any():
            face_luma[i] = float(grey[face].mean())
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, job.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed at frame {k}")
        write_bytes_atomic(layout.frame(k), jpg.tobytes())
        write_bytes_atomic(layout.parsing(k), encode_grey_png(labels))
        t = time.perf_counter()
        sec["write"] += t - t4
        done += 1
        if done % 10 == 0:
            tick(10)
    tick(done % 10)
    if done != n:
        raise RuntimeError(f"chunk {chunk.index}: decoded {done} of {n} frames")
    save_npz_atomic(chunk_path(layout, chunk.index), key=np.array(chunk.key), landmarks=lms, faces=faces,
                    thumbs=thumbs, face_luma=face_luma, bg_mean=acc.mean().astype(np.float16))
    return ChunkResult(chunk.index, sec)


def scan_faces(video: str, landmarks: dict[str, Any], max_frames: int) -> tuple[list[list[float]], list[int]]:
    """Faces in up to ``max_frames`` frames spread over the video (cheaply decoded keyframes).

    Returns the largest face's box ``[x0, y0, x1, y1]`` (source pixels) in each frame that has one,
    and the number of faces in every sampled frame.
    """
    from ..media.video import sample_frames

    tracker = default_registry().build("syncanim.trackers", PluginSection(**landmarks))
    boxes, counts = [], []
    try:
        for _, rgb in sample_frames(video, max_frames):
            faces = tracker.scan(rgb)
            counts.append(len(faces))
            if faces:
                b = max(faces, key=lambda f: f.area)
                boxes.append([b.x0, b.y0, b.x1, b.y1])
    finally:
        tracker.close()
    return boxes, counts


# --- worker processes -----------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(q: Any, log_path: str) -> None:
    # native libraries (TFLite, glog) write to fd 2: keep them in a log file instead of the terminal
    redirect_native_stderr(log_path)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _worker["queue"] = q
    from .. import mp_runtime

    mp_runtime.import_mediapipe()  # pay the import while the parent is still scanning


def _run_chunk(task: tuple[StreamJob, Chunk]) -> ChunkResult:
    job, chunk = task
    if _worker.get("job") != job:
        _worker["job"], _worker["comps"] = job, _Components(job)
    q = _worker["queue"]
    return process_chunk(job, chunk, _worker["comps"], lambda n: q.put(n))


class ChunkRunner:
    """Processes chunks in ``workers`` processes, started at construction so that their start-up
    overlaps whatever the caller does next; with one worker, in this process."""

    def __init__(self, workers: int, log_path: str | os.PathLike[str], start: bool = True) -> None:
        self.workers = workers
        self.log_path = str(log_path)
        self._pool = None
        if start:
            self._start()

    def _start(self) -> None:
        if self._pool is None and self.workers > 1:
            ctx = mp.get_context("spawn")
            self._queue = ctx.Queue()
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self._queue, self.log_path))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in a worker (its imports are already paid there), or here with one worker."""
        self._start()
        if self._pool is None:
            with native_stderr_to(self.log_path):
                return fn(*args)
        return self._pool.apply(fn, args)

    def run(self, job: StreamJob, chunks: Sequence[Chunk], tick: Callable[[int], None]) -> list[ChunkResult]:
        layout = DatasetLayout(job.out_dir)
        layout.frames_dir.mkdir(parents=True, exist_ok=True)
        layout.parsing_dir.mkdir(parents=True, exist_ok=True)
        (layout.state_dir / "chunks").mkdir(parents=True, exist_ok=True)
        if not chunks:
            return []
        if len(chunks) > 1:
            self._start()
        if self._pool is None or len(chunks) == 1:
            with native_stderr_to(self.log_path):
                comps = _Components(job)
                return [process_chunk(job, c, comps, tick) for c in chunks]
        results: list[ChunkResult] = []
        it = self._pool.imap_unordered(_run_chunk, [(job, c) for c in chunks])
        while len(results) < len(chunks):
            with contextlib.suppress(mp.TimeoutError):
                results.append(it.next(timeout=0.1))
            _drain(self._queue, tick)
        _drain(self._queue, tick)
        return results

    def close(self, failed: bool = False) -> None:
        if self._pool is not None:
            if failed:
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> ChunkRunner:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


def _drain(q: Any, tick: Callable[[int], None]) -> None:
    while True:
        try:
            tick(q.get_nowait())
        except queue_mod.Empty:
            return
