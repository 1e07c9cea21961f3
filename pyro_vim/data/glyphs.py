"""Stroke glyphs: the letter-like objects of the ``glyphs`` dataset
(:class:`~pyro_vim.data.random_walk.GlyphRandomWalk`).

A glyph is a polyline of 1-pixel strokes through 3 to 5 points of a 3 x 3 lattice spread over an
``object_size`` x ``object_size`` box (its corners, edge midpoints and centre; consecutive points
differ), like the pattern of a phone's lock screen: Z, N, U, L, 7 and their kin.  Every glyph
reaches all four sides of its box, so all glyphs of one size are exactly ``object_size`` px wide
and high; none is a single straight line; the glyphs of a bank are different pixel sets.  A bank
is drawn from its own seed (``numpy.random.default_rng(seed)``), so the same arguments always
give the same glyphs.
"""
from __future__ import annotations

from typing import List

import numpy as np

__all__ = ["MIN_GLYPH_SIZE", "glyph_stencils"]

#: The smallest box that holds a 3 x 3 lattice of distinct pixels.
MIN_GLYPH_SIZE = 3
#: Points of a glyph's polyline, inclusive range.
_MIN_POINTS, _MAX_POINTS = 3, 5
#: Draws in a row that find no new glyph before the bank is declared full (small boxes run out).
_MAX_MISSES = 2000


def _segment(r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    """The pixels (row, col) of a 1-px line from (r0, c0) to (r1, c1), both ends included."""
    n = max(abs(r1 - r0), abs(c1 - c0))
    t = np.arange(n + 1) / max(n, 1)
    rows = np.floor(r0 + (r1 - r0) * t + 0.5).astype(np.int64)
    cols = np.floor(c0 + (c1 - c0) * t + 0.5).astype(np.int64)
    return np.stack([rows, cols], axis=1)


def _draw_glyph(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size) bool image of one polyline through 3 x 3 lattice points."""
    lattice = np.array([0, size // 2, size - 1])
    count = int(rng.integers(_MIN_POINTS, _MAX_POINTS + 1))
    points = [int(rng.integers(9))]
    for _ in range(count - 1):
        points.append(int((points[-1] + rng.integers(1, 9)) % 9))  # another lattice point
    image = np.zeros((size, size), dtype=bool)
    for a, b in zip(points[:-1], points[1:]):
        line = _segment(lattice[a // 3], lattice[a % 3], lattice[b // 3], lattice[b % 3])
        image[line[:, 0], line[:, 1]] = True
    return image


def glyph_stencils(num_glyphs: int, size: int, seed: int) -> List[np.ndarray]:
    """``num_glyphs`` different glyphs in a ``size`` x ``size`` box, as pixel offsets.

    Returns a list of int64 ``(P, 2)`` arrays of ``(dy, dx)`` offsets, as
    :func:`~pyro_vim.data.random_walk.object_stencil` gives them: each relative to the pixel
    nearest to the glyph's centroid, so the centroid of a glyph's pixels is within 0.5 px of
    its position along each axis.

    Raises:
        ValueError: ``size`` is below :data:`MIN_GLYPH_SIZE`, or the box does not hold
            ``num_glyphs`` different glyphs (only small boxes run out).
    """
    if size < MIN_GLYPH_SIZE:
        raise ValueError(f"object_size must be >= {MIN_GLYPH_SIZE} for glyphs, got {size}")
    rng = np.random.default_rng(seed)
    seen = set()
    stencils: List[np.ndarray] = []
    misses = 0
    while misses < _MAX_MISSES:
        misses += 1
        image = _draw_glyph(rng, size)
        if not (image[0].any() and image[-1].any() and image[:, 0].any()
                and image[:, -1].any()) or image.sum() <= size:
            continue                        # every glyph spans its whole box and bends
        key = image.tobytes()
        if key in seen:
            continue
        seen.add(key)
        misses = 0
        pixels = np.argwhere(image).astype(np.int64)
        stencils.append(pixels - np.floor(pixels.mean(axis=0) + 0.5).astype(np.int64))
        if len(stencils) == num_glyphs:
            return stencils
    raise ValueError(f"num_glyphs={num_glyphs}: found only {len(stencils)} different glyphs in "
                     f"an object_size={size} box; lower num_glyphs or raise object_size")
