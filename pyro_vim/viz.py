"""Figures and animations for videos (Pyro-free).

Matplotlib and Pillow are imported lazily inside the functions. Figures are built with
the object-oriented API on an Agg canvas (never ``pyplot``), so drawing works headless and
never changes the user's matplotlib backend or leaves figures open in ``pyplot``.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "plot_sequence_with_moves",
    "save_gif",
    "to_uint8_images",
    "plot_confusion",
    "plot_module_rollouts",
    "plot_reconstruction",
    "plot_predictions",
]

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
    A batch with ``extra["velocities"]`` (bouncing balls) gets one arrow per object instead,
    its velocity at frame ``t`` (pixels per frame), dashed when the object bounces off a wall
    before frame ``t + 1`` and thick when it collides with another (``moves`` 1 and 2).

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
    velocities = getattr(batch, "extra", {}).get("velocities")
    event_style = {1: dict(linestyle="--"), 2: dict(lw=2.0)}
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
                if velocities is not None:
                    end = start + np.asarray(velocities[n, t, o], dtype=np.float64)
                    style = {**arrow, **event_style.get(int(moves[n, t, o, 0]), {})}
                    ax.annotate("", xy=tuple(end), xytext=tuple(start), arrowprops=style)
                    continue
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


# ------------------------------------------------------------------------------------------
# What a trained VIM learned (used by ``python -m pyro_vim.evaluate``)
# ------------------------------------------------------------------------------------------
_RULE_NAMES = ("up", "down", "left", "right")


def _array(x: Any, name: str, ndim: Optional[int] = None) -> np.ndarray:
    """numpy float64 array from an array or a (CPU or GPU) torch tensor, with a rank check."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def _finish(fig, path: Optional[PathLike], dpi: int):
    if path is None:
        return fig
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    fig.clear()
    return path


def _finish_grid(fig, title: Optional[str], path: Optional[PathLike], dpi: int,
                 hspace: float = 0.08):
    """Title and spacing shared by the image-grid figures, then save or return."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.02, top=0.9 if title else 0.94,
                        wspace=0.05, hspace=hspace)
    return _finish(fig, path, dpi)


def _image(ax, img: np.ndarray, label: Optional[str] = None, title: Optional[str] = None):
    """Draw a (3, H, W) image or an (H, W) grey map in [0, 1] without ticks."""
    img = np.clip(img, 0.0, 1.0)
    if img.ndim == 3:
        ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
    else:
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if label is not None:
        ax.set_ylabel(label, fontsize=7)
    if title is not None:
        ax.set_title(title, fontsize=7)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def plot_confusion(
    confusion: Any = None,
    module_usage: Any = None,
    rules: Sequence[str] = _RULE_NAMES,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: int = 100,
):
    """Rule-module heatmap (the paper's Fig. 2, left) beside the module-usage bars.

    Left: for each true rule (row) the distribution over the modules selected by the slot
    matched to the ball (row-normalised counts as colour, raw counts written in the cells).
    Right: how often each module is selected. Either panel may be missing: ``confusion=None``
    (e.g. compositional data, where rules are not single moves) shows a note instead.

    Args:
        confusion: ``(R, M)`` counts, or None.
        module_usage: ``(M,)`` frequencies, or None.
        rules: names of the ``R`` rows.
        path: if given, save the figure there and return the path; else return the figure.
        title: optional figure title.
        dpi: resolution when saving.
    """
    if confusion is None and module_usage is None:
        raise ValueError("plot_confusion needs confusion or module_usage (or both)")
    conf = None if confusion is None else _array(confusion, "confusion", 2)
    usage = None if module_usage is None else _array(module_usage, "module_usage", 1)
    if conf is not None:
        if np.any(conf < 0) or not np.all(np.isfinite(conf)):
            raise ValueError("confusion must hold finite non-negative counts")
        if len(rules) != conf.shape[0]:
            raise ValueError(f"rules has {len(rules)} names for {conf.shape[0]} confusion rows")
        if usage is not None and usage.shape[0] != conf.shape[1]:
            raise ValueError(f"module_usage has {usage.shape[0]} entries for "
                             f"{conf.shape[1]} modules")
    num_modules = conf.shape[1] if conf is not None else usage.shape[0]
    fig = _new_figure(3.2 + 0.35 * num_modules + 2.6, 3.0)
    ax_conf, ax_use = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1.0]})
    modules = np.arange(num_modules)
    if conf is not None:
        totals = conf.sum(axis=1, keepdims=True)
        frac = np.divide(conf, totals, out=np.zeros_like(conf), where=totals > 0)
        image = ax_conf.imshow(frac, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        for r in range(conf.shape[0]):
            for m in range(num_modules):
                ax_conf.text(m, r, f"{int(conf[r, m])}", ha="center", va="center", fontsize=7,
                             color="black" if frac[r, m] > 0.6 else "white")
        ax_conf.set_xticks(modules)
        ax_conf.set_yticks(np.arange(conf.shape[0]))
        ax_conf.set_yticklabels(list(rules), fontsize=8)
        ax_conf.set_xlabel("selected module", fontsize=8)
        ax_conf.set_ylabel("true rule", fontsize=8)
        ax_conf.set_title("P(module | rule)", fontsize=9)
        fig.colorbar(image, ax=ax_conf, fraction=0.046, pad=0.04)
    else:
        ax_conf.axis("off")
        ax_conf.text(0.5, 0.5, "rule-module confusion not defined\n(several moves per step)",
                     ha="center", va="center", fontsize=8, transform=ax_conf.transAxes)
    if usage is not None:
        ax_use.bar(modules, np.nan_to_num(usage), color="tab:blue")
        ax_use.set_ylim(0.0, 1.0)
        ax_use.set_xticks(modules)
        ax_use.set_xlabel("module", fontsize=8)
        ax_use.set_ylabel("fraction of selections", fontsize=8)
        ax_use.set_title("module usage", fontsize=9)
    else:
        ax_use.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.16, top=0.84, wspace=0.45)
    return _finish(fig, path, dpi)


def plot_module_rollouts(
    renders: Any,
    positions: Any = None,
    labels: Optional[Sequence[str]] = None,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: int = 100,
):
    """Grid of one slot's rollouts: rows are modules, columns steps (the paper's Fig. 2, right).

    Args:
        renders: ``(M, T, 3, H, W)`` the slot alone at each step of each module's rollout
            (:func:`pyro_vim.infer.module_rollouts`), step 0 being the start.
        positions: optional ``(M, T, 2)`` slot positions (x, y) in pixels; the path so far is
            drawn as a thin white line on each cell.
        labels: optional ``M`` row labels (default ``"module m"``).
        path: if given, save the figure there and return the path; else return the figure.
        title: optional figure title.
        dpi: resolution when saving.
    """
    imgs = _array(renders, "renders", 5)
    m, t = imgs.shape[:2]
    pos = None if positions is None else _array(positions, "positions", 3)
    if pos is not None and pos.shape != (m, t, 2):
        raise ValueError(f"positions must have shape {(m, t, 2)}, got {pos.shape}")
    if labels is not None and len(labels) != m:
        raise ValueError(f"labels has {len(labels)} entries for {m} modules")
    fig = _new_figure(1.0 * t + 0.8, 1.0 * m + 0.5)
    axes = fig.subplots(m, t, squeeze=False)
    for i in range(m):
        for j in range(t):
            ax = axes[i, j]
            _image(ax, imgs[i, j], label=(labels[i] if labels else f"module {i}") if j == 0
                   else None, title=f"step {j}" if i == 0 else None)
            if pos is not None and j > 0:
                ax.plot(pos[i, :j + 1, 0], pos[i, :j + 1, 1], color="white", lw=0.6)
                ax.plot(pos[i, j, 0], pos[i, j, 1], marker="o", ms=2.0, color="white")
                ax.set_xlim(-0.5, imgs.shape[-1] - 0.5)
                ax.set_ylim(imgs.shape[-2] - 0.5, -0.5)
    return _finish_grid(fig, title, path, dpi, hspace=0.1)


def plot_reconstruction(
    frames: Any,
    recon: Any,
    masks: Any,
    max_frames: int = 8,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: int = 100,
):
    """One video: input frames, reconstructions and the K slot masks (rows) over time (columns).

    Args:
        frames: ``(T, 3, H, W)`` input frames in [0, 1].
        recon: ``(T, 3, H, W)`` reconstructions.
        masks: ``(T, K, H, W)`` slot masks in [0, 1] (drawn in grey).
        max_frames: at most this many frames (the first ones).
        path: if given, save the figure there and return the path; else return the figure.
        title: optional figure title.
        dpi: resolution when saving.
    """
    x = _array(frames, "frames", 4)
    y = _array(recon, "recon", 4)
    mk = _array(masks, "masks", 4)
    if y.shape != x.shape:
        raise ValueError(f"recon must have the shape of frames {x.shape}, got {y.shape}")
    if mk.shape[0] != x.shape[0] or mk.shape[2:] != x.shape[2:]:
        raise ValueError(f"masks must have shape (T, K, H, W) = ({x.shape[0]}, K, "
                         f"{x.shape[2]}, {x.shape[3]}), got {mk.shape}")
    cols = min(_check_count("max_frames", max_frames), x.shape[0])
    k = mk.shape[1]
    rows = 2 + k
    fig = _new_figure(0.9 * cols + 0.8, 0.9 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for j in range(cols):
        _image(axes[0, j], x[j], "frame" if j == 0 else None, f"t={j}")
        _image(axes[1, j], y[j], "recon" if j == 0 else None)
        for s in range(k):
            _image(axes[2 + s, j], mk[j, s], f"mask {s}" if j == 0 else None)
    return _finish_grid(fig, title, path, dpi, hspace=0.08)


def plot_predictions(
    context: Any,
    truth: Any,
    samples: Any,
    max_samples: int = 8,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: int = 100,
):
    """Sampled futures beside the truth for one video.

    First row: the context frames, then the true future. Next rows: one sampled future each
    (:func:`pyro_vim.infer.predict`), aligned under the true future.

    Args:
        context: ``(D, 3, H, W)`` context frames.
        truth: ``(F, 3, H, W)`` true future frames.
        samples: ``(num_samples, F, 3, H, W)`` predicted futures.
        max_samples: at most this many samples are drawn.
        path: if given, save the figure there and return the path; else return the figure.
        title: optional figure title.
        dpi: resolution when saving.
    """
    ctx = _array(context, "context", 4)
    fut = _array(truth, "truth", 4)
    smp = _array(samples, "samples", 5)
    if smp.shape[1:] != fut.shape:
        raise ValueError(f"samples must have shape (num_samples, {', '.join(map(str, fut.shape))})"
                         f", got {smp.shape}")
    if ctx.shape[1:] != fut.shape[1:]:
        raise ValueError(f"context frames {ctx.shape[1:]} and future frames {fut.shape[1:]} "
                         "differ in size")
    d, h = ctx.shape[0], fut.shape[0]
    n = min(_check_count("max_samples", max_samples), smp.shape[0])
    fig = _new_figure(0.9 * (d + h) + 0.8, 0.9 * (n + 1) + 0.4)
    axes = fig.subplots(n + 1, d + h, squeeze=False)
    for j in range(d):
        _image(axes[0, j], ctx[j], "truth" if j == 0 else None, f"context {j}")
        for i in range(n):
            axes[i + 1, j].axis("off")
    for j in range(h):
        _image(axes[0, d + j], fut[j], None, f"+{j + 1}")
        for i in range(n):
            _image(axes[i + 1, d + j], smp[i, j], f"sample {i}" if j == 0 else None)
    return _finish_grid(fig, title, path, dpi, hspace=0.08)


def plot_image_rows(
    rows: Sequence[Tuple[str, Any]],
    column_titles: Optional[Sequence[str]] = None,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: int = 100,
):
    """A grid of images: one labelled row per ``(label, images (C, 3, H, W))`` entry.

    Rows may have different lengths (shorter rows leave blank cells).  Used for the VIM-k
    iteration strips (Fig. 5) and the dynamics-transfer rows (Fig. 7).
    """
    if not rows:
        raise ValueError("plot_image_rows needs at least one row")
    arrays = [(str(label), _array(images, f"row {label!r}", 4)) for label, images in rows]
    cols = max(a.shape[0] for _, a in arrays)
    fig = _new_figure(0.8 * cols + 1.0, 0.8 * len(arrays) + 0.5)
    axes = fig.subplots(len(arrays), cols, squeeze=False)
    for i, (label, imgs) in enumerate(arrays):
        for j in range(cols):
            if j < imgs.shape[0]:
                head = column_titles[j] if (i == 0 and column_titles and j < len(column_titles)) \
                    else None
                _image(axes[i, j], imgs[j], label if j == 0 else None, head)
            else:
                axes[i, j].axis("off")
    return _finish_grid(fig, title, path, dpi, hspace=0.12)


def composition_rows(frames: Any, iteration_frames: Any, max_rows: int = 4):
    """Rows of :func:`plot_image_rows` for VIM-k: frame t, the frame rendered after each of the
    k iterations, frame t+1.  ``frames`` (N, 2, 3, H, W), ``iteration_frames`` (N, k, 3, H, W)."""
    x = _array(frames, "frames", 5)
    it = _array(iteration_frames, "iteration_frames", 5)
    rows = []
    for n in range(min(max_rows, x.shape[0])):
        rows.append((f"video {n}", np.concatenate([x[n, :1], it[n], x[n, 1:2]], 0)))
    k = it.shape[1]
    return rows, ["frame t"] + [f"it {i + 1}" for i in range(k)] + ["frame t+1"]
