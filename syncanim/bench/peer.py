"""Our render speed as a ratio to a peer renderer's, timed on the same device.

The peer's figure is a frame's milliseconds with its copy back to the host: given as a number, or read from
the JSON its timing script writes (``results``: one entry per density setting, each with
``"rays+render+readback": {"median_ms": ...}``; the most opaque setting is taken, the one closest to a
trained head). Ours is the same span of our path: torso, head render and the copy back
(:func:`render_ms`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError

PEER_KEY = "rays+render+readback"


def read_peer(path: str | Path) -> tuple[str, float]:
    """(name, milliseconds per frame with the copy back) from a peer timing JSON. DataError if it has none."""
    try:
        data = json.loads(Path(path).read_text())
        results = [r for r in data["results"] if PEER_KEY in r]
        best = max(results, key=lambda r: float(r.get("density_scale", 0.0)))
        ms = float(best[PEER_KEY]["median_ms"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a peer timing file with {PEER_KEY!r} results ({e})") from e
    name = str(data.get("peer", Path(path).stem)) + (" + torso" if data.get("peer_opt", {}).get("torso") else "")
    return name, ms


def render_ms(stages: dict[str, Any]) -> float:
    """Our milliseconds per frame for what the peer's figure covers: torso (if any), head render and the copy
    back (``composite``), medians of :class:`~syncanim.bench.pipeline.StageTiming` rows."""
    return sum(stages[k].median_ms for k in ("torso", "head_render", "composite") if k in stages)


def peer_comparison(stages: dict[str, Any], peer_ms: float, name: str = "peer") -> dict[str, Any]:
    """{"peer", "peer_ms", "ours_ms", "speedup"}: speedup > 1 means we render faster than the peer."""
    if peer_ms <= 0:
        raise DataError(f"the peer's time must be positive, got {peer_ms}")
    ours = render_ms(stages)
    return {"peer": name, "peer_ms": round(peer_ms, 3), "ours_ms": round(ours, 3), "speedup": round(peer_ms / ours, 3)}
