"""The data format of every dataset: :class:`VideoBatch`, videos with all their ground truth.

Every field is a NumPy array (not a tensor): generation is pure NumPy, the data can be saved
without pickling (:mod:`pyro_vim.data.io`), and :meth:`VideoBatch.to_torch` converts when
needed.  The batch checks its fields' shapes, dtypes and value ranges when it is built.
"""
from __future__ import annotations

import copy
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np

__all__ = ["VideoBatch"]

_ATTRIBUTE_SPECS = {"color": (np.float32, 3), "shape": (np.int64, 2), "size": (np.int64, 2)}
#: Names an ``extra`` field may not take (they are the keys of :meth:`VideoBatch.to_torch`).
_RESERVED = frozenset({"frames", "positions", "moves", "masks", *_ATTRIBUTE_SPECS})
_EXTRA_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(eq=False, repr=False)
class VideoBatch:
    """A batch of ``N`` videos of length ``T`` with ``O`` objects, plus all ground truth.

    Every field is a NumPy array (not a torch tensor): generation is pure NumPy, arrays can
    be saved without pickling and sliced cheaply; use :meth:`to_torch` to convert.

    Attributes:
        frames: ``(N, T, 3, H, W)`` float32 RGB in ``[0, 1]``, black background.
        positions: ``(N, T, O, 2)`` float32 ``(x, y) = (column, row)`` of each object's
            centre, in pixels (pixel centres at integer coordinates).
        moves: ``(N, T-1, O, S)`` int64 indices into :data:`pyro_vim.data.MOVES`;
            ``moves[n, t, o]`` are the atomic moves taking object ``o`` from frame ``t`` to
            ``t + 1``, padded with ``-1`` (``S = 1`` for Random Walk, ``max_moves`` for the
            compositional data).
        masks: ``(N, T, O, H, W)`` bool instance masks of the *visible* pixels.
        attributes: ``{"color": (N, O, 3) float32, "shape": (N, O) int64 index into
            pyro_vim.data.SHAPES (for the ``glyphs`` data: into the generator's ``glyphs``),
            "size": (N, O) int64 radius / half-size in pixels (glyphs: box side)}``.
        config: JSON-serialisable description of the generator and of the ``generate``
            call (class name, arguments, ``num_sequences``, ``seq_len``, ``seed``). A
            subset taken with ``batch[idx]`` keeps its parent's config.
        extra: a generator's further ground truth, ``{name: array}`` (empty for the Random
            Walk data). Every array is indexed by sequence then time: ``(N, T, ...)`` per
            frame or ``(N, T-1, ...)`` per transition, so that subsets (``batch[idx]``),
            :meth:`head`, saving (:func:`pyro_vim.data.save_npz`) and :meth:`to_torch` carry
            it. Names are lower-case identifiers other than the fields above; the bouncing
            balls' are ``velocities``, ``wall_bounces`` and ``collisions``
            (:class:`pyro_vim.data.BouncingBalls`).
    """

    frames: np.ndarray
    positions: np.ndarray
    moves: np.ndarray
    masks: np.ndarray
    attributes: Dict[str, np.ndarray]
    config: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, np.ndarray) or f.ndim != 5 or f.shape[2] != 3:
            raise ValueError(f"frames must be a (N, T, 3, H, W) array, got {_shape_of(f)}")
        n, t, _, h, w = f.shape
        if h != w:
            raise ValueError(f"frames must be square, got H={h}, W={w}")
        if f.dtype != np.float32:
            raise ValueError(f"frames must be float32, got {f.dtype}")
        if f.size and not np.isfinite(f).all():
            raise ValueError("frames contain NaN or inf values; expected float32 RGB in [0, 1]")
        if f.size and (f.min() < 0 or f.max() > 1):
            raise ValueError(f"frames must lie in [0, 1], got values in "
                             f"[{f.min():.3g}, {f.max():.3g}]")
        p = self.positions
        if not isinstance(p, np.ndarray) or p.ndim != 4 or p.shape[:2] != (n, t) or (
            p.shape[3] != 2
        ):
            raise ValueError(f"positions must be ({n}, {t}, O, 2), got {_shape_of(p)}")
        o = p.shape[2]
        expected = {
            "positions": (self.positions, (n, t, o, 2), np.float32),
            "masks": (self.masks, (n, t, o, h, w), np.bool_),
        }
        for name, (arr, shape, dtype) in expected.items():
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                raise ValueError(
                    f"{name} must be a {np.dtype(dtype).name} array of shape {shape}, got "
                    f"{_shape_of(arr)} {getattr(arr, 'dtype', '')}"
                )
        m = self.moves
        if (
            not isinstance(m, np.ndarray)
            or m.ndim != 4
            or m.shape[:3] != (n, t - 1, o)
            or m.dtype != np.int64
        ):
            raise ValueError(
                f"moves must be an int64 array of shape ({n}, {t - 1}, {o}, S), "
                f"got {_shape_of(m)} {getattr(m, 'dtype', '')}"
            )
        if not isinstance(self.attributes, dict) or set(self.attributes) != set(
            _ATTRIBUTE_SPECS
        ):
            raise ValueError(f"attributes must be a dict with keys {sorted(_ATTRIBUTE_SPECS)}")
        for key, (dtype, ndim) in _ATTRIBUTE_SPECS.items():
            arr = self.attributes[key]
            shape = (n, o, 3) if ndim == 3 else (n, o)
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                raise ValueError(
                    f"attributes[{key!r}] must be a {np.dtype(dtype).name} array of shape "
                    f"{shape}, got {_shape_of(arr)} {getattr(arr, 'dtype', '')}"
                )
        if not isinstance(self.config, dict):
            raise ValueError("config must be a dict")
        if not isinstance(self.extra, dict):
            raise ValueError("extra must be a dict of arrays")
        for key, arr in self.extra.items():
            if not isinstance(key, str) or not _EXTRA_NAME.match(key) or key in _RESERVED:
                raise ValueError(f"extra: {key!r} is not a valid name (a lower-case identifier "
                                 f"other than {sorted(_RESERVED)})")
            if not isinstance(arr, np.ndarray) or arr.ndim < 2 or arr.shape[0] != n or (
                arr.shape[1] not in (t, t - 1)
            ):
                raise ValueError(f"extra[{key!r}] must be an array of shape ({n}, {t}, ...) or "
                                 f"({n}, {t - 1}, ...), got {_shape_of(arr)}")
            if arr.dtype == object:
                raise ValueError(f"extra[{key!r}] must not be an object array")

    # -- sizes ---------------------------------------------------------------------------
    @property
    def num_sequences(self) -> int:
        return self.frames.shape[0]

    @property
    def seq_len(self) -> int:
        return self.frames.shape[1]

    @property
    def num_objects(self) -> int:
        return self.positions.shape[2]

    @property
    def image_size(self) -> int:
        """Side of the (square) frames, in pixels."""
        return self.frames.shape[-1]

    @property
    def visible(self) -> np.ndarray:
        """``(N, T, O)`` bool: whether each object has visible pixels on each frame."""
        return self.masks.any(axis=(-2, -1))

    @property
    def max_moves(self) -> int:
        """Number of move slots ``S`` per transition (1 for the Random Walk)."""
        return self.moves.shape[-1]

    def __len__(self) -> int:
        return self.num_sequences

    def __getitem__(self, idx: Any) -> "VideoBatch":
        """Subset of sequences. An int gives a batch of one sequence (dims are kept)."""
        if isinstance(idx, numbers.Integral) and not isinstance(idx, (bool, np.bool_)):
            n = self.num_sequences
            if not -n <= idx < n:
                raise IndexError(f"sequence index {idx} out of range for {n} sequences")
            idx = slice(int(idx) % n, int(idx) % n + 1)
        elif not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.dtype != np.bool_ and not np.issubdtype(idx.dtype, np.integer):
                raise IndexError(f"cannot index sequences with {idx.dtype} values")
            if idx.ndim != 1:
                raise IndexError("sequence indices must be one-dimensional")
        return VideoBatch(
            frames=self.frames[idx],
            positions=self.positions[idx],
            moves=self.moves[idx],
            masks=self.masks[idx],
            attributes={k: v[idx] for k, v in self.attributes.items()},
            config=copy.deepcopy(self.config),
            extra={k: v[idx] for k, v in self.extra.items()},
        )

    def head(self, length: int) -> "VideoBatch":
        """The first ``length`` frames of every sequence (1 <= length <= T), with the ground
        truth cut to match: per-frame fields keep ``length`` entries, per-transition ones
        ``length - 1``."""
        t = self.seq_len
        if isinstance(length, (bool, np.bool_)) or not isinstance(length, numbers.Integral) \
                or not 1 <= length <= t:
            raise ValueError(f"length must be an integer in [1, {t}], got {length!r}")
        length = int(length)
        return VideoBatch(
            frames=self.frames[:, :length],
            positions=self.positions[:, :length],
            moves=self.moves[:, :length - 1],
            masks=self.masks[:, :length],
            attributes=dict(self.attributes),
            config=copy.deepcopy(self.config),
            extra={k: v[:, :length] if v.shape[1] == t else v[:, :length - 1]
                   for k, v in self.extra.items()},
        )

    def to_torch(self, device: Any = None) -> Dict[str, Any]:
        """Dict of torch tensors: ``frames`` float32, ``positions`` float32, ``moves`` long,
        ``masks`` bool, the attributes ``color`` float32, ``shape`` long, ``size`` long, and
        every :attr:`extra` array under its name.

        On the CPU the tensors share memory with the arrays when possible.
        """
        import torch

        arrays = {
            "frames": self.frames,
            "positions": self.positions,
            "moves": self.moves,
            "masks": self.masks,
            **self.attributes,
            **self.extra,
        }
        out = {}
        for key, arr in arrays.items():
            if not arr.flags.writeable:
                arr = arr.copy()
            tensor = torch.from_numpy(np.ascontiguousarray(arr))
            out[key] = tensor if device is None else tensor.to(device)
        return out

    def __repr__(self) -> str:
        return (
            f"VideoBatch(name={self.config.get('name')!r}, num_sequences={self.num_sequences},"
            f" seq_len={self.seq_len}, num_objects={self.num_objects}, "
            f"image_size={self.image_size}, max_moves={self.max_moves})"
        )


def _shape_of(x: Any) -> Any:
    return getattr(x, "shape", type(x).__name__)
