"""Probe, stream and write video files with PyAV (FFmpeg inside the wheel; no system ffmpeg needed)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..audio.waveform import Waveform
from ..data.files import writable_file
from ..errors import DataError, ResourceError
from ..inputs import check_input_file, ffmpeg_reason


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds. ``num_frames`` counts frames at the file's own rate."""

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    codec: str
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None

    def frames_at(self, fps: float) -> int:
        """How many frames the video has when resampled to ``fps``."""
        if abs(fps - self.fps) < 1e-3:
            return self.num_frames
        return max(1, int(math.floor(self.num_frames / self.fps * fps + 1e-6)))


_NOT_VIDEO_FORMATS = {"tty"}  # FFmpeg's text-file "video" (renders any text file as ANSI art)


def _not_readable(path: Path, why: str) -> DataError:
    return DataError(f"{path.name} is not a readable video ({why})",
                     hint="give an mp4/mov/mkv/webm/avi file; it may be truncated or corrupt")


def _open(path: Path, need_video: bool = True):
    """Open a container; with ``need_video`` it must hold a decodable video stream."""
    import av

    check_input_file(path)
    try:
        c = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
        raise _not_readable(path, ffmpeg_reason(e)) from e
    if not need_video:
        return c
    fmt = getattr(c.format, "name", "") or ""
    ok = bool(c.streams.video) and set(fmt.split(",")).isdisjoint(_NOT_VIDEO_FORMATS)
    if ok:
        v = c.streams.video[0]
        cc = v.codec_context
        ok = cc is not None and bool(cc.width) and bool(cc.height)
    if not ok:
        c.close()
        raise _not_readable(path, "no video stream" if not c.streams.video else "no usable video stream")
    return c


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Read a container's header (and count packets when the header has no frame count)."""
    p = Path(path)
    with _open(p) as c:
        v = c.streams.video[0]
        rate = v.average_rate or v.guessed_rate or v.base_rate
        if not rate or float(rate) <= 0:
            raise DataError(f"{p.name}: cannot tell the frame rate")
        fps = float(rate)
        n = int(v.frames or 0)
        if n <= 0:
            if v.duration and v.time_base:
                n = int(round(float(v.duration * v.time_base) * fps))
            elif c.duration:
                n = int(round(c.duration / 1e6 * fps))
        if n <= 0:
            n = sum(1 for pkt in c.demux(v) if pkt.size)
        a = c.streams.audio[0] if c.streams.audio else None
        w, h = v.codec_context.width, v.codec_context.height
        return MediaInfo(
            path=str(p), width=int(w), height=int(h), fps=fps, num_frames=n, duration_s=n / fps,
            codec=v.codec_context.name, has_audio=a is not None,
            audio_rate=int(a.rate) if a is not None else None,
            audio_channels=int(a.channels) if a is not None else None,
        )


def iter_frames(
    path: str | os.PathLike[str], fps: float, start: int = 0, stop: int | None = None,
    keep: set[int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, rgb)`` for output frames ``start <= k < stop`` at ``fps``: ``rgb: [H, W, 3] uint8``.

    With ``keep``, only frames whose index is in it are converted and yielded.

    Output frame k shows the source frame nearest in time to ``k / fps`` (so a 30 fps source read at
    25 fps drops frames evenly). Seeks to the keyframe before ``start``. A stream that ends more than
    two frames before ``stop`` raises DataError (truncated or corrupt file).
    """
    import av

    p = Path(path)
    if stop is not None and stop <= start:
        return
    with _open(p) as c:
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        tb = float(v.time_base)
        t0 = float(v.start_time * v.time_base) if v.start_time is not None else 0.0
        k = start
        prev = None  # the last decoded av.VideoFrame; converted to RGB only when shown
        prev_t = -math.inf
        src_dt = 1.0 / float(v.average_rate or fps)
        try:
            if start > 0:
                target = max(0.0, start / fps - 1.0) + t0
                c.seek(int(target / tb), stream=v, backward=True, any_frame=False)
            for frame in c.decode(v):
                if frame.pts is None:
                    continue
                t = frame.pts * tb - t0
                if prev is not None:
                    mid = 0.5 * (prev_t + t)
                    rgb = None
                    while (stop is None or k < stop) and k / fps < mid:
                        if keep is None or k in keep:
                            rgb = prev.to_ndarray(format="rgb24") if rgb is None else rgb
                            yield k, rgb
                        k += 1
                if stop is not None and k >= stop:
                    return
                prev, prev_t = frame, t
        except av.error.FFmpegError as e:
            raise DataError(f"{p.name}: decoding failed at frame {k} ({e})", hint="the file may be truncated or corrupt") from e
        # the last source frame covers up to one source-frame duration after its timestamp
        last = prev.to_ndarray(format="rgb24") if prev is not None else None
        while last is not None and (stop is None or k < stop) and k / fps < prev_t + src_dt - 1e-9:
            if keep is None or k in keep:
                yield k, last
            k += 1
        if stop is not None and k < stop:
            if stop - k > 2 or last is None:
                raise DataError(f"{p.name}: the video ends at frame {k}, expected {stop}",
                                hint="the file is truncated or corrupt")
            while k < stop:  # a frame or two short: rounding of the container's duration
                if keep is None or k in keep:
                    yield k, last
                k += 1


class VideoWriter:
    """Write ``[H, W, 3] uint8`` frames to an H.264 mp4, with an optional AAC track (``audio``) muxed in.

    The file appears at ``path`` only when ``close()`` succeeds (written to a ``.part`` file first).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, width: int, height: int,
                 audio: Waveform | None = None, crf: int = 18, preset: str = "veryfast") -> None:
        import av

        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".part")
        if width % 2 or height % 2:
            raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
        writable_file(self.path)  # av.open creates the file only at its first write
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._c = av.open(str(self.tmp), mode="w", format="mp4")
        except (OSError, av.error.FFmpegError) as e:
            self.tmp.unlink(missing_ok=True)
            raise ResourceError(f"cannot write {self.path}: {e}") from e
        self._closed = False
        try:
            self._setup(fps, width, height, audio, crf, preset)
        except BaseException:
            self.abort()
            raise

    def _setup(self, fps: float, width: int, height: int, audio: Waveform | None, crf: int, preset: str) -> None:
        self.fps = Fraction(fps).limit_denominator(1001)
        self._v = self._c.add_stream("libx264", rate=self.fps)
        self._v.width, self._v.height, self._v.pix_fmt = width, height, "yuv420p"
        self._v.options = {"crf": str(crf), "preset": preset}
        self._audio = audio if audio is not None and len(audio.samples) else None
        if self._audio is not None:  # streams must exist before the header is written
            self._a = self._c.add_stream("aac", rate=self._audio.sample_rate)
            self._a.layout = "mono"
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected [H, W, 3] uint8 frame, got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        for pkt in self._v.encode(frame):
            self._c.mux(pkt)
        self.frames += 1

    def close(self) -> Path:
        """Flush video, mux the audio track, and move the file into place."""
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.tmp.unlink(missing_ok=True)
            raise ResourceError(f"cannot write {self.path}: {e.strerror or e}") from None
        return self.path

    def _finish(self) -> None:
        import av

        for pkt in self._v.encode():
            self._c.mux(pkt)
        if self._audio is not None:
            step = 1024
            x = self._audio.samples.astype(np.float32)
            for i in range(0, len(x), step):
                fr = av.AudioFrame.from_ndarray(x[None, i:i + step].copy(), format="fltp", layout="mono")
                fr.sample_rate = self._audio.sample_rate
                fr.pts = i
                for pkt in self._a.encode(fr):
                    self._c.mux(pkt)
            for pkt in self._a.encode(None):
                self._c.mux(pkt)
        self._c.close()
        self._closed = True

    def abort(self) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):  # already failing; the .part file is removed below
                self._c.close()
            self._closed = True
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def sample_frames(path: str | os.PathLike[str], max_frames: int) -> list[tuple[float, np.ndarray]]:
    """Up to ``max_frames`` frames spread over the video, cheaply: ``(time_s, rgb [H, W, 3] uint8)``.

    Decodes keyframes only (no reference chains to follow). When the file has too few keyframes
    to spread ``max_frames // 4`` over it, it decodes the stream once and keeps evenly spaced frames.
    """
    import av

    p = Path(path)
    out: list[tuple[float, np.ndarray]] = []
    with _open(p) as c:
        v = c.streams.video[0]
        v.codec_context.skip_frame = "NONKEY"
        tb = float(v.time_base)
        try:
            for frame in c.decode(v):
                if frame.pts is not None:
                    out.append((frame.pts * tb, frame.to_ndarray(format="rgb24")))
        except av.error.FFmpegError:
            pass  # a damaged tail: the full decode reports it precisely
    if len(out) < max(2, max_frames // 4):
        info = probe(p)
        picks = set(np.linspace(0, max(0, info.num_frames - 1), max_frames).round().astype(int).tolist())
        out = [(k / info.fps, rgb) for k, rgb in iter_frames(p, info.fps, 0, info.num_frames, keep=picks)]
    if len(out) > max_frames:
        keep = np.linspace(0, len(out) - 1, max_frames).round().astype(int)
        out = [out[i] for i in sorted(set(keep))]
    return out
