"""Synthetic Random Walk video datasets of the VIM paper (Sec. 5), saving and loading.

Generators (pure NumPy, deterministic given a seed)::

    from pyro_vim.data import RandomWalk
    batch = RandomWalk().generate(num_sequences=32, seq_len=10, seed=0)
    batch.frames.shape  # (32, 10, 3, 32, 32)

See ``guides/generating_data.md`` for a tour.
"""
from pyro_vim.data.io import VideoDataset, load_npz, save_npz
from pyro_vim.data.random_walk import (
    MOVE_VECTORS,
    MOVES,
    OOD_COLORS,
    OOD_SHAPES,
    OOD_SIZES,
    SHAPES,
    TRAIN_COLORS,
    TRAIN_RADIUS,
    TRAIN_STEP,
    CompositionalRandomWalk,
    OODRandomWalk,
    RandomWalk,
    VideoBatch,
    make_dataset,
)

__all__ = [
    "MOVES",
    "MOVE_VECTORS",
    "SHAPES",
    "OOD_SHAPES",
    "TRAIN_COLORS",
    "OOD_COLORS",
    "TRAIN_RADIUS",
    "TRAIN_STEP",
    "OOD_SIZES",
    "VideoBatch",
    "RandomWalk",
    "CompositionalRandomWalk",
    "OODRandomWalk",
    "make_dataset",
    "save_npz",
    "load_npz",
    "VideoDataset",
]
