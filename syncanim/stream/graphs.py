"""Frames drawn with static shapes, on CUDA replayed from CUDA graphs: no host work inside a frame.

The compact renderer (:meth:`~syncanim.model.base.HeadModel.render_frames` by default) sizes its rays by
each frame's head rectangle and its field points by what the occupancy grid keeps, so the host learns
both sizes from the device and launches a few hundred small kernels per frame: at 512 px on a GPU, the
host's part is about as long as the device's. :class:`StaticDraw` draws the same frames from tensors of
fixed size instead:

- **rays**: one rectangle size for every frame (:class:`~syncanim.model.frames.DenseRects`), large enough
  for the head in the training clip's poses with a margin, grown (and the graphs captured again) when a
  pose needs more;
- **field points**: per run of samples, the wanted samples compacted into a fixed number of slots
  (:func:`~syncanim.model.compaction.compact_slots`), sized from the first call's counts with a margin.
  Every call's counts come back with its frames; a call that wanted more than there was room for is drawn
  again with more room (the graphs captured again), so no frame ever lacks points.

:meth:`StaticDraw.launch` queues a call (and the copy of its frames to page-locked host memory) and returns a
:class:`PendingDraw`, so that the host can prepare the next call meanwhile; :meth:`StaticDraw.draw` waits for it.

With ``capture`` (CUDA), each batch size's whole call (torso, head, the conversion to uint8) is captured once
as a CUDA graph (:class:`GraphedStep`) and replayed; without it the same static-shape call runs eagerly
(what the tests run on CPU). The images are the compact renderer's up to float rounding.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..device import autocast, to_device
from ..errors import KernelUnavailable
from ..model.base import HeadModel
from ..model.camera import Camera
from ..model.conditioning import Conditioning
from ..model.frames import DenseRects, fixed_rects, to_uint8
from ..model.torso import TorsoField

log = logging.getLogger(__name__)

#: room for field points and rays beyond what was seen (counts vary with the pose and the mouth)
MARGIN = 1.15
#: slots are allocated in multiples of this many points
SLOT_BLOCK = 4096


class GraphedStep:
    """A function of static-shape tensors captured once in a CUDA graph and replayed.

    ``fn(**inputs)`` must only launch device work (no host synchronisation, no data-dependent
    shapes). Calling copies new values into the captured input buffers and replays the graph; the
    returned tensors are the graph's own output buffers, overwritten by the next call.
    """

    def __init__(self, fn: Callable[..., Any], inputs: dict[str, Any], warmup: int = 3) -> None:
        self.inputs = {k: v.clone() for k, v in inputs.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(stream):
                for _ in range(warmup):  # lazy initialisation (kernel loading, compilation) happens here
                    fn(**self.inputs)
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.output = fn(**self.inputs)
        except RuntimeError as e:
            if isinstance(e, torch.OutOfMemoryError):
                raise
            raise KernelUnavailable(f"CUDA graph capture of the render step failed: {str(e).splitlines()[0]}",
                                    hint="turn CUDA graphs off: --set render.cuda_graphs=false (or live.cuda_graphs)") from e

    def __call__(self, **inputs: Any):
        for k, v in inputs.items():
            self.inputs[k].copy_(v, non_blocking=True)
        self.graph.replay()
        return self.output


def _to_pinned(t: torch.Tensor) -> torch.Tensor:
    """A copy of device tensor ``t`` into page-locked host memory, queued on the current stream (not waited for)."""
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    return host


class PendingDraw:
    """A call of B frames queued on the device by :meth:`StaticDraw.launch`; :meth:`frames` waits for them.

    If the call wanted more field points than it had room for (known once it has run), :meth:`frames` draws it
    again with more room, so no frame ever lacks points. Holds the call's inputs until then (the device may still
    read them).
    """

    def __init__(self, drawer: StaticDraw, inputs: dict[str, torch.Tensor], images: torch.Tensor,
                 points: torch.Tensor | None, capacity: tuple[int, ...] | None, done: torch.cuda.Event | None) -> None:
        self.drawer, self.inputs, self.capacity, self.done = drawer, inputs, capacity, done
        self._images, self._points = images, points
        self._frames: np.ndarray | None = None

    def ready(self) -> bool:
        """Whether the frames are on the host (:meth:`frames` would not wait for the device)."""
        return self.done is None or self.done.query()

    def frames(self) -> np.ndarray:
        """The call's frames [B, H, W, 3] uint8 on the host (waits for the device)."""
        if self._frames is not None:
            return self._frames
        if self.done is not None:
            self.done.synchronize()
        images = self._images
        if self._points is not None:
            wanted = self._points.numpy()
            if (wanted > np.asarray(self.capacity)).any():  # some points left out: again, with room for them
                d = self.drawer
                d._room_for(wanted, len(images))
                d.graphs.clear()
                d.recaptures += 1
                log.debug("static draw: %s field points wanted, more than the room for them; drawn again",
                          wanted.tolist())
                with torch.no_grad():
                    images = d._step(**self.inputs)[0].cpu()
        self._frames = images.numpy()
        self.inputs = {}
        return self._frames


class StaticDraw:
    """Calls of B frames of one model drawn with static shapes (module docstring): the head over the torso
    (when given one) or over backgrounds given per call.

    ``intrinsics``: the camera's (focal, cx, cy) in pixels at ``size``; ``clip_rects`` [N, 4]: the head rectangles (:meth:`~syncanim.model.base.HeadModel.head_rects`) of poses
    the model will be drawn in (the training clip's), which size the ray rectangle; ``capture``: replay CUDA
    graphs (CUDA only); ``max_graphs``: graphs kept (one per batch size and kind of call), least recently
    used dropped first.
    """

    def __init__(self, model: HeadModel, torso: TorsoField | None, intrinsics: tuple[float, float, float], size: int,
                 precision: str, clip_rects: np.ndarray, capture: bool, max_graphs: int = 8) -> None:
        self.model, self.torso, self.size, self.precision = model, torso, size, precision
        self.intrinsics = intrinsics
        self.capture, self.max_graphs = capture, max_graphs
        self.rect = self._roomy(*fixed_rects(clip_rects, size)[0])
        self.per_frame: tuple[float, ...] | None = None  # field points per frame and run of samples
        self.graphs: OrderedDict[tuple, GraphedStep] = OrderedDict()
        self.recaptures = 0  # calls that needed more room than the graphs had (each drops the graphs)

    def _roomy(self, w: int, h: int) -> tuple[int, int]:
        """A rectangle ``MARGIN`` larger than w x h (a multiple of 8), within the image."""
        return (min(self.size, 8 * math.ceil(w * MARGIN / 8)), min(self.size, 8 * math.ceil(h * MARGIN / 8)))

    def capacity(self, b: int) -> tuple[int, ...] | None:
        """Field points evaluated per run of samples in a call of ``b`` frames (None before the first call)."""
        if self.per_frame is None:
            return None
        # never an empty run (a kernel launch over no points)
        return tuple(SLOT_BLOCK * max(1, math.ceil(b * n / SLOT_BLOCK)) for n in self.per_frame)

    def _step(self, rotation, translation, offsets, mouth, expressions, latent, below):
        """One call from tensors alone (what a graph captures) -> (frames [B, H, W, 3] uint8, points [runs])."""
        b = len(rotation)
        camera = Camera(rotation, translation, *self.intrinsics, self.size)
        if self.torso is not None:  # ``below``: pose codes [B, 6]
            backgrounds = self.torso.render(below, chunk=b * self.size * self.size, size=self.size)
        else:  # ``below``: [B, H, W, 3] uint8
            backgrounds = below.float() / 255
        dense = DenseRects(self.rect[0], self.rect[1], offsets, self.capacity(b))
        with autocast(backgrounds.device, self.precision, cache=not self.capture):
            out = self.model.render_frames(camera, Conditioning(mouth, expressions, latent), backgrounds, dense=dense,
                                           chunk=b * dense.pixels)
        return to_uint8(out.images), out.points

    @torch.no_grad()
    def draw(self, camera: Camera, cond: Conditioning, below: np.ndarray | None = None) -> np.ndarray:
        """B frames: the head in ``camera``'s poses with ``cond`` over the torso for those poses, or over
        ``below`` [B, H, W, 3] uint8 (required without a torso) -> [B, H, W, 3] uint8 on the host."""
        return self.launch(camera, cond, below).frames()

    @torch.no_grad()
    def launch(self, camera: Camera, cond: Conditioning, below: np.ndarray | None = None) -> PendingDraw:
        """:meth:`draw` without waiting: the call is queued on the device (with the copy of its frames to the host)
        and the host is free until :meth:`PendingDraw.frames`. The device work that ``cond`` comes from must be
        queued before it on the current stream (or waited for)."""
        if (below is None) != (self.torso is not None):
            raise ValueError("StaticDraw.draw: frames to draw over without a torso, none with one")
        rotation, translation = camera.poses_numpy()
        rects = self.model.head_rects(camera)
        (need_w, need_h), _ = fixed_rects(rects, self.size)
        if need_w > self.rect[0] or need_h > self.rect[1]:  # a pose the rectangle does not hold: a larger one
            self.rect = self._roomy(max(need_w, self.rect[0]), max(need_h, self.rect[1]))
            self.graphs.clear()
            self.recaptures += 1
        _, offsets = fixed_rects(rects, self.size, self.rect)
        dev = camera.rotation.device
        lower = self.torso.codes(rotation, translation) if self.torso is not None else to_device(below, dev)
        inputs = {"rotation": camera.rotation, "translation": camera.translation,
                  "offsets": to_device(offsets, dev), "mouth": cond.mouth, "expressions": cond.expressions,
                  "latent": cond.latent, "below": lower}
        b = len(camera)
        if self.per_frame is None:  # the first call: every sample, to learn how many are wanted
            images, points = self._step(**inputs)
            self._room_for(points.cpu().numpy(), b)
            return PendingDraw(self, inputs, images.cpu(), None, None, None)
        capacity = self.capacity(b)
        images, points = self._run(b, inputs)
        done = None
        if images.is_cuda:  # both copies queued behind the call; the event says when they have landed
            images, points = _to_pinned(images), _to_pinned(points)
            done = torch.cuda.Event(enable_timing=True)  # timing: when the frames landed (benchmarks/many_streams.py)
            done.record()
        return PendingDraw(self, inputs, images, points, capacity, done)

    def _room_for(self, points: np.ndarray, b: int) -> None:
        """Room per frame for ``points`` [runs] wanted by a call of ``b`` frames (never less than before)."""
        new = [MARGIN * float(n) / b for n in points]
        old = self.per_frame or (0.0,) * len(new)
        self.per_frame = tuple(max(a, c) for a, c in zip(new, old, strict=True))

    def _run(self, b: int, inputs: dict[str, torch.Tensor]):
        if not self.capture:
            return self._step(**inputs)
        key = (b, tuple(inputs["below"].shape))
        graph = self.graphs.get(key)
        if graph is None:
            if len(self.graphs) >= self.max_graphs:
                self.graphs.popitem(last=False)
            graph = self.graphs[key] = GraphedStep(self._step, inputs)
        self.graphs.move_to_end(key)
        return graph(**inputs)
