"""The live loop: a source's blocks -> speech features -> frames -> JPEG -> every viewer, with each frame's
latency measured from the moment its speech arrived.

Frame ``k``'s speech has arrived when the sample at its end, ``(k + 1) / fps``, has (the wall time the
source gives with each block). Its latency is the time from then to the moment its message is handed
to the viewers; the stages it is split into:

- ``lookahead``: waiting for the audio after the frame that its features, mouth and motion read (the
  stream's lag plus the feature backend's own look-ahead: speech cannot be drawn before it is heard);
- ``queue``: the block that completed it waiting to be processed (zero unless the loop falls behind);
- ``features``, ``motion``, ``conditioning``, ``render``, ``encode`` (JPEG): the work. Features, motion and
  conditioning are prepared on one thread, drawing and encoding done on another, so the latency is less
  than the sum of the stages when the drawing of one frame overlaps the preparation of the next.

A frame whose speech is older than ``max_behind_ms`` when its turn comes is not drawn (its sound is still
sent): a slow machine shows fewer frames, never later ones.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import LiveConfig
from ..stream.avatar import AvatarStream, Call
from ..stream.speech import SpeechStream
from .protocol import pack
from .sources import AudioSource

log = logging.getLogger(__name__)

STAGES = ("lookahead", "queue", "features", "motion", "conditioning", "render", "encode")
KEEP = 30_000  # frames of figures kept (20 minutes at 25 fps)


@dataclass
class FrameRecord:
    index: int
    drawn: bool
    out: float  # monotonic time the message was handed on
    latency_ms: float
    stages: dict[str, float]


class LiveStats:
    """The figures of the last :data:`KEEP` frames in a ring of preallocated rows (memory does not grow over
    a long session), thread-safe."""

    COLS = ("out", "drawn", "latency_ms", *STAGES)

    def __init__(self, keep: int = KEEP) -> None:
        self.lock = threading.Lock()
        self.rows = np.zeros((keep, len(self.COLS)), np.float64)  # [KEEP, 3 + stages]
        self.frames = 0  # frames recorded in all
        self.drawn = 0

    def add(self, r: FrameRecord) -> None:
        row = [r.out, float(r.drawn), r.latency_ms, *(r.stages.get(s, 0.0) for s in STAGES)]
        with self.lock:
            self.rows[self.frames % len(self.rows)] = row
            self.frames += 1
            self.drawn += int(r.drawn)

    def table(self) -> np.ndarray:
        """The kept rows, oldest first: ``[N, len(COLS)] float64``."""
        with self.lock:
            n, k = self.frames, len(self.rows)
            if n <= k:
                return self.rows[:n].copy()
            i = n % k
            return np.concatenate([self.rows[i:], self.rows[:i]])

    def summary(self, since: float | None = None) -> dict:
        """p50 / p95 of the latency and of each stage (ms), frames out and drawn, fps; only the frames handed
        on after ``since`` (monotonic) when given."""
        t = self.table()
        if since is not None:
            t = t[t[:, 0] >= since]
        drawn = t[t[:, 1] > 0]
        out: dict = {"frames": len(t), "drawn": len(drawn), "skipped": len(t) - len(drawn)}
        if len(t) > 1:
            span = t[-1, 0] - t[0, 0]
            out["fps_out"] = (len(t) - 1) / span if span > 0 else None
            out["fps_drawn"] = (len(drawn) - 1) / span if span > 0 and len(drawn) > 1 else 0.0
        if len(drawn):
            out["latency_ms"] = percentiles(drawn[:, 2])
            out["stages_ms"] = {s: percentiles(drawn[:, 3 + j]) for j, s in enumerate(STAGES)}
        return out


def percentiles(values) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2),
            "max": round(float(v.max()), 2)}


class Arrivals:
    """When each sample of the source arrived: reads' (end sample, monotonic time), oldest dropped. A read
    that returns several blocks (the loop fell behind) got them in real time: earlier samples arrived
    earlier, one sample period each."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.ends: deque[tuple[int, float]] = deque()

    def add(self, end: int, t: float) -> None:
        self.ends.append((end, t))

    def at(self, sample: int) -> float:
        """The arrival time of absolute sample ``sample - 1``."""
        while len(self.ends) > 1 and self.ends[0][0] < sample:
            self.ends.popleft()
        end, t = self.ends[0]
        return t - max(0, end - sample) / self.rate


@dataclass
class _Work:
    """One call handed from the preparing thread to the drawing one."""

    call: Call
    spoken: dict[int, float]  # frame -> monotonic time its speech had arrived
    sound: dict[int, np.ndarray]  # frame -> its sound [n] float32
    arrived: float  # when the read that completed it arrived
    started: float  # when that read's processing started
    features_ms: float


class LiveEngine:
    """Runs the loop of one stream on two threads (:meth:`start`): one reads the source and prepares each call
    (features, motion, conditioning), the other draws, encodes and hands each frame's message to
    ``publish(message, index, drawn)``, so one call is drawn while the next is prepared."""

    def __init__(self, stream: AvatarStream, speech: SpeechStream, source: AudioSource, live: LiveConfig,
                 publish: Callable[[bytes, int, bool], None], max_frames: int | None = None) -> None:
        self.stream, self.speech, self.source, self.cfg, self.publish = stream, speech, source, live, publish
        self.fps = stream.a.info.fps
        self.rate = speech.rate
        self.max_frames = max_frames
        self.stats = LiveStats()
        self.stop_event = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.work: queue.Queue[_Work | None] = queue.Queue(maxsize=4)
        self.threads = [threading.Thread(target=self._guard, args=(self._prepare_loop,), name="syncanim-prepare",
                                         daemon=True),
                        threading.Thread(target=self._guard, args=(self._draw_loop,), name="syncanim-draw", daemon=True)]
        self.arrivals = Arrivals(self.rate)
        self.audio = np.zeros(0, np.float32)  # samples [audio0, received) for the frames' sound
        self.audio0 = 0
        self.received = 0

    @property
    def thread(self) -> threading.Thread:
        return self.threads[1]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as e:  # handed to the caller (the server or the bench), which reports it
            if self.error is None:
                self.error = e
            log.debug("live loop failed", exc_info=True)
        finally:
            self.stop_event.set()
            self.finished.set()
            if threading.current_thread() is self.threads[0]:
                with contextlib.suppress(queue.Full):
                    self.work.put_nowait(None)

    def _prepare_loop(self) -> None:
        while not self.stop_event.is_set():
            block, arrived = self.source.read()
            t0 = time.monotonic()
            self.received += len(block)
            self.arrivals.add(self.received, arrived)
            self.audio = np.concatenate([self.audio, block])
            calls = self.stream.prepare(self.speech.push(block))
            t1 = time.monotonic()
            for c in calls:
                ks = [int(k) for k in c.idx]
                w = _Work(c, {k: self.arrivals.at(int(np.ceil((k + 1) / self.fps * self.rate))) for k in ks},
                          {k: self._sound(k) for k in ks}, arrived, t0, (t1 - t0) * 1e3)
                while not self.stop_event.is_set():
                    try:
                        self.work.put(w, timeout=0.5)
                        break
                    except queue.Full:
                        continue
            self._trim()

    def _draw_loop(self) -> None:
        behind = self.cfg.max_behind_ms / 1e3
        while not self.stop_event.is_set():
            try:
                w = self.work.get(timeout=0.5)
            except queue.Empty:
                continue
            if w is None:
                return
            frames = self.stream.draw(w.call, keep=lambda k, w=w: time.monotonic() - w.spoken[k] <= behind)
            for f in frames:
                t2 = time.monotonic()
                jpeg = None
                if f.image is not None:
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
                    jpeg = buf.tobytes() if ok else None
                t3 = time.monotonic()
                msg = pack(f.index, f.index / self.fps, time.time(), self.rate, w.sound[f.index], jpeg)
                self.publish(msg, f.index, jpeg is not None)
                t_out = time.monotonic()
                spoken = w.spoken[f.index]
                stages = {"lookahead": (w.arrived - spoken) * 1e3, "queue": (w.started - w.arrived) * 1e3,
                          "features": w.features_ms, "motion": f.ms.get("motion", 0.0),
                          "conditioning": f.ms.get("conditioning", 0.0), "render": f.ms.get("render", 0.0),
                          "encode": (t3 - t2) * 1e3}
                self.stats.add(FrameRecord(f.index, jpeg is not None, t_out, (t_out - spoken) * 1e3, stages))
                if self.max_frames is not None and f.index + 1 >= self.max_frames:
                    self.stop_event.set()
                    return

    def _sound(self, k: int) -> np.ndarray:
        a = int(round(k / self.fps * self.rate)) - self.audio0
        b = int(round((k + 1) / self.fps * self.rate)) - self.audio0
        return self.audio[max(0, a):max(0, b)].copy()

    def _trim(self) -> None:
        keep_from = int(round(self.stream.done / self.fps * self.rate)) - self.audio0
        if keep_from > self.rate:  # in steps of a second, not every block
            self.audio = self.audio[keep_from:]
            self.audio0 += keep_from
