"""syncanim: audio-driven, real-time NeRF talking avatars from a few minutes of video.

The public API is re-exported here lazily, so importing ``syncanim`` does no heavy work.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
