"""Training from a directory of ``.npz`` shards: a :class:`~torch.utils.data.Dataset`, and the
trainer's data source that feeds it through a :class:`~torch.utils.data.DataLoader` with a
:class:`~torch.utils.data.distributed.DistributedSampler`.

A shard is either

* a file written by :func:`pyro_vim.data.save_npz` (frames with all the ground truth: the
  trainer's periodic evaluation then scores rule identification), or
* a researcher's own ``.npz`` with one array ``frames`` of shape (N, T, 3, H, W) or
  (N, T, H, W, 3), float in [0, 1] or uint8 in [0, 255] (no ground truth: the evaluation reports
  the reconstruction error).

Every shard of a directory must hold square frames of one size, at least two frames long.  The
last ``holdout`` sequences (in sorted file order) are held out for evaluation and never trained
on.  Select it with ``--set data.name=npz data.path=DIR``; ``guides/your_own_data.md`` walks
through it.

Order and resumption.  The training sequences are shuffled once per epoch by a
``DistributedSampler`` (seeded by the config's seed, ``set_epoch(epoch)``), so under
``torch.distributed`` every rank reads its own disjoint part of the epoch.  The batch of a global
step is a pure function of the step (epoch = step // batches per epoch, then that batch of the
epoch), so a resumed run reads exactly the batches an uninterrupted one would.  A batch crops
each sequence to the curriculum's length, at an offset that is also a function of the step.
"""
from __future__ import annotations

import glob
import os
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from pyro_vim.data.batch import VideoBatch
from pyro_vim.data.io import FORMAT, load_npz
from pyro_vim.files import atomic_write

__all__ = ["ShardDataset", "ShardData", "FramesBatch", "read_shard", "shard_files",
           "write_frames_shard"]


def shard_files(path: str) -> List[str]:
    """The sorted ``*.npz`` files of directory ``path`` (or ``[path]`` for one file)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"data.path must name a directory of .npz shards, got {path!r}")
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data.path {path!r} does not exist (expected a directory of "
                                ".npz shards)")
    files = sorted(glob.glob(os.path.join(path, "*.npz")))
    if not files:
        raise ValueError(f"data.path {path!r} holds no .npz shards")
    return files


def _as_frames(frames: np.ndarray, where: str) -> np.ndarray:
    """(N, T, 3, H, W) float32 in [0, 1] from the accepted layouts, or a ValueError naming
    ``where``."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 5:
        raise ValueError(f"{where}: 'frames' must have shape (N, T, 3, H, W) or (N, T, H, W, 3), "
                         f"got {getattr(frames, 'shape', type(frames).__name__)}")
    if frames.shape[2] != 3 and frames.shape[-1] == 3:
        frames = np.moveaxis(frames, -1, 2)
    if frames.shape[2] != 3:
        raise ValueError(f"{where}: 'frames' must have 3 colour channels, got shape "
                         f"{frames.shape}")
    if frames.shape[3] != frames.shape[4]:
        raise ValueError(f"{where}: frames must be square, got {frames.shape[3]}x"
                         f"{frames.shape[4]}")
    if frames.shape[1] < 2:
        raise ValueError(f"{where}: sequences need at least 2 frames, got {frames.shape[1]}")
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    if not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(f"{where}: 'frames' must be float in [0, 1] or uint8, got "
                         f"{frames.dtype}")
    frames = frames.astype(np.float32, copy=False)
    if frames.size and not np.isfinite(frames).all():
        raise ValueError(f"{where}: 'frames' has NaN or inf values")
    if frames.size and (frames.min() < 0 or frames.max() > 1):
        raise ValueError(f"{where}: float frames must lie in [0, 1], got values in "
                         f"[{frames.min():.3g}, {frames.max():.3g}]")
    return frames


def read_shard(path: str):
    """A :class:`VideoBatch` (a pyro-vim dataset file) or a (N, T, 3, H, W) float32 array
    (a frames-only shard)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" in data.files and str(data["format"]) == FORMAT:
                kind = "batch"
            elif "frames" in data.files:
                kind, frames = "frames", data["frames"]
            else:
                raise ValueError(f"shard {path!r} has neither a pyro-vim dataset nor a 'frames' "
                                 f"array (arrays: {data.files})")
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"shard {path!r} is not a readable .npz file: {e}") from None
    if kind == "batch":
        return load_npz(path)
    return _as_frames(frames, f"shard {path!r}")


def write_frames_shard(path: str, frames: np.ndarray) -> str:
    """Write a frames-only shard (any layout :class:`ShardDataset` reads), atomically."""
    frames = np.asarray(frames)
    _as_frames(frames, f"shard {path!r}")          # refuse bad data before writing
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_write(path, lambda fh: np.savez_compressed(fh, frames=frames))
    return path


@dataclass
class FramesBatch:
    """Held-out frames without ground truth (``moves`` is None)."""
    frames: np.ndarray
    moves: None = None

    @property
    def num_sequences(self) -> int:
        return self.frames.shape[0]


class ShardDataset(Dataset):
    """The sequences of a directory of ``.npz`` shards, read lazily (``cache`` shards kept in
    memory).

    ``dataset[i]`` is sequence ``i``'s frames (T, 3, H, W) float32; ``dataset[(i, start,
    length)]`` its frames ``start .. start + length - 1`` (what the trainer's sampler asks).
    """

    def __init__(self, path: str, cache: int = 4):
        self.files = shard_files(path)
        self.cache_size = max(1, int(cache))
        self._cache: "OrderedDict[int, object]" = OrderedDict()
        counts, self.seq_len, self.image_size = [], None, None
        for f in self.files:
            n, t, size = self._header(f)
            if self.image_size is None:
                self.image_size = size
            elif size != self.image_size:
                raise ValueError(f"shard {f!r} holds {size}x{size} frames, but earlier shards "
                                 f"hold {self.image_size}x{self.image_size}")
            self.seq_len = t if self.seq_len is None else min(self.seq_len, t)
            counts.append(n)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if self.offsets[-1] == 0:
            raise ValueError(f"data.path {path!r}: the shards hold no sequences")

    @staticmethod
    def _header(path: str) -> Tuple[int, int, int]:
        """(N, T, side) of a shard's ``frames``, read from the array header alone."""
        try:
            with zipfile.ZipFile(path) as z:
                if "frames.npy" not in z.namelist():
                    raise ValueError(f"shard {path!r} has no 'frames' array (arrays: "
                                     f"{[n[:-4] for n in z.namelist()]})")
                with z.open("frames.npy") as fh:
                    major, _ = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if major == 1
                            else np.lib.format.read_array_header_2_0)
                    shape, _, _ = read(fh)
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"shard {path!r} is not a readable .npz file: {e}") from None
        if len(shape) != 5 or 3 not in (shape[2], shape[4]):
            raise ValueError(f"shard {path!r}: 'frames' must have shape (N, T, 3, H, W) or "
                             f"(N, T, H, W, 3), got {shape}")
        side = shape[-1] if shape[2] == 3 else shape[-2]
        if shape[1] < 2:
            raise ValueError(f"shard {path!r}: sequences need at least 2 frames, got "
                             f"{shape[1]}")
        return int(shape[0]), int(shape[1]), int(side)

    @staticmethod
    def _load(path: str):
        return read_shard(path)

    def shard(self, index: int):
        if index not in self._cache:
            self._cache[index] = self._load(self.files[index])
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(index)
        return self._cache[index]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> Tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"sequence {index} out of range for {len(self)} sequences")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return s, int(index - self.offsets[s])

    def has_truth(self) -> bool:
        return all(isinstance(self.shard(i), VideoBatch) for i in range(len(self.files)))

    def __getitem__(self, item):
        index, start, length = (item, 0, None) if not isinstance(item, tuple) else item
        s, row = self.locate(int(index))
        shard = self.shard(s)
        frames = shard.frames if isinstance(shard, VideoBatch) else shard
        stop = frames.shape[1] if length is None else start + length
        return torch.from_numpy(np.array(frames[row, start:stop]))

    def batch(self, indices: Sequence[int], length: int):
        """The sequences ``indices``' first ``length`` frames, as a :class:`VideoBatch` when
        every shard has ground truth, else a :class:`FramesBatch`."""
        parts = []
        for i in indices:
            s, row = self.locate(int(i))
            parts.append((self.shard(s), row))
        if all(isinstance(shard, VideoBatch) for shard, _ in parts):
            subsets = [shard[row:row + 1].head(length) for shard, row in parts]
            extra = set.intersection(*(set(b.extra) for b in subsets))
            return VideoBatch(
                frames=np.concatenate([b.frames for b in subsets]),
                positions=np.concatenate([b.positions for b in subsets]),
                moves=np.concatenate([b.moves for b in subsets]),
                masks=np.concatenate([b.masks for b in subsets]),
                attributes={k: np.concatenate([b.attributes[k] for b in subsets])
                            for k in subsets[0].attributes},
                config=dict(subsets[0].config),
                extra={k: np.concatenate([b.extra[k] for b in subsets]) for k in sorted(extra)})
        return FramesBatch(np.stack([np.asarray(self[i])[:length] for i in indices]))


class _StepBatches(Sampler):
    """Batches ``first, first + 1, ...`` of one epoch of a DistributedSampler, each item an
    ``(index, start, length)`` triple (the batch sampler of the trainer's DataLoader)."""

    def __init__(self, sampler: DistributedSampler, batch_size: int, first: int, length: int,
                 max_len: int, seed: int):
        self.sampler, self.batch_size, self.first = sampler, batch_size, first
        self.length, self.max_len, self.seed = length, max_len, seed

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size - self.first

    def __iter__(self) -> Iterator[List[Tuple[int, int, int]]]:
        order = list(self.sampler)
        epoch = self.sampler.epoch
        for b in range(self.first, len(order) // self.batch_size):
            rng = np.random.default_rng([self.seed, epoch, b])
            starts = rng.integers(0, self.max_len - self.length + 1, size=self.batch_size)
            chunk = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield [(i, int(s), self.length) for i, s in zip(chunk, starts)]


class ShardData:
    """The trainer's data source for ``data.name = "npz"``: training batches through a
    DataLoader with a DistributedSampler, and the held-out evaluation batch.

    ``holdout``: the last sequences kept for evaluation (at most half of the data)."""

    def __init__(self, path: str, image_size: int, holdout: int, seed: int = 0,
                 cache: int = 4):
        self.path, self.seed = path, int(seed)
        self.dataset = ShardDataset(path, cache=cache)
        if self.dataset.image_size != image_size:
            raise ValueError(f"data.path {path!r} holds {self.dataset.image_size}x"
                             f"{self.dataset.image_size} frames, but the config's image_size is "
                             f"{image_size}: set image_size={self.dataset.image_size}")
        total = len(self.dataset)
        self.holdout = int(min(max(0, holdout), total // 2))
        self.train_indices = np.arange(total - self.holdout)
        self.eval_indices = np.arange(total - self.holdout, total)
        self._loader_key, self._iterator, self._next_step = None, None, None

    @property
    def seq_len(self) -> int:
        return self.dataset.seq_len

    def batches_per_epoch(self, batch_size: int, world: int) -> int:
        per_rank = len(self.train_indices) // world
        n = per_rank // batch_size
        if n == 0:
            raise ValueError(f"data.path {self.path!r} has {len(self.train_indices)} training "
                             f"sequences, fewer than one global batch of {batch_size} x "
                             f"{world} rank(s)")
        return n

    def loader(self, epoch: int, batch_size: int, length: int, rank: int = 0, world: int = 1,
               first: int = 0) -> DataLoader:
        """Epoch ``epoch``'s batches ``first, first + 1, ...`` of rank ``rank``."""
        if length > self.seq_len:
            raise ValueError(f"the curriculum asks for {length}-frame sequences, but the "
                             f"shards of {self.path!r} hold {self.seq_len} frames: lower "
                             f"seq_len_max (or eval_seq_len) to {self.seq_len}")
        subset = _Subset(self.dataset, self.train_indices)
        sampler = DistributedSampler(subset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=self.seed, drop_last=True)
        sampler.set_epoch(epoch)
        batches = _StepBatches(sampler, batch_size, first, length, self.seq_len,
                               self.seed)
        return DataLoader(subset, batch_sampler=batches, collate_fn=torch.stack)

    def frames(self, step: int, batch_size: int, length: int, rank: int = 0,
               world: int = 1) -> torch.Tensor:
        """This rank's (batch_size, length, 3, H, W) frames of global step ``step``."""
        per_epoch = self.batches_per_epoch(batch_size, world)
        epoch, b = divmod(int(step), per_epoch)
        key = (epoch, batch_size, length, rank, world)
        if self._loader_key != key or self._next_step != step:
            self._iterator = iter(self.loader(epoch, batch_size, length, rank, world, first=b))
            self._loader_key = key
        self._next_step = step + 1
        return next(self._iterator)

    def heldout(self, num_sequences: int, length: int):
        """The evaluation batch: the first ``num_sequences`` held-out sequences, first
        ``length`` frames."""
        if not len(self.eval_indices):
            raise ValueError(f"data.path {self.path!r} has no held-out sequences (set "
                             "eval_sequences > 0 and give at least 2 sequences)")
        length = min(int(length), self.seq_len)
        return self.dataset.batch(self.eval_indices[:num_sequences], length)

    def generate(self, num_sequences: int, seq_len: int, seed: int = 0):
        """Generators' interface for evaluation code: the held-out batch (``seed`` is
        unused: recorded data have one held-out set)."""
        return self.heldout(num_sequences, seq_len)


class _Subset(Dataset):
    def __init__(self, dataset: ShardDataset, indices: np.ndarray):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        i, start, length = item
        return self.dataset[(int(self.indices[i]), start, length)]
