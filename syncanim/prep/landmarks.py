"""Prep's ``mediapipe-facemesh`` tracker: :class:`syncanim.face.landmarks.FaceMeshTracker` as a component."""

from __future__ import annotations

from ..face.landmarks import FaceMeshConfig, FaceMeshTracker
from ..mp_runtime import mediapipe_missing
from ..registry import Spec


def _check(config: FaceMeshConfig) -> str | None:
    return mediapipe_missing()


SPEC = Spec(
    name="mediapipe-facemesh",
    config_model=FaceMeshConfig,
    build=FaceMeshTracker,
    description="MediaPipe FaceMesh: 478 landmarks with iris, tracked frame to frame (models ship in the wheel)",
    check=_check,
)
