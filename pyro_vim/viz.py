"""Figures and animations for videos (Pyro-free).

Matplotlib and Pillow are imported lazily inside the functions. Figures are built with
the object-oriented API on an Agg canvas (never ``pyplot``), so drawing works headless and
never changes the user's matplotlib backend or leaves figures open in ``pyplot``.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = ["plot_sequence_with_moves", "save_gif", "to_uint8_images"]

PathLike = Union[str, "os.PathLike[str]"]

# (dx, dy) of the moves "up", "down", "left", "right" (image convention: up = row - 1).
# Kept local so this module does not depend on pyro_vim.data.
_MOVE_VECTORS = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.float64)


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_sequence_with_moves(
    batch: Any,
    num_sequences: int = 4,
    max_frames: int = 8,
    path: Optional[PathLike] = None,
    step: Optional[float] = None,
    dpi: int = 100,
):
    """Grid of frames (rows: sequences, columns: time) with the true moves as arrows.

    On frame ``t`` every object gets a chain of white arrows, one per atomic move
    ``moves[n, t, o, :]`` (``-1`` padding skipped), starting at ``positions[n, t, o]``: the
    moves that take it to frame ``t + 1``. The last frame of a sequence has no arrows.

    Args:
        batch: anything with ``frames`` (N, T, 3, H, W) in [0, 1], ``positions``
            (N, T, O, 2) as (x, y) pixels, ``moves`` (N, T-1, O, S) move indices in the
            order up, down, left, right, and optionally ``config["step"]`` -- e.g. a
            :class:`pyro_vim.data.VideoBatch`.
        num_sequences: at most this many sequences (the first ones) are drawn.
        max_frames: at most this many frames (the first ones) per sequence.
        path: if given, save the figure there and return the path; else return the figure.
        step: arrow length in pixels per atomic move (default ``batch.config["step"]``,
            or 1 if the batch has no config).
        dpi: resolution when saving.
    """
    for name, value in (("num_sequences", num_sequences), ("max_frames", max_frames)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    frames = np.asarray(batch.frames)
    positions = np.asarray(batch.positions, dtype=np.float64)
    moves = np.asarray(batch.moves)
    if frames.ndim != 5:
        raise ValueError(f"batch.frames must be (N, T, C, H, W), got shape {frames.shape}")
    if step is None:
        step = float(getattr(batch, "config", {}).get("step", 1))
    rows = min(int(num_sequences), frames.shape[0])
    cols = min(int(max_frames), frames.shape[1])
    fig = _new_figure(1.4 * cols + 0.4, 1.4 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    arrow = dict(arrowstyle="-|>", color="white", lw=1.0, mutation_scale=7, shrinkA=0, shrinkB=0)
    for n in range(rows):
        for t in range(cols):
            ax = axes[n, t]
            img = np.clip(frames[n, t], 0.0, 1.0).transpose(1, 2, 0)
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray",
                      vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if n == 0:
                ax.set_title(f"t={t}", fontsize=8)
            if t == 0:
                ax.set_ylabel(f"seq {n}", fontsize=8)
            if t >= moves.shape[1]:
                continue
            for o in range(positions.shape[2]):
                start = positions[n, t, o].copy()
                for m in moves[n, t, o]:
                    if m < 0:
                        continue
                    end = start + step * _MOVE_VECTORS[m]
                    ax.annotate("", xy=tuple(end), xytext=tuple(start), arrowprops=arrow)
                    start = end
    fig.tight_layout(pad=0.3)
    if path is None:
        return fig
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    fig.clear()
    return path


def to_uint8_images(frames: Any) -> np.ndarray:
    """(T, C, H, W) frames in [0, 1] (or uint8) -> (T, H, W, 3) uint8 images."""
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"frames must have shape (T, 3, H, W) or (T, 1, H, W), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def save_gif(
    frames: Union[Any, Sequence[Any]],
    path: PathLike,
    scale: int = 4,
    duration_ms: int = 200,
    separator: int = 1,
) -> Path:
    """Write an animated GIF (looping) with Pillow.

    Args:
        frames: one video ``(T, 3, H, W)`` with values in [0, 1] (or uint8), or a list of
            such videos with the same ``T`` and ``H``, shown side by side.
        path: output file.
        scale: integer up-scaling factor (nearest neighbour).
        duration_ms: display time of each frame.
        separator: width in (unscaled) pixels of the grey bar between videos.
    """
    from PIL import Image

    for name, value, minimum in (
        ("scale", scale, 1),
        ("duration_ms", duration_ms, 1),
        ("separator", separator, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    videos = list(frames) if isinstance(frames, (list, tuple)) else [frames]
    if not videos:
        raise ValueError("frames must hold at least one video")
    images = [to_uint8_images(v) for v in videos]
    t_len, height = images[0].shape[:2]
    for img in images[1:]:
        if img.shape[:2] != (t_len, height):
            raise ValueError("all videos must have the same number of frames and height")
    bar = np.full((t_len, height, separator, 3), 96, dtype=np.uint8)
    parts = []
    for i, img in enumerate(images):
        if i and separator:
            parts.append(bar)
        parts.append(img)
    strip = np.concatenate(parts, axis=2)
    strip = np.repeat(np.repeat(strip, scale, axis=1), scale, axis=2)
    pil_frames = [Image.fromarray(frame) for frame in strip]
    path = Path(path)
    pil_frames[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=pil_frames[1:],
        duration=int(duration_ms),
        loop=0,
    )
    return path
