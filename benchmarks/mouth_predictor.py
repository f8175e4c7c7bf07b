"""How well does the mouth predictor alone follow held-out speech? No rendering: the predicted codes'
mouth opening (:meth:`~syncanim.face.mouth.MouthBasis.opening`) against the real one on a dataset's
validation frames, for predictor and fit settings side by side, over several seeds.

    python benchmarks/mouth_predictor.py DATASET [NAME=key:value,...] [--seeds 0 1] [--folds K] [--ensemble]
        [--blocks 3|2+4] [--train-share S] [--json OUT]

The validation frames are a few seconds of one clip, so a setting's figure moves by a few hundredths
with the seed. ``--folds K`` scores every frame instead: the clip is cut into ``K`` consecutive parts,
each held out in turn (mouth basis and predictor fitted on the rest), and a variant's figure is the
mean over the parts (on cnn2, 5 parts: two seeds of the defaults within 0.003 of each other).

``--stream score`` scores the held-out frames on the features ``render --audio`` computes from the clip's audio
(Whisper on 4 s windows ending 40 ms after each frame, :func:`~syncanim.stream.speech.stream_features`) instead of
the dataset's (prep encodes 30 s chunks, so a frame's features there also know the seconds after it), the predictor
fitted on the dataset's as training does; ``--stream both`` fits it on the stream features too.

``--shown`` scores the predicted opening as a picture of it shows it: codes that move the inner lips past each other
(beyond the subject's closed mouth, more often the larger the predictor's gain) count as closed, not as open by the
overlap (:meth:`~syncanim.face.mouth.MouthBasis.opening`).

``--support SHARE`` holds the predicted codes to the mouth support (:mod:`syncanim.motion.mouth_support`) as render
does (the mouth level left out).

``--ensemble`` also scores the mean of the seeds' predicted codes (a predictor per seed, averaged). ``--blocks 3`` (or
``2+4``, two blocks' outputs side by side) fits and scores on the clip's Whisper features of those encoder blocks
instead of the dataset's (block 4 by default). On cnn2 block 4 scores best, and an average of three predictors adds
0.004 of correlation for three times the fitting (results/mouth_predictor_cnn2_blocks.json).

Each part is also scored on its voiced frames alone (``voiced_correlation``: the frames less than ``PAUSE_DB`` (20 dB)
below the clip's loud level, at the lag found on all of them) and its pauses (``pause_share``, ``pause_opening``: the real mouth's median
opening there, against the training frames' ``train_pause_opening``): in a pause the subject's mouth may rest shut or
stay open, which the speech does not tell.

``--train-share S`` fits each part on a share ``S`` of the frames outside it: whole blocks of ``BLOCK_S`` seconds
picked at random (with the seed; the same blocks for every variant), the rest left out like held-out frames, so the
figures show how lip sync grows with the footage a subject gives (results/mouth_predictor_cnn2_footage.json).

``t.other_clips:["DATASET"]`` fits with other prepped clips beside the subject's (``[train.mouth] other_clips``; on
cnn2 a second speaker's 60 s clip: results/mouth_predictor_cnn2_other_clips.json).

``--speech NAME=AUDIO`` (repeatable) also scores new speech: the spread of the mouth opening the fitted
predictor gives it (its gain included, before any rendering or mouth level) over the subject's own
speaking spread in the training frames (what ``syncanim eval --video`` reports of a render).

Keys: ``m.*`` set ``[model.mouth]`` (:class:`~syncanim.model.head_config.MouthNetConfig`), ``t.*`` set
``[train.mouth]`` (:class:`~syncanim.config.MouthTrainConfig`); ``base=`` is the defaults. Runs on
CUDA when there is one. The rendered mouth follows the predicted codes about as well as these figures
(a renderer driven by the measured codes scores ~0.95 on cnn2), so this is where its lip sync is decided.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from syncanim.audio.framing import frame_rms
from syncanim.audio.precompute import speech_features_file
from syncanim.audio.waveform import read_audio
from syncanim.config import MouthTrainConfig, parse_override
from syncanim.data.dataset import clip_rms
from syncanim.data.manifest import DatasetLayout, dataset_audio_section, read_manifest
from syncanim.face.mouth import MouthBasis, mouth_opening
from syncanim.metrics.mouth import (
    PAUSE_DB,
    amplitude_ratio,
    opening_correlation,
    speaking_spread,
    speech_frames,
    voiced_correlation,
)
from syncanim.model.head_config import MouthNetConfig
from syncanim.model.mouth_net import MouthPredictor
from syncanim.registry import default_registry
from syncanim.train.mouth import OtherClip, fit_mouth_predictor, mouth_loss_weight
from syncanim.train.other_clips import load_other_clips


def parse_variant(spec: str) -> tuple[str, dict, dict]:
    """``NAME=m.hidden:256,t.steps:2000`` -> name, MouthNetConfig and MouthTrainConfig overrides."""
    name, _, sets = spec.partition("=")
    kv = [x.split(":", 1) for x in sets.split(",") if x]
    bad = [k for k, _ in kv if k[:2] not in ("m.", "t.")]
    if bad:
        raise SystemExit(f"keys must start with m. or t.: {bad}")
    return (name, {k[2:]: parse_override(f"v={v}")["v"] for k, v in kv if k.startswith("m.")},
            {k[2:]: parse_override(f"v={v}")["v"] for k, v in kv if k.startswith("t.")})


#: length of the blocks of training frames ``--train-share`` keeps or leaves out, in seconds
BLOCK_S = 5.0


def kept_frames(train: np.ndarray, share: float, block: int, seed: int) -> np.ndarray:
    """Keep a share of the training frames ``train [N] bool``: cut them into runs of ``block`` consecutive training
    frames, keep ``round(share * runs)`` of them (at least one) picked at random with ``seed`` (a smaller share keeps
    a subset of a larger one's runs) -> ``[N] bool``."""
    rows = np.flatnonzero(train)
    runs = [rows[i:i + block] for i in range(0, len(rows), block)]
    n = max(1, int(round(share * len(runs))))
    pick = np.random.default_rng(seed).permutation(len(runs))[:n]
    out = np.zeros_like(train)
    for i in pick:
        out[runs[i]] = True
    return out


def held_out_parts(total: int, num_train: int, folds: int) -> list[tuple[int, int]]:
    """The frame ranges ``[start, end)`` scored: the validation frames, or ``folds`` consecutive parts."""
    if folds <= 1:
        return [(num_train, total)]
    return [(k * total // folds, (k + 1) * total // folds) for k in range(folds)]


def new_speech(dataset: Path, specs: list[str], fps: float, rate: int, dev: torch.device) -> dict:
    """``NAME=AUDIO`` -> name: (features ``[T, P, F]`` on ``dev``, speech frames ``[T] bool``), read as render
    reads them."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            name, _, audio = spec.partition("=")
            speech_features_file(dataset, Path(audio), Path(tmp) / "f.npy", default_registry())
            feats = np.load(Path(tmp) / "f.npy")
            wave = read_audio(Path(audio), rate)
            rms = frame_rms(wave.samples, wave.sample_rate, fps, 0, len(feats))
            out[name] = (torch.from_numpy(feats).float().to(dev), speech_frames(rms))
    return out


def score_part(landmarks: np.ndarray, feats: torch.Tensor, part: tuple[int, int], mc: MouthNetConfig,
               tc: MouthTrainConfig, seed: int, dev: torch.device, speech: dict, speaking: np.ndarray,
               scored: torch.Tensor | None = None, shown: bool = False, support: float = 0.0,
               voiced: np.ndarray | None = None, share: float = 1.0, block: int = 125,
               others: list[OtherClip] | None = None) -> tuple[dict, np.ndarray, MouthBasis]:
    """Fit the basis and predictor on the frames outside ``part`` (as training does) and score the part (on the
    features ``scored`` [T, P, F] when given, else ``feats``), and the new ``speech`` (:func:`new_speech`) against
    the subject's spread over ``speaking [N] bool`` frames; ``shown``: crossed lips count as closed
    (:meth:`~syncanim.face.mouth.MouthBasis.opening`); ``support``: the codes held to the mouth support of this share
    (:mod:`syncanim.motion.mouth_support`), as render holds them; ``voiced [N] bool``: the frames that are not
    pauses (all when not given); ``share``: fit on this share of the frames outside the part (:func:`kept_frames`,
    blocks of ``block`` frames); ``others``: other clips the fit also learns from (``t.other_clips``). Returns the
    scores, the part's predicted codes ``[hi - lo, C]`` and the basis (for :func:`ensemble_score`)."""
    lo, hi = part
    train = np.ones(len(landmarks), bool)
    train[lo:hi] = False
    if share < 1:
        train = kept_frames(train, share, block, seed)
    basis = MouthBasis.fit(landmarks[train], mc.components, mc.variance)
    codes = basis.encode(landmarks).astype(np.float32)
    codes[~train] = np.nan  # rows the fit skips
    torch.manual_seed(seed)
    net = MouthPredictor(feats.shape[1], feats.shape[2], basis.size, mc.hidden, mc.layers, mc.past, mc.future,
                         mc.dropout, mc.input_dropout).to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    t0 = time.perf_counter()
    fit_mouth_predictor(net, feats, torch.from_numpy(codes).to(dev), len(landmarks),
                        mouth_loss_weight(basis, tc.opening_weight, dev), tc, gen, opening=basis.opening_direction(),
                        others=others or ())
    held = None
    if support > 0:  # the codes as render holds them (syncanim.motion.mouth_support; the level left out)
        from syncanim.motion.mouth_level import level_reference
        from syncanim.motion.mouth_support import mouth_support, support_json

        # the mouth section training writes (its codes and rest), read back as render reads it
        ref = level_reference(codes[train], mouth_opening(landmarks[train]), speaking[train], basis.weight, 1.0)
        held = mouth_support({"seen": support_json(codes[train]), "level": ref.to_json()}, support, dev)

    def predict(f: torch.Tensor) -> np.ndarray:
        c = net.predict(f)
        return (c if held is None else held.apply(c)).cpu().numpy()

    part_codes = predict(feats if scored is None else scored)[lo:hi]
    opening = basis.opening(part_codes, shown)
    truth = mouth_opening(landmarks[lo:hi])
    corr, lag = opening_correlation(opening, truth)
    pauses = {}
    if voiced is not None:
        v = voiced[lo:hi]
        pauses = {"voiced_correlation": voiced_correlation(opening, truth, v, lag),
                  "pause_share": float(1 - v.mean()),
                  "pause_opening": float(np.median(truth[~v])) if (~v).any() else None,
                  "train_pause_opening": float(np.median(mouth_opening(landmarks[train & ~voiced])))}
    # the mouth shape's error: mean distance of the mouth points (aligned, in eye-corner units) of the predicted
    # codes, without the render gain (the head renders about 1 / render_gain of the motion asked of it), from the
    # measured shape's
    shown_pts = basis.decode(part_codes / tc.render_gain)
    true_codes = basis.encode(landmarks[lo:hi])
    shape_error = float(np.nanmean(np.linalg.norm(shown_pts - basis.decode(true_codes), axis=-1)))
    # the same in the head's input units (each component in standard deviations of its own motion): a component
    # with a small share of the shape weighs as much as the opening's here, and codes far outside the ones the head
    # was trained on render poorly; root mean square over the components
    code_error = float(np.sqrt(np.nanmean((part_codes / tc.render_gain - true_codes) ** 2)))
    subject = speaking_spread(mouth_opening(landmarks[train]), speaking[train])
    spreads = {name: speaking_spread(basis.opening(predict(f), shown), frames) / subject
               for name, (f, frames) in speech.items()}
    return {"frames": [lo, hi], "train_frames": int(train.sum()), "correlation": corr, "lag": lag,
            "amplitude": amplitude_ratio(opening, truth),
            "shape_error": shape_error, "code_error": code_error, **pauses,
            "speech_spread_ratio": spreads, "fit_s": time.perf_counter() - t0}, part_codes, basis


def ensemble_score(landmarks: np.ndarray, seed_parts: list[list[tuple[dict, np.ndarray, MouthBasis]]],
                   shown: bool) -> dict:
    """The parts scored with the mean of the seeds' codes (one predictor per seed, averaged), from
    :func:`score_part`'s results ``seed_parts[seed][part]``: the mean correlation and amplitude over the parts."""
    rows = []
    for parts in zip(*seed_parts, strict=True):
        (lo, hi), basis = parts[0][0]["frames"], parts[0][2]
        opening = basis.opening(np.mean([codes for _, codes, _ in parts], 0), shown)
        truth = mouth_opening(landmarks[lo:hi])
        rows.append((opening_correlation(opening, truth)[0], amplitude_ratio(opening, truth)))
    return {"seeds": len(seed_parts), "correlation": float(np.mean([r[0] for r in rows])),
            "amplitude": float(np.mean([r[1] for r in rows])), "parts": [r[0] for r in rows]}


def encoder_features(dataset: Path, blocks: str, num_frames: int) -> np.ndarray:
    """The clip's Whisper features from the encoder blocks ``blocks`` (``"3"``, or ``"2+4"``: each vector the
    blocks' outputs side by side) with the dataset's other backend settings -> ``[T, P, F * len(blocks)]``."""
    from syncanim.audio.whisper import WhisperConfig, WhisperExtractor

    layout, manifest = DatasetLayout(dataset), read_manifest(dataset)
    if manifest.audio_backend != "whisper":
        raise SystemExit(f"--blocks needs a dataset prepped with the whisper backend, not {manifest.audio_backend}")
    section = {k: v for k, v in dataset_audio_section(dataset).items() if k != "kind"}
    base = WhisperConfig(**section)
    wave = read_audio(layout.audio, 16000)
    return np.concatenate([WhisperExtractor(base.model_copy(update={"layer": int(b)})).extract(wave, manifest.fps,
                                                                                               num_frames)
                           for b in blocks.split("+")], -1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("variants", nargs="*", default=["base="])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--folds", type=int, default=1,
                    help="score K consecutive parts of the clip in turn (1: the val frames)")
    ap.add_argument("--train-share", type=float, default=1.0,
                    help=f"fit on this share of the frames outside each part, in blocks of {BLOCK_S:g} s (1: all)")
    ap.add_argument("--speech", action="append", default=[], metavar="NAME=AUDIO",
                    help="new speech whose predicted mouth spread is scored against the subject's")
    ap.add_argument("--stream", choices=["score", "both"],
                    help="score (and with 'both' fit) on the features render computes from the clip's audio")
    ap.add_argument("--shown", action="store_true",
                    help="predicted lips that cross count as closed, as a picture shows them (not as open by the "
                         "overlap)")
    ap.add_argument("--support", type=float, default=0.0,
                    help="hold the predicted codes to the mouth support of this share, as render does (0: as predicted)")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the mean of the seeds' codes: one predictor per seed, averaged")
    ap.add_argument("--blocks", help="fit and score on the clip's Whisper features of these encoder blocks instead "
                                     "of the dataset's: 3, or 2+4 for two blocks side by side")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not 0 < args.train_share <= 1:
        ap.error(f"--train-share must be in (0, 1], got {args.train_share}")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layout = DatasetLayout(args.dataset)
    manifest = read_manifest(args.dataset)
    landmarks = np.load(layout.landmarks)
    feats = torch.from_numpy(encoder_features(args.dataset, args.blocks, len(landmarks)) if args.blocks
                             else np.load(layout.audio_features)).float().to(dev)
    parts = held_out_parts(len(landmarks), manifest.num_train, args.folds)
    rms = clip_rms(args.dataset, manifest)
    speaking, voiced = speech_frames(rms), speech_frames(rms, PAUSE_DB)
    speech = new_speech(args.dataset, args.speech, manifest.fps, manifest.sample_rate, dev)
    scored = None
    if args.stream:
        scored = new_speech(args.dataset, [f"clip={layout.audio}"], manifest.fps, manifest.sample_rate, dev)["clip"][0]
        if len(scored) < len(landmarks):
            raise SystemExit(f"the clip's audio gives {len(scored)} frames of features, the dataset has {len(landmarks)}")
        scored = scored[:len(landmarks)]
        if args.stream == "both":
            feats = scored
    result = {"benchmark": "mouth_predictor", "command": "python " + " ".join(sys.argv),
              "dataset": args.dataset.name, "device": dev.type, "folds": args.folds,
              "stream": args.stream,  # None: fitted and scored on the dataset's features
              "shown": args.shown,  # crossed predicted lips scored as closed
              "support": args.support,  # the mouth support's share the codes are held to (0: none)
              "blocks": args.blocks,  # None: the dataset's features, else the Whisper encoder blocks used
              "train_share": args.train_share,  # share of the frames outside each part fitted on (blocks of BLOCK_S)
              "held_out_frames": int(sum(hi - lo for lo, hi in parts)), "variants": {}}
    for spec in args.variants:
        name, mset, tset = parse_variant(spec)
        mc, tc = MouthNetConfig().model_copy(update=mset), MouthTrainConfig(**tset)
        others = load_other_clips(args.dataset, tc, mc.components, mc.variance, dev)
        runs, seed_parts = [], []
        for seed in args.seeds:
            seed_parts.append([score_part(landmarks, feats, part, mc, tc, seed, dev, speech, speaking, scored,
                                          args.shown, args.support, voiced, args.train_share,
                                          round(BLOCK_S * manifest.fps), others)
                               for part in parts])
            scored_parts = [row for row, _, _ in seed_parts[-1]]
            spreads = {k: float(np.mean([p["speech_spread_ratio"][k] for p in scored_parts])) for k in speech}
            runs.append({"seed": seed, "correlation": float(np.mean([s["correlation"] for s in scored_parts])),
                         "amplitude": float(np.mean([s["amplitude"] for s in scored_parts])),
                         "shape_error": float(np.mean([s["shape_error"] for s in scored_parts])),
                         "code_error": float(np.mean([s["code_error"] for s in scored_parts])),
                         "voiced_correlation": float(np.mean([s["voiced_correlation"] for s in scored_parts])),
                         "speech_spread_ratio": spreads,
                         "fit_s": float(sum(s["fit_s"] for s in scored_parts)), "parts": scored_parts})
        mean = float(np.mean([r["correlation"] for r in runs]))
        result["variants"][name] = {"model_mouth": mset, "train_mouth": tset, "mean_correlation": mean,
                                    "runs": runs}
        if args.ensemble:
            result["variants"][name]["ensemble"] = ensemble_score(landmarks, seed_parts, args.shown)
        print(f"{name:14s} corr {mean:.3f} [" + " ".join(f"{r['correlation']:.3f}" for r in runs) + "] amp "
              + " ".join(f"{r['amplitude']:.2f}" for r in runs) + " shape err "
              + " ".join(f"{100 * r['shape_error']:.2f}" for r in runs) + " code err "
              + " ".join(f"{r['code_error']:.2f}" for r in runs) + " voiced "
              + " ".join(f"{r['voiced_correlation']:.3f}" for r in runs) + f" ({runs[0]['fit_s']:.0f} s)"
              + "".join(f"; {k} " + " ".join(f"{r['speech_spread_ratio'][k]:.2f}" for r in runs)
                        for k in speech)
              + (f"; ensemble {result['variants'][name]['ensemble']['correlation']:.3f}" if args.ensemble else ""),
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
