"""Synthetic Random Walk video datasets (VIM paper, Sec. 5).

Four generators share one vectorised NumPy implementation:

* :class:`RandomWalk` -- coloured balls on a black background; between two consecutive
  frames every ball makes exactly one atomic move (up, down, left or right) of ``step``
  pixels (Sec. 5.1, "Random Walk Dataset").
* :class:`CompositionalRandomWalk` -- between two frames every ball makes a composition
  of ``n`` atomic moves, ``n`` uniform in ``[min_moves, max_moves]``; only the end point is
  rendered (Sec. 5.2, "Compositional Random Walk").
* :class:`OODRandomWalk` -- the Random Walk dynamics with objects whose shape, colour and
  size never occur in the training data (Sec. 5.3, "Dynamics Transfer").
* :class:`GlyphRandomWalk` -- the Random Walk dynamics with objects of one colour that only
  their shape tells apart: 1-px stroke glyphs (:mod:`pyro_vim.data.glyphs`), placed apart,
  touching or overlapping (not in the paper: test data for perception without colour).

Conventions
-----------
* Images are ``H x W`` with ``H == W == image_size``; pixel ``(row, col)`` has its centre at
  integer coordinates, so an object centred on pixel ``(r, c)`` has position ``(x, y) = (c, r)``.
* ``"up"`` decreases the row index (image convention). :data:`MOVE_VECTORS` holds the
  ``(dx, dy)`` unit vector of each move, in the order of :data:`MOVES`.
* **Borders.** Objects are always drawn fully inside the frame. Each ball draws its move
  uniformly among the four; if that move would put any pixel of the object outside the
  frame, the move is re-drawn uniformly among the moves that keep it inside. This is the
  same as drawing uniformly among the legal moves, and the recorded move is always the
  one that was executed. For the compositional data only the end point of a composition
  has to be inside the frame (intermediate points are never rendered); if it is not, the
  whole composition (its length and its moves) is re-drawn.
* **Image size.** A generator requires ``image_size >= object_extent + 2 * step - 1``
  where ``object_extent`` is the object's bounding-box width (``2 * radius + 1`` for a
  ball). This is exactly the condition under which, from *every* admissible position,
  at least one horizontal and one vertical move stays inside the frame.
* **Overlap.** Objects are drawn in index order, later objects on top. ``masks`` holds the
  *visible* pixels of each object, so masks are disjoint, their union is exactly the set of
  non-black pixels, and a fully occluded object has an empty mask.
* **Sizes.** Training balls have radius :data:`TRAIN_RADIUS` (3 px) and move
  :data:`TRAIN_STEP` (3 px) per atomic move. OOD objects have half-sizes in
  :data:`OOD_SIZES` (2 and 4 px), never equal to the training radius.

The generators return a :class:`~pyro_vim.data.batch.VideoBatch` (pure NumPy); the object
colours come from :mod:`pyro_vim.data.palettes`.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from pyro_vim.data.batch import VideoBatch
from pyro_vim.data.glyphs import MIN_GLYPH_SIZE, glyph_stencils
from pyro_vim.data.palettes import (
    _MIN_OOD_COLOR_DISTANCE,
    OOD_COLORS,
    TRAIN_COLORS,
    _check_palette,
)

__all__ = [
    "MOVES",
    "MOVE_VECTORS",
    "SHAPES",
    "OOD_SHAPES",
    "TRAIN_RADIUS",
    "TRAIN_STEP",
    "OOD_SIZES",
    "RandomWalk",
    "CompositionalRandomWalk",
    "OODRandomWalk",
    "GlyphRandomWalk",
    "GLYPH_SIZE",
    "DATASETS",
    "make_dataset",
    "object_stencil",
]

#: Atomic moves, in the order used by ``VideoBatch.moves`` indices.
MOVES: Tuple[str, ...] = ("up", "down", "left", "right")

#: ``(dx, dy)`` = (column, row) unit vector of each move in :data:`MOVES`.
MOVE_VECTORS = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)
MOVE_VECTORS.setflags(write=False)

#: Object shapes; ``attributes["shape"]`` indexes this tuple. Only "ball" is used for
#: training; the others are the out-of-distribution shapes.
SHAPES: Tuple[str, ...] = ("ball", "square", "triangle", "diamond", "cross")
OOD_SHAPES: Tuple[str, ...] = SHAPES[1:]

#: Ball radius and atomic step of the training data, in pixels.
TRAIN_RADIUS = 3
TRAIN_STEP = 3
#: Half-sizes of OOD objects (never equal to :data:`TRAIN_RADIUS`).
OOD_SIZES: Tuple[int, ...] = (2, 4)

#: Every object colour differs from every background pixel by at least this (max-norm).
_MIN_BACKGROUND_CONTRAST = 0.2
#: The textured background's pixel values lie in [0, TEXTURE_MAX] (dark, so colours stand out).
TEXTURE_MAX = 0.25


# ---------------------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising TypeError/ValueError that name the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_background_spec(background: Any):
    """None / "black" -> (0, 0, 0); "texture"; or an RGB triple in [0, 1]."""
    if background is None or (isinstance(background, str) and background == "black"):
        return (0.0, 0.0, 0.0)
    if isinstance(background, str):
        if background != "texture":
            raise ValueError(f"background must be None, 'black', 'texture' or an RGB triple in "
                             f"[0, 1], got {background!r}")
        return "texture"
    try:
        arr = np.asarray(background, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"background must be an RGB triple in [0, 1], got {background!r}") \
            from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"background must be an RGB triple in [0, 1], got {background!r}")
    return tuple(float(v) for v in arr)


# ---------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------
def object_stencil(shape: str, size: int) -> np.ndarray:
    """Pixel offsets ``(dy, dx)`` (int64, shape ``(P, 2)``) covered by an object.

    ``size`` is the radius of a ball and the half-size of the other shapes: every shape of
    size ``s`` fits in a ``(2s + 1) x (2s + 1)`` box. Offsets are relative to the object's
    position. ``ball`` (pixels whose centre is within ``size`` of the position), ``square``
    (filled), ``diamond`` (outlined, ``max(1, size // 2)`` px thick, because a small filled
    diamond is pixel-for-pixel a rasterised disc) and ``cross`` (a plus sign,
    ``2 * (size // 3) + 1`` px thick) are point-symmetric, so the centroid of their pixels is
    exactly the position. The ``triangle`` (apex up) is anchored at the pixel nearest to its
    centroid, so its centroid is within 0.5 px of the position.
    """
    size = _check_int("size", size)
    r = np.arange(-size, size + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    if shape == "ball":
        keep = dx**2 + dy**2 <= size**2
    elif shape == "square":
        keep = np.ones_like(dx, dtype=bool)
    elif shape == "diamond":
        # Outlined: a filled small diamond is pixel-for-pixel a rasterised disc.
        thickness = max(1, size // 2)
        l1 = np.abs(dx) + np.abs(dy)
        keep = (l1 <= size) & (l1 > size - thickness)
    elif shape == "cross":
        half_thickness = size // 3
        keep = (np.abs(dx) <= half_thickness) | (np.abs(dy) <= half_thickness)
    elif shape == "triangle":
        # Row k (0 = apex) of the bounding box has half-width k // 2: base width 2*size+1.
        keep = np.abs(dx) <= (dy + size) // 2
    else:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    offsets = np.stack([dy[keep], dx[keep]], axis=1).astype(np.int64)
    if shape == "triangle":
        offsets[:, 0] -= int(np.round(offsets[:, 0].mean()))
    return offsets



# ---------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------
class _Walk:
    """Shared machinery: attributes, initial positions, dynamics loop and rendering."""

    name = ""

    def __init__(self, num_objects: int, image_size: int, step: int,
                 background: Any = None, texture_seed: int = 0) -> None:
        self.num_objects = _check_int("num_objects", num_objects)
        self.image_size = _check_int("image_size", image_size)
        self.step = _check_int("step", step)
        self.texture_seed = _check_seed(texture_seed)
        self._background_spec = _check_background_spec(background)
        self._stencil_cache: Dict[Tuple[int, int], np.ndarray] = {}

    # -- subclasses ----------------------------------------------------------------------
    #: Number of move slots S per transition.
    max_slots = 1

    @property
    def config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _draw_attributes(self, rng: np.random.Generator, n: int):
        """Return colours (n, O, 3) float32, shape ids (n, O) and sizes (n, O) int64."""
        raise NotImplementedError

    def _kinds(self) -> Sequence[Tuple[int, int]]:
        """All (shape id, size) pairs this generator may draw."""
        raise NotImplementedError

    def _sample_moves(self, rng, pos, lo, hi):
        """One transition: return (moves (n, O, S) int64, new positions (n, O, 2))."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------
    def _stencil(self, shape_id: int, size: int) -> np.ndarray:
        key = (int(shape_id), int(size))
        if key not in self._stencil_cache:
            self._stencil_cache[key] = object_stencil(SHAPES[key[0]], key[1])
        return self._stencil_cache[key]

    def _kind_name(self, shape_id: int, size: int) -> str:
        """How error messages name an object kind."""
        return f"{SHAPES[shape_id]} of size {size}"

    def _bounds(self, shape_ids: np.ndarray, sizes: np.ndarray):
        """Admissible centre range ``lo, hi`` (int64, ``shape_ids.shape + (2,)``, as (x, y)) of
        each object: its stencil stays inside the frame."""
        lo = np.empty(shape_ids.shape + (2,), dtype=np.int64)
        hi = np.empty(shape_ids.shape + (2,), dtype=np.int64)
        for sid, sz in {(int(a), int(b)) for a, b in zip(shape_ids.ravel(), sizes.ravel())}:
            st = self._stencil(sid, sz)
            sel = (shape_ids == sid) & (sizes == sz)
            lo[sel] = [-st[:, 1].min(), -st[:, 0].min()]  # (x, y)
            hi[sel] = [self.image_size - 1 - st[:, 1].max(), self.image_size - 1 - st[:, 0].max()]
        return lo, hi

    def _initial_positions(self, rng: np.random.Generator, lo: np.ndarray,
                           hi: np.ndarray) -> np.ndarray:
        """First-frame centres (n, O, 2): uniform in ``[lo, hi]``, independently."""
        return rng.integers(lo, hi + 1)

    def _default_colors(self, o: int) -> np.ndarray:
        """:meth:`render`'s colours (O, 3) when none are given: the first O palette colours."""
        if o > len(self.palette):
            raise ValueError(f"{o} objects need colors: the palette has {len(self.palette)}")
        return self.palette[:o]

    def _default_kinds(self, o: int):
        """:meth:`render`'s objects: shape ids and sizes (O,) -- the generator's first kind."""
        shape_id, size = self._kinds()[0]
        return np.full(o, shape_id, dtype=np.int64), np.full(o, size, dtype=np.int64)

    def _make_background(self) -> np.ndarray:
        """The (3, S, S) background image; objects' colours must stand out from it."""
        spec, size = self._background_spec, self.image_size
        if isinstance(spec, str):                  # "texture": static, seeded, dataset-wide
            rng = np.random.default_rng(self.texture_seed)
            cells = max(2, size // 4)
            coarse = rng.uniform(0.0, TEXTURE_MAX, size=(3, cells, cells))
            index = (np.arange(size) * cells) // size
            image = coarse[:, index][:, :, index]
            fine = rng.uniform(-0.03, 0.03, size=(3, size, size))
            image = np.clip(image + fine, 0.0, TEXTURE_MAX)
        else:
            image = np.broadcast_to(np.asarray(spec, dtype=np.float64)[:, None, None],
                                    (3, size, size))
        pixels = image.reshape(3, -1).T
        gap = np.abs(self.palette[:, None, :] - pixels[None]).max(-1).min()
        if gap < _MIN_BACKGROUND_CONTRAST:
            raise ValueError(
                f"background: every object colour must differ from every background pixel by "
                f"at least {_MIN_BACKGROUND_CONTRAST} in some channel (got {gap:.3f}); choose "
                "another background or colors")
        return np.ascontiguousarray(image, dtype=np.float32)

    def _check_fits(self) -> None:
        """Ensure every admissible position has a legal move along each axis (and build the
        background, which must contrast with the palette)."""
        self.background = self._make_background()
        for shape_id, size in self._kinds():
            st = self._stencil(shape_id, size)
            extent = int(max(np.ptp(st[:, 0]), np.ptp(st[:, 1]))) + 1
            needed = extent + 2 * self.step - 1
            if self.image_size < needed:
                raise ValueError(
                    f"image_size={self.image_size} is too small for a "
                    f"{self._kind_name(shape_id, size)} ({extent} px wide) moving by "
                    f"step={self.step}: need "
                    f"image_size >= {needed} (object width + 2 * step - 1)"
                )

    @staticmethod
    def _pick_colors(rng, palette: np.ndarray, n: int, k: int) -> np.ndarray:
        """``k`` distinct palette colours per sequence, uniformly at random."""
        order = np.argsort(rng.random((n, len(palette))), axis=1)[:, :k]
        return palette[order]

    def _check_enough_colors(self, palette: np.ndarray) -> None:
        if self.num_objects > len(palette):
            raise ValueError(
                f"num_objects={self.num_objects} exceeds the {len(palette)} distinct colors "
                "of the palette (objects need distinct colours)"
            )

    def _base_config(self) -> Dict[str, Any]:
        spec = self._background_spec
        return {
            "name": self.name,
            "class": type(self).__name__,
            "num_objects": self.num_objects,
            "image_size": self.image_size,
            "step": self.step,
            "background": spec if isinstance(spec, str) else [float(v) for v in spec],
            "texture_seed": self.texture_seed,
        }

    # -- generation ----------------------------------------------------------------------
    def generate(self, num_sequences: int, seq_len: int, seed: int) -> VideoBatch:
        """Generate ``num_sequences`` videos of ``seq_len`` frames, deterministically
        from ``seed`` (``numpy.random.default_rng(seed)``)."""
        n = _check_int("num_sequences", num_sequences)
        t_len = _check_int("seq_len", seq_len)
        if t_len < 2:
            raise ValueError(
                f"seq_len must be >= 2 (at least 2 frames are needed for one move), got {t_len}"
            )
        seed = _check_seed(seed)
        rng = np.random.default_rng(seed)
        o = self.num_objects

        colors, shape_ids, sizes = self._draw_attributes(rng, n)

        lo, hi = self._bounds(shape_ids, sizes)
        pos = np.empty((n, t_len, o, 2), dtype=np.int64)
        pos[:, 0] = self._initial_positions(rng, lo, hi)
        moves = np.full((n, t_len - 1, o, self.max_slots), -1, dtype=np.int64)
        for t in range(1, t_len):
            moves[:, t - 1], pos[:, t] = self._sample_moves(rng, pos[:, t - 1], lo, hi)

        frames, masks = self._render(pos, colors, shape_ids, sizes)
        config = dict(self.config, num_sequences=n, seq_len=t_len, seed=seed)
        return VideoBatch(
            frames=frames,
            positions=pos.astype(np.float32),
            moves=moves,
            masks=masks,
            attributes={"color": colors, "shape": shape_ids, "size": sizes},
            config=config,
        )

    def render(self, positions: Any, colors: Any = None) -> np.ndarray:
        """Draw this generator's objects at given centre positions.

        Args:
            positions: (N, O, 2) integer (x, y) = (column, row) centres, O <= ``num_objects``
                colours available; each object must lie fully inside the frame.
            colors: (O, 3) or (N, O, 3) RGB colours (default: the first O palette colours).

        Returns:
            (N, 3, S, S) float32 frames in [0, 1], drawn exactly as :meth:`generate` draws a
            frame (later objects on top, this generator's background).  The object kind is the
            generator's first (for Random Walk: a ball of ``radius``; for the glyphs, object
            ``k`` is glyph ``k``).
        """
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[-1] != 2 or pos.shape[0] == 0 or pos.shape[1] == 0:
            raise ValueError(f"positions must have shape (N, O, 2), got {pos.shape}")
        if not np.all(np.isfinite(pos)) or not np.array_equal(pos, np.round(pos)):
            raise ValueError("positions must be whole pixel coordinates")
        n, o = pos.shape[:2]
        kinds, kind_sizes = self._default_kinds(o)
        lo, hi = self._bounds(kinds, kind_sizes)
        bad = np.any((pos < lo) | (pos > hi), axis=(0, 2))
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"positions must keep every object inside the frame: x in "
                             f"[{lo[k, 0]}, {hi[k, 0]}] and y in [{lo[k, 1]}, {hi[k, 1]}] for "
                             f"this {self._kind_name(kinds[k], kind_sizes[k])}")
        if colors is None:
            cols = np.broadcast_to(self._default_colors(o), (n, o, 3))
        else:
            cols = np.asarray(colors, dtype=np.float32)
            if cols.shape not in ((o, 3), (n, o, 3)) or cols.min() < 0 or cols.max() > 1:
                raise ValueError(f"colors must be (O, 3) or (N, O, 3) RGB in [0, 1] with O={o}, "
                                 f"got {cols.shape}")
            cols = np.broadcast_to(cols, (n, o, 3))
        shape_ids = np.broadcast_to(kinds, (n, o))
        sizes = np.broadcast_to(kind_sizes, (n, o))
        frames, _ = self._render(pos.astype(np.int64)[:, None], np.ascontiguousarray(cols),
                                 shape_ids, sizes)
        return frames[:, 0]

    def _render(self, pos, colors, shape_ids, sizes):
        """Paint objects in index order into a label map, then look colours up."""
        n, t_len, o, _ = pos.shape
        size = self.image_size
        ldtype = np.uint8 if o < 255 else np.int32
        label = np.zeros((n, t_len, size, size), dtype=ldtype)  # 0 = background
        flat = label.reshape(-1)
        # Flat index of each object's centre pixel: ((seq * T + t) * H + y) * W + x.
        frame_base = (np.arange(n * t_len, dtype=np.int64) * size * size).reshape(n, t_len)
        centre = frame_base[:, :, None] + pos[..., 1] * size + pos[..., 0]  # (n, T, O)
        for k in range(o):
            for sid, sz in {(int(a), int(b)) for a, b in zip(shape_ids[:, k], sizes[:, k])}:
                st = self._stencil(sid, sz)
                offsets = st[:, 0] * size + st[:, 1]
                sel = (shape_ids[:, k] == sid) & (sizes[:, k] == sz)
                c = centre[:, :, k] if sel.all() else centre[sel, :, k]
                flat[(c[..., None] + offsets).reshape(-1)] = k + 1
        return self._colorize(label, colors)

    def _colorize(self, label, colors):
        """Frames and masks from a label map ``(n, T, S, S)`` (0 = background, ``k + 1`` =
        object ``k``) and the objects' colours ``(n, O, 3)``."""
        n, t_len, size, _ = label.shape
        o = colors.shape[1]
        ldtype = label.dtype
        # Colour lookup table per sequence: entry 0 is black.
        table = np.zeros((n, o + 1, 3), dtype=np.float32)
        table[:, 1:] = colors
        lab = label.reshape(n, -1).astype(np.intp)
        frames = np.empty((n, t_len, 3, size, size), dtype=np.float32)
        for ch in range(3):
            frames[:, :, ch] = np.take_along_axis(table[:, :, ch], lab, axis=1).reshape(
                n, t_len, size, size
            )
        if self.background.any():                 # background pixels (label 0) take its colour
            frames = np.where((label == 0)[:, :, None], self.background, frames)
        masks = label[:, :, None] == np.arange(1, o + 1, dtype=ldtype)[:, None, None]
        return frames, masks


class RandomWalk(_Walk):
    """Random Walk dataset (Sec. 5.1): ``num_objects`` balls of radius ``radius`` with
    distinct colours, each making one ``step``-pixel move per frame in a direction chosen
    uniformly among up/down/left/right (moves leaving the frame are re-drawn uniformly among
    the legal ones).

    Args:
        num_objects: balls per video (default 3, as in the paper).
        image_size: side of the square frames (default 32, as in the paper).
        radius: ball radius in pixels; a pixel is painted when its centre is within
            ``radius`` of the ball centre (default :data:`TRAIN_RADIUS`).
        step: pixels per atomic move (default :data:`TRAIN_STEP`).
        colors: palette to draw colours from, a ``(K, 3)`` sequence of RGB values in
            ``[0, 1]`` (default :data:`TRAIN_COLORS`). Each video draws ``num_objects``
            distinct palette colours at random; ``attributes["color"]`` records them.
    """

    name = "random_walk"

    def __init__(
        self,
        num_objects: int = 3,
        image_size: int = 32,
        radius: int = TRAIN_RADIUS,
        step: int = TRAIN_STEP,
        colors: Optional[Sequence[Sequence[float]]] = None,
        background: Any = None,
        texture_seed: int = 0,
    ) -> None:
        super().__init__(num_objects, image_size, step, background, texture_seed)
        self.radius = _check_int("radius", radius)
        self._custom_colors = colors is not None
        self.palette = (
            np.array(TRAIN_COLORS) if colors is None else _check_palette("colors", colors)
        )
        self._check_enough_colors(self.palette)
        self._check_fits()

    @property
    def config(self) -> Dict[str, Any]:
        cfg = self._base_config()
        cfg["radius"] = self.radius
        cfg["colors"] = self.palette.tolist() if self._custom_colors else None
        return cfg

    def _kinds(self):
        return [(0, self.radius)]

    def _draw_attributes(self, rng, n):
        colors = self._pick_colors(rng, self.palette, n, self.num_objects)
        shape_ids = np.zeros((n, self.num_objects), dtype=np.int64)
        sizes = np.full((n, self.num_objects), self.radius, dtype=np.int64)
        return colors, shape_ids, sizes

    def _sample_moves(self, rng, pos, lo, hi):
        # Uniform among the legal moves == uniform draw, re-drawn when illegal.
        cand = pos[:, :, None, :] + self.step * MOVE_VECTORS  # (n, O, 4, 2)
        legal = np.all((cand >= lo[:, :, None]) & (cand <= hi[:, :, None]), axis=-1)
        score = np.where(legal, rng.random(legal.shape), -1.0)
        move = np.argmax(score, axis=-1)  # (n, O)
        new = pos + self.step * MOVE_VECTORS[move]
        return move[..., None], new


class CompositionalRandomWalk(RandomWalk):
    """Compositional Random Walk (Sec. 5.2): between two frames each ball moves by the sum
    of ``n`` atomic moves, ``n`` uniform in ``[min_moves, max_moves]`` and each move uniform
    among the four. ``moves[..., :n]`` records them (in order), the rest is ``-1``. If the
    end point would leave the frame, the whole composition (``n`` and the moves) is re-drawn;
    intermediate points may lie outside (they are never rendered).

    Other arguments as in :class:`RandomWalk`.
    """

    name = "compositional"

    def __init__(
        self,
        num_objects: int = 3,
        image_size: int = 32,
        radius: int = TRAIN_RADIUS,
        step: int = TRAIN_STEP,
        colors: Optional[Sequence[Sequence[float]]] = None,
        max_moves: int = 5,
        min_moves: int = 1,
        background: Any = None,
        texture_seed: int = 0,
    ) -> None:
        self.max_moves = _check_int("max_moves", max_moves)
        self.min_moves = _check_int("min_moves", min_moves)
        if self.min_moves > self.max_moves:
            raise ValueError(
                f"min_moves={self.min_moves} must not exceed max_moves={self.max_moves}"
            )
        super().__init__(num_objects, image_size, radius, step, colors, background, texture_seed)

    @property
    def max_slots(self) -> int:  # type: ignore[override]
        return self.max_moves

    @property
    def config(self) -> Dict[str, Any]:
        cfg = super().config
        cfg["max_moves"] = self.max_moves
        cfg["min_moves"] = self.min_moves
        return cfg

    def _draw_compositions(self, rng, count):
        n_moves = rng.integers(self.min_moves, self.max_moves + 1, size=count)
        moves = rng.integers(0, 4, size=(count, self.max_moves))
        moves[np.arange(self.max_moves) >= n_moves[:, None]] = -1
        disp = self.step * np.where(moves[..., None] >= 0, MOVE_VECTORS[moves], 0).sum(axis=1)
        return moves, disp

    def _sample_moves(self, rng, pos, lo, hi):
        n, o, _ = pos.shape
        flat_pos, flat_lo, flat_hi = pos.reshape(-1, 2), lo.reshape(-1, 2), hi.reshape(-1, 2)
        moves = np.empty((n * o, self.max_moves), dtype=np.int64)
        new = np.empty((n * o, 2), dtype=np.int64)
        todo = np.arange(n * o)
        for _ in range(10_000):
            mv, disp = self._draw_compositions(rng, len(todo))
            end = flat_pos[todo] + disp
            ok = np.all((end >= flat_lo[todo]) & (end <= flat_hi[todo]), axis=1)
            moves[todo[ok]], new[todo[ok]] = mv[ok], end[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                return moves.reshape(n, o, -1), new.reshape(n, o, 2)
        raise RuntimeError("could not draw a composition that stays inside the frame")


class OODRandomWalk(_Walk):
    """Out-of-distribution objects (Sec. 5.3) following the Random Walk dynamics (``S = 1``).

    Every object of every video draws (from the seed) a shape from ``shapes`` (never
    "ball"), a half-size from ``sizes`` (never ``train_radius``) and a colour from
    ``colors`` (default :data:`OOD_COLORS`, distinct within a video, far from every training
    colour). ``positions`` is the object's centre: the centre of symmetry for square,
    diamond and cross, and the pixel nearest to the centroid for the triangle.
    """

    name = "ood"

    def __init__(
        self,
        num_objects: int = 3,
        image_size: int = 32,
        step: int = TRAIN_STEP,
        shapes: Sequence[str] = OOD_SHAPES,
        sizes: Sequence[int] = OOD_SIZES,
        colors: Optional[Sequence[Sequence[float]]] = None,
        train_radius: int = TRAIN_RADIUS,
        background: Any = None,
        texture_seed: int = 0,
    ) -> None:
        super().__init__(num_objects, image_size, step, background, texture_seed)
        self.train_radius = _check_int("train_radius", train_radius)
        if isinstance(shapes, str) or len(shapes) == 0:
            raise ValueError(f"shapes must be a non-empty sequence of names, got {shapes!r}")
        for s in shapes:
            if s not in OOD_SHAPES:
                raise ValueError(f"shapes: {s!r} is not an OOD shape, choose from {OOD_SHAPES}")
        self.shapes = tuple(dict.fromkeys(shapes))
        if isinstance(sizes, numbers.Integral) or len(sizes) == 0:
            raise ValueError(f"sizes must be a non-empty sequence of integers, got {sizes!r}")
        self.sizes = tuple(dict.fromkeys(_check_int("sizes", s) for s in sizes))
        if self.train_radius in self.sizes:
            raise ValueError(
                f"sizes must not contain the training radius {self.train_radius}, got "
                f"{self.sizes}"
            )
        self._custom_colors = colors is not None
        self.palette = np.array(OOD_COLORS) if colors is None else _check_palette(
            "colors", colors
        )
        dist = np.abs(self.palette[:, None, :] - TRAIN_COLORS[None]).max(axis=-1)
        if dist.min() < _MIN_OOD_COLOR_DISTANCE:
            raise ValueError(
                "colors: every OOD colour must differ from every training colour by at least "
                f"{_MIN_OOD_COLOR_DISTANCE} in some channel"
            )
        self._check_enough_colors(self.palette)
        self._shape_ids = np.array([SHAPES.index(s) for s in self.shapes], dtype=np.int64)
        self._check_fits()

    @property
    def config(self) -> Dict[str, Any]:
        cfg = self._base_config()
        cfg["shapes"] = list(self.shapes)
        cfg["sizes"] = list(self.sizes)
        cfg["colors"] = self.palette.tolist() if self._custom_colors else None
        cfg["train_radius"] = self.train_radius
        return cfg

    def _kinds(self):
        return [(int(s), z) for s in self._shape_ids for z in self.sizes]

    def _draw_attributes(self, rng, n):
        o = self.num_objects
        colors = self._pick_colors(rng, self.palette, n, o)
        shape_ids = self._shape_ids[rng.integers(0, len(self._shape_ids), size=(n, o))]
        sizes = np.asarray(self.sizes, dtype=np.int64)[rng.integers(0, len(self.sizes), (n, o))]
        return colors, shape_ids, sizes

    _sample_moves = RandomWalk._sample_moves


#: Side of a glyph's box in pixels (the ``glyphs`` data: 8 x 8 px, as in the recording of the
#: issue that asked for them).
GLYPH_SIZE = 8
#: Candidate positions drawn per object and per try when placing objects apart.
_PLACEMENT_CANDIDATES = 64
#: Tries (each placing a whole video again) before a placement is declared impossible.
_PLACEMENT_TRIES = 200


class GlyphRandomWalk(_Walk):
    """Same-coloured stroke glyphs on the Random Walk dynamics (``S = 1``): objects that only
    their shape tells apart.

    Each video draws ``num_objects`` different glyphs (:mod:`pyro_vim.data.glyphs`) of a bank of
    ``num_glyphs``, all painted in one colour.  ``attributes["shape"]`` is the glyph's index in
    the bank (:attr:`glyphs`; not an index into :data:`SHAPES`), ``attributes["size"]`` the side
    of its box, ``positions`` the pixel nearest to the centroid of its pixels.

    Args:
        num_objects, image_size, step, background, texture_seed: as for :class:`RandomWalk`
            (the recording that motivated the data moved 2 px a frame: ``step=2``).
        object_size: side of a glyph's box in pixels, >= 3 (default :data:`GLYPH_SIZE`).
        colors: the glyphs' one colour, one RGB triple in ``[0, 1]`` (a ``(1, 3)`` palette;
            default white).
        min_separation: on the first frame, every two objects' boxes are at least this many
            pixels apart (along x or y): 1 (the default) leaves background between them, 0 lets
            them touch, ``-d`` lets them overlap by up to ``d`` px; None places objects
            independently (as :class:`RandomWalk`, overlaps included).  Later frames are free:
            objects walk over each other, later objects drawn on top.
        max_separation: None (default), or each object after the first starts at most this
            many pixels from the box of an earlier one, chosen at random: 0 makes every video
            start with objects touching or overlapping, ``-d`` overlapping by at least ``d`` px.
        num_glyphs: glyphs in the bank (default 64), >= ``num_objects``.
        glyph_seed: seed of the bank; another seed gives other glyphs (unseen shapes).
    """

    name = "glyphs"

    def __init__(
        self,
        num_objects: int = 3,
        image_size: int = 32,
        object_size: int = GLYPH_SIZE,
        step: int = TRAIN_STEP,
        colors: Optional[Sequence[Sequence[float]]] = None,
        min_separation: Optional[int] = 1,
        max_separation: Optional[int] = None,
        num_glyphs: int = 64,
        glyph_seed: int = 0,
        background: Any = None,
        texture_seed: int = 0,
    ) -> None:
        super().__init__(num_objects, image_size, step, background, texture_seed)
        self.object_size = _check_int("object_size", object_size, minimum=MIN_GLYPH_SIZE)
        least = -self.object_size
        self.min_separation = None if min_separation is None else _check_int(
            "min_separation", min_separation, minimum=least)
        self.max_separation = None if max_separation is None else _check_int(
            "max_separation", max_separation, minimum=least)
        if None not in (self.min_separation, self.max_separation) \
                and self.max_separation < self.min_separation:
            raise ValueError(f"max_separation={self.max_separation} must be >= "
                             f"min_separation={self.min_separation} (for objects that start "
                             "touching, set min_separation=None too)")
        gap = self.min_separation
        if gap is not None and self.num_objects * (self.object_size + gap) ** 2 > (
                self.image_size + gap) ** 2:
            raise ValueError(
                f"min_separation={gap}: {self.num_objects} boxes of {self.object_size} px, {gap} "
                f"px apart, do not fit in {self.image_size} x {self.image_size} px frames; lower "
                "min_separation or num_objects, or raise image_size")
        self.num_glyphs = _check_int("num_glyphs", num_glyphs)
        if self.num_glyphs < self.num_objects:
            raise ValueError(f"num_glyphs={self.num_glyphs} must be >= num_objects="
                             f"{self.num_objects} (the objects of a video are different glyphs)")
        self.glyph_seed = _check_int("glyph_seed", glyph_seed, minimum=0)
        self._custom_colors = colors is not None
        if colors is None:
            self.palette = np.ones((1, 3), dtype=np.float32)
        else:
            if np.shape(colors) == (3,):
                colors = [colors]
            self.palette = _check_palette("colors", colors)
            if len(self.palette) != 1:
                raise ValueError(f"colors: glyphs share one colour, give one RGB triple (e.g. "
                                 f"[[1, 1, 1]]), got {len(self.palette)} colours")
        #: The bank: (P, 2) ``(dy, dx)`` pixel offsets of each glyph.
        self.glyphs = glyph_stencils(self.num_glyphs, self.object_size, self.glyph_seed)
        self._check_fits()

    @property
    def config(self) -> Dict[str, Any]:
        cfg = self._base_config()
        cfg.update(object_size=self.object_size,
                   colors=self.palette.tolist() if self._custom_colors else None,
                   min_separation=self.min_separation, max_separation=self.max_separation,
                   num_glyphs=self.num_glyphs, glyph_seed=self.glyph_seed)
        return cfg

    def _stencil(self, shape_id: int, size: int) -> np.ndarray:
        return self.glyphs[shape_id]

    def _kind_name(self, shape_id: int, size: int) -> str:
        return f"glyph {shape_id} ({size} x {size} px box)"

    def _kinds(self):
        return [(k, self.object_size) for k in range(self.num_glyphs)]

    def _default_colors(self, o: int) -> np.ndarray:
        return np.repeat(self.palette, o, axis=0)

    def _default_kinds(self, o: int):
        if o > self.num_glyphs:
            raise ValueError(f"{o} objects need {o} glyphs: the bank has {self.num_glyphs}")
        return np.arange(o, dtype=np.int64), np.full(o, self.object_size, dtype=np.int64)

    def _draw_attributes(self, rng, n):
        o = self.num_objects
        colors = np.repeat(self.palette[None], n * o, axis=0).reshape(n, o, 3)
        glyphs = self._pick_colors(rng, np.arange(self.num_glyphs, dtype=np.int64), n, o)
        return colors, glyphs, np.full((n, o), self.object_size, dtype=np.int64)

    _sample_moves = RandomWalk._sample_moves

    def _initial_positions(self, rng, lo, hi):
        if self.min_separation is None and self.max_separation is None:
            return super()._initial_positions(rng, lo, hi)
        n, o, _ = lo.shape
        low, high = lo, self.image_size - 1 - hi     # a box: [centre - low, centre + high]
        pos = np.zeros((n, o, 2), dtype=np.int64)
        todo = np.arange(n)
        reach = self.object_size * 2 + (self.max_separation or 0)
        for _ in range(_PLACEMENT_TRIES):
            m = len(todo)
            placed = np.ones(m, dtype=bool)
            for k in range(o):
                shape = (m, _PLACEMENT_CANDIDATES, 2)
                if k == 0 or self.max_separation is None:
                    cand = rng.integers(lo[todo, None, k], hi[todo, None, k] + 1, size=shape)
                else:                            # near a random earlier object
                    anchor = pos[todo[:, None], rng.integers(0, k, size=shape[:2])]
                    cand = anchor + rng.integers(-reach, reach + 1, size=shape)
                ok = np.all((cand >= lo[todo, None, k]) & (cand <= hi[todo, None, k]), axis=-1)
                if k > 0:
                    # gap between boxes: background px between them along x or y (< 0: overlap)
                    a_lo = pos[todo, None, :k] - low[todo, None, :k]            # (m, 1, k, 2)
                    a_hi = pos[todo, None, :k] + high[todo, None, :k]
                    b_lo = (cand - low[todo, None, k])[:, :, None]              # (m, C, 1, 2)
                    b_hi = (cand + high[todo, None, k])[:, :, None]
                    gap = (np.maximum(b_lo - a_hi, a_lo - b_hi) - 1).max(axis=-1)  # (m, C, k)
                    if self.min_separation is not None:
                        ok &= np.all(gap >= self.min_separation, axis=-1)
                    if self.max_separation is not None:
                        ok &= np.any(gap <= self.max_separation, axis=-1)
                pos[todo, k] = cand[np.arange(m), np.argmax(ok, axis=1)]
                placed &= ok.any(axis=1)
            todo = todo[~placed]
            if len(todo) == 0:
                return pos
        raise ValueError(
            f"could not place {o} glyphs of {self.object_size} px with min_separation="
            f"{self.min_separation} and max_separation={self.max_separation} in "
            f"{self.image_size} x {self.image_size} px frames; relax them, lower num_objects or "
            "raise image_size")


#: Dataset name -> generator class ("bouncing" is added by :mod:`pyro_vim.data.bouncing`).
DATASETS = {
    RandomWalk.name: RandomWalk,
    CompositionalRandomWalk.name: CompositionalRandomWalk,
    OODRandomWalk.name: OODRandomWalk,
    GlyphRandomWalk.name: GlyphRandomWalk,
}


def make_dataset(name: str, **kwargs: Any) -> _Walk:
    """Build a generator by name: ``"random_walk"``, ``"compositional"``, ``"ood"`` or
    ``"glyphs"``, or ``"bouncing"`` (:class:`pyro_vim.data.bouncing.BouncingBalls`, which adds
    itself to :data:`DATASETS` when :mod:`pyro_vim.data` is imported, i.e. before any of its
    modules)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)
