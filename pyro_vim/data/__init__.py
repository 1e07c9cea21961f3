"""The video data: synthetic Random Walk datasets of the VIM paper (Sec. 5), same-coloured
stroke glyphs on the same walk, bouncing balls, saving and loading.

Generators (pure NumPy, deterministic given a seed)::

    from pyro_vim.data import RandomWalk
    batch = RandomWalk().generate(num_sequences=32, seq_len=10, seed=0)
    batch.frames.shape  # (32, 10, 3, 32, 32)

One concept a module, the public names re-exported here:

* :mod:`~pyro_vim.data.batch` -- :class:`VideoBatch`, videos with all their ground truth;
* :mod:`~pyro_vim.data.random_walk` -- the generators, their moves, shapes and sizes;
* :mod:`~pyro_vim.data.bouncing` -- :class:`BouncingBalls`, balls that collide (``"bouncing"``);
* :mod:`~pyro_vim.data.palettes` -- the training and out-of-distribution colours;
* :mod:`~pyro_vim.data.glyphs` -- the stroke glyphs of the ``glyphs`` data;
* :mod:`~pyro_vim.data.io` -- :func:`save_npz` / :func:`load_npz`;
* :mod:`~pyro_vim.data.dataset` -- :class:`VideoDataset`, a torch ``Dataset`` of sequences;
* :mod:`~pyro_vim.data.shards` -- training from a directory of ``.npz`` shards;
* ``python -m pyro_vim.data`` (:mod:`pyro_vim.data.__main__`) -- generate a dataset and a preview.

See ``guides/generating_data.md`` for a tour.
"""
from pyro_vim.data.batch import VideoBatch
from pyro_vim.data.bouncing import BOUNCING_EVENTS, BouncingBalls
from pyro_vim.data.dataset import VideoDataset
from pyro_vim.data.io import load_npz, save_npz
from pyro_vim.data.palettes import OOD_COLORS, TRAIN_COLORS
from pyro_vim.data.random_walk import (
    GLYPH_SIZE,
    MOVE_VECTORS,
    MOVES,
    OOD_SHAPES,
    OOD_SIZES,
    SHAPES,
    TRAIN_RADIUS,
    TRAIN_STEP,
    CompositionalRandomWalk,
    GlyphRandomWalk,
    OODRandomWalk,
    RandomWalk,
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
    "GlyphRandomWalk",
    "GLYPH_SIZE",
    "BouncingBalls",
    "BOUNCING_EVENTS",
    "make_dataset",
    "save_npz",
    "load_npz",
    "VideoDataset",
]
