"""The viewers of a live stream, each behind its own bounded queue.

The engine hands every frame's message to :meth:`Hub.publish` (from its thread); each viewer's queue
holds at most ``maxlen`` messages, and a viewer that reads too slowly loses its oldest ones. Nobody
else waits for it, and memory never grows with it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque


class Viewer:
    """One connected viewer: its queue, what it was sent and lost, what its page reported."""

    def __init__(self, maxlen: int, name: str) -> None:
        self.q: deque[bytes] = deque()
        self.maxlen = maxlen
        self.name = name
        self.event = asyncio.Event()
        self.sent = 0
        self.dropped = 0
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
        while not self.q:
            self.event.clear()
            await self.event.wait()
        return self.q.popleft()


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop, maxlen: int) -> None:
        self.loop, self.maxlen = loop, maxlen
        self.viewers: dict[int, Viewer] = {}
        self.lock = threading.Lock()
        self.count = 0
        self.closed: list[dict] = []  # figures of viewers gone (the last 100)

    def add(self, name: str = "") -> Viewer:
        with self.lock:
            self.count += 1
            v = Viewer(self.maxlen, name or f"viewer-{self.count}")
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
