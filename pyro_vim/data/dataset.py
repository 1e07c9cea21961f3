"""A :class:`torch.utils.data.Dataset` of the single sequences of a
:class:`~pyro_vim.data.batch.VideoBatch` or of a saved ``.npz`` file: :class:`VideoDataset`."""
from __future__ import annotations

import os
from typing import Dict, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from pyro_vim.data.batch import VideoBatch
from pyro_vim.data.io import PathLike, load_npz

__all__ = ["VideoDataset"]


class VideoDataset(Dataset):
    """A :class:`torch.utils.data.Dataset` of single sequences.

    Args:
        source: a :class:`VideoBatch` or the path of a file written by :func:`save_npz`.

    Each item is a dict of tensors (copies, safe to modify): ``frames`` (T, 3, H, W) float32,
    ``positions`` (T, O, 2) float32, ``moves`` (T-1, O, S) long, ``masks`` (T, O, H, W)
    bool, ``color`` (O, 3) float32, ``shape`` (O,) long, ``size`` (O,) long, and the batch's
    :attr:`~pyro_vim.data.VideoBatch.extra` arrays under their names (for bouncing balls
    ``velocities``, ``wall_bounces``, ``collisions``). The default ``DataLoader`` collation
    stacks them into batches.
    """

    def __init__(self, source: Union[VideoBatch, PathLike]) -> None:
        if isinstance(source, VideoBatch):
            self.batch = source
        elif isinstance(source, (str, os.PathLike)):
            self.batch = load_npz(source)
        else:
            raise TypeError(
                f"VideoDataset expects a VideoBatch or a path, got {type(source).__name__}"
            )

    def __len__(self) -> int:
        return len(self.batch)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        n = len(self.batch)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} sequences")
        b = self.batch
        arrays = {
            "frames": b.frames[index],
            "positions": b.positions[index],
            "moves": b.moves[index],
            "masks": b.masks[index],
            **{key: value[index] for key, value in b.attributes.items()},
            **{key: value[index] for key, value in b.extra.items()},
        }
        return {key: torch.from_numpy(np.array(value)) for key, value in arrays.items()}
