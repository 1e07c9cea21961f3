"""Measure how large the objects of recorded videos are and how far they move per frame.

:func:`measure_objects` looks at frames alone (no ground truth):

1. **Background.**  A pixel is foreground when its colour is far (more than ``threshold`` in
   some channel) from both its frame's median colour (a plain background) and the per-pixel
   median over every sampled frame of every video (a static background that the videos share,
   textured or not: objects stand elsewhere in most videos, so they do not stay in it).  Where
   that still leaves over a quarter of a video's pixels (a video with its own, not plain,
   background), a pixel must also be far from the per-pixel median over that video's frames.
2. **Objects.**  Foreground pixels are joined into connected components (4-neighbours whose
   colours differ by less than ``colour_tolerance``, so two touching objects of different
   colours stay apart).  Components under ``min_area`` pixels (noise, slivers of hidden
   objects) or over half the frame (a background the medians missed) are dropped.  An object's
   size is the larger side of its bounding box (7 px for the paper's radius-3 balls); the
   estimate is the median over the components that do not touch the frame's border (all of
   them when every one does).
3. **Moves.**  A component in frame t is matched to the component of frame t + 1 of a similar
   colour and area (within 2/3..3/2: occlusion changes both) whose centroid is nearest, when
   each is the other's nearest.  The estimate is the median length of the matched
   displacements longer than 0.5 px (objects that stand still say nothing about the step).

:func:`measure_shards` applies it to the first videos of a directory of ``.npz`` shards.  A
quantity that cannot be measured (no objects found, no moves matched) is ``None`` and
:attr:`Measurement.problem` says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = ["Measurement", "measure_objects", "measure_shards"]

#: Matched displacements at most this long (px) count as standing still.
STILL_PX = 0.5
#: A video whose foreground covers more than this share of its pixels has its own background.
MOSTLY_BACKGROUND = 0.25


@dataclass
class Measurement:
    """What :func:`measure_objects` found (sizes in pixels; ``None``: not measurable)."""
    object_size: Optional[float]
    step: Optional[float]
    videos: int
    frames: int
    objects: int          # components whose extent was measured
    moves: int            # matched displacements longer than STILL_PX
    problem: str = ""     # why a quantity is None

    def describe(self) -> str:
        return (f"measured on {self.frames} frames of {self.videos} videos: {self.objects} "
                f"objects, {self.moves} moves")


def _far(video: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    return np.abs(video - background).max(axis=1) > threshold


def _foreground(video: np.ndarray, shared: np.ndarray, threshold: float) -> np.ndarray:
    """(T, H, W) bool: pixels far from the frame's median colour and from ``shared`` (the
    per-pixel median over every sampled frame); where that leaves over a quarter of the
    video's pixels (each video has its own background), also far from the per-pixel median
    over this video's frames (T >= 3)."""
    frame_median = np.median(video.reshape(*video.shape[:2], -1), axis=-1)[..., None, None]
    fg = _far(video, frame_median, threshold) & _far(video, shared, threshold)
    if fg.mean() > MOSTLY_BACKGROUND and video.shape[0] >= 3:
        fg &= _far(video, np.median(video, axis=0, keepdims=True), threshold)
    return fg


def _label(video: np.ndarray, fg: np.ndarray, tolerance: float) -> np.ndarray:
    """(T, H, W) component labels (a pixel index of the component; -1 off the foreground)."""
    colour = np.moveaxis(video, 1, -1)                                   # (T, H, W, 3)
    right = fg[:, :, :-1] & fg[:, :, 1:] & (
        np.abs(colour[:, :, :-1] - colour[:, :, 1:]).max(-1) < tolerance)
    down = fg[:, :-1] & fg[:, 1:] & (np.abs(colour[:, :-1] - colour[:, 1:]).max(-1) < tolerance)
    labels = np.where(fg, np.arange(fg.size).reshape(fg.shape), fg.size)
    while True:       # each pixel takes its connected neighbours' smallest label, to the end
        new = labels.copy()
        new[:, :, :-1] = np.where(right, np.minimum(new[:, :, :-1], new[:, :, 1:]),
                                  new[:, :, :-1])
        new[:, :, 1:] = np.where(right, np.minimum(new[:, :, 1:], new[:, :, :-1]), new[:, :, 1:])
        new[:, :-1] = np.where(down, np.minimum(new[:, :-1], new[:, 1:]), new[:, :-1])
        new[:, 1:] = np.where(down, np.minimum(new[:, 1:], new[:, :-1]), new[:, 1:])
        flat = new.reshape(-1)           # a label is a pixel of the component: take that
        new[fg] = flat[new[fg]]          # pixel's label (pointer jumping, fewer sweeps)
        if np.array_equal(new, labels):
            break
        labels = new
    return np.where(fg, labels, -1)


@dataclass
class _Components:
    """The components of one frame: centroid (C, 2) as (x, y), colour (C, 3), area, extent,
    and whether each touches the border."""
    centroid: np.ndarray
    colour: np.ndarray
    area: np.ndarray
    extent: np.ndarray
    border: np.ndarray


def _components(video: np.ndarray, labels: np.ndarray, min_area: int) -> List[_Components]:
    t_len, _, h, w = video.shape
    t, y, x = np.nonzero(labels >= 0)
    found, index, area = np.unique(labels[t, y, x], return_inverse=True, return_counts=True)
    n = len(found)
    frame = found // (h * w)
    lo_x, lo_y = np.full(n, w), np.full(n, h)
    hi_x, hi_y = np.full(n, -1), np.full(n, -1)
    np.minimum.at(lo_x, index, x)
    np.minimum.at(lo_y, index, y)
    np.maximum.at(hi_x, index, x)
    np.maximum.at(hi_y, index, y)
    centroid = np.stack([np.bincount(index, x, n), np.bincount(index, y, n)], -1) / area[:, None]
    colours = video[t, :, y, x]                                            # (P, 3)
    colour = np.stack([np.bincount(index, colours[:, c], n) for c in range(3)], -1) / area[:, None]
    extent = np.maximum(hi_x - lo_x, hi_y - lo_y) + 1
    border = (lo_x == 0) | (lo_y == 0) | (hi_x == w - 1) | (hi_y == h - 1)
    keep = (area >= min_area) & (area <= h * w // 2)
    return [_Components(centroid[sel], colour[sel], area[sel], extent[sel], border[sel])
            for sel in ((frame == f) & keep for f in range(t_len))]


def _displacements(a: _Components, b: _Components, tolerance: float) -> np.ndarray:
    """Lengths of the mutual-nearest matches from frame a to frame b (similar colour and
    area)."""
    if not len(a.area) or not len(b.area):
        return np.zeros(0)
    dist = np.linalg.norm(a.centroid[:, None] - b.centroid[None], axis=-1)
    ratio = a.area[:, None] / b.area[None]
    alike = (np.abs(a.colour[:, None] - b.colour[None]).max(-1) < tolerance) & (
        ratio >= 2 / 3) & (ratio <= 1.5)
    dist = np.where(alike, dist, np.inf)
    forward, backward = dist.argmin(1), dist.argmin(0)
    rows = np.arange(len(a.area))
    mutual = (backward[forward] == rows) & np.isfinite(dist[rows, forward])
    return dist[rows[mutual], forward[mutual]]


def measure_objects(frames, threshold: float = 0.15, colour_tolerance: float = 0.25,
                    min_area: int = 2) -> Measurement:
    """Measure the objects' size and per-frame move in ``frames`` (N, T, 3, H, W), float in
    [0, 1] (see the module docstring for the method)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(f"measure_objects expects frames of shape (N, T, 3, H, W), got "
                         f"{frames.shape}")
    extents, border_extents, moves = [], [], []
    shared = np.median(np.moveaxis(frames, 2, 0).reshape(3, -1, *frames.shape[-2:]), axis=1)
    for video in frames:
        labels = _label(video, _foreground(video, shared, threshold), colour_tolerance)
        comps = _components(video, labels, min_area)
        for c in comps:
            extents.extend(c.extent[~c.border])
            border_extents.extend(c.extent[c.border])
        for a, b in zip(comps[:-1], comps[1:]):
            moves.extend(_displacements(a, b, colour_tolerance))
    moving = [m for m in moves if m > STILL_PX]
    sizes = extents or border_extents
    problems = []
    if not sizes:
        problems.append(f"no objects stand out from the background (no pixel differs from "
                        f"the background's colour by more than {threshold})")
    elif not moving:
        problems.append("no object could be followed from one frame to the next while moving")
    return Measurement(
        object_size=float(np.median(sizes)) if sizes else None,
        step=round(float(np.median(moving)), 2) if moving else None,
        videos=int(frames.shape[0]), frames=int(frames.shape[0] * frames.shape[1]),
        objects=len(sizes), moves=len(moving), problem="; ".join(problems))


def measure_shards(path: str, videos: int = 16, frames: int = 10, **kwargs) -> Measurement:
    """:func:`measure_objects` on the first ``videos`` videos (first ``frames`` frames) of the
    ``.npz`` shards at ``path`` (in sorted file order, as training reads them)."""
    from .shards import ShardDataset
    dataset = ShardDataset(path, cache=1)
    length = min(int(frames), dataset.seq_len)
    count = min(int(videos), len(dataset))
    sample = np.stack([np.asarray(dataset[(i, 0, length)]) for i in range(count)])
    return measure_objects(sample, **kwargs)
