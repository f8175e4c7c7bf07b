"""The viewer page and its WebSocket, served with aiohttp on a thread of its own.

``GET /`` the page (``viewer.html``), ``GET /ws`` the stream (:mod:`syncanim.live.protocol`), ``GET /stats``
the engine's and the viewers' figures as JSON. With a token, every request must carry ``?token=...``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from importlib import resources

import numpy as np

from ..errors import ResourceError
from .hub import Hub
from .sources import PushBuffer

log = logging.getLogger(__name__)


def page_html() -> str:
    return (resources.files("syncanim.live") / "viewer.html").read_text(encoding="utf-8")


class LiveServer:
    """Serves the page and the stream on ``host:port`` from a background thread (:meth:`start`, :meth:`stop`)."""

    def __init__(self, host: str, port: int, token: str | None, queue: int, push: PushBuffer | None,
                 stats: Callable[[], dict], window: int = 0) -> None:
        self.host, self.port, self.token, self.queue, self.push, self.stats = host, port, token, queue, push, stats
        self.loop = asyncio.new_event_loop()
        self.hub = Hub(self.loop, queue, window)
        self.thread = threading.Thread(target=self.loop.run_forever, name="syncanim-server", daemon=True)
        self.runner = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> None:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        try:
            fut.result(timeout=30)
        except OSError as e:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise ResourceError(f"cannot serve on {self.host}:{self.port}: {e.strerror or e}",
                                hint="choose another --port (0: any free port)") from None

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/stats", self._stats)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        if self.runner is not None:
            try:  # a viewer that never answers must not hold the process: give up on a clean close after 10 s
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
            except concurrent.futures.TimeoutError:
                log.warning("the server did not close its connections within 10 s; stopping it anyway")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def disconnect_all(self) -> None:
        """Close every viewer's connection (their pages reconnect by themselves)."""

        async def close() -> None:
            for v in list(self.hub.viewers.values()):
                if v.ws is not None:
                    await v.ws.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)

    def _allowed(self, request) -> bool:
        if self.token is None:
            return True
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _page(self, request):
        from aiohttp import web

        if not self._allowed(request):
            return web.Response(status=403, text="a token is required: open the URL syncanim live printed")
        return web.Response(text=page_html(), content_type="text/html")

    async def _stats(self, request):
        from aiohttp import web

        if not self._allowed(request):
            return web.Response(status=403, text="forbidden")
        return web.json_response({"engine": self.stats(), "viewers": self.hub.snapshot(),
                                  "viewers_gone": self.hub.closed[-10:]})

    async def _ws(self, request):
        from aiohttp import WSMsgType, web

        if not self._allowed(request):
            return web.Response(status=403, text="forbidden")
        ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=20)
        await ws.prepare(request)
        viewer = self.hub.add(request.query.get("name", ""))
        viewer.ws = ws
        log.info("live: %s connected (%d watching)", viewer.name, len(self.hub.viewers))

        async def send() -> None:
            while True:
                msg = await viewer.next()
                await ws.send_bytes(msg)
                viewer.sent += 1

        sender = asyncio.ensure_future(send())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and self.push is not None:
                    self.push.feed(np.frombuffer(msg.data, "<i2").astype(np.float32) / 32768.0)
                elif msg.type == WSMsgType.TEXT and msg.data.startswith("ack "):
                    with contextlib.suppress(ValueError):
                        viewer.ack(int(msg.data[4:]))
                elif msg.type == WSMsgType.TEXT:
                    with contextlib.suppress(ValueError):
                        viewer.page = json.loads(msg.data)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sender.cancel()
            self.hub.remove(viewer)
            log.info("live: %s left (%d watching)", viewer.name, len(self.hub.viewers))
        return ws
