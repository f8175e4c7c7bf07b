"""The ``syncanim`` command line: parse options, build the config, call one pipeline, map errors to exit codes.

Every command goes through :func:`_run`, the one place that turns a :class:`SyncanimError` into one
red line (plus its hint) and the error's exit code, and Ctrl-C into exit code 130.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .config import Config, build_config, to_toml
from .console import err_console, progress_bars, setup_logging
from .errors import ConfigError, DataError, SyncanimError
from .inputs import check_input_file, check_model_folder

app = typer.Typer(
    name="syncanim",
    help="Audio-driven, real-time NeRF talking avatars from a few minutes of video.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,  # help texts show defaults as [value]: print them as written
)

F = TypeVar("F", bound=Callable[..., Any])

PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="Preset name (see presets/) or a .toml file.",
                                               rich_help_panel="Configuration")]


def _set_opt(example: str) -> Any:
    """The ``--set KEY=VALUE`` option, its help showing a setting the command actually reads."""
    return Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                    help=f"Override any setting, e.g. --set {example}.",
                                                    rich_help_panel="Configuration")]


DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the resolved configuration and stop.",
                                         rich_help_panel="Configuration")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda [auto].")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"syncanim {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False, help="Debug log output.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no progress bars.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    setup_logging(-1 if quiet else verbose)
    _state["quiet"] = quiet


_state: dict[str, Any] = {"quiet": False}


def _run(fn: F) -> F:
    """The one error handler: library errors -> one line + exit code; Ctrl-C -> 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SyncanimError as e:
            err_console.print(f"[bold red]error:[/] {e.message}", highlight=False, soft_wrap=True)
            if e.hint:
                err_console.print(f"[dim]hint: {e.hint}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except (MemoryError, RuntimeError) as e:  # host memory, or torch's OutOfMemoryError (device memory)
            text = str(e)
            if not isinstance(e, MemoryError) and type(e).__name__ != "OutOfMemoryError" and "out of memory" not in text:
                raise
            first = text.splitlines()[0] if text else "host memory"
            err_console.print(f"[bold red]error:[/] out of memory ({first})", highlight=False, soft_wrap=True)
            err_console.print("[dim]hint: lower the work per step (docs/troubleshooting.md, \"Out of memory\"); "
                              "finished stages and checkpoints are kept[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(8) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished stages are kept; run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _config(preset: str | None, sets: list[str] | None, explicit: dict[str, Any], dry_run: bool = False,
            components: tuple[str, ...] = ()) -> Config:
    """The resolved configuration; with ``dry_run`` it is checked as the run would (the components named in the
    ``components`` sections the command builds: prep, model), printed, and the command stops."""
    config = build_config(preset, sets or [], explicit)
    if dry_run:
        from .registry import default_registry, resolve_components

        resolve_components(config, default_registry(), components)
        typer.echo(to_toml(config), nl=False)
        raise typer.Exit(0)
    return config


def _nested(**sections: dict[str, Any]) -> dict[str, Any]:
    """Drop unset (None) options so they do not override presets."""
    out: dict[str, Any] = {}
    for name, values in sections.items():
        kept = {k: v for k, v in values.items() if v is not None}
        if kept:
            out[name] = kept
    return out


# --- prep ------------------------------------------------------------------------------------


@app.command()
@_run
def prep(
    video: Annotated[Path, typer.Argument(help="The talking-person video (mp4, mov, mkv, webm, ...).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Dataset folder [default: ./<video name>-prep].")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate of the dataset [25].")] = None,
    size: Annotated[int | None, typer.Option(help="Frame side in pixels [512].")] = None,
    crop: Annotated[str | None, typer.Option(help="Framing: auto | subject | center | none [auto].")] = None,
    audio: Annotated[str | None, typer.Option("--audio-backend", help="Audio features: whisper | logmel | hubert | wav2vec2 [whisper].")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [one per core].")] = None,
    preset: PresetOpt = None,
    set_: _set_opt("prep.masks.pose_every=5") = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Turn a video of one talking person into a training set: frames, audio, landmarks, masks,
    background, head pose, expressions and audio features, with a report."""
    explicit = _nested(prep={"fps": fps, "size": size, "crop": crop, "audio": {"kind": audio} if audio else None},
                       runtime={"workers": workers})
    config = _config(preset, set_, explicit, dry_run, components=("prep",))
    check_input_file(video, "video")  # before the heavy imports: a wrong path fails at once
    from .prep.pipeline import run_prep

    out = out or Path.cwd() / f"{video.stem}-prep"
    with progress_bars(enabled=not _state["quiet"]) as progress:
        result = run_prep(video, out, config.prep, config.runtime, progress=progress)
    m = result.manifest
    if as_json:
        typer.echo(m.model_dump_json(indent=2))
        return
    _print_prep_summary(result)


def _print_prep_summary(result: Any) -> None:
    from rich.table import Table

    m = result.manifest
    t = Table(title=f"prepared {result.layout.root}", show_header=False, title_justify="left")
    t.add_row("frames", f"{m.num_frames} at {m.fps:g} fps ({m.duration_s:.1f} s), {m.image_size}x{m.image_size}")
    t.add_row("split", f"{m.num_train} train / {m.num_val} val")
    t.add_row("camera", f"focal {m.focal:.0f} px; reprojection error {m.reprojection_error_px:.2f} px")
    t.add_row("face", f"{m.face_height_px:.0f} px tall; missing in {m.frames_without_face} frames")
    t.add_row("background", f"{100 * m.background_unseen_fraction:.1f} % never seen")
    from .data.manifest import STAGE_LABELS, crop_words

    t.add_row("framing", crop_words(m.crop))
    t.add_row("time", ", ".join(f"{STAGE_LABELS.get(k, k)} {v:.1f} s" for k, v in m.timings.items()))
    if result.skipped:
        t.add_row("resumed", "skipped up-to-date stages: " + ", ".join(result.skipped))
    t.add_row("report", str(result.layout.report_dir / "report.md"))
    err_console.print(t)
    for w in m.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)


# --- train ------------------------------------------------------------------------------------


@app.command()
@_run
def train(
    dataset: Annotated[Path, typer.Argument(help="A dataset folder written by `syncanim prep`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder (resumes when it holds a checkpoint).")],
    steps: Annotated[int | None, typer.Option(help="Head-stage steps (the lip stage keeps its own count).")] = None,
    lips_steps: Annotated[int | None, typer.Option(help="Lip fine-tuning steps.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Wall-time budget; the step counts shrink to fit it.")] = None,
    device: DeviceOpt = None,
    preset: PresetOpt = None,
    set_: _set_opt("train.lips_steps=500") = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the audio-driven head model of a prepared dataset: the head, then the lips."""
    config = _config(preset, set_, _nested(train={"head_steps": steps, "lips_steps": lips_steps, "max_minutes": minutes},
                                           runtime={"device": device}), dry_run, components=("model",))
    if dataset.is_file():
        raise DataError(f"{dataset} is a file: train takes the dataset folder that `syncanim prep` makes of a video",
                        hint=f"run `syncanim prep {dataset}`, then train its folder")
    if not dataset.is_dir():
        raise DataError(f"dataset folder not found: {dataset}", hint="make one with `syncanim prep VIDEO --out DATASET`")
    from .train.trainer import run_train

    with progress_bars(enabled=not _state["quiet"]) as progress:
        result = run_train(dataset, out, config.model, config.train, config.runtime, progress=progress)
    summary = {"model": str(result.layout.root), "steps": result.step, "total_steps": result.total,
               "resumed_from": result.resumed_from, "seconds": round(result.seconds, 1), "device": result.device,
               "val_psnr": [{"step": s, "psnr": round(p, 3)} for s, p in result.val_psnr]}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    last = f"{result.val_psnr[-1][1]:.2f} dB" if result.val_psnr else "n/a"
    err_console.print(f"trained {result.layout.root}: {result.step} steps on {result.device} in {result.seconds:.0f} s; "
                      f"validation PSNR {last}")


# --- render -----------------------------------------------------------------------------------


@app.command()
@_run
def render(
    model: Annotated[Path, typer.Argument(help="A model folder written by `syncanim train`.")],
    audio: Annotated[Path | None, typer.Option("--audio", "-a", help="Speech to say (wav, mp3, m4a, flac, a video's track, ...).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The mp4 to write [out.mp4]; with --split val, a folder [MODEL/val].")] = None,
    split: Annotated[str | None, typer.Option(help="val: render the held-out frames beside the ground truth and score them.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="With --split val: the dataset [the one the model was trained on].")] = None,
    portrait: Annotated[bool, typer.Option("--portrait", help="Paste the face into the original frames.")] = False,
    features: Annotated[Path | None, typer.Option("--features", help="The audio's speech features (.npy from `syncanim features`): skip the feature backend.")] = None,
    pose: Annotated[str | None, typer.Option(help="audio (head pose, brows and blinks from the speech) | replay "
                                             "(the training poses, looped) | static [audio].")] = None,
    device: DeviceOpt = None,
    preset: PresetOpt = None,
    set_: _set_opt("render.seed=3") = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Render an mp4 of the person saying new speech, with the audio muxed in."""
    from .errors import ConfigError

    config = _config(preset, set_, _nested(render={"portrait": portrait or None, "pose": pose},
                                           runtime={"device": device}), dry_run)
    if split is not None:
        if split != "val":
            raise ConfigError(f"--split takes only 'val', got {split!r}")
        if audio is not None or features is not None:
            raise ConfigError("--split val renders the dataset's own held-out frames and speech; --audio and "
                              "--features go without --split")
        check_model_folder(model)  # before the heavy imports
        from .render.validation import result_json, run_validation

        with progress_bars(enabled=not _state["quiet"]) as progress:
            val = run_validation(model, out or model / "val", config.render, config.runtime, dataset=data,
                                 progress=progress)
        if as_json:
            typer.echo(result_json(val))
            return
        err_console.print(f"{val.frames} validation frames: PSNR {val.psnr:.2f} dB (face box {val.psnr_face:.2f} dB), "
                          f"SSIM {val.ssim:.4f}, LMD {val.lmd:.2f} px ({val.lmd_frames} frames); "
                          f"side by side: {val.video}")
        if val.plate_bound is not None:
            err_console.print(f"the background plate against these frames' backgrounds: {val.plate_bound:.2f} dB "
                              "(the whole-frame PSNR a perfect person over the plate would reach)")
        return
    if audio is None:
        raise ConfigError("render needs --audio SPEECH (or --split val)")
    check_model_folder(model)  # before the heavy imports
    check_input_file(audio, "audio file")
    from .render.pipeline import run_render

    with progress_bars(enabled=not _state["quiet"]) as progress:
        result = run_render(model, audio, out or Path("out.mp4"), config.render, config.runtime, features=features,
                            progress=progress)
    summary = {"out": str(result.path), "frames": result.frames, "duration_s": round(result.duration_s, 3),
               "fps": result.fps, "seconds": round(result.seconds, 2), "render_fps": round(result.render_fps, 2)}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    err_console.print(f"wrote {result.path}: {result.frames} frames ({result.duration_s:.2f} s) in {result.seconds:.1f} s "
                      f"({result.render_fps:.1f} frames/s rendering)")


@app.command()
@_run
def features(
    folder: Annotated[Path, typer.Argument(help="A model folder or a prepared dataset: whose feature backend to use.")],
    audio: Annotated[Path, typer.Option("--audio", "-a", help="Speech (wav, mp3, m4a, flac, a video's track, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .npy to write.")],
) -> None:
    """Speech features of an audio file, for `syncanim render --features` on a machine without the backend's weights."""
    from .audio.precompute import speech_features_file
    from .registry import default_registry

    shape = speech_features_file(folder, audio, out, default_registry())
    err_console.print(f"wrote {out}: {shape[0]} frames x {shape[1]} x {shape[2]} features")


# --- demo -------------------------------------------------------------------------------------


@app.command()
@_run
def demo(
    folder: Annotated[Path, typer.Argument(help="Where the demo's files go.")] = Path("demo"),
    set_: _set_opt("train.head_steps=1200") = None,
    dry_run: DryRunOpt = False,
) -> None:
    """The whole workflow on the built-in sample: generate it, prep, train, and render a new sentence
    into FOLDER/demo.mp4 (CPU-quick preset on a CPU, GPU-default on a GPU)."""
    from .demo import demo_config, run_demo

    config = demo_config(overrides=set_ or [])
    if dry_run:
        typer.echo(to_toml(config), nl=False)
        return
    with progress_bars(enabled=not _state["quiet"]) as progress:
        result = run_demo(folder, config, progress=progress)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    psnr = f"; validation PSNR {result.val_psnr:.2f} dB" if result.val_psnr else ""
    err_console.print(f"wrote {result.video} on {result.device} ({times}, total {sum(result.seconds.values()):.0f} s){psnr}")


# --- sample ------------------------------------------------------------------------------------


@app.command()
@_run
def sample(
    out: Annotated[Path, typer.Argument(help="Where to write the clip.")] = Path("sample.mp4"),
    seconds: Annotated[float | None, typer.Option(help="Length of the clip [10].")] = None,
    preset: PresetOpt = None,
    set_: _set_opt("sample.voice=en-gb") = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Generate the built-in sample: a short talking clip (a public-domain photo, animated, with synthesized speech)."""
    config = _config(preset, set_, _nested(sample={"seconds": seconds}), dry_run)
    from .sample.generate import generate_sample

    with progress_bars(enabled=not _state["quiet"]) as progress:
        truth = generate_sample(out, config.sample, progress=progress)
    err_console.print(f"wrote {out} ({truth.num_frames} frames, {truth.duration_s:.1f} s)")


# --- eval -------------------------------------------------------------------------------------


@app.command("eval")
@_run
def eval_(
    model: Annotated[Path | None, typer.Argument(help="A model folder: render its dataset's val split and compare (with --video: the subject whose speaking spread the video's mouth is measured against).")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="A generated video to score.")] = None,
    reference: Annotated[Path | None, typer.Option("--reference", "-r", help="With --video: a real video of the same person (same frames, size, fps).")] = None,
    audio: Annotated[Path | None, typer.Option("--audio", "-a", help="With --video: the speech, when the video has no audio track.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report folder [MODEL/eval, or <video name>-eval].")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="With a model: its dataset [the one it was trained on].")] = None,
    split: Annotated[str, typer.Option(help="The dataset split a model is scored on (only val).")] = "val",
    baselines: Annotated[bool, typer.Option("--baselines", help="With a model: also score the retrieval and static baselines.")] = False,
    lpips_backbone: Annotated[Path | None, typer.Option(help="LPIPS: torchvision AlexNet weights (alexnet-owt-7be5be79.pth).")] = None,
    lpips_linear: Annotated[Path | None, typer.Option(help="LPIPS: the lpips v0.1 alex linear weights (alex.pth).")] = None,
    syncnet: Annotated[Path | None, typer.Option(help="SyncNet_color weights (Wav2Lip's lipsync_expert.pth): adds LSE-D / LSE-C.")] = None,
    device: DeviceOpt = None,
    preset: PresetOpt = None,
    set_: _set_opt("eval.sync.max_lag=15") = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Score a talking head: PSNR, SSIM, LPIPS, mouth landmark distance, lip sync, blinks and head motion,
    with a report folder (JSON, plots, a strip of frames)."""
    config = _config(preset, set_, _nested(runtime={"device": device}), dry_run)
    for path, what in ((video, "video"), (reference, "reference video"), (audio, "audio file")):
        if path is not None:
            check_input_file(path, what)  # before the heavy imports
    if model is not None:
        check_model_folder(model)
    from .config import PluginSection
    from .eval.pipeline import run_eval

    if out is None:
        out = model / "eval" if model is not None and video is None else Path(f"{(video or Path('video')).stem}-eval")
    metrics = [PluginSection(kind="syncnet", weights=str(syncnet))] if syncnet is not None else []
    with progress_bars(enabled=not _state["quiet"]) as progress:
        result = run_eval(out, model=model, dataset=data, split=split, video=video, reference=reference, audio=audio,
                          baselines=baselines, lpips_backbone=lpips_backbone, lpips_linear=lpips_linear,
                          metrics=metrics, config=config.eval, render=config.render, runtime=config.runtime,
                          progress=progress)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    from rich.table import Table

    t = Table(title=f"syncanim eval ({result.mode}: {result.frames} frames at {result.fps:g} fps)")
    for i, col in enumerate(result.table_header()):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in result.table_rows():
        t.add_row(*row)
    from rich.console import Console

    Console().print(t)
    for note in result.notes:
        err_console.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    by_note: dict[str, list[str]] = {}
    for s in result.subjects:
        for n in s.notes:
            by_note.setdefault(n, []).append(s.name)
    for note, names in by_note.items():
        err_console.print(f"[dim]note ({', '.join(names)}): {note}[/]", highlight=False, soft_wrap=True)
    err_console.print(f"LPIPS: {result.lpips}", highlight=False, soft_wrap=True)
    err_console.print(f"report: {out} ({result.seconds:.0f} s)")


# --- bench ------------------------------------------------------------------------------------


@app.command()
@_run
def bench(
    model: Annotated[Path | None, typer.Argument(help="A model folder [a randomly initialised model of the configured architecture].")] = None,
    device: DeviceOpt = None,
    resolution: Annotated[int | None, typer.Option(help="Output frames are N x N [the model's; 512 without one].")] = None,
    batch: Annotated[int | None, typer.Option(help="Frames per call [1].")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | bf16 | fp16 | auto (bf16 on CUDA, fp32 on CPU) [fp32].")] = None,
    compile_: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the field [off].")] = None,
    cuda_graphs: Annotated[bool | None, typer.Option("--cuda-graphs/--no-cuda-graphs", help="Capture the dense renderer's step in a CUDA graph (needs --renderer dense) [off].")] = None,
    renderer: Annotated[str | None, typer.Option(help="auto | compact | static | dense [auto: static on CUDA, as render and live draw; compact on CPU].")] = None,
    runs: Annotated[int | None, typer.Option(help="Timed calls per stage [30].")] = None,
    warmup: Annotated[int | None, typer.Option(help="Untimed calls before them [5].")] = None,
    portrait: Annotated[bool | None, typer.Option("--portrait/--no-portrait", help="Also time the paste into the original frame.")] = None,
    save: Annotated[Path | None, typer.Option("--save", help="Also write the result as JSON to this file.")] = None,
    peer_ms: Annotated[float | None, typer.Option("--peer-ms", help="A peer renderer's ms per frame with the copy back, timed on this device: report the ratio.")] = None,
    peer: Annotated[Path | None, typer.Option("--peer", help="The peer's timing JSON (e.g. ernerf.json) instead of --peer-ms.")] = None,
    preset: PresetOpt = None,
    set_: _set_opt("bench.runs=50") = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Frames per second and per-stage latency (audio features, conditioning, head render, compositing,
    encode) of the render path: warm-up, then median and p95 over the runs."""
    config = _config(preset, set_, _nested(
        runtime={"device": device},
        bench={"resolution": resolution, "batch": batch, "precision": precision, "compile": compile_,
               "cuda_graphs": cuda_graphs, "renderer": renderer, "runs": runs, "warmup": warmup,
               "portrait": portrait}), dry_run)
    if model is not None:
        check_model_folder(model)
    if save is not None:
        from .data.files import writable_file

        writable_file(save)  # before the benchmark runs
    from .bench.peer import peer_comparison, read_peer
    from .bench.pipeline import run_bench

    if peer is not None and peer_ms is not None:
        raise ConfigError("give --peer FILE or --peer-ms, not both")
    peer_name, peer_time = read_peer(peer) if peer is not None else ("peer", peer_ms)
    if peer_time is not None and peer_time <= 0:
        raise ConfigError(f"--peer-ms must be positive, got {peer_time}")
    with progress_bars(enabled=not _state["quiet"]) as progress:
        result = run_bench(config.bench, config.runtime, model, model=config.model, audio=config.prep.audio,
                           progress=progress)
    if peer_time is not None:
        result = dataclasses.replace(result, peer=peer_comparison(result.stages, peer_time, peer_name))
    data = result.to_json()
    if save is not None:
        from .data.files import write_text_atomic

        save.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(save, json.dumps(data, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    opts = [result.precision, f"batch {result.batch}", f"{result.renderer} renderer"]
    opts += ["compiled"] * result.compile + ["CUDA graphs"] * result.cuda_graphs + ["portrait"] * result.portrait
    t = Table(title=f"syncanim bench: {result.model} on {result.device}, {result.resolution}x{result.resolution} "
                    f"({', '.join(opts)})")
    for i, col in enumerate(result.table_columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in result.table_rows():
        t.add_row(*row)
    Console().print(t)
    env = result.environment
    err_console.print(f"{result.rays_per_frame:.0f} rays x {result.samples_per_ray} samples per frame; "
                      f"{env.get('gpu') or env.get('cpu')}, torch {env.get('torch')}", highlight=False, soft_wrap=True)
    for note in result.notes:
        err_console.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)


# --- live --------------------------------------------------------------------------------------


@app.command()
@_run
def live(
    model: Annotated[Path, typer.Argument(help="A model folder written by `syncanim train`.")],
    mic: Annotated[bool, typer.Option("--mic", help="Speech from the default microphone (PortAudio).")] = False,
    audio: Annotated[Path | None, typer.Option("--audio", "-a", help="Speech from a file, played in real time (then silence).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="With --audio: play the file again and again.")] = False,
    host: Annotated[str | None, typer.Option(help="Address of the viewer page [127.0.0.1]; any other needs a token (one is made up and printed).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the viewer page [8765]; 0: any free port.")] = None,
    token: Annotated[str | None, typer.Option(help="The token the page's URL must carry (?token=...).")] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds [run until Ctrl-C; with --bench: the file's length].")] = None,
    bench: Annotated[bool, typer.Option("--bench", help="Measure: watch with viewers inside the process, then report latency per stage, frame rates and drops.")] = False,
    viewers: Annotated[int, typer.Option(help="With --bench: viewers watching.")] = 1,
    throttle_ms: Annotated[float, typer.Option(help="With --bench: the first viewer reads this much slower per frame.")] = 0.0,
    reconnect_s: Annotated[float | None, typer.Option(help="With --bench: viewers reconnect after this many seconds, again and again.")] = None,
    device: DeviceOpt = None,
    preset: PresetOpt = None,
    set_: _set_opt("live.lookahead=2") = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The person answering speech in real time: open the printed URL; speak into --mic, play --audio, or use
    the page's microphone button. Ctrl-C stops."""
    import time

    from .errors import ConfigError

    config = _config(preset, set_, _nested(live={"host": host, "port": port, "token": token},
                                           runtime={"device": device}), dry_run)
    if bench and audio is None and not mic:
        raise ConfigError("--bench needs speech: give --audio FILE (or --mic)")
    if viewers < 1 or throttle_ms < 0:
        raise ConfigError("--viewers must be at least 1 and --throttle-ms not negative")
    for name, value in (("--seconds", seconds), ("--reconnect-s", reconnect_s)):
        if value is not None and value <= 0:
            raise ConfigError(f"{name} must be positive, got {value:g}")
    if loop and audio is None:
        raise ConfigError("--loop repeats the --audio file: give one")
    check_model_folder(model)
    if audio is not None:
        check_input_file(audio, "audio file")
    from .live.pipeline import run_live_bench, start_live

    with progress_bars(enabled=not _state["quiet"]) as progress:
        session = start_live(model, config.live, config.runtime, audio=audio, mic=mic, loop_audio=loop,
                             progress=progress)
    try:
        if bench:
            length = seconds
            if length is None:
                from .audio.waveform import read_audio

                length = 30.0 if audio is None or loop else read_audio(audio, 16000).duration_s + 1.0
            with progress_bars(enabled=not _state["quiet"]) as progress:
                report = run_live_bench(session, length, viewers=viewers, throttle_ms=throttle_ms,
                                        reconnect_s=reconnect_s, progress=progress)
            if as_json:
                typer.echo(json.dumps(report, indent=2))
            _print_live_report(report)
            return
        err_console.print(f"syncanim live: open [bold]{session.url}[/] (Ctrl-C stops)", highlight=False, soft_wrap=True)
        t0 = last = time.monotonic()
        while seconds is None or time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            if session.engine.finished.is_set():
                break
            if time.monotonic() - last >= 10 and not _state["quiet"]:
                last = time.monotonic()
                s = session.engine.stats.summary(since=last - 10)
                lat = s.get("latency_ms", {})
                err_console.print(f"{s.get('fps_drawn', 0):.1f} fps drawn, latency p50 {lat.get('p50', 0):.0f} ms "
                                  f"p95 {lat.get('p95', 0):.0f} ms, {len(session.server.hub.viewers)} watching",
                                  highlight=False)
        if session.engine.error is not None:
            raise session.engine.error
    except KeyboardInterrupt:
        err_console.print("stopped")
    finally:
        session.stop()


def _print_live_report(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    e = r["engine"]
    t = Table(title=f"syncanim live: {r['size']} px on {r['device']} ({r['precision']}), {r['seconds']} s")
    t.add_column("stage")
    for c in ("p50 ms", "p95 ms", "max ms"):
        t.add_column(c, justify="right")
    for name, v in e.get("stages_ms", {}).items():
        t.add_row(name, f"{v['p50']:.1f}", f"{v['p95']:.1f}", f"{v['max']:.1f}")
    if "latency_ms" in e:
        v = e["latency_ms"]
        t.add_row("[bold]speech in -> frame out[/]", f"{v['p50']:.1f}", f"{v['p95']:.1f}", f"{v['max']:.1f}")
    Console(stderr=True).print(t)
    err_console.print(f"frames: {e.get('frames', 0)} out at {e.get('fps_out') or 0:.2f} fps, {e.get('drawn', 0)} drawn "
                      f"({e.get('fps_drawn') or 0:.2f} fps), {e.get('skipped', 0)} not drawn (late)", highlight=False)
    for v in r["viewers"]:
        drift = v.get("delay_drift_ms_per_minute") or []
        d = f", delay drift p95 by minute: {[m['p95'] for m in drift]} ms" if drift else ""
        gone = next((s for s in r.get("server_viewers", []) if s["name"] == v["name"]), {})
        slow = f" (throttled {v['throttle_ms']:g} ms)" if v["throttle_ms"] else ""
        err_console.print(f"{v['name']}{slow}: "
                          f"{v['images']} frames at {v.get('fps') or 0:.2f} fps, {gone.get('dropped', 0)} dropped "
                          f"for it, {v['connects']} connection(s){d}", highlight=False)
    rss = r.get("rss_mb") or {}
    if rss:
        err_console.print(f"memory: {rss['first_tenth']:.0f} MB in the first tenth, {rss['last_tenth']:.0f} MB in "
                          f"the last ({100 * rss['change']:+.1f} %); its floor {rss['floor_first_tenth']:.0f} -> "
                          f"{rss['floor_last_tenth']:.0f} MB ({100 * rss['floor_change']:+.1f} %)", highlight=False)


# --- plugins -----------------------------------------------------------------------------------


@app.command()
@_run
def plugins(
    long: Annotated[bool, typer.Option("--long", "-l", help="Add what each component does.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List every registered component, where it comes from, and whether it can run here."""
    from .registry import GROUPS, default_registry

    rows = []
    for e in default_registry().entries():
        if e.spec is None:
            status = f"broken: {e.error}"
            ok = False
        else:
            missing = e.spec.check(e.spec.config_model())
            ok = missing is None
            status = "ok" if ok else f"unavailable: {missing}"
        rows.append({"group": e.group.removeprefix("syncanim."), "name": e.name, "source": e.source,
                     "available": ok, "status": status,
                     "description": e.spec.description if e.spec else GROUPS[e.group]})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    t = Table(title="syncanim components")
    # the table holds only short words, so names never break; what a component still needs (settings and file
    # names to copy) is printed below it as whole lines
    for col in ("group", "name", "status", "source"):
        t.add_column(col, no_wrap=True)
    if long:
        t.add_column("description", overflow="fold", ratio=1)
    needs = []
    for r in rows:
        word, _, detail = r["status"].partition(": ")
        colour = "green" if r["available"] else "yellow" if word == "unavailable" else "red"
        if detail:
            needs.append((r["name"], word, detail))
            word += f" ({len(needs)})"
        t.add_row(r["group"], r["name"], f"[{colour}]{word}[/]", r["source"], *([r["description"]] if long else []))
    from rich.console import Console

    Console().print(t)
    for i, (name, word, detail) in enumerate(needs, 1):
        Console().print(f"({i}) {name} {word}: {detail}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="syncanim")


if __name__ == "__main__":
    sys.exit(main())
