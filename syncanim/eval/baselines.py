"""Floors to beat on a prepared dataset's validation split: frames chosen from the training split.

- **retrieval**: for each validation frame, the training frame whose audio feature is nearest
  (Euclidean distance between the dataset's ``audio_features.npy`` rows, each ``[P, F]`` window
  flattened to ``P * F`` values, the same features the model was trained on), shown as that
  training frame's image: its own pose, background and mouth. It moves the mouth with the speech as
  well as a lookup can, with no rendering at all.
- **static**: one training frame for every validation frame: the frame whose head pose is nearest
  the median pose of the training split (yaw, pitch, roll and translation, each divided by its
  spread over the split). A still picture: sync near zero, but a high PSNR when the person barely moves.

Both give frame sequences that are scored with exactly the same metrics as a model's renders.
"""

from __future__ import annotations

import numpy as np

from ..geometry import matrix_to_euler


def retrieval_indices(train_features: np.ndarray, query_features: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Nearest training row for each query row (Euclidean; ties: the lowest index).

    train_features: ``[M, ...] float`` (trailing dims flattened); query_features: ``[Q, ...]`` of the
    same trailing shape. Returns ``[Q] int64`` indices into ``train_features``. Memory is bounded by
    ``chunk * M``.
    """
    tr = np.asarray(train_features, dtype=np.float64).reshape(len(train_features), -1)  # [M, D]
    q = np.asarray(query_features, dtype=np.float64).reshape(len(query_features), -1)  # [Q, D]
    if len(tr) == 0:
        raise ValueError("retrieval_indices: no training features")
    if q.shape[1] != tr.shape[1]:
        raise ValueError(f"retrieval_indices: feature sizes differ: {tr.shape[1]} (train) vs {q.shape[1]} (query)")
    sq = (tr**2).sum(1)  # [M]
    out = np.empty(len(q), np.int64)
    for s in range(0, len(q), chunk):
        block = q[s:s + chunk]  # [C, D]
        d2 = sq[None, :] - 2.0 * block @ tr.T  # [C, M]: |q|^2 is the same for every candidate
        out[s:s + chunk] = np.argmin(d2, 1)
    return out


def static_index(rotation: np.ndarray, translation: np.ndarray) -> int:
    """The frame whose pose is nearest the median pose: ``rotation [M, 3, 3]``, ``translation [M, 3]``.

    Pose = (Euler angles, translation), 6 values; each is centred on its median and divided by its
    median absolute deviation (1 where that is 0); the frame with the smallest sum of squares wins.
    """
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    if r.ndim != 3 or r.shape[1:] != (3, 3) or t.shape != (len(r), 3) or len(r) == 0:
        raise ValueError(f"static_index: need rotation [M, 3, 3] and translation [M, 3], got {r.shape} and {t.shape}")
    pose = np.concatenate([matrix_to_euler(r), t], 1)  # [M, 6]
    med = np.median(pose, 0)
    mad = np.median(np.abs(pose - med), 0)
    z = (pose - med) / np.where(mad > 0, mad, 1.0)
    return int(np.argmin((z**2).sum(1)))


def baseline_indices(audio_features: np.ndarray, rotation: np.ndarray, translation: np.ndarray, num_train: int,
                     ids: list[int] | np.ndarray) -> dict[str, np.ndarray]:
    """The training frame each baseline shows for each frame of ``ids``.

    audio_features: ``[N, P, F]`` (the dataset's ``audio_features.npy``); rotation ``[N, 3, 3]``,
    translation ``[N, 3]`` (its head track); frames ``0 .. num_train-1`` are the training split.
    Returns ``{"retrieval": [Q] int64, "static": [Q] int64}`` indices into the dataset's frames.
    """
    if not 0 < num_train <= len(audio_features):
        raise ValueError(f"baseline_indices: num_train must be in 1..{len(audio_features)}, got {num_train}")
    q = np.asarray(ids, dtype=np.int64)
    retrieval = retrieval_indices(audio_features[:num_train], audio_features[q])
    still = static_index(rotation[:num_train], translation[:num_train])
    return {"retrieval": retrieval, "static": np.full(len(q), still, np.int64)}
