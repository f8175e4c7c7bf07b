"""``syncanim eval``: fidelity, lip sync, blinks and head motion of a talking head, with a report folder.

Three modes, chosen by the inputs given to :func:`run_eval`:

- **model** (``model=``): the model renders the held-out (``val``) frames of its dataset from their
  own poses, audio and expressions (:func:`syncanim.render.validation.render_split`), and the renders
  are compared with the real frames. ``baselines=True`` adds the retrieval and static baselines of
  :mod:`syncanim.eval.baselines` on the same frames. Face boxes come from the dataset's landmarks,
  the audio from its ``audio.wav``.
- **pair** (``video=`` and ``reference=``): a generated video against a real video of the same
  person with the same frame count, size and frame rate (anything else is a DataError). Face boxes
  come from the reference's tracked landmarks. Each video's sync is measured against its own audio
  track (or ``audio=`` where a video has none); a video without audio gets no sync figures, with a note.
- **video** (``video=`` alone): no-reference figures only (sync, blinks, head motion); it needs
  speech: the video's own track or ``audio=``. With a model (``model=`` and ``video=``), the model's
  own training clip is tracked the same way and added as the subject "subject footage" (role
  "subject"): its blink rate and head motion are what a render driven by new speech should match.

Full-reference figures (subject vs reference, frame by frame, averaged over frames):
PSNR over the whole frame and over the face box (8-bit levels, :func:`syncanim.metrics.image.psnr`;
identical frames give ``inf``, and the mean over a clip with any identical frame is ``inf``), SSIM,
LPIPS-Alex when both weight files are given, LMD and centred LMD (:mod:`syncanim.metrics.lmd`:
FaceMesh lip points detected on each frame on its own, pixels at 512 px). No-reference figures:
:mod:`syncanim.eval.video_stats`. Definitions and caveats: docs/eval.md.

Inputs are only read. Outputs go to ``out`` (report files listed in :mod:`syncanim.eval.report`),
each written atomically; an output name that would replace an input is refused.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..audio.waveform import Waveform, read_audio
from ..config import EvalConfig, PluginSection, RenderConfig, RuntimeConfig
from ..console import ProgressFn, no_progress
from ..data.files import writable_folder
from ..errors import ConfigError, DataError
from ..face.boxes import face_box, face_boxes
from ..metrics.frames import score_frames
from ..metrics.lmd import lmd_per_frame, lmd_stats, mouth_landmarks
from ..metrics.mouth import amplitude_ratio, opening_correlation
from ..motion.mouth_support import mouth_support
from ..registry import Registry, default_registry
from .report import EvalResult, Fidelity, PerFrame, SubjectResult, strip_image, write_report
from .video_stats import ClipInputs, ClipSignals, FrameSource, clip_stats

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # audio is read at this rate for the sync score and metric plugins
REPORT_FILES = ("eval.json", "report.md", "per_frame.csv", "per_frame.png", "sync.png", "sync_windows.png",
                "strip.png")


# --- frame sources ----------------------------------------------------------------------------------


def video_source(path: Path, fps: float, num_frames: int) -> FrameSource:
    """Frames ``0 .. num_frames-1`` of a video file at ``fps``, decoded again on every call."""
    from ..media.video import iter_frames

    def frames() -> Iterator[np.ndarray]:
        for _, rgb in iter_frames(path, fps, 0, num_frames):
            yield rgb

    return frames


def array_source(frames: np.ndarray) -> FrameSource:
    """Frames from an array ``[N, H, W, 3] uint8``."""
    return lambda: iter(frames)


def _picked(source: FrameSource, picks: list[int]) -> list[np.ndarray]:
    keep = set(picks)
    got = {k: f for k, f in enumerate(source()) if k in keep}
    return [got[k] for k in picks]


# --- full-reference figures -------------------------------------------------------------------------


def compare_frames(pred: FrameSource, target: FrameSource, boxes: Sequence[tuple[int, int, int, int] | None], *,
                   lpips: torch.nn.Module | None, device: torch.device, batch: int = 8,
                   progress: ProgressFn = no_progress, stage: str = "compare") -> PerFrame:
    """Per-frame PSNR, face-box PSNR, SSIM and LPIPS of ``pred`` against ``target`` (both N frames
    ``[H, W, 3] uint8`` of one size); ``boxes[k]``: the face box ``(x0, y0, x1, y1)`` of frame k or
    None. LMD columns are left NaN."""
    n = len(boxes)
    out = {k: np.full(n, np.nan) for k in ("psnr", "psnr_face", "ssim", "lpips")}
    it_p, it_t = pred(), target()
    done = 0
    while done < n:
        ps, ts = [], []
        for _ in range(min(batch, n - done)):
            try:
                ps.append(next(it_p))
                ts.append(next(it_t))
            except StopIteration as e:
                raise DataError(f"{stage}: a frame source ended at frame {done + len(ts)} of {n}") from e
        a = np.stack(ps)  # [B, H, W, 3] uint8
        b = np.stack(ts)
        if a.shape != b.shape:
            raise DataError(f"{stage}: frame sizes differ: {a.shape[1:3]} vs {b.shape[1:3]}")
        sl = slice(done, done + len(ps))
        scores = score_frames(a, b, boxes[sl])
        out["psnr"][sl], out["psnr_face"][sl], out["ssim"][sl] = scores.psnr, scores.psnr_face, scores.ssim
        if lpips is not None:
            x = torch.from_numpy(a).to(device).permute(0, 3, 1, 2).float() / 255  # [B, 3, H, W]
            y = torch.from_numpy(b).to(device).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                out["lpips"][sl] = lpips(x, y).cpu().numpy()
        done += len(ps)
        progress(stage, done, n)
    nan = np.full(n, np.nan)
    return PerFrame(out["psnr"], out["psnr_face"], out["ssim"], out["lpips"], nan.copy(), nan.copy())


def _fidelity(pf: PerFrame, pred_mouth: np.ndarray, ref_mouth: np.ndarray, size: tuple[int, int],
              with_lpips: bool) -> Fidelity:
    lm = lmd_stats(pred_mouth, ref_mouth, size)
    lmc = lmd_stats(pred_mouth, ref_mouth, size, centered=True)
    pf.lmd = lmd_per_frame(pred_mouth, ref_mouth, size)
    pf.lmd_centered = lmd_per_frame(pred_mouth, ref_mouth, size, centered=True)
    face = pf.psnr_face[~np.isnan(pf.psnr_face)]
    return Fidelity(
        frames=len(pf.psnr),
        psnr=float(np.mean(pf.psnr)) if len(pf.psnr) else float("nan"),
        psnr_face=float(np.mean(face)) if len(face) else float("nan"),
        psnr_face_frames=len(face),
        identical_frames=int(np.isinf(pf.psnr).sum()),
        ssim=float(np.mean(pf.ssim)) if len(pf.ssim) else float("nan"),
        lpips=float(np.mean(pf.lpips)) if with_lpips and len(pf.lpips) else None,
        lmd=lm.value, lmd_centered=lmc.value, lmd_frames=lm.frames_used, lmd_skipped=lm.frames_skipped,
    )


# --- inputs -----------------------------------------------------------------------------------------


def _lpips_model(backbone: os.PathLike[str] | str | None, linear: os.PathLike[str] | str | None,
                 device: torch.device) -> tuple[torch.nn.Module | None, str]:
    from ..metrics.lpips import BACKBONE_HINT, LINEAR_HINT, LPIPS

    if backbone is None and linear is None:
        return None, (f"not measured: it needs two weight files, --lpips-backbone ({BACKBONE_HINT}) "
                      f"and --lpips-linear ({LINEAR_HINT})")
    if backbone is None or linear is None:
        missing = "--lpips-backbone" if backbone is None else "--lpips-linear"
        raise ConfigError(f"LPIPS needs both weight files; {missing} is missing",
                          hint=f"backbone: {BACKBONE_HINT}; linear: {LINEAR_HINT}")
    return LPIPS.from_files(backbone, linear, device), "measured (AlexNet backbone, v0.1 linear heads)"


def _check_out(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output folder that is a file, cannot be written, or where a report file would replace an input."""
    if out.exists() and not out.is_dir():
        raise DataError(f"the output folder {out} is an existing file")
    ins = {p.resolve() for p in inputs}
    if out.resolve() in ins:
        raise DataError(f"the output folder {out} is one of the inputs")
    for name in REPORT_FILES:
        if (out / name).resolve() in ins:
            raise DataError(f"writing {name} into {out} would replace the input {out / name}",
                            hint="choose another --out folder")
    writable_folder(out, create=False)  # before any scoring; the report makes it


def _audio_of(path: Path) -> Waveform:
    return read_audio(path, SAMPLE_RATE)


# --- evaluation of prepared subjects ----------------------------------------------------------------


class _Subject:
    """A frame sequence to score: its name, role, frames, and the speech its sync is measured against."""

    def __init__(self, name: str, role: str, frames: FrameSource, audio: Waveform | None,
                 no_audio_note: str | None = None) -> None:
        self.name, self.role, self.frames, self.audio, self.no_audio_note = name, role, frames, audio, no_audio_note


def _evaluate(subjects: list[_Subject], reference: _Subject | None, *, num_frames: int, fps: float,
              size_hw: tuple[int, int], first_frame: int, boxes: Sequence[tuple[int, int, int, int] | None] | None,
              lpips: torch.nn.Module | None, metrics: Sequence[object], device: torch.device, cfg: EvalConfig,
              progress: ProgressFn, subject_spread: float | None = None) -> tuple[list[SubjectResult], dict[str, PerFrame], dict[str, ClipSignals],
                                             list[tuple[str, FrameSource]]]:
    """Score each subject (and the reference's own no-reference figures). ``subject_spread``: the
    subject's own mouth-opening spread while speaking, when known (each clip's spread is then also
    given relative to it). Returns the subject results (reference last), the per-frame series, the
    clip signals and the strip rows' sources."""
    h, w = size_hw
    results: list[SubjectResult] = []
    series: dict[str, PerFrame] = {}
    signals: dict[str, ClipSignals] = {}
    ref_result: SubjectResult | None = None
    ref_mouth = None
    if reference is not None:
        stats, sig = clip_stats(reference.frames, fps, (w, h), reference.audio, first_frame=first_frame,
                                sync=cfg.sync, blinks=cfg.blinks, no_audio_note=reference.no_audio_note,
                                progress=progress, stage=f"track {reference.name}", total=num_frames)
        signals[reference.name] = sig
        ref_result = SubjectResult(reference.name, "reference", clip=stats, notes=list(stats.notes))
        if boxes is None:
            boxes = [face_box(p, (h, w), cfg.face_margin) if f else None
                     for p, f in zip(sig.points, sig.found, strict=True)]
        ref_mouth = mouth_landmarks(reference.frames(), progress=_stage(progress, f"lips {reference.name}"))
    for sub in subjects:
        stats, sig = clip_stats(sub.frames, fps, (w, h), sub.audio, first_frame=first_frame, sync=cfg.sync,
                                blinks=cfg.blinks, no_audio_note=sub.no_audio_note, progress=progress,
                                stage=f"track {sub.name}", total=num_frames)
        if len(sig.points) != num_frames:
            raise DataError(f"{sub.name}: {len(sig.points)} frames decoded, expected {num_frames}")
        signals[sub.name] = sig
        res = SubjectResult(sub.name, sub.role, clip=stats, notes=list(stats.notes))
        if reference is not None:
            assert boxes is not None and ref_mouth is not None
            pf = compare_frames(sub.frames, reference.frames, boxes, lpips=lpips, device=device, batch=cfg.batch,
                                progress=progress, stage=f"compare {sub.name}")
            mouth = mouth_landmarks(sub.frames(), progress=_stage(progress, f"lips {sub.name}"))
            res.fidelity = _fidelity(pf, mouth, ref_mouth, (h, w), lpips is not None)
            ref_open = signals[reference.name].mouth
            corr, lag = opening_correlation(sig.mouth, ref_open)
            res.fidelity.mouth_correlation, res.fidelity.mouth_lag = corr, None if np.isnan(corr) else lag
            res.fidelity.mouth_amplitude = amplitude_ratio(sig.mouth, ref_open)
            series[sub.name] = pf
        results.append(res)
    if ref_result is not None:
        results.append(ref_result)
    for res in results:
        if subject_spread and res.clip is not None and res.clip.mouth_spread is not None:
            res.clip.mouth_spread_ratio = res.clip.mouth_spread / subject_spread
    everyone = subjects + ([reference] if reference is not None else [])
    for metric in metrics:
        name = getattr(metric, "name", type(metric).__name__)
        for sub, res in zip(everyone, results, strict=True):
            sig = signals[sub.name]
            if sub.audio is None:
                res.notes.append(f"{name}: not measured (no audio)")
                continue
            clip = ClipInputs(sub.frames, num_frames, fps, sig.points, sig.found, sub.audio, first_frame,
                              str(device))
            res.metrics[name] = dict(metric.score(clip))  # type: ignore[attr-defined]
    rows = ([(reference.name, reference.frames)] if reference is not None else []) + \
        [(s.name, s.frames) for s in subjects]
    return results, series, signals, rows


def _stage(progress: ProgressFn, name: str) -> ProgressFn:
    """A progress callback that reports under ``name`` whatever stage the callee names."""
    return lambda _stage_name, done, total, *info: progress(name, done, total, *info)


# --- the entry point --------------------------------------------------------------------------------


def run_eval(
    out: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    dataset: str | os.PathLike[str] | None = None,
    split: str = "val",
    video: str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | None = None,
    audio: str | os.PathLike[str] | None = None,
    baselines: bool = False,
    lpips_backbone: str | os.PathLike[str] | None = None,
    lpips_linear: str | os.PathLike[str] | None = None,
    metrics: Sequence[PluginSection] = (),
    config: EvalConfig = EvalConfig(),
    render: RenderConfig = RenderConfig(),
    runtime: RuntimeConfig = RuntimeConfig(),
    registry: Registry | None = None,
    progress: ProgressFn = no_progress,
) -> EvalResult:
    """Evaluate a model, a video against a reference, or a video alone (module doc), and write the report.

    out: the report folder (created; existing report files in it are replaced, inputs never).
    model: a model folder (``syncanim train``); mode "model". dataset: its prepared dataset, when
    not the one recorded in the model. split: only "val" (the held-out frames). A model with
    ``video`` (and no reference) scores the video in mode "video", its mouth spread against the
    model's subject's own spread while speaking.
    video: a generated video; with ``reference`` (a real video of the same person, same frame count,
    size and fps) mode "pair", alone mode "video". audio: speech for a video without its own track.
    baselines: with ``model``, also score the retrieval and static baselines.
    lpips_backbone, lpips_linear: LPIPS weight files (both or neither; see syncanim.metrics.lpips).
    metrics: extra ``syncanim.metrics`` components, e.g. ``PluginSection(kind="syncnet", weights=...)``.
    config: the eval settings; render: chunking/precision for model mode; runtime: the device.
    registry: where ``metrics`` are looked up (default: the installed entry points).
    Raises ConfigError (bad combination of inputs), DataError (unusable media or dataset; different
    frame counts, sizes or rates; no audio where it is needed), CheckpointError (model or weights).
    """
    t0 = time.perf_counter()
    out_dir = Path(out)
    if model is not None and reference is not None:
        raise ConfigError("give either a model (with its dataset) or videos to compare, not both",
                          hint="a model goes with --video alone: its subject's speaking spread is the yardstick")
    if model is None and video is None:
        raise ConfigError("nothing to evaluate: give a model folder, or a video (and a reference video)")
    if (model is None or video is not None) and (dataset is not None or baselines):
        raise ConfigError("--data and --baselines go with a model folder (and no --video)")
    if split != "val":
        raise ConfigError(f"only the 'val' split can be evaluated, got {split!r}")
    if model is not None and video is None and audio is not None:
        raise ConfigError("a model is evaluated against its dataset's own audio; --audio goes with a video")
    from ..device import resolve_device

    device = resolve_device(runtime)
    lpips, lpips_status = _lpips_model(lpips_backbone, lpips_linear, device)
    built = _build_metrics(metrics, registry)
    common = dict(lpips=lpips, metrics=built, device=device, cfg=config, progress=progress)

    if model is not None and video is None:
        result, series, signals, rows = _model_mode(Path(model), dataset, baselines, render, out_dir, common,
                                                    runtime.render_settings)
    else:
        assert video is not None
        spread = None
        if model is not None:
            from ..model.folder import read_info

            spread = read_info(model).mouth.get("speaking_spread")
        result, series, signals, rows = _video_mode(Path(video), None if reference is None else Path(reference),
                                                    None if audio is None else Path(audio), out_dir, common,
                                                    subject_spread=spread)
        if model is not None:
            result.inputs["model"] = str(model)
            footage = _subject_footage(Path(model), result, config, progress)
            if footage is not None:
                result.subjects.append(footage)
    result.lpips = lpips_status if result.mode != "video" else "not applicable (no reference)"
    early = [s.name for s in result.subjects if s.clip is not None and s.clip.sync is not None
             and (s.clip.sync.offset_frames or 0) <= -2]  # one frame either way is in sync
    if early:
        result.notes.append(f"sync offset negative ({', '.join(early)}): the mouth leads the sound, as it does in real "
                            "speech (speakers open the mouth before the voice starts; real footage often reads a few "
                            "frames negative): compare a generated video's offset with its reference's, not with 0 "
                            "(docs/eval.md)")
    picks = sorted({int(round(v)) for v in np.linspace(0, result.frames - 1, min(config.strip_frames, result.frames))})
    strip = None
    if picks:
        progress("strip", 0, len(rows))
        strip = strip_image([(name, _picked(src, picks)) for name, src in rows], picks, result.fps)
        progress("strip", len(rows), len(rows))
    result.seconds = time.perf_counter() - t0
    write_report(out_dir, result, series, signals, strip)
    result.seconds = time.perf_counter() - t0
    log.info("eval (%s): %d frames, report in %s (%.1f s)", result.mode, result.frames, out_dir, result.seconds)
    return result


def _subject_footage(model_dir: Path, result: EvalResult, cfg: EvalConfig, progress: ProgressFn
                     ) -> SubjectResult | None:
    """The no-reference figures (blinks, head motion) of the model's own training clip (its frames video),
    tracked as the evaluated video is: the yardstick for motion driven by new speech. None without the video."""
    from ..media.video import iter_frames, probe
    from ..model.folder import ModelLayout

    path = ModelLayout(model_dir).frames_video
    if not path.is_file():
        return None
    info = probe(path)
    stats, _ = clip_stats(lambda: (img for _, img in iter_frames(path, info.fps, 0, None)), info.fps,
                          (info.width, info.height), None, sync=cfg.sync, blinks=cfg.blinks,
                          no_audio_note="subject footage: its blinks and head motion are the yardstick",
                          progress=progress, stage="track subject footage", total=info.num_frames)
    return SubjectResult("subject footage", "subject", clip=stats)


def _build_metrics(sections: Sequence[PluginSection], registry: Registry | None) -> list[object]:
    if not sections:
        return []
    reg = registry if registry is not None else default_registry()
    return [reg.build("syncanim.metrics", s) for s in sections]


def _model_mode(model_dir: Path, dataset: str | os.PathLike[str] | None, baselines: bool, render: RenderConfig,
                out_dir: Path, common: dict,
                render_settings: dict | None = None) -> tuple[EvalResult, dict, dict, list]:
    from ..data.dataset import load_head_data
    from ..data.manifest import DatasetLayout
    from ..model.folder import dataset_path, load_model, read_info
    from ..model.head import EXPRESSIONS
    from ..render.validation import render_split, split_level
    from .baselines import baseline_indices

    progress: ProgressFn = common["progress"]
    info = read_info(model_dir)
    ds = Path(dataset) if dataset is not None else dataset_path(model_dir, info)
    if not ds.is_dir():
        raise DataError(f"the dataset of model {model_dir} is not at {ds}",
                        hint="give the prepared dataset with --data DATASET")
    layout = DatasetLayout(ds)
    _check_out(out_dir, [model_dir, ds, layout.audio])
    device = common["device"]
    net, info = load_model(model_dir, device, render_settings=render_settings)
    data = load_head_data(ds, EXPRESSIONS)
    if data.size != info.image_size:
        raise DataError(f"the dataset is {data.size} px, the model was trained at {info.image_size} px")
    ids = list(range(data.num_train, data.num_frames))
    if not ids:
        raise DataError(f"the dataset {ds} has no validation frames")
    from ..model.folder import ModelLayout, load_torso

    torso = load_torso(ModelLayout(model_dir), info, device) if render.torso else None
    rendered, render_fps = render_split(net, data, ids, device, render.chunk_rays, render.frames_per_call, progress,
                                        render.precision, torso,
                                        level=split_level(info.mouth, info.fps, ds, data, render.mouth_level),
                                        support=mouth_support(info.mouth, render.mouth_support, device))
    notes: list[str] = []
    if torso is not None:
        from ..render.validation import plate_bound

        notes.append(f"model: person rendered over the background plate, which scores "
                     f"{plate_bound(data.frames[ids], data.labels[ids], data.plate):.2f} dB against these frames' "
                     "own backgrounds (the whole-frame PSNR a perfect person over it would reach)")
    wave: Waveform | None = None
    no_audio = None
    if layout.audio.is_file():
        wave = _audio_of(layout.audio)
    else:
        no_audio = f"the dataset has no {layout.audio.name}: sync not measured"
    subjects = [_Subject("model", "evaluated", array_source(rendered), wave, no_audio)]
    if baselines:
        picks = baseline_indices(data.audio, data.rotation, data.translation, data.num_train, ids)
        subjects.append(_Subject("retrieval", "baseline", array_source(data.frames[picks["retrieval"]]), wave, no_audio))
        subjects.append(_Subject("static", "baseline", array_source(data.frames[picks["static"]]), wave, no_audio))
        notes.append(f"static baseline: training frame {int(picks['static'][0])} for every frame")
    reference = _Subject("ground truth", "reference", array_source(data.frames[ids]), wave, no_audio)
    boxes = face_boxes(data.landmarks[ids], (data.size, data.size), common["cfg"].face_margin)
    fps = float(data.manifest.fps)
    results, series, signals, rows = _evaluate(
        subjects, reference, num_frames=len(ids), fps=fps, size_hw=(data.size, data.size), first_frame=data.num_train,
        boxes=boxes, subject_spread=info.mouth.get("speaking_spread"), **common)
    result = EvalResult(mode="model", fps=fps, frames=len(ids), width=data.size, height=data.size,
                        inputs={"model": str(model_dir), "dataset": str(ds), "split": "val",
                                "frames": f"{ids[0]}..{ids[-1]}"},
                        subjects=results, lpips="", out_dir=str(out_dir), notes=notes, render_fps=render_fps)
    return result, series, signals, rows


def _video_mode(video: Path, reference: Path | None, audio: Path | None, out_dir: Path,
                common: dict, subject_spread: float | None = None) -> tuple[EvalResult, dict, dict, list]:
    from ..media.video import probe

    inputs = [video] + ([reference] if reference is not None else []) + ([audio] if audio is not None else [])
    _check_out(out_dir, inputs)
    gen = probe(video)
    speech = _audio_of(audio) if audio is not None else None
    if reference is None:
        if speech is None and not gen.has_audio:
            raise DataError(f"{video.name} has no audio track: the sync score needs the speech",
                            hint="give the speech with --audio FILE")
        wave = speech if speech is not None else _audio_of(video)
        subjects = [_Subject("video", "evaluated", video_source(video, gen.fps, gen.num_frames), wave)]
        results, series, signals, rows = _evaluate(
            subjects, None, num_frames=gen.num_frames, fps=gen.fps, size_hw=(gen.height, gen.width), first_frame=0,
            boxes=None, subject_spread=subject_spread, **common)
        result = EvalResult(mode="video", fps=gen.fps, frames=gen.num_frames, width=gen.width, height=gen.height,
                            inputs={"video": str(video), **({"audio": str(audio)} if audio else {})},
                            subjects=results, lpips="", out_dir=str(out_dir))
        return result, series, signals, rows

    ref = probe(reference)
    if abs(gen.fps - ref.fps) > 1e-3:
        raise DataError(f"frame rates differ: {video.name} is {gen.fps:g} fps, {reference.name} is {ref.fps:g} fps")
    if (gen.width, gen.height) != (ref.width, ref.height):
        raise DataError(f"frame sizes differ: {video.name} is {gen.width}x{gen.height}, "
                        f"{reference.name} is {ref.width}x{ref.height}")
    if gen.num_frames != ref.num_frames:
        raise DataError(f"frame counts differ: {video.name} has {gen.num_frames} frames, "
                        f"{reference.name} has {ref.num_frames}")
    hint = "give the speech with --audio FILE"
    gen_wave = speech if speech is not None else (_audio_of(video) if gen.has_audio else None)
    ref_wave = _audio_of(reference) if ref.has_audio else speech
    n, fps = gen.num_frames, gen.fps
    subjects = [_Subject("video", "evaluated", video_source(video, fps, n), gen_wave,
                         f"{video.name} has no audio track: sync not measured ({hint})")]
    ref_sub = _Subject("reference", "reference", video_source(reference, fps, n), ref_wave,
                       f"{reference.name} has no audio track: sync not measured")
    results, series, signals, rows = _evaluate(
        subjects, ref_sub, num_frames=n, fps=fps, size_hw=(gen.height, gen.width), first_frame=0, boxes=None,
        **common)
    result = EvalResult(mode="pair", fps=fps, frames=n, width=gen.width, height=gen.height,
                        inputs={"video": str(video), "reference": str(reference),
                                **({"audio": str(audio)} if audio else {})},
                        subjects=results, lpips="", out_dir=str(out_dir))
    return result, series, signals, rows
