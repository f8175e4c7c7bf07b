"""Where live speech comes from, block by block, in real time.

A source gives blocks of 16 kHz mono float32 samples with the wall time (``time.monotonic``) at which
each block's last sample arrived. All of them keep real time: a microphone by its hardware, the others by
the clock. When nobody speaks they give silence, so the stream (and the person) goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import DataError, ResourceError


class AudioSource(Protocol):
    rate: int
    block: int  # samples per block

    def read(self) -> tuple[np.ndarray, float]:
        """The audio that has arrived since the last call, ``[n * block] float32`` (at least one block: waits for
        it), and the monotonic time its last sample arrived. A caller that falls behind gets all it missed."""
        ...

    def close(self) -> None: ...


class Clock:
    """Real time, block by block: block ``i`` is due ``(i + 1) * block / rate`` seconds after the start."""

    def __init__(self, rate: int, block: int) -> None:
        self.rate, self.block = rate, block
        self.t0: float | None = None
        self.i = 0

    def wait(self) -> tuple[int, float]:
        """Sleep until the next block is due; how many blocks are due (at least 1) and the last one's due time."""
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + (self.i + 1) * self.block / self.rate
        if due > now:
            time.sleep(due - now)
            now = due
        n = max(1, int((now - self.t0) * self.rate / self.block) - self.i)
        self.i += n
        return n, self.t0 + self.i * self.block / self.rate


class PushBuffer:
    """Samples pushed by another thread (the viewer page's microphone), taken a block at a time; a short
    cushion absorbs network jitter and anything beyond ``max_s`` is dropped (the oldest)."""

    def __init__(self, rate: int, cushion_s: float = 0.06, max_s: float = 0.5) -> None:
        self.rate = rate
        self.cushion, self.max = int(cushion_s * rate), int(max_s * rate)
        self.lock = threading.Lock()
        self.buf = np.zeros(0, np.float32)
        self.playing = False
        self.dropped = 0

    def feed(self, samples: np.ndarray) -> None:
        with self.lock:
            self.buf = np.concatenate([self.buf, np.asarray(samples, np.float32).reshape(-1)])
            if len(self.buf) > self.max:
                self.dropped += len(self.buf) - self.max
                self.buf = self.buf[-self.max:]

    def take(self, n: int) -> np.ndarray | None:
        """``n`` samples, or None when there are none to give (silence)."""
        with self.lock:
            if not self.playing and len(self.buf) < self.cushion:
                return None
            self.playing = len(self.buf) > 0
            out = np.zeros(n, np.float32)
            k = min(n, len(self.buf))
            out[:k] = self.buf[:k]
            self.buf = self.buf[k:]
            return out if k else None


class ClockSource:
    """Silence in real time, with whatever a :class:`PushBuffer` holds mixed in."""

    def __init__(self, rate: int, block: int, push: PushBuffer | None = None) -> None:
        self.rate, self.block, self.push = rate, block, push
        self.clock = Clock(rate, block)

    def read(self) -> tuple[np.ndarray, float]:
        blocks, due = self.clock.wait()
        n = blocks * self.block
        x = self.push.take(n) if self.push is not None else None
        return (x if x is not None else np.zeros(n, np.float32)), due

    def close(self) -> None:
        pass


class FileSource(ClockSource):
    """A file played in real time, then silence; ``loop``: the file again and again."""

    def __init__(self, path: Path, rate: int, block: int, push: PushBuffer | None = None, loop: bool = False) -> None:
        from ..audio.waveform import read_audio

        super().__init__(rate, block, push)
        self.samples = read_audio(path, rate).samples.astype(np.float32)
        if len(self.samples) == 0:
            raise DataError(f"{Path(path).name} holds no audio")
        self.pos, self.loop = 0, loop

    @property
    def finished(self) -> bool:
        return not self.loop and self.pos >= len(self.samples)

    def read(self) -> tuple[np.ndarray, float]:
        x, due = super().read()
        n = len(x)
        if self.loop:
            part = self.samples[(self.pos + np.arange(n)) % len(self.samples)]
        else:
            part = self.samples[self.pos:self.pos + n]
        if len(part):
            x = x.copy()
            x[:len(part)] += part
        self.pos += n
        return x, due


class MicSource:
    """The default input device through PortAudio (``sounddevice``), with the page's microphone mixed in."""

    def __init__(self, rate: int, block: int, push: PushBuffer | None = None, device: str | int | None = None) -> None:
        try:
            import sounddevice as sd
        except OSError as e:  # the PortAudio library is missing
            raise ResourceError("--mic needs the PortAudio library, which is not installed",
                                hint="install it (Debian/Ubuntu: apt install libportaudio2; macOS: brew install "
                                     "portaudio), or use --audio FILE or the page's microphone") from e
        except ImportError as e:
            raise ResourceError("--mic needs the sounddevice package", hint="pip install sounddevice") from e
        self.rate, self.block, self.push = rate, block, push
        self.q: queue.Queue[tuple[np.ndarray, float]] = queue.Queue(maxsize=max(4, 2 * rate // block))
        self.overflows = 0

        def callback(indata, frames, t, status) -> None:  # PortAudio's thread
            if status:
                self.overflows += 1
            try:
                self.q.put_nowait((indata[:, 0].astype(np.float32).copy(), time.monotonic()))
            except queue.Full:
                self.overflows += 1

        try:
            sd.query_devices(device, kind="input")
        except Exception as e:  # PortAudioError / ValueError: no input device at all
            raise ResourceError("no microphone found on this machine",
                                hint="plug one in (check `python -m sounddevice`), or use --audio FILE or the page's "
                                     "microphone button") from e
        try:
            self.stream = sd.InputStream(samplerate=rate, channels=1, blocksize=block, dtype="float32",
                                         callback=callback, device=device)
            self.stream.start()
        except Exception as e:  # PortAudioError and ValueError: no device, unsupported rate
            raise ResourceError(f"cannot open the microphone: {e}",
                                hint="check `python -m sounddevice` for input devices, or use --audio FILE") from e

    def read(self) -> tuple[np.ndarray, float]:
        try:
            x, t = self.q.get(timeout=2.0)
        except queue.Empty:
            raise ResourceError("the microphone stopped delivering audio") from None
        parts = [x]
        while not self.q.empty():  # a caller that fell behind gets everything that arrived
            x, t = self.q.get_nowait()
            parts.append(x)
        x = np.concatenate(parts)
        if self.push is not None:
            extra = self.push.take(len(x))
            if extra is not None:
                x = x + extra
        return x, t

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()
