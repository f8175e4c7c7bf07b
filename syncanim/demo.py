"""``syncanim demo``: the whole workflow on the built-in sample, end to end.

sample clip -> prep -> train (the CPU-quick preset on a CPU, GPU-default on a GPU) -> render a second
sentence the model never heard -> ``demo.mp4``. Every step resumes, so a rerun finishes quickly. This is
the one pipeline that calls the others; it only chains their public functions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .audio.tts import speak
from .audio.waveform import write_wav
from .config import Config, build_config
from .console import ProgressFn, no_progress

log = logging.getLogger(__name__)

SECOND_SENTENCE = ("This is a sentence the model has never heard before, spoken by a voice it never saw, "
                   "and still my lips follow every word.")


@dataclass
class DemoResult:
    video: Path
    folder: Path
    seconds: dict[str, float] = field(default_factory=dict)
    val_psnr: float | None = None
    device: str = "cpu"


#: The CPU demo's training budget (minutes): sample, prep, the torso and the render take about 2.5 more.
DEMO_CPU_TRAIN_MINUTES = 7.0


def demo_config(gpu: bool | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The preset the demo trains with: GPU-default on a GPU, CPU-quick on a CPU (``gpu`` None: whether
    this machine has a CUDA device). On a CPU the sample is framed tighter and smaller (256 px around
    the face) so that the whole demo fits in a few minutes on two cores."""
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    cfg = build_config("gpu-default" if gpu else "cpu-quick", list(overrides))
    if not gpu:
        prep = cfg.prep.model_copy(update={"size": 256, "crop": "subject"})
        # a budget for the trained stages, so the whole demo stays within 10 minutes on a slower CPU too (on
        # the 2-core machines measured, the cpu-quick step counts took 22 minutes on a 20 s clip, the cores shared); --set train.max_minutes=...
        # overrides it
        train = cfg.train if cfg.train.max_minutes is not None else \
            cfg.train.model_copy(update={"max_minutes": DEMO_CPU_TRAIN_MINUTES})
        cfg = cfg.model_copy(update={"prep": prep, "train": train})
    return cfg


def run_demo(folder: str | Path, config: Config, *, progress: ProgressFn = no_progress,
             sentence: str = SECOND_SENTENCE) -> DemoResult:
    from .device import resolve_device
    from .prep.pipeline import run_prep
    from .render.pipeline import run_render
    from .sample.generate import generate_sample
    from .train.trainer import run_train

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = DemoResult(folder / "demo.mp4", folder, device=resolve_device(config.runtime).type)
    t = time.perf_counter()
    clip = folder / "sample.mp4"
    if not clip.is_file():
        generate_sample(clip, config.sample, progress=progress)
    result.seconds["sample"] = time.perf_counter() - t
    t = time.perf_counter()
    run_prep(clip, folder / "dataset", config.prep, config.runtime, progress=progress)
    result.seconds["prep"] = time.perf_counter() - t
    t = time.perf_counter()
    trained = run_train(folder / "dataset", folder / "model", config.model, config.train, config.runtime,
                        progress=progress)
    result.val_psnr = trained.val_psnr[-1][1] if trained.val_psnr else None
    result.seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    speech = folder / "new_sentence.wav"
    if not speech.is_file():
        write_wav(speech, speak(sentence, config.sample.voice))
    run_render(folder / "model", speech, result.video, config.render, config.runtime, progress=progress)
    result.seconds["render"] = time.perf_counter() - t
    return result
