"""Bouncing balls: interacting objects for n-ary modules (``data.name = "bouncing"``).

:class:`BouncingBalls` draws ``num_objects`` balls of ``radius`` pixels that fly in straight
lines at ``speed`` pixels per frame, bounce elastically off each other (equal masses) and off
the frame's walls.  It draws the same kind of frames as :class:`~pyro_vim.data.RandomWalk`
(hard-edged discs of distinct palette colours on the same backgrounds), but positions are
continuous and the objects interact, so a module must look at *pairs* of objects to predict a
collision.

Physics
-------
* **Sizes.** A ball paints the pixels whose centre lies within ``radius`` of its centre (at a
  whole-pixel position exactly Random Walk's ball), so its painted pixels reach
  ``radius + 0.5`` px from the centre: that is its physical radius.  Centres stay in
  ``[radius, image_size - 1 - radius]`` on both axes (every painted pixel inside the frame) and
  two balls touch at a distance of ``2 * radius + 1`` px, so balls never share a pixel
  (beyond a float-rounding tolerance): the masks are whole discs.
* **Start.** Centres uniform in the frame, re-drawn until no two balls overlap (a seeded
  jittered grid for the rare videos still overlapping after 100 draws, in crowded frames);
  velocities of length ``speed`` in uniformly random directions.
* **Integration.** Each transition is ``substeps`` equal sub-steps (default 10).  A sub-step
  moves every ball by ``velocity / substeps``; a ball beyond a wall is mirrored back inside and
  its velocity component normal to that wall is reflected; then every pair of balls that
  overlaps and approaches is rolled back to its moment of contact, exchanges the velocity
  components along the line of centres (an equal-mass elastic collision: momentum and kinetic
  energy are conserved exactly) and moves on for the rest of the sub-step (two passes over
  the pairs; walls again after them).  Speeds change only in collisions; the sum of squared
  speeds of a video never changes.  Balls do not overlap at the frames, except rarely by a
  few tenths of a pixel when three balls meet within one sub-step (crowded frames; none in
  40,000 frames of the default setting).

Ground truth (:class:`~pyro_vim.data.VideoBatch`)
------------------------------------------------
* ``positions`` ``(N, T, O, 2)`` float32: ``(x, y) = (column, row)`` centres in pixels, as for
  the Random Walk (and the centroid of the ball's mask, to rasterisation error);
* ``extra["velocities"]`` ``(N, T, O, 2)`` float32: the velocity at frame ``t`` in pixels per
  frame; without events in transition ``t``, ``positions[t + 1] = positions[t] +
  velocities[t]`` and ``velocities[t + 1] = velocities[t]``;
* ``extra["wall_bounces"]`` ``(N, T-1, O)`` bool: the ball bounced off a wall between frames
  ``t`` and ``t + 1``;
* ``extra["collisions"]`` ``(N, T-1, O, O)`` bool, symmetric with a false diagonal: balls
  ``i`` and ``j`` collided between frames ``t`` and ``t + 1``;
* ``moves`` ``(N, T-1, O, 1)`` int64: one event label per ball and transition, an index into
  :data:`BOUNCING_EVENTS`: ``0`` free flight, ``1`` wall bounce, ``2`` collision with another
  ball (a ball that does both in one transition is labelled ``2``).  The labels are not
  :data:`~pyro_vim.data.MOVES`: metrics that read ``moves`` run, but "up/down/left" in their
  output mean free/wall/collision here.
* ``masks`` (visible pixels), ``attributes`` (colour, shape 0 = ball, size = radius) and
  ``config`` as for the Random Walk.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from pyro_vim.data.batch import VideoBatch
from pyro_vim.data.palettes import TRAIN_COLORS, _check_palette
from pyro_vim.data.random_walk import (
    DATASETS,
    TRAIN_RADIUS,
    _check_background_spec,
    _check_int,
    _check_seed,
    _Walk,
)

__all__ = ["BouncingBalls", "BOUNCING_EVENTS", "DEFAULT_SPEED", "DEFAULT_SUBSTEPS"]

#: Event labels of ``VideoBatch.moves`` for bouncing balls, in index order.
BOUNCING_EVENTS: Tuple[str, ...] = ("free", "wall", "collision")
#: Default speed (pixels per frame) and sub-steps per frame.
DEFAULT_SPEED = 2.0
DEFAULT_SUBSTEPS = 10
#: Full start-position draws per video before the jittered-grid fallback.
_START_DRAWS = 100
#: Passes over the pairs of balls per sub-step.
_COLLISION_PASSES = 2
#: Tolerance (pixels) of the start checks of :meth:`BouncingBalls.simulate`.
_TOL = 1e-6


def _check_positive_number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r} "
                        f"({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


class BouncingBalls(_Walk):
    """Balls flying at constant speed with elastic ball-ball collisions and wall bounces.

    Args:
        num_objects: balls per video (default 3).
        image_size: side of the square frames (default 32).
        radius: ball radius in pixels, painted as for :class:`~pyro_vim.data.RandomWalk`
            (default :data:`~pyro_vim.data.TRAIN_RADIUS`, 3).
        speed: pixels per frame, the same for every ball at the start (default 2).
        colors: palette, as for :class:`~pyro_vim.data.RandomWalk` (default
            :data:`~pyro_vim.data.TRAIN_COLORS`).
        background, texture_seed: as for :class:`~pyro_vim.data.RandomWalk`.
        substeps: integration sub-steps per frame (default 10); ``speed / substeps`` must be at
            most a quarter of the touching distance ``2 * radius + 1``.

    Raises ``ValueError`` naming the argument for a non-positive speed, a frame too small for
    one ball to move, or more balls than fit without overlap (centres at least
    ``2 * radius + 1`` px apart on a grid inside the frame, a conservative test).
    See the module docstring for the physics and the ground truth.
    """

    name = "bouncing"

    def __init__(
        self,
        num_objects: int = 3,
        image_size: int = 32,
        radius: int = TRAIN_RADIUS,
        speed: float = DEFAULT_SPEED,
        colors: Optional[Sequence[Sequence[float]]] = None,
        background: Any = None,
        texture_seed: int = 0,
        substeps: int = DEFAULT_SUBSTEPS,
    ) -> None:
        # _Walk's palette, background and rendering machinery; no ``step`` (no atomic moves).
        self.num_objects = _check_int("num_objects", num_objects)
        self.image_size = _check_int("image_size", image_size)
        self.radius = _check_int("radius", radius)
        self.speed = _check_positive_number("speed", speed)
        self.substeps = _check_int("substeps", substeps)
        self.texture_seed = _check_seed(texture_seed)
        self._background_spec = _check_background_spec(background)
        self._custom_colors = colors is not None
        self.palette = (
            np.array(TRAIN_COLORS) if colors is None else _check_palette("colors", colors)
        )
        self._check_enough_colors(self.palette)
        self._check_fits()

    # -- geometry ------------------------------------------------------------------------
    @property
    def diameter(self) -> float:
        """Centre distance at which two balls touch: ``2 * radius + 1`` pixels."""
        return 2.0 * self.radius + 1.0

    @property
    def bounds(self) -> Tuple[float, float]:
        """``(low, high)``: the range of a centre's x and y that keeps the ball in the frame."""
        return float(self.radius), float(self.image_size - 1 - self.radius)

    def _grid_side(self) -> int:
        lo, hi = self.bounds
        return int(math.floor((hi - lo) / self.diameter + 1e-9)) + 1

    def _check_fits(self) -> None:
        self.background = self._make_background()
        lo, hi = self.bounds
        if hi <= lo:
            raise ValueError(
                f"image_size={self.image_size} is too small for a ball of radius {self.radius} "
                f"to move: need image_size >= {2 * self.radius + 2} (2 * radius + 2)")
        side = self._grid_side()
        if side * side < self.num_objects:
            raise ValueError(
                f"num_objects={self.num_objects} balls of radius {self.radius} cannot be placed "
                f"without overlap in a {self.image_size}x{self.image_size} frame: at most "
                f"{side * side} fit (centres {self.diameter:g} px apart on a grid); use fewer "
                "balls, a smaller radius or a larger image_size")
        if self.speed / self.substeps > self.diameter / 4:
            raise ValueError(
                f"speed={self.speed:g} is too fast for substeps={self.substeps}: a sub-step "
                f"(speed / substeps) must be at most {self.diameter / 4:g} px (a quarter of "
                f"the touching distance 2 * radius + 1); raise substeps to at least "
                f"{math.ceil(4 * self.speed / self.diameter)}")

    def _kinds(self):
        return [(0, self.radius)]

    @property
    def config(self) -> Dict[str, Any]:
        spec = self._background_spec
        return {
            "name": self.name,
            "class": type(self).__name__,
            "num_objects": self.num_objects,
            "image_size": self.image_size,
            "radius": self.radius,
            "speed": self.speed,
            "substeps": self.substeps,
            "colors": self.palette.tolist() if self._custom_colors else None,
            "background": spec if isinstance(spec, str) else [float(v) for v in spec],
            "texture_seed": self.texture_seed,
        }

    # -- start ---------------------------------------------------------------------------
    def _overlapping(self, pos: np.ndarray) -> np.ndarray:
        """(n,) bool: some pair of balls of each video is closer than the diameter."""
        diff = pos[:, :, None, :] - pos[:, None, :, :]
        dist2 = (diff ** 2).sum(-1)
        k = pos.shape[1]
        dist2[:, np.arange(k), np.arange(k)] = np.inf
        return (dist2 < self.diameter ** 2).any(axis=(1, 2))

    def _start_positions(self, rng: np.random.Generator, n: int) -> np.ndarray:
        lo, hi = self.bounds
        k = self.num_objects
        pos = rng.uniform(lo, hi, size=(n, k, 2))
        todo = np.nonzero(self._overlapping(pos))[0]
        for _ in range(_START_DRAWS):
            if len(todo) == 0:
                return pos
            pos[todo] = rng.uniform(lo, hi, size=(len(todo), k, 2))
            todo = todo[self._overlapping(pos[todo])]
        # Crowded frames: a random choice of cells of a grid whose rows and columns are at
        # least a diameter apart, each row and column shifted by sorted random offsets.
        m, d = self._grid_side(), self.diameter
        slack = (hi - lo) - (m - 1) * d
        for v in todo:
            cells = rng.permutation(m * m)[:k]
            offsets = np.sort(rng.uniform(0.0, slack, size=(2, m)), axis=1)
            col, row = cells % m, cells // m
            pos[v, :, 0] = lo + col * d + offsets[0, col]
            pos[v, :, 1] = lo + row * d + offsets[1, row]
        return np.clip(pos, lo, hi)

    # -- physics -------------------------------------------------------------------------
    def simulate(self, positions: Any, velocities: Any, num_frames: int,
                 collisions: bool = True) -> Dict[str, np.ndarray]:
        """Integrate balls from given centres and velocities (float64, no rendering).

        Args:
            positions: ``(N, O, 2)`` (or ``(O, 2)``) ``(x, y)`` centres at frame 0, each inside
                :attr:`bounds`, no two closer than :attr:`diameter`.
            velocities: the same shape, pixels per frame.
            num_frames: frames ``T >= 1`` to return (frame 0 included).
            collisions: ``False``: walls only, the balls fly through each other (the
                "walls-only physics" baseline of :mod:`pyro_vim.evaluate.interactions`; the
                start positions may then overlap and ``"collisions"`` is all False).

        Returns:
            ``{"positions": (N, T, O, 2), "velocities": (N, T, O, 2), "wall_bounces":
            (N, T-1, O) bool, "collisions": (N, T-1, O, O) bool}`` (a leading ``N`` of 1 for
            ``(O, 2)`` inputs), as in the module docstring.
        """
        pos = np.array(positions, dtype=np.float64)
        vel = np.array(velocities, dtype=np.float64)
        if pos.ndim == 2 and vel.ndim == 2:
            pos, vel = pos[None], vel[None]
        if pos.ndim != 3 or pos.shape[-1] != 2 or pos.shape[1] == 0 or vel.shape != pos.shape:
            raise ValueError(f"positions and velocities must both have shape (N, O, 2), got "
                             f"{np.shape(positions)} and {np.shape(velocities)}")
        if not (np.isfinite(pos).all() and np.isfinite(vel).all()):
            raise ValueError("positions and velocities must be finite")
        lo, hi = self.bounds
        if pos.size and (pos.min() < lo - _TOL or pos.max() > hi + _TOL):
            raise ValueError(f"positions must keep every ball inside the frame: x and y in "
                             f"[{lo:g}, {hi:g}] for radius {self.radius}")
        if collisions and pos.shape[1] > 1:
            diff = pos[:, :, None] - pos[:, None]
            dist = np.sqrt((diff ** 2).sum(-1)) + np.diag(np.full(pos.shape[1], np.inf))
            if dist.min() < self.diameter - _TOL:
                raise ValueError(f"positions: balls overlap (centres {dist.min():.3g} px apart, "
                                 f"less than 2 * radius + 1 = {self.diameter:g})")
        speed = np.sqrt((vel ** 2).sum(-1)).max() if vel.size else 0.0
        if speed / self.substeps > self.diameter / 4:
            raise ValueError(f"velocities: a speed of {speed:.3g} px/frame is too fast for "
                             f"substeps={self.substeps} (at most "
                             f"{self.substeps * self.diameter / 4:g})")
        t_len = _check_int("num_frames", num_frames)
        return self._simulate(np.clip(pos, lo, hi), vel, t_len, collisions=bool(collisions))

    def _simulate(self, pos: np.ndarray, vel: np.ndarray, t_len: int,
                  collisions: bool = True) -> Dict[str, np.ndarray]:
        n, k, _ = pos.shape
        lo, hi = self.bounds
        out_pos = np.empty((n, t_len, k, 2))
        out_vel = np.empty((n, t_len, k, 2))
        walls = np.zeros((n, t_len - 1, k), dtype=bool)
        hits = np.zeros((n, t_len - 1, k, k), dtype=bool)
        out_pos[:, 0], out_vel[:, 0] = pos, vel
        for t in range(1, t_len):
            for _ in range(self.substeps):
                pos = pos + vel / self.substeps
                pos, vel = self._walls(pos, vel, walls[:, t - 1])
                # Two passes: a collision may push a ball into a third one (rare).
                for _ in range(_COLLISION_PASSES if collisions else 0):
                    self._collide(pos, vel, hits[:, t - 1])
                # A collision may carry a ball across a wall within the sub-step.
                pos, vel = self._walls(pos, vel, walls[:, t - 1])
                pos = np.clip(pos, lo, hi)
            out_pos[:, t], out_vel[:, t] = pos, vel
        return {"positions": out_pos, "velocities": out_vel, "wall_bounces": walls,
                "collisions": hits}

    def _collide(self, pos: np.ndarray, vel: np.ndarray, hits: np.ndarray) -> None:
        """In place: every pair of balls that overlaps and approaches goes back to its moment
        of contact (at most one sub-step back), exchanges the velocity components along the
        line of centres and moves on as far; marks ``hits`` (n, O, O)."""
        d2 = self.diameter ** 2
        dt = 1.0 / self.substeps
        k = pos.shape[1]
        for i in range(k):
            for j in range(i + 1, k):
                p = pos[:, i] - pos[:, j]
                u = vel[:, i] - vel[:, j]
                pp, pu = (p * p).sum(-1), (p * u).sum(-1)
                h = np.nonzero((pp < d2) & (pu < 0))[0]
                if len(h) == 0:
                    continue
                p, u, pp, pu = p[h], u[h], pp[h], pu[h]
                uu = (u * u).sum(-1)
                # |p - u tau| = diameter, tau >= 0 (uu > 0 as pu < 0).
                tau = np.minimum((pu + np.sqrt(pu * pu - uu * (pp - d2))) / uu, dt)[:, None]
                ci, cj = pos[h, i] - vel[h, i] * tau, pos[h, j] - vel[h, j] * tau
                normal = ci - cj
                length = np.sqrt((normal * normal).sum(-1, keepdims=True))
                normal = np.where(length > 0, normal / np.maximum(length, 1e-300),
                                  np.array([1.0, 0.0]))
                exchange = ((vel[h, i] - vel[h, j]) * normal).sum(-1, keepdims=True) * normal
                vel[h, i] -= exchange
                vel[h, j] += exchange
                pos[h, i] = ci + vel[h, i] * tau
                pos[h, j] = cj + vel[h, j] * tau
                hits[h, i, j] = hits[h, j, i] = True

    def _walls(self, pos: np.ndarray, vel: np.ndarray, bounced: np.ndarray):
        """Mirror balls beyond a wall back inside and reflect the velocity component normal
        to that wall (balls already moving back inside are left alone); mark ``bounced``."""
        lo, hi = self.bounds
        below, above = pos < lo, pos > hi
        flip = (below & (vel < 0)) | (above & (vel > 0))
        if not flip.any():
            return pos, vel
        pos = np.where(flip & below, 2 * lo - pos, pos)
        pos = np.where(flip & above, 2 * hi - pos, pos)
        bounced |= flip.any(-1)
        return pos, np.where(flip, -vel, vel)

    @staticmethod
    def event_labels(wall_bounces: np.ndarray, collisions: np.ndarray) -> np.ndarray:
        """``(N, T-1, O, 1)`` int64 indices into :data:`BOUNCING_EVENTS`: 2 where a ball
        collided with another, else 1 where it bounced off a wall, else 0."""
        labels = np.where(collisions.any(-1), 2, np.where(wall_bounces, 1, 0))
        return labels.astype(np.int64)[..., None]

    # -- generation ----------------------------------------------------------------------
    def generate(self, num_sequences: int, seq_len: int, seed: int) -> VideoBatch:
        """Generate ``num_sequences`` videos of ``seq_len`` frames, deterministically from
        ``seed`` (``numpy.random.default_rng(seed)``)."""
        n = _check_int("num_sequences", num_sequences)
        t_len = _check_int("seq_len", seq_len)
        if t_len < 2:
            raise ValueError(f"seq_len must be >= 2 (at least 2 frames are needed for one "
                             f"transition), got {t_len}")
        seed = _check_seed(seed)
        rng = np.random.default_rng(seed)
        k = self.num_objects
        colors = self._pick_colors(rng, self.palette, n, k)
        pos0 = self._start_positions(rng, n)
        angle = rng.uniform(0.0, 2.0 * np.pi, size=(n, k))
        vel0 = self.speed * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        sim = self._simulate(pos0, vel0, t_len)
        positions = sim["positions"].astype(np.float32)
        frames, masks = self._colorize(self._paint(positions), colors)
        config = dict(self.config, num_sequences=n, seq_len=t_len, seed=seed)
        return VideoBatch(
            frames=frames,
            positions=positions,
            moves=self.event_labels(sim["wall_bounces"], sim["collisions"]),
            masks=masks,
            attributes={"color": colors,
                        "shape": np.zeros((n, k), dtype=np.int64),
                        "size": np.full((n, k), self.radius, dtype=np.int64)},
            config=config,
            extra={"velocities": sim["velocities"].astype(np.float32),
                   "wall_bounces": sim["wall_bounces"],
                   "collisions": sim["collisions"]},
        )

    # -- rendering -----------------------------------------------------------------------
    def _paint(self, pos: np.ndarray) -> np.ndarray:
        """Label map ``(n, T, S, S)`` of balls at continuous centres ``(n, T, O, 2)``: a
        pixel belongs to the last ball whose centre is within ``radius`` of it."""
        pos = np.asarray(pos, dtype=np.float64)
        n, t_len, k, _ = pos.shape
        size, r = self.image_size, self.radius
        ldtype = np.uint8 if k < 255 else np.int32
        label = np.zeros((n, t_len, size, size), dtype=ldtype)
        flat = label.reshape(-1)
        offsets = np.arange(-r, r + 2)                         # window of 2r + 2 pixels
        xs = np.floor(pos[..., 0]).astype(np.int64)[..., None] + offsets   # (n, T, O, w)
        ys = np.floor(pos[..., 1]).astype(np.int64)[..., None] + offsets
        dx2 = (xs - pos[..., 0, None]) ** 2
        dy2 = (ys - pos[..., 1, None]) ** 2
        inside = dy2[..., :, None] + dx2[..., None, :] <= r * r              # (n, T, O, w, w)
        inside &= ((ys >= 0) & (ys < size))[..., :, None] & ((xs >= 0) & (xs < size))[..., None, :]
        frame = np.arange(n * t_len, dtype=np.int64).reshape(n, t_len) * size * size
        index = (frame[:, :, None, None, None] + np.clip(ys, 0, size - 1)[..., :, None] * size
                 + np.clip(xs, 0, size - 1)[..., None, :])
        for o in range(k):
            flat[index[:, :, o][inside[:, :, o]]] = o + 1
        return label

    def render(self, positions: Any, colors: Any = None) -> np.ndarray:
        """Draw balls at given centres, exactly as :meth:`generate` draws a frame.

        Args:
            positions: ``(N, O, 2)`` ``(x, y)`` centres (any real values inside
                :attr:`bounds`), e.g. ``batch.positions[:, t]``.
            colors: ``(O, 3)`` or ``(N, O, 3)`` RGB colours (default: the first O palette
                colours).

        Returns:
            ``(N, 3, S, S)`` float32 frames in [0, 1].
        """
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[-1] != 2 or pos.shape[0] == 0 or pos.shape[1] == 0:
            raise ValueError(f"positions must have shape (N, O, 2), got {pos.shape}")
        lo, hi = self.bounds
        if not np.all(np.isfinite(pos)) or pos.min() < lo or pos.max() > hi:
            raise ValueError(f"positions must keep every ball inside the frame: x and y in "
                             f"[{lo:g}, {hi:g}] for radius {self.radius}")
        n, o = pos.shape[:2]
        if colors is None:
            if o > len(self.palette):
                raise ValueError(f"{o} balls need colors: the palette has {len(self.palette)}")
            cols = np.broadcast_to(self.palette[:o], (n, o, 3))
        else:
            cols = np.asarray(colors, dtype=np.float32)
            if cols.shape not in ((o, 3), (n, o, 3)) or cols.min() < 0 or cols.max() > 1:
                raise ValueError(f"colors must be (O, 3) or (N, O, 3) RGB in [0, 1] with O={o}, "
                                 f"got {cols.shape}")
            cols = np.broadcast_to(cols, (n, o, 3))
        frames, _ = self._colorize(self._paint(pos[:, None]), np.ascontiguousarray(cols))
        return frames[:, 0]


DATASETS[BouncingBalls.name] = BouncingBalls
