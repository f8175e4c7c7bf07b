"""The viewers of a live stream, each behind its own bounded queue.

The engine hands every frame's message to :meth:`Hub.publish` (from its thread); each viewer's queue
holds at most ``maxlen`` messages, and a viewer that reads too slowly loses its oldest ones. Nobody
else waits for it, and memory never grows with it. A viewer that acknowledges the frames it has
received (the page does) is sent a frame only while fewer than ``window`` frames are on their way to it
(:meth:`Viewer.next` waits for its acknowledgements meanwhile, and its queue drops the oldest frames), so
the network's own buffers cannot hold seconds of frames for a slow viewer either: it gets the newest
frames at the rate it can take them.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque


def frame_index(msg: bytes) -> int:
    """The frame index in a message's header (:mod:`syncanim.live.protocol`)."""
    return int.from_bytes(msg[4:8], "little")


class Viewer:
    """One connected viewer: its queue, what it was sent and lost, what its page reported."""

    def __init__(self, maxlen: int, name: str, window: int = 0) -> None:
        self.q: deque[bytes] = deque()
        self.maxlen = maxlen
        self.window = window  # frames on their way at most (0: no limit)
        self.acked = -1  # the last frame it said it received (-1: it does not say)
        self.last_sent = -1  # the last frame handed to its connection
        self.name = name
        self.event = asyncio.Event()
        self.sent = 0
        self.dropped = 0  # messages lost from the queue, or sent without their image
        self.page: dict = {}
        self.ws = None  # the connection, for closing it

    def offer(self, msg: bytes) -> None:
        """Queue ``msg`` (on the event loop's thread), dropping the oldest when full."""
        if len(self.q) >= self.maxlen:
            self.q.popleft()
            self.dropped += 1
        self.q.append(msg)
        self.event.set()

    async def next(self) -> bytes:
        """The next message to send: the oldest queued one, once fewer than ``window`` frames sent to the viewer
        are unacknowledged (while it waits, the queue keeps only the newest ``maxlen``)."""
        while not self.q or self._full():
            self.event.clear()
            await self.event.wait()
        msg = self.q.popleft()
        self.last_sent = frame_index(msg)
        return msg

    def _full(self) -> bool:
        """Whether ``window`` frames are on their way (sent, not acknowledged). Counted from what was sent, not
        from what is queued: frames the queue dropped were never sent, so they are never waited for."""
        return bool(self.window and self.acked >= 0 and self.last_sent - self.acked >= self.window)

    def ack(self, index: int) -> None:
        """The viewer has received frame ``index`` (on the event loop's thread)."""
        if index > self.acked:
            self.acked = index
            self.event.set()


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop, maxlen: int, window: int = 0) -> None:
        self.loop, self.maxlen, self.window = loop, maxlen, window
        self.viewers: dict[int, Viewer] = {}
        self.lock = threading.Lock()
        self.count = 0
        self.closed: list[dict] = []  # figures of viewers gone (the last 100)

    def add(self, name: str = "") -> Viewer:
        with self.lock:
            self.count += 1
            v = Viewer(self.maxlen, name or f"viewer-{self.count}", self.window)
            self.viewers[id(v)] = v
        return v

    def remove(self, v: Viewer) -> None:
        with self.lock:
            self.viewers.pop(id(v), None)
            self.closed = (self.closed + [self.figures(v)])[-100:]

    def publish(self, msg: bytes) -> None:
        """From any thread: hand ``msg`` to every viewer."""
        self.loop.call_soon_threadsafe(self._offer, msg)

    def _offer(self, msg: bytes) -> None:
        with self.lock:
            viewers = list(self.viewers.values())
        for v in viewers:
            v.offer(msg)

    @staticmethod
    def figures(v: Viewer) -> dict:
        return {"name": v.name, "sent": v.sent, "dropped": v.dropped, "queued": len(v.q), "page": v.page}

    def snapshot(self) -> list[dict]:
        with self.lock:
            return [self.figures(v) for v in self.viewers.values()]
