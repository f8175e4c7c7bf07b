"""``syncanim live MODEL``: the person answering speech in real time on a local web page.

:func:`start_live` loads the model, opens the speech source (``--audio FILE`` played in real time,
``--mic``, or silence; the page's microphone is mixed into any of them), starts the loop
(:class:`~syncanim.live.engine.LiveEngine`, the stream ``render`` runs, :mod:`syncanim.stream`) and the
page's server (:class:`~syncanim.live.server.LiveServer`). :func:`run_live_bench` runs a session with
viewers inside the process and reports latency, frame rates and drops.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import LiveConfig, RuntimeConfig
from ..console import ProgressFn, no_progress
from ..device import resolve_device, resolve_precision
from ..errors import ConfigError
from ..model.folder import ModelLayout, read_info
from ..registry import Registry, default_registry
from .engine import LiveEngine, percentiles
from .heap import fix_mmap_threshold
from .server import LiveServer
from .sources import ClockSource, FileSource, MicSource, PushBuffer

if TYPE_CHECKING:
    from ..stream.avatar import AvatarStream
    from ..stream.speech import SpeechStream

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def access_token(live: LiveConfig) -> str | None:
    """The token the page needs: the configured one; a new random one for a host other than this machine."""
    if live.token:
        return live.token
    return None if live.host in LOCAL_HOSTS else secrets.token_urlsafe(16)


@dataclass
class LiveSession:
    engine: LiveEngine
    server: LiveServer
    source: object
    info: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.engine.stop()
        self.server.stop()
        self.source.close()  # type: ignore[attr-defined]


def start_live(model_dir: str | os.PathLike[str], live: LiveConfig, runtime: RuntimeConfig, *,
               audio: Path | None = None, mic: bool = False, loop_audio: bool = False, max_frames: int | None = None,
               registry: Registry | None = None, progress: ProgressFn = no_progress) -> LiveSession:
    """Load, open the source, start the loop and the server; returns the running session (:meth:`LiveSession.stop`)."""
    from ..stream.avatar import AvatarStream, StreamSettings, load_avatar
    from ..stream.speech import SpeechStream, build_extractor

    if audio is not None and mic:
        raise ConfigError("give --audio FILE or --mic, not both")
    reg = registry or default_registry()
    fix_mmap_threshold(live.heap_mmap_kib)
    device = resolve_device(runtime)
    precision = resolve_precision(device, live.precision)
    progress("load", 0, 1)
    info = read_info(model_dir)
    layout = ModelLayout(model_dir)
    pose = live.pose
    if pose != "replay" and (info.motion is None or not layout.motion.is_file()):
        log.warning("this model has no motion syncer: poses and blinks replay the training clip")
        pose = "replay"
    avatar = load_avatar(model_dir, device, syncer=pose != "replay", torso=live.torso,
                         render_settings=runtime.render_settings)
    extractor = build_extractor(dict(info.audio), reg, device)
    settings = StreamSettings(pose=pose, seed=live.seed, loop_join=live.loop_join,
                              frames_per_call=live.frames_per_call, chunk_rays=live.chunk_rays, precision=precision,
                              lookahead=live.lookahead, static=live.cuda_graphs and device.type == "cuda",
                              mouth_level=live.mouth_level,
                              mouth_support=live.mouth_support)
    progress("load", 1, 1)
    if live.warmup_frames:
        progress("warm-up", 0, 1)
        seconds = warm_up(AvatarStream(avatar, settings), SpeechStream(extractor, info.fps, info.sample_rate, max_frames=25),
                          live.warmup_frames)
        log.info("live: %d frames of silence drawn to warm up in %.1f s", live.warmup_frames, seconds)
        progress("warm-up", 1, 1)
    stream = AvatarStream(avatar, settings)
    speech = SpeechStream(extractor, info.fps, info.sample_rate, max_frames=25)
    block = max(1, int(round(live.block_ms / 1000 * info.sample_rate)))
    push = PushBuffer(info.sample_rate)
    if audio is not None:
        source: object = FileSource(Path(audio), info.sample_rate, block, push, loop=loop_audio)
    elif mic:
        source = MicSource(info.sample_rate, block, push)
    else:
        source = ClockSource(info.sample_rate, block, push)
    token = access_token(live)
    engine_box: list[LiveEngine] = []
    server = LiveServer(live.host, live.port, token, live.viewer_queue, push,
                        lambda: engine_box[0].stats.summary() if engine_box else {}, live.viewer_window)
    engine = LiveEngine(stream, speech, source, live, lambda msg, k, drawn: server.hub.publish(msg),  # type: ignore[arg-type]
                        max_frames=max_frames)
    engine_box.append(engine)
    try:
        server.start()
    except BaseException:
        source.close()  # type: ignore[attr-defined]
        raise
    engine.start()
    lag_ms = 1000 * stream.lag / info.fps + 1000 * speech.lookahead_s
    log.info("live: %s on %s, %d px at %g fps, %s; speech to picture waits %.0f ms for look-ahead", Path(model_dir).name,
             device.type, info.image_size, info.fps, precision, lag_ms)
    return LiveSession(engine, server, source, {"device": device.type, "size": info.image_size, "fps": info.fps,
                                                "precision": precision, "pose": pose, "lookahead_ms": round(lag_ms, 1),
                                                "torso": avatar.torso is not None})


def warm_up(stream: AvatarStream, speech: SpeechStream, frames: int) -> float:
    """Draw ``frames`` frames of silence through ``stream`` and ``speech`` (a stream of their own, dropped
    afterwards) -> the seconds it took. The session's clock starts after it, so kernels that compile on their
    first call (Triton's, up to a second a frame on a GPU) and the encoder's first runs make no frame late."""
    t0 = time.monotonic()
    samples = int(math.ceil((frames / speech.fps + speech.lookahead_s) * speech.rate))
    drawn = stream.push(speech.push(np.zeros(samples, np.float32)))
    drawn += stream.push(speech.finish(frames)) + stream.flush()
    if len(drawn) < frames:
        raise RuntimeError(f"warm-up drew {len(drawn)} of {frames} frames")
    return time.monotonic() - t0


# --- the bench: viewers inside the process -------------------------------------------------------


@dataclass
class ViewerFigures:
    name: str
    throttle_ms: float
    received: int = 0
    images: int = 0
    connects: int = 0
    arrivals: array = field(default_factory=lambda: array("d"))  # monotonic arrival of each image
    delays: array = field(default_factory=lambda: array("d"))  # arrival - pts (s): the stream's delay over time
    error: str | None = None

    def report(self) -> dict:
        out: dict = {"name": self.name, "throttle_ms": self.throttle_ms, "messages": self.received,
                     "images": self.images, "connects": self.connects}
        if len(self.arrivals) > 1:
            span = self.arrivals[-1] - self.arrivals[0]
            out["fps"] = round((len(self.arrivals) - 1) / span, 2) if span > 0 else None
        if self.delays:
            d = np.asarray(self.delays)
            d = 1000 * (d - np.median(d))  # ms, relative to the run's median delay
            minute = ((np.asarray(self.arrivals) - self.arrivals[0]) // 60).astype(int)  # [N]
            out["delay_drift_ms_per_minute"] = [percentiles(d[minute == m]) for m in np.unique(minute)]
        if self.error:
            out["error"] = self.error
        return out


async def _viewer(url: str, fig: ViewerFigures, stop: asyncio.Event, reconnect_s: float | None) -> None:
    import aiohttp

    from .protocol import unpack

    while not stop.is_set():
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=1 << 22) as ws:
                fig.connects += 1
                started = time.monotonic()
                while not stop.is_set() and not (reconnect_s and time.monotonic() - started > reconnect_s):
                    try:
                        msg = await ws.receive(timeout=1.0)
                    except TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    m = unpack(msg.data)
                    t = time.monotonic()
                    fig.received += 1
                    if m.jpeg:
                        fig.images += 1
                        fig.arrivals.append(t)
                        fig.delays.append(t - m.pts)
                    if fig.throttle_ms:
                        await asyncio.sleep(fig.throttle_ms / 1000)
                    await ws.send_str(f"ack {m.index}")
        except (OSError, aiohttp.ClientError) as e:
            fig.error = str(e)
            await asyncio.sleep(0.5)


def run_live_bench(session: LiveSession, seconds: float, viewers: int = 1, throttle_ms: float = 0.0,
                   reconnect_s: float | None = None, progress: ProgressFn = no_progress) -> dict:
    """Watch ``session`` with ``viewers`` in-process viewers for ``seconds`` (the first one reading
    ``throttle_ms`` slower per message when given; all reconnecting every ``reconnect_s`` when given);
    the engine's and the viewers' figures as a dict."""
    import resource

    server = session.server
    ws_url = server.url.replace("http://", "ws://").replace("/?", "/ws?")
    ws_url = ws_url if "/ws" in ws_url else ws_url.rstrip("/") + "/ws"
    figs = [ViewerFigures(f"viewer-{i + 1}", throttle_ms if i == 0 else 0.0) for i in range(viewers)]
    stop = asyncio.Event()

    async def watch() -> None:
        await asyncio.gather(*(_viewer(ws_url + ("&" if "?" in ws_url else "?") + f"name={f.name}", f, stop,
                                       reconnect_s) for f in figs))

    fut = asyncio.run_coroutine_threadsafe(watch(), server.loop)
    t0 = time.monotonic()
    rss: list[tuple[float, float]] = []
    while time.monotonic() - t0 < seconds:
        if session.engine.finished.is_set():
            break
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
        rss.append((round(time.monotonic() - t0, 1), _rss_mb()))
        progress("live", min(int(time.monotonic() - t0), int(seconds)), int(seconds))
    server.loop.call_soon_threadsafe(stop.set)
    try:
        fut.result(timeout=10)
    except (TimeoutError, asyncio.CancelledError):
        fut.cancel()
    if session.engine.error is not None:
        raise session.engine.error
    warm = t0 + min(5.0, seconds / 4)  # the first seconds (kernel compilation, caches) are left out
    return {**session.info, "seconds": round(time.monotonic() - t0, 1), "engine": session.engine.stats.summary(warm),
            "engine_all": session.engine.stats.summary(), "viewers": [f.report() for f in figs],
            "server_viewers": server.hub.snapshot() + server.hub.closed[-viewers:],
            "rss_mb": _rss_curve(rss), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_curve(rss: list[tuple[float, float]]) -> dict:
    """The process's memory over a run, from (seconds, MB) samples: the mean and the floor (the least) of its
    first and last tenths, and per minute the floor, median and most. Drawing a frame on a CPU holds a few hundred
    MB for a moment, so a single sample lands high or low by chance; what memory a run keeps shows in the floor."""
    if not rss:
        return {}
    vals = np.asarray([v for _, v in rss])
    tenth = max(1, len(vals) // 10)
    first, last = float(vals[:tenth].mean()), float(vals[-tenth:].mean())
    lo, hi = float(vals[:tenth].min()), float(vals[-tenth:].min())
    minute = (np.asarray([t for t, _ in rss]) // 60).astype(int)
    per_minute = [[int(m), round(float(vals[minute == m].min()), 1), round(float(np.median(vals[minute == m])), 1),
                   round(float(vals[minute == m].max()), 1)] for m in np.unique(minute)]
    return {"first_tenth": round(first, 1), "last_tenth": round(last, 1), "change": round(last / first - 1, 4),
            "floor_first_tenth": round(lo, 1), "floor_last_tenth": round(hi, 1), "floor_change": round(hi / lo - 1, 4),
            "per_minute_min_median_max": per_minute}
