"""Colour palettes of the objects: the training palette, the out-of-distribution one, and the
checks a custom palette must pass (:func:`_check_palette`)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TRAIN_COLORS", "OOD_COLORS"]


#: Training palette: saturated colours, every one clearly non-black.
TRAIN_COLORS = np.array(
    [
        [1.0, 0.0, 0.0],  # red
        [0.0, 1.0, 0.0],  # green
        [0.0, 0.0, 1.0],  # blue
        [1.0, 1.0, 0.0],  # yellow
        [1.0, 0.0, 1.0],  # magenta
        [0.0, 1.0, 1.0],  # cyan
        [1.0, 0.5, 0.0],  # orange
        [0.5, 0.0, 1.0],  # violet
    ],
    dtype=np.float32,
)
TRAIN_COLORS.setflags(write=False)

#: Out-of-distribution palette: every colour differs from every training colour by at
#: least 0.5 in some channel (max-norm distance >= 0.5).
OOD_COLORS = np.array(
    [
        [0.5, 0.5, 0.5],  # grey
        [0.5, 1.0, 0.5],  # light green
        [1.0, 0.5, 0.5],  # salmon
        [0.5, 0.5, 1.0],  # lavender
        [0.0, 0.5, 0.5],  # teal
        [0.5, 0.0, 0.5],  # purple
        [0.5, 0.5, 0.0],  # olive
    ],
    dtype=np.float32,
)
OOD_COLORS.setflags(write=False)

#: A palette colour must have at least one channel >= this value (clearly non-black).
_MIN_BRIGHTNESS = 0.2
#: Custom OOD colours must differ from every training colour by at least this (max-norm).
_MIN_OOD_COLOR_DISTANCE = 0.25


def _check_palette(name: str, colors: Any) -> np.ndarray:
    """Validate a palette: (K, 3) RGB in [0, 1], clearly non-black; duplicates dropped."""
    try:
        arr = np.asarray(colors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of RGB triples, got {colors!r}") from exc
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"{name} must have shape (K, 3) with K >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"{name} must hold RGB values in [0, 1]")
    if np.any(arr.max(axis=1) < _MIN_BRIGHTNESS):
        raise ValueError(
            f"{name}: every colour needs a channel >= {_MIN_BRIGHTNESS} "
            "(objects must be clearly visible on the black background)"
        )
    _, first = np.unique(arr, axis=0, return_index=True)
    return arr[np.sort(first)].astype(np.float32)
